//! `tocsin diag ACCOUNT`: why is this site misbehaving? Its last frames with the replies
//! they got, its paths and when each was last heard, NAK/DUH/silence reasons, clock skew,
//! decryption failures and supervision failures.
//!
//! Two sources, one analysis ([`tocsin::diag`]): with `--data-dir` the journal is read
//! directly (a stopped receiver, a copy); otherwise the running daemon answers
//! `GET /diag/ACCOUNT`, adding what its supervisor knows of the paths right now.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};

use tocsin::diag::{scan_journal, valid_account, Diagnosis};
use tocsin::journal::JournalReader;

#[derive(clap::Args, Debug)]
pub struct DiagArgs {
    /// The account number, exactly as the panel sends it.
    pub account: String,
    /// Read this data directory instead of asking the daemon.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// The daemon's HTTP address (HOST:PORT), when no --data-dir is given.
    #[arg(long, default_value = crate::cli::status::DEFAULT_HTTP)]
    pub http: String,
    /// From this time: RFC 3339, or a duration back from now (`24h`, `7d`). The daemon
    /// looks back 24 h by default; offline, the whole journal is read.
    #[arg(long)]
    pub since: Option<String>,
    /// How many last frames to show (offline).
    #[arg(long, default_value_t = tocsin::diag::DEFAULT_LAST_FRAMES)]
    pub last: usize,
    /// Print the diagnosis as JSON.
    #[arg(long)]
    pub json: bool,
    /// A file holding the daemon's HTTP token (`[http] token_file`), with --http.
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
}

pub fn run(args: DiagArgs) -> Result<i32> {
    if !valid_account(&args.account) {
        bail!(
            "`{}` is not an account number (1 to 16 letters or digits)",
            args.account
        );
    }
    let since = args
        .since
        .as_deref()
        .map(|s| crate::cli::report::parse_time("--since", s))
        .transpose()?;
    let d: Diagnosis = match &args.data_dir {
        Some(dir) => {
            let mut reader = JournalReader::open(dir)
                .with_context(|| format!("cannot open the journal in {}", dir.display()))?;
            scan_journal(&mut reader, &args.account, since, args.last)?
        }
        None => {
            let path = match since {
                Some(us) => format!("/diag/{}?since={us}", args.account),
                None => format!("/diag/{}", args.account),
            };
            let token = crate::cli::status::read_token(args.token_file.as_deref())?;
            let (code, body) =
                crate::cli::status::http_get_auth(&args.http, &path, token.as_deref())
                    .with_context(|| {
                        format!("asking the daemon at {} (or give --data-dir)", args.http)
                    })?;
            if let Some(why) = crate::cli::status::refusal(code, &body) {
                bail!("{why}");
            }
            if code != 200 {
                bail!("the daemon answered {code}: {}", body.trim());
            }
            serde_json::from_str(&body).context("the daemon's diagnosis is not readable")?
        }
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&d)?);
    } else {
        print!("{}", render(&d));
    }
    Ok(0)
}

fn or_dash(s: Option<&str>) -> &str {
    s.unwrap_or("-")
}

/// The readable form.
pub fn render(d: &Diagnosis) -> String {
    let mut o = String::new();
    o.push_str(&format!(
        "account {}  since {}\n",
        d.account,
        or_dash(d.since.as_deref())
    ));
    let outcomes: Vec<String> = d.outcomes.iter().map(|(k, v)| format!("{v} {k}")).collect();
    o.push_str(&format!(
        "frames     {} ({}), {} events, last heard {}\n",
        d.frames,
        if outcomes.is_empty() {
            "-".to_string()
        } else {
            outcomes.join(", ")
        },
        d.events,
        or_dash(d.last_heard.as_deref()),
    ));
    let refused: Vec<String> = d
        .reasons
        .iter()
        .filter(|r| r.outcome != "ack")
        .map(|r| format!("{} {} ({})", r.count, r.outcome.to_uppercase(), r.reason))
        .collect();
    o.push_str(&format!(
        "refused    {}\n",
        if refused.is_empty() {
            "none".to_string()
        } else {
            refused.join(", ")
        }
    ));
    o.push_str(&format!("decryption failures {}\n", d.decrypt_failures));
    match &d.clock_skew {
        Some(k) => o.push_str(&format!(
            "clock skew panel - receiver: min {:+}s, median {:+}s, max {:+}s ({} samples)\n",
            k.min_s, k.median_s, k.max_s, k.samples
        )),
        None => o.push_str("clock skew unknown (no panel timestamps)\n"),
    }
    o.push_str(&format!("paths (from the {}):\n", d.paths_from));
    if d.paths.is_empty() {
        o.push_str("  none seen\n");
    }
    for p in &d.paths {
        o.push_str(&format!(
            "  {:<8} last heard {:<24} {} frames{}\n",
            p.path,
            or_dash(p.last_heard.as_deref()),
            p.frames,
            p.failed_since
                .as_deref()
                .map(|s| format!("  IN FAILURE since {s}"))
                .unwrap_or_default(),
        ));
    }
    let sup: Vec<String> = d
        .supervision_counts
        .iter()
        .map(|(k, v)| format!("{v} {k}"))
        .collect();
    o.push_str(&format!(
        "supervision {}\n",
        if sup.is_empty() {
            "no events".to_string()
        } else {
            sup.join(", ")
        }
    ));
    for s in &d.supervision {
        o.push_str(&format!(
            "  {}  {:<12} {:<8} {}\n",
            s.at,
            s.code,
            or_dash(s.path.as_deref()),
            s.text
        ));
    }
    o.push_str(&format!("last {} frames:\n", d.last_frames.len()));
    for f in &d.last_frames {
        o.push_str(&format!(
            "  {}  {:<4} {:<20} {:<6} {:<5} {}\n      raw   {}\n      reply {}\n",
            f.at,
            or_dash(f.transport.as_deref()),
            or_dash(f.peer.as_deref()),
            or_dash(f.path.as_deref()),
            or_dash(f.outcome.as_deref()).to_uppercase(),
            or_dash(f.reason.as_deref()),
            or_dash(f.raw.as_deref()),
            or_dash(f.reply.as_deref()),
        ));
    }
    if d.unreadable_records > 0 {
        o.push_str(&format!(
            "warning: {} journal records unreadable\n",
            d.unreadable_records
        ));
    }
    o
}
