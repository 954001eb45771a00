//! Network reception: listeners, connection tasks and the stream cutter. Knows sockets and
//! limits; hands each frame to the station and writes back what it answers. What it
//! counts, it counts on handles it is given ([`counters`]): it does not know the daemon's
//! configuration or metrics registry.

pub mod codec;
pub mod counters;
mod limits;
pub mod tcp;
pub mod udp;

pub use limits::Limits;
