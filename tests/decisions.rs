//! Reviewers' decisions in the watch: what confirm and overturn do to a member's pressure and
//! to reporters' reputation, step by step (README "Reviewers' decisions").

use qunguard::watch::{Decision, DecisionKind, ReportsConfig, Watch, WatchConfig};
use qunguard::{Engine, Message, RuleSet};
use std::path::Path;

const T0: i64 = 1_764_115_200_000;

enum Step {
    /// (message id, sender, text)
    Post(&'static str, &'static str, &'static str),
    /// (reporter, message id)
    Report(&'static str, &'static str),
    /// (message id, confirm?, outcome)
    Decide(&'static str, bool, &'static str),
}

#[test]
fn confirm_and_overturn_change_pressure_and_reputation_as_documented() {
    use Step::*;
    let rules = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/rules");
    let engine = Engine::compile(&RuleSet::load_dir(&rules).unwrap()).unwrap();
    let cfg = WatchConfig {
        reports: ReportsConfig {
            initial_reputation: 0.5,
            ..Default::default()
        },
        ..Default::default()
    };
    let mut w = Watch::new(cfg).with_clock(|| T0 + 86_400_000);
    // (step, then: u1's pressure, u2's pressure, alice, bob, carol reputation); None: not known
    type Want = (
        Option<f64>,
        Option<f64>,
        Option<f64>,
        Option<f64>,
        Option<f64>,
    );
    let steps: Vec<(Step, Want)> = vec![
        // A review (insult) adds review_points = 1.
        (
            Post("m1", "u1", "你就是个傻逼"),
            (Some(1.0), None, None, None, None),
        ),
        // A report on a flagged message is verified: +verified_gain.
        (
            Report("alice", "m1"),
            (Some(1.0), None, Some(0.6), None, None),
        ),
        // Confirmed: it counts as a block (3 points), the reporter gains again.
        (
            Decide("m1", true, "confirmed"),
            (Some(3.0), None, Some(0.7), None, None),
        ),
        (
            Decide("m1", true, "duplicate"),
            (Some(3.0), None, Some(0.7), None, None),
        ),
        (
            Post("m2", "u1", "脑残吧你"),
            (Some(4.0), None, Some(0.7), None, None),
        ),
        (
            Report("bob", "m2"),
            (Some(4.0), None, Some(0.7), Some(0.6), None),
        ),
        // Overturned: its point is taken back; bob loses the gain and is marked down.
        (
            Decide("m2", false, "overturned"),
            (Some(3.0), None, Some(0.7), Some(0.35), None),
        ),
        (
            Decide("m2", true, "duplicate"),
            (Some(3.0), None, Some(0.7), Some(0.35), None),
        ),
        // A report on an allowed message: review requested (0.5 ≥ review_weight), carol ×0.7.
        (
            Post("m3", "u2", "今天天气不错"),
            (Some(3.0), Some(0.0), Some(0.7), Some(0.35), None),
        ),
        (
            Report("carol", "m3"),
            (Some(3.0), Some(0.0), Some(0.7), Some(0.35), Some(0.35)),
        ),
        // Confirmed: a verified violation for u2 (3 points), carol's credit back up.
        (
            Decide("m3", true, "confirmed"),
            (Some(3.0), Some(3.0), Some(0.7), Some(0.35), Some(0.45)),
        ),
        (
            Decide("nobody-knows", false, "unknown"),
            (Some(3.0), Some(3.0), Some(0.7), Some(0.35), Some(0.45)),
        ),
    ];
    for (i, (step, want)) in steps.into_iter().enumerate() {
        let ts = T0 + i as i64; // a millisecond apart: decay is negligible
        match step {
            Post(id, sender, text) => {
                let m = Message {
                    id: id.into(),
                    group_id: "g1".into(),
                    sender_id: sender.into(),
                    ts,
                    text: text.into(),
                };
                let batch = std::slice::from_ref(&m);
                let (mut v, sigs) = w.screen(&engine, batch);
                w.observe(batch, &sigs, &mut v, &mut Vec::new());
            }
            Report(who, id) => {
                let r = qunguard::watch::Report {
                    report_id: format!("{who}-{id}"),
                    reporter_id: who.into(),
                    message_id: id.into(),
                    group_id: "g1".into(),
                    reason: String::new(),
                    ts,
                };
                w.report(r, &mut Vec::new());
            }
            Decide(id, confirm, outcome) => {
                let d = Decision {
                    message_id: id.into(),
                    group_id: "g1".into(),
                    decision: if confirm {
                        DecisionKind::Confirm
                    } else {
                        DecisionKind::Overturn
                    },
                    reviewer: "r1".into(),
                    ts,
                    category: None,
                };
                let got = w.decide(&d);
                assert_eq!(got.outcome, outcome, "step {i}: {id}");
                if outcome == "overturned" {
                    assert!(
                        got.rules.iter().any(|r| r.starts_with("insult:")),
                        "{:?}",
                        got.rules
                    );
                }
            }
        }
        let got = (
            w.pressure("u1", "g1"),
            w.pressure("u2", "g1"),
            w.reputation("alice"),
            w.reputation("bob"),
            w.reputation("carol"),
        );
        let close = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) => (a - b).abs() < 1e-3,
            (a, b) => a == b,
        };
        assert!(
            close(got.0, want.0)
                && close(got.1, want.1)
                && close(got.2, want.2)
                && close(got.3, want.3)
                && close(got.4, want.4),
            "step {i}: got {got:?}, want {want:?}"
        );
    }
    assert_eq!(w.stats().decisions["confirmed"], 2);
    assert_eq!(w.stats().decisions["overturned"], 1);
}
