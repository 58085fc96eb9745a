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
    pub(crate) model: Arc<Model>,
}

/// First bytes of every model file.
const MAGIC: &[u8; 8] = b"QGSCORE\0";
/// Bumped when the file layout or the feature hashing changes: a model trained for another
/// version would score garbage, so it is rejected instead.
const FORMAT_VERSION: u32 = 1;
/// Header: magic, version, bits, min_n, max_n, flags, scale, bias.
const HEADER_LEN: usize = 8 + 4 + 4 + 4 + 4;
const CHECKSUM_LEN: usize = 32;
/// Longest n-gram a model may use: the feature window is kept in a fixed array.
pub(crate) const MAX_N: usize = 6;
/// Bucket bits a model file may declare (2^10 to 2^24 weights).
const BITS: std::ops::RangeInclusive<u8> = 10..=24;

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
}

impl Features {
    /// Calls `f(bucket)` for every n-gram occurrence (`min_n..=max_n` characters) of `text`.
    #[inline]
    pub fn for_each(&self, text: &str, mut f: impl FnMut(usize)) {
        // window[k]: the character k positions back from the current one.
        let mut window = [0u32; MAX_N];
        let max_n = self.max_n as usize;
        let min_n = self.min_n as usize;
        let shift = 64 - u32::from(self.bits);
        let mut filled = 0;
        for c in text.chars() {
            window.copy_within(0..MAX_N - 1, 1);
            window[0] = c as u32;
            filled = (filled + 1).min(max_n);
            // Going back from the current character extends the n-gram by one each step, so
            // every n-gram ending here costs one mix.
            let mut h: u64 = 0x243f_6a88_85a3_08d3;
            for (k, &c) in window[..filled].iter().enumerate() {
                h = (h.rotate_left(5) ^ u64::from(c)).wrapping_mul(0x517c_c1b7_2722_0a95);
                if k + 1 >= min_n {
                    // A last multiply spreads the low bits the character went into up to the
                    // top bits the bucket is cut from.
                    f(((h ^ (k as u64 + 1)).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> shift) as usize);
                }
            }
        }
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
    #[inline]
    pub fn score(&self, normalised: &str) -> f32 {
        let (mut sum, mut n) = (0i32, 0u32);
        self.features.for_each(normalised, |b| {
            sum += i32::from(self.weights[b]);
            n += 1;
        });
        let mut margin = self.scale * sum as f32;
        if self.features.sqrt_len && n > 1 {
            margin /= (n as f32).sqrt();
        }
        let margin = self.bias + margin;
        1.0 / (1.0 + (-margin).exp())
    }

    /// SHA-256 of the model file's bytes.
    pub fn digest(&self) -> &[u8; 32] {
        &self.digest
    }

    /// The file's bytes. Layout, little-endian: `QGSCORE\0`, format version (u32), bucket bits,
    /// min n, max n, flags (one byte each; flag 1: `sqrt_len`), scale (f32), bias (f32), `2^bits` weights
    /// (i8), then the SHA-256 of everything before it.
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
        };
        features.check()?;
        if bytes[15] & !1 != 0 {
            return Err(ModelError::Format(format!("unknown flags {:#x}", bytes[15])));
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

    #[test]
    fn every_ngram_occurrence_is_one_feature() {
        let f = Features {
            bits: 16,
            min_n: 1,
            max_n: 4,
            sqrt_len: false,
        };
        // (text, features): n chars give n + (n-1) + (n-2) + (n-3) n-grams of 1–4 characters.
        for (text, want) in [("", 0), ("a", 1), ("ab", 3), ("abc", 6), ("你好世界吗", 14)] {
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
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (Vec::new(), "does not start with the model header"),
            (b"category = \"x\"\n".to_vec(), "model header"),
            (good[..good.len() - 1].to_vec(), "truncated"),
            (version, "format version 9"),
            (bits, "bucket bits"),
            (flip(HEADER_LEN + 100), "checksum"),
            (flip(good.len() - 1), "checksum"),
        ];
        for (bytes, needle) in cases {
            let e = Model::from_bytes(&bytes).unwrap_err().to_string();
            assert!(e.contains(needle), "{needle}: {e}");
        }
    }
}
