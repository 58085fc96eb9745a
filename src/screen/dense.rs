//! The matcher's encoding of normalised text: the same characters in fewer bytes.
//!
//! Hyperscan's cost on a large literal set grows with the bytes it scans, and UTF-8 spends three
//! bytes on every Han character. Normalised text only ever holds `[0-9a-z]`, other letters and
//! digits, and the batch separator `\n`, so the rest of the ASCII byte values are free. The
//! dense encoding gives
//! - the 90 most frequent Han characters one of those free ASCII bytes,
//! - the next 3,584 a two-byte code (lead `0xC0..=0xF7`, trail `0x80..=0xBF`),
//! - every other character a four-byte form of its code point (lead `0xF8..=0xFD`, saying how
//!   long the character is in UTF-8, and three trails),
//!
//! while `[0-9a-z]` and `\n` stay themselves. Chat text shrinks to about 57% of its UTF-8 size
//! and Hyperscan runs about twice as fast on it (README, "Performance"). Like UTF-8 the encoding
//! is self-synchronising: a character starts with a byte that is never a trail byte, so an
//! encoded term can only match at a character boundary.
//!
//! Terms are encoded like the text; regexes are parsed (`regex-syntax`, Unicode-aware) and
//! rewritten into byte patterns over this encoding (`translate_regex`). Match offsets are
//! converted back to the UTF-8 normalised text (`utf8_offset`) only for messages that have a
//! match. The frequency ranking (`dense_chars.txt`) comes from jieba's word list; see
//! `scripts/dense-chars.py`. The ranking only affects speed, never what matches.

use super::chars::{DROP, LEAD2_FIRST, LEAD2_LAST, LONG, ascii_kept, bmp3, code_len, codes};
use regex_syntax::hir::{Class, Hir, HirKind, Look};
use std::collections::BTreeMap;
use std::fmt::Write;

/// Leads of the four-byte forms: they say how long the character is in UTF-8, so an offset
/// converts back by summing a per-byte weight ([`utf8_offset`]).
const LEAD4_UTF8_2: u8 = 0xF8;
const LEAD4_UTF8_3: u8 = 0xF9;
/// Planes 1-16: `0xFA + ((u - 0x10000) >> 18)`, so up to 0xFD.
const LEAD4_SUPPLEMENTARY: u8 = 0xFA;

/// Per encoded byte: how many UTF-8 bytes the character it starts takes (0 for trail bytes).
const UTF8_WEIGHT: [u8; 256] = {
    let mut w = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        w[b] = match b as u8 {
            x if x < 0x80 && ascii_kept(x) => 1,
            x if x < 0x80 => 3,
            0x80..=0xBF => 0,
            LEAD2_FIRST..=LEAD2_LAST => 3,
            LEAD4_UTF8_2 => 2,
            LEAD4_UTF8_3 => 3,
            _ => 4,
        };
        b += 1;
    }
    w
};

/// The four-byte form of a character without a short code.
fn long_form(u: u32) -> [u8; 4] {
    let (lead, v) = match u {
        0..0x800 => (LEAD4_UTF8_2, u),
        0x800..0x10000 => (LEAD4_UTF8_3, u),
        _ => (
            LEAD4_SUPPLEMENTARY + ((u - 0x10000) >> 18) as u8,
            (u - 0x10000) & 0x3FFFF,
        ),
    };
    [
        lead,
        0x80 | (v >> 12 & 0x3F) as u8,
        0x80 | (v >> 6 & 0x3F) as u8,
        0x80 | (v & 0x3F) as u8,
    ]
}

fn decode_long(d: &[u8]) -> char {
    let v = u32::from(d[1] & 0x3F) << 12 | u32::from(d[2] & 0x3F) << 6 | u32::from(d[3] & 0x3F);
    let u = match d[0] {
        LEAD4_UTF8_2 | LEAD4_UTF8_3 => v,
        lead => 0x10000 + (u32::from(lead - LEAD4_SUPPLEMENTARY) << 18 | v),
    };
    char::from_u32(u).expect("encoded from a char")
}

/// Writes the dense encoding as normalisation produces characters
/// ([`super::normalise::DenseSink`]) into a buffer whose bytes past `pos` are scratch space: a
/// write is one check for room and one store, where `Vec::push` would check and update the
/// length byte by byte.
pub(crate) struct Writer<'a> {
    buf: &'a mut Vec<u8>,
    pos: usize,
    code: &'static [u16; 0x10000],
}

impl<'a> Writer<'a> {
    /// Writes from `buf[pos]` on (`pos <= buf.len()`).
    pub fn new(buf: &'a mut Vec<u8>, pos: usize) -> Writer<'a> {
        Writer {
            buf,
            pos,
            code: &codes().code,
        }
    }

    /// Where the next byte goes: the end of what was written.
    pub fn pos(&self) -> usize {
        self.pos
    }

    /// Room for one character (at most four bytes) at `pos`.
    #[inline(always)]
    fn room(&mut self) -> &mut [u8; 4] {
        if self.buf.len() < self.pos + 4 {
            self.grow();
        }
        (&mut self.buf[self.pos..self.pos + 4])
            .try_into()
            .expect("four bytes")
    }

    #[cold]
    fn grow(&mut self) {
        let len = (self.buf.len() * 2).max(self.pos + 4).max(4096);
        self.buf.resize(len, 0);
    }

    #[inline(always)]
    pub fn byte(&mut self, b: u8) {
        self.room()[0] = b;
        self.pos += 1;
    }

    #[inline(always)]
    fn long(&mut self, u: u32) {
        *self.room() = long_form(u);
        self.pos += 4;
    }

    #[inline(always)]
    fn bmp3(&mut self, u: u32) {
        match self.code[u as usize] {
            0 => self.long(u),
            k => {
                // Both bytes written, one or two kept: no branch on the code's length, which
                // varies from character to character.
                self.room()[..2].copy_from_slice(&k.to_le_bytes());
                self.pos += code_len(k);
            }
        }
    }
}

impl super::normalise::DenseSink for Writer<'_> {
    #[inline(always)]
    fn lane(
        &mut self,
        fast: &[u16; 0x10000],
        bytes: &[u8],
        mut pos: usize,
        skip_noise: bool,
    ) -> usize {
        // Room for the whole lane up front (a three-byte character takes at most four bytes),
        // so the loop does not check for it.
        let need = self.pos + 2 * (bytes.len() - pos) + 4;
        if self.buf.len() < need {
            self.buf.resize(need.max(2 * self.buf.len()), 0);
        }
        let buf = &mut self.buf[..];
        let mut o = self.pos;
        for c in bytes[pos..].chunks_exact(3) {
            if c[0] & 0xF0 != 0xE0 {
                break;
            }
            let u = bmp3(c[0], c[1], c[2]);
            let k = fast[u];
            // 0 and LONG are rare: one test for both keeps the common path to one branch.
            if k.wrapping_sub(1) >= LONG - 1 {
                if k == 0 {
                    break;
                }
                buf[o..o + 4].copy_from_slice(&long_form(u as u32));
                o += 4;
            } else if skip_noise {
                // Noise (a tenth of chat characters, anywhere) costs no branch: its bytes are
                // written and not kept.
                buf[o..o + 2].copy_from_slice(&k.to_le_bytes());
                o += if k == DROP { 0 } else { code_len(k) };
            } else {
                if k == DROP {
                    break;
                }
                buf[o..o + 2].copy_from_slice(&k.to_le_bytes());
                o += code_len(k);
            }
            pos += 3;
        }
        self.pos = o;
        pos
    }

    #[inline(always)]
    fn char(&mut self, c: char) {
        match c.len_utf8() {
            1 => self.byte(c as u8),
            3 => self.bmp3(c as u32),
            _ => self.long(c as u32),
        }
    }

    fn chars_since(&self, from: usize) -> Vec<char> {
        decode_chars(&self.buf[from..self.pos])
    }

    #[inline(always)]
    fn len(&self) -> usize {
        self.pos
    }

    #[inline(always)]
    fn truncate(&mut self, len: usize) {
        self.pos = len;
    }
}

/// The dense encoding of normalised `text` (the output of [`crate::normalise`]), as the engine's
/// main database scans it: for benchmarks and tools that build their own Hyperscan databases
/// over the same bytes.
pub fn encode(text: &str) -> Vec<u8> {
    let mut out = Vec::new();
    encode_into(text, &mut out);
    out
}

/// Appends the dense encoding of normalised `text` to `out`.
pub(crate) fn encode_into(text: &str, out: &mut Vec<u8>) {
    use super::normalise::DenseSink;
    let start = out.len();
    // Room for the longest encoding up front (a two-byte UTF-8 character takes four bytes): left
    // to itself the writer grows a buffer to the batch size, 4 KiB for every term compiled.
    out.resize(start + 2 * text.len() + 4, 0);
    let mut w = Writer::new(out, start);
    for c in text.chars() {
        w.char(c);
    }
    let len = w.pos();
    out.truncate(len);
}

/// Converts offset `off` (on a character boundary) of one encoded message to the offset of the
/// same position in its UTF-8 form.
pub(crate) fn utf8_offset(dense: &[u8], off: usize) -> usize {
    dense[..off]
        .iter()
        .map(|&b| usize::from(UTF8_WEIGHT[usize::from(b)]))
        .sum()
}

/// The characters of encoded text, each with its `[start, end)` in `dense`.
pub(crate) fn chars(dense: &[u8]) -> impl Iterator<Item = (usize, usize, char)> + '_ {
    let t = codes();
    let mut d = 0;
    std::iter::from_fn(move || {
        let b = *dense.get(d)?;
        let (len, c) = match b {
            0..0x80 => (1, t.single[usize::from(b)]),
            LEAD2_FIRST..=LEAD2_LAST => (
                2,
                t.double[usize::from(b - LEAD2_FIRST) * 64 + usize::from(dense[d + 1] & 0x3F)],
            ),
            _ => (4, decode_long(&dense[d..])),
        };
        d += len;
        Some((d - len, d, c))
    })
}

/// The code of the character starting at `dense[d]`, its bytes packed into a `u32` (distinct
/// characters give distinct values), and its length. For the learned scorer, which only hashes
/// characters: decoding them (a table per code length, a branch each) cost it more than the
/// hashing.
#[inline(always)]
pub(crate) fn code_at(dense: &[u8], d: usize) -> (u32, usize) {
    // Computed, not looked up: where the next character starts waits on this.
    let b = dense[d];
    let len = 1 + usize::from(b >= LEAD2_FIRST) + 2 * usize::from(b > LEAD2_LAST);
    let w = match dense.get(d..d + 4) {
        Some(w) => u32::from_be_bytes(w.try_into().expect("four bytes")),
        None => {
            let mut w = [0u8; 4];
            w[..dense.len() - d].copy_from_slice(&dense[d..]);
            u32::from_be_bytes(w)
        }
    };
    (w >> (32 - 8 * len as u32), len)
}

/// [`code_at`] where the four bytes from `d` on are known to be readable (a message followed by
/// its separator and slack): one load, no check of where the message ends.
///
/// # Safety
/// `d + 4 <= dense.len()`.
#[inline(always)]
pub(crate) unsafe fn code_at_padded(dense: &[u8], d: usize) -> (u32, usize) {
    debug_assert!(d + 4 <= dense.len());
    // SAFETY: the caller guarantees the four bytes `d..d + 4` are within `dense`.
    let w = unsafe { dense.as_ptr().add(d).cast::<[u8; 4]>().read() };
    let b = w[0];
    let len = 1 + usize::from(b >= LEAD2_FIRST) + 2 * usize::from(b > LEAD2_LAST);
    (u32::from_be_bytes(w) >> (32 - 8 * len as u32), len)
}

/// Calls `f` with the code ([`code_at`]) of each character of one encoded message.
#[inline]
pub(crate) fn for_each_code(dense: &[u8], mut f: impl FnMut(u32)) {
    let mut d = 0;
    while d < dense.len() {
        let (code, len) = code_at(dense, d);
        f(code);
        d += len;
    }
}

/// Fingerprint of the short-code assignment: what [`for_each_code`] yields for a character
/// depends on it, so a model that hashed codes records it and is refused under another one.
pub(crate) fn codes_digest() -> [u8; 32] {
    use sha2::{Digest, Sha256};
    static DIGEST: std::sync::OnceLock<[u8; 32]> = std::sync::OnceLock::new();
    *DIGEST.get_or_init(|| {
        let mut h = Sha256::new();
        for &(c, k) in &codes().coded {
            h.update(u32::from(c).to_le_bytes());
            h.update(k.to_le_bytes());
        }
        h.finalize().into()
    })
}

/// Decodes encoded text back to its characters.
pub(crate) fn decode_chars(dense: &[u8]) -> Vec<char> {
    chars(dense).map(|(_, _, c)| c).collect()
}

/// Decodes encoded text back to UTF-8 (for tests and debugging).
#[cfg(test)]
pub(crate) fn decode(dense: &[u8]) -> String {
    decode_chars(dense).into_iter().collect()
}

/// Rewrites a regex over normalised text (Rust `regex` syntax, Unicode-aware) into a Hyperscan
/// byte pattern over the dense encoding, to be compiled without `UTF8`/`UCP` and with
/// `MULTILINE` (so `^` and `$` hold at every message's start and end in a batch buffer).
///
/// Normalised text has no spaces, punctuation or upper case, and every character in it is a
/// letter or digit, so:
/// - a literal character that normalisation would change or drop is an error naming the form to
///   write instead (`\.` in a URL pattern could never match);
/// - a class never matches the separator `\n`, so no match runs from one message of a batch
///   into the next, and a class that holds nothing normalised text can contain (`\s`, `[:：]`)
///   is an error too;
/// - word boundaries (`\b`, `\B`, …) are errors: all of normalised text is letters and digits,
///   so a boundary could only fall at a message's start or end (`^`, `$`), and Hyperscan rejects
///   `\b` in Unicode mode anyway.
pub(crate) fn translate_regex(pattern: &str) -> Result<String, String> {
    let hir = regex_syntax::ParserBuilder::new()
        .build()
        .parse(pattern)
        .map_err(|e| e.to_string())?;
    let mut out = String::new();
    emit(&hir, &mut out)?;
    Ok(out)
}

/// How a pack author wrote a look-around assertion (errors quote the syntax, not the parser's
/// names for it).
fn look_syntax(look: Look) -> &'static str {
    match look {
        Look::WordAscii | Look::WordUnicode => "\\b",
        Look::WordAsciiNegate | Look::WordUnicodeNegate => "\\B",
        Look::WordStartAscii | Look::WordStartUnicode => "\\b{start} or \\<",
        Look::WordEndAscii | Look::WordEndUnicode => "\\b{end} or \\>",
        Look::WordStartHalfAscii | Look::WordStartHalfUnicode => "\\b{start-half}",
        Look::WordEndHalfAscii | Look::WordEndHalfUnicode => "\\b{end-half}",
        _ => "a look-around assertion",
    }
}

fn emit(h: &Hir, out: &mut String) -> Result<(), String> {
    match h.kind() {
        HirKind::Empty => {}
        HirKind::Literal(lit) => {
            let s = std::str::from_utf8(&lit.0)
                .map_err(|_| "byte literals that are not UTF-8 cannot occur in text".to_string())?;
            for c in s.chars() {
                emit_char(c, out)?;
            }
        }
        HirKind::Class(Class::Unicode(cls)) => {
            let ranges: Vec<(u32, u32)> = cls
                .ranges()
                .iter()
                .map(|r| (r.start() as u32, r.end() as u32))
                .collect();
            emit_class(&ranges, out)?;
        }
        HirKind::Class(Class::Bytes(cls)) => {
            if cls.ranges().iter().any(|r| r.end() >= 0x80) {
                return Err("byte classes beyond ASCII ((?-u)) are not supported: \
                     write the characters instead"
                    .into());
            }
            let ranges: Vec<(u32, u32)> = cls
                .ranges()
                .iter()
                .map(|r| (u32::from(r.start()), u32::from(r.end())))
                .collect();
            emit_class(&ranges, out)?;
        }
        HirKind::Look(look) => out.push_str(match look {
            Look::Start | Look::StartLF | Look::StartCRLF => "^",
            Look::End | Look::EndLF | Look::EndCRLF => "$",
            _ => {
                return Err(format!(
                    "word boundaries ({}) are not supported: normalised text is all \
                     letters and digits, so a boundary falls only at a message's start or end \
                     (write ^ or $)",
                    look_syntax(*look)
                ));
            }
        }),
        HirKind::Repetition(r) => {
            out.push_str("(?:");
            emit(&r.sub, out)?;
            out.push(')');
            match (r.min, r.max) {
                (0, None) => out.push('*'),
                (1, None) => out.push('+'),
                (0, Some(1)) => out.push('?'),
                (m, None) => write!(out, "{{{m},}}").expect("write to String"),
                (m, Some(n)) if m == n => write!(out, "{{{m}}}").expect("write to String"),
                (m, Some(n)) => write!(out, "{{{m},{n}}}").expect("write to String"),
            }
        }
        HirKind::Capture(c) => {
            out.push_str("(?:");
            emit(&c.sub, out)?;
            out.push(')');
        }
        HirKind::Concat(subs) => {
            for s in subs {
                emit(s, out)?;
            }
        }
        HirKind::Alternation(subs) => {
            out.push_str("(?:");
            for (i, s) in subs.iter().enumerate() {
                if i > 0 {
                    out.push('|');
                }
                emit(s, out)?;
            }
            out.push(')');
        }
    }
    Ok(())
}

fn push_bytes(bytes: &[u8], out: &mut String) {
    for b in bytes {
        write!(out, "\\x{b:02x}").expect("write to String");
    }
}

/// What normalisation makes of `c` on its own.
fn normalised(c: char) -> String {
    super::normalise::normalise(c.encode_utf8(&mut [0; 4])).text
}

/// Whether `c` can occur in normalised text (the batch separator aside).
fn can_occur(c: char) -> bool {
    c != '\n' && normalised(c).chars().eq([c])
}

fn emit_char(c: char, out: &mut String) -> Result<(), String> {
    let normalised = normalised(c);
    if !normalised.chars().eq([c]) {
        return Err(if normalised.is_empty() {
            format!(
                "{c:?} never occurs in normalised text (spaces, punctuation, symbols and line \
                 breaks are removed): leave it out"
            )
        } else {
            format!("{c:?} never occurs in normalised text: write {normalised:?} instead")
        });
    }
    push_bytes(&encode(&normalised), out);
    Ok(())
}

/// Byte ranges `[(lo, hi)]` as a Hyperscan class.
fn push_byte_class(ranges: &[(u8, u8)], out: &mut String) {
    if let [(lo, hi)] = ranges
        && lo == hi
    {
        push_bytes(&[*lo], out);
        return;
    }
    out.push('[');
    for &(lo, hi) in ranges {
        if lo == hi {
            push_bytes(&[lo], out);
        } else {
            write!(out, "\\x{lo:02x}-\\x{hi:02x}").expect("write to String");
        }
    }
    out.push(']');
}

/// Sorted bytes as ranges.
fn byte_ranges(bytes: &[u8]) -> Vec<(u8, u8)> {
    let mut ranges: Vec<(u8, u8)> = Vec::new();
    for &b in bytes {
        match ranges.last_mut() {
            Some((_, hi)) if *hi + 1 == b => *hi = b,
            _ => ranges.push((b, b)),
        }
    }
    ranges
}

/// A class of code point ranges `[(lo, hi)]` (sorted, as `regex-syntax` gives them).
fn emit_class(ranges: &[(u32, u32)], out: &mut String) -> Result<(), String> {
    // A class that holds no character normalised text can contain never matches, which in a
    // required position silently disables the whole pattern (`加\s+微信`): say so instead.
    // Stops at the first character that can occur, so large classes are cheap.
    if !ranges
        .iter()
        .any(|&(lo, hi)| (lo..=hi).filter_map(char::from_u32).any(can_occur))
    {
        let shown: String = ranges
            .iter()
            .flat_map(|&(lo, hi)| (lo..=hi).filter_map(char::from_u32))
            .take(5)
            .collect();
        return Err(format!(
            "a class (starting {shown:?}) holds nothing that normalised text contains (spaces, \
             punctuation, symbols and upper case are removed): leave it out"
        ));
    }
    let contains = |u: u32| {
        let i = ranges.partition_point(|&(_, hi)| hi < u);
        ranges.get(i).is_some_and(|&(lo, _)| lo <= u)
    };
    let mut singles: Vec<u8> = (0..0x80u8)
        .filter(|&b| b != b'\n' && ascii_kept(b) && contains(u32::from(b)))
        .collect();
    let mut doubles: BTreeMap<u8, Vec<u8>> = BTreeMap::new();
    for &(c, k) in &codes().coded {
        if contains(c as u32) {
            match k.to_le_bytes() {
                [b, 0] => singles.push(b),
                [lead, trail] => doubles.entry(lead).or_default().push(trail),
            }
        }
    }
    singles.sort_unstable();
    let mut alternatives = Vec::new();
    if !singles.is_empty() {
        let mut s = String::new();
        push_byte_class(&byte_ranges(&singles), &mut s);
        alternatives.push(s);
    }
    for (lead, trails) in doubles {
        let mut s = String::new();
        push_bytes(&[lead], &mut s);
        push_byte_class(&byte_ranges(&trails), &mut s);
        alternatives.push(s);
    }
    // Every non-ASCII character also has a four-byte form. Coded characters never appear in
    // it, so the ranges need not leave them out.
    for &(lo, hi) in ranges {
        for seq in long_ranges(lo.max(0x80), hi) {
            let mut s = String::new();
            for (a, b) in seq {
                push_byte_class(&[(a, b)], &mut s);
            }
            alternatives.push(s);
        }
    }
    match alternatives.len() {
        0 => unreachable!("a class that can occur has an alternative"),
        1 => out.push_str(&alternatives[0]),
        _ => {
            out.push_str("(?:");
            out.push_str(&alternatives.join("|"));
            out.push(')');
        }
    }
    Ok(())
}

/// Byte-range sequences matching exactly the four-byte forms of the code points `lo..=hi`: the
/// forms are ordered like the code points within each UTF-8 length, so each length is split
/// on its own.
fn long_ranges(lo: u32, hi: u32) -> Vec<Vec<(u8, u8)>> {
    let mut out = Vec::new();
    for (seg_lo, seg_hi) in [(0x80, 0x7FF), (0x800, 0xFFFF), (0x10000, 0x10FFFF)] {
        let (a, b) = (lo.max(seg_lo), hi.min(seg_hi));
        if a <= b {
            long_sequences(long_form(a), long_form(b), &mut Vec::new(), &mut out);
        }
    }
    out
}

/// Splits the four-byte forms from `lo` to `hi` (inclusive) into sequences of byte ranges, one
/// range per position, that together match exactly the forms in between (the classic UTF-8
/// range split, on this encoding's digits).
fn long_sequences(
    lo: [u8; 4],
    hi: [u8; 4],
    prefix: &mut Vec<(u8, u8)>,
    out: &mut Vec<Vec<(u8, u8)>>,
) {
    fn rec(lo: &[u8], hi: &[u8], prefix: &mut Vec<(u8, u8)>, out: &mut Vec<Vec<(u8, u8)>>) {
        if lo.is_empty() {
            out.push(prefix.clone());
            return;
        }
        if lo[0] == hi[0] {
            prefix.push((lo[0], lo[0]));
            rec(&lo[1..], &hi[1..], prefix, out);
            prefix.pop();
            return;
        }
        let n = lo.len() - 1;
        let (min, max) = ([0x80u8; 3], [0xBFu8; 3]);
        let (mut first, mut last) = (lo[0], hi[0]);
        if lo[1..] != min[..n] {
            prefix.push((lo[0], lo[0]));
            rec(&lo[1..], &max[..n], prefix, out);
            prefix.pop();
            first += 1;
        }
        let hi_partial = hi[1..] != max[..n];
        if hi_partial {
            last -= 1;
        }
        if first <= last {
            prefix.push((first, last));
            prefix.extend(std::iter::repeat_n((0x80, 0xBF), n));
            out.push(prefix.clone());
            prefix.truncate(prefix.len() - 1 - n);
        }
        if hi_partial {
            prefix.push((hi[0], hi[0]));
            rec(&min[..n], &hi[1..], prefix, out);
            prefix.pop();
        }
    }
    rec(&lo, &hi, prefix, out);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synth::Rng;

    #[test]
    fn encoding_round_trips_and_offsets_convert() {
        let texts = [
            "",
            "abc123",
            "的是一了",
            "代开发票加vx12345",
            "龘𠀀é中ωq",
            "\n的\n",
        ];
        for t in texts {
            let d = encode(t);
            assert_eq!(decode(&d), t);
            // Every character boundary converts to the matching UTF-8 boundary.
            let mut dpos = 0;
            for (upos, c) in t.char_indices() {
                assert_eq!(utf8_offset(&d, dpos), upos, "{t:?}");
                dpos += encode(c.encode_utf8(&mut [0; 4])).len();
            }
            assert_eq!(utf8_offset(&d, d.len()), t.len());
        }
        assert!(encode("的").len() == 1 && encode("发票").len() < "发票".len());
    }

    #[test]
    fn codes_never_collide_with_text_bytes() {
        let t = codes();
        assert_eq!(
            t.coded.len(),
            90 + 56 * 64,
            "the ranking fills every short code"
        );
        let mut seen = std::collections::HashSet::new();
        for &(c, k) in &t.coded {
            assert!(seen.insert(k), "code {k:#x} given twice");
            match k.to_le_bytes() {
                [b, 0] => assert!(b != 0 && b < 0x80 && !ascii_kept(b), "{c}"),
                [lead, trail] => {
                    assert!((LEAD2_FIRST..=LEAD2_LAST).contains(&lead), "{c}");
                    assert!((0x80..=0xBF).contains(&trail), "{c}");
                }
            }
        }
    }

    #[test]
    fn long_sequences_cover_exactly_their_range() {
        let mut rng = Rng::new(3);
        let matches = |seqs: &[Vec<(u8, u8)>], u: u32| {
            let f = long_form(u);
            seqs.iter()
                .any(|s| s.iter().zip(f).all(|(&(a, b), x)| a <= x && x <= b))
        };
        for _ in 0..300 {
            let a = rng.below(0x110000) as u32;
            let b = if rng.chance(0.5) {
                a + rng.below(5000) as u32
            } else {
                rng.below(0x110000) as u32
            };
            let (lo, hi) = (a.min(b).max(0x80), a.max(b).min(0x10FFFF));
            if lo > hi {
                continue;
            }
            let seqs = long_ranges(lo, hi);
            for u in [
                lo,
                hi,
                lo.saturating_sub(1),
                hi + 1,
                (lo + hi) / 2,
                lo + 63,
                hi.saturating_sub(64),
            ] {
                if (0x80..=0x10FFFF).contains(&u) {
                    assert_eq!(
                        matches(&seqs, u),
                        (lo..=hi).contains(&u),
                        "{lo:#x}..={hi:#x} at {u:#x}"
                    );
                }
            }
        }
    }

    #[test]
    fn regex_errors_explain_what_normalised_text_holds() {
        let table = [
            ("www\\.[a-z]+", "'.' never occurs"),
            ("加V", "write \"v\" instead"),
            ("\\Bab", "not supported"),
            ("\\bab", "not supported"),
            ("(?-u:\\b)ab", "not supported"),
            ("(ab", "unclosed group"),
            ("加\\s+微信", "holds nothing that normalised text contains"),
            (
                "(?:微信|wx)[:：_-]?[a-z0-9]{5}",
                "holds nothing that normalised text contains",
            ),
        ];
        for (pattern, expected) in table {
            let e = translate_regex(pattern).unwrap_err();
            assert!(e.contains(expected), "{pattern}: {e}");
        }
    }

    /// The translated pattern on encoded text finds exactly what the original pattern finds on
    /// UTF-8 text (Hyperscan in UTF-8 mode, the engine's former path), offsets converted back.
    #[test]
    fn translated_regexes_match_like_the_originals() {
        use hyperscan::PatternFlags;
        use hyperscan::prelude::*;
        let compile = |expr: &str, flags: PatternFlags| -> BlockDatabase {
            let mut p = Pattern::with_flags(expr, flags).unwrap();
            p.id = Some(0);
            Patterns(vec![p]).build().unwrap()
        };
        let spans = |db: &BlockDatabase, text: &[u8]| {
            let s = db.alloc_scratch().unwrap();
            let mut v = vec![];
            db.scan(text, &s, |_, from, to, _| {
                v.push((from as usize, to as usize));
                Matching::Continue
            })
            .unwrap();
            v.sort_unstable();
            v
        };
        let patterns = [
            "1[3-9][0-9]{9}",
            "[1-9][0-9]{16}[0-9x]",
            "(?:vx|wx|weixin|微信|威信|v信|加v|加微)号?[a-z0-9]{6,20}",
            "(?:qq|扣扣|企鹅)群?号?[1-9][0-9]{4,11}",
            "(?:https?|www)[a-z0-9]{4,}",
            "加.{0,3}微",
            "[\\x{4e00}-\\x{9fa5}]{2}票",
            "[^0-9a-z]{3}",
            "[^的]c",
            "\\p{Han}+号",
            "^代开",
            "发票$",
            "(?i)VX[0-9]+",
            "[0-9]{2,}(?:的|龘)",
            "龘|𠀀|é",
            "(?:ab|的)+c",
            "[a-zé-ω]{3}",
            "\\p{Greek}\\p{Han}",
        ];
        let mut pool: Vec<String> = "abcxvqwh13809的是一代开发票加微信号龘𠀀éω企鹅群"
            .chars()
            .map(String::from)
            .collect();
        pool.extend(
            [
                "13812345678",
                "11010519491231002x",
                "wwwexample",
                "https",
                "vx",
            ]
            .map(String::from),
        );
        let mut rng = Rng::new(11);
        let texts: Vec<String> = (0..600)
            .map(|_| {
                (0..rng.below(20))
                    .map(|_| rng.pick(&pool).as_str())
                    .collect()
            })
            .collect();
        let flags = PatternFlags::SOM_LEFTMOST | PatternFlags::MULTILINE;
        for p in patterns {
            let utf8 = compile(p, flags | PatternFlags::UTF8 | PatternFlags::UCP);
            let translated = translate_regex(p).unwrap();
            let dense = compile(&translated, flags);
            let mut found = 0;
            for t in &texts {
                let d = encode(t);
                let want = spans(&utf8, t.as_bytes());
                let got: Vec<_> = spans(&dense, &d)
                    .into_iter()
                    .map(|(f, e)| (utf8_offset(&d, f), utf8_offset(&d, e)))
                    .collect();
                assert_eq!(got, want, "{p} (as {translated}) on {t:?}");
                found += want.len();
            }
            assert!(
                found > 0,
                "{p} matched nothing: the table needs a text it matches"
            );
        }
    }
}
