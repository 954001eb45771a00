//! Concurrent appenders share fsyncs, and every completion carries a distinct LSN.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tocsin::journal::{BatchStats, Journal, JournalConfig, JournalReader};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appenders_share_fsyncs() {
    let tmp = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let observed = Arc::new(AtomicUsize::new(0));
    let mut cfg = JournalConfig::new(tmp.path());
    let seen = observed.clone();
    let ranges = Arc::new(std::sync::Mutex::new(Vec::new()));
    let reported = ranges.clone();
    cfg.observer = Some(Arc::new(move |b: &BatchStats| {
        assert!(b.records >= 1 && b.last_lsn - b.first_lsn + 1 == b.records as u64);
        reported.lock().unwrap().push((b.first_lsn, b.last_lsn));
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
                let lsn = h.append(i as i64, payload).await.unwrap();
                // The durable LSN is published before any waiter hears, whichever of the
                // overlapping syncs answers.
                assert!(
                    h.durable_lsn() >= lsn,
                    "lsn {lsn} answered before published"
                );
                lsns.push(lsn);
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
    // Each sync reports the LSNs it made durable: together they tile 1..=n, no LSN twice,
    // even with two syncs in flight.
    let mut ranges = ranges.lock().unwrap().clone();
    ranges.sort();
    let mut next = 1;
    for (first, last) in ranges {
        assert_eq!(first, next, "reported ranges overlap or leave a gap");
        next = last + 1;
    }
    assert_eq!(next, n + 1);
    assert_eq!(JournalReader::open(tmp.path()).unwrap().count() as u64, n);
}

/// With a commit interval (here after any commit), group commits start at least that far
/// apart, and the appenders that ask meanwhile share the next one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_interval_spaces_commits_and_fills_them() {
    let tmp = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let interval = Duration::from_millis(100);
    let mut cfg = JournalConfig::new(tmp.path());
    cfg.commit_interval = interval;
    cfg.commit_interval_after = 1;
    let ends = Arc::new(Mutex::new(Vec::new()));
    let seen = ends.clone();
    cfg.observer = Some(Arc::new(move |_: &BatchStats| {
        seen.lock().unwrap().push(Instant::now());
    }));
    let (j, _) = Journal::open(cfg).unwrap();

    const TASKS: usize = 4;
    const PER_TASK: usize = 5;
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let h = j.handle();
        tasks.push(tokio::spawn(async move {
            for i in 0..PER_TASK {
                let lsn = h.append(i as i64, format!("task {t} record {i}").into_bytes());
                lsn.await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let n = (TASKS * PER_TASK) as u64;
    assert_eq!(j.durable_lsn(), n);
    let batches = j.stats().batches();
    j.close().await.unwrap();
    // Each task has its next record queued well within the interval: the commits carry
    // about one record of each, five or six of them, far from one per record.
    assert!(batches <= 10, "{batches} commits for {n} records");
    // A commit ends at least the interval after the previous one began, less that one's
    // sync; syncs here take well under 40 ms.
    let ends = ends.lock().unwrap().clone();
    for pair in ends.windows(2) {
        let gap = pair[1].duration_since(pair[0]);
        assert!(
            gap >= interval - Duration::from_millis(40),
            "commits {gap:?} apart"
        );
    }
    assert_eq!(JournalReader::open(tmp.path()).unwrap().count() as u64, n);
}

/// Small commits are not held back: a lone panel sending back to back gets each ACK after
/// its own sync, not after the interval.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_interval_spares_small_commits() {
    let tmp = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let mut cfg = JournalConfig::new(tmp.path());
    cfg.commit_interval = Duration::from_millis(100);
    let (j, _) = Journal::open(cfg).unwrap();
    let h = j.handle();
    let started = Instant::now();
    for i in 0..5 {
        h.append(i, format!("record {i}").into_bytes())
            .await
            .unwrap();
    }
    // Held back, five commits would take at least 400 ms.
    let took = started.elapsed();
    assert!(
        took < Duration::from_millis(250),
        "five lone appends took {took:?}"
    );
    j.close().await.unwrap();
}
