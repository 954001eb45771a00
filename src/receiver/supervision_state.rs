//! Supervision across restarts: which paths were in failure, so that a restart neither
//! repeats their failure events nor forgets to send their restore.
//!
//! A snapshot file (`supervision.json` in the data directory) is written every few seconds
//! and at shutdown, atomically (temporary file, fsync, rename). At start the snapshot is
//! loaded and the supervision events journaled after it are applied on top, so a crash
//! loses nothing. Paths not in failure need no state: each gets a fresh interval at start.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::event::Event;
use super::supervision::{CODE_COMM_FAIL, CODE_COMM_RESTORE, CODE_PATH_FAIL, CODE_PATH_RESTORE};

/// A path in failure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailedPath {
    pub account: String,
    pub path: String,
    /// Unix seconds.
    pub since: u64,
    /// The whole site was cut off.
    pub all: bool,
}

/// The snapshot: paths in failure as of `taken_micros`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Snapshot {
    pub taken_micros: i64,
    pub failed: Vec<FailedPath>,
}

impl Snapshot {
    /// Applies supervision events journaled at `ts_micros`.
    pub fn apply(&mut self, events: &[Event], ts_micros: i64) {
        let since = u64::try_from(ts_micros / 1_000_000).unwrap_or(0);
        for e in events {
            let Some(path) = e.path.as_deref() else {
                continue;
            };
            match e.code.as_str() {
                CODE_PATH_FAIL => self.set(&e.account, path, since, false),
                CODE_COMM_FAIL => {
                    // The event names every path; each is now silent.
                    for p in path.split(',') {
                        self.set(&e.account, p, since, true);
                    }
                }
                CODE_PATH_RESTORE | CODE_COMM_RESTORE => {
                    self.failed
                        .retain(|f| !(f.account == e.account && f.path == path));
                    if e.code == CODE_COMM_RESTORE {
                        for f in self.failed.iter_mut().filter(|f| f.account == e.account) {
                            f.all = false;
                        }
                    }
                }
                _ => {}
            }
        }
    }

    fn set(&mut self, account: &str, path: &str, since: u64, all: bool) {
        match self
            .failed
            .iter_mut()
            .find(|f| f.account == account && f.path == path)
        {
            Some(f) => f.all |= all,
            None => self.failed.push(FailedPath {
                account: account.to_string(),
                path: path.to_string(),
                since,
                all,
            }),
        }
    }
}

/// Loads the snapshot; a missing or unreadable file is an empty snapshot (every path then
/// starts with a fresh interval, which is the safe side).
pub fn load(path: &Path) -> Snapshot {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            tracing::warn!(path = %path.display(), error = %e, "supervision snapshot unreadable; starting without it");
            Snapshot::default()
        }),
        Err(_) => Snapshot::default(),
    }
}

/// Writes the snapshot atomically.
pub fn store(path: &Path, snapshot: &Snapshot) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("json.tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(&serde_json::to_vec(snapshot).unwrap_or_default())?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::receiver::supervision::Change;

    #[test]
    fn events_fold_into_state() {
        let now = time::UtcDateTime::from_unix_timestamp(1_000).unwrap();
        let mut s = Snapshot::default();
        let fail = Change::AllFailed {
            account: "12".into(),
            paths: vec!["L1".into(), "L2".into()],
            silent_since: 900,
        }
        .to_event("rx", now);
        s.apply(&[fail], 1_000_000_000);
        assert_eq!(s.failed.len(), 2);
        let back = Change::AllRestored {
            account: "12".into(),
            path: "L1".into(),
        }
        .to_event("rx", now);
        s.apply(&[back], 1_001_000_000);
        assert_eq!(s.failed.len(), 1);
        assert_eq!(s.failed[0].path, "L2");
        assert!(!s.failed[0].all);
    }
}
