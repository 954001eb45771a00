//! The receiver's replies (`docs/protocol/dc09.md` §9): ACK, `*ACK`, NAK and DUH.
//!
//! A reply echoes the request's sequence, `R`, `L` and `#acct` byte for byte, and invents
//! nothing: a request without `R` gets a reply without `R` (a Pyronix panel declared its
//! path failed when a receiver wrote `None` there). NAK and DUH are always clear; an
//! encrypted request gets an encrypted ACK with a fresh pad and the receiver's time. Replies
//! use the CRC form of the request.
//!
//! Two forms differ between the editions ([`ReplyDialect`], `docs/protocol/dc09-2026.md`):
//! the `*ACK` pad (1–16 bytes in 2013, 16–31 in 2026) and the NAK's account fields (the
//! fixed `R0L0A0` of 2013, the request's `R`, `L` and `#acct` in 2026).

use time::UtcDateTime;

use super::crc::{crc16, crc_hex};
use super::crypto::{self, Key, PadRule};
use super::dc09::{AccountField, CrcForm, Header};
use super::timestamp;

/// Which edition's reply forms a panel gets where DC-09-2013 and DC-09-2026 differ.
/// Written `"2013"` or `"2026"` in configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub enum ReplyDialect {
    /// What panels in the field accept: the default.
    #[default]
    Dc2013,
    Dc2026,
}

impl ReplyDialect {
    pub const fn as_str(self) -> &'static str {
        match self {
            ReplyDialect::Dc2013 => "2013",
            ReplyDialect::Dc2026 => "2026",
        }
    }

    /// `"2013"` or `"2026"`.
    pub fn parse(text: &str) -> Option<ReplyDialect> {
        match text.trim() {
            "2013" => Some(ReplyDialect::Dc2013),
            "2026" => Some(ReplyDialect::Dc2026),
            _ => None,
        }
    }

    /// The `*ACK` pad rule of this edition.
    pub const fn pad_rule(self) -> PadRule {
        match self {
            ReplyDialect::Dc2013 => PadRule::Dc2013,
            ReplyDialect::Dc2026 => PadRule::Dc2026,
        }
    }
}

/// Read from `"2013"`, `"2026"`, or the bare numbers 2013 and 2026.
impl<'de> serde::Deserialize<'de> for ReplyDialect {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<ReplyDialect, D::Error> {
        struct Edition;
        impl serde::de::Visitor<'_> for Edition {
            type Value = ReplyDialect;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("\"2013\" or \"2026\"")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<ReplyDialect, E> {
                ReplyDialect::parse(v)
                    .ok_or_else(|| E::invalid_value(serde::de::Unexpected::Str(v), &self))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<ReplyDialect, E> {
                self.visit_str(&v.to_string())
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<ReplyDialect, E> {
                self.visit_str(&v.to_string())
            }
        }
        d.deserialize_any(Edition)
    }
}

impl serde::Serialize for ReplyDialect {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// Which reply to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyKind {
    Ack,
    Nak,
    Duh,
}

impl ReplyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ReplyKind::Ack => "ACK",
            ReplyKind::Nak => "NAK",
            ReplyKind::Duh => "DUH",
        }
    }
}

/// Wraps `body` as a frame: LF, CRC, `0LLL`, body, CR, appended to `out`.
pub fn write_frame(form: CrcForm, body: &[u8], out: &mut Vec<u8>) {
    let frame = FrameStart::open(form, out);
    out.extend_from_slice(body);
    frame.close(out);
}

/// A frame being written straight into the output: its head (CRC and length) is filled
/// in once the body after it is complete. Replies are built this way rather than in a
/// body buffer of their own, which cost an allocation and a copy per reply.
struct FrameStart {
    form: CrcForm,
    /// Where the CRC goes (just after the LF).
    head: usize,
    /// Where the body starts.
    body: usize,
}

impl FrameStart {
    fn open(form: CrcForm, out: &mut Vec<u8>) -> FrameStart {
        out.push(b'\n');
        let head = out.len();
        // Placeholders for the CRC (4 hex digits or 2 bytes) and the `0LLL` length.
        match form {
            CrcForm::Ascii => out.extend_from_slice(b"00000000"),
            CrcForm::Binary => out.extend_from_slice(&[0, 0, b'0', b'0', b'0', b'0']),
        }
        FrameStart {
            form,
            head,
            body: out.len(),
        }
    }

    fn close(self, out: &mut Vec<u8>) {
        let body = out.get(self.body..).unwrap_or_default();
        let crc = crc16(body);
        // Bodies built here are far below 0xFFF; the mask keeps the field three digits
        // even if that ever changed, instead of writing a malformed length.
        let len = (body.len() & 0xFFF) as u16;
        let mut digits = [0u8; 4];
        super::hex::write_u16_upper(len, &mut digits);
        let head = out.get_mut(self.head..self.body).unwrap_or_default();
        match (self.form, head) {
            (CrcForm::Ascii, [c @ .., l0, l1, l2, l3]) => {
                c.copy_from_slice(&crc_hex(crc));
                [*l0, *l1, *l2, *l3] = digits;
            }
            (CrcForm::Binary, [c @ .., l0, l1, l2, l3]) => {
                c.copy_from_slice(&crc.to_be_bytes());
                [*l0, *l1, *l2, *l3] = digits;
            }
            _ => {}
        }
        out.push(b'\r');
    }
}

/// Writes the echoed header part after the token: seq, `R…` if present, `L…`, account.
fn write_echo(h: &Header<'_>, body: &mut Vec<u8>) {
    body.extend_from_slice(h.seq.as_bytes());
    if let Some(r) = h.receiver {
        body.push(b'R');
        body.extend_from_slice(r.as_bytes());
    }
    if h.has_line {
        body.push(b'L');
        body.extend_from_slice(h.line.as_bytes());
    }
    match h.account {
        AccountField::Number(a) => {
            body.push(b'#');
            body.extend_from_slice(a.as_bytes());
        }
        AccountField::Placeholder => body.extend_from_slice(b"A0"),
        AccountField::Missing => {}
    }
}

/// A clear ACK (or DUH: same shape, other token).
fn clear_reply(token: &[u8], h: &Header<'_>, form: CrcForm, out: &mut Vec<u8>) {
    out.reserve(64);
    let frame = FrameStart::open(form, out);
    out.push(b'"');
    out.extend_from_slice(token);
    out.push(b'"');
    write_echo(h, out);
    out.extend_from_slice(b"[]");
    frame.close(out);
}

/// `"ACK"seq[R…]L…#acct[]`.
pub fn ack(h: &Header<'_>, form: CrcForm, out: &mut Vec<u8>) {
    clear_reply(b"ACK", h, form, out);
}

/// `"DUH"seq[R…]L…#acct[]`: an otherwise valid frame the receiver cannot process.
pub fn duh(h: &Header<'_>, form: CrcForm, out: &mut Vec<u8>) {
    clear_reply(b"DUH", h, form, out);
}

/// `"*ACK"seq[R…]L…#acct[` + HEX(AES(pad | `]` `_`time)): the answer to an encrypted
/// request, with the DC-09-2013 pad. `random` supplies the pad.
pub fn ack_encrypted(
    h: &Header<'_>,
    form: CrcForm,
    key: &Key,
    now: UtcDateTime,
    random: &[u8; crypto::MAX_PAD],
    out: &mut Vec<u8>,
) {
    ack_encrypted_in(ReplyDialect::Dc2013, h, form, key, now, random, out);
}

/// [`ack_encrypted`] with the pad of `dialect`'s edition.
pub fn ack_encrypted_in(
    dialect: ReplyDialect,
    h: &Header<'_>,
    form: CrcForm,
    key: &Key,
    now: UtcDateTime,
    random: &[u8; crypto::MAX_PAD],
    out: &mut Vec<u8>,
) {
    out.reserve(160);
    let frame = FrameStart::open(form, out);
    out.extend_from_slice(b"\"*ACK\"");
    write_echo(h, out);
    out.push(b'[');
    let mut content = Vec::with_capacity(24);
    content.push(b']');
    timestamp::write(now, &mut content);
    crypto::seal_with(dialect.pad_rule(), key, &content, random, out);
    frame.close(out);
}

/// `"NAK"0000R0L0A0[]_time`: the fixed DC-09-2013 NAK carrying the receiver's clock, so a
/// panel can resynchronise.
pub fn nak(form: CrcForm, now: UtcDateTime, out: &mut Vec<u8>) {
    let frame = FrameStart::open(form, out);
    out.extend_from_slice(b"\"NAK\"0000R0L0A0[]");
    timestamp::write(now, out);
    frame.close(out);
}

/// Whom a NAK answers: the request's `R`, `L` and account, as far as they are known (a
/// frame refused before its account was read has none).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NakTo<'a> {
    pub receiver: Option<&'a str>,
    pub line: Option<&'a str>,
    pub account: Option<&'a str>,
}

impl<'a> NakTo<'a> {
    pub fn of(h: &Header<'a>) -> NakTo<'a> {
        NakTo {
            receiver: h.receiver,
            line: h.has_line.then_some(h.line),
            account: h.account.number(),
        }
    }
}

/// The NAK of `dialect`: [`nak`] for 2013; for 2026 `"NAK"0000[R…]L…#acct[]_time`, the
/// request's receiver (when it had one), line and account, so that a panel that reads
/// the account field (one built on siadc09 does) takes the NAK and its clock. A missing
/// line or account is written `0`.
pub fn nak_in(
    dialect: ReplyDialect,
    to: &NakTo<'_>,
    form: CrcForm,
    now: UtcDateTime,
    out: &mut Vec<u8>,
) {
    if dialect == ReplyDialect::Dc2013 {
        return nak(form, now, out);
    }
    let nonempty = |v: Option<&str>| v.filter(|v| !v.is_empty()).unwrap_or("0").to_string();
    let frame = FrameStart::open(form, out);
    out.extend_from_slice(b"\"NAK\"0000");
    if let Some(r) = to.receiver {
        out.push(b'R');
        out.extend_from_slice(r.as_bytes());
    }
    out.push(b'L');
    out.extend_from_slice(nonempty(to.line).as_bytes());
    out.push(b'#');
    out.extend_from_slice(nonempty(to.account).as_bytes());
    out.extend_from_slice(b"[]");
    timestamp::write(now, out);
    frame.close(out);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::dc09::parse_frame;
    use time::macros::utc_datetime;

    fn header_of(raw: &[u8]) -> (Header<'_>, CrcForm) {
        let f = parse_frame(raw).unwrap();
        (f.header, f.crc_form)
    }

    #[test]
    fn worked_replies() {
        let w1 = b"\n72FA0039\"SIA-DCS\"0001L0#1234[#1234|Nri1/BA01]_12:00:00,01-15-2024\r";
        let (h, form) = header_of(w1);
        let mut out = Vec::new();
        ack(&h, form, &mut out);
        assert_eq!(out, b"\n1BC10012\"ACK\"0001L0#1234[]\r");
        out.clear();
        duh(&h, form, &mut out);
        assert_eq!(out, b"\n251F0012\"DUH\"0001L0#1234[]\r");

        let w2 = b"\n7172003D\"ADM-CID\"0002R1L1#1234[#1234|1130 01 015]_12:00:05,01-15-2024\r";
        let (h, form) = header_of(w2);
        out.clear();
        ack(&h, form, &mut out);
        assert_eq!(out, b"\nD6730014\"ACK\"0002R1L1#1234[]\r");

        out.clear();
        nak(CrcForm::Ascii, utc_datetime!(2024-01-15 12:00:30), &mut out);
        assert_eq!(out, b"\n65ED0025\"NAK\"0000R0L0A0[]_12:00:30,01-15-2024\r");
    }

    #[test]
    fn dialects_differ_in_nak_and_pad() {
        let raw = b"\n7172003D\"ADM-CID\"0002R1L1#1234[#1234|1130 01 015]_12:00:05,01-15-2024\r";
        let (h, form) = header_of(raw);
        let now = utc_datetime!(2024-01-15 12:00:30);
        let mut out = Vec::new();
        nak_in(ReplyDialect::Dc2013, &NakTo::of(&h), form, now, &mut out);
        assert_eq!(out, b"\n65ED0025\"NAK\"0000R0L0A0[]_12:00:30,01-15-2024\r");
        out.clear();
        nak_in(ReplyDialect::Dc2026, &NakTo::of(&h), form, now, &mut out);
        let nak = parse_frame(&out).unwrap();
        assert_eq!(nak.header.token, "NAK");
        assert_eq!(nak.header.seq, "0000");
        assert_eq!(nak.header.receiver, Some("1"));
        assert_eq!(nak.header.line, "1");
        assert_eq!(nak.header.account, AccountField::Number("1234"));
        assert!(out.ends_with(b"#1234[]_12:00:30,01-15-2024\r"));
        out.clear();
        nak_in(ReplyDialect::Dc2026, &NakTo::default(), form, now, &mut out);
        assert!(
            out.ends_with(b"\"NAK\"0000L0#0[]_12:00:30,01-15-2024\r"),
            "{out:?}"
        );

        let w4 = b"\n9C080076\"*SIA-DCS\"0004L0#1234[3D2C28BC2387FA69EAC04FD24643985F1C4769E0CBCF6A63001FC729DF6B20FFAAE3C1B0528C26A70F4230361354FA2F\r";
        let (h, form) = header_of(w4);
        let key = Key::from_hex("000102030405060708090A0B0C0D0E0F").unwrap();
        for (dialect, pad) in [(ReplyDialect::Dc2013, 10), (ReplyDialect::Dc2026, 26)] {
            out.clear();
            ack_encrypted_in(dialect, &h, form, &key, now, &[0x42; 16], &mut out);
            let reply = parse_frame(&out).unwrap();
            let mut scratch = Vec::new();
            let c = reply.open(Some(&key), &mut scratch).unwrap();
            assert_eq!(c.pad_len, Some(pad));
            assert_eq!(c.timestamp, Some(now));
        }
        assert_eq!(ReplyDialect::parse("2026"), Some(ReplyDialect::Dc2026));
        assert_eq!(ReplyDialect::parse("2021"), None);
        #[derive(serde::Deserialize)]
        struct T {
            a: ReplyDialect,
            b: ReplyDialect,
        }
        let t: T = toml::from_str("a = \"2026\"\nb = 2013").unwrap();
        assert_eq!((t.a, t.b), (ReplyDialect::Dc2026, ReplyDialect::Dc2013));
        assert!(toml::from_str::<T>("a = \"2021\"\nb = 2013").is_err());
    }

    #[test]
    fn real_pyronix_ack() {
        let (h, form) = header_of(b"\nEA740027\"NULL\"0000L0#1409[]_20:38:07,08-27-2026\r");
        let mut out = Vec::new();
        ack(&h, form, &mut out);
        assert_eq!(out, b"\n59890012\"ACK\"0000L0#1409[]\r");
    }

    #[test]
    fn encrypted_ack_opens_with_the_same_key() {
        let w4 = b"\n9C080076\"*SIA-DCS\"0004L0#1234[3D2C28BC2387FA69EAC04FD24643985F1C4769E0CBCF6A63001FC729DF6B20FFAAE3C1B0528C26A70F4230361354FA2F\r";
        let (h, form) = header_of(w4);
        let key = Key::from_hex("000102030405060708090A0B0C0D0E0F").unwrap();
        let mut out = Vec::new();
        ack_encrypted(
            &h,
            form,
            &key,
            utc_datetime!(2024-01-15 12:00:11),
            &[0x42; 16],
            &mut out,
        );
        let reply = parse_frame(&out).unwrap();
        assert_eq!(reply.header.token, "ACK");
        assert!(reply.header.encrypted);
        let mut scratch = Vec::new();
        let c = reply.open(Some(&key), &mut scratch).unwrap();
        assert_eq!(c.data, b"");
        assert_eq!(c.timestamp, Some(utc_datetime!(2024-01-15 12:00:11)));
        assert_eq!(c.pad_len, Some(10));
    }

    /// `body` framed with a binary CRC, written out by hand.
    fn binary_frame(body: &[u8], len: &[u8; 4]) -> Vec<u8> {
        let mut raw = vec![b'\n'];
        raw.extend_from_slice(&crc16(body).to_be_bytes());
        raw.extend_from_slice(len);
        raw.extend_from_slice(body);
        raw.push(b'\r');
        raw
    }

    #[test]
    fn binary_crc_reply_keeps_form() {
        let raw = binary_frame(b"\"NULL\"0003L0#1234[]", b"0013");
        let (h, form) = header_of(&raw);
        let mut out = Vec::new();
        ack(&h, form, &mut out);
        let reply = parse_frame(&out).unwrap();
        assert_eq!(reply.crc_form, CrcForm::Binary);
        assert_eq!(reply.header.token, "ACK");
        assert_eq!(out, binary_frame(b"\"ACK\"0003L0#1234[]", b"0012"));
    }

    #[test]
    fn replies_append_after_what_is_there() {
        let (h, form) = header_of(b"\nEA740027\"NULL\"0000L0#1409[]_20:38:07,08-27-2026\r");
        let mut out = b"earlier".to_vec();
        ack(&h, form, &mut out);
        assert_eq!(out, b"earlier\n59890012\"ACK\"0000L0#1409[]\r");
        let mut out = b"x".to_vec();
        write_frame(CrcForm::Ascii, b"\"ACK\"0000L0#1409[]", &mut out);
        assert_eq!(out, b"x\n59890012\"ACK\"0000L0#1409[]\r");
    }
}
