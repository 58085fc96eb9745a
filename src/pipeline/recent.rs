//! The bounded store of recent messages (text included), and the corrections made from it
//! after a rules reload.
//!
//! Off unless `[recent_messages] count` is set: it is the one place qunguard keeps members'
//! texts beyond the batch being screened. It holds at most `count` messages, none older than
//! `max_age_secs` since it was screened. After a reload each kept message is screened again by
//! the new set; where the rules' action changed, a [`Correction`] is written (the city's rules
//! ask admins to correct wrong information and tell the group) and the kept screening becomes
//! the new one. A message a reviewer has decided is not corrected: the person's judgement
//! stands over later rule changes (the correction is counted as withheld).

use crate::config::RecentMessagesConfig;
use crate::model::{Action, Message, Verdict};
use crate::screen::Engine;
use crate::watch::DecisionKind;
use serde::Serialize;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A message whose rules verdict a reload changed (corrections topic).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Correction {
    /// The message's id.
    pub id: crate::model::Id,
    /// Its group (the record's key).
    pub group_id: crate::model::Id,
    /// The action and categories the rules gave it before.
    pub old: crate::diff::Screening,
    /// The action and categories the new rules give it.
    pub new: crate::diff::Screening,
    /// The rules version of the screening the group was last told of: the verdict's, or the
    /// last correction's (a reload that changed nothing for it does not count).
    pub old_rules_version: compact_str::CompactString,
    /// The rules version now live.
    pub new_rules_version: compact_str::CompactString,
    /// The message's event time (ms since the epoch).
    pub ts: i64,
}

struct Kept {
    msg: Message,
    /// The rules' verdict (before the heuristics, which depend on history a re-screen lacks).
    action: Action,
    categories: Vec<Arc<str>>,
    /// The version whose screening the group was last told of: the verdict's, or the last
    /// correction's (what a correction's `old_rules_version` names).
    version: compact_str::CompactString,
    /// The version that screened it last (a reload that changes nothing moves only this).
    checked: compact_str::CompactString,
    /// A reviewer's first decision on it, if any: then no reload corrects it.
    decided: Option<DecisionKind>,
    at: Instant,
}

/// What a reload's re-screening of the kept messages found.
#[derive(Debug, Default)]
pub(super) struct Corrected {
    /// A correction for each message whose action changed, with the new verdict and, when
    /// that is `review`, the text reviewers need.
    pub(super) corrections: Vec<(Correction, Verdict, Option<String>)>,
    /// Messages whose action changed but that a reviewer had decided: not corrected.
    pub(super) withheld: u64,
}

/// Recent messages, oldest first.
pub(super) struct RecentMessages {
    kept: VecDeque<Kept>,
    /// Message id → sequence number of its newest kept copy (a decision looks its text up;
    /// a scan of a store of 100k messages per decision would stall the watch thread).
    index: std::collections::HashMap<crate::model::Id, u64>,
    /// Sequence number of `kept`'s front.
    first_seq: u64,
    cap: usize,
    max_age: Duration,
}

impl RecentMessages {
    /// `None` when the config turns the store off.
    pub(super) fn new(cfg: &RecentMessagesConfig) -> Option<RecentMessages> {
        (cfg.count > 0).then(|| RecentMessages {
            kept: VecDeque::with_capacity(cfg.count.min(1 << 16)),
            index: std::collections::HashMap::new(),
            first_seq: 0,
            cap: cfg.count,
            max_age: Duration::from_secs(cfg.max_age_secs),
        })
    }

    /// Keeps `msg` with its rules verdict `v`.
    pub(super) fn keep(&mut self, msg: &Message, v: &Verdict, now: Instant) {
        // A redelivered copy keeps what a reviewer decided on the one before it (looked up
        // before a full store pushes that one out).
        let decided = self.position(&msg.id).and_then(|i| self.kept[i].decided);
        if self.kept.len() == self.cap {
            self.pop_front();
        }
        let seq = self.first_seq + self.kept.len() as u64;
        self.index.insert(msg.id.clone(), seq);
        self.kept.push_back(Kept {
            msg: msg.clone(),
            action: v.action,
            categories: v.categories.clone(),
            version: v.rules_version.clone(),
            checked: v.rules_version.clone(),
            decided,
            at: now,
        });
    }

    fn pop_front(&mut self) {
        if let Some(k) = self.kept.pop_front() {
            if self.index.get(&k.msg.id) == Some(&self.first_seq) {
                self.index.remove(&k.msg.id);
            }
            self.first_seq += 1;
        }
    }

    fn expire(&mut self, now: Instant) {
        while self
            .kept
            .front()
            .is_some_and(|k| now.duration_since(k.at) > self.max_age)
        {
            self.pop_front();
        }
    }

    /// Where in `kept` the newest copy of message `id` is.
    fn position(&self, id: &str) -> Option<usize> {
        let seq = *self.index.get(id)?;
        seq.checked_sub(self.first_seq).map(|i| i as usize)
    }

    fn newest(&mut self, id: &str, now: Instant) -> Option<&mut Kept> {
        self.expire(now);
        let i = self.position(id)?;
        self.kept.get_mut(i)
    }

    /// The text of the newest kept message `id`.
    #[cfg(test)]
    fn text(&mut self, id: &str, now: Instant) -> Option<&str> {
        Some(self.newest(id, now)?.msg.text.as_str())
    }

    /// Records a reviewer's decision on message `id`, if it is kept: the first decision
    /// stands (as in the watch), and no later reload corrects the message. Returns the
    /// message's text and the rules version of what its group was last told (a labelled
    /// example and its provenance).
    pub(super) fn decide(
        &mut self,
        id: &str,
        decision: DecisionKind,
        now: Instant,
    ) -> Option<(&str, &str)> {
        let k = self.newest(id, now)?;
        k.decided.get_or_insert(decision);
        Some((k.msg.text.as_str(), k.version.as_str()))
    }

    /// Screens every kept message screened by another version with `engine`; returns a
    /// correction for each whose action changed and that no reviewer has decided. Every
    /// corrected message then carries `engine`'s screening, so a message is corrected once
    /// per change.
    pub(super) fn correct(&mut self, engine: &Engine, now: Instant) -> Corrected {
        self.expire(now);
        let version = engine.rules_version();
        // Only the newest copy of a message read twice (a redelivery): one correction each.
        let stale: Vec<usize> = (0..self.kept.len())
            .filter(|&i| {
                let k = &self.kept[i];
                k.checked != version && self.position(&k.msg.id) == Some(i)
            })
            .collect();
        let mut out = Corrected::default();
        if stale.is_empty() {
            return out;
        }
        let msgs: Vec<Message> = stale.iter().map(|&i| self.kept[i].msg.clone()).collect();
        let verdicts = engine.screen_batch(&msgs);
        for (&i, v) in stale.iter().zip(verdicts) {
            let k = &mut self.kept[i];
            k.checked = v.rules_version.clone();
            if v.action == k.action {
                continue;
            }
            if k.decided.is_some() {
                out.withheld += 1;
                continue;
            }
            // What the group was told changes only with a correction: its action, categories
            // and version together.
            let c = Correction {
                id: k.msg.id.clone(),
                group_id: k.msg.group_id.clone(),
                old: crate::diff::Screening {
                    action: std::mem::replace(&mut k.action, v.action),
                    categories: std::mem::replace(&mut k.categories, v.categories.clone()),
                },
                new: crate::diff::Screening {
                    action: v.action,
                    categories: v.categories.clone(),
                },
                old_rules_version: std::mem::replace(&mut k.version, v.rules_version.clone()),
                new_rules_version: v.rules_version.clone(),
                ts: k.msg.ts,
            };
            let text = (v.action == Action::Review).then(|| k.msg.text.clone());
            out.corrections.push((c, v, text));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Pack, RuleSet};
    use std::path::Path;

    fn engine(ads_action: &str, extra_words: &str) -> Engine {
        let src = format!(
            "category = \"ads\"\naction = \"{ads_action}\"\nwords = [\"代开发票\"{extra_words}]\n"
        );
        let pack = Pack::parse(Path::new("r/ads.toml"), &src).unwrap();
        Engine::compile(&RuleSet::new(vec![pack]).unwrap()).unwrap()
    }

    /// A store of `count` messages kept for a minute.
    fn store(count: usize) -> RecentMessages {
        RecentMessages::new(&RecentMessagesConfig {
            count,
            max_age_secs: 60,
        })
        .unwrap()
    }

    fn msg(id: &str, text: &str) -> Message {
        Message {
            id: id.into(),
            group_id: "g1".into(),
            sender_id: "u1".into(),
            ts: 7,
            text: text.into(),
        }
    }

    /// (id, text, corrected after the reload: (old action, new action))
    #[test]
    fn corrections_are_made_for_exactly_the_messages_whose_action_changed() {
        let (old, new) = (engine("review", ""), engine("block", ", \"刷单\""));
        type Case = (&'static str, &'static str, Option<(Action, Action)>);
        let table: &[Case] = &[
            ("a", "代开发票", Some((Action::Review, Action::Block))),
            ("b", "刷单赚钱", Some((Action::Allow, Action::Block))),
            ("c", "今天天气不错", None),
            ("d", "代 开 发 票", Some((Action::Review, Action::Block))),
        ];
        let mut store = store(10);
        let now = Instant::now();
        for (id, text, _) in table {
            let m = msg(id, text);
            store.keep(&m, &old.screen(&m), now);
        }
        assert!(
            store.correct(&old, now).corrections.is_empty(),
            "same version: nothing to correct"
        );
        let got: Vec<Correction> = store
            .correct(&new, now)
            .corrections
            .into_iter()
            .map(|c| c.0)
            .collect();
        let want: Vec<(&str, Action, Action)> = table
            .iter()
            .filter_map(|(id, _, c)| c.map(|(a, b)| (*id, a, b)))
            .collect();
        let got_ids: Vec<(&str, Action, Action)> = got
            .iter()
            .map(|c| (c.id.as_str(), c.old.action, c.new.action))
            .collect();
        assert_eq!(got_ids, want);
        assert!(
            got.iter()
                .all(|c| c.old_rules_version == old.rules_version()
                    && c.new_rules_version == new.rules_version()
                    && c.group_id == "g1"
                    && c.ts == 7)
        );
        assert!(
            store.correct(&new, now).corrections.is_empty(),
            "corrected once"
        );
        // And back: the same messages are corrected again, the other way; those now up for
        // review carry their text for reviewers, the others none.
        let back = store.correct(&old, now).corrections;
        assert_eq!(back.len(), want.len());
        for (c, v, text) in &back {
            let m = table.iter().find(|t| t.0 == c.id.as_str()).unwrap();
            assert_eq!(v.action, c.new.action);
            assert_eq!(
                text.as_deref(),
                (v.action == Action::Review).then_some(m.1),
                "{c:?}"
            );
        }
        assert!(back.iter().any(|(_, _, text)| text.is_some()));
    }

    /// A message read twice (a redelivery after a crash) is corrected once, and a correction
    /// names the version of the verdict the group saw, not of a reload that changed nothing.
    #[test]
    fn a_message_read_twice_is_corrected_once_naming_the_version_the_group_saw() {
        let v1 = engine("review", "");
        let v2 = engine("review", ", \"刷单\""); // changes nothing for these messages
        let v3 = engine("block", "");
        let mut store = store(10);
        let now = Instant::now();
        let m = msg("a", "代开发票");
        store.keep(&m, &v1.screen(&m), now);
        store.keep(&m, &v1.screen(&m), now);
        assert!(store.correct(&v2, now).corrections.is_empty());
        let got: Vec<Correction> = store
            .correct(&v3, now)
            .corrections
            .into_iter()
            .map(|c| c.0)
            .collect();
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(got[0].old_rules_version, v1.rules_version());
        assert_eq!(got[0].new_rules_version, v3.rules_version());
    }

    /// A redelivered copy read when the store is full keeps the decision on the copy it
    /// pushes out.
    #[test]
    fn a_decision_survives_a_redelivery_into_a_full_store() {
        let (old, new) = (engine("review", ""), engine("block", ""));
        let mut store = store(2);
        let now = Instant::now();
        let (a, b) = (msg("a", "代开发票"), msg("b", "代开发票"));
        store.keep(&a, &old.screen(&a), now);
        store.keep(&b, &old.screen(&b), now);
        store.decide("a", DecisionKind::Overturn, now);
        store.keep(&a, &old.screen(&a), now); // full: the first "a" goes
        let got = store.correct(&new, now);
        let ids: Vec<&str> = got.corrections.iter().map(|c| c.0.id.as_str()).collect();
        assert_eq!(ids, ["b"]);
        assert_eq!(got.withheld, 1);
    }

    /// A reviewer's decision stands over later rule changes: a cleared message is not
    /// corrected to block, a confirmed one not corrected to allow; the rest are.
    #[test]
    fn a_message_a_reviewer_decided_is_not_corrected() {
        let (old, new) = (engine("review", ""), engine("block", ", \"刷单\""));
        // (id, text, decision before the reload, corrected)
        let table: &[(&str, &str, Option<DecisionKind>, bool)] = &[
            ("cleared", "代开发票", Some(DecisionKind::Overturn), false),
            ("confirmed", "刷单赚钱", Some(DecisionKind::Confirm), false),
            ("undecided", "代开发票", None, true),
            (
                "unchanged",
                "今天天气不错",
                Some(DecisionKind::Confirm),
                false,
            ),
        ];
        let mut store = store(10);
        let now = Instant::now();
        for (id, text, decision, _) in table {
            let m = msg(id, text);
            store.keep(&m, &old.screen(&m), now);
            if let Some(d) = decision {
                store.decide(id, *d, now);
            }
        }
        store.decide("never-kept", DecisionKind::Confirm, now);
        // A redelivery after the decision: the new copy keeps it.
        let m = msg("cleared", "代开发票");
        store.keep(&m, &old.screen(&m), now);
        let got = store.correct(&new, now);
        let ids: Vec<&str> = got.corrections.iter().map(|c| c.0.id.as_str()).collect();
        let want: Vec<&str> = table.iter().filter(|t| t.3).map(|t| t.0).collect();
        assert_eq!(ids, want);
        assert_eq!(
            got.withheld, 2,
            "the two decided messages whose action changed"
        );
        // Withheld once: the decided messages now count as checked by this version.
        assert_eq!(store.correct(&new, now).withheld, 0);
    }

    #[test]
    fn the_store_keeps_at_most_count_messages_and_none_too_old() {
        let e = engine("review", "");
        let cfg = RecentMessagesConfig {
            count: 2,
            max_age_secs: 10,
        };
        let mut store = RecentMessages::new(&cfg).unwrap();
        let t0 = Instant::now();
        for (i, id) in ["x", "y", "z"].iter().enumerate() {
            let m = msg(id, "代开发票");
            store.keep(&m, &e.screen(&m), t0 + Duration::from_secs(i as u64 * 6));
        }
        let at = |s: u64| t0 + Duration::from_secs(s);
        assert_eq!(store.text("x", at(12)), None, "pushed out by the count");
        assert_eq!(store.text("y", at(12)), Some("代开发票"));
        assert_eq!(store.text("y", at(17)), None, "older than max_age");
        assert_eq!(store.text("z", at(17)), Some("代开发票"));
        assert!(
            RecentMessages::new(&RecentMessagesConfig::default()).is_none(),
            "off by default"
        );
    }

    #[test]
    fn a_text_is_found_by_id_in_its_newest_copy_until_that_copy_leaves() {
        let e = engine("review", "");
        let mut store = store(3);
        let now = Instant::now();
        // (id, text) kept in order; a redelivered id keeps its newest text.
        for (id, text) in [("a", "一"), ("b", "二"), ("a", "三"), ("c", "四")] {
            let m = msg(id, text);
            store.keep(&m, &e.screen(&m), now);
        }
        // The first "a" was pushed out, but the newer copy still answers for it.
        assert_eq!(store.text("a", now), Some("三"));
        assert_eq!(store.text("b", now), Some("二"));
        assert_eq!(store.text("c", now), Some("四"));
        for id in ["d", "e"] {
            let m = msg(id, "五");
            store.keep(&m, &e.screen(&m), now);
        }
        assert_eq!(store.text("b", now), None, "pushed out");
        assert_eq!(store.text("a", now), None, "its newest copy pushed out too");
        assert_eq!(store.text("e", now), Some("五"));
    }
}
