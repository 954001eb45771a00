//! `tocsin run`: wires the parts together and owns their lifecycle.
//!
//! Start: metrics → journal (recovery of a torn tail) → dedup window rebuilt from the
//! journal tail → listeners bound → sinks started → READY. Stop (the token fires):
//! listeners stop accepting → connections finish the frame they are answering (fsync and
//! reply included) → the journal syncs and closes → sinks drain what is durable and store
//! their cursors. Reload (SIGHUP): the configuration file is read and checked again;
//! accounts, keys and timestamp rules are swapped in atomically; connections stay open; a
//! bad file leaves the running configuration as it was, with the reason in the log.
//! Listeners, data directory and HTTP address are not reloaded (a restart changes them).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use tokio::sync::{mpsc, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::journal::{Journal, JournalConfig, JournalHandle, RetentionPolicy};
use crate::net::{tcp, udp};
use crate::ops::config::{Config, ConfigError, Settings};
use crate::ops::http::{self, Probe};
use crate::ops::metrics::Metrics;
use crate::ops::systemd;
use crate::receiver::dedup::Dedup;
use crate::receiver::event::ContentKey;
use crate::station::{micros, Station};

/// What the command line overrides in the configuration file.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub listen: Vec<SocketAddr>,
    pub data_dir: Option<PathBuf>,
    pub http: Option<SocketAddr>,
    /// `--nats URL`: publish to NATS JetStream (stream and subjects from the file or the
    /// defaults).
    pub nats: Option<String>,
}

/// Why the daemon could not start or stopped badly.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("configuration: {0}")]
    Config(#[from] ConfigError),
    #[error("journal: {0}")]
    Journal(#[from] crate::journal::JournalError),
    #[error("cannot listen on {addr} ({transport}): {source}")]
    Bind {
        addr: SocketAddr,
        transport: &'static str,
        source: std::io::Error,
    },
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    #[error("cannot create data directory {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Loads the configuration: the file if given, else the defaults; then the overrides.
pub fn load(
    path: Option<&std::path::Path>,
    overrides: &Overrides,
) -> Result<Settings, ConfigError> {
    let mut config = match path {
        Some(p) => Config::from_file(p)?,
        None => Config::default_run(),
    };
    apply(&mut config, overrides);
    config.resolve()
}

fn apply(config: &mut Config, o: &Overrides) {
    if !o.listen.is_empty() {
        config.listen = o
            .listen
            .iter()
            .map(|a| crate::ops::config::Listen {
                address: *a,
                transport: crate::ops::config::Transports::Both,
            })
            .collect();
    }
    if let Some(d) = &o.data_dir {
        config.receiver.data_dir = d.clone();
    }
    if let Some(h) = o.http {
        config.http.address = Some(h);
    }
    if let Some(url) = &o.nats {
        match &mut config.bus.nats {
            Some(n) => n.url = url.clone(),
            None => config.bus.nats = Some(crate::forward::nats::NatsConfig::with_url(url)),
        }
    }
}

/// The addresses actually bound, for tests and logs.
#[derive(Debug, Clone, Default)]
pub struct Bound {
    pub tcp: Vec<SocketAddr>,
    pub udp: Vec<SocketAddr>,
    pub http: Option<SocketAddr>,
}

struct Health {
    listening: AtomicBool,
    journal: JournalHandle,
    metrics: Arc<Metrics>,
    station: Arc<Station>,
    bound: Bound,
    started: Instant,
}

impl Probe for Health {
    fn metrics(&self) -> Vec<u8> {
        self.metrics.dedup_keys.set(self.station.dedup.len() as i64);
        self.metrics.render()
    }

    fn ready(&self) -> Result<(), String> {
        if !self.listening.load(Ordering::Acquire) {
            return Err("listeners are not bound yet".into());
        }
        if self.journal.stats().poisoned() {
            return Err("journal write failed; restart needed".into());
        }
        Ok(())
    }

    fn status(&self) -> serde_json::Value {
        let settings = self.station.settings.load();
        let stats = self.journal.stats();
        serde_json::json!({
            "receiver": settings.config.receiver.id,
            "version": env!("CARGO_PKG_VERSION"),
            "uptime_seconds": self.started.elapsed().as_secs(),
            "ready": self.ready().is_ok(),
            "listeners": {
                "tcp": self.bound.tcp.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
                "udp": self.bound.udp.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
            },
            "journal": {
                "writable": !stats.poisoned(),
                "durable_lsn": stats.durable_lsn(),
                "records": stats.records(),
                "bytes_written": stats.bytes(),
                "last_fsync_ms": stats.last_fsync().as_secs_f64() * 1000.0,
            },
            "accounts": settings.accounts.len(),
            "dedup_keys": self.station.dedup.len(),
            "connections_open": self.metrics.connections_open.get(),
        })
    }
}

/// Runs the daemon until `shutdown` fires. `reload` delivers SIGHUP. `on_bound` is told
/// the bound addresses once listening (tests use it to learn ephemeral ports).
pub async fn run(
    config_path: Option<PathBuf>,
    overrides: Overrides,
    shutdown: CancellationToken,
    mut reload: mpsc::Receiver<()>,
    on_bound: Option<tokio::sync::oneshot::Sender<Bound>>,
) -> Result<(), DaemonError> {
    let settings = load(config_path.as_deref(), &overrides)?;
    let config = settings.config.clone();
    if config.is_default {
        tracing::warn!("no configuration file: accepting frames from ANY account in clear (encrypted frames get a NAK: no keys are configured); do not run a station like this");
    } else if settings.accounts.unknown == crate::receiver::accounts::UnknownPolicy::Accept {
        tracing::warn!(
            "frames from unknown accounts are accepted ([accounts] unknown = \"accept\")"
        );
    }
    let metrics = Arc::new(Metrics::new()?);
    let data_dir = config.receiver.data_dir.clone();
    std::fs::create_dir_all(&data_dir).map_err(|source| DaemonError::DataDir {
        path: data_dir.clone(),
        source,
    })?;

    // Journal, with its batches feeding the metrics.
    let mut jconfig = JournalConfig::new(&data_dir);
    jconfig.segment_size = config.journal.segment_size;
    let m = Arc::clone(&metrics);
    jconfig.observer = Some(Arc::new(move |b: &crate::journal::BatchStats| {
        m.journal_fsync.observe(b.fsync.as_secs_f64());
        m.journal_batch.observe(b.records as f64);
        m.journal_bytes.inc_by(b.bytes as u64);
    }));
    let (journal, report) = Journal::open(jconfig)?;
    tracing::info!(data_dir = %data_dir.display(), durable_lsn = journal.durable_lsn(), report = ?report, "journal open");
    let handle = journal.handle();

    let dedup = Dedup::new(config.dedup.window);
    let rebuilt = rebuild_dedup(&handle, &dedup, config.dedup.window);
    tracing::info!(
        keys = rebuilt,
        window_s = config.dedup.window.as_secs(),
        "dedup window rebuilt from the journal"
    );

    let station = Arc::new(Station {
        settings: ArcSwap::from_pointee(settings),
        journal: handle.clone(),
        dedup,
        metrics: Arc::clone(&metrics),
    });

    // Sinks without a cursor start at the current end of the journal; the cursor is made
    // now, before any frame can arrive, so nothing received from here on is skipped.
    let mut sink_names = Vec::new();
    if config.stdout_events() {
        sink_names.push("stdout");
    }
    if config.output.file.is_some() {
        sink_names.push("file");
    }
    if config.bus.nats.is_some() {
        sink_names.push(crate::forward::nats::CURSOR);
    }
    let cursors = crate::journal::CursorStore::open(&data_dir)?;
    for name in &sink_names {
        if cursors.load_cursor(name)?.is_none() {
            cursors.store_cursor(name, handle.durable_lsn())?;
        }
    }

    // Listeners. Any bind failure stops the start: a receiver missing a port it was told
    // to serve would leave panels failing over without anyone knowing why.
    let accept_stop = shutdown.child_token();
    let tracker = TaskTracker::new();
    let slots = Arc::new(Semaphore::new(config.limits.max_connections));
    let peers = Arc::new(tcp::PeerCounts::default());
    let mut bound = Bound::default();
    let mut servers = Vec::new();
    for l in config.listeners() {
        if l.transport.tcp() {
            let listener = bind_tcp(l.address).map_err(|source| DaemonError::Bind {
                addr: l.address,
                transport: "tcp",
                source,
            })?;
            bound.tcp.push(listener.local_addr().unwrap_or(l.address));
            let ctx = tcp::TcpContext {
                station: Arc::clone(&station),
                limits: config.limits.clone(),
                slots: Arc::clone(&slots),
                peers: Arc::clone(&peers),
                shutdown: accept_stop.clone(),
                tracker: tracker.clone(),
            };
            servers.push(tokio::spawn(tcp::serve(listener, ctx)));
            metrics.listeners.with_label_values(&["tcp"]).inc();
        }
        if l.transport.udp() {
            let socket = bind_udp(l.address).map_err(|source| DaemonError::Bind {
                addr: l.address,
                transport: "udp",
                source,
            })?;
            bound.udp.push(socket.local_addr().unwrap_or(l.address));
            servers.push(tokio::spawn(udp::serve(
                socket,
                Arc::clone(&station),
                accept_stop.clone(),
                tracker.clone(),
            )));
            metrics.listeners.with_label_values(&["udp"]).inc();
        }
    }

    let http_stop = CancellationToken::new();
    let http_addr = config.http_address();
    let health = Arc::new(Health {
        listening: AtomicBool::new(false),
        journal: handle.clone(),
        metrics: Arc::clone(&metrics),
        station: Arc::clone(&station),
        bound: bound.clone(),
        started: Instant::now(),
    });
    match http::bind(http_addr).await {
        Ok(l) => {
            bound.http = l.local_addr().ok();
            tokio::spawn(http::serve(
                l,
                health.clone() as Arc<dyn Probe>,
                http_stop.clone(),
            ));
        }
        // Metrics are for operators, not panels: a taken port is logged, not fatal.
        Err(e) => tracing::error!(addr = %http_addr, error = %e, "cannot serve HTTP endpoints"),
    }

    // Sinks.
    let sink_stop = CancellationToken::new();
    let mut sinks = Vec::new();
    if config.stdout_events() {
        let h = handle.clone();
        let stop = sink_stop.clone();
        let m = metrics.sink("stdout");
        sinks.push(tokio::spawn(async move {
            let out = Box::new(tokio::io::stdout());
            if let Err(e) = crate::forward::jsonl::run(h, "stdout", out, m, stop).await {
                tracing::error!(error = %e, "stdout sink stopped");
            }
        }));
    }
    if let Some(path) = &config.output.file {
        let file = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .await;
        match file {
            Ok(f) => {
                let m = metrics.sink("file");
                let h = handle.clone();
                let stop = sink_stop.clone();
                sinks.push(tokio::spawn(async move {
                    let out = tokio::io::BufWriter::new(f);
                    if let Err(e) =
                        crate::forward::jsonl::run(h, "file", Box::new(out), m, stop).await
                    {
                        tracing::error!(error = %e, "file sink stopped");
                    }
                }));
            }
            Err(e) => {
                tracing::error!(path = %path.display(), error = %e, "cannot open the events file")
            }
        }
    }

    if let Some(nats) = config.bus.nats.clone() {
        let h = handle.clone();
        let stop = sink_stop.clone();
        let m = Arc::new(metrics.sink("nats"));
        sinks.push(tokio::spawn(async move {
            if let Err(e) = crate::forward::nats::run(h, nats, m, stop).await {
                tracing::error!(error = %e, "NATS sink stopped");
            }
        }));
    }

    // Retention: whole segments, never past what a sink has not written yet.
    let retention_stop = shutdown.child_token();
    let retention_policy = RetentionPolicy {
        max_bytes: Some(config.journal.max_bytes),
        max_age_micros: i64::try_from(config.journal.max_age.as_micros()).ok(),
        allow_unpublished_deletion: config.journal.allow_unpublished_deletion,
    };
    let retention_dir = data_dir.clone();
    let retention = tokio::spawn(async move {
        let mut r = match crate::journal::Retention::new(&retention_dir) {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "retention disabled");
                return;
            }
        };
        loop {
            tokio::select! {
                _ = retention_stop.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_secs(60)) => {}
            }
            match r.run(&retention_policy, micros(time::UtcDateTime::now())) {
                Ok(rep) if !rep.deleted.is_empty() => tracing::info!(
                    segments = rep.deleted.len(),
                    bytes = rep.deleted_bytes,
                    unpublished = rep.unpublished_records_deleted,
                    "journal retention"
                ),
                Ok(rep) => {
                    if let Some(lsn) = rep.held_by_cursor {
                        tracing::warn!(held_at_lsn = lsn, "journal over its limits but records are not yet forwarded; keeping them");
                    }
                }
                Err(e) => tracing::error!(error = %e, "journal retention failed"),
            }
        }
    });

    health.listening.store(true, Ordering::Release);
    tracing::info!(tcp = ?bound.tcp, udp = ?bound.udp, http = ?bound.http, receiver = %config.receiver.id, "listening");
    systemd::ready(&format!(
        "listening on {} TCP, {} UDP",
        bound.tcp.len(),
        bound.udp.len()
    ));
    if let Some(tx) = on_bound {
        let _ = tx.send(bound.clone());
    }

    let watchdog = systemd::watchdog_interval();
    let mut watchdog_tick =
        tokio::time::interval(watchdog.map_or(Duration::from_secs(3600), |w| w / 2));
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            r = reload.recv() => {
                if r.is_none() {
                    // No reload source any more; keep serving until shutdown.
                    shutdown.cancelled().await;
                    break;
                }
                systemd::reloading();
                match load(config_path.as_deref(), &overrides) {
                    Ok(new) => {
                        let accounts = new.accounts.len();
                        station.settings.store(Arc::new(new));
                        metrics.reloads.with_label_values(&["ok"]).inc();
                        tracing::info!(accounts, "configuration reloaded");
                    }
                    Err(e) => {
                        metrics.reloads.with_label_values(&["failed"]).inc();
                        tracing::error!(error = %e, "configuration reload failed; keeping the running configuration");
                    }
                }
                systemd::ready("reloaded");
            }
            _ = watchdog_tick.tick(), if watchdog.is_some() => {
                if health.ready().is_ok() {
                    systemd::watchdog();
                }
            }
        }
    }

    // Drain.
    systemd::stopping();
    tracing::info!("stopping: no new connections; finishing frames in flight");
    health.listening.store(false, Ordering::Release);
    accept_stop.cancel();
    for s in servers {
        let _ = s.await;
    }
    tracing::debug!("listeners closed");
    tracker.close();
    if tokio::time::timeout(Duration::from_secs(3), tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!("some connections did not finish within 3 s");
    }
    let _ = retention.await;
    tracing::debug!("connections finished");
    drop(station);
    let closed = journal.close().await;
    tracing::debug!("journal closed");
    sink_stop.cancel();
    for s in sinks {
        let _ = tokio::time::timeout(Duration::from_secs(2), s).await;
    }
    http_stop.cancel();
    closed?;
    tracing::info!("stopped");
    Ok(())
}

/// The part of a [`JournalRecord`](crate::receiver::record::JournalRecord) that [`rebuild_dedup`] reads.
#[derive(serde::Deserialize)]
struct KeyOnly<'a> {
    #[serde(borrow, default)]
    key: Option<&'a str>,
}

/// Re-enters the content keys acknowledged within the window, so a panel retrying across a
/// restart still gets a duplicate ACK and no second event.
fn rebuild_dedup(journal: &JournalHandle, dedup: &Dedup, window: Duration) -> usize {
    let now = micros(time::UtcDateTime::now());
    let since = now.saturating_sub(i64::try_from(window.as_micros()).unwrap_or(i64::MAX));
    let mut reader = journal.reader();
    if let Err(e) = reader.seek_time(since) {
        tracing::warn!(error = %e, "cannot read the journal tail; dedup window starts empty");
        return 0;
    }
    let mut n = 0;
    loop {
        match reader.next_record() {
            Ok(Some(rec)) => {
                if rec.ts_micros < since {
                    continue;
                }
                // Only the key is needed: decoding whole records (events included) made
                // this scan most of the start time when the window holds a large backlog.
                let key = serde_json::from_slice::<KeyOnly<'_>>(&rec.payload)
                    .ok()
                    .and_then(|r| r.key)
                    .and_then(ContentKey::from_hex);
                if let Some(k) = key {
                    dedup.insert(k, rec.ts_micros);
                    n += 1;
                }
            }
            Ok(None) => break,
            Err(e) => {
                tracing::warn!(error = %e, "journal tail unreadable; dedup window partial");
                break;
            }
        }
    }
    n
}

fn bind_tcp(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    socket.set_reuse_address(true)?;
    if addr.is_ipv6() {
        socket.set_only_v6(false).ok();
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    // A deep backlog absorbs the reconnect wave after a network outage.
    socket.listen(4096)?;
    tokio::net::TcpListener::from_std(socket.into())
}

fn bind_udp(addr: SocketAddr) -> std::io::Result<tokio::net::UdpSocket> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::DGRAM,
        Some(socket2::Protocol::UDP),
    )?;
    if addr.is_ipv6() {
        socket.set_only_v6(false).ok();
    }
    // Bursts of datagrams wait in the kernel while tasks handle earlier ones.
    let _ = socket.set_recv_buffer_size(4 << 20);
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    tokio::net::UdpSocket::from_std(socket.into())
}
