//! `tocsin status`: the operator's summary at the start of a shift, from a running
//! daemon's `/status` and `/metrics`: is it listening, can it write, is the bus draining,
//! is the automation software getting alarms,
//! which sites are cut off and since when, how many frames and NAKs in the last hour.
//!
//! Plain HTTP/1.1 over a std `TcpStream`: two GETs to a loopback address do not need an
//! HTTP client stack. Exit status for scripts and monitoring: 0 ready and no site in
//! failure, 1 not ready, sites in failure or an automation link down, 2 daemon unreachable.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde_json::Value;

/// Sites in failure listed one by one, longest in failure first: a summary for a person,
/// and when a whole station is cut off, thousands of lines would bury the rest.
const FAILURES_LISTED: usize = 50;

/// The daemon's default HTTP address (`[http] address`).
pub const DEFAULT_HTTP: &str = "127.0.0.1:9100";

#[derive(clap::Args, Debug)]
pub struct StatusArgs {
    /// The daemon's HTTP address (HOST:PORT).
    #[arg(long, default_value = DEFAULT_HTTP)]
    pub http: String,
    /// Print the raw `/status` JSON instead of the summary.
    #[arg(long)]
    pub json: bool,
}

/// `GET path` on `addr`; returns (status code, body). Short timeouts: the daemon is local
/// and an operator waiting on a hung socket learns nothing.
pub fn http_get(addr: &str, path: &str) -> Result<(u16, String)> {
    let sock = addr
        .to_socket_addrs()
        .with_context(|| format!("bad address `{addr}`"))?
        .next()
        .with_context(|| format!("`{addr}` resolves to nothing"))?;
    let mut s = TcpStream::connect_timeout(&sock, Duration::from_secs(3))
        .with_context(|| format!("cannot connect to {sock}"))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    s.set_write_timeout(Some(Duration::from_secs(5)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf)
        .with_context(|| format!("reading the reply from {sock}"))?;
    let text = String::from_utf8_lossy(&buf);
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        bail!("{sock} sent no HTTP reply");
    };
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .with_context(|| format!("{sock} sent a malformed status line"))?;
    Ok((code, body.to_string()))
}

/// The samples of one metric: (labels text, value).
fn samples<'a>(metrics: &'a str, name: &str) -> Vec<(&'a str, f64)> {
    metrics
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let (n, labels) = match series.split_once('{') {
                Some((n, rest)) => (n, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            (n == name).then_some(())?;
            Some((labels, value.parse().ok()?))
        })
        .collect()
}

fn label<'a>(labels: &'a str, key: &str) -> &'a str {
    labels
        .split(',')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == key)
        .map_or("", |(_, v)| v.trim_matches('"'))
}

fn bytes_text(b: f64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    let unit = UNITS.get(u).copied().unwrap_or("B");
    if u == 0 {
        format!("{v:.0} {unit}")
    } else {
        format!("{v:.1} {unit}")
    }
}

fn uptime_text(s: u64) -> String {
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m {}s", s / 60, s % 60),
        3600..=86_399 => format!("{}h {}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d {}h", s / 86_400, (s % 86_400) / 3600),
    }
}

fn strs(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// The summary text, and whether it calls for attention (exit 1).
pub fn summary(status: &Value, metrics: Option<&str>) -> (String, bool) {
    let mut out = String::new();
    let ready = status["ready"].as_bool().unwrap_or(false);
    let failures = status["supervision"]["sites_in_failure"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    out.push_str(&format!(
        "receiver {}  version {}  up {}  {}\n",
        status["receiver"].as_str().unwrap_or("?"),
        status["version"].as_str().unwrap_or("?"),
        uptime_text(status["uptime_seconds"].as_u64().unwrap_or(0)),
        if ready { "READY" } else { "NOT READY" },
    ));
    let tcp = strs(&status["listeners"]["tcp"]);
    let udp = strs(&status["listeners"]["udp"]);
    out.push_str(&format!(
        "listeners   {} up: tcp {}; udp {}\n",
        tcp.len() + udp.len(),
        if tcp.is_empty() {
            "-".into()
        } else {
            tcp.join(", ")
        },
        if udp.is_empty() {
            "-".into()
        } else {
            udp.join(", ")
        },
    ));
    let writable = status["journal"]["writable"].as_bool().unwrap_or(false);
    let size = metrics
        .and_then(|m| samples(m, "tocsin_journal_size_bytes").first().map(|s| s.1))
        .map(bytes_text)
        .unwrap_or_else(|| "size unknown".into());
    out.push_str(&format!(
        "journal     {}, {}, durable LSN {}\n",
        if writable {
            "writable"
        } else {
            "NOT WRITABLE (restart needed)"
        },
        size,
        status["journal"]["durable_lsn"].as_u64().unwrap_or(0),
    ));
    if let Some(m) = metrics {
        let connected = samples(m, "tocsin_forward_connected");
        let backlog = samples(m, "tocsin_forward_backlog_records");
        let mut sinks: Vec<&str> = connected
            .iter()
            .chain(backlog.iter())
            .map(|(l, _)| label(l, "sink"))
            .collect();
        sinks.sort_unstable();
        sinks.dedup();
        if sinks.is_empty() {
            out.push_str("bus         no sink\n");
        }
        for sink in sinks {
            let c = connected
                .iter()
                .find(|(l, _)| label(l, "sink") == sink)
                .map(|s| s.1);
            let b = backlog
                .iter()
                .find(|(l, _)| label(l, "sink") == sink)
                .map_or(0.0, |s| s.1);
            let state = match c {
                Some(v) if v >= 1.0 => "connected",
                Some(_) => "DISCONNECTED",
                None => "running",
            };
            out.push_str(&format!(
                "bus         {sink}: {state}, backlog {b:.0} records\n"
            ));
        }
    } else {
        out.push_str("bus         unknown (/metrics unreadable)\n");
    }
    let automation_down = automation_lines(status, &mut out);
    out.push_str(&format!(
        "supervision {} accounts, {} paths supervised, {} in failure\n",
        status["accounts"].as_u64().unwrap_or(0),
        status["supervision"]["paths"].as_u64().unwrap_or(0),
        status["supervision"]["failed"].as_u64().unwrap_or(0),
    ));
    let h = &status["last_hour"];
    out.push_str(&format!(
        "last hour   {} frames: {} ACK, {} NAK, {} DUH, {} unanswered\n",
        h["frames"].as_u64().unwrap_or(0),
        h["ack"].as_u64().unwrap_or(0),
        h["nak"].as_u64().unwrap_or(0),
        h["duh"].as_u64().unwrap_or(0),
        h["none"].as_u64().unwrap_or(0),
    ));
    if failures.is_empty() {
        out.push_str("sites in failure: none\n");
    } else {
        out.push_str(&format!("sites in failure: {}\n", failures.len()));
        for f in failures.iter().take(FAILURES_LISTED) {
            out.push_str(&format!(
                "  {:<16} path {:<8} since {}\n",
                f["account"].as_str().unwrap_or("?"),
                f["path"].as_str().unwrap_or("?"),
                f["since"].as_str().unwrap_or("?"),
            ));
        }
        if failures.len() > FAILURES_LISTED {
            out.push_str(&format!(
                "  … and {} more (`tocsin status --json` lists every one)\n",
                failures.len() - FAILURES_LISTED
            ));
        }
    }
    (out, !ready || !failures.is_empty() || automation_down)
}

/// One line per automation output; true when a link is down (alarms wait in the journal).
fn automation_lines(status: &Value, out: &mut String) -> bool {
    let mut down = false;
    for a in status["automation"].as_array().into_iter().flatten() {
        let up = a["link"].as_str() == Some("up");
        down |= !up;
        let mut line = format!(
            "automation  {}: {} ({} {}), backlog {} records, {} delivered",
            a["name"].as_str().unwrap_or("?"),
            if up { "link up" } else { "LINK DOWN" },
            a["mode"].as_str().unwrap_or("?"),
            a["address"].as_str().unwrap_or("?"),
            a["backlog_records"].as_i64().unwrap_or(0),
            a["delivered"].as_u64().unwrap_or(0),
        );
        if let Some(since) = a["since"].as_str() {
            line.push_str(&format!(", since {since}"));
        }
        for (key, what) in [("set_aside", "set aside"), ("unmapped", "unmapped")] {
            let n = a[key].as_u64().unwrap_or(0);
            if n > 0 {
                line.push_str(&format!(", {n} {what}"));
            }
        }
        if let (false, Some(e)) = (up, a["last_error"].as_str()) {
            line.push_str(&format!(" ({e})"));
        }
        out.push_str(&line);
        out.push('\n');
    }
    down
}

pub fn run(args: StatusArgs) -> Result<i32> {
    let (code, body) = match http_get(&args.http, "/status") {
        Ok(r) => r,
        Err(e) => {
            eprintln!("tocsin status: daemon unreachable at {}: {e:#}", args.http);
            return Ok(2);
        }
    };
    if code != 200 {
        eprintln!("tocsin status: /status answered {code}");
        return Ok(2);
    }
    let status: Value = match serde_json::from_str(&body) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("tocsin status: /status is not JSON: {e}");
            return Ok(2);
        }
    };
    let metrics = http_get(&args.http, "/metrics")
        .ok()
        .filter(|(c, _)| *c == 200)
        .map(|(_, b)| b);
    let (text, attention) = summary(&status, metrics.as_deref());
    if args.json {
        println!("{}", serde_json::to_string_pretty(&status)?);
    } else {
        print!("{text}");
    }
    Ok(i32::from(attention))
}
