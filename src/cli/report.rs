//! `tocsin report`: tables and charts of a period for the station's management and its
//! customers, written as files a spreadsheet or a document takes as they are:
//! `alarms_per_day.csv/.svg`, `top_accounts.csv/.svg`, `supervision_failures.csv/.svg` and
//! `events.csv` (the columns of `tocsin history --format csv`).
//!
//! Reads the journal directly (works on a stopped receiver or a copy); the aggregation and
//! the drawing live in [`tocsin::report`].

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use tocsin::journal::JournalReader;
use tocsin::receiver::record::JournalRecord;
use tocsin::report::{Aggregator, Bucket};
use tocsin::station::micros;

#[derive(clap::Args, Debug)]
pub struct ReportArgs {
    /// Start of the period: RFC 3339, or a duration back from now (`7d`).
    #[arg(long)]
    pub since: String,
    /// End of the period (exclusive): RFC 3339, or a duration back from now (`0s`: now).
    #[arg(long)]
    pub until: String,
    /// Only this account.
    #[arg(long)]
    pub account: Option<String>,
    /// Directory to write the files into (created if missing).
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long, default_value = "./data")]
    pub data_dir: PathBuf,
}

/// A time argument: RFC 3339, or a duration meaning "that long ago". Returns µs since the
/// Unix epoch.
pub fn parse_time(flag: &str, s: &str) -> Result<i64> {
    let now = time::UtcDateTime::now();
    if let Ok(t) = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339) {
        return Ok(micros(t.to_utc()));
    }
    match tocsin::units::parse_duration(s) {
        Ok(d) => {
            let back = i64::try_from(d.as_micros()).unwrap_or(i64::MAX);
            Ok(micros(now).saturating_sub(back))
        }
        Err(_) => bail!(
            "{flag} `{s}` is neither RFC 3339 (2024-01-15T12:00:00Z) nor a duration ago (24h, 7d)"
        ),
    }
}

fn write_file(dir: &Path, name: &str, text: &str) -> Result<()> {
    let path = dir.join(name);
    std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))
}

pub fn run(args: ReportArgs) -> Result<i32> {
    let since = parse_time("--since", &args.since)?;
    let until = parse_time("--until", &args.until)?;
    if until <= since {
        bail!("--until must be after --since");
    }
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let mut reader = JournalReader::open(&args.data_dir)
        .with_context(|| format!("cannot open the journal in {}", args.data_dir.display()))?;
    reader.seek_time(since)?;

    let mut agg = Aggregator::new(Some((since, until)), Bucket::for_span(since, until));
    let events_path = args.out.join("events.csv");
    let file = std::fs::File::create(&events_path)
        .with_context(|| format!("cannot write {}", events_path.display()))?;
    let mut events = std::io::BufWriter::new(file);
    writeln!(events, "{}", crate::cli::history::CSV_COLUMNS.join(","))?;
    while let Some(rec) = reader.next_record()? {
        if rec.ts_micros < since {
            continue;
        }
        if rec.ts_micros >= until {
            break;
        }
        let Ok(record) = JournalRecord::from_bytes(&rec.payload) else {
            continue;
        };
        for e in &record.events {
            if args.account.as_deref().is_some_and(|a| a != e.account) {
                continue;
            }
            agg.add(e);
            writeln!(events, "{}", crate::cli::history::csv_row(e))?;
        }
    }
    events.flush()?;
    let report = agg.finish();
    write_file(&args.out, "alarms_per_day.csv", &report.alarms_csv())?;
    write_file(&args.out, "alarms_per_day.svg", &report.alarms_svg()?)?;
    write_file(&args.out, "top_accounts.csv", &report.top_accounts_csv())?;
    write_file(&args.out, "top_accounts.svg", &report.top_accounts_svg()?)?;
    write_file(
        &args.out,
        "supervision_failures.csv",
        &report.supervision_csv(),
    )?;
    write_file(
        &args.out,
        "supervision_failures.svg",
        &report.supervision_svg()?,
    )?;
    println!(
        "{} events, {} accounts; wrote alarms_per_day, top_accounts, supervision_failures (.csv, .svg) and events.csv in {}",
        report.events,
        report.top_accounts.len(),
        args.out.display()
    );
    Ok(0)
}
