//! Rule packs: the on-disk format, loading and validation.
//!
//! A pack is one TOML file in the rules directory (format in README.md). Loading checks every
//! key and term and reports the first problem as a [`RuleError`] that names the file, the key or
//! line, and the fix, because operators edit these files by hand under time pressure.

use crate::model::Action;
use crate::screen::normalise::normalise;
use serde::Deserialize;
use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use toml::Spanned;

mod regex_check;
mod validate;
pub use validate::Validator;
pub(crate) use validate::check_with as validate_match;

/// A problem in a rule pack, with enough context to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleError {
    /// The file at fault (a pack or its words file).
    pub file: PathBuf,
    /// The key at fault, e.g. `words[3]` or `regex[0].pattern`, or empty for the whole file.
    pub key: String,
    /// 1-based line in `file`, when known.
    pub line: Option<usize>,
    /// What is wrong.
    pub problem: String,
    /// What to do about it.
    pub fix: String,
}

impl fmt::Display for RuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if !self.key.is_empty() {
            write!(f, ": key `{}`", self.key)?;
        }
        write!(f, ": {}", self.problem)?;
        if !self.fix.is_empty() {
            write!(f, " (fix: {})", self.fix)?;
        }
        Ok(())
    }
}

impl std::error::Error for RuleError {}

impl RuleError {
    /// A maker of errors in the pack `file`: `(key, line, problem, fix)` → the error. Every
    /// parser of a pack file reports through one, so all name the file the same way.
    pub(crate) fn in_file(
        file: &Path,
    ) -> impl Fn(&str, Option<usize>, String, &str) -> RuleError + '_ {
        move |key, line, problem, fix| RuleError {
            file: file.to_path_buf(),
            key: key.to_string(),
            line,
            problem,
            fix: fix.to_string(),
        }
    }
}

/// The action a pack or regex may carry: packs never "allow".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum PackAction {
    Review,
    Block,
}

impl From<PackAction> for Action {
    fn from(a: PackAction) -> Action {
        match a {
            PackAction::Review => Action::Review,
            PackAction::Block => Action::Block,
        }
    }
}

/// The pack file as written (see README.md, "Rule packs").
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PackFile {
    category: Spanned<String>,
    action: PackAction,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    words: Vec<Spanned<String>>,
    #[serde(default)]
    words_file: Option<Spanned<String>>,
    #[serde(default)]
    allow: Vec<Spanned<String>>,
    #[serde(default)]
    pinyin: bool,
    #[serde(default)]
    regex: Vec<Spanned<RegexFile>>,
    #[serde(default)]
    shadow: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RegexFile {
    id: Spanned<String>,
    pattern: Spanned<String>,
    #[serde(default)]
    action: Option<PackAction>,
    #[serde(default)]
    validate: Option<Validator>,
    #[serde(default)]
    shadow: Option<bool>,
}

/// One term of a pack, after normalisation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Term<'a> {
    /// The term as written in the pack (used in the rule id).
    pub written: &'a str,
    /// The term normalised with the same function as message text.
    pub normalised: &'a str,
}

/// A list of terms in one buffer. A `String` per spelling cost more in allocation headers,
/// capacity slack and pointers than the terms' own bytes (a 64k-word dictionary is ~1 MB of
/// text), and a large pack is held in full while its engine compiles.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Terms {
    /// Each term's written form followed by its normalised form.
    text: String,
    /// Per term: where its written form ends and where its normalised form ends in `text`.
    ends: Vec<(u32, u32)>,
}

impl Terms {
    /// The number of terms.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// True when there are no terms.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Term `i`, if there is one.
    pub fn get(&self, i: usize) -> Option<Term<'_>> {
        let &(written_end, end) = self.ends.get(i)?;
        let start = i.checked_sub(1).map_or(0, |p| self.ends[p].1);
        Some(Term {
            written: &self.text[start as usize..written_end as usize],
            normalised: &self.text[written_end as usize..end as usize],
        })
    }

    /// The terms in order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = Term<'_>> + '_ {
        (0..self.len()).map(|i| self.get(i).expect("index in range"))
    }

    fn push(&mut self, written: &str, normalised: &str) {
        self.text.push_str(written);
        let written_end = self.text.len();
        self.text.push_str(normalised);
        let end = self.text.len();
        // Offsets are u32 to halve the index; a pack's terms never reach 4 GiB of text.
        let offset = |n: usize| u32::try_from(n).expect("a pack's terms fit in 4 GiB");
        self.ends.push((offset(written_end), offset(end)));
    }

    /// Keeps the first term of each normalised form. Sorting indices finds the duplicates
    /// without a second copy of every normalised term in a set.
    fn dedup_normalised(&mut self) {
        let mut order: Vec<u32> = (0..self.len() as u32).collect();
        // Stable: among equal forms the first written stays first.
        order.sort_by(|&a, &b| {
            let n = |i: u32| self.get(i as usize).expect("index in range").normalised;
            n(a).cmp(n(b))
        });
        let mut keep = vec![true; self.len()];
        for pair in order.windows(2) {
            let n = |i: u32| self.get(i as usize).expect("index in range").normalised;
            if n(pair[0]) == n(pair[1]) {
                keep[pair[1] as usize] = false;
            }
        }
        if keep.iter().all(|&k| k) {
            return;
        }
        let mut kept = Terms::default();
        for (t, keep) in self.iter().zip(keep) {
            if keep {
                kept.push(t.written, t.normalised);
            }
        }
        kept.text.shrink_to_fit();
        kept.ends.shrink_to_fit();
        *self = kept;
    }
}

/// Lines of a pack's source, for the positions in errors. Moves from the last position asked
/// for, so numbering every word of an inline list in order reads the source once: counting
/// from the start for each word made a 100k-word list take 17 s to load.
struct Lines<'a> {
    src: &'a [u8],
    pos: usize,
    line: usize,
    /// Source bytes read so far, so a test can check the cost stays linear.
    read: usize,
}

impl<'a> Lines<'a> {
    fn new(src: &'a str) -> Lines<'a> {
        Lines {
            src: src.as_bytes(),
            pos: 0,
            line: 1,
            read: 0,
        }
    }

    /// The 1-based line of byte `byte`.
    fn line_of(&mut self, byte: usize) -> usize {
        let byte = byte.min(self.src.len());
        let newlines = |b: &[u8]| memchr::memchr_iter(b'\n', b).count();
        if byte >= self.pos {
            self.line += newlines(&self.src[self.pos..byte]);
        } else {
            self.line -= newlines(&self.src[byte..self.pos]);
        }
        self.read += byte.abs_diff(self.pos);
        self.pos = byte;
        self.line
    }
}

/// One regex rule of a pack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegexRule {
    /// Unique rule id across all packs.
    pub id: String,
    /// Hyperscan pattern, matched on the normalised text.
    pub pattern: String,
    /// The action of a hit.
    pub action: Action,
    /// Optional checksum/format validator every hit must pass.
    pub validate: Option<Validator>,
    /// Hits are only recorded (marked `shadow` on the verdict), never acted on. Set on the
    /// regex, or inherited from its pack.
    pub shadow: bool,
    pub(crate) file: PathBuf,
    pub(crate) line: usize,
}

/// A loaded, validated rule pack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pack {
    /// Pack name: the file name without `.toml`. Term rule ids are `NAME:TERM`.
    pub name: String,
    /// The label written on verdicts.
    pub category: String,
    /// The action for term hits.
    pub action: Action,
    /// Free text for operators.
    pub description: Option<String>,
    /// Terms, normalised, without duplicates (first spelling kept).
    pub terms: Terms,
    /// Allowed terms, normalised: a hit lying wholly inside one is dropped.
    pub allow: Terms,
    /// Also match the terms' pinyin spellings, homophones and repeated characters.
    pub pinyin: bool,
    /// Regex rules.
    pub regexes: Vec<RegexRule>,
    /// A shadow pack's hits are written on verdicts with `"shadow": true` and counted, but
    /// change neither the action nor the categories (nor anything the heuristics do): how a
    /// new rule is tried on live traffic. Any kind of pack honours it through this flag.
    pub shadow: bool,
    /// Where the pack was loaded from.
    pub path: PathBuf,
}

/// All packs of a rules directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleSet {
    /// Packs in file-name order.
    pub packs: Vec<Pack>,
    /// Model packs (a `model` key instead of terms) in file-name order.
    pub models: Vec<crate::scorer::ModelPack>,
}

impl RuleSet {
    /// Loads and validates every `*.toml` pack in `dir`.
    pub fn load_dir(dir: &Path) -> Result<RuleSet, RuleError> {
        let entries = std::fs::read_dir(dir).map_err(|e| RuleError {
            file: dir.to_path_buf(),
            key: String::new(),
            line: None,
            problem: format!("cannot read the rules directory: {e}"),
            fix: "point --rules, `rules.dir` in the config or QUNGUARD_RULES_DIR at a directory of *.toml packs (the shipped ones are in config/rules)".into(),
        })?;
        let mut files: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect();
        files.sort();
        if files.is_empty() {
            return Err(RuleError {
                file: dir.to_path_buf(),
                key: String::new(),
                line: None,
                problem: "no rule packs (*.toml) in this directory".into(),
                fix: "add at least one pack; see README.md, \"Rule packs\"".into(),
            });
        }
        let mut packs = Vec::new();
        let mut models = Vec::new();
        for f in &files {
            let src = std::fs::read_to_string(f).map_err(|e| RuleError {
                file: f.clone(),
                key: String::new(),
                line: None,
                problem: format!("cannot read the pack: {e}"),
                fix: "make the file readable UTF-8 text".into(),
            })?;
            if crate::scorer::is_model_pack(&src) {
                models.push(crate::scorer::ModelPack::parse(f, &src)?);
            } else {
                packs.push(Pack::parse(f, &src)?);
            }
        }
        RuleSet::new(packs)?.with_models(models)
    }

    /// Adds model packs, checking that their names are not used by another pack and their
    /// categories not by another model pack.
    pub fn with_models(
        mut self,
        models: Vec<crate::scorer::ModelPack>,
    ) -> Result<RuleSet, RuleError> {
        for (i, m) in models.iter().enumerate() {
            let earlier = &models[..i];
            let clash = self
                .packs
                .iter()
                .map(|p| (&p.name, &p.path))
                .chain(earlier.iter().map(|o| (&o.name, &o.path)))
                .find(|(name, _)| **name == m.name);
            if let Some((_, other)) = clash {
                return Err(RuleError {
                    file: m.path.clone(),
                    key: String::new(),
                    line: None,
                    problem: format!("pack name `{}` is also used by {}", m.name, other.display()),
                    fix: "rename one of the files".into(),
                });
            }
            // A term pack may share the category (the model then adds to it); two models may
            // not, since a score is keyed by its category.
            if let Some(other) = earlier.iter().find(|o| o.category == m.category) {
                return Err(RuleError {
                    file: m.path.clone(),
                    key: "category".into(),
                    line: None,
                    problem: format!(
                        "category `{}` is also used by {}; a model pack's category keys its score",
                        m.category,
                        other.path.display()
                    ),
                    fix: "give the model pack a category of its own".into(),
                });
            }
        }
        self.models.extend(models);
        Ok(self)
    }

    /// Builds a rule set from already parsed packs, checking cross-pack constraints
    /// (unique regex ids, unique pack names).
    pub fn new(packs: Vec<Pack>) -> Result<RuleSet, RuleError> {
        let mut names = HashMap::new();
        let mut ids: HashMap<&str, (&Path, usize)> = HashMap::new();
        for pack in &packs {
            if let Some(other) = names.insert(pack.name.as_str(), &pack.path) {
                return Err(RuleError {
                    file: pack.path.clone(),
                    key: String::new(),
                    line: None,
                    problem: format!(
                        "pack name `{}` is also used by {}",
                        pack.name,
                        other.display()
                    ),
                    fix: "rename one of the files".into(),
                });
            }
            for r in &pack.regexes {
                if let Some((file, line)) = ids.insert(r.id.as_str(), (&r.file, r.line)) {
                    return Err(RuleError {
                        file: r.file.clone(),
                        key: "regex.id".into(),
                        line: Some(r.line),
                        problem: format!(
                            "duplicate regex id `{}` (first defined at {}:{line})",
                            r.id,
                            file.display()
                        ),
                        fix: "give every regex a unique id across all packs".into(),
                    });
                }
            }
        }
        Ok(RuleSet {
            packs,
            models: Vec::new(),
        })
    }
}

/// A pack's name: its file name without the extension.
pub(crate) fn pack_name(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// A pack's `category`, trimmed, when it is a lowercase label (it becomes a metric label);
/// term packs and model packs share the rule.
pub(crate) fn category_label(
    path: &Path,
    raw: &str,
    line: Option<usize>,
) -> Result<String, RuleError> {
    let category = raw.trim();
    if category.is_empty()
        || !category
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    {
        return Err(RuleError {
            file: path.to_path_buf(),
            key: "category".into(),
            line,
            problem: format!("category {raw:?} is not a lowercase label"),
            fix: "use lowercase ASCII letters, digits and '_' (it becomes a metric label)".into(),
        });
    }
    Ok(category.to_string())
}

/// A pack key as its author wrote it (`regex[0].pattern`): without the wrappers `Spanned`
/// values add to the path; empty for the document as a whole (a missing key, say) or a place
/// the path could not follow. Messages use it too, to name a field of the wrong type.
pub(crate) fn key_path(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut key = String::new();
    for segment in path.iter() {
        match segment {
            Segment::Seq { index } => key.push_str(&format!("[{index}]")),
            Segment::Map { key: k } if k.starts_with("$__serde_spanned") => {}
            Segment::Map { key: k } | Segment::Enum { variant: k } => {
                if !key.is_empty() {
                    key.push('.');
                }
                key.push_str(k);
            }
            Segment::Unknown => return String::new(),
        }
    }
    key
}

impl Pack {
    /// Parses and validates one pack. `path` names the file in errors and locates `words_file`.
    pub fn parse(path: &Path, src: &str) -> Result<Pack, RuleError> {
        Pack::parse_with(path, src, &mut Lines::new(src))
    }

    fn parse_with(path: &Path, src: &str, lines: &mut Lines<'_>) -> Result<Pack, RuleError> {
        let err = RuleError::in_file(path);
        let fix = "see README.md, \"Rule packs\", for the keys a pack may have";
        let de = toml::Deserializer::parse(src).map_err(|e| {
            let line = e.span().map(|s| lines.line_of(s.start));
            err("", line, e.message().trim().to_string(), fix)
        })?;
        // The path of the value at fault, as config files name it: a wrong type or an unknown
        // action names its key (`action`, `regex[0].pattern`).
        let file: PackFile = serde_path_to_error::deserialize(de).map_err(|e| {
            let key = key_path(e.path());
            let e = e.into_inner();
            let line = e.span().map(|s| lines.line_of(s.start));
            err(&key, line, e.message().trim().to_string(), fix)
        })?;
        let name = pack_name(path);
        let at = Some(lines.line_of(file.category.span().start));
        let category = category_label(path, file.category.get_ref(), at)?;

        let mut terms = Terms::default();
        // `word`: the index in `words`, named in an error (none for a words file's lines).
        let mut add_term = |written: &str, word: Option<usize>, line: usize| {
            let normalised = normalise(written).text;
            if normalised.is_empty() {
                let key = word.map(|i| format!("words[{i}]")).unwrap_or_default();
                return Err(err(
                    &key,
                    Some(line),
                    format!(
                        "term {written:?} is empty after normalisation (it has no letters or digits)"
                    ),
                    "remove it, or write the letters/digits it should match",
                ));
            }
            terms.push(written.trim(), &normalised);
            Ok(())
        };
        for (i, w) in file.words.iter().enumerate() {
            add_term(w.get_ref(), Some(i), lines.line_of(w.span().start))?;
        }
        if let Some(wf) = &file.words_file {
            let words_path = path
                .parent()
                .unwrap_or(Path::new("."))
                .join(wf.get_ref().as_str());
            let text = std::fs::read_to_string(&words_path).map_err(|e| {
                err(
                    "words_file",
                    Some(lines.line_of(wf.span().start)),
                    format!("cannot read words file {}: {e}", words_path.display()),
                    "the path is relative to the pack's directory; create the file or fix the path",
                )
            })?;
            for (n, raw) in text.lines().enumerate() {
                let term = raw.trim();
                if term.is_empty() || term.starts_with('#') {
                    continue;
                }
                add_term(term, None, n + 1).map_err(|mut e| {
                    e.file = words_path.clone();
                    e
                })?;
            }
        }

        terms.dedup_normalised();

        let mut allow = Terms::default();
        for (i, a) in file.allow.iter().enumerate() {
            let normalised = normalise(a.get_ref()).text;
            if normalised.is_empty() {
                return Err(err(
                    &format!("allow[{i}]"),
                    Some(lines.line_of(a.span().start)),
                    format!(
                        "allowed term {:?} is empty after normalisation",
                        a.get_ref()
                    ),
                    "remove it",
                ));
            }
            allow.push(a.get_ref(), &normalised);
        }

        let mut regexes = Vec::new();
        for (i, r) in file.regex.iter().enumerate() {
            let line = lines.line_of(r.span().start);
            let rf = r.get_ref();
            let id = rf.id.get_ref().trim().to_string();
            if id.is_empty() || id.chars().any(|c| c.is_whitespace()) {
                return Err(err(
                    &format!("regex[{i}].id"),
                    Some(lines.line_of(rf.id.span().start)),
                    format!("regex id {:?} is empty or has spaces", rf.id.get_ref()),
                    "use a dotted name such as `privacy.phone`",
                ));
            }
            let pattern = rf.pattern.get_ref().clone();
            let pattern_line = lines.line_of(rf.pattern.span().start);
            if let Err(problem) = regex_check::check(&pattern) {
                return Err(err(
                    &format!("regex[{i}].pattern"),
                    Some(pattern_line),
                    format!("pattern {pattern:?} of `{id}` cannot be used: {problem}"),
                    "patterns use Rust regex syntax without lookaround, backreferences, word \
                     boundaries or \\d \\w \\s, and match normalised text: lowercase, with \
                     spaces and punctuation removed (README: \"Rule packs\")",
                ));
            }
            regexes.push(RegexRule {
                id,
                pattern,
                action: rf.action.map(Action::from).unwrap_or(file.action.into()),
                validate: rf.validate,
                shadow: rf.shadow.unwrap_or(file.shadow),
                file: path.to_path_buf(),
                line,
            });
        }
        if terms.is_empty() && regexes.is_empty() {
            return Err(err(
                "",
                None,
                "the pack has no words, words_file or regex, so it can never match".into(),
                "add terms or regexes, or delete the pack",
            ));
        }
        Ok(Pack {
            name,
            category,
            action: file.action.into(),
            description: file.description,
            terms,
            allow,
            pinyin: file.pinyin,
            regexes,
            shadow: file.shadow,
            path: path.to_path_buf(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(src: &str) -> Result<Pack, RuleError> {
        Pack::parse(Path::new("rules/test.toml"), src)
    }

    #[test]
    fn valid_pack_parses() {
        let p = parse(
            r#"
category = "ads"
action = "review"
words = ["代開發票", "加VX", "代开发票"]
allow = ["发票查询"]
pinyin = true

[[regex]]
id = "privacy.phone"
pattern = "1[3-9][0-9]{9}"
action = "block"
validate = "cn_mobile"
"#,
        )
        .unwrap();
        assert_eq!(p.name, "test");
        assert_eq!(p.action, Action::Review);
        // 代開發票 and 代开发票 normalise alike: the duplicate is folded into the first.
        let norm: Vec<_> = p.terms.iter().map(|t| t.normalised).collect();
        assert_eq!(norm, ["代开发票", "加vx"]);
        assert_eq!(p.regexes[0].action, Action::Block);
        assert_eq!(p.regexes[0].validate, Some(Validator::CnMobile));
        assert!(p.pinyin);
    }

    /// (pack source, key the error must name, line it must name, words it must contain)
    #[test]
    fn bad_packs_name_key_line_and_fix() {
        let cases: &[(&str, &str, Option<usize>, &str)] = &[
            (
                "category = \"ads\"\naction = \"review\"\nwordz = [\"x\"]\n",
                "wordz",
                Some(3),
                "unknown field `wordz`",
            ),
            (
                "category = \"ads\"\naction = \"allow\"\nwords = [\"x\"]\n",
                "action",
                Some(2),
                "unknown variant `allow`",
            ),
            (
                "category = \"ads\"\naction = \"review\"\nwords = [\"ok\",\n  \" ！！ \"]\n",
                "words[1]",
                Some(4),
                "empty after normalisation",
            ),
            (
                "category = \"ads\"\naction = \"review\"\n[[regex]]\nid = \"a.b\"\npattern = \"(ab\"\n",
                "regex[0].pattern",
                Some(5),
                "cannot be used",
            ),
            (
                "category = \"ads\"\naction = \"review\"\n[[regex]]\nid = \"a.url\"\npattern = 'www\\.[a-z]+'\n",
                "regex[0].pattern",
                Some(5),
                "'.' never occurs in normalised text",
            ),
            (
                "category = \"ads\"\naction = \"review\"\n[[regex]]\nid = \"a.b\"\npattern = \"ab\"\nvalidate = \"crc\"\n",
                "regex[0].validate",
                Some(6),
                "unknown variant `crc`",
            ),
            (
                "category = \"ads\"\naction = \"review\"\nwords_file = \"missing.txt\"\n",
                "words_file",
                Some(3),
                "cannot read words file",
            ),
            (
                "action = \"review\"\ncategory = \"Ads Pack\"\nwords = [\"x\"]\n",
                "category",
                Some(2),
                "not a lowercase label",
            ),
            (
                "category = \"ads\"\naction = \"review\"\n",
                "",
                None,
                "never match",
            ),
            (
                "action = \"review\"\nwords = [\"x\"]\n",
                "",
                Some(1),
                "missing field `category`",
            ),
            // A value of the wrong type names its key, as written (no serde wrappers).
            (
                "category = \"ads\"\naction = \"review\"\nwords = \"x\"\n",
                "words",
                Some(3),
                "expected a sequence",
            ),
            (
                "category = \"ads\"\naction = \"review\"\n[[regex]]\nid = \"a.b\"\npattern = 5\n",
                "regex[0].pattern",
                Some(5),
                "expected a string",
            ),
            (
                "category = \"ads\"\naction = \"review\"\nwords = [\"x\"]\npinyin = \"yes\"\n",
                "pinyin",
                Some(4),
                "expected a boolean",
            ),
        ];
        for (src, key, line, needle) in cases {
            let e = parse(src).expect_err(src);
            assert_eq!(e.key, *key, "{src}: {e}");
            assert_eq!(e.line, *line, "{src}: {e}");
            let shown = e.to_string();
            assert!(shown.contains(needle), "{src}: {shown}");
            assert!(shown.starts_with("rules/test.toml"), "{shown}");
        }
    }

    /// Loading must stay linear in the pack's size: every word's line is found by reading the
    /// source once, however long the inline list. Counted, not timed.
    #[test]
    fn inline_word_lines_read_the_source_once() {
        let words = 5_000;
        let mut src = String::from("category = \"ads\"\naction = \"review\"\nwords = [\n");
        for i in 0..words {
            src.push_str(&format!("  \"词{i}\",\n"));
        }
        src.push_str("]\nallow = [\"词1号\"]\n[[regex]]\nid = \"a.b\"\npattern = \"ab\"\n");
        let mut lines = Lines::new(&src);
        let pack = Pack::parse_with(Path::new("rules/test.toml"), &src, &mut lines).unwrap();
        assert_eq!(pack.terms.len(), words);
        assert!(
            lines.read <= src.len(),
            "read {} bytes of a {}-byte pack to number its lines",
            lines.read,
            src.len()
        );

        // Asking again, or for earlier positions, reads only the distance moved.
        let mut lines = Lines::new("a\nb\nc\n");
        assert_eq!([4, 4, 0, 2, 6].map(|b| lines.line_of(b)), [3, 3, 1, 2, 4]);
        assert_eq!(lines.read, 4 + 4 + 2 + 4);
    }

    #[test]
    fn duplicate_terms_keep_the_first_spelling_in_order() {
        let p = parse(
            "category = \"ads\"\naction = \"review\"\nwords = [\"b\", \"代開\", \"Ａ\", \"B\", \"代开\", \"a\", \"c\"]\n",
        )
        .unwrap();
        let got: Vec<_> = p.terms.iter().map(|t| (t.written, t.normalised)).collect();
        assert_eq!(got, [("b", "b"), ("代開", "代开"), ("Ａ", "a"), ("c", "c")]);
        assert_eq!(p.terms.get(3).map(|t| t.written), Some("c"));
        assert_eq!(p.terms.get(4), None);
    }

    #[test]
    fn duplicate_regex_ids_across_packs_are_rejected() {
        let a =
            "category = \"a\"\naction = \"review\"\n[[regex]]\nid = \"x.y\"\npattern = \"ab\"\n";
        let p1 = Pack::parse(Path::new("r/a.toml"), a).unwrap();
        let p2 = Pack::parse(Path::new("r/b.toml"), a).unwrap();
        let e = RuleSet::new(vec![p1, p2]).unwrap_err();
        assert!(e.to_string().contains("duplicate regex id `x.y`"), "{e}");
        assert_eq!(e.file, Path::new("r/b.toml"));
    }

    #[test]
    fn words_file_is_read_beside_the_pack_with_comments() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("w.txt"), "# comment\n代开发票\n\n刷单\n").unwrap();
        let pack_path = dir.path().join("ads.toml");
        std::fs::write(
            &pack_path,
            "category = \"ads\"\naction = \"review\"\nwords_file = \"w.txt\"\n",
        )
        .unwrap();
        let set = RuleSet::load_dir(dir.path()).unwrap();
        let terms: Vec<_> = set.packs[0].terms.iter().map(|t| t.written).collect();
        assert_eq!(terms, ["代开发票", "刷单"]);

        std::fs::write(dir.path().join("w.txt"), "ok\n😀😀\n").unwrap();
        let e = RuleSet::load_dir(dir.path()).unwrap_err();
        assert_eq!(e.file, dir.path().join("w.txt"));
        assert_eq!(e.line, Some(2));
    }
}
