//! The packet writer: one normalized event in, the Sur-Gard automation packets for it out.
//! Pure (no I/O, no clock), panic-free on any event, and total: every event gives at
//! least one well-formed packet, so nothing the receiver acknowledged is dropped here.
//!
//! Formats (`spec/surgard-mlr2.md` §2; `␠` is a space, every packet ends with DC4):
//!
//! ```text
//! 1RRL␠␠␠␠␠␠␠␠␠␠␠@␠␠␠␠              heartbeat, 1-digit line
//! 1RR000␠␠␠␠␠␠␠␠␠␠␠@␠␠␠␠            heartbeat, 3-digit line form (line 000)
//! 5RRL␠18AAAAQXYZGGCCC             Contact ID, account of 1–4 digits (zero-padded)
//! QRRL␠58AAAAAAAAAAQXYZGGCCC       Contact ID, account of 5–10 digits (zero-padded)
//! SRRL[#AAAAAA|data]               SIA, account of 1–6 digits, data as received
//! ```
//!
//! `L` is the configured line as written (1 or 3 digits). Which account a packet carries:
//! the `account_map` entry for the event's account if there is one, else the event's own
//! account; one that does not fit the packet (letters, too long) makes the event go out as
//! Contact ID on `own_account` with the code [`codes::UNMAPPED`], flagged in [`Notes`] so the
//! caller counts it. tocsin's own events go out on `own_account` per [`codes::OWN_CODES`].
//!
//! SIA data longer than the format's 66 bytes is **split**, one packet per event of the
//! block, each rebuilt as `#acct|N` + the modifiers in effect + the event code and address
//! (modifiers are dropped from the first while it is still too long). Caret texts and `A`
//! blocks are left out of those packets; the event on the bus keeps them. A block that
//! cannot be read as SIA data, or a rebuilt one still too long, is cut at 66 bytes. Bytes
//! that would break the framing (controls, DC4, `[` and `]` inside the data) become `?`;
//! text outside ASCII is written back in Windows-1252, as panels send it.

use std::borrow::Cow;

use super::accounts::AccountMap;
use super::codes::{self, OwnCode};
use crate::protocol::codes::Qualifier;
use crate::protocol::sia::parse_sia_data;
use crate::receiver::event::Event;

/// Ends every packet.
pub const DC4: u8 = 0x14;
/// The automation's "received".
pub const ACK: u8 = 0x06;
/// The automation's "send it again".
pub const NAK: u8 = 0x15;
/// Longest SIA data (between the brackets) the format carries.
pub const MAX_SIA_DATA: usize = 66;
/// Longest account of a Contact ID packet (`Q…58` form) and of a SIA packet.
pub const MAX_CID_ACCOUNT: usize = 10;
pub const MAX_SIA_ACCOUNT: usize = 6;

/// The line field as configured: its width is as written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Line {
    /// `L`: MLR2-era formats.
    One(u8),
    /// `LLL`: SG / System III "virtual line" formats.
    Three([u8; 3]),
}

/// What every packet of one output shares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Format {
    receiver: [u8; 2],
    line: Line,
    own_account: String,
}

/// Why a format setting is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    #[error("receiver number `{0}` must be two digits (RR), e.g. \"01\"")]
    Receiver(String),
    #[error("line `{0}` must be one digit (L) or three digits (LLL), e.g. \"1\" or \"100\"")]
    Line(String),
    #[error("own_account `{0}` must be 1 to 10 digits")]
    OwnAccount(String),
}

impl Format {
    pub fn new(receiver: &str, line: &str, own_account: &str) -> Result<Format, FormatError> {
        let receiver = match receiver.as_bytes() {
            [a, b] if a.is_ascii_digit() && b.is_ascii_digit() => [*a, *b],
            _ => return Err(FormatError::Receiver(receiver.to_string())),
        };
        let line = match line.as_bytes() {
            [l] if l.is_ascii_digit() => Line::One(*l),
            [a, b, c] if [a, b, c].iter().all(|d| d.is_ascii_digit()) => Line::Three([*a, *b, *c]),
            _ => return Err(FormatError::Line(line.to_string())),
        };
        if cid_account(own_account).is_none() {
            return Err(FormatError::OwnAccount(own_account.to_string()));
        }
        Ok(Format {
            receiver,
            line,
            own_account: own_account.to_string(),
        })
    }

    pub fn own_account(&self) -> &str {
        &self.own_account
    }

    /// `RR` then the line, after the protocol character.
    fn prefix(&self, p: &mut Vec<u8>) {
        p.extend_from_slice(&self.receiver);
        match self.line {
            Line::One(l) => p.push(l),
            Line::Three(l) => p.extend_from_slice(&l),
        }
    }

    /// The supervisory signal: `1RRL` (or `1RR000`), 11 spaces, `@`, 4 spaces, DC4.
    pub fn heartbeat(&self) -> Vec<u8> {
        let mut p = Vec::with_capacity(24);
        p.push(b'1');
        p.extend_from_slice(&self.receiver);
        match self.line {
            Line::One(l) => p.push(l),
            Line::Three(_) => p.extend_from_slice(b"000"),
        }
        p.extend_from_slice(b"           @    ");
        p.push(DC4);
        p
    }
}

/// What happened to an event on its way into packets, for the caller's counters.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Notes {
    /// Its account fits no packet and has no mapping: sent on `own_account`.
    pub unmapped: bool,
    /// SIA data over 66 bytes, sent as one packet per event.
    pub split: bool,
    /// SIA data cut at 66 bytes.
    pub truncated: bool,
}

/// Appends the packets for `event` to `out` (at least one) and says how they were made.
///
/// For a SIA event this writes its frame's whole data block; the caller sends the block
/// once per frame (see [`super::source`]).
pub fn write_event(e: &Event, fmt: &Format, map: &AccountMap, out: &mut Vec<Vec<u8>>) -> Notes {
    let mut notes = Notes::default();
    let q = letter(e.qualifier);
    if e.protocol == "tocsin" {
        out.push(own_packet(fmt, q, codes::own_code(&e.code)));
        return notes;
    }
    let account = map.get(&e.account).unwrap_or(&e.account);
    let written = match &*e.protocol {
        "SIA-DCS" => sia_account(account).map(|a| sia_packets(fmt, a, e, out, &mut notes)),
        "ADM-CID" => cid_account(account).map(|a| {
            let code = Some(e.code.as_str()).filter(|c| is_digits(c, 3));
            let (code, q) = match code {
                Some(c) => (c, q),
                None => (codes::UNREADABLE.cid, b'E'),
            };
            let group = field(e.partition.as_deref(), 2, "00");
            let zone = field(e.zone.as_deref().or(e.user.as_deref()), 3, "000");
            out.push(cid_packet(fmt, a, q, code, group, zone));
        }),
        _ => cid_account(account).map(|a| {
            let c = codes::UNREADABLE;
            out.push(cid_packet(fmt, a, q, c.cid, "00", c.zone));
        }),
    };
    if written.is_none() {
        notes.unmapped = true;
        out.push(own_packet(fmt, q, codes::UNMAPPED));
    }
    notes
}

/// The Contact ID qualifier letter: E new (or opening), R restore (or closing), P status.
fn letter(q: Qualifier) -> u8 {
    match q {
        Qualifier::New => b'E',
        Qualifier::Restore => b'R',
        Qualifier::Status => b'P',
    }
}

fn own_packet(fmt: &Format, q: u8, code: OwnCode) -> Vec<u8> {
    cid_packet(fmt, &fmt.own_account, q, code.cid, "00", code.zone)
}

/// A decimal account of 1 to 10 digits, as a Contact ID packet carries it.
pub fn cid_account(a: &str) -> Option<&str> {
    (1..=MAX_CID_ACCOUNT)
        .contains(&a.len())
        .then_some(a)
        .filter(|a| a.bytes().all(|b| b.is_ascii_digit()))
}

/// A decimal account of 1 to 6 digits, as a SIA packet carries it.
pub fn sia_account(a: &str) -> Option<&str> {
    cid_account(a).filter(|a| a.len() <= MAX_SIA_ACCOUNT)
}

fn is_digits(s: &str, n: usize) -> bool {
    s.len() == n && s.bytes().all(|b| b.is_ascii_digit())
}

/// A Contact ID field of `n` digits (0–9 and B–F, as the parser accepts them), or zeros.
fn field<'a>(v: Option<&'a str>, n: usize, zeros: &'static str) -> &'a str {
    v.filter(|v| {
        v.len() == n
            && v.bytes()
                .all(|b| b.is_ascii_digit() || (b'B'..=b'F').contains(&b))
    })
    .unwrap_or(zeros)
}

/// `5RRL␠18AAAAQXYZGGCCC` or `QRRL␠58AAAAAAAAAAQXYZGGCCC`, with DC4.
fn cid_packet(fmt: &Format, account: &str, q: u8, code: &str, group: &str, zone: &str) -> Vec<u8> {
    let mut p = Vec::with_capacity(32);
    let (id, kind, width) = if account.len() <= 4 {
        (b'5', b" 18", 4)
    } else {
        (b'Q', b" 58", MAX_CID_ACCOUNT)
    };
    p.push(id);
    fmt.prefix(&mut p);
    p.extend_from_slice(kind);
    p.extend(std::iter::repeat_n(
        b'0',
        width.saturating_sub(account.len()),
    ));
    p.extend_from_slice(account.as_bytes());
    p.push(q);
    p.extend_from_slice(code.as_bytes());
    p.extend_from_slice(group.as_bytes());
    p.extend_from_slice(zone.as_bytes());
    p.push(DC4);
    p
}

/// `SRRL[data]` with DC4; `data` is already at most 66 safe bytes.
fn sia_packet(fmt: &Format, data: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(data.len() + 10);
    p.push(b'S');
    fmt.prefix(&mut p);
    p.push(b'[');
    p.extend_from_slice(data);
    p.push(b']');
    p.push(DC4);
    p
}

fn sia_packets(fmt: &Format, account: &str, e: &Event, out: &mut Vec<Vec<u8>>, notes: &mut Notes) {
    let block: Cow<'_, str> = match &e.sia_data {
        Some(b) => Cow::Borrowed(b),
        None => Cow::Owned(rebuilt(e)),
    };
    let mut data = Vec::with_capacity(block.len() + 8);
    data.push(b'#');
    data.extend_from_slice(account.as_bytes());
    data.push(b'|');
    put_text(&mut data, body_of(&block));
    if data.len() <= MAX_SIA_DATA {
        out.push(sia_packet(fmt, &data));
        return;
    }
    if split(fmt, account, &block, out, notes) {
        notes.split = true;
        return;
    }
    data.truncate(MAX_SIA_DATA);
    notes.truncated = true;
    out.push(sia_packet(fmt, &data));
}

/// One packet per event of the block; false when the block cannot be read as SIA data
/// (the caller then cuts it).
fn split(
    fmt: &Format,
    account: &str,
    block: &str,
    out: &mut Vec<Vec<u8>>,
    notes: &mut Notes,
) -> bool {
    let Ok(sia) = parse_sia_data(block) else {
        return false;
    };
    if sia.events.is_empty() {
        return false;
    }
    for ev in &sia.events {
        let head = format!("#{account}|{}", if ev.new { 'N' } else { 'O' });
        let tail = format!("{}{}", ev.code, ev.address.unwrap_or(""));
        let mods: Vec<String> = ev
            .modifiers
            .iter()
            .filter(|m| !m.value.is_empty())
            .map(|m| format!("{}{}", m.key, m.value))
            .collect();
        // Modifiers apply to the event after them: they come first, and go first when
        // room is short, so the event code is always kept.
        let mut skip = 0;
        let text = loop {
            let kept = mods.get(skip..).unwrap_or_default();
            let mut t = head.clone();
            for m in kept {
                t.push_str(m);
                t.push('/');
            }
            t.push_str(&tail);
            if t.len() <= MAX_SIA_DATA || kept.is_empty() {
                break t;
            }
            skip += 1;
        };
        let mut data = Vec::with_capacity(text.len());
        put_text(&mut data, &text);
        if data.len() > MAX_SIA_DATA {
            data.truncate(MAX_SIA_DATA);
            notes.truncated = true;
        }
        out.push(sia_packet(fmt, &data));
    }
    true
}

/// The block without its account: what follows `#acct|` (or a bare `acct|`).
fn body_of(block: &str) -> &str {
    let Some((first, rest)) = block.split_once('|') else {
        return block.strip_prefix('#').map_or(block, |_| "");
    };
    let acct = first.strip_prefix('#').unwrap_or(first);
    let is_account =
        first.starts_with('#') || (!acct.is_empty() && acct.bytes().all(|b| b.is_ascii_digit()));
    if is_account {
        rest
    } else {
        block
    }
}

/// A SIA block for an event journaled without its data (records written before events
/// carried it): `N` + area + code and zone.
fn rebuilt(e: &Event) -> String {
    let mut t = String::from("N");
    if let Some(p) = e.partition.as_deref().filter(|p| !p.is_empty()) {
        t.push_str("ri");
        t.push_str(p);
        t.push('/');
    }
    t.push_str(&e.code);
    t.push_str(e.zone.as_deref().unwrap_or(""));
    t
}

/// Appends `text` as packet bytes: printable ASCII as is, Windows-1252 for what it can
/// write, and `?` for controls, brackets and anything else.
fn put_text(out: &mut Vec<u8>, text: &str) {
    for c in text.chars() {
        let b = match c {
            '[' | ']' => b'?',
            ' '..='~' => c as u8,
            '\u{A0}'..='\u{FF}' => c as u8,
            _ => w1252(c).unwrap_or(b'?'),
        };
        out.push(b);
    }
}

/// The Windows-1252 byte of 0x80–0x9F that decodes to `c`.
fn w1252(c: char) -> Option<u8> {
    (0x80u8..=0x9F).find(|&b| {
        crate::protocol::text::decode_w1252(&[b])
            .chars()
            .next()
            .is_some_and(|d| d == c && !('\u{80}'..='\u{9F}').contains(&d))
    })
}

#[cfg(test)]
mod tests;
