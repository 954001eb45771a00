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
use time::UtcDateTime;

use crate::journal::JournalHandle;
use crate::ops::config::Settings;
use crate::ops::frame_series::{class_counts, FrameSeries};
use crate::ops::metrics::Metrics;
use crate::ops::throttle::{Throttle, Verdict};
use crate::protocol::text::escape;
use crate::receiver::decide::{decide, NakReason, Outcome, Reply, TimePolicy};
use crate::receiver::dedup::Dedup;
use crate::receiver::event::{rfc3339, Transport};
use crate::receiver::normalize::Arrival;
use crate::receiver::record::{JournalRecord, RecordKind};
use crate::receiver::supervision::Stamp;

/// Shared state of the receiving side.
pub struct Station {
    pub settings: ArcSwap<Settings>,
    pub journal: JournalHandle,
    pub dedup: Dedup,
    pub metrics: Arc<Metrics>,
    /// Where acknowledged frames are told to supervision: a queue that never waits (the
    /// supervision task owns the state).
    pub supervision: crate::supervision::Inbox,
    /// Frames of the last hour by reply, for `/status`.
    pub recent: Arc<crate::ops::recent::Recent>,
    /// The metric series every frame moves, looked up once.
    pub series: FrameSeries,
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
            // The events' arrival time is this same instant, already written.
            at: d
                .events
                .first()
                .map_or_else(|| rfc3339(now), |e| e.received_at.clone()),
            transport: Some(CompactString::const_new(transport.as_str())),
            peer: peer_text.clone(),
            // Every event of the frame carries it already escaped (any key masked).
            raw: Some(
                d.events
                    .first()
                    .map_or_else(|| d.raw_text(raw), |e| e.raw.clone()),
            ),
            reply: d.reply.bytes().map(escape),
            outcome: Some(CompactString::const_new(d.outcome.reply_label())),
            reason: Some(CompactString::const_new(d.outcome.reason_label())),
            account: d.summary.account.clone(),
            key: d.content_key.map(|k| k.to_hex()),
            events: std::mem::take(&mut d.events),
        };
        let classes = class_counts(&record.events);
        let mut alarms = crate::ops::recent::alarms_of(&record.events);
        if d.key_blocks > 0 {
            self.metrics.key_blocks.inc_by(u64::from(d.key_blocks));
        }
        let payload = record.into_bytes();

        // When the reply was ready, if known before the end: the time after a durable
        // append serves both latencies (what follows it is a few counters).
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
                        self.recent
                            .record_events(now_s, &classes, std::mem::take(&mut alarms));
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
                        Some(d.summary.nak_reply(raw, now))
                    }
                }
            }
            Reply::Now(bytes) => {
                // Rejections that raised an event (unknown account, clear frame on an
                // encrypted account) are journaled without making the panel wait.
                self.series.events(&classes);
                self.recent
                    .record_events(now_s, &classes, std::mem::take(&mut alarms));
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
        if let (true, Some(heard)) = (acked, d.heard.take()) {
            // Heard at arrival, on both clocks already read; any restore it causes is
            // journaled by the supervision task, the reply does not wait for it.
            self.supervision.heard(
                heard,
                Stamp {
                    at: started,
                    wall_ms: now_us.div_euclid(1000),
                },
            );
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
}
