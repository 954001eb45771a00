//! The other receivers of the station, as supervision sees them: who shares what they
//! hear, and whether this receiver can hear them now. Plus the beat, the message they
//! share it in.
//!
//! Pure bookkeeping: instants come in as arguments. The bus I/O is in `bus.rs`; what a
//! peer's silence means for failures (the hold) is decided by the supervision task.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use compact_str::CompactString;
use serde::{Deserialize, Serialize};

/// How often a receiver sends a beat, even an empty one (it says "I am here").
pub const BEAT_EVERY: Duration = Duration::from_secs(1);

/// A peer whose beats stopped for this long cannot be heard: it may be hearing sites this
/// receiver does not know about, so failures are held. Five beats: a loaded host or a
/// bus failing over loses a few without it meaning anything.
pub const UNHEARD_AFTER: Duration = Duration::from_secs(5);

/// A peer unheard this long is forgotten (logged): a receiver taken out of service
/// without a goodbye stops delaying failures after this.
pub const FORGET_AFTER: Duration = Duration::from_secs(600);

/// Added to every deadline while peers share hearings: a frame heard by a peer reaches
/// this receiver within a beat period, the trip over the bus and the batching of hearings
/// at both ends. Without it, a site reporting to a peer just inside its interval would
/// look silent here for the second its news is on the way.
pub const SHARE_DELAY: Duration = Duration::from_secs(3);

/// What one receiver heard since its last beat, as it travels on the bus (JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Beat {
    /// The sender's `[receiver] id`.
    pub from: String,
    /// The sender stops (clean shutdown): stop waiting for it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub bye: bool,
    /// Hearings were lost before the sender's supervision saw them (its queue was full),
    /// this many milliseconds before sending: every path counts as heard then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lost_age_ms: Option<u64>,
    /// `[account, path, age in ms when sent, wall-clock ms when heard]`: the age places the
    /// hearing on the reader's monotonic clock, the wall-clock stamp names the silence.
    #[serde(default)]
    pub heard: Vec<BeatEntry>,
}

/// One path heard: account, path, age (ms) when sent, wall-clock ms when heard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BeatEntry(pub CompactString, pub CompactString, pub u64, pub i64);

/// Whether this receiver hears a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerState {
    Live,
    Unheard,
}

impl PeerState {
    pub fn as_str(self) -> &'static str {
        match self {
            PeerState::Live => "live",
            PeerState::Unheard => "unheard",
        }
    }
}

#[derive(Debug, Clone)]
struct Peer {
    last_beat: Option<Instant>,
    /// Since when it is known (its forgetting counts from here when never heard).
    known_since: Instant,
}

/// The peers of one receiver.
#[derive(Debug, Clone)]
pub struct Peers {
    me: String,
    peers: BTreeMap<String, Peer>,
}

/// What changed in the table, for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerNews {
    Joined(String),
    HeardAgain(String),
    Unheard(String),
    Left(String),
    Forgotten(String),
}

impl Peers {
    pub fn new(me: &str) -> Peers {
        Peers {
            me: me.to_string(),
            peers: BTreeMap::new(),
        }
    }

    /// A peer known from before a restart: waited for until it beats (or is forgotten).
    pub fn expect(&mut self, name: &str, now: Instant) {
        if name != self.me {
            self.peers.entry(name.to_string()).or_insert(Peer {
                last_beat: None,
                known_since: now,
            });
        }
    }

    /// A beat from `from` arrived at `now`.
    pub fn beat(&mut self, from: &str, now: Instant) -> Option<PeerNews> {
        if from == self.me {
            return None;
        }
        match self.peers.get_mut(from) {
            Some(p) => {
                let was = state_of(p, now);
                p.last_beat = Some(now);
                (was == PeerState::Unheard).then(|| PeerNews::HeardAgain(from.to_string()))
            }
            None => {
                self.peers.insert(
                    from.to_string(),
                    Peer {
                        last_beat: Some(now),
                        known_since: now,
                    },
                );
                Some(PeerNews::Joined(from.to_string()))
            }
        }
    }

    /// `from` said goodbye.
    pub fn bye(&mut self, from: &str) -> Option<PeerNews> {
        self.peers
            .remove(from)
            .map(|_| PeerNews::Left(from.to_string()))
    }

    /// What became of the peers by `now`: the ones that fell unheard since `last`, and the
    /// ones forgotten.
    pub fn tick(&mut self, last: Instant, now: Instant) -> Vec<PeerNews> {
        let mut news = Vec::new();
        self.peers.retain(|name, p| {
            let silent_since = p.last_beat.unwrap_or(p.known_since);
            if now.saturating_duration_since(silent_since) > FORGET_AFTER {
                news.push(PeerNews::Forgotten(name.clone()));
                return false;
            }
            if state_of(p, last) == PeerState::Live && state_of(p, now) == PeerState::Unheard {
                news.push(PeerNews::Unheard(name.clone()));
            }
            true
        });
        news
    }

    /// Some known peer cannot be heard now.
    pub fn any_unheard(&self, now: Instant) -> bool {
        self.peers
            .values()
            .any(|p| state_of(p, now) == PeerState::Unheard)
    }

    /// Some peer is known (hearings are shared).
    pub fn known(&self) -> bool {
        !self.peers.is_empty()
    }

    /// Every peer: name, state, time since its last beat.
    pub fn list(&self, now: Instant) -> Vec<(String, PeerState, Option<Duration>)> {
        self.peers
            .iter()
            .map(|(name, p)| {
                (
                    name.clone(),
                    state_of(p, now),
                    p.last_beat.map(|t| now.saturating_duration_since(t)),
                )
            })
            .collect()
    }

    pub fn names(&self) -> Vec<String> {
        self.peers.keys().cloned().collect()
    }

    /// Whether the peers are exactly `names` (sorted), without building a list.
    pub fn named(&self, names: &[String]) -> bool {
        self.peers.len() == names.len() && self.peers.keys().zip(names).all(|(a, b)| a == b)
    }
}

fn state_of(p: &Peer, now: Instant) -> PeerState {
    match p.last_beat {
        Some(t) if now.saturating_duration_since(t) <= UNHEARD_AFTER => PeerState::Live,
        _ => PeerState::Unheard,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peers_come_fall_silent_and_go() {
        let t0 = Instant::now();
        let s = |n: u64| t0 + Duration::from_secs(n);
        let mut p = Peers::new("a");
        assert!(!p.known());
        assert_eq!(p.beat("a", s(0)), None, "its own beats are not a peer");
        assert_eq!(p.beat("b", s(0)), Some(PeerNews::Joined("b".into())));
        assert!(p.known() && !p.any_unheard(s(5)));
        assert!(p.tick(s(0), s(5)).is_empty());
        assert_eq!(p.tick(s(5), s(6)), vec![PeerNews::Unheard("b".into())]);
        assert!(p.any_unheard(s(6)));
        assert_eq!(p.beat("b", s(7)), Some(PeerNews::HeardAgain("b".into())));
        assert!(!p.any_unheard(s(7)));
        assert_eq!(p.bye("b"), Some(PeerNews::Left("b".into())));
        assert!(!p.known() && !p.any_unheard(s(8)));
        // Known from a snapshot: unheard until it beats, forgotten after a while.
        p.expect("c", s(10));
        assert!(p.any_unheard(s(10)));
        let forgotten = p.tick(s(10), s(10) + FORGET_AFTER + Duration::from_secs(1));
        assert_eq!(forgotten, vec![PeerNews::Forgotten("c".into())]);
        assert!(!p.known());
    }

    #[test]
    fn beats_travel_as_compact_json() {
        let b = Beat {
            from: "rx-a".into(),
            bye: false,
            lost_age_ms: None,
            heard: vec![BeatEntry(
                "1234".into(),
                "L1".into(),
                250,
                1_800_000_000_000,
            )],
        };
        let text = serde_json::to_string(&b).unwrap();
        assert_eq!(
            text,
            r#"{"from":"rx-a","heard":[["1234","L1",250,1800000000000]]}"#
        );
        assert_eq!(serde_json::from_str::<Beat>(&text).unwrap(), b);
        let bye: Beat = serde_json::from_str(r#"{"from":"rx-b","bye":true}"#).unwrap();
        assert!(bye.bye && bye.heard.is_empty());
    }
}
