//! Operations: the daemon as ops run it. A live daemon's `/metrics` passes
//! `promtool check metrics`; the alert rules pass `promtool check rules` and their unit
//! tests; every query of the Grafana dashboard names a metric the daemon exports; the
//! systemd unit passes `systemd-analyze verify`; readiness and the watchdog are sent on a
//! socket standing in for `NOTIFY_SOCKET`; `/readyz` says "not ready" until the listeners
//! are bound.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

fn scratch() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("ops-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap()
}

/// Plain HTTP GET; returns (status, body).
fn get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    let status = buf.split_whitespace().nth(1)?.parse().ok()?;
    let body = buf
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Some((status, body))
}

struct Daemon {
    child: Child,
    http: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(listen: SocketAddr, env: &[(&str, String)]) -> Daemon {
    start_with(listen, env, None)
}

/// [`start`] with a configuration file of `config`.
fn start_with(listen: SocketAddr, env: &[(&str, String)], config: Option<&str>) -> Daemon {
    let dir = scratch();
    let http: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tocsin"));
    cmd.args([
        "run",
        "--listen",
        &listen.to_string(),
        "--http",
        &http.to_string(),
    ])
    .arg("--data-dir")
    .arg(dir.path().join("data"))
    .stdout(Stdio::null())
    .stderr(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    if let Some(text) = config {
        let path = dir.path().join("tocsin.toml");
        std::fs::write(&path, text).unwrap();
        cmd.arg("--config").arg(path);
    }
    let child = cmd.spawn().expect("start tocsin");
    Daemon {
        child,
        http,
        _dir: dir,
    }
}

fn wait_status(addr: SocketAddr, path: &str, want: u16) -> bool {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if get(addr, path).is_some_and(|(s, _)| s == want) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

fn need(tool: &str, package: &str) {
    let ok = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "`{tool}` is missing: install the Debian package `{package}` (scripts/test does)"
    );
}

fn live_metrics() -> String {
    let listen: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    // An automation output (dialling a port where nothing listens), so that its series
    // exist too.
    let automation = format!(
        "[[automation]]\nname = \"ops\"\nconnect = \"127.0.0.1:{}\"\n",
        free_port()
    );
    let d = start_with(listen, &[], Some(&automation));
    assert!(
        wait_status(d.http, "/readyz", 200),
        "daemon never became ready"
    );
    // One frame, so that labelled series exist.
    let mut s = TcpStream::connect(listen).unwrap();
    s.write_all(b"\n11020013\"NULL\"0003L0#1234[]\r").unwrap();
    let mut reply = [0u8; 64];
    let _ = s.read(&mut reply).unwrap();
    let (status, body) = get(d.http, "/metrics").unwrap();
    assert_eq!(status, 200);
    body
}

#[test]
fn metrics_pass_promtool() {
    need("promtool", "prometheus");
    let body = live_metrics();
    assert!(body.contains("tocsin_frames_total{"), "{body}");
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn alert_rules_pass_promtool() {
    need("promtool", "prometheus");
    let deploy = repo().join("deploy");
    for args in [
        ["check", "rules", "alerts.yml"],
        ["test", "rules", "alerts_test.yml"],
    ] {
        let out = Command::new("promtool")
            .args(args)
            .current_dir(&deploy)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "promtool {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Metric names a PromQL expression mentions.
fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let bytes = expr.as_bytes();
    let mut i = 0;
    while let Some(pos) = expr[i..].find("tocsin_") {
        let start = i + pos;
        let mut end = start;
        while end < bytes.len() && (bytes[end].is_ascii_alphanumeric() || bytes[end] == b'_') {
            end += 1;
        }
        names.insert(expr[start..end].to_string());
        i = end;
    }
    names
}

fn exported_families(body: &str) -> BTreeSet<String> {
    body.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

fn family_of(name: &str) -> &str {
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(base) = name.strip_suffix(suffix) {
            return base;
        }
    }
    name
}

#[test]
fn dashboard_and_rules_name_only_exported_metrics() {
    let text = std::fs::read_to_string(repo().join("deploy/grafana-dashboard.json")).unwrap();
    let dash: serde_json::Value = serde_json::from_str(&text).expect("dashboard is valid JSON");
    let panels = dash["panels"].as_array().expect("panels");
    assert!(panels.len() >= 6);
    let mut used = BTreeSet::new();
    for p in panels {
        for t in p["targets"].as_array().expect("targets") {
            used.extend(metric_names(t["expr"].as_str().expect("expr")));
        }
    }
    let rules = std::fs::read_to_string(repo().join("deploy/alerts.yml")).unwrap();
    used.extend(metric_names(&rules));
    let exported = exported_families(&live_metrics());
    let missing: Vec<_> = used
        .iter()
        .filter(|n| !exported.contains(family_of(n)))
        .collect();
    assert!(
        missing.is_empty(),
        "not exported by the daemon: {missing:?}"
    );
    for required in [
        "tocsin_frames_total",
        "tocsin_ack_latency_seconds",
        "tocsin_forward_backlog_records",
        "tocsin_supervision_failed_paths",
        "tocsin_connections_open",
    ] {
        assert!(
            used.contains(required) || used.iter().any(|u| family_of(u) == required),
            "dashboard lacks {required}"
        );
    }
}

#[test]
fn systemd_unit_verifies() {
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        // Not every machine has systemd; the unit is still checked for its sandboxing.
        eprintln!("systemd-analyze not present: verify skipped, static checks only");
    }
    let unit = std::fs::read_to_string(repo().join("deploy/tocsin.service")).unwrap();
    for needed in [
        "Type=notify",
        "WatchdogSec=",
        "DynamicUser=yes",
        "StateDirectory=tocsin",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "NoNewPrivileges=yes",
        "RestrictAddressFamilies=",
        "SystemCallFilter=@system-service",
        "CapabilityBoundingSet=\n",
        "LimitNOFILE=",
        "ExecReload=/bin/kill -HUP $MAINPID",
    ] {
        assert!(unit.contains(needed), "unit lacks {needed:?}");
    }
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_ok()
    {
        let dir = scratch();
        let bin = env!("CARGO_BIN_EXE_tocsin");
        let local = unit.replace("/usr/local/bin/tocsin", bin);
        let path = dir.path().join("tocsin.service");
        std::fs::write(&path, local).unwrap();
        let out = Command::new("systemd-analyze")
            .arg("verify")
            .arg(&path)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        let real_errors: Vec<&str> = err
            .lines()
            .filter(|l| l.contains("tocsin.service"))
            .collect();
        assert!(
            out.status.success() && real_errors.is_empty(),
            "systemd-analyze verify: {err}"
        );
    }
}

#[test]
fn notify_ready_and_watchdog() {
    let dir = scratch();
    let sock_path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let listen: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let d = start(
        listen,
        &[
            ("NOTIFY_SOCKET", sock_path.to_string_lossy().into_owned()),
            ("WATCHDOG_USEC", "400000".into()),
            ("WATCHDOG_PID", String::new()),
        ],
    );
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline
        && !(seen.iter().any(|m: &String| m.contains("READY=1"))
            && seen.iter().any(|m| m.contains("WATCHDOG=1")))
    {
        let mut buf = [0u8; 512];
        if let Ok(n) = sock.recv(&mut buf) {
            seen.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    }
    let ready_at = seen.iter().position(|m| m.contains("READY=1"));
    assert!(ready_at.is_some(), "no READY=1: {seen:?}");
    assert!(
        seen.iter().any(|m| m.contains("WATCHDOG=1")),
        "no watchdog ping: {seen:?}"
    );
    // READY means the listeners accept.
    assert!(TcpStream::connect(listen).is_ok());
    assert!(wait_status(d.http, "/readyz", 200));
}

#[test]
fn readyz_waits_for_listeners() {
    // Hold the panel port so the daemon cannot bind it yet.
    let holder = TcpListener::bind("127.0.0.1:0").unwrap();
    let listen = holder.local_addr().unwrap();
    let d = start(listen, &[]);
    assert!(wait_status(d.http, "/healthz", 200), "no /healthz");
    let (status, body) = get(d.http, "/readyz").unwrap();
    assert_eq!(status, 503, "ready while its port is held: {body}");
    drop(holder);
    assert!(
        wait_status(d.http, "/readyz", 200),
        "not ready after the port was freed"
    );
    assert_null_acked(listen);
}

/// A panel's NULL poll on `listen` gets its ACK.
fn assert_null_acked(listen: SocketAddr) {
    let mut s = TcpStream::connect(listen).unwrap();
    s.write_all(b"\n11020013\"NULL\"0003L0#1234[]\r").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut reply = [0u8; 64];
    let n = s.read(&mut reply).unwrap();
    assert!(
        reply[..n].windows(5).any(|w| w == b"\"ACK\""),
        "{:?}",
        &reply[..n]
    );
}

/// A client that opens HTTP connections and never closes them cannot take the daemon's
/// descriptors: past 128 at once a new one is closed unanswered, panels are still served,
/// and the endpoints answer again once the connections go.
#[test]
fn http_connections_are_capped() {
    let listen: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let d = start(listen, &[]);
    assert!(wait_status(d.http, "/readyz", 200), "never ready");
    // A few more than the cap: the slot of the /readyz request above may be freed a moment
    // after its socket closed, and then a later connection takes it.
    let held: Vec<TcpStream> = (0..140)
        .map(|_| TcpStream::connect(d.http).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        get(d.http, "/metrics"),
        None,
        "a connection past the 128 held ones was served"
    );
    assert_null_acked(listen);
    drop(held);
    assert!(
        wait_status(d.http, "/metrics", 200),
        "not served after the connections closed"
    );
}
