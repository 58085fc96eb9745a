//! `qunguard eval`: how a rules directory does on labelled texts. Per category and overall:
//! precision, recall, F1 and the share of negatives flagged; per model pack a threshold sweep
//! of its score, so a rule or model change is measured on an operator's own traffic.

use super::data::{Label, Labelled};
use crate::model::Message;
use crate::screen::Engine;
use std::fmt;

/// Confusion counts at one threshold.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Positives flagged.
    pub tp: usize,
    /// Negatives flagged.
    pub fp: usize,
    /// Negatives passed.
    pub tn: usize,
    /// Positives passed.
    pub fn_: usize,
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

fn f1(p: f64, r: f64) -> f64 {
    if p + r == 0.0 {
        0.0
    } else {
        2.0 * p * r / (p + r)
    }
}

impl Counts {
    /// Counts `(flagged, positive)` pairs.
    pub fn of(pairs: impl IntoIterator<Item = (bool, bool)>) -> Counts {
        let mut c = Counts::default();
        for (flagged, positive) in pairs {
            match (flagged, positive) {
                (true, true) => c.tp += 1,
                (true, false) => c.fp += 1,
                (false, false) => c.tn += 1,
                (false, true) => c.fn_ += 1,
            }
        }
        c
    }
    /// Flagged texts that are positive.
    pub fn precision(&self) -> f64 {
        ratio(self.tp, self.tp + self.fp)
    }
    /// Positives flagged.
    pub fn recall(&self) -> f64 {
        ratio(self.tp, self.tp + self.fn_)
    }
    /// F1 of the positive class.
    pub fn f1(&self) -> f64 {
        f1(self.precision(), self.recall())
    }
    /// Mean of both classes' F1.
    pub fn macro_f1(&self) -> f64 {
        let neg = f1(
            ratio(self.tn, self.tn + self.fn_),
            ratio(self.tn, self.tn + self.fp),
        );
        (self.f1() + neg) / 2.0
    }
    /// Negatives flagged, as a share of the negatives.
    pub fn flag_rate_negatives(&self) -> f64 {
        ratio(self.fp, self.fp + self.tn)
    }
    /// Share of all texts classed right.
    pub fn accuracy(&self) -> f64 {
        ratio(self.tp + self.tn, self.tp + self.fp + self.tn + self.fn_)
    }
}

/// How a score separates positives from negatives: at one threshold and threshold-free.
#[derive(Debug, Clone, PartialEq)]
pub struct BinaryFigures {
    /// The threshold of `at`.
    pub threshold: f32,
    /// Counts at `threshold`.
    pub at: Counts,
    /// Counts at 0.5.
    pub at_half: Counts,
    /// Area under the ROC curve.
    pub auc: f64,
    /// The best macro-F1 over thresholds 0.01..0.99 (threshold-free quality)...
    pub best_macro_f1: f64,
    /// ...and where it is reached.
    pub best_threshold: f32,
}

impl BinaryFigures {
    /// Figures of `(score, positive)` pairs at `threshold`.
    pub fn new(scored: &[(f32, bool)], threshold: f32) -> BinaryFigures {
        let at = |t: f32| Counts::of(scored.iter().map(|&(s, p)| (s >= t, p)));
        let (best_macro_f1, best_threshold) = (1..100)
            .map(|i| i as f32 / 100.0)
            .map(|t| (at(t).macro_f1(), t))
            .fold((0.0, 0.5), |a, b| if b.0 > a.0 { b } else { a });
        BinaryFigures {
            threshold,
            at: at(threshold),
            at_half: at(0.5),
            auc: auc(scored),
            best_macro_f1,
            best_threshold,
        }
    }
}

impl fmt::Display for BinaryFigures {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let h = &self.at_half;
        let a = &self.at;
        writeln!(
            f,
            "at 0.5: accuracy {:.4}, macro-F1 {:.4}; threshold-free: ROC AUC {:.4}, best macro-F1 {:.4} (at {:.2})",
            h.accuracy(),
            h.macro_f1(),
            self.auc,
            self.best_macro_f1,
            self.best_threshold
        )?;
        write!(
            f,
            "at threshold {}: flagged {:.2}% of negatives and {:.2}% of positives; accuracy {:.4}, macro-F1 {:.4}, precision {:.4}",
            self.threshold,
            100.0 * a.flag_rate_negatives(),
            100.0 * a.recall(),
            a.accuracy(),
            a.macro_f1(),
            a.precision()
        )
    }
}

/// Area under the ROC curve: the chance a random positive outscores a random negative (ties
/// count half).
fn auc(scored: &[(f32, bool)]) -> f64 {
    let mut s: Vec<(f32, bool)> = scored.to_vec();
    s.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (mut neg_below, mut sum) = (0usize, 0f64);
    let mut i = 0;
    while i < s.len() {
        let j = i + s[i..].iter().take_while(|x| x.0 == s[i].0).count();
        let (pos, neg) = s[i..j].iter().fold(
            (0, 0),
            |(p, n), x| {
                if x.1 { (p + 1, n) } else { (p, n + 1) }
            },
        );
        sum += pos as f64 * (neg_below as f64 + neg as f64 / 2.0);
        neg_below += neg;
        i = j;
    }
    let pos = s.iter().filter(|x| x.1).count();
    if pos == 0 || neg_below == 0 {
        0.0
    } else {
        sum / (pos as f64 * neg_below as f64)
    }
}

/// One line of the report: a category, or all categories together.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// The category, or `(overall)`.
    pub name: String,
    /// Its counts.
    pub counts: Counts,
}

/// A model pack's score over thresholds.
#[derive(Debug, Clone, PartialEq)]
pub struct Sweep {
    /// The model pack's name.
    pub pack: String,
    /// Its category (the key in `scores`).
    pub category: String,
    /// Figures at the pack's threshold, and threshold-free.
    pub figures: BinaryFigures,
    /// Counts at thresholds 0.05, 0.10, … 0.95 and the pack's own.
    pub points: Vec<(f32, Counts)>,
}

/// What `qunguard eval` prints.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// Labelled texts read.
    pub texts: usize,
    /// Per category, then overall.
    pub rows: Vec<Row>,
    /// Per model pack.
    pub sweeps: Vec<Sweep>,
}

/// Whether a label asks for `category`: a bare positive asks for every category.
fn wants(label: &Label, category: &str) -> bool {
    match label {
        Label::Negative => false,
        Label::Positive => true,
        Label::Category(c) => c == category,
    }
}

/// Screens every text with `engine` (rules only: no heuristics) and measures the verdicts.
pub fn evaluate(engine: &Engine, data: &[Labelled]) -> Report {
    let msgs: Vec<Message> = data
        .iter()
        .enumerate()
        .map(|(i, d)| Message {
            id: i.to_string().into(),
            group_id: "eval".into(),
            sender_id: "eval".into(),
            ts: 0,
            text: d.text.clone(),
        })
        .collect();
    let verdicts = engine.screen_batch(&msgs);
    let categories = engine.categories();
    let mut rows: Vec<Row> = categories
        .iter()
        .map(|&c| Row {
            name: c.to_string(),
            counts: Counts::of(
                verdicts
                    .iter()
                    .zip(data)
                    .map(|(v, d)| (v.categories.iter().any(|x| &**x == c), wants(&d.label, c))),
            ),
        })
        .collect();
    rows.push(Row {
        name: "(overall)".into(),
        counts: Counts::of(
            verdicts
                .iter()
                .zip(data)
                .map(|(v, d)| (!v.categories.is_empty(), d.label.is_positive())),
        ),
    });
    let sweeps = engine
        .scorers()
        .iter()
        .map(|s| {
            let scored: Vec<(f32, bool)> = verdicts
                .iter()
                .zip(data)
                .map(|(v, d)| {
                    (
                        v.scores.get(&s.category).unwrap_or(0.0),
                        wants(&d.label, &s.category),
                    )
                })
                .collect();
            let mut ts: Vec<f32> = (1..20).map(|i| i as f32 / 20.0).collect();
            ts.push(s.threshold);
            ts.sort_by(f32::total_cmp);
            ts.dedup();
            Sweep {
                pack: s.name.clone(),
                category: s.category.to_string(),
                figures: BinaryFigures::new(&scored, s.threshold),
                points: ts
                    .into_iter()
                    .map(|t| (t, Counts::of(scored.iter().map(|&(x, p)| (x >= t, p)))))
                    .collect(),
            }
        })
        .collect();
    Report {
        texts: data.len(),
        rows,
        sweeps,
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let head = |f: &mut fmt::Formatter<'_>, first: &str| {
            writeln!(
                f,
                "{first:<16} {:>9} {:>9} {:>9} {:>12} {:>8} {:>8}",
                "precision", "recall", "F1", "neg flagged", "flagged", "pos"
            )
        };
        let line = |f: &mut fmt::Formatter<'_>, name: &str, c: &Counts| {
            writeln!(
                f,
                "{name:<16} {:>9.4} {:>9.4} {:>9.4} {:>11.2}% {:>8} {:>8}",
                c.precision(),
                c.recall(),
                c.f1(),
                100.0 * c.flag_rate_negatives(),
                c.tp + c.fp,
                c.tp + c.fn_
            )
        };
        writeln!(f, "{} labelled texts", self.texts)?;
        head(f, "category")?;
        for r in &self.rows {
            line(f, &r.name, &r.counts)?;
        }
        for s in &self.sweeps {
            writeln!(f)?;
            writeln!(f, "model pack {} (scores.{}):", s.pack, s.category)?;
            writeln!(f, "{}", s.figures)?;
            head(f, "threshold")?;
            for (t, c) in &s.points {
                let mark = if *t == s.figures.threshold { " *" } else { "" };
                line(f, &format!("{t:.3}{mark}"), c)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_of_a_small_table() {
        // (score, positive)
        let s = [
            (0.9, true),
            (0.8, false),
            (0.7, true),
            (0.2, false),
            (0.1, false),
        ];
        let f = BinaryFigures::new(&s, 0.75);
        assert_eq!(
            f.at,
            Counts {
                tp: 1,
                fp: 1,
                tn: 2,
                fn_: 1
            }
        );
        assert!((f.at.flag_rate_negatives() - 1.0 / 3.0).abs() < 1e-9);
        // Positive scores beat 3 of 3 and 2 of 3 negatives.
        assert!((f.auc - 5.0 / 6.0).abs() < 1e-9, "{}", f.auc);
        // At 0.5 only the 0.8 negative is wrong: one error in five.
        assert!((f.at_half.accuracy() - 0.8).abs() < 1e-9);
        let ties = [(0.5, true), (0.5, false)];
        assert!((auc(&ties) - 0.5).abs() < 1e-9);
    }
}
