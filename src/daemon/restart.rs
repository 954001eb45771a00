//! The state a restarted receiver needs before its first frame, rebuilt from the journal
//! in time that does not grow with the journal: the dedup window from the segment
//! summaries (24 bytes a record of the window), supervision from its snapshot and the
//! supervision records journaled after it.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::DaemonError;
use crate::journal::{Journal, JournalConfig, JournalHandle};
use crate::ops::config::Config;
use crate::ops::metrics::Metrics;
use crate::receiver::dedup::Dedup;
use crate::receiver::event::ContentKey;
use crate::receiver::record::JournalRecord;
use crate::station::micros;

/// Opens the journal in `data_dir` (recovering a torn tail, re-verifying what follows the
/// last sync), its batches feeding the metrics and its records tagged with their content
/// keys for the next restart's dedup window.
pub(super) fn open_journal(
    config: &Config,
    data_dir: &Path,
    metrics: &Arc<Metrics>,
) -> Result<Journal, DaemonError> {
    let mut jconfig = JournalConfig::new(data_dir);
    jconfig.segment_size = config.journal.segment_size;
    jconfig.commit_interval = config.journal.commit_interval;
    jconfig.min_free = config.journal.min_free;
    jconfig.tagger = Some(crate::station::dedup_tag);
    let m = Arc::clone(metrics);
    jconfig.observer = Some(Arc::new(move |b: &crate::journal::BatchStats| {
        m.journal_fsync.observe(b.fsync.as_secs_f64());
        m.journal_batch.observe(b.records as f64);
        m.journal_bytes.inc_by(b.bytes as u64);
    }));
    let opening = Instant::now();
    let (journal, report) = Journal::open(jconfig)?;
    tracing::info!(data_dir = %data_dir.display(), durable_lsn = journal.durable_lsn(), took_ms = opening.elapsed().as_millis() as u64, report = ?report, "journal open");
    Ok(journal)
}

pub(super) struct Rebuilt {
    pub(super) supervision: crate::receiver::supervision_state::Snapshot,
}

/// Re-enters the content keys acknowledged within the dedup window, so that a panel
/// retrying across a restart still gets a duplicate ACK and no second event. The keys come
/// from the journal's segment summaries and the active segment's tags found at open: 24
/// bytes a record of the window, never the records themselves, and only the newest
/// `max_keys` of them are entered (the window holds no more). Returns how many.
pub(super) fn rebuild_dedup(
    journal: &Journal,
    dedup: &Dedup,
    window: Duration,
    max_keys: usize,
) -> usize {
    let now = micros(time::UtcDateTime::now());
    let since = now.saturating_sub(i64::try_from(window.as_micros()).unwrap_or(i64::MAX));
    let tags = match journal.tags_since(since, max_keys) {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the journal's summaries; dedup window starts empty");
            return 0;
        }
    };
    // Up to 4 M keys: shared among the cores. A key's dedup shard is picked from its low
    // bits, so threads taking keys by their low bits rarely meet on a shard's lock (never
    // with a power of two of them), and each shard still gets its keys in time order.
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, 4)
        .next_power_of_two()
        .min(4) as u64;
    let threads = if tags.len() < 10_000 { 1 } else { threads };
    dedup.reserve(tags.len());
    std::thread::scope(|s| {
        for part in 0..threads {
            let tags = &tags;
            s.spawn(move || {
                for &(ts, key) in tags.iter().filter(|(_, k)| *k as u64 % threads == part) {
                    dedup.insert(ContentKey(key), ts);
                }
            });
        }
    });
    tags.len()
}

/// What the start-up scan reads of a record: its kind, nothing else.
#[derive(serde::Deserialize)]
struct RecordHead {
    kind: crate::receiver::record::RecordKind,
}

/// Brings the supervision snapshot up to date with the supervision events journaled after
/// it.
pub(super) fn rebuild_from_journal(
    journal: &JournalHandle,
    snapshot: crate::receiver::supervision_state::Snapshot,
) -> Rebuilt {
    let mut state = snapshot;
    let mut reader = journal.reader();
    // Supervision records after the snapshot's position (or, for a snapshot of an older
    // version without one, its time): the tail since the last snapshot, seconds of records.
    let positioned = match state.lsn {
        Some(lsn) => {
            reader.seek(lsn.saturating_add(1));
            Ok(())
        }
        None => reader.seek_time(state.taken_micros),
    };
    if let Err(e) = positioned {
        tracing::warn!(error = %e, "cannot read the journal tail; supervision state from its snapshot only");
        return Rebuilt { supervision: state };
    }
    loop {
        match reader.next_record() {
            Ok(Some(rec)) => {
                let json = crate::receiver::record::json_of(&rec.payload).unwrap_or_default();
                let Ok(head) = serde_json::from_slice::<RecordHead>(json) else {
                    continue;
                };
                if head.kind == crate::receiver::record::RecordKind::Internal
                    && state.is_newer(rec.lsn, rec.ts_micros)
                {
                    if let Ok(r) = JournalRecord::from_bytes(&rec.payload) {
                        state.apply(&r.events, rec.ts_micros);
                    }
                }
            }
            Ok(None) => break,
            Err(e) => {
                tracing::warn!(error = %e, "journal tail unreadable; state partly rebuilt");
                break;
            }
        }
    }
    Rebuilt { supervision: state }
}
