//! Supervision at station scale: a million supervised paths. Prints the resident memory
//! they take, then measures what a wheel pass costs while the station is quiet (every site
//! heard recently), what recording one heard frame costs in the state machine, and what
//! the frame path pays to hand a hearing to the supervision task (a `try_send` on its
//! queue), beside what it paid when it locked a shared supervisor instead.
//!
//! Time is simulated: a monotonic origin and whole seconds after it, as the supervision
//! task passes them.

use std::hint::black_box;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use tocsin::receiver::decide::Heard;
use tocsin::receiver::supervision::{Interval, Stamp, Supervisor};
use tocsin::supervision::Inbox;

const PATHS: u64 = 1_000_000;

fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

fn bench(c: &mut Criterion) {
    let t0 = Instant::now();
    let wall0 = 1_800_000_000_000i64;
    let at = |s: u64| Stamp {
        at: t0 + Duration::from_secs(s),
        wall_ms: wall0 + s as i64 * 1000,
    };
    let before = resident_bytes();
    let mut s = Supervisor::new(t0);
    // 90 s interval (SP5): the wheel sees each path once per interval.
    let interval = Some(Interval {
        primary: 90,
        secondary: None,
        grace: 9,
    });
    let ids: Vec<String> = (0..PATHS).map(|i| format!("{i:010}")).collect();
    for id in &ids {
        s.configure(id, interval);
        s.arm(id, at(0));
    }
    for id in &ids {
        s.heard(id, "L1", at(0));
    }
    let after = resident_bytes();
    eprintln!(
        "{} supervised paths: resident +{} MiB, {} bytes per path (account ids included)",
        s.paths(),
        after.saturating_sub(before) >> 20,
        after.saturating_sub(before) / PATHS
    );

    // Quiet station: sites keep reporting every 60 s, the wheel is passed every second.
    // Spread the heard times so each second sees 1/60 of the sites, as in steady state.
    let mut now = 0;
    let started = Instant::now();
    let mut ticks = 0u32;
    while now < 180 {
        now += 1;
        let due = (now % 60) as usize;
        for id in ids.iter().skip(due).step_by(60) {
            s.heard(id, "L1", at(now));
        }
        let changes = s.handle_timeout(at(now));
        assert!(changes.is_empty(), "no site is silent");
        ticks += 1;
    }
    eprintln!(
        "180 s of a quiet station with {PATHS} paths reporting every 60 s: {:.1} ms of CPU per simulated second (heard frames and wheel passes)",
        started.elapsed().as_secs_f64() * 1000.0 / f64::from(ticks)
    );

    let mut g = c.benchmark_group("supervision_1M");
    g.sample_size(10);
    // One simulated second of a quiet station: 1/60 of the sites report, then the pass.
    g.bench_function("one_second_quiet", |b| {
        b.iter(|| {
            now += 1;
            let due = (now % 60) as usize;
            for id in ids.iter().skip(due).step_by(60) {
                s.heard(id, "L1", at(now));
            }
            black_box(s.handle_timeout(at(now)))
        })
    });
    let mut i = 0usize;
    g.bench_function("heard", |b| {
        b.iter(|| {
            i = (i + 7919) % ids.len();
            black_box(s.heard(&ids[i], "L1", at(now)))
        })
    });
    g.finish();

    // The frame path's side. Before: lock the shared supervisor and record the hearing
    // there. Now: queue it for the task (whose draining is counted here too, once per
    // full queue, as the task takes hearings in batches).
    let shared = Mutex::new(s);
    let mut g = c.benchmark_group("frame_path");
    let mut i = 0usize;
    g.bench_function("locked_supervisor", |b| {
        b.iter(|| {
            i = (i + 7919) % ids.len();
            let changes = shared
                .lock()
                .map(|mut s| s.heard(&ids[i], "L1", at(now)))
                .unwrap_or_default();
            black_box(changes)
        })
    });
    let (inbox, mut queue) = Inbox::detached(tocsin::supervision::INBOX);
    let heard: Vec<Heard> = ids
        .iter()
        .take(4096)
        .map(|id| Heard {
            account: id.as_str().into(),
            path: "L1".into(),
        })
        .collect();
    let mut i = 0usize;
    g.bench_function("inbox_heard", |b| {
        b.iter(|| {
            i = (i + 1) % heard.len();
            let before = inbox.dropped();
            inbox.heard(heard[i].clone(), at(now));
            if inbox.dropped() != before {
                while queue.try_recv().is_ok() {}
            }
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
