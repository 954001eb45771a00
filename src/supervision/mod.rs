//! Supervision, running: one task owns the [`Supervisor`] state machine and everything
//! that talks to it goes through messages. Its lifecycle is here: start (state rebuilt
//! from the snapshot and the journal), reload, the `/status` and `/diag` views, drain and
//! the snapshot at stop.
//!
//! - **The frame path** hands each acknowledged frame's hearing to [`Inbox::heard`]: a
//!   `try_send` of a small value (account and path inline, two clock readings) on a
//!   bounded channel. It never waits and never locks. The channel is bounded so a flood
//!   cannot grow memory (at most [`INBOX`] hearings, about 5 MB); a hearing that finds it
//!   full is counted, and the task, seeing the count move, treats every path as heard at
//!   that moment ([`Supervisor`]'s amnesty): a lost hearing can make a failure late by one
//!   interval, never false. (An unbounded channel would trade that for memory without
//!   limit; a blocking send would make panels wait for supervision.)
//! - **The task** sleeps on one timer, armed from `poll_timeout` (the next second that has
//!   a deadline), instead of ticking every second: a quiet station wakes only when a path
//!   is due, and a wheel pass costs the same whether it is one second late or on time.
//!   After taking a batch of hearings it stops reading them for [`COALESCE`], so a busy
//!   station wakes it about ten times a second rather than once per frame; before any
//!   deadline is judged, every queued hearing is applied first.
//! - **Changes** go to the recorder task (journal, then snapshot, in order): a restore
//!   never holds a panel's ACK back, and supervision never waits on the disk.
//! - **Status** reads a view the task publishes when something changed (at most one
//!   rebuild per twenty times what the last one cost, so a station with a million paths in
//!   failure does not spend its time listing them); **diag** and **reload** are messages.
//! - **Sharing** (`bus.rs`, `peers.rs`): with `[bus.nats]` and `[supervision] share`, the
//!   task sends what it heard each second and applies what peers heard; see
//!   `docs/supervision.md` for what happens while the bus is split or down.

pub mod bus;
pub mod peers;
mod recorder;
pub mod snapshot;
mod task;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::journal::JournalHandle;
use crate::ops::config::Settings;
use crate::ops::metrics::Metrics;
use crate::receiver::decide::Heard;
use crate::receiver::supervision::{wall_time, PathView, Stamp, Supervisor};
use crate::receiver::supervision_state::Snapshot;
use crate::throttle::{Throttle, Verdict};

/// Hearings queued at most between the frame path and the task (about 80 bytes each).
pub const INBOX: usize = 65_536;

/// How long the task leaves hearings queued after taking a batch.
pub const COALESCE: Duration = Duration::from_millis(100);

/// One acknowledged frame, for supervision.
#[derive(Debug)]
pub struct Hearing {
    pub heard: Heard,
    pub at: Stamp,
}

static STOPPED_LOG: Throttle = Throttle::new(1);

/// The frame path's end of supervision.
#[derive(Clone)]
pub struct Inbox {
    tx: mpsc::Sender<Hearing>,
    dropped: Arc<AtomicU64>,
}

impl Inbox {
    /// An inbox and the queue it feeds, without a task behind it: for benchmarks and
    /// tests of the frame path's side alone.
    pub fn detached(capacity: usize) -> (Inbox, mpsc::Receiver<Hearing>) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let inbox = Inbox {
            tx,
            dropped: Arc::new(AtomicU64::new(0)),
        };
        (inbox, rx)
    }

    /// Hearings that found the queue full (or supervision stopped) since start.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// `heard` was acknowledged at `at`. Never waits.
    pub fn heard(&self, heard: Heard, at: Stamp) {
        match self.tx.try_send(Hearing { heard, at }) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
            Err(TrySendError::Closed(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                if let Verdict::Log { suppressed } = STOPPED_LOG.check_now() {
                    tracing::error!(
                        suppressed,
                        "supervision is not running: sites are not watched for silence"
                    );
                }
            }
        }
    }
}

/// One path in failure, for `/status`.
#[derive(Debug, Clone)]
pub struct Failure {
    pub account: String,
    pub path: String,
    /// Wall-clock ms the failure was raised.
    pub since_ms: i64,
}

/// One peer receiver, for `/status`.
#[derive(Debug, Clone)]
pub struct PeerView {
    pub receiver: String,
    pub state: peers::PeerState,
    pub last_beat: Option<Instant>,
}

/// What the task publishes for `/status`.
#[derive(Debug, Clone, Default)]
pub struct View {
    pub paths: usize,
    pub failed: usize,
    pub held: usize,
    /// Longest in failure first; ties by account and path.
    pub failures: Arc<Vec<Failure>>,
    pub sharing: bool,
    pub holding: bool,
    pub peers: Vec<PeerView>,
}

enum Control {
    Reload(Arc<Settings>),
    Site {
        account: String,
        reply: oneshot::Sender<Vec<PathView>>,
    },
}

/// What `/status`, `/diag` and reload hold: cheap to clone.
#[derive(Clone)]
pub struct Handle {
    control: mpsc::Sender<Control>,
    view: Arc<ArcSwap<View>>,
    dropped: Arc<AtomicU64>,
    alive: Arc<AtomicBool>,
}

/// The running supervision: its handle, and the task to stop.
pub struct Supervision {
    pub handle: Handle,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

/// What supervision starts from.
pub struct Start {
    pub settings: Arc<Settings>,
    pub journal: JournalHandle,
    pub metrics: Arc<Metrics>,
    pub series: crate::ops::frame_series::FrameSeries,
    /// The last hour's counts, which supervision events join.
    pub recent: Arc<crate::ops::recent::Recent>,
    pub data_dir: std::path::PathBuf,
    /// The snapshot brought up to date with the journal.
    pub restored: Snapshot,
}

/// The present moment on both clocks.
pub fn now() -> Stamp {
    Stamp {
        at: Instant::now(),
        wall_ms: crate::clock::wall_ms(),
    }
}

impl Supervision {
    /// Builds the state machine from `start`, and starts the task (and, when the bus is
    /// configured and sharing is on, the sharing over the bus). Returns the frame path's
    /// inbox beside it.
    pub fn start(start: Start) -> (Supervision, Inbox) {
        let (tx, rx) = mpsc::channel(INBOX);
        let (control_tx, control_rx) = mpsc::channel(64);
        let dropped = Arc::new(AtomicU64::new(0));
        let alive = Arc::new(AtomicBool::new(true));
        let view = Arc::new(ArcSwap::from_pointee(View::default()));
        let stop = CancellationToken::new();
        let t = now();
        let mut sup = Supervisor::new(t.at);
        configure(&mut sup, &start.settings, t);
        for f in &start.restored.failed {
            let failed_at = i64::try_from(f.since).unwrap_or(0).saturating_mul(1000);
            sup.restore_failed(
                &f.account,
                &f.path,
                failed_at,
                f.silent_since_ms.unwrap_or(failed_at),
                f.all,
                t,
            );
        }
        tracing::info!(
            supervised_paths = sup.paths(),
            in_failure = sup.failed(),
            "supervision state rebuilt from its snapshot and the journal"
        );
        let task = task::Task::new(task::Parts {
            sup,
            start,
            inbox: rx,
            control: control_rx,
            dropped: Arc::clone(&dropped),
            alive: Arc::clone(&alive),
            view: Arc::clone(&view),
        });
        let task = tokio::spawn(task.run(stop.clone()));
        let handle = Handle {
            control: control_tx,
            view,
            dropped: Arc::clone(&dropped),
            alive,
        };
        (Supervision { handle, stop, task }, Inbox { tx, dropped })
    }

    /// Drains: applies what is queued, journals the last changes, stores the snapshot,
    /// says goodbye to peers. Called once no frame can arrive any more.
    pub async fn stop(self) {
        self.stop.cancel();
        if let Err(e) = self.task.await {
            tracing::error!(error = %e, "supervision task failed");
        }
    }
}

impl Handle {
    /// Applies a reloaded configuration (intervals, new and removed accounts).
    pub fn reload(&self, settings: Arc<Settings>) {
        if self.control.try_send(Control::Reload(settings)).is_err() {
            tracing::error!("supervision did not take the reloaded configuration (not running or busy); restart to apply it");
        }
    }

    /// What the task knows of `account`'s paths; `None` when it does not answer.
    pub async fn site(&self, account: String) -> Option<Vec<PathView>> {
        let (reply, answer) = oneshot::channel();
        self.control
            .send(Control::Site { account, reply })
            .await
            .ok()?;
        tokio::time::timeout(Duration::from_secs(5), answer)
            .await
            .ok()?
            .ok()
    }

    /// The `supervision` object of `/status`.
    pub fn status(&self) -> serde_json::Value {
        let v = self.view.load();
        let when = |ms: i64| crate::receiver::event::panel_rfc3339(wall_time(ms)).to_string();
        let now = Instant::now();
        serde_json::json!({
            "running": self.alive.load(Ordering::Relaxed),
            "paths": v.paths,
            "failed": v.failed,
            "held": v.held,
            "sites_in_failure": v.failures.iter().map(|f| serde_json::json!({
                "account": f.account, "path": f.path, "since": when(f.since_ms),
            })).collect::<Vec<_>>(),
            "sharing": v.sharing,
            "holding": v.holding,
            "peers": v.peers.iter().map(|p| serde_json::json!({
                "receiver": p.receiver,
                "state": p.state.as_str(),
                "last_beat_seconds_ago": p.last_beat.map(|t| {
                    (now.saturating_duration_since(t).as_millis() as f64 / 1000.0 * 10.0).round() / 10.0
                }),
            })).collect::<Vec<_>>(),
            "heard_dropped": self.dropped.load(Ordering::Relaxed),
        })
    }
}

/// Sets every account's interval from `settings`, starts the timers of those not yet
/// heard, and stops supervising accounts no longer configured with an interval.
fn configure(sup: &mut Supervisor, settings: &Settings, now: Stamp) {
    sup.retain_accounts(|id| {
        settings
            .accounts
            .get(id)
            .is_some_and(|a| a.supervision.is_some())
    });
    for (id, account) in settings.accounts.iter() {
        sup.configure(id, account.supervision);
        if account.supervision.is_some() {
            sup.arm(id, now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn heard(account: &str) -> Heard {
        Heard {
            account: account.into(),
            path: "L1".into(),
        }
    }

    /// The frame path's side: a full queue or a stopped task costs a count, never a wait.
    #[test]
    fn a_full_inbox_counts_and_never_waits() {
        let (inbox, mut queue) = Inbox::detached(2);
        for a in ["1", "2", "3", "4"] {
            inbox.heard(heard(a), now());
        }
        assert_eq!(inbox.dropped(), 2);
        assert_eq!(
            queue.try_recv().map(|h| h.heard.account).ok(),
            Some("1".into())
        );
        drop(queue);
        inbox.heard(heard("5"), now());
        assert_eq!(inbox.dropped(), 3);
    }
}
