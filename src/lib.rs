//! tocsin: a SIA DC-09 alarm receiver for central monitoring stations.
//!
//! Layout (see the README's architecture section):
//! - [`protocol`]: DC-09 frames, encryption, replies, SIA DC-03 and Contact ID (pure).
//! - [`receiver`]: the decision for each frame, dedup, events, supervision (pure).
//! - [`net`]: TCP and UDP listeners and the stream cutter.
//! - [`ops`]: configuration, metrics, HTTP, systemd.
//! - [`supervision`]: the task that owns supervision, and its sharing between receivers.
//! - [`clock`]: wall-clock steps, detected and reported.

pub mod clock;
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
pub mod supervision;
pub mod throttle;
pub mod units;

pub mod alloc;

#[global_allocator]
static ALLOCATOR: alloc::MiMalloc = alloc::MiMalloc;
