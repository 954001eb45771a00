//! The operator's views against real processes: `tocsin run` with supervised accounts,
//! frames sent over TCP, then `tocsin history`, `status`, `diag` and `report` as an
//! operator would run them. Covers supervision failures and restores (single and dual
//! path), a restart that must not invent or repeat failures, status exit codes, the
//! diagnosis offline and over HTTP, and the report files.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use tocsin::protocol::crypto::{Key, MAX_PAD};
use tocsin::protocol::dc09::CrcForm;
use tocsin::protocol::encode::{encode, FrameSpec};

const BIN: &str = env!("CARGO_BIN_EXE_tocsin");

fn free_addr() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

fn scratch(prefix: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap()
}

fn now_micros() -> i64 {
    tocsin::station::micros(time::UtcDateTime::now())
}

/// Plain HTTP GET; (status, body).
fn get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    let status = buf.split_whitespace().nth(1)?.parse().ok()?;
    let body = buf.split_once("\r\n\r\n").map(|(_, b)| b.to_string())?;
    Some((status, body))
}

struct Daemon {
    child: Child,
    tcp: SocketAddr,
    http: SocketAddr,
}

impl Daemon {
    fn start(config: &Path, data: &Path) -> Daemon {
        let tcp = free_addr();
        let http = free_addr();
        let child = Command::new(BIN)
            .arg("run")
            .arg("--config")
            .arg(config)
            .arg("--data-dir")
            .arg(data)
            .args(["--listen", &tcp.to_string(), "--http", &http.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start tocsin run");
        let d = Daemon { child, tcp, http };
        let deadline = Instant::now() + Duration::from_secs(20);
        while get(http, "/readyz").is_none_or(|(s, _)| s != 200) {
            assert!(Instant::now() < deadline, "daemon never became ready");
            std::thread::sleep(Duration::from_millis(25));
        }
        d
    }

    /// SIGTERM, and wait for the drain to finish.
    fn stop(mut self) {
        let pid = self.child.id().to_string();
        let ok = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -TERM failed");
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if self.child.try_wait().unwrap().is_some() {
                return;
            }
            assert!(Instant::now() < deadline, "daemon did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends one frame and returns the reply text ("" when none came).
fn send(
    to: SocketAddr,
    account: &str,
    line: &str,
    token: &str,
    data: &str,
    key: Option<&Key>,
) -> String {
    let data = if data.is_empty() {
        String::new()
    } else {
        format!("#{account}|{data}")
    };
    let spec = FrameSpec {
        token,
        seq: "0001",
        receiver: None,
        line,
        account,
        data: data.as_bytes(),
        ext: &[],
        timestamp: Some(time::UtcDateTime::now()),
        form: CrcForm::Ascii,
    };
    let mut random = [7u8; MAX_PAD];
    // A fresh pad per frame, so retransmissions are not taken for duplicates.
    random[0] = (now_micros() & 0xff) as u8;
    let mut frame = Vec::new();
    encode(&spec, key, &random, &mut frame);
    let mut s = TcpStream::connect(to).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(&frame).unwrap();
    let mut reply = Vec::new();
    let mut byte = [0u8; 1];
    while let Ok(1) = s.read(&mut byte) {
        reply.push(byte[0]);
        if byte[0] == b'\r' {
            break;
        }
    }
    String::from_utf8_lossy(&reply).into_owned()
}

fn tocsin(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().expect("run tocsin")
}

fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Supervision events in the journal, as JSON.
fn supervision_events(data: &Path) -> Vec<Value> {
    let out = tocsin(&[
        "history",
        "--data-dir",
        path_str(data),
        "--class",
        "supervision",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn count(events: &[Value], account: &str, code: &str) -> usize {
    events
        .iter()
        .filter(|e| e["account"] == account && e["code"] == code)
        .count()
}

/// Waits until `pred` holds over the supervision events.
fn wait_events(data: &Path, what: &str, pred: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let ev = supervision_events(data);
        if pred(&ev) {
            return ev;
        }
        assert!(Instant::now() < deadline, "never saw {what}: {ev:#?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn write_config(dir: &Path, accounts: &str) -> PathBuf {
    let path = dir.join("tocsin.toml");
    let text = format!(
        "[receiver]\nid = \"test\"\n[output]\nstdout = false\n[accounts]\nunknown = \"accept\"\n{accounts}"
    );
    std::fs::write(&path, text).unwrap();
    path
}

const SUPERVISED: &str = r#"
[[account]]
id = "1001"
supervision = "1s"
[[account]]
id = "1002"
supervision = "1s"
[[account]]
id = "1003"
supervision = "10s"
[[account]]
id = "2001"
supervision = "1s/2s"
"#;

/// 1001: silent, then heard again (fail, restore). 1002: silent and still failed across
/// a restart (one comm_fail only). 1003: healthy throughout (no failure ever, and none
/// after the restart before its fresh interval). 2001: dual path, L1 silent while L2
/// reports (path_fail L1), then both silent (comm_fail).
#[test]
fn supervision_restart_and_status() {
    let dir = scratch("sup-");
    let config = write_config(dir.path(), SUPERVISED);
    let data = dir.path().join("data");
    let d = Daemon::start(&config, &data);

    assert!(send(d.tcp, "1003", "1", "NULL", "", None).contains("ACK"));
    assert!(send(d.tcp, "2001", "1", "NULL", "", None).contains("ACK"));
    assert!(send(d.tcp, "2001", "2", "NULL", "", None).contains("ACK"));

    // Keep 2001 on L2 and 1003 heard, every 300 ms, far inside their intervals.
    let l2 = Arc::new(AtomicBool::new(true));
    let healthy = Arc::new(AtomicBool::new(true));
    let feeder = {
        let (l2, healthy, to) = (Arc::clone(&l2), Arc::clone(&healthy), d.tcp);
        std::thread::spawn(move || {
            while l2.load(Ordering::Acquire) || healthy.load(Ordering::Acquire) {
                if l2.load(Ordering::Acquire) {
                    send(to, "2001", "2", "NULL", "", None);
                }
                if healthy.load(Ordering::Acquire) {
                    send(to, "1003", "1", "NULL", "", None);
                }
                std::thread::sleep(Duration::from_millis(300));
            }
        })
    };

    // (a) Silence is a comm_fail; (b) one silent path of a dual-path account a path_fail.
    let ev = wait_events(&data, "comm_fail 1001/1002 and path_fail 2001", |ev| {
        count(ev, "1001", "comm_fail") == 1
            && count(ev, "1002", "comm_fail") == 1
            && count(ev, "2001", "path_fail") == 1
    });
    let pf = ev
        .iter()
        .find(|e| e["account"] == "2001" && e["code"] == "path_fail")
        .unwrap();
    assert_eq!(pf["path"], "L1", "{pf}");
    assert_eq!(
        count(&ev, "2001", "comm_fail"),
        0,
        "L2 still reports: {ev:#?}"
    );

    // (c) status: sites in failure → exit 1, listed with their path.
    let out = tocsin(&["status", "--http", &d.http.to_string()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("READY"), "{text}");
    assert!(text.contains("1002") && text.contains("since"), "{text}");
    assert!(text.contains("sites in failure: "), "{text}");
    let out = tocsin(&["status", "--http", &d.http.to_string(), "--json"]);
    let status: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        status["last_hour"]["frames"].as_u64().unwrap() >= 3,
        "{status}"
    );
    assert_eq!(status["last_hour"]["nak"], 0, "{status}");
    let failing: Vec<&str> = status["supervision"]["sites_in_failure"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["account"].as_str())
        .collect();
    assert!(
        failing.contains(&"1002") && failing.contains(&"2001"),
        "{status}"
    );

    // A frame restores 1001.
    assert!(send(d.tcp, "1001", "1", "NULL", "", None).contains("ACK"));
    wait_events(&data, "comm_restore 1001", |ev| {
        count(ev, "1001", "comm_restore") == 1
    });

    // Both paths of 2001 silent: comm_fail.
    l2.store(false, Ordering::Release);
    wait_events(&data, "comm_fail 2001", |ev| {
        count(ev, "2001", "comm_fail") == 1
    });

    // Restart on the same data directory.
    healthy.store(false, Ordering::Release);
    feeder.join().unwrap();
    d.stop();
    let d = Daemon::start(&config, &data);
    // 1003 is heard right after the restart, well inside its fresh 10 s interval.
    assert!(send(d.tcp, "1003", "1", "NULL", "", None).contains("ACK"));
    let heard_at = now_micros();
    // Long enough for 1002 to fail again (2-3 s) had its failure been forgotten.
    std::thread::sleep(Duration::from_millis(3500));
    let ev = supervision_events(&data);
    assert_eq!(
        count(&ev, "1002", "comm_fail"),
        1,
        "second comm_fail: {ev:#?}"
    );
    assert_eq!(count(&ev, "1002", "comm_restore"), 0, "{ev:#?}");
    // No failure for the healthy account, before or after the restart (its frame came at
    // `heard_at`; nothing dated before it may be a failure either).
    let healthy_fail: Vec<&Value> = ev
        .iter()
        .filter(|e| e["account"] == "1003" && e["code"] != "comm_restore")
        .collect();
    assert!(
        healthy_fail.is_empty(),
        "false failure of 1003 (heard at {heard_at}): {healthy_fail:#?}"
    );

    // Still in failure after the restart, so still listed.
    let out = tocsin(&["status", "--http", &d.http.to_string()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("1002"), "{text}");

    // (c) diag over HTTP shows the supervisor's paths of the dual-path account.
    let out = tocsin(&["diag", "2001", "--http", &d.http.to_string(), "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let diag: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(diag["paths_from"], "daemon", "{diag}");
    assert!(
        diag["supervision_counts"]["path_fail"].as_u64() >= Some(1),
        "{diag}"
    );

    let http = d.http;
    drop(d);
    // Unreachable daemon: exit 2.
    let out = tocsin(&["status", "--http", &http.to_string()]);
    assert_eq!(out.status.code(), Some(2));
}

/// A metric's value from the daemon's `/metrics` (0 when absent).
fn metric(http: SocketAddr, name: &str) -> f64 {
    let (_, body) = get(http, "/metrics").expect("GET /metrics");
    body.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or(0.0)
}

/// A dual-path site that names eleven paths: every frame is acknowledged, eight paths are
/// supervised, the three others are counted and never reported lost.
#[test]
fn a_site_naming_too_many_paths() {
    let dir = scratch("paths-");
    let config = write_config(
        dir.path(),
        "[[account]]\nid = \"2002\"\nsupervision = \"2s/2s\"\n",
    );
    let data = dir.path().join("data");
    let d = Daemon::start(&config, &data);
    for line in 1..=11 {
        let reply = send(d.tcp, "2002", &line.to_string(), "NULL", "", None);
        assert!(reply.contains("\"ACK\""), "line {line}: {reply:?}");
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while metric(d.http, "tocsin_supervision_paths_refused_total") < 3.0 {
        assert!(Instant::now() < deadline, "refused paths never counted");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(metric(d.http, "tocsin_supervision_paths"), 8.0);
    let ev = wait_events(&data, "path_fail of the supervised paths", |ev| {
        count(ev, "2002", "comm_fail") == 1
    });
    // Every path is silent at once, so one comm_fail names them all ("L1,L2,…").
    let lost: Vec<&str> = ev
        .iter()
        .filter(|e| e["account"] == "2002")
        .filter_map(|e| e["path"].as_str())
        .flat_map(|p| p.split(','))
        .collect();
    assert!(lost.contains(&"L8"), "{ev:#?}");
    for extra in ["L9", "L10", "L11"] {
        assert!(!lost.contains(&extra), "{extra} reported: {ev:#?}");
    }
}

/// Every site of a station silent in the same second (its network is down, or it was
/// restarted while the network was down: every path gets a fresh interval at start): each
/// one still gets its comm_fail in the journal, however many there are.
#[test]
fn mass_silence_is_journaled_whole() {
    const SITES: usize = 3000;
    let dir = scratch("mass-");
    let accounts: String = (0..SITES)
        .map(|i| {
            format!(
                "[[account]]\nid = \"{}\"\nsupervision = \"1s\"\n",
                500_000 + i
            )
        })
        .collect();
    let config = write_config(dir.path(), &accounts);
    let data = dir.path().join("data");
    let d = Daemon::start(&config, &data);
    let ev = wait_events(&data, "a comm_fail for every site", |ev| {
        ev.iter().filter(|e| e["code"] == "comm_fail").count() >= SITES
    });
    let mut failed: Vec<&str> = ev
        .iter()
        .filter(|e| e["code"] == "comm_fail")
        .filter_map(|e| e["account"].as_str())
        .collect();
    failed.sort_unstable();
    failed.dedup();
    assert_eq!(failed.len(), SITES);
    assert_eq!(
        metric(d.http, "tocsin_journal_errors_total{action=\"audit_lost\"}"),
        0.0
    );
    // The start-of-shift summary stays a summary: the longest in failure first (ties by
    // account), fifty of them, then a count; the JSON has every one.
    let out = tocsin(&["status", "--http", &d.http.to_string()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains(&format!("sites in failure: {SITES}")),
        "{text}"
    );
    let listed: Vec<&str> = text
        .lines()
        .filter(|l| l.contains(" path ") && l.contains(" since "))
        .collect();
    assert_eq!(listed.len(), 50, "{text}");
    assert!(listed[0].trim_start().starts_with("500000 "), "{text}");
    assert!(text.contains(&format!("and {} more", SITES - 50)), "{text}");
    let out = tocsin(&["status", "--http", &d.http.to_string(), "--json"]);
    let status: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        status["supervision"]["sites_in_failure"]
            .as_array()
            .map(Vec::len),
        Some(SITES)
    );
}

const PLAIN: &str = r#"
[[account]]
id = "3001"
key = "000102030405060708090A0B0C0D0E0F"
key_encoding = "hex"
[[account]]
id = "4001"
[[account]]
id = "4002"
"#;

/// A minimal well-formedness check: one root `<svg>`, every tag closed in order.
fn check_svg(text: &str) {
    let body = text.trim_start();
    let body = match body.strip_prefix("<?xml") {
        Some(rest) => &rest[rest.find("?>").unwrap() + 2..],
        None => body,
    };
    assert!(body.trim_start().starts_with("<svg"), "no <svg root");
    let mut stack: Vec<String> = Vec::new();
    let mut rest = body;
    let mut roots = 0;
    while let Some(i) = rest.find('<') {
        let after = &rest[i + 1..];
        let end = after.find('>').expect("unclosed tag");
        let tag = &after[..end];
        rest = &after[end + 1..];
        if tag.starts_with('!') || tag.starts_with('?') {
            continue;
        }
        if let Some(name) = tag.strip_prefix('/') {
            assert_eq!(
                stack.pop().as_deref(),
                Some(name.trim()),
                "misnested </{name}>"
            );
        } else if !tag.ends_with('/') {
            let name = tag.split_whitespace().next().unwrap().to_string();
            if stack.is_empty() {
                roots += 1;
            }
            stack.push(name);
        } else if stack.is_empty() {
            roots += 1;
        }
    }
    assert!(stack.is_empty(), "unclosed: {stack:?}");
    assert_eq!(roots, 1);
}

fn read_csv(path: &Path) -> (Vec<String>, Vec<Vec<String>>) {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    let header = lines
        .next()
        .unwrap()
        .split(',')
        .map(str::to_string)
        .collect::<Vec<_>>();
    // The values compared here have no commas or quotes.
    let rows: Vec<Vec<String>> = lines
        .map(|l| l.split(',').map(str::to_string).collect())
        .collect();
    (header, rows)
}

fn col(header: &[String], name: &str) -> usize {
    header
        .iter()
        .position(|h| h == name)
        .unwrap_or_else(|| panic!("no column {name} in {header:?}"))
}

#[test]
fn diag_and_report() {
    let dir = scratch("rep-");
    let config = write_config(dir.path(), PLAIN);
    let data = dir.path().join("data");
    let since = time::UtcDateTime::now() - time::Duration::minutes(1);
    let d = Daemon::start(&config, &data);

    let good = Key::from_hex("000102030405060708090A0B0C0D0E0F").unwrap();
    let bad = Key::from_hex("FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF").unwrap();
    assert!(send(d.tcp, "3001", "1", "NULL", "", Some(&good)).contains("ACK"));
    let nak = send(d.tcp, "3001", "1", "SIA-DCS", "Nri1/BA01", Some(&bad));
    assert!(nak.contains("NAK"), "{nak:?}");
    assert!(send(d.tcp, "4001", "1", "SIA-DCS", "Nri1/BA01", None).contains("ACK"));
    assert!(send(d.tcp, "4001", "1", "SIA-DCS", "Nri1/FA02", None).contains("ACK"));
    assert!(send(d.tcp, "4002", "1", "ADM-CID", "1130 01 015", None).contains("ACK"));

    // (c) diag offline: the last frames, the NAK and its reason.
    let out = tocsin(&["diag", "3001", "--data-dir", path_str(&data)]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("1 NAK (decrypt)"), "{text}");
    assert!(text.contains("decryption failures 1"), "{text}");
    assert!(text.contains("last 2 frames"), "{text}");
    let out = tocsin(&["diag", "3001", "--data-dir", path_str(&data), "--json"]);
    let offline: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(offline["frames"], 2);
    assert_eq!(offline["decrypt_failures"], 1);
    let frames = offline["last_frames"].as_array().unwrap();
    assert_eq!(frames[1]["outcome"], "nak");
    assert_eq!(frames[1]["reason"], "decrypt");
    assert!(
        frames[1]["reply"].as_str().unwrap().contains("NAK"),
        "{offline}"
    );
    assert!(
        frames[1]["raw"].as_str().unwrap().contains("#3001"),
        "{offline}"
    );

    // … and over HTTP, the same story.
    let out = tocsin(&["diag", "3001", "--http", &d.http.to_string(), "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let online: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(online["frames"], 2);
    assert_eq!(online["decrypt_failures"], 1);
    assert_eq!(online["last_frames"], offline["last_frames"]);
    let out = tocsin(&["diag", "3001", "--http", &d.http.to_string()]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 NAK (decrypt)"));
    // Accounts from the network are checked; nothing breaks the daemon.
    for bad in [
        "/diag/",
        "/diag/12%2F34",
        "/diag/12345678901234567",
        "/diag/..",
        "/diag/1?since=x",
    ] {
        assert_eq!(get(d.http, bad).map(|r| r.0), Some(400), "{bad}");
    }
    assert_eq!(get(d.http, "/diag/9999").map(|r| r.0), Some(200));
    assert!(!tocsin(&["diag", "no/such", "--data-dir", path_str(&data)])
        .status
        .success());

    // (c) status: ready, nothing supervised → exit 0, a NAK in the last hour.
    let out = tocsin(&["status", "--http", &d.http.to_string(), "--json"]);
    assert_eq!(out.status.code(), Some(0));
    let status: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["last_hour"]["frames"], 5, "{status}");
    assert_eq!(status["last_hour"]["nak"], 1, "{status}");
    let out = tocsin(&["status", "--http", &d.http.to_string()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("5 frames: 4 ACK, 1 NAK"), "{text}");
    assert!(text.contains("journal     writable"), "{text}");
    assert!(text.contains("sites in failure: none"), "{text}");

    // (d) report.
    let until = time::UtcDateTime::now() + time::Duration::minutes(1);
    let rfc = |t: time::UtcDateTime| tocsin::receiver::event::rfc3339(t);
    let out_dir = dir.path().join("report");
    let out = tocsin(&[
        "report",
        "--since",
        &rfc(since),
        "--until",
        &rfc(until),
        "--out",
        path_str(&out_dir),
        "--data-dir",
        path_str(&data),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let (h, rows) = read_csv(&out_dir.join("alarms_per_day.csv"));
    assert_eq!(h.first().map(String::as_str), Some("date"));
    let sum = |c: &str| -> u64 {
        rows.iter()
            .map(|r| r[col(&h, c)].parse::<u64>().unwrap())
            .sum()
    };
    assert_eq!(sum("burglary"), 2, "{rows:?}");
    assert_eq!(sum("fire"), 1);
    assert_eq!(sum("total"), 3);

    let (h, rows) = read_csv(&out_dir.join("top_accounts.csv"));
    let row = |a: &str| {
        rows.iter()
            .find(|r| r[col(&h, "account")] == a)
            .unwrap()
            .clone()
    };
    assert_eq!(row("4001")[col(&h, "events")], "2");
    assert_eq!(row("4001")[col(&h, "alarms")], "2");
    assert_eq!(row("4002")[col(&h, "alarms")], "1");
    assert_eq!(rows[0][col(&h, "account")], "4001", "ranked by events");

    let (h, rows) = read_csv(&out_dir.join("supervision_failures.csv"));
    assert_eq!(
        h,
        [
            "period",
            "path_fail",
            "comm_fail",
            "path_restore",
            "comm_restore"
        ]
    );
    assert!(!rows.is_empty());
    assert!(rows
        .iter()
        .all(|r| r.len() == 5 && r[1..].iter().all(|n| n == "0")));

    // events.csv: the history CSV of the same span, row for row.
    let (h, rows) = read_csv(&out_dir.join("events.csv"));
    let hist = tocsin(&[
        "history",
        "--data-dir",
        path_str(&data),
        "--format",
        "csv",
        "--since",
        &rfc(since),
        "--until",
        &rfc(until),
    ]);
    let hist = String::from_utf8_lossy(&hist.stdout).into_owned();
    assert_eq!(
        std::fs::read_to_string(out_dir.join("events.csv")).unwrap(),
        hist
    );
    assert_eq!(h.first().map(String::as_str), Some("received_at"));
    let ours = rows
        .iter()
        .filter(|r| r[col(&h, "account")].starts_with('4'))
        .count();
    assert_eq!(ours, 3, "{rows:?}");

    for svg in [
        "alarms_per_day.svg",
        "top_accounts.svg",
        "supervision_failures.svg",
    ] {
        let text = std::fs::read_to_string(out_dir.join(svg)).unwrap();
        check_svg(&text);
        assert!(text.contains("<text"), "{svg} has no labels");
    }
    let alarms_svg = std::fs::read_to_string(out_dir.join("alarms_per_day.svg")).unwrap();
    assert!(alarms_svg.contains("burglary"));

    // One account only.
    let one = dir.path().join("report-4002");
    let out = tocsin(&[
        "report",
        "--since",
        &rfc(since),
        "--until",
        &rfc(until),
        "--account",
        "4002",
        "--out",
        path_str(&one),
        "--data-dir",
        path_str(&data),
    ]);
    assert!(out.status.success());
    let (_, rows) = read_csv(&one.join("events.csv"));
    assert_eq!(rows.len(), 1);
}
