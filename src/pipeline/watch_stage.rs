//! The watch stage, on the `watch` thread: the batch core's heuristics step in stream order,
//! then every output record of the batch, serialised (verdicts in parallel on the pipeline's
//! rayon pool). On a thread of its own, the watch of one batch overlaps screening of the next.

use super::recent::RecentMessages;
use super::screen_stage::ScreenedBatch;
use super::source::Polled;
use crate::batch::{Outcome, Rejection, Screened};
use crate::config::{OutputTopic, PipelineConfig};
use crate::kafka::BatchAck;
use crate::metrics::Metrics;
use crate::model::{Action, Verdict};
use crate::screen::Engine;
use crate::watch::Watch;
use crossbeam_channel::{Receiver, Sender};
use rayon::prelude::*;
use rdkafka::message::{Header, OwnedHeaders};
use serde::Serialize;
use std::sync::Arc;
use std::time::Instant;

/// One output record, ready to send.
pub(super) struct OutRecord {
    pub(super) topic: OutputTopic,
    pub(super) key: Option<Vec<u8>>,
    pub(super) payload: Vec<u8>,
    pub(super) headers: Option<OwnedHeaders>,
}

/// A batch's output records, in send order.
pub(super) struct Outgoing {
    pub(super) ack: Arc<BatchAck>,
    pub(super) records: Vec<OutRecord>,
}

/// A review-topic copy of a verdict: the verdict plus the text reviewers need to judge it.
/// Written by [`ReviewRecord::to_json`]; the derived writer is what a test holds it to.
#[derive(Serialize)]
struct ReviewRecord<'a> {
    /// Why it is up for review: `screen` (the rules said review) or `correction` (the rules
    /// say review after a reload).
    source: &'static str,
    #[serde(flatten)]
    verdict: &'a Verdict,
    text: &'a str,
}

impl ReviewRecord<'_> {
    /// The record for the review topic, keyed by the verdict's group.
    fn record(&self) -> OutRecord {
        OutRecord {
            topic: OutputTopic::Review,
            key: Some(self.verdict.group_id.as_bytes().to_vec()),
            payload: self.to_json(),
            headers: None,
        }
    }

    /// The record's JSON, the same bytes as serde's, written like verdicts are (a review
    /// record goes out for every message up for review).
    fn to_json(&self) -> Vec<u8> {
        use crate::model::write_json_string as string;
        let mut out = Vec::with_capacity(320 + self.text.len());
        out.extend_from_slice(b"{\"source\":");
        string(&mut out, self.source);
        out.push(b',');
        self.verdict.write_fields(&mut out);
        out.extend_from_slice(b",\"text\":");
        string(&mut out, self.text);
        out.push(b'}');
        out
    }
}

/// The heuristics and everything that turns a watched batch into output records.
pub(super) struct WatchStage {
    watch: Option<Watch>,
    /// Turns the watch's cumulative counts into metric increments after each batch.
    publisher: crate::metrics::WatchPublisher,
    max_hits: usize,
    dead_letter_max_bytes: usize,
    metrics: Metrics,
    /// Per [`Action`], resolved once so counting a verdict costs no label lookup.
    verdict_counters: [prometheus::IntCounter; 3],
    /// Recent messages with their texts, when `[recent_messages]` turns the store on.
    recent: Option<RecentMessages>,
    /// Write corrections after a reload (the corrections topic is named).
    corrections: bool,
    /// The version of the rules that screened the previous batch.
    last_version: Option<compact_str::CompactString>,
    /// Write labelled examples from reviewers' decisions (the labels topic is named).
    labels: bool,
}

/// A labelled example from a reviewer's decision (labels topic): one JSONL line of training
/// data.
/// `text` and `label` are what `train` reads; the rest says where the example came from, so a
/// data set can be audited, deduplicated, or cut by reviewer or rules version.
#[derive(Serialize)]
struct Label<'a> {
    /// The message text.
    text: &'a str,
    /// 1: a confirmed violation; 0: overturned, the text is fine.
    label: u8,
    /// The reviewer's category, else the flag's first category (none for an unflagged text).
    category: Option<String>,
    /// When the reviewer decided (ms since the epoch).
    decided_at: i64,
    /// The message decided on.
    message_id: &'a str,
    /// Its group.
    group_id: &'a str,
    /// Who decided.
    reviewer: &'a str,
    /// The rules version of the screening the group was last told of (the verdict's, or the
    /// last correction's): what the reviewer judged.
    rules_version: &'a str,
}

impl WatchStage {
    pub(super) fn new(watch: Option<Watch>, cfg: &PipelineConfig, metrics: Metrics) -> Self {
        let verdict_counters = [Action::Allow, Action::Review, Action::Block]
            .map(|a| metrics.verdicts.with_label_values(&[a.as_str()]));
        let mut publisher = crate::metrics::WatchPublisher::default();
        // Served from the start (at zero), not from the first batch: a dashboard or an alert
        // rule on a quiet instance must find every series README lists.
        if let Some(w) = &watch {
            publisher.publish(&metrics, w);
        }
        WatchStage {
            watch,
            publisher,
            max_hits: cfg.max_hits,
            dead_letter_max_bytes: cfg.dead_letter_max_bytes,
            metrics,
            verdict_counters,
            recent: None,
            corrections: false,
            last_version: None,
            labels: false,
        }
    }

    /// Keeps recent messages in `recent` (if on); writes corrections after a reload when
    /// `corrections` is set, and labelled examples of decisions when `labels` is.
    pub(super) fn with_recent(
        mut self,
        recent: Option<RecentMessages>,
        corrections: bool,
        labels: bool,
    ) -> Self {
        self.recent = recent;
        self.corrections = corrections;
        self.labels = labels;
        self
    }

    /// Counts a reviewer's decision (and an overturn per pack of the rules that flagged the
    /// message); returns its labelled example when the labels topic is on and the message's
    /// text is still kept.
    fn decided(
        &mut self,
        engine: &Engine,
        d: &crate::watch::Decision,
        o: &crate::watch::DecisionOutcome,
    ) -> Option<OutRecord> {
        use crate::watch::DecisionKind;
        let rm = &self.metrics.rules;
        rm.review_decisions
            .with_label_values(&[d.decision.as_str()])
            .inc();
        if o.outcome == crate::watch::DecisionResult::Unknown {
            rm.decisions_unknown.inc();
            // Reviewers' decisions are few and each is a person's work: say which one found
            // nothing to apply to, so it can be followed up.
            log::warn!(
                "review decision {} on message {} (group {}): this instance does not remember the message as flagged (another instance's, forgotten under watch.limits.flagged_messages, or from before a restart); it changes no pressure or reporter credit",
                d.decision.as_str(),
                d.message_id,
                d.group_id
            );
        }
        if o.outcome == crate::watch::DecisionResult::Overturned {
            let mut packs: Vec<&str> = o
                .rules
                .iter()
                .map(|r| engine.pack_of(r).unwrap_or("unknown"))
                .collect();
            packs.sort_unstable();
            packs.dedup();
            for p in packs {
                rm.overturns.with_label_values(&[p]).inc();
            }
        }
        // Kept by the store whatever the watch knew of the message: one a correction sent to
        // review was allowed when screened, and its decision must stand all the same.
        let kept = self
            .recent
            .as_mut()
            .and_then(|r| r.decide(&d.message_id, d.decision, Instant::now()));
        if !self.labels || o.outcome == crate::watch::DecisionResult::Duplicate {
            return None;
        }
        let (text, rules_version) = kept?;
        let category = d
            .category
            .clone()
            .or_else(|| o.categories.first().map(|c| c.to_string()));
        let label = Label {
            text,
            label: u8::from(d.decision == DecisionKind::Confirm),
            category,
            decided_at: d.ts,
            message_id: &d.message_id,
            group_id: &d.group_id,
            reviewer: &d.reviewer,
            rules_version,
        };
        Some(OutRecord {
            topic: OutputTopic::Labels,
            key: Some(d.group_id.as_bytes().to_vec()),
            payload: serde_json::to_vec(&label).expect("labels serialise"),
            headers: None,
        })
    }

    /// Whether `engine`'s rules are new since the previous batch (a reload); remembers them.
    fn reloaded(&mut self, engine: &Engine) -> bool {
        let version = engine.rules_version();
        let reloaded = self.last_version.as_deref().is_some_and(|v| v != version);
        if self.last_version.as_deref() != Some(version) {
            self.last_version = Some(version.into());
            // Checked at start too (Config::check_rules); a reload can drop a category later.
            if let Some(w) = &self.watch {
                let missing = w.config().missing_quarrel_categories(engine);
                if reloaded && !missing.is_empty() {
                    log::warn!(
                        "rules {version} have no category {missing:?}, which watch.quarrel.categories counts as abuse: no quarrel alerts or incident mode from it until a reload brings it back (or set watch.quarrel.categories and restart)"
                    );
                }
            }
        }
        reloaded
    }

    /// After a reload, the corrections of recent messages; then keeps the batch's messages.
    fn corrections(
        &mut self,
        engine: &Engine,
        screened: &Screened,
        reloaded: bool,
    ) -> Vec<OutRecord> {
        let Some(recent) = self.recent.as_mut() else {
            return Vec::new();
        };
        let now = Instant::now();
        let mut out = Vec::new();
        if reloaded && self.corrections {
            let corrected = recent.correct(engine, now);
            self.metrics
                .rules
                .corrections_withheld
                .inc_by(corrected.withheld);
            for (c, v, text) in corrected.corrections {
                self.metrics
                    .rules
                    .corrections
                    .with_label_values(&[c.old.action.as_str(), c.new.action.as_str()])
                    .inc();
                out.push(OutRecord {
                    topic: OutputTopic::Corrections,
                    key: Some(c.group_id.as_bytes().to_vec()),
                    payload: serde_json::to_vec(&c).expect("corrections serialise"),
                    headers: None,
                });
                // A message the new rules send to review is shown to reviewers like one
                // screened so (its verdict is the rules', without the heuristics).
                if let Some(text) = text {
                    let rec = ReviewRecord {
                        source: "correction",
                        verdict: &v,
                        text: &text,
                    };
                    out.push(rec.record());
                }
            }
        }
        for (m, v) in screened.messages().iter().zip(screened.verdicts()) {
            recent.keep(m, v, now);
        }
        out
    }

    /// Runs the watch over a screened batch; returns its outputs in order: per input its
    /// verdict (and review copy) or dead letter, then the watch's records.
    fn prepare(&mut self, b: ScreenedBatch) -> Outgoing {
        let t0 = Instant::now();
        let ScreenedBatch {
            records: inputs,
            ack,
            screened,
            engine,
            took,
        } = b;
        self.observe_latency(&inputs, &screened);
        let reloaded = self.reloaded(&engine);
        let corrections = self.corrections(&engine, &screened, reloaded);
        let watched = screened.watch(self.watch.as_mut(), self.max_hits);
        if let Some(w) = &self.watch {
            self.publisher.publish(&self.metrics, w);
        }
        let payloads: Vec<Vec<u8>> = watched
            .verdicts()
            .par_iter()
            .map(|v| {
                let mut payload = Vec::with_capacity(256);
                v.write_json(&mut payload);
                payload
            })
            .collect();

        let mut records = Vec::with_capacity(inputs.len() + watched.records().len());
        // Counted here and added to the metrics once a batch: a label lookup per category per
        // message was a hash and a lock each.
        let mut actions = [0u64; 3];
        let mut categories: Vec<(std::sync::Arc<str>, u64)> = Vec::new();
        let mut payloads = payloads.into_iter();
        for (input, outcome) in inputs.iter().zip(watched.outcomes()) {
            match outcome {
                Outcome::Verdict {
                    verdict: v,
                    message,
                } => {
                    records.push(OutRecord {
                        topic: OutputTopic::Verdicts,
                        key: Some(v.group_id.as_bytes().to_vec()),
                        payload: payloads.next().expect("one payload per verdict"),
                        headers: None,
                    });
                    actions[v.action as usize] += 1;
                    for c in &v.categories {
                        match categories.iter_mut().find(|(k, _)| k == c) {
                            Some((_, n)) => *n += 1,
                            None => categories.push((c.clone(), 1)),
                        }
                    }
                    if v.action == Action::Review {
                        let rec = ReviewRecord {
                            source: "screen",
                            verdict: v,
                            text: &message.text,
                        };
                        records.push(rec.record());
                    }
                }
                Outcome::Report => {}
                Outcome::Decision(d, o) => {
                    if let Some(label) = self.decided(&engine, d, o) {
                        records.push(label);
                    }
                }
                Outcome::Rejected(r) => records.push(self.dead_letter(input, r)),
            }
        }
        for (counter, n) in self.verdict_counters.iter().zip(actions) {
            counter.inc_by(n);
        }
        for (c, n) in categories {
            self.metrics
                .verdict_categories
                .with_label_values(&[&c])
                .inc_by(n);
        }
        for o in watched.records() {
            if let Some(alert_kind) = o.alert_kind() {
                self.metrics
                    .alerts
                    .with_label_values(&[alert_kind.name()])
                    .inc();
            }
            if let crate::watch::Output::Alert(a) = o {
                self.metrics
                    .alert_records
                    .with_label_values(&[a.kind.name(), a.status.name(), a.severity.name()])
                    .inc();
            }
            records.push(OutRecord {
                topic: OutputTopic::of_watch_output(o),
                key: Some(o.key().as_bytes().to_vec()),
                payload: serde_json::to_vec(o).expect("watch records serialise"),
                headers: None,
            });
        }
        records.extend(corrections);
        self.metrics
            .batch_screen_seconds
            .observe(took.as_secs_f64());
        self.metrics
            .batch_watch_seconds
            .observe(t0.elapsed().as_secs_f64());
        Outgoing { ack, records }
    }

    /// Observes the produce→verdict latency of the batch's first message, by its event time
    /// and by its record's broker timestamp: one sample a batch keeps this off the per-message
    /// path, and the first message is the batch's oldest.
    fn observe_latency(&self, inputs: &[Polled], screened: &crate::batch::Screened) {
        let Some(first) = screened.verdicts().first() else {
            return;
        };
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let since = |ms: i64| (now_ms.saturating_sub(ms)).max(0) as f64 / 1000.0;
        let [event, broker] = crate::metrics::LATENCY_CLOCKS;
        let h = &self.metrics.verdict_latency_seconds;
        h.with_label_values(&[event]).observe(since(first.ts));
        // The verdicts are in input order, so the first message is among the first polled
        // records that are neither reports nor decisions (a rejected one before it is close
        // enough in time for a latency sample).
        let message = inputs.iter().find(|r| !r.report && !r.decision);
        if let Some(ts) = message.and_then(|r| r.timestamp) {
            h.with_label_values(&[broker]).observe(since(ts));
        }
    }

    /// The dead-letter copy of `input`: its key and (capped) bytes, with where it came from
    /// and why in headers.
    fn dead_letter(&self, input: &Polled, r: &Rejection) -> OutRecord {
        self.metrics.dead_letters.with_label_values(&[r.code]).inc();
        log::debug!(
            "dead-letter {}[{}]@{}: {}",
            input.topic,
            input.partition,
            input.offset,
            r.detail
        );
        let payload = input.payload.as_deref().unwrap_or_default();
        let kept = &payload[..payload.len().min(self.dead_letter_max_bytes)];
        let partition = input.partition.to_string();
        let offset = input.offset.to_string();
        let mut h = OwnedHeaders::new()
            .insert(Header {
                key: "qunguard.reason",
                value: Some(r.code),
            })
            .insert(Header {
                key: "qunguard.error",
                value: Some(&r.detail),
            })
            .insert(Header {
                key: "qunguard.topic",
                value: Some(&*input.topic),
            })
            .insert(Header {
                key: "qunguard.partition",
                value: Some(&partition),
            })
            .insert(Header {
                key: "qunguard.offset",
                value: Some(&offset),
            });
        if kept.len() < payload.len() {
            h = h.insert(Header {
                key: "qunguard.truncated",
                value: Some(&payload.len().to_string()),
            });
        }
        OutRecord {
            topic: OutputTopic::DeadLetter,
            key: input.key.clone(),
            payload: kept.to_vec(),
            headers: Some(h),
        }
    }
}

/// Watches every batch from `rx` until it closes or the send stage is gone.
pub(super) fn run(
    stage: &mut WatchStage,
    rx: Receiver<ScreenedBatch>,
    tx: Sender<Outgoing>,
    pool: &rayon::ThreadPool,
) {
    for batch in rx {
        let outgoing = pool.install(|| stage.prepare(batch));
        if tx.send(outgoing).is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_watch_metrics_are_served_before_the_first_batch() {
        let metrics = Metrics::new(&[], &[], &[]);
        let watch = Watch::new(crate::watch::WatchConfig::default());
        let _stage = WatchStage::new(Some(watch), &PipelineConfig::default(), metrics.clone());
        let text = metrics.render();
        for series in [
            "qunguard_watch_entries{map=\"members\"} 0",
            "qunguard_watch_evictions_total{map=\"members\"} 0",
            "qunguard_watch_stage_busy_seconds_total{stage=\"rates\"} 0",
        ] {
            assert!(text.contains(series), "{series} in\n{text}");
        }
    }

    #[test]
    fn a_review_record_is_written_as_serde_writes_it() {
        let engine = crate::Engine::compile(&crate::internal::defaults::rules().unwrap()).unwrap();
        for text in [
            "代开发票，加VX：abc_123456",
            "你就是个\"傻逼\"\n",
            "大麻花",
            "",
        ] {
            let m = crate::Message {
                id: "m1".into(),
                group_id: "g1".into(),
                sender_id: "u1".into(),
                ts: 1,
                text: text.into(),
            };
            let v = &engine.screen_batch(std::slice::from_ref(&m))[0];
            let rec = ReviewRecord {
                source: "screen",
                verdict: v,
                text,
            };
            assert_eq!(
                String::from_utf8(rec.to_json()).unwrap(),
                serde_json::to_string(&rec).unwrap()
            );
        }
    }
}
