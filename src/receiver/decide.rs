//! The decision for one frame: which reply, which events, which outcome.
//!
//! A pure function of the frame bytes, the arrival facts, the account table, the policy
//! and a view of recent content keys — no socket, no disk, no clock read — so every rule
//! of `docs/protocol/dc09.md` §9 (and the DC-09-2026 additions of
//! `docs/protocol/dc09-2026.md`) is tested here directly. The reply's type says when it may leave
//! (as raft's `persisted_messages` does): [`Reply::AfterDurable`] for an ACK that hands
//! over new events, which the caller may send only once the journal has them on disk.

use std::borrow::Cow;

use compact_str::CompactString;
use time::{Duration, UtcDateTime};

use super::accounts::{AccountTable, Encryption, Identity, UnknownPolicy};
use super::event::{rfc3339, ContentKey, Event};
use super::normalize::{self, Arrival, FrameFacts, Payload};
use super::supervision::path_name;
use crate::journal::Durable;
use crate::protocol::codes::{Category, EventClass, Qualifier};
use crate::protocol::crypto::{Key, MAX_PAD};
use crate::protocol::dc09::{parse_frame, ContentError, CrcForm, Frame, FrameError};
use crate::protocol::ext::{self, NetworkPath};
use crate::protocol::response::{self, NakTo, ReplyDialect};
use crate::protocol::text::escape;
use crate::protocol::timestamp::within_window;

/// Timestamp rules in force.
#[derive(Debug, Clone, Copy)]
pub struct TimePolicy {
    pub past: Duration,
    pub future: Duration,
    /// Check clear frames' timestamps too (accounts may override).
    pub check_clear: bool,
    /// Skip the check entirely (`tocsin decode --no-time-check`).
    pub disabled: bool,
}

impl Default for TimePolicy {
    fn default() -> Self {
        TimePolicy {
            past: Duration::seconds(40),
            future: Duration::seconds(20),
            check_clear: false,
            disabled: false,
        }
    }
}

/// Which content keys were already acknowledged recently.
pub trait SeenKeys {
    fn seen(&self, key: ContentKey) -> bool;
}

/// Nothing seen (offline decoding).
pub struct NothingSeen;

impl SeenKeys for NothingSeen {
    fn seen(&self, _: ContentKey) -> bool {
        false
    }
}

/// When a reply may be written.
#[derive(Debug, PartialEq, Eq)]
pub enum Reply {
    /// Silence: the panel will retry (bad CRC, not a frame).
    None,
    /// May be written at once: NAK, DUH, the ACK of a duplicate or of a NULL poll.
    Now(Vec<u8>),
    /// An ACK that transfers responsibility for new events: only after they are durable,
    /// which only the journal can prove.
    AfterDurable(PendingAck),
}

impl Reply {
    /// The reply's bytes whenever it is sent, to look at: its form (tests, fuzzing) and
    /// its text in the frame's journal record. The bytes a socket gets come from
    /// [`Reply::Now`] or from [`PendingAck::release`].
    pub fn inspect(&self) -> Option<&[u8]> {
        match self {
            Reply::None => None,
            Reply::Now(b) => Some(b),
            Reply::AfterDurable(ack) => Some(&ack.bytes),
        }
    }
}

/// An ACK held until the frame's record is on disk. Its bytes come out only through
/// [`PendingAck::release`], given the journal's [`Durable`] proof for the record appended
/// with [`PendingAck::ticket`]: the rule "ACK only after fsync" is a type, not a habit.
#[derive(Debug, PartialEq, Eq)]
pub struct PendingAck {
    bytes: Vec<u8>,
    /// Unique to this frame's decision (taken from its random bytes).
    ticket: u128,
}

impl PendingAck {
    /// What to give the journal with the frame's record, so that its proof names this ACK.
    pub fn ticket(&self) -> u128 {
        self.ticket
    }

    /// The ACK's bytes, against the proof that this frame's record is durable; the proof
    /// of any other record gives the ACK back, unsent.
    pub fn release(self, proof: Durable) -> Result<Vec<u8>, PendingAck> {
        if proof.ticket() == self.ticket {
            Ok(self.bytes)
        } else {
            Err(self)
        }
    }
}

/// Why a frame got a NAK.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NakReason {
    Timestamp,
    Decrypt,
    NoKey,
    UnknownAccount,
    EncryptionRequired,
    /// The journal could not make the frame durable: never an ACK then.
    Journal,
}

/// Why a frame got a DUH.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DuhReason {
    UnknownToken,
    Content,
}

/// Why a frame got no reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SilenceReason {
    Crc,
    Length,
    Framing,
    Syntax,
    TooLong,
    /// A reply token (ACK, NAK, DUH) sent to the receiver: answering would loop.
    Reply,
}

/// How a frame ended. Each frame has exactly one; each maps to one metrics label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    AckNew,
    AckDuplicate,
    AckNull,
    Nak(NakReason),
    Duh(DuhReason),
    Silent(SilenceReason),
}

impl Outcome {
    /// `ack`, `nak`, `duh` or `none`.
    pub fn reply_label(self) -> &'static str {
        match self {
            Outcome::AckNew | Outcome::AckDuplicate | Outcome::AckNull => "ack",
            Outcome::Nak(_) => "nak",
            Outcome::Duh(_) => "duh",
            Outcome::Silent(_) => "none",
        }
    }

    /// The finer reason (`new`, `duplicate`, `timestamp`, `crc`, …).
    pub fn reason_label(self) -> &'static str {
        match self {
            Outcome::AckNew => "new",
            Outcome::AckDuplicate => "duplicate",
            Outcome::AckNull => "null",
            Outcome::Nak(r) => match r {
                NakReason::Timestamp => "timestamp",
                NakReason::Decrypt => "decrypt",
                NakReason::NoKey => "no_key",
                NakReason::UnknownAccount => "unknown_account",
                NakReason::EncryptionRequired => "encryption_required",
                NakReason::Journal => "journal",
            },
            Outcome::Duh(r) => match r {
                DuhReason::UnknownToken => "unknown_token",
                DuhReason::Content => "content",
            },
            Outcome::Silent(r) => match r {
                SilenceReason::Crc => "crc",
                SilenceReason::Length => "length",
                SilenceReason::Framing => "framing",
                SilenceReason::Syntax => "syntax",
                SilenceReason::TooLong => "too_long",
                SilenceReason::Reply => "reply_token",
            },
        }
    }
}

/// What the header says about the frame, kept for logs and the audit trail.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FrameSummary {
    pub token: CompactString,
    pub encrypted: bool,
    pub account: Option<CompactString>,
    pub seq: Option<CompactString>,
    /// The request's CRC form, which any reply must use.
    pub crc_form: Option<CrcForm>,
    /// The reply forms the sender gets (its account's, or the receiver's default).
    pub reply_dialect: ReplyDialect,
}

/// Who was heard, over which path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heard {
    pub account: CompactString,
    pub path: CompactString,
}

/// Everything the I/O layer needs to act on one frame.
#[derive(Debug)]
pub struct Decision {
    pub outcome: Outcome,
    pub reply: Reply,
    /// Events to journal. For [`Outcome::AckNew`] they must be durable before the reply;
    /// for a rejected frame (unknown account, clear frame on an encrypted account) they
    /// record the rejection and need not be waited for.
    pub events: Vec<Event>,
    /// The content key to remember once the events are durable (dedup).
    pub content_key: Option<ContentKey>,
    /// The account and path heard from, for supervision (any frame that got an ACK).
    pub heard: Option<Heard>,
    pub summary: FrameSummary,
    /// Human-readable reason for logs, when the frame was not accepted.
    pub detail: Option<String>,
    /// K blocks (encryption keys) the frame carried: counted, never kept.
    pub key_blocks: u32,
    /// The frame as it may be kept and shown, when that differs from what was received:
    /// K values masked (`[K*]`), or the ciphertext of an encrypted frame that carries a K
    /// block withheld (it would give the key to whoever holds the account's key). `None`:
    /// the frame as received. See [`Decision::raw_text`].
    pub raw_shown: Option<Vec<u8>>,
}

impl Decision {
    /// No reply, nothing to journal but the audit; the outcome is filled in by the caller.
    fn silent(reason: SilenceReason, summary: FrameSummary, detail: Option<String>) -> Decision {
        Decision {
            outcome: Outcome::Silent(reason),
            reply: Reply::None,
            events: Vec::new(),
            content_key: None,
            heard: None,
            summary,
            detail,
            key_blocks: 0,
            raw_shown: None,
        }
    }

    /// The frame `raw` (the one decided on) escaped for the journal and the logs, with any
    /// key masked.
    pub fn raw_text(&self, raw: &[u8]) -> String {
        match &self.raw_shown {
            Some(shown) => escape(shown),
            None => escape(raw),
        }
    }
}

impl FrameSummary {
    /// The NAK the sender of `raw` (the frame this summarises) gets when its ACK cannot be
    /// given after all (the journal failed), in the sender's reply dialect. The header is
    /// read again from `raw` for the fields a 2026 NAK echoes: this path is rare, and
    /// keeping them for every frame cost more.
    pub fn nak_reply(&self, raw: &[u8], now: UtcDateTime) -> Vec<u8> {
        let parsed = parse_frame(raw).ok();
        let to = parsed
            .as_ref()
            .map(|f| NakTo::of(&f.header))
            .unwrap_or_default();
        let mut out = Vec::with_capacity(64);
        let form = self.crc_form.unwrap_or(CrcForm::Ascii);
        response::nak_in(self.reply_dialect, &to, form, now, &mut out);
        out
    }
}

/// `raw` with K blocks masked, when it has any and its content could not be read (a frame
/// that did not parse, a reply token): the byte-level rule of [`ext::mask_key_blocks`].
fn masked_unread(raw: &[u8]) -> Option<Vec<u8>> {
    match ext::mask_key_blocks(raw) {
        Cow::Owned(masked) => Some(masked),
        Cow::Borrowed(_) => None,
    }
}

/// An encrypted frame whose plaintext holds a K block, as it may be kept: everything but
/// the ciphertext, which is replaced by `[K*]`.
fn withhold_ciphertext(raw: &[u8], payload: &[u8]) -> Vec<u8> {
    // `payload` is a slice of `raw` (the frame borrows from it): its offset is the
    // distance between the two starts.
    let start = (payload.as_ptr() as usize).saturating_sub(raw.as_ptr() as usize);
    let end = start.saturating_add(payload.len());
    let mut out = raw.get(..start).unwrap_or_default().to_vec();
    out.extend_from_slice(b"[K*]");
    out.extend_from_slice(raw.get(end..).unwrap_or_default());
    out
}

/// Decides what to do with `raw`, one frame as cut from a stream or one datagram.
/// `random` supplies the pad of an encrypted ACK and the ticket its release is checked
/// against ([`PendingAck`]): fresh bytes for every frame.
pub fn decide(
    raw: &[u8],
    arrival: &Arrival<'_>,
    accounts: &AccountTable,
    time: &TimePolicy,
    seen: &dyn SeenKeys,
    random: &[u8; MAX_PAD],
) -> Decision {
    let frame = match parse_frame(raw) {
        Ok(f) => f,
        Err(e) => {
            let reason = match e {
                FrameError::Crc { .. } => SilenceReason::Crc,
                FrameError::Length { .. } => SilenceReason::Length,
                FrameError::TooLong { .. } => SilenceReason::TooLong,
                FrameError::Syntax(_) => SilenceReason::Syntax,
                FrameError::NoStart | FrameError::NoEnd | FrameError::Envelope => {
                    SilenceReason::Framing
                }
            };
            let mut d = Decision::silent(reason, FrameSummary::default(), Some(e.to_string()));
            d.raw_shown = masked_unread(raw);
            return d;
        }
    };
    decide_frame(&frame, raw, arrival, accounts, time, seen, random)
}

/// [`decide`] for an already parsed frame.
pub fn decide_frame(
    frame: &Frame<'_>,
    raw: &[u8],
    arrival: &Arrival<'_>,
    accounts: &AccountTable,
    time: &TimePolicy,
    seen: &dyn SeenKeys,
    random: &[u8; MAX_PAD],
) -> Decision {
    let h = &frame.header;
    let header_account = h.account.number();
    let account = header_account.and_then(|a| accounts.get(a));
    let summary = FrameSummary {
        token: CompactString::new(h.token),
        encrypted: h.encrypted,
        account: header_account.map(CompactString::new),
        seq: Some(CompactString::new(h.seq)),
        crc_form: Some(frame.crc_form),
        reply_dialect: accounts.reply_dialect_of(account),
    };
    let mut d = Decision::silent(SilenceReason::Syntax, summary, None);
    let nak = |d: &mut Decision, reason: NakReason, detail: String| {
        let mut out = Vec::with_capacity(64);
        let dialect = d.summary.reply_dialect;
        response::nak_in(
            dialect,
            &NakTo::of(h),
            frame.crc_form,
            arrival.now,
            &mut out,
        );
        d.outcome = Outcome::Nak(reason);
        d.reply = Reply::Now(out);
        d.detail = Some(detail);
    };
    let duh = |d: &mut Decision, reason: DuhReason, detail: String| {
        let mut out = Vec::with_capacity(48);
        response::duh(h, frame.crc_form, &mut out);
        d.outcome = Outcome::Duh(reason);
        d.reply = Reply::Now(out);
        d.detail = Some(detail);
    };

    // ACK, NAK, DUH and RSP are answers: a receiver answers none of them (an answer to an
    // answer could loop), but reads them, so that a key inside is masked like anywhere else.
    let payload = Payload::of_token(h.token);
    let answer = payload.is_none() && matches!(h.token, "ACK" | "NAK" | "DUH" | "RSP");
    if payload.is_none() && !answer {
        duh(
            &mut d,
            DuhReason::UnknownToken,
            format!("unknown ID token `{}`", h.token),
        );
        d.raw_shown = masked_unread(raw);
        return d;
    }
    let silence_answer = |d: &mut Decision| {
        d.outcome = Outcome::Silent(SilenceReason::Reply);
        d.detail = Some(format!(
            "{} is an answer, sent by receivers: not answered",
            h.token
        ));
    };

    let key: Option<&Key> = account.and_then(|a| a.key.as_ref());

    let mut scratch = Vec::new();
    let content = match frame.open(key, &mut scratch) {
        Ok(c) => c,
        Err(e) => {
            d.raw_shown = if !h.encrypted {
                masked_unread(raw)
            } else if scratch.windows(2).any(|w| w == b"[K") {
                // Decrypted but unreadable: it may still hold a key.
                Some(withhold_ciphertext(raw, frame.payload))
            } else {
                None
            };
            if answer {
                silence_answer(&mut d);
                return d;
            }
            match e {
                ContentError::NoKey => nak(
                    &mut d,
                    NakReason::NoKey,
                    format!(
                        "encrypted frame from account {} and no key is configured for it",
                        header_account.unwrap_or("(none)")
                    ),
                ),
                ContentError::Decrypt(_)
                | ContentError::DecryptedSyntax(_)
                | ContentError::MissingTimestamp => nak(&mut d, NakReason::Decrypt, e.to_string()),
                ContentError::Timestamp => nak(&mut d, NakReason::Timestamp, e.to_string()),
                ContentError::Syntax(_) => duh(&mut d, DuhReason::Content, e.to_string()),
            }
            return d;
        }
    };

    // A key is counted and masked, never kept.
    d.key_blocks = content.ext.iter().filter(|b| b.id == ext::KEY).count() as u32;
    let shown: Cow<'_, [u8]> = match (d.key_blocks, h.encrypted) {
        (0, _) => Cow::Borrowed(raw),
        (_, true) => Cow::Owned(withhold_ciphertext(raw, frame.payload)),
        (_, false) => ext::mask_key_blocks(raw),
    };
    if let Cow::Owned(v) = &shown {
        d.raw_shown = Some(v.clone());
    }
    let Some(payload) = payload else {
        silence_answer(&mut d);
        return d;
    };

    // The account used for routing: the header's, else the one inside the data.
    let data_account = data_account_of(content.data);
    let account_id = header_account.or(data_account).unwrap_or("");
    let account = account.or_else(|| accounts.get(account_id));
    d.summary.reply_dialect = accounts.reply_dialect_of(account);
    let dialect = d.summary.reply_dialect;

    if let Some(ts) = content.timestamp {
        let check = h.encrypted
            || account
                .and_then(|a| a.time_check)
                .unwrap_or(time.check_clear);
        if check && !time.disabled && !within_window(ts, arrival.now, time.past, time.future) {
            nak(
                &mut d,
                NakReason::Timestamp,
                format!(
                    "panel time {} is outside the window ({}s past, {}s future) around receiver time {}",
                    rfc3339(ts),
                    time.past.whole_seconds(),
                    time.future.whole_seconds(),
                    rfc3339(arrival.now)
                ),
            );
            return d;
        }
    }

    let ext: Vec<(u8, &[u8])> = content.ext.iter().map(|b| (b.id, b.value)).collect();
    let plain_token = h.token;
    let content_key = ContentKey::of(
        account_id,
        plain_token,
        h.seq,
        content.data,
        &ext,
        content.timestamp,
    );
    let facts = FrameFacts {
        arrival,
        header: h,
        content: &content,
        account: account_id,
        raw: &shown,
        raw_text: Default::default(),
        key: content_key,
        unknown_account: account.is_none(),
    };

    if account.is_none() && accounts.unknown == UnknownPolicy::Reject {
        d.events = vec![receiver_event(
            &facts,
            "unknown_account",
            EventClass::Other,
            Category::System,
            format!("Frame from unknown account {account_id} refused (NAK)"),
        )];
        nak(
            &mut d,
            NakReason::UnknownAccount,
            format!("account {account_id} is not configured"),
        );
        return d;
    }
    if let Some(a) = account {
        if a.encryption == Encryption::Required && !h.encrypted {
            d.events = vec![receiver_event(
                &facts,
                "encryption_required",
                EventClass::Trouble,
                Category::Tamper,
                format!(
                    "Clear frame from account {account_id}, which must encrypt: refused (possible substitution)"
                ),
            )];
            nak(
                &mut d,
                NakReason::EncryptionRequired,
                format!("account {account_id} requires encryption and sent a clear frame"),
            );
            return d;
        }
    }

    let mut ack = Vec::with_capacity(112);
    match (h.encrypted, key) {
        (true, Some(k)) => {
            response::ack_encrypted_in(dialect, h, frame.crc_form, k, arrival.now, random, &mut ack)
        }
        _ => response::ack(h, frame.crc_form, &mut ack),
    }
    // G names the path (DC-09-2026); a J block only when it is not JSON.
    let network_path = NetworkPath::of_blocks(ext.iter().copied());
    d.heard = Some(Heard {
        account: CompactString::new(account_id),
        path: path_name(network_path, h.line, h.receiver),
    });
    let substitution = account
        .and_then(|a| a.identity.as_deref())
        .and_then(|id| substitution(id, &content, arrival.peer));
    if let Some(why) = substitution {
        d.events.push(receiver_event(
            &facts,
            "substitution",
            EventClass::Trouble,
            Category::Tamper,
            format!("Account {account_id}: {why} (possible substitution of the panel)"),
        ));
    }

    if payload == Payload::Null {
        // A NULL or XNM carries no event, but a substitution seen on it is one.
        d.outcome = Outcome::AckNull;
        d.reply = Reply::Now(ack);
        return d;
    }
    if seen.seen(content_key) {
        d.outcome = Outcome::AckDuplicate;
        d.reply = Reply::Now(ack);
        return d;
    }
    let mut events = normalize::events(&facts, payload);
    events.append(&mut d.events);
    d.events = events;
    d.content_key = Some(content_key);
    d.outcome = Outcome::AckNew;
    d.reply = Reply::AfterDurable(PendingAck {
        bytes: ack,
        ticket: u128::from_le_bytes(*random),
    });
    d
}

/// Why a frame does not look like the configured panel, if it does not.
fn substitution(
    id: &Identity,
    content: &crate::protocol::dc09::Content<'_>,
    peer: Option<std::net::SocketAddr>,
) -> Option<String> {
    if let Some(expected) = &id.mac {
        let sent = content.ext.iter().find(|b| b.id == b'M').map(|b| b.value);
        match sent {
            Some(m) if m.eq_ignore_ascii_case(expected.as_bytes()) => {}
            Some(m) => {
                return Some(format!(
                    "MAC {} instead of {expected}",
                    String::from_utf8_lossy(m)
                ))
            }
            None => return Some(format!("no MAC block where {expected} is expected")),
        }
    }
    if let (false, Some(peer)) = (id.networks.is_empty(), peer) {
        if !id.networks.iter().any(|n| n.contains(peer.ip())) {
            return Some(format!("reports from {} outside its networks", peer.ip()));
        }
    }
    None
}

/// `#acct|` at the start of the data, the fallback route for frames without a header
/// account.
pub fn data_account_of(data: &[u8]) -> Option<&str> {
    let rest = data.strip_prefix(b"#")?;
    let end = rest.iter().position(|&b| b == b'|').unwrap_or(rest.len());
    let acct = rest.get(..end)?;
    if (1..=16).contains(&acct.len()) && acct.iter().all(|b| b.is_ascii_alphanumeric()) {
        std::str::from_utf8(acct).ok()
    } else {
        None
    }
}

/// An event the receiver raises about a frame (rejections worth an operator's eyes).
fn receiver_event(
    facts: &FrameFacts<'_>,
    code: &str,
    class: EventClass,
    category: Category,
    text: String,
) -> Event {
    let mut e = normalize::base_event(facts, 0, code, class, category);
    e.protocol = std::borrow::Cow::Borrowed("tocsin");
    e.qualifier = Qualifier::New;
    e.text = std::borrow::Cow::Owned(text);
    // A distinct id from the frame's own events, still derived from its content.
    e.id = facts.key.event_id(usize::MAX);
    e
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::encode::{encode, FrameSpec};
    use crate::protocol::text::TextEncoding;
    use crate::receiver::accounts::Account;
    use crate::receiver::event::Transport;
    use time::macros::utc_datetime;

    const NOW: UtcDateTime = utc_datetime!(2024-01-15 12:00:05);
    const KEY_HEX: &str = "00112233445566778899AABBCCDDEEFF";

    fn arrival() -> Arrival<'static> {
        Arrival {
            now: NOW,
            transport: Transport::Tcp,
            peer: None,
            peer_label: None,
            receiver: "test",
        }
    }

    fn table() -> AccountTable {
        let mut t = AccountTable::with_policy(UnknownPolicy::Accept);
        t.insert("1234", Account::default());
        t.insert(
            "2026",
            Account {
                key: Some(Key::from_hex("000102030405060708090A0B0C0D0E0F").unwrap()),
                reply_dialect: Some(ReplyDialect::Dc2026),
                ..Default::default()
            },
        );
        t
    }

    fn frame(
        token: &str,
        account: &str,
        data: &[u8],
        ext: &[(u8, &[u8])],
        encrypted: bool,
    ) -> Vec<u8> {
        let key = Key::from_hex("000102030405060708090A0B0C0D0E0F").unwrap();
        let spec = FrameSpec {
            token,
            seq: "0007",
            receiver: Some("5"),
            line: "3",
            account,
            data,
            ext,
            timestamp: Some(NOW),
            form: CrcForm::Ascii,
        };
        let mut out = Vec::new();
        encode(&spec, encrypted.then_some(&key), &[0x41; 16], &mut out);
        out
    }

    fn run(raw: &[u8]) -> Decision {
        decide(
            raw,
            &arrival(),
            &table(),
            &TimePolicy::default(),
            &NothingSeen,
            &[0x42; 16],
        )
    }

    #[test]
    fn xnm_is_a_poll_whose_extended_data_names_the_path() {
        let raw = frame("XNM", "1234", b"", &[(b'G', b"2"), (b'C', b"DP4")], false);
        let d = run(&raw);
        assert_eq!(d.outcome, Outcome::AckNull);
        assert!(matches!(d.reply, Reply::Now(_)));
        assert!(d.events.is_empty());
        assert_eq!(d.heard.unwrap().path, "G2");
    }

    #[test]
    fn json_blocks_are_data_and_never_a_path() {
        let ext: &[(u8, &[u8])] = &[
            (b'J', b"{\"photo\": [\"a.jpg\", \"b.jpg\"]}"),
            (b'C', b"DP2"),
            (b'N', b"1133557799bbddff"),
            (b'L', "Küche".as_bytes()),
        ];
        let raw = frame("SIA-DCS", "1234", b"#1234|NBA1", ext, false);
        let d = run(&raw);
        assert_eq!(d.outcome, Outcome::AckNew);
        assert_eq!(d.heard.unwrap().path, "L3R5");
        let e = &d.events[0];
        assert_eq!(
            e.json.as_ref().unwrap().as_str(),
            "{\"photo\":[\"a.jpg\",\"b.jpg\"]}"
        );
        assert_eq!(e.network_path, None);
        assert_eq!(e.supervision_category.as_deref(), Some("DP2"));
        assert_eq!(e.network_address.as_deref(), Some("1133557799bbddff"));
        assert_eq!(e.location.as_deref(), Some("Küche"));
        assert_eq!(e.text_encoding, Some(TextEncoding::Utf8));

        // An older panel's J path still names the path, and G wins over it.
        let raw = frame("SIA-DCS", "1234", b"#1234|NBA1", &[(b'J', b"3")], false);
        let d = run(&raw);
        assert_eq!(d.heard.unwrap().path, "J3");
        assert_eq!(d.events[0].network_path.as_deref(), Some("3"));
        let raw = frame(
            "SIA-DCS",
            "1234",
            b"#1234|NBA1",
            &[(b'J', b"3"), (b'G', b"1")],
            false,
        );
        let d = run(&raw);
        assert_eq!(d.heard.unwrap().path, "G1");
        assert_eq!(d.events[0].network_path.as_deref(), Some("1"));
    }

    #[test]
    fn keys_are_counted_and_never_kept() {
        for encrypted in [false, true] {
            for token in ["SIA-DCS", "XNM"] {
                let account = if encrypted { "2026" } else { "1234" };
                let data: &[u8] = if token == "XNM" { b"" } else { b"#1|NBA1" };
                let raw = frame(
                    token,
                    account,
                    data,
                    &[(b'K', KEY_HEX.as_bytes()), (b'L', b"Hall")],
                    encrypted,
                );
                let d = run(&raw);
                assert!(
                    matches!(d.outcome, Outcome::AckNew | Outcome::AckNull),
                    "{d:?}"
                );
                assert_eq!(d.key_blocks, 1);
                let shown = d.raw_text(&raw);
                assert!(!shown.contains(KEY_HEX), "{shown}");
                assert!(shown.contains("[K*]"), "{shown}");
                for e in &d.events {
                    assert_eq!(e.raw, shown);
                    assert!(e.ext.contains(&"K*".to_string()), "{:?}", e.ext);
                    let json = serde_json::to_string(e).unwrap();
                    assert!(!json.contains(KEY_HEX), "{json}");
                }
            }
        }
        // Content that does not parse is masked byte by byte.
        let raw = frame("SIA-DCS", "1234", b"#1|NBA1", &[], false);
        let mut broken = raw[..raw.len() - 1].to_vec();
        broken.extend_from_slice(format!("[K{KEY_HEX}\r").as_bytes());
        let d = run(&broken);
        assert!(!d.raw_text(&broken).contains(KEY_HEX));
    }

    #[test]
    fn rsp_is_read_and_not_answered() {
        let raw = frame(
            "RSP",
            "1234",
            b"#1234|NBA1",
            &[(b'K', KEY_HEX.as_bytes())],
            false,
        );
        let d = run(&raw);
        assert_eq!(d.outcome, Outcome::Silent(SilenceReason::Reply));
        assert_eq!(d.reply, Reply::None);
        assert!(!d.raw_text(&raw).contains(KEY_HEX));
    }

    #[test]
    fn the_2026_dialect_answers_with_its_nak_and_pad() {
        let raw = frame("SIA-DCS", "2026", b"#2026|NBA1", &[], true);
        let d = run(&raw);
        let Reply::AfterDurable(_) = &d.reply else {
            panic!("{d:?}")
        };
        let reply = parse_frame(d.reply.inspect().unwrap()).unwrap();
        let key = Key::from_hex("000102030405060708090A0B0C0D0E0F").unwrap();
        let mut scratch = Vec::new();
        let c = reply.open(Some(&key), &mut scratch).unwrap();
        assert!((16..=31).contains(&c.pad_len.unwrap()));

        // A stale timestamp: NAK with the 2026 account fields, also when the journal fails.
        let stale = decide(
            &raw,
            &Arrival {
                now: NOW + Duration::minutes(5),
                ..arrival()
            },
            &table(),
            &TimePolicy::default(),
            &NothingSeen,
            &[0x42; 16],
        );
        assert_eq!(stale.outcome, Outcome::Nak(NakReason::Timestamp));
        let nak = stale.reply.inspect().unwrap();
        let f = parse_frame(nak).unwrap();
        assert_eq!(f.header.token, "NAK");
        assert_eq!(f.header.account.number(), Some("2026"));
        assert_eq!((f.header.receiver, f.header.line), (Some("5"), "3"));
        assert_eq!(
            stale.summary.nak_reply(&raw, NOW + Duration::minutes(5)),
            nak
        );

        // The default (2013) keeps the fixed form.
        let raw = frame("SIA-DCS", "1234", b"#1234|NBA1", &[], true);
        let d = run(&raw);
        assert_eq!(d.outcome, Outcome::Nak(NakReason::NoKey));
        assert!(d
            .reply
            .inspect()
            .unwrap()
            .windows(6)
            .any(|w| w == b"R0L0A0"));
    }
}
