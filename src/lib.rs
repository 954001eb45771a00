//! tocsin: a SIA DC-09 alarm receiver for central monitoring stations.
//!
//! Layout (see the README's architecture section):
//! - [`protocol`]: DC-09 frames, encryption, replies, SIA DC-03 and Contact ID (pure).
//! - [`receiver`]: the decision for each frame, dedup, events, supervision (pure).
//! - [`net`]: TCP and UDP listeners and the stream cutter.
//! - [`ops`]: configuration, metrics, HTTP, systemd.

pub mod daemon;
pub mod diag;
pub mod forward;
pub mod journal;
pub mod net;
pub mod offline;
pub mod ops;
pub mod protocol;
pub mod receiver;
pub mod report;
pub mod station;

/// mimalloc instead of glibc's allocator for every program linked with this crate (the
/// daemon, benches, tests): each frame allocates a handful of small buffers on the
/// connection's worker thread and frees some of them on the journal writer's, the pattern
/// where glibc's free path costs most. The per-frame decision spent about a quarter of its
/// instructions in glibc `malloc`/`free`.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
