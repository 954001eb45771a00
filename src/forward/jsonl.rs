//! The JSON-lines sink: one normalized event per line, to stdout or to a file. The default
//! output, and the one that needs nothing else running.
//!
//! Delivery is at least once: the cursor is stored every half second and at shutdown, so
//! after a crash the last few events may be written again (their `id` tells them apart).
//! A sink without a stored cursor starts at the end of the journal, so enabling it on an old
//! journal does not replay its history.

use std::time::{Duration, Instant};

use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

use crate::journal::{CursorStore, JournalHandle, Record};
use crate::receiver::record::JournalRecord;
use crate::throttle::{Throttle, Verdict};

static SKIPPED_LOG: Throttle = Throttle::per_minute(5);

/// How often the cursor is made durable.
const CURSOR_EVERY: Duration = Duration::from_millis(500);

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
            last = rec.lsn;
            metrics
                .backlog
                .set(journal.durable_lsn().saturating_sub(last) as i64);
        } else {
            out.flush().await?;
        }
        if last != stored && last_store.elapsed() >= CURSOR_EVERY {
            out.flush().await?;
            cursors.store_cursor(name, last)?;
            stored = last;
            last_store = Instant::now();
        }
    }
    // Drain what is durable now, then record how far we got.
    while let Some(rec) = reader.next_record()? {
        write_record(&rec, &mut line, &mut out).await?;
        last = rec.lsn;
    }
    out.flush().await?;
    if last != stored {
        cursors.store_cursor(name, last)?;
    }
    Ok(())
}

/// Writes the record's events; returns how many.
async fn write_record(
    rec: &Record,
    line: &mut Vec<u8>,
    out: &mut (dyn AsyncWrite + Unpin + Send),
) -> Result<u64, std::io::Error> {
    let Ok(record) = JournalRecord::from_bytes(&rec.payload) else {
        if let Verdict::Log { suppressed } = SKIPPED_LOG.check_now() {
            tracing::warn!(
                lsn = rec.lsn,
                suppressed,
                "journal record is not a receiver record; skipped"
            );
        }
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
