//! Supervision across restarts: which paths were in failure, so that a restart neither
//! repeats their failure events nor forgets to send their restore.
//!
//! The daemon keeps a snapshot file (`supervision.json` in the data directory; reading
//! and writing it is the supervision task's business, not this module's). At start the
//! snapshot is loaded and the supervision events journaled after it are applied on top,
//! so a crash loses nothing. Paths not in failure need no state: each gets a fresh
//! interval at start.
//!
//! "After it" is by journal position when the snapshot records one (the wall clock may
//! have stepped back since, so a time would skip events), by time otherwise (files
//! written before positions were recorded).

use serde::{Deserialize, Serialize};

use super::event::Event;
use super::supervision::{CODE_COMM_FAIL, CODE_COMM_RESTORE, CODE_PATH_FAIL, CODE_PATH_RESTORE};

/// A path in failure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailedPath {
    pub account: String,
    pub path: String,
    /// Unix seconds: when the failure was raised.
    pub since: u64,
    /// The whole site was cut off.
    pub all: bool,
    /// Wall-clock milliseconds of the last hearing before the silence: it names the
    /// restore as every receiver names it. Absent in files written before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub silent_since_ms: Option<i64>,
}

/// The snapshot: paths in failure as of `taken_micros`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    pub taken_micros: i64,
    pub failed: Vec<FailedPath>,
    /// The journal's durable position when the snapshot was stored: every supervision
    /// record up to it is in `failed`, every later one is not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lsn: Option<u64>,
    /// Peer receivers heard lately (station-wide supervision): after a restart, a peer
    /// that cannot be heard yet is still waited for.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub peers: Vec<String>,
}

impl Snapshot {
    /// Whether a supervision record at `lsn`, journaled at `ts_micros`, is newer than
    /// the snapshot.
    pub fn is_newer(&self, lsn: u64, ts_micros: i64) -> bool {
        match self.lsn {
            Some(l) => lsn > l,
            None => ts_micros >= self.taken_micros,
        }
    }

    /// Applies supervision events journaled at `ts_micros`.
    pub fn apply(&mut self, events: &[Event], ts_micros: i64) {
        let since = u64::try_from(ts_micros / 1_000_000).unwrap_or(0);
        for e in events {
            let Some(path) = e.path.as_deref() else {
                continue;
            };
            let silent_since_ms = e.event_time.as_deref().and_then(parse_millis);
            match e.code.as_str() {
                CODE_PATH_FAIL => self.set(&e.account, path, since, silent_since_ms, false),
                CODE_COMM_FAIL => {
                    // The event names every path; each is now silent.
                    for p in path.split(',') {
                        self.set(&e.account, p, since, silent_since_ms, true);
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

    fn set(
        &mut self,
        account: &str,
        path: &str,
        since: u64,
        silent_since_ms: Option<i64>,
        all: bool,
    ) {
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
                silent_since_ms,
            }),
        }
    }
}

/// `2027-01-15T08:00:00.123Z` as milliseconds since the Unix epoch.
fn parse_millis(text: &str) -> Option<i64> {
    let t =
        time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()?;
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()
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
            silent_since_ms: 900_250,
        }
        .to_event("rx", now);
        s.apply(&[fail], 1_000_000_000);
        assert_eq!(s.failed.len(), 2);
        assert_eq!(s.failed[0].since, 1_000);
        assert_eq!(s.failed[0].silent_since_ms, Some(900_250));
        let back = Change::AllRestored {
            account: "12".into(),
            path: "L1".into(),
            silent_since_ms: 900_250,
        }
        .to_event("rx", now);
        s.apply(&[back], 1_001_000_000);
        assert_eq!(s.failed.len(), 1);
        assert_eq!(s.failed[0].path, "L2");
        assert!(!s.failed[0].all);
    }

    #[test]
    fn newer_is_by_position_when_known() {
        let by_time = Snapshot {
            taken_micros: 5_000,
            ..Snapshot::default()
        };
        assert!(by_time.is_newer(1, 5_000));
        assert!(!by_time.is_newer(99, 4_999));
        // The clock stepped back after the snapshot: a later record with an earlier time.
        let by_lsn = Snapshot {
            taken_micros: 5_000,
            lsn: Some(10),
            ..Snapshot::default()
        };
        assert!(by_lsn.is_newer(11, 1_000));
        assert!(!by_lsn.is_newer(10, 9_000));
    }

    #[test]
    fn files_without_the_new_fields_still_load() {
        let old =
            r#"{"taken_micros":7,"failed":[{"account":"1","path":"*","since":3,"all":true}]}"#;
        let s: Snapshot = serde_json::from_str(old).unwrap();
        assert_eq!(s.failed[0].silent_since_ms, None);
        assert_eq!((s.lsn, s.peers.len()), (None, 0));
    }
}
