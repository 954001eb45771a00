//! Network reception: listeners, connection tasks and the stream cutter. Knows sockets and
//! limits; hands each frame to the station and writes back what it answers.

pub mod codec;
mod junk;
pub mod tcp;
pub mod udp;
