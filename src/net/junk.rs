//! The junk counters of one transport (`tocsin_junk_total`, `tocsin_junk_bytes_total`),
//! looked up once per listener: a flood of junk then costs two atomic additions a run, not
//! two label lookups (a hash and a lock each) on the path every junk byte takes.

use prometheus::IntCounter;

use super::codec::JunkReason;
use crate::ops::metrics::Metrics;

const REASONS: [JunkReason; 3] = [
    JunkReason::NotAFrame,
    JunkReason::TooLong,
    JunkReason::Truncated,
];

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
    pub fn new(metrics: &Metrics, transport: &str) -> JunkCounters {
        let of = |family: &prometheus::IntCounterVec| {
            REASONS.map(|r| family.with_label_values(&[transport, r.as_str()]))
        };
        JunkCounters {
            runs: of(&metrics.junk),
            bytes: of(&metrics.junk_bytes),
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
