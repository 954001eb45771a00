//! The process allocator: mimalloc instead of glibc's, for every program linked with this
//! crate (the daemon, benches, tests).
//!
//! Each frame allocates a handful of small buffers on a connection's worker thread and
//! frees some of them on the journal writer's: the pattern where glibc's free path costs
//! most (about a quarter of the per-frame decision's instructions were glibc `malloc` and
//! `free`). The `mimalloc` crate's own wrapper calls the aligned entry points for every
//! request, which cost several times the plain ones on this path; Rust's requests almost
//! never need more than the 16-byte alignment every mimalloc block has, so this wrapper
//! calls the plain functions for those and the aligned ones only when needed — the rule
//! std's own `System` allocator applies to `malloc` on Unix.

use std::alloc::{GlobalAlloc, Layout};
use std::ffi::c_void;

use libmimalloc_sys as mi;

/// Every block mimalloc returns is aligned to this (`MI_MAX_ALIGN_SIZE`).
const PLAIN_ALIGN: usize = 16;

pub struct MiMalloc;

/// Whether the plain entry points give this layout's alignment: a block of `size` bytes is
/// aligned to 16, or to the largest power of two not above `size` when smaller.
fn plain(layout: &Layout) -> bool {
    layout.align() <= PLAIN_ALIGN && layout.align() <= layout.size()
}

// SAFETY: every method forwards to mimalloc, which returns blocks of at least the requested
// size with the alignment `plain` checks (or the explicitly aligned variant otherwise), and
// `mi_free` accepts blocks from all of them. Null is returned on exhaustion, as required.
unsafe impl GlobalAlloc for MiMalloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: see the impl.
        unsafe {
            if plain(&layout) {
                mi::mi_malloc(layout.size()) as *mut u8
            } else {
                mi::mi_malloc_aligned(layout.size(), layout.align()) as *mut u8
            }
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: see the impl.
        unsafe {
            if plain(&layout) {
                mi::mi_zalloc(layout.size()) as *mut u8
            } else {
                mi::mi_zalloc_aligned(layout.size(), layout.align()) as *mut u8
            }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        // SAFETY: `ptr` came from one of the functions above.
        unsafe { mi::mi_free(ptr as *mut c_void) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `ptr` came from this allocator with `layout`; the new block keeps the
        // alignment because the check uses the new size too.
        unsafe {
            if layout.align() <= PLAIN_ALIGN && layout.align() <= new_size {
                mi::mi_realloc(ptr as *mut c_void, new_size) as *mut u8
            } else {
                mi::mi_realloc_aligned(ptr as *mut c_void, new_size, layout.align()) as *mut u8
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn alignments_are_honoured() {
        // Allocations through the global allocator (this one) at every alignment Rust asks
        // for, small and large, growing and shrinking.
        for align in [1usize, 2, 4, 8, 16, 32, 64, 4096] {
            for size in [1usize, 3, 8, 15, 16, 17, 100, 5000] {
                let layout = std::alloc::Layout::from_size_align(size, align).unwrap();
                // SAFETY: non-zero size; freed with the same layout.
                unsafe {
                    let p = std::alloc::alloc(layout);
                    assert!(!p.is_null());
                    assert_eq!(p as usize % align, 0, "size {size} align {align}");
                    let q = std::alloc::realloc(p, layout, size * 3);
                    assert_eq!(q as usize % align, 0, "realloc size {size} align {align}");
                    std::alloc::dealloc(
                        q,
                        std::alloc::Layout::from_size_align(size * 3, align).unwrap(),
                    );
                    let z = std::alloc::alloc_zeroed(layout);
                    assert!(std::slice::from_raw_parts(z, size).iter().all(|&b| b == 0));
                    assert_eq!(z as usize % align, 0);
                    std::alloc::dealloc(z, layout);
                }
            }
        }
    }
}
