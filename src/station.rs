//! The path every frame takes between the socket and the reply, shared by TCP and UDP:
//! decide, journal, remember, count, log.
//!
//! This is where the first invariant is kept: a reply of [`Reply::AfterDurable`] is
//! released only after the journal has returned `Ok` for the frame's record, which means
//! written and fdatasync'd. A journal error turns the ACK into a NAK (the panel retries,
//! or goes to its backup receiver) and is counted; it is never an ACK.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwap;
use compact_str::{CompactString, ToCompactString};
use prometheus::{Histogram, HistogramVec, IntCounter, IntCounterVec};
use time::UtcDateTime;

use crate::journal::JournalHandle;
use crate::ops::config::Settings;
use crate::ops::metrics::{token_slot, Metrics, Slots, TOKEN_LABELS};
use crate::ops::throttle::{Throttle, Verdict};
use crate::protocol::codes::EventClass;
use crate::protocol::dc09::CrcForm;
use crate::protocol::response;
use crate::protocol::text::escape;
use crate::receiver::decide::{
    decide, DuhReason, FrameSummary, NakReason, Outcome, Reply, SilenceReason, TimePolicy,
};
use crate::receiver::dedup::Dedup;
use crate::receiver::event::{rfc3339, Transport};
use crate::receiver::normalize::Arrival;
use crate::receiver::record::{JournalRecord, RecordKind};
use crate::receiver::supervision::{Change, Supervisor};

/// Shared state of the receiving side.
pub struct Station {
    pub settings: ArcSwap<Settings>,
    pub journal: JournalHandle,
    pub dedup: Dedup,
    pub metrics: Arc<Metrics>,
    /// Locked briefly per acknowledged frame (a hash lookup) and once a second by the
    /// supervision timer.
    pub supervisor: std::sync::Mutex<Supervisor>,
    /// Frames of the last hour by reply, for `/status`.
    pub recent: crate::ops::recent::Recent,
    /// The metric series every frame moves, looked up once.
    pub series: FrameSeries,
}

/// The per-frame series of [`Metrics`], numbered by transport, token, outcome and class
/// so that counting a frame is an atomic add, not a lookup by label values.
pub struct FrameSeries {
    frames_family: IntCounterVec,
    latency_family: HistogramVec,
    events_family: IntCounterVec,
    /// `tocsin_frames_total`, by transport, token and outcome (which gives reply and reason).
    frames: Slots<IntCounter>,
    /// `tocsin_ack_latency_seconds`, by transport and reply.
    latency: Slots<Histogram>,
    /// `tocsin_events_total`, by class.
    events: Slots<IntCounter>,
}

/// Transports, numbered by [`transport_slot`].
const TRANSPORTS: usize = 4;
/// Outcomes, numbered by [`outcome_slot`].
const OUTCOMES: usize = 17;
/// Replies (`ack`, `nak`, `duh`, `none`).
const REPLIES: usize = 4;

fn transport_slot(t: Transport) -> usize {
    match t {
        Transport::Tcp => 0,
        Transport::Udp => 1,
        Transport::Offline => 2,
        Transport::Internal => 3,
    }
}

/// The outcome's number below [`OUTCOMES`], and its reply's below [`REPLIES`].
fn outcome_slot(o: Outcome) -> (usize, usize) {
    match o {
        Outcome::AckNew => (0, 0),
        Outcome::AckDuplicate => (1, 0),
        Outcome::AckNull => (2, 0),
        Outcome::Nak(r) => (
            match r {
                NakReason::Timestamp => 3,
                NakReason::Decrypt => 4,
                NakReason::NoKey => 5,
                NakReason::UnknownAccount => 6,
                NakReason::EncryptionRequired => 7,
                NakReason::Journal => 8,
            },
            1,
        ),
        Outcome::Duh(r) => (
            match r {
                DuhReason::UnknownToken => 9,
                DuhReason::Content => 10,
            },
            2,
        ),
        Outcome::Silent(r) => (
            match r {
                SilenceReason::Crc => 11,
                SilenceReason::Length => 12,
                SilenceReason::Framing => 13,
                SilenceReason::Syntax => 14,
                SilenceReason::TooLong => 15,
                SilenceReason::Reply => 16,
            },
            3,
        ),
    }
}

impl FrameSeries {
    pub fn new(m: &Metrics) -> FrameSeries {
        FrameSeries {
            frames_family: m.frames.clone(),
            latency_family: m.ack_latency.clone(),
            events_family: m.events.clone(),
            frames: Slots::new(TRANSPORTS * TOKEN_LABELS * OUTCOMES),
            latency: Slots::new(TRANSPORTS * REPLIES),
            events: Slots::new(EventClass::ALL.len()),
        }
    }

    fn frame(&self, transport: Transport, summary: &FrameSummary, ended: Outcome, took: f64) {
        let t = transport_slot(transport);
        let (token, token_text) = token_slot(&summary.token, summary.encrypted);
        let (outcome, reply) = outcome_slot(ended);
        let (reply_text, reason_text) = (ended.reply_label(), ended.reason_label());
        let transport_text = transport.as_str();
        self.frames.with(
            (t * TOKEN_LABELS + token) * OUTCOMES + outcome,
            || {
                self.frames_family.with_label_values(&[
                    transport_text,
                    token_text,
                    reply_text,
                    reason_text,
                ])
            },
            IntCounter::inc,
        );
        self.latency.with(
            t * REPLIES + reply,
            || {
                self.latency_family
                    .with_label_values(&[transport_text, reply_text])
            },
            |h| h.observe(took),
        );
    }

    fn event(&self, class: EventClass, n: u64) {
        self.events.with(
            class as usize,
            || self.events_family.with_label_values(&[class.as_str()]),
            |c| c.inc_by(n),
        );
    }

    /// Counts events given as a count per class (indexed by `class as usize`).
    fn events(&self, counts: &ClassCounts) {
        for class in EventClass::ALL {
            match counts.get(class as usize) {
                Some(&n) if n > 0 => self.event(class, n),
                _ => {}
            }
        }
    }
}

/// Events of one frame by class, indexed by `class as usize`: counted before the record
/// takes the events, without a list of them.
type ClassCounts = [u64; EventClass::ALL.len()];

fn class_counts(events: &[crate::receiver::event::Event]) -> ClassCounts {
    let mut counts = [0; EventClass::ALL.len()];
    for e in events {
        if let Some(n) = counts.get_mut(e.class as usize) {
            *n += 1;
        }
    }
    counts
}

/// Rejection log lines per second at most: a flood is counted in metrics, not written out.
const REJECTION_LINES_PER_SECOND: u64 = 20;
static REJECTION_LOG: Throttle = Throttle::new(REJECTION_LINES_PER_SECOND);

/// Microseconds since the Unix epoch of a receiver time.
pub fn micros(t: UtcDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos() / 1000).unwrap_or(i64::MAX)
}

impl Station {
    /// Handles one frame that arrived at `started`; returns the bytes to send back, if
    /// any. Resolves only when the reply may be sent.
    ///
    /// The caller reads the monotonic clock (it needs it anyway, for its idle timer); this
    /// reads the wall clock once, and the monotonic clock around the journal append only.
    pub async fn handle_frame(
        &self,
        raw: &[u8],
        transport: Transport,
        peer: Option<SocketAddr>,
        peer_label: Option<&str>,
        started: Instant,
    ) -> Option<Vec<u8>> {
        let now = UtcDateTime::now();
        let now_us = micros(now);
        let now_s = u64::try_from(now.unix_timestamp()).unwrap_or(0);
        let settings = self.settings.load();
        let config = &settings.config;
        let time = TimePolicy {
            past: time::Duration::try_from(config.time.past).unwrap_or(time::Duration::seconds(40)),
            future: time::Duration::try_from(config.time.future)
                .unwrap_or(time::Duration::seconds(20)),
            check_clear: config.time.check_clear,
            disabled: false,
        };
        let arrival = Arrival {
            now,
            transport,
            peer,
            peer_label,
            receiver: &config.receiver.id,
        };
        let mut random = [0u8; 16];
        rand::fill(&mut random);
        let mut d = decide(
            raw,
            &arrival,
            &settings.accounts,
            &time,
            &self.dedup.at(now_us),
            &random,
        );
        let peer_text = match peer_label {
            Some(l) => Some(CompactString::new(l)),
            None => peer.map(|p| p.to_compact_string()),
        };
        let record = JournalRecord {
            kind: RecordKind::Frame,
            at: rfc3339(now),
            transport: Some(CompactString::const_new(transport.as_str())),
            peer: peer_text.clone(),
            // Every event of the frame carries it already escaped.
            raw: Some(
                d.events
                    .first()
                    .map_or_else(|| escape(raw), |e| e.raw.clone()),
            ),
            reply: d.reply.bytes().map(escape),
            outcome: Some(CompactString::const_new(d.outcome.reply_label())),
            reason: Some(CompactString::const_new(d.outcome.reason_label())),
            account: d.summary.account.clone(),
            key: d.content_key.map(|k| k.to_hex()),
            events: std::mem::take(&mut d.events),
        };
        let classes = class_counts(&record.events);
        let payload = record.into_bytes();

        // When the reply was ready, if known before the end: the time after a durable
        // append serves both latencies (what follows it is a few counters, unless it
        // journals supervision changes).
        let mut replied_at = None;
        let reply = match d.reply {
            Reply::AfterDurable(ack) => {
                let append_started = Instant::now();
                match self.journal.append(now_us, payload).await {
                    Ok(_) => {
                        let durable_at = Instant::now();
                        replied_at = Some(durable_at);
                        self.metrics.journal_append.observe(
                            durable_at
                                .saturating_duration_since(append_started)
                                .as_secs_f64(),
                        );
                        if let Some(k) = d.content_key {
                            self.dedup.insert(k, now_us);
                        }
                        self.series.events(&classes);
                        Some(ack)
                    }
                    Err(e) => {
                        tracing::error!(
                            peer = peer_text.as_deref().unwrap_or("-"),
                            account = d.summary.account.as_deref().unwrap_or("-"),
                            error = %e,
                            "journal could not make the frame durable: NAK instead of ACK"
                        );
                        self.metrics
                            .journal_errors
                            .with_label_values(&["nak"])
                            .inc();
                        d.outcome = Outcome::Nak(NakReason::Journal);
                        let mut nak = Vec::with_capacity(48);
                        let form = d.summary.crc_form.unwrap_or(CrcForm::Ascii);
                        response::nak(form, now, &mut nak);
                        Some(nak)
                    }
                }
            }
            Reply::Now(bytes) => {
                // Rejections that raised an event (unknown account, clear frame on an
                // encrypted account) are journaled without making the panel wait.
                self.series.events(&classes);
                self.audit(now_us, payload).await;
                Some(bytes)
            }
            Reply::None => {
                self.audit(now_us, payload).await;
                None
            }
        };
        let acked = matches!(
            d.outcome,
            Outcome::AckNew | Outcome::AckNull | Outcome::AckDuplicate
        );
        if let (true, Some(heard)) = (acked, &d.heard) {
            let changes = self
                .supervisor
                .lock()
                .map(|mut s| s.heard(&heard.account, &heard.path, now_s))
                .unwrap_or_default();
            if !changes.is_empty() {
                self.record_changes(&changes, now).await;
                // That waited for the journal again: read the clock when it is done.
                replied_at = None;
            }
        }
        let verdict = if acked {
            Verdict::Drop
        } else {
            REJECTION_LOG.check(now_s)
        };
        if let Verdict::Log { suppressed } = verdict {
            if suppressed > 0 {
                tracing::warn!(suppressed, "rejection lines suppressed (more than {REJECTION_LINES_PER_SECOND} a second); counts are in tocsin_frames_total");
            }
            tracing::warn!(
                peer = peer_text.as_deref().unwrap_or("-"),
                transport = transport.as_str(),
                token = d.summary.token.as_str(),
                account = d.summary.account.as_deref().unwrap_or("-"),
                reply = d.outcome.reply_label(),
                reason = d.outcome.reason_label(),
                detail = d.detail.as_deref().unwrap_or(""),
                "frame rejected"
            );
        }
        let took = replied_at
            .unwrap_or_else(Instant::now)
            .saturating_duration_since(started);
        self.recent.record(now_s, d.outcome.reply_label());
        self.series
            .frame(transport, &d.summary, d.outcome, took.as_secs_f64());
        reply
    }

    /// Journals a record nobody waits for (the audit of a frame answered at once).
    async fn audit(&self, now_us: i64, payload: Vec<u8>) {
        if let Err(e) = self.journal.append_nowait(now_us, payload).await {
            tracing::error!(error = %e, "journal refused an audit record");
            self.metrics
                .journal_errors
                .with_label_values(&["audit_lost"])
                .inc();
        }
    }

    /// Journals supervision changes as receiver events.
    pub async fn record_changes(&self, changes: &[Change], now: UtcDateTime) {
        let receiver = self.settings.load().config.receiver.id.clone();
        let events: Vec<_> = changes.iter().map(|c| c.to_event(&receiver, now)).collect();
        for e in &events {
            tracing::warn!(account = %e.account, code = %e.code, path = e.path.as_deref().unwrap_or("-"), "{}", e.text);
            self.series.event(e.class, 1);
        }
        let record = JournalRecord::internal(rfc3339(now), events);
        if let Err(e) = self.journal.append(micros(now), record.into_bytes()).await {
            tracing::error!(error = %e, "supervision events could not be journaled");
            self.metrics
                .journal_errors
                .with_label_values(&["audit_lost"])
                .inc();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    /// Every outcome, so that a slot shared by two label sets would be caught here.
    fn all_outcomes() -> Vec<Outcome> {
        let mut all = vec![Outcome::AckNew, Outcome::AckDuplicate, Outcome::AckNull];
        all.extend(
            [
                NakReason::Timestamp,
                NakReason::Decrypt,
                NakReason::NoKey,
                NakReason::UnknownAccount,
                NakReason::EncryptionRequired,
                NakReason::Journal,
            ]
            .map(Outcome::Nak),
        );
        all.extend([DuhReason::UnknownToken, DuhReason::Content].map(Outcome::Duh));
        all.extend(
            [
                SilenceReason::Crc,
                SilenceReason::Length,
                SilenceReason::Framing,
                SilenceReason::Syntax,
                SilenceReason::TooLong,
                SilenceReason::Reply,
            ]
            .map(Outcome::Silent),
        );
        all
    }

    #[test]
    fn each_label_set_has_a_slot_of_its_own() {
        let outcomes = all_outcomes();
        let slots: HashSet<usize> = outcomes.iter().map(|&o| outcome_slot(o).0).collect();
        assert_eq!(slots.len(), outcomes.len());
        assert!(slots.iter().all(|&s| s < OUTCOMES));
        for o in outcomes {
            let reply = ["ack", "nak", "duh", "none"]
                .get(outcome_slot(o).1)
                .copied();
            assert_eq!(reply, Some(o.reply_label()), "{o:?}");
        }
        let tokens = ["SIA-DCS", "ADM-CID", "NULL", "", "XYZ"];
        let mut seen = std::collections::HashMap::new();
        for t in tokens {
            for encrypted in [false, true] {
                let (slot, label) = token_slot(t, encrypted);
                assert!(slot < TOKEN_LABELS);
                assert_eq!(*seen.entry(slot).or_insert(label), label);
            }
        }
        assert_eq!(seen.len(), TOKEN_LABELS);
        let transports = [
            Transport::Tcp,
            Transport::Udp,
            Transport::Offline,
            Transport::Internal,
        ];
        let slots: HashSet<usize> = transports.iter().map(|&t| transport_slot(t)).collect();
        assert_eq!(slots.len(), TRANSPORTS);
        assert!(slots.iter().all(|&s| s < TRANSPORTS));
    }

    #[test]
    fn classes_are_counted_by_their_own_slot() {
        let m = Metrics::new().unwrap();
        let series = FrameSeries::new(&m);
        let mut counts = [0; EventClass::ALL.len()];
        for (n, class) in EventClass::ALL.iter().enumerate() {
            if let Some(c) = counts.get_mut(*class as usize) {
                *c = n as u64 + 1;
            }
        }
        series.events(&counts);
        for (n, class) in EventClass::ALL.iter().enumerate() {
            let got = m.events.with_label_values(&[class.as_str()]).get();
            assert_eq!(got, n as u64 + 1, "{}", class.as_str());
        }
    }
}
