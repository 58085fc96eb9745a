//! The screen stage, on the `screen` thread: each batch through the batch core's parse and
//! screen steps, in parallel on the pipeline's rayon pool.

use super::source::{Batch, Polled};
use crate::batch::{Input, Rejection, Screened, Screener};
use crate::kafka::BatchAck;
use crossbeam_channel::{Receiver, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A batch parsed and screened, on its way to the watch stage.
pub(super) struct ScreenedBatch {
    /// The polled records, for dead-letter copies.
    pub(super) records: Vec<Polled>,
    pub(super) ack: Arc<BatchAck>,
    pub(super) screened: Screened,
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
        Some(p) => Input::Message(p),
    }
}

/// Screens every batch from `rx` until it closes or the watch stage is gone.
pub(super) fn run(
    screener: &Screener<'_>,
    max_message_bytes: usize,
    rx: Receiver<Batch>,
    tx: Sender<ScreenedBatch>,
    pool: &rayon::ThreadPool,
) {
    for Batch { records, ack } in rx {
        let t0 = Instant::now();
        let screened = pool.install(|| screener.screen(&records, |r| input(r, max_message_bytes)));
        let batch = ScreenedBatch {
            records,
            ack,
            screened,
            took: t0.elapsed(),
        };
        if tx.send(batch).is_err() {
            return;
        }
    }
}
