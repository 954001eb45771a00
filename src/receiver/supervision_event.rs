//! A supervision change as an event: its code, its text, and its name (the event id),
//! which every receiver of a station gives it alike.
//!
//! The id does not depend on the receiver nor on when the change was noticed: it is
//! derived from account, path (one path's events only), code and the start of the
//! silence, the wall-clock time of the last hearing by any receiver, as stamped by the one
//! that heard it. Two receivers raising the same failure, or one raising it again after a
//! crash, give one id, and the bus's duplicate window keeps one event. A new silence of the
//! same path starts at a later hearing, so it never reuses an earlier failure's id.

use super::event::Event;
use super::supervision::Change;
use crate::protocol::codes::{Category, EventClass, Qualifier};

/// Event codes of supervision.
pub const CODE_PATH_FAIL: &str = "path_fail";
pub const CODE_PATH_RESTORE: &str = "path_restore";
pub const CODE_COMM_FAIL: &str = "comm_fail";
pub const CODE_COMM_RESTORE: &str = "comm_restore";

/// A wall-clock stamp in milliseconds as a time.
pub fn wall_time(ms: i64) -> time::UtcDateTime {
    time::UtcDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(time::UtcDateTime::UNIX_EPOCH)
}

impl Change {
    /// The normalized event for this change, stamped `now` by `receiver`, named as the
    /// module doc says.
    pub fn to_event(&self, receiver: &str, now: time::UtcDateTime) -> Event {
        let when = |ms: i64| super::event::panel_rfc3339(wall_time(ms));
        let (account, path, id_path, code, qualifier, since, text) = match self {
            Change::PathFailed {
                account,
                path,
                silent_since_ms,
            } => (
                account,
                path.clone(),
                path.as_str(),
                CODE_PATH_FAIL,
                Qualifier::New,
                *silent_since_ms,
                format!(
                    "Path {path} of {account} silent since {} (other paths still report)",
                    when(*silent_since_ms)
                ),
            ),
            Change::PathRestored {
                account,
                path,
                silent_since_ms,
            } => (
                account,
                path.clone(),
                path.as_str(),
                CODE_PATH_RESTORE,
                Qualifier::Restore,
                *silent_since_ms,
                format!("Path {path} of {account} heard again"),
            ),
            Change::AllFailed {
                account,
                paths,
                silent_since_ms,
            } => (
                account,
                paths.join(","),
                "",
                CODE_COMM_FAIL,
                Qualifier::New,
                *silent_since_ms,
                format!(
                    "{account} silent on every path ({}) since {}",
                    paths.join(", "),
                    when(*silent_since_ms)
                ),
            ),
            Change::AllRestored {
                account,
                path,
                silent_since_ms,
            } => (
                account,
                path.clone(),
                "",
                CODE_COMM_RESTORE,
                Qualifier::Restore,
                *silent_since_ms,
                format!("{account} heard again (path {path})"),
            ),
        };
        let mut h = xxhash_rust::xxh3::Xxh3::new();
        for part in ["supervision", account.as_str(), id_path, code] {
            h.update(part.as_bytes());
            h.update(&[0x1F]);
        }
        h.update(&since.to_le_bytes());
        let mut e = Event::internal(
            crate::receiver::event_id::EventId::from_hash(h.digest128()),
            now,
            receiver,
            account,
            code,
            (qualifier, EventClass::Supervision, Category::Communication),
            text,
        );
        e.path = Some(path);
        // The start of the silence, to the millisecond: what a restarted receiver needs
        // to name the restore as its peers do.
        if qualifier == Qualifier::New {
            e.event_time = Some(super::event::rfc3339(wall_time(since)).to_string());
        }
        e
    }

    /// The start of the silence this change is about.
    pub fn silent_since_ms(&self) -> i64 {
        match self {
            Change::PathFailed {
                silent_since_ms, ..
            }
            | Change::PathRestored {
                silent_since_ms, ..
            }
            | Change::AllFailed {
                silent_since_ms, ..
            }
            | Change::AllRestored {
                silent_since_ms, ..
            } => *silent_since_ms,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_events_carry_the_start_of_the_silence() {
        let ch = Change::AllFailed {
            account: "12".into(),
            paths: vec!["L1".into(), "L2".into()],
            silent_since_ms: 1_800_000_000_123,
        };
        let e = ch.to_event("rx", time::UtcDateTime::now());
        assert_eq!(e.path.as_deref(), Some("L1,L2"));
        assert_eq!(e.event_time.as_deref(), Some("2027-01-15T08:00:00.123Z"));
        let later = ch.to_event("other", time::UtcDateTime::now());
        assert_eq!(e.id, later.id);
    }
}
