//! Duplicate and near-duplicate flooding: text fingerprints (SimHash over character bigrams of
//! the normalised text) grouped into clusters, with the recent posts of each cluster.

use super::state::{Bounded, key_of};
use std::collections::VecDeque;
use std::sync::Arc;

/// SimHash of the normalised text's character bigrams: texts that normalise alike land a few
/// bits apart, unrelated texts about 32 bits apart. A changed character mostly moves a short
/// text further than `max_distance` (2% of one-character variants of 15-character texts stay
/// within 3 bits, 37% at 80 characters): a campaign rotating a contact id splits.
pub fn simhash(norm: &str) -> u64 {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2 (checked just above).
        return unsafe { simhash_avx2(norm) };
    }
    simhash_body(norm)
}

/// The same code compiled for AVX2: the eight per-bit vote lanes then take one variable
/// shift, mask and add per half instead of a shift per lane (the signature is computed for
/// every message while screening, on the same cores).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn simhash_avx2(norm: &str) -> u64 {
    simhash_body(norm)
}

#[inline(always)]
fn simhash_body(norm: &str) -> u64 {
    // Bit votes in byte lanes: lane j of `acc[b]` counts bit 8j + b over up to 255 features,
    // then spills into `counts`: 8 shifts and adds a feature instead of 64.
    let mut counts = [0u32; 64];
    let mut acc = [0u64; 8];
    let mut pending = 0u32;
    let mut n = 0u32;
    let spill = |acc: &mut [u64; 8], counts: &mut [u32; 64]| {
        for (b, a) in acc.iter_mut().enumerate() {
            for j in 0..8 {
                counts[8 * j + b] += ((*a >> (8 * j)) & 0xff) as u32;
            }
            *a = 0;
        }
    };
    let mut prev: Option<char> = None;
    for c in norm.chars() {
        if let Some(p) = prev {
            let h = shingle(p, c);
            for (b, a) in acc.iter_mut().enumerate() {
                *a += (h >> b) & 0x0101_0101_0101_0101;
            }
            n += 1;
            pending += 1;
            if pending == 255 {
                spill(&mut acc, &mut counts);
                pending = 0;
            }
        }
        prev = Some(c);
    }
    spill(&mut acc, &mut counts);
    let mut out = 0u64;
    for (b, &c) in counts.iter().enumerate() {
        if 2 * c > n {
            out |= 1 << b;
        }
    }
    out
}

fn shingle(a: char, b: char) -> u64 {
    let mut x =
        (u64::from(a as u32) << 32 | u64::from(b as u32)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    x ^= x >> 29;
    x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x ^ (x >> 32)
}

/// One recent post of a fingerprint.
#[derive(Clone, Copy)]
struct Post {
    ts: i64,
    group: u64,
    sender: u64,
}

/// Posts kept per cluster: enough to count a flood's groups and senders, small enough that
/// 100k clusters stay a few MB in the common case of one post each.
const POSTS: usize = 64;

/// Messages that share (nearly) the same text.
pub struct Cluster {
    /// The first member's fingerprint; later members are within `max_distance` bits of it.
    pub sim: u64,
    posts: VecDeque<Post>,
    /// Ids of a few recent posts (alert samples). Shared with the [`AlertView`]s still on
    /// their way to the ordered pass, so a new sample copies the list only while one is.
    samples: Arc<Vec<String>>,
    /// Group ids seen, up to a few dozen (for alerts and incident mode); shared likewise.
    groups: Arc<Vec<(u64, String)>>,
    /// Distinct groups in the window as last counted, and when.
    groups_seen: usize,
    senders_seen: usize,
    groups_at: i64,
    /// Some post carried a payload (a rule hit, a link, a contact id, mentions).
    payload: bool,
    /// [`key_of`] of [`alert_key`], once needed.
    alert_hash: Option<u64>,
}

/// The key of a cluster's `flood` alert: its fingerprint (the first post's) in hex.
pub fn alert_key(sim: u64) -> String {
    hex_digits(sim).iter().map(|&d| char::from(d)).collect()
}

/// `sim` as 16 lowercase hex digits, on the stack.
fn hex_digits(sim: u64) -> [u8; 16] {
    let mut hex = [0u8; 16];
    for (i, d) in hex.iter_mut().enumerate() {
        *d = b"0123456789abcdef"[(sim >> (60 - 4 * i)) as usize & 0xf];
    }
    hex
}

impl Cluster {
    /// `key_of(alert_key(sim))`, computed once per cluster (every new cluster needs it: a post
    /// to an open flood keeps it open), without allocating the key.
    fn alert_hash(&mut self) -> u64 {
        let sim = self.sim;
        *self.alert_hash.get_or_insert_with(|| {
            key_of(std::str::from_utf8(&hex_digits(sim)).expect("hex digits are ASCII"))
        })
    }
}

/// What a flood alert reads of its cluster, as a post that qualifies for one left it.
pub struct AlertView {
    /// The cluster's fingerprint (see [`alert_key`]).
    pub sim: u64,
    /// Ids of a few recent posts.
    pub samples: Arc<Vec<String>>,
    /// Groups reached: (key, id), in the order they were reached.
    pub groups: Arc<Vec<(u64, String)>>,
}

/// What one post found.
pub struct Seen {
    /// Distinct groups this sender posted the text into, in the window.
    pub sender_groups: usize,
    /// Distinct senders who posted the text into this group, in the window; counted only for
    /// a post with a payload (0 otherwise), the only kind this count flags.
    pub group_senders: usize,
    /// Distinct groups the text reached, in the window (0 while too few posts to matter).
    pub groups: usize,
    /// The post carried a payload (a rule hit, a link, a contact id, mentions).
    pub payload: bool,
    /// [`key_of`] of the cluster's [`alert_key`]: posts to an open flood keep it open.
    pub alert_hash: u64,
    /// The cluster, when this post qualifies for a flood alert (`groups` at least the
    /// threshold, and coordinated).
    pub alert: Option<AlertView>,
}

/// Fingerprint clusters with a 4 × 16-bit band index: fingerprints at most 3 bits apart share
/// at least one band exactly, so a near-duplicate is found with four lookups.
pub struct Floods {
    clusters: Bounded<Cluster>,
    bands: Bounded<u64>,
    next_id: u64,
}

impl Floods {
    pub fn new(cap: usize) -> Floods {
        Floods {
            clusters: Bounded::new(cap),
            bands: Bounded::new(cap.saturating_mul(4)),
            next_id: 1,
        }
    }

    pub fn len(&self) -> usize {
        self.clusters.len()
    }

    pub fn evicted(&self) -> u64 {
        self.clusters.evicted
    }

    /// Records a post of fingerprint `sim` and counts what the window holds.
    #[allow(clippy::too_many_arguments)]
    pub fn post(
        &mut self,
        sim: u64,
        max_distance: u32,
        window_ms: i64,
        ts: i64,
        group: u64,
        group_id: &str,
        sender: u64,
        msg_id: &str,
        samples: usize,
        min_groups: usize,
        payload: bool,
    ) -> Seen {
        // Band i's 16 bits, tagged with i (the map's hasher mixes them).
        let band_key = |i: u64| (i << 16 | (sim >> (16 * i)) & 0xffff) + 1;
        let mut found = None;
        for i in 0..4 {
            if let Some(&mut id) = self.bands.get_mut(band_key(i))
                && let Some(c) = self.clusters.peek_mut(id)
                && (c.sim ^ sim).count_ones() <= max_distance
            {
                found = Some(id);
                break;
            }
        }
        let id = found.unwrap_or_else(|| {
            let id = self.next_id;
            self.next_id += 1;
            id
        });
        if found.is_none() {
            for i in 0..4 {
                self.bands.put(band_key(i), id);
            }
        }
        let c = self.clusters.entry(id, || Cluster {
            sim,
            posts: VecDeque::new(),
            samples: Arc::default(),
            groups: Arc::default(),
            groups_seen: 0,
            senders_seen: 0,
            groups_at: i64::MIN,
            payload: false,
            alert_hash: None,
        });
        while c.posts.front().is_some_and(|p| p.ts + window_ms < ts) || c.posts.len() >= POSTS {
            c.posts.pop_front();
        }
        c.posts.push_back(Post { ts, group, sender });
        // Samples: the first ids of the current wave (no allocation per post in a big flood).
        if c.posts.len() == 1 && !c.samples.is_empty() {
            c.samples = Arc::default();
        }
        if c.samples.len() < samples.max(1) {
            Arc::make_mut(&mut c.samples).push(msg_id.to_string());
        }
        if c.groups.len() < POSTS && !c.groups.iter().any(|(g, _)| *g == group) {
            Arc::make_mut(&mut c.groups).push((group, group_id.to_string()));
        }
        let from = ts - window_ms;
        let live = || c.posts.iter().filter(|p| p.ts >= from);
        // Sender (or group) first: it rules out nearly every post with one compare.
        let posts = || c.posts.iter();
        let sender_groups = distinct(
            posts()
                .filter(|p| p.sender == sender && p.ts >= from)
                .map(|p| p.group),
        );
        // Only a post with a payload is flagged for this count: skip the pass for the rest (most
        // posts).
        let group_senders = if payload {
            distinct(
                posts()
                    .filter(|p| p.group == group && p.ts >= from)
                    .map(|p| p.sender),
            )
        } else {
            0
        };
        // The city-wide count only matters for the alert: recount it at most once per second of
        // event time (a big flood posts thousands of times a second).
        c.payload |= payload;
        let (groups, senders) = if c.posts.len() < min_groups {
            (0, 0) // cannot reach the alert threshold yet
        } else if c.groups_at / 1000 == ts / 1000 {
            (c.groups_seen, c.senders_seen)
        } else {
            let n = distinct(live().map(|p| p.group));
            let m = distinct(live().map(|p| p.sender));
            (c.groups_at, c.groups_seen, c.senders_seen) = (ts, n, m);
            (n, m)
        };
        // A few accounts working many groups, or a text selling something: a campaign. Many
        // members each forwarding a notice to their own group is news spreading.
        let coordinated = c.payload || 2 * senders <= groups;
        let alert = (groups >= min_groups && coordinated).then(|| AlertView {
            sim: c.sim,
            samples: Arc::clone(&c.samples),
            groups: Arc::clone(&c.groups),
        });
        Seen {
            sender_groups,
            group_senders,
            groups,
            payload,
            alert_hash: c.alert_hash(),
            alert,
        }
    }
}

/// Distinct values among at most [`POSTS`]: a small open-addressing set on the stack, so a
/// post into a big flood costs no allocation and no sort.
fn distinct(values: impl Iterator<Item = u64>) -> usize {
    const SLOTS: usize = 2 * POSTS;
    let mut table = [0u64; SLOTS];
    let mut n = 0;
    for v in values {
        let v = v.max(1); // 0 marks an empty slot
        let mut i = (v.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 57) as usize % SLOTS;
        loop {
            if table[i] == 0 {
                table[i] = v;
                n += 1;
                break;
            }
            if table[i] == v {
                break;
            }
            i = (i + 1) % SLOTS;
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simhash_is_the_same_with_and_without_avx2() {
        let texts = [
            "",
            "好",
            "加我微信领取免费红包名额有限先到先得",
            "今天下午三点在小区门口集合大家记得带伞 ok 123",
        ];
        let long = "接龙报名".repeat(300); // past 255 bigrams: the lanes spill
        for text in texts.iter().copied().chain([long.as_str()]) {
            let portable = simhash_body(text);
            assert_eq!(simhash(text), portable, "{text}");
            #[cfg(target_arch = "x86_64")]
            if std::is_x86_feature_detected!("avx2") {
                // SAFETY: AVX2 is present.
                assert_eq!(unsafe { simhash_avx2(text) }, portable, "{text}");
            }
        }
    }

    #[test]
    fn near_duplicates_are_close_and_different_texts_far() {
        let base = simhash("加我微信领取免费红包名额有限先到先得");
        let cases = [
            ("加我微信领取免费红包名额有限先到先得", 0, 0),
            ("加我微信领取免费红包名额有限先到先得吧", 0, 8),
            ("今天下午三点在小区门口集合大家记得带伞", 20, 64),
        ];
        for (text, lo, hi) in cases {
            let d = (simhash(text) ^ base).count_ones();
            assert!((lo..=hi).contains(&d), "{text}: {d} bits");
        }
    }

    #[test]
    fn a_clusters_alert_hash_is_the_hash_of_its_alert_key() {
        let mut f = Floods::new(10);
        for sim in [0, 1, 0xdead_beef, u64::MAX, 0x0123_4567_89ab_cdef] {
            f.post(sim, 0, 1000, 0, 1, "g", 2, "m", 1, 1, false);
            let seen = f.post(sim, 0, 1000, 1, 1, "g", 2, "m", 1, 1, false);
            assert_eq!(alert_key(sim), format!("{sim:016x}"));
            assert_eq!(seen.alert_hash, key_of(&alert_key(sim)), "{sim:x}");
        }
    }

    #[test]
    fn distinct_counts_table() {
        let cases: [(&[u64], usize); 4] = [
            (&[], 0),
            (&[5, 5, 5], 1),
            (&[1, 2, 3, 2, 1], 3),
            (&[7; 64], 1),
        ];
        for (input, want) in cases {
            assert_eq!(distinct(input.iter().copied()), want, "{input:?}");
        }
        assert_eq!(distinct((1..=64u64).map(|x| x * 1_000_003)), 64);
    }

    #[test]
    fn posts_count_groups_and_senders_in_the_window() {
        let mut f = Floods::new(100);
        let sim = simhash("加我微信领取免费红包名额有限");
        let minute = 60_000;
        // One sender into three groups, then a fourth post outside the window.
        let mut last = None;
        for (i, (ts, g)) in [(0, 1), (minute, 2), (2 * minute, 3)]
            .into_iter()
            .enumerate()
        {
            last = Some(f.post(
                sim,
                3,
                10 * minute,
                ts,
                g,
                &format!("g{g}"),
                7,
                &format!("m{i}"),
                5,
                1,
                true,
            ));
        }
        let s = last.unwrap();
        assert_eq!((s.sender_groups, s.group_senders, s.groups), (3, 1, 3));
        let s = f.post(
            sim,
            3,
            10 * minute,
            30 * minute,
            4,
            "g4",
            7,
            "m9",
            5,
            1,
            false,
        );
        assert_eq!(
            (s.sender_groups, s.groups),
            (1, 1),
            "older posts left the window"
        );
    }
}
