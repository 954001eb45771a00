//! What an operator sees of an automation output: its metrics (`tocsin_automation_*`,
//! labelled by output name) and its entry in `/status` and `tocsin status`.
//!
//! The families are registered once with the daemon's registry; each output takes its own
//! children. The status entry is a small shared record the output updates on each change
//! of its link; `/status` reads it together with the counters.

use std::sync::Mutex;

use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry,
};
use serde_json::{json, Value};

use super::config::OutputSpec;

/// The metric families of every automation output.
#[derive(Clone)]
pub struct Families {
    link_up: IntGaugeVec,
    backlog: IntGaugeVec,
    packets: IntCounterVec,
    retries: IntCounterVec,
    set_aside: IntCounterVec,
    unmapped: IntCounterVec,
    sia_oversize: IntCounterVec,
    connections: IntCounterVec,
    ack_latency: HistogramVec,
}

/// One output's metrics.
#[derive(Clone)]
pub struct OutputMetrics {
    /// 1 while the automation answers on an open connection.
    pub link_up: IntGauge,
    /// Journal records not yet delivered to this automation.
    pub backlog: IntGauge,
    /// Event packets acknowledged.
    pub delivered: IntCounter,
    pub heartbeats: IntCounter,
    pub naks: IntCounter,
    pub timeouts: IntCounter,
    pub set_aside: IntCounter,
    pub unmapped: IntCounter,
    pub split: IntCounter,
    pub truncated: IntCounter,
    pub opened: IntCounter,
    pub lost: IntCounter,
    pub refused: IntCounter,
    pub ack_latency: Histogram,
}

fn counter(
    r: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> prometheus::Result<IntCounterVec> {
    let c = IntCounterVec::new(Opts::new(name, help), labels)?;
    r.register(Box::new(c.clone()))?;
    Ok(c)
}

fn gauge(r: &Registry, name: &str, help: &str) -> prometheus::Result<IntGaugeVec> {
    let g = IntGaugeVec::new(Opts::new(name, help), &["output"])?;
    r.register(Box::new(g.clone()))?;
    Ok(g)
}

impl Families {
    pub fn register(r: &Registry) -> prometheus::Result<Families> {
        let ack_latency = HistogramVec::new(
            HistogramOpts::new(
                "tocsin_automation_ack_seconds",
                "Time from sending an event packet to the automation's ACK.",
            )
            .buckets(vec![
                0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                1.0, 2.5, 5.0, 10.0,
            ]),
            &["output"],
        )?;
        r.register(Box::new(ack_latency.clone()))?;
        Ok(Families {
            link_up: gauge(r, "tocsin_automation_link_up", "1 while the automation software answers on the link, by output.")?,
            backlog: gauge(r, "tocsin_automation_backlog_records", "Journal records not yet delivered to the automation software, by output.")?,
            packets: counter(r, "tocsin_automation_packets_total", "Packets acknowledged by the automation software, by output and kind (event, heartbeat).", &["output", "kind"])?,
            retries: counter(r, "tocsin_automation_retries_total", "Packets sent again, by output and reason (nak, timeout).", &["output", "reason"])?,
            set_aside: counter(r, "tocsin_automation_set_aside_total", "Packets the automation software refused max_attempts times, set aside (journaled as an automation_set_aside event), by output.", &["output"])?,
            unmapped: counter(r, "tocsin_automation_unmapped_total", "Events whose account fits no packet and has no account_map entry, sent on own_account, by output.", &["output"])?,
            sia_oversize: counter(r, "tocsin_automation_sia_oversize_total", "SIA data blocks over 66 bytes, by output and action (split, truncated).", &["output", "action"])?,
            connections: counter(r, "tocsin_automation_connections_total", "Automation connections by output and event (opened, lost, refused: a second one while the first answers).", &["output", "event"])?,
            ack_latency,
        })
    }

    /// The children of output `name`, all created now so that they show at zero.
    pub fn output(&self, name: &str) -> OutputMetrics {
        OutputMetrics {
            link_up: self.link_up.with_label_values(&[name]),
            backlog: self.backlog.with_label_values(&[name]),
            delivered: self.packets.with_label_values(&[name, "event"]),
            heartbeats: self.packets.with_label_values(&[name, "heartbeat"]),
            naks: self.retries.with_label_values(&[name, "nak"]),
            timeouts: self.retries.with_label_values(&[name, "timeout"]),
            set_aside: self.set_aside.with_label_values(&[name]),
            unmapped: self.unmapped.with_label_values(&[name]),
            split: self.sia_oversize.with_label_values(&[name, "split"]),
            truncated: self.sia_oversize.with_label_values(&[name, "truncated"]),
            opened: self.connections.with_label_values(&[name, "opened"]),
            lost: self.connections.with_label_values(&[name, "lost"]),
            refused: self.connections.with_label_values(&[name, "refused"]),
            ack_latency: self.ack_latency.with_label_values(&[name]),
        }
    }
}

/// One output as `/status` shows it.
pub struct OutputState {
    pub name: String,
    pub mode: &'static str,
    pub address: String,
    pub metrics: OutputMetrics,
    link: Mutex<LinkView>,
}

#[derive(Default, Clone)]
struct LinkView {
    up: bool,
    peer: Option<String>,
    /// When the link last went up or down (RFC 3339).
    since: Option<String>,
    last_error: Option<String>,
}

impl OutputState {
    pub fn new(spec: &OutputSpec, families: &Families) -> OutputState {
        OutputState {
            name: spec.name.clone(),
            mode: spec.endpoint.mode(),
            address: spec.endpoint.address(),
            metrics: families.output(&spec.name),
            link: Mutex::new(LinkView::default()),
        }
    }

    /// The link went up (`true`) or down; `now` is RFC 3339.
    pub fn set_link(&self, up: bool, now: &str) {
        self.metrics.link_up.set(i64::from(up));
        if let Ok(mut l) = self.link.lock() {
            if l.up != up || l.since.is_none() {
                l.since = Some(now.to_string());
            }
            l.up = up;
            if up {
                l.last_error = None;
            }
        }
    }

    pub fn set_peer(&self, peer: Option<String>) {
        if let Ok(mut l) = self.link.lock() {
            l.peer = peer;
        }
    }

    /// Why the link is down (kept until it is up again). Never holds a secret: addresses
    /// and socket errors only.
    pub fn set_error(&self, error: String) {
        if let Ok(mut l) = self.link.lock() {
            l.last_error = Some(error);
        }
    }

    pub fn is_up(&self) -> bool {
        self.link.lock().map(|l| l.up).unwrap_or(false)
    }

    /// The entry of the `automation` list in `/status`.
    pub fn status(&self) -> Value {
        let l = self.link.lock().map(|l| l.clone()).unwrap_or_default();
        let m = &self.metrics;
        json!({
            "name": self.name,
            "mode": self.mode,
            "address": self.address,
            "link": if l.up { "up" } else { "down" },
            "since": l.since,
            "peer": l.peer,
            "last_error": l.last_error,
            "backlog_records": m.backlog.get(),
            "delivered": m.delivered.get(),
            "heartbeats": m.heartbeats.get(),
            "set_aside": m.set_aside.get(),
            "unmapped": m.unmapped.get(),
        })
    }
}
