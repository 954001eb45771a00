//! A budget for repetitive warnings: a flood of bad frames must cost its sender, not the
//! disk under the system journal. Up to `per_second` lines pass each second; the rest are
//! counted, and the count is reported by the first line of the next second.

use std::sync::atomic::{AtomicU64, Ordering};

pub struct Throttle {
    per_second: u64,
    /// Current second (since the Unix epoch) in the high 32 bits, lines logged in it in the
    /// low 32: one atomic, no lock.
    state: AtomicU64,
    suppressed: AtomicU64,
}

/// What the caller may do with one line.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Log it; `suppressed` lines were dropped since the last one logged.
    Log {
        suppressed: u64,
    },
    Drop,
}

impl Throttle {
    pub const fn new(per_second: u64) -> Throttle {
        Throttle {
            per_second,
            state: AtomicU64::new(0),
            suppressed: AtomicU64::new(0),
        }
    }

    pub fn check(&self, now_secs: u64) -> Verdict {
        let second = now_secs & 0xFFFF_FFFF;
        let prev = self
            .state
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |s| {
                let (sec, n) = (s >> 32, s & 0xFFFF_FFFF);
                Some(if sec == second {
                    (sec << 32) | (n + 1).min(0xFFFF_FFFF)
                } else {
                    (second << 32) | 1
                })
            })
            .unwrap_or(0);
        let (sec, n) = (prev >> 32, prev & 0xFFFF_FFFF);
        let used = if sec == second { n } else { 0 };
        if used < self.per_second {
            Verdict::Log {
                suppressed: self.suppressed.swap(0, Ordering::Relaxed),
            }
        } else {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            Verdict::Drop
        }
    }

    /// [`Throttle::check`] at the present second, for callers that have no time at hand.
    pub fn check_now(&self) -> Verdict {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        self.check(now)
    }

    /// The lines dropped since the last report, now, for a caller that reports them at the
    /// end of a burst instead of with the next line logged.
    pub fn take_suppressed(&self) -> u64 {
        self.suppressed.swap(0, Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_per_second() {
        let t = Throttle::new(3);
        for _ in 0..3 {
            assert!(matches!(t.check(10), Verdict::Log { .. }));
        }
        assert_eq!(t.check(10), Verdict::Drop);
        assert_eq!(t.check(10), Verdict::Drop);
        assert_eq!(t.check(11), Verdict::Log { suppressed: 2 });
    }

    #[test]
    fn suppressed_lines_can_be_reported_at_the_end_of_a_burst() {
        let t = Throttle::new(1);
        assert!(matches!(t.check(20), Verdict::Log { .. }));
        assert_eq!(t.check(20), Verdict::Drop);
        assert_eq!(t.check(20), Verdict::Drop);
        assert_eq!(t.take_suppressed(), 2);
        assert_eq!(t.take_suppressed(), 0);
        assert_eq!(t.check(21), Verdict::Log { suppressed: 0 });
    }
}
