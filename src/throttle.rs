//! A budget for repetitive log lines: a flood of bad frames, a full disk or a scanner must
//! cost its sender, not the disk under the system journal.
//!
//! Each place that may repeat a line owns a [`Throttle`]: up to its budget of lines pass in
//! each window (a second, or a minute), the rest are counted, and the count is reported by
//! the next line that passes (`suppressed = N`), so nothing goes unsaid, only unrepeated.
//! Throttles made with [`Throttle::per_minute`] also draw from one budget shared by the
//! whole process ([`SHARED_LINES_PER_MINUTE`]): when many kinds of trouble arrive at once
//! (every hostile peer together), the log still grows by at most that much a minute.
//!
//! Windows follow the monotonic clock ([`Throttle::check_now`]): a step of the wall clock,
//! either way, neither opens a fresh window early nor holds one shut for an hour.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Instant;

/// Lines a minute that all [`Throttle::per_minute`] throttles together may let through.
/// Each of them has its own, smaller budget, so one noisy cause cannot take all of it.
pub const SHARED_LINES_PER_MINUTE: u64 = 40;

static SHARED: Window = Window::new(SHARED_LINES_PER_MINUTE, 60);

/// Lines counted in the current window: one atomic, no lock.
struct Window {
    budget: u64,
    /// Seconds per window.
    len: u64,
    /// Current window number in the high 32 bits, lines let through in it in the low 32.
    state: AtomicU64,
}

impl Window {
    const fn new(budget: u64, len: u64) -> Window {
        Window {
            budget,
            len,
            state: AtomicU64::new(0),
        }
    }

    /// Takes one line from the budget of the window holding `secs`; false if none is left.
    fn take(&self, secs: u64) -> bool {
        let window = (secs / self.len.max(1)) & 0xFFFF_FFFF;
        let prev = self
            .state
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |s| {
                let (w, n) = (s >> 32, s & 0xFFFF_FFFF);
                Some(if w == window {
                    (w << 32) | (n + 1).min(0xFFFF_FFFF)
                } else {
                    (window << 32) | 1
                })
            })
            .unwrap_or(0);
        let (w, n) = (prev >> 32, prev & 0xFFFF_FFFF);
        let used = if w == window { n } else { 0 };
        used < self.budget
    }
}

/// The rate limit of one kind of log line.
pub struct Throttle {
    own: Window,
    shared: Option<&'static Window>,
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

/// Seconds on the monotonic clock since the first call in this process.
pub fn monotonic_secs() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_secs()
}

impl Throttle {
    /// Up to `per_second` lines a second, outside the shared budget: for lines whose
    /// volume was sized on its own (one per supervision change, with a count).
    pub const fn new(per_second: u64) -> Throttle {
        Throttle {
            own: Window::new(per_second, 1),
            shared: None,
            suppressed: AtomicU64::new(0),
        }
    }

    /// Up to `per_minute` lines a minute, and only while the process-wide budget
    /// ([`SHARED_LINES_PER_MINUTE`]) lasts: for lines a peer, a disk or a flood can repeat
    /// at will.
    pub const fn per_minute(per_minute: u64) -> Throttle {
        Throttle {
            own: Window::new(per_minute, 60),
            shared: Some(&SHARED),
            suppressed: AtomicU64::new(0),
        }
    }

    /// The verdict for one line at `now_secs`, a count of seconds on any clock that does
    /// not go back (tests pass their own).
    pub fn check(&self, now_secs: u64) -> Verdict {
        let pass = self.own.take(now_secs) && self.shared.is_none_or(|w| w.take(now_secs));
        if pass {
            Verdict::Log {
                suppressed: self.suppressed.swap(0, Ordering::Relaxed),
            }
        } else {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            Verdict::Drop
        }
    }

    /// [`Throttle::check`] at the present second of the monotonic clock.
    pub fn check_now(&self) -> Verdict {
        self.check(monotonic_secs())
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

    /// A minute throttle drawing from a shared budget of its own, so that tests running
    /// at once do not share the process's.
    fn minute(per_minute: u64, shared: &'static Window) -> Throttle {
        Throttle {
            own: Window::new(per_minute, 60),
            shared: Some(shared),
            suppressed: AtomicU64::new(0),
        }
    }

    #[test]
    fn a_minute_budget_spans_the_minute() {
        static BUDGET: Window = Window::new(SHARED_LINES_PER_MINUTE, 60);
        let base = 1020; // windows start at multiples of a minute
        let t = minute(2, &BUDGET);
        assert!(matches!(t.check(base), Verdict::Log { .. }));
        assert!(matches!(t.check(base + 30), Verdict::Log { .. }));
        assert_eq!(t.check(base + 59), Verdict::Drop);
        assert_eq!(t.check(base + 60), Verdict::Log { suppressed: 1 });
    }

    #[test]
    fn the_shared_budget_caps_all_minute_throttles_together() {
        static BUDGET: Window = Window::new(SHARED_LINES_PER_MINUTE, 60);
        let base = 1000;
        let many: Vec<Throttle> = (0..8).map(|_| minute(10, &BUDGET)).collect();
        let passed = many
            .iter()
            .flat_map(|t| (0..20).map(move |_| t.check(base)))
            .filter(|v| matches!(v, Verdict::Log { .. }))
            .count() as u64;
        assert_eq!(passed, SHARED_LINES_PER_MINUTE);
        let dropped: u64 = many.iter().map(Throttle::take_suppressed).sum();
        assert_eq!(dropped, 8 * 20 - SHARED_LINES_PER_MINUTE);
    }

    #[test]
    fn the_monotonic_clock_counts_from_the_first_use() {
        let a = monotonic_secs();
        let b = monotonic_secs();
        assert!(b >= a);
        assert!(a < 3600, "seconds since the process began, not since 1970");
    }
}
