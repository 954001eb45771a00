//! Frames of the last hour, by reply, for `/status` ("frames and NAKs in the last hour").
//!
//! Prometheus counters only ever grow, and a status page must not need a time-series
//! database to say what happened in the last hour. So the daemon keeps its own small ring:
//! 60 one-minute slots, each tagged with the minute it counts, so a slot left over from an
//! earlier turn of the ring is recognised as stale and ignored (or reset on write) without
//! a timer. Pure: time is a parameter (seconds since the Unix epoch).

use std::sync::Mutex;

/// Slots in the ring: one per minute of the hour.
pub const SLOTS: usize = 60;

/// Frames counted by reply.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Counts {
    pub ack: u64,
    pub nak: u64,
    pub duh: u64,
    pub none: u64,
}

impl Counts {
    /// Every frame, whatever its reply.
    pub fn frames(&self) -> u64 {
        self.ack
            .saturating_add(self.nak)
            .saturating_add(self.duh)
            .saturating_add(self.none)
    }

    fn add(&mut self, other: &Counts) {
        self.ack = self.ack.saturating_add(other.ack);
        self.nak = self.nak.saturating_add(other.nak);
        self.duh = self.duh.saturating_add(other.duh);
        self.none = self.none.saturating_add(other.none);
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    /// The minute (seconds / 60) these counts belong to.
    minute: u64,
    counts: Counts,
}

/// A ring of per-minute counts covering the last 60 minutes.
#[derive(Debug, Clone)]
pub struct Ring {
    slots: [Slot; SLOTS],
}

impl Default for Ring {
    fn default() -> Self {
        Ring {
            slots: [Slot::default(); SLOTS],
        }
    }
}

impl Ring {
    /// Counts one frame with reply `outcome` (`ack`, `nak`, `duh`, `none`) at `now_s`.
    /// Unknown labels count as `none`: every frame is counted once.
    pub fn record(&mut self, now_s: u64, outcome: &str) {
        let minute = now_s / 60;
        let Some(slot) = self.slots.get_mut((minute % SLOTS as u64) as usize) else {
            return;
        };
        if slot.minute != minute {
            *slot = Slot {
                minute,
                counts: Counts::default(),
            };
        }
        let c = &mut slot.counts;
        let n = match outcome {
            "ack" => &mut c.ack,
            "nak" => &mut c.nak,
            "duh" => &mut c.duh,
            _ => &mut c.none,
        };
        *n = n.saturating_add(1);
    }

    /// The sums over the current minute and the 59 before it.
    pub fn last_hour(&self, now_s: u64) -> Counts {
        let now_min = now_s / 60;
        let oldest = now_min.saturating_sub(SLOTS as u64 - 1);
        let mut total = Counts::default();
        for s in &self.slots {
            if s.minute >= oldest && s.minute <= now_min {
                total.add(&s.counts);
            }
        }
        total
    }
}

/// The ring shared by connection tasks; the lock is held for a few additions.
#[derive(Debug, Default)]
pub struct Recent(Mutex<Ring>);

impl Recent {
    pub fn record(&self, now_s: u64, outcome: &str) {
        if let Ok(mut r) = self.0.lock() {
            r.record(now_s, outcome);
        }
    }

    pub fn last_hour(&self, now_s: u64) -> Counts {
        self.0
            .lock()
            .map(|r| r.last_hour(now_s))
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_700_000_000;

    #[test]
    fn counts_by_reply() {
        let mut r = Ring::default();
        for o in ["ack", "ack", "nak", "duh", "none", "weird"] {
            r.record(T0, o);
        }
        let c = r.last_hour(T0);
        assert_eq!(
            c,
            Counts {
                ack: 2,
                nak: 1,
                duh: 1,
                none: 2
            }
        );
        assert_eq!(c.frames(), 6);
    }

    #[test]
    fn old_minutes_drop_out() {
        let mut r = Ring::default();
        r.record(T0, "ack");
        r.record(T0 + 30 * 60, "nak");
        // 59 minutes later the first is still in the hour.
        assert_eq!(r.last_hour(T0 + 59 * 60).frames(), 2);
        // An hour later it is not, though its slot was never overwritten.
        let c = r.last_hour(T0 + 61 * 60);
        assert_eq!((c.ack, c.nak), (0, 1));
        // Writing into a slot from an earlier turn resets it first.
        r.record(T0 + 60 * 60, "duh");
        let c = r.last_hour(T0 + 60 * 60);
        assert_eq!((c.ack, c.nak, c.duh), (0, 1, 1));
    }

    #[test]
    fn future_slots_ignored_after_clock_step_back() {
        let mut r = Ring::default();
        r.record(T0 + 3600 * 5, "ack");
        assert_eq!(r.last_hour(T0).frames(), 0);
        r.record(T0, "nak");
        assert_eq!(r.last_hour(T0).nak, 1);
    }

    #[test]
    fn shared() {
        let r = Recent::default();
        r.record(T0, "ack");
        assert_eq!(r.last_hour(T0 + 10).ack, 1);
    }
}
