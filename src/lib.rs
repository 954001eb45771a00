//! tocsin: a SIA DC-09 alarm receiver.
pub mod journal;
pub mod protocol;
