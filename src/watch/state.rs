//! Bounded state: LRU maps keyed by 64-bit hashes, and event-time decay.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, Hasher};

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
///
/// Entries live in one slab (a `Vec`) linked into a recency list by `u32` indices, with a
/// `u64 → slot` index beside it: no allocation per entry and no per-entry pointers, which
/// matters at a million members (the `lru` crate's boxed nodes cost about 40% more memory).
pub struct Bounded<V> {
    index: HashMap<u64, u32, PreHashed>,
    slots: Vec<Slot<V>>,
    cap: usize,
    /// Most and least recently used slots.
    head: u32,
    tail: u32,
    /// Entries evicted because the cap was reached.
    pub evicted: u64,
}

struct Slot<V> {
    key: u64,
    prev: u32,
    next: u32,
    val: V,
}

const NIL: u32 = u32::MAX;

impl<V> Bounded<V> {
    pub fn new(cap: usize) -> Self {
        Bounded {
            index: HashMap::with_hasher(PreHashed),
            slots: Vec::new(),
            cap: cap.clamp(1, NIL as usize - 1),
            head: NIL,
            tail: NIL,
            evicted: 0,
        }
    }

    fn unlink(&mut self, i: u32) {
        let (prev, next) = {
            let s = &self.slots[i as usize];
            (s.prev, s.next)
        };
        match prev {
            NIL => self.head = next,
            p => self.slots[p as usize].next = next,
        }
        match next {
            NIL => self.tail = prev,
            n => self.slots[n as usize].prev = prev,
        }
    }

    fn push_front(&mut self, i: u32) {
        let old = self.head;
        {
            let s = &mut self.slots[i as usize];
            s.prev = NIL;
            s.next = old;
        }
        match old {
            NIL => self.tail = i,
            o => self.slots[o as usize].prev = i,
        }
        self.head = i;
    }

    fn touch(&mut self, i: u32) {
        if self.head != i {
            self.unlink(i);
            self.push_front(i);
        }
    }

    /// Stores `val` under `k` as the most recent entry (the slot of the least recent one is
    /// reused when full); returns its slot.
    fn insert(&mut self, k: u64, val: V) -> u32 {
        let i = if self.slots.len() < self.cap {
            self.slots.push(Slot {
                key: k,
                prev: NIL,
                next: NIL,
                val,
            });
            (self.slots.len() - 1) as u32
        } else {
            let i = self.tail;
            self.unlink(i);
            let s = &mut self.slots[i as usize];
            self.index.remove(&s.key);
            s.key = k;
            s.val = val;
            self.evicted += 1;
            i
        };
        self.index.insert(k, i);
        self.push_front(i);
        i
    }

    /// The entry for `k`, created with `init` (evicting the least recently used one if full).
    pub fn entry(&mut self, k: u64, init: impl FnOnce() -> V) -> &mut V {
        let i = match self.index.get(&k) {
            Some(&i) => {
                self.touch(i);
                i
            }
            None => self.insert(k, init()),
        };
        &mut self.slots[i as usize].val
    }

    pub fn get_mut(&mut self, k: u64) -> Option<&mut V> {
        let i = *self.index.get(&k)?;
        self.touch(i);
        Some(&mut self.slots[i as usize].val)
    }

    /// Looks without refreshing recency.
    pub fn peek_mut(&mut self, k: u64) -> Option<&mut V> {
        let i = *self.index.get(&k)?;
        Some(&mut self.slots[i as usize].val)
    }

    pub fn put(&mut self, k: u64, v: V) {
        match self.index.get(&k) {
            Some(&i) => {
                self.slots[i as usize].val = v;
                self.touch(i);
            }
            None => {
                self.insert(k, v);
            }
        }
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Every entry, in no particular order.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (&u64, &mut V)> {
        self.slots.iter_mut().map(|s| (&s.key, &mut s.val))
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
    fn bounded_map_reuses_slots_in_recency_order() {
        let mut m = Bounded::new(3);
        for k in 0..3 {
            m.put(k, k * 10);
        }
        m.get_mut(0); // order, most recent first: 0 2 1
        m.put(3, 30); // evicts 1
        m.entry(4, || 40); // evicts 2
        assert_eq!(m.evicted, 2);
        assert_eq!(m.len(), 3);
        let mut keys: Vec<u64> = m.iter_mut().map(|(k, _)| *k).collect();
        keys.sort();
        assert_eq!(keys, [0, 3, 4]);
        assert!(m.peek_mut(1).is_none() && m.peek_mut(2).is_none());
        assert_eq!(m.peek_mut(0).copied(), Some(0));
        m.put(0, 5); // overwrite in place, no eviction
        assert_eq!((m.evicted, m.get_mut(0).copied()), (2, Some(5)));
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
