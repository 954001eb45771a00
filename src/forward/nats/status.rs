//! What the sink knows of the bus, for the operator: which server it is connected to, how
//! often it had to reconnect, and the stream as tocsin sees it (replicas, leader, which
//! replicas are current). Kept in [`BusStatus`] for `/status` (`tocsin status`) and in
//! the `tocsin_bus_*` metrics for dashboards and alerts.
//!
//! Holds no secret: server URLs are refused by the configuration if they carry one, and
//! errors from [`super::connect`] never include a file's content.

use parking_lot::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use prometheus::{IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};
use serde::Serialize;

use super::config::{redact, NatsConfig};

/// The stream as the sink last saw it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct StreamView {
    pub name: String,
    /// Copies the stream is configured to keep.
    pub replicas: usize,
    /// Copies up to date now, the leader's included (equal to `replicas` when healthy).
    pub replicas_current: usize,
    /// The server that orders writes to the stream (`None` during an election).
    pub leader: Option<String>,
    pub cluster: Option<String>,
    /// Peers (other than the leader) that are behind or offline.
    pub lagging: Vec<String>,
    pub duplicate_window_s: u64,
}

impl StreamView {
    pub fn from_info(info: &async_nats::jetstream::stream::Info) -> StreamView {
        let cluster = info.cluster.as_ref();
        let peers = cluster.map(|c| c.replicas.as_slice()).unwrap_or_default();
        let leader = cluster.and_then(|c| c.leader.clone());
        StreamView {
            name: info.config.name.clone(),
            replicas: info.config.num_replicas.max(1),
            replicas_current: usize::from(leader.is_some())
                + peers.iter().filter(|p| p.current && !p.offline).count(),
            leader,
            cluster: cluster.and_then(|c| c.name.clone()),
            lagging: peers
                .iter()
                .filter(|p| !p.current || p.offline)
                .map(|p| p.name.clone())
                .collect(),
            duplicate_window_s: info.config.duplicate_window.as_secs(),
        }
    }
}

#[derive(Debug, Clone, Default, Serialize)]
struct State {
    connected: bool,
    /// The configured URL of the server connected to (or what that server announced).
    server: Option<String>,
    server_name: Option<String>,
    connections: u64,
    reconnects: u64,
    last_error: Option<String>,
    stream: Option<StreamView>,
}

/// The sink's view of the bus, shared with the HTTP status endpoint.
pub struct BusStatus {
    servers: Vec<String>,
    auth: &'static str,
    tls: bool,
    state: Mutex<State>,
    /// The existing stream's differences from the configuration are logged once.
    pub(super) differences_logged: AtomicBool,
    pub metrics: BusMetrics,
}

impl BusStatus {
    /// `metrics` are the daemon's (registered once, see [`BusMetrics::register`]).
    pub fn new(config: &NatsConfig, metrics: BusMetrics) -> BusStatus {
        BusStatus {
            servers: config.server_urls().iter().map(|u| redact(u)).collect(),
            auth: config.auth_kind().as_str(),
            tls: config.tls(),
            state: Mutex::new(State::default()),
            differences_logged: AtomicBool::new(false),
            metrics,
        }
    }

    fn update(&self, f: impl FnOnce(&mut State)) {
        f(&mut self.state.lock());
    }

    /// A connection is up, to `server` (named `name` by itself).
    pub(super) fn connected(&self, server: String, name: String) {
        let m = &self.metrics;
        m.server.reset();
        m.server.with_label_values(&[&server]).set(1);
        self.update(|s| {
            s.connections += 1;
            if s.connections > 1 {
                s.reconnects += 1;
                m.reconnects.inc();
            }
            s.connected = true;
            s.server = Some(server);
            s.server_name = Some(name);
            s.last_error = None;
        });
    }

    pub(super) fn disconnected(&self, error: Option<String>) {
        self.metrics.server.reset();
        self.update(|s| {
            s.connected = false;
            if error.is_some() {
                s.last_error = error;
            }
        });
    }

    /// The stream as last seen; returns the previous view.
    pub(super) fn stream_seen(&self, view: StreamView) -> Option<StreamView> {
        let m = &self.metrics;
        m.stream_replicas.set(view.replicas as i64);
        m.stream_replicas_current.set(view.replicas_current as i64);
        m.stream_leader.reset();
        if let Some(l) = &view.leader {
            m.stream_leader.with_label_values(&[l]).set(1);
        }
        let mut previous = None;
        self.update(|s| previous = s.stream.replace(view));
        previous
    }

    /// The `bus` object of `/status`.
    pub fn to_json(&self) -> serde_json::Value {
        let s = self.state.lock().clone();
        serde_json::json!({
            "sink": "nats",
            "servers": self.servers,
            "auth": self.auth,
            "tls": self.tls,
            "connected": s.connected,
            "server": s.server,
            "server_name": s.server_name,
            "reconnects": s.reconnects,
            "last_error": s.last_error,
            "stream": s.stream,
        })
    }

    pub(super) fn log_differences_once(&self) -> bool {
        !self.differences_logged.swap(true, Ordering::Relaxed)
    }
}

/// `tocsin_bus_*`: the bus as seen by the sink. Label values are server names and URLs
/// of the station's own cluster: a handful.
#[derive(Clone)]
pub struct BusMetrics {
    pub reconnects: IntCounter,
    /// 1 for the server the sink is connected to (no series while disconnected).
    pub server: IntGaugeVec,
    pub stream_replicas: IntGauge,
    pub stream_replicas_current: IntGauge,
    /// 1 for the stream's leader (no series during an election).
    pub stream_leader: IntGaugeVec,
    /// Records published again after a reconnection: `duplicate` (the stream had them)
    /// or `restored` (the stream had lost them).
    pub republished: IntCounterVec,
}

impl BusMetrics {
    pub fn register(r: &Registry) -> prometheus::Result<BusMetrics> {
        let reconnects = IntCounter::new(
            "tocsin_bus_reconnects_total",
            "Connections of the bus sink after its first one (failovers, server restarts).",
        )?;
        r.register(Box::new(reconnects.clone()))?;
        let server = IntGaugeVec::new(
            Opts::new(
                "tocsin_bus_connected_server",
                "1 for the NATS server the bus sink is connected to.",
            ),
            &["server"],
        )?;
        r.register(Box::new(server.clone()))?;
        let stream_replicas = IntGauge::new(
            "tocsin_bus_stream_replicas",
            "Copies the bus stream is configured to keep, as tocsin sees it.",
        )?;
        r.register(Box::new(stream_replicas.clone()))?;
        let stream_replicas_current = IntGauge::new(
            "tocsin_bus_stream_replicas_current",
            "Copies of the bus stream up to date now, the leader's included.",
        )?;
        r.register(Box::new(stream_replicas_current.clone()))?;
        let stream_leader = IntGaugeVec::new(
            Opts::new(
                "tocsin_bus_stream_leader",
                "1 for the server that leads the bus stream, as tocsin sees it.",
            ),
            &["server"],
        )?;
        r.register(Box::new(stream_leader.clone()))?;
        let republished = IntCounterVec::new(
            Opts::new(
                "tocsin_bus_republished_total",
                "Events published again after a reconnection: duplicate (the stream had it) or restored (the stream had lost it).",
            ),
            &["outcome"],
        )?;
        r.register(Box::new(republished.clone()))?;
        for outcome in ["duplicate", "restored"] {
            republished.with_label_values(&[outcome]);
        }
        Ok(BusMetrics {
            reconnects,
            server,
            stream_replicas,
            stream_replicas_current,
            stream_leader,
            republished,
        })
    }
}
