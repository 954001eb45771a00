//! Supervision: every site must be heard within its reporting interval, on every path it
//! reports over; silence is an event (a cut line is how burglaries start).
//!
//! A pure state machine in the quinn-proto style: [`Supervisor::heard`] (a frame arrived,
//! here or at a peer receiver), [`Supervisor::poll_timeout`] (when to call next),
//! [`Supervisor::handle_timeout`] (what fell silent). Nothing here reads a clock: every
//! input carries a [`Stamp`], a monotonic instant for deadlines and the wall-clock time
//! that only names the moment in events. A step of the wall clock, either way, therefore
//! moves no deadline: it can neither raise a false failure nor hide a real one.
//!
//! Expiry uses a hashed timing wheel of one-second slots on the monotonic timeline: each
//! path has exactly one live entry in the wheel, placed at its deadline; `heard` only
//! writes the path's last-heard time, and when an entry's slot comes round the path is
//! either still silent (failure) or re-placed at its new deadline. A quiet station
//! therefore costs one cheap visit per path per interval, and nothing at all while every
//! path is in failure. [`Supervisor::poll_timeout`] gives the next second that has work,
//! so the driver sleeps on one timer instead of ticking.
//!
//! Paths: an account may report over several paths (dual path: Ethernet and mobile). A
//! path is named by the frame's `[J…]` block (network path) when present, else by its line
//! and receiver numbers (`L1`, `L2R3`). For a single-path account every frame refreshes the
//! one timer. For a dual-path account the first path heard is the primary (or the one
//! configured), the others secondary with their own interval; losing one path and losing
//! all are different events.
//!
//! Several receivers: when receivers share what they heard, a hearing by a peer arrives
//! here like a local one, dated back by its age. Two knobs keep that safe: a share delay
//! added to every deadline (the time a peer's news takes to arrive), and a hold, set by
//! the driver while some peer cannot be heard, that lets a failure wait a bounded time for
//! news that may explain the silence (late, never missed). Failure and restore events are
//! named by what every receiver knows alike: account, path, code and the station-wide
//! last-heard time, so two receivers raising the same failure give it the same id.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::accounts::AccountId;
pub use super::supervision_event::{
    wall_time, CODE_COMM_FAIL, CODE_COMM_RESTORE, CODE_PATH_FAIL, CODE_PATH_RESTORE,
};

/// Wheel size in one-second slots; intervals longer than this take several turns.
const WHEEL_SLOTS: usize = 4096;

/// Paths one site may have under supervision. Dual-path systems use two, some
/// transmitters up to four; a site naming more is a misconfigured panel or someone
/// sending under its account, and each new name would otherwise cost memory forever and a
/// "path lost" event once it falls silent. Frames over an extra path are still
/// acknowledged and journaled; supervision ignores that path and counts it.
pub const MAX_PATHS_PER_SITE: usize = 8;

/// Expected reporting of an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interval {
    /// Reporting interval of the primary path (or the only one), in seconds.
    pub primary: u32,
    /// Reporting interval of secondary paths; `None` for a single-path account.
    pub secondary: Option<u32>,
    /// Grace added to the interval before declaring a path silent.
    pub grace: u32,
}

/// EN 50136-1 categories: (name, primary seconds, secondary seconds). Values as commonly
/// published for EN 50136-1:2012 (reporting times of single-path SP1–SP6 and dual-path
/// DP1–DP4 transmission systems); a station that reads them differently writes the
/// durations explicitly (`"90s"`, or `"90s/25h"` for primary/secondary).
pub const CATEGORIES: &[(&str, u32, Option<u32>)] = &[
    ("SP1", 32 * 86_400, None),
    ("SP2", 25 * 3_600, None),
    ("SP3", 30 * 60, None),
    ("SP4", 3 * 60, None),
    ("SP5", 90, None),
    ("SP6", 20, None),
    ("DP1", 25 * 3_600, Some(25 * 3_600)),
    ("DP2", 30 * 60, Some(25 * 3_600)),
    ("DP3", 3 * 60, Some(25 * 3_600)),
    ("DP4", 90, Some(3 * 60)),
];

/// Parses `supervision = "90s"`, `"90s/25h"` or `"DP4"`. Grace: 10 % of the primary
/// interval, at least 1 s and at most 10 min (network jitter, a retry or two).
pub fn parse_interval(text: &str) -> Result<Interval, String> {
    let t = text.trim();
    let (primary, secondary) = if let Some(&(_, p, s)) = CATEGORIES
        .iter()
        .find(|(n, _, _)| n.eq_ignore_ascii_case(t))
    {
        (p, s)
    } else {
        let secs = |s: &str| -> Result<u32, String> {
            let d = crate::units::parse_duration(s)?;
            u32::try_from(d.as_secs())
                .ok()
                .filter(|&s| s >= 1)
                .ok_or_else(|| {
                    format!("supervision interval `{s}` must be between 1 s and 136 years")
                })
        };
        match t.split_once('/') {
            Some((p, s)) => (secs(p)?, Some(secs(s)?)),
            None => (secs(t)?, None),
        }
    };
    let grace = (primary / 10).clamp(1, 600);
    Ok(Interval {
        primary,
        secondary,
        grace,
    })
}

/// The name of a reporting path, stored inline (`L1`, `L12R3`, `J2`: at most 23 bytes;
/// longer names are cut, which only merges paths no panel distinguishes that way).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PathName {
    len: u8,
    bytes: [u8; 23],
}

impl PathName {
    pub fn new(name: &str) -> PathName {
        let mut bytes = [0u8; 23];
        // Cut on a character boundary so the name stays valid text.
        let mut len = name.len().min(bytes.len());
        while !name.is_char_boundary(len) {
            len -= 1;
        }
        if let (Some(dst), Some(src)) = (bytes.get_mut(..len), name.as_bytes().get(..len)) {
            dst.copy_from_slice(src);
        }
        PathName {
            len: len as u8,
            bytes,
        }
    }

    pub fn as_str(&self) -> &str {
        let b = self.bytes.get(..usize::from(self.len)).unwrap_or_default();
        std::str::from_utf8(b).unwrap_or_default()
    }
}

impl From<&str> for PathName {
    fn from(s: &str) -> PathName {
        PathName::new(s)
    }
}

impl std::fmt::Display for PathName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Names the path a frame came over (see the module doc): `G<n>` for a DC-09-2026 `[G…]`
/// block, `J<x>` for an older panel's `[J…]` path (a plain `&str` means that one), else
/// the line and receiver numbers. The caller decides which block names the path
/// ([`crate::protocol::ext::NetworkPath::of_blocks`]): a JSON J block never does.
pub fn path_name<'a>(
    network_path: Option<impl Into<crate::protocol::ext::NetworkPath<'a>>>,
    line: &str,
    receiver: Option<&str>,
) -> compact_str::CompactString {
    // Built by hand: this runs for every acknowledged frame, and `format!` costs more
    // than the rest of the work here. The pieces are joined on the stack and the string
    // made once: a name fits a `CompactString` inline, and pushing piece by piece onto one
    // cost more than the join.
    let network_path = network_path.map(Into::into);
    let pieces: [&str; 4] = match &network_path {
        Some(p) if !p.value().is_empty() => [p.letter(), p.value(), "", ""],
        _ => match receiver {
            Some(r) => ["L", line, "R", r],
            None => ["L", line, "", ""],
        },
    };
    let joined = || compact_str::CompactString::from(pieces.concat());
    let mut buf = [0u8; 24];
    let mut len = 0;
    for piece in pieces {
        let Some(slot) = buf.get_mut(len..len + piece.len()) else {
            return joined();
        };
        slot.copy_from_slice(piece.as_bytes());
        len += piece.len();
    }
    // Whole `str`s end to end are UTF-8: the check cannot fail.
    std::str::from_utf8(buf.get(..len).unwrap_or_default())
        .map_or_else(|_| joined(), compact_str::CompactString::new)
}

/// A moment as the driver read it: the monotonic instant decides, the wall-clock time
/// (milliseconds since the Unix epoch) only stamps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    pub at: Instant,
    pub wall_ms: i64,
}

/// Two hearings of one path closer than this are the same moment: the later wall-clock
/// stamp of the two names it. Receivers order a peer's hearing by an estimate (its age
/// when sent); within this margin they could disagree on which came last, but never on the
/// larger stamp, so they name the silence that follows alike.
const SAME_MOMENT_MS: u64 = 2_000;

/// A wheel entry's second when the path has none.
const NO_SLOT: u64 = u64::MAX;

/// What supervision reports. Times are wall-clock milliseconds since the Unix epoch, as
/// stamped by the receiver that heard the frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// One path of a multi-path account fell silent; others still report.
    PathFailed {
        account: String,
        path: String,
        silent_since_ms: i64,
    },
    /// A path heard again after a path failure, while others were up.
    PathRestored {
        account: String,
        path: String,
        /// The start of the silence that ends (the failure's `silent_since_ms`).
        silent_since_ms: i64,
    },
    /// Every path of the account is silent: the site is cut off.
    AllFailed {
        account: String,
        /// Sorted, so every receiver writes them alike.
        paths: Vec<String>,
        silent_since_ms: i64,
    },
    /// The site is heard again after an all-paths failure.
    AllRestored {
        account: String,
        path: String,
        /// The start of the silence that ends.
        silent_since_ms: i64,
    },
}

/// What the daemon shows of one path (`/diag`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathView {
    pub path: String,
    /// Wall-clock milliseconds of the last hearing by any receiver.
    pub last_heard_ms: i64,
    /// Wall-clock milliseconds when its failure was raised, if in failure.
    pub failed_since_ms: Option<i64>,
}

#[derive(Debug, Clone)]
struct Path {
    account: AccountId,
    name: PathName,
    primary: bool,
    /// Last heard, in milliseconds of the monotonic timeline since [`Supervisor::new`].
    last_heard: u64,
    /// The wall-clock stamp of that hearing.
    heard_wall: i64,
    /// Wall-clock time the failure was raised, if failed.
    failed_at: Option<i64>,
    /// Second of the path's live wheel entry ([`NO_SLOT`] when none): other entries for
    /// the path are stale and dropped when met.
    slot_at: u64,
    /// Past its deadline but waiting for the hold.
    held: bool,
}

#[derive(Debug, Clone, Default)]
struct Site {
    interval: Option<Interval>,
    paths: Vec<u32>,
    /// The start of the silence of an all-paths failure, if the site is cut off.
    all_failed: Option<i64>,
    /// Frames over paths refused for [`MAX_PATHS_PER_SITE`].
    refused: u64,
}

/// Supervision of every configured account.
#[derive(Debug)]
pub struct Supervisor {
    /// Origin of the monotonic timeline; the wheel's second 0.
    base: Instant,
    sites: HashMap<AccountId, Site>,
    paths: Vec<Path>,
    by_name: HashMap<(AccountId, PathName), u32>,
    wheel: Vec<Vec<(u64, u32)>>,
    /// Next second the wheel has not processed yet.
    cursor: u64,
    /// The earliest second holding an entry due in it, if known (kept by `schedule`,
    /// recomputed after each pass), so that `poll_timeout` costs nothing.
    next_due: Option<u64>,
    failed: usize,
    /// Frames over paths refused for [`MAX_PATHS_PER_SITE`], all sites.
    refused: u64,
    /// Paths of sites that have an interval: kept as they change, not counted on demand
    /// (a million paths).
    supervised: usize,
    /// Added to every deadline: the time a peer's hearing takes to arrive here.
    share_delay_ms: u64,
    /// While some peer cannot be heard, failures wait this much longer.
    hold_ms: Option<u64>,
    held: usize,
    held_list: Vec<u32>,
    /// Every path counts as heard at least then ([`Supervisor::amnesty`]).
    floor_ms: u64,
    /// Bumped whenever what [`Supervisor::failures`] or the counts return changes.
    version: u64,
}

impl Supervisor {
    /// The monotonic timeline starts at `now`.
    pub fn new(now: Instant) -> Supervisor {
        Supervisor {
            base: now,
            sites: HashMap::new(),
            paths: Vec::new(),
            by_name: HashMap::new(),
            wheel: vec![Vec::new(); WHEEL_SLOTS],
            cursor: 0,
            next_due: None,
            failed: 0,
            refused: 0,
            supervised: 0,
            share_delay_ms: 0,
            hold_ms: None,
            held: 0,
            held_list: Vec::new(),
            floor_ms: 0,
            version: 0,
        }
    }

    fn ms(&self, t: Instant) -> u64 {
        u64::try_from(t.saturating_duration_since(self.base).as_millis()).unwrap_or(u64::MAX)
    }

    /// Sets (or changes, on reload) the interval of `account`. Accounts without one are
    /// not supervised. Known paths keep their state; a changed interval applies from the
    /// next deadline.
    pub fn configure(&mut self, account: &str, interval: Option<Interval>) {
        let Some(id) = AccountId::new(account) else {
            return;
        };
        match interval {
            Some(i) => {
                let site = self.sites.entry(id).or_default();
                if site.interval.is_none() {
                    self.supervised += site.paths.len();
                    self.version += 1;
                }
                site.interval = Some(i);
            }
            None => {
                let Some(site) = self.sites.get_mut(&id) else {
                    return;
                };
                if site.interval.take().is_none() {
                    return;
                }
                self.supervised = self.supervised.saturating_sub(site.paths.len());
                self.version += 1;
                // An account no longer supervised is in failure no more.
                site.all_failed = None;
                for &i in &site.paths {
                    if let Some(p) = self.paths.get_mut(i as usize) {
                        if p.failed_at.take().is_some() {
                            self.failed = self.failed.saturating_sub(1);
                        }
                        if std::mem::take(&mut p.held) {
                            self.held = self.held.saturating_sub(1);
                        }
                    }
                }
            }
        }
    }

    /// Stops supervising every account `keep` refuses (gone from the configuration, or
    /// its interval removed, at a reload).
    pub fn retain_accounts(&mut self, keep: impl Fn(&str) -> bool) {
        let gone: Vec<AccountId> = self
            .sites
            .iter()
            .filter(|(id, s)| s.interval.is_some() && !keep(id.as_str()))
            .map(|(id, _)| *id)
            .collect();
        for id in gone {
            self.configure(id.as_str(), None);
        }
    }

    /// Hearings were lost on their way here at `at` (the driver's queue was full): every
    /// path counts as heard then, so none fails for a frame supervision never saw. A
    /// failure may be one interval late for it, never false.
    pub fn amnesty(&mut self, at: Instant) {
        self.floor_ms = self.floor_ms.max(self.ms(at));
    }

    /// Whether frames of `account` are supervised (and worth telling peers about).
    pub fn supervises(&self, account: &str) -> bool {
        AccountId::new(account)
            .and_then(|id| self.sites.get(&id))
            .is_some_and(|s| s.interval.is_some())
    }

    /// Starts supervision of a configured account at `now` with a fresh interval, before
    /// any frame is heard (a restart never turns into a storm of failures, and a site that
    /// never reports after start is still noticed). The path is provisional until the
    /// first frame names it.
    pub fn arm(&mut self, account: &str, now: Stamp) {
        let Some(id) = AccountId::new(account) else {
            return;
        };
        let Some(site) = self.sites.get(&id) else {
            return;
        };
        if site.interval.is_none() || !site.paths.is_empty() {
            return;
        }
        self.add_path(id, "*".into(), now);
    }

    /// Marks a path as already in failure (state rebuilt after a restart): no new failure
    /// event for it, a restore when it is heard again. `failed_at_ms`: when the failure
    /// was raised; `silent_since_ms`: the start of the silence, which names its restore.
    pub fn restore_failed(
        &mut self,
        account: &str,
        path: &str,
        failed_at_ms: i64,
        silent_since_ms: i64,
        all: bool,
        now: Stamp,
    ) {
        let Some(id) = AccountId::new(account) else {
            return;
        };
        if self.sites.get(&id).is_none_or(|s| s.interval.is_none()) {
            return;
        }
        let idx = match self.by_name.get(&(id, path.into())) {
            Some(&i) => i,
            None => match self.add_path(id, path.into(), now) {
                Some(i) => i,
                None => return,
            },
        };
        if let Some(p) = self.paths.get_mut(idx as usize) {
            if p.failed_at.is_none() {
                p.failed_at = Some(failed_at_ms);
                p.heard_wall = silent_since_ms;
                self.failed += 1;
                self.version += 1;
            }
        }
        if all {
            if let Some(site) = self.sites.get_mut(&id) {
                let since = site.all_failed.unwrap_or(silent_since_ms);
                site.all_failed = Some(since.max(silent_since_ms));
            }
        }
    }

    /// `None` when the site already has [`MAX_PATHS_PER_SITE`] paths.
    fn add_path(&mut self, account: AccountId, name: PathName, heard: Stamp) -> Option<u32> {
        let idx = self.paths.len() as u32;
        let last_heard = self.ms(heard.at);
        let site = self.sites.entry(account).or_default();
        if site.paths.len() >= MAX_PATHS_PER_SITE {
            site.refused += 1;
            self.refused += 1;
            if site.refused == 1 {
                tracing::warn!(
                    account = account.as_str(),
                    path = name.as_str(),
                    "site reports over more than {MAX_PATHS_PER_SITE} paths: the extra ones are \
                     not supervised (counted in tocsin_supervision_paths_refused_total)"
                );
            }
            return None;
        }
        let primary = site.paths.is_empty();
        site.paths.push(idx);
        if site.interval.is_some() {
            self.supervised += 1;
        }
        self.version += 1;
        self.paths.push(Path {
            account,
            name,
            primary,
            last_heard,
            heard_wall: heard.wall_ms,
            failed_at: None,
            slot_at: NO_SLOT,
            held: false,
        });
        self.by_name.insert((account, name), idx);
        if let Some(deadline) = self.deadline(idx) {
            self.schedule(idx, deadline);
        }
        Some(idx)
    }

    fn interval_of(&self, idx: u32) -> Option<(u32, u32)> {
        let p = self.paths.get(idx as usize)?;
        let i = self.sites.get(&p.account)?.interval?;
        let secs = if p.primary {
            i.primary
        } else {
            i.secondary.unwrap_or(i.primary)
        };
        Some((secs, i.grace))
    }

    /// The moment (ms of the monotonic timeline) the path fails unless heard, before any
    /// hold.
    fn due(&self, idx: u32) -> Option<u64> {
        let (secs, grace) = self.interval_of(idx)?;
        let p = self.paths.get(idx as usize)?;
        Some(
            p.last_heard
                .max(self.floor_ms)
                .saturating_add((u64::from(secs) + u64::from(grace)) * 1000)
                .saturating_add(self.share_delay_ms),
        )
    }

    /// [`Self::due`] with the hold, if one is in force.
    fn deadline(&self, idx: u32) -> Option<u64> {
        let due = self.due(idx)?;
        Some(due.saturating_add(self.hold_ms.unwrap_or(0)))
    }

    fn schedule(&mut self, idx: u32, deadline_ms: u64) {
        // A deadline already past is handled at the next pass.
        let at = deadline_ms.div_ceil(1000).max(self.cursor);
        let slot = (at % WHEEL_SLOTS as u64) as usize;
        let Some(p) = self.paths.get_mut(idx as usize) else {
            return;
        };
        if p.slot_at == at {
            return;
        }
        p.slot_at = at;
        if let Some(s) = self.wheel.get_mut(slot) {
            s.push((at, idx));
        }
        self.next_due = Some(self.next_due.map_or(at, |n| n.min(at)));
    }

    /// A frame from `account` over `path`, heard here or by a peer at `heard` (which may
    /// lie in the past). Returns the restores it causes.
    pub fn heard(&mut self, account: &str, path: &str, heard: Stamp) -> Vec<Change> {
        let Some(id) = AccountId::new(account) else {
            return Vec::new();
        };
        let Some(site) = self.sites.get(&id) else {
            return Vec::new();
        };
        let Some(interval) = site.interval else {
            return Vec::new();
        };
        let multi = interval.secondary.is_some();
        // Single-path accounts keep one timer whatever path the frame names.
        let name: PathName = if multi { path.into() } else { "*".into() };
        let idx = match self.by_name.get(&(id, name)) {
            Some(&i) => i,
            None => {
                // The provisional path of an armed dual-path account becomes the first
                // real path heard.
                let provisional = self.by_name.get(&(id, "*".into())).copied();
                match (multi, provisional) {
                    (true, Some(i)) => {
                        self.by_name.remove(&(id, "*".into()));
                        self.by_name.insert((id, name), i);
                        if let Some(p) = self.paths.get_mut(i as usize) {
                            p.name = name;
                        }
                        i
                    }
                    _ => {
                        // A new path starts heard now: nothing more to note.
                        let _ = self.add_path(id, name, heard);
                        return Vec::new();
                    }
                }
            }
        };
        let at = self.ms(heard.at);
        let mut changes = Vec::new();
        let Some(p) = self.paths.get_mut(idx as usize) else {
            return changes;
        };
        if p.failed_at.is_none() {
            let before = p.last_heard;
            if at > p.last_heard.saturating_add(SAME_MOMENT_MS) {
                p.last_heard = at;
                p.heard_wall = heard.wall_ms;
            } else if at.saturating_add(SAME_MOMENT_MS) >= p.last_heard {
                p.last_heard = p.last_heard.max(at);
                p.heard_wall = p.heard_wall.max(heard.wall_ms);
            }
            // Older news than what is known changes nothing; newer news ends a hold (its
            // wheel entry is re-placed when met).
            if p.held && p.last_heard > before {
                p.held = false;
                self.held = self.held.saturating_sub(1);
                self.version += 1;
            }
            return changes;
        }
        if at <= p.last_heard {
            // Heard before the silence the failure is about began: no news.
            return changes;
        }
        let silent_since_ms = p.heard_wall;
        p.last_heard = at;
        p.heard_wall = heard.wall_ms;
        p.failed_at = None;
        self.failed = self.failed.saturating_sub(1);
        self.version += 1;
        let path_name = p.name.to_string();
        let account = id.as_str().to_string();
        let all = self.sites.get_mut(&id).and_then(|s| s.all_failed.take());
        changes.push(match all {
            Some(site_since) => Change::AllRestored {
                account,
                path: path_name,
                silent_since_ms: site_since,
            },
            None => Change::PathRestored {
                account,
                path: path_name,
                silent_since_ms,
            },
        });
        // Back in the wheel: a failed path had no live entry.
        if let Some(d) = self.deadline(idx) {
            self.schedule(idx, d);
        }
        changes
    }

    /// The next moment at which [`Supervisor::handle_timeout`] has work, if any.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.next_due
            .map(|s| self.base + Duration::from_secs(s.max(self.cursor)))
    }

    /// Adds `delay` to every deadline from now on: the time within which a peer's hearing
    /// reaches this receiver (zero when no hearings are shared).
    pub fn set_share_delay(&mut self, delay: Duration) {
        self.share_delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
    }

    /// Whether a hold is in force.
    pub fn holding(&self) -> bool {
        self.hold_ms.is_some()
    }

    /// While `Some`, a path past its deadline waits this much longer before it fails
    /// (some peer cannot be heard, and may have heard the site). When the hold ends, the
    /// paths it kept are looked at again at once.
    pub fn set_hold(&mut self, hold: Option<Duration>) {
        let hold = hold.map(|h| u64::try_from(h.as_millis()).unwrap_or(u64::MAX));
        if hold == self.hold_ms {
            return;
        }
        self.hold_ms = hold;
        if hold.is_none() {
            for idx in std::mem::take(&mut self.held_list) {
                let Some(p) = self.paths.get_mut(idx as usize) else {
                    continue;
                };
                if !p.held {
                    continue;
                }
                p.held = false;
                self.held = self.held.saturating_sub(1);
                self.version += 1;
                if let Some(d) = self.deadline(idx) {
                    self.schedule(idx, d);
                }
            }
        }
    }

    /// Advances the wheel to `now` and returns what fell silent.
    pub fn handle_timeout(&mut self, now: Stamp) -> Vec<Change> {
        let mut changes = Vec::new();
        let now_ms = self.ms(now.at);
        let now_s = now_ms / 1000;
        if now_s < self.cursor {
            return changes;
        }
        // After a long pause (suspended VM) more than a whole turn may have passed: one
        // turn visits every slot once, which is enough.
        let steps = (now_s - self.cursor + 1).min(WHEEL_SLOTS as u64);
        let first = now_s + 1 - steps;
        for second in first..=now_s {
            let slot = (second % WHEEL_SLOTS as u64) as usize;
            let entries = self
                .wheel
                .get_mut(slot)
                .map(std::mem::take)
                .unwrap_or_default();
            let mut keep = Vec::new();
            for (at, idx) in entries {
                if at > now_s {
                    keep.push((at, idx));
                    continue;
                }
                match self.paths.get_mut(idx as usize) {
                    Some(p) if p.slot_at == at => p.slot_at = NO_SLOT,
                    _ => continue, // a stale entry: the path has a later one
                }
                match (self.deadline(idx), self.due(idx)) {
                    (Some(d), Some(due)) if d > now_ms => {
                        if due <= now_ms {
                            self.hold_back(idx);
                        }
                        self.schedule(idx, d);
                    }
                    (Some(_), _) => self.fail(idx, now, &mut changes),
                    _ => {} // no longer supervised: the entry goes
                }
            }
            if let Some(s) = self.wheel.get_mut(slot) {
                s.extend(keep);
            }
        }
        self.cursor = now_s + 1;
        self.next_due = self.find_next_due();
        changes
    }

    fn hold_back(&mut self, idx: u32) {
        if let Some(p) = self.paths.get_mut(idx as usize) {
            if !p.held {
                p.held = true;
                self.held += 1;
                self.held_list.push(idx);
                self.version += 1;
            }
        }
    }

    /// The first second from the cursor with an entry due in it: a scan of one turn at
    /// most, then the earliest entry of a later turn.
    fn find_next_due(&self) -> Option<u64> {
        let mut later: Option<u64> = None;
        for k in 0..WHEEL_SLOTS as u64 {
            let second = self.cursor + k;
            let slot = (second % WHEEL_SLOTS as u64) as usize;
            for &(at, _) in self.wheel.get(slot).map(Vec::as_slice).unwrap_or_default() {
                if at == second {
                    return Some(second);
                }
                later = Some(later.map_or(at, |l| l.min(at)));
            }
        }
        later
    }

    fn fail(&mut self, idx: u32, now: Stamp, changes: &mut Vec<Change>) {
        let Some(p) = self.paths.get_mut(idx as usize) else {
            return;
        };
        if p.failed_at.is_some() {
            return;
        }
        p.failed_at = Some(now.wall_ms);
        if p.held {
            p.held = false;
            self.held = self.held.saturating_sub(1);
        }
        let since = p.heard_wall;
        let account = p.account;
        let name = p.name.to_string();
        self.failed += 1;
        self.version += 1;
        let Some(site) = self.sites.get(&account) else {
            return;
        };
        let site_paths = || {
            site.paths
                .iter()
                .filter_map(|&i| self.paths.get(i as usize))
        };
        let all_silent = site_paths().all(|p| p.failed_at.is_some());
        let multi = site.interval.is_some_and(|i| i.secondary.is_some());
        let account_s = account.as_str().to_string();
        if all_silent {
            let mut paths: Vec<String> = site_paths().map(|p| p.name.to_string()).collect();
            paths.sort_unstable();
            let site_since = site_paths().map(|p| p.heard_wall).max().unwrap_or(since);
            if let Some(site) = self.sites.get_mut(&account) {
                site.all_failed = Some(site_since);
            }
            changes.push(Change::AllFailed {
                account: account_s,
                paths,
                silent_since_ms: site_since,
            });
        } else if multi {
            changes.push(Change::PathFailed {
                account: account_s,
                path: name,
                silent_since_ms: since,
            });
        }
    }

    /// Paths under supervision.
    pub fn paths(&self) -> usize {
        self.supervised
    }

    /// Frames whose path was not supervised because its site had
    /// [`MAX_PATHS_PER_SITE`] paths already, since start.
    pub fn paths_refused(&self) -> u64 {
        self.refused
    }

    /// Paths now in failure.
    pub fn failed(&self) -> usize {
        self.failed
    }

    /// Paths past their deadline whose failure waits for the hold.
    pub fn held(&self) -> usize {
        self.held
    }

    /// Changes whenever the failures, the counts or the held paths do: a view built from
    /// them needs rebuilding only then.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The paths now in failure: (account, path, wall-clock ms the failure was raised).
    pub fn failures(&self) -> Vec<(String, String, i64)> {
        self.paths
            .iter()
            .filter_map(|p| {
                p.failed_at
                    .map(|s| (p.account.as_str().to_string(), p.name.to_string(), s))
            })
            .collect()
    }

    /// The state to persist: every path in failure.
    pub fn snapshot(&self, taken_micros: i64) -> super::supervision_state::Snapshot {
        let failed = self
            .paths
            .iter()
            .filter_map(|p| {
                let at = p.failed_at?;
                Some(super::supervision_state::FailedPath {
                    account: p.account.as_str().to_string(),
                    path: p.name.to_string(),
                    since: u64::try_from(at.div_euclid(1000)).unwrap_or(0),
                    all: self
                        .sites
                        .get(&p.account)
                        .is_some_and(|s| s.all_failed.is_some()),
                    silent_since_ms: Some(p.heard_wall),
                })
            })
            .collect();
        super::supervision_state::Snapshot {
            taken_micros,
            failed,
            ..Default::default()
        }
    }

    /// Every path of `account`.
    pub fn site(&self, account: &str) -> Vec<PathView> {
        let Some(id) = AccountId::new(account) else {
            return Vec::new();
        };
        self.sites
            .get(&id)
            .map(|s| {
                s.paths
                    .iter()
                    .filter_map(|&i| self.paths.get(i as usize))
                    .map(|p| PathView {
                        path: p.name.to_string(),
                        last_heard_ms: p.heard_wall,
                        failed_since_ms: p.failed_at,
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_names_join_line_receiver_or_network_path() {
        use crate::protocol::ext::NetworkPath;
        assert_eq!(path_name(None::<&str>, "0", Some("1")), "L0R1");
        assert_eq!(path_name(None::<&str>, "7", None), "L7");
        assert_eq!(path_name(Some(""), "2", Some("FF")), "L2RFF");
        assert_eq!(path_name(Some("eth0"), "0", Some("1")), "Jeth0");
        assert_eq!(path_name(Some(NetworkPath::J("eth0")), "0", None), "Jeth0");
        assert_eq!(path_name(Some(NetworkPath::G("2")), "0", Some("1")), "G2");
        assert_eq!(path_name(Some(NetworkPath::G("")), "3", None), "L3");
        // Longer than the inline buffer: still whole.
        let long = "0123456789ABCDEF0123456789";
        assert_eq!(
            path_name(None::<&str>, long, Some(long)),
            format!("L{long}R{long}")
        );
        assert_eq!(path_name(Some(long), "0", None), format!("J{long}"));
        assert_eq!(
            path_name(Some(NetworkPath::G(long)), "0", None),
            format!("G{long}")
        );
    }

    /// A fake clock: `at(s)` is `s` seconds after `t0` on the monotonic timeline, and the
    /// wall clock reads the same plus `wall_offset` seconds.
    struct Clock {
        t0: Instant,
        wall0: i64,
    }

    impl Clock {
        fn new() -> Clock {
            Clock {
                t0: Instant::now(),
                wall0: 1_800_000_000_000,
            }
        }
        fn at(&self, s: u64) -> Stamp {
            self.at_ms(s * 1000)
        }
        fn at_ms(&self, ms: u64) -> Stamp {
            Stamp {
                at: self.t0 + Duration::from_millis(ms),
                wall_ms: self.wall0 + ms as i64,
            }
        }
        /// `at(s)` with the wall clock stepped by `step` seconds.
        fn stepped(&self, s: u64, step: i64) -> Stamp {
            let mut t = self.at(s);
            t.wall_ms += step * 1000;
            t
        }
    }

    fn single(secs: u32) -> Option<Interval> {
        Some(Interval {
            primary: secs,
            secondary: None,
            grace: 0,
        })
    }

    fn dual(primary: u32, secondary: u32) -> Option<Interval> {
        Some(Interval {
            primary,
            secondary: Some(secondary),
            grace: 0,
        })
    }

    #[test]
    fn silence_then_restore() {
        let c = Clock::new();
        let mut s = Supervisor::new(c.t0);
        s.configure("1234", single(10));
        s.arm("1234", c.at(0));
        assert!(s.handle_timeout(c.at(9)).is_empty());
        assert_eq!(s.heard("1234", "L1", c.at(9)), vec![]);
        assert!(
            s.handle_timeout(c.at(18)).is_empty(),
            "heard at +9, deadline +19"
        );
        let ch = s.handle_timeout(c.at(19));
        assert!(
            matches!(&ch[..], [Change::AllFailed { account, silent_since_ms, .. }]
                if account == "1234" && *silent_since_ms == c.at(9).wall_ms),
            "{ch:?}"
        );
        assert_eq!(s.failed(), 1);
        // No repeat while it stays silent.
        assert!(s.handle_timeout(c.at(100)).is_empty());
        let r = s.heard("1234", "L1", c.at(101));
        assert!(
            matches!(&r[..], [Change::AllRestored { silent_since_ms, .. }]
                if *silent_since_ms == c.at(9).wall_ms),
            "{r:?}"
        );
        assert_eq!(s.failed(), 0);
        assert!(s.handle_timeout(c.at(110)).is_empty());
        assert_eq!(s.handle_timeout(c.at(111)).len(), 1);
    }

    #[test]
    fn the_timer_is_armed_at_the_next_deadline() {
        let c = Clock::new();
        let mut s = Supervisor::new(c.t0);
        assert_eq!(s.poll_timeout(), None);
        s.configure("1", single(90));
        s.arm("1", c.at(0));
        assert_eq!(s.poll_timeout(), Some(c.at(90).at));
        s.heard("1", "L0", c.at_ms(30_500));
        // The entry is still at +90; the pass there moves it to the new deadline.
        assert!(s.handle_timeout(c.at(90)).is_empty());
        assert_eq!(s.poll_timeout(), Some(c.at(121).at));
        assert_eq!(s.handle_timeout(c.at(121)).len(), 1);
        // Every path in failure: nothing to wake up for.
        assert_eq!(s.poll_timeout(), None);
    }

    /// The wall clock steps an hour either way while the monotonic clock runs on: no
    /// deadline moves, so no false failure and no missed one.
    #[test]
    fn wall_clock_steps_move_no_deadline() {
        let c = Clock::new();
        let mut s = Supervisor::new(c.t0);
        s.configure("1", single(10));
        s.arm("1", c.at(0));
        // Polls every 2 s; the wall clock jumps +1 h at 5 s.
        for t in (0..=30).step_by(2) {
            let step = if t >= 5 { 3600 } else { 0 };
            assert_eq!(s.heard("1", "L0", c.stepped(t, step)), vec![]);
            assert!(s.handle_timeout(c.stepped(t + 1, step)).is_empty(), "{t}");
        }
        // Back by an hour, and the site falls silent after its poll at 30 s.
        for t in 31..40 {
            assert!(s.handle_timeout(c.at(t)).is_empty(), "{t}");
        }
        let ch = s.handle_timeout(c.at(40));
        assert!(
            matches!(&ch[..], [Change::AllFailed { silent_since_ms, .. }]
                if *silent_since_ms == c.stepped(30, 3600).wall_ms),
            "{ch:?}"
        );
    }

    #[test]
    fn dual_path_one_then_both() {
        let c = Clock::new();
        let mut s = Supervisor::new(c.t0);
        s.configure("77", dual(10, 30));
        s.arm("77", c.at(0));
        s.heard("77", "L1", c.at(0));
        s.heard("77", "L2", c.at(0));
        // Keep the secondary alive, silence the primary.
        s.heard("77", "L2", c.at(8));
        let ch = s.handle_timeout(c.at(10));
        assert!(
            matches!(&ch[..], [Change::PathFailed { path, .. }] if path == "L1"),
            "{ch:?}"
        );
        let ch = s.handle_timeout(c.at(38));
        assert!(
            matches!(&ch[..], [Change::AllFailed { paths, silent_since_ms, .. }]
                if paths == &["L1", "L2"] && *silent_since_ms == c.at(8).wall_ms),
            "{ch:?}"
        );
        let r = s.heard("77", "L2", c.at(40));
        assert!(
            matches!(&r[..], [Change::AllRestored { path, .. }] if path == "L2"),
            "{r:?}"
        );
        let r = s.heard("77", "L1", c.at(41));
        assert!(
            matches!(&r[..], [Change::PathRestored { path, silent_since_ms, .. }]
                if path == "L1" && *silent_since_ms == c.at(0).wall_ms),
            "{r:?}"
        );
    }

    #[test]
    fn path_count_follows_configuration() {
        let c = Clock::new();
        let mut s = Supervisor::new(c.t0);
        let counted = |s: &Supervisor| {
            s.paths
                .iter()
                .filter(|p| {
                    s.sites
                        .get(&p.account)
                        .is_some_and(|x| x.interval.is_some())
                })
                .count()
        };
        s.configure("1", dual(10, 20));
        s.configure("2", single(10));
        s.arm("1", c.at(0));
        s.arm("2", c.at(0));
        s.heard("1", "L1", c.at(0));
        s.heard("1", "L2", c.at(0));
        s.heard("2", "L1", c.at(0));
        assert_eq!((s.paths(), counted(&s)), (3, 3));
        // A reload drops supervision of 1, then gives it back; 2 changes its interval.
        s.configure("1", None);
        s.configure("2", single(30));
        assert_eq!((s.paths(), counted(&s)), (1, 1));
        s.configure("1", None);
        assert_eq!(s.paths(), 1);
        s.configure("1", dual(10, 20));
        assert_eq!((s.paths(), counted(&s)), (3, 3));
        s.restore_failed("1", "L3", 0, 0, false, c.at(0));
        assert_eq!((s.paths(), counted(&s)), (4, 4));
        // Unknown and unconfigured accounts add nothing.
        s.heard("3", "L1", c.at(0));
        s.restore_failed("3", "L1", 0, 0, true, c.at(0));
        assert_eq!((s.paths(), counted(&s)), (4, 4));
    }

    #[test]
    fn a_site_gets_at_most_max_paths() {
        let c = Clock::new();
        let mut s = Supervisor::new(c.t0);
        s.configure("88", dual(10, 10));
        s.arm("88", c.at(0));
        for i in 0..MAX_PATHS_PER_SITE + 3 {
            assert_eq!(s.heard("88", &format!("L{i}"), c.at(0)), vec![]);
        }
        assert_eq!(s.paths(), MAX_PATHS_PER_SITE);
        assert_eq!(s.paths_refused(), 3);
        // A known path still refreshes; a refused one is never reported lost.
        s.heard("88", "L0", c.at(5));
        let ch = s.handle_timeout(c.at(10));
        let lost: Vec<_> = ch
            .iter()
            .filter_map(|c| match c {
                Change::PathFailed { path, .. } => Some(path.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(lost.len(), MAX_PATHS_PER_SITE - 1, "{ch:?}");
        assert!(!lost.iter().any(|p| p == "L0" || p == "L8"), "{lost:?}");
        // Once paths fail, the limit still holds: failed paths are paths.
        s.heard("88", "L9", c.at(11));
        assert_eq!(s.paths(), MAX_PATHS_PER_SITE);
        assert_eq!(s.paths_refused(), 4);
    }

    #[test]
    fn long_intervals_take_several_turns() {
        let c = Clock::new();
        let mut s = Supervisor::new(c.t0);
        s.configure("9", single(10_000));
        s.arm("9", c.at(0));
        assert_eq!(s.poll_timeout(), Some(c.at(10_000).at));
        let mut now = 0;
        let mut fired = None;
        while now < 20_000 {
            now += 1;
            if !s.handle_timeout(c.at(now)).is_empty() {
                fired = Some(now);
                break;
            }
        }
        assert_eq!(fired, Some(10_000));
    }

    #[test]
    fn unsupervised_accounts_are_ignored() {
        let c = Clock::new();
        let mut s = Supervisor::new(c.t0);
        assert!(s.heard("1", "L0", c.at(1)).is_empty());
        assert!(!s.supervises("1"));
        assert_eq!(s.poll_timeout(), None);
    }

    #[test]
    fn restart_state_does_not_refail() {
        let c = Clock::new();
        let mut s = Supervisor::new(c.t0);
        s.configure("1", single(10));
        s.restore_failed("1", "*", 50_000, 40_000, true, c.at(0));
        assert!(s.handle_timeout(c.at(1000)).is_empty());
        assert!(matches!(
            &s.heard("1", "L0", c.at(1001))[..],
            [Change::AllRestored {
                silent_since_ms: 40_000,
                ..
            }]
        ));
    }

    /// A peer's hearing arrives dated back by its age: older than what is known, it
    /// changes nothing; newer, it moves the deadline or ends a failure.
    #[test]
    fn hearings_in_the_past() {
        let c = Clock::new();
        let mut s = Supervisor::new(c.t0);
        s.configure("5", single(10));
        s.arm("5", c.at(0));
        s.heard("5", "L1", c.at(20));
        s.heard("5", "L1", c.at(5)); // late news of an older frame
        assert!(s.handle_timeout(c.at(29)).is_empty());
        assert_eq!(s.handle_timeout(c.at(30)).len(), 1);
        // Failed since 20: a hearing at 19 is no news, one at 25 (known late) restores.
        assert!(s.heard("5", "L1", c.at(19)).is_empty());
        assert_eq!(s.heard("5", "L1", c.at(25)).len(), 1);
        assert_eq!(s.failed(), 0);
    }

    /// While a peer cannot be heard, a due failure waits for the hold, then is raised with
    /// the real start of the silence; news from the peer during the hold cancels it; the
    /// end of the hold releases what it kept at once.
    #[test]
    fn the_hold_delays_and_never_drops() {
        let c = Clock::new();
        let mut s = Supervisor::new(c.t0);
        for a in ["1", "2", "3"] {
            s.configure(a, single(10));
            s.arm(a, c.at(0));
        }
        s.set_hold(Some(Duration::from_secs(20)));
        assert!(s.handle_timeout(c.at(10)).is_empty());
        assert_eq!(s.held(), 3);
        // News of 2 comes in (heard by the peer at 8).
        assert!(s.heard("2", "L1", c.at(8)).is_empty());
        assert_eq!(s.held(), 2);
        let ch = s.handle_timeout(c.at(30));
        assert_eq!(ch.len(), 2, "{ch:?}");
        assert!(ch.iter().all(|ch| ch.silent_since_ms() == c.at(0).wall_ms));
        // 2 has been due since 18: held too.
        assert_eq!(s.held(), 1);
        s.set_hold(None);
        assert_eq!(s.held(), 0);
        assert_eq!(s.poll_timeout(), Some(c.at(31).at));
        let ch = s.handle_timeout(c.at(31));
        assert!(
            matches!(&ch[..], [Change::AllFailed { account, silent_since_ms, .. }]
                if account == "2" && *silent_since_ms == c.at(8).wall_ms),
            "{ch:?}"
        );
    }

    #[test]
    fn lost_hearings_delay_and_never_fail() {
        let c = Clock::new();
        let mut s = Supervisor::new(c.t0);
        s.configure("1", single(10));
        s.arm("1", c.at(0));
        // A hearing at 8 was lost; the driver notices at 9.
        s.amnesty(c.at(9).at);
        assert!(s.handle_timeout(c.at(18)).is_empty());
        let ch = s.handle_timeout(c.at(19));
        assert!(
            matches!(&ch[..], [Change::AllFailed { silent_since_ms, .. }]
                if *silent_since_ms == c.at(0).wall_ms),
            "{ch:?}"
        );
    }

    #[test]
    fn accounts_removed_by_a_reload_leave() {
        let c = Clock::new();
        let mut s = Supervisor::new(c.t0);
        s.configure("1", single(1));
        s.configure("2", single(1));
        s.arm("1", c.at(0));
        s.arm("2", c.at(0));
        assert_eq!(s.handle_timeout(c.at(1)).len(), 2);
        s.retain_accounts(|a| a == "2");
        assert!(!s.supervises("1") && s.supervises("2"));
        assert_eq!((s.paths(), s.failed()), (1, 1));
        assert_eq!(s.failures()[0].0, "2");
    }

    #[test]
    fn the_share_delay_adds_to_every_deadline() {
        let c = Clock::new();
        let mut s = Supervisor::new(c.t0);
        s.set_share_delay(Duration::from_secs(3));
        s.configure("1", single(10));
        s.arm("1", c.at(0));
        assert!(s.handle_timeout(c.at(12)).is_empty());
        assert_eq!(s.handle_timeout(c.at(13)).len(), 1);
    }

    /// Two receivers, each hearing the site in turn and learning the other's hearings a
    /// moment later, raise the same failure and the same restore with the same ids.
    #[test]
    fn receivers_sharing_hearings_name_events_alike() {
        let ca = Clock::new();
        // Receiver B's clocks: its monotonic origin and its wall clock differ from A's.
        let cb = Clock {
            t0: ca.t0 + Duration::from_millis(1234),
            wall0: ca.wall0 + 700,
        };
        let mut a = Supervisor::new(ca.t0);
        let mut b = Supervisor::new(cb.t0);
        for s in [&mut a, &mut b] {
            s.configure("42", dual(10, 10));
        }
        a.arm("42", ca.at(0));
        b.arm("42", cb.at(0));
        // A hears L1 at its 2 s, B hears L2 at its 3 s; each learns of the other's frame
        // 400 ms later, dated back by its age.
        let heard_a = ca.at(2);
        let heard_b = cb.at(3);
        a.heard("42", "L1", heard_a);
        b.heard("42", "L2", heard_b);
        b.heard(
            "42",
            "L1",
            Stamp {
                at: heard_a.at,
                ..heard_a
            },
        );
        a.heard(
            "42",
            "L2",
            Stamp {
                at: heard_b.at,
                ..heard_b
            },
        );
        // Each passes its wheel every second, as the driver does: L1 goes first, then the
        // whole site.
        let pass = |s: &mut Supervisor, c: &Clock, to: u64| {
            (1..=to)
                .flat_map(|t| s.handle_timeout(c.at(t)))
                .collect::<Vec<_>>()
        };
        let fa = pass(&mut a, &ca, 30);
        let fb = pass(&mut b, &cb, 30);
        assert_eq!(fa.len(), 2, "{fa:?}");
        assert_eq!(fa, fb);
        let t = time::UtcDateTime::now();
        for (x, y) in fa.iter().zip(&fb) {
            assert_eq!(x.to_event("a", t).id, y.to_event("b", t).id);
        }
        // A hears the site again; B learns it.
        let back = ca.at(40);
        let ra = a.heard("42", "L1", back);
        let rb = b.heard("42", "L1", back);
        assert_eq!(ra, rb);
        assert_eq!(ra[0].to_event("a", t).id, rb[0].to_event("b", t).id);
        // The next silence of the same site is another event.
        let again: Vec<_> = (31..=60).flat_map(|t| a.handle_timeout(ca.at(t))).collect();
        assert_eq!(again.len(), 1, "{again:?}");
        assert_ne!(again[0].to_event("a", t).id, fa[1].to_event("a", t).id);
    }

    #[test]
    fn intervals_parse() {
        assert_eq!(parse_interval("90s").unwrap().primary, 90);
        let dp4 = parse_interval("dp4").unwrap();
        assert_eq!((dp4.primary, dp4.secondary), (90, Some(180)));
        let explicit = parse_interval("90s/25h").unwrap();
        assert_eq!(explicit.secondary, Some(90_000));
        assert!(parse_interval("SP9").is_err());
        assert!(parse_interval("0s").is_err());
    }
}
