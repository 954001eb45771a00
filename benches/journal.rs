//! Journal benchmarks: group-commit throughput at 1, 64 and 1024 concurrent appenders of
//! 200-byte records on a real disk (the target directory, never tmpfs), raw record encoding,
//! and the payload of a frame's record (index and JSON) as the receiver builds it before the
//! ACK, beside plain serde_json serialisation of the same record.
//!
//! One iteration of `group_commit/N` is N durable appends (closed loop: N tasks, each awaiting
//! its append before the next), so criterion's elements/s is durable records per second.

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use time::macros::utc_datetime;
use tocsin::journal::{record, Journal, JournalConfig};
use tocsin::receiver::event::Transport;
use tocsin::receiver::normalize::Arrival;

#[path = "support/sample_record.rs"]
mod sample_record;

const PAYLOAD: usize = 200;

fn encode(c: &mut Criterion) {
    let payload = vec![0x5a; PAYLOAD];
    let mut buf = Vec::with_capacity(4096);
    let mut g = c.benchmark_group("journal_encode");
    g.throughput(Throughput::Bytes(record::encoded_len(PAYLOAD) as u64));
    g.bench_function("record_200B", |b| {
        b.iter(|| {
            buf.clear();
            record::encode_into(&mut buf, std::hint::black_box(42), 1, &payload);
            std::hint::black_box(&buf);
        })
    });
    g.finish();
}

fn frame_record(c: &mut Criterion) {
    let arrival = Arrival {
        now: utc_datetime!(2024-01-15 12:00:15),
        transport: Transport::Tcp,
        peer: None,
        peer_label: Some("127.0.0.1:40000"),
        receiver: "bench",
    };
    let record = sample_record::sia_record(&arrival);
    assert_eq!(record.events.len(), 1, "the SIA frame decodes to one event");
    let mut g = c.benchmark_group("frame_record");
    g.throughput(Throughput::Elements(1));
    g.bench_function("payload", |b| {
        b.iter(|| std::hint::black_box(record.clone().into_bytes()))
    });
    g.bench_function("serde_json", |b| {
        b.iter(|| std::hint::black_box(serde_json::to_vec(&record.clone())))
    });
    // What both of the above spend on copying the record, to subtract.
    g.bench_function("clone_only", |b| {
        b.iter(|| std::hint::black_box(record.clone()))
    });
    g.finish();
}

fn group_commit(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let tmp = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("tempdir");
    let (journal, _) = Journal::open(JournalConfig::new(tmp.path())).expect("open");
    let mut g = c.benchmark_group("journal_group_commit");
    g.sample_size(10);
    for appenders in [1u64, 64, 1024] {
        g.throughput(Throughput::Elements(appenders));
        let before = (journal.stats().records(), journal.stats().batches());
        g.bench_with_input(
            BenchmarkId::from_parameter(appenders),
            &appenders,
            |b, &n| {
                b.iter_custom(|iters| {
                    rt.block_on(async {
                        let start = Instant::now();
                        let tasks: Vec<_> = (0..n)
                            .map(|_| {
                                let h = journal.handle();
                                tokio::spawn(async move {
                                    for i in 0..iters {
                                        h.append(i as i64, vec![0x5a; PAYLOAD])
                                            .await
                                            .expect("append");
                                    }
                                })
                            })
                            .collect();
                        for t in tasks {
                            t.await.expect("task");
                        }
                        start.elapsed()
                    })
                })
            },
        );
        let s = journal.stats();
        let (records, batches) = (s.records() - before.0, s.batches() - before.1);
        eprintln!(
            "journal_group_commit/{appenders}: {records} records in {batches} fsyncs \
             ({:.1} records/fsync), last fsync {:?}",
            records as f64 / batches.max(1) as f64,
            s.last_fsync()
        );
    }
    g.finish();
    rt.block_on(journal.close()).expect("close");
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    targets = encode, frame_record, group_commit
}
criterion_main!(benches);
