//! Forwarders: tail the journal and hand its events to consumers, each from its own
//! cursor. Reception never waits on them (design invariant 2): they read what is already
//! durable, at their own pace, and catch up after an outage.

pub mod jsonl;
pub mod nats;
pub mod surgard;

use std::future::Future;

use prometheus::{Histogram, IntCounter, IntGauge};

/// Runs a sink on a thread of its own (`sink-<name>`), with a single-threaded runtime for
/// its timers and its I/O, and returns what it returned. As one task among thousands of
/// connections a sink would wait its turn in the workers' queues at each step of a batch,
/// hundreds of milliseconds apiece under load, and fall behind the journal; and its work
/// would hold up those connections. On a thread, the kernel shares the CPU between it and
/// the workers instead.
pub(crate) async fn on_own_thread<E, F, Fut>(name: &str, make: F) -> Result<(), E>
where
    E: From<std::io::Error> + Send + 'static,
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = Result<(), E>>,
{
    let (done, result) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name(format!("sink-{name}"))
        .spawn(move || {
            let r = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(E::from)
                .and_then(|rt| rt.block_on(make()));
            let _ = done.send(r);
        })?;
    result
        .await
        .unwrap_or_else(|_| Err(E::from(std::io::Error::other("sink thread died"))))
}

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
