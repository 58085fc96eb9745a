//! Numbers written in Chinese numerals reach the number rules with positions in the original;
//! short numeral runs and numeral words stay words; repeats fold after letter styles fold.

mod screening;

use qunguard::{Engine, MatchKind};
use screening::{Case, engine_of};

const PRIVACY: &str = r#"
category = "privacy"
action = "review"

[[regex]]
id = "privacy.phone"
pattern = "1[3-9][0-9]{9}"
validate = "cn_mobile"

[[regex]]
id = "privacy.qq"
pattern = "(?:qq|扣扣)[1-9][0-9]{6,10}"
"#;

const WORDS: &str = r#"
category = "porn"
action = "block"
words = ["一夜情", "三三两两"]
"#;

const SLANG: &str = r#"
category = "insult"
action = "review"
pinyin = true
words = ["fuck", "加vx", "asshole", "新年红包"]
"#;

fn engine() -> Engine {
    engine_of(&[("privacy", PRIVACY), ("porn", WORDS), ("slang", SLANG)])
}

fn check(cases: &[Case]) {
    screening::check(&engine(), cases);
}

#[test]
fn chinese_numeral_numbers_of_seven_or_more_digits_reach_the_number_rules() {
    use MatchKind::*;
    check(&[
        (
            "phone holding 零",
            "电话一三八零零一二三四五六",
            &[("privacy.phone", Regex, "一三八零零一二三四五六")],
        ),
        (
            "phone with 幺 and 零",
            "打幺五零零一二三零四五六",
            &[("privacy.phone", Regex, "幺五零零一二三零四五六")],
        ),
        (
            "phone with 〇",
            "一三八〇〇一二三四五六",
            &[("privacy.phone", Regex, "一三八〇〇一二三四五六")],
        ),
        (
            "financial numerals",
            "壹叁捌零零壹贰叁肆伍陆",
            &[("privacy.phone", Regex, "壹叁捌零零壹贰叁肆伍陆")],
        ),
        (
            "mixed with ascii digits and noise",
            "call 1三8 零-零 1二3 4五6 now",
            &[("privacy.phone", Regex, "1三8 零-零 1二3 4五6")],
        ),
        (
            "qq number of seven numerals",
            "扣扣幺二三四五六七",
            &[("privacy.qq", Regex, "扣扣幺二三四五六七")],
        ),
        ("six numerals are not a number", "扣扣一二三四五六", &[]),
        (
            "numeral words stay words",
            "一夜情",
            &[("porn:一夜情", Term, "一夜情")],
        ),
        (
            "four numerals stay a word",
            "三三两两",
            &[("porn:三三两两", Term, "三三两两")],
        ),
        ("idiom", "他一五一十地说了", &[]),
        ("counting rhyme", "九九八十一难", &[]),
    ]);
}

#[test]
fn repeats_fold_after_letter_styles_fold() {
    use MatchKind::*;
    check(&[
        (
            "letter styles and repeats (houbb/sensitive-word's case)",
            "ⒻⒻⒻfⓤuⓤ⒰cⓒ⒦",
            &[("slang:fuck", Pinyin, "ⒻⒻⒻfⓤuⓤ⒰cⓒ⒦")],
        ),
        (
            "repeated Han and letters",
            "加加VVXX",
            &[("slang:加vx", Pinyin, "加加VVXX")],
        ),
        (
            "repeated ascii letters",
            "what the ffuuck",
            &[("slang:fuck", Pinyin, "ffuuck")],
        ),
        ("the literal term", "fuck", &[("slang:fuck", Term, "fuck")]),
        (
            "a term holding a double letter",
            "asshole",
            &[("slang:asshole", Term, "asshole")],
        ),
        (
            "its double letter tripled",
            "assshole",
            &[("slang:asshole", Pinyin, "assshole")],
        ),
        (
            "romanised syllables meeting on one letter",
            "xin nian hong bao",
            &[("slang:新年红包", Pinyin, "xin nian hong bao")],
        ),
        (
            "Han text only matching the folded key stays unmatched",
            "西年红包",
            &[],
        ),
        ("glued to a longer word", "ffuuckers", &[]),
    ]);
}
