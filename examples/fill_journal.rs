//! Pre-fills a data directory's journal with N receiver records, for benchmarks of the
//! forwarders (catch-up of a backlog, publishing throughput) without driving N frames
//! through the network first.
//!
//! ```text
//! cargo run --release --example fill_journal -- DIR N [--cursor-zero] [--spread 30d]
//!     [--segment-size 64MiB]
//! ```
//!
//! Each record is what the receiver writes for an acknowledged SIA DC-03 frame (see
//! `src/receiver/record.rs`): the frame as received, the ACK sent, the content key, and one
//! normalized event whose id is derived from the content as the receiver derives it, so
//! every record has a distinct id (the bus's duplicate window keeps them all). Accounts
//! rotate over 10 000 sites and codes over a few usual ones, so subjects vary as at a
//! station. Records are appended in large batches (`append_batch`), one fsync per batch.
//!
//! `--cursor-zero` stores the `nats` cursor at LSN 0 (nothing published yet): the daemon
//! creates a missing sink cursor at the current end of the journal, which would skip the
//! whole pre-filled backlog.
//!
//! Records are stamped with the time of the fill, all of them within the dedup window of
//! a daemon started right after (the worst case for its start); `--spread 30d` stamps them
//! evenly over that long instead, oldest first, as a station's journal is. The journal is
//! written with the daemon's tagger, so its segment summaries carry the content keys as the
//! daemon's would. `--segment-size` as `[journal] segment_size`.

use std::path::PathBuf;
use std::time::Instant;

use time::UtcDateTime;
use tocsin::journal::{CursorStore, Journal, JournalConfig};
use tocsin::protocol::codes::{Category, EventClass, Qualifier};
use tocsin::protocol::dc09::CrcForm;
use tocsin::protocol::encode::{encode, FrameSpec};
use tocsin::protocol::text::escape;
use tocsin::receiver::event::{panel_rfc3339, rfc3339, ContentKey, Event, Transport};
use tocsin::receiver::record::{JournalRecord, RecordKind};

/// Records per `append_batch`: large enough that fsyncs are a small part of the fill.
const BATCH: usize = 20_000;
const ACCOUNTS: u64 = 10_000;

struct Template {
    code: &'static str,
    class: EventClass,
    category: Category,
    qualifier: Qualifier,
    text: &'static str,
}

const TEMPLATES: [Template; 6] = [
    Template {
        code: "BA",
        class: EventClass::Alarm,
        category: Category::Burglary,
        qualifier: Qualifier::New,
        text: "Burglary Alarm",
    },
    Template {
        code: "BR",
        class: EventClass::Restore,
        category: Category::Burglary,
        qualifier: Qualifier::Restore,
        text: "Burglary Restoral",
    },
    Template {
        code: "OP",
        class: EventClass::OpenClose,
        category: Category::Arming,
        qualifier: Qualifier::New,
        text: "Opening Report",
    },
    Template {
        code: "CL",
        class: EventClass::OpenClose,
        category: Category::Arming,
        qualifier: Qualifier::Restore,
        text: "Closing Report",
    },
    Template {
        code: "RP",
        class: EventClass::Test,
        category: Category::Test,
        qualifier: Qualifier::New,
        text: "Automatic Test",
    },
    Template {
        code: "FA",
        class: EventClass::Alarm,
        category: Category::Fire,
        qualifier: Qualifier::New,
        text: "Fire Alarm",
    },
];

fn record(n: u64, now: UtcDateTime) -> (i64, Vec<u8>) {
    let account = format!("{:06}", 100_000 + n % ACCOUNTS);
    let round = n / ACCOUNTS;
    let seq = format!("{:04}", round % 10_000);
    let t = &TEMPLATES[(n % TEMPLATES.len() as u64) as usize];
    let zone = format!("{:03}", 1 + n % 64);
    let data = format!("#{account}|Nri1/{}{zone}", t.code);
    // Panel time moves with the round so that a wrapped sequence still gives a new key.
    let panel_time = now - time::Duration::seconds(i64::try_from(round).unwrap_or(0));
    let spec = FrameSpec {
        token: "SIA-DCS",
        seq: &seq,
        receiver: None,
        line: "0",
        account: &account,
        data: data.as_bytes(),
        ext: &[],
        timestamp: Some(panel_time),
        form: CrcForm::Ascii,
    };
    let mut frame = Vec::with_capacity(96);
    encode(&spec, None, &[0; 16], &mut frame);
    let key = ContentKey::of(
        &account,
        "SIA-DCS",
        &seq,
        data.as_bytes(),
        &[],
        Some(panel_time),
    );
    let raw = escape(&frame);
    let at = rfc3339(now);
    let peer = format!(
        "10.{}.{}.{}:{}",
        n % 7,
        (n / 7) % 250,
        n % 250,
        40_000 + n % 20_000
    );
    let mut event = Event::internal(
        key.event_id(0),
        now,
        "bench",
        &account,
        t.code,
        (t.qualifier, t.class, t.category),
        t.text.to_string(),
    );
    event.transport = Transport::Tcp;
    event.peer = Some(peer.as_str().into());
    event.protocol = "SIA-DCS".into();
    event.seq = Some(seq.as_str().into());
    event.line_no = Some("0".into());
    event.panel_time = Some(panel_rfc3339(panel_time));
    event.zone = Some(zone.into());
    event.partition = Some("1".into());
    event.unknown_account = true;
    event.raw = raw.clone();
    let rec = JournalRecord {
        kind: RecordKind::Frame,
        at,
        transport: Some("tcp".into()),
        peer: Some(peer.into()),
        raw: Some(raw),
        reply: Some(format!("\\n....\"ACK\"{seq}L0#{account}[]\\r")),
        outcome: Some("ack".into()),
        reason: Some("new".into()),
        account: Some(account.into()),
        key: Some(key.to_hex()),
        events: vec![event],
    };
    let micros = i64::try_from(now.unix_timestamp_nanos() / 1000).unwrap_or(0);
    (micros, rec.into_bytes())
}

fn main() -> anyhow::Result<()> {
    let usage = "usage: fill_journal DIR N [--cursor-zero] [--spread 30d] [--segment-size 64MiB]";
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(args.next().ok_or_else(|| anyhow::anyhow!(usage))?);
    let n: u64 = args
        .next()
        .ok_or_else(|| anyhow::anyhow!(usage))?
        .replace('_', "")
        .parse()?;
    let mut cursor_zero = false;
    let mut spread = std::time::Duration::ZERO;
    let mut config = JournalConfig::new(&dir);
    config.tagger = Some(tocsin::station::dedup_tag);
    while let Some(a) = args.next() {
        let mut value = || args.next().ok_or_else(|| anyhow::anyhow!(usage));
        match a.as_str() {
            "--cursor-zero" => cursor_zero = true,
            "--spread" => {
                spread = tocsin::units::parse_duration(&value()?).map_err(anyhow::Error::msg)?
            }
            "--segment-size" => {
                config.segment_size =
                    tocsin::units::parse_size(&value()?).map_err(anyhow::Error::msg)?
            }
            _ => anyhow::bail!(usage),
        }
    }

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    std::fs::create_dir_all(&dir)?;
    let (journal, report) = Journal::open(config)?;
    let start_lsn = report.last_lsn;
    let handle = journal.handle();
    let started = Instant::now();
    let now = UtcDateTime::now();
    let spread_s = spread.as_secs_f64();
    let mut bytes = 0usize;
    runtime.block_on(async {
        let mut next = 0u64;
        while next < n {
            let end = (next + BATCH as u64).min(n);
            let batch: Vec<(i64, Vec<u8>)> = (next..end)
                .map(|i| {
                    // Evenly over the spread, oldest first, the last record now.
                    let back = spread_s * (n - 1 - i) as f64 / n.max(1) as f64;
                    record(i, now - time::Duration::seconds_f64(back))
                })
                .collect();
            bytes += batch.iter().map(|(_, p)| p.len()).sum::<usize>();
            handle.append_batch(batch).await?;
            next = end;
        }
        journal.close().await?;
        anyhow::Ok(())
    })?;
    let secs = started.elapsed().as_secs_f64();
    if cursor_zero {
        CursorStore::open(&dir)?.store_cursor(tocsin::forward::nats::CURSOR, 0)?;
    }
    eprintln!(
        "appended {n} records (LSN {}..={}), {:.0} MiB payload, in {secs:.1} s ({:.0} records/s){}",
        start_lsn + 1,
        start_lsn + n,
        bytes as f64 / (1 << 20) as f64,
        n as f64 / secs,
        if cursor_zero { "; nats cursor = 0" } else { "" }
    );
    Ok(())
}
