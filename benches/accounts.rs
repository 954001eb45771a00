//! Station-scale account tables: loading a million accounts from CSV, and the lookup on
//! the hot path. Also prints the resident memory the loaded table costs per account.

use std::fmt::Write as _;
use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use tocsin::receiver::accounts::{load_csv_text, AccountTable};

const ACCOUNTS: usize = 1_000_000;

fn csv() -> String {
    let mut s = String::with_capacity(ACCOUNTS * 64);
    s.push_str("id,key,key_encoding,encryption\n");
    for i in 0..ACCOUNTS {
        // Half the accounts carry an AES-128 key, as a mixed station would.
        if i % 2 == 0 {
            let _ = writeln!(s, "{i:010X},{:032X},hex,required", i as u128 * 7919);
        } else {
            let _ = writeln!(s, "{i:010X},,,optional");
        }
    }
    s
}

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
    let text = csv();
    let before = resident_bytes();
    let mut table = AccountTable::default();
    let started = std::time::Instant::now();
    load_csv_text(&text, &mut table).unwrap();
    let took = started.elapsed();
    let after = resident_bytes();
    eprintln!(
        "loaded {} accounts in {:.2} s; resident +{} MiB, {} bytes per account",
        table.len(),
        took.as_secs_f64(),
        (after.saturating_sub(before)) >> 20,
        after.saturating_sub(before) / ACCOUNTS as u64
    );

    let mut g = c.benchmark_group("accounts");
    g.sample_size(10);
    g.bench_function("load_1M_csv", |b| {
        b.iter(|| {
            let mut t = AccountTable::default();
            load_csv_text(black_box(&text), &mut t).unwrap();
            black_box(t.len())
        })
    });
    g.finish();
    let ids: Vec<String> = (0..1024).map(|i| format!("{:010X}", i * 977)).collect();
    c.bench_function("accounts/lookup", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) % ids.len();
            black_box(table.get(&ids[i]).is_some())
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
