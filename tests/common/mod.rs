//! Shared helpers for the end-to-end tests: they run the real `tocsin` binary on free
//! loopback ports with a data directory on a real disk, talk to it over real TCP and UDP
//! sockets, and look at what a user can see (replies, stdout events, `tocsin history`,
//! `/metrics`, stderr logs, exit codes).
//!
//! Nothing here asserts on timing: waits are generous upper bounds that only turn a hang
//! into a failure.

#![allow(dead_code)]

mod ports;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use time::UtcDateTime;
use tocsin::protocol::crypto::Key;
use tocsin::protocol::dc09::{parse_frame, AccountField, CrcForm};
use tocsin::protocol::encode::{encode, FrameSpec};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_tocsin");

/// Upper bound for any single reply. Far above what a loaded 2-core machine needs.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(20);
/// Upper bound for the daemon to become ready, or for an event to show up.
pub const WAIT: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------------------
// Files and ports
// ---------------------------------------------------------------------------------------

/// A temporary directory on the real disk of the target directory (not tmpfs), so fsync
/// means what it means in production.
pub fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("tocsin-e2e-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .expect("temp dir under CARGO_TARGET_TMPDIR")
}

/// Writes `text` to `dir/name` and returns the path.
pub fn write_file(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write file");
    p
}

pub use ports::free_port;

// ---------------------------------------------------------------------------------------
// The daemon
// ---------------------------------------------------------------------------------------

/// A running `tocsin run`. Killed with SIGKILL on drop if still running.
pub struct Daemon {
    child: Option<Child>,
    /// TCP and UDP address of the receiver.
    pub addr: SocketAddr,
    pub http: SocketAddr,
    pub data_dir: PathBuf,
    pub config: PathBuf,
    /// Environment variables set for the daemon besides `RUST_LOG`.
    pub env: Vec<(String, String)>,
    stdout: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<String>>,
}

impl Daemon {
    /// Starts the daemon with `config` and `data_dir` on fresh ports and waits for `/readyz`.
    pub fn start(config: &Path, data_dir: &Path) -> Daemon {
        Daemon::start_with_env(config, data_dir, &[])
    }

    /// [`Daemon::start`] with further environment variables (a test hook, a log filter).
    pub fn start_with_env(config: &Path, data_dir: &Path, env: &[(&str, &str)]) -> Daemon {
        let mut last = String::new();
        for _ in 0..5 {
            let port = free_port();
            let http = free_port();
            let mut d = Daemon {
                child: None,
                addr: SocketAddr::from(([127, 0, 0, 1], port)),
                http: SocketAddr::from(([127, 0, 0, 1], http)),
                data_dir: data_dir.to_path_buf(),
                config: config.to_path_buf(),
                env: env
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                stdout: Arc::default(),
                stderr: Arc::default(),
            };
            match d.launch() {
                Ok(()) => return d,
                Err(e) => last = e, // most likely a port taken meanwhile: try others
            }
        }
        panic!("tocsin did not start: {last}");
    }

    /// Starts it again on the same ports, config and data directory (after a stop or kill).
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "restart of a running daemon");
        let mut last = String::new();
        for _ in 0..5 {
            match self.launch() {
                Ok(()) => return,
                Err(e) => {
                    last = e;
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
        }
        panic!("tocsin did not restart: {last}");
    }

    fn launch(&mut self) -> Result<(), String> {
        let mut child = Command::new(BIN)
            .arg("run")
            .arg("--config")
            .arg(&self.config)
            .arg("--listen")
            .arg(self.addr.to_string())
            .arg("--data-dir")
            .arg(&self.data_dir)
            .arg("--http")
            .arg(self.http.to_string())
            .env("RUST_LOG", "info")
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("spawn {BIN}: {e}"))?;
        let out = child.stdout.take().expect("stdout");
        let err = child.stderr.take().expect("stderr");
        let lines = Arc::clone(&self.stdout);
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                lines.lock().unwrap().push(line);
            }
        });
        let text = Arc::clone(&self.stderr);
        std::thread::spawn(move || {
            let mut r = BufReader::new(err);
            let mut line = String::new();
            loop {
                line.clear();
                match r.read_line(&mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => text.lock().unwrap().push_str(&line),
                }
            }
        });
        self.child = Some(child);
        let started = self.stderr.lock().unwrap().len();
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().expect("try_wait") {
                self.child = None;
                std::thread::sleep(Duration::from_millis(100)); // let stderr drain
                let log = self.stderr();
                return Err(format!(
                    "exited with {status} before ready; stderr:\n{}",
                    log.get(started..).unwrap_or(&log)
                ));
            }
            if let Ok((200, _)) = self.get("/readyz") {
                return Ok(());
            }
            if self.stderr().contains("cannot serve HTTP endpoints") {
                self.kill9();
                return Err("HTTP port taken".into());
            }
            if Instant::now() > deadline {
                let log = self.stderr();
                self.kill9();
                return Err(format!("not ready within {WAIT:?}; stderr:\n{log}"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("daemon is running").id()
    }

    pub fn is_running(&mut self) -> bool {
        match &mut self.child {
            None => false,
            Some(c) => c.try_wait().expect("try_wait").is_none(),
        }
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.pid().to_string())
            .status()
            .expect("run kill")
            .success();
        assert!(ok, "kill -{sig} failed");
    }

    /// SIGHUP: reload the configuration file.
    pub fn hup(&self) {
        self.signal("HUP");
    }

    /// Sends SIGTERM and waits (up to `limit`) for the exit; returns the status and how long
    /// it took. Kills with SIGKILL and panics if it does not exit in time.
    pub fn sigterm(&mut self, limit: Duration) -> (ExitStatus, Duration) {
        self.signal("TERM");
        let t0 = Instant::now();
        loop {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().expect("try_wait") {
                self.child = None;
                return (status, t0.elapsed());
            }
            if t0.elapsed() > limit {
                self.kill9();
                panic!(
                    "tocsin did not exit within {limit:?} of SIGTERM; stderr:\n{}",
                    self.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// SIGTERM, and asserts a clean exit (code 0) within 5 s.
    pub fn stop(&mut self) {
        let (status, _) = self.sigterm(Duration::from_secs(5));
        assert_eq!(
            status.code(),
            Some(0),
            "tocsin exited with {status} after SIGTERM; stderr:\n{}",
            self.stderr()
        );
    }

    /// SIGKILL, as a crash or power loss would (the process gets no chance to clean up).
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Everything written on stderr so far (all runs).
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits until stderr contains `needle`.
    pub fn wait_stderr(&self, needle: &str) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let s = self.stderr();
            if s.contains(needle) {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "stderr never contained {needle:?}:\n{s}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Lines printed on stdout so far, as printed.
    pub fn stdout_lines(&self) -> Vec<String> {
        self.stdout.lock().unwrap().clone()
    }

    /// Events printed on stdout so far, parsed (every line must be a JSON object).
    pub fn events(&self) -> Vec<Value> {
        self.stdout
            .lock()
            .unwrap()
            .iter()
            .map(|l| {
                serde_json::from_str::<Value>(l)
                    .unwrap_or_else(|e| panic!("stdout line is not JSON ({e}): {l}"))
            })
            .collect()
    }

    /// Waits until at least `n` stdout events match `pred`; returns the matching ones.
    pub fn wait_events(&self, n: usize, pred: impl Fn(&Value) -> bool) -> Vec<Value> {
        let deadline = Instant::now() + WAIT;
        loop {
            let found: Vec<Value> = self.events().into_iter().filter(|e| pred(e)).collect();
            if found.len() >= n {
                return found;
            }
            assert!(
                Instant::now() < deadline,
                "expected {n} matching events on stdout, got {}: {:#?}\nstderr:\n{}",
                found.len(),
                self.events(),
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A GET on the HTTP endpoint: (status, body).
    pub fn get(&self, path: &str) -> std::io::Result<(u16, String)> {
        http_get(self.http, path)
    }

    /// The `/metrics` page.
    pub fn metrics(&self) -> Metrics {
        let (code, body) = self.get("/metrics").expect("GET /metrics");
        assert_eq!(code, 200, "/metrics: {body}");
        Metrics::parse(&body)
    }

    /// Waits until the sum of the series of `name` matching `labels` reaches `value`.
    pub fn wait_metric(&self, name: &str, labels: &[(&str, &str)], value: f64) {
        let deadline = Instant::now() + WAIT;
        loop {
            let v = self.metrics().sum(name, labels);
            if v >= value {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{name}{labels:?} is {v}, expected {value}\nstderr:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `tocsin history` on this daemon's data directory.
    pub fn history(&self) -> Vec<Value> {
        history(&self.data_dir, &[])
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Minimal HTTP/1.1 GET with `Connection: close`.
pub fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.set_write_timeout(Some(Duration::from_secs(10)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut resp = Vec::new();
    s.read_to_end(&mut resp)?;
    let text = String::from_utf8_lossy(&resp).into_owned();
    let code = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad HTTP response: {text:?}")))?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((code, body))
}

/// Runs `tocsin history --format json` on `data_dir` (plus `args`); returns the events.
pub fn history(data_dir: &Path, args: &[&str]) -> Vec<Value> {
    let out = Command::new(BIN)
        .arg("history")
        .arg("--data-dir")
        .arg(data_dir)
        .args(["--format", "json"])
        .args(args)
        .output()
        .expect("run tocsin history");
    assert!(
        out.status.success(),
        "tocsin history failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("history output is UTF-8")
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("history line ({e}): {l}")))
        .collect()
}

/// `tocsin <args>` to completion: (exit code, stdout, stderr).
pub fn run_cli(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN).args(args).output().expect("run tocsin");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `e[field]` as a string ("" when absent or null).
pub fn s<'a>(e: &'a Value, field: &str) -> &'a str {
    e.get(field).and_then(Value::as_str).unwrap_or("")
}

// ---------------------------------------------------------------------------------------
// Metrics
// ---------------------------------------------------------------------------------------

/// A parsed Prometheus text page.
pub struct Metrics {
    pub series: Vec<(String, BTreeMap<String, String>, f64)>,
    pub text: String,
}

impl Metrics {
    pub fn parse(text: &str) -> Metrics {
        let mut series = Vec::new();
        for line in text.lines() {
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            let (head, value) = line.rsplit_once(' ').expect("metric line has a value");
            let value: f64 = value.parse().unwrap_or(f64::NAN);
            let (name, labels) = match head.split_once('{') {
                None => (head.to_string(), BTreeMap::new()),
                Some((n, rest)) => {
                    let rest = rest.strip_suffix('}').expect("closing brace");
                    let mut labels = BTreeMap::new();
                    // Values here never contain `",`; split on it.
                    for pair in rest.split("\",") {
                        if let Some((k, v)) = pair.split_once("=\"") {
                            labels.insert(k.to_string(), v.trim_end_matches('"').to_string());
                        }
                    }
                    (n.to_string(), labels)
                }
            };
            series.push((name, labels, value));
        }
        Metrics {
            series,
            text: text.to_string(),
        }
    }

    /// Sum of the series named `name` whose labels include all of `labels`.
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.series
            .iter()
            .filter(|(n, l, _)| {
                n == name
                    && labels
                        .iter()
                        .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|(_, _, v)| v)
            .sum()
    }
}

// ---------------------------------------------------------------------------------------
// Frames
// ---------------------------------------------------------------------------------------

/// Keys as the config writes them.
pub fn key_hex(hex: &str) -> Key {
    Key::from_hex(hex).expect("hex key")
}
pub fn key_ascii(text: &str) -> Key {
    Key::from_ascii(text).expect("ascii key")
}

/// A frame to build as a panel would.
#[derive(Clone, Debug)]
pub struct Fb {
    pub token: &'static str,
    pub seq: String,
    pub receiver: Option<String>,
    pub line: String,
    pub account: String,
    pub data: String,
    pub timestamp: Option<UtcDateTime>,
}

impl Fb {
    /// SIA DC-03 event: data is `#acct|` + `body`.
    pub fn sia(account: &str, seq: u16, body: &str) -> Fb {
        Fb {
            token: "SIA-DCS",
            seq: format!("{seq:04}"),
            receiver: None,
            line: "0".into(),
            account: account.into(),
            data: format!("#{account}|{body}"),
            timestamp: Some(UtcDateTime::now()),
        }
    }
    /// Contact ID event: data is `#acct|` + `body` (`1130 01 015`).
    pub fn cid(account: &str, seq: u16, body: &str) -> Fb {
        Fb {
            token: "ADM-CID",
            ..Fb::sia(account, seq, body)
        }
    }
    /// NULL poll.
    pub fn null(account: &str, seq: u16) -> Fb {
        Fb {
            token: "NULL",
            data: String::new(),
            ..Fb::sia(account, seq, "")
        }
    }
    pub fn token(mut self, t: &'static str) -> Fb {
        self.token = t;
        self
    }
    pub fn rl(mut self, receiver: Option<&str>, line: &str) -> Fb {
        self.receiver = receiver.map(str::to_string);
        self.line = line.into();
        self
    }
    pub fn at(mut self, t: Option<UtcDateTime>) -> Fb {
        self.timestamp = t;
        self
    }

    /// The frame in clear.
    pub fn clear(&self) -> Vec<u8> {
        self.build(None)
    }
    /// The frame encrypted with `key` (a fresh random pad each call).
    pub fn sealed(&self, key: &Key) -> Vec<u8> {
        self.build(Some(key))
    }
    fn build(&self, key: Option<&Key>) -> Vec<u8> {
        let spec = FrameSpec {
            token: self.token,
            seq: &self.seq,
            receiver: self.receiver.as_deref(),
            line: &self.line,
            account: &self.account,
            data: self.data.as_bytes(),
            ext: &[],
            timestamp: self.timestamp,
            form: CrcForm::Ascii,
        };
        let mut random = [0u8; 16];
        rand::fill(&mut random);
        let mut out = Vec::new();
        encode(&spec, key, &random, &mut out);
        out
    }

    /// The exact clear reply (`ACK`/`DUH`) the receiver must send for this frame: the
    /// header echoed byte for byte, the CRC computed here, independently of the crate.
    pub fn expected_reply(&self, token: &str) -> Vec<u8> {
        let mut body = format!("\"{token}\"{}", self.seq);
        if let Some(r) = &self.receiver {
            body.push('R');
            body.push_str(r);
        }
        body.push('L');
        body.push_str(&self.line);
        body.push('#');
        body.push_str(&self.account);
        body.push_str("[]");
        wrap(body.as_bytes())
    }
}

/// CRC-16/ARC (poly 0xA001 reflected, init 0) written here from the spec, not borrowed from
/// the crate under test.
pub fn crc16(data: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &b in data {
        crc ^= u16::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xA001
            } else {
                crc >> 1
            };
        }
    }
    crc
}

/// LF + CRC + 0LLL + body + CR.
pub fn wrap(body: &[u8]) -> Vec<u8> {
    let mut out = format!("\n{:04X}0{:03X}", crc16(body), body.len()).into_bytes();
    out.extend_from_slice(body);
    out.push(b'\r');
    out
}

/// Escaped text of a frame for assertion messages.
pub fn esc(b: &[u8]) -> String {
    tocsin::protocol::text::escape(b)
}

/// What a reply frame says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplyView {
    pub token: String,
    pub encrypted: bool,
    pub seq: String,
    pub receiver: Option<String>,
    pub line: String,
    pub account: Option<String>,
    /// `A0` in place of `#acct` (NAK).
    pub placeholder: bool,
    /// Clear timestamp (NAK) if any.
    pub timestamp: Option<UtcDateTime>,
    /// Hex ciphertext after `[` for an encrypted reply.
    pub cipher: Option<String>,
}

/// Parses a reply with the crate's frame parser (CRC and length checked there) and checks
/// CRC and length here too.
pub fn view(raw: &[u8]) -> ReplyView {
    assert!(raw.len() >= 10, "reply too short: {}", esc(raw));
    let body = &raw[9..raw.len() - 1];
    assert_eq!(raw, &wrap(body)[..], "reply CRC/length wrong: {}", esc(raw));
    let f = parse_frame(raw).unwrap_or_else(|e| panic!("reply {} does not parse: {e}", esc(raw)));
    let h = f.header;
    let (timestamp, cipher) = if h.encrypted {
        (None, Some(String::from_utf8_lossy(f.payload).into_owned()))
    } else {
        let mut scratch = Vec::new();
        (
            f.open(None, &mut scratch).ok().and_then(|c| c.timestamp),
            None,
        )
    };
    ReplyView {
        token: h.token.to_string(),
        encrypted: h.encrypted,
        seq: h.seq.to_string(),
        receiver: h.receiver.map(str::to_string),
        line: h.line.to_string(),
        account: h.account.number().map(str::to_string),
        placeholder: h.account == AccountField::Placeholder,
        timestamp,
        cipher,
    }
}

/// Decrypts an encrypted reply's ciphertext with `key` (AES-CBC, zero IV, done here with the
/// `aes`/`cbc` crates directly) and checks the standard `*ACK` plaintext form:
/// pad (1–16 bytes, none of `|[]`) `|` `]` `_HH:MM:SS,MM-DD-YYYY`. Returns the timestamp.
pub fn open_ack(cipher_hex: &str, key: &Key) -> UtcDateTime {
    use aes::{Aes128, Aes192, Aes256};
    use cbc::cipher::block_padding::NoPadding;
    use cbc::cipher::{BlockModeDecrypt, KeyIvInit};
    let mut buf = hex::decode(cipher_hex).expect("ciphertext is hex");
    assert!(
        !buf.is_empty() && buf.len().is_multiple_of(16),
        "ciphertext length {}",
        buf.len()
    );
    let iv = [0u8; 16];
    let k = key.material();
    let r = match k.len() {
        16 => cbc::Decryptor::<Aes128>::new(k.try_into().expect("16 bytes"), &iv.into())
            .decrypt_padded::<NoPadding>(&mut buf)
            .map(|_| ()),
        24 => cbc::Decryptor::<Aes192>::new(k.try_into().expect("24 bytes"), &iv.into())
            .decrypt_padded::<NoPadding>(&mut buf)
            .map(|_| ()),
        _ => cbc::Decryptor::<Aes256>::new(k.try_into().expect("32 bytes"), &iv.into())
            .decrypt_padded::<NoPadding>(&mut buf)
            .map(|_| ()),
    };
    r.expect("decrypt");
    let bar = buf
        .iter()
        .position(|&b| b == b'|')
        .unwrap_or_else(|| panic!("no pad terminator in {buf:02X?}"));
    assert!((1..=16).contains(&bar), "pad length {bar}");
    let rest = &buf[bar + 1..];
    assert_eq!(rest.len(), 21, "plaintext after pad: {rest:?}");
    assert_eq!(&rest[..2], b"]_", "plaintext after pad: {rest:?}");
    parse_ts(&rest[2..]).unwrap_or_else(|| panic!("bad timestamp {:?}", &rest[2..]))
}

/// `HH:MM:SS,MM-DD-YYYY`.
pub fn parse_ts(t: &[u8]) -> Option<UtcDateTime> {
    let t = std::str::from_utf8(t).ok()?;
    let fmt = time::macros::format_description!("[hour]:[minute]:[second],[month]-[day]-[year]");
    time::PrimitiveDateTime::parse(t, fmt)
        .ok()
        .map(|p| UtcDateTime::new(p.date(), p.time()))
}

/// Asserts `t` is close to the current time (receiver clock = this machine's clock).
pub fn assert_now(t: UtcDateTime, what: &str) {
    let d = (UtcDateTime::now() - t).whole_seconds().abs();
    assert!(d <= 120, "{what}: {t} is {d} s away from now");
}

// ---------------------------------------------------------------------------------------
// Panels
// ---------------------------------------------------------------------------------------

/// A TCP panel connection.
pub struct Tcp {
    pub s: TcpStream,
    buf: Vec<u8>,
}

impl Tcp {
    pub fn connect(addr: SocketAddr) -> Tcp {
        let s = TcpStream::connect_timeout(&addr, REPLY_TIMEOUT)
            .unwrap_or_else(|e| panic!("connect {addr}: {e}"));
        Tcp::from_stream(s)
    }
    pub fn try_connect(addr: SocketAddr) -> std::io::Result<Tcp> {
        TcpStream::connect_timeout(&addr, Duration::from_secs(5)).map(Tcp::from_stream)
    }
    fn from_stream(s: TcpStream) -> Tcp {
        s.set_read_timeout(Some(REPLY_TIMEOUT)).unwrap();
        s.set_write_timeout(Some(REPLY_TIMEOUT)).unwrap();
        s.set_nodelay(true).unwrap();
        Tcp { s, buf: Vec::new() }
    }
    pub fn send(&mut self, bytes: &[u8]) {
        self.s.write_all(bytes).expect("write to receiver");
        self.s.flush().unwrap();
    }
    pub fn try_send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.s.write_all(bytes)
    }
    /// The next reply frame (LF … CR).
    pub fn reply(&mut self) -> Vec<u8> {
        self.try_reply()
            .unwrap_or_else(|e| panic!("no reply from the receiver: {e}"))
    }
    /// The next reply frame, or the error (EOF, reset, timeout).
    pub fn try_reply(&mut self) -> std::io::Result<Vec<u8>> {
        loop {
            if let Some(start) = self.buf.iter().position(|&b| b == b'\n') {
                if let Some(end) = self.buf[start..].iter().position(|&b| b == b'\r') {
                    let frame = self.buf[start..=start + end].to_vec();
                    self.buf.drain(..=start + end);
                    return Ok(frame);
                }
            }
            let mut chunk = [0u8; 1024];
            let n = self.s.read(&mut chunk)?;
            if n == 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "connection closed by the receiver",
                ));
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
    /// Sends one frame and returns its reply.
    pub fn exchange(&mut self, frame: &[u8]) -> Vec<u8> {
        self.send(frame);
        self.reply()
    }
    /// Whether the receiver has closed this connection (reads EOF/reset within `wait`).
    pub fn closed_within(&mut self, wait: Duration) -> bool {
        self.s.set_read_timeout(Some(wait)).unwrap();
        let mut b = [0u8; 64];
        let r = match self.s.read(&mut b) {
            Ok(0) => true,
            Ok(n) => {
                self.buf.extend_from_slice(&b[..n]);
                false
            }
            Err(e) => !matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
        };
        self.s.set_read_timeout(Some(REPLY_TIMEOUT)).unwrap();
        r
    }
}

/// A UDP panel socket.
pub struct Udp {
    pub s: UdpSocket,
    to: SocketAddr,
}

impl Udp {
    pub fn new(to: SocketAddr) -> Udp {
        let s = UdpSocket::bind("127.0.0.1:0").expect("bind udp");
        s.set_read_timeout(Some(REPLY_TIMEOUT)).unwrap();
        Udp { s, to }
    }
    pub fn send(&self, bytes: &[u8]) {
        self.s.send_to(bytes, self.to).expect("udp send");
    }
    pub fn reply(&self) -> Vec<u8> {
        let mut buf = [0u8; 4096];
        let (n, from) = self
            .s
            .recv_from(&mut buf)
            .unwrap_or_else(|e| panic!("no UDP reply: {e}"));
        assert_eq!(from, self.to, "reply from the receiver's address");
        buf[..n].to_vec()
    }
    /// A datagram arriving within `wait`, if any.
    pub fn reply_within(&self, wait: Duration) -> Option<Vec<u8>> {
        self.s.set_read_timeout(Some(wait)).unwrap();
        let mut buf = [0u8; 4096];
        let r = self
            .s
            .recv_from(&mut buf)
            .ok()
            .map(|(n, _)| buf[..n].to_vec());
        self.s.set_read_timeout(Some(REPLY_TIMEOUT)).unwrap();
        r
    }
    pub fn exchange(&self, frame: &[u8]) -> Vec<u8> {
        self.send(frame);
        self.reply()
    }
}

/// One exchange over `transport` ("tcp" or "udp") on a fresh socket.
pub fn exchange(transport: &str, addr: SocketAddr, frame: &[u8]) -> Vec<u8> {
    match transport {
        "tcp" => Tcp::connect(addr).exchange(frame),
        "udp" => Udp::new(addr).exchange(frame),
        other => panic!("transport {other}"),
    }
}

// ---------------------------------------------------------------------------------------
// Setups
// ---------------------------------------------------------------------------------------

/// A daemon with its own directory (config file and data dir inside). The daemon is
/// declared first so it is killed before the directory is removed.
pub struct Rx {
    pub d: Daemon,
    pub dir: tempfile::TempDir,
}

/// Writes `config` to a fresh directory and starts the daemon on it.
pub fn start(config: &str) -> Rx {
    let dir = tempdir();
    let cfg = write_file(dir.path(), "tocsin.toml", config);
    let d = Daemon::start(&cfg, &dir.path().join("data"));
    Rx { d, dir }
}

/// Events (from stdout or history) for `account` with sequence `seq`, excluding the
/// receiver's own events.
pub fn frame_events<'a>(events: &'a [Value], account: &str, seq: &str) -> Vec<&'a Value> {
    events
        .iter()
        .filter(|e| {
            s(e, "account") == account && s(e, "seq") == seq && s(e, "protocol") != "tocsin"
        })
        .collect()
}
