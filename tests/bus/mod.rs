//! Shared harness of the `nats_*` tests: real processes on loopback, no mocks.
//!
//! - [`NatsServer`]: a `nats-server -js` on a free port with its store in a temporary
//!   directory on a real disk (under `CARGO_TARGET_TMPDIR`, not tmpfs), which can be killed
//!   with SIGKILL and restarted on the same port and store, and is stopped on drop. If
//!   `nats-server` is not installed the test fails (never skips) and says what to install.
//! - [`Tocsin`]: the `tocsin run` binary on free ports with its own data directory and a
//!   generated configuration, ready once `/readyz` answers 200; `/metrics` readable.
//! - [`Panel`]: one TCP connection that sends frames as a panel does and waits for each
//!   reply, counting ACKs, NAKs, DUHs and timeouts.
//! - [`read_stream`]: every message of the stream, with its subject, `Nats-Msg-Id` and
//!   payload, read with an ordered JetStream consumer.
//! - [`cluster::NatsCluster`]: three `nats-server` nodes clustered on loopback.
//! - [`dual::DualPanel`]: a dual-path panel that falls back to its other receiver and
//!   keeps what it saw ACKed.
//! - [`secure`]: certificates (rcgen) and NATS JWTs (NKeys) for a secured bus.
//!
//! Each test binary uses only part of this, hence the `dead_code` allowance.
#![allow(dead_code)]

pub mod cluster;
pub mod dual;
pub mod secure;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tempfile::TempDir;
use time::UtcDateTime;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use tocsin::protocol::dc09::{parse_frame, CrcForm};
use tocsin::protocol::encode::{encode, FrameSpec};

// A test that uses both harnesses loads this file twice, so it has two sets of handed-out
// ports: a port could be handed out by both only if both drew it at random among ~20 000
// before either bound it, which a handful of ports a test makes negligible.
#[allow(clippy::duplicate_mod)]
#[path = "../common/ports.rs"]
mod ports;
pub use ports::free_port;

/// Polls `check` every 50 ms until it returns `Some`, or panics with `what` after `deadline`.
/// Deadlines are generous: they bound a hung test, they do not measure speed.
pub fn wait_until<T>(deadline: Duration, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(
            start.elapsed() < deadline,
            "timed out after {deadline:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Async flavour of [`wait_until`] for checks that need the runtime (NATS queries).
pub async fn wait_until_async<T, F, Fut>(deadline: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            start.elapsed() < deadline,
            "timed out after {deadline:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A temporary directory on the disk that holds the build (fsync means something there).
pub fn disk_tempdir(prefix: &str) -> TempDir {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .expect("temporary directory under CARGO_TARGET_TMPDIR")
}

fn on_path(cmd: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    // Debian installs nats-server in /usr/sbin, which a non-root PATH may lack.
    let extra = [PathBuf::from("/usr/sbin"), PathBuf::from("/usr/local/sbin")];
    std::env::split_paths(&path)
        .chain(extra)
        .map(|d| d.join(cmd))
        .find(|p| p.is_file())
}

/// A JetStream-enabled `nats-server` child process.
pub struct NatsServer {
    bin: PathBuf,
    pub port: u16,
    /// The server's name (`-n`), for a cluster node.
    pub name: Option<String>,
    store: TempDir,
    child: Option<Child>,
    starts: u32,
    /// Arguments after the common ones (cluster flags, `-c FILE`).
    extra: Vec<String>,
}

/// The `nats-server` binary, or a failed test saying what to install.
pub fn nats_server_bin() -> PathBuf {
    on_path("nats-server").unwrap_or_else(|| {
        panic!(
            "nats-server is not installed (not on PATH nor in /usr/sbin): these tests need a \
             real NATS JetStream server. Install the Debian package `nats-server` \
             (apt-get install nats-server) and run again; scripts/test does it when run as root."
        )
    })
}

impl NatsServer {
    /// Starts `nats-server -js` on a free loopback port and waits until it accepts
    /// connections. Fails the test if the binary is missing.
    pub fn start() -> NatsServer {
        NatsServer::start_with(free_port(), None, Vec::new())
    }

    /// Starts one with more arguments (a cluster node's flags, a configuration file).
    pub fn start_with(port: u16, name: Option<String>, extra: Vec<String>) -> NatsServer {
        let mut s = NatsServer::prepare(port, name, extra);
        s.spawn();
        s
    }

    /// A server not started yet (a cluster starts its nodes together).
    pub fn prepare(port: u16, name: Option<String>, extra: Vec<String>) -> NatsServer {
        NatsServer {
            bin: nats_server_bin(),
            port,
            name,
            store: disk_tempdir("nats-store-"),
            child: None,
            starts: 0,
            extra,
        }
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    pub fn store_dir(&self) -> &Path {
        self.store.path()
    }

    /// Starts the process, without waiting for it to accept connections.
    pub fn launch(&mut self) {
        self.starts += 1;
        // One log per start, kept beside the store for a failing test's post-mortem.
        let log = std::fs::File::create(
            self.store
                .path()
                .join(format!("server-{}.log", self.starts)),
        )
        .expect("nats-server log file");
        let mut cmd = Command::new(&self.bin);
        cmd.args(["-js", "-a", "127.0.0.1", "-p"])
            .arg(self.port.to_string())
            .arg("-sd")
            .arg(self.store.path().join("js"));
        if let Some(name) = &self.name {
            cmd.args(["-n", name]);
        }
        let child = cmd
            .args(&self.extra)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.bin.display()));
        self.child = Some(child);
    }

    /// Waits until the server accepts connections (fails the test if it exited).
    pub fn wait_accepting(&mut self) {
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        wait_until(
            Duration::from_secs(20),
            "nats-server to accept connections",
            || {
                if let Some(c) = self.child.as_mut() {
                    if let Ok(Some(status)) = c.try_wait() {
                        panic!(
                            "nats-server exited at start ({status}); see {}",
                            self.store.path().display()
                        );
                    }
                }
                TcpStream::connect_timeout(&addr, Duration::from_millis(200))
                    .ok()
                    .map(|_| ())
            },
        );
    }

    fn spawn(&mut self) {
        self.launch();
        self.wait_accepting();
    }

    /// The server's log of its latest start.
    pub fn log(&self) -> String {
        std::fs::read_to_string(
            self.store
                .path()
                .join(format!("server-{}.log", self.starts)),
        )
        .unwrap_or_default()
    }

    /// SIGKILL: no shutdown, no flush, like a crash or a power cut of the bus host process.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts again on the same port with the same store (after [`kill`](Self::kill)).
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Options of one tocsin daemon.
#[derive(Clone)]
pub struct TocsinOptions {
    pub receiver_id: String,
    /// Server URLs: one is written as `url`, several as `servers`.
    pub nats_servers: Vec<String>,
    /// Extra lines appended to `[bus.nats]`.
    pub nats_extra: String,
    /// Extra configuration before `[bus.nats]` (accounts, supervision, …).
    pub extra: String,
    /// Environment of the daemon (e.g. `CREDENTIALS_DIRECTORY`).
    pub env: Vec<(String, String)>,
}

impl TocsinOptions {
    pub fn new(receiver_id: &str, nats_url: &str) -> TocsinOptions {
        TocsinOptions::servers(receiver_id, &[nats_url.to_string()])
    }

    pub fn servers(receiver_id: &str, urls: &[String]) -> TocsinOptions {
        TocsinOptions {
            receiver_id: receiver_id.into(),
            nats_servers: urls.to_vec(),
            // A short ack timeout makes a dead server noticed quickly in tests.
            nats_extra: "ack_timeout = \"2s\"\n".into(),
            extra: String::new(),
            env: Vec::new(),
        }
    }

    /// The `[bus.nats]` server line.
    fn servers_line(&self) -> String {
        match self.nats_servers.as_slice() {
            [one] => format!("url = \"{one}\""),
            many => format!(
                "servers = [{}]",
                many.iter()
                    .map(|u| format!("\"{u}\""))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }
}

/// A running `tocsin run` process.
pub struct Tocsin {
    child: Option<Child>,
    pub data_dir: TempDir,
    pub panel_addr: SocketAddr,
    pub http_addr: SocketAddr,
    pub config_path: PathBuf,
    env: Vec<(String, String)>,
    starts: u32,
}

impl Tocsin {
    /// Writes a configuration, starts the binary and waits for `/readyz`.
    pub fn start(opts: &TocsinOptions) -> Tocsin {
        let data_dir = disk_tempdir("tocsin-data-");
        let panel_addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let http_addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let config = format!(
            "[receiver]\nid = \"{id}\"\ndata_dir = \"{dir}\"\n\n\
             [[listen]]\naddress = \"{panel_addr}\"\ntransport = \"tcp\"\n\n\
             [http]\naddress = \"{http_addr}\"\n\n\
             [output]\nstdout = false\n\n{extra}\n\
             [bus.nats]\n{servers}\n{nats_extra}",
            id = opts.receiver_id,
            dir = data_dir.path().display(),
            extra = opts.extra,
            servers = opts.servers_line(),
            nats_extra = opts.nats_extra,
        );
        let config_path = data_dir.path().join("tocsin.toml");
        std::fs::write(&config_path, config).expect("write config");
        let mut t = Tocsin {
            child: None,
            data_dir,
            panel_addr,
            http_addr,
            config_path,
            env: opts.env.clone(),
            starts: 0,
        };
        t.spawn();
        t
    }

    fn spawn(&mut self) {
        self.starts += 1;
        // Logs of every start in one file: a restart appends.
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.data_dir.path().join("tocsin.log"))
            .expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_tocsin"))
            .arg("run")
            .arg("--config")
            .arg(&self.config_path)
            .env("RUST_LOG", "info")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start tocsin");
        self.child = Some(child);
        wait_until(Duration::from_secs(30), "tocsin /readyz", || {
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(status)) = c.try_wait() {
                    panic!("tocsin exited at start ({status}): {}", self.log());
                }
            }
            match http_get(self.http_addr, "/readyz") {
                Some((200, _)) => Some(()),
                _ => None,
            }
        });
    }

    /// The daemon's log so far (for assertion messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.data_dir.path().join("tocsin.log")).unwrap_or_default()
    }

    /// `/metrics` parsed as `name{labels}` → value.
    pub fn metrics(&self) -> HashMap<String, f64> {
        let Some((200, body)) = http_get(self.http_addr, "/metrics") else {
            return HashMap::new();
        };
        parse_metrics(&body)
    }

    /// One metric sample, e.g. `tocsin_forward_backlog_records{sink="nats"}`.
    pub fn metric(&self, key: &str) -> Option<f64> {
        self.metrics().get(key).copied()
    }

    /// `/status` as JSON.
    pub fn status(&self) -> Option<serde_json::Value> {
        let (200, body) = http_get(self.http_addr, "/status")? else {
            return None;
        };
        serde_json::from_str(&body).ok()
    }

    /// SIGTERM and wait for a clean exit (drain), SIGKILL after 15 s.
    pub fn stop(&mut self) {
        let Some(mut c) = self.child.take() else {
            return;
        };
        let _ = Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .status();
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(15) {
            if let Ok(Some(_)) = c.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = c.kill();
        let _ = c.wait();
    }

    /// SIGKILL: the receiver's machine or process dies at once.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts again with the same configuration, ports and data directory.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }
}

impl Drop for Tocsin {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Sink metric names, labelled for the NATS sink.
pub const BACKLOG: &str = "tocsin_forward_backlog_records{sink=\"nats\"}";
pub const PUBLISHED: &str = "tocsin_forward_published_total{sink=\"nats\"}";
pub const CONNECTED: &str = "tocsin_forward_connected{sink=\"nats\"}";
pub const REPUBLISHED_RESTORED: &str = "tocsin_bus_republished_total{outcome=\"restored\"}";
pub const REPUBLISHED_DUPLICATE: &str = "tocsin_bus_republished_total{outcome=\"duplicate\"}";

/// Parses the Prometheus text format into `name{labels}` → value (comments skipped).
pub fn parse_metrics(body: &str) -> HashMap<String, f64> {
    body.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.to_string(), v.parse().ok()?))
        })
        .collect()
}

/// A bare HTTP/1.1 GET (no client library needed for three fixed endpoints).
pub fn http_get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).ok()?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text.split(' ').nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string())?;
    Some((status, body))
}

/// A clear SIA DC-03 frame from `account` with sequence `seq` and the current time. The
/// event code rotates with `seq` so several classes (subjects) are exercised.
pub fn sia_frame(account: &str, seq: u16) -> Vec<u8> {
    const CODES: [&str; 6] = ["BA", "BR", "FA", "TA", "OP", "CL"];
    let code = CODES[usize::from(seq) % CODES.len()];
    let data = format!("#{account}|Nri1/{code}{:02}", seq % 100);
    let seq_text = format!("{seq:04}");
    let spec = FrameSpec {
        token: "SIA-DCS",
        seq: &seq_text,
        receiver: None,
        line: "0",
        account,
        data: data.as_bytes(),
        ext: &[],
        timestamp: Some(UtcDateTime::now()),
        form: CrcForm::Ascii,
    };
    let mut out = Vec::new();
    encode(&spec, None, &[0; 16], &mut out);
    out
}

/// What the panels got back.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Replies {
    pub ack: u64,
    pub nak: u64,
    pub duh: u64,
    pub timeout: u64,
    pub other: u64,
}

impl Replies {
    pub fn add(&mut self, o: Replies) {
        self.ack += o.ack;
        self.nak += o.nak;
        self.duh += o.duh;
        self.timeout += o.timeout;
        self.other += o.other;
    }
}

/// One panel: a TCP connection that sends a frame and waits for its reply before the next,
/// as a DC-09 transmitter does.
pub struct Panel {
    stream: tokio::net::TcpStream,
    buf: Vec<u8>,
    pub replies: Replies,
}

/// How long a panel waits for a reply before it counts a timeout (and reconnects).
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(10);

impl Panel {
    pub async fn connect(addr: SocketAddr) -> Panel {
        let stream = tokio::net::TcpStream::connect(addr)
            .await
            .unwrap_or_else(|e| panic!("panel cannot connect to {addr}: {e}"));
        stream.set_nodelay(true).ok();
        Panel {
            stream,
            buf: Vec::with_capacity(256),
            replies: Replies::default(),
        }
    }

    /// Sends `frame` and waits for its reply; counts the outcome and returns the token.
    pub async fn send(&mut self, frame: &[u8]) -> &'static str {
        if self.stream.write_all(frame).await.is_err() {
            self.replies.timeout += 1;
            return "ERROR";
        }
        self.buf.clear();
        let read = tokio::time::timeout(REPLY_TIMEOUT, async {
            let mut chunk = [0u8; 512];
            loop {
                let n = self.stream.read(&mut chunk).await.ok()?;
                if n == 0 {
                    return None;
                }
                self.buf.extend_from_slice(chunk.get(..n)?);
                if self.buf.last() == Some(&b'\r') {
                    return Some(());
                }
            }
        })
        .await;
        let token = match read {
            Ok(Some(())) => match parse_frame(&self.buf) {
                Ok(f) => match f.header.token {
                    "ACK" => "ACK",
                    "NAK" => "NAK",
                    "DUH" => "DUH",
                    _ => "OTHER",
                },
                Err(_) => "OTHER",
            },
            _ => "TIMEOUT",
        };
        match token {
            "ACK" => self.replies.ack += 1,
            "NAK" => self.replies.nak += 1,
            "DUH" => self.replies.duh += 1,
            "TIMEOUT" => self.replies.timeout += 1,
            _ => self.replies.other += 1,
        }
        token
    }
}

/// Sends each list of frames over its own panel connection, all panels concurrently, with
/// `pause` between frames of one panel; returns the summed replies.
pub async fn run_panels(addr: SocketAddr, panels: Vec<Vec<Vec<u8>>>, pause: Duration) -> Replies {
    let mut tasks = Vec::new();
    for frames in panels {
        tasks.push(tokio::spawn(async move {
            let mut p = Panel::connect(addr).await;
            for f in &frames {
                p.send(f).await;
                if !pause.is_zero() {
                    tokio::time::sleep(pause).await;
                }
            }
            p.replies
        }));
    }
    let mut total = Replies::default();
    for t in tasks {
        total.add(t.await.expect("panel task"));
    }
    total
}

/// `accounts` panels (accounts `base`, `base+1`, …), each sending `per_account` frames with
/// sequences 1..=per_account.
pub fn panel_frames(base: u32, accounts: u32, per_account: u16) -> Vec<Vec<Vec<u8>>> {
    (0..accounts)
        .map(|a| {
            let account = format!("{}", base + a);
            (1..=per_account).map(|s| sia_frame(&account, s)).collect()
        })
        .collect()
}

/// One message of the stream.
#[derive(Debug, Clone)]
pub struct StreamMessage {
    pub stream_seq: u64,
    pub subject: String,
    pub msg_id: Option<String>,
    pub payload: serde_json::Value,
}

/// The number of messages the stream holds, or `None` if the server or stream is not there.
pub async fn stream_count(url: &str, stream: &str) -> Option<u64> {
    let client = tokio::time::timeout(Duration::from_secs(3), async_nats::connect(url))
        .await
        .ok()?
        .ok()?;
    let js = async_nats::jetstream::new(client);
    let mut s = js.get_stream(stream).await.ok()?;
    let info = s.info().await.ok()?;
    Some(info.state.messages)
}

/// Every message of the stream in stream order, read with an ordered consumer.
pub async fn read_stream(url: &str, stream: &str) -> Vec<StreamMessage> {
    use async_nats::jetstream::consumer::{pull::OrderedConfig, DeliverPolicy};
    let client = async_nats::connect(url).await.expect("connect to nats");
    let js = async_nats::jetstream::new(client);
    let mut s = js.get_stream(stream).await.expect("stream exists");
    let count = s.info().await.expect("stream info").state.messages;
    let mut out = Vec::with_capacity(count as usize);
    if count == 0 {
        return out;
    }
    let consumer = s
        .create_consumer(OrderedConfig {
            deliver_policy: DeliverPolicy::All,
            ..Default::default()
        })
        .await
        .expect("ordered consumer");
    let mut messages = consumer.messages().await.expect("consumer messages");
    while (out.len() as u64) < count {
        let msg = tokio::time::timeout(Duration::from_secs(10), messages.next())
            .await
            .unwrap_or_else(|_| panic!("stream read stalled at {} of {count}", out.len()))
            .expect("stream ended early")
            .expect("stream message");
        let info = msg.info().expect("jetstream message info");
        let stream_seq = info.stream_sequence;
        let msg_id = msg
            .headers
            .as_ref()
            .and_then(|h| h.get("Nats-Msg-Id"))
            .map(|v| v.as_str().to_string());
        out.push(StreamMessage {
            stream_seq,
            subject: msg.subject.to_string(),
            msg_id,
            payload: serde_json::from_slice(&msg.payload).unwrap_or(serde_json::Value::Null),
        });
    }
    out
}

/// Checks what every forwarded message must be: a JSON event whose `id` is its
/// `Nats-Msg-Id`, on `tocsin.events.<account>.<class>`; and that ids are distinct.
/// Returns the set of ids.
pub fn check_messages(msgs: &[StreamMessage]) -> std::collections::HashSet<String> {
    let mut ids = std::collections::HashSet::new();
    for m in msgs {
        let id = m
            .msg_id
            .as_deref()
            .unwrap_or_else(|| panic!("message {} has no Nats-Msg-Id", m.stream_seq));
        assert_eq!(
            m.payload["id"].as_str(),
            Some(id),
            "payload id differs from Nats-Msg-Id at stream seq {}",
            m.stream_seq
        );
        let account = m.payload["account"].as_str().expect("event account");
        let class = m.payload["class"].as_str().expect("event class");
        assert_eq!(
            m.subject,
            format!("tocsin.events.{account}.{class}"),
            "subject of stream seq {}",
            m.stream_seq
        );
        assert!(
            ids.insert(id.to_string()),
            "duplicate Nats-Msg-Id {id} (stream seq {})",
            m.stream_seq
        );
    }
    ids
}
