//! Shadow rules: a shadow pack's or regex's hits are written on the verdict with
//! `"shadow": true`, and change nothing else — not the action, not the categories, not the
//! heuristics (reasons, pressure, removal advice, alerts, scorecards, reports).

use qunguard::batch::{Input, Outcome, Screener};
use qunguard::watch::{Watch, WatchConfig};
use qunguard::{Action, Engine, Pack, RuleSet};
use std::path::Path;

const ADS: &str = r#"
category = "ads"
action = "review"
words = ["代开发票"]

[[regex]]
id = "ads.qq"
pattern = "qq[1-9][0-9]{4,11}"

[[regex]]
id = "ads.phone_new"
pattern = "1[3-9][0-9]{9}"
action = "block"
shadow = true
"#;

const INSULT_NEW: &str = r#"
category = "insult"
action = "block"
shadow = true
words = ["傻逼", "今天"]

[[regex]]
id = "insult_new.live"
pattern = "cnm"
shadow = false
"#;

fn engine(packs: &[(&str, &str)]) -> Engine {
    let packs = packs
        .iter()
        .map(|(name, src)| Pack::parse(Path::new(&format!("rules/{name}.toml")), src).unwrap())
        .collect();
    Engine::compile(&RuleSet::new(packs).unwrap()).unwrap()
}

fn msg(id: &str, text: &str) -> qunguard::Message {
    qunguard::Message {
        id: id.into(),
        group_id: "g1".into(),
        sender_id: "u1".into(),
        ts: 1_764_000_000_000,
        text: text.into(),
    }
}

/// (text, action, categories, live hit rules, shadow hit rules)
#[test]
fn shadow_hits_are_recorded_but_never_change_action_or_categories() {
    let e = engine(&[("ads", ADS), ("insult_new", INSULT_NEW)]);
    type Case = (
        &'static str,
        Action,
        &'static [&'static str],
        &'static [&'static str],
        &'static [&'static str],
    );
    let table: &[Case] = &[
        ("你这个傻逼", Action::Allow, &[], &[], &["insult_new:傻逼"]),
        (
            "代开发票，傻逼",
            Action::Review,
            &["ads"],
            &["ads:代开发票"],
            &["insult_new:傻逼"],
        ),
        (
            "电话13812345678",
            Action::Allow,
            &[],
            &[],
            &["ads.phone_new"],
        ),
        (
            "加qq12345678 电话13812345678",
            Action::Review,
            &["ads"],
            &["ads.qq"],
            &["ads.phone_new"],
        ),
        // A regex may leave its shadow pack: `shadow = false` makes it live.
        ("cnm", Action::Block, &["insult"], &["insult_new.live"], &[]),
        (
            "今天天气不错",
            Action::Allow,
            &[],
            &[],
            &["insult_new:今天"],
        ),
        ("平常的一句话", Action::Allow, &[], &[], &[]),
    ];
    for (text, action, cats, live, shadow) in table {
        let v = e.screen(&msg("m", text));
        assert_eq!(v.action, *action, "{text}: action");
        let got_cats: Vec<&str> = v.categories.iter().map(|c| &**c).collect();
        assert_eq!(got_cats, *cats, "{text}: categories");
        let rules = |s: bool| -> Vec<&str> {
            v.hits
                .iter()
                .filter(|h| h.shadow == s)
                .map(|h| &*h.rule)
                .collect()
        };
        assert_eq!(rules(false), *live, "{text}: live hits");
        assert_eq!(rules(true), *shadow, "{text}: shadow hits");
        let json = serde_json::to_value(&v).unwrap();
        for h in json["hits"].as_array().unwrap() {
            let is_shadow = shadow.contains(&h["rule"].as_str().unwrap());
            // Live hits keep their documented shape: no `shadow` key at all.
            assert_eq!(h.get("shadow").is_some(), is_shadow, "{text}: {h}");
        }
        for h in v.hits.iter().filter(|h| h.shadow) {
            let pack = e.pack_of(&h.rule);
            assert!(
                pack == Some("insult_new") || pack == Some("ads"),
                "{}: {pack:?}",
                h.rule
            );
        }
    }
    assert_eq!(e.pack_of("ads.phone_new"), Some("ads"));
    assert_eq!(e.pack_of("insult_new:傻逼"), Some("insult_new"));
    assert_eq!(e.pack_of("gone:x"), None);
}

/// The same stream through the batch core with the heuristics, with and without a shadow pack
/// that hits a large share of it: every output is the same except the shadow hits themselves
/// and the rules version.
#[test]
fn a_shadow_pack_changes_no_verdict_or_heuristic_record_on_a_stream() {
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/rules");
    let base = RuleSet::load_dir(&shipped).unwrap();
    // Its one live regex never matches here, so the pack is all shadow on this stream.
    let insult = INSULT_NEW.replace("\"cnm\"", "\"zzzzqqq\"");
    let mut with_shadow = base.clone();
    with_shadow
        .packs
        .push(Pack::parse(Path::new("rules/insult_new.toml"), &insult).unwrap());
    // Few groups and members, so rates, pressure and removal advice come into play.
    let synth = qunguard::internal::synth::SynthConfig {
        groups: 5,
        senders: 30,
        gap_ms: 200,
        ..Default::default()
    };
    let stream: Vec<Vec<u8>> = qunguard::internal::synth::Synth::new(synth)
        .take(6000)
        .enumerate()
        .map(|(i, mut m)| {
            // Every third message also says a shadow term, so shadow hits are everywhere.
            if i % 3 == 0 {
                m.text.push_str(if i % 2 == 0 { "傻逼" } else { "今天" });
            }
            serde_json::to_vec(&m).unwrap()
        })
        .collect();
    let run = |rules: &RuleSet| {
        let e = Engine::compile(rules).unwrap();
        let mut watch = Watch::new(WatchConfig::default()).with_clock(|| i64::MAX / 4);
        let screener = Screener::new(&e, Some(watch.fingerprinter()), 1 << 16);
        let (mut verdicts, mut records, mut shadow_hits) = (Vec::new(), Vec::new(), 0);
        for chunk in stream.chunks(500) {
            let watched = screener
                .screen(chunk, |b| Input::Message(b))
                .watch(Some(&mut watch), usize::MAX);
            for o in watched.outcomes() {
                let Outcome::Verdict { verdict, .. } = o else {
                    panic!("all inputs are messages")
                };
                let mut v = verdict.clone();
                shadow_hits += v.hits.iter().filter(|h| h.shadow).count();
                v.hits.retain(|h| !h.shadow);
                v.rules_version = Default::default();
                verdicts.push(serde_json::to_string(&v).unwrap());
            }
            records.extend(
                watched
                    .records()
                    .iter()
                    .map(|r| serde_json::to_string(r).unwrap()),
            );
        }
        (verdicts, records, shadow_hits, watch.stats().clone())
    };
    let (v0, r0, s0, st0) = run(&base);
    let (v1, r1, s1, st1) = run(&with_shadow);
    assert!(
        s1 >= s0 + 2000,
        "the shadow pack hits every third message: {s0} -> {s1}"
    );
    // The stream does exercise the heuristics, so "unchanged" is not "nothing happened".
    assert!(
        !r0.is_empty() && st0.reasons.values().sum::<u64>() > 0 && st0.recommendations > 0,
        "{st0:?}"
    );
    assert_eq!(v0.len(), v1.len());
    for (a, b) in v0.iter().zip(&v1) {
        assert_eq!(a, b);
    }
    assert_eq!(r0, r1, "alerts and scorecards");
    assert_eq!(st0, st1, "heuristics' counts");
}
