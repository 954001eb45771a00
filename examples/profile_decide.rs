//! Runs the per-frame decision in a loop, for instruction counts under callgrind
//! (`valgrind --tool=callgrind target/release/examples/profile_decide sia 100000`), which
//! stay comparable on a busy machine where wall-clock benchmarks do not. `decode` (SIA-DCS)
//! and `decode-cid` run only what the protocol bar counts: frame, payload, classification,
//! event. `record` builds a one-event frame's journal record (index and JSON).

use std::hint::black_box;

use tocsin::protocol::crypto::Key;
use tocsin::receiver::accounts::{Account, AccountTable, UnknownPolicy};
use tocsin::receiver::decide::{decide, NothingSeen, TimePolicy};
use tocsin::receiver::event::Transport;
use tocsin::receiver::normalize::{self, Arrival};

#[path = "../benches/support/sample_record.rs"]
mod sample_record;
use sample_record::SIA;
const CID: &[u8] = b"\n7172003D\"ADM-CID\"0002R1L1#1234[#1234|1130 01 015]_12:00:05,01-15-2024\r";
const AES256: &[u8] = b"\n974900B8\"*ADM-CID\"0005R1L1#1234[216DBEE5BB0B5E917EB7EF3DEC09380C5BE71BAFBF4D83690F65F10D7CAD5232C6E6F04A522161ED39285020878A63762B05060AA796FC426F3DC61CAB23745CE25E7CEB56C755B000D69B68BBE0D91A\r";

fn main() {
    let mut args = std::env::args().skip(1);
    let which = args.next().unwrap_or_else(|| "sia".into());
    let n: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(100_000);
    let frame = match which.as_str() {
        "cid" | "decode-cid" => CID,
        "aes" => AES256,
        _ => SIA,
    };
    let mut accounts = AccountTable::with_policy(UnknownPolicy::Accept);
    accounts.insert(
        "1234",
        Account {
            key: Key::from_hex("603DEB1015CA71BE2B73AEF0857D77811F352C073B6108D72D9810A30914DFF4")
                .ok(),
            ..Default::default()
        },
    );
    let arrival = Arrival {
        now: time::UtcDateTime::from_unix_timestamp(1_705_320_015)
            .unwrap_or(time::UtcDateTime::UNIX_EPOCH),
        transport: Transport::Tcp,
        peer: "127.0.0.1:40000".parse().ok(),
        // A TCP connection formats its peer once; the daemon passes that label per frame.
        peer_label: Some("127.0.0.1:40000"),
        receiver: "profile",
    };
    let started = std::time::Instant::now();
    if which == "record" {
        // The journal record of a one-event SIA frame, index and JSON, as built before the
        // ACK (the record is cloned each time, as the benchmark does).
        let record = sample_record::sia_record(&arrival);
        for _ in 0..n {
            black_box(black_box(&record).clone().into_bytes());
        }
        let per = started.elapsed().as_nanos() as f64 / n as f64;
        eprintln!("{which}: {per:.0} ns per record (wall clock, {n} iterations)");
        return;
    }
    if which.starts_with("decode") {
        let mut scratch = Vec::new();
        for _ in 0..n {
            black_box(normalize::decode_clear(
                black_box(frame),
                &arrival,
                &mut scratch,
            ));
        }
        let per = started.elapsed().as_nanos() as f64 / n as f64;
        eprintln!("{which}: {per:.0} ns per decode (wall clock, {n} iterations)");
        return;
    }
    for _ in 0..n {
        let d = decide(
            black_box(frame),
            &arrival,
            &accounts,
            &TimePolicy::default(),
            &NothingSeen,
            &[7; 16],
        );
        black_box(d);
    }
    let per = started.elapsed().as_nanos() as f64 / n as f64;
    eprintln!("{which}: {per:.0} ns per decide (wall clock, {n} iterations)");
}
