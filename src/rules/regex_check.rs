//! Pack regexes checked and explained in qunguard's terms.
//!
//! The matcher (Hyperscan over the dense encoding of normalised text) has its own limits and
//! its own wording for them ("use HS_FLAG_ALLOWEMPTY", "Pattern length exceeds limit"). Pack
//! authors write Rust regex syntax over normalised text, so problems are reported in those
//! terms, with what to write instead.
//!
//! One rule for the shorthand classes: `\d`, `\w` and `\s` (and `\D`, `\W`, `\S`) are rejected
//! wherever they appear. In Unicode mode they stand for hundreds of ranges, which the matcher
//! can hold in a short pattern (`\d{5}`) but not a long one (`\d{11}`): rejecting some and not
//! others by size would be a rule nobody can predict. What to write instead is exact over
//! normalised text.

use regex_syntax::ast::{self, Ast, ClassPerlKind, ClassSetItem, Visitor};

/// Checks that `pattern` can be used as a pack regex; the error says why not and what to write.
pub(super) fn check(pattern: &str) -> Result<(), String> {
    if let Ok(tree) = ast::parse::Parser::new().parse(pattern) {
        ast::visit(&tree, Shorthands)?;
    }
    // Translation errors are qunguard's own words already; only the matcher's need explaining.
    crate::screen::dense::translate_regex(pattern)?;
    crate::screen::matcher::check_regex(pattern).map_err(|m| explain(&m))
}

/// Finds the first shorthand class, inside or outside brackets.
struct Shorthands;

fn shorthand(c: &ast::ClassPerl) -> String {
    let (name, fix) = match c.kind {
        ClassPerlKind::Digit => (
            "d",
            "write [0-9]: normalised text holds ASCII digits (full-width, circled and Chinese-numeral numbers are converted)",
        ),
        ClassPerlKind::Word => (
            "w",
            "every character of normalised text is a letter or digit, so write `.` for any character, or name the class: [a-z0-9], \\p{Han}",
        ),
        ClassPerlKind::Space => (
            "s",
            "normalised text has no spaces: leave it out (`加 v` is matched by `加v`)",
        ),
    };
    let name = if c.negated {
        name.to_ascii_uppercase()
    } else {
        name.to_string()
    };
    format!("`\\{name}` is not accepted in pack regexes; {fix}")
}

impl Visitor for Shorthands {
    type Output = ();
    type Err = String;

    fn finish(self) -> Result<(), String> {
        Ok(())
    }

    fn visit_pre(&mut self, a: &Ast) -> Result<(), String> {
        match a {
            Ast::ClassPerl(c) => Err(shorthand(c)),
            _ => Ok(()),
        }
    }

    fn visit_class_set_item_pre(&mut self, item: &ClassSetItem) -> Result<(), String> {
        match item {
            ClassSetItem::Perl(c) => Err(shorthand(c)),
            _ => Ok(()),
        }
    }
}

/// The matcher's wording → what it means for a pack author. Messages not recognised keep
/// the matcher's words, marked as such.
fn explain(message: &str) -> String {
    let m = message.to_ascii_lowercase();
    if m.contains("matches empty buffer") {
        "it can match an empty string (everything in it is optional, e.g. `a*` or `(ab)?`), so it would flag every message: make at least one character required".into()
    } else if m.contains("too large")
        || m.contains("exceeds limit")
        || m.contains("resource limit")
        || m.contains("too many")
    {
        "it is too large for the matcher: shorten long bounded repeats (`.{2000}`, `a{70000}`) or narrow broad classes repeated many times (`\\p{L}{50}`)".into()
    } else {
        format!(
            "the matcher cannot compile it ({})",
            message.trim_end_matches('.')
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Errors for pack authors: (pattern, Ok or the words the error must contain). None may
    /// carry the matcher's own vocabulary.
    #[test]
    fn regex_problems_are_explained_in_pack_terms() {
        let table: &[(&str, Result<(), &str>)] = &[
            ("[0-9]{5}", Ok(())),
            ("1[3-9][0-9]{9}", Ok(())),
            ("\\p{Han}{3,}", Ok(())),
            ("\\d{5}", Err("write [0-9]")),
            ("\\d{11}", Err("write [0-9]")),
            ("[\\d]+", Err("`\\d`")),
            ("a\\D", Err("`\\D`")),
            ("\\w+", Err("write `.`")),
            ("加\\s*v", Err("no spaces")),
            ("a*", Err("empty string")),
            ("(?:ab)?", Err("empty string")),
            (".{2000}", Err("too large")),
            ("a{70000}", Err("too large")),
            ("\\bfoo", Err("word boundaries (\\b)")),
        ];
        for (pattern, want) in table {
            match (check(pattern), want) {
                (Ok(()), Ok(())) => {}
                (Err(e), Err(words)) => {
                    assert!(e.contains(words), "{pattern}: {e}");
                    for leak in ["HS_FLAG", "Pattern", "WordUnicode", "matcher cannot"] {
                        assert!(!e.contains(leak), "{pattern}: matcher wording {leak}: {e}");
                    }
                }
                (got, _) => panic!("{pattern}: {got:?}, want {want:?}"),
            }
        }
    }
}
