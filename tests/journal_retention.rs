//! Retention deletes old whole segments but never beyond the smallest cursor (unless told to).

use std::path::Path;

use tocsin::journal::segment::{journal_dir, list_segments};
use tocsin::journal::{
    CursorStore, Journal, JournalConfig, JournalReader, MinFree, Retention, RetentionPolicy,
    MIN_SEGMENT_SIZE,
};

async fn journal_with(dir: &Path, n: u64) -> Journal {
    let mut cfg = JournalConfig::new(dir);
    cfg.segment_size = MIN_SEGMENT_SIZE;
    let (j, _) = Journal::open(cfg).unwrap();
    for i in 1..=n {
        j.append(i as i64 * 1_000_000, vec![b'r'; 150])
            .await
            .unwrap();
    }
    j
}

fn segments(dir: &Path) -> usize {
    list_segments(&journal_dir(dir)).unwrap().len()
}

fn first_readable(dir: &Path) -> u64 {
    JournalReader::open(dir)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .lsn
}

const EVERYTHING: RetentionPolicy = RetentionPolicy {
    max_bytes: Some(0),
    max_age_micros: Some(0),
    allow_unpublished_deletion: false,
    min_free: None,
    room_for: 0,
};

#[tokio::test]
async fn never_deletes_at_or_beyond_the_smallest_cursor() {
    let tmp = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let j = journal_with(tmp.path(), 300).await;
    let cursors = CursorStore::open(tmp.path()).unwrap();
    cursors.store_cursor("bus", 200).unwrap();
    cursors.store_cursor("file", 137).unwrap();
    let before = segments(tmp.path());
    assert!(before > 5);

    let mut ret = Retention::new(tmp.path()).unwrap();
    let rep = ret.run(&EVERYTHING, i64::MAX).unwrap();
    assert_eq!(rep.held_by_cursor, Some(137));
    assert!(!rep.deleted.is_empty());
    assert!(rep.deleted.iter().all(|d| d.last_lsn < 137), "{rep:?}");
    assert_eq!(rep.unpublished_records_deleted, 0);
    assert_eq!(segments(tmp.path()), before - rep.deleted.len());
    // Record 137 and everything after it are still readable.
    let mut r = JournalReader::open(tmp.path()).unwrap();
    r.seek(137);
    assert_eq!(r.next_record().unwrap().unwrap().lsn, 137);
    assert!(first_readable(tmp.path()) <= 137);

    // Moving the cursor frees more; a second identical pass is a no-op.
    cursors.store_cursor("file", 250).unwrap();
    let rep2 = ret.run(&EVERYTHING, i64::MAX).unwrap();
    assert_eq!(rep2.held_by_cursor, Some(200));
    assert!(rep2.deleted.iter().all(|d| d.last_lsn < 200));
    assert!(ret.run(&EVERYTHING, i64::MAX).unwrap().deleted.is_empty());

    // The live journal keeps working, and its reader skips to what exists.
    assert_eq!(j.append(0, vec![]).await.unwrap(), 301);
    let mut live = j.reader();
    live.seek(1);
    assert!(live.next_record().unwrap().unwrap().lsn > 1);
    j.close().await.unwrap();
}

#[tokio::test]
async fn forced_deletion_counts_unpublished_and_keeps_the_active_segment() {
    let tmp = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let j = journal_with(tmp.path(), 300).await;
    CursorStore::open(tmp.path())
        .unwrap()
        .store_cursor("bus", 100)
        .unwrap();
    let policy = RetentionPolicy {
        allow_unpublished_deletion: true,
        ..EVERYTHING
    };
    let rep = Retention::new(tmp.path())
        .unwrap()
        .run(&policy, i64::MAX)
        .unwrap();
    assert_eq!(segments(tmp.path()), 1, "only the active segment is left");
    let last_deleted = rep.deleted.last().unwrap().last_lsn;
    assert_eq!(rep.unpublished_records_deleted, last_deleted - 100 + 1);
    assert_eq!(first_readable(tmp.path()), last_deleted + 1);
    j.close().await.unwrap();
}

#[tokio::test]
async fn age_and_size_limits() {
    let tmp = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let j = journal_with(tmp.path(), 300).await;
    let mut ret = Retention::new(tmp.path()).unwrap();
    // ts of record i is i seconds; "now" = 300 s, max age 200 s: records older than 100 s go,
    // but only whole segments whose newest record is older.
    let by_age = RetentionPolicy {
        max_age_micros: Some(200_000_000),
        ..RetentionPolicy::default()
    };
    let rep = ret.run(&by_age, 300_000_000).unwrap();
    assert!(!rep.deleted.is_empty());
    assert!(rep.deleted.iter().all(|d| d.last_lsn < 100));
    assert!(first_readable(tmp.path()) <= 100);

    let total = rep.remaining_bytes;
    let by_size = RetentionPolicy {
        max_bytes: Some(total - 1),
        ..RetentionPolicy::default()
    };
    let rep = ret.run(&by_size, 0).unwrap();
    assert_eq!(rep.deleted.len(), 1);
    assert!(rep.remaining_bytes < total);
    assert!(ret
        .run(&RetentionPolicy::default(), 0)
        .unwrap()
        .deleted
        .is_empty());
    j.close().await.unwrap();
}

/// Record times are the callers' and can go back (a clock set back): a segment is as old
/// as its newest record wherever that record sits in it, not as its last one.
#[tokio::test]
async fn age_is_the_newest_record_of_a_segment_wherever_it_is() {
    let tmp = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let mut cfg = JournalConfig::new(tmp.path());
    cfg.segment_size = MIN_SEGMENT_SIZE;
    let (j, _) = Journal::open(cfg).unwrap();
    for i in 1..=300i64 {
        // Record 20, in the first segment, is stamped far after every other one.
        let secs = if i == 20 { 10_000 } else { i };
        j.append(secs * 1_000_000, vec![b'r'; 150]).await.unwrap();
    }
    assert!(segments(tmp.path()) > 2);
    let mut ret = Retention::new(tmp.path()).unwrap();
    let by_age = RetentionPolicy {
        max_age_micros: Some(200_000_000),
        ..RetentionPolicy::default()
    };
    // "Now" 300 s: every other record of the first segment is older than 100 s.
    let rep = ret.run(&by_age, 300_000_000).unwrap();
    assert!(rep.deleted.is_empty(), "{rep:?}");
    assert_eq!(first_readable(tmp.path()), 1);
    // Once record 20 is old too, the old segments go.
    let rep = ret.run(&by_age, 10_300_000_000).unwrap();
    assert!(!rep.deleted.is_empty(), "{rep:?}");
    j.close().await.unwrap();
}

/// Short of free space, retention deletes what every sink has taken, under no size or age
/// limit, and stops at the first segment some sink still needs; the segments' summaries go
/// with them.
#[tokio::test]
async fn short_of_space_it_deletes_what_every_cursor_has_passed() {
    let tmp = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let j = journal_with(tmp.path(), 300).await;
    let cursors = CursorStore::open(tmp.path()).unwrap();
    cursors.store_cursor("nats", 250).unwrap();
    cursors.store_cursor("file", 120).unwrap();
    let mut ret = Retention::new(tmp.path()).unwrap();
    let roomy = RetentionPolicy {
        min_free: Some(MinFree::Bytes(0)),
        room_for: MIN_SEGMENT_SIZE,
        ..RetentionPolicy::default()
    };
    let rep = ret.run(&roomy, 0).unwrap();
    assert!(rep.deleted.is_empty() && rep.space_short == 0, "{rep:?}");

    // No file system has this much free: the pass is as short of space as can be.
    let short = RetentionPolicy {
        min_free: Some(MinFree::Bytes(u64::MAX / 4)),
        ..roomy
    };
    let rep = ret.run(&short, 0).unwrap();
    assert!(!rep.deleted.is_empty(), "{rep:?}");
    assert_eq!(rep.deleted_for_space, rep.deleted.len());
    assert!(rep.deleted.iter().all(|d| d.last_lsn < 120), "{rep:?}");
    assert_eq!(rep.held_by_cursor, Some(120));
    assert!(rep.space_short > 0);
    assert!(first_readable(tmp.path()) <= 120);
    for d in &rep.deleted {
        assert!(!d.path.with_extension("sum").exists(), "{d:?}");
    }
    // Once the slower sink has caught up, the rest of what both have taken goes.
    cursors.store_cursor("file", 300).unwrap();
    let rep = ret.run(&short, 0).unwrap();
    assert!(rep.deleted.iter().all(|d| d.last_lsn < 250), "{rep:?}");
    assert_eq!(rep.held_by_cursor, Some(250));
    j.close().await.unwrap();
}
