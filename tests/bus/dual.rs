//! Dual-path panels, as real ones behave: each reports to its primary receiver and, when a
//! frame gets no reply in time or the connection breaks or cannot be made, sends the *same*
//! frame (same bytes: sequence, payload and timestamp) to the other receiver, and stays
//! there until that path fails in turn. Each panel keeps the frames it saw ACKed and the
//! ACK latencies, so a test can check every one of them against the stream.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use tocsin::protocol::dc09::parse_frame;

use super::{sia_frame, StreamMessage};

/// A reply later than this counts as none: the panel moves to its other path.
pub const PANEL_TIMEOUT: Duration = Duration::from_secs(4);
/// Sends of one frame before the panel gives it up (both paths tried several times).
const MAX_ATTEMPTS: u32 = 8;

/// What one dual-path panel did.
#[derive(Debug, Default, Clone)]
pub struct PanelLog {
    pub account: String,
    /// Every frame that got an ACK, as sent.
    pub acked: Vec<Vec<u8>>,
    /// (when sent, ACK latency) of each ACKed frame.
    pub latencies: Vec<(Instant, Duration)>,
    pub naks: u64,
    pub timeouts: u64,
    pub switches: u64,
    /// Frames given up after every attempt failed.
    pub given_up: u64,
    pub other: u64,
}

pub struct DualPanel {
    paths: [SocketAddr; 2],
    on: usize,
    conn: Option<TcpStream>,
    buf: Vec<u8>,
    pub log: PanelLog,
}

enum Attempt {
    Ack,
    Nak,
    Other,
    /// No reply in time, a broken or refused connection: try the other path.
    PathFailed,
}

impl DualPanel {
    pub fn new(account: &str, primary: SocketAddr, fallback: SocketAddr) -> DualPanel {
        DualPanel {
            paths: [primary, fallback],
            on: 0,
            conn: None,
            buf: Vec::with_capacity(256),
            log: PanelLog {
                account: account.to_string(),
                ..PanelLog::default()
            },
        }
    }

    fn switch(&mut self) {
        self.conn = None;
        self.on = 1 - self.on;
        self.log.switches += 1;
    }

    /// Sends `frame` until a path answers it (or every attempt failed).
    pub async fn send(&mut self, frame: &[u8]) {
        for attempt in 0..MAX_ATTEMPTS {
            if attempt >= 2 {
                // Both paths failed at least once: do not spin on them.
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            let sent = Instant::now();
            match self.attempt(frame).await {
                Attempt::Ack => {
                    self.log.acked.push(frame.to_vec());
                    self.log.latencies.push((sent, sent.elapsed()));
                    return;
                }
                Attempt::Nak => {
                    self.log.naks += 1;
                    return;
                }
                Attempt::Other => {
                    self.log.other += 1;
                    self.conn = None;
                    return;
                }
                Attempt::PathFailed => self.switch(),
            }
        }
        self.log.given_up += 1;
    }

    async fn attempt(&mut self, frame: &[u8]) -> Attempt {
        if self.conn.is_none() {
            let addr = self.paths.get(self.on).copied().unwrap_or(self.paths[0]);
            match tokio::time::timeout(PANEL_TIMEOUT, TcpStream::connect(addr)).await {
                Ok(Ok(s)) => {
                    s.set_nodelay(true).ok();
                    self.conn = Some(s);
                }
                _ => return Attempt::PathFailed,
            }
        }
        let Some(conn) = self.conn.as_mut() else {
            return Attempt::PathFailed;
        };
        if conn.write_all(frame).await.is_err() {
            self.log.timeouts += 1;
            return Attempt::PathFailed;
        }
        self.buf.clear();
        let buf = &mut self.buf;
        let read = tokio::time::timeout(PANEL_TIMEOUT, async {
            let mut chunk = [0u8; 512];
            loop {
                let n = conn.read(&mut chunk).await.ok()?;
                if n == 0 {
                    return None;
                }
                buf.extend_from_slice(chunk.get(..n)?);
                if buf.last() == Some(&b'\r') {
                    return Some(());
                }
            }
        })
        .await;
        match read {
            Ok(Some(())) => match parse_frame(&self.buf).map(|f| f.header.token) {
                Ok("ACK") => Attempt::Ack,
                Ok("NAK") => Attempt::Nak,
                _ => Attempt::Other,
            },
            Ok(None) => Attempt::PathFailed,
            Err(_) => {
                self.log.timeouts += 1;
                Attempt::PathFailed
            }
        }
    }
}

/// Runs one dual-path panel per account until `stop`, a frame every `pause`; half the
/// panels have `a` as primary, half `b`. Returns every panel's log.
pub async fn run_dual_panels(
    accounts: Vec<String>,
    a: SocketAddr,
    b: SocketAddr,
    pause: Duration,
    stop: Arc<AtomicBool>,
) -> Vec<PanelLog> {
    let mut tasks = Vec::new();
    for (i, account) in accounts.into_iter().enumerate() {
        let (primary, fallback) = if i % 2 == 0 { (a, b) } else { (b, a) };

        let stop = Arc::clone(&stop);
        tasks.push(tokio::spawn(async move {
            let mut panel = DualPanel::new(&account, primary, fallback);
            let mut seq: u16 = 0;
            while !stop.load(Ordering::Relaxed) {
                seq = if seq >= 9999 { 1 } else { seq + 1 };
                let frame = sia_frame(&account, seq);
                panel.send(&frame).await;
                tokio::time::sleep(pause).await;
            }
            panel.log
        }));
    }
    let mut logs = Vec::new();
    for t in tasks {
        logs.push(t.await.expect("panel task"));
    }
    logs
}

/// How the ACKed frames compare with the stream.
#[derive(Debug, Default)]
pub struct Tally {
    pub acked: usize,
    /// ACKed frames with no event in the stream.
    pub lost: usize,
    /// ACKed frames with more than one event in the stream.
    pub duplicated: usize,
}

/// Counts, for every ACKed frame, the stream's events that came from it: by the frame's
/// exact bytes (`raw`: account, sequence, payload and panel time), checked against the
/// event's own `account`, `seq` and `panel_time` fields.
pub fn tally(logs: &[PanelLog], msgs: &[StreamMessage]) -> Tally {
    let mut in_stream: HashMap<Vec<u8>, usize> = HashMap::new();
    for m in msgs {
        let Some(raw) = m.payload["raw"].as_str() else {
            continue;
        };
        let bytes = tocsin::protocol::text::unescape(raw);
        if let Ok(f) = parse_frame(&bytes) {
            assert_eq!(
                m.payload["account"].as_str(),
                f.header.account.number(),
                "account of stream seq {}",
                m.stream_seq
            );
            assert_eq!(
                m.payload["seq"].as_str(),
                Some(f.header.seq),
                "sequence of stream seq {}",
                m.stream_seq
            );
            assert!(
                m.payload["panel_time"].is_string(),
                "panel time of stream seq {}",
                m.stream_seq
            );
        }
        *in_stream.entry(bytes).or_default() += 1;
    }
    let mut t = Tally::default();
    for log in logs {
        for frame in &log.acked {
            t.acked += 1;
            match in_stream.get(frame).copied().unwrap_or(0) {
                0 => t.lost += 1,
                1 => {}
                _ => t.duplicated += 1,
            }
        }
    }
    t
}

/// p50, p99 and max of the ACK latencies sent within `[from, to)`, in ms, and their count.
pub fn latency_ms(logs: &[PanelLog], from: Instant, to: Instant) -> (usize, f64, f64, f64) {
    let mut v: Vec<Duration> = logs
        .iter()
        .flat_map(|l| l.latencies.iter())
        .filter(|(at, _)| *at >= from && *at < to)
        .map(|(_, d)| *d)
        .collect();
    v.sort_unstable();
    let ms = |d: Option<&Duration>| d.map_or(0.0, |d| d.as_secs_f64() * 1000.0);
    let q = |p: f64| v.get(((v.len() as f64 * p) as usize).min(v.len().saturating_sub(1)));
    (v.len(), ms(q(0.5)), ms(q(0.99)), ms(v.last()))
}
