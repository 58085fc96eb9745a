//! Rules in production, end to end against a real Apache Kafka broker (tests/support): rules
//! reloaded under load by a file change and by SIGHUP, a broken pack rejected while the old set
//! keeps serving.

mod support;
mod text;

use qunguard::{Message, RuleSet};
use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;
use support::*;

const WAIT: Duration = Duration::from_secs(120);

fn pack(action: &str) -> String {
    format!("category = \"ads\"\naction = \"{action}\"\nwords = [\"代开发票\"]\n")
}

fn version_of(dir: &Path) -> String {
    qunguard::screen::rules_version(&RuleSet::load_dir(dir).unwrap()).to_string()
}

/// Messages `r0..rN` over 40 groups, every one with the term, so its action shows which rule
/// set screened it.
fn messages(from: usize, to: usize) -> Vec<Message> {
    (from..to)
        .map(|i| Message {
            id: format!("r{i}").into(),
            group_id: format!("g{}", i % 40).into(),
            sender_id: format!("u{}", i % 997).into(),
            ts: 1_764_000_000_000 + i as i64 * 10,
            // Numbered in Han, so no two are near-duplicates: five members posting one ad text
            // in a group is a flood, which this test is not about.
            text: format!("第{}条：代开发票", text::han(i as i64)),
        })
        .collect()
}

fn sighup(q: &Qunguard) {
    let pid = q.pid().to_string();
    let ok = std::process::Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .unwrap();
    assert!(ok.success());
}

/// Under a steady stream: a file change (no signal) swaps review→block; a broken pack sent with
/// SIGHUP is rejected, logged with file and key, counted, and the process keeps screening with
/// the set it had; SIGHUP after a fix swaps again. Every message gets exactly one verdict, each
/// carrying one of the versions, and per group (one input partition, in order) the versions
/// only ever move forward: a batch is never screened by a set older than one before it.
#[test]
fn rules_reload_under_load_without_losing_a_message() {
    let Some(brokers) = broker() else { return };
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules");
    std::fs::create_dir(&rules).unwrap();
    std::fs::write(rules.join("ads.toml"), pack("review")).unwrap();
    let v1 = version_of(&rules);
    let t = Topics::create(brokers, 3);
    let cfg = t.config(
        dir.path(),
        brokers,
        &unique("g"),
        "[pipeline]\nbatch_max_messages = 200\n",
    );
    let text = std::fs::read_to_string(&cfg).unwrap().replace(
        &repo().join("config/rules").display().to_string(),
        &rules.display().to_string(),
    );
    std::fs::write(
        &cfg,
        text.replace("[rules]\n", "[rules]\nreload_debounce_ms = 200\n"),
    )
    .unwrap();

    let verdicts = Reader::start(brokers, &t.verdicts);
    let q = Qunguard::start("reload", &cfg);
    q.wait_log("partitions assigned:", WAIT);
    // A producer keeps the stream going through every reload below.
    let n = 24_000;
    let feeder = {
        let (brokers, topic) = (brokers.to_string(), t.input.clone());
        std::thread::spawn(move || {
            for chunk in (0..n).step_by(1000) {
                produce_msgs(&brokers, &topic, &messages(chunk, chunk + 1000));
                std::thread::sleep(Duration::from_millis(150));
            }
        })
    };
    verdicts.wait_until("verdicts under v1", WAIT, |r| r.len() >= 1000);

    // 1. A file change alone reloads.
    std::fs::write(rules.join("ads.toml"), pack("block")).unwrap();
    let v2 = version_of(&rules);
    q.wait_log(&format!("rules reloaded: {v2} is live"), WAIT);
    // These packs have no `insult`, which the default watch.quarrel.categories counts: the
    // start-up check warned, and so does the watch once the reloaded set screens a batch.
    let dropped = q.wait_log("which watch.quarrel.categories counts as abuse", WAIT);
    assert!(
        dropped.contains(&v2) && dropped.contains("\"insult\""),
        "{dropped}"
    );

    // 2. A broken pack is rejected; the process lives on and keeps v2.
    let seen = verdicts.len();
    let bad_pack = "category = \"ads\"\naction = \"block\"\nwordz = [\"x\"]\n";
    std::fs::write(rules.join("ads.toml"), bad_pack).unwrap();
    sighup(&q);
    let rejected = q.wait_log("rules reload rejected", WAIT);
    assert!(
        rejected.contains("ads.toml") && rejected.contains("wordz") && rejected.contains(&v2),
        "{rejected}"
    );
    verdicts.wait_until("verdicts after the rejected reload", WAIT, |r| {
        r.len() >= seen + 1000
    });

    // 3. Fixed, and SIGHUP: v3 (a second pack) goes live.
    std::fs::write(rules.join("ads.toml"), pack("block")).unwrap();
    std::fs::write(
        rules.join("insult.toml"),
        "category = \"insult\"\naction = \"review\"\nwords = [\"傻逼\"]\n",
    )
    .unwrap();
    let v3 = version_of(&rules);
    sighup(&q);
    q.wait_log(&format!("rules reloaded: {v3} is live"), WAIT);
    feeder.join().unwrap();

    let all = verdicts.wait_until("a verdict per message", WAIT, |r| r.len() >= n);
    std::thread::sleep(Duration::from_secs(2));
    let all = if verdicts.len() > all.len() {
        verdicts.snapshot()
    } else {
        all
    };
    let counts = id_counts(&all);
    assert_eq!(counts.len(), n, "every message has a verdict");
    assert!(counts.values().all(|&c| c == 1), "exactly one each");

    let epoch: HashMap<&str, (usize, &str)> = [
        (v1.as_str(), (0, "review")),
        (v2.as_str(), (1, "block")),
        (v3.as_str(), (2, "block")),
    ]
    .into();
    let mut by_group: HashMap<String, Vec<(usize, usize)>> = HashMap::new();
    let mut per_epoch = [0usize; 3];
    for r in &all {
        let v = r.json();
        let version = v["rules_version"].as_str().unwrap();
        let &(e, action) = epoch
            .get(version)
            .unwrap_or_else(|| panic!("verdict under an unknown version {version}: {v}"));
        assert_eq!(v["action"], action, "screened as {version} says: {v}");
        per_epoch[e] += 1;
        let seq: usize = v["id"].as_str().unwrap()[1..].parse().unwrap();
        by_group
            .entry(v["group_id"].as_str().unwrap().to_string())
            .or_default()
            .push((seq, e));
    }
    assert!(
        per_epoch.iter().all(|&c| c > 0),
        "each version screened part of the stream: {per_epoch:?}"
    );
    for (g, mut seq) in by_group {
        seq.sort();
        assert!(
            seq.windows(2).all(|w| w[0].1 <= w[1].1),
            "{g}: an older rule set screened a later message"
        );
    }
    let ok = q.metric("qunguard_rules_reloads_total{outcome=\"ok\"}");
    let failed = q.metric("qunguard_rules_reloads_total{outcome=\"failed\"}");
    assert!(ok >= 2.0 && failed >= 1.0, "ok {ok}, failed {failed}");
    assert_eq!(
        q.metric(&format!("qunguard_rules_info{{version=\"{v3}\"}}")),
        1.0
    );
}

/// A config for `t` whose rules are `rules`, with `kafka` keys added to `[kafka]` and `extra`
/// tables appended.
fn config_with(
    t: &Topics,
    dir: &Path,
    brokers: &str,
    rules: &Path,
    kafka: &str,
    extra: &str,
) -> std::path::PathBuf {
    let cfg = t.config(dir, brokers, &unique("g"), extra);
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace(
            &repo().join("config/rules").display().to_string(),
            &rules.display().to_string(),
        )
        .replacen("[kafka]\n", &format!("[kafka]\n{kafka}\n"), 1);
    std::fs::write(&cfg, text).unwrap();
    cfg
}

/// After a reload, the recent messages are screened again: a correction for exactly those whose
/// action changed, with both screenings and both versions.
#[test]
fn corrections_after_a_reload_name_exactly_the_changed_messages() {
    let Some(brokers) = broker() else { return };
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules");
    std::fs::create_dir(&rules).unwrap();
    let ads = |action: &str, words: &str| {
        format!("category = \"ads\"\naction = \"{action}\"\nwords = [{words}]\n")
    };
    std::fs::write(rules.join("ads.toml"), ads("review", "\"代开发票\"")).unwrap();
    let v1 = version_of(&rules);
    let t = Topics::create(brokers, 2);
    let corrections_topic = format!("{}.corrections", t.input);
    let decisions = format!("{}.decisions", t.input);
    qunguard::internal::kafka::admin::create_topics(
        brokers,
        &[(&corrections_topic, 2), (&decisions, 2)],
    )
    .unwrap();
    let cfg = config_with(
        &t,
        dir.path(),
        brokers,
        &rules,
        &format!("corrections_topic = \"{corrections_topic}\"\ndecisions_topic = \"{decisions}\""),
        "[recent_messages]\ncount = 10000\nmax_age_secs = 600\n",
    );
    let verdicts = Reader::start(brokers, &t.verdicts);
    let corrections = Reader::start(brokers, &corrections_topic);
    let q = Qunguard::start("corrections", &cfg);
    // (text, changes when 刷单 joins the pack and the pack blocks)
    let kinds = [
        ("代开发票", true),
        ("刷单赚钱", true),
        ("今天天气不错", false),
    ];
    let msgs: Vec<Message> = (0..300)
        .map(|i| Message {
            id: format!("c{i}").into(),
            group_id: format!("g{}", i % 7).into(),
            sender_id: format!("u{i}").into(),
            ts: 1_764_000_000_000 + i as i64,
            text: kinds[i % 3].0.into(),
        })
        .collect();
    produce_msgs(brokers, &t.input, &msgs);
    verdicts.wait_until("verdicts under v1", WAIT, |r| r.len() >= msgs.len());
    // Reviewers decide two messages the reload would change: a flag cleared (c0 代开发票,
    // review) and a reported one confirmed (c1 刷单赚钱, allow). Their decisions stand: no
    // reload corrects them.
    let decided = ["c0", "c1"];
    let decision = |id: &str, group: &str, d: &str| {
        serde_json::to_vec(&serde_json::json!({"message_id": id, "group_id": group,
            "decision": d, "reviewer": "rev1", "ts": 1_764_000_100_000i64}))
        .unwrap()
    };
    let records = [
        decision("c0", "g0", "overturn"),
        decision("c1", "g1", "confirm"),
    ];
    let kv: Vec<Kv<'_>> = records
        .iter()
        .zip(["g0", "g1"])
        .map(|(r, g)| (Some(g.as_bytes()), Some(&r[..])))
        .collect();
    produce(brokers, &decisions, &kv);
    let read = "qunguard_messages_consumed_total{input=\"decision\"}";
    let deadline = std::time::Instant::now() + WAIT;
    while q.metric(read) < 2.0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the decisions were not read"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    std::fs::write(
        rules.join("ads.toml"),
        ads("block", "\"代开发票\", \"刷单\""),
    )
    .unwrap();
    let v2 = version_of(&rules);
    sighup(&q);
    q.wait_log(&format!("rules reloaded: {v2} is live"), WAIT);
    // No further input: the corrections go out anyway.
    let want: Vec<&str> = msgs
        .iter()
        .enumerate()
        .filter(|(i, m)| kinds[i % 3].1 && !decided.contains(&m.id.as_str()))
        .map(|(_, m)| m.id.as_str())
        .collect();
    corrections.wait_until("corrections", WAIT, |r| r.len() >= want.len());
    std::thread::sleep(Duration::from_secs(2));
    let got = corrections.snapshot();
    let mut ids: Vec<String> = got
        .iter()
        .map(|r| r.json()["id"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    let mut want_sorted: Vec<String> = want.iter().map(|s| s.to_string()).collect();
    want_sorted.sort();
    assert_eq!(
        ids, want_sorted,
        "exactly the messages whose action changed"
    );
    for r in &got {
        let c = r.json();
        let text = &msgs
            .iter()
            .find(|m| m.id == c["id"].as_str().unwrap())
            .unwrap()
            .text;
        let old = if text == "代开发票" {
            "review"
        } else {
            "allow"
        };
        assert_eq!(c["old"]["action"], old, "{c}");
        assert_eq!(c["new"]["action"], "block", "{c}");
        assert_eq!(c["new"]["categories"], serde_json::json!(["ads"]), "{c}");
        assert_eq!(c["old_rules_version"], v1.as_str());
        assert_eq!(c["new_rules_version"], v2.as_str());
        assert_eq!(r.key.as_deref(), c["group_id"].as_str().map(str::as_bytes));
        assert!(c["ts"].as_i64().unwrap() >= 1_764_000_000_000);
    }
    let series = "qunguard_corrections_total{new_action=\"block\",old_action=\"review\"}";
    assert_eq!(
        q.metric(series),
        99.0,
        "100 review → block, less the cleared one"
    );
    assert_eq!(q.metric("qunguard_corrections_withheld_total"), 2.0);

    // Back to review: the corrected messages are shown to reviewers too, with their text.
    let reviews = Reader::start(brokers, &t.review);
    std::fs::write(
        rules.join("ads.toml"),
        ads("review", "\"代开发票\", \"刷单\""),
    )
    .unwrap();
    let v3 = version_of(&rules);
    sighup(&q);
    q.wait_log(&format!("rules reloaded: {v3} is live"), WAIT);
    let corrected = |r: &[Record]| -> Vec<serde_json::Value> {
        r.iter()
            .map(Record::json)
            .filter(|j| j["source"] == "correction")
            .collect()
    };
    reviews.wait_until("review copies of the corrections", WAIT, |r| {
        corrected(r).len() >= want.len()
    });
    std::thread::sleep(Duration::from_secs(1));
    let copies = corrected(&reviews.snapshot());
    assert_eq!(copies.len(), want.len(), "one review copy per correction");
    for j in &copies {
        let m = msgs
            .iter()
            .find(|m| m.id == j["id"].as_str().unwrap())
            .unwrap();
        assert_eq!(j["action"], "review", "{j}");
        assert_eq!(j["rules_version"], v3.as_str(), "{j}");
        assert_eq!(j["text"], m.text.as_str(), "{j}");
    }
}

/// Reviewers' decisions from their topic: counted by decision, overturns by pack, each written
/// as a labelled example with the text from the recent-message store; a bad record goes to the
/// dead-letter topic with its reason.
#[test]
fn review_decisions_flow_back_as_labels_and_metrics() {
    let Some(brokers) = broker() else { return };
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules");
    std::fs::create_dir(&rules).unwrap();
    std::fs::write(
        rules.join("ads.toml"),
        "category = \"ads\"\naction = \"review\"\nwords = [\"代开发票\"]\n",
    )
    .unwrap();
    std::fs::write(
        rules.join("insult.toml"),
        "category = \"insult\"\naction = \"review\"\nwords = [\"傻逼\"]\n",
    )
    .unwrap();
    let v1 = version_of(&rules);
    let t = Topics::create(brokers, 1);
    let (decisions, labels) = (
        format!("{}.decisions", t.input),
        format!("{}.labels", t.input),
    );
    qunguard::internal::kafka::admin::create_topics(brokers, &[(&decisions, 1), (&labels, 1)])
        .unwrap();
    let cfg = config_with(
        &t,
        dir.path(),
        brokers,
        &rules,
        &format!("decisions_topic = \"{decisions}\"\nlabels_topic = \"{labels}\""),
        "[recent_messages]\ncount = 1000\n",
    );
    let verdicts = Reader::start(brokers, &t.verdicts);
    let label_reader = Reader::start(brokers, &labels);
    let dead = Reader::start(brokers, &t.dead);
    let q = Qunguard::start("decisions", &cfg);
    let texts = [
        ("d1", "你这个傻逼"),
        ("d2", "代开发票"),
        ("d3", "今天天气不错"),
    ];
    let msgs: Vec<Message> = texts
        .iter()
        .enumerate()
        .map(|(i, (id, text))| Message {
            id: (*id).into(),
            group_id: "g1".into(),
            sender_id: format!("u{i}").into(),
            ts: 1_764_000_000_000 + i as i64,
            text: (*text).into(),
        })
        .collect();
    produce_msgs(brokers, &t.input, &msgs);
    verdicts.wait_until("verdicts", WAIT, |r| r.len() >= msgs.len());
    let decision = |id: &str, d: &str, cat: Option<&str>| {
        let mut v = serde_json::json!({"message_id": id, "group_id": "g1", "decision": d,
            "reviewer": "rev1", "ts": 1_764_000_100_000i64});
        if let Some(c) = cat {
            v["category"] = c.into();
        }
        serde_json::to_vec(&v).unwrap()
    };
    let records = [
        decision("d1", "confirm", Some("insult")),
        decision("d2", "overturn", None),
        b"{\"message_id\": \"d3\", \"decision\": \"maybe\"}".to_vec(),
        decision("never-seen", "confirm", None),
    ];
    let kv: Vec<Kv<'_>> = records
        .iter()
        .map(|r| (Some(&b"g1"[..]), Some(&r[..])))
        .collect();
    produce(brokers, &decisions, &kv);

    let got = label_reader.wait_until("labels", WAIT, |r| r.len() >= 2);
    let d = dead.wait_until("the bad decision", WAIT, |r| !r.is_empty());
    std::thread::sleep(Duration::from_secs(2));
    let mut got: Vec<serde_json::Value> = got.iter().map(Record::json).collect();
    got.sort_by_key(|v| v["label"].as_i64());
    assert_eq!(
        got,
        vec![
            serde_json::json!({"text": "代开发票", "label": 0, "category": "ads",
                "decided_at": 1_764_000_100_000i64, "message_id": "d2", "group_id": "g1",
                "reviewer": "rev1", "rules_version": v1}),
            serde_json::json!({"text": "你这个傻逼", "label": 1, "category": "insult",
                "decided_at": 1_764_000_100_000i64, "message_id": "d1", "group_id": "g1",
                "reviewer": "rev1", "rules_version": v1}),
        ]
    );
    assert_eq!(label_reader.len(), 2, "no label without a kept text");
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].headers["qunguard.reason"], "decision_invalid");
    assert_eq!(d[0].value, records[2]);
    let m = |s: &str| q.metric(s);
    assert_eq!(
        m("qunguard_review_decisions_total{decision=\"confirm\"}"),
        2.0
    );
    assert_eq!(
        m("qunguard_review_decisions_total{decision=\"overturn\"}"),
        1.0
    );
    assert_eq!(m("qunguard_rule_overturns_total{pack=\"ads\"}"), 1.0);
    assert_eq!(
        m("qunguard_review_decisions_unknown_total"),
        1.0,
        "the decision on a message this instance never saw"
    );
    assert_eq!(
        m("qunguard_messages_consumed_total{input=\"decision\"}"),
        4.0
    );
    assert_eq!(
        m("qunguard_dead_letters_total{reason=\"decision_invalid\"}"),
        1.0
    );
}
