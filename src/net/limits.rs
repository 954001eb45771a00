//! The limits a TCP connection is held to, as the network layer needs them (the
//! configuration's `[limits]` section gives them; see `ops::config`).

use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Limits {
    /// Open TCP connections from one IP address at most.
    pub max_connections_per_peer: usize,
    /// A connection with no complete frame for this long is closed.
    pub idle_timeout: Duration,
    /// A reply that cannot be written within this time closes the connection.
    pub write_timeout: Duration,
    /// Junk bytes (not frames) tolerated on one connection before it is closed.
    pub max_junk_bytes: u64,
}
