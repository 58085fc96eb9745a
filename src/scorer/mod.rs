//! The learned scorer: a linear model over hashed character n-grams of the normalised text.
//!
//! A model pack (`model = "…"` in a rules-directory pack, [`ModelPack`]) names a model file;
//! the engine scores every message with it on the normalised text it already built, so the
//! evasion folding that feeds the matcher feeds the model too. The score is a logistic of
//! `bias + scale · Σ weight[bucket]` over every character n-gram occurrence of the text.
//!
//! The model file is small and self-checking (format in [`Model::to_bytes`]): weights are
//! quantised to `i8` with one scale, and a SHA-256 of the file's body ends the file, so a
//! truncated or edited file is rejected with a clear error instead of scoring garbage.

pub mod data;
pub mod eval;
mod pack;
pub mod train;

pub use pack::ModelPack;
pub(crate) use pack::is_model_pack;

use crate::model::Action;
use crate::screen::dense;
use sha2::{Digest, Sha256};
use std::path::Path;
use std::sync::Arc;

/// A model pack as the engine runs it.
#[derive(Debug, Clone)]
pub struct Scorer {
    /// The pack's name.
    pub name: String,
    /// Its category: the key of its score, and the category of its hits.
    pub category: Arc<str>,
    /// The action of a hit.
    pub action: Action,
    /// Scores at or above this flag the message (unless `shadow`).
    pub threshold: f32,
    /// Score only: no hit, category or action.
    pub shadow: bool,
    /// The rule id of its hits: `NAME:model`.
    pub(crate) rule: &'static str,
    /// The category interned: putting it in `scores` copies a pointer (an `Arc` clone on
    /// every verdict would contend for one counter across workers).
    pub(crate) key: &'static str,
    pub(crate) model: Arc<Model>,
}

/// First bytes of every model file.
const MAGIC: &[u8; 8] = b"QGSCORE\0";
/// Bumped when the file layout or the feature hashing changes: a model trained for another
/// version would score garbage, so it is rejected instead.
const FORMAT_VERSION: u32 = 1;
/// Header: magic, version, bits, min_n, max_n, flags, scale, bias, length floor, encoding
/// fingerprint.
const HEADER_LEN: usize = 8 + 4 + 4 + 4 + 4 + 4 + 8;
const CHECKSUM_LEN: usize = 32;
/// Longest n-gram a model may use.
pub(crate) const MAX_N: usize = 3;
/// Bucket bits a model file may declare (2^10 to 2^24 weights).
const BITS: std::ops::RangeInclusive<u8> = 10..=24;

/// Per n-gram length: mixed into its key, so n-grams of different lengths hash apart.
const SALT: [u64; MAX_N + 1] = [
    0,
    0x243f_6a88_85a3_08d3,
    0x1319_8a2e_0370_7344,
    0xa409_3822_299f_31d0,
];
/// Mixes the third character into a trigram's key.
const MIX3: u64 = 0x517c_c1b7_2722_0a95;
/// The final multiply: its top bits are the bucket.
const SPREAD: u64 = 0x9e37_79b9_7f4a_7c15;

/// A unigram's salted key `u ^ SALT[1]`, folded (`x ^ (x >> 29)`): `u ^ (u >> 29)` (the
/// character's part) ^ this.
const UNI: u64 = SALT[1] ^ (SALT[1] >> 29);
/// A bigram's salted key `(p << 32 | u) ^ SALT[2]`, folded: the character's part ^ `(p << 32) ^
/// (p << 3)` (the previous character's part: codes fit 32 bits, so `p << 32` loses no bit and
/// its shift by 29 is `p << 3`) ^ this.
const BI: u64 = SALT[2] ^ (SALT[2] >> 29);

/// Why a model file cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModelError {
    /// The file could not be read.
    #[error("cannot read the model file: {0}")]
    Read(String),
    /// The bytes are not a qunguard model of a version this build reads.
    #[error("not a qunguard model file ({0})")]
    Format(String),
    /// The checksum at the end does not match the body: the file is damaged or was edited.
    #[error("the model file is damaged: its checksum does not match its contents")]
    Checksum,
}

/// Hashing of character n-grams into buckets, shared by training and scoring so both see the
/// same features.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Features {
    /// log2 of the number of buckets.
    pub bits: u8,
    /// Shortest n-gram, in characters.
    pub min_n: u8,
    /// Longest n-gram, in characters (≤ [`MAX_N`]).
    pub max_n: u8,
    /// Divide the weighted sum by the square root of the number of n-grams, so a long text
    /// is not scored more extreme for its length alone.
    pub sqrt_len: bool,
    /// With `sqrt_len`, texts with fewer n-grams are divided as if they had this many: a
    /// short text is not scored more extreme than its few n-grams warrant ("垃圾桶满了").
    pub len_floor: u32,
}

impl Features {
    /// Calls `f(bucket)` for every n-gram occurrence (`min_n..=max_n` characters) of a
    /// normalised text.
    pub fn for_each(&self, normalised: &str, f: impl FnMut(usize)) {
        self.for_each_dense(&dense::encode(normalised), f)
    }

    /// Like [`Features::for_each`], on the text in the matcher's dense encoding: what the
    /// engine holds for every message. Characters are hashed by their codes there, undecoded.
    #[inline]
    pub fn for_each_dense(&self, dense: &[u8], mut f: impl FnMut(usize)) {
        let (min_n, max_n) = (self.min_n as usize, self.max_n as usize);
        let shift = 64 - u32::from(self.bits);
        // The previous two characters' codes.
        let (mut p1, mut p2, mut filled) = (0u64, 0u64, 0usize);
        dense::for_each_code(dense, |u| {
            let u = u64::from(u);
            filled = (filled + 1).min(max_n);
            // A code fits 32 bits, so unigrams and bigrams are keyed exactly; a trigram mixes
            // the third character in.
            let k2 = (p1 << 32) | u;
            let keys = [0, u, k2, k2 ^ p2.wrapping_mul(MIX3)];
            for n in min_n..=filled {
                let k = keys[n] ^ SALT[n];
                // Fold the high bits down before the multiply, which only carries upwards.
                let k = k ^ (k >> 29);
                f((k.wrapping_mul(SPREAD) >> shift) as usize);
            }
            (p2, p1) = (p1, u);
        });
    }

    fn check(&self) -> Result<(), ModelError> {
        if !BITS.contains(&self.bits) {
            return Err(ModelError::Format(format!(
                "{} bucket bits, expected {}..={}",
                self.bits,
                BITS.start(),
                BITS.end()
            )));
        }
        if self.min_n == 0 || self.min_n > self.max_n || self.max_n as usize > MAX_N {
            return Err(ModelError::Format(format!(
                "n-gram range {}..={}, expected 1..={MAX_N}",
                self.min_n, self.max_n
            )));
        }
        Ok(())
    }
}

/// A trained scorer, loaded from a model file. Scoring allocates nothing.
#[derive(Clone, PartialEq)]
pub struct Model {
    pub(crate) features: Features,
    pub(crate) scale: f32,
    pub(crate) bias: f32,
    pub(crate) weights: Box<[i8]>,
    /// SHA-256 of the file's bytes: part of the rules version.
    digest: [u8; 32],
}

/// One message being walked by [`Model::step`]: where it is and what it has summed.
struct Walk {
    /// The next character's first byte, and the message's end.
    d: usize,
    e: usize,
    /// The previous character's part of the bigram key.
    prev: u64,
    sum: i32,
    chars: u32,
}

impl Walk {
    /// Every character after the first a bigram, and with `UNI` every character a unigram.
    fn ngrams<const UNI: bool>(&self) -> u32 {
        if UNI {
            (2 * self.chars).saturating_sub(1)
        } else {
            self.chars.saturating_sub(1)
        }
    }
}

// Scale and bias are checked finite when read or built, so equality is reflexive.
impl Eq for Model {}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model")
            .field("features", &self.features)
            .field("bias", &self.bias)
            .finish_non_exhaustive()
    }
}

impl Model {
    /// Builds a model from float weights (one per bucket), quantising them to `i8`.
    pub(crate) fn quantise(features: Features, bias: f64, weights: &[f64]) -> Model {
        assert_eq!(weights.len(), 1 << features.bits, "one weight per bucket");
        let max = weights.iter().fold(0f64, |m, w| m.max(w.abs()));
        let scale = if max > 0.0 { max / 127.0 } else { 1.0 };
        let weights: Box<[i8]> = weights
            .iter()
            .map(|w| (w / scale).round().clamp(-127.0, 127.0) as i8)
            .collect();
        let mut m = Model {
            features,
            scale: scale as f32,
            bias: bias as f32,
            weights,
            digest: [0; 32],
        };
        m.digest = Sha256::digest(m.to_bytes()).into();
        m
    }

    /// The probability-like score of a normalised text, in `0..=1`.
    pub fn score(&self, normalised: &str) -> f32 {
        self.score_dense(&dense::encode(normalised))
    }

    /// The score of a normalised text in the matcher's dense encoding: what the engine holds
    /// for every message, so scoring needs no UTF-8 copy.
    pub(crate) fn score_dense(&self, dense: &[u8]) -> f32 {
        let mut out = [0.0];
        self.score_dense_many(&[dense], &mut out);
        out[0]
    }

    /// Scores several texts (dense encoding) into `out`.
    pub(crate) fn score_dense_many(&self, texts: &[&[u8]], out: &mut [f32]) {
        assert_eq!(texts.len(), out.len(), "one score per text");
        for (t, o) in texts.iter().zip(out) {
            let f = &self.features;
            // The n-gram range as constants: the loop over lengths unrolls and the keys stay
            // in registers (a loop over a key array cost a third of the time).
            let (sum, n) = match (f.min_n, f.max_n) {
                (1, 1) => self.sum::<1, 1>(t),
                (1, 2) => self.sum::<1, 2>(t),
                (1, 3) => self.sum::<1, 3>(t),
                (2, 2) => self.sum::<2, 2>(t),
                (2, 3) => self.sum::<2, 3>(t),
                _ => self.sum::<3, 3>(t),
            };
            *o = self.probability(sum, n);
        }
    }

    /// Scores the messages of a chunk held in one buffer: message `i` is `buf[s..e]` for the
    /// `i`th `(s, e)` of `bounds`, into `out[i]`. The same scores as [`Model::score_dense_many`]
    /// on those slices.
    ///
    /// The engine's buffer has at least three bytes after every message (its separator and the
    /// writer's slack), so every character is read as one four-byte load with no check of the
    /// message's end; a message without them is scored the checked way.
    pub(crate) fn score_chunk(&self, buf: &[u8], bounds: &[(usize, usize)], out: &mut [f32]) {
        match (self.features.min_n, self.features.max_n) {
            (1, 2) => self.score_chunk_with::<true>(buf, bounds, out),
            (2, 2) => self.score_chunk_with::<false>(buf, bounds, out),
            _ => {
                assert_eq!(bounds.len(), out.len(), "one score per text");
                for (&(s, e), o) in bounds.iter().zip(out) {
                    self.score_dense_many(&[&buf[s..e]], std::slice::from_mut(o));
                }
            }
        }
    }

    /// [`Model::score_chunk`] for 1–2-grams (`UNI`) or bigrams alone.
    fn score_chunk_with<const UNI: bool>(
        &self,
        buf: &[u8],
        bounds: &[(usize, usize)],
        out: &mut [f32],
    ) {
        assert_eq!(bounds.len(), out.len(), "one score per text");
        // `buf.len() - 3` rather than `e + 3`, which could wrap for an absurd `e`.
        let fast = |&(s, e): &(usize, usize)| s <= e && e <= buf.len().saturating_sub(3);
        let mut i = 0;
        while i < bounds.len() {
            if i + 1 < bounds.len() && fast(&bounds[i]) && fast(&bounds[i + 1]) {
                // Two messages walked in lockstep: where a character ends is known only once
                // its first byte is loaded, so one walk waits on its loads; two overlap them.
                let mut a = self.start::<UNI>(buf, bounds[i]);
                let mut b = self.start::<UNI>(buf, bounds[i + 1]);
                // SAFETY (every step): the loop condition, and `start` checked `e + 3 <= len`.
                while a.d < a.e && b.d < b.e {
                    unsafe {
                        self.step::<UNI>(buf, &mut a);
                        self.step::<UNI>(buf, &mut b);
                    }
                }
                for w in [&mut a, &mut b] {
                    while w.d < w.e {
                        unsafe { self.step::<UNI>(buf, w) };
                    }
                }
                out[i] = self.probability(a.sum, a.ngrams::<UNI>());
                out[i + 1] = self.probability(b.sum, b.ngrams::<UNI>());
                i += 2;
            } else if fast(&bounds[i]) {
                let mut a = self.start::<UNI>(buf, bounds[i]);
                while a.d < a.e {
                    // SAFETY: the loop condition, and `start` checked `e + 3 <= buf.len()`.
                    unsafe { self.step::<UNI>(buf, &mut a) };
                }
                out[i] = self.probability(a.sum, a.ngrams::<UNI>());
                i += 1;
            } else {
                let (s, e) = bounds[i];
                self.score_dense_many(&[&buf[s..e]], &mut out[i..=i]);
                i += 1;
            }
        }
    }

    /// Adds the n-grams ending at the character at `w.d` to `w`: [`Model::sum`] for 1–2-grams
    /// (`UNI`) or bigrams alone, one character.
    ///
    /// The hashing is [`Features::for_each_dense`]'s, rearranged: a shift distributes over
    /// XOR, so `x ^ (x >> 29)` of a salted key is the XOR of a part of the character's own
    /// (shared by its unigram and the bigram it ends), a part of the previous character's
    /// (computed once, when that character was read) and a constant. That leaves per character
    /// one decode, six XORs and shifts, and a multiply and a load per n-gram.
    ///
    /// # Safety
    /// `w.d < w.e` and `w.e + 3 <= buf.len()`.
    #[inline(always)]
    unsafe fn step<const UNI: bool>(&self, buf: &[u8], w: &mut Walk) {
        debug_assert!(w.d < w.e && w.e + 3 <= buf.len());
        // SAFETY: `w.d < w.e`, so the four bytes from `w.d` on lie within `buf` (the caller's
        // contract).
        let (u, len) = unsafe { dense::code_at_padded(buf, w.d) };
        let u = u64::from(u);
        w.d += len;
        let own = u ^ (u >> 29);
        if UNI {
            w.sum += self.weight(own ^ self::UNI);
        }
        w.sum += self.weight(own ^ w.prev);
        w.prev = (u << 32) ^ (u << 3) ^ BI;
        w.chars += 1;
    }

    /// A walk over `buf[s..e]`, past its first character: its unigram only (it ends no
    /// bigram), so [`Model::step`] has no case for it.
    fn start<const UNI: bool>(&self, buf: &[u8], (s, e): (usize, usize)) -> Walk {
        assert!(
            s <= e && e <= buf.len().saturating_sub(3),
            "three readable bytes after the message"
        );
        let mut w = Walk {
            d: s,
            e,
            prev: 0,
            sum: 0,
            chars: 0,
        };
        if s < e {
            // SAFETY: `s < e` and `e + 3 <= buf.len()` (checked above).
            let (u, len) = unsafe { dense::code_at_padded(buf, s) };
            let u = u64::from(u);
            w.d += len;
            if UNI {
                w.sum = self.weight(u ^ (u >> 29) ^ self::UNI);
            }
            w.prev = (u << 32) ^ (u << 3) ^ BI;
            w.chars = 1;
        }
        w
    }

    /// The weight of the bucket of a folded key (`x ^ (x >> 29)` of a salted n-gram key).
    #[inline(always)]
    fn weight(&self, x: u64) -> i32 {
        let bucket = (x.wrapping_mul(SPREAD) >> (64 - u32::from(self.features.bits))) as usize;
        debug_assert_eq!(self.weights.len(), 1 << self.features.bits);
        // SAFETY: `bucket` is the top `bits` bits of a u64, below 2^bits, and a model holds
        // exactly 2^bits weights (checked when read or built).
        i32::from(unsafe { *self.weights.get_unchecked(bucket) })
    }

    /// The weights of the n-grams of `dense` summed, and their number: what
    /// [`Features::for_each_dense`] yields for `MIN..=MAX`, weighed.
    #[inline]
    fn sum<const MIN: usize, const MAX: usize>(&self, dense: &[u8]) -> (i32, u32) {
        let shift = 64 - u32::from(self.features.bits);
        let weights = &self.weights[..];
        debug_assert_eq!(weights.len(), 1 << self.features.bits);
        let (mut sum, mut n) = (0i32, 0u32);
        let (mut p1, mut p2, mut filled) = (0u64, 0u64, 0usize);
        let mut d = 0;
        while d < dense.len() {
            let (code, len) = dense::code_at(dense, d);
            d += len;
            let u = u64::from(code);
            filled += 1;
            let k2 = (p1 << 32) | u;
            for (k, salt) in SALT.iter().enumerate().take(MAX + 1).skip(MIN) {
                if k > filled {
                    break;
                }
                let key = match k {
                    1 => u,
                    2 => k2,
                    _ => k2 ^ p2.wrapping_mul(MIX3),
                };
                let x = key ^ salt;
                let x = x ^ (x >> 29);
                let bucket = (x.wrapping_mul(SPREAD) >> shift) as usize;
                // SAFETY: `bucket` is the top `bits` bits of a u64, below 2^bits, and a model
                // holds exactly 2^bits weights (checked when read or built).
                sum += i32::from(unsafe { *weights.get_unchecked(bucket) });
                n += 1;
            }
            (p2, p1) = (p1, u);
        }
        (sum, n)
    }

    fn probability(&self, sum: i32, n: u32) -> f32 {
        let mut margin = self.scale * sum as f32;
        if self.features.sqrt_len && n > 1 {
            margin /= (n.max(self.features.len_floor) as f32).sqrt();
        }
        let margin = self.bias + margin;
        1.0 / (1.0 + (-margin).exp())
    }

    /// SHA-256 of the model file's bytes.
    pub fn digest(&self) -> &[u8; 32] {
        &self.digest
    }

    /// The file's bytes. Layout, little-endian: `QGSCORE\0`, format version (u32), bucket bits,
    /// min n, max n, flags (one byte each; flag 1: `sqrt_len`), scale (f32), bias (f32), length
    /// floor (u32), the
    /// first 8 bytes of the matcher encoding's fingerprint (characters are hashed by their codes
    /// in it), `2^bits` weights (i8), then the SHA-256 of everything before it.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(HEADER_LEN + self.weights.len() + CHECKSUM_LEN);
        b.extend_from_slice(MAGIC);
        b.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        b.extend_from_slice(&[
            self.features.bits,
            self.features.min_n,
            self.features.max_n,
            u8::from(self.features.sqrt_len),
        ]);
        b.extend_from_slice(&self.scale.to_le_bytes());
        b.extend_from_slice(&self.bias.to_le_bytes());
        b.extend_from_slice(&self.features.len_floor.to_le_bytes());
        b.extend_from_slice(&dense::codes_digest()[..8]);
        b.extend(self.weights.iter().map(|&w| w as u8));
        let sum = Sha256::digest(&b);
        b.extend_from_slice(&sum);
        b
    }

    /// Reads a model from its file's bytes, checking magic, version, sizes and checksum.
    pub fn from_bytes(bytes: &[u8]) -> Result<Model, ModelError> {
        if bytes.len() < HEADER_LEN + CHECKSUM_LEN || &bytes[..8] != MAGIC {
            return Err(ModelError::Format(
                "it does not start with the model header; was it written by `qunguard train`?"
                    .into(),
            ));
        }
        let version = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
        if version != FORMAT_VERSION {
            return Err(ModelError::Format(format!(
                "format version {version}, this build reads version {FORMAT_VERSION}"
            )));
        }
        let features = Features {
            bits: bytes[12],
            min_n: bytes[13],
            max_n: bytes[14],
            sqrt_len: bytes[15] & 1 != 0,
            len_floor: u32::from_le_bytes(bytes[24..28].try_into().expect("4 bytes")),
        };
        features.check()?;
        if bytes[15] & !1 != 0 {
            return Err(ModelError::Format(format!(
                "unknown flags {:#x}",
                bytes[15]
            )));
        }
        let want = HEADER_LEN + (1usize << features.bits) + CHECKSUM_LEN;
        if bytes.len() != want {
            return Err(ModelError::Format(format!(
                "{} bytes where its header implies {want}: the file is truncated or padded",
                bytes.len()
            )));
        }
        let (body, sum) = bytes.split_at(bytes.len() - CHECKSUM_LEN);
        if Sha256::digest(body).as_slice() != sum {
            return Err(ModelError::Checksum);
        }
        let f32_at = |i: usize| f32::from_le_bytes(bytes[i..i + 4].try_into().expect("4 bytes"));
        let (scale, bias) = (f32_at(16), f32_at(20));
        if bytes[28..36] != dense::codes_digest()[..8] {
            return Err(ModelError::Format(
                "it was trained for another build's character encoding; retrain it with \
                 `qunguard train` using this build"
                    .into(),
            ));
        }
        if !scale.is_finite() || !bias.is_finite() || scale <= 0.0 {
            return Err(ModelError::Format(format!(
                "scale {scale} / bias {bias} are not usable numbers"
            )));
        }
        Ok(Model {
            features,
            scale,
            bias,
            weights: body[HEADER_LEN..].iter().map(|&b| b as i8).collect(),
            digest: Sha256::digest(bytes).into(),
        })
    }

    /// Reads a model file.
    pub fn load(path: &Path) -> Result<Model, ModelError> {
        let bytes = std::fs::read(path).map_err(|e| ModelError::Read(e.to_string()))?;
        Model::from_bytes(&bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> Model {
        let f = Features {
            bits: 10,
            min_n: 1,
            max_n: 3,
            sqrt_len: true,
            len_floor: 4,
        };
        let w: Vec<f64> = (0..1024).map(|i| ((i % 7) as f64 - 3.0) / 10.0).collect();
        Model::quantise(f, -0.25, &w)
    }

    #[test]
    fn a_model_reads_back_what_it_wrote() {
        let m = tiny();
        let back = Model::from_bytes(&m.to_bytes()).unwrap();
        assert_eq!(back, m);
        assert_eq!(back.score("你好世界"), m.score("你好世界"));
    }

    /// A small model with fixed, varied weights over `min_n..=max_n`-grams.
    fn fixed_model(min_n: u8, max_n: u8) -> Model {
        let f = Features {
            bits: 12,
            min_n,
            max_n,
            sqrt_len: true,
            len_floor: 3,
        };
        let w: Vec<f64> = (0..4096)
            .map(|i| ((i * 37 % 255) as f64 - 127.0) / 100.0)
            .collect();
        Model::quantise(f, 0.1, &w)
    }

    /// Texts scored in a batch score as the features the training saw say,
    /// whatever their lengths and order, for every n-gram range.
    #[test]
    fn lockstep_scoring_equals_scoring_the_features() {
        let texts = [
            "",
            "的",
            "ab",
            "的是a1你好世界龘靐齉ñé𠀀𠀁x的龘",
            "龘",
            "𠀀",
            "你好",
            "abc",
            "一二三四五六七八九十",
        ];
        for (min_n, max_n) in [(1, 1), (1, 2), (1, 3), (2, 2), (2, 3), (3, 3)] {
            let m = fixed_model(min_n, max_n);
            let f = m.features;
            let dense: Vec<Vec<u8>> = texts.iter().map(|t| dense::encode(t)).collect();
            let want: Vec<f32> = dense
                .iter()
                .map(|d| {
                    let (mut sum, mut n) = (0i32, 0u32);
                    f.for_each_dense(d, |b| {
                        sum += i32::from(m.weights[b]);
                        n += 1;
                    });
                    m.probability(sum, n)
                })
                .collect();
            let refs: Vec<&[u8]> = dense.iter().map(Vec::as_slice).collect();
            let mut got = vec![0.0; refs.len()];
            m.score_dense_many(&refs, &mut got);
            assert_eq!(got, want, "{min_n}..={max_n}");
            for (d, w) in refs.iter().zip(&want) {
                assert_eq!(m.score_dense(d), *w);
            }
        }
    }

    /// A chunk's messages scored from its one buffer (unchecked four-byte reads, two messages
    /// in lockstep) score exactly as each message alone, for every n-gram range, odd and even
    /// message counts, and a last message with no slack after it (read the checked way).
    #[test]
    fn chunk_scoring_equals_scoring_each_message() {
        let texts = [
            "的是a1你好世界龘靐齉ñé𠀀𠀁x的龘",
            "",
            "的",
            "ab",
            "𠀀",
            "一二三四五六七八九十一二三四五六七八九十",
            "龘",
            "你好",
        ];
        for (min_n, max_n) in [(1, 1), (1, 2), (1, 3), (2, 2), (2, 3), (3, 3)] {
            let m = fixed_model(min_n, max_n);
            for count in [1, 2, 3, texts.len()] {
                for slack in [0, 3] {
                    let (mut buf, mut bounds) = (Vec::new(), Vec::new());
                    for t in &texts[..count] {
                        let s = buf.len();
                        buf.extend(dense::encode(t));
                        bounds.push((s, buf.len()));
                        buf.push(b'\n');
                    }
                    buf.pop();
                    buf.extend(std::iter::repeat_n(0xFF, slack));
                    let mut got = vec![0.0; count];
                    m.score_chunk(&buf, &bounds, &mut got);
                    let want: Vec<f32> = texts[..count].iter().map(|t| m.score(t)).collect();
                    assert_eq!(got, want, "{min_n}..={max_n}, {count} texts, slack {slack}");
                }
            }
        }
    }

    /// Characters are hashed by their codes in the dense encoding: one code per character,
    /// the same code for the same character, different codes for different ones, whatever the
    /// code's length and wherever the message ends.
    #[test]
    fn every_character_gets_one_code_of_its_own() {
        // One-byte (frequent Han, ASCII), two-byte and four-byte (rare Han, other scripts,
        // supplementary planes) codes, in every order and at the end of the text.
        let text = "的是a1你好世界龘靐齉ñé𠀀𠀁x的龘";
        for start in 0..text.chars().count() {
            let s: String = text.chars().skip(start).collect();
            let mut codes = Vec::new();
            dense::for_each_code(&dense::encode(&s), |c| codes.push(c));
            assert_eq!(codes.len(), s.chars().count(), "{s}");
            for (a, ca) in s.chars().zip(&codes) {
                for (b, cb) in s.chars().zip(&codes) {
                    assert_eq!(a == b, ca == cb, "{a} {b} in {s}");
                }
            }
        }
    }

    #[test]
    fn every_ngram_occurrence_is_one_feature() {
        let f = Features {
            bits: 16,
            min_n: 1,
            max_n: 3,
            sqrt_len: false,
            len_floor: 0,
        };
        // (text, features): n chars give n + (n-1) + (n-2) n-grams of 1–3 characters.
        for (text, want) in [("", 0), ("a", 1), ("ab", 3), ("abc", 6), ("你好世界吗", 12)] {
            let mut n = 0;
            f.for_each(text, |b| {
                assert!(b < 1 << 16);
                n += 1;
            });
            assert_eq!(n, want, "{text:?}");
        }
        // The same n-gram lands in the same bucket wherever it occurs.
        let (mut a, mut b) = (Vec::new(), Vec::new());
        f.for_each("xy", |k| a.push(k));
        f.for_each("zzxy", |k| b.push(k));
        assert_eq!(a[0], b[3], "'x'");
        assert_eq!(a[2], b[7], "'xy'");
    }

    /// (how the bytes are spoiled, words the error must hold)
    #[test]
    fn damaged_model_bytes_are_rejected_with_the_reason() {
        let good = tiny().to_bytes();
        let flip = |i: usize| {
            let mut b = good.clone();
            b[i] ^= 1;
            b
        };
        let mut version = good.clone();
        version[8] = 9;
        let mut bits = good.clone();
        bits[12] = 40;
        let mut encoding = good.clone();
        encoding[28] ^= 1;
        let sum = Sha256::digest(&encoding[..encoding.len() - CHECKSUM_LEN]);
        let at = encoding.len() - CHECKSUM_LEN;
        encoding[at..].copy_from_slice(&sum);
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (Vec::new(), "does not start with the model header"),
            (b"category = \"x\"\n".to_vec(), "model header"),
            (good[..good.len() - 1].to_vec(), "truncated"),
            (version, "format version 9"),
            (bits, "bucket bits"),
            (encoding, "another build's character encoding"),
            (flip(HEADER_LEN + 100), "checksum"),
            (flip(good.len() - 1), "checksum"),
        ];
        for (bytes, needle) in cases {
            let e = Model::from_bytes(&bytes).unwrap_err().to_string();
            assert!(e.contains(needle), "{needle}: {e}");
        }
    }
}
