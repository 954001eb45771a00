//! `tocsin load`: many simulated panels against a receiver, with an ACK-latency histogram.
//!
//! It exists to size a receiver and to check the bar the design sets for it: an ACK waits for
//! the journal's fsync, so "p99 ACK latency ≤ p99 fdatasync latency + 0.5 ms" (the fsync side
//! is measured by `tocsin fsync-probe` on the same disk).
//!
//! Each simulated panel is a closed loop, as real panels are: it sends one frame and waits for
//! the reply before it sends the next. The offered load therefore follows the receiver's pace
//! and the latency measured is the one a panel sees. A closed loop does not see the queueing
//! that an open-loop arrival process would meet while the receiver stalls (coordinated
//! omission); that is the price of imitating panels faithfully, and `--rate` only caps.
//!
//! The generator shares a couple of cores with the receiver, so it must cost little per frame:
//! one tokio runtime, every buffer owned by its panel and reused, and no lock or shared write
//! per frame. Latencies are kept as raw samples in a small per-panel buffer and folded into a
//! few sharded histograms every [`BATCH`] frames (one lock per batch). A histogram per panel
//! would be the obvious shape, but at three significant digits one weighs ~130 KiB, which is
//! about 2 GB at 15 000 panels.

use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use hdrhistogram::Histogram;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use time::UtcDateTime;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream, UdpSocket};
use tokio::sync::watch;
use tokio::task::JoinSet;

use tocsin::protocol::crypto::{Key, MAX_PAD};
use tocsin::protocol::dc09::{parse_frame, CrcForm};
use tocsin::protocol::encode::{encode, FrameSpec};
use tocsin::units::parse_duration;

/// Samples a panel buffers before it takes its shard's lock.
const BATCH: usize = 128;
/// A panel also publishes its counters this often, so the progress bar moves at low rates.
const PUBLISH_EVERY: Duration = Duration::from_millis(250);
/// Latencies of the first second are left out of long runs: connection setup, cold caches
/// and the receiver's first journal segment are not the steady state.
const WARMUP: Duration = Duration::from_secs(1);
const WARMUP_MIN_RUN: Duration = Duration::from_secs(5);
/// A reply longer than this without its CR is not a reply.
const MAX_REPLY: usize = 4096;
/// A paced panel that fell behind by more than this forgets the frames it owes: `--rate` is a
/// cap, not a debt to be paid in a burst after a stall.
const MAX_CATCH_UP: Duration = Duration::from_millis(100);
/// Sends of one frame over the two paths of `--fallback` before the panel gives it up, as
/// a panel's dialler does after a few rounds (counted in `given_up`).
const MAX_ATTEMPTS: u32 = 4;
/// Latency samples carry the payload kind in their top two bits.
const KIND_SHIFT: u32 = 30;
const LATENCY_MASK: u32 = (1 << KIND_SHIFT) - 1;

#[derive(clap::Args, Debug)]
pub struct LoadArgs {
    /// Receiver address, HOST:PORT.
    #[arg(long)]
    pub to: String,
    /// A second receiver, as dual-path panels have: a frame that gets no reply within
    /// `--timeout`, or whose connection breaks or cannot be made, is sent again (the same
    /// bytes: sequence and timestamp) to the other address, and the panel stays there until
    /// that path fails in turn. Counted in `path_switches`.
    #[arg(long, value_name = "ADDR")]
    pub fallback: Option<String>,
    /// Send over UDP (one socket per panel) instead of TCP.
    #[arg(long, conflicts_with = "connect_per_frame")]
    pub udp: bool,
    /// Number of simulated panels, each with its own connection (or socket).
    #[arg(long)]
    pub conns: usize,
    /// Run for this long (`10s`, `2m`).
    #[arg(long, value_parser = parse_duration, required_unless_present = "frames", conflicts_with = "frames")]
    pub duration: Option<Duration>,
    /// Send this many frames in all (split evenly over the panels).
    #[arg(long)]
    pub frames: Option<u64>,
    /// Payload kinds to draw from, uniformly per frame; repeat a kind to weight it
    /// (`sia,sia,null`).
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "sia,cid,null"
    )]
    pub mix: Vec<Kind>,
    /// AES key as hex (32/48/64 digits): every frame is encrypted with it.
    #[arg(long, conflicts_with = "key_ascii")]
    pub key: Option<String>,
    /// AES key as 16/24/32 ASCII characters.
    #[arg(long)]
    pub key_ascii: Option<String>,
    /// Distinct accounts (default: one per panel). Accounts are numbered 100000, 100001, …;
    /// panel i uses account 100000 + i mod K.
    #[arg(long)]
    pub accounts: Option<usize>,
    /// Cap on the total frames per second, spread evenly over the panels.
    #[arg(long)]
    pub rate: Option<f64>,
    /// Open a TCP connection for each frame and close it after the reply (connecting is part
    /// of the latency), as dial-up-style transmitters do.
    #[arg(long)]
    pub connect_per_frame: bool,
    /// A frame with no reply within this time counts as a timeout, and its panel reconnects.
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    pub timeout: Duration,
    /// Print only the JSON summary, on one line (no human summary on stderr).
    #[arg(long)]
    pub json: bool,
    /// Local addresses to bind client sockets to, round-robin (`127.0.0.2,127.0.0.3`): one
    /// source address has only ~28 000 ephemeral ports.
    #[arg(long, value_delimiter = ',')]
    pub source: Vec<IpAddr>,
    /// Runtime worker threads (default: one per CPU).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Receiver number to put in every frame's `R` field (1–6 hex digits; none by default).
    /// Some receivers mishandle frames without one: pysiaalarm answers them with `RNone`.
    #[arg(long)]
    pub receiver: Option<String>,
}

/// What a frame carries.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// SIA DC-03 data, `#acct|Nri1/BA001` with varying area and zone.
    Sia,
    /// Contact ID data, `#acct|1130 01 001` with varying group and zone.
    Cid,
    /// A NULL supervision poll (no event, so nothing to journal).
    Null,
}

impl Kind {
    const ALL: [Kind; 3] = [Kind::Sia, Kind::Cid, Kind::Null];

    fn index(self) -> usize {
        match self {
            Kind::Sia => 0,
            Kind::Cid => 1,
            Kind::Null => 2,
        }
    }
    fn name(self) -> &'static str {
        match self {
            Kind::Sia => "sia",
            Kind::Cid => "cid",
            Kind::Null => "null",
        }
    }
    fn token(self) -> &'static str {
        match self {
            Kind::Sia => "SIA-DCS",
            Kind::Cid => "ADM-CID",
            Kind::Null => "NULL",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Transport {
    Tcp,
    TcpPerFrame,
    Udp,
}

impl Transport {
    fn name(self) -> &'static str {
        match self {
            Transport::Tcp => "tcp",
            Transport::TcpPerFrame => "tcp-connect-per-frame",
            Transport::Udp => "udp",
        }
    }
}

/// Why a frame failed, when it got a wrong reply or none that could be judged.
#[derive(Clone, Copy, Debug)]
enum Failure {
    /// The reply does not parse (CRC, length, layout).
    BadFrame,
    /// A token other than ACK, NAK, DUH.
    WrongToken,
    /// An ACK for another sequence number.
    WrongSeq,
    /// An ACK for another account.
    WrongAccount,
    /// An ACK in clear for an encrypted frame (or the reverse), or one that does not open.
    Crypto,
    /// The receiver closed the connection before replying.
    Closed,
    /// A read or write failed.
    Io,
    /// Bytes without an end of frame.
    Oversized,
    /// The connection (or socket) could not be opened.
    Connect,
}

#[derive(Default, Clone, Copy, Debug)]
struct Failures {
    bad_frame: u64,
    wrong_token: u64,
    wrong_seq: u64,
    wrong_account: u64,
    crypto: u64,
    closed: u64,
    io: u64,
    oversized: u64,
    connect: u64,
}

impl Failures {
    fn count(&mut self, f: Failure) {
        let slot = match f {
            Failure::BadFrame => &mut self.bad_frame,
            Failure::WrongToken => &mut self.wrong_token,
            Failure::WrongSeq => &mut self.wrong_seq,
            Failure::WrongAccount => &mut self.wrong_account,
            Failure::Crypto => &mut self.crypto,
            Failure::Closed => &mut self.closed,
            Failure::Io => &mut self.io,
            Failure::Oversized => &mut self.oversized,
            Failure::Connect => &mut self.connect,
        };
        *slot += 1;
    }
    fn total(&self) -> u64 {
        self.bad_frame
            + self.wrong_token
            + self.wrong_seq
            + self.wrong_account
            + self.crypto
            + self.closed
            + self.io
            + self.oversized
            + self.connect
    }
    fn add(&mut self, o: &Failures) {
        self.bad_frame += o.bad_frame;
        self.wrong_token += o.wrong_token;
        self.wrong_seq += o.wrong_seq;
        self.wrong_account += o.wrong_account;
        self.crypto += o.crypto;
        self.closed += o.closed;
        self.io += o.io;
        self.oversized += o.oversized;
        self.connect += o.connect;
    }
    fn to_json(self) -> Value {
        json!({
            "bad_frame": self.bad_frame,
            "wrong_token": self.wrong_token,
            "wrong_seq": self.wrong_seq,
            "wrong_account": self.wrong_account,
            "crypto": self.crypto,
            "closed": self.closed,
            "io": self.io,
            "oversized": self.oversized,
            "connect": self.connect,
        })
    }
}

/// One panel's tally, summed at the end.
#[derive(Default, Clone, Copy, Debug)]
struct Counts {
    sent: u64,
    sent_by_kind: [u64; 3],
    ack: u64,
    nak: u64,
    duh: u64,
    timeouts: u64,
    failures: Failures,
    /// Connections (or UDP sockets) opened again after a timeout or a failure.
    reconnects: u64,
    /// Moves to the other path (`--fallback`).
    path_switches: u64,
    /// Frames that no path answered after [`MAX_ATTEMPTS`] sends.
    given_up: u64,
}

impl Counts {
    fn add(&mut self, o: &Counts) {
        self.sent += o.sent;
        for (a, b) in self.sent_by_kind.iter_mut().zip(o.sent_by_kind) {
            *a += b;
        }
        self.ack += o.ack;
        self.nak += o.nak;
        self.duh += o.duh;
        self.timeouts += o.timeouts;
        self.failures.add(&o.failures);
        self.reconnects += o.reconnects;
        self.path_switches += o.path_switches;
        self.given_up += o.given_up;
    }
}

/// Counters the progress bar reads; panels add to them once per batch, not per frame.
#[derive(Default)]
struct Live {
    ready: AtomicUsize,
    sent: AtomicU64,
    ack: AtomicU64,
    other: AtomicU64,
}

/// Histograms of one shard, by payload kind: the first second apart, see [`WARMUP`].
struct Hists {
    warm: [Histogram<u64>; 3],
    steady: [Histogram<u64>; 3],
}

/// Read-only settings and the few shared cells, one per run.
struct Shared {
    target: SocketAddr,
    /// `--fallback`: the second path of every panel.
    fallback: Option<SocketAddr>,
    transport: Transport,
    key: Option<Key>,
    mix: Vec<Kind>,
    accounts: usize,
    sources: Vec<IpAddr>,
    /// Digits of the `R` field, if frames carry one.
    receiver: Option<String>,
    timeout: Duration,
    /// Interval between two frames of one panel under `--rate`.
    period: Option<Duration>,
    duration: Option<Duration>,
    conns: usize,
    stop: AtomicBool,
    live: Live,
    shards: Vec<Mutex<Hists>>,
    /// The first connect error, to explain a run that could not connect.
    first_connect_error: Mutex<Option<String>>,
}

impl Shared {
    /// The address of path 0 (`--to`) or 1 (`--fallback`).
    fn target_of(&self, path: usize) -> SocketAddr {
        match (path, self.fallback) {
            (1, Some(f)) => f,
            _ => self.target,
        }
    }

    fn note_connect_error(&self, e: &std::io::Error) {
        let mut slot = self
            .first_connect_error
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if slot.is_none() {
            *slot = Some(e.to_string());
        }
    }
}

/// An open path to the receiver.
enum Link {
    Tcp(TcpStream),
    Udp(UdpSocket),
}

enum Verdict {
    Ack,
    Nak,
    Duh,
    Failed(Failure),
}

/// One simulated panel: its identity, counters and reusable buffers.
struct Panel {
    idx: usize,
    /// 0 while on `--to`, 1 while on `--fallback`.
    path: usize,
    account: String,
    /// Panels that share an account (`--accounts` < `--conns`) differ by this number, which
    /// shifts their zones: otherwise two of them sending the same sequence in the same second
    /// would send identical content, and the receiver would rightly take the second for a
    /// retransmission and skip its fsync.
    generation: usize,
    seq: u16,
    seq_text: [u8; 4],
    quota: Option<u64>,
    rng: SmallRng,
    data: Vec<u8>,
    frame: Vec<u8>,
    /// TCP: bytes read so far. UDP: a datagram-sized buffer.
    rbuf: Vec<u8>,
    /// Decrypted reply content.
    scratch: Vec<u8>,
    samples: Vec<u32>,
    samples_warm: bool,
    counts: Counts,
    published: Counts,
    last_publish: Instant,
}

impl Panel {
    fn new(idx: usize, shared: &Shared, quota: Option<u64>) -> Panel {
        let rbuf = if shared.transport == Transport::Udp {
            vec![0; MAX_REPLY]
        } else {
            Vec::with_capacity(512)
        };
        Panel {
            idx,
            path: 0,
            account: account_id(idx % shared.accounts),
            generation: idx / shared.accounts,
            seq: 0,
            seq_text: *b"0000",
            quota,
            rng: SmallRng::seed_from_u64(idx as u64 ^ 0x746f_6373_696e),
            data: Vec::with_capacity(64),
            frame: Vec::with_capacity(256),
            rbuf,
            scratch: Vec::with_capacity(256),
            samples: Vec::with_capacity(BATCH),
            samples_warm: true,
            counts: Counts::default(),
            published: Counts::default(),
            last_publish: Instant::now(),
        }
    }

    fn source(&self, shared: &Shared) -> Option<IpAddr> {
        match shared.sources.len() {
            0 => None,
            n => shared.sources.get(self.idx % n).copied(),
        }
    }

    async fn open(&mut self, shared: &Shared) -> Option<Link> {
        let source = self.source(shared);
        let target = shared.target_of(self.path);
        let opened = match shared.transport {
            Transport::Udp => open_udp(target, source).await.map(Link::Udp),
            _ => match tokio::time::timeout(shared.timeout, connect_tcp(target, source)).await {
                Ok(r) => r.map(Link::Tcp),
                Err(_) => Err(std::io::Error::from(std::io::ErrorKind::TimedOut)),
            },
        };
        match opened {
            Ok(link) => Some(link),
            Err(e) => {
                shared.note_connect_error(&e);
                self.counts.failures.count(Failure::Connect);
                None
            }
        }
    }

    async fn run(
        mut self,
        shared: Arc<Shared>,
        mut start_rx: watch::Receiver<Option<Instant>>,
    ) -> Counts {
        let persistent = shared.transport != Transport::TcpPerFrame;
        let mut link = if persistent {
            self.open(&shared).await
        } else {
            None
        };
        shared.live.ready.fetch_add(1, Relaxed);
        let start = match start_rx.wait_for(Option::is_some).await {
            Ok(s) => s.unwrap_or_else(Instant::now),
            Err(_) => return self.counts,
        };
        let deadline = shared.duration.map(|d| start + d);
        let warm_end = start + WARMUP;
        // Panels start spread over one period, so a paced run does not send in waves.
        let mut next_due = shared.period.map(|p| {
            let frac = self.idx as f64 / shared.conns.max(1) as f64;
            start + p.mul_f64(frac)
        });
        let mut backoff = Duration::from_millis(50);
        // The frame in `self.frame` still waits for an answer (it goes again to the other
        // path), its kind, and how many times it was sent.
        let mut pending: Option<Kind> = None;
        let mut attempts = 0u32;

        loop {
            if shared.stop.load(Relaxed) {
                break;
            }
            let kind = match pending {
                Some(kind) => {
                    // A frame sent again leaves at once, but not after the end of the run.
                    if deadline.is_some_and(|d| Instant::now() >= d) {
                        break;
                    }
                    kind
                }
                None => {
                    if self.quota == Some(0) {
                        break;
                    }
                    if let (Some(due), Some(period)) = (next_due.as_mut(), shared.period) {
                        let now = Instant::now();
                        // The next frame would leave after the end: the run is over for
                        // this panel, and sleeping until then would only stretch the
                        // measured duration.
                        if deadline.is_some_and(|d| *due >= d) {
                            break;
                        }
                        if *due > now {
                            tokio::time::sleep_until((*due).into()).await;
                        } else if now.duration_since(*due) > MAX_CATCH_UP {
                            *due = now;
                        }
                        *due += period;
                    }
                    if deadline.is_some_and(|d| Instant::now() >= d) {
                        break;
                    }
                    // A frame uses up its share of `--frames` once, however many sends it
                    // takes, and even if it cannot leave: a run against a dead receiver ends.
                    if let Some(q) = self.quota.as_mut() {
                        *q -= 1;
                    }
                    attempts = 0;
                    let kind = self.build(&shared);
                    pending = Some(kind);
                    kind
                }
            };
            if persistent && link.is_none() {
                link = self.open(&shared).await;
                if link.is_none() {
                    attempts += 1;
                    if !self.path_failed(&shared, attempts) {
                        pending = None;
                    }
                    // The receiver is down or refusing: do not spin on it (with a second
                    // path, only once both have failed).
                    if shared.fallback.is_none() || attempts >= 2 {
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(1));
                    }
                    continue;
                }
                self.counts.reconnects += 1;
            }
            backoff = Duration::from_millis(50);

            let t0 = Instant::now();
            let outcome = tokio::time::timeout(
                shared.timeout,
                exchange(
                    &shared,
                    shared.target_of(self.path),
                    self.source(&shared),
                    link.as_mut(),
                    &self.frame,
                    &mut self.rbuf,
                ),
            )
            .await;
            let t1 = Instant::now();
            attempts += 1;

            let range = match outcome {
                Err(_) => {
                    self.counts.sent += 1;
                    self.counts.sent_by_kind[kind.index()] += 1;
                    self.counts.timeouts += 1;
                    link = None;
                    self.rbuf_reset(&shared);
                    self.maybe_publish(&shared, t1);
                    if !self.path_failed(&shared, attempts) {
                        pending = None;
                    }
                    continue;
                }
                Ok(Err(Failure::Connect)) => {
                    // Per-frame mode: the frame never left.
                    self.counts.failures.count(Failure::Connect);
                    if !self.path_failed(&shared, attempts) {
                        pending = None;
                    }
                    if shared.fallback.is_none() || attempts >= 2 {
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(1));
                    }
                    continue;
                }
                Ok(Err(f)) => {
                    self.counts.sent += 1;
                    self.counts.sent_by_kind[kind.index()] += 1;
                    self.counts.failures.count(f);
                    link = None;
                    self.rbuf_reset(&shared);
                    self.maybe_publish(&shared, t1);
                    // A broken connection is a path failure; a reply that makes no sense
                    // is the receiver's answer, wrong as it is.
                    let broken = matches!(f, Failure::Closed | Failure::Io);
                    if !broken || !self.path_failed(&shared, attempts) {
                        pending = None;
                    }
                    continue;
                }
                Ok(Ok(r)) => r,
            };
            pending = None;
            self.counts.sent += 1;
            self.counts.sent_by_kind[kind.index()] += 1;

            let verdict = {
                let reply = self.rbuf.get(range.clone()).unwrap_or_default();
                judge(
                    reply,
                    &self.seq_text,
                    &self.account,
                    shared.key.as_ref(),
                    &mut self.scratch,
                )
            };
            match verdict {
                Verdict::Ack => self.counts.ack += 1,
                Verdict::Nak => self.counts.nak += 1,
                Verdict::Duh => self.counts.duh += 1,
                Verdict::Failed(f) => self.counts.failures.count(f),
            }
            if let Verdict::Failed(_) = verdict {
                // The stream may be out of step with our frames: start afresh.
                link = None;
                self.rbuf_reset(&shared);
            } else {
                let micros = t1.duration_since(t0).as_micros();
                self.record(&shared, kind, t0 < warm_end, micros);
                if shared.transport != Transport::Udp {
                    self.rbuf.drain(..range.end.min(self.rbuf.len()));
                }
            }
            if shared.transport == Transport::TcpPerFrame {
                self.rbuf.clear();
            }
            self.maybe_publish(&shared, t1);
        }
        self.flush_samples(&shared);
        self.publish(&shared, Instant::now());
        self.counts
    }

    /// The path failed `attempts` sends of the current frame: with `--fallback`, move to
    /// the other path and return true (send it again there), unless the frame has had its
    /// sends (then it is given up). Without `--fallback`, false: the frame is lost, as it
    /// always was.
    fn path_failed(&mut self, shared: &Shared, attempts: u32) -> bool {
        if shared.fallback.is_none() {
            return false;
        }
        self.path = 1 - self.path.min(1);
        self.counts.path_switches += 1;
        if attempts >= MAX_ATTEMPTS {
            self.counts.given_up += 1;
            return false;
        }
        true
    }

    fn rbuf_reset(&mut self, shared: &Shared) {
        if shared.transport != Transport::Udp {
            self.rbuf.clear();
        }
    }

    /// Writes the next frame into `self.frame`.
    fn build(&mut self, shared: &Shared) -> Kind {
        let kind = match shared.mix.len() {
            1 => shared.mix.first().copied().unwrap_or(Kind::Null),
            n => shared
                .mix
                .get(self.rng.random_range(0..n))
                .copied()
                .unwrap_or(Kind::Null),
        };
        // Sequence numbers run 0001..=9999 and wrap, as DC-09 panels count.
        self.seq = if self.seq >= 9999 { 1 } else { self.seq + 1 };
        write_seq(self.seq, &mut self.seq_text);
        let zone = 1 + (usize::from(self.seq) + self.generation) % 999;
        let area = 1 + (self.generation / 999) % 99;
        self.data.clear();
        // Writing into a Vec cannot fail.
        let _ = match kind {
            Kind::Sia => write!(self.data, "#{}|Nri{area}/BA{zone:03}", self.account),
            Kind::Cid => write!(self.data, "#{}|1130 {area:02} {zone:03}", self.account),
            Kind::Null => Ok(()),
        };
        let mut random = [0u8; MAX_PAD];
        if shared.key.is_some() {
            self.rng.fill(&mut random);
        }
        let spec = FrameSpec {
            token: kind.token(),
            seq: std::str::from_utf8(&self.seq_text).unwrap_or("0001"),
            receiver: shared.receiver.as_deref(),
            line: "0",
            account: &self.account,
            data: &self.data,
            ext: &[],
            timestamp: Some(UtcDateTime::now()),
            form: CrcForm::Ascii,
        };
        self.frame.clear();
        encode(&spec, shared.key.as_ref(), &random, &mut self.frame);
        kind
    }

    fn record(&mut self, shared: &Shared, kind: Kind, warm: bool, micros: u128) {
        if warm != self.samples_warm {
            self.flush_samples(shared);
            self.samples_warm = warm;
        }
        let v = u32::try_from(micros)
            .unwrap_or(LATENCY_MASK)
            .min(LATENCY_MASK);
        self.samples.push(((kind.index() as u32) << KIND_SHIFT) | v);
        if self.samples.len() >= BATCH {
            self.flush_samples(shared);
        }
    }

    fn flush_samples(&mut self, shared: &Shared) {
        if self.samples.is_empty() {
            return;
        }
        let Some(shard) = shared.shards.get(self.idx % shared.shards.len().max(1)) else {
            return;
        };
        let mut h = shard.lock().unwrap_or_else(|p| p.into_inner());
        let set = if self.samples_warm {
            &mut h.warm
        } else {
            &mut h.steady
        };
        for &s in &self.samples {
            if let Some(hist) = set.get_mut((s >> KIND_SHIFT) as usize) {
                hist.saturating_record(u64::from(s & LATENCY_MASK));
            }
        }
        self.samples.clear();
    }

    fn maybe_publish(&mut self, shared: &Shared, now: Instant) {
        if now.duration_since(self.last_publish) >= PUBLISH_EVERY
            || self.counts.sent - self.published.sent >= BATCH as u64
        {
            self.publish(shared, now);
        }
    }

    fn publish(&mut self, shared: &Shared, now: Instant) {
        let c = &self.counts;
        let p = &self.published;
        let other = |x: &Counts| x.nak + x.duh + x.timeouts + x.failures.total();
        shared.live.sent.fetch_add(c.sent - p.sent, Relaxed);
        shared.live.ack.fetch_add(c.ack - p.ack, Relaxed);
        shared.live.other.fetch_add(other(c) - other(p), Relaxed);
        self.published = self.counts;
        self.last_publish = now;
    }
}

/// Account number of the i-th account: the scheme a keyed receiver config must follow.
fn account_id(i: usize) -> String {
    format!("{}", 100_000 + i)
}

fn write_seq(seq: u16, out: &mut [u8; 4]) {
    let mut n = seq;
    for slot in out.iter_mut().rev() {
        *slot = b'0' + (n % 10) as u8;
        n /= 10;
    }
}

async fn connect_tcp(target: SocketAddr, source: Option<IpAddr>) -> std::io::Result<TcpStream> {
    let sock = if target.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    if let Some(ip) = source {
        // Lets a source port whose previous connection is in TIME_WAIT be taken again, which
        // `--connect-per-frame` needs to last more than a minute at a high rate.
        sock.set_reuseaddr(true)?;
        sock.bind(SocketAddr::new(ip, 0))?;
    }
    let stream = sock.connect(target).await?;
    // Panels send one small frame and wait: Nagle would only add delay.
    stream.set_nodelay(true)?;
    Ok(stream)
}

async fn open_udp(target: SocketAddr, source: Option<IpAddr>) -> std::io::Result<UdpSocket> {
    let local = source.unwrap_or(if target.is_ipv4() {
        IpAddr::V4(Ipv4Addr::UNSPECIFIED)
    } else {
        IpAddr::V6(Ipv6Addr::UNSPECIFIED)
    });
    let sock = UdpSocket::bind(SocketAddr::new(local, 0)).await?;
    // Connected: the kernel drops datagrams from anyone but the receiver.
    sock.connect(target).await?;
    Ok(sock)
}

/// Sends `frame` and returns where its reply lies in `rbuf`.
async fn exchange(
    shared: &Shared,
    target: SocketAddr,
    source: Option<IpAddr>,
    link: Option<&mut Link>,
    frame: &[u8],
    rbuf: &mut Vec<u8>,
) -> Result<Range<usize>, Failure> {
    match link {
        Some(Link::Tcp(stream)) => {
            stream.write_all(frame).await.map_err(|_| Failure::Io)?;
            read_reply(stream, rbuf).await
        }
        Some(Link::Udp(sock)) => {
            sock.send(frame).await.map_err(|_| Failure::Io)?;
            let n = sock.recv(rbuf).await.map_err(|_| Failure::Io)?;
            Ok(0..n)
        }
        None => {
            // Connect per frame: the connection is part of what a panel waits for.
            let mut stream = connect_tcp(target, source).await.map_err(|e| {
                shared.note_connect_error(&e);
                Failure::Connect
            })?;
            stream.write_all(frame).await.map_err(|_| Failure::Io)?;
            read_reply(&mut stream, rbuf).await
        }
    }
}

/// Reads until `rbuf` holds a whole `LF … CR` reply; returns its range.
async fn read_reply(stream: &mut TcpStream, rbuf: &mut Vec<u8>) -> Result<Range<usize>, Failure> {
    loop {
        if let Some(lf) = rbuf.iter().position(|&b| b == b'\n') {
            if let Some(cr) = rbuf
                .get(lf..)
                .and_then(|rest| rest.iter().position(|&b| b == b'\r'))
            {
                return Ok(lf..lf + cr + 1);
            }
        }
        if rbuf.len() >= MAX_REPLY {
            return Err(Failure::Oversized);
        }
        rbuf.reserve(512);
        match stream.read_buf(rbuf).await {
            Ok(0) => return Err(Failure::Closed),
            Ok(_) => {}
            Err(_) => return Err(Failure::Io),
        }
    }
}

/// Is this the reply a panel wants for the frame it sent?
fn judge(
    reply: &[u8],
    seq: &[u8; 4],
    account: &str,
    key: Option<&Key>,
    scratch: &mut Vec<u8>,
) -> Verdict {
    let Ok(parsed) = parse_frame(reply) else {
        return Verdict::Failed(Failure::BadFrame);
    };
    let h = &parsed.header;
    match h.token {
        "ACK" => {
            if h.seq.as_bytes() != seq {
                return Verdict::Failed(Failure::WrongSeq);
            }
            if h.account.number() != Some(account) {
                return Verdict::Failed(Failure::WrongAccount);
            }
            // An encrypted frame wants an encrypted ACK that opens with the same key (it
            // proves the receiver holds the key); a clear frame wants a clear one.
            if h.encrypted != key.is_some() {
                return Verdict::Failed(Failure::Crypto);
            }
            if key.is_some() && parsed.open(key, scratch).is_err() {
                return Verdict::Failed(Failure::Crypto);
            }
            Verdict::Ack
        }
        "NAK" => Verdict::Nak,
        "DUH" => Verdict::Duh,
        _ => Verdict::Failed(Failure::WrongToken),
    }
}

fn new_hist(highest: u64) -> Result<Histogram<u64>> {
    Histogram::new_with_bounds(1, highest, 3).context("latency histogram")
}

pub fn run(args: LoadArgs) -> Result<i32> {
    if args.conns == 0 {
        bail!("--conns must be at least 1");
    }
    let accounts = args.accounts.unwrap_or(args.conns);
    if accounts == 0 {
        bail!("--accounts must be at least 1");
    }
    if args.mix.is_empty() {
        bail!("--mix needs at least one of sia, cid, null");
    }
    if let Some(r) = args.rate {
        if !(r.is_finite() && r > 0.0) {
            bail!("--rate must be a positive number of frames per second");
        }
    }
    if args.timeout.is_zero() {
        bail!("--timeout must be above zero");
    }
    if let Some(r) = &args.receiver {
        if r.is_empty() || r.len() > 6 || !r.bytes().all(|b| b.is_ascii_hexdigit()) {
            bail!("--receiver must be 1 to 6 hex digits");
        }
    }
    if args.duration.is_some_and(|d| d.is_zero()) {
        bail!("--duration must be above zero");
    }
    let key = match (&args.key, &args.key_ascii) {
        (Some(k), _) => Some(Key::from_hex(k).context("--key")?),
        (_, Some(k)) => Some(Key::from_ascii(k).context("--key-ascii")?),
        _ => None,
    };
    let target = args
        .to
        .to_socket_addrs()
        .with_context(|| format!("--to {}", args.to))?
        .next()
        .with_context(|| format!("--to {} resolves to nothing", args.to))?;
    let fallback = match &args.fallback {
        Some(f) => Some(
            f.to_socket_addrs()
                .with_context(|| format!("--fallback {f}"))?
                .next()
                .with_context(|| format!("--fallback {f} resolves to nothing"))?,
        ),
        None => None,
    };
    if fallback.is_some_and(|f| f.is_ipv4() != target.is_ipv4()) && !args.source.is_empty() {
        bail!("--fallback and --to must be of the same family when --source is given");
    }
    if let Some(bad) = args.source.iter().find(|s| s.is_ipv4() != target.is_ipv4()) {
        bail!("--source {bad} is not of the same family as --to {target}");
    }
    let transport = if args.udp {
        Transport::Udp
    } else if args.connect_per_frame {
        Transport::TcpPerFrame
    } else {
        Transport::Tcp
    };
    let threads = args.threads.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.max(1))
        .enable_all()
        .build()?;

    // Values above the timeout cannot be recorded as latencies: they are timeouts.
    let highest = u64::try_from(args.timeout.as_micros())
        .unwrap_or(u64::MAX / 4)
        .saturating_mul(2)
        .max(1_000_000);
    let shard_count = (threads * 4).clamp(1, args.conns);
    let mut shards = Vec::with_capacity(shard_count);
    for _ in 0..shard_count {
        shards.push(Mutex::new(Hists {
            warm: [new_hist(highest)?, new_hist(highest)?, new_hist(highest)?],
            steady: [new_hist(highest)?, new_hist(highest)?, new_hist(highest)?],
        }));
    }
    let shared = Arc::new(Shared {
        target,
        fallback,
        transport,
        key,
        mix: args.mix.clone(),
        accounts,
        sources: args.source.clone(),
        receiver: args.receiver.clone(),
        timeout: args.timeout,
        period: args
            .rate
            .map(|r| Duration::from_secs_f64(args.conns as f64 / r)),
        duration: args.duration,
        conns: args.conns,
        stop: AtomicBool::new(false),
        live: Live::default(),
        shards,
        first_connect_error: Mutex::new(None),
    });

    let outcome = runtime.block_on(drive(Arc::clone(&shared), &args))?;
    drop(runtime);

    let summary = summarize(&shared, &args, &outcome, threads, highest)?;
    if args.json {
        println!("{}", serde_json::to_string(&summary)?);
    } else {
        print_human(&summary, &outcome);
        println!("{}", serde_json::to_string_pretty(&summary)?);
    }
    Ok(i32::from(failed(&outcome.counts, fallback.is_some())))
}

/// Whether the run failed. With `--fallback`, a broken path is what is being exercised:
/// the run fails only on a frame no path answered, or on a wrong reply.
fn failed(c: &Counts, fallback: bool) -> bool {
    if !fallback {
        return c.failures.total() > 0;
    }
    let f = &c.failures;
    c.given_up > 0
        || f.bad_frame + f.wrong_token + f.wrong_seq + f.wrong_account + f.crypto + f.oversized > 0
}

struct Outcome {
    counts: Counts,
    connect_time: Duration,
    elapsed: Duration,
    interrupted: bool,
    panicked: usize,
    first_connect_error: Option<String>,
}

async fn drive(shared: Arc<Shared>, args: &LoadArgs) -> Result<Outcome> {
    let bar = progress_bar(args);
    let (start_tx, start_rx) = watch::channel(None);

    // Ctrl-C ends the run early with a summary; a second one quits at once.
    let ctrlc = {
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                shared.stop.store(true, Relaxed);
                eprintln!(
                    "tocsin load: stopping (waiting for replies in flight; Ctrl-C again to quit)"
                );
                if tokio::signal::ctrl_c().await.is_ok() {
                    std::process::exit(130);
                }
            }
        })
    };

    let per_panel = args.frames.map(|f| {
        let n = args.conns as u64;
        (f / n, f % n)
    });
    let mut set = JoinSet::new();
    let spawned = Instant::now();
    for idx in 0..args.conns {
        let quota = per_panel.map(|(q, r)| q + u64::from((idx as u64) < r));
        let panel = Panel::new(idx, &shared, quota);
        set.spawn(panel.run(Arc::clone(&shared), start_rx.clone()));
    }
    drop(start_rx);

    // Every panel opens its connection before the clock starts, so that a thousand
    // handshakes do not count as the first second of traffic.
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let ready = shared.live.ready.load(Relaxed);
        if let Some(b) = &bar {
            b.set_message(format!("connecting {ready}/{}", args.conns));
        }
        if ready >= args.conns || shared.stop.load(Relaxed) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let connect_time = spawned.elapsed();
    let start = Instant::now();
    let _ = start_tx.send(Some(start));

    let mut counts = Counts::default();
    let mut panicked = 0;
    loop {
        tokio::select! {
            joined = set.join_next() => match joined {
                Some(Ok(c)) => counts.add(&c),
                Some(Err(_)) => panicked += 1,
                None => break,
            },
            _ = tick.tick() => {
                if let Some(b) = &bar {
                    update_bar(b, &shared, args, start);
                }
            }
        }
    }
    let elapsed = start.elapsed();
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    ctrlc.abort();
    let first_connect_error = shared
        .first_connect_error
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    Ok(Outcome {
        counts,
        connect_time,
        elapsed,
        interrupted: shared.stop.load(Relaxed),
        panicked,
        first_connect_error,
    })
}

fn progress_bar(args: &LoadArgs) -> Option<indicatif::ProgressBar> {
    if !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        return None;
    }
    let (len, template) = match (args.duration, args.frames) {
        (Some(d), _) => (
            d.as_millis() as u64,
            "{spinner} [{elapsed_precise}] {wide_bar} {percent:>3}% {msg}",
        ),
        (_, Some(f)) => (
            f,
            "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} {msg}",
        ),
        _ => (0, "{spinner} {msg}"),
    };
    let style = indicatif::ProgressStyle::with_template(template).ok()?;
    Some(indicatif::ProgressBar::new(len).with_style(style))
}

fn update_bar(bar: &indicatif::ProgressBar, shared: &Shared, args: &LoadArgs, start: Instant) {
    let sent = shared.live.sent.load(Relaxed);
    let ack = shared.live.ack.load(Relaxed);
    let other = shared.live.other.load(Relaxed);
    let secs = start.elapsed().as_secs_f64();
    if args.duration.is_some() {
        bar.set_position(start.elapsed().as_millis() as u64);
    } else {
        bar.set_position(sent);
    }
    bar.set_message(format!(
        "sent {sent}  ack {ack}  other {other}  {:.0} frames/s",
        if secs > 0.0 { sent as f64 / secs } else { 0.0 }
    ));
}

fn latency_json(h: &Histogram<u64>) -> Value {
    if h.is_empty() {
        return json!({
            "p50": null, "p90": null, "p99": null, "p99_9": null,
            "max": null, "mean": null, "min": null, "count": 0,
        });
    }
    json!({
        "p50": h.value_at_quantile(0.50),
        "p90": h.value_at_quantile(0.90),
        "p99": h.value_at_quantile(0.99),
        "p99_9": h.value_at_quantile(0.999),
        "max": h.max(),
        "mean": (h.mean() * 10.0).round() / 10.0,
        "min": h.min(),
        "count": h.len(),
    })
}

fn summarize(
    shared: &Shared,
    args: &LoadArgs,
    o: &Outcome,
    threads: usize,
    highest: u64,
) -> Result<Value> {
    let exclude_warmup = o.elapsed >= WARMUP_MIN_RUN;
    let mut by_kind = [new_hist(highest)?, new_hist(highest)?, new_hist(highest)?];
    for shard in &shared.shards {
        let h = shard.lock().unwrap_or_else(|p| p.into_inner());
        for (k, acc) in by_kind.iter_mut().enumerate() {
            if let Some(s) = h.steady.get(k) {
                acc.add(s).context("merging histograms")?;
            }
            if !exclude_warmup {
                if let Some(w) = h.warm.get(k) {
                    acc.add(w).context("merging histograms")?;
                }
            }
        }
    }
    let mut all = new_hist(highest)?;
    for h in &by_kind {
        all.add(h).context("merging histograms")?;
    }
    let c = &o.counts;
    let secs = o.elapsed.as_secs_f64();
    let answered = c.ack + c.nak + c.duh;
    let per_s = |n: u64| {
        if secs > 0.0 {
            (n as f64 / secs * 10.0).round() / 10.0
        } else {
            0.0
        }
    };
    let mut kinds = serde_json::Map::new();
    let mut sent_by_kind = serde_json::Map::new();
    for k in Kind::ALL {
        if args.mix.contains(&k) {
            if let Some(h) = by_kind.get(k.index()) {
                kinds.insert(k.name().into(), latency_json(h));
            }
            sent_by_kind.insert(
                k.name().into(),
                json!(c.sent_by_kind.get(k.index()).copied().unwrap_or(0)),
            );
        }
    }
    Ok(json!({
        "frames_per_s": per_s(answered),
        "ack_per_s": per_s(c.ack),
        "sent": c.sent,
        "ack": c.ack,
        "nak": c.nak,
        "duh": c.duh,
        "timeouts": c.timeouts,
        "errors": c.failures.total(),
        "error_kinds": c.failures.to_json(),
        "reconnects": c.reconnects,
        "path_switches": c.path_switches,
        "given_up": c.given_up,
        "fallback": shared.fallback.map(|f| f.to_string()),
        "conns": args.conns,
        "duration_s": (secs * 1000.0).round() / 1000.0,
        "connect_s": (o.connect_time.as_secs_f64() * 1000.0).round() / 1000.0,
        "latency_us": latency_json(&all),
        "latency_us_by_kind": kinds,
        "warmup_excluded_s": if exclude_warmup { WARMUP.as_secs_f64() } else { 0.0 },
        "transport": shared.transport.name(),
        "target": shared.target.to_string(),
        "sources": shared.sources.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "mix": args.mix.iter().map(|k| k.name()).collect::<Vec<_>>(),
        "sent_by_kind": sent_by_kind,
        "accounts": shared.accounts,
        "receiver": shared.receiver,
        "encrypted": shared.key.is_some(),
        "rate_limit": args.rate,
        "timeout_s": args.timeout.as_secs_f64(),
        "threads": threads,
        "interrupted": o.interrupted,
        "panicked_panels": o.panicked,
        "first_connect_error": o.first_connect_error,
    }))
}

fn print_human(s: &Value, o: &Outcome) {
    let g = |path: &[&str]| {
        let mut v = s;
        for p in path {
            v = &v[*p];
        }
        match v {
            Value::Null => "-".to_string(),
            other => other.to_string(),
        }
    };
    let c = &o.counts;
    eprintln!(
        "tocsin load: {} to {}, {} panels, {} s{}",
        s["transport"].as_str().unwrap_or("?"),
        s["target"].as_str().unwrap_or("?"),
        g(&["conns"]),
        g(&["duration_s"]),
        if s["warmup_excluded_s"].as_f64().unwrap_or(0.0) > 0.0 {
            " (latencies of the first 1 s left out)"
        } else {
            ""
        }
    );
    eprintln!(
        "  sent {}  ack {}  nak {}  duh {}  timeouts {}  errors {}  → {} frames/s",
        c.sent,
        c.ack,
        c.nak,
        c.duh,
        c.timeouts,
        c.failures.total(),
        g(&["frames_per_s"])
    );
    eprintln!(
        "  latency µs  p50 {}  p90 {}  p99 {}  p99.9 {}  max {}  mean {}",
        g(&["latency_us", "p50"]),
        g(&["latency_us", "p90"]),
        g(&["latency_us", "p99"]),
        g(&["latency_us", "p99_9"]),
        g(&["latency_us", "max"]),
        g(&["latency_us", "mean"]),
    );
    if let Some(kinds) = s["latency_us_by_kind"].as_object() {
        for k in kinds.keys() {
            eprintln!(
                "    {k:<5} p50 {}  p99 {}  max {}",
                g(&["latency_us_by_kind", k, "p50"]),
                g(&["latency_us_by_kind", k, "p99"]),
                g(&["latency_us_by_kind", k, "max"]),
            );
        }
    }
    if c.failures.total() > 0 {
        eprintln!("  errors by kind: {}", s["error_kinds"]);
    }
    if let Some(f) = s["fallback"].as_str() {
        eprintln!(
            "  fallback {f}: {} path switches, {} frames given up",
            c.path_switches, c.given_up
        );
    }
    if let Some(e) = &o.first_connect_error {
        eprintln!("  first connect error: {e}");
        if e.contains("Too many open files") {
            eprintln!("  hint: raise the open-file limit (ulimit -n) for this shell");
        } else if e.contains("Address not available") || e.contains("Cannot assign") {
            eprintln!("  hint: local ports ran out; add --source 127.0.0.2,127.0.0.3,…");
        }
    }
}
