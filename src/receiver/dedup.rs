//! Recently acknowledged content keys, so a retransmission gets a fresh ACK and no second
//! event (`spec/dc09.md` §8; design invariant 4).
//!
//! A key enters only after its events are durable: were it entered earlier, a copy
//! arriving while the first one's fsync failed would be acknowledged as a duplicate of an
//! event that was never kept. Two copies arriving together may both be journaled; they
//! carry the same event ids, and the bus's duplicate window keeps one.
//!
//! Sharded so that connection tasks on different cores rarely meet on one lock; each
//! shard expires its keys in arrival order from a queue, so memory is bounded by the
//! traffic of one window.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use super::decide::SeenKeys;
use super::event::ContentKey;

const SHARDS: usize = 16;

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
    shards: [Mutex<Shard>; SHARDS],
}

impl Dedup {
    pub fn new(window: std::time::Duration) -> Dedup {
        Dedup {
            window_micros: i64::try_from(window.as_micros()).unwrap_or(i64::MAX),
            shards: std::array::from_fn(|_| Mutex::new(Shard::default())),
        }
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
}
