//! `tocsin decode`: frames to JSON, offline, as the receiver would judge them.
//!
//! For integrators and support: paste what a panel sent (with `\n`, `\r`, `\xNN` escapes,
//! literal LF/CR, or `--hex`), get the fields, the events and the exact reply a receiver
//! would send. It runs the same decision code as the daemon, with a fixed clock if asked.
//! With `--surgard RR:LINE` it also shows the packets a Sur-Gard automation output would
//! send for the frame's events, byte for byte.

use std::io::{BufRead, Write};

use anyhow::{bail, Context, Result};
use serde_json::Value;
use time::UtcDateTime;

use tocsin::forward::surgard::{self, accounts::AccountMap, packet::Format};
use tocsin::offline::decode_one;
use tocsin::protocol::crypto::Key;
use tocsin::protocol::text::decode_w1252;
use tocsin::protocol::text::unescape;
use tocsin::receiver::decide::TimePolicy;
use tocsin::receiver::event::Event;

#[derive(clap::Args, Debug)]
pub struct DecodeArgs {
    /// Frames to decode; read from stdin, one per line, when none are given.
    pub frames: Vec<String>,
    /// Input is hex digits (spaces allowed) instead of escaped text.
    #[arg(long)]
    pub hex: bool,
    /// AES key as 32/48/64 hex digits.
    #[arg(long, conflicts_with = "key_ascii")]
    pub key: Option<String>,
    /// AES key as 16/24/32 ASCII characters used as bytes.
    #[arg(long)]
    pub key_ascii: Option<String>,
    /// Receiver clock (RFC 3339) for the timestamp window and reply timestamps.
    #[arg(long)]
    pub now: Option<String>,
    /// Do not check timestamps against the window.
    #[arg(long)]
    pub no_time_check: bool,
    /// Check the timestamps of clear frames too (encrypted ones always are).
    #[arg(long)]
    pub check_clear: bool,
    /// Add `"surgard": [...]`, the Sur-Gard automation packets of the frame's events, for
    /// receiver number RR and line LINE (`01:1`, or `01:100` for the 3-digit line form).
    #[arg(long, value_name = "RR:LINE")]
    pub surgard: Option<String>,
    /// With --surgard: the account of tocsin's own events and of unmappable accounts.
    #[arg(long, default_value = "0000", requires = "surgard")]
    pub own_account: String,
    /// With --surgard: CSV file `dc09_account,automation_account`.
    #[arg(long, value_name = "FILE", requires = "surgard")]
    pub account_map: Option<std::path::PathBuf>,
}

/// The automation format and mapping `--surgard` asks for.
fn surgard_format(args: &DecodeArgs) -> Result<Option<(Format, AccountMap)>> {
    let Some(spec) = &args.surgard else {
        return Ok(None);
    };
    let Some((rr, line)) = spec.split_once(':') else {
        bail!("--surgard `{spec}`: expected RR:LINE, e.g. 01:1 or 01:100");
    };
    let format =
        Format::new(rr, line, &args.own_account).with_context(|| format!("--surgard `{spec}`"))?;
    let map = match &args.account_map {
        Some(path) => AccountMap::load(path).map_err(anyhow::Error::msg)?,
        None => AccountMap::default(),
    };
    Ok(Some((format, map)))
}

/// `"surgard"`: the packets of the events in `v`, each as text (DC4 included).
fn add_surgard(v: &mut Value, format: &Format, map: &AccountMap) {
    let events: Vec<Event> = v
        .get("events")
        .cloned()
        .and_then(|e| serde_json::from_value(e).ok())
        .unwrap_or_default();
    let packets: Vec<String> = surgard::packets(&events, format, map)
        .iter()
        .map(|p| decode_w1252(p).into_owned())
        .collect();
    v["surgard"] = Value::from(packets);
}

pub fn run(args: DecodeArgs) -> Result<i32> {
    let key = match (&args.key, &args.key_ascii) {
        (Some(k), _) => Some(Key::from_hex(k).context("--key")?),
        (_, Some(k)) => Some(Key::from_ascii(k).context("--key-ascii")?),
        _ => None,
    };
    let now = match &args.now {
        Some(s) => parse_now(s)?,
        None => UtcDateTime::now(),
    };
    let surgard = surgard_format(&args)?;
    let time = TimePolicy {
        check_clear: args.check_clear,
        disabled: args.no_time_check,
        ..TimePolicy::default()
    };
    let mut all_ok = true;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut handle = |line: &str| -> Result<()> {
        let raw = if args.hex {
            hex_input(line)?
        } else {
            unescape(line)
        };
        let mut v = decode_one(&raw, key.as_ref(), now, &time);
        if let Some((format, map)) = &surgard {
            add_surgard(&mut v, format, map);
        }
        all_ok &= v.get("ok") == Some(&Value::Bool(true));
        writeln!(out, "{v}")?;
        Ok(())
    };
    if args.frames.is_empty() {
        for line in std::io::stdin().lock().lines() {
            let line = line?;
            if line.trim().is_empty() {
                continue;
            }
            // A literal frame read by lines lost its LF; put it back.
            let line = if line.starts_with('\n') || line.starts_with("\\n") || args.hex {
                line
            } else {
                format!("\n{line}")
            };
            handle(&line)?;
        }
    } else {
        for f in &args.frames {
            handle(f)?;
        }
    }
    Ok(if all_ok { 0 } else { 1 })
}

pub fn parse_now(s: &str) -> Result<UtcDateTime> {
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .with_context(|| format!("--now `{s}` is not RFC 3339 (2024-01-15T12:00:00Z)"))?;
    Ok(t.to_utc())
}

fn hex_input(line: &str) -> Result<Vec<u8>> {
    let digits: String = line.chars().filter(|c| !c.is_whitespace()).collect();
    match hex::decode(&digits) {
        Ok(b) => Ok(b),
        Err(e) => bail!("--hex input is not hex: {e}"),
    }
}
