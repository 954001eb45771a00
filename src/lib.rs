//! tocsin: a SIA DC-09 alarm receiver.
pub mod net;
pub mod protocol;
