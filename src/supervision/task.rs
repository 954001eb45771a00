//! The supervision task: the one owner of the [`Supervisor`], driven by hearings, peers'
//! beats, control messages and one timer. See the module doc of [`super`] for why it is
//! shaped this way.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use compact_str::CompactString;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::bus::{Incoming, Outgoing};
use super::peers::{PeerNews, PeerState, Peers, BEAT_EVERY, SHARE_DELAY};
use super::recorder::{Job, Recorder};
use super::{configure, now, Control, Failure, Hearing, PeerView, Start, View, COALESCE};
use crate::ops::metrics::Metrics;
use crate::receiver::supervision::{wall_time, Change, Stamp, Supervisor};
use crate::throttle::{Throttle, Verdict};

/// Hearings taken from the inbox at once.
const BATCH: usize = 4096;

/// The snapshot is stored this long after the state changed (a crash in between costs
/// nothing: the journal has the changes).
const STORE_AFTER_CHANGE: Duration = Duration::from_secs(10);

/// ... and this often when nothing changed, so that a restart reads the journal from a
/// recent position.
const STORE_ANYWAY: Duration = Duration::from_secs(300);

static LOST_LOG: Throttle = Throttle::new(1);

/// Sets `alive` to false when the task ends, however it ends (a panic included).
struct Alive(Arc<AtomicBool>);

impl Drop for Alive {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Relaxed);
    }
}

pub(super) struct Parts {
    pub sup: Supervisor,
    pub start: Start,
    pub inbox: mpsc::Receiver<Hearing>,
    pub control: mpsc::Receiver<Control>,
    pub dropped: Arc<AtomicU64>,
    pub alive: Arc<AtomicBool>,
    pub view: Arc<ArcSwap<View>>,
}

/// Sharing with peers over the bus.
struct Share {
    peers: Peers,
    /// Paths heard here since the last beat.
    outgoing: HashMap<(CompactString, CompactString), Stamp>,
    lost_at: Option<Instant>,
    to_bus: mpsc::Sender<Outgoing>,
    next_beat: Instant,
    last_tick: Instant,
    bus: tokio::task::JoinHandle<()>,
    /// When this receiver's own beat first came back from the bus. Until then, and for
    /// [`SETTLE`] after, it cannot know which peers are alive (their beats may be on the
    /// way), so it acts as if one were unheard: failures wait, never a false one at start.
    listening_since: Option<Instant>,
}

/// Time after the first own beat came back within which every live peer's beat has
/// arrived too (they beat every [`BEAT_EVERY`]).
const SETTLE: Duration = Duration::from_secs(2);

impl Share {
    /// The bus has been read long enough for the peers table to be trusted.
    fn settled(&self, now: Instant) -> bool {
        self.listening_since.is_some_and(|t| now >= t + SETTLE)
    }

    /// Some peer may be hearing sites this receiver does not know about: one is unheard,
    /// or the peers are not known yet.
    fn in_doubt(&self, now: Instant) -> bool {
        !self.settled(now) || self.peers.any_unheard(now)
    }
}

pub(super) struct Task {
    sup: Supervisor,
    /// When the task started: the earliest moment its state machine knows.
    origin: Instant,
    receiver: Arc<str>,
    metrics: Arc<Metrics>,
    hold: Duration,
    inbox: mpsc::Receiver<Hearing>,
    inbox_open: bool,
    control: mpsc::Receiver<Control>,
    dropped: Arc<AtomicU64>,
    dropped_seen: u64,
    alive: Alive,
    recorder: mpsc::UnboundedSender<Job>,
    recorder_task: tokio::task::JoinHandle<()>,
    share: Option<Share>,
    from_bus: Option<mpsc::Receiver<Incoming>>,
    view: Arc<ArcSwap<View>>,
    view_version: u64,
    view_peers_dirty: bool,
    view_next: Instant,
    failures: Arc<Vec<Failure>>,
    refused_counted: u64,
    stored_version: u64,
    stored_peers: Vec<String>,
    stored_at: Instant,
    stop_bus: CancellationToken,
}

impl Task {
    pub(super) fn new(p: Parts) -> Task {
        let Start {
            settings,
            journal,
            metrics,
            series,
            recent,
            data_dir,
            restored,
        } = p.start;
        let (recorder, jobs) = mpsc::unbounded_channel();
        let recorder_task = tokio::spawn(
            Recorder {
                journal,
                metrics: Arc::clone(&metrics),
                series,
                recent,
                snapshot_path: super::snapshot::path_in(&data_dir),
            }
            .run(jobs),
        );
        let config = &settings.config;
        let receiver: Arc<str> = Arc::from(config.receiver.id.as_str());
        let stop_bus = CancellationToken::new();
        let (share, from_bus) = match (&config.bus.nats, config.supervision.share) {
            (Some(nats), true) => {
                let (to_bus, out) = mpsc::channel(8);
                let (into, from_bus) = mpsc::channel(256);
                let bus = tokio::spawn(super::bus::run(
                    nats.clone(),
                    receiver.to_string(),
                    out,
                    into,
                    Arc::clone(&metrics),
                    stop_bus.clone(),
                ));
                let now = Instant::now();
                let mut peers = Peers::new(&receiver);
                for name in &restored.peers {
                    peers.expect(name, now);
                }
                let share = Share {
                    peers,
                    outgoing: HashMap::new(),
                    lost_at: None,
                    to_bus,
                    next_beat: now + BEAT_EVERY,
                    last_tick: now,
                    bus,
                    listening_since: None,
                };
                (Some(share), Some(from_bus))
            }
            _ => (None, None),
        };
        let now = Instant::now();
        let mut task = Task {
            sup: p.sup,
            origin: now,
            receiver,
            metrics,
            hold: config.supervision.hold,
            inbox: p.inbox,
            inbox_open: true,
            control: p.control,
            dropped: p.dropped,
            dropped_seen: 0,
            alive: Alive(p.alive),
            recorder,
            recorder_task,
            share,
            from_bus,
            view: p.view,
            view_version: u64::MAX,
            view_peers_dirty: true,
            view_next: now,
            failures: Arc::default(),
            refused_counted: 0,
            stored_version: 0,
            stored_peers: restored.peers,
            stored_at: now,
            stop_bus,
        };
        task.stored_version = task.sup.version();
        task.steer(now);
        task
    }

    pub(super) async fn run(mut self, stop: CancellationToken) {
        let mut batch = Vec::with_capacity(BATCH);
        let mut gate_open = true;
        let mut reopen_at = Instant::now();
        loop {
            let wake = self.next_wake((!gate_open).then_some(reopen_at));
            tokio::select! {
                biased;
                _ = stop.cancelled() => break,
                Some(c) = self.control.recv() => self.on_control(c),
                n = self.inbox.recv_many(&mut batch, BATCH), if gate_open && self.inbox_open => {
                    if n == 0 {
                        self.inbox_open = false;
                    } else {
                        let taken = std::mem::take(&mut batch);
                        self.hearings(taken);
                        gate_open = false;
                        reopen_at = Instant::now() + COALESCE;
                    }
                }
                Some(b) = recv(&mut self.from_bus) => self.remote(b),
                _ = sleep_until(wake) => {}
            }
            if !gate_open && Instant::now() >= reopen_at {
                gate_open = true;
            }
            self.catch_up();
        }
        self.finish().await;
    }

    /// The earliest moment something is due: a deadline, a beat, the view, a snapshot.
    fn next_wake(&self, reopen: Option<Instant>) -> Option<Instant> {
        let mut wake = self.sup.poll_timeout();
        let mut at = |t: Option<Instant>| {
            if let Some(t) = t {
                wake = Some(wake.map_or(t, |w| w.min(t)));
            }
        };
        at(reopen);
        at(self.share.as_ref().map(|s| s.next_beat));
        at(self.view_stale().then_some(self.view_next));
        at(Some(self.store_due()));
        wake
    }

    fn on_control(&mut self, c: Control) {
        match c {
            Control::Reload(settings) => {
                configure(&mut self.sup, &settings, now());
                self.receiver = Arc::from(settings.config.receiver.id.as_str());
                self.hold = settings.config.supervision.hold;
                self.steer(Instant::now());
            }
            Control::Site { account, reply } => {
                // What was acknowledged before the question is part of the answer.
                self.drain();
                answer(reply, self.sup.site(&account));
            }
        }
    }

    /// Applies every hearing queued now.
    fn drain(&mut self) {
        let mut taken = Vec::new();
        while let Ok(h) = self.inbox.try_recv() {
            taken.push(h);
            if taken.len() >= BATCH {
                self.hearings(std::mem::take(&mut taken));
            }
        }
        self.hearings(taken);
    }

    fn hearings(&mut self, batch: Vec<Hearing>) {
        let mut changes = Vec::new();
        for Hearing { heard, at } in batch {
            changes.extend(self.sup.heard(&heard.account, &heard.path, at));
            if let Some(share) = &mut self.share {
                if self.sup.supervises(&heard.account) {
                    share
                        .outgoing
                        .entry((heard.account, heard.path))
                        .and_modify(|s| {
                            if at.at > s.at {
                                *s = at;
                            }
                        })
                        .or_insert(at);
                }
            }
        }
        self.check_lost();
        self.record(changes);
    }

    /// Hearings the frame path could not queue: every path counts as heard now, here and
    /// (told with the next beat) at peers.
    fn check_lost(&mut self) {
        let dropped = self.dropped.load(Ordering::Relaxed);
        let lost = dropped.saturating_sub(self.dropped_seen);
        if lost == 0 {
            return;
        }
        self.dropped_seen = dropped;
        let at = Instant::now();
        self.sup.amnesty(at);
        if let Some(share) = &mut self.share {
            share.lost_at = Some(at);
        }
        self.metrics.supervision_heard_dropped.inc_by(lost);
        if let Verdict::Log { suppressed } = LOST_LOG.check_now() {
            tracing::warn!(
                lost,
                suppressed,
                "supervision's queue was full: hearings lost, every site counts as heard now \
                 (a failure may be one interval late, none is false)"
            );
        }
    }

    /// A beat from the bus: a peer's, or this receiver's own coming back.
    fn remote(&mut self, inc: Incoming) {
        let Some(share) = &mut self.share else {
            return;
        };
        if inc.own {
            if share.listening_since.is_none() {
                share.listening_since = Some(inc.received);
                tracing::info!(
                    "supervision reads the station's beats: failures no longer wait once peers had {} s to be heard",
                    SETTLE.as_secs()
                );
            }
            self.steer(Instant::now());
            return;
        }
        let mut changes = Vec::new();
        let news = share.peers.beat(&inc.beat.from, inc.received);
        for super::peers::BeatEntry(account, path, age, wall_ms) in inc.beat.heard {
            // A hearing older than this receiver's timeline counts as at its start.
            let at = inc
                .received
                .checked_sub(Duration::from_millis(age))
                .unwrap_or(self.origin);
            changes.extend(self.sup.heard(&account, &path, Stamp { at, wall_ms }));
        }
        if let Some(age) = inc.beat.lost_age_ms {
            let at = inc
                .received
                .checked_sub(Duration::from_millis(age))
                .unwrap_or(self.origin);
            self.sup.amnesty(at);
        }
        let bye = inc
            .beat
            .bye
            .then(|| share.peers.bye(&inc.beat.from))
            .flatten();
        for n in news.into_iter().chain(bye) {
            tell(&n, self.hold);
        }
        self.view_peers_dirty = true;
        self.record(changes);
        self.steer(Instant::now());
    }

    /// Sets the share delay and the hold from what is known of the peers.
    fn steer(&mut self, now: Instant) {
        let Some(share) = &self.share else {
            return;
        };
        let delay = if share.peers.known() || !share.settled(now) {
            SHARE_DELAY
        } else {
            Duration::ZERO
        };
        self.sup.set_share_delay(delay);
        let doubt = share.in_doubt(now);
        if self.sup.holding() != doubt {
            // `/status` shows whether failures wait.
            self.view_peers_dirty = true;
        }
        self.sup.set_hold(doubt.then_some(self.hold));
    }

    /// Whatever is due now: deadlines, the beat, the view, the snapshot.
    fn catch_up(&mut self) {
        let t = now();
        // A peer may have just fallen unheard: the hold must be in force before any
        // silence is judged.
        self.steer(t.at);
        if self.sup.poll_timeout().is_some_and(|due| due <= t.at) {
            // Every hearing already acknowledged counts before a silence is judged.
            self.drain();
            let changes = self.sup.handle_timeout(t);
            self.record(changes);
        }
        if self.share.as_ref().is_some_and(|s| t.at >= s.next_beat) {
            self.drain();
            self.beat(t.at);
        }
        self.publish_view(t.at);
        if t.at >= self.store_due() {
            self.store(t);
        }
    }

    fn beat(&mut self, now: Instant) {
        let hold = self.hold;
        let Some(share) = &mut self.share else {
            return;
        };
        share.next_beat = now + BEAT_EVERY;
        let out = Outgoing {
            heard: share
                .outgoing
                .drain()
                .map(|((account, path), at)| (account, path, at))
                .collect(),
            lost_at: share.lost_at.take(),
            bye: false,
        };
        if let Err(e) = share.to_bus.try_send(out) {
            // The bus is behind (or gone): keep it all for the next beat.
            let out = match e {
                mpsc::error::TrySendError::Full(o) | mpsc::error::TrySendError::Closed(o) => o,
            };
            for (account, path, at) in out.heard {
                share.outgoing.entry((account, path)).or_insert(at);
            }
            share.lost_at = share.lost_at.or(out.lost_at);
        }
        let news = share.peers.tick(share.last_tick, now);
        share.last_tick = now;
        if !news.is_empty() {
            self.view_peers_dirty = true;
        }
        for n in &news {
            tell(n, hold);
        }
        self.steer(now);
    }

    fn record(&mut self, changes: Vec<Change>) {
        if changes.is_empty() {
            return;
        }
        let t = now();
        let _ = self.recorder.send(Job::Changes {
            changes,
            at: wall_time(t.wall_ms),
            receiver: Arc::clone(&self.receiver),
        });
    }

    fn view_stale(&self) -> bool {
        self.sup.version() != self.view_version || self.view_peers_dirty
    }

    /// Publishes the view for `/status` and sets the gauges, if anything changed and the
    /// last rebuild's cost allows it.
    fn publish_view(&mut self, now: Instant) {
        if !self.view_stale() || now < self.view_next {
            return;
        }
        let started = Instant::now();
        let version = self.sup.version();
        if version != self.view_version {
            let mut failures: Vec<Failure> = self
                .sup
                .failures()
                .into_iter()
                .map(|(account, path, since_ms)| Failure {
                    account,
                    path,
                    since_ms,
                })
                .collect();
            // Longest in failure first; ties (a whole station silent in the same second)
            // by account and path, so two reads list them alike.
            failures.sort_by(|a, b| {
                (a.since_ms.div_euclid(1000), &a.account, &a.path).cmp(&(
                    b.since_ms.div_euclid(1000),
                    &b.account,
                    &b.path,
                ))
            });
            self.failures = Arc::new(failures);
        }
        let peers: Vec<PeerView> = self
            .share
            .as_ref()
            .map(|s| {
                s.peers
                    .list(now)
                    .into_iter()
                    .map(|(receiver, state, ago)| PeerView {
                        receiver,
                        state,
                        last_beat: ago.and_then(|a| now.checked_sub(a)),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let m = &self.metrics;
        m.supervision_paths.set(self.sup.paths() as i64);
        m.supervision_failed.set(self.sup.failed() as i64);
        m.supervision_held.set(self.sup.held() as i64);
        let refused = self.sup.paths_refused();
        m.supervision_refused
            .inc_by(refused.saturating_sub(self.refused_counted));
        self.refused_counted = refused;
        let live = peers.iter().filter(|p| p.state == PeerState::Live).count();
        m.supervision_peers
            .with_label_values(&["live"])
            .set(live as i64);
        m.supervision_peers
            .with_label_values(&["unheard"])
            .set((peers.len() - live) as i64);
        self.view.store(Arc::new(View {
            paths: self.sup.paths(),
            failed: self.sup.failed(),
            held: self.sup.held(),
            failures: Arc::clone(&self.failures),
            sharing: self.share.is_some(),
            holding: self.share.as_ref().is_some_and(|s| s.in_doubt(now)),
            peers,
        }));
        self.view_version = version;
        self.view_peers_dirty = false;
        // At most a twentieth of the task's time goes to views.
        self.view_next = now + started.elapsed() * 20;
    }

    fn store_due(&self) -> Instant {
        let changed = self.sup.version() != self.stored_version
            || self
                .share
                .as_ref()
                .is_some_and(|s| !s.peers.named(&self.stored_peers));
        self.stored_at
            + if changed {
                STORE_AFTER_CHANGE
            } else {
                STORE_ANYWAY
            }
    }

    fn store(&mut self, t: Stamp) {
        let mut snapshot = self
            .sup
            .snapshot(i64::try_from(i128::from(t.wall_ms) * 1000).unwrap_or(i64::MAX));
        if let Some(share) = &self.share {
            snapshot.peers = share.peers.names();
        }
        self.stored_peers = snapshot.peers.clone();
        self.stored_version = self.sup.version();
        self.stored_at = t.at;
        let _ = self.recorder.send(Job::Store(snapshot));
    }

    /// The drain at stop: what is queued is applied, what is due judged, the changes
    /// journaled, the snapshot stored, the peers told.
    async fn finish(mut self) {
        self.drain();
        let t = now();
        if self.sup.poll_timeout().is_some_and(|due| due <= t.at) {
            let changes = self.sup.handle_timeout(t);
            self.record(changes);
        }
        self.store(t);
        if let Some(share) = self.share.take() {
            let out = Outgoing {
                heard: share
                    .outgoing
                    .into_iter()
                    .map(|((account, path), at)| (account, path, at))
                    .collect(),
                lost_at: share.lost_at,
                bye: true,
            };
            let _ = tokio::time::timeout(Duration::from_secs(1), share.to_bus.send(out)).await;
            drop(share.to_bus);
            let mut bus = share.bus;
            if tokio::time::timeout(Duration::from_secs(3), &mut bus)
                .await
                .is_err()
            {
                self.stop_bus.cancel();
                bus.abort();
            }
        }
        let (done, flushed) = oneshot::channel();
        let _ = self.recorder.send(Job::Flush(done));
        let _ = flushed.await;
        drop(self.recorder);
        let _ = self.recorder_task.await;
        drop(self.alive);
    }
}

fn answer<T>(reply: oneshot::Sender<T>, value: T) {
    // The asker may have given up (its own timeout): nothing to do then.
    let _ = reply.send(value);
}

fn tell(news: &PeerNews, hold: Duration) {
    match news {
        PeerNews::Joined(p) => {
            tracing::info!(peer = %p, "supervision shared with peer receiver {p}")
        }
        PeerNews::HeardAgain(p) => tracing::info!(peer = %p, "peer receiver {p} heard again"),
        PeerNews::Unheard(p) => tracing::warn!(
            peer = %p,
            hold_s = hold.as_secs(),
            "peer receiver {p} unheard: failures wait up to {} s for its news",
            hold.as_secs()
        ),
        PeerNews::Left(p) => tracing::info!(peer = %p, "peer receiver {p} stopped"),
        PeerNews::Forgotten(p) => tracing::warn!(
            peer = %p,
            "peer receiver {p} unheard for 10 min: no longer waited for"
        ),
    }
}

async fn recv<T>(rx: &mut Option<mpsc::Receiver<T>>) -> Option<T> {
    match rx {
        Some(r) => r.recv().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(t: Option<Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t.into()).await,
        None => std::future::pending().await,
    }
}
