//! Steps of the wall clock: noticed, told once, counted, shown.
//!
//! A receiver's wall clock stamps events and checks panel timestamps; it is not to be
//! trusted for durations: NTP corrects it by steps, a resumed host jumps. Supervision
//! deadlines therefore run on the monotonic clock, and a step moves none of them. A step
//! still matters to an operator (event times jump; panels whose timestamps are checked may
//! get NAKs), so it is reported: this module compares the progress of the two clocks once
//! a second, and when the wall clock gained or lost more than [`STEP_THRESHOLD`] against
//! the monotonic one, logs one line, counts it in `tocsin_clock_steps_total`, and keeps it
//! for `/status` and `tocsin status`. NTP's slewing (at most 0.5 ms a second) never adds
//! up to a step between two looks.
//!
//! [`StepDetector`] is the pure part, fed with both clocks' readings; [`spawn`] drives it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use tokio_util::sync::CancellationToken;

use crate::ops::metrics::Metrics;
use crate::throttle::{Throttle, Verdict};

/// The smallest difference between the two clocks' progress reported as a step: a few
/// seconds, far above the scheduling jitter between two readings and any slew.
pub const STEP_THRESHOLD: Duration = Duration::from_secs(2);

/// How often the clocks are compared.
const LOOK_EVERY: Duration = Duration::from_secs(1);

/// A clock that steps back and forth every second still gets one line a second at most.
static STEP_LOG: Throttle = Throttle::new(1);

/// One step of the wall clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    /// How far it jumped, in milliseconds: positive forward, negative backward.
    pub by_ms: i64,
    /// The wall clock after the step, in milliseconds since the Unix epoch.
    pub wall_ms: i64,
}

/// Compares successive readings of the monotonic and the wall clock.
#[derive(Debug, Clone)]
pub struct StepDetector {
    threshold_ms: i64,
    /// Wall minus monotonic at the last reading.
    offset_ms: Option<i64>,
}

impl StepDetector {
    pub fn new(threshold: Duration) -> StepDetector {
        StepDetector {
            threshold_ms: i64::try_from(threshold.as_millis()).unwrap_or(i64::MAX),
            offset_ms: None,
        }
    }

    /// One reading: `mono_ms` on any monotonic timeline, `wall_ms` since the Unix epoch.
    /// A step is the change of their difference since the last reading; small changes
    /// (slew, jitter) move the reference along, so they never add up to a step.
    pub fn observe(&mut self, mono_ms: i64, wall_ms: i64) -> Option<Step> {
        let offset = wall_ms.saturating_sub(mono_ms);
        let previous = self.offset_ms.replace(offset)?;
        let by_ms = offset.saturating_sub(previous);
        (by_ms.abs() > self.threshold_ms).then_some(Step { by_ms, wall_ms })
    }
}

/// What `/status` shows of the clock.
#[derive(Debug, Default)]
pub struct ClockState {
    forward: AtomicU64,
    backward: AtomicU64,
    last: ArcSwapOption<Step>,
}

impl ClockState {
    fn record(&self, step: Step) {
        let counter = if step.by_ms > 0 {
            &self.forward
        } else {
            &self.backward
        };
        counter.fetch_add(1, Ordering::Relaxed);
        self.last.store(Some(Arc::new(step)));
    }

    /// The `clock` object of `/status`.
    pub fn status(&self) -> serde_json::Value {
        let forward = self.forward.load(Ordering::Relaxed);
        let backward = self.backward.load(Ordering::Relaxed);
        let last = self.last.load_full().map(|s| {
            serde_json::json!({
                "at": crate::receiver::event::rfc3339(
                    crate::receiver::supervision::wall_time(s.wall_ms)
                ).as_str(),
                "seconds": s.by_ms as f64 / 1000.0,
            })
        });
        serde_json::json!({
            "steps": forward + backward,
            "forward": forward,
            "backward": backward,
            "last_step": last,
            "threshold_seconds": STEP_THRESHOLD.as_secs(),
        })
    }
}

/// Milliseconds since the Unix epoch on the wall clock.
pub fn wall_ms() -> i64 {
    match std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_millis()).unwrap_or(i64::MAX),
    }
}

/// A reading whose two monotonic readings around the wall clock's lie further apart than
/// this says nothing reliable (far below [`STEP_THRESHOLD`]).
const READ_SPREAD_MAX: Duration = Duration::from_millis(50);

/// Watches the clocks until `stop`.
pub fn spawn(
    state: Arc<ClockState>,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let base = Instant::now();
        let mut detector = StepDetector::new(STEP_THRESHOLD);
        let mut look = tokio::time::interval(LOOK_EVERY);
        look.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = look.tick() => {}
            }
            // The wall clock read between two monotonic readings: a thread stalled between
            // the readings (a loaded host, a VM's stolen time) would otherwise look like a
            // step of the stall's length. Such a reading is left out; the next one decides.
            let before = base.elapsed();
            let wall = wall_ms();
            let after = base.elapsed();
            let spread = after.saturating_sub(before);
            if spread > READ_SPREAD_MAX {
                continue;
            }
            let mono = i64::try_from((before + spread / 2).as_millis()).unwrap_or(i64::MAX);
            let Some(step) = detector.observe(mono, wall) else {
                continue;
            };
            state.record(step);
            let direction = if step.by_ms > 0 {
                "forward"
            } else {
                "backward"
            };
            metrics.clock_steps.with_label_values(&[direction]).inc();
            metrics.clock_last_step.set(step.by_ms / 1000);
            if let Verdict::Log { suppressed } = STEP_LOG.check_now() {
                tracing::warn!(
                    direction,
                    seconds = step.by_ms as f64 / 1000.0,
                    suppressed,
                    "the wall clock stepped {direction} by {:.1} s; supervision deadlines run on \
                     the monotonic clock and did not move, event times follow the new clock",
                    step.by_ms.abs() as f64 / 1000.0
                );
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_either_way_slew_never() {
        let mut d = StepDetector::new(STEP_THRESHOLD);
        let wall0 = 1_800_000_000_000;
        assert_eq!(d.observe(0, wall0), None);
        // A second later, 0.4 ms fast: slew.
        assert_eq!(d.observe(1_000, wall0 + 1_000), None);
        // A slow slew over an hour never adds up.
        let mut wall = wall0 + 1_000;
        for s in 2..3_600 {
            wall += 1_000 + if s % 2 == 0 { 1 } else { 0 };
            assert_eq!(d.observe(s * 1_000, wall), None, "{s}");
        }
        // Forward an hour.
        let step = d.observe(3_600_000, wall + 1_000 + 3_600_000);
        assert_eq!(step.map(|s| s.by_ms), Some(3_600_000));
        // And back.
        let step = d.observe(3_601_000, wall + 2_000);
        assert_eq!(step.map(|s| s.by_ms), Some(-3_600_000));
        // 2 s is not a step, 2.001 s is.
        assert_eq!(d.observe(3_602_000, wall + 3_000 + 2_000), None);
        let step = d.observe(3_603_000, wall + 4_000 + 2_000 + 2_001);
        assert_eq!(step.map(|s| s.by_ms), Some(2_001));
    }

    #[test]
    fn status_counts_both_ways() {
        let s = ClockState::default();
        s.record(Step {
            by_ms: 3_600_000,
            wall_ms: 1_800_000_000_000,
        });
        s.record(Step {
            by_ms: -3_600_000,
            wall_ms: 1_800_000_001_000,
        });
        let v = s.status();
        assert_eq!(v["steps"], 2);
        assert_eq!(v["forward"], 1);
        assert_eq!(v["last_step"]["seconds"], -3600.0);
        assert_eq!(v["last_step"]["at"], "2027-01-15T08:00:01.000Z");
    }
}
