//! Protocol hot path, no sockets: the whole per-frame decision (CRC, header, decryption,
//! payload, classification, normalized events, reply) for the frame kinds panels send,
//! and reply encoding alone.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;
use time::macros::utc_datetime;

use tocsin::protocol::crypto::Key;
use tocsin::protocol::dc09::parse_frame;
use tocsin::protocol::response;
use tocsin::receiver::accounts::{Account, AccountTable, Encryption, UnknownPolicy};
use tocsin::receiver::decide::{decide, NothingSeen, TimePolicy};
use tocsin::receiver::event::Transport;
use tocsin::receiver::normalize::{self, Arrival};

const SIA: &[u8] = b"\n72FA0039\"SIA-DCS\"0001L0#1234[#1234|Nri1/BA01]_12:00:00,01-15-2024\r";
const CID: &[u8] = b"\n7172003D\"ADM-CID\"0002R1L1#1234[#1234|1130 01 015]_12:00:05,01-15-2024\r";
const AES256: &[u8] = b"\n974900B8\"*ADM-CID\"0005R1L1#1234[216DBEE5BB0B5E917EB7EF3DEC09380C5BE71BAFBF4D83690F65F10D7CAD5232C6E6F04A522161ED39285020878A63762B05060AA796FC426F3DC61CAB23745CE25E7CEB56C755B000D69B68BBE0D91A\r";

fn bench(c: &mut Criterion) {
    let mut accounts = AccountTable::with_policy(UnknownPolicy::Accept);
    accounts.insert(
        "1234",
        Account {
            key: Some(
                Key::from_hex("603DEB1015CA71BE2B73AEF0857D77811F352C073B6108D72D9810A30914DFF4")
                    .unwrap(),
            ),
            encryption: Encryption::Optional,
            time_check: None,
            ..Default::default()
        },
    );
    let arrival = Arrival {
        now: utc_datetime!(2024-01-15 12:00:15),
        transport: Transport::Tcp,
        peer: Some("127.0.0.1:40000".parse().unwrap()),
        peer_label: Some("127.0.0.1:40000"),
        receiver: "bench",
    };
    let time = TimePolicy::default();
    let random = [7u8; 16];

    let mut g = c.benchmark_group("decide");
    g.throughput(Throughput::Elements(1));
    for (name, frame) in [
        ("sia_dcs_plain", SIA),
        ("adm_cid_plain", CID),
        ("adm_cid_aes256", AES256),
    ] {
        g.bench_function(name, |b| {
            b.iter(|| {
                let d = decide(
                    black_box(frame),
                    &arrival,
                    &accounts,
                    &time,
                    &NothingSeen,
                    &random,
                );
                black_box(d)
            })
        });
    }
    g.finish();

    // The protocol bar's scope: frame (CRC, header), payload, classification and the
    // normalized event — no account lookup, dedup key check or reply.
    let mut g = c.benchmark_group("decode");
    g.throughput(Throughput::Elements(1));
    for (name, frame) in [("sia_dcs_plain", SIA), ("adm_cid_plain", CID)] {
        g.bench_function(name, |b| {
            let mut scratch = Vec::new();
            b.iter(|| {
                black_box(normalize::decode_clear(
                    black_box(frame),
                    &arrival,
                    &mut scratch,
                ))
            })
        });
    }
    g.finish();

    let mut g = c.benchmark_group("frame");
    g.throughput(Throughput::Elements(1));
    g.bench_function("parse_sia_dcs", |b| {
        b.iter(|| black_box(parse_frame(black_box(SIA))))
    });
    let f = parse_frame(SIA).unwrap();
    let mut out = Vec::with_capacity(64);
    g.bench_function("encode_ack", |b| {
        b.iter(|| {
            out.clear();
            response::ack(black_box(&f.header), f.crc_form, &mut out);
            black_box(&out);
        })
    });
    let fe = parse_frame(AES256).unwrap();
    let key =
        Key::from_hex("603DEB1015CA71BE2B73AEF0857D77811F352C073B6108D72D9810A30914DFF4").unwrap();
    g.bench_function("encode_ack_aes256", |b| {
        b.iter(|| {
            out.clear();
            response::ack_encrypted(
                black_box(&fe.header),
                fe.crc_form,
                &key,
                arrival.now,
                &random,
                &mut out,
            );
            black_box(&out);
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
