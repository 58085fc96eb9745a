//! Heuristics, alerts, reports and scorecards on crafted streams, through the library API and
//! through `qunguard scan` (the same code the pipeline runs; `tests/kafka.rs` checks it there).
//! Every stream is deterministic: event time comes from the messages' `ts`.

mod bin;
mod text;

use bin::{qunguard, succeeded};
use qunguard::watch::{Output, Report, Watch, WatchConfig};
use qunguard::{Action, Engine, Message, RuleSet, Verdict};
use std::collections::{BTreeSet, HashMap};
use std::sync::LazyLock;
use text::han;

static ENGINE: LazyLock<Engine> = LazyLock::new(|| {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/rules");
    Engine::compile(&RuleSet::load_dir(&dir).unwrap()).unwrap()
});

/// 2025-11-26 08:00 Beijing time.
const T0: i64 = 1_764_115_200_000;
const SEC: i64 = 1000;

/// Abuse the shipped `insult` pack catches (each a review on its own).
const INSULTS: [&str; 8] = [
    "你就是个傻逼",
    "脑残吧你",
    "滚蛋，人渣",
    "你才是智障",
    "王八蛋闭嘴",
    "神经病",
    "废物一个",
    "狗东西",
];
const MIN: i64 = 60 * SEC;

fn msg(
    id: impl Into<qunguard::Id>,
    group: &str,
    sender: impl Into<qunguard::Id>,
    ts: i64,
    text: &str,
) -> Message {
    Message {
        id: id.into(),
        group_id: group.into(),
        sender_id: sender.into(),
        ts,
        text: text.into(),
    }
}

/// Screens `msgs` in batches of `batch` and runs the watch over them, as the pipeline does.
fn run_with(w: &mut Watch, msgs: &[Message], batch: usize) -> (Vec<Verdict>, Vec<Output>) {
    let mut verdicts = Vec::new();
    let mut out = Vec::new();
    for chunk in msgs.chunks(batch) {
        let (mut vs, sigs) = w.screen(&ENGINE, chunk);
        w.observe(chunk, &sigs, &mut vs, &mut out);
        verdicts.extend(vs);
    }
    (verdicts, out)
}

fn run(msgs: &[Message]) -> (Vec<Verdict>, Vec<Output>) {
    run_with(&mut Watch::new(WatchConfig::default()), msgs, 500)
}

fn alerts(out: &[Output], kind: &str) -> Vec<qunguard::watch::Alert> {
    out.iter()
        .filter_map(|o| match o {
            Output::Alert(a) if a.kind == kind => Some(a.clone()),
            _ => None,
        })
        .collect()
}

fn has_reason(v: &Verdict, code: &str) -> bool {
    v.reasons.iter().any(|r| r.reason == code)
}

/// Ordinary chatter in `groups` groups, one message per group every `every` ms, from many
/// senders, from `from` for `span` ms: it moves event time along like a live city would.
fn chatter(prefix: &str, groups: usize, from: i64, span: i64, every: i64) -> Vec<Message> {
    let texts = [
        "今天天气不错",
        "晚上一起吃饭吗",
        "孩子的作业写完了没有",
        "明天几点开会",
        "这个周末去公园走走",
    ];
    let mut v = Vec::new();
    let mut t = from;
    let mut i = 0;
    while t < from + span {
        for g in 0..groups {
            v.push(msg(
                format!("{prefix}{i}"),
                &format!("{prefix}-g{g}"),
                format!("{prefix}-u{}", i % 997),
                t,
                texts[i % texts.len()],
            ));
            i += 1;
        }
        t += every;
    }
    v
}

#[test]
fn a_quarrel_gives_one_merged_alert_then_its_resolution_and_incident_mode_in_between() {
    let g = "g-quarrel";
    let insults = INSULTS;
    let mut msgs = chatter("c", 3, T0, 30 * MIN, 20 * SEC);
    // Four members trade insults for two minutes, from minute 5.
    for (i, text) in insults.iter().enumerate() {
        msgs.push(msg(
            format!("q{i}"),
            g,
            format!("u{}", i % 4),
            T0 + 5 * MIN + i as i64 * 15 * SEC,
            text,
        ));
    }
    // One insult later, in the quiet period, is not a quarrel on its own.
    msgs.push(msg("late", g, "u9", T0 + 20 * MIN, "你是白痴"));
    msgs.sort_by_key(|m| m.ts);
    let (verdicts, out) = run(&msgs);

    let q = alerts(&out, "quarrel");
    let ids: BTreeSet<_> = q.iter().map(|a| a.alert_id.as_str()).collect();
    assert_eq!(ids.len(), 1, "one merged quarrel alert: {q:#?}");
    let statuses: Vec<_> = q.iter().map(|a| a.status.name()).collect();
    assert_eq!(statuses.first(), Some(&"open"));
    assert_eq!(statuses.last(), Some(&"resolved"));
    assert_eq!(statuses.iter().filter(|s| **s == "open").count(), 1);
    assert_eq!(statuses.iter().filter(|s| **s == "resolved").count(), 1);
    let open = &q[0];
    assert_eq!(open.group_id.as_deref(), Some(g));
    assert!(open.members.unwrap() >= 3 && open.samples.iter().all(|s| s.starts_with('q')));
    assert!(q.last().unwrap().peak >= 8.0, "{:?}", q.last());

    // Incident mode: abuse after the alert opened is blocked, before it only reviewed.
    let by_id: HashMap<_, _> = verdicts.iter().map(|v| (v.id.as_str(), v)).collect();
    assert_eq!(by_id["q0"].action, Action::Review);
    assert!(!has_reason(by_id["q0"], "incident"));
    assert_eq!(by_id["q7"].action, Action::Block, "{:?}", by_id["q7"]);
    assert!(has_reason(by_id["q7"], "incident"));
    // From the message that makes it a quarrel (the fifth abusive one, q4) on, as README says.
    assert!(!has_reason(by_id["q3"], "incident"), "{:?}", by_id["q3"]);
    assert!(has_reason(by_id["q4"], "incident"), "{:?}", by_id["q4"]);
    assert_eq!(open.samples.last().map(String::as_str), Some("q4"));
    // After the resolution the group is back to normal.
    assert_eq!(by_id["late"].action, Action::Review);
    assert!(
        !has_reason(by_id["late"], "incident"),
        "{:?}",
        by_id["late"]
    );
    // Ordinary chatter raised nothing.
    assert!(
        verdicts
            .iter()
            .filter(|v| v.id.starts_with('c'))
            .all(|v| v.action == Action::Allow && v.reasons.is_empty())
    );
}

#[test]
fn a_flood_across_50_groups_is_caught_while_1000_members_replying_shoutdao_are_not() {
    let mut msgs = chatter("c", 2, T0, 40 * MIN, 30 * SEC);
    // 1,000 members of one group acknowledge a notice within ten minutes.
    let replies = [
        "收到",
        "收到！",
        "好的",
        "收到，谢谢",
        "谢谢群主",
        "👍收到",
        "1",
        "好的 好的",
    ];
    for i in 0..1000 {
        msgs.push(msg(
            format!("r{i}"),
            "g-notice",
            format!("member{i}"),
            T0 + i as i64 * 600,
            replies[i % replies.len()],
        ));
    }
    // Five accounts post the same lure into ten groups each (50 groups), with evasion variants.
    let lure = [
        "加我微信领取免费红包名额有限先到先得",
        "加我 微信 领取免费红包，名额有限 先到先得！！",
        "加我微信領取免費紅包名額有限先到先得😀",
    ];
    for i in 0..50 {
        msgs.push(msg(
            format!("f{i}"),
            &format!("g-city-{i}"),
            format!("spammer{}", i / 10),
            T0 + MIN + i as i64 * 7 * SEC,
            lure[i % lure.len()],
        ));
    }
    // Fifty members each forward the same notice to their own group: news spreading, no flood.
    for i in 0..50 {
        msgs.push(msg(
            format!("n{i}"),
            &format!("g-home-{i}"),
            format!("resident{i}"),
            T0 + 2 * MIN + i as i64 * 5 * SEC,
            "明天上午九点起小区停水检修，请提前储水",
        ));
    }
    msgs.sort_by_key(|m| m.ts);
    let (verdicts, out) = run(&msgs);
    let by_id: HashMap<_, _> = verdicts.iter().map(|v| (v.id.as_str(), v)).collect();
    assert!((0..50).all(|i| by_id[format!("n{i}").as_str()].reasons.is_empty()));

    // Every account's fifth group and later is flagged as a duplicate flood.
    for i in 0..50 {
        let v = by_id[format!("f{i}").as_str()];
        assert_eq!(
            has_reason(v, "duplicate_flood"),
            i % 10 >= 4,
            "f{i}: {:?}",
            v.reasons
        );
        if i % 10 >= 4 {
            assert!(v.action >= Action::Review);
        }
    }
    let floods = alerts(&out, "flood");
    assert_eq!(
        floods.iter().filter(|a| a.status == "open").count(),
        1,
        "{floods:#?}"
    );
    assert!(floods.iter().map(|a| a.observed as usize).max().unwrap() >= 40);
    assert!(floods[0].groups.iter().all(|g| g.starts_with("g-city-")));
    assert_eq!(
        floods.last().unwrap().status,
        "resolved",
        "the flood ends once it goes quiet"
    );
    // Every group it reached is listed, also those reached between two records.
    let listed: BTreeSet<_> = floods.last().unwrap().groups.iter().cloned().collect();
    assert_eq!(listed.len(), 50, "{listed:?}");

    // The replies: not one flood reason, not one alert about them.
    let replies: Vec<_> = verdicts.iter().filter(|v| v.id.starts_with('r')).collect();
    assert_eq!(replies.len(), 1000);
    assert!(replies.iter().all(|v| !has_reason(v, "duplicate_flood")));
    assert!(
        replies.iter().all(|v| v.action == Action::Allow),
        "{:?}",
        replies.iter().find(|v| v.action != Action::Allow)
    );
    assert!(out.iter().all(|o| !matches!(o, Output::Alert(a) if a.group_id.as_deref() == Some("g-notice") && a.kind != "message_spike")));
}

#[test]
fn many_accounts_posting_one_lure_into_one_group_is_a_flood_but_an_echo_is_not() {
    let mut msgs = Vec::new();
    for i in 0..8 {
        let ts = T0 + i as i64 * 10 * SEC;
        msgs.push(msg(
            format!("s{i}"),
            "g1",
            format!("u{i}"),
            ts,
            "好消息，详情看 https://t.cn/abc 名额有限",
        ));
        msgs.push(msg(
            format!("e{i}"),
            "g2",
            format!("u{i}"),
            ts,
            "祝大家新年快乐万事如意",
        ));
    }
    let (verdicts, _) = run(&msgs);
    let flagged = |p: char| -> Vec<bool> {
        verdicts
            .iter()
            .filter(|v| v.id.starts_with(p))
            .map(|v| has_reason(v, "duplicate_flood"))
            .collect()
    };
    // group_min_senders = 5: the fifth account on; the greetings never.
    assert_eq!(
        flagged('s'),
        [false, false, false, false, true, true, true, true]
    );
    assert_eq!(flagged('e'), [false; 8]);
}

#[test]
fn a_spike_over_an_adaptive_baseline_fires_while_a_steady_busy_group_does_not() {
    let mut msgs = Vec::new();
    let texts = [
        "早",
        "今天天气不错",
        "晚上一起吃饭吗",
        "明天几点开会",
        "好的",
    ];
    let mut n = 0;
    let mut push = |group: &str, ts: i64, msgs: &mut Vec<Message>| {
        msgs.push(msg(
            format!("{group}-{n}"),
            group,
            format!("{group}-u{}", n % 5000),
            ts,
            texts[n % texts.len()],
        ));
        n += 1;
    };
    for minute in 0..40 {
        let base = T0 + minute * MIN;
        // A busy group: 300–340 messages every minute, all along.
        for k in 0..(300 + (minute % 5) * 10) {
            push("g-busy", base + k * 170, &mut msgs);
        }
        // A quiet group: 4 a minute, then 150 in minute 25 (something happened).
        let quiet = if minute == 25 { 150 } else { 4 };
        for k in 0..quiet {
            push("g-quiet", base + k * (MIN / quiet), &mut msgs);
        }
    }
    msgs.sort_by_key(|m| m.ts);
    let (_, out) = run(&msgs);
    let spikes = alerts(&out, "message_spike");
    let keys: BTreeSet<_> = spikes.iter().map(|a| a.key.as_str()).collect();
    assert_eq!(keys, BTreeSet::from(["g-quiet"]), "{spikes:#?}");
    let open = spikes.iter().find(|a| a.status == "open").unwrap();
    assert!(open.started_ts >= T0 + 25 * MIN && open.started_ts < T0 + 26 * MIN);
    assert!(
        open.baseline < 10.0 && open.observed >= open.threshold,
        "{open:?}"
    );
    let resolved = spikes
        .iter()
        .find(|a| a.status == "resolved")
        .expect("resolves when the rate is back");
    assert!(resolved.ts < T0 + 28 * MIN, "{resolved:?}");
    assert!(resolved.peak >= 100.0);
}

#[test]
fn pressure_recommends_removal_with_evidence_and_decays() {
    let mut msgs = Vec::new();
    // A member posts drug ads (block, 3 points each) an hour apart.
    for i in 0..4 {
        msgs.push(msg(
            format!("p{i}"),
            "g1",
            "dealer",
            T0 + i * 3600 * SEC,
            "出冰毒，量大从优",
        ));
    }
    // Three days later (12 half-lives) one more: the old pressure has decayed away.
    msgs.push(msg(
        "p-later",
        "g1",
        "dealer",
        T0 + 72 * 3600 * SEC,
        "出冰毒，量大从优",
    ));
    // The same member in another group starts from zero there.
    msgs.push(msg(
        "p-other",
        "g2",
        "dealer",
        T0 + 3 * 3600 * SEC + SEC,
        "出冰毒，量大从优",
    ));
    let (verdicts, _) = run(&msgs);
    let by_id: HashMap<_, _> = verdicts.iter().map(|v| (v.id.as_str(), v)).collect();
    // Points: 3, 3·0.89+3, … reach 10 at the fourth message.
    for (id, recommended) in [
        ("p0", false),
        ("p1", false),
        ("p2", false),
        ("p3", true),
        ("p-later", false),
        ("p-other", false),
    ] {
        assert_eq!(
            by_id[id].recommend.is_some(),
            recommended,
            "{id}: {:?}",
            by_id[id].recommend
        );
    }
    let r = by_id["p3"].recommend.as_ref().unwrap();
    assert_eq!(r.action, "remove_member");
    assert_eq!(r.evidence, ["p0", "p1", "p2", "p3"]);
    assert!(r.pressure >= 10.0);
}

#[test]
fn rate_link_and_mention_floods_are_reasons_on_the_verdict() {
    let mut msgs = Vec::new();
    // 20 messages in 20 seconds from one member: the burst of 10 and the refill (one every
    // 3 s) carry the first 14, then rate_limit for most of the rest.
    for i in 0..20 {
        msgs.push(msg(
            format!("r{i}"),
            "g1",
            "chatty",
            T0 + i * SEC,
            &format!("第{i}条"),
        ));
    }
    // Links: one a minute from one member; the fifth goes over 4 (decayed) links.
    for i in 0..6 {
        msgs.push(msg(
            format!("l{i}"),
            "g2",
            "linker",
            T0 + i * 20 * SEC,
            &format!("看看这个 https://example.com/p/{i}"),
        ));
    }
    msgs.push(msg(
        "m1",
        "g3",
        "pinger",
        T0,
        "@张三 @李四 @王五 @赵六 @钱七 @孙八 @周九 @吴十 @郑十一 开会了",
    ));
    msgs.push(msg("m2", "g3", "calm", T0, "@张三 开会了"));
    msgs.sort_by_key(|m| m.ts);
    let (verdicts, _) = run(&msgs);
    let by_id: HashMap<_, _> = verdicts.iter().map(|v| (v.id.as_str(), v)).collect();
    let rate: Vec<bool> = (0..20)
        .map(|i| has_reason(by_id[format!("r{i}").as_str()], "rate_limit"))
        .collect();
    assert_eq!(rate[..15], [vec![false; 14], vec![true]].concat());
    assert!(rate[15..].iter().filter(|r| **r).count() >= 3, "{rate:?}");
    let links: Vec<bool> = (0..6)
        .map(|i| has_reason(by_id[format!("l{i}").as_str()], "link_flood"))
        .collect();
    assert_eq!(links, [false, false, false, false, true, true]);
    assert!(has_reason(by_id["m1"], "mention_flood"));
    assert!(!has_reason(by_id["m2"], "mention_flood"));
    assert_eq!(
        by_id["m1"].action,
        Action::Review,
        "heuristics raise the action"
    );
}

#[test]
fn reports_verify_and_credit_or_go_to_focused_review() {
    let mut w = Watch::new(WatchConfig::default());
    let msgs = vec![
        msg("bad", "g1", "u1", T0, "代开发票，加VX：abc_123456"),
        msg("fine", "g1", "u2", T0 + SEC, "周六去爬山吗"),
    ];
    let (_, mut out) = run_with(&mut w, &msgs, 10);
    let report = |id: &str, reporter: &str, msg: &str| Report {
        report_id: id.into(),
        reporter_id: reporter.into(),
        message_id: msg.into(),
        group_id: "g1".into(),
        reason: "广告".into(),
        ts: T0 + MIN,
    };
    w.report(report("r1", "alice", "bad"), &mut out);
    w.report(report("r2", "alice", "bad"), &mut out); // the same report again: no second credit
    w.report(report("r3", "bob", "fine"), &mut out);
    let rewards: Vec<_> = out
        .iter()
        .filter_map(|o| match o {
            Output::Reward(r) => Some(r),
            _ => None,
        })
        .collect();
    assert_eq!(rewards.len(), 1);
    assert_eq!(
        (
            rewards[0].reporter_id.as_str(),
            rewards[0].message_id.as_str(),
            rewards[0].points
        ),
        ("alice", "bad", 1)
    );
    let reviews: Vec<_> = out
        .iter()
        .filter_map(|o| match o {
            Output::Review(r) => Some(r),
            _ => None,
        })
        .collect();
    assert_eq!(reviews.len(), 1);
    assert_eq!(
        (reviews[0].id.as_str(), reviews[0].text.as_deref()),
        ("fine", Some("周六去爬山吗"))
    );
    let s = w.stats();
    assert_eq!(
        (
            s.reports["verified"],
            s.reports["duplicate"],
            s.reports["review_requested"]
        ),
        (1, 1, 1)
    );
}

#[test]
fn scorecards_close_each_day_with_an_assessment() {
    let mut msgs = Vec::new();
    // Day 1: a clean group and one with many violations.
    for i in 0..200 {
        msgs.push(msg(
            format!("a{i}"),
            "g-clean",
            format!("u{i}"),
            T0 + i * MIN,
            "大家早上好，今天记得带伞",
        ));
        let text = if i % 10 == 0 {
            "代开发票，量大从优"
        } else {
            "周末一起去爬山"
        };
        msgs.push(msg(
            format!("b{i}"),
            "g-messy",
            format!("v{i}"),
            T0 + i * MIN,
            text,
        ));
    }
    // Day 2 starts (Beijing midnight): the first message closes day 1.
    msgs.push(msg(
        "next",
        "g-clean",
        "u0",
        T0 + 16 * 3600 * SEC + MIN,
        "新的一天",
    ));
    let (_, out) = run(&msgs);
    let cards: Vec<_> = out
        .iter()
        .filter_map(|o| match o {
            Output::Scorecard(s) => Some(s),
            _ => None,
        })
        .collect();
    assert_eq!(cards.len(), 2, "{cards:#?}");
    let clean = cards.iter().find(|c| c.group_id == "g-clean").unwrap();
    let messy = cards.iter().find(|c| c.group_id == "g-messy").unwrap();
    assert_eq!(
        (clean.messages, clean.violations, clean.assessment.as_str()),
        (200, 0, "good")
    );
    assert_eq!(
        (messy.messages, messy.violations, messy.assessment.as_str()),
        (200, 20, "rectify")
    );
    assert_eq!(messy.category_per_1000["ads"], 100.0);
    assert_eq!(clean.period_end_ts - clean.period_start_ts, 86_400_000);
    assert!(clean.period_start_ts <= T0 && T0 < clean.period_end_ts);
}

/// Chatter in five groups, a raid across twelve groups by three senders, and a quarrel.
fn mixed_stream() -> Vec<Message> {
    let mut msgs = chatter("c", 5, T0, 20 * MIN, 10 * SEC);
    for i in 0..30 {
        msgs.push(msg(
            format!("f{i}"),
            &format!("g{}", i % 12),
            format!("s{}", i % 3),
            T0 + i * 13 * SEC,
            "加我微信领取免费红包名额有限先到先得",
        ));
        msgs.push(msg(
            format!("q{i}"),
            "c-g1",
            format!("u{}", i % 4),
            T0 + i * 9 * SEC,
            "你就是个傻逼",
        ));
    }
    msgs.sort_by_key(|m| m.ts);
    msgs
}

#[test]
fn results_do_not_depend_on_batch_boundaries() {
    let msgs = mixed_stream();
    let results: Vec<_> = [1, 7, 256, 100_000]
        .iter()
        .map(|&b| run_with(&mut Watch::new(WatchConfig::default()), &msgs, b))
        .collect();
    let (v0, o0) = &results[0];
    assert!(
        v0.iter().any(|v| !v.reasons.is_empty()) && !o0.is_empty(),
        "the stream exercises the watch"
    );
    for (v, o) in &results[1..] {
        assert_eq!(v, v0);
        assert_eq!(o, o0);
    }
}

#[test]
fn results_do_not_depend_on_whether_the_pre_pass_runs_on_threads_of_its_own() {
    // Batches of 2,048 messages and more run the pre-pass (members' and senders' rates, the
    // groups' own quarrels, then the flood clusters) ahead of the ordered pass, on two threads
    // of its own, chunk by chunk; smaller ones run it inline.
    let mut msgs = mixed_stream();
    // Members over their rate in a group, one sender over theirs across groups, spread over
    // the stream so that they cross the chunks the pre-pass hands over.
    for i in 0..1200 {
        let (g, text) = (format!("c-g{}", i % 5), format!("第{i}条"));
        msgs.push(msg(format!("b{i}"), "c-g2", "busy", T0 + i * SEC, &text));
        msgs.push(msg(
            format!("x{i}"),
            &g,
            "everywhere",
            T0 + i * SEC / 4,
            &text,
        ));
    }
    // A raid: three accounts posting one lure into 30 groups, late in the stream (a chunk
    // the flood stage reaches after the others).
    for i in 0..60 {
        msgs.push(msg(
            format!("r{i}"),
            &format!("raid-g{}", i % 30),
            format!("raider{}", i % 3),
            T0 + 250 * SEC + i * SEC,
            "加我微信领取免费红包名额有限先到先得",
        ));
    }
    msgs.sort_by_key(|m| m.ts);
    assert!(
        msgs.len() > 2048 + 512,
        "big enough for the pre-pass to run ahead on its own thread"
    );
    // Threads allowed or not (by default they are only from 4 cores on), batch by batch.
    let results: Vec<_> = [(true, 100_000), (false, 100_000), (true, 600), (true, 2048)]
        .into_iter()
        .chain([(true, 3000), (false, 3000), (true, 1)])
        .map(|(threads, batch)| {
            let mut w = Watch::new(WatchConfig::default()).with_stage_threads(threads);
            run_with(&mut w, &msgs, batch)
        })
        .collect();
    let (v0, o0) = &results[0];
    assert!(
        ["this member in this group", "across groups", "own quarrel"]
            .iter()
            .all(|d| v0
                .iter()
                .any(|v| v.reasons.iter().any(|r| r.detail.contains(d)))),
        "the stream exercises the pre-pass (rates, the group's own quarrel): {:?}",
        v0.iter()
            .flat_map(|v| v.reasons.iter().map(|r| r.reason.as_str()))
            .collect::<std::collections::BTreeSet<_>>()
    );
    assert!(
        v0.iter().any(|v| has_reason(v, "duplicate_flood")) && !alerts(o0, "flood").is_empty(),
        "the stream exercises the flood clusters"
    );
    for (v, o) in &results[1..] {
        assert_eq!(v, v0);
        assert_eq!(o, o0);
    }
}

#[test]
fn state_stays_within_its_caps() {
    let mut cfg = WatchConfig::default();
    cfg.limits.members = 1000;
    cfg.limits.senders = 1000;
    cfg.limits.groups = 100;
    cfg.limits.fingerprints = 500;
    let mut w = Watch::new(cfg);
    let msgs: Vec<Message> = (0..5000)
        .map(|i| {
            msg(
                format!("m{i}"),
                &format!("g{}", i % 300),
                format!("u{i}"),
                T0 + i,
                &format!("第{}号通知：今天下午三点开会", han(i)),
            )
        })
        .collect();
    run_with(&mut w, &msgs, 1000);
    let sizes: HashMap<_, _> = w.sizes().into_iter().map(|(k, n, e)| (k, (n, e))).collect();
    for (map, cap) in [
        ("members", 1000),
        ("senders", 1000),
        ("groups", 100),
        ("fingerprints", 500),
    ] {
        let (n, evicted) = sizes[map];
        assert!(n <= cap, "{map}: {n} > {cap}");
        assert!(evicted > 0, "{map} evicted nothing");
    }
}

#[test]
fn scan_runs_the_watch_and_writes_its_records() {
    let dir = tempfile::tempdir().unwrap();
    let mut input = String::new();
    let insults = &INSULTS[..6];
    for (i, t) in insults.iter().enumerate() {
        let m = msg(
            format!("q{i}"),
            "g1",
            format!("u{}", i % 3),
            T0 + i as i64 * 10 * SEC,
            t,
        );
        input.push_str(&serde_json::to_string(&m).unwrap());
        input.push('\n');
    }
    std::fs::write(dir.path().join("in.jsonl"), &input).unwrap();
    let records = dir.path().join("records.jsonl");
    let out = qunguard()
        .args(["scan", "--rules", "config/rules", "--records"])
        .arg(&records)
        .arg(dir.path().join("in.jsonl"))
        .output()
        .unwrap();
    succeeded(&out);
    let verdicts: Vec<Verdict> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(verdicts.len(), insults.len());
    assert!(has_reason(&verdicts[5], "incident"), "{:?}", verdicts[5]);
    let recs = std::fs::read_to_string(&records).unwrap();
    let first: serde_json::Value = serde_json::from_str(recs.lines().next().unwrap()).unwrap();
    assert_eq!(first["alert"]["kind"], "quarrel");
    assert_eq!(first["alert"]["status"], "open");
    // The same file with the library in one batch gives the same verdicts.
    let msgs: Vec<Message> = input
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let (lib, _) = run(&msgs);
    assert_eq!(lib, verdicts);
}

#[test]
fn a_broken_sender_clock_cannot_end_windows_or_close_the_day() {
    // The clock says T0 + 2 min; one message claims to be from 30 days later.
    let clock = || T0 + 2 * MIN;
    let mut msgs: Vec<Message> = INSULTS[..5]
        .iter()
        .enumerate()
        .map(|(i, t)| {
            msg(
                format!("q{i}"),
                "g1",
                format!("u{}", i % 3),
                T0 + i as i64 * 10 * SEC,
                t,
            )
        })
        .collect();
    // In the quarrel's own group: incident mode runs on the group's own event time.
    msgs.push(msg(
        "bogus",
        "g1",
        "u9",
        T0 + 30 * 86_400 * SEC,
        "我的手机时间不对",
    ));
    msgs.push(msg("q5", "g1", "u1", T0 + 60 * SEC, "神经病"));
    for guarded in [true, false] {
        let mut cfg = WatchConfig::default();
        if !guarded {
            cfg.max_future_secs = 0;
        }
        let mut w = Watch::new(cfg).with_clock(clock);
        let (verdicts, out) = run_with(&mut w, &msgs, 100);
        let closed_day = out.iter().any(|o| matches!(o, Output::Scorecard(_)));
        let resolved = alerts(&out, "quarrel")
            .iter()
            .any(|a| a.status == "resolved");
        // Guarded: the quarrel stays open and q5 is still in incident mode; the day stays open.
        assert_eq!(closed_day, !guarded, "guarded: {guarded}");
        assert_eq!(resolved, !guarded, "guarded: {guarded}");
        let q5 = verdicts.iter().find(|v| v.id == "q5").unwrap();
        assert_eq!(has_reason(q5, "incident"), guarded, "{q5:?}");
        assert_eq!(w.stats().future_timestamps, u64::from(guarded));
        assert_eq!(
            verdicts.iter().find(|v| v.id == "bogus").unwrap().ts,
            T0 + 30 * 86_400 * SEC
        );
    }
}

#[test]
fn a_ts_in_seconds_is_read_as_seconds_and_counted() {
    let quarrel = |secs: bool| -> Vec<Message> {
        INSULTS[..5]
            .iter()
            .chain(["神经病"].iter())
            .enumerate()
            .map(|(i, t)| {
                let ts = T0 + i as i64 * 10 * SEC;
                msg(
                    format!("q{i}"),
                    "g1",
                    format!("u{}", i % 3),
                    if secs { ts / 1000 } else { ts },
                    t,
                )
            })
            .collect()
    };
    let reasons = |vs: &[Verdict]| -> Vec<Vec<String>> {
        vs.iter()
            .map(|v| v.reasons.iter().map(|r| format!("{r:?}")).collect())
            .collect()
    };
    let mut in_ms = Watch::new(WatchConfig::default());
    let (want, _) = run_with(&mut in_ms, &quarrel(false), 100);
    let mut in_s = Watch::new(WatchConfig::default());
    let secs = quarrel(true);
    let (got, out) = run_with(&mut in_s, &secs, 100);
    assert_eq!(reasons(&got), reasons(&want), "the same heuristics fire");
    assert!(has_reason(&got[5], "incident"), "{:?}", got[5]);
    assert_eq!(in_s.stats().seconds_timestamps, 6);
    assert_eq!(in_ms.stats().seconds_timestamps, 0);
    assert_eq!(got[0].ts, secs[0].ts, "the verdict keeps the original ts");
    let opened = alerts(&out, "quarrel");
    assert!(!opened.is_empty());
    assert!(
        opened.iter().all(|a| a.ts >= T0),
        "alerts are dated in milliseconds: {opened:?}"
    );
}

/// Per-group streams (each in its own `ts` order) holding what the replay guarantee covers: a
/// quarrel with incident mode and the tighter member rate it brings, a member over the rate
/// limit, links and mentions, a lure flooded into twelve groups (cross-group) followed by abuse
/// there, and busy chatter whose later `ts` moves the instance's event time ahead.
fn group_streams() -> Vec<Vec<Message>> {
    let mut streams = Vec::new();
    // Chatter first: a partition read ahead of the others moves the watermark 30 min on.
    streams.push(chatter("c", 1, T0, 30 * MIN, 10 * SEC));
    // The quarrel: four members from minute 5, then abuse again 4 min after the last insult
    // (within quiet_secs, so still incident mode), and a member posting fast meanwhile.
    let mut q = Vec::new();
    for (i, text) in INSULTS.iter().enumerate() {
        let ts = T0 + 5 * MIN + i as i64 * 10 * SEC;
        q.push(msg(format!("q{i}"), "g-q", format!("u{}", i % 4), ts, text));
    }
    for i in 0..8 {
        let ts = T0 + 7 * MIN + i * SEC;
        q.push(msg(
            format!("fast{i}"),
            "g-q",
            "fast",
            ts,
            &format!("第{i}条"),
        ));
    }
    q.push(msg("late", "g-q", "u9", T0 + 10 * MIN, "你是白痴"));
    streams.push(q);
    let mut r = Vec::new();
    for i in 0..20 {
        r.push(msg(
            format!("r{i}"),
            "g-r",
            "chatty",
            T0 + i * SEC,
            &format!("第{i}条"),
        ));
    }
    for i in 0..6 {
        let text = format!("看看这个 https://example.com/p/{i}");
        r.push(msg(
            format!("l{i}"),
            "g-r",
            "linker",
            T0 + MIN + i * 20 * SEC,
            &text,
        ));
    }
    let pings = "@张三 @李四 @王五 @赵六 @钱七 @孙八 @周九 @吴十 @郑十一 开会了";
    r.push(msg("m1", "g-r", "pinger", T0 + 4 * MIN, pings));
    streams.push(r);
    for g in 0..12 {
        let group = format!("g-f{g}");
        let ts = T0 + 2 * MIN + g * 5 * SEC;
        let lure = "加我微信领取免费红包名额有限先到先得 http://hb.example.cn";
        let mut f = vec![msg(
            format!("f{g}"),
            &group,
            format!("spam{}", g % 2),
            ts,
            lure,
        )];
        f.push(msg(
            format!("fa{g}"),
            &group,
            "local",
            ts + 3 * MIN,
            INSULTS[0],
        ));
        streams.push(f);
    }
    streams
}

/// The orders a multi-partition consumer can see the same per-group streams in (each group's
/// own order kept, as a partition keeps it).
fn interleave(streams: &[Vec<Message>], order: &str) -> Vec<Message> {
    let lead = |i: usize, m: &Message| m.ts - if i == 0 { 10 * MIN } else { 0 };
    match order {
        "one group after another" => streams.concat(),
        "groups in reverse, one after another" => streams.iter().rev().flatten().cloned().collect(),
        "round robin" => {
            let mut v = Vec::new();
            for i in 0..streams.iter().map(Vec::len).max().unwrap_or(0) {
                v.extend(streams.iter().filter_map(|s| s.get(i).cloned()));
            }
            v
        }
        "by ts" | "the chatter's partition read 10 min ahead" => {
            let ahead = order != "by ts";
            let mut v: Vec<(i64, Message)> = streams
                .iter()
                .enumerate()
                .flat_map(|(i, s)| {
                    s.iter()
                        .map(move |m| (if ahead { lead(i, m) } else { m.ts }, m.clone()))
                })
                .collect();
            v.sort_by_key(|(k, _)| *k);
            v.into_iter().map(|(_, m)| m).collect()
        }
        _ => unreachable!("{order}"),
    }
}

fn scoped(v: &Verdict) -> Vec<&qunguard::Reason> {
    v.reasons
        .iter()
        .filter(|r| qunguard::watch::group_scoped(r))
        .collect()
}

#[test]
fn group_scoped_decisions_do_not_depend_on_how_groups_interleave() {
    let streams = group_streams();
    let (base, _) = run(&interleave(&streams, "by ts"));
    let base: HashMap<String, Verdict> = base.into_iter().map(|v| (v.id.to_string(), v)).collect();
    // The stream exercises what the guarantee is about, in every order.
    for (id, code) in [
        ("q6", "incident"),
        ("late", "incident"),
        ("fast5", "rate_limit"),
        ("r14", "rate_limit"),
        ("l5", "link_flood"),
        ("m1", "mention_flood"),
        ("f9", "duplicate_flood"),
    ] {
        assert!(has_reason(&base[id], code), "{id} {code}: {:?}", base[id]);
    }
    assert!(!has_reason(&base["fast5"], "incident"), "not abuse");
    for order in [
        "one group after another",
        "groups in reverse, one after another",
        "round robin",
        "the chatter's partition read 10 min ahead",
    ] {
        let (got, _) = run(&interleave(&streams, order));
        assert_eq!(got.len(), base.len(), "{order}");
        for v in &got {
            let b = &base[v.id.as_str()];
            assert_eq!(scoped(v), scoped(b), "{order}: {}", v.id);
            let cross = |v: &Verdict| v.reasons.iter().any(|r| !qunguard::watch::group_scoped(r));
            if !cross(v) && !cross(b) {
                assert_eq!(v.action, b.action, "{order}: {}", v.id);
            }
        }
    }
}

#[test]
fn a_category_violation_spike_alerts_for_the_group_and_the_city_under_their_keys() {
    let mut msgs = Vec::new();
    for minute in 0..40 {
        let base = T0 + minute * MIN;
        // One ad a minute is the group's normal; minute 25 brings forty.
        let ads = if minute == 25 { 40 } else { 1 };
        for k in 0..ads {
            let n = msgs.len();
            let text = format!("代开发票 第{n}张");
            msgs.push(msg(
                format!("a{n}"),
                "g-ads",
                format!("u{n}"),
                base + k * 1000,
                &text,
            ));
        }
        for k in 0..4 {
            let n = msgs.len();
            msgs.push(msg(
                format!("c{n}"),
                "g-ads",
                format!("u{n}"),
                base + 30_000 + k,
                "今天天气不错",
            ));
        }
    }
    let (verdicts, out) = run(&msgs);
    assert!(
        verdicts[0].categories.iter().any(|c| &**c == "ads"),
        "{:?}",
        verdicts[0]
    );
    // (kind, the alert's key, group, category)
    let want = [
        ("violation_spike", "g-ads/ads", Some("g-ads")),
        ("city_violation_spike", "city/ads", None),
    ];
    for (kind, key, group) in want {
        let got: BTreeSet<_> = alerts(&out, kind)
            .into_iter()
            .map(|a| (a.key, a.group_id, a.category))
            .collect();
        let want = BTreeSet::from([(
            key.to_string(),
            group.map(String::from),
            Some("ads".to_string()),
        )]);
        assert_eq!(got, want, "{kind}");
    }
}

/// A group that has chatted for a while without one violation has a baseline of none: its
/// first burst of ads is a spike as much as a burst in a group that sees one ad a minute.
/// Before, a category's baseline began at the group's first violation and was not warm yet.
#[test]
fn a_group_without_a_violation_before_can_spike() {
    let mut msgs = Vec::new();
    for minute in 0..31 {
        let base = T0 + minute * MIN;
        for k in 0..5 {
            let n = msgs.len();
            msgs.push(msg(
                format!("c{n}"),
                "g-clean",
                format!("u{k}"),
                base + k * 1000,
                "今天天气不错",
            ));
        }
    }
    let burst = T0 + 31 * MIN;
    for k in 0..20 {
        let text = format!("代开发票 第{k}张");
        msgs.push(msg(
            format!("a{k}"),
            "g-clean",
            format!("s{k}"),
            burst + k * 1000,
            &text,
        ));
    }
    let (_, out) = run(&msgs);
    let got: Vec<_> = alerts(&out, "violation_spike");
    let open = got
        .iter()
        .find(|a| a.status == "open")
        .unwrap_or_else(|| panic!("no violation spike: {got:#?}"));
    assert_eq!(open.key, "g-clean/ads");
    assert_eq!(open.baseline, 0.0);
    // min_violations (8) reached, not passed: "at 8 or more".
    assert_eq!((open.observed, open.threshold), (8.0, 8.0));
    assert!(open.started_ts >= burst, "{open:?}");
}

/// A baseline made again after its eviction starts cold: the group did have violations, so
/// a baseline of none would make its steady ads a spike.
#[test]
fn an_evicted_category_baseline_is_not_taken_for_a_clean_group() {
    let mut cfg = WatchConfig::default();
    cfg.limits.group_categories = 2;
    let mut msgs = Vec::new();
    for minute in 0..40 {
        let base = T0 + minute * MIN;
        for k in 0..10 {
            let n = msgs.len();
            let text = format!("代开发票 第{n}张");
            let ts = base + k * 5000;
            msgs.push(msg(format!("a{n}"), "g-steady", format!("s{k}"), ts, &text));
        }
        // Then other groups' ads: their baselines push g-steady's out.
        for k in 0..3 {
            let n = msgs.len();
            let text = format!("代开发票 第{n}张");
            let ts = base + 55_000 + k;
            msgs.push(msg(
                format!("o{n}"),
                &format!("g-o{k}"),
                format!("o{k}"),
                ts,
                &text,
            ));
        }
    }
    let (_, out) = run_with(&mut Watch::new(cfg), &msgs, 500);
    let spikes: Vec<_> = alerts(&out, "violation_spike")
        .into_iter()
        .filter(|a| a.key == "g-steady/ads")
        .collect();
    assert!(spikes.is_empty(), "{spikes:#?}");
}

#[test]
fn a_groups_quarrel_incident_keeps_to_the_groups_latest_time_even_before_its_first_abuse() {
    // A message dated 20 minutes on reaches the group first; the insults dated before it then
    // are old news on the group's own clock: a quarrel incident they start ends at once (past
    // `alerts.quiet_secs`), so none of them is raised for incident mode.
    let g = "g-late-first";
    let mut msgs = vec![msg("early", g, "u9", T0 + 20 * MIN, "今天天气不错")];
    for (i, t) in INSULTS.iter().enumerate() {
        msgs.push(msg(
            format!("q{i}"),
            g,
            format!("u{}", i % 4),
            T0 + i as i64 * 15 * SEC,
            t,
        ));
    }
    let (vs, out) = run(&msgs);
    assert!(
        !alerts(&out, "quarrel").is_empty(),
        "the insults still make a quarrel"
    );
    assert!(
        vs.iter().all(|v| !has_reason(v, "incident")),
        "no incident mode on the group's later time: {:?}",
        vs.iter().map(|v| &v.reasons).collect::<Vec<_>>()
    );
}

#[test]
fn a_violators_pressure_decays_over_the_time_since_their_last_message_even_after_eviction() {
    // Four members fit: ten others posting push the violator's rate entry out; their pressure
    // (kept apart, for violators) must still decay over the day that passed, not be taken
    // as fresh.
    let mut cfg = WatchConfig::default();
    cfg.limits.members = 4;
    let mut msgs = Vec::new();
    for i in 0..10 {
        msgs.push(msg(
            format!("a{i}"),
            "g",
            "A",
            T0 + i * MIN,
            INSULTS[i as usize % 8],
        ));
    }
    for i in 0..10 {
        msgs.push(msg(
            format!("o{i}"),
            "g",
            format!("o{i}"),
            T0 + 11 * MIN + i * SEC,
            "今天天气不错",
        ));
    }
    msgs.push(msg("late", "g", "A", T0 + 24 * 60 * MIN, INSULTS[0]));
    let mut w = Watch::new(cfg);
    run_with(&mut w, &msgs[..10], 100);
    let before = w.pressure("A", "g").unwrap();
    assert!(before > 9.0, "ten insults in ten minutes: {before}");
    let (vs, _) = run_with(&mut w, &msgs[10..], 100);
    assert!(vs.last().unwrap().recommend.is_none());
    // Four half-lives (6 h each) after ~10 points leave ~0.6, plus the new insult's point:
    // not 1 (forgotten with the rate entry) and not ~11 (not decayed).
    let p = w.pressure("A", "g").unwrap();
    assert!((1.2..2.5).contains(&p), "pressure {p}");
}
