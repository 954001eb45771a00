//! Building frames as a panel does: for `tocsin send`, the load generator and tests.
//!
//! The receiver never sends event frames; this is the other side of [`super::dc09`], kept
//! in the protocol layer so that both directions share one definition of the layout.

use time::UtcDateTime;

use super::crypto::{self, Key, MAX_PAD};
use super::dc09::CrcForm;
use super::response::write_frame;
use super::timestamp;

/// The fields of an event frame.
#[derive(Debug, Clone, Copy)]
pub struct FrameSpec<'a> {
    /// Without `*`: `SIA-DCS`, `ADM-CID`, `NULL`.
    pub token: &'a str,
    pub seq: &'a str,
    pub receiver: Option<&'a str>,
    pub line: &'a str,
    pub account: &'a str,
    /// Inside the data block's brackets.
    pub data: &'a [u8],
    /// Extended blocks as (identifier, value).
    pub ext: &'a [(u8, &'a [u8])],
    pub timestamp: Option<UtcDateTime>,
    pub form: CrcForm,
}

/// Appends the frame to `out`, encrypted with `key` when given (`random` lends the pad).
/// An encrypted frame always carries a timestamp; without one, `timestamp` must be set.
pub fn encode(spec: &FrameSpec<'_>, key: Option<&Key>, random: &[u8; MAX_PAD], out: &mut Vec<u8>) {
    let mut body = Vec::with_capacity(64 + spec.data.len() * 2);
    body.push(b'"');
    if key.is_some() {
        body.push(b'*');
    }
    body.extend_from_slice(spec.token.as_bytes());
    body.push(b'"');
    body.extend_from_slice(spec.seq.as_bytes());
    if let Some(r) = spec.receiver {
        body.push(b'R');
        body.extend_from_slice(r.as_bytes());
    }
    body.push(b'L');
    body.extend_from_slice(spec.line.as_bytes());
    body.push(b'#');
    body.extend_from_slice(spec.account.as_bytes());
    body.push(b'[');
    let mut content = Vec::with_capacity(48 + spec.data.len());
    content.extend_from_slice(spec.data);
    content.push(b']');
    for (id, value) in spec.ext {
        content.push(b'[');
        content.push(*id);
        content.extend_from_slice(value);
        content.push(b']');
    }
    if let Some(t) = spec.timestamp {
        timestamp::write(t, &mut content);
    }
    match key {
        Some(k) => crypto::seal(k, &content, random, &mut body),
        None => body.extend_from_slice(&content),
    }
    write_frame(spec.form, &body, out);
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::utc_datetime;

    #[test]
    fn builds_worked_example_w1() {
        let spec = FrameSpec {
            token: "SIA-DCS",
            seq: "0001",
            receiver: None,
            line: "0",
            account: "1234",
            data: b"#1234|Nri1/BA01",
            ext: &[],
            timestamp: Some(utc_datetime!(2024-01-15 12:00:00)),
            form: CrcForm::Ascii,
        };
        let mut out = Vec::new();
        encode(&spec, None, &[0; 16], &mut out);
        assert_eq!(
            out,
            b"\n72FA0039\"SIA-DCS\"0001L0#1234[#1234|Nri1/BA01]_12:00:00,01-15-2024\r"
        );
    }
}
