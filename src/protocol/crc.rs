//! CRC-16/ARC, the checksum of every DC-09 frame (`docs/protocol/dc09.md` §4).
//!
//! Poly 0x8005 reflected, init 0, no final xor: the DC-07 CRC. Several public code bases
//! use CRC-16/CCITT for DC-09; every real frame validates only with ARC. The table comes
//! from the `crc` crate rather than a transcription (the DC-07 document's printed table
//! had a typo).

use crc::{Crc, Table, CRC_16_ARC};

/// Slice-by-16 tables: frames are 20–4000 bytes, where the wider table pays for itself.
const ARC: Crc<u16, Table<16>> = Crc::<u16, Table<16>>::new(&CRC_16_ARC);

/// CRC-16/ARC of `data`.
pub fn crc16(data: &[u8]) -> u16 {
    ARC.checksum(data)
}

/// CRC-16/ARC of `a` followed by `b`, without concatenating them (used for the ELDES
/// variant whose CRC also covers the trailing CR).
pub fn crc16_two(a: &[u8], b: &[u8]) -> u16 {
    let mut digest = ARC.digest();
    digest.update(a);
    digest.update(b);
    digest.finalize()
}

/// Writes `crc` as four upper-case hex digits, the form a receiver sends.
pub fn crc_hex(crc: u16) -> [u8; 4] {
    let mut out = [0u8; 4];
    super::hex::write_u16_upper(crc, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_value() {
        assert_eq!(crc16(b"123456789"), 0xBB3D);
    }

    #[test]
    fn worked_example_w1() {
        let body = b"\"SIA-DCS\"0001L0#1234[#1234|Nri1/BA01]_12:00:00,01-15-2024";
        assert_eq!(crc16(body), 0x72FA);
        assert_eq!(&crc_hex(0x72FA), b"72FA");
        assert_eq!(crc16_two(&body[..10], &body[10..]), 0x72FA);
    }
}
