//! Supervision at station scale: a million supervised paths. Prints the resident memory
//! they take, then measures what the once-a-second tick costs while the station is quiet
//! (every site heard recently) and what recording one heard frame costs.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use tocsin::receiver::supervision::{Interval, Supervisor};

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
    let t0 = 1_800_000_000u64;
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
        s.arm(id, t0);
    }
    for id in &ids {
        s.heard(id, "L1", t0);
    }
    let after = resident_bytes();
    eprintln!(
        "{} supervised paths: resident +{} MiB, {} bytes per path (account ids included)",
        s.paths(),
        after.saturating_sub(before) >> 20,
        after.saturating_sub(before) / PATHS
    );

    // Quiet station: sites keep reporting every 60 s, the tick runs every second. Spread the
    // heard times so each second sees 1/60 of the sites, as in steady state.
    let mut now = t0;
    let started = std::time::Instant::now();
    let mut ticks = 0u32;
    while now < t0 + 180 {
        now += 1;
        let due = (now % 60) as usize;
        for id in ids.iter().skip(due).step_by(60) {
            s.heard(id, "L1", now);
        }
        let changes = s.handle_timeout(now);
        assert!(changes.is_empty(), "no site is silent");
        ticks += 1;
    }
    eprintln!(
        "180 s of a quiet station with {PATHS} paths reporting every 60 s: {:.1} ms of CPU per simulated second (heard frames and ticks)",
        started.elapsed().as_secs_f64() * 1000.0 / f64::from(ticks)
    );

    let mut g = c.benchmark_group("supervision_1M");
    g.sample_size(10);
    // One simulated second of a quiet station: 1/60 of the sites report, then the tick.
    g.bench_function("one_second_quiet", |b| {
        b.iter(|| {
            now += 1;
            let due = (now % 60) as usize;
            for id in ids.iter().skip(due).step_by(60) {
                s.heard(id, "L1", now);
            }
            black_box(s.handle_timeout(now))
        })
    });
    let mut i = 0usize;
    g.bench_function("heard", |b| {
        b.iter(|| {
            i = (i + 7919) % ids.len();
            black_box(s.heard(&ids[i], "L1", now))
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
