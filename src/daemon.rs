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
use crate::receiver::record::JournalRecord;
use crate::receiver::supervision::Supervisor;
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
    bound: std::sync::Mutex<Bound>,
    started: Instant,
    automation: Vec<Arc<crate::forward::surgard::OutputState>>,
}

impl Health {
    fn supervision_status(&self) -> serde_json::Value {
        // Every ACKed frame takes this lock: copy out and let go before sorting and
        // rendering, which take a while when a whole station is in failure.
        let (mut failures, paths, failed) = match self.station.supervisor.lock() {
            Ok(s) => (s.failures(), s.paths(), s.failed()),
            Err(_) => return serde_json::Value::Null,
        };
        // Longest in failure first; ties (a whole station silent in the same second) by
        // account and path, so two reads list them alike.
        failures.sort_by(|a, b| (a.2, &a.0, &a.1).cmp(&(b.2, &b.0, &b.1)));
        let when = |secs: u64| {
            time::UtcDateTime::from_unix_timestamp(i64::try_from(secs).unwrap_or(0))
                .map(crate::receiver::event::panel_rfc3339)
                .unwrap_or_default()
        };
        serde_json::json!({
            "paths": paths,
            "failed": failed,
            "sites_in_failure": failures.iter().map(|(account, path, since)| serde_json::json!({
                "account": account, "path": path, "since": when(*since),
            })).collect::<Vec<_>>(),
        })
    }
}

impl Health {
    fn last_hour(&self) -> serde_json::Value {
        let c = self.station.recent.last_hour(unix_now());
        serde_json::json!({
            "frames": c.frames(),
            "ack": c.ack,
            "nak": c.nak,
            "duh": c.duh,
            "none": c.none,
        })
    }
}

impl Probe for Health {
    /// Scans the daemon's own journal (the last 24 h unless told) on a blocking thread,
    /// then overlays what the running supervisor knows of the account's paths.
    fn diag(&self, account: String, since_micros: Option<i64>) -> http::DiagFuture {
        let mut reader = self.journal.reader();
        let station = Arc::clone(&self.station);
        Box::pin(async move {
            let now = micros(time::UtcDateTime::now());
            let since = since_micros.unwrap_or(now.saturating_sub(24 * 3_600 * 1_000_000));
            let acct = account.clone();
            let scanned = tokio::task::spawn_blocking(move || {
                crate::diag::scan_journal(
                    &mut reader,
                    &acct,
                    Some(since),
                    crate::diag::DEFAULT_LAST_FRAMES,
                )
            })
            .await
            .map_err(|e| format!("diagnosis task failed: {e}"))?;
            let mut d = scanned.map_err(|e| e.to_string())?;
            let site = station
                .supervisor
                .lock()
                .map(|s| s.site(&account))
                .unwrap_or_default();
            if !site.is_empty() {
                let when = |secs: u64| {
                    time::UtcDateTime::from_unix_timestamp(i64::try_from(secs).unwrap_or(0))
                        .map(crate::receiver::event::panel_rfc3339)
                        .unwrap_or_default()
                };
                d.paths = site
                    .into_iter()
                    .map(|(path, heard, failed)| {
                        let frames = d
                            .paths
                            .iter()
                            .find(|p| p.path == path)
                            .map_or(0, |p| p.frames);
                        crate::diag::PathSeen {
                            path,
                            last_heard: Some(when(heard).into()),
                            failed_since: failed.map(|f| when(f).into()),
                            frames,
                        }
                    })
                    .collect();
                d.paths_from = "daemon".into();
            }
            serde_json::to_value(&d).map_err(|e| e.to_string())
        })
    }

    fn metrics(&self) -> Vec<u8> {
        // Gauges read at scrape time: cheap, and always current.
        let m = &self.metrics;
        m.dedup_keys.set(self.station.dedup.len() as i64);
        let evicted = self.station.dedup.evicted();
        if let Some(new) = evicted.checked_sub(m.dedup_evicted.get()) {
            m.dedup_evicted.inc_by(new);
        }
        let stats = self.journal.stats();
        m.journal_durable_lsn
            .set(i64::try_from(stats.durable_lsn()).unwrap_or(i64::MAX));
        if let Ok(vfs) = rustix::fs::statvfs(self.journal.data_dir()) {
            let free = vfs.f_bavail.saturating_mul(vfs.f_frsize);
            let total = vfs.f_blocks.saturating_mul(vfs.f_frsize);
            m.journal_disk_free
                .set(i64::try_from(free).unwrap_or(i64::MAX));
            m.journal_disk_total
                .set(i64::try_from(total).unwrap_or(i64::MAX));
        }
        let dir = crate::journal::segment::journal_dir(self.journal.data_dir());
        if let Ok(segments) = crate::journal::segment::list_segments(&dir) {
            let bytes: u64 = segments.iter().map(|s| s.len).sum();
            m.journal_size.set(i64::try_from(bytes).unwrap_or(i64::MAX));
        }
        m.render()
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
        let bound = self.bound.lock().map(|b| b.clone()).unwrap_or_default();
        serde_json::json!({
            "receiver": settings.config.receiver.id,
            "version": env!("CARGO_PKG_VERSION"),
            "uptime_seconds": self.started.elapsed().as_secs(),
            "ready": self.ready().is_ok(),
            "listeners": {
                "tcp": bound.tcp.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
                "udp": bound.udp.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
            },
            "journal": {
                "writable": !stats.poisoned(),
                "durable_lsn": stats.durable_lsn(),
                "records": stats.records(),
                "bytes_written": stats.bytes(),
                "last_fsync_ms": stats.last_fsync().as_secs_f64() * 1000.0,
            },
            "accounts": settings.accounts.len(),
            "supervision": self.supervision_status(),
            "dedup_keys": self.station.dedup.len(),
            "last_hour": self.last_hour(),
            "connections_open": self.metrics.connections_open.get(),
            "automation": self.automation.iter().map(|a| a.status()).collect::<Vec<_>>(),
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
    let automation_specs = settings.automation.clone();
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
    jconfig.commit_interval = config.journal.commit_interval;
    let m = Arc::clone(&metrics);
    jconfig.observer = Some(Arc::new(move |b: &crate::journal::BatchStats| {
        m.journal_fsync.observe(b.fsync.as_secs_f64());
        m.journal_batch.observe(b.records as f64);
        m.journal_bytes.inc_by(b.bytes as u64);
    }));
    let (journal, report) = Journal::open(jconfig)?;
    tracing::info!(data_dir = %data_dir.display(), durable_lsn = journal.durable_lsn(), report = ?report, "journal open");
    let handle = journal.handle();

    let dedup = Dedup::with_limit(config.dedup.window, config.dedup.max_keys);
    let now_s = unix_now();
    let mut supervisor = Supervisor::new(now_s);
    configure_supervision(&mut supervisor, &settings, now_s);
    let snapshot_path = data_dir.join("supervision.json");
    let snapshot = crate::receiver::supervision_state::load(&snapshot_path);
    let rebuilt = rebuild_from_journal(&handle, &dedup, config.dedup.window, snapshot);
    for f in &rebuilt.failed {
        supervisor.restore_failed(&f.account, &f.path, f.since, f.all);
    }
    tracing::info!(
        keys = rebuilt.keys,
        window_s = config.dedup.window.as_secs(),
        supervised_paths = supervisor.paths(),
        in_failure = supervisor.failed(),
        "state rebuilt: dedup window from the journal, supervision from its snapshot"
    );

    let station = Arc::new(Station {
        settings: ArcSwap::from_pointee(settings),
        journal: handle.clone(),
        dedup,
        metrics: Arc::clone(&metrics),
        supervisor: std::sync::Mutex::new(supervisor),
        recent: crate::ops::recent::Recent::default(),
        series: crate::ops::frame_series::FrameSeries::new(&metrics),
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
    let automation_cursors: Vec<String> = automation_specs.iter().map(|s| s.cursor()).collect();
    sink_names.extend(automation_cursors.iter().map(String::as_str));
    let cursors = crate::journal::CursorStore::open(&data_dir)?;
    for name in &sink_names {
        if cursors.load_cursor(name)?.is_none() {
            cursors.store_cursor(name, handle.durable_lsn())?;
        }
    }

    // The HTTP endpoints come first, so that /healthz answers and /readyz says "not
    // ready" while listeners wait for their ports.
    let http_stop = CancellationToken::new();
    let http_addr = config.http_address();
    let health = Arc::new(Health {
        listening: AtomicBool::new(false),
        journal: handle.clone(),
        metrics: Arc::clone(&metrics),
        station: Arc::clone(&station),
        bound: std::sync::Mutex::new(Bound::default()),
        started: Instant::now(),
        automation: crate::forward::surgard::states(&automation_specs, &metrics.automation),
    });
    let mut http_bound = None;
    match http::bind(http_addr).await {
        Ok(l) => {
            http_bound = l.local_addr().ok();
            tokio::spawn(http::serve(
                l,
                health.clone() as Arc<dyn Probe>,
                http_stop.clone(),
            ));
        }
        // Metrics are for operators, not panels: a taken port is logged, not fatal.
        Err(e) => tracing::error!(addr = %http_addr, error = %e, "cannot serve HTTP endpoints"),
    }

    // Listeners. A port still held (an old process exiting) is retried until it frees,
    // and the daemon is not ready meanwhile; any other bind error stops the start: a
    // receiver missing a port it was told to serve would leave panels failing over without
    // anyone knowing why.
    let accept_stop = shutdown.child_token();
    let tracker = TaskTracker::new();
    let slots = Arc::new(Semaphore::new(config.limits.max_connections));
    let peers = Arc::new(tcp::PeerCounts::default());
    let mut bound = Bound {
        http: http_bound,
        ..Bound::default()
    };
    let mut servers = Vec::new();
    for l in config.listeners() {
        if l.transport.tcp() {
            let Some(listener) = bind_retry(
                l.address,
                "tcp",
                bind_tcp,
                config.limits.bind_wait,
                &shutdown,
            )
            .await?
            else {
                return Ok(());
            };
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
            let Some(socket) = bind_retry(
                l.address,
                "udp",
                bind_udp,
                config.limits.bind_wait,
                &shutdown,
            )
            .await?
            else {
                return Ok(());
            };
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
    if let Ok(mut b) = health.bound.lock() {
        *b = bound.clone();
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

    sinks.extend(crate::forward::surgard::spawn(
        &automation_specs,
        &health.automation,
        &handle,
        &config.receiver.id,
        &sink_stop,
    ));

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

    // Supervision: one timer for every supervised path; the state snapshot is written
    // every 10 s and at shutdown.
    let supervision_stop = CancellationToken::new();
    let supervision = {
        let station = Arc::clone(&station);
        let stop = supervision_stop.clone();
        let snapshot_path = snapshot_path.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut last_snapshot = Instant::now();
            loop {
                let stopping = tokio::select! {
                    _ = tick.tick() => false,
                    _ = stop.cancelled() => true,
                };
                let now = time::UtcDateTime::now();
                let now_s = u64::try_from(now.unix_timestamp()).unwrap_or(0);
                let (changes, paths, failed, refused) = match station.supervisor.lock() {
                    Ok(mut s) => (
                        s.handle_timeout(now_s),
                        s.paths(),
                        s.failed(),
                        s.paths_refused(),
                    ),
                    Err(_) => (Vec::new(), 0, 0, 0),
                };
                station.metrics.supervision_paths.set(paths as i64);
                station.metrics.supervision_failed.set(failed as i64);
                let counted = station.metrics.supervision_refused.get();
                station
                    .metrics
                    .supervision_refused
                    .inc_by(refused.saturating_sub(counted));
                if !changes.is_empty() {
                    station.record_changes(&changes, now).await;
                }
                if stopping || last_snapshot.elapsed() >= Duration::from_secs(10) {
                    let snap = station
                        .supervisor
                        .lock()
                        .ok()
                        .map(|s| s.snapshot(micros(now)));
                    if let Some(snap) = snap {
                        let path = snapshot_path.clone();
                        let stored = tokio::task::spawn_blocking(move || {
                            crate::receiver::supervision_state::store(&path, &snap)
                        })
                        .await;
                        if let Ok(Err(e)) = stored {
                            tracing::warn!(error = %e, "supervision snapshot not written");
                        }
                    }
                    last_snapshot = Instant::now();
                }
                if stopping {
                    return;
                }
            }
        })
    };

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
                        if let Ok(mut s) = station.supervisor.lock() {
                            configure_supervision(&mut s, &new, unix_now());
                        }
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
    supervision_stop.cancel();
    let _ = supervision.await;
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

fn unix_now() -> u64 {
    u64::try_from(time::UtcDateTime::now().unix_timestamp()).unwrap_or(0)
}

/// Sets every account's supervision interval and starts the timers of those not yet
/// heard (at start, and again after a reload for new accounts).
fn configure_supervision(supervisor: &mut Supervisor, settings: &Settings, now: u64) {
    for (id, account) in settings.accounts.iter() {
        supervisor.configure(id, account.supervision);
        if account.supervision.is_some() {
            supervisor.arm(id, now);
        }
    }
}

struct Rebuilt {
    keys: usize,
    failed: Vec<crate::receiver::supervision_state::FailedPath>,
}

/// What the start-up scan reads of a record: its kind and content key, nothing else.
#[derive(serde::Deserialize)]
struct RecordHead<'a> {
    kind: crate::receiver::record::RecordKind,
    #[serde(borrow, default)]
    key: Option<&'a str>,
}

/// Re-enters the content keys acknowledged within the dedup window (a panel retrying
/// across a restart still gets a duplicate ACK and no second event), and brings the
/// supervision snapshot up to date with the supervision events journaled after it.
fn rebuild_from_journal(
    journal: &JournalHandle,
    dedup: &Dedup,
    window: Duration,
    snapshot: crate::receiver::supervision_state::Snapshot,
) -> Rebuilt {
    let now = micros(time::UtcDateTime::now());
    let since = now.saturating_sub(i64::try_from(window.as_micros()).unwrap_or(i64::MAX));
    let mut state = snapshot;
    let mut reader = journal.reader();
    let mut keys = 0;
    if let Err(e) = reader.seek_time(since.min(state.taken_micros)) {
        tracing::warn!(error = %e, "cannot read the journal tail; dedup window starts empty");
        return Rebuilt {
            keys,
            failed: state.failed,
        };
    }
    loop {
        match reader.next_record() {
            Ok(Some(rec)) => {
                let json = crate::receiver::record::json_of(&rec.payload).unwrap_or_default();
                let Ok(head) = serde_json::from_slice::<RecordHead<'_>>(json) else {
                    continue;
                };
                if rec.ts_micros >= since {
                    if let Some(k) = head.key.and_then(ContentKey::from_hex) {
                        dedup.insert(k, rec.ts_micros);
                        keys += 1;
                    }
                }
                if head.kind == crate::receiver::record::RecordKind::Internal
                    && rec.ts_micros >= state.taken_micros
                {
                    if let Ok(r) = JournalRecord::from_bytes(&rec.payload) {
                        state.apply(&r.events, rec.ts_micros);
                    }
                }
            }
            Ok(None) => break,
            Err(e) => {
                tracing::warn!(error = %e, "journal tail unreadable; state partly rebuilt");
                break;
            }
        }
    }
    Rebuilt {
        keys,
        failed: state.failed,
    }
}

/// Binds `addr`, waiting while the port is held by another socket.
async fn bind_retry<T>(
    addr: SocketAddr,
    transport: &'static str,
    bind: fn(SocketAddr) -> std::io::Result<T>,
    wait: Duration,
    shutdown: &CancellationToken,
) -> Result<Option<T>, DaemonError> {
    let mut warned = false;
    let give_up = Instant::now() + wait;
    loop {
        match bind(addr) {
            Ok(s) => return Ok(Some(s)),
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && Instant::now() < give_up => {
                if !warned {
                    tracing::warn!(%addr, transport, wait_s = wait.as_secs(), "address in use; waiting for it (not ready until bound)");
                    warned = true;
                }
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(250)) => {}
                    _ = shutdown.cancelled() => return Ok(None),
                }
            }
            Err(source) => {
                return Err(DaemonError::Bind {
                    addr,
                    transport,
                    source,
                })
            }
        }
    }
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
