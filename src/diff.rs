//! `qunguard diff-rules`: what a rule change would do to recorded traffic, before it is
//! deployed. JSONL messages go through the batch core ([`crate::batch`]) with the old and the
//! new rule set (rules only: the heuristics depend on stream history, not on the change); one
//! line per message whose action or categories differ, then a summary.

use crate::batch::{Input, Outcome, Screener};
use crate::model::{Action, Verdict};
use crate::screen::Engine;
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::{self, BufRead, Write};
use std::sync::Arc;

/// Lines screened per batch.
const BATCH_LINES: usize = 4096;

/// One side of a [`Change`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Screening {
    /// The verdict's action.
    pub action: Action,
    /// The verdict's categories, sorted.
    pub categories: Vec<Arc<str>>,
}

/// A message whose verdict a rule change changes: one output line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    /// The message's id.
    pub id: crate::model::Id,
    /// Under the old rules.
    pub old: Screening,
    /// Under the new rules.
    pub new: Screening,
}

/// Counts over a whole diff.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DiffSummary {
    /// Messages screened with both sets.
    pub messages: u64,
    /// Of them, changed (written out).
    pub changed: u64,
    /// Lines that are not messages (bad JSON, invalid UTF-8, a `text` over the limit),
    /// skipped.
    pub unreadable: u64,
    /// Blank lines, skipped (they separate nothing in JSONL).
    pub blank: u64,
    /// Changed messages by (old action, new action).
    pub by_action: BTreeMap<(Action, Action), u64>,
    /// Per category: messages that gained it, and that lost it.
    pub by_category: BTreeMap<String, (u64, u64)>,
}

impl std::fmt::Display for DiffSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Every input line is one of the three counts, so they add up to the input.
        writeln!(
            f,
            "{} messages, {} changed; lines skipped: {} not messages (bad JSON or a text over the limit), {} blank",
            self.messages, self.changed, self.unreadable, self.blank
        )?;
        for ((old, new), n) in &self.by_action {
            writeln!(f, "  action {} -> {}: {n}", old.as_str(), new.as_str())?;
        }
        for (c, (gained, lost)) in &self.by_category {
            writeln!(f, "  category {c}: +{gained} -{lost}")?;
        }
        Ok(())
    }
}

fn screening(v: &Verdict) -> Screening {
    Screening {
        action: v.action,
        categories: v.categories.clone(),
    }
}

/// Replays JSONL messages from `input` through `old` and `new`; writes a [`Change`] line to
/// `output` for each message whose action or categories differ, in input order. Messages whose
/// `text` is over `max_text_bytes` are counted as unreadable.
pub fn diff_rules<R: BufRead, W: Write>(
    old: &Engine,
    new: &Engine,
    mut input: R,
    mut output: W,
    max_text_bytes: usize,
) -> io::Result<DiffSummary> {
    let (before, after) = (
        Screener::new(old, None, max_text_bytes),
        Screener::new(new, None, max_text_bytes),
    );
    let mut summary = DiffSummary::default();
    let mut lines: Vec<Vec<u8>> = Vec::with_capacity(BATCH_LINES);
    loop {
        lines.clear();
        while lines.len() < BATCH_LINES {
            let mut line = Vec::new();
            if input.read_until(b'\n', &mut line)? == 0 {
                break;
            }
            if line.last() == Some(&b'\n') {
                line.pop();
            }
            // Blank lines separate nothing in JSONL: skip them rather than call them errors.
            if line.iter().all(u8::is_ascii_whitespace) {
                summary.blank += 1;
            } else {
                lines.push(line);
            }
        }
        if lines.is_empty() {
            break;
        }
        let a = before
            .screen(&lines, |l| Input::Message(l))
            .watch(None, usize::MAX);
        let b = after
            .screen(&lines, |l| Input::Message(l))
            .watch(None, usize::MAX);
        for (oa, ob) in a.outcomes().zip(b.outcomes()) {
            let (va, vb) = match (oa, ob) {
                (Outcome::Verdict { verdict: va, .. }, Outcome::Verdict { verdict: vb, .. }) => {
                    (va, vb)
                }
                _ => {
                    summary.unreadable += 1;
                    continue;
                }
            };
            summary.messages += 1;
            if va.action == vb.action && va.categories == vb.categories {
                continue;
            }
            summary.changed += 1;
            *summary.by_action.entry((va.action, vb.action)).or_default() += 1;
            for c in &vb.categories {
                if !va.categories.contains(c) {
                    summary.by_category.entry(c.to_string()).or_default().0 += 1;
                }
            }
            for c in &va.categories {
                if !vb.categories.contains(c) {
                    summary.by_category.entry(c.to_string()).or_default().1 += 1;
                }
            }
            let change = Change {
                id: va.id.clone(),
                old: screening(va),
                new: screening(vb),
            };
            serde_json::to_writer(&mut output, &change)?;
            output.write_all(b"\n")?;
        }
    }
    output.flush()?;
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Pack, RuleSet};
    use std::path::Path;

    fn engine(packs: &[(&str, &str)]) -> Engine {
        let packs = packs
            .iter()
            .map(|(n, src)| Pack::parse(Path::new(&format!("r/{n}.toml")), src).unwrap())
            .collect();
        Engine::compile(&RuleSet::new(packs).unwrap()).unwrap()
    }

    #[test]
    fn only_changed_messages_are_written_with_both_screenings() {
        let old = engine(&[(
            "ads",
            "category = \"ads\"\naction = \"review\"\nwords = [\"代开发票\", \"刷单\"]\n",
        )]);
        let new = engine(&[
            (
                "ads",
                "category = \"ads\"\naction = \"review\"\nwords = [\"代开发票\"]\n",
            ),
            (
                "gambling",
                "category = \"gambling\"\naction = \"block\"\nwords = [\"百家乐\", \"刷单\"]\n",
            ),
        ]);
        let m = |id: &str, text: &str| {
            format!(r#"{{"id":"{id}","group_id":"g","sender_id":"u","ts":1,"text":"{text}"}}"#)
        };
        // (id, text, changed: (old action, old categories, new action, new categories))
        type Want = Option<(
            &'static str,
            &'static [&'static str],
            &'static str,
            &'static [&'static str],
        )>;
        let table: &[(&str, &str, Want)] = &[
            ("same-hit", "代开发票", None),
            ("clean", "今天天气不错", None),
            (
                "moved",
                "刷单",
                Some(("review", &["ads"], "block", &["gambling"])),
            ),
            (
                "new",
                "百家乐",
                Some(("allow", &[], "block", &["gambling"])),
            ),
            (
                "both",
                "代开发票 百家乐",
                Some(("review", &["ads"], "block", &["ads", "gambling"])),
            ),
        ];
        let mut input = String::new();
        for (id, text, _) in table {
            input.push_str(&m(id, text));
            input.push('\n');
            input.push_str("{broken\n\n");
        }
        let mut out = Vec::new();
        let s = diff_rules(&old, &new, input.as_bytes(), &mut out, 1 << 16).unwrap();
        let got: Vec<serde_json::Value> = String::from_utf8(out)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let want: Vec<serde_json::Value> = table
            .iter()
            .filter_map(|(id, _, w)| {
                w.map(|(oa, oc, na, nc)| {
                    serde_json::json!({"id": id, "old": {"action": oa, "categories": oc},
                        "new": {"action": na, "categories": nc}})
                })
            })
            .collect();
        assert_eq!(got, want);
        assert_eq!((s.messages, s.changed, s.unreadable, s.blank), (5, 3, 5, 5));
        assert_eq!(s.by_action[&(Action::Review, Action::Block)], 2);
        assert_eq!(s.by_action[&(Action::Allow, Action::Block)], 1);
        assert_eq!(s.by_category["gambling"], (3, 0));
        assert_eq!(s.by_category["ads"], (0, 1));
    }
}
