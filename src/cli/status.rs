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
    /// A file holding the daemon's HTTP token (`[http] token_file`), sent as a bearer token.
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<std::path::PathBuf>,
}

/// The token in `file`, for `--token-file` (the daemon's `[http] token_file`).
pub fn read_token(file: Option<&std::path::Path>) -> Result<Option<String>> {
    let Some(file) = file else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("cannot read the token file {}", file.display()))?;
    let token = text.trim();
    if token.is_empty() {
        bail!("the token file {} is empty", file.display());
    }
    Ok(Some(token.to_string()))
}

/// `GET path` on `addr`; returns (status code, body). Short timeouts: the daemon is local
/// and an operator waiting on a hung socket learns nothing.
#[allow(dead_code)] // for callers that send no token
pub fn http_get(addr: &str, path: &str) -> Result<(u16, String)> {
    http_get_auth(addr, path, None)
}

/// [`http_get`] with a bearer token, when one is given.
pub fn http_get_auth(addr: &str, path: &str, token: Option<&str>) -> Result<(u16, String)> {
    let sock = addr
        .to_socket_addrs()
        .with_context(|| format!("bad address `{addr}`"))?
        .next()
        .with_context(|| format!("`{addr}` resolves to nothing"))?;
    let mut s = TcpStream::connect_timeout(&sock, Duration::from_secs(3))
        .with_context(|| format!("cannot connect to {sock}"))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    s.set_write_timeout(Some(Duration::from_secs(5)))?;
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Connection: close\r\n\r\n"
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

/// `clock` of `/status`: steady, or how often and how far the wall clock stepped.
fn clock_line(clock: &Value) -> String {
    let steps = clock["steps"].as_u64().unwrap_or(0);
    if clock.is_null() {
        return "clock       unknown\n".into();
    }
    if steps == 0 {
        return "clock       steady: no step since start\n".into();
    }
    let last = &clock["last_step"];
    format!(
        "clock       STEPPED {steps} time{} since start ({} forward, {} backward); last {:+.1} s at {} (supervision runs on the monotonic clock)\n",
        if steps == 1 { "" } else { "s" },
        clock["forward"].as_u64().unwrap_or(0),
        clock["backward"].as_u64().unwrap_or(0),
        last["seconds"].as_f64().unwrap_or(0.0),
        last["at"].as_str().unwrap_or("?"),
    )
}

/// The peer receivers supervision is shared with, if sharing.
fn peers_line(sup: &Value) -> Option<String> {
    if sup["sharing"].as_bool() != Some(true) {
        return None;
    }
    let peers = sup["peers"].as_array().cloned().unwrap_or_default();
    if peers.is_empty() {
        return Some("peers       none heard (sharing over the bus)\n".into());
    }
    let list: Vec<String> = peers
        .iter()
        .map(|p| {
            let state = p["state"].as_str().unwrap_or("?");
            let ago = p["last_beat_seconds_ago"]
                .as_f64()
                .map_or_else(|| "never".into(), |s| format!("{s:.1} s ago"));
            format!(
                "{} {} (beat {ago})",
                p["receiver"].as_str().unwrap_or("?"),
                if state == "live" { "live" } else { "UNHEARD" },
            )
        })
        .collect();
    Some(format!("peers       {}\n", list.join(", ")))
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
    out.push_str(&bus_lines(&status["bus"]));
    out.push_str(&clock_line(&status["clock"]));
    let automation_down = automation_lines(status, &mut out);
    let sup = &status["supervision"];
    out.push_str(&format!(
        "supervision {} accounts, {} paths supervised, {} in failure{}{}\n",
        status["accounts"].as_u64().unwrap_or(0),
        sup["paths"].as_u64().unwrap_or(0),
        sup["failed"].as_u64().unwrap_or(0),
        match sup["held"].as_u64() {
            Some(h) if h > 0 => format!(", {h} held for unheard peers"),
            _ => String::new(),
        },
        if sup["running"].as_bool() == Some(false) {
            ", NOT RUNNING (restart needed)"
        } else {
            ""
        },
    ));
    if let Some(line) = peers_line(sup) {
        out.push_str(&line);
    }
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

/// What to tell when the daemon refuses: 401 (no or wrong token) or 403 (only the open
/// routes are served).
pub fn refusal(code: u16, body: &str) -> Option<String> {
    match code {
        401 => Some(
            "the daemon asks for its HTTP token: give --token-file FILE (the file of [http] token_file)"
                .into(),
        ),
        403 => Some(format!("the daemon refused: {}", body.trim())),
        _ => None,
    }
}

/// The bus as the NATS sink sees it (`/status` `bus`): the server it is connected to,
/// reconnections, and the stream's replicas and leader. Empty without a bus.
fn bus_lines(bus: &Value) -> String {
    if !bus.is_object() {
        return String::new();
    }
    let mut out = String::new();
    let security = format!(
        "auth {}, TLS {}",
        bus["auth"].as_str().unwrap_or("?"),
        if bus["tls"].as_bool().unwrap_or(false) {
            "yes"
        } else {
            "no"
        }
    );
    if bus["connected"].as_bool().unwrap_or(false) {
        out.push_str(&format!(
            "bus         nats: on {} ({}), {} reconnects, {security}\n",
            bus["server"].as_str().unwrap_or("?"),
            bus["server_name"].as_str().unwrap_or("?"),
            bus["reconnects"].as_u64().unwrap_or(0),
        ));
    } else {
        out.push_str(&format!(
            "bus         nats: NOT CONNECTED to any of {}; {security}\n",
            strs(&bus["servers"]).join(", ")
        ));
        if let Some(e) = bus["last_error"].as_str() {
            out.push_str(&format!("bus         last error: {e}\n"));
        }
    }
    let s = &bus["stream"];
    if s.is_object() {
        let replicas = s["replicas"].as_u64().unwrap_or(0);
        let current = s["replicas_current"].as_u64().unwrap_or(0);
        let lagging = strs(&s["lagging"]);
        out.push_str(&format!(
            "bus         stream {}: {replicas} replicas, {current} current{}, leader {}{}\n",
            s["name"].as_str().unwrap_or("?"),
            if current < replicas {
                " (DEGRADED)"
            } else {
                ""
            },
            s["leader"].as_str().unwrap_or("none (election)"),
            if lagging.is_empty() {
                String::new()
            } else {
                format!(", behind or offline: {}", lagging.join(", "))
            },
        ));
    }
    out
}

pub fn run(args: StatusArgs) -> Result<i32> {
    let token = match read_token(args.token_file.as_deref()) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("tocsin status: {e:#}");
            return Ok(2);
        }
    };
    let (code, body) = match http_get_auth(&args.http, "/status", token.as_deref()) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("tocsin status: daemon unreachable at {}: {e:#}", args.http);
            return Ok(2);
        }
    };
    if code != 200 {
        match refusal(code, &body) {
            Some(why) => eprintln!("tocsin status: {why}"),
            None => eprintln!("tocsin status: /status answered {code}"),
        }
        return Ok(2);
    }
    let status: Value = match serde_json::from_str(&body) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("tocsin status: /status is not JSON: {e}");
            return Ok(2);
        }
    };
    let metrics = http_get_auth(&args.http, "/metrics", token.as_deref())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_steps_and_peers_are_shown() {
        let status = serde_json::json!({
            "ready": true,
            "clock": {"steps": 2, "forward": 1, "backward": 1,
                      "last_step": {"at": "2027-01-15T08:00:01.000Z", "seconds": -3600.0}},
            "supervision": {"paths": 3, "failed": 0, "held": 2, "running": true,
                            "sharing": true, "sites_in_failure": [],
                            "peers": [{"receiver": "rx-b", "state": "unheard",
                                       "last_beat_seconds_ago": 12.0}]},
        });
        let (text, attention) = summary(&status, None);
        assert!(
            text.contains("clock       STEPPED 2 times since start (1 forward, 1 backward); last -3600.0 s at 2027-01-15T08:00:01.000Z"),
            "{text}"
        );
        assert!(
            text.contains("0 in failure, 2 held for unheard peers"),
            "{text}"
        );
        assert!(
            text.contains("peers       rx-b UNHEARD (beat 12.0 s ago)"),
            "{text}"
        );
        assert!(!attention);
        let steady = serde_json::json!({"ready": true, "clock": {"steps": 0}});
        assert!(summary(&steady, None).0.contains("clock       steady"));
    }

    #[test]
    fn the_bus_as_the_sink_sees_it() {
        let bus = serde_json::json!({
            "sink": "nats", "servers": ["nats://a:4222", "nats://b:4222"], "auth": "nkey",
            "tls": true, "connected": true, "server": "nats://b:4222", "server_name": "n2",
            "reconnects": 3, "last_error": null,
            "stream": {"name": "TOCSIN", "replicas": 3, "replicas_current": 2,
                       "leader": "n1", "cluster": "station", "lagging": ["n3"],
                       "duplicate_window_s": 600},
        });
        let text = bus_lines(&bus);
        assert!(
            text.contains("nats: on nats://b:4222 (n2), 3 reconnects, auth nkey, TLS yes"),
            "{text}"
        );
        assert!(
            text.contains(
                "stream TOCSIN: 3 replicas, 2 current (DEGRADED), leader n1, behind or offline: n3"
            ),
            "{text}"
        );
        let down = serde_json::json!({
            "servers": ["nats://a:4222"], "auth": "none", "tls": false, "connected": false,
            "last_error": "no NATS server reachable", "stream": null,
        });
        let text = bus_lines(&down);
        assert!(
            text.contains("NOT CONNECTED to any of nats://a:4222"),
            "{text}"
        );
        assert!(
            text.contains("last error: no NATS server reachable"),
            "{text}"
        );
        assert_eq!(bus_lines(&Value::Null), "");
    }
}
