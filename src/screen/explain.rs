//! Explanations for reviewers (`qunguard scan --explain`): the normalised text a verdict was
//! matched on, and for each hit and suppression where it lies there and which original bytes
//! each of its normalised characters came from.
//!
//! Built after screening, from the message and its verdict alone, so the engine's hot path
//! carries nothing for it.

use super::normalise::{han_pinyin, normalise};
use crate::model::{MatchKind, Message, Verdict};
use serde::Serialize;

/// What `scan --explain` adds to a verdict line, under `"explain"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Explanation {
    /// The message text after normalisation (what the rules are matched against).
    pub normalised: String,
    /// One entry per hit of the verdict, in the same order.
    pub hits: Vec<SpanMap>,
    /// One entry per suppression of the verdict, in the same order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub suppressed: Vec<SpanMap>,
}

/// Where one hit (or suppression) lies in the normalised text, and its offset map.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SpanMap {
    /// The rule, as on the hit.
    pub rule: String,
    /// `[from, to)` in bytes of the normalised text.
    pub normalised: [usize; 2],
    /// The normalised text of the span.
    pub normalised_text: String,
    /// For sound-alike matches: the span's pinyin, a syllable per Han character.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pinyin: Option<String>,
    /// Per normalised character of the span: `[normalised from, to, original from, to]`, bytes.
    pub map: Vec<[usize; 4]>,
}

/// Explains `verdict`, which screening `msg` produced.
pub fn explain(msg: &Message, verdict: &Verdict) -> Explanation {
    let n = normalise(&msg.text);
    let span = |rule: &str, kind: MatchKind, start: usize, end: usize| {
        // The normalised characters that came from inside the original span.
        let map: Vec<[usize; 4]> = n
            .text
            .char_indices()
            .map(|(i, c)| {
                let (os, oe) = n.original_range(i, i + c.len_utf8());
                [i, i + c.len_utf8(), os, oe]
            })
            .filter(|&[_, _, os, oe]| start <= os && oe <= end)
            .collect();
        let (from, to) = match (map.first(), map.last()) {
            (Some(f), Some(l)) => (f[0], l[1]),
            _ => (0, 0),
        };
        let normalised_text = n.text[from..to].to_string();
        let pinyin = (kind == MatchKind::Pinyin).then(|| {
            normalised_text
                .chars()
                .map(|c| han_pinyin(c).map_or_else(|| c.to_string(), str::to_string))
                .collect::<Vec<_>>()
                .join(" ")
        });
        SpanMap {
            rule: rule.to_string(),
            normalised: [from, to],
            normalised_text,
            pinyin,
            map,
        }
    };
    Explanation {
        hits: verdict
            .hits
            .iter()
            .map(|h| span(&h.rule, h.kind, h.start, h.end))
            .collect(),
        suppressed: verdict
            .suppressed
            .iter()
            .map(|s| span(&s.rule, s.kind, s.start, s.end))
            .collect(),
        normalised: n.text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Pack, RuleSet, screen::Engine};
    use std::path::Path;

    fn msg(text: &str) -> Message {
        Message {
            id: "m".into(),
            group_id: "g".into(),
            sender_id: "u".into(),
            ts: 1,
            text: text.into(),
        }
    }

    #[test]
    fn explanations_map_each_hit_to_the_normalised_text_and_back() {
        let pack = Pack::parse(
            Path::new("rules/ads.toml"),
            "category = \"ads\"\naction = \"review\"\npinyin = true\nwords = [\"代开发票\"]\n\
             allow = [\"代开发票查询\"]\n",
        )
        .unwrap();
        let e = Engine::compile(&RuleSet::new(vec![pack]).unwrap()).unwrap();
        // (text, normalised, per hit: (normalised span, pinyin, map)), then suppressions
        type Want = (&'static str, Option<&'static str>, Vec<[usize; 4]>);
        let table: Vec<(&str, &str, Vec<Want>, Vec<Want>)> = vec![
            (
                "好的，代 開发票",
                "好的代开发票",
                vec![(
                    "代开发票",
                    None,
                    vec![
                        [6, 9, 9, 12],
                        [9, 12, 13, 16],
                        [12, 15, 16, 19],
                        [15, 18, 19, 22],
                    ],
                )],
                vec![],
            ),
            (
                "代开发飘",
                "代开发飘",
                vec![(
                    "代开发飘",
                    Some("dai kai fa piao"),
                    vec![[0, 3, 0, 3], [3, 6, 3, 6], [6, 9, 6, 9], [9, 12, 9, 12]],
                )],
                vec![],
            ),
            (
                "代开发票查询",
                "代开发票查询",
                vec![],
                vec![(
                    "代开发票",
                    None,
                    vec![[0, 3, 0, 3], [3, 6, 3, 6], [6, 9, 6, 9], [9, 12, 9, 12]],
                )],
            ),
        ];
        for (text, normalised, hits, suppressed) in table {
            let m = msg(text);
            let x = explain(&m, &e.screen(&m));
            assert_eq!(x.normalised, normalised, "{text}");
            type Owned = (String, Option<String>, Vec<[usize; 4]>);
            let got = |spans: &[SpanMap]| -> Vec<Owned> {
                spans
                    .iter()
                    .map(|s| {
                        assert_eq!(
                            &x.normalised[s.normalised[0]..s.normalised[1]],
                            s.normalised_text
                        );
                        (s.normalised_text.clone(), s.pinyin.clone(), s.map.clone())
                    })
                    .collect()
            };
            let owned = |want: Vec<Want>| -> Vec<Owned> {
                want.into_iter()
                    .map(|(t, p, m)| (t.to_string(), p.map(str::to_string), m))
                    .collect()
            };
            assert_eq!(got(&x.hits), owned(hits), "{text}");
            assert_eq!(got(&x.suppressed), owned(suppressed), "{text}");
        }
    }
}
