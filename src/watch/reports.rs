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
    /// Who reported (the key on the rewards topic).
    pub reporter_id: String,
    /// The report's own id.
    pub report_id: String,
    /// The reported message.
    pub message_id: String,
    /// The reported message's group.
    pub group_id: String,
    /// Points credited.
    pub points: u32,
    /// The reported message's verdict action.
    pub action: Action,
    /// The reported message's verdict categories.
    pub categories: Vec<String>,
    /// The reporter's reputation after this report.
    pub reputation: f64,
    /// The report's event time (ms).
    pub ts: i64,
}

/// A request for focused human review from reports (review topic, `"source": "report"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReviewRequest {
    /// Always `report`: reviewers tell these from screen-driven reviews.
    pub source: String,
    /// The reported message.
    pub id: String,
    /// The reported message's group.
    pub group_id: String,
    /// Sender and text, when this instance still remembers the message (it keeps recent
    /// allowed messages, up to `watch.limits.allowed_messages`, text cut at 512 bytes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sender_id: Option<String>,
    /// The remembered text (see `sender_id`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// `allow` when qunguard screened it and found nothing; `unknown` when it is not
    /// remembered (too old, or screened elsewhere).
    pub screened: String,
    /// Distinct reporters so far.
    pub reporters: usize,
    /// Their summed reputation (review is requested at `watch.reports.review_weight`).
    pub weight: f64,
    /// The reporters' reasons, up to eight distinct.
    pub reasons: Vec<String>,
    /// Event time of the report that made the request (ms).
    pub ts: i64,
}

/// What happened to a report, the `outcome` label of `qunguard_reports_total`.
pub const REPORT_OUTCOMES: &[&str] = &[
    "verified",
    "review_requested",
    "in_review",
    "pending",
    "duplicate",
    "decided",
    "own",
    "wrong_group",
];

/// Kept small: there may be hundreds of thousands.
struct Flagged {
    action: Action,
    categories: Box<[Arc<str>]>,
    /// The member (sender in group) and the event time of the flag, for a reviewer's decision
    /// to confirm or take back the pressure it added (the points of `action`).
    member: u64,
    /// The sender alone (a report from them is on their own message, whatever group it names).
    sender: u64,
    ts: i64,
    /// The rules (live hits) that flagged it, for counting overturns per pack. Borrowed from
    /// the engine's interned ids: one small box per flagged message.
    rules: Box<[std::borrow::Cow<'static, str>]>,
    /// A reviewer's decision so far: confirmed (`Some(true)`) or overturned (`Some(false)`,
    /// and then it no longer counts as flagged).
    decided: Option<bool>,
    /// Reporters already credited for this message (allocated on the first report).
    // Boxed: 8 bytes inline instead of a Vec's 24, in an entry there are 500k of.
    #[allow(clippy::box_collection)]
    credited: Option<Box<Vec<u64>>>,
}

/// The most recent allowed messages, kept for report-driven review: a ring of entries and a
/// ring of bytes, written once per message with no allocation and no map update (most
/// messages are allowed, and reports are rare, so a report pays for a linear search instead).
struct Recent {
    entries: Vec<RecentEntry>,
    cap: usize,
    next: usize,
    bytes: Vec<u8>,
    /// Total bytes ever written; an entry is valid while its bytes were not overwritten.
    written: u64,
    /// Entries ever stored.
    stored: u64,
}

#[derive(Clone, Copy, Default)]
struct RecentEntry {
    id: u64,
    /// Position in the byte stream (`written` when it was stored), sender and text lengths.
    at: u64,
    sender_len: u32,
    text_len: u32,
}

impl Recent {
    fn new(entries: usize) -> Recent {
        Recent {
            entries: Vec::with_capacity(entries.min(1 << 20)),
            next: 0,
            // Room for every entry's text at the typical ~100 bytes (the cap is 512).
            bytes: vec![0; (entries * 160).clamp(4096, 1 << 30)],
            written: 0,
            stored: 0,
            cap: entries.max(1),
        }
    }

    fn put(&mut self, id: u64, sender: &str, text: &str) {
        let at = self.written;
        let e = RecentEntry {
            id,
            at,
            sender_len: sender.len() as u32,
            text_len: text.len() as u32,
        };
        for part in [sender.as_bytes(), text.as_bytes()] {
            let n = self.bytes.len();
            for chunk in part.chunks(n) {
                let start = (self.written % n as u64) as usize;
                let first = chunk.len().min(n - start);
                self.bytes[start..start + first].copy_from_slice(&chunk[..first]);
                self.bytes[..chunk.len() - first].copy_from_slice(&chunk[first..]);
                self.written += chunk.len() as u64;
            }
        }
        self.stored += 1;
        if self.entries.len() < self.cap {
            self.entries.push(e);
        } else {
            self.entries[self.next] = e;
        }
        self.next = (self.next + 1) % self.cap;
    }

    fn read(&self, at: u64, len: usize) -> Vec<u8> {
        let n = self.bytes.len();
        (0..len)
            .map(|k| self.bytes[((at + k as u64) % n as u64) as usize])
            .collect()
    }

    /// Sender and text of the newest entry for `id`, if its bytes are still there.
    fn get(&self, id: u64) -> Option<(String, String)> {
        let e = self
            .entries
            .iter()
            .filter(|e| e.id == id)
            .max_by_key(|e| e.at)?;
        let len = (e.sender_len + e.text_len) as u64;
        if self.written - e.at > self.bytes.len() as u64 || len > self.bytes.len() as u64 {
            return None;
        }
        let sender = self.read(e.at, e.sender_len as usize);
        let text = self.read(e.at + u64::from(e.sender_len), e.text_len as usize);
        Some((
            String::from_utf8_lossy(&sender).into_owned(),
            String::from_utf8_lossy(&text).into_owned(),
        ))
    }
}

struct Reported {
    reporters: Vec<u64>,
    weight: f64,
    reasons: Vec<String>,
    sent: bool,
    /// A reviewer decided on it.
    decided: bool,
}

/// Which joins a watch will be asked for: what it remembers of each verdict serves only these,
/// so a watch that gets neither (`qunguard scan`) keeps nothing per message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Joins {
    /// Member reports ([`crate::watch::Watch::report`]): flagged messages' action and
    /// categories, and recent allowed messages' sender and text.
    pub reports: bool,
    /// Reviewers' decisions ([`crate::watch::Watch::decide`]): flagged messages' member, time
    /// and the rules that flagged them.
    pub decisions: bool,
}

impl Default for Joins {
    /// Both: a watch that is not told otherwise remembers all that either join could use.
    fn default() -> Joins {
        Joins {
            reports: true,
            decisions: true,
        }
    }
}

pub struct Reports {
    cfg: ReportsConfig,
    joins: Joins,
    flagged: Bounded<Flagged>,
    allowed: Recent,
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
            joins: Joins::default(),
            flagged: Bounded::new(limits.flagged_messages),
            allowed: Recent::new(limits.allowed_messages),
            reported: Bounded::new(limits.reporters),
            reputation: Bounded::new(limits.reporters),
        }
    }

    pub fn sizes(&self) -> [(&'static str, usize, u64); 4] {
        [
            ("flagged_messages", self.flagged.len(), self.flagged.evicted),
            (
                "allowed_messages",
                self.allowed.entries.len(),
                self.allowed.stored - self.allowed.entries.len() as u64,
            ),
            (
                "reported_messages",
                self.reported.len(),
                self.reported.evicted,
            ),
            ("reporters", self.reputation.len(), self.reputation.evicted),
        ]
    }

    /// Keeps only what `joins` can use from now on. The allowed-message ring is only read by
    /// reports (a decision on an allowed message needs a report on it first), so without
    /// reports it shrinks to nothing.
    pub fn set_joins(&mut self, joins: Joins, limits: &super::config::LimitsConfig) {
        // Set once, before the first message: a later call would drop what is remembered.
        debug_assert!(
            self.allowed.stored == 0 && self.flagged.len() == 0,
            "joins are chosen before the watch observes anything"
        );
        self.joins = joins;
        self.allowed = Recent::new(if joins.reports {
            limits.allowed_messages
        } else {
            0
        });
    }

    /// Remembers a verdict for later reports and decisions; `member` is the sender-in-group key.
    /// Skipped for what no join will ask about (see [`Joins`]): most of the watch's per-message
    /// allocation and copying is here.
    #[inline]
    pub fn remember(&mut self, v: &Verdict, text: &str, member: u64) {
        let Joins { reports, decisions } = self.joins;
        if v.action > Action::Allow {
            if reports || decisions {
                self.remember_flagged(v, member, decisions);
            }
        } else if reports {
            let mut end = text.len().min(512);
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            self.allowed.put(key_of(&v.id), &v.sender_id, &text[..end]);
        }
    }

    /// `with_rules`: keep the rules that flagged it (only a reviewer's decision reads them).
    fn remember_flagged(&mut self, v: &Verdict, member: u64, with_rules: bool) {
        let rules: Box<[_]> = if with_rules {
            let mut rules: Vec<_> = v
                .hits
                .iter()
                .filter(|h| !h.shadow)
                .map(|h| h.rule.clone())
                .collect();
            rules.sort();
            rules.dedup();
            rules.into()
        } else {
            Box::default()
        };
        self.flagged.put(
            key_of(&v.id),
            Flagged {
                action: v.action,
                categories: v.categories.as_slice().into(),
                member,
                sender: key_of(&v.sender_id),
                ts: v.ts,
                rules,
                decided: None,
                credited: None,
            },
        );
    }

    /// Joins a report with what this instance screened; returns its outcome.
    pub fn report(&mut self, r: &Report, out: &mut Vec<ReportOut>) -> &'static str {
        let cfg = &self.cfg;
        let mk = key_of(&r.message_id);
        let reporter = key_of(&r.reporter_id);
        let rep = self.reputation.entry(reporter, || cfg.initial_reputation);
        if let Some(f) = self.flagged.get_mut(mk) {
            // A reviewer cleared it: there is nothing left to verify or to send again (it
            // would reach reviewers as a message nobody knows).
            if f.decided == Some(false) {
                return "decided";
            }
            // Its own sender reporting it: no reward and no reputation for having been
            // caught (else a spammer would earn both on every flagged ad).
            if f.sender == reporter {
                return "own";
            }
            // Naming another group than the message's: nobody there sent it. Nothing to verify
            // or to send (the message is flagged where it was sent), and nothing changes.
            if f.member != super::state::pair(f.sender, key_of(&r.group_id)) {
                return "wrong_group";
            }
            let credited = f.credited.get_or_insert_with(Default::default);
            // Past 64 credited reporters a message has been reported enough: further reports
            // earn nothing, like repeats (else the 65th could report it again and again).
            if credited.contains(&reporter) || credited.len() >= 64 {
                return "duplicate";
            }
            credited.push(reporter);
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
        let p = self.reported.entry(mk, || Reported {
            reporters: Vec::new(),
            weight: 0.0,
            reasons: Vec::new(),
            sent: false,
            decided: false,
        });
        // A reviewer already decided on it (it was sent to review by reports): nothing to ask.
        if p.decided {
            return "decided";
        }
        // Checked before the reputation moves: a report read twice (a redelivery) costs its
        // reporter nothing more.
        if p.reporters.contains(&reporter) || p.reporters.len() >= 64 {
            return "duplicate";
        }
        p.reporters.push(reporter);
        let weight = *rep;
        // Unverified, also when this instance does not know the message: else one member
        // could send reviewers made-up message ids without end.
        *rep = (*rep * cfg.unverified_factor).max(cfg.min_reputation);
        p.weight += weight;
        if p.reasons.len() < 8 && !r.reason.is_empty() && !p.reasons.contains(&r.reason) {
            p.reasons.push(r.reason.clone());
        }
        if p.sent {
            return "in_review"; // another reporter already sent it; their reasons are added
        }
        if p.weight + 1e-9 < cfg.review_weight {
            return "pending";
        }
        p.sent = true;
        let known = self.allowed.get(mk);
        out.push(ReportOut::Review(ReviewRequest {
            source: "report".into(),
            id: r.message_id.clone(),
            group_id: r.group_id.clone(),
            sender_id: known.as_ref().map(|a| a.0.clone()),
            text: known.as_ref().map(|a| a.1.clone()),
            screened: if known.is_some() { "allow" } else { "unknown" }.into(),
            reporters: p.reporters.len(),
            weight: p.weight,
            reasons: p.reasons.clone(),
            ts: r.ts,
        }));
        "review_requested"
    }
}

/// The pressure points a verdict with `action` added (as the watch counts them).
fn flag_points(action: Action, pc: &super::config::PressureConfig) -> f64 {
    match action {
        Action::Allow => 0.0,
        Action::Review => pc.review_points,
        Action::Block => pc.block_points,
    }
}

/// What a reviewer's decision does to the reports side (the watch applies `pressure`).
pub struct Decided {
    /// What the decision did.
    pub outcome: super::DecisionResult,
    /// The member whose pressure changes, and by how much (negative: taken back).
    pub pressure: Option<(u64, f64)>,
    /// The message's event time (ms) when the watch flagged it: what it added has decayed
    /// since. `None` for a message it allowed.
    pub flagged_ts: Option<i64>,
    /// The rules that flagged it.
    pub rules: Vec<std::borrow::Cow<'static, str>>,
    /// Its categories when flagged.
    pub categories: Vec<Arc<str>>,
}

impl Reports {
    /// Applies a reviewer's decision on message `message_id` to reporters' reputation and the
    /// flag; returns what the member's pressure must do (a verified violation counts as a
    /// `block`).
    pub fn decide(
        &mut self,
        message_id: &str,
        group_id: &str,
        confirm: bool,
        pc: &super::config::PressureConfig,
    ) -> Decided {
        let confirm_points = pc.block_points;
        let cfg = &self.cfg;
        let mk = key_of(message_id);
        let mut out = Decided {
            outcome: super::DecisionResult::Unknown,
            pressure: None,
            flagged_ts: None,
            rules: Vec::new(),
            categories: Vec::new(),
        };
        if let Some(f) = self.flagged.get_mut(mk) {
            if f.decided.is_some() {
                out.outcome = super::DecisionResult::Duplicate;
                return out;
            }
            f.decided = Some(confirm);
            out.flagged_ts = Some(f.ts);
            out.rules = f.rules.to_vec();
            out.categories = f.categories.to_vec();
            let credited: Vec<u64> = f.credited.as_deref().cloned().unwrap_or_default();
            if confirm {
                // A verified violation counts as a block, whatever the rules said.
                let more = confirm_points - flag_points(f.action, pc);
                if more > 0.0 {
                    out.pressure = Some((f.member, more));
                }
                for r in credited {
                    let rep = self.reputation.entry(r, || cfg.initial_reputation);
                    *rep = (*rep + cfg.verified_gain).min(1.0);
                }
                out.outcome = super::DecisionResult::Confirmed;
            } else {
                out.pressure = Some((f.member, -flag_points(f.action, pc)));
                // The reporters were credited for a flag that did not hold: the credit goes,
                // and the report counts as one on an allowed message.
                for r in credited {
                    let rep = self.reputation.entry(r, || cfg.initial_reputation);
                    *rep = ((*rep - cfg.verified_gain) * cfg.unverified_factor)
                        .max(cfg.min_reputation);
                }
                out.outcome = super::DecisionResult::Overturned;
            }
            return out;
        }
        // Reported but allowed: the decision settles what the reporters said.
        if let Some(p) = self.reported.get_mut(mk) {
            if p.decided {
                out.outcome = super::DecisionResult::Duplicate;
                return out;
            }
            p.decided = true;
            let reporters = p.reporters.clone();
            if confirm {
                for r in reporters {
                    let rep = self.reputation.entry(r, || cfg.initial_reputation);
                    *rep = (*rep + cfg.verified_gain).min(1.0);
                }
                let sender = self.allowed.get(mk).map(|(sender, _)| sender);
                out.pressure = sender.map(|s| {
                    (
                        super::state::pair(key_of(&s), key_of(group_id)),
                        confirm_points,
                    )
                });
                out.outcome = super::DecisionResult::Confirmed;
            } else {
                for r in reporters {
                    let rep = self.reputation.entry(r, || cfg.initial_reputation);
                    *rep = (*rep * cfg.unverified_factor).max(cfg.min_reputation);
                }
                out.outcome = super::DecisionResult::Overturned;
            }
        }
        out
    }

    /// A reporter's reputation (for tests and tools).
    pub fn reputation(&mut self, reporter_id: &str) -> Option<f64> {
        self.reputation.get_mut(key_of(reporter_id)).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recent_ring_keeps_the_newest_and_forgets_overwritten_bytes() {
        let mut r = Recent::new(3);
        let n = r.bytes.len();
        r.put(1, "u1", "第一条");
        r.put(2, "u2", "second");
        assert_eq!(r.get(1), Some(("u1".into(), "第一条".into())));
        r.put(1, "u9", "again"); // the same id again: the newest wins
        assert_eq!(r.get(1), Some(("u9".into(), "again".into())));
        r.put(3, "u3", "x"); // three entries: reuses the first entry's slot
        assert_eq!(r.get(2), Some(("u2".into(), "second".into())));
        // Bytes wrap around the ring; an entry whose bytes were overwritten is gone.
        let long = "长".repeat(n / 6);
        r.put(4, "u4", &long);
        assert_eq!(r.get(2), None, "its entry slot was reused");
        assert_eq!(r.get(4), Some(("u4".into(), long.clone())));
        r.put(5, "u5", &long);
        r.put(6, "u6", &long);
        assert_eq!(r.get(4), None, "overwritten");
        assert_eq!(r.get(6), Some(("u6".into(), long)));
        assert_eq!(r.get(42), None);
    }
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
            suppressed: vec![],
            scores: Default::default(),
        }
    }

    #[test]
    fn remembers_only_what_the_configured_joins_can_ask_for() {
        // (reports, decisions) → (flag kept, its rules kept, allowed text kept)
        let table = [
            ((true, true), (true, true, true)),
            ((true, false), (true, false, true)),
            ((false, true), (true, true, false)),
            ((false, false), (false, false, false)),
        ];
        for ((reports, decisions), want) in table {
            let limits = Default::default();
            let mut r = Reports::new(Default::default(), &limits);
            r.set_joins(Joins { reports, decisions }, &limits);
            let mut bad = verdict("bad", Action::Block);
            bad.hits.push(crate::model::Hit {
                rule: "ads:代开发票".into(),
                category: "ads".into(),
                action: Action::Block,
                kind: crate::model::MatchKind::Term,
                start: 0,
                end: 12,
                text: "代开发票".into(),
                shadow: false,
                capped: None,
            });
            r.remember(&bad, "代开发票", u1());
            r.remember(&verdict("ok", Action::Allow), "今天开会", u1());
            let flag = r.flagged.get_mut(key_of("bad"));
            let got = (
                flag.is_some(),
                flag.is_some_and(|f| f.rules.len() == 1),
                r.allowed.get(key_of("ok")).is_some(),
            );
            assert_eq!(got, want, "reports {reports}, decisions {decisions}");
        }
    }

    /// The member key of [`verdict`]'s sender in its group.
    fn u1() -> u64 {
        super::super::state::pair(key_of("u1"), key_of("g1"))
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

    /// What a report does to its reporter's reputation: a repeat (a redelivered record) costs
    /// nothing more; past 64 credited
    /// reporters a message earns no more rewards; a report on a message a reviewer cleared is
    /// not sent to review again.
    #[test]
    fn a_repeated_report_costs_its_reporter_nothing_more() {
        let cfg = ReportsConfig {
            review_weight: 5.0,
            ..Default::default()
        };
        let mut r = Reports::new(cfg, &Default::default());
        r.set_joins(
            Joins {
                reports: true,
                decisions: true,
            },
            &Default::default(),
        );
        r.remember(&verdict("bad", Action::Block), "代开发票", u1());
        r.remember(&verdict("cleared", Action::Review), "代开发票", u1());
        r.remember(&verdict("ok", Action::Allow), "今天开会", u1());
        r.decide("cleared", "g1", false, &Default::default());
        let mut out = Vec::new();
        // (reporter, message, outcome, reputation after)
        let steps = [
            ("uv", "ok", "pending", 0.7),
            ("uv", "ok", "duplicate", 0.7), // the same report again: no second cut
            ("ue", "bad", "verified", 1.0),
            ("uc", "cleared", "decided", 1.0), // a reviewer cleared it
        ];
        for (who, msg, want, reputation) in steps {
            assert_eq!(
                r.report(&report(who, msg), &mut out),
                want,
                "{who} on {msg}"
            );
            assert_eq!(r.reputation(who), Some(reputation), "{who} after {msg}");
        }
        assert!(
            !out.iter().any(|o| matches!(o, ReportOut::Review(_))),
            "nothing reached the review weight"
        );
        // Reported while allowed, then decided by a reviewer: later reports ask nothing more.
        r.decide("ok", "g1", false, &Default::default());
        assert_eq!(r.report(&report("ux", "ok"), &mut out), "decided");
        assert_eq!(r.reputation("ux"), Some(1.0));
        // 64 reporters are credited; the 65th gets no reward however often it reports.
        let rewards = |out: &[ReportOut]| {
            out.iter()
                .filter(|o| matches!(o, ReportOut::Reward(_)))
                .count()
        };
        out.clear();
        for i in 0..63 {
            r.report(&report(&format!("q{i}"), "bad"), &mut out);
        }
        assert_eq!(rewards(&out), 63, "ue and these 63: 64 credited");
        for _ in 0..3 {
            assert_eq!(r.report(&report("q65", "bad"), &mut out), "duplicate");
        }
        assert_eq!(rewards(&out), 63);
    }

    /// A sender reporting their own flagged message earns no reward and no reputation.
    #[test]
    fn a_report_on_ones_own_flagged_message_earns_nothing() {
        let mut r = Reports::new(ReportsConfig::default(), &Default::default());
        let spammer = super::super::state::pair(key_of("spammer"), key_of("g1"));
        let ad = Verdict {
            sender_id: "spammer".into(),
            ..verdict("ad", Action::Block)
        };
        r.remember(&ad, "代开发票", spammer);
        r.reputation.entry(key_of("spammer"), || 0.5);
        let mut out = Vec::new();
        assert_eq!(r.report(&report("spammer", "ad"), &mut out), "own");
        assert!(out.is_empty(), "{}", out.len());
        assert_eq!(r.reputation("spammer"), Some(0.5));
        // Naming another group changes nothing.
        let elsewhere = Report {
            group_id: "g-other".into(),
            ..report("spammer", "ad")
        };
        assert_eq!(r.report(&elsewhere, &mut out), "own");
        assert!(out.is_empty());
        // Another member naming another group: nothing changes.
        let wrong_group = Report {
            group_id: "g-other".into(),
            ..report("stranger", "ad")
        };
        assert_eq!(r.report(&wrong_group, &mut out), "wrong_group");
        assert!(out.is_empty());
        let initial = ReportsConfig::default().initial_reputation;
        assert_eq!(
            r.reputation("stranger"),
            Some(initial),
            "nothing changes for its reporter"
        );
        // Another member's report on it is verified as ever.
        assert_eq!(r.report(&report("neighbour", "ad"), &mut out), "verified");
        // A cleared message stays decided, whatever group a report names.
        r.decide("ad", "g1", false, &Default::default());
        out.clear();
        assert_eq!(r.report(&wrong_group, &mut out), "decided");
        assert!(out.is_empty());
    }

    #[test]
    fn reports_verify_credit_and_lower_reputation_when_unverified() {
        let cfg = ReportsConfig {
            review_weight: 0.8,
            ..Default::default()
        };
        let mut r = Reports::new(cfg, &Default::default());
        r.remember(&verdict("bad", Action::Block), "代开发票", u1());
        r.remember(&verdict("ok", Action::Allow), "今天开会", u1());
        let mut out = Vec::new();
        // (reporter, message, outcome)
        let steps = [
            ("alice", "bad", "verified"),
            ("alice", "bad", "duplicate"),
            ("bob", "ok", "review_requested"), // reputation 1.0 ≥ 0.8
            ("carol", "ok", "in_review"),      // already sent to review
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
