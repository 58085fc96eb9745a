//! The batch core: what `qunguard scan` and `qunguard run` both do to a batch of input records.
//!
//! [`Input`]s → [`Screener::screen`] (parse and screen in parallel, sign for the heuristics) →
//! [`Screened::watch`] (the heuristics, one pass in input order) → [`Watched::outcomes`] (one
//! per input, in input order) and [`Watched::records`] (alerts, scorecards, rewards, review
//! requests). `scan` only adds files around it and `pipeline` only Kafka, so a file replayed
//! through `scan` gets the verdicts the live pipeline gave for the same records in the same
//! order.
//!
//! ```no_run
//! use qunguard::batch::{Input, Outcome, Screener};
//! # let engine: qunguard::Engine = unimplemented!();
//! let lines: Vec<&[u8]> = vec![br#"{"id":"m1","group_id":"g","sender_id":"u","ts":0,"text":"hi"}"#];
//! let screened = Screener::new(&engine, None, 64 << 10).screen(&lines, |l| Input::Message(l));
//! for outcome in screened.watch(None, usize::MAX).outcomes() {
//!     if let Outcome::Verdict { verdict, .. } = outcome {
//!         println!("{}", verdict.action.as_str());
//!     }
//! }
//! ```

use crate::model::{Message, Verdict};
use crate::screen::Engine;
use crate::watch::{Decision, DecisionOutcome, Fingerprinter, Output, Report, Signature, Watch};
use rayon::prelude::*;

/// Why an input could not be screened: a stable code (a metric label and dead-letter header)
/// and a sentence for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// One of [`REJECTION_CODES`], or `report_invalid` for a report that does not parse.
    pub code: &'static str,
    /// What exactly is wrong with this input.
    pub detail: String,
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.detail)
    }
}

/// Every [`Rejection::code`] a message input can get, for pre-registering metric labels.
pub const REJECTION_CODES: &[&str] = &["invalid_utf8", "empty", "invalid_json", "too_large"];

/// Parses one input record; the error says why it cannot be screened (also used for
/// dead-letter records).
pub fn parse_message(bytes: &[u8], max_text_bytes: usize) -> Result<Message, Rejection> {
    // The SIMD check first (Chinese text is mostly non-ASCII, where std's check goes a byte
    // at a time); std's only to say where a bad input goes wrong.
    let checked = simdutf8::basic::from_utf8(bytes).or_else(|_| std::str::from_utf8(bytes));
    let text = match checked {
        Ok(text) => text,
        Err(e) => {
            return Err(Rejection {
                code: "invalid_utf8",
                detail: format!(
                    "invalid UTF-8 at byte {}: the input must be UTF-8 JSON",
                    e.valid_up_to()
                ),
            });
        }
    };
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(Rejection {
            code: "empty",
            detail: "empty input (nothing but whitespace): expected a JSON message object".into(),
        });
    }
    // From the checked `str`: parsing from bytes would check every string's UTF-8 again.
    let msg = Message::from_json(text).map_err(|e| Rejection {
        code: "invalid_json",
        detail: not_a_message(text, e),
    })?;
    if msg.text.len() > max_text_bytes {
        return Err(Rejection {
            code: "too_large",
            detail: format!(
                "text is {} bytes, over the limit of {max_text_bytes} bytes",
                msg.text.len()
            ),
        });
    }
    Ok(msg)
}

/// Why `text` is not a message, in words that point at the fix; only on the error path, so
/// it may parse again to find the field at fault.
fn not_a_message(text: &str, e: serde_json::Error) -> String {
    let text = text.trim_start();
    // Editors on Windows and some exporters write one; JSON has no place for it.
    if text.starts_with('\u{feff}') {
        return format!(
            "not a valid message: {e}: the line starts with a UTF-8 byte-order mark (BOM); save the file without it"
        );
    }
    let first = text.as_bytes().first();
    // Syntax errors and a line cut short are told as serde says them, with where; only a
    // well-formed value of the wrong shape needs more words.
    if e.classify() != serde_json::error::Category::Data {
        return match first {
            Some(b'{' | b'[') => format!("not a valid message: {e}"),
            _ => format!("not a valid message: {e}: expected one JSON object a line"),
        };
    }
    match first {
        // serde reads an array as the struct's fields in order, so its own words mislead; an
        // array cut short is a syntax error, told as such.
        Some(b'[') => match serde_json::from_str::<serde::de::IgnoredAny>(text) {
            Ok(_) => "not a valid message: a JSON array; each line (or Kafka record) must be one message object, {\"id\", \"group_id\", \"sender_id\", \"ts\", \"text\"}".to_string(),
            Err(e) => format!("not a valid message: {e}"),
        },
        Some(b'{') => {
            let mut de = serde_json::Deserializer::from_str(text);
            match serde_path_to_error::deserialize::<_, Message>(&mut de) {
                // A missing field has no path (the document as a whole): serde names it.
                Err(p) => match crate::rules::key_path(p.path()) {
                    key if key.is_empty() => format!("not a valid message: {e}"),
                    key => format!("not a valid message: field `{key}`: {}", p.inner()),
                },
                Ok(_) => format!("not a valid message: {e}"),
            }
        }
        _ => format!("not a valid message: {e}: expected one JSON object a line"),
    }
}

/// Parses a reviewer's decision record (dead-lettered as `decision_invalid` when it does not
/// parse).
pub fn parse_decision(bytes: &[u8]) -> Result<Decision, Rejection> {
    serde_json::from_slice::<Decision>(bytes).map_err(|e| Rejection {
        code: "decision_invalid",
        detail: format!("not a valid review decision: {e}"),
    })
}

/// One input record, as the job around the core reads it.
#[derive(Debug)]
pub enum Input<'a> {
    /// A chat message, JSON (see [`Message`]).
    Message(&'a [u8]),
    /// A member report, JSON (see [`Report`]).
    Report(&'a [u8]),
    /// A reviewer's decision, JSON (see [`Decision`]).
    Decision(&'a [u8]),
    /// Refused before parsing (too large to hold, no value at all).
    Rejected(Rejection),
}

/// An input after parsing. Reports are boxed because they are rare and large; messages are not,
/// so a message costs no allocation beyond its own fields.
enum Parsed {
    Message(Message),
    Report(Box<Report>),
    Decision(Box<Decision>),
    Rejected(Rejection),
}

/// What became of one input, kept in input order.
enum Slot {
    /// Its message and verdict are the next ones in `msgs` and `verdicts`.
    Message,
    Report,
    /// Its decision and outcome are the next ones in `decisions`.
    Decision,
    Rejected(Rejection),
}

/// Parses and screens batches of [`Input`]s with one engine.
pub struct Screener<'e> {
    engine: &'e Engine,
    fingerprinter: Option<Fingerprinter>,
    max_text_bytes: usize,
}

impl<'e> Screener<'e> {
    /// Screens with `engine`; signs messages for the heuristics when `fingerprinter` is given
    /// (it must be [`Watch::fingerprinter`] of the watch that [`Screened::watch`] gets).
    /// Messages whose `text` is over `max_text_bytes` are rejected.
    pub fn new(
        engine: &'e Engine,
        fingerprinter: Option<Fingerprinter>,
        max_text_bytes: usize,
    ) -> Screener<'e> {
        Screener {
            engine,
            fingerprinter,
            max_text_bytes,
        }
    }

    /// Parses (in parallel on the current rayon pool) what `input` makes of each record, then
    /// screens the messages among them.
    pub fn screen<'a, T: Sync>(
        &self,
        records: &'a [T],
        input: impl Fn(&'a T) -> Input<'a> + Sync,
    ) -> Screened {
        let parsed: Vec<Parsed> = records
            .par_iter()
            .map(|r| match input(r) {
                Input::Message(bytes) => match parse_message(bytes, self.max_text_bytes) {
                    Ok(m) => Parsed::Message(m),
                    Err(r) => Parsed::Rejected(r),
                },
                Input::Report(bytes) => match serde_json::from_slice::<Report>(bytes) {
                    Ok(r) => Parsed::Report(Box::new(r)),
                    Err(e) => Parsed::Rejected(Rejection {
                        code: "report_invalid",
                        detail: format!("not a valid report: {e}"),
                    }),
                },
                Input::Decision(bytes) => match parse_decision(bytes) {
                    Ok(d) => Parsed::Decision(Box::new(d)),
                    Err(r) => Parsed::Rejected(r),
                },
                Input::Rejected(r) => Parsed::Rejected(r),
            })
            .collect();
        let mut msgs = Vec::with_capacity(parsed.len());
        let mut reports = Vec::new();
        let mut decisions = Vec::new();
        let mut slots = Vec::with_capacity(parsed.len());
        for p in parsed {
            slots.push(match p {
                Parsed::Message(m) => {
                    msgs.push(m);
                    Slot::Message
                }
                Parsed::Report(r) => {
                    reports.push(*r);
                    Slot::Report
                }
                Parsed::Decision(d) => {
                    decisions.push(*d);
                    Slot::Decision
                }
                Parsed::Rejected(r) => Slot::Rejected(r),
            });
        }
        let (verdicts, sigs) = match &self.fingerprinter {
            Some(fp) => fp.screen(self.engine, &msgs),
            None => (self.engine.screen_batch(&msgs), Vec::new()),
        };
        Screened {
            slots,
            msgs,
            verdicts,
            sigs,
            reports,
            decisions,
        }
    }
}

/// A batch parsed and screened, waiting for the heuristics.
pub struct Screened {
    slots: Vec<Slot>,
    msgs: Vec<Message>,
    verdicts: Vec<Verdict>,
    /// One per message; empty when screened without a fingerprinter.
    sigs: Vec<Signature>,
    reports: Vec<Report>,
    decisions: Vec<Decision>,
}

impl Screened {
    /// The verdicts so far (before the heuristics), one per message input, in input order.
    pub fn verdicts(&self) -> &[Verdict] {
        &self.verdicts
    }

    /// The messages, in input order (one per verdict).
    pub fn messages(&self) -> &[Message] {
        &self.msgs
    }

    /// How many inputs were rejected.
    pub fn rejected(&self) -> usize {
        self.slots
            .iter()
            .filter(|s| matches!(s, Slot::Rejected(_)))
            .count()
    }

    /// Runs `watch` over the batch, if given: its messages, reports and reviewers' decisions
    /// in input order (without a watch every decision is `unknown`).
    /// Verdicts then keep at most `max_hits` hits each (cut after the heuristics, which see
    /// them all).
    pub fn watch(self, watch: Option<&mut Watch>, max_hits: usize) -> Watched {
        let Screened {
            slots,
            msgs,
            mut verdicts,
            sigs,
            reports,
            decisions,
        } = self;
        let mut records = Vec::new();
        let mut decided = Vec::with_capacity(decisions.len());
        match watch {
            Some(w) => {
                // Reports and decisions are applied where they stand among the messages, so
                // the pressure they change does not depend on where batches are cut.
                let (mut reports, mut decisions) = (reports.into_iter(), decisions.into_iter());
                let (mut done, mut seen) = (0, 0);
                let mut observe_to = |w: &mut Watch, to: usize, records: &mut Vec<Output>| {
                    if to > done {
                        let s = &sigs[done.min(sigs.len())..to.min(sigs.len())];
                        w.observe(&msgs[done..to], s, &mut verdicts[done..to], records);
                        done = to;
                    }
                };
                for slot in &slots {
                    match slot {
                        Slot::Message => seen += 1,
                        Slot::Report => {
                            observe_to(w, seen, &mut records);
                            let r = reports.next().expect("a report per report slot");
                            w.report(r, &mut records);
                        }
                        Slot::Decision => {
                            observe_to(w, seen, &mut records);
                            let d = decisions.next().expect("a decision per decision slot");
                            let o = w.decide(&d);
                            decided.push((d, o));
                        }
                        Slot::Rejected(_) => {}
                    }
                }
                observe_to(w, seen, &mut records);
            }
            None => decided.extend(decisions.into_iter().map(|d| {
                let o = DecisionOutcome {
                    outcome: crate::watch::DecisionResult::Unknown,
                    rules: Vec::new(),
                    categories: Vec::new(),
                };
                (d, o)
            })),
        }
        for v in &mut verdicts {
            if v.hits.len() > max_hits {
                v.hits.truncate(max_hits);
                v.hits_truncated = true;
            }
            // A text full of allowed spans must not grow the verdict without bound either.
            if v.suppressed.len() > max_hits {
                v.suppressed.truncate(max_hits);
                v.hits_truncated = true;
            }
        }
        Watched {
            slots,
            msgs,
            verdicts,
            records,
            decided,
        }
    }
}

/// A batch through the whole core: what to write for it.
pub struct Watched {
    slots: Vec<Slot>,
    msgs: Vec<Message>,
    verdicts: Vec<Verdict>,
    records: Vec<Output>,
    decided: Vec<(Decision, DecisionOutcome)>,
}

/// What became of one input.
#[derive(Debug, Clone, Copy)]
pub enum Outcome<'a> {
    /// A message and its verdict.
    Verdict {
        /// The verdict, heuristics applied.
        verdict: &'a Verdict,
        /// The message it is about.
        message: &'a Message,
    },
    /// A report, joined by the watch (its effects, if any, are among [`Watched::records`]).
    Report,
    /// A reviewer's decision and what the watch made of it.
    Decision(&'a Decision, &'a DecisionOutcome),
    /// An input that could not be screened.
    Rejected(&'a Rejection),
}

impl Watched {
    /// One outcome per input, in input order.
    pub fn outcomes(&self) -> impl ExactSizeIterator<Item = Outcome<'_>> {
        let mut next = self.msgs.iter().zip(&self.verdicts);
        let mut decided = self.decided.iter();
        self.slots.iter().map(move |s| match s {
            Slot::Message => {
                let (message, verdict) = next.next().expect("one message per message slot");
                Outcome::Verdict { verdict, message }
            }
            Slot::Report => Outcome::Report,
            Slot::Decision => {
                let (d, o) = decided.next().expect("one decision per decision slot");
                Outcome::Decision(d, o)
            }
            Slot::Rejected(r) => Outcome::Rejected(r),
        })
    }

    /// The verdicts, in input order (one per message input).
    pub fn verdicts(&self) -> &[Verdict] {
        &self.verdicts
    }

    /// The heuristics' records (alerts, scorecards, rewards, review requests), in the order the
    /// watch emitted them.
    pub fn records(&self) -> &[Output] {
        &self.records
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::watch::WatchConfig;
    use std::sync::LazyLock;

    /// A rejection says what to fix: the field at fault, an array, a byte-order mark.
    #[test]
    fn a_rejected_message_names_what_to_fix() {
        let line = r#"{"id":"a","group_id":"g","sender_id":"u","ts":1,"text":"x"}"#;
        let bom = format!("\u{feff}{line}");
        // (input, the detail contains, and does not contain)
        let table: [(&str, &str, &str); 12] = [
            (&bom, "byte-order mark", "field"),
            (
                "{oops",
                "not a valid message: key must be a string",
                "byte-order",
            ),
            (
                r#"{"id":1,"group_id":"g","sender_id":"u","ts":1,"text":"x"}"#,
                "field `id`: invalid type: integer `1`, expected a string",
                "field `?`",
            ),
            (
                r#"{"id":"a","group_id":"g","sender_id":"u","ts":"soon","text":"x"}"#,
                "field `ts`: invalid type: string",
                "field `?`",
            ),
            (
                r#"{"id":"a","group_id":"g","sender_id":"u","ts":1}"#,
                "missing field `text`",
                "message: field",
            ),
            (
                &format!("[{line}]"),
                "a JSON array; each line",
                "expected a string",
            ),
            (" [1, 2]", "a JSON array", "expected"),
            ("42", "expected one JSON object a line", "array"),
            ("\"hello\"", "expected one JSON object a line", "array"),
            // A syntax error inside a field is serde's to place; a cut line is not an array.
            (
                r#"{"meta":{"x":tru},"id":"a"}"#,
                "not a valid message: expected ident",
                "field",
            ),
            (
                "[1,2",
                "not a valid message: EOF while parsing",
                "a JSON array",
            ),
            (&format!("  {bom}"), "byte-order mark", "field"),
        ];
        for (input, has, lacks) in table {
            let e = parse_message(input.as_bytes(), 100).unwrap_err();
            assert_eq!(e.code, "invalid_json", "{input}");
            assert!(e.detail.contains(has), "{input}: {}", e.detail);
            assert!(!e.detail.contains(lacks), "{input}: {}", e.detail);
        }
        assert!(parse_message(line.as_bytes(), 100).is_ok());
    }

    static ENGINE: LazyLock<Engine> = LazyLock::new(|| {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/rules");
        Engine::compile(&crate::RuleSet::load_dir(&dir).unwrap()).unwrap()
    });

    /// (is a report, bytes)
    type Record = (bool, Vec<u8>);

    fn stream() -> Vec<Record> {
        const T0: i64 = 1_764_115_200_000;
        let insults = [
            "你就是个傻逼",
            "脑残吧你",
            "滚蛋，人渣",
            "你才是智障",
            "王八蛋闭嘴",
        ];
        let mut out = Vec::new();
        for i in 0..40i64 {
            let text = match i % 4 {
                0 => insults[(i / 4) as usize % insults.len()],
                1 => "代开发票，加VX：abc_123456",
                _ => "今天天气不错",
            };
            let m = serde_json::json!({"id": format!("m{i}"), "group_id": "g1",
                "sender_id": format!("u{}", i % 3), "ts": T0 + i * 5000, "text": text});
            out.push((false, serde_json::to_vec(&m).unwrap()));
            if i % 9 == 0 {
                out.push((false, b"{not json".to_vec()));
            }
            if i % 10 == 5 {
                let r = serde_json::json!({"report_id": format!("r{i}"), "reporter_id": "alice",
                    "message_id": format!("m{}", i - 4), "group_id": "g1", "ts": T0 + i * 5000});
                out.push((true, serde_json::to_vec(&r).unwrap()));
            }
        }
        out
    }

    /// Everything the core writes for `records` cut into batches of `size`, as JSON lines.
    fn run(records: &[Record], size: usize) -> Vec<String> {
        let mut watch = Watch::new(WatchConfig::default());
        let screener = Screener::new(&ENGINE, Some(watch.fingerprinter()), 1 << 16);
        let mut lines = Vec::new();
        for chunk in records.chunks(size) {
            let watched = screener
                .screen(chunk, |(report, bytes)| match report {
                    true => Input::Report(bytes),
                    false => Input::Message(bytes),
                })
                .watch(Some(&mut watch), 2);
            assert_eq!(watched.outcomes().len(), chunk.len());
            for o in watched.outcomes() {
                lines.push(match o {
                    Outcome::Verdict { verdict, .. } => serde_json::to_string(verdict).unwrap(),
                    Outcome::Report => "report".into(),
                    Outcome::Rejected(r) => format!("{}: {r}", r.code),
                    Outcome::Decision(_, o) => format!("decision: {}", o.outcome.as_str()),
                });
            }
            for r in watched.records() {
                lines.push(serde_json::to_string(r).unwrap());
            }
        }
        lines
    }

    #[test]
    fn suppressions_are_cut_to_max_hits_like_hits() {
        let screener = Screener::new(&ENGINE, None, 1 << 16);
        // Ten allow-listed spans: each leaves a suppression.
        let text = "买了大麻花，".repeat(10);
        let line = serde_json::json!({"id": "m1", "group_id": "g1", "sender_id": "u1",
            "ts": 1, "text": text})
        .to_string();
        for (max_hits, kept, truncated) in [(100, 10, false), (3, 3, true)] {
            let watched = screener
                .screen(&[line.as_bytes()], |b| Input::Message(b))
                .watch(None, max_hits);
            let Some(Outcome::Verdict { verdict, .. }) = watched.outcomes().next() else {
                panic!("a verdict");
            };
            assert_eq!(verdict.suppressed.len(), kept, "max_hits {max_hits}");
            assert_eq!(verdict.hits_truncated, truncated, "max_hits {max_hits}");
            assert!(verdict.hits.is_empty());
        }
    }

    #[test]
    fn outcomes_follow_input_order_and_do_not_depend_on_batch_boundaries() {
        let records = stream();
        let whole = run(&records, records.len());
        assert!(
            whole.iter().any(|l| l.contains("\"incident\"")),
            "{whole:#?}"
        );
        assert!(whole.iter().any(|l| l.starts_with("invalid_json: ")));
        assert!(whole.iter().any(|l| l.contains("\"hits_truncated\":true")));
        // Records come after their batch's outcomes, so compare verdicts and records apart:
        // only the records' place among the outcomes may follow the cut, never what they say.
        let split = |lines: Vec<String>| {
            let (mut outcomes, mut records): (Vec<String>, Vec<String>) = (vec![], vec![]);
            for l in lines {
                if l.contains("\"rules_version\"") || !l.starts_with('{') {
                    outcomes.push(l);
                } else {
                    records.push(l);
                }
            }
            records.sort();
            (outcomes, records)
        };
        let want = split(whole);
        for size in [1, 7, 64] {
            let got = split(run(&records, size));
            assert_eq!(got, want, "batches of {size}");
        }
    }
}
