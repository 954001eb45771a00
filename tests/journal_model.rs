//! Model test: random appends, simulated crashes that damage what lies after the last sync,
//! failed syncs (the journal re-opens itself), and reopens, checked against an in-memory
//! model. Every record whose append returned `Ok` must come back, in order, exactly once, a
//! record whose sync failed never, and appends must continue with the next LSN.

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::Path;

use proptest::prelude::*;
use std::sync::Arc;
use tocsin::journal::recovery::scan_segment;
use tocsin::journal::segment::{journal_dir, list_segments};

use tocsin::journal::{record, Faults, Journal, JournalConfig, JournalReader, MIN_SEGMENT_SIZE};

#[derive(Debug, Clone)]
enum Crash {
    /// Only a restart.
    Clean,
    /// One to three further records were being written; the write stopped at `cut` ‰.
    Torn { records: usize, cut_permille: u16 },
    /// Arbitrary bytes after the end (e.g. a sector of old garbage).
    Garbage(Vec<u8>),
    /// The file was cut after the end of the synced data, losing the preallocation.
    Truncate { extra: u16 },
}

#[derive(Debug, Clone)]
enum Op {
    Append(usize),
    Batch(Vec<usize>),
    NoWait(usize),
    /// The sync of this append fails: refused, and the journal re-opens itself.
    FailSync(usize),
    Crash(Crash),
}

fn op() -> impl Strategy<Value = Op> {
    // Mostly small records; some larger than a 4 KiB segment to exercise dedicated segments.
    let len = prop_oneof![8 => 0usize..300, 1 => 3000usize..9000];
    let crash = prop_oneof![
        Just(Crash::Clean),
        (1usize..4, 0u16..1000).prop_map(|(records, cut_permille)| Crash::Torn {
            records,
            cut_permille
        }),
        prop::collection::vec(1u8..=255, 1..200).prop_map(Crash::Garbage),
        (0u16..2000).prop_map(|extra| Crash::Truncate { extra }),
    ];
    prop_oneof![
        6 => len.clone().prop_map(Op::Append),
        2 => prop::collection::vec(len.clone(), 1..6).prop_map(Op::Batch),
        1 => len.clone().prop_map(Op::NoWait),
        1 => len.prop_map(Op::FailSync),
        2 => crash.prop_map(Op::Crash),
    ]
}

fn payload(lsn: u64, len: usize) -> Vec<u8> {
    (0..len).map(|i| (lsn as usize * 31 + i) as u8).collect()
}

fn open(dir: &Path, faults: &Arc<Faults>) -> (Journal, tocsin::journal::OpenReport) {
    let mut cfg = JournalConfig::new(dir);
    cfg.segment_size = MIN_SEGMENT_SIZE;
    cfg.faults = Some(Arc::clone(faults));
    Journal::open(cfg).unwrap()
}

/// Damages the newest segment after its last valid record, as a crash during a write would.
fn damage(dir: &Path, crash: &Crash, next_lsn: u64) {
    let segs = list_segments(&journal_dir(dir)).unwrap();
    let last = segs.last().unwrap();
    let bytes = std::fs::read(&last.path).unwrap();
    let end = scan_segment(&bytes, last.first_lsn).valid_end as u64;
    let f = OpenOptions::new().write(true).open(&last.path).unwrap();
    match crash {
        Crash::Clean => {}
        Crash::Torn {
            records,
            cut_permille,
        } => {
            let mut buf = Vec::new();
            for k in 0..*records as u64 {
                record::encode_into(&mut buf, next_lsn + k, 0, &payload(next_lsn + k, 50));
            }
            let cut = buf.len() * usize::from(*cut_permille) / 1000;
            f.write_all_at(&buf[..cut], end).unwrap();
        }
        Crash::Garbage(g) => f.write_all_at(g, end).unwrap(),
        Crash::Truncate { extra } => f.set_len(end + u64::from(*extra)).unwrap(),
    }
}

fn check(dir: &Path, model: &[(u64, i64, Vec<u8>)]) {
    let got: Vec<_> = JournalReader::open(dir)
        .unwrap()
        .map(|r| {
            let r = r.unwrap();
            (r.lsn, r.ts_micros, r.payload)
        })
        .collect();
    assert_eq!(got.len(), model.len());
    assert!(got == model, "journal content differs from the model");
}

fn run(ops: Vec<Op>) {
    let tmp = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let dir = tmp.path();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut model: Vec<(u64, i64, Vec<u8>)> = Vec::new();
        let faults = Faults::fail_syncs(0, 0);
        let (mut j, _) = open(dir, &faults);
        for op in ops {
            let next = model.len() as u64 + 1;
            match op {
                Op::Append(len) => {
                    let p = payload(next, len);
                    assert_eq!(j.append(next as i64, p.clone()).await.unwrap(), next);
                    model.push((next, next as i64, p));
                }
                Op::Batch(lens) => {
                    let recs: Vec<_> = lens
                        .iter()
                        .enumerate()
                        .map(|(k, &len)| {
                            let lsn = next + k as u64;
                            (lsn as i64, payload(lsn, len))
                        })
                        .collect();
                    let range = j.append_batch(recs.clone()).await.unwrap();
                    assert_eq!(range, next..=next + lens.len() as u64 - 1);
                    for (k, (ts, p)) in recs.into_iter().enumerate() {
                        model.push((next + k as u64, ts, p));
                    }
                }
                Op::NoWait(len) => {
                    let p = payload(next, len);
                    j.append_nowait(next as i64, p.clone()).await.unwrap();
                    model.push((next, next as i64, p));
                }
                Op::FailSync(len) => {
                    // Everything before is durable, so the failed sync concerns this append.
                    while j.durable_lsn() < model.len() as u64 {
                        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                    }
                    let reopens = j.stats().reopens();
                    faults.arm(1);
                    assert!(j.append(next as i64, payload(next, len)).await.is_err());
                    while j.stats().reopens() == reopens || j.stats().poisoned() {
                        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                    }
                    check(dir, &model);
                }
                Op::Crash(crash) => {
                    j.close().await.unwrap();
                    damage(dir, &crash, next);
                    let (j2, rep) = open(dir, &faults);
                    // A torn write may leave whole records that were never acknowledged;
                    // they are legitimately kept (at least once). Adopt them into the model.
                    let extra = rep.last_lsn.checked_sub(model.len() as u64).unwrap();
                    if let Crash::Torn { .. } = crash {
                        for k in 0..extra {
                            let lsn = next + k;
                            model.push((lsn, 0, payload(lsn, 50)));
                        }
                    } else {
                        assert_eq!(extra, 0, "{rep:?}");
                    }
                    assert!(rep.corruptions.is_empty(), "{rep:?}");
                    j = j2;
                    check(dir, &model);
                }
            }
        }
        j.close().await.unwrap();
        let (j, rep) = open(dir, &faults);
        assert_eq!(rep.last_lsn, model.len() as u64);
        assert!(rep.torn_tail.is_none() && rep.corruptions.is_empty());
        j.close().await.unwrap();
        check(dir, &model);
    });
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn acknowledged_records_survive_crashes(ops in prop::collection::vec(op(), 1..40)) {
        run(ops);
    }
}
