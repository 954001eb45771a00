//! The HTTP endpoints' access rules against the real daemon: the bearer token, the cookie a
//! browser gets from `?token=`, `metrics_unauthenticated`, the routes that are always open,
//! an address off loopback without a token (only the open routes served, one ERROR line,
//! the receiver still acknowledging), `allow_unauthenticated`, `check-config`'s warnings,
//! and `tocsin status` / `tocsin diag --http` with `--token-file`.
//!
//! "Off loopback" is the wildcard address 0.0.0.0: the daemon binds it, and the test still
//! reaches it over 127.0.0.1, so no packet leaves the machine.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;

const TOKEN: &str = "3c0f6a8e91d24b7fa5e0c2d4b6a8e0f1";

/// A reply: status, headers (lower-case names), body.
struct Reply {
    code: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A GET with extra header lines.
fn get(addr: SocketAddr, path: &str, extra: &[&str]) -> Reply {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for h in extra {
        req.push_str(h);
        req.push_str("\r\n");
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP reply");
    let mut lines = head.lines();
    let code = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .expect("status line");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Reply {
        code,
        headers,
        body: body.to_string(),
    }
}

fn bearer(token: &str) -> String {
    format!("Authorization: Bearer {token}")
}

fn token_file(dir: &Path, mode: u32) -> std::path::PathBuf {
    let p = write_file(dir, "http.token", &format!("{TOKEN}\n"));
    std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(mode)).unwrap();
    p
}

#[test]
fn the_token_is_asked_for_everywhere_but_health_and_readiness() {
    let dir = tempdir();
    let token = token_file(dir.path(), 0o600);
    let cfg = write_file(
        dir.path(),
        "tocsin.toml",
        "[http]\ntoken_file = \"http.token\"\n[[account]]\nid = \"1234\"\nsupervision = \"1h\"\n",
    );
    let d = Daemon::start(&cfg, &dir.path().join("data"));
    let mut panel = Tcp::connect(d.addr);
    assert_eq!(
        view(&panel.exchange(&Fb::sia("1234", 1, "Nri1/BA01").clear())).token,
        "ACK"
    );

    for open in ["/healthz", "/readyz"] {
        assert_eq!(get(d.http, open, &[]).code, 200, "{open}");
    }
    let good = bearer(TOKEN);
    let wrong = bearer(&TOKEN.replace('3', "4"));
    for path in [
        "/status",
        "/metrics",
        "/",
        "/site/1234",
        "/diag/1234",
        "/nowhere",
    ] {
        let r = get(d.http, path, &[]);
        assert_eq!(r.code, 401, "{path} without a token");
        assert_eq!(
            r.header("www-authenticate"),
            Some("Bearer realm=\"tocsin\"")
        );
        assert!(!r.body.contains(TOKEN));
        assert_eq!(
            get(d.http, path, &[&wrong]).code,
            401,
            "{path}, wrong token"
        );
        let expected = if path == "/nowhere" { 404 } else { 200 };
        assert_eq!(get(d.http, path, &[&good]).code, expected, "{path} with it");
    }
    // A browser: the 401 page says how; ?token= answers with the cookie and sends it to
    // the same address without the token; the cookie then lets it in.
    let r = get(d.http, "/", &[]);
    assert!(r.body.contains("a token is needed"), "{}", r.body);
    let r = get(d.http, &format!("/site/1234?refresh=5&token={TOKEN}"), &[]);
    assert_eq!(r.code, 303);
    assert_eq!(r.header("location"), Some("/site/1234?refresh=5"));
    let cookie = r.header("set-cookie").expect("a cookie").to_string();
    let port = d.http.port();
    assert!(
        cookie.starts_with(&format!("tocsin_token_{port}={TOKEN};")),
        "{cookie}"
    );
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"));
    let jar = format!("Cookie: other=1; tocsin_token_{port}={TOKEN}");
    let page = get(d.http, "/", &[&jar]);
    assert_eq!(page.code, 200);
    assert!(page.body.contains("id=\"journal\""));
    let csp = page.header("content-security-policy").unwrap_or("");
    assert!(csp.contains("default-src 'none'"), "{csp}");
    assert_eq!(page.header("referrer-policy"), Some("no-referrer"));
    let stranger = format!("Cookie: tocsin_token_{}={TOKEN}", port + 1);
    assert_eq!(
        get(d.http, "/", &[&stranger]).code,
        401,
        "another port's cookie"
    );
    // Tools may put it in the query too, without a redirect.
    assert_eq!(
        get(d.http, &format!("/status?token={TOKEN}"), &[]).code,
        200
    );

    let metrics = get(d.http, "/metrics", &[&good]).body;
    let m = Metrics::parse(&metrics);
    assert!(m.sum("tocsin_http_refused_total", &[("reason", "unauthorized")]) >= 13.0);

    // The CLI with and without --token-file.
    let http = d.http.to_string();
    let tf = token.to_str().unwrap();
    let (code, _, err) = run_cli(&["status", "--http", &http]);
    assert_eq!(code, 2);
    assert!(err.contains("--token-file"), "{err}");
    let (code, out, err) = run_cli(&["status", "--http", &http, "--token-file", tf]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("journal     writable"), "{out}");
    assert!(
        out.contains("bus         stdout"),
        "metrics read with the token: {out}"
    );
    let (code, _, err) = run_cli(&["diag", "1234", "--http", &http]);
    assert_ne!(code, 0);
    assert!(err.contains("--token-file"), "{err}");
    let (code, out, err) = run_cli(&["diag", "1234", "--http", &http, "--token-file", tf]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("account 1234"), "{out}");
    let (code, _, err) = run_cli(&["status", "--http", &http, "--token-file", "/nonexistent"]);
    assert_eq!(code, 2);
    assert!(err.contains("cannot read the token file"), "{err}");

    assert!(!d.stderr().contains(TOKEN), "the token is never logged");
}

#[test]
fn metrics_can_be_left_open_for_a_scraper() {
    let dir = tempdir();
    token_file(dir.path(), 0o600);
    let cfg = write_file(
        dir.path(),
        "tocsin.toml",
        "[http]\ntoken_file = \"http.token\"\nmetrics_unauthenticated = true\n",
    );
    let d = Daemon::start(&cfg, &dir.path().join("data"));
    let r = get(d.http, "/metrics", &[]);
    assert_eq!(r.code, 200);
    assert!(r.body.contains("tocsin_events_total"));
    assert_eq!(get(d.http, "/status", &[]).code, 401);
    assert_eq!(get(d.http, "/", &[]).code, 401);
}

/// The daemon with its HTTP endpoints on the wildcard address; stderr collected.
struct Wide {
    child: Child,
    addr: SocketAddr,
    http: SocketAddr,
    stderr: Arc<Mutex<String>>,
}

impl Wide {
    fn start(config: &Path, data: &Path) -> Wide {
        let port = free_port();
        let http_port = free_port();
        let mut child = Command::new(BIN)
            .arg("run")
            .arg("--config")
            .arg(config)
            .arg("--data-dir")
            .arg(data)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--http", &format!("0.0.0.0:{http_port}")])
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start tocsin run");
        let stderr = Arc::new(Mutex::new(String::new()));
        let err = child.stderr.take().unwrap();
        let sink = Arc::clone(&stderr);
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                let mut s = sink.lock().unwrap();
                s.push_str(&line);
                s.push('\n');
            }
        });
        let w = Wide {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            http: SocketAddr::from(([127, 0, 0, 1], http_port)),
            stderr,
        };
        let deadline = Instant::now() + WAIT;
        while http_get(w.http, "/readyz").map_or(true, |(c, _)| c != 200) {
            assert!(
                Instant::now() < deadline,
                "not ready: {}",
                w.stderr.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(25));
        }
        w
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }
}

impl Drop for Wide {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn off_loopback_without_a_token_only_health_and_readiness_are_served() {
    let dir = tempdir();
    let cfg = write_file(
        dir.path(),
        "tocsin.toml",
        "[http]\naddress = \"0.0.0.0:9100\"\n[[account]]\nid = \"1234\"\n",
    );
    let (code, _, err) = run_cli(&["check-config", cfg.to_str().unwrap()]);
    assert_eq!(
        code, 0,
        "an HTTP setting is a warning, never a failure: {err}"
    );
    assert!(
        err.contains("warning: HTTP endpoints on 0.0.0.0:9100 (not loopback) need [http] token_file or allow_unauthenticated = true"),
        "{err}"
    );

    let w = Wide::start(&cfg, &dir.path().join("data"));
    assert_eq!(get(w.http, "/healthz", &[]).code, 200);
    assert_eq!(get(w.http, "/readyz", &[]).code, 200);
    for path in ["/status", "/metrics", "/", "/diag/1234", "/site/1234"] {
        let r = get(w.http, path, &[]);
        assert_eq!(r.code, 403, "{path}");
        assert!(
            r.body.contains("token_file or allow_unauthenticated"),
            "{}",
            r.body
        );
    }
    // The receiver itself is up: frames are acknowledged.
    let mut panel = Tcp::connect(w.addr);
    assert_eq!(
        view(&panel.exchange(&Fb::sia("1234", 1, "Nri1/BA01").clear())).token,
        "ACK"
    );
    let log = w.stderr();
    let errors: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("ERROR") && l.contains("not loopback"))
        .collect();
    assert_eq!(errors.len(), 1, "one ERROR line saying why:\n{log}");
    assert!(errors[0].contains("only /healthz and /readyz are served"));
}

#[test]
fn off_loopback_by_choice_or_with_metrics_open() {
    // allow_unauthenticated: everything served, with a warning.
    let dir = tempdir();
    let cfg = write_file(
        dir.path(),
        "tocsin.toml",
        "[http]\nallow_unauthenticated = true\n",
    );
    let w = Wide::start(&cfg, &dir.path().join("data"));
    assert_eq!(get(w.http, "/status", &[]).code, 200);
    assert_eq!(get(w.http, "/", &[]).code, 200);
    let log = w.stderr();
    assert!(
        log.contains("WARN") && log.contains("served without a token"),
        "{log}"
    );
    assert!(!log.contains("ERROR"), "{log}");
    drop(w);

    // No token, metrics opened explicitly: /metrics too, nothing else.
    let dir = tempdir();
    let cfg = write_file(
        dir.path(),
        "tocsin.toml",
        "[http]\nmetrics_unauthenticated = true\n",
    );
    let w = Wide::start(&cfg, &dir.path().join("data"));
    assert_eq!(get(w.http, "/metrics", &[]).code, 200);
    assert_eq!(get(w.http, "/status", &[]).code, 403);
    assert!(w
        .stderr()
        .contains("only /healthz, /readyz and /metrics are served"));
}

#[test]
fn check_config_warns_about_the_token_file() {
    let dir = tempdir();
    token_file(dir.path(), 0o644);
    let cfg = write_file(
        dir.path(),
        "tocsin.toml",
        "[http]\naddress = \"0.0.0.0:9100\"\ntoken_file = \"http.token\"\n",
    );
    let (code, out, err) = run_cli(&["check-config", cfg.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("readable by group or others (mode 644)"),
        "{err}"
    );
    assert!(!out.contains(TOKEN) && !err.contains(TOKEN));
    // A relative path is read from $CREDENTIALS_DIRECTORY when systemd gives one.
    let creds = tempdir();
    let out = Command::new(BIN)
        .args(["check-config", cfg.to_str().unwrap()])
        .env("CREDENTIALS_DIRECTORY", creds.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        err.contains(&format!(
            "cannot read the token file {}",
            creds.path().join("http.token").display()
        )),
        "{err}"
    );
    token_file(creds.path(), 0o600);
    let out = Command::new(BIN)
        .args(["check-config", cfg.to_str().unwrap()])
        .env("CREDENTIALS_DIRECTORY", creds.path())
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
}
