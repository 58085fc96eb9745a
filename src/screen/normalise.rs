//! Normalisation against evasion, with a byte-offset map back to the original text.
//!
//! Every original character is mapped through one table built once from Unicode NFKC
//! (`unicode-normalization`: full-width, circled and parenthesised digits and letters,
//! superscripts, compatibility ideographs), traditional → simplified Chinese (`fast2s`),
//! and lowercase. Whatever is not a letter or digit after that (spaces including U+3000,
//! punctuation, symbols, emoji, zero-width and other format characters, combining marks,
//! line breaks) is noise and dropped, so noise placed between the characters of a term does not
//! hide it. Runs of Chinese numerals long enough to be a number (幺三八…) become ASCII digits.
//!
//! Every output byte remembers the original character it came from, so a match in the
//! normalised text maps back to a byte range of the original.
//!
//! The same function normalises rule terms, so a term and the text it should match always agree.

use super::chars::{
    ENTRY_DROP, ENTRY_MULTI, ENTRY_SLOW, bmp3, map_char, mapping, maps_to_itself, numeral_value,
};
use std::sync::OnceLock;

/// A run of this many numeric characters (digits or Chinese numerals, noise removed between them)
/// is read as a number. Seven keeps idioms and counted phrases (一五一十, 九九八十一 reads as
/// 九九八 + 十 + 一, 三三两两, 一二三四五六 in a count-off) words, while phone, ID-card and
/// bank-card numbers (11–19 digits) and most QQ numbers written in Chinese numerals still reach
/// the number rules.
pub(crate) const MIN_NUMERAL_RUN: usize = 7;

/// Byte written between messages when a batch is normalised into one buffer. It can never occur
/// inside a normalised message (line breaks are noise), so no term can match across it.
pub(crate) const SEPARATOR: u8 = b'\n';

/// Normalised text of one message plus, for every byte of it, the original byte range of the
/// character that produced it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Normalised {
    /// The normalised text.
    pub text: String,
    /// `src_start[i]`: original byte offset where the character behind byte `i` starts.
    pub src_start: Vec<u32>,
    /// `src_end[i]`: original byte offset where the character behind byte `i` ends.
    pub src_end: Vec<u32>,
}

impl Normalised {
    /// Maps the normalised byte range `from..to` (non-empty) back to the original text.
    pub fn original_range(&self, from: usize, to: usize) -> (usize, usize) {
        (self.src_start[from] as usize, self.src_end[to - 1] as usize)
    }
}

/// Normalises one text, with the offset map of every byte. Without the map, many texts in a
/// row go faster through [`Normaliser`].
pub fn normalise(text: &str) -> Normalised {
    let mut out = String::new();
    let mut src: Vec<u64> = Vec::new();
    normalise_into(text, &mut out, &mut src, &mut NoDense);
    Normalised {
        src_start: src.iter().map(|&x| start_of(x)).collect(),
        src_end: src.iter().map(|&x| end_of(x)).collect(),
        text: out,
    }
}

/// Normalises texts one after another into a reused buffer, without the offset map: the path
/// the engine takes for every message (the map is built only for messages with matches).
#[derive(Debug, Default)]
pub struct Normaliser {
    buf: Buffer,
}

impl Normaliser {
    /// The normalised form of `text`, valid until the next call.
    pub fn normalise(&mut self, text: &str) -> &str {
        self.buf.clear();
        self.buf.push_message(text);
        self.buf.message(0)
    }
}

#[inline(always)]
fn start_of(x: u64) -> u32 {
    (x >> 32) as u32
}

#[inline(always)]
fn end_of(x: u64) -> u32 {
    x as u32
}

#[inline(always)]
fn pack(os: u32, oe: u32) -> u64 {
    u64::from(os) << 32 | u64::from(oe)
}

/// Many messages normalised into one buffer, separated by [`SEPARATOR`], so Hyperscan can scan a
/// whole batch in one call. Only the text is kept: most messages have no match, so the offset
/// map back to the original is built per message, when a match needs it ([`Mapped`]).
#[derive(Debug, Default)]
pub(crate) struct Buffer {
    pub text: String,
    /// Per message: `[start, end)` of its normalised bytes in `text`.
    pub bounds: Vec<(usize, usize)>,
    /// The same text in the matcher's dense encoding ([`super::dense`]), written in the same
    /// pass: what the main database scans. Only `dense[..dense_len]` is written; the rest is
    /// room for the next message.
    dense: Vec<u8>,
    dense_len: usize,
    /// Skip the UTF-8 text: only the dense encoding is written, and `text` stays empty.
    pub dense_only: bool,
    /// Per message: `[start, end)` of its encoded bytes in `dense`.
    pub dense_bounds: Vec<(usize, usize)>,
}

impl Buffer {
    pub fn clear(&mut self) {
        self.text.clear();
        self.bounds.clear();
        self.dense_len = 0;
        self.dense_bounds.clear();
    }

    /// The encoded text of the whole buffer, messages separated by [`SEPARATOR`].
    pub fn dense_text(&self) -> &[u8] {
        &self.dense[..self.dense_len]
    }

    /// The whole encoded buffer, with the slack the writer keeps after its end (at least three
    /// bytes after every message), and each message's range in it.
    pub fn dense_chunk(&self) -> (&[u8], &[(usize, usize)]) {
        (&self.dense, &self.dense_bounds)
    }

    /// The encoded text of message `i`.
    pub fn dense_message(&self, i: usize) -> &[u8] {
        let (s, e) = self.dense_bounds[i];
        &self.dense[s..e]
    }

    /// The normalised text of message `i` (empty when the buffer is `dense_only`).
    pub fn message(&self, i: usize) -> &str {
        let (s, e) = self.bounds[i];
        &self.text[s..e]
    }

    /// Normalises `text` onto the end of the buffer, then writes a separator.
    pub fn push_message(&mut self, text: &str) {
        let start = self.text.len();
        let dense_start = self.dense_len;
        let mut dense = super::dense::Writer::new(&mut self.dense, dense_start);
        if self.dense_only {
            normalise_into(text, &mut NoText, &mut NoOffsets, &mut dense);
        } else {
            normalise_into(text, &mut self.text, &mut NoOffsets, &mut dense);
        }
        self.bounds.push((start, self.text.len()));
        if !self.dense_only {
            self.text.push(SEPARATOR as char);
        }
        self.dense_bounds.push((dense_start, dense.pos()));
        dense.byte(SEPARATOR);
        self.dense_len = dense.pos();
    }
}

/// One message normalised with its offset map, for messages that have matches. Reused between
/// messages. The map is a list of segments, not an entry per byte: a run of characters copied
/// unchanged is one segment (its bytes map one to one), every other output character one more.
#[derive(Debug, Default)]
pub(crate) struct Mapped {
    pub text: String,
    segments: Segments,
}

impl Mapped {
    /// Normalises `text` (same result as [`Buffer::push_message`]) and records its offsets.
    pub fn set(&mut self, text: &str) {
        self.text.clear();
        self.segments.list.clear();
        self.segments.len = 0;
        normalise_into(text, &mut self.text, &mut self.segments, &mut NoDense);
    }

    /// Maps the normalised range `from..to` (non-empty, on character boundaries) to the original
    /// byte range.
    pub fn original_range(&self, from: usize, to: usize) -> (usize, usize) {
        let (from, to) = (from as u32, to as u32);
        let first = self.segments.at(from);
        let last = self.segments.at(to - 1);
        let s = if first.run {
            first.os + (from - first.norm)
        } else {
            first.os
        };
        let e = if last.run {
            last.os + (to - last.norm)
        } else {
            last.oe
        };
        (s as usize, e as usize)
    }
}

#[derive(Debug, Default)]
struct Segments {
    list: Vec<Segment>,
    /// Normalised bytes covered so far.
    len: u32,
}

#[derive(Debug, Clone, Copy)]
struct Segment {
    /// First normalised byte.
    norm: u32,
    /// Original range: the character behind one output character, or a copied run.
    os: u32,
    oe: u32,
    /// A run copied unchanged: byte `norm + k` is original byte `os + k`.
    run: bool,
}

impl Segments {
    fn at(&self, b: u32) -> Segment {
        self.list[self.list.partition_point(|s| s.norm <= b) - 1]
    }
}

impl Offsets for Segments {
    fn push(&mut self, n: usize, os: u32, oe: u32) {
        self.list.push(Segment {
            norm: self.len,
            os,
            oe,
            run: false,
        });
        self.len += n as u32;
    }
    fn push_run(&mut self, run: &str, at: u32) {
        self.list.push(Segment {
            norm: self.len,
            os: at,
            oe: at + run.len() as u32,
            run: true,
        });
        self.len += run.len() as u32;
    }
    fn truncate(&mut self, len: usize) {
        // Only called on numeral runs, whose characters are never part of a copied run.
        while self.list.last().is_some_and(|s| s.norm >= len as u32) {
            self.list.pop();
        }
        self.len = len as u32;
    }
    fn get(&self, at: usize) -> (u32, u32) {
        let s = self.at(at as u32);
        debug_assert!(
            !s.run,
            "asked only for numerals, which are never copied runs"
        );
        (s.os, s.oe)
    }
}

/// Where normalisation records offsets: nowhere (the batch buffer) or per output byte.
trait Offsets {
    /// `n` output bytes were written for the original range `os..oe`.
    fn push(&mut self, n: usize, os: u32, oe: u32);
    /// `run` was copied unchanged from original offset `at`.
    fn push_run(&mut self, run: &str, at: u32);
    fn truncate(&mut self, len: usize);
    fn get(&self, at: usize) -> (u32, u32);
}

struct NoOffsets;

impl Offsets for NoOffsets {
    #[inline(always)]
    fn push(&mut self, _: usize, _: u32, _: u32) {}
    #[inline(always)]
    fn push_run(&mut self, _: &str, _: u32) {}
    #[inline(always)]
    fn truncate(&mut self, _: usize) {}
    fn get(&self, _: usize) -> (u32, u32) {
        (0, 0)
    }
}

impl Offsets for Vec<u64> {
    #[inline(always)]
    fn push(&mut self, n: usize, os: u32, oe: u32) {
        self.extend(std::iter::repeat_n(pack(os, oe), n));
    }
    fn push_run(&mut self, run: &str, at: u32) {
        for (i, c) in run.char_indices() {
            let os = at + i as u32;
            Offsets::push(self, c.len_utf8(), os, os + c.len_utf8() as u32);
        }
    }
    fn truncate(&mut self, len: usize) {
        Vec::truncate(self, len);
    }
    fn get(&self, at: usize) -> (u32, u32) {
        (start_of(self[at]), end_of(self[at]))
    }
}

/// Where normalisation writes the normalised text in UTF-8: a `String`, or nowhere when only the
/// dense encoding is needed (the engine without the heuristics, which fingerprint the text).
pub(crate) trait TextSink {
    const KEEPS_TEXT: bool;
    fn push_str(&mut self, s: &str);
    fn push(&mut self, c: char);
    fn len(&self) -> usize;
    fn truncate(&mut self, len: usize);
    /// The text written from byte `from` on.
    fn tail(&self, from: usize) -> &str;
}

impl TextSink for String {
    const KEEPS_TEXT: bool = true;
    #[inline(always)]
    fn push_str(&mut self, s: &str) {
        String::push_str(self, s)
    }
    #[inline(always)]
    fn push(&mut self, c: char) {
        // String::push encodes in place; extend_from_slice of 1-4 bytes would call memcpy.
        String::push(self, c)
    }
    #[inline(always)]
    fn len(&self) -> usize {
        String::len(self)
    }
    fn truncate(&mut self, len: usize) {
        String::truncate(self, len)
    }
    fn tail(&self, from: usize) -> &str {
        &self[from..]
    }
}

pub(crate) struct NoText;

impl TextSink for NoText {
    const KEEPS_TEXT: bool = false;
    #[inline(always)]
    fn push_str(&mut self, _: &str) {}
    #[inline(always)]
    fn push(&mut self, _: char) {}
    #[inline(always)]
    fn len(&self) -> usize {
        0
    }
    fn truncate(&mut self, _: usize) {}
    fn tail(&self, _: usize) -> &str {
        ""
    }
}

/// Where normalisation also writes the dense encoding: nowhere, or a [`super::dense::Writer`].
pub(crate) trait DenseSink {
    /// The fast lane: from `bytes[pos]` on, takes the three-byte characters that map to
    /// themselves (nearly all Han text) and, with `skip_noise`, those normalisation drops
    /// (`，。！？、`: only when no UTF-8 text is kept, whose pending run they would end); returns
    /// where it stopped.
    fn lane(&mut self, fast: &[u16; 0x10000], bytes: &[u8], pos: usize, skip_noise: bool) -> usize;
    /// The characters written from byte `from` on (a numeral run being rewritten).
    fn chars_since(&self, from: usize) -> Vec<char>;
    /// Any character of the normalised text.
    fn char(&mut self, c: char);
    fn len(&self) -> usize;
    fn truncate(&mut self, len: usize);
}

pub(crate) struct NoDense;

impl DenseSink for NoDense {
    #[inline(always)]
    fn lane(&mut self, fast: &[u16; 0x10000], bytes: &[u8], mut pos: usize, _: bool) -> usize {
        for c in bytes[pos..].chunks_exact(3) {
            if c[0] & 0xF0 != 0xE0 || !maps_to_itself(fast[bmp3(c[0], c[1], c[2])]) {
                break;
            }
            pos += 3;
        }
        pos
    }
    fn chars_since(&self, _: usize) -> Vec<char> {
        unreachable!("text is kept whenever the dense encoding is not")
    }
    #[inline(always)]
    fn char(&mut self, _: char) {}
    #[inline(always)]
    fn len(&self) -> usize {
        0
    }
    #[inline(always)]
    fn truncate(&mut self, _: usize) {}
}

/// Appends the normalised form of `text` to `out`, recording offsets in `offsets`.
///
/// Most characters of chat text (simplified Han characters, lowercase letters) map to
/// themselves: one table lookup says so (and gives the character's dense code), so a run of
/// them is copied in one go. Everything else goes through the full per-character table.
#[inline(always)]
fn normalise_into<T: TextSink, O: Offsets, D: DenseSink>(
    text: &str,
    out: &mut T,
    offsets: &mut O,
    dense: &mut D,
) {
    let table = mapping();
    // A local copy of the reference keeps the table's address in a register across the writes.
    let fast: &[u16; 0x10000] = &table.fast;
    let bytes = text.as_bytes();
    let mut numerals = NumeralRun::default();
    // The pending run of characters that map to themselves is `text[run..pos]`.
    let mut run = 0;
    let mut pos = 0;
    while pos < bytes.len() {
        let lane = pos;
        if numerals.len > 0
            && run == lane
            && let [c0, c1, c2, ..] = bytes[lane..]
            && c0 & 0xF0 == 0xE0
            && maps_to_itself(fast[bmp3(c0, c1, c2)])
        {
            // A numeral run ends at the first character that is not a numeral.
            end_numerals(out, offsets, dense, &mut numerals);
        }
        // Noise can be skipped inside the lane only when no UTF-8 run is pending (no text is
        // kept) and no numeral run is open (the next character may have to end it first).
        pos = dense.lane(fast, bytes, lane, !T::KEEPS_TEXT && numerals.len == 0);
        if pos > lane {
            continue;
        }
        // Decoded by hand: `text` is valid UTF-8, and the common case needs only the table
        // index, not a `char`.
        let b0 = bytes[pos];
        let (code, len) = if b0 < 0x80 {
            (u32::from(b0), 1)
        } else if b0 < 0xE0 {
            (
                u32::from(b0 & 0x1F) << 6 | u32::from(bytes[pos + 1] & 0x3F),
                2,
            )
        } else if b0 < 0xF0 {
            let code = u32::from(b0 & 0x0F) << 12
                | u32::from(bytes[pos + 1] & 0x3F) << 6
                | u32::from(bytes[pos + 2] & 0x3F);
            (code, 3)
        } else {
            let code = u32::from(b0 & 0x07) << 18
                | u32::from(bytes[pos + 1] & 0x3F) << 12
                | u32::from(bytes[pos + 2] & 0x3F) << 6
                | u32::from(bytes[pos + 3] & 0x3F);
            (code, 4)
        };
        if code < 0x10000 && maps_to_itself(fast[code as usize]) {
            if run == pos && numerals.len > 0 {
                end_numerals(out, offsets, dense, &mut numerals);
            }
            dense.char(char::from_u32(code).expect("decoded from UTF-8"));
            pos += len;
            continue;
        }
        if run < pos {
            out.push_str(&text[run..pos]);
            offsets.push_run(&text[run..pos], run as u32);
        }
        let os = pos as u32;
        let oe = (pos + len) as u32;
        let mut emit = |m: char| push_mapped(out, offsets, dense, &mut numerals, m, os, oe);
        match table
            .entries
            .get(code as usize)
            .copied()
            .unwrap_or(ENTRY_SLOW)
        {
            ENTRY_DROP => {}
            ENTRY_SLOW => {
                let c = text[pos..].chars().next().expect("a character starts here");
                map_char(c).chars().for_each(&mut emit)
            }
            e if e & ENTRY_MULTI != 0 => table.multi[(e & !ENTRY_MULTI) as usize]
                .chars()
                .for_each(&mut emit),
            // Only valid scalar values are stored as single-character entries.
            e => emit(char::from_u32(e).unwrap_or(char::REPLACEMENT_CHARACTER)),
        }
        pos += len;
        run = pos;
    }
    if run < pos {
        out.push_str(&text[run..]);
        offsets.push_run(&text[run..], run as u32);
    } else if numerals.len > 0 {
        end_numerals(out, offsets, dense, &mut numerals);
    }
}

#[inline(always)]
fn push_mapped<T: TextSink, O: Offsets, D: DenseSink>(
    out: &mut T,
    offsets: &mut O,
    dense: &mut D,
    run: &mut NumeralRun,
    c: char,
    os: u32,
    oe: u32,
) {
    match numeral_value(c) {
        Some(_) => {
            if run.len == 0 {
                run.start = out.len();
                run.dense_start = dense.len();
                run.chinese = false;
            }
            run.len += 1;
            run.chinese |= !c.is_ascii_digit();
        }
        None if run.len > 0 => end_numerals(out, offsets, dense, run),
        None => {}
    }
    out.push(c);
    offsets.push(c.len_utf8(), os, oe);
    dense.char(c);
}

/// A numeric run just ended at the end of `out`: if it is long enough to be a number, rewrite
/// its Chinese numerals as ASCII digits in place.
#[cold]
fn end_numerals<T: TextSink, O: Offsets, D: DenseSink>(
    out: &mut T,
    offsets: &mut O,
    dense: &mut D,
    run: &mut NumeralRun,
) {
    if run.len >= MIN_NUMERAL_RUN && run.chinese {
        // Offsets are only ever recorded together with the text.
        let tail = if T::KEEPS_TEXT {
            out.tail(run.start)
                .char_indices()
                .map(|(i, c)| {
                    let (os, oe) = offsets.get(run.start + i);
                    (c, os, oe)
                })
                .collect::<Vec<_>>()
        } else {
            dense
                .chars_since(run.dense_start)
                .into_iter()
                .map(|c| (c, 0, 0))
                .collect()
        };
        out.truncate(run.start);
        offsets.truncate(run.start);
        dense.truncate(run.dense_start);
        for (c, os, oe) in tail {
            let d = numeral_value(c).expect("run holds numerals only");
            out.push(char::from(b'0' + d));
            offsets.push(1, os, oe);
            dense.char(char::from(b'0' + d));
        }
    }
    run.len = 0;
}

#[derive(Default)]
struct NumeralRun {
    start: usize,
    /// Where the run starts in the dense encoding.
    dense_start: usize,
    len: usize,
    chinese: bool,
}

/// The pinyin view used by packs with `pinyin = true`: every Han character of the normalised
/// text is replaced by its toneless pinyin, other characters stay, and a Han character or an
/// ASCII letter repeated right after itself (代代开开, and after letter styles are folded,
/// ⒻⒻⓕ or VV) is folded into the first. Each view byte belongs to a unit (one
/// normalised character, with the original byte range it covers), so matches can be checked to
/// begin and end on whole units and mapped back to the original.
#[derive(Debug, Default)]
pub(crate) struct PinyinBuffer {
    /// The view: ASCII pinyin and the other characters' UTF-8.
    pub text: Vec<u8>,
    /// Every unit of the buffer, in order (so sorted by `start`).
    pub units: Vec<Unit>,
    pub bounds: Vec<(usize, usize)>,
    /// Per message: its units, `units[first..last]` (the separator's unit excluded).
    pub unit_bounds: Vec<(u32, u32)>,
}

/// One normalised character in the pinyin view.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Unit {
    pub c: char,
    /// First view byte of the unit.
    pub start: u32,
    /// Byte range covered in the message's dense encoding (both characters of a folded
    /// repeat); converted to UTF-8 offsets, [`Mapped`] takes it back to the original.
    pub ns: u32,
    pub ne: u32,
}

impl PinyinBuffer {
    pub fn clear(&mut self) {
        self.text.clear();
        self.units.clear();
        self.bounds.clear();
        self.unit_bounds.clear();
    }

    /// Index of the unit that view byte `b` of message `i` belongs to (`b` may be the message's
    /// end: the separator's unit). Searched, not stored per byte: only the few matches in the
    /// view ask, while every message's view is built.
    pub fn unit_at(&self, i: usize, b: usize) -> usize {
        let (first, last) = self.unit_bounds[i];
        let units = &self.units[first as usize..=last as usize];
        first as usize + units.partition_point(|u| u.start as usize <= b) - 1
    }

    /// True when view byte `b` of message `i` starts a unit (or is the message's end).
    pub fn on_unit_boundary(&self, i: usize, b: usize) -> bool {
        self.units[self.unit_at(i, b)].start as usize == b
    }

    /// Appends the pinyin view of one normalised message, given in the dense encoding (so the
    /// batch pass need not write the UTF-8 text for it).
    pub fn push_message(&mut self, dense: &[u8]) {
        let start = self.text.len();
        let first_unit = self.units.len() as u32;
        // The last unit's character when a repeat of it folds into it (Han, ASCII letter).
        let mut prev_han: Option<char> = None;
        for (ds, de, c) in super::dense::chars(dense) {
            let (ns, ne) = (ds as u32, de as u32);
            if prev_han == Some(c) {
                // Fold the repeat into the previous unit: its range now covers both.
                if let Some(u) = self.units.last_mut() {
                    u.ne = ne;
                }
                continue;
            }
            self.units.push(Unit {
                c,
                start: self.text.len() as u32,
                ns,
                ne,
            });
            // Fixed-size appends then a cut: a copy of a few bytes whose length is only known at
            // run time would be a `memcpy` call per character.
            let at = self.text.len();
            match han_syllable(c) {
                Some(py) => {
                    self.text.extend_from_slice(py);
                    self.text.truncate(at + usize::from(py[SYLLABLE_LEN]));
                    prev_han = Some(c);
                }
                None => {
                    let mut utf8 = [0; 4];
                    let len = c.encode_utf8(&mut utf8).len();
                    self.text.extend_from_slice(&utf8);
                    self.text.truncate(at + len);
                    prev_han = folds_repeats(c).then_some(c);
                }
            }
        }
        self.bounds.push((start, self.text.len()));
        self.unit_bounds.push((first_unit, self.units.len() as u32));
        // The separator is a unit of its own, so a match ending right before it is on a boundary.
        self.units.push(Unit {
            c: SEPARATOR as char,
            start: self.text.len() as u32,
            ns: 0,
            ne: 0,
        });
        self.text.push(SEPARATOR);
    }
}

/// Where [`han_syllable`] keeps the syllable's length.
const SYLLABLE_LEN: usize = 7;

/// Toneless pinyin (most common reading) of the Han characters U+3400..=U+9FFF, each packed into
/// 8 bytes: the syllable (at most 7 bytes: `zhuang`, `lüe`), padded, and its length in the last
/// byte (0: no reading).
fn syllables() -> &'static [[u8; 8]] {
    static TABLE: OnceLock<Vec<[u8; 8]>> = OnceLock::new();
    TABLE.get_or_init(|| {
        use pinyin::ToPinyin;
        (SYLLABLE_FIRST..=SYLLABLE_LAST)
            .map(|u| {
                let mut packed = [0u8; 8];
                if let Some(py) = char::from_u32(u).and_then(|c| c.to_pinyin()) {
                    let py = py.plain();
                    assert!(
                        py.len() <= SYLLABLE_LEN,
                        "pinyin {py:?} longer than 7 bytes"
                    );
                    packed[..py.len()].copy_from_slice(py.as_bytes());
                    packed[SYLLABLE_LEN] = py.len() as u8;
                }
                packed
            })
            .collect()
    })
}

const SYLLABLE_FIRST: u32 = 0x3400; // CJK Extension A .. CJK Unified Ideographs
const SYLLABLE_LAST: u32 = 0x9FFF;

/// [`han_pinyin`] as its packed 8 bytes, for the pinyin view's fixed-size writes.
fn han_syllable(c: char) -> Option<&'static [u8; 8]> {
    let code = c as u32;
    if !(SYLLABLE_FIRST..=SYLLABLE_LAST).contains(&code) {
        return None;
    }
    Some(&syllables()[(code - SYLLABLE_FIRST) as usize]).filter(|p| p[SYLLABLE_LEN] != 0)
}

/// Toneless pinyin of a Han character (its most common reading).
pub(crate) fn han_pinyin(c: char) -> Option<&'static str> {
    han_syllable(c).map(|p| {
        std::str::from_utf8(&p[..usize::from(p[SYLLABLE_LEN])]).expect("packed from a str")
    })
}

/// The pinyin key of a normalised term, built the way [`PinyinBuffer`] builds the text's view,
/// and the term's units (characters after folding repeats), used for the homophone check, with
/// how many times each stands in a row in the term (时时彩: 2, 1).
pub(crate) fn pinyin_key(norm_term: &str) -> (String, Vec<char>, Vec<u8>) {
    let mut key = String::new();
    let mut units = Vec::new();
    let mut runs: Vec<u8> = Vec::new();
    let mut prev: Option<char> = None;
    for c in norm_term.chars() {
        if prev == Some(c) {
            if let Some(n) = runs.last_mut() {
                *n = n.saturating_add(1);
            }
            continue;
        }
        match han_pinyin(c) {
            Some(py) => {
                key.push_str(py);
                prev = Some(c);
            }
            None => {
                key.push(c);
                prev = folds_repeats(c).then_some(c);
            }
        }
        units.push(c);
        runs.push(1);
    }
    (key, units, runs)
}

/// The pinyin key of a normalised term with nothing folded (时时彩: shishicai), and its
/// characters: how the view spells a doubled character written with two different ones.
pub(crate) fn pinyin_key_unfolded(norm_term: &str) -> (String, Vec<char>) {
    let chars: Vec<char> = norm_term.chars().collect();
    let mut key = String::new();
    for &c in &chars {
        match han_pinyin(c) {
            Some(py) => key.push_str(py),
            None => key.push(c),
        }
    }
    (key, chars)
}

/// Whether a repeat of this non-Han character folds into it in the pinyin view: ASCII letters
/// (ffuuck, VVXX), not digits, which spell numbers.
fn folds_repeats(c: char) -> bool {
    c.is_ascii_lowercase()
}

/// A pinyin key as romanised text shows it in the view: repeated ASCII letters are folded there
/// letter by letter, so a key whose syllables meet on the same letter (新年 xin|nian, romanised
/// "xinnian") is written once more with the pair folded ("xinian").
pub(crate) fn fold_letter_repeats(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for c in key.chars() {
        if !(folds_repeats(c) && out.ends_with(c)) {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (input, expected normalised text) for every evasion form we undo.
    #[test]
    fn evasion_forms_normalise() {
        let cases: &[(&str, &str, &str)] = &[
            ("full-width letters and digits", "ＡＢＣ１２３", "abc123"),
            ("case folding", "加VX", "加vx"),
            ("traditional to simplified", "代開發票", "代开发票"),
            ("ideographic space", "代\u{3000}开", "代开"),
            ("ascii spaces and tabs", "代 开\t发 票", "代开发票"),
            ("punctuation", "代，开。发！票", "代开发票"),
            ("ascii punctuation", "代.开-发_票", "代开发票"),
            (
                "zero-width characters",
                "代\u{200B}开\u{200D}发\u{FEFF}票",
                "代开发票",
            ),
            ("emoji between chars", "代😀开🔥发👍🏻票", "代开发票"),
            ("line breaks", "代\n开\r\n发\u{2028}票", "代开发票"),
            ("symbols", "代★开☆发♥票", "代开发票"),
            ("combining marks", "代\u{0336}开\u{0336}", "代开"),
            ("circled digits", "①②③", "123"),
            ("parenthesised digits", "⑴⑵", "12"),
            ("dingbat digits", "❶➀⓵", "111"),
            ("circled letters", "Ⓐⓑ", "ab"),
            ("superscripts", "x²³", "x23"),
            ("parenthesised ideographs", "㈠", "一"),
            ("math letters outside the BMP", "𝐀𝐁", "ab"),
            (
                "chinese numeral phone number",
                "幺三八一二三四五六七八",
                "13812345678",
            ),
            ("mixed numerals", "1三8 1二3 4五6 7八", "13812345678"),
            ("financial numerals", "壹叁捌贰肆伍陆", "1382456"),
            (
                "numbers holding 零",
                "一三八零零一二三四五六",
                "13800123456",
            ),
            (
                "幺 and 零 together",
                "幺五零零一二三零四五六",
                "15001230456",
            ),
            ("〇 as zero", "一三八〇〇一二三四五六", "13800123456"),
            (
                "零 with noise and ascii digits",
                "1 三 8 零-零 1 2",
                "1380012",
            ),
            ("six numerals stay words", "一二三四五六", "一二三四五六"),
            ("counting rhyme stays", "九九八十一", "九九八十一"),
            ("short numeral words stay words", "一夜情", "一夜情"),
            ("idioms stay", "一五一十", "一五一十"),
            ("numeral run at end", "电话一三八一二三四", "电话1381234"),
            ("four numerals stay", "三三两两", "三三两两"),
            ("empty", "", ""),
            ("only noise", " ，。😀 ", ""),
        ];
        for (name, input, want) in cases {
            assert_eq!(normalise(input).text, *want, "case {name:?}: {input:?}");
        }
    }

    #[test]
    fn offsets_map_back_to_original() {
        // (input, normalised byte range, expected original substring)
        let cases: &[(&str, (usize, usize), &str)] = &[
            ("ab代 开cd", (2, 8), "代 开"),
            ("ＡＢ", (0, 2), "ＡＢ"),
            ("x①y", (1, 2), "①"),
            ("😀代😀开😀", (0, 6), "代😀开"),
            ("幺三八一二三四", (0, 7), "幺三八一二三四"),
            ("电话幺 三 八 一 二 三 四", (6, 13), "幺 三 八 一 二 三 四"),
            ("电话幺五零零一二三", (8, 11), "零零一"),
            ("三个字幺三八", (0, 6), "三个"),
            ("代\u{200B}開", (0, 6), "代\u{200B}開"),
        ];
        for (input, (from, to), want) in cases {
            let n = normalise(input);
            let (s, e) = n.original_range(*from, *to);
            assert_eq!(
                &input[s..e],
                *want,
                "input {input:?} normalised {:?}",
                n.text
            );
        }
    }

    /// The batch buffer (no offsets), the per-message segment map and the public per-byte map
    /// must agree on the text and on every range, and every normalised character must map to
    /// whole original characters, in order: random texts over every kind of character the table
    /// treats differently (copied runs, mapped, dropped, numerals, outside the BMP).
    #[test]
    fn both_normalisation_paths_agree() {
        let pool: Vec<char> = "代开发票一二三四五六七八九零幺两壹叁〇十百開發們ABCxyz0123456789，。！ \u{3000}\u{200B}\n😀🔥①⑴㈠Ⓐ²ＡＢ１２㊙️ﬁ𝐀é的龘ω𠀀"
            .chars()
            .collect();
        let mut rng = crate::synth::Rng::new(3);
        let mut normaliser = Normaliser::default();
        let mut map = Mapped::default();
        let mut dense_only = Buffer {
            dense_only: true,
            ..Buffer::default()
        };
        for _ in 0..5_000 {
            let len = rng.below(24);
            let text: String = (0..len).map(|_| *rng.pick(&pool)).collect();
            map.set(&text);
            let per_byte = normalise(&text);
            assert_eq!(normaliser.normalise(&text), map.text, "{text:?}");
            assert_eq!(per_byte.text, map.text, "{text:?}");
            // The dense encoding written during the batch pass is the encoding of its text,
            // whether the pass also writes the UTF-8 text or not.
            let encoded = super::super::dense::encode(&map.text);
            assert_eq!(normaliser.buf.dense_message(0), encoded, "{text:?}");
            dense_only.clear();
            dense_only.push_message(&text);
            assert_eq!(dense_only.dense_message(0), encoded, "dense only: {text:?}");
            let mut last_end = 0;
            for (i, c) in map.text.char_indices() {
                let (s, e) = map.original_range(i, i + c.len_utf8());
                assert_eq!(
                    (s, e),
                    per_byte.original_range(i, i + c.len_utf8()),
                    "segments and the per-byte map disagree on {c:?} in {text:?}"
                );
                assert!(s < e && e <= text.len(), "{text:?}");
                assert!(
                    text.is_char_boundary(s) && text.is_char_boundary(e),
                    "{text:?}"
                );
                assert!(e >= last_end, "offsets go forward in {text:?}");
                last_end = e;
            }
            // Ranges of several characters, as matches are.
            let ends: Vec<usize> = map
                .text
                .char_indices()
                .map(|(i, c)| i + c.len_utf8())
                .collect();
            for (k, (i, _)) in map.text.char_indices().enumerate() {
                for &e in &ends[k..] {
                    assert_eq!(map.original_range(i, e), per_byte.original_range(i, e));
                }
            }
        }
    }

    #[test]
    fn pinyin_view_folds_repeats_and_maps_back() {
        let text = "代代开开发发票票";
        let mut norm = Buffer::default();
        norm.push_message(text);
        let mut py = PinyinBuffer::default();
        py.push_message(norm.dense_message(0));
        let (s, e) = py.bounds[0];
        assert_eq!(&py.text[s..e], b"daikaifapiao");
        let (first, last) = (py.units[py.unit_at(0, s)], py.units[py.unit_at(0, e - 1)]);
        let mut map = Mapped::default();
        map.set(text);
        let dense = norm.dense_message(0);
        let (os, oe) = map.original_range(
            super::super::dense::utf8_offset(dense, first.ns as usize),
            super::super::dense::utf8_offset(dense, last.ne as usize),
        );
        assert_eq!(&text[os..oe], text);
        assert!(py.on_unit_boundary(0, s + 3) && !py.on_unit_boundary(0, s + 2));
        assert!(py.on_unit_boundary(0, e), "the message's end is a boundary");
        assert_eq!(pinyin_key("代开发票").0, "daikaifapiao");
        assert_eq!(pinyin_key("加v").0, "jiav");
    }

    #[test]
    fn pinyin_view_folds_repeated_letters_but_not_digits_or_syllable_edges() {
        // (normalised text, its view)
        let table = [
            ("加加vvxx", "jiavx"),
            ("ffffuuuucck", "fuck"),
            ("新年", "xinnian"),
            ("xinnian", "xinian"),
            ("110", "110"),
            ("a代代a", "adaia"),
        ];
        for (text, want) in table {
            let mut norm = Buffer::default();
            norm.push_message(text);
            let mut py = PinyinBuffer::default();
            py.push_message(norm.dense_message(0));
            let (s, e) = py.bounds[0];
            assert_eq!(std::str::from_utf8(&py.text[s..e]).unwrap(), want, "{text}");
        }
        assert_eq!(pinyin_key("加vvx").0, "jiavx");
        assert_eq!(fold_letter_repeats("xinnianhongbao"), "xinianhongbao");
        assert_eq!(fold_letter_repeats("a11b"), "a11b");
    }
}
