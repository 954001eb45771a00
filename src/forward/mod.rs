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
    /// 1 while connected to its destination.
    pub connected: IntGauge,
    pub errors: IntCounter,
}
