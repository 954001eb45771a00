//! The NATS JetStream sink: every event in the journal, published once per id, to a
//! single server or a cluster, over TLS and with credentials when configured.
//!
//! The journal, not JetStream, is the durability point (a PubAck is not an fsync in
//! nats-server 2.9); this task only moves what is already durable. On any failure it
//! reconnects (to any configured server) and publishes again from its cursor; the
//! `Nats-Msg-Id` header (the event id) lets the stream's duplicate window drop what had
//! already landed. Per-account order holds because one connection publishes in journal
//! order and a retry restarts from the first unacknowledged record. After each connection
//! it also publishes again the last `republish_window` of records it had already
//! published, so a server that lost what it acknowledged gets it back (see `publish.rs`).
//!
//! Files: `config.rs` (`[bus.nats]`), `connect.rs` ([`connect`], the one way to the bus
//! for every part of tocsin), `stream.rs` (find or create the stream, never change it),
//! `publish.rs` (one connection's publishing), `route.rs` (subjects), `status.rs` (what
//! the operator sees). Reception never waits on any of it (design invariant 2).

mod config;
mod connect;
mod publish;
mod route;
mod status;
mod stream;

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

pub use config::{redact, AuthKind, NatsConfig};
pub use connect::{connect, server_addrs, BusError, EventHook, Hooks};
pub use route::token;
pub use status::{BusMetrics, BusStatus, StreamView};

use super::SinkMetrics;
use crate::journal::{CursorStore, JournalHandle, Lsn};
use crate::throttle::{Throttle, Verdict};

/// The cursor name of this sink in the journal.
pub const CURSOR: &str = "nats";

/// Retry delays: short while an outage is young (a cluster elects a new leader within
/// seconds, and each second of delay is a second of alarms not on the consoles), longer
/// once it has lasted.
const FIRST_RETRY: Duration = Duration::from_millis(100);
const YOUNG_OUTAGE: Duration = Duration::from_secs(30);
const YOUNG_MAX_RETRY: Duration = Duration::from_millis(500);
const MAX_RETRY: Duration = Duration::from_secs(5);
/// At most one line per kind of failure in this many seconds; the next one counts the
/// lines left out.
const LOG_PERIOD_S: u64 = 30;

/// Why one connection's publishing stopped (it is retried).
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    #[error("{0}")]
    Connect(#[from] BusError),
    #[error("stream {stream}: {detail}")]
    Stream { stream: String, detail: String },
    #[error("publish: {0}")]
    Publish(String),
    #[error("journal: {0}")]
    Journal(#[from] crate::journal::JournalError),
    #[error("sink thread: {0}")]
    Thread(#[from] std::io::Error),
}

impl ForwardError {
    fn kind(&self) -> usize {
        match self {
            ForwardError::Connect(e) => match e.kind() {
                "config" => 0,
                "auth" => 1,
                "tls" => 2,
                _ => 3,
            },
            ForwardError::Stream { .. } => 4,
            ForwardError::Publish(_) => 5,
            ForwardError::Journal(_) | ForwardError::Thread(_) => 6,
        }
    }
}

/// What the sink works with, for the length of the daemon.
pub(super) struct Sink {
    journal: JournalHandle,
    config: NatsConfig,
    client_name: String,
    cursors: CursorStore,
    metrics: Arc<SinkMetrics>,
    bus: Arc<BusStatus>,
    shutdown: CancellationToken,
}

/// Runs the sink until `shutdown`, reconnecting after failures. `client_name` is shown in
/// the servers' monitoring (the receiver's name is a good one); `bus` receives what the
/// operator should see.
///
/// On a thread of its own, like the JSON-lines sink (see [`super::on_own_thread`]): the
/// client's connection task and the publishing loop then share that thread's runtime, not
/// the connections' workers, and the sink keeps up with reception under load.
pub async fn run(
    journal: JournalHandle,
    config: NatsConfig,
    client_name: String,
    metrics: Arc<SinkMetrics>,
    bus: Arc<BusStatus>,
    shutdown: CancellationToken,
) -> Result<(), ForwardError> {
    super::on_own_thread(CURSOR, move || {
        run_here(journal, config, client_name, metrics, bus, shutdown)
    })
    .await
}

async fn run_here(
    journal: JournalHandle,
    config: NatsConfig,
    client_name: String,
    metrics: Arc<SinkMetrics>,
    bus: Arc<BusStatus>,
    shutdown: CancellationToken,
) -> Result<(), ForwardError> {
    for warning in config.file_warnings() {
        tracing::warn!(sink = "nats", "{warning}");
    }
    let sink = Sink {
        cursors: CursorStore::open(journal.data_dir())?,
        journal,
        config,
        client_name,
        metrics,
        bus,
        shutdown,
    };
    let acked = sink.cursors.load_cursor(CURSOR)?.unwrap_or(0);
    let mut progress = publish::Progress {
        acked,
        stored: acked,
        connected: false,
    };
    // One line a minute for each kind of failure, with the count of retries since: a bus
    // down for hours says so once a minute, not at every retry.
    let budgets: [Throttle; 7] = std::array::from_fn(|_| Throttle::per_minute(1));
    let mut backoff = FIRST_RETRY;
    let mut outage_since: Option<Instant> = None;
    loop {
        sink.metrics.connected.set(0);
        set_backlog(&sink.journal, progress.acked, &sink.metrics);
        progress.connected = false;
        let outcome = publish::connection(&sink, &mut progress).await;
        sink.metrics.connected.set(0);
        if progress.acked != progress.stored {
            sink.cursors.store_cursor(CURSOR, progress.acked)?;
            progress.stored = progress.acked;
        }
        let error = match outcome {
            Ok(()) => {
                sink.bus.disconnected(None);
                return Ok(());
            }
            Err(e) => e,
        };
        sink.metrics.errors.inc();
        sink.bus.disconnected(Some(error.to_string()));
        if progress.connected || outage_since.is_none() {
            // The bus was reachable until now: a new outage, retried from the shortest step.
            outage_since = Some(Instant::now());
            backoff = FIRST_RETRY;
        }
        let verdict = budgets
            .get(error.kind())
            .map_or(Verdict::Log { suppressed: 0 }, |b| {
                b.check(unix_secs() / LOG_PERIOD_S)
            });
        if let Verdict::Log { suppressed } = verdict {
            let backlog = sink.metrics.backlog.get();
            tracing::warn!(sink = "nats", error = %error, backlog, retry_in_ms = backoff.as_millis() as u64, suppressed, "bus unavailable; events stay in the journal and will be published");
        }
        // While disconnected the backlog still grows with every frame received: keep the
        // gauge current, it is what an operator watches during an outage.
        let wait = tokio::time::sleep(backoff);
        tokio::pin!(wait);
        let mut refresh = tokio::time::interval(Duration::from_millis(250));
        loop {
            tokio::select! {
                _ = &mut wait => break,
                _ = refresh.tick() => set_backlog(&sink.journal, progress.acked, &sink.metrics),
                _ = sink.shutdown.cancelled() => return Ok(()),
            }
        }
        let young = outage_since.is_some_and(|t| t.elapsed() < YOUNG_OUTAGE);
        backoff = (backoff * 2).min(if young { YOUNG_MAX_RETRY } else { MAX_RETRY });
    }
}

fn set_backlog(journal: &JournalHandle, acked: Lsn, metrics: &SinkMetrics) {
    metrics
        .backlog
        .set(journal.durable_lsn().saturating_sub(acked) as i64);
}

fn unix_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
