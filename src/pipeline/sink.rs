//! The send stage, on the `send` thread: hands each batch's records to the producer in order,
//! so screening the next batch overlaps with sending this one. librdkafka's own threads deliver
//! them and report back through [`crate::kafka::SinkContext`]; a full producer queue blocks
//! this thread, which in turn blocks the stages before it.

use super::watch_stage::Outgoing;
use crate::config::{KafkaConfig, OutputTopic};
use crate::kafka::{Delivery, Sink};
use crate::metrics::Metrics;
use crossbeam_channel::Receiver;
use std::sync::Arc;
use std::time::Instant;

/// Sends every batch from `rx` until it closes.
pub(super) fn run(sink: &Sink, topics: &KafkaConfig, metrics: &Metrics, rx: Receiver<Outgoing>) {
    for batch in rx {
        let t0 = Instant::now();
        batch.ack.add(batch.records.len());
        let mut to: [Option<Arc<Delivery>>; OutputTopic::ALL.len()] = Default::default();
        for r in batch.records {
            let d = to[r.topic.index()].get_or_insert_with(|| Delivery::new(&batch.ack, r.topic));
            sink.send(d, topics, r.key.as_deref(), &r.payload, r.headers);
        }
        batch.ack.sent();
        metrics
            .batch_send_seconds
            .observe(t0.elapsed().as_secs_f64());
    }
}
