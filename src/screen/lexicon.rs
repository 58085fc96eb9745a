//! The common-word lexicon that sound-alike hits are checked against, and the sentence check.
//!
//! A pinyin-view match in Han characters that merely sounds like a term is, in ordinary chat,
//! nearly always an ordinary word: 病毒 ("virus") sounds like 冰毒, 出生 like 畜生. Such a hit
//! is dropped when the lexicon explains its characters: the span is (or lies inside) a common
//! word other than the term, or a common word runs across one of its edges (去四川 reads 去 +
//! 四川, not 去四; 打麻将 reads 打 + 麻将). Deliberate sound-alikes that are not words (代开发飘,
//! 枪枝, 加薇) stay hits. Romanised spellings and literal terms are never checked.
//!
//! The lexicon (`lexicon.txt`, built by `scripts/lexicon.py` from jieba's MIT-licensed word
//! list) is embedded and loaded once per process, on the first engine with a pinyin pack. The
//! check runs only for sound-alike hits, which are rare, never per message.

use std::borrow::Cow;
use std::collections::HashSet;
use std::sync::OnceLock;

const WORDS: &str = include_str!("lexicon.txt");

/// Longest lexicon word, in characters (the script keeps 2 to 4).
pub(crate) const MAX_WORD: usize = 4;

/// Modal particles that end a question or an exclamation. A sound-alike whose last character is
/// one of them, where the term has another character, is a sentence ending, not a term: 大吗 in
/// 房子大吗 ("is the flat big?") sounds like 大麻.
const PARTICLES: &str = "吗呢吧啊呀嘛哦啦哇";

/// What ends or splits a sentence for a sound-alike besides [`CJK_SENTENCE_PUNCTUATION`]: the
/// full-width stop and the ASCII forms (before normalisation removes them).
const MORE_SENTENCE_PUNCTUATION: &str = "．!?;,.";

/// A digest of the embedded lexicon, part of every rules version: a new lexicon changes what
/// sound-alikes match, like a pack change does.
pub(crate) fn fingerprint() -> &'static [u8] {
    use sha2::{Digest, Sha256};
    static DIGEST: OnceLock<Vec<u8>> = OnceLock::new();
    DIGEST.get_or_init(|| Sha256::digest(WORDS.as_bytes()).to_vec())
}

/// The common words, normalised like message text.
pub(crate) struct Lexicon {
    /// Borrowed from the embedded file where normalisation leaves a word as it is (nearly all).
    words: HashSet<Cow<'static, str>>,
}

/// The embedded lexicon, loaded on first use.
pub(crate) fn lexicon() -> &'static Lexicon {
    static LEXICON: OnceLock<Lexicon> = OnceLock::new();
    LEXICON.get_or_init(|| {
        let mut normaliser = super::normalise::Normaliser::default();
        let words = WORDS
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            // Traditional forms in jieba's list become the simplified form text is matched in.
            .map(|w| match normaliser.normalise(w) {
                n if n == w => Cow::Borrowed(w),
                n => Cow::Owned(n.to_string()),
            })
            .filter(|w| w.chars().count() >= 2)
            .collect();
        Lexicon { words }
    })
}

impl Lexicon {
    /// Whether `word` (normalised) is a common word.
    pub fn contains(&self, word: &str) -> bool {
        self.words.contains(word)
    }

    /// Why the sound-alike `chars[s..e]` of a message's normalised characters is an ordinary word
    /// rather than the term `term` (its characters): the lexicon word (or particle) that
    /// explains it, or `None` when nothing does and the hit stands.
    pub fn explain(&self, chars: &[char], s: usize, e: usize, term: &[char]) -> Option<String> {
        let mut found = Found::new(self, chars, term);
        // The span is a word, or lies inside one: the longest such word explains it best.
        for len in (e - s).max(2)..=MAX_WORD {
            for a in e.saturating_sub(len)..=s {
                let b = a + len;
                if b <= chars.len() && b >= e && found.word(a, b) {
                    return Some(found.it);
                }
            }
        }
        if let Some(w) = self.across_edge(chars, s, e, term, |_, _| true) {
            return Some(w);
        }
        let last = chars[e - 1];
        if PARTICLES.contains(last) && term.last() != Some(&last) {
            return Some(last.to_string());
        }
        None
    }

    /// A word that runs across an edge of the span `chars[s..e]` (the reader pairs that
    /// character with its neighbour outside, so the span is not read as one unit), among the
    /// places `chars[a..b]` where `place(a, b)`, asked before the lexicon is.
    pub fn across_edge(
        &self,
        chars: &[char],
        s: usize,
        e: usize,
        term: &[char],
        mut place: impl FnMut(usize, usize) -> bool,
    ) -> Option<String> {
        let mut found = Found::new(self, chars, term);
        for edge in [s, e] {
            for a in edge.saturating_sub(MAX_WORD - 1)..edge {
                for b in edge + 1..=(a + MAX_WORD).min(chars.len()) {
                    if b - a >= 2 && a < e && b > s && place(a, b) && found.word(a, b) {
                        return Some(found.it);
                    }
                }
            }
        }
        None
    }
}

/// Looks candidate words up, spelt into a buffer on the stack: no allocation per lookup.
struct Found<'a> {
    lexicon: &'a Lexicon,
    chars: &'a [char],
    term: &'a [char],
    buf: [u8; 4 * MAX_WORD],
    /// The last word found.
    it: String,
}

impl<'a> Found<'a> {
    fn new(lexicon: &'a Lexicon, chars: &'a [char], term: &'a [char]) -> Found<'a> {
        Found {
            lexicon,
            chars,
            term,
            buf: [0; 4 * MAX_WORD],
            it: String::new(),
        }
    }

    /// Whether `chars[a..b]` is a lexicon word other than the term.
    fn word(&mut self, a: usize, b: usize) -> bool {
        let mut len = 0;
        for c in &self.chars[a..b] {
            len += c.encode_utf8(&mut self.buf[len..]).len();
        }
        let w = std::str::from_utf8(&self.buf[..len]).expect("encoded from chars");
        let found = !self.chars[a..b].iter().eq(self.term.iter()) && self.lexicon.contains(w);
        if found {
            self.it = w.to_string();
        }
        found
    }
}

/// Whether the original text between two characters holds sentence punctuation.
pub(crate) fn breaks_sentence(gap: &str) -> bool {
    gap.chars()
        .any(|c| CJK_SENTENCE_PUNCTUATION.contains(c) || MORE_SENTENCE_PUNCTUATION.contains(c))
}

/// Sentence punctuation as a Chinese input method types it, and line breaks: what ends a
/// sentence between the characters of a listed term written out ([`breaks_sentence_in_cjk`]).
const CJK_SENTENCE_PUNCTUATION: &str = "。！？；，、…｡､﹐﹑﹒﹔﹖﹗︐︑︒\n\r\u{2028}\u{2029}";

/// Whether the gap holds CJK sentence punctuation or a line break (not ASCII punctuation,
/// which between Han characters is more often a term hidden than a sentence ended: 大.麻).
pub(crate) fn breaks_sentence_in_cjk(gap: &str) -> bool {
    gap.chars().any(|c| CJK_SENTENCE_PUNCTUATION.contains(c))
}

/// A Han character (the unified ideographs, their extensions and compatibility forms).
pub(crate) fn is_han(c: char) -> bool {
    matches!(c, '\u{3400}'..='\u{9FFF}' | '\u{F900}'..='\u{FAFF}' | '\u{20000}'..='\u{3134F}')
}

/// Whether a sound-alike in Han characters runs across sentence punctuation: `gaps` are the
/// original texts between its consecutive characters. A break in some gaps but not all is two
/// sentences' words meeting (…关照。代理… is not 招代理); punctuation in every gap of a span of
/// three or more characters is a term spelt out to hide it (代.开.发.飘).
pub(crate) fn crosses_sentence<'a>(gaps: impl Iterator<Item = &'a str>) -> bool {
    broken_in_part(gaps.map(breaks_sentence))
}

/// [`crosses_sentence`] on whether each gap holds a break.
pub(crate) fn broken_in_part(breaks: impl Iterator<Item = bool>) -> bool {
    let (mut broken, mut all) = (0, 0);
    for b in breaks {
        all += 1;
        broken += usize::from(b);
    }
    broken > 0 && (broken < all || all < 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn explain(text: &str, span: &str, term: &str) -> Option<String> {
        let chars: Vec<char> = text.chars().collect();
        let span: Vec<char> = span.chars().collect();
        let s = (0..chars.len())
            .find(|&i| chars[i..].starts_with(&span))
            .expect("span in text");
        let term: Vec<char> = term.chars().collect();
        lexicon().explain(&chars, s, s + span.len(), &term)
    }

    #[test]
    fn the_lexicon_explains_ordinary_words_and_leaves_deliberate_sound_alikes() {
        // (text, sound-alike span, term, the word that explains it or None)
        let table: &[(&str, &str, &str, Option<&str>)] = &[
            ("他出生在北京", "出生", "畜生", Some("出生")),
            ("社区预防病毒", "病毒", "冰毒", Some("病毒")),
            ("周末打麻将", "打麻", "大麻", Some("麻将")),
            ("我们去四川", "去四", "去死", Some("四川")),
            ("他是福建人", "建人", "贱人", Some("福建人")),
            ("房子大吗", "大吗", "大麻", Some("吗")),
            ("小鸟的白翅膀", "白翅", "白痴", Some("翅膀")),
            ("别那么小气", "小气", "笑气", Some("小气")),
            ("代开发飘", "代开发飘", "代开发票", None),
            ("枪枝出售", "枪枝", "枪支", None),
            ("加薇私聊", "加薇", "加微", None),
            // The term itself is no excuse, even where it is a common word.
            ("大麻", "大麻", "大麻", None),
        ];
        for &(text, span, term, want) in table {
            assert_eq!(
                explain(text, span, term).as_deref(),
                want,
                "{text}: {span} for {term}"
            );
        }
    }

    #[test]
    fn sentence_punctuation_splits_sound_alikes_unless_it_spells_out_every_character() {
        let table: &[(&[&str], bool)] = &[
            (&["。", ""], true),
            (&["", "，"], true),
            (&["。"], true),
            (&["", ""], false),
            (&["", " ", "😀"], false),
            (&[".", ".", "."], false),
            (&["，", "，"], false),
        ];
        for &(gaps, want) in table {
            assert_eq!(crosses_sentence(gaps.iter().copied()), want, "{gaps:?}");
        }
    }

    #[test]
    fn lexicon_loads_normalised_words() {
        let l = lexicon();
        assert!(l.words.len() > 40_000, "{} words", l.words.len());
        assert!(l.contains("病毒") && l.contains("出生") && !l.contains("枪枝"));
    }
}
