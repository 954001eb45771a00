//! The JSON-lines sink: one normalized event per line, to stdout or to a file. The default
//! output, and the one that needs nothing else running.
//!
//! Delivery is at least once: the cursor is stored at most every half second, always right
//! after a flush (so the output holds every event up to it), and at shutdown; after a crash
//! the last few events may be written again (their `id` tells them apart). A sink without a
//! stored cursor starts at the end of the journal, so enabling it on an old journal does
//! not replay its history.
//!
//! Cost: this runs beside reception on the same cores, at the full event rate, so it works
//! in batches, on a thread of its own (see [`run`]). It wakes when the journal's durable end moves, reads every record durable by
//! then, and writes their events with one write and one flush; the next batch is read no
//! sooner than [`WRITE_EVERY`] later, so under load the records of many group commits share
//! one wake-up and one write, while a lone event on a quiet line goes out at once. An
//! event's line is the JSON the receiver stored in the record, sliced out by the record's
//! index (see `receiver::record`): the same bytes as parsing and re-serialising it, without
//! the cost. Records written before the index existed are parsed, as they always were.
//!
//! Delivery latency (`tocsin_sink_delivery_seconds`) is taken when the flush of a batch
//! returns, for every record of the batch that had an event: only then are its lines surely
//! in the file (written, not fsynced: the journal is the durable copy).

use std::time::Duration;

use std::io::Write;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::journal::{CursorStore, JournalHandle, Lsn, Record};
use crate::receiver::record::{self, JournalRecord};
use crate::throttle::{Throttle, Verdict};

/// How often the cursor is made durable, at most.
const CURSOR_EVERY: Duration = Duration::from_millis(500);

/// The least time between two batches: bounds the sink's wake-ups and writes under load
/// (ten a second), and adds at most this much to an event's delivery.
const WRITE_EVERY: Duration = Duration::from_millis(100);

/// A batch is written once its lines reach this size (or it holds [`MAX_RECORDS`] records),
/// even if more records are durable: memory stays bounded while the sink catches up on a
/// backlog. Below tokio's largest single write to a file, so a batch is one write.
const MAX_BATCH_BYTES: usize = 1 << 20;

/// See [`MAX_BATCH_BYTES`]; also bounds the arrival times kept for the delivery latency.
const MAX_RECORDS: usize = 1 << 14;

/// Records skipped as unreadable: lines a minute at most, each with the count suppressed.
static SKIPPED_LOG: Throttle = Throttle::per_minute(5);

/// Why the sink stopped.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("journal: {0}")]
    Journal(#[from] crate::journal::JournalError),
    #[error("writing events: {0}")]
    Write(#[from] std::io::Error),
}

/// Writes every event journaled after the cursor `name` to `out`, until `shutdown`; then
/// writes what is already durable and stores the cursor.
///
/// The sink runs on a thread of its own (with a single-threaded runtime for its timers),
/// and writes its output and its cursor there with plain blocking calls: an async file
/// would copy every batch into a buffer of its own and hand it to yet another thread. As
/// one task among thousands of connections it would wait its turn in the
/// workers' queues at each step of a batch, hundreds of milliseconds apiece under load, and
/// fall behind; and its journal reads would hold up those connections.
pub async fn run(
    journal: JournalHandle,
    name: &str,
    out: Box<dyn Write + Send>,
    metrics: super::SinkMetrics,
    shutdown: CancellationToken,
) -> Result<(), SinkError> {
    let owned = name.to_owned();
    super::on_own_thread(name, move || async move {
        run_here(journal, &owned, out, metrics, shutdown).await
    })
    .await
}

async fn run_here(
    journal: JournalHandle,
    name: &str,
    mut out: Box<dyn Write + Send>,
    metrics: super::SinkMetrics,
    shutdown: CancellationToken,
) -> Result<(), SinkError> {
    metrics.connected.set(1);
    let cursors = CursorStore::open(journal.data_dir())?;
    let mut reader = journal.reader();
    let start = match cursors.load_cursor(name)? {
        Some(lsn) => lsn + 1,
        None => journal.durable_lsn() + 1,
    };
    reader.seek(start);
    let mut batch = Batch::new(start.saturating_sub(1));
    let mut stored = batch.last;
    let mut last_store = Instant::now();
    // Long ago: the first batch is not held back.
    let mut last_write = Instant::now()
        .checked_sub(WRITE_EVERY)
        .unwrap_or(last_store);
    loop {
        // Wait until a record is durable (or the cursor is due after the last batch).
        let cursor_due = last_store + CURSOR_EVERY;
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            r = reader.next_wait() => match r? {
                Some(rec) => batch.add(&rec),
                // The journal closed: nothing more will come.
                None => break,
            },
            _ = tokio::time::sleep_until(cursor_due), if batch.last != stored => {
                store(&cursors, name, batch.last)?;
                stored = batch.last;
                last_store = Instant::now();
                continue;
            }
        }
        // Let more records join the batch, if one was written a moment ago.
        let due = last_write + WRITE_EVERY;
        if Instant::now() < due {
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep_until(due) => {}
            }
        }
        // Everything durable now, in batches of bounded size.
        loop {
            let more = batch.fill(&mut reader)?;
            batch.write(&mut out, &metrics)?;
            last_write = Instant::now();
            metrics
                .backlog
                .set(journal.durable_lsn().saturating_sub(batch.last) as i64);
            if batch.last != stored && last_store.elapsed() >= CURSOR_EVERY {
                store(&cursors, name, batch.last)?;
                stored = batch.last;
                last_store = Instant::now();
            }
            if !more || shutdown.is_cancelled() {
                break;
            }
        }
    }
    // Drain what is durable now, then record how far we got.
    while batch.fill(&mut reader)? {
        batch.write(&mut out, &metrics)?;
    }
    batch.write(&mut out, &metrics)?;
    if batch.last != stored {
        store(&cursors, name, batch.last)?;
    }
    Ok(())
}

/// Stores the cursor (two fsyncs), blocking this sink's own thread and nobody else.
fn store(cursors: &CursorStore, name: &str, lsn: Lsn) -> Result<(), SinkError> {
    Ok(cursors.store_cursor(name, lsn)?)
}

/// Lines read from the journal and not yet written.
struct Batch {
    lines: Vec<u8>,
    events: u64,
    /// Arrival times of the records that gave lines, for the delivery latency.
    arrivals: Vec<i64>,
    /// The last record read.
    last: Lsn,
}

impl Batch {
    fn new(last: Lsn) -> Batch {
        Batch {
            lines: Vec::with_capacity(64 * 1024),
            events: 0,
            arrivals: Vec::new(),
            last,
        }
    }

    fn full(&self) -> bool {
        self.lines.len() >= MAX_BATCH_BYTES || self.arrivals.len() >= MAX_RECORDS
    }

    /// Adds the records durable now until the batch is full; true if it filled up (more
    /// records may be waiting).
    fn fill(&mut self, reader: &mut crate::journal::JournalReader) -> Result<bool, SinkError> {
        while !self.full() {
            match reader.next_record()? {
                Some(rec) => self.add(&rec),
                None => return Ok(false),
            }
        }
        Ok(true)
    }

    /// Appends the record's events, one line each.
    fn add(&mut self, rec: &Record) {
        let n = append_lines(rec, &mut self.lines);
        if n > 0 {
            self.events += n;
            self.arrivals.push(rec.ts_micros);
        }
        self.last = rec.lsn;
    }

    /// Writes and flushes the lines, then observes the delivery of every record in them:
    /// one clock read per batch, one histogram sample per record.
    fn write(
        &mut self,
        out: &mut (dyn Write + Send),
        metrics: &super::SinkMetrics,
    ) -> Result<(), std::io::Error> {
        if self.lines.is_empty() {
            return Ok(());
        }
        out.write_all(&self.lines)?;
        out.flush()?;
        self.lines.clear();
        if self.lines.capacity() > 2 * MAX_BATCH_BYTES {
            // A record near the size limit went through: give its room back.
            self.lines.shrink_to(64 * 1024);
        }
        metrics.published.inc_by(std::mem::take(&mut self.events));
        let now = super::unix_micros();
        for arrived in self.arrivals.drain(..) {
            super::observe_delivery(&metrics.delivery, arrived, now);
        }
        Ok(())
    }
}

/// Appends the record's events to `lines`, one JSON object and a newline each; returns how
/// many. The events' JSON as stored, by the index; a record without an index (journaled
/// before it existed) is parsed and its events written as serde_json writes them.
fn append_lines(rec: &Record, lines: &mut Vec<u8>) -> u64 {
    let mark = lines.len();
    let mut n = 0;
    let walked = record::each_span(&rec.payload, |span| {
        if let Some(json) = rec.payload.get(span) {
            lines.extend_from_slice(json);
            lines.push(b'\n');
            n += 1;
        }
    });
    match walked {
        Some(Ok(())) => n,
        Some(Err(_)) => {
            // All or none: the lines of the entries before the damage go too.
            lines.truncate(mark);
            skipped(rec.lsn, "its event index is damaged");
            0
        }
        None => {
            let Ok(record) = JournalRecord::from_bytes(&rec.payload) else {
                skipped(rec.lsn, "it is not a receiver record");
                return 0;
            };
            let mut n = 0;
            for event in &record.events {
                let mark = lines.len();
                if serde_json::to_writer(&mut *lines, event).is_ok() {
                    lines.push(b'\n');
                    n += 1;
                } else {
                    lines.truncate(mark);
                }
            }
            n
        }
    }
}

fn skipped(lsn: Lsn, why: &str) {
    if let Verdict::Log { suppressed } = SKIPPED_LOG.check_now() {
        tracing::warn!(lsn, suppressed, "journal record skipped: {why}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::{Journal, JournalConfig};
    use crate::protocol::codes::{Category, EventClass, Qualifier};
    use crate::receiver::event::Event;

    fn one_event_record() -> Vec<u8> {
        let now = time::UtcDateTime::now();
        let event = Event::internal(
            "e1".into(),
            now,
            "rx",
            "1234",
            "BA",
            (Qualifier::New, EventClass::Alarm, Category::Burglary),
            "alarm".to_string(),
        );
        JournalRecord::internal("2024-01-15T12:00:05.000Z".into(), vec![event]).into_bytes()
    }

    /// An event with every kind of text the writer escapes, and `raw` shared with the
    /// record's (as a frame's events have it) or its own.
    fn event(id: &str, text: &str, raw: &str) -> Event {
        let mut e = Event::internal(
            id.into(),
            time::UtcDateTime::now(),
            "rx",
            "1234",
            "BA",
            (Qualifier::New, EventClass::Alarm, Category::Burglary),
            text.to_string(),
        );
        e.raw = raw.to_string();
        e.zone = Some("007".into());
        e
    }

    /// A record whose index is damaged after its first entry gives no line at all, not the
    /// first event alone: a record's events go out all or none.
    #[test]
    fn a_damaged_index_gives_no_line_even_after_a_good_entry() {
        let events = vec![event("a1", "one", "r"), event("a2", "two", "r")];
        let mut payload = JournalRecord::internal("t".into(), events).into_bytes();
        let good = payload.clone();
        // 0x01, count, then the first entry: start, length and three texts.
        let mut at = 1 + 4 + 4 + 4;
        for _ in 0..3 {
            let len = u16::from_le_bytes([payload[at], payload[at + 1]]) as usize;
            at += 2 + len;
        }
        // The second entry's length now runs past the payload.
        payload[at + 4..at + 8].copy_from_slice(&u32::MAX.to_le_bytes());
        let rec = Record {
            lsn: 7,
            ts_micros: 0,
            payload,
        };
        let mut lines = b"earlier\n".to_vec();
        assert_eq!(append_lines(&rec, &mut lines), 0);
        assert_eq!(lines, b"earlier\n");
        // Undamaged, the same record gives its two lines.
        let rec = Record {
            lsn: 8,
            ts_micros: 0,
            payload: good,
        };
        assert_eq!(append_lines(&rec, &mut lines), 2);
    }

    /// The lines are what parsing each record and writing its events with serde_json gives
    /// (what `tocsin history` prints, and what this sink wrote before it sliced the stored
    /// JSON), for indexed records, a record written before the index existed, a record
    /// without events and payloads that are not records; and a backlog larger than one
    /// batch goes out whole, in order.
    #[tokio::test]
    async fn lines_are_the_events_as_serde_json_writes_them() {
        let tmp = tempfile::tempdir_in("/var/tmp").unwrap();
        let data = tmp.path().join("data");
        let (journal, _) = Journal::open(JournalConfig::new(data.clone())).unwrap();
        CursorStore::open(&data)
            .unwrap()
            .store_cursor("file", 0)
            .unwrap();
        let raw = "\\n72FA0039\"SIA-DCS\"0001R1L0#1234[Nri1/BA07]\\r";
        let mut frame = JournalRecord::internal(
            "2024-01-15T12:00:05.000Z".into(),
            vec![
                event("a1", "Burglary \"zone\" \\ é \u{1} \u{7f}", raw),
                event("a2", "second event of the frame", raw),
            ],
        );
        frame.kind = crate::receiver::record::RecordKind::Frame;
        frame.raw = Some(raw.to_string());
        let own_raw = JournalRecord::internal("t".into(), vec![event("b1", "own raw", "x")]);
        let legacy = serde_json::to_vec(&JournalRecord::internal(
            "t".into(),
            vec![event("c1", "written before the index", "y")],
        ))
        .unwrap();
        let payloads = [
            frame.into_bytes(),
            own_raw.into_bytes(),
            legacy,
            JournalRecord::internal("t".into(), Vec::new()).into_bytes(),
            b"not a record".to_vec(),
            vec![0x01, 0xff],
        ];
        // More than one batch of records, in one go.
        let bulk: Vec<Vec<u8>> = (0..MAX_RECORDS + 10)
            .map(|i| {
                JournalRecord::internal("t".into(), vec![event(&format!("d{i}"), "bulk", "z")])
                    .into_bytes()
            })
            .collect();
        let mut expected = Vec::new();
        for p in payloads.iter().chain(&bulk) {
            if let Ok(r) = JournalRecord::from_bytes(p) {
                for e in &r.events {
                    serde_json::to_writer(&mut expected, e).unwrap();
                    expected.push(b'\n');
                }
            }
        }
        for p in payloads.into_iter().chain(bulk) {
            journal.append(1, p).await.unwrap();
        }
        let metrics = crate::ops::metrics::Metrics::new().unwrap().sink("file");
        let path = tmp.path().join("events.jsonl");
        let file = std::fs::File::create(&path).unwrap();
        let stop = CancellationToken::new();
        let sink = tokio::spawn(run(
            journal.handle(),
            "file",
            Box::new(file),
            metrics.clone(),
            stop.clone(),
        ));
        let want = (MAX_RECORDS + 10 + 4) as u64;
        let deadline = Instant::now() + Duration::from_secs(20);
        while metrics.published.get() < want {
            assert!(
                Instant::now() < deadline,
                "{} events",
                metrics.published.get()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        stop.cancel();
        sink.await.unwrap().unwrap();
        let got = std::fs::read(&path).unwrap();
        assert_eq!(got.len(), expected.len());
        assert!(got == expected, "the sink's lines differ from serde_json's");
        // Three records with events, and the bulk: one delivery sample per record with events.
        assert_eq!(
            metrics.delivery.get_sample_count() as usize,
            3 + MAX_RECORDS + 10
        );
        journal.close().await.unwrap();
    }

    /// Records that arrived 2 s ago: each one observed once, at about 2 s, and only once
    /// its line is in the file behind the buffer; a record with no event observes nothing.
    #[tokio::test]
    async fn delivery_is_observed_per_record_once_the_lines_are_in_the_file() {
        let tmp = tempfile::tempdir_in("/var/tmp").unwrap();
        let (journal, _) = Journal::open(JournalConfig::new(tmp.path().join("data"))).unwrap();
        // As the daemon does before any frame: the sink starts at the journal's start.
        CursorStore::open(&tmp.path().join("data"))
            .unwrap()
            .store_cursor("file", 0)
            .unwrap();
        let metrics = crate::ops::metrics::Metrics::new().unwrap().sink("file");
        let path = tmp.path().join("events.jsonl");
        let file = std::fs::File::create(&path).unwrap();
        let stop = CancellationToken::new();
        let sink = tokio::spawn(run(
            journal.handle(),
            "file",
            Box::new(file),
            metrics.clone(),
            stop.clone(),
        ));
        let arrived = super::super::unix_micros() - 2_000_000;
        for _ in 0..3 {
            journal.append(arrived, one_event_record()).await.unwrap();
        }
        journal
            .append(arrived, b"not a record".to_vec())
            .await
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while metrics.delivery.get_sample_count() < 3 {
            assert!(Instant::now() < deadline, "no delivery observed");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let lines = std::fs::read_to_string(&path).unwrap().lines().count();
        assert_eq!(lines, 3, "observed before the lines reached the file");
        let mean = metrics.delivery.get_sample_sum() / 3.0;
        assert!((2.0..5.0).contains(&mean), "mean delivery {mean} s");
        stop.cancel();
        sink.await.unwrap().unwrap();
        assert_eq!(metrics.delivery.get_sample_count(), 3);
        journal.close().await.unwrap();
    }
}
