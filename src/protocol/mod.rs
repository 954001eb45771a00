//! The DC-09 protocol layer: pure functions from bytes to values and back.
//!
//! No I/O, no clock reads, no logging, and no panics on any input: time enters as a
//! parameter and randomness (the encryption pad) is lent by the caller. Everything here
//! can be fuzzed and benchmarked without a socket.
//!
//! Layout:
//! The protocol notes these modules cite are in `docs/protocol/` (DC-09 framing, SIA DC-03,
//! Contact ID, and what DC-09-2026 added).
//!
//! - [`crc`]: CRC-16/ARC as DC-09 uses it.
//! - [`dc09`]: cutting a frame into its fields (`docs/protocol/dc09.md` §3), vendor
//!   deviations (§12).
//! - [`crypto`]: AES-CBC with a zero IV and the DC-09 pad (§10).
//! - [`ext`]: extended data blocks by letter: network path, JSON, keys.
//! - [`response`]: ACK, `*ACK`, NAK and DUH encoding (§9), in the DC-09-2013 or DC-09-2026
//!   form.
//! - [`sia`]: SIA DC-03 data blocks (`SIA-DCS`).
//! - [`contact_id`]: Contact ID data (`ADM-CID`) and the 16-digit DC-05 message.
//! - [`codes`]: the SIA and Contact ID code tables, compiled in from `tables/*.csv`.

pub mod codes;
pub mod contact_id;
pub mod crc;
pub mod crypto;
pub mod dc09;
pub mod encode;
pub mod ext;
mod hex;
pub mod response;
pub mod sia;
pub mod text;
pub mod timestamp;

/// Value of one ASCII hex digit, either case (for the stream cutter in `net`).
pub fn hex_digit(b: u8) -> Option<u8> {
    hex::digit(b)
}
