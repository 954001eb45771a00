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
            Some(n) => {
                n.url = Some(url.clone());
                n.servers.clear();
            }
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
    /// Set once the listeners are bound.
    bound: std::sync::OnceLock<Bound>,
    started: Instant,
    supervision: crate::supervision::Handle,
    clock: Arc<crate::clock::ClockState>,
    bus: Option<Arc<crate::forward::nats::BusStatus>>,
    automation: Vec<Arc<crate::forward::surgard::OutputState>>,
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
            "events": crate::ops::recent::classes_json(&self.station.recent.last_hour_events(unix_now())),
        })
    }
}

/// What only the start-of-shift page shows.
impl Health {
    /// Each sink (stdout, file, nats, …) as its metrics know it: connected (when it has a
    /// connection), backlog.
    fn sinks(&self) -> serde_json::Value {
        use prometheus::core::Collector;
        let mut sinks: std::collections::BTreeMap<
            String,
            serde_json::Map<String, serde_json::Value>,
        > = Default::default();
        let families = [
            ("backlog", self.metrics.sink_backlog.collect()),
            ("connected", self.metrics.sink_connected.collect()),
        ];
        for (field, list) in families {
            for m in list.iter().flat_map(|f| f.get_metric()) {
                let Some(name) = m.get_label().iter().find(|l| l.name() == "sink") else {
                    continue;
                };
                let v = m.get_gauge().get_value();
                let value = if field == "connected" {
                    serde_json::Value::from(v >= 1.0)
                } else {
                    serde_json::Value::from(v as i64)
                };
                sinks
                    .entry(name.value().to_string())
                    .or_default()
                    .insert(field.into(), value);
            }
        }
        sinks
            .into_iter()
            .map(|(name, mut fields)| {
                fields.insert("name".into(), name.into());
                serde_json::Value::Object(fields)
            })
            .collect()
    }

    fn journal_size(&self) -> Option<u64> {
        let dir = crate::journal::segment::journal_dir(self.journal.data_dir());
        let segments = crate::journal::segment::list_segments(&dir).ok()?;
        Some(segments.iter().map(|s| s.len).sum())
    }
}

impl Probe for Health {
    fn page(&self) -> serde_json::Value {
        let mut v = self.status();
        let now = time::UtcDateTime::now();
        let now_s = u64::try_from(now.unix_timestamp()).unwrap_or(0);
        let recent = &self.station.recent;
        if let Some(o) = v.as_object_mut() {
            let now_text = crate::receiver::event::panel_rfc3339(now);
            o.insert("now".into(), now_text.as_str().into());
            o.insert("now_unix".into(), now_s.into());
            let minutes = serde_json::to_value(recent.minutes(now_s)).unwrap_or_default();
            o.insert("last_hour_minutes".into(), minutes);
            let alarms = serde_json::to_value(recent.alarms()).unwrap_or_default();
            o.insert("latest_alarms".into(), alarms);
            o.insert("sinks".into(), self.sinks());
            if let (Some(j), Some(size)) = (
                o.get_mut("journal").and_then(|j| j.as_object_mut()),
                self.journal_size(),
            ) {
                j.insert("size_bytes".into(), size.into());
            }
        }
        v
    }

    fn refused(&self, reason: &'static str) {
        self.metrics.http_refused.with_label_values(&[reason]).inc();
    }

    /// Scans the daemon's own journal (the last 24 h unless told) on a blocking thread,
    /// then overlays what the running supervision knows of the account's paths.
    fn diag(&self, account: String, since_micros: Option<i64>) -> http::DiagFuture {
        let mut reader = self.journal.reader();
        let supervision = self.supervision.clone();
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
            // Not answering (stopping, or stopped) leaves the journal's view of the paths.
            let site = supervision.site(account).await.unwrap_or_default();
            if !site.is_empty() {
                let when = |ms: i64| {
                    crate::receiver::event::panel_rfc3339(crate::receiver::supervision::wall_time(
                        ms,
                    ))
                };
                d.paths = site
                    .into_iter()
                    .map(|p| {
                        let frames = d
                            .paths
                            .iter()
                            .find(|seen| seen.path == p.path)
                            .map_or(0, |seen| seen.frames);
                        crate::diag::PathSeen {
                            path: p.path,
                            last_heard: Some(when(p.last_heard_ms).into()),
                            failed_since: p.failed_since_ms.map(|f| when(f).into()),
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
        let bound = self.bound.get().cloned().unwrap_or_default();
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
            "supervision": self.supervision.status(),
            "clock": self.clock.status(),
            "dedup_keys": self.station.dedup.len(),
            "last_hour": self.last_hour(),
            "connections_open": self.metrics.connections_open.get(),
            "bus": self.bus.as_ref().map(|b| b.to_json()),
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
    let snapshot =
        crate::supervision::snapshot::load(&crate::supervision::snapshot::path_in(&data_dir));
    let rebuilt = rebuild_from_journal(&handle, &dedup, config.dedup.window, snapshot);
    tracing::info!(
        keys = rebuilt.keys,
        window_s = config.dedup.window.as_secs(),
        "state rebuilt: dedup window from the journal"
    );

    // Supervision: its own task, fed by the frame path through `inbox`.
    let settings = Arc::new(settings);
    let recent = Arc::new(crate::ops::recent::Recent::default());
    let (supervision, inbox) = crate::supervision::Supervision::start(crate::supervision::Start {
        settings: Arc::clone(&settings),
        journal: handle.clone(),
        metrics: Arc::clone(&metrics),
        series: crate::ops::frame_series::FrameSeries::new(&metrics),
        recent: Arc::clone(&recent),
        data_dir: data_dir.clone(),
        restored: rebuilt.supervision,
    });
    let clock = Arc::new(crate::clock::ClockState::default());
    let clock_stop = CancellationToken::new();
    let clock_watch =
        crate::clock::spawn(Arc::clone(&clock), Arc::clone(&metrics), clock_stop.clone());

    let station = Arc::new(Station {
        settings: ArcSwap::new(settings),
        journal: handle.clone(),
        dedup,
        metrics: Arc::clone(&metrics),
        supervision: inbox,
        recent,
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
    let bus = config
        .bus
        .nats
        .as_ref()
        .map(|n| Arc::new(crate::forward::nats::BusStatus::new(n, metrics.bus.clone())));
    let health = Arc::new(Health {
        listening: AtomicBool::new(false),
        journal: handle.clone(),
        metrics: Arc::clone(&metrics),
        station: Arc::clone(&station),
        bound: std::sync::OnceLock::new(),
        started: Instant::now(),
        supervision: supervision.handle.clone(),
        clock,
        bus: bus.clone(),
        automation: crate::forward::surgard::states(&automation_specs, &metrics.automation),
    });
    let mut http_bound = None;
    // The access rules never stop the start: at worst only /healthz and /readyz are served.
    let credentials = std::env::var_os("CREDENTIALS_DIRECTORY").map(PathBuf::from);
    let access = crate::ops::http_access::load(
        &config.http,
        http_addr,
        &config.path,
        credentials.as_deref(),
    );
    for w in &access.warnings {
        tracing::warn!("{w}");
    }
    if let Some(why) = &access.error {
        tracing::error!("{why}");
    }
    match http::bind(http_addr).await {
        Ok(l) => {
            http_bound = l.local_addr().ok();
            tokio::spawn(http::serve(
                l,
                health.clone() as Arc<dyn Probe>,
                Arc::new(access.access),
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
    let _ = health.bound.set(bound.clone());

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

    if let (Some(nats), Some(bus)) = (config.bus.nats.clone(), bus) {
        let h = handle.clone();
        let stop = sink_stop.clone();
        let m = Arc::new(metrics.sink("nats"));
        let name = format!("tocsin {}", config.receiver.id);
        sinks.push(tokio::spawn(async move {
            if let Err(e) = crate::forward::nats::run(h, nats, name, m, bus, stop).await {
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
                        let new = Arc::new(new);
                        supervision.handle.reload(Arc::clone(&new));
                        station.settings.store(new);
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
    // No frame can arrive any more: supervision drains, journals its last changes and
    // stores its snapshot before the journal closes.
    supervision.stop().await;
    clock_stop.cancel();
    let _ = clock_watch.await;
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

struct Rebuilt {
    keys: usize,
    supervision: crate::receiver::supervision_state::Snapshot,
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
    let from = match state.lsn {
        // Supervision records after the snapshot's position, whatever their time says.
        Some(_) => since,
        None => since.min(state.taken_micros),
    };
    if let Err(e) = reader.seek_time(from) {
        tracing::warn!(error = %e, "cannot read the journal tail; dedup window starts empty");
        return Rebuilt {
            keys,
            supervision: state,
        };
    }
    if let Some(lsn) = state.lsn {
        if lsn.saturating_add(1) < reader.position() {
            reader.seek(lsn.saturating_add(1));
        }
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
                    && state.is_newer(rec.lsn, rec.ts_micros)
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
        supervision: state,
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
