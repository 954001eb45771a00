//! Recently acknowledged content keys, so a retransmission gets a fresh ACK and no second
//! event (`docs/protocol/dc09.md` §8; design invariant 4).
//!
//! A key enters only after its events are durable: were it entered earlier, a copy
//! arriving while the first one's fsync failed would be acknowledged as a duplicate of an
//! event that was never kept. Two copies arriving together may both be journaled; they
//! carry the same event ids, and the bus's duplicate window keeps one.
//!
//! Sharded so that connection tasks on different cores rarely meet on one lock; each
//! shard expires its keys in arrival order from a queue, so memory follows the traffic of
//! one window — and is capped: a flood (90 k frames/s over a 10 min window would be 54 M
//! keys, gigabytes) evicts the oldest keys first, so the window shortens under load instead
//! of the process growing without bound. An evicted key only means a late retransmission
//! is journaled again; its events keep their ids and the bus still keeps one copy.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;

use super::decide::SeenKeys;
use super::event::ContentKey;

const SHARDS: usize = 16;

/// Keys kept at most by default: about 60 bytes each, so ~240 MiB; a station receiving
/// 6 600 frames/s on average still keeps its whole 10 min window.
pub const DEFAULT_MAX_KEYS: usize = 4_000_000;

/// Content keys are xxh3-128 digests already: the table hashes one by taking its upper
/// 64 bits (the shard is picked from the lower ones) instead of running SipHash over it.
/// The keys depend on what panels send, but finding collisions in xxh3's upper half for
/// a chosen slot is the only way to crowd a bucket, and a crowded bucket costs a probe,
/// not a wrong answer.
#[derive(Default, Clone, Copy)]
struct DigestHasher(u64);

impl std::hash::Hasher for DigestHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u128(&mut self, v: u128) {
        self.0 = (v >> 64) as u64;
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

#[derive(Default)]
struct Shard {
    expiry: HashMap<ContentKey, i64, std::hash::BuildHasherDefault<DigestHasher>>,
    order: VecDeque<(i64, ContentKey)>,
}

impl Shard {
    fn expire(&mut self, now_micros: i64) {
        while let Some(&(at, key)) = self.order.front() {
            if at > now_micros {
                break;
            }
            self.order.pop_front();
            // A key re-inserted later has a later expiry: keep it.
            if self.expiry.get(&key).is_some_and(|&e| e <= now_micros) {
                self.expiry.remove(&key);
            }
        }
    }
}

/// The dedup window shared by all connections.
pub struct Dedup {
    window_micros: i64,
    shard_cap: usize,
    evicted: AtomicU64,
    shards: [Mutex<Shard>; SHARDS],
}

impl Dedup {
    pub fn new(window: std::time::Duration) -> Dedup {
        Dedup::with_limit(window, DEFAULT_MAX_KEYS)
    }

    /// A window keeping at most about `max_keys` keys (the oldest go first).
    pub fn with_limit(window: std::time::Duration, max_keys: usize) -> Dedup {
        Dedup {
            window_micros: i64::try_from(window.as_micros()).unwrap_or(i64::MAX),
            shard_cap: (max_keys / SHARDS).max(1),
            evicted: AtomicU64::new(0),
            shards: std::array::from_fn(|_| Mutex::new(Shard::default())),
        }
    }

    /// Keys dropped before their window ended because the cap was reached.
    pub fn evicted(&self) -> u64 {
        self.evicted.load(Relaxed)
    }

    fn shard(&self, key: ContentKey) -> &Mutex<Shard> {
        let i = (key.0 as usize) % SHARDS;
        // `i < SHARDS` by construction; `get` keeps the path panic-free anyway.
        self.shards.get(i).unwrap_or(&self.shards[0])
    }

    /// Remembers `key` as acknowledged at `at_micros`.
    pub fn insert(&self, key: ContentKey, at_micros: i64) {
        let until = at_micros.saturating_add(self.window_micros);
        let mut shard = self.shard(key).lock().unwrap_or_else(|p| p.into_inner());
        shard.expire(at_micros);
        shard.expiry.insert(key, until);
        shard.order.push_back((until, key));
        while shard.order.len() > self.shard_cap {
            let Some((at, old)) = shard.order.pop_front() else {
                break;
            };
            // Only the queue entry holding the key's current expiry removes it.
            if shard.expiry.get(&old) == Some(&at) {
                shard.expiry.remove(&old);
                self.evicted.fetch_add(1, Relaxed);
            }
        }
    }

    /// Whether `key` was acknowledged within the window before `now_micros`.
    pub fn contains(&self, key: ContentKey, now_micros: i64) -> bool {
        let shard = self.shard(key).lock().unwrap_or_else(|p| p.into_inner());
        shard
            .expiry
            .get(&key)
            .is_some_and(|&until| until > now_micros)
    }

    /// Keys currently remembered (for metrics).
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().map(|s| s.expiry.len()).unwrap_or(0))
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A [`SeenKeys`] view at a given instant.
    pub fn at(&self, now_micros: i64) -> DedupAt<'_> {
        DedupAt {
            dedup: self,
            now_micros,
        }
    }
}

/// [`Dedup`] seen from one instant, for [`super::decide::decide`].
pub struct DedupAt<'a> {
    dedup: &'a Dedup,
    now_micros: i64,
}

impl SeenKeys for DedupAt<'_> {
    fn seen(&self, key: ContentKey) -> bool {
        self.dedup.contains(key, self.now_micros)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn window_expires() {
        let d = Dedup::new(Duration::from_secs(600));
        let k = ContentKey(42);
        let t0 = 1_000_000_000_000;
        assert!(!d.contains(k, t0));
        d.insert(k, t0);
        assert!(d.contains(k, t0 + 599_000_000));
        assert!(!d.contains(k, t0 + 600_000_000));
        // Inserting another key later expires the old one from memory.
        d.insert(ContentKey(42 + SHARDS as u128), t0 + 700_000_000);
        assert_eq!(d.len(), 1);
    }

    #[test]
    fn reinsert_extends() {
        let d = Dedup::new(Duration::from_secs(10));
        let k = ContentKey(7);
        d.insert(k, 0);
        d.insert(k, 5_000_000);
        d.insert(ContentKey(7 + SHARDS as u128), 11_000_000);
        assert!(d.contains(k, 12_000_000));
    }

    #[test]
    fn the_cap_evicts_the_oldest_keys_first() {
        let d = Dedup::with_limit(Duration::from_secs(600), 16 * 4);
        // 16 shards of 4: insert far more keys than fit, spread over every shard.
        let keys: Vec<ContentKey> = (0..1000u128).map(|i| ContentKey(i * 0x1_0001)).collect();
        for (t, k) in keys.iter().enumerate() {
            d.insert(*k, t as i64);
        }
        assert!(d.len() <= 64, "{} keys kept", d.len());
        assert_eq!(d.evicted(), 1000 - d.len() as u64);
        // The newest of each shard are kept, the oldest gone.
        assert!(d.contains(keys[999], 1000));
        assert!(!d.contains(keys[0], 1000));
    }
}
