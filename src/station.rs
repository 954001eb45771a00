//! The path every frame takes between the socket and the reply, shared by TCP and UDP:
//! decide, journal, remember, count, log.
//!
//! This is where the first invariant is kept, and the types keep it: an ACK that hands
//! over new events comes out of the decision as a [`PendingAck`], whose bytes are released
//! only by the journal's [`Durable`](crate::journal::Durable) proof for the frame's own
//! record (written and fdatasync'd). A journal error turns the ACK into a NAK (the panel
//! retries, or goes to its backup receiver) and is counted; it is never an ACK.

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
use crate::protocol::text::escape;
use crate::receiver::decide::{decide, NakReason, Outcome, PendingAck, Reply, TimePolicy};
use crate::receiver::dedup::Dedup;
use crate::receiver::event::{rfc3339, Transport};
use crate::receiver::normalize::Arrival;
use crate::receiver::record::{JournalRecord, RecordKind};
use crate::receiver::supervision::Stamp;
use crate::throttle::{Throttle, Verdict};

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

/// Rejection log lines a minute at most: a misconfigured panel shows in the log, a flood
/// is counted in metrics (`tocsin_frames_total`), not written out.
const REJECTION_LINES_PER_MINUTE: u64 = 20;
static REJECTION_LOG: Throttle = Throttle::per_minute(REJECTION_LINES_PER_MINUTE);

/// Lines about frames the journal refused (a full disk refuses every frame): the first
/// ones say why, the rest are counted in `tocsin_journal_refused_total`.
static JOURNAL_ERROR_LOG: Throttle = Throttle::per_minute(10);

/// The journal tag of a receiver record (see [`crate::journal::Tagger`]): its content
/// key, present on every acknowledged new frame. The segment summaries keep it, so the
/// dedup window is rebuilt after a restart from 24 bytes a record instead of every record.
///
/// Called by the journal writer for every record it writes: a search for the key's field,
/// not a parse. `"key":"` cannot occur inside a JSON string (its quotes would be escaped),
/// and the record's own `key` is its only field of that name.
pub fn dedup_tag(payload: &[u8]) -> Option<u128> {
    const FIELD: &[u8] = b",\"key\":\"";
    let json = crate::receiver::record::json_of(payload).ok()?;
    let at = memchr::memmem::find(json, FIELD)? + FIELD.len();
    let hex = json.get(at..at + 32)?;
    if json.get(at + 32) != Some(&b'"') {
        return None;
    }
    u128::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()
}
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
            reply: d.reply.inspect().map(escape),
            outcome: Some(CompactString::const_new(d.outcome.reply_label())),
            reason: Some(CompactString::const_new(d.outcome.reason_label())),
            account: d.summary.account.clone(),
            key: d.content_key.map(|k| k.to_hex()),
            events: std::mem::take(&mut d.events),
        };
        let classes = class_counts(&record.events);
        if d.key_blocks > 0 {
            self.metrics.key_blocks.inc_by(u64::from(d.key_blocks));
        }
        let payload = record.to_bytes();
        let mut alarms = crate::ops::recent::alarms_of(record.events);

        // When the reply was ready, if known before the end: the time after a durable
        // append serves both latencies (what follows it is a few counters).
        let mut replied_at = None;
        let reply = match std::mem::replace(&mut d.reply, Reply::None) {
            Reply::AfterDurable(ack) => {
                let append_started = Instant::now();
                let ticket = ack.ticket();
                // The content key is the record's dedup tag: the journal need not find it.
                let tag = d.content_key.map(|k| k.0);
                match self
                    .journal
                    .append_durable(now_us, payload, ticket, tag)
                    .await
                {
                    Ok(proof) => match ack.release(proof) {
                        Ok(bytes) => {
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
                            Some(bytes)
                        }
                        Err(unreleased) => Some(self.refuse(
                            &mut d,
                            unreleased,
                            (raw, now),
                            &peer_text,
                            "the journal's proof named another record",
                        )),
                    },
                    Err(e) => {
                        self.metrics
                            .journal_refused
                            .with_label_values(&[e.label()])
                            .inc();
                        Some(self.refuse(&mut d, ack, (raw, now), &peer_text, &e.to_string()))
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
        // A frame the journal refused was logged above, with the reason.
        let verdict = if acked || d.outcome == Outcome::Nak(NakReason::Journal) {
            Verdict::Drop
        } else {
            REJECTION_LOG.check_now()
        };
        if let Verdict::Log { suppressed } = verdict {
            tracing::warn!(
                peer = peer_text.as_deref().unwrap_or("-"),
                transport = transport.as_str(),
                token = d.summary.token.as_str(),
                account = d.summary.account.as_deref().unwrap_or("-"),
                reply = d.outcome.reply_label(),
                reason = d.outcome.reason_label(),
                detail = d.detail.as_deref().unwrap_or(""),
                suppressed,
                "frame rejected (at most {REJECTION_LINES_PER_MINUTE} such lines a minute; all are counted in tocsin_frames_total)"
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

    /// The frame's record is not known durable: its ACK is dropped unsent, the frame gets a
    /// NAK (the panel retries, or goes to its backup receiver), counted and logged. Returns
    /// the NAK, answering the frame `(raw, received at)`.
    fn refuse(
        &self,
        d: &mut crate::receiver::decide::Decision,
        ack: PendingAck,
        (raw, now): (&[u8], UtcDateTime),
        peer_text: &Option<CompactString>,
        why: &str,
    ) -> Vec<u8> {
        drop(ack);
        self.metrics
            .journal_errors
            .with_label_values(&["nak"])
            .inc();
        if let Verdict::Log { suppressed } = JOURNAL_ERROR_LOG.check_now() {
            tracing::error!(
                peer = peer_text.as_deref().unwrap_or("-"),
                account = d.summary.account.as_deref().unwrap_or("-"),
                error = why,
                suppressed,
                "journal could not make the frame durable: NAK instead of ACK"
            );
        }
        d.outcome = Outcome::Nak(NakReason::Journal);
        d.summary.nak_reply(raw, now)
    }

    /// Journals a record nobody waits for (the audit of a frame answered at once).
    async fn audit(&self, now_us: i64, payload: Vec<u8>) {
        if let Err(e) = self.journal.append_nowait(now_us, payload).await {
            if let Verdict::Log { suppressed } = JOURNAL_ERROR_LOG.check_now() {
                tracing::error!(error = %e, suppressed, "journal refused an audit record");
            }
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
    use crate::receiver::event::ContentKey;

    fn record(key: Option<u128>, events: usize) -> JournalRecord {
        let now = UtcDateTime::from_unix_timestamp(1_700_000_000).unwrap();
        let event = crate::receiver::event::Event::internal(
            ContentKey(9).event_id(0),
            now,
            "rx",
            "1234",
            "BA",
            (
                crate::protocol::codes::Qualifier::New,
                crate::protocol::codes::EventClass::Alarm,
                crate::protocol::codes::Category::Burglary,
            ),
            "text with \",\"key\":\" inside".to_string(),
        );
        JournalRecord {
            kind: RecordKind::Frame,
            at: rfc3339(now),
            transport: Some("tcp".into()),
            peer: None,
            raw: Some("\\n...\"key\":\"\\r".into()),
            reply: None,
            outcome: Some("ack".into()),
            reason: Some("new".into()),
            account: Some("1234".into()),
            key: key.map(|k| ContentKey(k).to_hex()),
            events: vec![event; events],
        }
    }

    /// The first invariant, at the level of the whole frame path: a journal whose sync
    /// fails gets the panel a NAK, and nothing of that frame is acknowledged anywhere (no
    /// record kept, no dedup key, supervision not told); the same frame sent again once the
    /// disk works gets its ACK, kept once.
    #[tokio::test]
    async fn a_failing_journal_gets_the_panel_a_nak_and_acknowledges_nothing() {
        use crate::journal::{Faults, Journal, JournalConfig, MIN_SEGMENT_SIZE};
        use crate::protocol::dc09::{parse_frame, CrcForm};
        use crate::protocol::encode::{encode, FrameSpec};

        let tmp = tempfile::tempdir_in("/var/tmp").unwrap();
        let faults = Faults::fail_syncs(0, 1);
        let mut config = JournalConfig::new(tmp.path());
        config.segment_size = MIN_SEGMENT_SIZE;
        config.faults = Some(Arc::clone(&faults));
        let (journal, _) = Journal::open(config).unwrap();
        let metrics = Arc::new(Metrics::new().unwrap());
        let (inbox, mut heard) = crate::supervision::Inbox::detached(16);
        let settings = crate::ops::config::Config::default_run().resolve().unwrap();
        let station = Station {
            settings: ArcSwap::from_pointee(settings),
            journal: journal.handle(),
            dedup: Dedup::with_limit(std::time::Duration::from_secs(60), 1000),
            metrics: Arc::clone(&metrics),
            supervision: inbox,
            recent: Arc::default(),
            series: FrameSeries::new(&metrics),
        };
        let mut raw = Vec::new();
        let spec = FrameSpec {
            token: "SIA-DCS",
            seq: "0001",
            receiver: None,
            line: "1",
            account: "1234",
            data: b"#1234|NBA1",
            ext: &[],
            timestamp: None,
            form: CrcForm::Ascii,
        };
        encode(&spec, None, &[0; 16], &mut raw);
        let token = |reply: &[u8]| parse_frame(reply).unwrap().header.token.to_string();

        let reply = station
            .handle_frame(&raw, Transport::Tcp, None, None, Instant::now())
            .await
            .unwrap();
        assert_eq!(token(&reply), "NAK");
        assert_eq!(station.dedup.len(), 0, "no dedup key for a frame not kept");
        assert!(heard.try_recv().is_err(), "supervision heard a NAKed frame");
        assert_eq!(metrics.journal_errors.with_label_values(&["nak"]).get(), 1);

        let reply = station
            .handle_frame(&raw, Transport::Tcp, None, None, Instant::now())
            .await
            .unwrap();
        assert_eq!(token(&reply), "ACK");
        assert!(heard.try_recv().is_ok());
        drop(station);
        journal.close().await.unwrap();

        let (journal, _) = Journal::open(JournalConfig::new(tmp.path())).unwrap();
        let mut reader = journal.handle().reader();
        let mut acked = 0;
        while let Some(rec) = reader.next_record().unwrap() {
            let r = JournalRecord::from_bytes(&rec.payload).unwrap();
            assert_ne!(r.outcome.as_deref(), Some("nak"), "{r:?}");
            if r.outcome.as_deref() == Some("ack") {
                acked += 1;
                assert_eq!(r.events.len(), 1);
            }
        }
        assert_eq!(acked, 1, "the frame is kept once, from its second sending");
    }

    #[test]
    fn the_dedup_tag_is_the_records_content_key() {
        for k in [
            0u128,
            1,
            u128::MAX,
            0x0123_4567_89ab_cdef_fedc_ba98_7654_3210,
        ] {
            for events in [0, 1, 3] {
                let payload = record(Some(k), events).into_bytes();
                assert_eq!(dedup_tag(&payload), Some(k), "key {k:x}, {events} events");
                let back = JournalRecord::from_bytes(&payload).unwrap();
                assert_eq!(
                    back.key.as_deref().and_then(ContentKey::from_hex),
                    Some(ContentKey(k))
                );
            }
        }
        assert_eq!(dedup_tag(&record(None, 2).into_bytes()), None);
        assert_eq!(dedup_tag(b""), None);
        assert_eq!(dedup_tag(b"{\"kind\":\"frame\",\"key\":\"12\"}"), None);
    }
}
