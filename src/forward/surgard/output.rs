//! One automation output at work: the task that tails the journal from the output's own
//! cursor, turns events into packets ([`super::packet`]), keeps the connection to the
//! automation computer (dialling it, or waiting for it), and drives the delivery state
//! machine ([`super::link`]) with the socket's bytes and the clock.
//!
//! The cursor moves only past records whose packets were all acknowledged (or set aside),
//! and is stored every half second and at shutdown: after a restart of either side
//! delivery resumes at the first record not fully acknowledged (at least once: packets of
//! that record already acknowledged go again). The journal is the buffer: while the
//! automation is away nothing is read ahead beyond a small queue, and reception never
//! waits on this task.

use std::sync::Arc;
use std::time::{Duration, Instant};

use compact_str::CompactString;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use super::codes::SET_ASIDE;
use super::config::{Endpoint, OutputSpec};
use super::link::{Link, LinkEvent};
use super::packet::{self, Notes};
use super::set_aside::Refused;
use super::source;
use super::watch::OutputState;
use crate::journal::{CursorStore, JournalError, JournalHandle, JournalReader, Lsn, Record};
use crate::ops::throttle::{Throttle, Verdict};
use crate::protocol::text::escape;
use crate::receiver::event::rfc3339;
use crate::receiver::event_id::EventId;
use crate::receiver::record::JournalRecord;
use crate::station::micros;

/// Packets read ahead of the one in flight: enough to keep the link busy, small enough
/// that an absent automation costs no memory (the journal holds the rest).
const QUEUE_TARGET: usize = 256;
/// Below this many queued packets the journal is read again.
const QUEUE_LOW: usize = 64;
/// How often the cursor is made durable while packets are acknowledged back to back.
const CURSOR_EVERY: Duration = Duration::from_millis(500);
/// ... and once the queue is empty (alarms one by one, the usual traffic), sooner: fewer
/// packets go twice after a crash, for at most five cursor syncs a second.
const CURSOR_IDLE: Duration = Duration::from_millis(200);
/// A dial that takes longer than this failed.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// A packet the automation does not take off the socket within this time ends the
/// connection (its receive buffer is full: it is not reading).
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
const BACKOFF_MIN: Duration = Duration::from_millis(200);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// Why an output stopped for good (it retries everything else).
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    #[error("journal cursors: {0}")]
    Cursor(#[from] JournalError),
}

/// What travels with each packet through the link.
#[derive(Debug)]
struct Token {
    lsn: Lsn,
    /// The last packet of its record: once settled, the cursor may pass the record.
    last: bool,
    event_id: EventId,
    account: CompactString,
    /// The packet reports an earlier set-aside: if it is refused too, it is not journaled
    /// again (no loop of reports about reports).
    reports_set_aside: bool,
}

/// Per-minute and per-second budgets of this output's repeated log lines.
struct Logs {
    down: Throttle,
    up: Throttle,
    refused: Throttle,
    set_aside: Throttle,
    skipped: Throttle,
}

fn unix_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A budget of one line a minute: the throttle counts in whatever unit it is given.
fn once_a_minute(t: &Throttle) -> Verdict {
    t.check(unix_secs() / 60)
}

struct Output {
    spec: OutputSpec,
    journal: JournalHandle,
    state: Arc<OutputState>,
    receiver: String,
    cursors: CursorStore,
    reader: JournalReader,
    journal_open: bool,
    link: Link<Token>,
    conn: Option<TcpStream>,
    /// Last record whose packets are queued, and last one fully settled.
    read_lsn: Lsn,
    acked: Lsn,
    stored: Lsn,
    last_store: Instant,
    scratch: Vec<Vec<u8>>,
    logs: Logs,
    /// Wait before the next dial (or bind); back to the shortest once the automation
    /// answers, so a peer that accepts and hangs up at once is not dialled in a loop.
    backoff: Duration,
}

/// Runs the output until `shutdown`; then stores its cursor.
pub async fn run(
    spec: OutputSpec,
    journal: JournalHandle,
    state: Arc<OutputState>,
    receiver: String,
    shutdown: CancellationToken,
) -> Result<(), OutputError> {
    let cursors = CursorStore::open(journal.data_dir())?;
    let cursor = spec.cursor();
    // The daemon registers the cursor before frames can arrive; a missing one still
    // starts at the end of the journal, as every sink does.
    let acked = match cursors.load_cursor(&cursor)? {
        Some(lsn) => lsn,
        None => journal.durable_lsn(),
    };
    let mut reader = journal.reader();
    reader.seek(acked + 1);
    let link = Link::new(spec.timing, spec.format.heartbeat());
    let mut out = Output {
        journal,
        state,
        receiver,
        cursors,
        reader,
        journal_open: true,
        link,
        conn: None,
        read_lsn: acked,
        acked,
        stored: acked,
        last_store: Instant::now(),
        scratch: Vec::new(),
        backoff: BACKOFF_MIN,
        logs: Logs {
            down: Throttle::new(1),
            up: Throttle::new(1),
            refused: Throttle::new(1),
            set_aside: Throttle::new(5),
            skipped: Throttle::new(5),
        },
        spec,
    };
    out.state
        .set_link(false, &rfc3339(time::UtcDateTime::now()));
    tracing::info!(output = %out.spec.name, mode = out.spec.endpoint.mode(), address = %out.spec.endpoint.address(), from_lsn = acked + 1, "automation output started");
    let result = out.serve(&shutdown).await;
    out.store_cursor().await;
    result
}

impl Output {
    async fn serve(&mut self, shutdown: &CancellationToken) -> Result<(), OutputError> {
        let mut listener: Option<TcpListener> = None;
        let mut next_try = Instant::now();
        let mut journal_retry = Instant::now();
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        let mut buf = vec![0u8; 4096];
        loop {
            self.fill(&mut journal_retry);
            self.transmit().await;
            self.settle().await;
            if self.conn.is_none() && self.link.is_connected() {
                self.link.disconnected();
                self.settle().await;
            }
            let deadline = self.link.poll_timeout().map(tokio::time::Instant::from_std);
            let can_wait_journal = self.journal_open
                && self.link.queued() < QUEUE_LOW
                && Instant::now() >= journal_retry;
            let listening = matches!(self.spec.endpoint, Endpoint::Listen(_));
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => return Ok(()),
                r = read_some(&mut self.conn, &mut buf) => match r {
                    Ok(n) if n > 0 => {
                        self.link.handle_input(buf.get(..n).unwrap_or_default(), Instant::now());
                    }
                    Ok(_) => self.lost("closed by the automation".into()),
                    Err(e) => self.lost(e.to_string()),
                },
                _ = sleep_until(deadline), if deadline.is_some() => {
                    self.link.handle_timeout(Instant::now());
                }
                r = self.reader.next_wait(), if can_wait_journal => match r {
                    Ok(Some(rec)) => self.queue_record(rec),
                    Ok(None) => self.journal_open = false,
                    Err(e) => {
                        tracing::error!(output = %self.spec.name, error = %e, "automation output cannot read the journal; retrying");
                        journal_retry = Instant::now() + Duration::from_secs(1);
                    }
                },
                accepted = accept(&listener), if listening && listener.is_some() => {
                    if let Ok((stream, peer)) = accepted {
                        self.accepted(stream, peer.to_string());
                    }
                }
                _ = tokio::time::sleep_until(tokio::time::Instant::from_std(next_try)),
                    if self.conn.is_none() && (!listening || listener.is_none()) =>
                {
                    match &self.spec.endpoint {
                        Endpoint::Connect(addr) => {
                            let addr = addr.clone();
                            let dialled = tokio::select! {
                                _ = shutdown.cancelled() => return Ok(()),
                                r = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(&addr)) => r,
                            };
                            match dialled {
                                Ok(Ok(stream)) => {
                                    let peer = stream.peer_addr().map(|p| p.to_string()).unwrap_or(addr);
                                    self.opened(stream, peer);
                                }
                                Ok(Err(e)) => self.down_while_away(&format!("connect {addr}: {e}")),
                                Err(_) => self.down_while_away(&format!("connect {addr}: no answer within {}s", CONNECT_TIMEOUT.as_secs())),
                            }
                        }
                        Endpoint::Listen(addr) => match TcpListener::bind(addr).await {
                            Ok(l) => {
                                tracing::info!(output = %self.spec.name, %addr, "automation output listening");
                                listener = Some(l);
                            }
                            Err(e) => self.down_while_away(&format!("listen {addr}: {e}")),
                        },
                    }
                    next_try = Instant::now() + self.backoff;
                    self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
                }
                _ = tick.tick() => {}
            }
            self.state.metrics.backlog.set(
                i64::try_from(self.journal.durable_lsn().saturating_sub(self.acked))
                    .unwrap_or(i64::MAX),
            );
            let since = self.last_store.elapsed();
            let due = since >= CURSOR_EVERY || (self.link.is_idle() && since >= CURSOR_IDLE);
            if self.acked != self.stored && due {
                self.store_cursor().await;
            }
        }
    }

    /// Reads what is durable into the queue, without waiting, up to [`QUEUE_TARGET`].
    fn fill(&mut self, journal_retry: &mut Instant) {
        while self.journal_open
            && self.link.queued() < QUEUE_TARGET
            && Instant::now() >= *journal_retry
        {
            match self.reader.next_record() {
                Ok(Some(rec)) => self.queue_record(rec),
                Ok(None) => break,
                Err(e) => {
                    tracing::error!(output = %self.spec.name, error = %e, "automation output cannot read the journal; retrying");
                    *journal_retry = Instant::now() + Duration::from_secs(1);
                }
            }
        }
    }

    /// The packets of one record, into the link's queue.
    fn queue_record(&mut self, rec: Record) {
        self.read_lsn = rec.lsn;
        let events = match source::events(&rec.payload) {
            Ok(e) => e,
            Err(e) => {
                if let Verdict::Log { suppressed } = self.logs.skipped.check(unix_secs()) {
                    tracing::warn!(output = %self.spec.name, lsn = rec.lsn, error = %e, suppressed, "journal record is not a receiver record; nothing to send for it");
                }
                Vec::new()
            }
        };
        let mut packets: Vec<(Vec<u8>, Token)> = Vec::new();
        for e in source::senders(&events) {
            self.scratch.clear();
            let notes =
                packet::write_event(e, &self.spec.format, &self.spec.map, &mut self.scratch);
            self.count(notes);
            let reports_set_aside = e.protocol == "tocsin" && e.code == SET_ASIDE;
            for p in self.scratch.drain(..) {
                let token = Token {
                    lsn: rec.lsn,
                    last: false,
                    event_id: e.id.clone(),
                    account: e.account.clone(),
                    reports_set_aside,
                };
                packets.push((p, token));
            }
        }
        if let Some((_, t)) = packets.last_mut() {
            t.last = true;
        } else if self.link.is_idle() {
            self.acked = rec.lsn;
        }
        for (p, t) in packets {
            self.link.push(p, t);
        }
    }

    fn count(&self, notes: Notes) {
        let m = &self.state.metrics;
        if notes.unmapped {
            m.unmapped.inc();
        }
        if notes.split {
            m.split.inc();
        }
        if notes.truncated {
            m.truncated.inc();
        }
    }

    /// Writes what the link wants written.
    async fn transmit(&mut self) {
        loop {
            let Some(conn) = self.conn.as_mut() else {
                return;
            };
            let Some(bytes) = self.link.poll_transmit(Instant::now()) else {
                return;
            };
            match tokio::time::timeout(WRITE_TIMEOUT, conn.write_all(bytes)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => self.lost(e.to_string()),
                Err(_) => self.lost(format!(
                    "a packet was not taken within {}s",
                    WRITE_TIMEOUT.as_secs()
                )),
            }
        }
    }

    /// Acts on what the link says happened.
    async fn settle(&mut self) {
        while let Some(ev) = self.link.poll_event() {
            let m = &self.state.metrics;
            match ev {
                LinkEvent::Delivered { token, latency } => {
                    m.delivered.inc();
                    m.ack_latency.observe(latency.as_secs_f64());
                    if token.last {
                        self.acked = token.lsn;
                    }
                }
                LinkEvent::SetAside {
                    token,
                    packet,
                    naks,
                } => {
                    m.set_aside.inc();
                    self.set_aside(&token, &packet, naks).await;
                    if token.last {
                        self.acked = token.lsn;
                    }
                }
                LinkEvent::Nak { .. } => m.naks.inc(),
                LinkEvent::Timeout => m.timeouts.inc(),
                LinkEvent::HeartbeatAnswered => m.heartbeats.inc(),
                LinkEvent::Stray => {
                    tracing::debug!(output = %self.spec.name, "answer from the automation with no packet waiting; ignored")
                }
                LinkEvent::Up => {
                    self.state
                        .set_link(true, &rfc3339(time::UtcDateTime::now()));
                    if let Verdict::Log { suppressed } = once_a_minute(&self.logs.up) {
                        tracing::info!(output = %self.spec.name, address = %self.spec.endpoint.address(), suppressed, "automation link up");
                    }
                }
                LinkEvent::Down => {
                    self.state
                        .set_link(false, &rfc3339(time::UtcDateTime::now()));
                    self.log_down("the automation does not answer");
                }
                LinkEvent::Hangup => {
                    self.lost(format!(
                        "no answer to {} packets in a row",
                        super::link::SILENCE_LIMIT
                    ));
                }
            }
        }
        if self.link.is_idle() {
            self.acked = self.read_lsn;
        }
    }

    /// Journals the set-aside as an internal event (it reaches the bus and, as a Contact
    /// ID packet on `own_account`, the automation itself).
    async fn set_aside(&mut self, token: &Token, packet: &[u8], naks: u32) {
        let shown = escape(packet);
        if let Verdict::Log { suppressed } = self.logs.set_aside.check(unix_secs()) {
            tracing::error!(output = %self.spec.name, account = %token.account, event = token.event_id.as_str(), packet = %shown, naks, suppressed, "automation refused a packet every time; set aside");
        }
        if token.reports_set_aside {
            return;
        }
        let now = time::UtcDateTime::now();
        let refused = Refused {
            receiver: &self.receiver,
            output: &self.spec.name,
            account: &token.account,
            event_id: token.event_id.as_str(),
            packet,
            naks,
        };
        let record = JournalRecord::internal(rfc3339(now), vec![refused.event(now)]).into_bytes();
        if let Err(e) = self.journal.append(micros(now), record).await {
            tracing::error!(output = %self.spec.name, error = %e, "the set-aside event could not be journaled");
        }
    }

    fn opened(&mut self, stream: TcpStream, peer: String) {
        let _ = stream.set_nodelay(true);
        self.state.metrics.opened.inc();
        self.state.set_peer(Some(peer.clone()));
        tracing::debug!(output = %self.spec.name, %peer, "automation connection open");
        self.conn = Some(stream);
        self.link.connected(Instant::now());
    }

    /// A connection came in while listening.
    fn accepted(&mut self, stream: TcpStream, peer: String) {
        if self.conn.is_some() && self.link.is_up() {
            self.state.metrics.refused.inc();
            if let Verdict::Log { suppressed } = self.logs.refused.check(unix_secs()) {
                tracing::warn!(output = %self.spec.name, %peer, suppressed, "second automation connection refused: one at a time, and the current one answers");
            }
            drop(stream);
            return;
        }
        if self.conn.is_some() {
            self.lost(format!("replaced by a new connection from {peer}"));
            self.link.disconnected();
        }
        self.opened(stream, peer);
    }

    /// The connection is gone (or given up).
    fn lost(&mut self, why: String) {
        if self.conn.take().is_some() {
            self.state.metrics.lost.inc();
            self.state.set_peer(None);
            self.state.set_error(why.clone());
            self.log_down(&why);
        }
    }

    /// No connection could be made.
    fn down_while_away(&mut self, why: &str) {
        self.state.set_error(why.to_string());
        self.log_down(why);
    }

    fn log_down(&self, why: &str) {
        if let Verdict::Log { suppressed } = once_a_minute(&self.logs.down) {
            let backlog = self.journal.durable_lsn().saturating_sub(self.acked);
            tracing::warn!(output = %self.spec.name, address = %self.spec.endpoint.address(), reason = why, backlog_records = backlog, suppressed, "automation link down; alarms wait in the journal");
        }
    }

    async fn store_cursor(&mut self) {
        if self.acked == self.stored {
            return;
        }
        let cursors = self.cursors.clone();
        let name = self.spec.cursor();
        let lsn = self.acked;
        let stored = tokio::task::spawn_blocking(move || cursors.store_cursor(&name, lsn)).await;
        match stored {
            Ok(Ok(())) => self.stored = lsn,
            Ok(Err(e)) => {
                tracing::error!(output = %self.spec.name, error = %e, "automation cursor not stored")
            }
            Err(e) => {
                tracing::error!(output = %self.spec.name, error = %e, "automation cursor not stored")
            }
        }
        self.last_store = Instant::now();
    }
}

/// Reads from the connection if there is one; pending forever otherwise.
async fn read_some(conn: &mut Option<TcpStream>, buf: &mut [u8]) -> std::io::Result<usize> {
    match conn {
        Some(c) => c.read(buf).await,
        None => std::future::pending().await,
    }
}

async fn accept(
    listener: &Option<TcpListener>,
) -> std::io::Result<(TcpStream, std::net::SocketAddr)> {
    match listener {
        Some(l) => l.accept().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
