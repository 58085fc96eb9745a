//! The records that flow through qunguard: input messages and their verdicts.
//!
//! These types are the wire schema (JSON) documented in README.md; change them together.

use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::sync::Arc;

mod read;
mod write;

pub(crate) use write::string as write_json_string;

/// An identifier (message, group, sender). Ids are short (a platform's message ids, group ids
/// such as `12345678@chatroom` and member ids fit in 24 bytes), so they are kept inline without
/// a heap allocation: copying them onto every verdict, and parsing them, then costs no `malloc`.
/// Longer ids work too; they are stored on the heap.
pub type Id = compact_str::CompactString;

/// One chat message as it arrives on the input topic (or a `scan` input line).
///
/// Unknown fields are ignored on purpose: producers add fields (client version, message type)
/// faster than the moderation schema changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// Message id, unique per platform.
    pub id: Id,
    /// Chat group the message was posted in.
    pub group_id: Id,
    /// Member who posted it.
    pub sender_id: Id,
    /// Event time, milliseconds since the Unix epoch.
    pub ts: i64,
    /// Message text as the member wrote it.
    pub text: String,
}

/// What to do with a message. Ordered: `Allow < Review < Block`, so the verdict is the maximum.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Nothing found.
    #[default]
    Allow,
    /// Send to focused human review.
    Review,
    /// Hide or reject the message.
    Block,
}

impl Action {
    /// The lowercase name used on the wire and as a metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Allow => "allow",
            Action::Review => "review",
            Action::Block => "block",
        }
    }
}

/// How a hit was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MatchKind {
    /// A pack term matched the normalised text.
    Term,
    /// A pack term matched through its pinyin spelling, a homophone or repeated characters.
    Pinyin,
    /// A pack regex matched the normalised text (and passed its validator, if any).
    Regex,
    /// A model pack's score reached its threshold (the hit spans the whole text).
    Model,
}

impl MatchKind {
    /// The lowercase name used on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            MatchKind::Term => "term",
            MatchKind::Pinyin => "pinyin",
            MatchKind::Regex => "regex",
            MatchKind::Model => "model",
        }
    }
}

/// One rule that matched a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hit {
    /// Rule id: `PACK:TERM` for terms, the pack's `id` for regexes. Borrowed from the engine's
    /// interned ids when screening (see `Engine`), owned when deserialised.
    pub rule: Cow<'static, str>,
    /// The pack's category, e.g. `ads`.
    pub category: Arc<str>,
    /// The action of this rule.
    pub action: Action,
    /// How it matched.
    pub kind: MatchKind,
    /// Byte offset of the match in the original `text` (inclusive).
    pub start: usize,
    /// Byte offset of the match in the original `text` (exclusive).
    pub end: usize,
    /// `text[start..end]`: what the member actually wrote, noise characters included (short,
    /// so kept inline like [`Id`]).
    pub text: compact_str::CompactString,
    /// Set when the rule is in shadow (its pack or regex says `shadow = true`): the hit is
    /// recorded and counted, but changes neither the verdict's `action` nor its `categories`,
    /// nor anything the heuristics do.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub shadow: bool,
    /// Set (`sentence`) when the hit's `action` was capped at `review`: a listed term split by
    /// a sentence break inside running text, with no word to explain the split, may be two
    /// sentences' words meeting or a term hidden, for a person to tell.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capped: Option<SuppressedBy>,
}

/// The screening result for one message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    /// The message's id.
    pub id: Id,
    /// The message's group.
    pub group_id: Id,
    /// The message's sender.
    pub sender_id: Id,
    /// The message's event time (ms since the epoch).
    pub ts: i64,
    /// The strongest action among the hits (`allow` when there are none).
    pub action: Action,
    /// Categories hit, sorted, without repeats.
    pub categories: Vec<Arc<str>>,
    /// Every hit, sorted by `start`, then `end`, then `rule`.
    pub hits: Vec<Hit>,
    /// Set when `hits` (or `suppressed`) was cut to the pipeline's `max_hits` (a text full of
    /// matches).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub hits_truncated: bool,
    /// Heuristic findings about this message (flooding, rate, incident mode), each with the
    /// action it asks for; the verdict's `action` is at least the strongest of them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<Reason>,
    /// Set when the sender's pressure score in this group is past the removal threshold: the
    /// group owner is advised to remove the member (the decision stays with people).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recommend: Option<Box<Recommendation>>,
    /// Version of the compiled rule set that produced this verdict.
    pub rules_version: compact_str::CompactString,
    /// Matches that were found and then dropped, with why: so a reviewer sees why a message
    /// that holds a term passed. One per rule per overlapping span; none that a reported hit of
    /// the same rule already covers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub suppressed: Vec<Suppression>,
    /// Each model pack's score (0–1), keyed by its category; absent without model packs.
    #[serde(default, skip_serializing_if = "Scores::is_empty")]
    pub scores: Scores,
}

/// Model scores of a verdict by category, written as a JSON object `{"offensive": 0.87}`.
/// The first score is kept inline: a verdict usually holds one (one model pack), and a list
/// allocated for it on every message cost more than scoring.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Scores {
    first: Option<(Cow<'static, str>, f32)>,
    more: Vec<(Cow<'static, str>, f32)>,
}

impl Scores {
    /// True when there are no scores.
    pub fn is_empty(&self) -> bool {
        self.first.is_none()
    }

    /// The score of `category`, if a model pack gave one.
    pub fn get(&self, category: &str) -> Option<f32> {
        self.iter().find(|(c, _)| *c == category).map(|s| s.1)
    }

    /// (category, score) pairs in model-pack order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, f32)> {
        self.first
            .iter()
            .chain(&self.more)
            .map(|(c, s)| (c.as_ref(), *s))
    }

    pub(crate) fn push(&mut self, category: &'static str, score: f32) {
        let entry = (Cow::Borrowed(category), score);
        if self.first.is_none() {
            self.first = Some(entry);
        } else {
            self.more.push(entry);
        }
    }
}

impl Serialize for Scores {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(None)?;
        for (c, score) in self.iter() {
            m.serialize_entry(c, &score)?;
        }
        m.end()
    }
}

impl<'de> Deserialize<'de> for Scores {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let m = std::collections::BTreeMap::<String, f32>::deserialize(d)?;
        let mut all = m.into_iter().map(|(c, s)| (Cow::Owned(c), s));
        Ok(Scores {
            first: all.next(),
            more: all.collect(),
        })
    }
}

/// Why a match was not reported as a hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SuppressedBy {
    /// An allowed term of the same pack covers the match (`by` is the entry as written).
    Allow,
    /// A sound-alike whose characters are an ordinary word (`by` is the lexicon word, or the
    /// sentence-final particle, that explains them).
    Lexicon,
    /// A sound-alike that runs across sentence punctuation (…关照。代理… is not 招代理).
    Sentence,
}

impl SuppressedBy {
    /// Every reason, in [`SuppressedBy::index`] order (metric label values). A new variant
    /// must be added here too: `index` will not compile without it, and a test checks the two
    /// agree.
    pub const ALL: [SuppressedBy; 3] = [
        SuppressedBy::Allow,
        SuppressedBy::Lexicon,
        SuppressedBy::Sentence,
    ];

    /// The reason's position in [`SuppressedBy::ALL`].
    pub fn index(self) -> usize {
        match self {
            SuppressedBy::Allow => 0,
            SuppressedBy::Lexicon => 1,
            SuppressedBy::Sentence => 2,
        }
    }

    /// The snake-case name used on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            SuppressedBy::Allow => "allow",
            SuppressedBy::Lexicon => "lexicon",
            SuppressedBy::Sentence => "sentence",
        }
    }
}

/// A match that was dropped, on a verdict's `suppressed` list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Suppression {
    /// The rule that matched, as on a [`Hit`].
    pub rule: Cow<'static, str>,
    /// The rule's category.
    pub category: Arc<str>,
    /// How it matched.
    pub kind: MatchKind,
    /// Byte offset of the match in the original `text` (inclusive).
    pub start: usize,
    /// Byte offset of the match in the original `text` (exclusive).
    pub end: usize,
    /// `text[start..end]`.
    pub text: compact_str::CompactString,
    /// What dropped it.
    pub reason: SuppressedBy,
    /// The allow entry or lexicon word that dropped it (absent for `sentence`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<compact_str::CompactString>,
}

/// A heuristic finding on a verdict (see README "Heuristics").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reason {
    /// Stable code: `rate_limit`, `duplicate_flood`, `link_flood`, `mention_flood`, `incident`,
    /// `flood_incident`.
    pub reason: String,
    /// What this finding asks for (`review` or `block`).
    pub action: Action,
    /// For people: what was seen, against which threshold.
    pub detail: String,
}

/// Advice attached to a verdict when a member keeps violating the rules.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recommendation {
    /// Always `remove_member` for now.
    pub action: String,
    /// The sender's pressure score in this group (decays with event time).
    pub pressure: f64,
    /// Ids of the sender's recent violating messages in this group, oldest first.
    pub evidence: Vec<String>,
}
