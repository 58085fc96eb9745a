//! What a character becomes: its normalised form (NFKC, traditional → simplified, lowercase,
//! letters and digits only), its value as a numeral, and its short code in the matcher's dense
//! encoding. Normalisation ([`super::normalise`]) and the encoding ([`super::dense`]) both read
//! these tables, so neither has to ask the other what a character is.

use std::sync::OnceLock;
use unicode_normalization::UnicodeNormalization;

/// Han characters by frequency in running text, most frequent first.
const RANKED: &str = include_str!("dense_chars.txt");

/// Leads of the two-byte short codes (trails are `0x80..=0xBF`).
pub(crate) const LEAD2_FIRST: u8 = 0xC0;
pub(crate) const LEAD2_LAST: u8 = 0xF7;

/// Whether an ASCII byte stands for itself in normalised text (and so in the encoding).
pub(crate) const fn ascii_kept(b: u8) -> bool {
    b.is_ascii_digit() || b.is_ascii_lowercase() || b == b'\n'
}

/// The short codes of the dense encoding: which characters have one, and what it is.
pub(crate) struct Codes {
    /// Per BMP code point: 0 (no short code), or the code's bytes little-endian: one byte (< 0x80,
    /// the high byte 0) or lead and trail. A trail byte has its top bit set, so the length is
    /// `1 + (code >> 15)`.
    pub code: Box<[u16; 0x10000]>,
    /// The characters that have a short code, in code order.
    pub coded: Vec<(char, u16)>,
    /// Decoding: the character of each one-byte value (ASCII kept as itself) and of each
    /// two-byte code, indexed by `(lead - 0xC0) * 64 + (trail - 0x80)`.
    pub single: [char; 0x80],
    pub double: Vec<char>,
}

/// A code's length in bytes.
#[inline(always)]
pub(crate) fn code_len(k: u16) -> usize {
    1 + usize::from(k >> 15)
}

/// The fast lane's entry for a character that maps to itself: its short code, or [`LONG`].
fn fast_code(c: char) -> u16 {
    match codes().code.get(c as usize) {
        Some(&k) if k != 0 => k,
        _ if c.is_ascii() => c as u16,
        _ => LONG,
    }
}

/// Fast-lane entry of a character without a short code (no code is 0xFFFF: 0xFF is no lead).
pub(crate) const LONG: u16 = 0xFFFF;
/// Fast-lane entry of a three-byte character normalisation drops (punctuation such as ，。).
pub(crate) const DROP: u16 = 0xFFFE;

/// The short codes, assigned once from the ranking.
pub(crate) fn codes() -> &'static Codes {
    static CODES: OnceLock<Codes> = OnceLock::new();
    CODES.get_or_init(|| {
        let singles = (1..0x80u8).filter(|&b| !ascii_kept(b)).map(u16::from);
        let doubles = (LEAD2_FIRST..=LEAD2_LAST)
            .flat_map(|lead| (0x80..=0xBFu8).map(move |t| u16::from(t) << 8 | u16::from(lead)));
        let mut codes = singles.chain(doubles);
        let mut code = Box::new([0u16; 0x10000]);
        let mut coded = Vec::new();
        // Only characters normalisation leaves as they are can occur in normalised text. (The
        // per-character function, not the normalisation table, which is built from this one.)
        let candidates = RANKED
            .chars()
            .filter(|&c| c.len_utf8() == 3 && map_char(c) == c.to_string());
        for c in candidates {
            if code[c as usize] != 0 {
                continue;
            }
            let Some(k) = codes.next() else { break };
            code[c as usize] = k;
            coded.push((c, k));
        }
        let mut single: [char; 0x80] = std::array::from_fn(|b| b as u8 as char);
        let mut double = vec!['\0'; usize::from(LEAD2_LAST - LEAD2_FIRST + 1) * 64];
        for &(c, k) in &coded {
            match k.to_le_bytes() {
                [b, 0] => single[usize::from(b)] = c,
                [lead, trail] => {
                    double[usize::from(lead - LEAD2_FIRST) * 64 + usize::from(trail & 0x3F)] = c
                }
            }
        }
        Codes {
            code,
            coded,
            single,
            double,
        }
    })
}

/// Whether a `fast` table entry is a character that maps to itself.
#[inline(always)]
pub(crate) fn maps_to_itself(k: u16) -> bool {
    k != 0 && k != DROP
}

/// The code point of the three-byte UTF-8 character `c0 c1 c2`.
#[inline(always)]
pub(crate) fn bmp3(c0: u8, c1: u8, c2: u8) -> usize {
    usize::from(c0 & 0x0F) << 12 | usize::from(c1 & 0x3F) << 6 | usize::from(c2 & 0x3F)
}

/// The digit a numeric character stands for. Positional numerals (十百千万) are left out on
/// purpose: they do not appear in digit-by-digit numbers.
#[inline]
pub(crate) fn numeral_value(c: char) -> Option<u8> {
    // Fast exit for the common case: every numeral is an ASCII digit or in U+3007..=U+96F6
    // (零 is the highest).
    if !c.is_ascii_digit() && !('\u{3007}'..='\u{96F6}').contains(&c) {
        return None;
    }
    Some(match c {
        '0'..='9' => c as u8 - b'0',
        '〇' | '零' => 0,
        '一' | '幺' | '壹' => 1,
        '二' | '两' | '贰' => 2,
        '三' | '叁' => 3,
        '四' | '肆' => 4,
        '五' | '伍' => 5,
        '六' | '陆' => 6,
        '七' | '柒' => 7,
        '八' | '捌' => 8,
        '九' | '玖' => 9,
        _ => return None,
    })
}

pub(crate) const ENTRY_DROP: u32 = u32::MAX;
/// Characters past the first two planes (rare ideographs, tags, private use): mapped on the fly.
pub(crate) const ENTRY_SLOW: u32 = u32::MAX - 1;
pub(crate) const ENTRY_MULTI: u32 = 0x8000_0000;

pub(crate) struct Mapping {
    /// Per BMP code point: 0, or (when the character maps to itself and is not a numeral, as
    /// numerals take part in number runs) its dense code ([`fast_code`]).
    pub(crate) fast: Box<[u16; 0x10000]>,
    /// Per code point of the BMP and plane 1 (emoji, math letters: common in chat, and slow to
    /// map on the fly): a single output char, `ENTRY_DROP`, or `ENTRY_MULTI | index`.
    pub entries: Vec<u32>,
    pub multi: Vec<Box<str>>,
}

/// The normalisation table, built once.
pub(crate) fn mapping() -> &'static Mapping {
    static MAPPING: OnceLock<Mapping> = OnceLock::new();
    MAPPING.get_or_init(|| {
        let mut entries = vec![ENTRY_DROP; 0x20000];
        let mut fast = Box::new([0u16; 0x10000]);
        let mut multi = Vec::new();
        for code in 0..0x20000u32 {
            let Some(c) = char::from_u32(code) else {
                continue; // surrogates never occur in a &str
            };
            let mapped = map_char(c);
            let mut chars = mapped.chars();
            entries[code as usize] = match (chars.next(), chars.next()) {
                (None, _) => {
                    if code < 0x10000 {
                        fast[code as usize] = DROP;
                    }
                    ENTRY_DROP
                }
                (Some(one), None) => {
                    if code < 0x10000 && one == c && numeral_value(c).is_none() {
                        fast[code as usize] = fast_code(c);
                    }
                    one as u32
                }
                _ => {
                    multi.push(mapped.into_boxed_str());
                    ENTRY_MULTI | (multi.len() - 1) as u32
                }
            };
        }
        Mapping {
            fast,
            entries,
            multi,
        }
    })
}

/// The full per-character mapping: compatibility decomposition, traditional → simplified,
/// lowercase, then only letters and digits survive.
pub(crate) fn map_char(c: char) -> String {
    if let Some(d) = extra_digit(c) {
        return d.to_string();
    }
    if let Some(h) = emoji_word(c) {
        return h.to_string();
    }
    let nfkc: String = std::iter::once(c).nfkc().collect();
    let simplified = fast2s::convert(&nfkc);
    simplified
        .chars()
        .flat_map(char::to_lowercase)
        .filter(|c| c.is_alphanumeric())
        .collect()
}

/// Emoji that chat writes for a character of a listed word (你个🐶东西, 🔫支出售, 溜❄️, 嗑💊,
/// 炸💣): read as that character. Only pictures whose character is unambiguous and part of a
/// shipped term; other emoji are noise and dropped. Beside other text they make ordinary
/// words (我家🐶 is 我家狗, 吃💊 is 吃药).
fn emoji_word(c: char) -> Option<char> {
    Some(match c {
        '🐶' | '🐕' => '狗',
        '🔫' => '枪',
        '❄' => '冰',
        '💊' => '药',
        '💣' => '弹',
        _ => return None,
    })
}

/// Digit styles that NFKC leaves alone: dingbat and double-circled digits (❶ ➀ ➊ ⓵ ⓫ ⓿).
fn extra_digit(c: char) -> Option<u32> {
    let c = c as u32;
    let n = match c {
        0x2776..=0x277F => c - 0x2776 + 1,  // ❶..❿
        0x2780..=0x2789 => c - 0x2780 + 1,  // ➀..➉
        0x278A..=0x2793 => c - 0x278A + 1,  // ➊..➓
        0x24F5..=0x24FE => c - 0x24F5 + 1,  // ⓵..⓾
        0x24EB..=0x24F4 => c - 0x24EB + 11, // ⓫..⓴
        0x24FF => 0,                        // ⓿
        _ => return None,
    };
    Some(n)
}
