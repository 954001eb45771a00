//! What the daemon tells about itself over HTTP: `/readyz`, `/status`, the start-of-shift
//! page's data and a site's diagnosis, read from the parts' own counters and states.
//!
//! It owns nothing the frame path needs: every read here is a copy of a counter, a
//! snapshot or a scan of the journal, so a slow page never holds a frame back.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use super::Bound;
use crate::journal::JournalHandle;
use crate::ops::http::{self, Probe};
use crate::ops::metrics::Metrics;
use crate::station::{micros, Station};

pub(super) struct Health {
    pub(super) listening: AtomicBool,
    pub(super) journal: JournalHandle,
    pub(super) metrics: Arc<Metrics>,
    pub(super) station: Arc<Station>,
    /// Set once the listeners are bound.
    pub(super) bound: std::sync::OnceLock<Bound>,
    pub(super) started: Instant,
    pub(super) supervision: crate::supervision::Handle,
    pub(super) clock: Arc<crate::clock::ClockState>,
    pub(super) bus: Option<Arc<crate::forward::nats::BusStatus>>,
    pub(super) automation: Vec<Arc<crate::forward::surgard::OutputState>>,
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
        if let Some(space) = self.journal.space() {
            m.journal_disk_free
                .set(i64::try_from(space.free).unwrap_or(i64::MAX));
            m.journal_disk_total
                .set(i64::try_from(space.total).unwrap_or(i64::MAX));
            m.journal_min_free
                .set(i64::try_from(space.min_free).unwrap_or(i64::MAX));
            m.journal_space_low.set(i64::from(space.low));
        }
        if let Some(new) = stats.reopens().checked_sub(m.journal_reopens.get()) {
            m.journal_reopens.inc_by(new);
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
        let stats = self.journal.stats();
        if stats.writer_stopped() {
            return Err("journal writer stopped; restart needed".into());
        }
        if stats.poisoned() {
            return Err("journal write failed; re-opening it".into());
        }
        if stats.space_low() {
            return Err("journal out of space: frames get NAK until space returns".into());
        }
        Ok(())
    }

    fn status(&self) -> serde_json::Value {
        let settings = self.station.settings.load();
        let stats = self.journal.stats();
        let space = self.journal.space();
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
                "writable": !stats.poisoned() && !stats.space_low() && !stats.writer_stopped(),
                "durable_lsn": stats.durable_lsn(),
                "records": stats.records(),
                "bytes_written": stats.bytes(),
                "last_fsync_ms": stats.last_fsync().as_secs_f64() * 1000.0,
                "free_bytes": space.map(|s| s.free),
                "total_bytes": space.map(|s| s.total),
                "min_free_bytes": space.map(|s| s.min_free),
                "space_low": space.is_some_and(|s| s.low),
                "refused_records": stats.refused(),
                "reopens": stats.reopens(),
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

fn unix_now() -> u64 {
    u64::try_from(time::UtcDateTime::now().unix_timestamp()).unwrap_or(0)
}
