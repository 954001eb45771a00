//! `tocsin history`: events from the journal, filtered, as JSON lines or CSV. Reads the
//! journal files directly, so it works on a stopped receiver or a copied data directory.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result};

use tocsin::journal::JournalReader;
use tocsin::receiver::event::Event;
use tocsin::receiver::record::JournalRecord;
use tocsin::report::csv_field;
use tocsin::station::micros;

#[derive(clap::Args, Debug)]
pub struct HistoryArgs {
    #[arg(long, default_value = "./data")]
    pub data_dir: PathBuf,
    #[arg(long)]
    pub account: Option<String>,
    /// Event class (alarm, restore, trouble, supervisory, open_close, bypass, test, supervision, other).
    #[arg(long)]
    pub class: Option<String>,
    /// Event category (burglary, fire, panic, …).
    #[arg(long)]
    pub category: Option<String>,
    /// From this time (RFC 3339).
    #[arg(long)]
    pub since: Option<String>,
    /// Until this time (RFC 3339), exclusive.
    #[arg(long)]
    pub until: Option<String>,
    #[arg(long, value_enum, default_value = "json")]
    pub format: Format,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum Format {
    Json,
    Csv,
}

pub const CSV_COLUMNS: &[&str] = &[
    "received_at",
    "account",
    "protocol",
    "code",
    "qualifier",
    "class",
    "category",
    "zone",
    "user",
    "partition",
    "text",
    "panel_time",
    "peer",
    "transport",
    "id",
];

pub fn csv_row(e: &Event) -> String {
    let fields = [
        e.received_at.as_str(),
        &e.account,
        &e.protocol,
        &e.code,
        e.qualifier.as_str(),
        e.class.as_str(),
        e.category.as_str(),
        e.zone.as_deref().unwrap_or(""),
        e.user.as_deref().unwrap_or(""),
        e.partition.as_deref().unwrap_or(""),
        &e.text,
        e.panel_time.as_deref().unwrap_or(""),
        e.peer.as_deref().unwrap_or(""),
        e.transport.as_str(),
        &e.id,
    ];
    fields
        .iter()
        .map(|f| csv_field(f))
        .collect::<Vec<_>>()
        .join(",")
}

pub fn run(args: HistoryArgs) -> Result<i32> {
    let parse = |s: &Option<String>| -> Result<Option<i64>> {
        s.as_deref()
            .map(|s| crate::cli::decode::parse_now(s).map(micros))
            .transpose()
    };
    let since = parse(&args.since)?;
    let until = parse(&args.until)?;
    let mut reader = JournalReader::open(&args.data_dir)
        .with_context(|| format!("cannot open the journal in {}", args.data_dir.display()))?;
    if let Some(s) = since {
        reader.seek_time(s)?;
    }
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    if let Format::Csv = args.format {
        writeln!(out, "{}", CSV_COLUMNS.join(","))?;
    }
    while let Some(rec) = reader.next_record()? {
        if since.is_some_and(|s| rec.ts_micros < s) {
            continue;
        }
        if until.is_some_and(|u| rec.ts_micros >= u) {
            break;
        }
        let Ok(record) = JournalRecord::from_bytes(&rec.payload) else {
            continue;
        };
        for e in &record.events {
            if args.account.as_deref().is_some_and(|a| a != e.account) {
                continue;
            }
            if args.class.as_deref().is_some_and(|c| c != e.class.as_str()) {
                continue;
            }
            if args
                .category
                .as_deref()
                .is_some_and(|c| c != e.category.as_str())
            {
                continue;
            }
            match args.format {
                Format::Json => {
                    serde_json::to_writer(&mut out, e)?;
                    writeln!(out)?;
                }
                Format::Csv => writeln!(out, "{}", csv_row(e))?,
            }
        }
    }
    out.flush()?;
    Ok(0)
}
