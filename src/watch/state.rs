//! Bounded state: LRU maps keyed by 64-bit hashes, and event-time decay.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};

/// A stable 64-bit hash of an id: the same on every run and instance, so replays are
/// deterministic. Eight bytes at a time with a multiply-mix (ids are short and not chosen to
/// collide: this is not a defence against hash flooding, the caps bound every map anyway).
pub fn key_of(s: &str) -> u64 {
    let b = s.as_bytes();
    let mut h = 0x243F_6A88_85A3_08D3u64 ^ (b.len() as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let mut chunks = b.chunks_exact(8);
    for c in &mut chunks {
        let w = u64::from_le_bytes(c.try_into().expect("8 bytes"));
        h = mix(h ^ w).wrapping_add(0x9E37_79B9_7F4A_7C15);
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut w = [0u8; 8];
        w[..rest.len()].copy_from_slice(rest);
        h = mix(h ^ u64::from_le_bytes(w) ^ 0xFF);
    }
    mix(h)
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
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 ^= n;
    }
}

/// A map with a hard cap that counts its evictions; past the cap it evicts an entry not used
/// recently (CLOCK, the page-cache approximation of LRU).
///
/// Entries live in one slab (a `Vec`) with a `u64 → slot` index beside it: no allocation per
/// entry and no per-entry pointers, which matters at a million members. CLOCK rather than an
/// exact LRU list because a lookup then writes only its own slot: an LRU list also rewrites
/// both neighbours, two more cache misses per lookup in a map of a million entries.
pub struct Bounded<V> {
    index: HashMap<u64, u32, PreHashed>,
    slots: Vec<Slot<V>>,
    cap: usize,
    hand: usize,
    /// Entries evicted because the cap was reached.
    pub evicted: u64,
}

struct Slot<V> {
    key: u64,
    used: bool,
    val: V,
}

impl<V> Bounded<V> {
    pub fn new(cap: usize) -> Self {
        Bounded {
            index: HashMap::with_hasher(PreHashed),
            slots: Vec::new(),
            cap: cap.clamp(1, u32::MAX as usize),
            hand: 0,
            evicted: 0,
        }
    }

    /// Stores `val` under `k`, evicting if full; returns its slot.
    fn insert(&mut self, k: u64, val: V) -> u32 {
        let i = if self.slots.len() < self.cap {
            self.slots.push(Slot {
                key: k,
                used: true,
                val,
            });
            self.slots.len() - 1
        } else {
            // Second chance: skip (and clear) recently used slots.
            while self.slots[self.hand].used {
                self.slots[self.hand].used = false;
                self.hand = (self.hand + 1) % self.slots.len();
            }
            let i = self.hand;
            self.hand = (self.hand + 1) % self.slots.len();
            let s = &mut self.slots[i];
            self.index.remove(&s.key);
            s.key = k;
            s.used = true;
            s.val = val;
            self.evicted += 1;
            i
        };
        self.index.insert(k, i as u32);
        i as u32
    }

    /// The entry for `k`, created with `init` (evicting one if full).
    pub fn entry(&mut self, k: u64, init: impl FnOnce() -> V) -> &mut V {
        let i = match self.index.get(&k) {
            Some(&i) => i,
            None => self.insert(k, init()),
        };
        let s = &mut self.slots[i as usize];
        s.used = true;
        &mut s.val
    }

    pub fn get_mut(&mut self, k: u64) -> Option<&mut V> {
        let i = *self.index.get(&k)?;
        let s = &mut self.slots[i as usize];
        s.used = true;
        Some(&mut s.val)
    }

    /// Looks without marking the entry used.
    pub fn peek_mut(&mut self, k: u64) -> Option<&mut V> {
        let i = *self.index.get(&k)?;
        Some(&mut self.slots[i as usize].val)
    }

    pub fn put(&mut self, k: u64, v: V) {
        match self.index.get(&k) {
            Some(&i) => {
                let s = &mut self.slots[i as usize];
                s.val = v;
                s.used = true;
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
    fn bounded_map_gives_recently_used_entries_a_second_chance() {
        let mut m = Bounded::new(3);
        for k in 0..3 {
            m.put(k, k * 10);
        }
        // All three are marked used: the first eviction clears the marks and takes slot 0.
        m.put(3, 30);
        assert!(m.peek_mut(0).is_none());
        m.get_mut(1); // 1 is used again; 2 is not
        m.entry(4, || 40); // skips 1, evicts 2
        assert_eq!(m.evicted, 2);
        assert_eq!(m.len(), 3);
        let mut keys: Vec<u64> = m.iter_mut().map(|(k, _)| *k).collect();
        keys.sort();
        assert_eq!(keys, [1, 3, 4]);
        m.put(1, 5); // overwrite in place, no eviction
        assert_eq!((m.evicted, m.get_mut(1).copied()), (2, Some(5)));
        *m.entry(4, || 0) += 1;
        assert_eq!(m.peek_mut(4).copied(), Some(41));
    }

    #[test]
    fn bounded_map_never_exceeds_its_cap() {
        let mut m = Bounded::new(100);
        let mut inserted = 0u64;
        for k in 0..10_000u64 {
            let key = (k * 7919) % 1000;
            inserted += u64::from(m.peek_mut(key).is_none());
            *m.entry(key, || 0) += 1;
            assert!(m.len() <= 100);
        }
        // Every insertion either still holds a slot or was counted as an eviction.
        assert_eq!(inserted, m.evicted + m.len() as u64);
        assert!(m.evicted > 0);
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
