//! The screen stage, on the `screen` thread: each batch through the batch core's parse and
//! screen steps, in parallel on the pipeline's rayon pool. Each batch is screened by the rule
//! set live when it starts ([`LiveRules::current`]), whole: a reload meanwhile takes effect
//! from the next batch.

use super::source::{Batch, Polled};
use crate::batch::{Input, Rejection, Screened, Screener};
use crate::kafka::BatchAck;
use crate::metrics::Metrics;
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
        for Batch { records, ack } in rx {
            let t0 = Instant::now();
            let engine = self.rules.current();
            let screener = Screener::new(&engine, self.fingerprinter.clone(), self.max_text_bytes);
            let screened = pool.install(|| screener.screen(&records, |r| input(r, max_bytes)));
            self.count_shadow_hits(&engine, &screened);
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

    /// Counts shadow hits by pack (before `max_hits` cuts any: the rule did match).
    fn count_shadow_hits(&self, engine: &Engine, screened: &Screened) {
        let shadow = &self.metrics.rules.shadow_hits;
        for h in screened.verdicts().iter().flat_map(|v| &v.hits) {
            if h.shadow {
                let pack = engine.pack_of(&h.rule).unwrap_or("unknown");
                shadow.with_label_values(&[pack]).inc();
            }
        }
    }
}
