//! Member reports (举报) joined with verdicts, reporter reputation, and the reward ledger.

use super::config::ReportsConfig;
use super::state::{Bounded, key_of};
use crate::model::{Action, Verdict};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// A member report, as read from the reports topic (unknown fields ignored).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    /// Report id, unique per platform.
    pub report_id: String,
    /// The member who reports.
    pub reporter_id: String,
    /// The reported message's id.
    pub message_id: String,
    /// The group the message was posted in.
    pub group_id: String,
    /// Why, in the reporter's words (or a platform code).
    #[serde(default)]
    pub reason: String,
    /// Event time of the report (ms since the epoch).
    pub ts: i64,
}

/// A credit to a reporter whose report qunguard verified (rewards topic).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reward {
    pub reporter_id: String,
    pub report_id: String,
    pub message_id: String,
    pub group_id: String,
    /// Points credited.
    pub points: u32,
    /// The reported message's verdict action and categories.
    pub action: Action,
    pub categories: Vec<String>,
    /// The reporter's reputation after this report.
    pub reputation: f64,
    pub ts: i64,
}

/// A request for focused human review from reports (review topic, `"source": "report"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReviewRequest {
    /// Always `report`: reviewers tell these from screen-driven reviews.
    pub source: String,
    /// The reported message.
    pub id: String,
    pub group_id: String,
    /// Sender and text, when this instance still remembers the message (it keeps recent
    /// allowed messages, up to `watch.limits.allowed_messages`, text cut at 512 bytes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sender_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// `allow` when qunguard screened it and found nothing; `unknown` when it is not
    /// remembered (too old, or screened elsewhere).
    pub screened: String,
    /// Distinct reporters so far, their summed reputation, and their reasons.
    pub reporters: usize,
    pub weight: f64,
    pub reasons: Vec<String>,
    pub ts: i64,
}

/// What happened to a report, the `outcome` label of `qunguard_reports_total`.
pub const REPORT_OUTCOMES: &[&str] = &["verified", "review_requested", "pending", "duplicate"];

/// Kept small: there may be hundreds of thousands.
struct Flagged {
    action: Action,
    categories: Box<[Arc<str>]>,
    /// Reporters already credited for this message (allocated on the first report).
    credited: Option<Box<Vec<u64>>>,
}

/// Sender and text in one allocation: there is one for each recent allowed message.
struct Allowed {
    /// `sender_id` then the text.
    both: Box<str>,
    sender_len: u32,
}

impl Allowed {
    fn sender_id(&self) -> &str {
        &self.both[..self.sender_len as usize]
    }
    fn text(&self) -> &str {
        &self.both[self.sender_len as usize..]
    }
}

struct Reported {
    reporters: Vec<u64>,
    weight: f64,
    reasons: Vec<String>,
    sent: bool,
}

pub struct Reports {
    cfg: ReportsConfig,
    flagged: Bounded<Flagged>,
    allowed: Bounded<Allowed>,
    reported: Bounded<Reported>,
    reputation: Bounded<f64>,
}

/// What [`Reports::report`] produced.
pub enum ReportOut {
    Reward(Reward),
    Review(ReviewRequest),
}

impl Reports {
    pub fn new(cfg: ReportsConfig, limits: &super::config::LimitsConfig) -> Reports {
        Reports {
            cfg,
            flagged: Bounded::new(limits.flagged_messages),
            allowed: Bounded::new(limits.allowed_messages),
            reported: Bounded::new(limits.reporters),
            reputation: Bounded::new(limits.reporters),
        }
    }

    pub fn sizes(&self) -> [(&'static str, usize, u64); 4] {
        [
            ("flagged_messages", self.flagged.len(), self.flagged.evicted),
            ("allowed_messages", self.allowed.len(), self.allowed.evicted),
            (
                "reported_messages",
                self.reported.len(),
                self.reported.evicted,
            ),
            ("reporters", self.reputation.len(), self.reputation.evicted),
        ]
    }

    /// Remembers a verdict for later reports.
    pub fn remember(&mut self, v: &Verdict, text: &str) {
        let k = key_of(&v.id);
        if v.action > Action::Allow {
            self.flagged.put(
                k,
                Flagged {
                    action: v.action,
                    categories: v.categories.as_slice().into(),
                    credited: None,
                },
            );
        } else {
            let mut end = text.len().min(512);
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            let mut both = String::with_capacity(v.sender_id.len() + end);
            both.push_str(&v.sender_id);
            both.push_str(&text[..end]);
            self.allowed.put(
                k,
                Allowed {
                    both: both.into_boxed_str(),
                    sender_len: v.sender_id.len() as u32,
                },
            );
        }
    }

    /// Joins a report with what this instance screened; returns its outcome.
    pub fn report(&mut self, r: &Report, out: &mut Vec<ReportOut>) -> &'static str {
        let cfg = &self.cfg;
        let mk = key_of(&r.message_id);
        let reporter = key_of(&r.reporter_id);
        let rep = self.reputation.entry(reporter, || cfg.initial_reputation);
        if let Some(f) = self.flagged.get_mut(mk) {
            let credited = f.credited.get_or_insert_with(Default::default);
            if credited.contains(&reporter) {
                return "duplicate";
            }
            if credited.len() < 64 {
                credited.push(reporter);
            }
            *rep = (*rep + cfg.verified_gain).min(1.0);
            out.push(ReportOut::Reward(Reward {
                reporter_id: r.reporter_id.clone(),
                report_id: r.report_id.clone(),
                message_id: r.message_id.clone(),
                group_id: r.group_id.clone(),
                points: cfg.reward_points,
                action: f.action,
                categories: f.categories.iter().map(|c| c.to_string()).collect(),
                reputation: *rep,
                ts: r.ts,
            }));
            return "verified";
        }
        let weight = *rep;
        *rep = (*rep * cfg.unverified_factor).max(cfg.min_reputation);
        let p = self.reported.entry(mk, || Reported {
            reporters: Vec::new(),
            weight: 0.0,
            reasons: Vec::new(),
            sent: false,
        });
        if p.reporters.contains(&reporter) {
            return "duplicate";
        }
        if p.reporters.len() < 64 {
            p.reporters.push(reporter);
        }
        p.weight += weight;
        if p.reasons.len() < 8 && !r.reason.is_empty() && !p.reasons.contains(&r.reason) {
            p.reasons.push(r.reason.clone());
        }
        if p.sent || p.weight + 1e-9 < cfg.review_weight {
            return "pending";
        }
        p.sent = true;
        let known = self.allowed.peek_mut(mk);
        out.push(ReportOut::Review(ReviewRequest {
            source: "report".into(),
            id: r.message_id.clone(),
            group_id: r.group_id.clone(),
            sender_id: known.as_ref().map(|a| a.sender_id().to_string()),
            text: known.as_ref().map(|a| a.text().to_string()),
            screened: if known.is_some() { "allow" } else { "unknown" }.into(),
            reporters: p.reporters.len(),
            weight: p.weight,
            reasons: p.reasons.clone(),
            ts: r.ts,
        }));
        "review_requested"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Verdict;

    fn verdict(id: &str, action: Action) -> Verdict {
        Verdict {
            id: id.into(),
            group_id: "g1".into(),
            sender_id: "u1".into(),
            ts: 0,
            action,
            categories: if action == Action::Allow {
                vec![]
            } else {
                vec!["ads".into()]
            },
            hits: vec![],
            hits_truncated: false,
            reasons: vec![],
            recommend: None,
            rules_version: "v".into(),
        }
    }

    fn report(reporter: &str, msg: &str) -> Report {
        Report {
            report_id: format!("{reporter}-{msg}"),
            reporter_id: reporter.into(),
            message_id: msg.into(),
            group_id: "g1".into(),
            reason: "spam".into(),
            ts: 1,
        }
    }

    #[test]
    fn reports_verify_credit_and_lower_reputation_when_unverified() {
        let cfg = ReportsConfig {
            review_weight: 0.8,
            ..Default::default()
        };
        let mut r = Reports::new(cfg, &Default::default());
        r.remember(&verdict("bad", Action::Block), "代开发票");
        r.remember(&verdict("ok", Action::Allow), "今天开会");
        let mut out = Vec::new();
        // (reporter, message, outcome)
        let steps = [
            ("alice", "bad", "verified"),
            ("alice", "bad", "duplicate"),
            ("bob", "ok", "review_requested"), // reputation 1.0 ≥ 0.8
            ("carol", "ok", "pending"),        // already sent to review
            ("bob", "x1", "pending"),          // bob is now 0.7 < 0.8 alone
            ("dave", "x1", "review_requested"), // 0.7 + 1.0
        ];
        for (who, msg, want) in steps {
            assert_eq!(
                r.report(&report(who, msg), &mut out),
                want,
                "{who} on {msg}"
            );
        }
        let rewards: Vec<_> = out
            .iter()
            .filter_map(|o| match o {
                ReportOut::Reward(w) => Some(w),
                _ => None,
            })
            .collect();
        assert_eq!(rewards.len(), 1);
        assert_eq!(
            (rewards[0].reporter_id.as_str(), rewards[0].points),
            ("alice", 1)
        );
        let reviews: Vec<_> = out
            .iter()
            .filter_map(|o| match o {
                ReportOut::Review(w) => Some(w),
                _ => None,
            })
            .collect();
        assert_eq!(reviews.len(), 2);
        assert_eq!(
            (reviews[0].screened.as_str(), reviews[0].text.as_deref()),
            ("allow", Some("今天开会"))
        );
        assert_eq!(
            (reviews[1].screened.as_str(), reviews[1].reporters),
            ("unknown", 2)
        );
    }
}
