//! Reviewers' decisions flowing back: a confirmed flag counts as a verified violation (toward
//! the member's pressure and the reporters' reputation), an overturned one takes back the
//! pressure it added and the credit its reporters got.

use super::Watch;
use super::state::decay;
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::sync::Arc;

/// What a reviewer decided about a flagged or reported message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DecisionKind {
    /// The flag holds: the message violates the rules.
    Confirm,
    /// The flag was wrong: the message is fine.
    Overturn,
}

impl DecisionKind {
    /// The wire name, also the `decision` label of `qunguard_review_decisions_total`.
    pub fn as_str(self) -> &'static str {
        match self {
            DecisionKind::Confirm => "confirm",
            DecisionKind::Overturn => "overturn",
        }
    }
}

/// A reviewer's decision, as read from the decisions topic (unknown fields ignored).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    /// The message decided on.
    pub message_id: String,
    /// Its group.
    pub group_id: String,
    /// `confirm` or `overturn`.
    pub decision: DecisionKind,
    /// Who decided.
    pub reviewer: String,
    /// When (ms since the epoch).
    pub ts: i64,
    /// The category the reviewer judged (for a confirm: the violation; defaults to the
    /// flag's first category in labelled examples).
    #[serde(default)]
    pub category: Option<String>,
}

/// What a decision did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DecisionResult {
    /// The flag (or the reports) held: counted as a verified violation.
    Confirmed,
    /// The flag (or the reports) did not hold: its pressure and credit are taken back.
    Overturned,
    /// The message was decided before; nothing changes.
    Duplicate,
    /// This instance neither flagged nor saw reports on the message (too old, or screened
    /// by another instance); nothing changes.
    Unknown,
}

impl DecisionResult {
    /// The lowercase name used in logs and tests.
    pub fn as_str(self) -> &'static str {
        match self {
            DecisionResult::Confirmed => "confirmed",
            DecisionResult::Overturned => "overturned",
            DecisionResult::Duplicate => "duplicate",
            DecisionResult::Unknown => "unknown",
        }
    }
}

/// What became of a decision in the watch.
#[derive(Debug, Clone, PartialEq)]
pub struct DecisionOutcome {
    /// What the decision did.
    pub outcome: DecisionResult,
    /// The rules that flagged the message (live hits), when this instance flagged it.
    pub rules: Vec<Cow<'static, str>>,
    /// Its categories when flagged.
    pub categories: Vec<Arc<str>>,
}

impl Watch {
    /// Applies a reviewer's decision: reporters' reputation, the flag, and the member's
    /// pressure. Decisions do not move event time (reviewers decide later than the stream).
    pub fn decide(&mut self, d: &Decision) -> DecisionOutcome {
        let confirm = d.decision == DecisionKind::Confirm;
        let pc = &self.cfg.pressure;
        let r = self.reports.decide(&d.message_id, &d.group_id, confirm, pc);
        if let Some((member, delta)) = r.pressure {
            // A member with no violation before this one has no pressure entry yet.
            if delta > 0.0
                && self.pressure.peek_mut(member).is_none()
                && let Some(last) = self.pre.as_mut().and_then(|p| p.member_last(member))
            {
                self.pressure.put(member, super::Pressure::new(last));
            }
            if let Some(mem) = self.pressure.peek_mut(member) {
                // The member's score is kept as of `mem.last`: what the flag added then has
                // decayed from the message's time to that point.
                let half_life = pc.half_life_secs as f64 * 1000.0;
                let kept = r
                    .flagged_ts
                    .map_or(1.0, |ts| decay((mem.last - ts).max(0), half_life));
                let p = (f64::from(mem.pressure) + delta * kept).max(0.0);
                mem.pressure = if p < 0.01 { 0.0 } else { p as f32 };
                if p < pc.remove_threshold {
                    mem.over = false;
                }
            }
        }
        *self.stats.decisions.entry(r.outcome).or_default() += 1;
        DecisionOutcome {
            outcome: r.outcome,
            rules: r.rules,
            categories: r.categories,
        }
    }

    /// The member's pressure score in a group, as of their last message (tools and tests).
    pub fn pressure(&mut self, sender_id: &str, group_id: &str) -> Option<f64> {
        use super::state::{key_of, pair};
        let (sender, group) = (key_of(sender_id), key_of(group_id));
        match self.pressure.peek_mut(pair(sender, group)) {
            Some(p) => Some(f64::from(p.pressure)),
            None => self.pre_mut().member_last(pair(sender, group)).map(|_| 0.0),
        }
    }

    /// A reporter's reputation (tools and tests).
    pub fn reputation(&mut self, reporter_id: &str) -> Option<f64> {
        self.reports.reputation(reporter_id)
    }
}
