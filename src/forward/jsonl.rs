//! The JSON-lines sink: one normalized event per line, to stdout or to a file. The default
//! output, and the one that needs nothing else running.
//!
//! Delivery is at least once: the cursor is stored every half second and at shutdown, so
//! after a crash the last few events may be written again (their `id` tells them apart).
//! A sink without a stored cursor starts at the end of the journal, so enabling it on an old
//! journal does not replay its history.
//!
//! Delivery latency (`tocsin_sink_delivery_seconds`) is taken when a flush of the output
//! returns, for every record whose lines that flush covers: only then are they surely in
//! the file (written, not fsynced: the journal is the durable copy). Lines the output's
//! buffer passed on earlier count from that flush too, so the figure is an upper bound, off
//! by at most the time between two flushes.

use std::time::{Duration, Instant};

use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

use crate::journal::{CursorStore, JournalHandle, Record};
use crate::receiver::record::JournalRecord;

/// How often the cursor is made durable.
const CURSOR_EVERY: Duration = Duration::from_millis(500);

/// Records written but not yet flushed, past which the sink flushes anyway: the arrival
/// times it keeps for the delivery latency stay bounded while it catches up on a backlog.
const MAX_UNFLUSHED: usize = 1 << 16;

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
pub async fn run(
    journal: JournalHandle,
    name: &str,
    mut out: Box<dyn AsyncWrite + Unpin + Send>,
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
    let mut last = start.saturating_sub(1);
    let mut stored = last;
    let mut last_store = Instant::now();
    let mut line = Vec::with_capacity(1024);
    let mut unflushed = Unflushed::default();
    loop {
        let next = tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            r = reader.next_wait() => match r? {
                Some(rec) => Some(rec),
                // The journal closed: nothing more will come.
                None => break,
            },
            _ = tokio::time::sleep(CURSOR_EVERY), if last != stored => None,
        };
        if let Some(rec) = next {
            let n = write_record(&rec, &mut line, &mut out).await?;
            metrics.published.inc_by(n);
            unflushed.written(&rec, n);
            last = rec.lsn;
            metrics
                .backlog
                .set(journal.durable_lsn().saturating_sub(last) as i64);
            if unflushed.full() {
                unflushed.flush(&mut out, &metrics).await?;
            }
        } else {
            unflushed.flush(&mut out, &metrics).await?;
        }
        if last != stored && last_store.elapsed() >= CURSOR_EVERY {
            unflushed.flush(&mut out, &metrics).await?;
            cursors.store_cursor(name, last)?;
            stored = last;
            last_store = Instant::now();
        }
    }
    // Drain what is durable now, then record how far we got.
    while let Some(rec) = reader.next_record()? {
        let n = write_record(&rec, &mut line, &mut out).await?;
        unflushed.written(&rec, n);
        last = rec.lsn;
        if unflushed.full() {
            unflushed.flush(&mut out, &metrics).await?;
        }
    }
    unflushed.flush(&mut out, &metrics).await?;
    if last != stored {
        cursors.store_cursor(name, last)?;
    }
    Ok(())
}

/// Arrival times of the records whose lines were written since the last flush.
#[derive(Default)]
struct Unflushed {
    arrivals: Vec<i64>,
}

impl Unflushed {
    /// A record whose `events` lines were just written; one without any delivers nothing.
    fn written(&mut self, rec: &Record, events: u64) {
        if events > 0 {
            self.arrivals.push(rec.ts_micros);
        }
    }

    fn full(&self) -> bool {
        self.arrivals.len() >= MAX_UNFLUSHED
    }

    /// Flushes `out`, then observes the delivery of every record written before: one clock
    /// read per flush, one histogram sample per record.
    async fn flush(
        &mut self,
        out: &mut (dyn AsyncWrite + Unpin + Send),
        metrics: &super::SinkMetrics,
    ) -> Result<(), std::io::Error> {
        out.flush().await?;
        if !self.arrivals.is_empty() {
            let now = super::unix_micros();
            for arrived in self.arrivals.drain(..) {
                super::observe_delivery(&metrics.delivery, arrived, now);
            }
        }
        Ok(())
    }
}

/// Writes the record's events; returns how many.
async fn write_record(
    rec: &Record,
    line: &mut Vec<u8>,
    out: &mut (dyn AsyncWrite + Unpin + Send),
) -> Result<u64, std::io::Error> {
    let Ok(record) = JournalRecord::from_bytes(&rec.payload) else {
        tracing::warn!(
            lsn = rec.lsn,
            "journal record is not a receiver record; skipped"
        );
        return Ok(0);
    };
    let mut n = 0;
    for event in &record.events {
        line.clear();
        if serde_json::to_writer(&mut *line, event).is_ok() {
            line.push(b'\n');
            out.write_all(line).await?;
            n += 1;
        }
    }
    Ok(n)
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
        let file = tokio::fs::File::create(&path).await.unwrap();
        let stop = CancellationToken::new();
        let sink = tokio::spawn(run(
            journal.handle(),
            "file",
            Box::new(tokio::io::BufWriter::new(file)),
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
