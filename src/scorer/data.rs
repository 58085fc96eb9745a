//! Labelled examples for `qunguard train` and `qunguard eval`: CSV with a header (COLD's
//! columns `,split,topic,label,TEXT` work as they are) or JSONL `{"text": …, "label": …}`.
//!
//! A label is `1`/`true`/`yes` (should be flagged), `0`/`false`/`no`/empty (should not), in
//! any case, or a category name (lowercase letters, digits and `_`, as packs name them: should
//! be flagged with that category), so one file can hold several categories. Anything else is
//! an error naming the line: a label read as something it is not would skew every figure.

use std::path::Path;

/// One labelled text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Labelled {
    /// The text as written.
    pub text: String,
    /// What it should get.
    pub label: Label,
    /// Its line in the file (1-based; for a CSV record, the line it starts on), for errors.
    pub line: u64,
}

/// What a labelled text should get.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Label {
    /// Nothing: it is fine.
    Negative,
    /// Flagged, by any category.
    Positive,
    /// Flagged with this category.
    Category(String),
}

impl Label {
    /// True unless the text should pass.
    pub fn is_positive(&self) -> bool {
        !matches!(self, Label::Negative)
    }

    fn parse(s: &str) -> Result<Label, String> {
        let s = s.trim();
        for (words, label) in [
            (&["", "0", "false", "no"][..], Label::Negative),
            (&["1", "true", "yes"][..], Label::Positive),
        ] {
            if words.iter().any(|w| s.eq_ignore_ascii_case(w)) {
                return Ok(label);
            }
        }
        let category = s
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if category {
            Ok(Label::Category(s.to_string()))
        } else {
            Err(format!(
                "label {s:?} is not 0/1, true/false, yes/no or a category name (lowercase letters, digits and '_')"
            ))
        }
    }

    /// The category a label names, if it names one.
    pub fn category(&self) -> Option<&str> {
        match self {
            Label::Category(c) => Some(c),
            _ => None,
        }
    }
}

/// A data file problem, naming the file and the line.
#[derive(Debug, thiserror::Error)]
#[error("{file}{}: {problem} (fix: {fix})", line.map(|l| format!(":{l}")).unwrap_or_default())]
pub struct DataError {
    /// The file at fault.
    pub file: String,
    /// 1-based line, when known.
    pub line: Option<u64>,
    /// What is wrong.
    pub problem: String,
    /// What to do.
    pub fix: &'static str,
}

const LABEL_FIX: &str = "write each label as 0/1, true/false or yes/no (any case), or, for \
                         `qunguard eval`, a category name of the rules (lowercase letters, digits \
                         and '_')";

const FIX: &str = "give CSV with a header holding `text` and `label` columns (any case; COLD's \
                   files work as they are), or JSONL lines {\"text\": \"…\", \"label\": 0 or 1 \
                   or a category}";

/// Reads a labelled file: JSONL when its name ends in `.jsonl`/`.json` or its first character
/// is `{`, CSV otherwise.
pub fn read(path: &Path) -> Result<Vec<Labelled>, DataError> {
    let err = |line: Option<u64>, (problem, fix): (String, &'static str)| DataError {
        file: path.display().to_string(),
        line,
        problem,
        fix,
    };
    let bytes = std::fs::read(path).map_err(|e| err(None, (format!("cannot read: {e}"), FIX)))?;
    let bytes = bytes.strip_prefix("\u{feff}".as_bytes()).unwrap_or(&bytes);
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    let rows = if ext == "jsonl" || ext == "json" || first == Some(&b'{') {
        read_jsonl(bytes).map_err(|(l, p)| err(Some(l), p))?
    } else {
        read_csv(bytes).map_err(|(l, p)| err(l, p))?
    };
    if rows.is_empty() {
        return Err(err(None, ("no labelled rows".into(), FIX)));
    }
    Ok(rows)
}

/// A problem and its fix.
type Problem = (String, &'static str);

fn read_jsonl(bytes: &[u8]) -> Result<Vec<Labelled>, (u64, Problem)> {
    #[derive(serde::Deserialize)]
    struct Row {
        text: String,
        label: serde_json::Value,
    }
    let mut out = Vec::new();
    for (n, line) in bytes.split(|&b| b == b'\n').enumerate() {
        let n = n as u64 + 1;
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let row: Row = serde_json::from_slice(line).map_err(|e| (n, (e.to_string(), FIX)))?;
        let label = match &row.label {
            serde_json::Value::Bool(false) => Label::Negative,
            serde_json::Value::Bool(true) => Label::Positive,
            serde_json::Value::Number(x) if x.as_u64() == Some(0) => Label::Negative,
            serde_json::Value::Number(x) if x.as_u64() == Some(1) => Label::Positive,
            serde_json::Value::String(s) => Label::parse(s).map_err(|e| (n, (e, LABEL_FIX)))?,
            other => {
                return Err((
                    n,
                    (
                        format!("label {other} is not 0, 1, a bool or a category"),
                        LABEL_FIX,
                    ),
                ));
            }
        };
        out.push(Labelled {
            text: row.text,
            label,
            line: n,
        });
    }
    Ok(out)
}

fn read_csv(bytes: &[u8]) -> Result<Vec<Labelled>, (Option<u64>, Problem)> {
    let mut r = csv::ReaderBuilder::new().flexible(false).from_reader(bytes);
    let line = |e: &csv::Error| e.position().map(|p| p.line());
    let headers = r
        .headers()
        .map_err(|e| (line(&e), (e.to_string(), FIX)))?
        .clone();
    let col = |name: &str| {
        headers
            .iter()
            .position(|h| h.trim().eq_ignore_ascii_case(name))
    };
    let (Some(text), Some(label)) = (col("text"), col("label")) else {
        let names: Vec<&str> = headers.iter().collect();
        let mut problem = format!(
            "the header ({}) has no `text` and `label` columns",
            names.join(", ")
        );
        // One column holding the whole header: another delimiter.
        if let [only] = names[..]
            && [';', '\t', '|'].iter().any(|d| only.contains(*d))
        {
            problem.push_str("; the file looks separated by something other than commas");
        }
        return Err((Some(1), (problem, FIX)));
    };
    let mut out = Vec::new();
    for rec in r.records() {
        let rec = rec.map_err(|e| (line(&e), (e.to_string(), FIX)))?;
        let at = rec.position().map(|p| p.line());
        out.push(Labelled {
            text: rec[text].to_string(),
            label: Label::parse(&rec[label]).map_err(|e| (at, (e, LABEL_FIX)))?,
            line: at.unwrap_or(0),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cold_csv_jsonl_and_category_labels_read_alike() {
        let dir = tempfile::tempdir().unwrap();
        let csv_path = dir.path().join("a.csv");
        std::fs::write(
            &csv_path,
            "\u{feff},split,topic,label,TEXT\n1,train,race,1,\"有逗号，的, 文本\"\n2,dev,region,0,你好\n",
        )
        .unwrap();
        let jsonl = dir.path().join("b.jsonl");
        std::fs::write(
            &jsonl,
            "{\"text\":\"有逗号，的, 文本\",\"label\":1}\n\n{\"text\":\"你好\",\"label\":false}\n{\"text\":\"加我\",\"label\":\"ads\"}\n",
        )
        .unwrap();
        let a = read(&csv_path).unwrap();
        let b = read(&jsonl).unwrap();
        let pairs = |rows: &[Labelled]| {
            rows.iter()
                .map(|r| (r.text.clone(), r.label.clone()))
                .collect::<Vec<_>>()
        };
        assert_eq!(pairs(&a), pairs(&b[..2]));
        // Each row knows its line, for errors (the JSONL's second line is blank).
        assert_eq!(a.iter().map(|r| r.line).collect::<Vec<_>>(), [2, 3]);
        assert_eq!(b.iter().map(|r| r.line).collect::<Vec<_>>(), [1, 3, 4]);
        assert_eq!(a[0].text, "有逗号，的, 文本");
        assert_eq!(a[1].label, Label::Negative);
        assert_eq!(b[2].label, Label::Category("ads".into()));
    }

    /// The labels topic's records (README, "Reviewers' decisions") are training data as they
    /// are: their provenance fields are ignored, a `null` category too.
    #[test]
    fn labels_topic_records_read_as_training_data() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("labels.jsonl");
        std::fs::write(
            &path,
            concat!(
                r#"{"text":"你这个傻逼","label":1,"category":"insult","decided_at":1764057700000,"#,
                r#""message_id":"m2","group_id":"g1","reviewer":"rev1","rules_version":"2b9e"}"#,
                "\n",
                r#"{"text":"今天天气不错","label":0,"category":null,"decided_at":1764057700000,"#,
                r#""message_id":"m3","group_id":"g1","reviewer":"rev1","rules_version":"2b9e"}"#,
                "\n"
            ),
        )
        .unwrap();
        let rows = read(&path).unwrap();
        let got: Vec<(&str, &Label)> = rows.iter().map(|r| (r.text.as_str(), &r.label)).collect();
        assert_eq!(
            got,
            [
                ("你这个傻逼", &Label::Positive),
                ("今天天气不错", &Label::Negative)
            ]
        );
    }

    /// (label as written, what it is read as; `None`: an error). Spreadsheets and pandas write
    /// `TRUE`/`False`; anything not recognisable must not count as a positive.
    #[test]
    fn labels_read_in_any_case_and_unknown_ones_are_errors() {
        let cases: &[(&str, Option<Label>)] = &[
            ("0", Some(Label::Negative)),
            ("", Some(Label::Negative)),
            ("false", Some(Label::Negative)),
            ("False", Some(Label::Negative)),
            ("FALSE", Some(Label::Negative)),
            ("no", Some(Label::Negative)),
            ("No", Some(Label::Negative)),
            (" 1 ", Some(Label::Positive)),
            ("TRUE", Some(Label::Positive)),
            ("Yes", Some(Label::Positive)),
            ("ads", Some(Label::Category("ads".into()))),
            ("group_2", Some(Label::Category("group_2".into()))),
            ("Ads", None),
            ("maybe?", None),
            ("2", Some(Label::Category("2".into()))),
            ("-1", None),
            ("0.5", None),
        ];
        for (raw, want) in cases {
            assert_eq!(Label::parse(raw).ok(), *want, "{raw:?}");
        }
    }

    /// (file name, contents, words the error must hold)
    #[test]
    fn bad_data_files_name_the_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let cases = [
            (
                "x.csv",
                "a,b\n1,2\n",
                "header (a, b) has no `text` and `label`",
            ),
            ("s.csv", "text;label\nx;1\n", "other than commas"),
            (
                "l.csv",
                "text,label\nok,1\nbad,Maybe\n",
                ":3: label \"Maybe\"",
            ),
            (
                "m.csv",
                "text,label\nbad,Maybe\n",
                "(fix: write each label as 0/1",
            ),
            (
                "l.jsonl",
                "{\"text\":\"a\",\"label\":\"N/A\"}\n",
                ":1: label \"N/A\"",
            ),
            (
                "y.jsonl",
                "{\"text\":\"a\",\"label\":1}\n{\"text\":1}\n",
                ":2:",
            ),
            ("z.jsonl", "{\"text\":\"a\",\"label\":[1]}\n", "is not 0, 1"),
            ("e.csv", "text,label\n", "no labelled rows"),
        ];
        for (name, body, needle) in cases {
            let p = dir.path().join(name);
            std::fs::write(&p, body).unwrap();
            let e = read(&p).unwrap_err().to_string();
            assert!(e.contains(needle) && e.contains(name), "{name}: {e}");
        }
        let e = read(&dir.path().join("missing.csv"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("cannot read"), "{e}");
    }
}
