//! `tocsin fsync-probe`: how long a small durable append takes on a given disk.
//!
//! An ACK may only leave after the journal's `fdatasync` (design invariant 1), so the disk's
//! sync latency is the floor under the receiver's ACK latency. This probe measures that floor
//! the way the journal pays it — a preallocated file, ~200 bytes written at the next offset,
//! then `sync_data()` — so that `tocsin load` results can be held against the bar "p99 ACK
//! latency ≤ p99 fdatasync latency + 0.5 ms" on the same machine and disk.
//!
//! It refuses tmpfs and ramfs, where `fdatasync` returns at once and any number would flatter.

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use hdrhistogram::Histogram;
use serde_json::json;

use tocsin::journal::segment::preallocate;

const TMPFS_MAGIC: u64 = 0x0102_1994;
const RAMFS_MAGIC: u64 = 0x8584_58f6;

#[derive(clap::Args, Debug)]
pub struct FsyncProbeArgs {
    /// Directory on the disk to measure (the journal's data directory, or beside it).
    #[arg(long)]
    pub dir: PathBuf,
    /// Appends to time.
    #[arg(long, default_value_t = 2000)]
    pub count: usize,
    /// Bytes per append (a journal record of one event is about 200).
    #[arg(long, default_value_t = 200)]
    pub size: usize,
    /// Print the result as one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// Removes the probe file however the probe ends.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn fs_name(magic: u64) -> &'static str {
    match magic {
        0xEF53 => "ext2/3/4",
        0x5846_5342 => "xfs",
        0x9123_683E => "btrfs",
        0x2FC1_2FC1 => "zfs",
        0xF2F5_2010 => "f2fs",
        0x794C_7630 => "overlayfs",
        0x6969 => "nfs",
        TMPFS_MAGIC => "tmpfs",
        RAMFS_MAGIC => "ramfs",
        _ => "other",
    }
}

pub fn run(args: FsyncProbeArgs) -> Result<i32> {
    if args.count == 0 || args.size == 0 {
        bail!("--count and --size must be above zero");
    }
    let st =
        rustix::fs::statfs(&args.dir).with_context(|| format!("statfs {}", args.dir.display()))?;
    // `f_type` is a signed or unsigned integer depending on the architecture; magics are
    // 32-bit values.
    #[allow(clippy::unnecessary_cast)]
    let magic = (st.f_type as u64) & 0xFFFF_FFFF;
    if magic == TMPFS_MAGIC || magic == RAMFS_MAGIC {
        bail!(
            "{} is on {}: fdatasync does nothing there, so its latency says nothing about a \
             journal; point --dir at the disk the journal lives on",
            args.dir.display(),
            fs_name(magic)
        );
    }
    let result = probe(&args.dir, args.count, args.size)?;
    let q = |p: f64| result.value_at_quantile(p);
    let mean = (result.mean() * 10.0).round() / 10.0;
    if args.json {
        let out = json!({
            "dir": args.dir.display().to_string(),
            "fs": fs_name(magic),
            "fs_magic": format!("0x{magic:x}"),
            "count": args.count,
            "size": args.size,
            "latency_us": {
                "p50": q(0.50), "p90": q(0.90), "p99": q(0.99), "p99_9": q(0.999),
                "max": result.max(), "min": result.min(), "mean": mean,
            },
            // The ACK-latency bar this disk allows.
            "ack_p99_bar_us": q(0.99) + 500,
        });
        println!("{out}");
    } else {
        println!(
            "fdatasync of {}-byte appends on {} ({}), {} samples:",
            args.size,
            args.dir.display(),
            fs_name(magic),
            args.count
        );
        println!(
            "  µs  p50 {}  p90 {}  p99 {}  p99.9 {}  max {}  mean {mean}",
            q(0.50),
            q(0.90),
            q(0.99),
            q(0.999),
            result.max()
        );
        println!(
            "  bar for p99 ACK latency on this disk: {} µs",
            q(0.99) + 500
        );
    }
    Ok(0)
}

/// Times `count` appends of `size` bytes, each followed by `fdatasync`, in µs.
fn probe(dir: &Path, count: usize, size: usize) -> Result<Histogram<u64>> {
    let path = dir.join(format!(".tocsin-fsync-probe-{}", std::process::id()));
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)
        .with_context(|| format!("create {}", path.display()))?;
    let _scratch = Scratch(path.clone());
    let total = (count as u64)
        .saturating_mul(size as u64)
        .saturating_add(4096);
    // As the journal does with its segments: allocation and size are settled and made durable
    // up front, so each fdatasync has only data to write, not metadata.
    preallocate(&file, total).with_context(|| format!("fallocate {}", path.display()))?;
    file.sync_all()
        .with_context(|| format!("fsync {}", path.display()))?;

    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let mut record = vec![b'x'; size];
    let mut offset = 0u64;
    for i in 0..count {
        // Different bytes each time, like real records, so nothing can be skipped as unchanged.
        let stamp = format!("{i:010}\n");
        let n = stamp.len().min(record.len());
        if let (Some(dst), Some(src)) = (record.get_mut(..n), stamp.as_bytes().get(..n)) {
            dst.copy_from_slice(src);
        }
        let t = Instant::now();
        file.write_all_at(&record, offset)
            .with_context(|| format!("write {}", path.display()))?;
        file.sync_data()
            .with_context(|| format!("fdatasync {}", path.display()))?;
        hist.saturating_record(t.elapsed().as_micros().try_into().unwrap_or(u64::MAX));
        offset += size as u64;
    }
    Ok(hist)
}
