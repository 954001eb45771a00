//! Forwarders: tail the journal and hand its events to consumers, each from its own
//! cursor. Reception never waits on them (design invariant 2): they read what is already
//! durable, at their own pace, and catch up after an outage.

pub mod jsonl;
pub mod nats;
pub mod surgard;

use prometheus::{Histogram, IntCounter, IntGauge};

/// The metrics of one sink (labelled by its name).
#[derive(Clone)]
pub struct SinkMetrics {
    /// Records in the journal not yet delivered by this sink.
    pub backlog: IntGauge,
    pub published: IntCounter,
    pub publish_latency: Histogram,
    /// From a record's arrival (its journal time) to its delivery by this sink.
    pub delivery: Histogram,
    /// 1 while connected to its destination.
    pub connected: IntGauge,
    pub errors: IntCounter,
}

/// Observes the delivery of one record that arrived at `arrived_us` (the journal's record
/// time, unix microseconds), delivered at `now_us`. A wall clock stepped back between the
/// two counts as no delay rather than a negative one.
pub(crate) fn observe_delivery(delivery: &Histogram, arrived_us: i64, now_us: i64) {
    let micros = now_us.saturating_sub(arrived_us).max(0);
    delivery.observe(micros as f64 / 1e6);
}

/// Unix microseconds now, the clock records are stamped with.
pub(crate) fn unix_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}
