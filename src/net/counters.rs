//! What the network layer counts, as counter handles it is given: the connection counters
//! (`tocsin_connections_total{event}`, `tocsin_connections_open`) and the junk counters of
//! each transport (`tocsin_junk_total`, `tocsin_junk_bytes_total`). Each series is looked
//! up once, when the daemon starts, so a connection or a run of junk costs an atomic
//! addition, not a label lookup (a hash and a lock); and the network layer knows counters,
//! not the metrics registry that names them.

use prometheus::{IntCounter, IntCounterVec, IntGauge};

use super::codec::JunkReason;

/// The connection counters of the TCP listeners.
pub struct ConnectionCounters {
    pub accepted: IntCounter,
    /// Refused for the per-address limit.
    pub refused: IntCounter,
    /// Closed for their idle timeout.
    pub idle: IntCounter,
    pub closed: IntCounter,
    pub open: IntGauge,
}

impl ConnectionCounters {
    /// From the family labelled by `event` and the gauge of open connections.
    pub fn new(events: &IntCounterVec, open: IntGauge) -> ConnectionCounters {
        let of = |event: &str| events.with_label_values(&[event]);
        ConnectionCounters {
            accepted: of("accepted"),
            refused: of("refused"),
            idle: of("idle"),
            closed: of("closed"),
            open,
        }
    }
}

const REASONS: [JunkReason; 3] = [
    JunkReason::NotAFrame,
    JunkReason::TooLong,
    JunkReason::Truncated,
];

/// The junk counters of one transport.
pub struct JunkCounters {
    runs: [IntCounter; 3],
    bytes: [IntCounter; 3],
}

fn slot(reason: JunkReason) -> usize {
    match reason {
        JunkReason::NotAFrame => 0,
        JunkReason::TooLong => 1,
        JunkReason::Truncated => 2,
    }
}

impl JunkCounters {
    /// From the families labelled by transport and reason.
    pub fn new(runs: &IntCounterVec, bytes: &IntCounterVec, transport: &str) -> JunkCounters {
        let of = |family: &IntCounterVec| {
            REASONS.map(|r| family.with_label_values(&[transport, r.as_str()]))
        };
        JunkCounters {
            runs: of(runs),
            bytes: of(bytes),
        }
    }

    /// One run of `len` bytes dropped for `reason`.
    pub fn count(&self, reason: JunkReason, len: usize) {
        let i = slot(reason);
        if let (Some(runs), Some(bytes)) = (self.runs.get(i), self.bytes.get(i)) {
            runs.inc();
            bytes.inc_by(len as u64);
        }
    }
}
