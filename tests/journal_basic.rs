//! End-to-end behaviour of the journal on a real disk: append, rotate, reopen, read, seek,
//! tail, oversized records, torn tails and damage found at open.

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::Path;

use tocsin::journal::recovery::scan_segment;
use tocsin::journal::segment::{journal_dir, list_segments};
use tocsin::journal::{
    record, Journal, JournalConfig, JournalError, JournalReader, Record, MAX_RECORD_LEN,
    MIN_SEGMENT_SIZE,
};

/// Under the target directory, which is on the build disk: never tmpfs, where fsync is a no-op.
fn tmpdir() -> tempfile::TempDir {
    tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap()
}

fn small(dir: &Path) -> JournalConfig {
    let mut c = JournalConfig::new(dir);
    c.segment_size = MIN_SEGMENT_SIZE;
    c
}

fn payload(i: u64) -> Vec<u8> {
    format!("event {i:05} {}", "x".repeat((i % 90) as usize)).into_bytes()
}

fn read_all(dir: &Path) -> Vec<Record> {
    JournalReader::open(dir)
        .unwrap()
        .map(|r| r.unwrap())
        .collect()
}

async fn fill(j: &Journal, n: u64) {
    for i in 1..=n {
        if i % 3 == 0 {
            let r = j
                .append_batch(vec![(i as i64 * 1000, payload(i))])
                .await
                .unwrap();
            assert_eq!(r, i..=i);
        } else {
            assert_eq!(j.append(i as i64 * 1000, payload(i)).await.unwrap(), i);
        }
    }
}

#[tokio::test]
async fn append_rotate_reopen_read() {
    let tmp = tmpdir();
    let (j, rep) = Journal::open(small(tmp.path())).unwrap();
    assert_eq!((rep.last_lsn, rep.segments), (0, 1));
    fill(&j, 300).await;
    let segs = list_segments(&journal_dir(tmp.path())).unwrap();
    assert!(
        j.stats().rotations() >= 4,
        "small segments rotate: {} {segs:?}",
        j.stats().rotations()
    );
    assert_eq!(j.durable_lsn(), 300);
    j.close().await.unwrap();

    let names: Vec<_> = list_segments(&journal_dir(tmp.path())).unwrap();
    assert_eq!(
        names[0].path.file_name().unwrap(),
        "00000000000000000001.seg"
    );

    let (j, rep) = Journal::open(small(tmp.path())).unwrap();
    assert_eq!(rep.last_lsn, 300);
    assert_eq!(rep.records, 300);
    assert_eq!(rep.first_lsn, Some(1));
    assert!(
        rep.torn_tail.is_none() && rep.corruptions.is_empty(),
        "{rep:?}"
    );

    let all = read_all(tmp.path());
    assert_eq!(all.len(), 300);
    for (i, r) in all.iter().enumerate() {
        let lsn = i as u64 + 1;
        assert_eq!((r.lsn, r.ts_micros), (lsn, lsn as i64 * 1000));
        assert_eq!(r.payload, payload(lsn));
    }

    let mut live = j.reader();
    live.seek(150);
    assert_eq!(live.next_record().unwrap().unwrap().lsn, 150);
    assert_eq!(live.position(), 151);
    assert_eq!(j.append(0, b"after reopen".to_vec()).await.unwrap(), 301);
    assert_eq!(live.count(), 151);
    j.close().await.unwrap();
}

#[tokio::test]
async fn batches_get_consecutive_lsns_and_limits_are_typed() {
    let tmp = tmpdir();
    let (j, _) = Journal::open(small(tmp.path())).unwrap();
    let recs = (0..5).map(|i| (i, vec![i as u8; 10])).collect();
    assert_eq!(j.append_batch(recs).await.unwrap(), 1..=5);
    assert!(matches!(
        j.append_batch(vec![]).await,
        Err(JournalError::EmptyBatch)
    ));
    let err = j.append(0, vec![0; MAX_RECORD_LEN + 1]).await.unwrap_err();
    match err {
        JournalError::RecordTooLarge { len, max } => {
            assert_eq!((len, max), (MAX_RECORD_LEN + 1, MAX_RECORD_LEN));
        }
        e => panic!("{e}"),
    }
    // Larger than a segment: it gets a segment of its own.
    let big = vec![7u8; 3 * MIN_SEGMENT_SIZE as usize];
    assert_eq!(j.append(0, big.clone()).await.unwrap(), 6);
    assert_eq!(j.append(0, vec![1]).await.unwrap(), 7);
    let max = vec![9u8; MAX_RECORD_LEN];
    assert_eq!(j.append(0, max.clone()).await.unwrap(), 8);
    j.close().await.unwrap();
    let all = read_all(tmp.path());
    assert_eq!(all.len(), 8);
    assert_eq!(all[5].payload, big);
    assert_eq!(all[7].payload, max);
    let (j, rep) = Journal::open(small(tmp.path())).unwrap();
    assert_eq!(rep.last_lsn, 8);
    assert!(rep.corruptions.is_empty(), "{rep:?}");
    j.close().await.unwrap();
}

fn last_segment_end(dir: &Path) -> (std::path::PathBuf, u64) {
    let segs = list_segments(&journal_dir(dir)).unwrap();
    let last = segs.last().unwrap();
    let bytes = std::fs::read(&last.path).unwrap();
    let scan = scan_segment(&bytes, last.first_lsn);
    (last.path.clone(), scan.valid_end as u64)
}

#[tokio::test]
async fn torn_tail_is_zeroed_and_reported() {
    let tmp = tmpdir();
    let (j, _) = Journal::open(JournalConfig::new(tmp.path())).unwrap();
    fill(&j, 10).await;
    j.close().await.unwrap();

    // A crash in the middle of writing records 11 and 12.
    let (path, end) = last_segment_end(tmp.path());
    let mut torn = Vec::new();
    record::encode_into(&mut torn, 11, 0, b"never acknowledged");
    record::encode_into(&mut torn, 12, 0, b"neither");
    torn.truncate(torn.len() - 5);
    let f = OpenOptions::new().write(true).open(&path).unwrap();
    f.write_all_at(&torn, end).unwrap();
    drop(f);

    let (j, rep) = Journal::open(JournalConfig::new(tmp.path())).unwrap();
    let t = rep.torn_tail.clone().expect("torn tail reported");
    // Record 11 reached the disk whole: it is kept (it was never acknowledged, which is
    // harmless: at least once). Only 12 is torn.
    assert_eq!(rep.last_lsn, 11);
    assert_eq!(t.partial_records, 1);
    assert!(t.bytes > 0);
    let bytes = std::fs::read(&path).unwrap();
    assert!(bytes[t.offset as usize..].iter().all(|&b| b == 0));
    assert_eq!(
        j.append(0, b"next".to_vec()).await.unwrap(),
        rep.last_lsn + 1
    );
    j.close().await.unwrap();
    assert_eq!(read_all(tmp.path()).len() as u64, rep.last_lsn + 1);
}

#[tokio::test]
async fn a_record_read_while_being_written_is_not_damage() {
    // `tocsin history` reads the journal of a running daemon with an offline reader: its
    // buffer can hold a record the writer had only half written. When the rest arrives, the
    // record must be read, not reported as damage and skipped.
    let tmp = tmpdir();
    let (j, _) = Journal::open(JournalConfig::new(tmp.path())).unwrap();
    fill(&j, 3).await;
    j.close().await.unwrap();
    let (path, end) = last_segment_end(tmp.path());
    let whole = std::fs::read(&path).unwrap();
    let cut = 32 + record::encoded_len(payload(1).len()) + 10;
    let f = OpenOptions::new().write(true).open(&path).unwrap();
    f.write_all_at(&vec![0; end as usize - cut], cut as u64)
        .unwrap();

    let mut reader = JournalReader::open(tmp.path()).unwrap();
    assert_eq!(reader.next_record().unwrap().unwrap().lsn, 1);
    // The writer finishes record 2 and writes record 3.
    f.write_all_at(&whole[cut..end as usize], cut as u64)
        .unwrap();
    let rest: Vec<_> = reader.map(|r| r.map(|r| r.lsn)).collect();
    assert!(
        matches!(rest.as_slice(), [Ok(2), Ok(3)]),
        "records after the half-written one: {rest:?}"
    );
}

#[tokio::test]
async fn damage_in_an_older_segment_is_reported_and_skipped() {
    let tmp = tmpdir();
    let (j, _) = Journal::open(small(tmp.path())).unwrap();
    fill(&j, 100).await;
    j.close().await.unwrap();

    let first = list_segments(&journal_dir(tmp.path())).unwrap()[0]
        .path
        .clone();
    let bytes = std::fs::read(&first).unwrap();
    let scan = scan_segment(&bytes, 1);
    assert!(scan.records >= 3);
    // Flip a payload byte of record 2.
    let rec2 = 32 + record::encoded_len(payload(1).len());
    let f = OpenOptions::new().write(true).open(&first).unwrap();
    f.write_all_at(&[bytes[rec2 + 30] ^ 0xff], (rec2 + 30) as u64)
        .unwrap();
    drop(f);

    // The sealed segment has a summary, written when it was sealed: open trusts it and
    // does not read the segment (restart in constant time); readers find the damage.
    let (j, rep) = Journal::open(small(tmp.path())).unwrap();
    assert_eq!(rep.last_lsn, 100);
    assert!(rep.corruptions.is_empty(), "{rep:?}");
    assert_eq!(rep.summaries_written, 0);
    j.close().await.unwrap();
    let items: Vec<_> = JournalReader::open(tmp.path()).unwrap().collect();
    assert_eq!(items.len(), 100, "99 records and one error");
    assert!(matches!(
        items[1],
        Err(JournalError::Corrupt {
            expected_lsn: 2,
            resumes_at: Some(3),
            ..
        })
    ));
    assert_eq!(items[2].as_ref().unwrap().lsn, 3);

    // Without its summary (a journal from before summaries), open scans the segment once,
    // reports the damage and writes the summary.
    std::fs::remove_file(first.with_extension("sum")).unwrap();
    let (j, rep) = Journal::open(small(tmp.path())).unwrap();
    assert_eq!(rep.last_lsn, 100);
    assert_eq!(rep.summaries_written, 1);
    assert_eq!(rep.corruptions.len(), 1, "{rep:?}");
    let c = &rep.corruptions[0];
    assert_eq!(
        (c.expected_lsn, c.resumed_at, c.lost_records),
        (2, Some(3), 1)
    );
    assert_eq!(rep.records, 99);
    assert!(first.with_extension("sum").exists());
    assert_eq!(j.append(0, vec![]).await.unwrap(), 101);
    j.close().await.unwrap();
    let (j, rep) = Journal::open(small(tmp.path())).unwrap();
    assert_eq!(rep.summaries_written, 0, "written once");
    j.close().await.unwrap();
}

#[tokio::test]
async fn seek_time_starts_from_the_right_segment() {
    let tmp = tmpdir();
    let (j, _) = Journal::open(small(tmp.path())).unwrap();
    fill(&j, 200).await;
    j.close().await.unwrap();
    let mut r = JournalReader::open(tmp.path()).unwrap();
    r.seek_time(150_000).unwrap();
    assert_eq!(r.next_record().unwrap().unwrap().lsn, 150);
    r.seek_time(0).unwrap();
    assert_eq!(r.next_record().unwrap().unwrap().lsn, 1);
    r.seek_time(i64::MAX).unwrap();
    assert!(r.next_record().unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_reader_tails_durable_records() {
    let tmp = tmpdir();
    let (j, _) = Journal::open(small(tmp.path())).unwrap();
    let mut reader = j.reader();
    let tail = tokio::spawn(async move {
        let mut got = Vec::new();
        while let Some(r) = reader.next_wait().await.unwrap() {
            got.push(r.lsn);
        }
        got
    });
    fill(&j, 120).await;
    j.close().await.unwrap();
    let got = tail.await.unwrap();
    assert_eq!(got, (1..=120).collect::<Vec<_>>());
}

#[tokio::test]
async fn empty_journal_reads_as_empty() {
    let tmp = tmpdir();
    let (j, _) = Journal::open(small(tmp.path())).unwrap();
    assert!(read_all(tmp.path()).is_empty());
    assert!(j.reader().next_record().unwrap().is_none());
    // A segment just created by rotation is empty too.
    j.append(0, vec![0; 4000]).await.unwrap();
    j.append(0, vec![0; 4000]).await.unwrap();
    assert_eq!(read_all(tmp.path()).len(), 2);
    j.close().await.unwrap();
}
