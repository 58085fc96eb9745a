//! Bounded state: LRU maps keyed by 64-bit hashes, and event-time decay.

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
        h = mix(h ^ tail(b, rest.len()) ^ 0xFF);
    }
    mix(h)
}

/// The last `n` (1..8) bytes of `b` as a little-endian word, zero above them. From one read of
/// the last eight bytes when there are eight: copying into a padded buffer cost a `memcpy`
/// call per id, twice per message.
#[inline]
fn tail(b: &[u8], n: usize) -> u64 {
    if let Some(last) = b.last_chunk::<8>() {
        return u64::from_le_bytes(*last) >> (8 * (8 - n));
    }
    let rest = &b[b.len() - n..];
    rest.iter()
        .enumerate()
        .fold(0, |w, (i, &x)| w | u64::from(x) << (8 * i))
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
/// Entries live in one slab (a `Vec`) with an open-addressed `key → slot` index beside it: no
/// allocation per entry and no per-entry pointers, which matters at a million members. CLOCK
/// rather than an exact LRU list because a lookup then writes only its own slot: an LRU list
/// also rewrites both neighbours, two more cache misses per lookup in a map of a million
/// entries.
///
/// The index is ours rather than a `HashMap` so that a caller who knows its next keys can
/// [`prefetch`](Bounded::prefetch) them: at a million entries every first touch of a member is
/// a cache miss, and the watch knows a whole batch of keys in advance. Each index word holds
/// the slot and 32 bits of the key's hash, so a probe rarely touches a slot that is not the
/// one sought, and a missing key (the common case for new members) touches no slot at all.
pub struct Bounded<V> {
    index: Index,
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

/// Linear probing over words `tag << 32 | (slot + 1)` (0 = empty), where `tag` is the high
/// half of the mixed key and the home position its low bits: growing needs no slot reads.
/// At most half full; deletion shifts later entries back (no tombstones), so probe sequences
/// stay short however many evictions there are.
struct Index {
    words: Vec<u64>,
    mask: usize,
    len: usize,
}

#[inline]
fn tag_of(k: u64) -> u32 {
    (mix(k ^ 0x5851_F42D_4C95_7F2D) >> 32) as u32
}

/// A zeroed table whose pages are already the process's own. `vec![0; n]` of a large table
/// maps every page to the kernel's shared zero page; a probe reads it, and the insert that
/// follows takes a copy-on-write fault, which flushes the TLB of every core the process runs
/// on (an inter-processor interrupt per page: 8% of the watch thread's time in `perf`).
/// Writing one word per page up front takes ordinary faults instead, in one sequential pass.
fn written_zeros(n: usize) -> Vec<u64> {
    const WORDS_PER_PAGE: usize = 4096 / std::mem::size_of::<u64>();
    let mut words = vec![0; n];
    for w in words.iter_mut().step_by(WORDS_PER_PAGE) {
        *w = std::hint::black_box(0);
    }
    words
}

impl Index {
    fn new() -> Index {
        Index {
            words: vec![0; 16],
            mask: 15,
            len: 0,
        }
    }

    #[inline]
    fn home(&self, tag: u32) -> usize {
        tag as usize & self.mask
    }

    /// The position of `k`'s word, or of the empty word where it would go.
    #[inline]
    fn probe<V>(&self, k: u64, slots: &[Slot<V>]) -> (usize, Option<u32>) {
        let tag = tag_of(k);
        let mut pos = self.home(tag);
        loop {
            let w = self.words[pos];
            if w == 0 {
                return (pos, None);
            }
            if (w >> 32) as u32 == tag {
                let slot = (w as u32) - 1;
                if slots[slot as usize].key == k {
                    return (pos, Some(slot));
                }
            }
            pos = (pos + 1) & self.mask;
        }
    }

    /// Puts `k → slot` at `pos`, an empty word from [`Index::probe`]; grows past half full.
    fn insert_at(&mut self, pos: usize, k: u64, slot: u32) {
        self.words[pos] = u64::from(tag_of(k)) << 32 | u64::from(slot + 1);
        self.len += 1;
        if self.len * 2 > self.words.len() {
            self.grow();
        }
    }

    fn grow(&mut self) {
        let old = std::mem::replace(&mut self.words, written_zeros((self.mask + 1) * 2));
        self.mask = self.words.len() - 1;
        for w in old.into_iter().filter(|&w| w != 0) {
            let mut pos = self.home((w >> 32) as u32);
            while self.words[pos] != 0 {
                pos = (pos + 1) & self.mask;
            }
            self.words[pos] = w;
        }
    }

    /// Empties the word at `pos`, moving later words of the probe run back into the gap
    /// (Knuth's algorithm R) so every remaining key stays reachable from its home.
    fn remove_at(&mut self, mut pos: usize) {
        self.words[pos] = 0;
        self.len -= 1;
        let mut j = pos;
        loop {
            j = (j + 1) & self.mask;
            let w = self.words[j];
            if w == 0 {
                return;
            }
            let home = self.home((w >> 32) as u32);
            // The word may stay when its home lies cyclically in (pos, j].
            let stays = if pos <= j {
                pos < home && home <= j
            } else {
                pos < home || home <= j
            };
            if !stays {
                self.words[pos] = w;
                self.words[j] = 0;
                pos = j;
            }
        }
    }
}

impl<V> Bounded<V> {
    pub fn new(cap: usize) -> Self {
        Bounded {
            index: Index::new(),
            slots: Vec::new(),
            cap: cap.clamp(1, u32::MAX as usize - 1),
            hand: 0,
            evicted: 0,
        }
    }

    /// Stores `val` under `k`, whose empty index word is at `pos`, evicting if full; returns
    /// its slot.
    fn insert(&mut self, mut pos: usize, k: u64, val: V) -> u32 {
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
            let old = self.slots[i].key;
            let (old_pos, found) = self.index.probe(old, &self.slots);
            debug_assert!(found == Some(i as u32));
            self.index.remove_at(old_pos);
            let s = &mut self.slots[i];
            s.key = k;
            s.used = true;
            s.val = val;
            self.evicted += 1;
            // The removal may have moved words: find the free word for `k` again.
            pos = self.index.probe(k, &self.slots).0;
            i
        };
        self.index.insert_at(pos, k, i as u32);
        i as u32
    }

    /// The entry for `k`, created with `init` (evicting one if full).
    pub fn entry(&mut self, k: u64, init: impl FnOnce() -> V) -> &mut V {
        let i = match self.index.probe(k, &self.slots) {
            (_, Some(i)) => i,
            (pos, None) => self.insert(pos, k, init()),
        };
        let s = &mut self.slots[i as usize];
        s.used = true;
        &mut s.val
    }

    pub fn get_mut(&mut self, k: u64) -> Option<&mut V> {
        let i = self.index.probe(k, &self.slots).1?;
        let s = &mut self.slots[i as usize];
        s.used = true;
        Some(&mut s.val)
    }

    /// Looks without marking the entry used.
    pub fn peek_mut(&mut self, k: u64) -> Option<&mut V> {
        let i = self.index.probe(k, &self.slots).1?;
        Some(&mut self.slots[i as usize].val)
    }

    pub fn put(&mut self, k: u64, v: V) {
        match self.index.probe(k, &self.slots) {
            (_, Some(i)) => {
                let s = &mut self.slots[i as usize];
                s.val = v;
                s.used = true;
            }
            (pos, None) => {
                self.insert(pos, k, v);
            }
        }
    }

    /// Hints the CPU to fetch `k`'s index word: call it a few keys ahead of the lookup.
    #[inline]
    pub fn prefetch(&self, k: u64) {
        crate::hint::prefetch(&self.index.words[self.index.home(tag_of(k))]);
    }

    /// Hints the CPU to fetch `k`'s entry, if it has one (reads its index word, so call
    /// [`Bounded::prefetch`] for `k` some keys earlier).
    #[inline]
    pub fn prefetch_entry(&self, k: u64) {
        let tag = tag_of(k);
        let mut pos = self.index.home(tag);
        // Only the first few words: a longer run is rare, and this is only a hint.
        for _ in 0..4 {
            let w = self.index.words[pos];
            if w == 0 {
                return;
            }
            if (w >> 32) as u32 == tag {
                prefetch_lines(&self.slots[(w as u32 - 1) as usize]);
                return;
            }
            pos = (pos + 1) & self.index.mask;
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

/// Hints the CPU to fetch every cache line `v` lies on: a group's entry spans three or four,
/// and a member's (56 bytes) often straddles two; fetching only the first left the rest to
/// miss when the entry was used.
#[inline(always)]
fn prefetch_lines<T>(v: &T) {
    const LINE: usize = 64;
    let start = v as *const T as usize;
    let end = start + std::mem::size_of::<T>().max(1);
    let mut line = start & !(LINE - 1);
    while line < end {
        crate::hint::prefetch(line as *const u8);
        line += LINE;
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

    /// The CLOCK map as it was with a `HashMap` index: the new index must keep every
    /// observable behaviour (what is found, what is evicted, in which order).
    struct Model {
        index: std::collections::HashMap<u64, usize>,
        slots: Vec<(u64, bool, u64)>,
        cap: usize,
        hand: usize,
        evicted: u64,
    }

    impl Model {
        fn entry(&mut self, k: u64, v: u64) -> &mut u64 {
            let i = match self.index.get(&k) {
                Some(&i) => i,
                None if self.slots.len() < self.cap => {
                    self.slots.push((k, true, v));
                    self.index.insert(k, self.slots.len() - 1);
                    self.slots.len() - 1
                }
                None => {
                    while self.slots[self.hand].1 {
                        self.slots[self.hand].1 = false;
                        self.hand = (self.hand + 1) % self.slots.len();
                    }
                    let i = self.hand;
                    self.hand = (self.hand + 1) % self.slots.len();
                    self.index.remove(&self.slots[i].0);
                    self.slots[i] = (k, true, v);
                    self.index.insert(k, i);
                    self.evicted += 1;
                    i
                }
            };
            self.slots[i].1 = true;
            &mut self.slots[i].2
        }
    }

    #[test]
    fn bounded_map_behaves_like_a_hash_map_with_clock_eviction() {
        let mut rng = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move |n: u64| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng % n
        };
        for cap in [1usize, 2, 7, 64, 1000] {
            let mut m = Bounded::new(cap);
            let mut model = Model {
                index: Default::default(),
                slots: Vec::new(),
                cap,
                hand: 0,
                evicted: 0,
            };
            for step in 0..50_000u64 {
                // Keys from a range a few times the cap, so there are hits, misses and
                // evictions; some keys share their low bits to lengthen probe runs.
                let k = next(cap as u64 * 3 + 5) << (next(2) * 40);
                match next(4) {
                    0 => {
                        let got = m.peek_mut(k).copied();
                        let want = model.index.get(&k).map(|&i| model.slots[i].2);
                        assert_eq!(got, want, "peek {k} at step {step}, cap {cap}");
                    }
                    1 => {
                        let got = m.get_mut(k).copied();
                        let want = model.index.get(&k).map(|&i| {
                            model.slots[i].1 = true;
                            model.slots[i].2
                        });
                        assert_eq!(got, want, "get {k} at step {step}, cap {cap}");
                    }
                    _ => {
                        *m.entry(k, || step) += 1;
                        *model.entry(k, step) += 1;
                    }
                }
                assert_eq!((m.len(), m.evicted), (model.slots.len(), model.evicted));
            }
            let mut got: Vec<(u64, u64)> = m.iter_mut().map(|(k, v)| (*k, *v)).collect();
            let mut want: Vec<(u64, u64)> = model.slots.iter().map(|s| (s.0, s.2)).collect();
            got.sort_unstable();
            want.sort_unstable();
            assert_eq!(got, want, "cap {cap}");
            assert!(m.index.len == m.len() && m.index.len * 2 <= m.index.words.len());
        }
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
    fn an_ids_tail_word_is_its_last_bytes_zero_padded() {
        let id = "group-0123456789-成都".as_bytes();
        for len in 0..=id.len() {
            let b = &id[..len];
            for n in 1..=len.min(7) {
                let mut want = [0u8; 8];
                want[..n].copy_from_slice(&b[len - n..]);
                assert_eq!(
                    tail(b, n),
                    u64::from_le_bytes(want),
                    "{len} bytes, last {n}"
                );
            }
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
