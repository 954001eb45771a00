//! A DC-09 frame cut into its fields (`docs/protocol/dc09.md` §3), with the CRC and length
//! checked (§4) and the vendor deviations of §12 tolerated and named.
//!
//! ```text
//! <LF> <CRC:4> <0LLL:4> "<id>" <seq> [R<rcvr>] L<pref> #<acct> [ <data> ] {[<x>]} [_<ts>] <CR>
//!                       \____________________ body: covered by CRC and LLL ____________/
//! ```
//!
//! Parsing is two-step, like a TLS record: [`parse_frame`] checks the envelope and the
//! header and borrows the payload; [`Frame::open`] then reads the payload, decrypting it
//! into a buffer the caller lends when the frame is encrypted. Nothing here allocates for
//! a clear frame except the list of extended blocks.

use nom::bytes::complete::{tag, take_while_m_n};
use nom::combinator::opt;
use nom::{IResult, Parser};
use time::UtcDateTime;

use super::crc::{crc16, crc16_two};
use super::crypto::{self, DecryptError, Key};
use super::ext;
use super::hex;
use super::text::TextEncoding;
use super::timestamp;

/// Longest body a frame can declare (`0LLL` is three hex digits).
pub const MAX_BODY_LEN: usize = 0xFFF;
/// Longest frame on the wire: LF, CRC, length, body, CR, plus slack for the NULs and junk
/// some senders leave after the CR.
pub const MAX_FRAME_LEN: usize = 1 + 4 + 4 + MAX_BODY_LEN + 1 + 64;
/// Longest ID token accepted; real ones are 3–8 characters.
pub const MAX_TOKEN_LEN: usize = 32;
/// Most extended-data blocks kept from one frame.
pub const MAX_EXT_BLOCKS: usize = 64;

/// How the CRC is written on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CrcForm {
    /// Four ASCII hex digits (the standard).
    Ascii,
    /// Two raw bytes, big-endian (Lupusec XT, Trikdis "DC-09_2012" mode). Replies use the
    /// same form.
    Binary,
}

/// A departure from the standard that a known sender makes and that tocsin accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u16)]
pub enum Deviation {
    BinaryCrc = 1 << 0,
    CrInCrc = 1 << 1,
    DecimalLength = 1 << 2,
    EmptyLine = 1 << 3,
    LeadingGarbage = 1 << 4,
    LowercaseHex = 1 << 5,
    NoAccount = 1 << 6,
    NoLine = 1 << 10,
    NoPadTerminator = 1 << 7,
    TrailingGarbage = 1 << 8,
    TrailingNul = 1 << 9,
}

impl Deviation {
    /// In alphabetical order of their names, the order they are listed in output.
    pub const ALL: [Deviation; 11] = [
        Deviation::BinaryCrc,
        Deviation::CrInCrc,
        Deviation::DecimalLength,
        Deviation::EmptyLine,
        Deviation::LeadingGarbage,
        Deviation::LowercaseHex,
        Deviation::NoAccount,
        Deviation::NoLine,
        Deviation::NoPadTerminator,
        Deviation::TrailingGarbage,
        Deviation::TrailingNul,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Deviation::BinaryCrc => "binary_crc",
            Deviation::CrInCrc => "cr_in_crc",
            Deviation::LowercaseHex => "lowercase_hex",
            Deviation::TrailingNul => "trailing_nul",
            Deviation::LeadingGarbage => "leading_garbage",
            Deviation::EmptyLine => "empty_line",
            Deviation::NoAccount => "no_account",
            Deviation::NoLine => "no_line",
            Deviation::NoPadTerminator => "no_pad_terminator",
            Deviation::DecimalLength => "decimal_length",
            Deviation::TrailingGarbage => "trailing_garbage",
        }
    }
}

/// A small set of [`Deviation`]s.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Deviations(u16);

impl Deviations {
    pub fn insert(&mut self, d: Deviation) {
        self.0 |= d as u16;
    }
    pub fn contains(self, d: Deviation) -> bool {
        self.0 & d as u16 != 0
    }
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
    pub fn iter(self) -> impl Iterator<Item = Deviation> {
        Deviation::ALL
            .into_iter()
            .filter(move |d| self.contains(*d))
    }
}

/// The account field of the header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountField<'a> {
    /// `#acct`, kept as the exact string (`008312` is not `8312`).
    Number(&'a str),
    /// `A0`: the fixed placeholder of a NAK.
    Placeholder,
    /// No account in the header (a deviation; the data block may carry one).
    Missing,
}

impl<'a> AccountField<'a> {
    pub fn number(&self) -> Option<&'a str> {
        match self {
            AccountField::Number(n) => Some(n),
            _ => None,
        }
    }
}

/// The header of a frame: everything a reply must echo.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header<'a> {
    /// The ID token without the `*` (`SIA-DCS`, `ADM-CID`, `NULL`, …).
    pub token: &'a str,
    pub encrypted: bool,
    pub seq: &'a str,
    /// Receiver number digits without the `R`; `None` when the frame has no `R` field, so
    /// that a reply never invents one.
    pub receiver: Option<&'a str>,
    /// Line (account prefix) digits without the `L`; may be empty.
    pub line: &'a str,
    /// Whether the frame had an `L` field at all (dc09_spt omits it when no line is set);
    /// a reply echoes it only if it was there.
    pub has_line: bool,
    pub account: AccountField<'a>,
}

/// A frame whose envelope checked out: CRC and length agree with the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame<'a> {
    pub crc_form: CrcForm,
    pub header: Header<'a>,
    /// The bytes from `"` to the byte before CR: what CRC and length cover.
    pub body: &'a [u8],
    /// After the `[` that opens the data block, to the end of the body: clear content or
    /// hex ciphertext.
    pub payload: &'a [u8],
    pub deviations: Deviations,
    /// `payload` as text when the body is all ASCII (every conforming frame is), so that
    /// the content need not be validated again slice by slice.
    payload_text: Option<&'a str>,
}

/// Why bytes are not a frame tocsin can accept. Each maps to one outcome label.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("no LF start byte")]
    NoStart,
    #[error("frame is {len} bytes, more than the {max} allowed")]
    TooLong { len: usize, max: usize },
    #[error("malformed CRC or length field")]
    Envelope,
    #[error("no CR end byte")]
    NoEnd,
    #[error("length field says {declared} bytes, body has {actual}")]
    Length { declared: usize, actual: usize },
    #[error("CRC sent {sent:04X}, computed {computed:04X}")]
    Crc { sent: u16, computed: u16 },
    #[error("header syntax: {0}")]
    Syntax(&'static str),
}

impl FrameError {
    /// The short name used in metrics labels and `tocsin decode` output.
    pub fn kind(&self) -> &'static str {
        match self {
            FrameError::NoStart | FrameError::NoEnd | FrameError::Envelope => "framing",
            FrameError::TooLong { .. } => "too_long",
            FrameError::Length { .. } => "length",
            FrameError::Crc { .. } => "crc",
            FrameError::Syntax(_) => "syntax",
        }
    }
}

/// Why the payload of a well-formed frame could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContentError {
    #[error("frame is encrypted and no key is known for it")]
    NoKey,
    #[error("decryption failed: {0}")]
    Decrypt(#[from] DecryptError),
    #[error("encrypted content is malformed after decryption (wrong key?): {0}")]
    DecryptedSyntax(&'static str),
    #[error("content syntax: {0}")]
    Syntax(&'static str),
    #[error("timestamp is not a valid time")]
    Timestamp,
    /// DC-09 requires a timestamp in every encrypted message: decrypted content without
    /// one is what a wrong key's random plaintext looks like when it happens to hold a
    /// `]`, so it counts as a decryption failure.
    #[error("encrypted content has no timestamp after decryption (wrong key?)")]
    MissingTimestamp,
}

impl ContentError {
    pub fn kind(&self) -> &'static str {
        match self {
            ContentError::NoKey => "no_key",
            ContentError::Decrypt(_)
            | ContentError::DecryptedSyntax(_)
            | ContentError::MissingTimestamp => "decrypt",
            ContentError::Syntax(_) => "syntax",
            ContentError::Timestamp => "timestamp",
        }
    }
}

/// One extended-data block `[X…]` (§7), the identifier kept even when unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExtBlock<'a> {
    pub id: u8,
    pub value: &'a [u8],
    /// How the frame's text is read ([`Content::text_encoding`]).
    pub encoding: Option<TextEncoding>,
}

impl<'a> ExtBlock<'a> {
    /// The whole block without brackets (`X019E12.3456`). A key block is `K*`: its value
    /// is never given out (`docs/protocol/dc09-2026.md`).
    pub fn text(&self) -> String {
        let value = if self.id == ext::KEY {
            std::borrow::Cow::Borrowed(ext::KEY_MASK)
        } else {
            self.value_text()
        };
        let mut s = String::with_capacity(1 + value.len());
        s.push(char::from(self.id));
        s.push_str(&value);
        s
    }

    /// The value as text, in the frame's encoding.
    pub fn value_text(&self) -> std::borrow::Cow<'a, str> {
        super::text::decode_as(self.encoding, self.value)
    }
}

/// The readable part of a frame: data block, extended blocks and timestamp.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Content<'c> {
    /// Inside the data block's brackets.
    pub data: &'c [u8],
    pub ext: Vec<ExtBlock<'c>>,
    pub timestamp: Option<UtcDateTime>,
    /// The text `timestamp` was read from, without its `_`.
    timestamp_text: Option<&'c [u8]>,
    /// Pad length when the frame was encrypted.
    pub pad_len: Option<usize>,
    pub deviations: Deviations,
    /// `data` as text when the frame was all ASCII.
    data_ascii: Option<&'c str>,
    /// How the text of the data and extended blocks is read: `None` when it is all ASCII,
    /// else decided once for the frame ([`TextEncoding::of`]).
    pub text_encoding: Option<TextEncoding>,
}

impl<'c> Content<'c> {
    /// The data block as text; borrowed from the frame when it is ASCII, which it is but
    /// for a few vendors' names.
    pub fn data_text(&self) -> std::borrow::Cow<'c, str> {
        match self.data_ascii {
            Some(t) => std::borrow::Cow::Borrowed(t),
            None => super::text::decode_as(self.text_encoding, self.data),
        }
    }

    /// Whether a K block (an encryption key) is among the extended blocks.
    pub fn has_key_block(&self) -> bool {
        self.ext.iter().any(|b| b.id == ext::KEY)
    }

    /// Decides how the text is read, for content that is not known to be ASCII. `P`
    /// (programming data) is Windows-1252 by definition in both editions, so it neither
    /// takes part in the decision nor follows it.
    fn decide_encoding(&mut self) {
        let text_blocks = self.ext.iter().filter(|b| b.id != ext::PROGRAMMING_DATA);
        let fields = std::iter::once(self.data).chain(text_blocks.map(|b| b.value));
        self.text_encoding = TextEncoding::of(fields);
        for b in &mut self.ext {
            b.encoding = if b.id == ext::PROGRAMMING_DATA {
                Some(TextEncoding::Windows1252)
            } else {
                self.text_encoding
            };
        }
    }

    /// The panel's time as RFC 3339 (`2024-01-15T12:00:00Z`), rearranged from the text of
    /// a timestamp that parsed.
    pub fn timestamp_rfc3339(&self) -> Option<[u8; 20]> {
        self.timestamp_text
            .and_then(super::timestamp::rfc3339_of_text)
    }
}

/// Cuts `input` — one frame as the codec delivered it, or one UDP datagram — into a
/// [`Frame`].
pub fn parse_frame(input: &[u8]) -> Result<Frame<'_>, FrameError> {
    if input.len() > MAX_FRAME_LEN + 64 {
        return Err(FrameError::TooLong {
            len: input.len(),
            max: MAX_FRAME_LEN,
        });
    }
    let mut deviations = Deviations::default();
    let start = input
        .iter()
        .position(|&b| b == b'\n')
        .ok_or(FrameError::NoStart)?;
    if start > 0 {
        deviations.insert(Deviation::LeadingGarbage);
    }
    let after_lf = input.get(start + 1..).ok_or(FrameError::NoStart)?;
    let envelope = envelope(after_lf, &mut deviations)?;
    let body = envelope.body;

    let computed = crc16(body);
    if envelope.cr_in_length {
        // The length counted the CR. That is the ELDES variant only if the CRC covers the
        // CR too; a CRC of the bare body means the length is simply one too large.
        let with_cr = crc16_two(body, b"\r");
        if with_cr == envelope.crc {
            deviations.insert(Deviation::CrInCrc);
        } else if computed == envelope.crc {
            return Err(FrameError::Length {
                declared: body.len() + 1,
                actual: body.len(),
            });
        } else {
            return Err(FrameError::Crc {
                sent: envelope.crc,
                computed,
            });
        }
    } else if computed != envelope.crc {
        if crc16_two(body, b"\r") == envelope.crc {
            deviations.insert(Deviation::CrInCrc);
        } else {
            return Err(FrameError::Crc {
                sent: envelope.crc,
                computed,
            });
        }
    }

    // One ASCII check of the whole body lets the header and the content be read as text
    // without validating each field on its own; a body that is not ASCII, or a header the
    // quick reading does not take, goes through the full parser, which also says why.
    let body_text = super::text::ascii_str(body);
    let (payload, payload_text, header) = match body_text.and_then(ascii_header::header) {
        Some((rest, header)) => (rest.as_bytes(), Some(rest), header),
        None => {
            let (payload, header) = header(body).map_err(|e| match e {
                nom::Err::Error(e) | nom::Err::Failure(e) => {
                    FrameError::Syntax(syntax_reason(e.code))
                }
                nom::Err::Incomplete(_) => FrameError::Syntax("truncated header"),
            })?;
            (payload, None, header)
        }
    };
    if !header.has_line {
        deviations.insert(Deviation::NoLine);
    } else if header.line.is_empty() {
        deviations.insert(Deviation::EmptyLine);
    }
    if header.account == AccountField::Missing {
        deviations.insert(Deviation::NoAccount);
    }
    if has_lowercase_hex(header.receiver.unwrap_or_default())
        || has_lowercase_hex(header.line)
        || (header.encrypted && has_lowercase_hex_bytes(payload))
    {
        deviations.insert(Deviation::LowercaseHex);
    }
    Ok(Frame {
        crc_form: envelope.crc_form,
        header,
        body,
        payload,
        deviations,
        payload_text,
    })
}

struct Envelope<'a> {
    crc_form: CrcForm,
    crc: u16,
    body: &'a [u8],
    /// The sender counts the CR in the length (ELDES), so the CRC probably covers it too.
    cr_in_length: bool,
}

/// Reads CRC and length, finds the body and the CR, and classifies what trails the CR.
fn envelope<'a>(i: &'a [u8], deviations: &mut Deviations) -> Result<Envelope<'a>, FrameError> {
    // ASCII form: 4 hex CRC digits, `0`, 3 hex length digits, `"`. Binary form: 2 raw CRC
    // bytes, `0`, 3 hex, `"` (§12). The ASCII test goes first; a binary CRC whose bytes
    // happen to be hex digits would need `0LLL"` at offset 4 as well, which the binary
    // layout puts at offset 2.
    let (crc_form, crc, len_field, body_start) = match i {
        [c0, c1, c2, c3, b'0', l1, l2, l3, b'"', ..]
            if [c0, c1, c2, c3].iter().all(|b| b.is_ascii_hexdigit()) =>
        {
            let crc = hex::parse_u16(&[*c0, *c1, *c2, *c3]).ok_or(FrameError::Envelope)?;
            if [c0, c1, c2, c3].iter().any(|b| b.is_ascii_lowercase()) {
                deviations.insert(Deviation::LowercaseHex);
            }
            (CrcForm::Ascii, crc, [*l1, *l2, *l3], 8)
        }
        [c0, c1, b'0', l1, l2, l3, b'"', ..] => {
            deviations.insert(Deviation::BinaryCrc);
            (
                CrcForm::Binary,
                u16::from_be_bytes([*c0, *c1]),
                [*l1, *l2, *l3],
                6,
            )
        }
        _ => return Err(FrameError::Envelope),
    };
    let declared = usize::from(hex::parse_u16(&len_field).ok_or(FrameError::Envelope)?);
    if len_field.iter().any(|b| b.is_ascii_lowercase()) {
        deviations.insert(Deviation::LowercaseHex);
    }
    let rest = i.get(body_start..).ok_or(FrameError::Envelope)?;

    // The declared length says where the CR should be; when it isn't there, the first CR
    // decides (a clear body never contains one and ciphertext is hex), and the length is
    // then checked against what was found.
    let mut cr_in_length = false;
    let body_len = if rest.get(declared) == Some(&b'\r') {
        declared
    } else if declared > 0 && rest.get(declared - 1) == Some(&b'\r') {
        cr_in_length = true;
        declared - 1
    } else {
        let found = rest
            .iter()
            .position(|&b| b == b'\r')
            .ok_or(FrameError::NoEnd)?;
        let decimal = std::str::from_utf8(&len_field)
            .ok()
            .and_then(|s| s.parse::<usize>().ok());
        if decimal == Some(found) {
            deviations.insert(Deviation::DecimalLength);
        } else {
            return Err(FrameError::Length {
                declared,
                actual: found,
            });
        }
        found
    };
    let (body, tail) = rest.split_at_checked(body_len).ok_or(FrameError::NoEnd)?;
    // `tail` starts with the CR.
    let after_cr = tail.get(1..).unwrap_or_default();
    if !after_cr.is_empty() {
        if after_cr.iter().all(|&b| b == 0) {
            deviations.insert(Deviation::TrailingNul);
        } else {
            deviations.insert(Deviation::TrailingGarbage);
        }
    }
    Ok(Envelope {
        crc_form,
        crc,
        body,
        cr_in_length,
    })
}

type ParseResult<'a, T> = IResult<&'a [u8], T>;

fn ascii(b: &[u8]) -> &str {
    // Callers only pass slices whose bytes were checked to be ASCII.
    super::text::ascii_str(b).unwrap_or_default()
}

/// `"id"`: the ID token, with `*` marking encryption (§6).
fn id_token(i: &[u8]) -> ParseResult<'_, (bool, &str)> {
    let (i, _) = tag(&b"\""[..]).parse(i)?;
    let (i, star) = opt(tag(&b"*"[..])).parse(i)?;
    let (i, token) =
        take_while_m_n(1, MAX_TOKEN_LEN, |b: u8| b.is_ascii_graphic() && b != b'"').parse(i)?;
    let (i, _) = tag(&b"\""[..]).parse(i)?;
    Ok((i, (star.is_some(), ascii(token))))
}

/// `seq`: four decimal digits (§8); shorter runs are accepted and echoed as sent.
fn seq(i: &[u8]) -> ParseResult<'_, &str> {
    let (i, digits) = take_while_m_n(1, 4, |b: u8| b.is_ascii_digit()).parse(i)?;
    Ok((i, ascii(digits)))
}

/// `R<rcvr>`: optional receiver number, hex digits.
fn receiver_no(i: &[u8]) -> ParseResult<'_, Option<&str>> {
    let (i, r) = opt((
        tag(&b"R"[..]),
        take_while_m_n(0, 6, |b: u8| b.is_ascii_hexdigit()),
    ))
    .parse(i)?;
    Ok((i, r.map(|(_, d)| ascii(d))))
}

/// `L<pref>`: line / account prefix, hex digits, possibly none; the whole field may be
/// missing (a deviation).
fn line_no(i: &[u8]) -> ParseResult<'_, Option<&str>> {
    let (i, l) = opt((
        tag(&b"L"[..]),
        take_while_m_n(0, 6, |b: u8| b.is_ascii_hexdigit()),
    ))
    .parse(i)?;
    Ok((i, l.map(|(_, d)| ascii(d))))
}

/// `#acct` (1–16 alphanumerics), the NAK's `A0`, or nothing.
fn account(i: &[u8]) -> ParseResult<'_, AccountField<'_>> {
    if let Ok((rest, _)) = tag::<_, _, nom::error::Error<&[u8]>>(&b"#"[..]).parse(i) {
        let (rest, acct) = take_while_m_n(1, 16, |b: u8| b.is_ascii_alphanumeric()).parse(rest)?;
        return Ok((rest, AccountField::Number(ascii(acct))));
    }
    if let Ok((rest, _)) = tag::<_, _, nom::error::Error<&[u8]>>(&b"A0"[..]).parse(i) {
        return Ok((rest, AccountField::Placeholder));
    }
    Ok((i, AccountField::Missing))
}

/// The header fields in spec order, up to and including the `[` that opens the data.
fn header(body: &[u8]) -> ParseResult<'_, Header<'_>> {
    let (i, (encrypted, token)) = id_token(body)?;
    let (i, seq) = seq(i)?;
    let (i, receiver) = receiver_no(i)?;
    let (i, line) = line_no(i)?;
    let has_line = line.is_some();
    let mut line = line.unwrap_or_default();
    let (i, mut account) = account(i)?;
    // `L0A0`: hex line digits swallow the NAK's `A0` placeholder; give it back.
    if account == AccountField::Missing {
        if let Some(stripped) = line.strip_suffix("A0") {
            line = stripped;
            account = AccountField::Placeholder;
        }
    }
    let (i, _) = tag(&b"["[..]).parse(i)?;
    Ok((
        i,
        Header {
            token,
            encrypted,
            seq,
            receiver,
            line,
            has_line,
            account,
        },
    ))
}

/// The header read straight off ASCII text, field by field as [`header`] does, for the
/// frames every panel sends. nom's combinators cost more per field than the whole of this;
/// anything this reading does not take (including every error) is left to [`header`], so
/// the two must agree on every header this one accepts (a test checks it).
mod ascii_header {
    use super::{AccountField, Header, MAX_TOKEN_LEN};

    /// Where the reading is in the header text. The text is ASCII, so every byte
    /// position is a char boundary.
    struct Cursor<'a> {
        text: &'a str,
        at: usize,
    }

    impl<'a> Cursor<'a> {
        fn peek(&self) -> Option<u8> {
            self.text.as_bytes().get(self.at).copied()
        }

        /// Consumes `b` if it comes next.
        fn eat(&mut self, b: u8) -> bool {
            let next = self.peek() == Some(b);
            if next {
                self.at += 1;
            }
            next
        }

        /// Consumes `s` if it comes next.
        fn eat_str(&mut self, s: &str) -> bool {
            let next = self
                .text
                .as_bytes()
                .get(self.at..)
                .is_some_and(|rest| rest.starts_with(s.as_bytes()));
            if next {
                self.at += s.len();
            }
            next
        }

        /// Up to `max` bytes satisfying `pred`, which only accepts ASCII.
        fn take_while(&mut self, max: usize, pred: impl Fn(u8) -> bool) -> Option<&'a str> {
            let start = self.at;
            let n = self
                .text
                .as_bytes()
                .get(start..)?
                .iter()
                .take(max)
                .take_while(|&&b| pred(b))
                .count();
            self.at = start + n;
            self.text.get(start..self.at)
        }

        fn rest(&self) -> Option<&'a str> {
            self.text.get(self.at..)
        }
    }

    /// `"id"`, `*` marking encryption.
    fn id_token<'a>(c: &mut Cursor<'a>) -> Option<(bool, &'a str)> {
        if !c.eat(b'"') {
            return None;
        }
        let encrypted = c.eat(b'*');
        let token = c.take_while(MAX_TOKEN_LEN, |b| b.is_ascii_graphic() && b != b'"')?;
        (!token.is_empty() && c.eat(b'"')).then_some((encrypted, token))
    }

    /// `seq`: one to four decimal digits.
    fn seq<'a>(c: &mut Cursor<'a>) -> Option<&'a str> {
        c.take_while(4, |b| b.is_ascii_digit())
            .filter(|s| !s.is_empty())
    }

    /// `R<rcvr>` or `L<pref>`: the marker, then up to six hex digits; `None` without
    /// the marker.
    fn marked_hex<'a>(c: &mut Cursor<'a>, marker: u8) -> Option<Option<&'a str>> {
        if !c.eat(marker) {
            return Some(None);
        }
        c.take_while(6, |b| b.is_ascii_hexdigit()).map(Some)
    }

    fn receiver_no<'a>(c: &mut Cursor<'a>) -> Option<Option<&'a str>> {
        marked_hex(c, b'R')
    }

    fn line_no<'a>(c: &mut Cursor<'a>) -> Option<Option<&'a str>> {
        marked_hex(c, b'L')
    }

    /// `#acct`, `A0`, or nothing.
    fn account<'a>(c: &mut Cursor<'a>) -> Option<AccountField<'a>> {
        if c.eat(b'#') {
            let number = c.take_while(16, |b| b.is_ascii_alphanumeric())?;
            return (!number.is_empty()).then_some(AccountField::Number(number));
        }
        if c.eat_str("A0") {
            return Some(AccountField::Placeholder);
        }
        Some(AccountField::Missing)
    }

    /// The header up to and including the data block's `[`, and the text after it.
    pub(super) fn header(body: &str) -> Option<(&str, Header<'_>)> {
        let mut c = Cursor { text: body, at: 0 };
        let (encrypted, token) = id_token(&mut c)?;
        let seq = seq(&mut c)?;
        let receiver = receiver_no(&mut c)?;
        let line = line_no(&mut c)?;
        let has_line = line.is_some();
        let mut line = line.unwrap_or_default();
        let mut account = account(&mut c)?;
        // `L0A0`: see [`super::header`].
        if account == AccountField::Missing {
            if let Some(stripped) = line.strip_suffix("A0") {
                line = stripped;
                account = AccountField::Placeholder;
            }
        }
        if !c.eat(b'[') {
            return None;
        }
        let header = Header {
            token,
            encrypted,
            seq,
            receiver,
            line,
            has_line,
            account,
        };
        Some((c.rest()?, header))
    }
}

fn syntax_reason(code: nom::error::ErrorKind) -> &'static str {
    match code {
        nom::error::ErrorKind::Tag => "expected a field marker (\", L, [ …) that is missing",
        nom::error::ErrorKind::TakeWhileMN => "field has the wrong length or characters",
        _ => "malformed header",
    }
}

fn has_lowercase_hex(s: &str) -> bool {
    has_lowercase_hex_bytes(s.as_bytes())
}

fn has_lowercase_hex_bytes(b: &[u8]) -> bool {
    b.iter().any(|c| matches!(c, b'a'..=b'f'))
}

impl<'a> Frame<'a> {
    /// Reads the payload. Clear frames borrow from the frame; encrypted ones are decrypted
    /// into `scratch` and borrow from it.
    pub fn open<'c>(
        &'c self,
        key: Option<&Key>,
        scratch: &'c mut Vec<u8>,
    ) -> Result<Content<'c>, ContentError> {
        if !self.header.encrypted {
            let mut c = content(self.payload, false).map_err(ContentError::Syntax)?;
            // `data` starts the payload.
            c.data_ascii = self.payload_text.and_then(|t| t.get(..c.data.len()));
            if self.payload_text.is_none() {
                c.decide_encoding();
            }
            return Ok(c);
        }
        let key = key.ok_or(ContentError::NoKey)?;
        let opened = crypto::open(key, self.payload, scratch)?;
        let mut c = content(opened.content, true).map_err(ContentError::DecryptedSyntax)?;
        if !opened.content.is_ascii() {
            c.decide_encoding();
        }
        c.pad_len = Some(opened.pad_len);
        if !opened.pad_terminator {
            c.deviations.insert(Deviation::NoPadTerminator);
        }
        match c.timestamp {
            Some(_) => Ok(c),
            None => Err(ContentError::MissingTimestamp),
        }
    }
}

/// `data ] {[x…]} [_timestamp]`: the clear content after the data block's `[`.
fn content(i: &[u8], encrypted: bool) -> Result<Content<'_>, &'static str> {
    let close = i
        .iter()
        .position(|&b| b == b']')
        .ok_or("data block has no closing ]")?;
    let (data, mut rest) = i.split_at_checked(close).ok_or("data block")?;
    rest = rest.get(1..).unwrap_or_default();
    let mut ext = Vec::new();
    while let Some(after) = rest.strip_prefix(b"[") {
        let end = ext_block_end(after).ok_or("extended block has no closing ]")?;
        let (block, tail) = after.split_at_checked(end).ok_or("extended block")?;
        // An empty block `[]` carries nothing (some senders write it as a placeholder).
        if let Some((&id, value)) = block.split_first() {
            if ext.len() >= MAX_EXT_BLOCKS {
                return Err("too many extended blocks");
            }
            ext.push(ExtBlock {
                id,
                value,
                encoding: None,
            });
        }
        rest = tail.get(1..).unwrap_or_default();
    }
    let mut deviations = Deviations::default();
    let mut timestamp_text = None;
    let timestamp = match rest.strip_prefix(b"_") {
        Some(ts) => {
            let (ts, trailing) = ts
                .split_at_checked(timestamp::TIMESTAMP_LEN)
                .ok_or("timestamp is too short")?;
            if !trailing.is_empty() {
                if encrypted && trailing.iter().all(|&b| b == 0) {
                    // Some senders zero-fill their own padding past the timestamp.
                    deviations.insert(Deviation::TrailingNul);
                } else {
                    return Err("bytes after the timestamp");
                }
            }
            let parsed = timestamp::parse(ts).ok_or("timestamp is not a valid time")?;
            timestamp_text = Some(ts);
            Some(parsed)
        }
        None if rest.is_empty() => None,
        None => return Err("unexpected bytes after the data block"),
    };
    Ok(Content {
        data,
        ext,
        timestamp,
        timestamp_text,
        pad_len: None,
        deviations,
        data_ascii: None,
        text_encoding: None,
    })
}

/// Where the extended block starting at `block` (after its `[`) ends: the first `]`, but
/// for a J block holding a JSON object or array, the `]` right after the JSON, which may
/// itself hold `]`. A JSON block that does not close before a `]` falls back to the first
/// `]`, as any block does.
fn ext_block_end(block: &[u8]) -> Option<usize> {
    let first = || block.iter().position(|&b| b == b']');
    let Some(value) = block.strip_prefix(&[ext::JSON_OR_PATH]) else {
        return first();
    };
    if ext::JValue::of(value) != ext::JValue::Json {
        return first();
    }
    match ext::json_end(value) {
        Some(len) if value.get(len) == Some(&b']') => Some(1 + len),
        _ => first(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::utc_datetime;

    #[test]
    fn w1_sia_clear() {
        let raw = b"\n72FA0039\"SIA-DCS\"0001L0#1234[#1234|Nri1/BA01]_12:00:00,01-15-2024\r";
        let f = parse_frame(raw).unwrap();
        assert_eq!(f.crc_form, CrcForm::Ascii);
        assert_eq!(f.header.token, "SIA-DCS");
        assert!(!f.header.encrypted);
        assert_eq!(f.header.seq, "0001");
        assert_eq!(f.header.receiver, None);
        assert_eq!(f.header.line, "0");
        assert_eq!(f.header.account, AccountField::Number("1234"));
        assert!(f.deviations.is_empty());
        let mut scratch = Vec::new();
        let c = f.open(None, &mut scratch).unwrap();
        assert_eq!(c.data, b"#1234|Nri1/BA01");
        assert!(c.ext.is_empty());
        assert_eq!(c.timestamp, Some(utc_datetime!(2024-01-15 12:00:00)));
    }

    #[test]
    fn w2_cid_with_receiver() {
        let raw = b"\n7172003D\"ADM-CID\"0002R1L1#1234[#1234|1130 01 015]_12:00:05,01-15-2024\r";
        let f = parse_frame(raw).unwrap();
        assert_eq!(f.header.receiver, Some("1"));
        assert_eq!(f.header.line, "1");
    }

    #[test]
    fn w3_null_without_timestamp() {
        let f = parse_frame(b"\n11020013\"NULL\"0003L0#1234[]\r").unwrap();
        let mut scratch = Vec::new();
        let c = f.open(None, &mut scratch).unwrap();
        assert_eq!(c.data, b"");
        assert_eq!(c.timestamp, None);
    }

    #[test]
    fn w4_encrypted() {
        let raw = b"\n9C080076\"*SIA-DCS\"0004L0#1234[3D2C28BC2387FA69EAC04FD24643985F1C4769E0CBCF6A63001FC729DF6B20FFAAE3C1B0528C26A70F4230361354FA2F\r";
        let f = parse_frame(raw).unwrap();
        assert!(f.header.encrypted);
        let key = Key::from_hex("000102030405060708090A0B0C0D0E0F").unwrap();
        let mut scratch = Vec::new();
        let c = f.open(Some(&key), &mut scratch).unwrap();
        assert_eq!(c.data, b"#1234|Nri1/BA01");
        assert_eq!(c.timestamp, Some(utc_datetime!(2024-01-15 12:00:10)));
        assert_eq!(c.pad_len, Some(11));
    }

    #[test]
    fn w5_aes256_with_ext() {
        let raw = b"\n974900B8\"*ADM-CID\"0005R1L1#1234[216DBEE5BB0B5E917EB7EF3DEC09380C5BE71BAFBF4D83690F65F10D7CAD5232C6E6F04A522161ED39285020878A63762B05060AA796FC426F3DC61CAB23745CE25E7CEB56C755B000D69B68BBE0D91A\r";
        let f = parse_frame(raw).unwrap();
        let key = Key::from_hex("603DEB1015CA71BE2B73AEF0857D77811F352C073B6108D72D9810A30914DFF4")
            .unwrap();
        let mut scratch = Vec::new();
        let c = f.open(Some(&key), &mut scratch).unwrap();
        assert_eq!(c.data, b"#1234|1130 01 015");
        assert_eq!(c.ext.len(), 2);
        assert_eq!(c.ext[0].text(), "X019E12.3456");
        assert_eq!(c.ext[1].text(), "Y50N05.1234");
    }

    /// `content` (after the data block's `[`) framed in clear for account 1234.
    fn clear_frame(token: &str, content: &[u8]) -> Vec<u8> {
        let mut body = format!("\"{token}\"0001L0#1234[").into_bytes();
        body.extend_from_slice(content);
        let mut raw = format!("\n{:04X}{:04X}", crc16(&body), body.len()).into_bytes();
        raw.extend_from_slice(&body);
        raw.push(b'\r');
        raw
    }

    /// `plain` (pad included, whole blocks) encrypted and framed for account 1234.
    fn sealed_frame(token: &str, key: &[u8; 16], plain: &[u8]) -> Vec<u8> {
        use cbc::cipher::{block_padding::NoPadding, BlockModeEncrypt, KeyIvInit};
        let mut buf = plain.to_vec();
        let len = buf.len();
        cbc::Encryptor::<aes::Aes128>::new(key.into(), &[0u8; 16].into())
            .encrypt_padded::<NoPadding>(&mut buf, len)
            .unwrap();
        let mut content = Vec::new();
        super::hex::encode_upper_into(&buf, &mut content);
        clear_frame(&format!("*{token}"), &content)
    }

    #[test]
    fn pad_before_an_empty_data_block_ends_at_its_bracket() {
        let mut plain = b"][LHall|Door][G2]_12:00:20,01-15-2024".to_vec();
        while !plain.len().is_multiple_of(16) {
            plain.insert(0, b'p');
        }
        plain.splice(0..0, [b'q'; 16]);
        let raw = sealed_frame("XNM", &[7; 16], &plain);
        let f = parse_frame(&raw).unwrap();
        let key = Key::from_bytes(&[7; 16]).unwrap();
        let mut scratch = Vec::new();
        let c = f.open(Some(&key), &mut scratch).unwrap();
        assert_eq!(c.data, b"");
        assert_eq!(c.ext.len(), 2);
        assert_eq!(c.ext[0].text(), "LHall|Door");
        assert_eq!(c.ext[1].text(), "G2");
        assert!(c.deviations.contains(Deviation::NoPadTerminator));
        assert!((16..=31).contains(&c.pad_len.unwrap()));
    }

    #[test]
    fn text_is_utf8_when_valid_and_p_stays_windows_1252() {
        // UTF-8 text, and a Windows-1252 euro sign (0x80) in P.
        let content = ["#1234|NBA1][LKüche][P".as_bytes(), b"\x80]"].concat();
        let raw = clear_frame("SIA-DCS", &content);
        let f = parse_frame(&raw).unwrap();
        let mut scratch = Vec::new();
        let c = f.open(None, &mut scratch).unwrap();
        assert_eq!(c.text_encoding, Some(TextEncoding::Utf8));
        assert_eq!(c.ext[0].text(), "LKüche");
        assert_eq!(c.ext[1].text(), "P€");

        let raw = clear_frame("SIA-DCS", b"#1234|NBA1][LK\xfcche]");
        let f = parse_frame(&raw).unwrap();
        let c = f.open(None, &mut scratch).unwrap();
        assert_eq!(c.text_encoding, Some(TextEncoding::Windows1252));
        assert_eq!(c.ext[0].text(), "LKüche");

        let raw = clear_frame("SIA-DCS", b"#1234|NBA1][Lkitchen]");
        let f = parse_frame(&raw).unwrap();
        let c = f.open(None, &mut scratch).unwrap();
        assert_eq!(c.text_encoding, None);
    }

    #[test]
    fn json_blocks_may_hold_brackets_and_keys_are_never_shown() {
        let raw = clear_frame(
            "SIA-DCS",
            b"#1234|NBA1][J{\"p\":[1,\"]\"]}][J[2]][Jeth0][K00112233445566778899AABBCCDDEEFF]",
        );
        let f = parse_frame(&raw).unwrap();
        let mut scratch = Vec::new();
        let c = f.open(None, &mut scratch).unwrap();
        let texts: Vec<String> = c.ext.iter().map(|b| b.text()).collect();
        assert_eq!(texts, ["J{\"p\":[1,\"]\"]}", "J[2]", "Jeth0", "K*"]);
        assert!(c.has_key_block());
        // An unclosed JSON block ends at the first `]`, like any block.
        let raw = clear_frame("NULL", b"][J{\"open\":1][Lx]");
        let f = parse_frame(&raw).unwrap();
        let c = f.open(None, &mut scratch).unwrap();
        let texts: Vec<String> = c.ext.iter().map(|b| b.text()).collect();
        assert_eq!(texts, ["J{\"open\":1", "Lx"]);
    }

    #[test]
    fn bad_crc_is_refused() {
        let raw = b"\n72FB0039\"SIA-DCS\"0001L0#1234[#1234|Nri1/BA01]_12:00:00,01-15-2024\r";
        assert_eq!(
            parse_frame(raw).unwrap_err(),
            FrameError::Crc {
                sent: 0x72FB,
                computed: 0x72FA
            }
        );
    }

    #[test]
    fn wrong_length_is_refused() {
        let raw = b"\n72FA0038\"SIA-DCS\"0001L0#1234[#1234|Nri1/BA01]_12:00:00,01-15-2024\r";
        assert!(matches!(
            parse_frame(raw).unwrap_err(),
            FrameError::Length {
                declared: 0x38,
                actual: 0x39
            }
        ));
    }

    #[test]
    fn deviations_are_named() {
        let raw =
            b"junk\n72fa0039\"SIA-DCS\"0001L0#1234[#1234|Nri1/BA01]_12:00:00,01-15-2024\r\0\0";
        let f = parse_frame(raw).unwrap();
        let names: Vec<_> = f.deviations.iter().map(Deviation::as_str).collect();
        assert_eq!(names, ["leading_garbage", "lowercase_hex", "trailing_nul"]);
    }

    #[test]
    fn binary_crc_form() {
        let body = b"\"NULL\"0003L0#1234[]";
        let crc = crc16(body).to_be_bytes();
        let mut raw = vec![b'\n', crc[0], crc[1]];
        raw.extend_from_slice(b"0013");
        raw.extend_from_slice(body);
        raw.push(b'\r');
        let f = parse_frame(&raw).unwrap();
        assert_eq!(f.crc_form, CrcForm::Binary);
        assert!(f.deviations.contains(Deviation::BinaryCrc));
    }

    #[test]
    fn cr_counted_in_crc_and_length() {
        let body = b"\"NULL\"0003L0#1234[]";
        let crc = crc16_two(body, b"\r");
        let mut raw = format!("\n{crc:04X}0014").into_bytes();
        raw.extend_from_slice(body);
        raw.push(b'\r');
        let f = parse_frame(&raw).unwrap();
        assert!(f.deviations.contains(Deviation::CrInCrc));
    }

    #[test]
    fn empty_line_and_nak_placeholder() {
        let f = parse_frame(b"\n65ED0025\"NAK\"0000R0L0A0[]_12:00:30,01-15-2024\r").unwrap();
        assert_eq!(f.header.account, AccountField::Placeholder);
        assert_eq!(f.header.receiver, Some("0"));
        let body = b"\"NULL\"0000L#1409[]";
        let mut raw = format!("\n{:04X}{:04X}", crc16(body), body.len()).into_bytes();
        raw.extend_from_slice(body);
        raw.push(b'\r');
        let f = parse_frame(&raw).unwrap();
        assert_eq!(f.header.line, "");
        assert!(f.deviations.contains(Deviation::EmptyLine));
    }

    #[test]
    fn missing_line_field_is_a_deviation() {
        let body = b"\"NULL\"0000#1234[]";
        let mut raw = format!("\n{:04X}{:04X}", crc16(body), body.len()).into_bytes();
        raw.extend_from_slice(body);
        raw.push(b'\r');
        let f = parse_frame(&raw).unwrap();
        assert!(!f.header.has_line);
        assert!(f.deviations.contains(Deviation::NoLine));
        assert_eq!(f.header.account, AccountField::Number("1234"));
    }

    #[test]
    fn ascii_frames_take_the_quick_header() {
        let raw = b"\n72FA0039\"SIA-DCS\"0001L0#1234[#1234|Nri1/BA01]_12:00:00,01-15-2024\r";
        let f = parse_frame(raw).unwrap();
        assert!(f.payload_text.is_some());
        let mut scratch = Vec::new();
        let c = f.open(None, &mut scratch).unwrap();
        assert!(matches!(
            c.data_text(),
            std::borrow::Cow::Borrowed("#1234|Nri1/BA01")
        ));
    }

    /// Header-like text: each field in its place, drawn from well-formed, borderline and
    /// wrong values, so that both readers meet near misses as well as real headers.
    fn header_like() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        let field = |choices: Vec<&'static str>| {
            proptest::sample::select(choices)
                .prop_map(String::from)
                .boxed()
        };
        (
            prop_oneof![4 => field(vec!["\"", "\"*"]), 1 => field(vec!["\"**", "", "*"])],
            prop_oneof![
                4 => field(vec!["SIA-DCS", "NULL", "ADM-CID"]),
                1 => field(vec!["", "A\"B", "[x", "SIA DCS"]),
                1 => "[\\x21-\\x7e]{0,34}",
            ],
            prop_oneof![6 => field(vec!["\""]), 1 => field(vec!["", "\"\""])],
            prop_oneof![6 => "[0-9]{1,4}", 1 => "[0-9]{0,6}"],
            prop_oneof![field(vec!["", "R", "Rx"]), "R[0-9A-Fa-f]{0,8}"],
            prop_oneof![
                field(vec!["", "L", "L0A0", "LA0", "A0"]),
                "L[0-9A-Fa-f]{0,8}"
            ],
            prop_oneof![
                2 => field(vec!["", "#", "A0", "A", "#12 3"]),
                3 => "#[a-zA-Z0-9]{0,18}",
            ],
            prop_oneof![6 => field(vec!["[", "[#1234|NBA1]"]), 1 => field(vec!["", "x[", "[["])],
        )
            .prop_map(|(a, b, c, d, e, f, g, h)| [a, b, c, d, e, f, g, h].concat())
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(1024))]

        /// Wherever the quick reading takes a header, the full parser reads the same.
        #[test]
        fn quick_header_agrees_with_full_parser(s in header_like()) {
            if let Some((rest, h)) = ascii_header::header(&s) {
                let (full_rest, full) = header(s.as_bytes()).unwrap();
                proptest::prop_assert_eq!(full, h);
                proptest::prop_assert_eq!(full_rest, rest.as_bytes());
            }
        }

        /// And wherever the full parser takes a well-formed header, so does the quick one.
        #[test]
        fn quick_header_takes_well_formed_headers(
            star in proptest::bool::ANY,
            token in "[A-Z*-]{1,8}",
            seq in "[0-9]{1,4}",
            receiver in proptest::option::of("[0-9A-F]{0,6}"),
            line in proptest::option::of("[0-9A-F]{0,6}"),
            account in proptest::option::of("[0-9A-Z]{1,16}"),
        ) {
            let mut s = format!("\"{}{token}\"{seq}", if star { "*" } else { "" });
            if let Some(r) = &receiver { s.push('R'); s.push_str(r); }
            if let Some(l) = &line { s.push('L'); s.push_str(l); }
            if let Some(a) = &account { s.push('#'); s.push_str(a); }
            s.push_str("[data]");
            let full = header(s.as_bytes()).map(|(_, h)| h).ok();
            let quick = ascii_header::header(&s).map(|(_, h)| h);
            proptest::prop_assert_eq!(quick, full);
        }
    }

    #[test]
    fn garbage_lines_are_not_frames() {
        for raw in [
            &b"LFQ=600#CRC=1234##\r"[..],
            b"\nSR0001L0001    006969XX    [ID00000000]\r",
            b"\n",
            b"",
            b"\n1234",
        ] {
            assert!(parse_frame(raw).is_err(), "{raw:?}");
        }
    }
}
