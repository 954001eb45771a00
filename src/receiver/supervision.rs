//! Supervision: every site must be heard within its reporting interval, on every path it
//! reports over; silence is an event (a cut line is how burglaries start).
//!
//! A pure state machine in the quinn-proto style: [`Supervisor::heard`] (a frame arrived),
//! [`Supervisor::poll_timeout`] (when to call next), [`Supervisor::handle_timeout`] (what
//! fell silent). Time is a parameter (seconds since the Unix epoch); the driver owns one
//! timer. Expiry uses a hashed timing wheel of one-second slots: each path has exactly one
//! entry in the wheel, placed at its deadline; `heard` only writes the path's last-heard
//! time, and when an entry's slot comes round the path is either still silent (failure)
//! or re-placed at its new deadline. A quiet station therefore costs one cheap visit per
//! path per interval, and nothing at all while every path is in failure.
//!
//! Paths: an account may report over several paths (dual path: Ethernet and mobile). A
//! path is named by the frame's `[J…]` block (network path) when present, else by its line
//! and receiver numbers (`L1`, `L2R3`). For a single-path account every frame refreshes the
//! one timer. For a dual-path account the first path heard is the primary (or the one
//! configured), the others secondary with their own interval; losing one path and losing
//! all are different events.

use std::collections::HashMap;

use super::accounts::AccountId;
use super::event::Event;
use crate::protocol::codes::{Category, EventClass, Qualifier};

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
            let d = crate::ops::units::parse_duration(s)?;
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

/// What supervision reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// One path of a multi-path account fell silent; others still report.
    PathFailed {
        account: String,
        path: String,
        silent_since: u64,
    },
    /// A path heard again after a path failure, while others were up.
    PathRestored { account: String, path: String },
    /// Every path of the account is silent: the site is cut off.
    AllFailed {
        account: String,
        paths: Vec<String>,
        silent_since: u64,
    },
    /// The site is heard again after an all-paths failure.
    AllRestored { account: String, path: String },
}

#[derive(Debug, Clone)]
struct Path {
    account: AccountId,
    name: PathName,
    primary: bool,
    /// Last time heard (s since epoch).
    last_heard: u64,
    /// Since when in failure, if failed.
    failed_since: Option<u64>,
}

#[derive(Debug, Clone, Default)]
struct Site {
    interval: Option<Interval>,
    paths: Vec<u32>,
    all_failed: bool,
    /// Frames over paths refused for [`MAX_PATHS_PER_SITE`].
    refused: u64,
}

/// Supervision of every configured account.
#[derive(Debug)]
pub struct Supervisor {
    sites: HashMap<AccountId, Site>,
    paths: Vec<Path>,
    by_name: HashMap<(AccountId, PathName), u32>,
    wheel: Vec<Vec<(u64, u32)>>,
    /// Next second the wheel has not processed yet.
    cursor: u64,
    failed: usize,
    /// Frames over paths refused for [`MAX_PATHS_PER_SITE`], all sites.
    refused: u64,
    /// Paths of sites that have an interval: kept as they change, because the daemon reads
    /// it every second under the lock every frame takes, and a count over a million paths
    /// would hold that lock for tens of milliseconds.
    supervised: usize,
}

impl Supervisor {
    /// `now`: seconds since the Unix epoch; the wheel starts there.
    pub fn new(now: u64) -> Supervisor {
        Supervisor {
            sites: HashMap::new(),
            paths: Vec::new(),
            by_name: HashMap::new(),
            wheel: vec![Vec::new(); WHEEL_SLOTS],
            cursor: now,
            failed: 0,
            refused: 0,
            supervised: 0,
        }
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
                }
                site.interval = Some(i);
            }
            None => {
                if let Some(site) = self.sites.get_mut(&id) {
                    if site.interval.take().is_some() {
                        self.supervised = self.supervised.saturating_sub(site.paths.len());
                    }
                }
            }
        }
    }

    /// Starts supervision of a configured account at `now` with a fresh interval, before
    /// any frame is heard (a restart never turns into a storm of failures, and a site that
    /// never reports after start is still noticed). The path is provisional until the
    /// first frame names it.
    pub fn arm(&mut self, account: &str, now: u64) {
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

    /// Marks a path as already in failure (state rebuilt from the journal after a
    /// restart): no new failure event for it, a restore when it is heard again.
    pub fn restore_failed(&mut self, account: &str, path: &str, since: u64, all: bool) {
        let Some(id) = AccountId::new(account) else {
            return;
        };
        if self.sites.get(&id).is_none_or(|s| s.interval.is_none()) {
            return;
        }
        let idx = match self.by_name.get(&(id, path.into())) {
            Some(&i) => i,
            None => match self.add_path(id, path.into(), since) {
                Some(i) => i,
                None => return,
            },
        };
        if let Some(p) = self.paths.get_mut(idx as usize) {
            if p.failed_since.is_none() {
                p.failed_since = Some(since);
                self.failed += 1;
            }
        }
        if all {
            if let Some(site) = self.sites.get_mut(&id) {
                site.all_failed = true;
            }
        }
    }

    /// `None` when the site already has [`MAX_PATHS_PER_SITE`] paths.
    fn add_path(&mut self, account: AccountId, name: PathName, now: u64) -> Option<u32> {
        let idx = self.paths.len() as u32;
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
        self.paths.push(Path {
            account,
            name,
            primary,
            last_heard: now,
            failed_since: None,
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

    fn deadline(&self, idx: u32) -> Option<u64> {
        let (secs, grace) = self.interval_of(idx)?;
        let p = self.paths.get(idx as usize)?;
        Some(p.last_heard + u64::from(secs) + u64::from(grace))
    }

    fn schedule(&mut self, idx: u32, deadline: u64) {
        // A deadline already past is handled at the next tick.
        let at = deadline.max(self.cursor);
        let slot = (at % WHEEL_SLOTS as u64) as usize;
        if let Some(s) = self.wheel.get_mut(slot) {
            s.push((at, idx));
        }
    }

    /// A valid frame from `account` over `path` at `now`. Returns the restores it causes.
    pub fn heard(&mut self, account: &str, path: &str, now: u64) -> Vec<Change> {
        let Some(id) = AccountId::new(account) else {
            return Vec::new();
        };
        let Some(site) = self.sites.get(&id) else {
            return Vec::new();
        };
        if site.interval.is_none() {
            return Vec::new();
        }
        let multi = site.interval.is_some_and(|i| i.secondary.is_some());
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
                    _ => match self.add_path(id, name, now) {
                        Some(i) => i,
                        None => return Vec::new(),
                    },
                }
            }
        };
        let mut changes = Vec::new();
        let Some(p) = self.paths.get_mut(idx as usize) else {
            return changes;
        };
        p.last_heard = p.last_heard.max(now);
        if p.failed_since.take().is_some() {
            self.failed = self.failed.saturating_sub(1);
            let path_name = p.name.to_string();
            let was_all = self.sites.get(&id).is_some_and(|s| s.all_failed);
            if let Some(site) = self.sites.get_mut(&id) {
                site.all_failed = false;
            }
            changes.push(if was_all {
                Change::AllRestored {
                    account: account.to_string(),
                    path: path_name,
                }
            } else {
                Change::PathRestored {
                    account: account.to_string(),
                    path: path_name,
                }
            });
            // Back in the wheel: a failed path had no entry.
            if let Some(d) = self.deadline(idx) {
                self.schedule(idx, d);
            }
        }
        changes
    }

    /// The next second at which [`Supervisor::handle_timeout`] has work, if any path is
    /// supervised.
    pub fn poll_timeout(&self) -> Option<u64> {
        if self.paths.is_empty() {
            None
        } else {
            Some(self.cursor)
        }
    }

    /// Advances the wheel to `now` and returns what fell silent.
    pub fn handle_timeout(&mut self, now: u64) -> Vec<Change> {
        let mut changes = Vec::new();
        // After a long pause (suspended VM) more than a whole turn may have passed: one
        // turn visits every slot once, which is enough.
        let steps = now
            .saturating_sub(self.cursor)
            .saturating_add(1)
            .min(WHEEL_SLOTS as u64);
        let first = now + 1 - steps;
        for second in first..=now {
            let slot = (second % WHEEL_SLOTS as u64) as usize;
            let entries = self
                .wheel
                .get_mut(slot)
                .map(std::mem::take)
                .unwrap_or_default();
            let mut keep = Vec::new();
            for (at, idx) in entries {
                if at > now {
                    keep.push((at, idx));
                    continue;
                }
                match self.deadline(idx) {
                    None => {} // no longer supervised: drop the entry
                    Some(d) if d > now => self.schedule(idx, d),
                    Some(_) => self.fail(idx, now, &mut changes),
                }
            }
            if let Some(s) = self.wheel.get_mut(slot) {
                s.extend(keep);
            }
        }
        self.cursor = now + 1;
        changes
    }

    fn fail(&mut self, idx: u32, now: u64, changes: &mut Vec<Change>) {
        let Some(p) = self.paths.get_mut(idx as usize) else {
            return;
        };
        if p.failed_since.is_some() {
            return;
        }
        p.failed_since = Some(now);
        let since = p.last_heard;
        let account = p.account;
        let name = p.name.to_string();
        self.failed += 1;
        let Some(site) = self.sites.get(&account) else {
            return;
        };
        let all_silent = site.paths.iter().all(|&i| {
            self.paths
                .get(i as usize)
                .is_some_and(|p| p.failed_since.is_some())
        });
        let multi = site.interval.is_some_and(|i| i.secondary.is_some());
        let account_s = account.as_str().to_string();
        if all_silent {
            let paths = site
                .paths
                .iter()
                .filter_map(|&i| self.paths.get(i as usize).map(|p| p.name.to_string()))
                .collect();
            if let Some(site) = self.sites.get_mut(&account) {
                site.all_failed = true;
            }
            changes.push(Change::AllFailed {
                account: account_s,
                paths,
                silent_since: since,
            });
        } else if multi {
            changes.push(Change::PathFailed {
                account: account_s,
                path: name,
                silent_since: since,
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

    /// The paths now in failure: (account, path, failed since).
    pub fn failures(&self) -> Vec<(String, String, u64)> {
        self.paths
            .iter()
            .filter_map(|p| {
                p.failed_since
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
                let since = p.failed_since?;
                Some(super::supervision_state::FailedPath {
                    account: p.account.as_str().to_string(),
                    path: p.name.to_string(),
                    since,
                    all: self.sites.get(&p.account).is_some_and(|s| s.all_failed),
                })
            })
            .collect();
        super::supervision_state::Snapshot {
            taken_micros,
            failed,
        }
    }

    /// Per path of `account`: (path, last heard, failed since).
    pub fn site(&self, account: &str) -> Vec<(String, u64, Option<u64>)> {
        let Some(id) = AccountId::new(account) else {
            return Vec::new();
        };
        self.sites
            .get(&id)
            .map(|s| {
                s.paths
                    .iter()
                    .filter_map(|&i| self.paths.get(i as usize))
                    .map(|p| (p.name.to_string(), p.last_heard, p.failed_since))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Event codes of supervision.
pub const CODE_PATH_FAIL: &str = "path_fail";
pub const CODE_PATH_RESTORE: &str = "path_restore";
pub const CODE_COMM_FAIL: &str = "comm_fail";
pub const CODE_COMM_RESTORE: &str = "comm_restore";

impl Change {
    /// The normalized event for this change. Its id is derived from receiver, account,
    /// path, code and time, so replaying the same change gives the same id.
    pub fn to_event(&self, receiver: &str, now: time::UtcDateTime) -> Event {
        let when = |s: u64| {
            time::UtcDateTime::from_unix_timestamp(i64::try_from(s).unwrap_or(0))
                .map(super::event::panel_rfc3339)
                .unwrap_or_default()
        };
        let (account, path, code, qualifier, text) = match self {
            Change::PathFailed {
                account,
                path,
                silent_since,
            } => (
                account,
                path.clone(),
                CODE_PATH_FAIL,
                Qualifier::New,
                format!(
                    "Path {path} of {account} silent since {} (other paths still report)",
                    when(*silent_since)
                ),
            ),
            Change::PathRestored { account, path } => (
                account,
                path.clone(),
                CODE_PATH_RESTORE,
                Qualifier::Restore,
                format!("Path {path} of {account} heard again"),
            ),
            Change::AllFailed {
                account,
                paths,
                silent_since,
            } => (
                account,
                paths.join(","),
                CODE_COMM_FAIL,
                Qualifier::New,
                format!(
                    "{account} silent on every path ({}) since {}",
                    paths.join(", "),
                    when(*silent_since)
                ),
            ),
            Change::AllRestored { account, path } => (
                account,
                path.clone(),
                CODE_COMM_RESTORE,
                Qualifier::Restore,
                format!("{account} heard again (path {path})"),
            ),
        };
        let mut h = xxhash_rust::xxh3::Xxh3::new();
        for part in [receiver, account.as_str(), path.as_str(), code] {
            h.update(part.as_bytes());
            h.update(&[0x1F]);
        }
        h.update(&now.unix_timestamp().to_le_bytes());
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
        e
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

    fn single(secs: u32) -> Option<Interval> {
        Some(Interval {
            primary: secs,
            secondary: None,
            grace: 0,
        })
    }

    #[test]
    fn silence_then_restore() {
        let t0 = 1_000_000;
        let mut s = Supervisor::new(t0);
        s.configure("1234", single(10));
        s.arm("1234", t0);
        assert!(s.handle_timeout(t0 + 9).is_empty());
        assert_eq!(s.heard("1234", "L1", t0 + 9), vec![]);
        assert!(
            s.handle_timeout(t0 + 18).is_empty(),
            "heard at +9, deadline +19"
        );
        let c = s.handle_timeout(t0 + 19);
        assert!(
            matches!(&c[..], [Change::AllFailed { account, .. }] if account == "1234"),
            "{c:?}"
        );
        assert_eq!(s.failed(), 1);
        // No repeat while it stays silent.
        assert!(s.handle_timeout(t0 + 100).is_empty());
        let r = s.heard("1234", "L1", t0 + 101);
        assert!(matches!(&r[..], [Change::AllRestored { .. }]), "{r:?}");
        assert_eq!(s.failed(), 0);
        assert!(s.handle_timeout(t0 + 110).is_empty());
        assert_eq!(s.handle_timeout(t0 + 111).len(), 1);
    }

    #[test]
    fn dual_path_one_then_both() {
        let t0 = 5_000;
        let mut s = Supervisor::new(t0);
        s.configure(
            "77",
            Some(Interval {
                primary: 10,
                secondary: Some(30),
                grace: 0,
            }),
        );
        s.arm("77", t0);
        s.heard("77", "L1", t0);
        s.heard("77", "L2", t0);
        // Keep the secondary alive, silence the primary.
        s.heard("77", "L2", t0 + 8);
        let c = s.handle_timeout(t0 + 10);
        assert!(
            matches!(&c[..], [Change::PathFailed { path, .. }] if path == "L1"),
            "{c:?}"
        );
        let c = s.handle_timeout(t0 + 38);
        assert!(
            matches!(&c[..], [Change::AllFailed { paths, .. }] if paths.len() == 2),
            "{c:?}"
        );
        let r = s.heard("77", "L2", t0 + 40);
        assert!(
            matches!(&r[..], [Change::AllRestored { path, .. }] if path == "L2"),
            "{r:?}"
        );
        let r = s.heard("77", "L1", t0 + 41);
        assert!(
            matches!(&r[..], [Change::PathRestored { path, .. }] if path == "L1"),
            "{r:?}"
        );
    }

    #[test]
    fn path_count_follows_configuration() {
        let t0 = 9_000;
        let mut s = Supervisor::new(t0);
        let dual = Some(Interval {
            primary: 10,
            secondary: Some(20),
            grace: 0,
        });
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
        s.configure("1", dual);
        s.configure("2", single(10));
        s.arm("1", t0);
        s.arm("2", t0);
        s.heard("1", "L1", t0);
        s.heard("1", "L2", t0);
        s.heard("2", "L1", t0);
        assert_eq!((s.paths(), counted(&s)), (3, 3));
        // A reload drops supervision of 1, then gives it back; 2 changes its interval.
        s.configure("1", None);
        s.configure("2", single(30));
        assert_eq!((s.paths(), counted(&s)), (1, 1));
        s.configure("1", None);
        assert_eq!(s.paths(), 1);
        s.configure("1", dual);
        assert_eq!((s.paths(), counted(&s)), (3, 3));
        s.restore_failed("1", "L3", t0, false);
        assert_eq!((s.paths(), counted(&s)), (4, 4));
        // Unknown and unconfigured accounts add nothing.
        s.heard("3", "L1", t0);
        s.restore_failed("3", "L1", t0, true);
        assert_eq!((s.paths(), counted(&s)), (4, 4));
    }

    #[test]
    fn a_site_gets_at_most_max_paths() {
        let t0 = 7_000;
        let mut s = Supervisor::new(t0);
        s.configure(
            "88",
            Some(Interval {
                primary: 10,
                secondary: Some(10),
                grace: 0,
            }),
        );
        s.arm("88", t0);
        for i in 0..MAX_PATHS_PER_SITE + 3 {
            assert_eq!(s.heard("88", &format!("L{i}"), t0), vec![]);
        }
        assert_eq!(s.paths(), MAX_PATHS_PER_SITE);
        assert_eq!(s.paths_refused(), 3);
        // A known path still refreshes; a refused one is never reported lost.
        s.heard("88", "L0", t0 + 5);
        let c = s.handle_timeout(t0 + 10);
        let lost: Vec<_> = c
            .iter()
            .filter_map(|c| match c {
                Change::PathFailed { path, .. } => Some(path.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(lost.len(), MAX_PATHS_PER_SITE - 1, "{c:?}");
        assert!(!lost.iter().any(|p| p == "L0" || p == "L8"), "{lost:?}");
        // Once paths fail, the limit still holds: failed paths are paths.
        s.heard("88", "L9", t0 + 11);
        assert_eq!(s.paths(), MAX_PATHS_PER_SITE);
        assert_eq!(s.paths_refused(), 4);
    }

    #[test]
    fn long_intervals_take_several_turns() {
        let t0 = 0;
        let mut s = Supervisor::new(t0);
        s.configure("9", single(10_000));
        s.arm("9", t0);
        let mut now = t0;
        let mut fired = None;
        while now < 20_000 {
            now += 1;
            if !s.handle_timeout(now).is_empty() {
                fired = Some(now);
                break;
            }
        }
        assert_eq!(fired, Some(10_000));
    }

    #[test]
    fn unsupervised_accounts_are_ignored() {
        let mut s = Supervisor::new(0);
        assert!(s.heard("1", "L0", 1).is_empty());
        assert_eq!(s.poll_timeout(), None);
    }

    #[test]
    fn restart_state_does_not_refail() {
        let mut s = Supervisor::new(100);
        s.configure("1", single(10));
        s.restore_failed("1", "*", 50, true);
        assert!(s.handle_timeout(1000).is_empty());
        assert!(matches!(
            &s.heard("1", "L0", 1001)[..],
            [Change::AllRestored { .. }]
        ));
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
