//! The screen stage, on the `screen` thread: each batch through the batch core's parse and
//! screen steps, in parallel on the pipeline's rayon pool. Each batch is screened by the rule
//! set live when it starts ([`LiveRules::current`]), whole: a reload meanwhile takes effect
//! from the next batch.

use super::source::{Batch, Polled};
use crate::batch::{Input, Rejection, Screened, Screener};
use crate::kafka::BatchAck;
use crate::metrics::Metrics;
use crate::model::SuppressedBy;
use crate::reload::LiveRules;
use crate::screen::Engine;
use crate::watch::Fingerprinter;
use crossbeam_channel::{Receiver, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A batch parsed and screened, on its way to the watch stage.
pub(super) struct ScreenedBatch {
    /// The polled records, for dead-letter copies.
    pub(super) records: Vec<Polled>,
    pub(super) ack: Arc<BatchAck>,
    pub(super) screened: Screened,
    /// The rule set that screened it.
    pub(super) engine: Arc<Engine>,
    /// Time spent screening it.
    pub(super) took: Duration,
}

/// What the core makes of a polled record; records over `max_bytes` are refused unread.
fn input(record: &Polled, max_bytes: usize) -> Input<'_> {
    match &record.payload {
        None => Input::Rejected(Rejection {
            code: "empty",
            detail: "record has no value".into(),
        }),
        Some(p) if p.len() > max_bytes => Input::Rejected(Rejection {
            code: "too_large",
            detail: format!(
                "record is {} bytes, over pipeline.max_message_bytes ({max_bytes})",
                p.len()
            ),
        }),
        Some(p) if record.report => Input::Report(p),
        Some(p) if record.decision => Input::Decision(p),
        Some(p) => Input::Message(p),
    }
}

/// Counts rule hits by pack, once per batch: live hits in `qunguard_rule_hits_total`, shadow
/// hits in `qunguard_rule_shadow_hits_total` (before `max_hits` cuts any: the rule did match),
/// suppressed matches in `qunguard_rule_suppressions_total`.
/// Built for one rule set; the stage builds a new one when a reload swaps the set.
pub(super) struct HitCounter {
    pack_of: std::collections::HashMap<&'static str, usize>,
    counters: Vec<prometheus::IntCounter>,
    shadow: Vec<prometheus::IntCounter>,
    /// Per pack, one counter per [`SuppressedBy::ALL`] reason.
    suppressed: Vec<[prometheus::IntCounter; SuppressedBy::ALL.len()]>,
}

impl HitCounter {
    pub(super) fn new(engine: &Engine, metrics: &Metrics) -> HitCounter {
        let series = |vec: &prometheus::IntCounterVec| -> Vec<prometheus::IntCounter> {
            engine
                .packs()
                .iter()
                .map(|p| vec.with_label_values(&[&p.name]))
                .collect()
        };
        HitCounter {
            pack_of: engine.rule_packs().collect(),
            counters: series(&metrics.rule_hits),
            shadow: series(&metrics.rules.shadow_hits),
            suppressed: engine
                .packs()
                .iter()
                .map(|p| {
                    SuppressedBy::ALL.map(|r| {
                        metrics
                            .rules
                            .suppressions
                            .with_label_values(&[p.name.as_str(), r.as_str()])
                    })
                })
                .collect(),
        }
    }

    /// Counts the hits of a batch's verdicts. Most messages have none, so this is a pass over
    /// the verdicts plus a lookup per hit; the counters are touched once per pack.
    fn count(&self, screened: &Screened) {
        let mut live = vec![0u64; self.counters.len()];
        let mut shadow = vec![0u64; self.shadow.len()];
        for h in screened.verdicts().iter().flat_map(|v| &v.hits) {
            if let Some(&p) = self.pack_of.get(&*h.rule) {
                if h.shadow {
                    shadow[p] += 1;
                } else {
                    live[p] += 1;
                }
            }
        }
        add(&self.counters, &live);
        add(&self.shadow, &shadow);
        let mut suppressed = vec![[0u64; SuppressedBy::ALL.len()]; self.suppressed.len()];
        for s in screened.verdicts().iter().flat_map(|v| &v.suppressed) {
            if let Some(&p) = self.pack_of.get(&*s.rule) {
                suppressed[p][s.reason.index()] += 1;
            }
        }
        for (counters, n) in self.suppressed.iter().zip(&suppressed) {
            add(counters, n);
        }
    }
}

/// Adds a batch's counts to their counters, touching only those that grew.
fn add(counters: &[prometheus::IntCounter], counts: &[u64]) {
    for (c, &n) in counters.iter().zip(counts) {
        if n > 0 {
            c.inc_by(n);
        }
    }
}

/// What the screen stage needs.
pub(super) struct ScreenStage {
    pub(super) rules: Arc<LiveRules>,
    pub(super) fingerprinter: Option<Fingerprinter>,
    pub(super) max_message_bytes: usize,
    pub(super) max_text_bytes: usize,
    pub(super) metrics: Metrics,
}

impl ScreenStage {
    /// Screens every batch from `rx` until it closes or the watch stage is gone.
    pub(super) fn run(
        self,
        rx: Receiver<Batch>,
        tx: Sender<ScreenedBatch>,
        pool: &rayon::ThreadPool,
    ) {
        let max_bytes = self.max_message_bytes;
        let mut hits: Option<(Arc<Engine>, HitCounter)> = None;
        for Batch { records, ack } in rx {
            let t0 = Instant::now();
            let engine = self.rules.current();
            let screener = Screener::new(&engine, self.fingerprinter.clone(), self.max_text_bytes);
            let screened = pool.install(|| screener.screen(&records, |r| input(r, max_bytes)));
            match &hits {
                Some((e, _)) if Arc::ptr_eq(e, &engine) => {}
                _ => hits = Some((engine.clone(), HitCounter::new(&engine, &self.metrics))),
            }
            if let Some((_, counter)) = &hits {
                counter.count(&screened);
            }
            let batch = ScreenedBatch {
                records,
                ack,
                screened,
                engine,
                took: t0.elapsed(),
            };
            if tx.send(batch).is_err() {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Metrics;

    #[test]
    fn hits_are_counted_by_the_pack_of_their_rule() {
        let rules = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/rules");
        let engine = crate::Engine::compile(&crate::RuleSet::load_dir(&rules).unwrap()).unwrap();
        let packs: Vec<&str> = engine.packs().iter().map(|p| p.name.as_str()).collect();
        let m = Metrics::new(&[], &[], &[]).with_packs(&packs);
        let hits = HitCounter::new(&engine, &m);
        let synth = crate::synth::Synth::new(crate::synth::SynthConfig::default());
        let lines: Vec<Vec<u8>> = synth
            .take(3000)
            .map(|msg| serde_json::to_vec(&msg).unwrap())
            .collect();
        let screener = Screener::new(&engine, None, 1 << 16);
        let screened = screener.screen(&lines, |l| Input::Message(l));
        hits.count(&screened);
        // The shipped packs name their terms `PACK:TERM` and their regexes `PACK.NAME`.
        let mut want = std::collections::HashMap::new();
        for h in screened.verdicts().iter().flat_map(|v| &v.hits) {
            let pack = h.rule.split([':', '.']).next().unwrap().to_string();
            *want.entry(pack).or_insert(0u64) += 1;
        }
        assert!(
            want.len() >= 4,
            "the synthetic stream hits several packs: {want:?}"
        );
        for p in packs {
            let got = m.rule_hits.with_label_values(&[p]).get();
            assert_eq!(got, want.get(p).copied().unwrap_or(0), "pack {p}");
        }
    }

    #[test]
    fn suppressed_matches_are_counted_by_pack_and_reason() {
        for (i, r) in SuppressedBy::ALL.into_iter().enumerate() {
            assert_eq!(r.index(), i, "ALL is in index order");
        }
        let rules = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/rules");
        let engine = crate::Engine::compile(&crate::RuleSet::load_dir(&rules).unwrap()).unwrap();
        let packs: Vec<&str> = engine.packs().iter().map(|p| p.name.as_str()).collect();
        let m = Metrics::new(&[], &[], &[]).with_packs(&packs);
        let hits = HitCounter::new(&engine, &m);
        // An allowed word (大麻花), ordinary words that sound like terms (出生, 病毒), a
        // sound-alike across a full stop (关照。代理), and plain chat.
        let texts = [
            "买了大麻花",
            "我是1990年出生的",
            "社区提醒大家预防病毒",
            "谢谢大家关照。代理的事明天再说",
            "今天天气很好",
        ];
        let lines: Vec<Vec<u8>> = texts
            .iter()
            .enumerate()
            .map(|(i, t)| {
                serde_json::to_vec(&crate::model::Message {
                    id: format!("m{i}").as_str().into(),
                    group_id: "g".into(),
                    sender_id: "s".into(),
                    ts: 1_764_000_000_000,
                    text: (*t).into(),
                })
                .unwrap()
            })
            .collect();
        let screener = Screener::new(&engine, None, 1 << 16);
        let screened = screener.screen(&lines, |l| Input::Message(l));
        hits.count(&screened);
        let mut want = std::collections::HashMap::new();
        for s in screened.verdicts().iter().flat_map(|v| &v.suppressed) {
            let pack = engine.pack_of(&s.rule).unwrap();
            *want.entry((pack, s.reason.as_str())).or_insert(0u64) += 1;
        }
        for r in SuppressedBy::ALL {
            assert!(
                want.keys().any(|k| k.1 == r.as_str()),
                "the texts give a `{}` suppression: {want:?}",
                r.as_str()
            );
        }
        for p in packs {
            for r in SuppressedBy::ALL {
                let got = m
                    .rules
                    .suppressions
                    .with_label_values(&[p, r.as_str()])
                    .get();
                let want = want.get(&(p, r.as_str())).copied().unwrap_or(0);
                assert_eq!(got, want, "pack {p}, reason {}", r.as_str());
            }
        }
    }
}
