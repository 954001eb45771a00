//! Network
pub mod codec;
