//! Concurrent appenders share fsyncs, and every completion carries a distinct LSN.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tocsin::journal::{BatchStats, Journal, JournalConfig, JournalReader};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appenders_share_fsyncs() {
    let tmp = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let observed = Arc::new(AtomicUsize::new(0));
    let mut cfg = JournalConfig::new(tmp.path());
    let seen = observed.clone();
    cfg.observer = Some(Arc::new(move |b: &BatchStats| {
        assert!(b.records >= 1 && b.last_lsn - b.first_lsn + 1 == b.records as u64);
        seen.fetch_add(b.records, Ordering::Relaxed);
    }));
    let (j, _) = Journal::open(cfg).unwrap();

    const TASKS: usize = 64;
    const PER_TASK: usize = 20;
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let h = j.handle();
        tasks.push(tokio::spawn(async move {
            let mut lsns = Vec::new();
            for i in 0..PER_TASK {
                let payload = format!("task {t} record {i} {}", "p".repeat(160)).into_bytes();
                lsns.push(h.append(i as i64, payload).await.unwrap());
            }
            // Each task's own records are in order.
            assert!(lsns.windows(2).all(|w| w[0] < w[1]));
            lsns
        }));
    }
    let mut all = BTreeSet::new();
    for t in tasks {
        for lsn in t.await.unwrap() {
            assert!(all.insert(lsn), "lsn {lsn} given twice");
        }
    }
    let n = (TASKS * PER_TASK) as u64;
    assert_eq!(all, (1..=n).collect());
    let stats = j.stats().clone();
    assert_eq!(stats.records(), n);
    assert_eq!(j.durable_lsn(), n);
    assert!(
        stats.batches() < stats.records() / 4,
        "group commit: {} batches for {} records",
        stats.batches(),
        stats.records()
    );
    j.close().await.unwrap();
    // The observer runs after the waiters are completed; after close it has seen every batch.
    assert_eq!(observed.load(Ordering::Relaxed) as u64, n);
    assert_eq!(JournalReader::open(tmp.path()).unwrap().count() as u64, n);
}
