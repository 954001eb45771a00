//! The retention task: runs [`crate::journal::Retention`] every minute, and at once when
//! the journal writer was refused a segment for want of space, so that what every sink has
//! delivered makes room for new alarms within a second rather than a minute.
//!
//! It owns the schedule and the log lines, not the rules (those are the journal's:
//! `journal/retention.rs`). Its lines are rate-limited: under space pressure a pass may run
//! every second.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::journal::{JournalHandle, Retention, RetentionPolicy};
use crate::throttle::{Throttle, Verdict};

/// Passes without pressure.
const EVERY: Duration = Duration::from_secs(60);
/// Passes under space pressure at most this often: a pass that frees nothing (every
/// segment still needed by a sink) must not spin.
const PRESSED_EVERY: Duration = Duration::from_secs(1);

static LOG: Throttle = Throttle::per_minute(6);

/// Runs until `stop`.
pub async fn run(journal: JournalHandle, policy: RetentionPolicy, stop: CancellationToken) {
    let mut r = match Retention::new(journal.data_dir()) {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "retention disabled");
            return;
        }
    };
    loop {
        let pressed = tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(EVERY) => false,
            _ = journal.space_wanted() => true,
        };
        let now = crate::station::micros(time::UtcDateTime::now());
        // Reads summaries, lists and unlinks files: off the async threads.
        let policy_now = policy.clone();
        let dir = journal.data_dir().to_path_buf();
        let joined = tokio::task::spawn_blocking(move || {
            let pass = r.run(&policy_now, now);
            (r, pass)
        })
        .await;
        let pass = match joined {
            Ok((back, pass)) => {
                r = back;
                pass.map_err(|e| (e, dir))
            }
            Err(e) => {
                tracing::error!(error = %e, "retention pass stopped abnormally; retention disabled");
                return;
            }
        };
        match pass {
            Ok(rep) if !rep.deleted.is_empty() => {
                if let Verdict::Log { suppressed } = LOG.check_now() {
                    tracing::info!(
                        segments = rep.deleted.len(),
                        bytes = rep.deleted_bytes,
                        for_space = rep.deleted_for_space,
                        unpublished = rep.unpublished_records_deleted,
                        suppressed,
                        "journal retention"
                    );
                }
            }
            Ok(rep) => {
                if let Some(lsn) = rep.held_by_cursor {
                    if let Verdict::Log { suppressed } = LOG.check_now() {
                        tracing::warn!(held_at_lsn = lsn, space_short = rep.space_short, suppressed, "journal over its limits or short of space, but records are not yet delivered by every sink; keeping them");
                    }
                }
            }
            Err((e, dir)) => {
                if let Verdict::Log { suppressed } = LOG.check_now() {
                    tracing::error!(error = %e, dir = %dir.display(), suppressed, "journal retention failed");
                }
            }
        }
        if pressed {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(PRESSED_EVERY) => {}
            }
        }
    }
}
