//! `tocsin run`: wires the parts together and owns their lifecycle; each part's start and
//! stop lives in a file of its own (`restart`, `listeners`, `sinks`, `web`, `health`).
//!
//! Start: metrics → journal (recovery of a torn tail) → dedup window rebuilt from the
//! journal tail → listeners bound → sinks started → READY. Stop (the token fires):
//! listeners stop accepting → connections finish the frame they are answering (fsync and
//! reply included) → the journal syncs and closes → sinks drain what is durable and store
//! their cursors. Reload (SIGHUP): the configuration file is read and checked again;
//! accounts, keys and timestamp rules are swapped in atomically; connections stay open; a
//! bad file leaves the running configuration as it was, with the reason in the log.
//! Listeners, data directory, HTTP, limits, dedup, journal, outputs, bus and automation
//! are wired at start and not reloaded: a reload that changes them says which in the log
//! ([`restart_only_changes`]), and a restart applies them.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::journal::RetentionPolicy;
use crate::ops::config::{Config, ConfigError, Settings};
use crate::ops::metrics::Metrics;
use crate::ops::retention;
use crate::ops::systemd;
use crate::receiver::dedup::Dedup;
use crate::station::Station;

mod health;
mod listeners;
mod restart;
mod sinks;
mod web;

use health::Health;
use listeners::Listeners;
use sinks::Sinks;

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

/// The parts of the configuration a reload does not apply (each is wired once, at
/// start), named as in the file, where `new` differs from `running`: an operator who
/// changed one of them is told it waits for a restart instead of believing it applied.
/// Compared through their debug form, which every section has and which holds every
/// value (secret files by path only).
pub fn restart_only_changes(running: &Config, new: &Config) -> Vec<&'static str> {
    fn differs<T: std::fmt::Debug>(a: &T, b: &T) -> bool {
        format!("{a:?}") != format!("{b:?}")
    }
    let (r, n) = (running, new);
    let checks: [(&'static str, bool); 10] = [
        (
            "[receiver] data_dir",
            r.receiver.data_dir != n.receiver.data_dir,
        ),
        ("[[listen]]", differs(&r.listen, &n.listen)),
        ("[http]", differs(&r.http, &n.http)),
        ("[limits]", differs(&r.limits, &n.limits)),
        ("[dedup]", differs(&r.dedup, &n.dedup)),
        ("[journal]", differs(&r.journal, &n.journal)),
        ("[output]", differs(&r.output, &n.output)),
        ("[bus]", differs(&r.bus, &n.bus)),
        ("[[automation]]", differs(&r.automation, &n.automation)),
        (
            "[supervision] share",
            r.supervision.share != n.supervision.share,
        ),
    ];
    checks
        .into_iter()
        .filter_map(|(name, changed)| changed.then_some(name))
        .collect()
}

/// The addresses actually bound, for tests and logs.
#[derive(Debug, Clone, Default)]
pub struct Bound {
    pub tcp: Vec<SocketAddr>,
    pub udp: Vec<SocketAddr>,
    pub http: Option<SocketAddr>,
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

    let journal = restart::open_journal(&config, &data_dir, &metrics)?;
    let handle = journal.handle();
    let rebuilding = Instant::now();
    let dedup = Dedup::with_limit(config.dedup.window, config.dedup.max_keys);
    let dedup_keys =
        restart::rebuild_dedup(&journal, &dedup, config.dedup.window, config.dedup.max_keys);
    let snapshot =
        crate::supervision::snapshot::load(&crate::supervision::snapshot::path_in(&data_dir));
    let rebuilt = restart::rebuild_from_journal(&handle, snapshot);
    tracing::info!(
        keys = dedup_keys,
        took_ms = rebuilding.elapsed().as_millis() as u64,
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
    sinks::prepare_cursors(&config, &automation_specs, &data_dir, &handle)?;

    // The HTTP endpoints come first, so that /healthz answers and /readyz says "not
    // ready" while listeners wait for their ports.
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
    let http_stop = CancellationToken::new();
    let http_bound = web::start(&config, &health, &http_stop).await;

    let Some(listeners) = Listeners::start(&config, &station, &shutdown).await? else {
        return Ok(());
    };
    let bound = Bound {
        tcp: listeners.tcp.clone(),
        udp: listeners.udp.clone(),
        http: http_bound,
    };
    let _ = health.bound.set(bound.clone());

    let sinks = Sinks::start(
        &config,
        (&automation_specs, &health.automation),
        bus,
        &handle,
        &metrics,
    )
    .await;

    // Retention: whole segments, never past what a sink has not written yet; every minute,
    // and at once (at most every second) when the writer is refused a segment for space.
    let retention = tokio::spawn(retention::run(
        handle.clone(),
        RetentionPolicy {
            max_bytes: Some(config.journal.max_bytes),
            max_age_micros: i64::try_from(config.journal.max_age.as_micros()).ok(),
            allow_unpublished_deletion: config.journal.allow_unpublished_deletion,
            min_free: Some(config.journal.min_free),
            room_for: config.journal.segment_size,
        },
        shutdown.child_token(),
    ));

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

    // What the parts were wired with: a reload is compared with this, not with the last
    // reload, so a change waiting for a restart is named at every reload until then.
    let wired = station.settings.load().config.clone();
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
                        let pending = restart_only_changes(&wired, &new.config);
                        if !pending.is_empty() {
                            tracing::warn!(sections = %pending.join(", "), "configuration reloaded, but these changes take effect only at the next restart; until then the running values stay");
                        }
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
                // Alive, not ready: a full disk or a failed sync is cured in-process (a
                // restart cures neither), so only a writer gone for good stops the pings.
                if !health.journal.stats().writer_stopped() {
                    systemd::watchdog();
                }
            }
        }
    }

    // Drain.
    systemd::stopping();
    tracing::info!("stopping: no new connections; finishing frames in flight");
    health.listening.store(false, Ordering::Release);
    listeners.drain().await;
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
    sinks.stop().await;
    http_stop.cancel();
    closed?;
    tracing::info!("stopped");
    Ok(())
}
