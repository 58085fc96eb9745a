//! Engine behaviour, table-driven: each evasion form, offsets back into the original text,
//! allow-lists, validators through the full path, and homophones that must not match.

mod screening;

use qunguard::{Action, Engine, MatchKind, Message, Pack, RuleSet};
use screening::{Case, engine_of, msg};
use std::path::Path;

const ADS: &str = r#"
category = "ads"
action = "review"
pinyin = true
words = ["代开发票", "加v", "sb"]
allow = ["发票代开发票查询"]
"#;

const WEAPONS: &str = r#"
category = "weapons"
action = "block"
pinyin = true
words = ["枪支"]
allow = ["水枪支架"]
"#;

const PORN: &str = r#"
category = "pornography"
action = "block"
words = ["一夜情"]
"#;

const PRIVACY: &str = r#"
category = "privacy"
action = "review"

[[regex]]
id = "privacy.phone"
pattern = "1[3-9][0-9]{9}"
validate = "cn_mobile"

[[regex]]
id = "privacy.id_card"
pattern = "[1-9][0-9]{16}[0-9x]"
action = "block"
validate = "cn_id_card"

[[regex]]
id = "privacy.bank_card"
pattern = "[1-9][0-9]{11,18}"
action = "block"
validate = "luhn"
"#;

fn engine() -> Engine {
    engine_of(&[
        ("ads", ADS),
        ("weapons", WEAPONS),
        ("porn", PORN),
        ("privacy", PRIVACY),
    ])
}

#[test]
fn evasion_forms_are_caught_with_original_positions() {
    use MatchKind::*;
    let cases: &[Case] = &[
        (
            "plain",
            "需要代开发票吗",
            &[("ads:代开发票", Term, "代开发票")],
        ),
        (
            "traditional",
            "代開發票",
            &[("ads:代开发票", Term, "代開發票")],
        ),
        ("full-width and case", "加Ｖ", &[("ads:加v", Term, "加Ｖ")]),
        (
            "spaces",
            "代 开 发 票",
            &[("ads:代开发票", Term, "代 开 发 票")],
        ),
        (
            "ideographic space",
            "代\u{3000}开发票",
            &[("ads:代开发票", Term, "代\u{3000}开发票")],
        ),
        (
            "zero-width",
            "代\u{200B}开\u{200C}发\u{200D}票",
            &[("ads:代开发票", Term, "代\u{200B}开\u{200C}发\u{200D}票")],
        ),
        (
            "emoji",
            "代😀开🔥发票",
            &[("ads:代开发票", Term, "代😀开🔥发票")],
        ),
        (
            "punctuation",
            "代-开.发,票",
            &[("ads:代开发票", Term, "代-开.发,票")],
        ),
        (
            "line breaks",
            "代\n开\r\n发\n票",
            &[("ads:代开发票", Term, "代\n开\r\n发\n票")],
        ),
        (
            "repeated characters",
            "代代开开发发票票",
            &[("ads:代开发票", Pinyin, "代代开开发发票票")],
        ),
        (
            "pinyin",
            "dai kai fa piao",
            &[("ads:代开发票", Pinyin, "dai kai fa piao")],
        ),
        (
            "homophone",
            "代开发飘",
            &[("ads:代开发票", Pinyin, "代开发飘")],
        ),
        (
            "homophone variant",
            "枪枝出售",
            &[("weapons:枪支", Pinyin, "枪枝")],
        ),
        ("ordinary word with the same pinyin", "法院强制执行", &[]),
        ("allow list", "水枪支架在哪买", &[]),
        (
            "term outside the allowed span",
            "水枪支架和枪支",
            &[("weapons:枪支", Term, "枪支")],
        ),
        ("ascii term glued to a word", "it is bad", &[]),
        (
            "ascii term standing alone",
            "你是sb吗",
            &[("ads:sb", Term, "sb")],
        ),
        (
            "numerals are not digits in words",
            "一夜情",
            &[("porn:一夜情", Term, "一夜情")],
        ),
        (
            "chinese numeral phone",
            "电话幺三八一二三四五六七八",
            &[("privacy.phone", Regex, "幺三八一二三四五六七八")],
        ),
        (
            "spaced phone",
            "138 1234 5678",
            &[("privacy.phone", Regex, "138 1234 5678")],
        ),
        (
            "circled digits",
            "①③⑧1234５６７８",
            &[("privacy.phone", Regex, "①③⑧1234５６７８")],
        ),
        (
            "id card with checksum",
            "证件11010519491231002X",
            &[("privacy.id_card", Regex, "11010519491231002X")],
        ),
        ("id card with a bad checksum", "证件110105194912310021", &[]),
        (
            "bank card with Luhn",
            "卡号6222021234567890128",
            &[("privacy.bank_card", Regex, "6222021234567890128")],
        ),
        ("bank card failing Luhn", "卡号6222020200112233442", &[]),
        ("phone inside a longer number", "单号913812345678", &[]),
        ("nothing", "今天天气不错", &[]),
    ];
    let e = engine();
    screening::check(&e, cases);
}

#[test]
fn verdict_takes_the_strongest_action_and_lists_categories() {
    let e = engine();
    let v = e.screen(&msg("代开发票，另有枪支"));
    assert_eq!(v.action, Action::Block);
    assert_eq!(
        v.categories.iter().map(|c| &**c).collect::<Vec<_>>(),
        ["ads", "weapons"]
    );
    assert_eq!(e.screen(&msg("代开发票")).action, Action::Review);
    let clean = e.screen(&msg("你好"));
    assert_eq!(clean.action, Action::Allow);
    assert!(clean.categories.is_empty());
    assert_eq!(&*clean.rules_version, e.rules_version());
}

#[test]
fn batch_screening_matches_one_by_one_and_keeps_order() {
    let e = engine();
    let texts = [
        "代开发票",
        "你好",
        "138 1234 5678",
        "dai kai fa piao",
        "枪支",
        "",
        "😀",
        "一夜情",
        "11010519491231002X",
        "强制",
    ];
    // Enough messages for several parallel chunks, so chunk boundaries are crossed too.
    let msgs: Vec<Message> = (0..5000)
        .map(|i| {
            let mut m = msg(texts[i % texts.len()]);
            m.id = i.to_string().into();
            m
        })
        .collect();
    let batch = e.screen_batch(&msgs);
    assert_eq!(batch.len(), msgs.len());
    for (m, v) in msgs.iter().zip(&batch) {
        assert_eq!(v.id, m.id);
        assert_eq!(*v, e.screen(m), "message {}", m.text);
    }
}

#[test]
fn regex_matches_do_not_leak_across_messages() {
    // A regex that could run over the separator between batched messages.
    let pack = Pack::parse(
        Path::new("rules/leak.toml"),
        "category = \"leak\"\naction = \"review\"\n[[regex]]\nid = \"leak.any\"\npattern = \"[^z]{3}b\"\n",
    )
    .unwrap();
    let e = Engine::compile(&RuleSet::new(vec![pack]).unwrap()).unwrap();
    let msgs = vec![msg("aa"), msg("ab"), msg("xxxb")];
    let v = e.screen_batch(&msgs);
    assert!(v[0].hits.is_empty() && v[1].hits.is_empty(), "{v:?}");
    assert_eq!(v[2].hits.len(), 1);
    assert_eq!(v[2].hits[0].text, "xxxb");
}

#[test]
fn engine_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Engine>();
    check::<std::sync::Arc<Engine>>();
}

#[test]
fn shipped_rule_packs_compile_and_catch_their_samples() {
    let rules = RuleSet::load_dir(Path::new("config/rules")).unwrap();
    let e = Engine::compile(&rules).unwrap();
    // One sample per shipped category: the packs must really cover every prohibited class.
    let samples = [
        ("subversion", "煽动颠覆国家政权"),
        ("pornography", "约炮加我"),
        ("violence_terror", "教你制作炸弹"),
        ("gambling", "百家乐网上赌场"),
        ("drugs", "出冰毒"),
        ("weapons", "出售仿真枪"),
        ("ads", "代开发票"),
        ("vote_canvassing", "帮忙投票谢谢"),
        ("rumour", "转发扩散"),
        ("insult", "你个脑残"),
        ("privacy", "人肉搜索他"),
        ("trade_secret", "这是商业机密"),
        ("disorder", "明天集体上访"),
    ];
    for (cat, text) in samples {
        let v = e.screen(&msg(text));
        assert!(
            v.categories.iter().any(|c| &**c == cat),
            "{cat}: {text}: {v:?}"
        );
    }
    assert_eq!(
        e.screen(&msg("周末去溜冰场，买了大麻花")).action,
        Action::Allow
    );
}
