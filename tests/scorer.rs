//! The learned scorer: training on the shipped COLD sample, the shipped model on plain lines,
//! model packs in verdicts, bad model files, and the `train` / `eval` commands.

mod bin;

use bin::{qunguard, succeeded};
use qunguard::scorer::data::{self, Label};
use qunguard::scorer::eval::BinaryFigures;
use qunguard::scorer::train::{TrainOptions, train};
use qunguard::{Action, Engine, MatchKind, Message, RuleSet};
use std::path::{Path, PathBuf};

const SAMPLE: &str = "tests/data/cold/sample.csv";

fn msg(id: &str, text: &str) -> Message {
    Message {
        id: id.into(),
        group_id: "g".into(),
        sender_id: "u".into(),
        ts: 0,
        text: text.into(),
    }
}

/// Small training options so the tests stay fast: 2^16 buckets.
fn small() -> TrainOptions {
    TrainOptions {
        bits: 16,
        ..TrainOptions::default()
    }
}

#[test]
fn training_on_the_sample_is_deterministic_and_learns_beyond_chance() {
    let rows = data::read(Path::new(SAMPLE)).unwrap();
    assert_eq!(rows.len(), 599);
    let (fit, held) = rows.split_at(450);
    let a = train(fit, Some(held), &small());
    let b = train(fit, Some(held), &small());
    assert_eq!(a.model.to_bytes(), b.model.to_bytes(), "same data and seed");
    let other = train(fit, Some(held), &TrainOptions { seed: 7, ..small() });
    assert_ne!(
        a.model.to_bytes(),
        other.model.to_bytes(),
        "the seed orders the examples"
    );
    // 450 texts are few, but texts it never saw must still rank better than chance.
    assert!(a.figures.auc > 0.8, "held-out AUC {}", a.figures.auc);
    // On its own training data the model must fit well.
    let seen = train(fit, None, &small());
    assert!(seen.figures.auc > 0.95, "training AUC {}", seen.figures.auc);
    // The chosen threshold keeps the flagged share of held-out negatives at the target.
    assert!(a.figures.at.flag_rate_negatives() <= small().max_flag_rate);
}

/// Plain lines of my own (not from COLD): attacks on groups and everyday chat.
const OFFENSIVE: &[(&str, bool)] = &[
    // (text, flagged at the shipped threshold)
    ("黑鬼都是垃圾，滚回非洲去", true),
    ("河南人都是骗子，就会偷井盖", true),
    ("上海人都是一群势利眼的垃圾", true),
    ("黑人智商低，天生就是劣等民族", true),
    // Scored above every benign line, under the threshold, which is set high on purpose (see
    // README, "Training a model").
    ("女人就是贱，天生低人一等", false),
    ("东北人没一个好东西，全是流氓", false),
    ("这些黑皮猴子就该滚出中国", false),
    ("娘们儿就该在家待着，出来丢人现眼", false),
];
const BENIGN: &[&str] = &[
    "今天天气真好，我们去公园散步吧",
    "明天上午九点开会，请准时参加",
    "谢谢你的帮助，辛苦了",
    "这家餐厅的菜很好吃，推荐大家去",
    "孩子这次考试考得不错，很开心",
    "周末一起去爬山吗？",
    "快递已经放在门口了",
    "物业通知：本周六停水，请提前储水",
    "新年快乐，祝大家身体健康",
    "这本书写得很好，值得一读",
];

#[test]
fn the_shipped_model_flags_plain_attacks_and_passes_plain_chat() {
    let engine = Engine::compile(&RuleSet::load_dir(Path::new("config/rules")).unwrap()).unwrap();
    let score = |text: &str| {
        let v = engine.screen(&msg("m", text));
        (
            v.scores.get("offensive").expect("every verdict is scored"),
            v,
        )
    };
    let mut lowest_offensive = f32::MAX;
    for &(text, flagged) in OFFENSIVE {
        let (s, v) = score(text);
        lowest_offensive = lowest_offensive.min(s);
        let model_hit = v.hits.iter().any(|h| h.kind == MatchKind::Model);
        assert_eq!(model_hit, flagged, "{text}: score {s}");
        if flagged {
            assert!(v.categories.iter().any(|c| &**c == "offensive"), "{text}");
            assert!(v.action >= Action::Review, "{text}");
        }
    }
    for &text in BENIGN {
        let (s, v) = score(text);
        assert!(s < 0.5, "{text}: score {s}");
        assert_eq!(v.action, Action::Allow, "{text}: {v:?}");
        assert!(s < lowest_offensive, "{text} outscores an attack");
    }
}

/// A rules directory with one term pack and the shipped model under a pack of our own.
fn rules_with_model(dir: &Path, pack: &str) -> PathBuf {
    std::fs::write(
        dir.join("ads.toml"),
        "category = \"ads\"\naction = \"block\"\nwords = [\"代开发票\"]\n",
    )
    .unwrap();
    std::fs::copy("config/rules/offensive.model", dir.join("offensive.model")).unwrap();
    std::fs::write(dir.join("offensive.toml"), pack).unwrap();
    dir.to_path_buf()
}

const PACK: &str = "category = \"offensive\"\naction = \"review\"\nmodel = \"offensive.model\"\n";

#[test]
fn a_model_pack_scores_every_verdict_and_flags_at_its_threshold() {
    let dir = tempfile::tempdir().unwrap();
    let rules = rules_with_model(dir.path(), &format!("{PACK}threshold = 0.9\n"));
    let engine = Engine::compile(&RuleSet::load_dir(&rules).unwrap()).unwrap();
    let attack = "黑鬼都是垃圾，滚回非洲去";
    let msgs = [msg("a", attack), msg("b", "代开发票，今天天气真好")];
    let v = engine.screen_batch(&msgs);

    let s = v[0].scores.get("offensive").unwrap();
    assert!(s >= 0.9, "{s}");
    assert_eq!(v[0].action, Action::Review);
    assert_eq!(v[0].categories, vec!["offensive".into()]);
    let hit = &v[0].hits[0];
    assert_eq!(
        (&*hit.rule, hit.kind, hit.start, hit.end, hit.text.as_str()),
        ("offensive:model", MatchKind::Model, 0, attack.len(), attack)
    );
    // A term hit and a low score: the score is reported, the model adds nothing.
    assert!(v[1].scores.get("offensive").unwrap() < 0.5);
    assert_eq!(v[1].categories, vec!["ads".into()]);
    assert_eq!(v[1].action, Action::Block);

    // On the wire: `"scores":{"offensive":0.…}`, read back unchanged.
    let json = serde_json::to_string(&v[0]).unwrap();
    assert!(json.contains(r#""scores":{"offensive":"#), "{json}");
    assert_eq!(
        serde_json::from_str::<qunguard::Verdict>(&json).unwrap(),
        v[0]
    );

    // The engine scores the same whether a message is screened alone or in a batch, with or
    // without the text kept for the heuristics.
    assert_eq!(engine.screen(&msgs[0]), v[0]);
    let with = engine.screen_batch_with(&msgs, &|_, norm: &str| norm.to_string());
    assert_eq!(with.0[0], v[0]);
    assert_eq!(with.1.len(), msgs.len(), "an item per message");
    assert!(engine.screen_batch(&[]).is_empty(), "an empty batch");
}

#[test]
fn a_shadow_model_pack_reports_its_score_and_a_shadow_hit_and_acts_on_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let rules = rules_with_model(
        dir.path(),
        &format!("{PACK}threshold = 0.5\nshadow = true\n"),
    );
    let engine = Engine::compile(&RuleSet::load_dir(&rules).unwrap()).unwrap();
    let v = engine.screen(&msg("a", "黑鬼都是垃圾，滚回非洲去"));
    assert!(v.scores.get("offensive").unwrap() > 0.5);
    assert_eq!(v.action, Action::Allow);
    assert!(v.categories.is_empty(), "{v:?}");
    // Recorded like any shadow rule's hit, not acted on.
    assert_eq!(v.hits.len(), 1, "{v:?}");
    assert!(v.hits[0].shadow && v.hits[0].kind == MatchKind::Model);
    // Under the threshold: the score only.
    let v = engine.screen(&msg("b", "今天天气真好"));
    assert!(v.scores.get("offensive").unwrap() < 0.5 && v.hits.is_empty());
}

#[test]
fn the_model_and_its_settings_are_part_of_the_rules_version() {
    let dir = tempfile::tempdir().unwrap();
    let version = |pack: &str, model: Option<Vec<u8>>| {
        let rules = rules_with_model(dir.path(), pack);
        if let Some(bytes) = model {
            std::fs::write(rules.join("offensive.model"), bytes).unwrap();
        }
        let e = Engine::compile(&RuleSet::load_dir(&rules).unwrap()).unwrap();
        e.rules_version().to_string()
    };
    let base = version(&format!("{PACK}threshold = 0.9\n"), None);
    assert_eq!(base, version(&format!("{PACK}threshold = 0.9\n"), None));
    // Another model (trained with another seed) under the same pack.
    let rows = data::read(Path::new(SAMPLE)).unwrap();
    let other = train(&rows, None, &small()).model.to_bytes();
    // (what changed, rules version)
    let changed = [
        (
            "threshold",
            version(&format!("{PACK}threshold = 0.8\n"), None),
        ),
        (
            "shadow",
            version(&format!("{PACK}threshold = 0.9\nshadow = true\n"), None),
        ),
        (
            "model bytes",
            version(&format!("{PACK}threshold = 0.9\n"), Some(other)),
        ),
    ];
    for (what, v) in changed {
        assert_ne!(v, base, "{what}");
    }
}

/// (what is wrong with the model file, words the error must hold)
#[test]
fn bad_model_files_are_clear_errors_naming_the_file() {
    let good = std::fs::read("config/rules/offensive.model").unwrap();
    let mut flipped = good.clone();
    flipped[1000] ^= 0x40;
    let cases: Vec<(Option<Vec<u8>>, &str)> = vec![
        (None, "cannot read the model file"),
        (Some(Vec::new()), "not a qunguard model file"),
        (
            Some(b"{\"weights\": []}".to_vec()),
            "not a qunguard model file",
        ),
        (Some(good[..good.len() / 2].to_vec()), "truncated"),
        (Some(flipped), "checksum does not match"),
    ];
    for (bytes, needle) in cases {
        let dir = tempfile::tempdir().unwrap();
        let rules = rules_with_model(dir.path(), &format!("{PACK}threshold = 0.9\n"));
        let model = rules.join("offensive.model");
        match bytes {
            Some(b) => std::fs::write(&model, b).unwrap(),
            None => std::fs::remove_file(&model).unwrap(),
        }
        let e = RuleSet::load_dir(&rules).unwrap_err();
        assert_eq!(e.file, model, "{e}");
        let shown = e.to_string();
        assert!(shown.contains(needle), "{needle}: {shown}");
        assert!(
            shown.contains("offensive.toml") && shown.contains("qunguard train"),
            "{shown}"
        );

        // The command line says the same and exits non-zero instead of crashing.
        let out = qunguard().arg("check-rules").arg(&rules).output().unwrap();
        assert_eq!(out.status.code(), Some(1));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(needle) && err.contains("offensive.model"),
            "{err}"
        );
    }
}

#[test]
fn two_model_packs_may_not_share_a_category() {
    let dir = tempfile::tempdir().unwrap();
    let rules = rules_with_model(dir.path(), &format!("{PACK}threshold = 0.9\n"));
    std::fs::write(rules.join("more.toml"), format!("{PACK}threshold = 0.5\n")).unwrap();
    let e = RuleSet::load_dir(&rules).unwrap_err();
    assert_eq!(e.file, rules.join("offensive.toml"));
    assert!(
        e.to_string().contains("category `offensive` is also used"),
        "{e}"
    );
}

#[test]
fn train_writes_the_same_model_twice_and_prints_its_figures() {
    let dir = tempfile::tempdir().unwrap();
    let jsonl = dir.path().join("dev.jsonl");
    // The last 149 rows as JSONL: the command reads both formats.
    let rows = data::read(Path::new(SAMPLE)).unwrap();
    let mut text = String::new();
    for r in &rows[450..] {
        let label = u8::from(r.label != Label::Negative);
        text.push_str(&serde_json::json!({"text": r.text, "label": label}).to_string());
        text.push('\n');
    }
    std::fs::write(&jsonl, text).unwrap();
    let run = |out: &str| {
        let o = qunguard()
            .args(["train", "--bits", "16", "--data", SAMPLE, "--dev"])
            .arg(&jsonl)
            .arg("--out")
            .arg(dir.path().join(out))
            .output()
            .unwrap();
        succeeded(&o);
        String::from_utf8(o.stdout).unwrap()
    };
    let printed = run("a.model");
    run("b.model");
    let a = std::fs::read(dir.path().join("a.model")).unwrap();
    assert_eq!(a, std::fs::read(dir.path().join("b.model")).unwrap());
    assert_eq!(a.len(), 36 + (1 << 16) + 32, "header, weights, checksum");
    for needle in [
        "accuracy",
        "macro-F1",
        "ROC AUC",
        "of negatives",
        "threshold = 0.",
    ] {
        assert!(printed.contains(needle), "{needle}: {printed}");
    }
    assert!(printed.contains("149 texts"), "{printed}");

    let bad = qunguard()
        .args(["train", "--data", "Cargo.toml", "--out"])
        .arg(dir.path().join("c.model"))
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("Cargo.toml"));
}

/// (data file, options, words the error must hold): data a model cannot learn from, or
/// options that cannot work, are refused before training, naming the file.
#[test]
fn train_refuses_labels_and_options_it_cannot_learn_from() {
    let dir = tempfile::tempdir().unwrap();
    let file = |name: &str, body: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, body).unwrap();
        p.to_str().unwrap().to_string()
    };
    let good = file("good.csv", "text,label\n你好,0\n傻子,1\n");
    let cases = [
        (
            file("cats.csv", "text,label\n你好,0\n加我,ads\n"),
            &[][..],
            "cats.csv:3: 1 rows are labelled with a category name (the first, on this line: \"ads\")",
        ),
        (
            file("ones.csv", "text,label\n你好,1\n傻子,TRUE\n"),
            &[],
            "2 of 2 rows are positive",
        ),
        (
            file("caps.csv", "text,label\n你好,Nope\n"),
            &[],
            "label \"Nope\"",
        ),
        (good.clone(), &["--epochs", "0"], "--epochs"),
        (good.clone(), &["--max-flag-rate", "1"], "--max-flag-rate"),
    ];
    for (data, extra, needle) in cases {
        let out = qunguard()
            .args(["train", "--bits", "10", "--data", &data, "--out"])
            .arg(dir.path().join("m.model"))
            .args(extra)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{data} {extra:?}: {err}");
        assert!(err.contains(needle), "{data} {extra:?}: {err}");
        assert!(
            !dir.path().join("m.model").exists(),
            "{data}: no model written"
        );
    }
}

/// A category label must name a category of the rules evaluated: a typo would count its texts
/// as misses of a category nothing flags.
#[test]
fn eval_refuses_a_label_naming_no_category_of_the_rules() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("e.jsonl");
    std::fs::write(
        &p,
        "{\"text\":\"傻子\",\"label\":\"insult\"}\n{\"text\":\"傻子\",\"label\":\"insults\"}\n",
    )
    .unwrap();
    let out = qunguard()
        .args(["eval", "--rules", "config/rules"])
        .arg(&p)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("e.jsonl:2: label \"insults\" is no category") && err.contains("insult, "),
        "{err}"
    );
}

#[test]
fn eval_reports_categories_overall_and_a_threshold_sweep() {
    let out = qunguard()
        .args(["eval", "--rules", "config/rules", SAMPLE])
        .output()
        .unwrap();
    succeeded(&out);
    let text = String::from_utf8(out.stdout).unwrap();
    for needle in [
        "599 labelled texts",
        "precision",
        "neg flagged",
        "\ninsult ",
        "\noffensive ",
        "\n(overall) ",
        "model pack offensive (scores.offensive):",
        "ROC AUC",
        "\n0.500 ",
        "\n0.965 *",
    ] {
        assert!(text.contains(needle), "{needle:?}: {text}");
    }

    // The report's numbers agree with figures computed from the verdicts directly.
    let rows = data::read(Path::new(SAMPLE)).unwrap();
    let engine = Engine::compile(&RuleSet::load_dir(Path::new("config/rules")).unwrap()).unwrap();
    let report = qunguard::scorer::eval::evaluate(&engine, &rows);
    let overall = report.rows.last().unwrap();
    assert_eq!(overall.name, "(overall)");
    let msgs: Vec<Message> = rows.iter().map(|r| msg("m", &r.text)).collect();
    let verdicts = engine.screen_batch(&msgs);
    let flagged_neg = verdicts
        .iter()
        .zip(&rows)
        .filter(|(v, r)| !v.categories.is_empty() && !r.label.is_positive())
        .count();
    assert_eq!(overall.counts.fp, flagged_neg);
    let scored: Vec<(f32, bool)> = verdicts
        .iter()
        .zip(&rows)
        .map(|(v, r)| (v.scores.get("offensive").unwrap(), r.label.is_positive()))
        .collect();
    assert_eq!(report.sweeps[0].figures, BinaryFigures::new(&scored, 0.965));
}
