//! Fault injection for tests: make the journal's `fdatasync` fail on demand, so that the
//! path a failing disk takes (every waiter refused, the journal re-opened and re-verified
//! in-process) is tested against a real daemon, not only described.
//!
//! Two ways in: a test in this crate arms a [`Faults`] and passes it in
//! [`JournalConfig::faults`](super::JournalConfig::faults); an end-to-end test sets the
//! environment variable [`ENV`] to a file path before starting a **debug** build of the
//! daemon, then writes a number N into that file: the next N syncs fail, and the file is
//! removed when read. Release builds never read the variable, so production behaviour has
//! no such hook.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

/// Environment variable naming the trigger file (debug builds only).
pub const ENV: &str = "TOCSIN_JOURNAL_FAULTS";

/// Failures waiting to be injected.
#[derive(Debug, Default)]
pub struct Faults {
    /// Syncs that succeed before the armed failures begin.
    ok_before: AtomicU64,
    /// Syncs still to fail.
    failing: AtomicU64,
    /// Read (and removed) before each sync, if set.
    trigger: Option<PathBuf>,
}

impl Faults {
    /// Fails `n` syncs after `after` more succeed.
    pub fn fail_syncs(after: u64, n: u64) -> Arc<Faults> {
        Arc::new(Faults {
            ok_before: AtomicU64::new(after),
            failing: AtomicU64::new(n),
            trigger: None,
        })
    }

    /// Fails the next `n` syncs.
    pub fn arm(&self, n: u64) {
        self.failing.fetch_add(n, Relaxed);
    }

    /// The hook of an end-to-end test, when [`ENV`] is set and this is a debug build.
    pub fn from_env() -> Option<Arc<Faults>> {
        if !cfg!(debug_assertions) {
            return None;
        }
        let path = std::env::var_os(ENV)?;
        tracing::warn!(trigger = ?path, "journal fault injection is armed (test builds only)");
        Some(Arc::new(Faults {
            trigger: Some(PathBuf::from(path)),
            ..Faults::default()
        }))
    }

    /// Whether the sync about to run must fail.
    pub(crate) fn sync_fails(&self) -> bool {
        if let Some(p) = &self.trigger {
            if let Ok(text) = std::fs::read_to_string(p) {
                let _ = std::fs::remove_file(p);
                let n = text.trim().parse().unwrap_or(1);
                self.failing.fetch_add(n, Relaxed);
            }
        }
        if self.failing.load(Relaxed) == 0 {
            return false;
        }
        let waited = self
            .ok_before
            .fetch_update(Relaxed, Relaxed, |n| n.checked_sub(1))
            .is_ok();
        if waited {
            return false;
        }
        self.failing
            .fetch_update(Relaxed, Relaxed, |n| n.checked_sub(1))
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fails_after_the_successes_then_stops() {
        let f = Faults::fail_syncs(2, 1);
        let seen: Vec<bool> = (0..5).map(|_| f.sync_fails()).collect();
        assert_eq!(seen, [false, false, true, false, false]);
    }

    #[test]
    fn a_trigger_file_arms_failures() {
        let tmp = tempfile::tempdir_in("/var/tmp").unwrap();
        let trigger = tmp.path().join("fail");
        let f = Faults {
            trigger: Some(trigger.clone()),
            ..Faults::default()
        };
        assert!(!f.sync_fails());
        std::fs::write(&trigger, "2\n").unwrap();
        assert!(f.sync_fails() && f.sync_fails());
        assert!(!f.sync_fails());
        assert!(!trigger.exists(), "the trigger is consumed");
    }
}
