//! Bounded state: LRU maps keyed by 64-bit hashes, and event-time decay.

use lru::LruCache;
use std::hash::{BuildHasher, Hash, Hasher};
use std::num::NonZeroUsize;

/// A stable 64-bit hash of an id (SipHash with fixed keys: the same on every run and instance,
/// so replays are deterministic).
pub fn key_of(s: &str) -> u64 {
    let mut h = std::hash::DefaultHasher::new();
    s.hash(&mut h);
    h.finish()
}

/// Combines two keys (sender × group) into one.
pub fn pair(a: u64, b: u64) -> u64 {
    mix(a ^ b.rotate_left(29).wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

fn mix(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x
}

/// Keys are already hashes: spread them once more and skip SipHash on every lookup.
#[derive(Clone, Copy, Default)]
pub struct PreHashed;

impl BuildHasher for PreHashed {
    type Hasher = PreHasher;
    fn build_hasher(&self) -> PreHasher {
        PreHasher(0)
    }
}

pub struct PreHasher(u64);

impl Hasher for PreHasher {
    fn finish(&self) -> u64 {
        mix(self.0)
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8 | self.0 >> 56) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 ^= n;
    }
}

/// An LRU map with a hard cap that counts its evictions.
pub struct Bounded<V> {
    map: LruCache<u64, V, PreHashed>,
    /// Entries evicted because the cap was reached.
    pub evicted: u64,
}

impl<V> Bounded<V> {
    pub fn new(cap: usize) -> Self {
        Bounded {
            map: LruCache::with_hasher(NonZeroUsize::new(cap.max(1)).expect("≥ 1"), PreHashed),
            evicted: 0,
        }
    }

    /// The entry for `k`, created with `init` (evicting the least recently used one if full).
    pub fn entry(&mut self, k: u64, init: impl FnOnce() -> V) -> &mut V {
        if !self.map.contains(&k) && self.map.len() == self.map.cap().get() {
            self.evicted += 1;
        }
        self.map.get_or_insert_mut(k, init)
    }

    pub fn get_mut(&mut self, k: u64) -> Option<&mut V> {
        self.map.get_mut(&k)
    }

    /// Looks without refreshing recency.
    pub fn peek_mut(&mut self, k: u64) -> Option<&mut V> {
        self.map.peek_mut(&k)
    }

    pub fn put(&mut self, k: u64, v: V) {
        if !self.map.contains(&k) && self.map.len() == self.map.cap().get() {
            self.evicted += 1;
        }
        self.map.put(k, v);
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = (&u64, &mut V)> {
        self.map.iter_mut()
    }
}

/// The factor by which a quantity with half-life `half_life_ms` shrinks over `dt_ms`.
pub fn decay(dt_ms: i64, half_life_ms: f64) -> f64 {
    if dt_ms <= 0 {
        1.0
    } else {
        (-(dt_ms as f64) * std::f64::consts::LN_2 / half_life_ms).exp()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_map_evicts_least_recent_and_counts() {
        let mut m = Bounded::new(2);
        *m.entry(1, || 10) += 1;
        *m.entry(2, || 20) += 1;
        m.entry(1, || 0); // touch 1: 2 is now the least recent
        m.entry(3, || 30);
        assert_eq!(m.evicted, 1);
        assert!(m.get_mut(2).is_none());
        assert_eq!(m.get_mut(1).copied(), Some(11));
        assert_eq!(m.get_mut(3).copied(), Some(30));
    }

    #[test]
    fn decay_halves_per_half_life() {
        for (dt, want) in [
            (0, 1.0),
            (-5, 1.0),
            (1000, 0.5),
            (2000, 0.25),
            (3000, 0.125),
        ] {
            assert!((decay(dt, 1000.0) - want).abs() < 1e-12, "dt {dt}");
        }
    }

    #[test]
    fn keys_are_stable_and_pairs_order_sensitive() {
        assert_eq!(key_of("g1"), key_of("g1"));
        assert_ne!(key_of("g1"), key_of("g2"));
        assert_ne!(
            pair(key_of("a"), key_of("b")),
            pair(key_of("b"), key_of("a"))
        );
    }
}
