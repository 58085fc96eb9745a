//! Kafka plumbing: client settings, delivery tracking and the at-least-once offset rule.
//!
//! The rule (as in Vector's and Quickwit's Kafka sources): an input offset is *stored* only
//! after every output record derived from it, and from every earlier record of its partition,
//! has been acknowledged by the broker; stored offsets are committed after each completed
//! batch, and synchronously on partition revoke and on shutdown. A crash therefore repeats at
//! most the batches whose outputs were in flight, and loses nothing.

pub mod admin;
pub mod probe;

use crate::config::{KafkaConfig, OutputTopic};
use crate::metrics::Metrics;
use rdkafka::ClientConfig;
use rdkafka::client::ClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::OwnedHeaders;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// Consumer settings qunguard relies on; `overrides` (the config's `[kafka.consumer]`) win,
/// except where [`crate::config::Config::validate`] forbids them.
pub fn consumer_config(
    brokers: &str,
    group_id: &str,
    overrides: &std::collections::BTreeMap<String, String>,
) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", brokers)
        .set("group.id", group_id)
        // Offsets are stored by the pipeline after delivery and committed explicitly.
        .set("enable.auto.offset.store", "false")
        .set("enable.auto.commit", "false")
        // A new group starts from the oldest retained message: moderation must not skip.
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false")
        .set("client.id", "qunguard");
    for (k, v) in overrides {
        c.set(k, v);
    }
    c
}

/// Producer settings: idempotent (acks=all, no duplicates from retries) and Java-compatible
/// key partitioning, so verdicts for a group land where a Java client would put them.
pub fn producer_config(
    brokers: &str,
    overrides: &std::collections::BTreeMap<String, String>,
) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", brokers)
        .set("enable.idempotence", "true")
        .set("partitioner", "murmur2_random")
        .set("linger.ms", "5")
        .set("client.id", "qunguard");
    for (k, v) in overrides {
        c.set(k, v);
    }
    c
}

/// Settings for admin clients (`topics`): the brokers and the `[kafka.consumer]` overrides,
/// which carry the cluster's TLS/SASL settings.
pub fn admin_config(
    brokers: &str,
    overrides: &std::collections::BTreeMap<String, String>,
) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", brokers)
        .set("client.id", "qunguard");
    for (k, v) in overrides {
        c.set(k, v);
    }
    // Consumer-only overrides (session.timeout.ms…) would each be warned about by an admin
    // client, which ignores them anyway.
    c.set_log_level(rdkafka::config::RDKafkaLogLevel::Error);
    c
}

/// Acknowledgement state of one batch's outputs.
pub struct BatchAck {
    /// Outputs sent but not yet acknowledged, plus one while the batch is still being sent.
    remaining: AtomicUsize,
    failed: AtomicBool,
    error: Mutex<Option<String>>,
    /// Next offset to consume per input partition (last offset in the batch + 1).
    offsets: Vec<(Arc<str>, i32, i64)>,
    /// Assignment generation at dispatch; offsets of an older generation are never stored
    /// (their partitions may have moved on under another owner).
    generation: u64,
    /// When the batch's first record was polled.
    pub first_polled: Instant,
    tracker: Arc<TrackerInner>,
}

impl BatchAck {
    /// Counts `n` more output records about to be sent (a batch's records at once: the
    /// delivery thread decrements the same counter, so one add a record was a contended
    /// atomic a record).
    pub fn add(&self, n: usize) {
        self.remaining.fetch_add(n, Ordering::AcqRel);
    }

    /// Marks the batch as fully sent (releases the sending guard).
    pub fn sent(&self) {
        self.done_one(Ok(()));
    }

    fn done_one(&self, result: Result<(), String>) {
        if let Err(e) = result {
            self.failed.store(true, Ordering::Release);
            let mut slot = self.error.lock().expect("not poisoned");
            slot.get_or_insert(e);
        }
        if self.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
            // Take the lock so a waiter cannot miss the wake-up between check and wait.
            let _g = self.tracker.queue.lock().expect("not poisoned");
            self.tracker.changed.notify_all();
        }
    }

    fn is_done(&self) -> bool {
        self.remaining.load(Ordering::Acquire) == 0
    }
}

struct TrackerInner {
    queue: Mutex<VecDeque<Arc<BatchAck>>>,
    changed: Condvar,
}

/// Batches in dispatch order; hands back the ones whose outputs are all acknowledged.
#[derive(Clone)]
pub struct Tracker {
    inner: Arc<TrackerInner>,
}

/// What [`Tracker::take_done`] found.
pub struct Completed {
    /// Offsets to store: the newest per partition, current generation only.
    pub offsets: Vec<(Arc<str>, i32, i64)>,
    /// Batches completed (for latency metrics).
    pub batches: Vec<Arc<BatchAck>>,
    /// The first delivery failure, if a batch failed: nothing at or after it may be stored.
    pub failure: Option<String>,
}

impl Default for Tracker {
    fn default() -> Self {
        Tracker {
            inner: Arc::new(TrackerInner {
                queue: Mutex::new(VecDeque::new()),
                changed: Condvar::new(),
            }),
        }
    }
}

impl Tracker {
    /// Registers a new batch (in dispatch order) and returns its ack handle, holding the
    /// sending guard until [`BatchAck::sent`].
    pub fn register(
        &self,
        offsets: Vec<(Arc<str>, i32, i64)>,
        generation: u64,
        first_polled: Instant,
    ) -> Arc<BatchAck> {
        let ack = Arc::new(BatchAck {
            remaining: AtomicUsize::new(1),
            failed: AtomicBool::new(false),
            error: Mutex::new(None),
            offsets,
            generation,
            first_polled,
            tracker: self.inner.clone(),
        });
        self.inner
            .queue
            .lock()
            .expect("not poisoned")
            .push_back(ack.clone());
        ack
    }

    /// Pops the completed prefix of the queue. Stops at a failed batch (left in the queue, so
    /// later calls keep reporting it and nothing after it is ever stored).
    pub fn take_done(&self, generation: u64) -> Completed {
        let mut q = self.inner.queue.lock().expect("not poisoned");
        let mut out = Completed {
            offsets: Vec::new(),
            batches: Vec::new(),
            failure: None,
        };
        while let Some(front) = q.front() {
            if !front.is_done() {
                break;
            }
            if front.failed.load(Ordering::Acquire) {
                out.failure = front.error.lock().expect("not poisoned").clone();
                break;
            }
            let b = q.pop_front().expect("front exists");
            if b.generation == generation {
                for (t, p, o) in &b.offsets {
                    match out
                        .offsets
                        .iter_mut()
                        .find(|(t2, p2, _)| t2 == t && p2 == p)
                    {
                        Some(slot) => slot.2 = slot.2.max(*o),
                        None => out.offsets.push((t.clone(), *p, *o)),
                    }
                }
            }
            out.batches.push(b);
        }
        out
    }

    /// Waits until every registered batch is acknowledged (or one failed), or `timeout`.
    /// Returns whether everything completed.
    pub fn wait_all(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut q = self.inner.queue.lock().expect("not poisoned");
        loop {
            if q.iter().all(|b| b.is_done()) {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            q = self
                .inner
                .changed
                .wait_timeout(q, deadline - now)
                .expect("not poisoned")
                .0;
        }
    }

    /// Batches registered and not yet taken.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.inner.queue.lock().expect("not poisoned").len()
    }

    /// Whether no batch is outstanding.
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Delivery opaque: the batch a record belongs to and the topic it goes to. One per batch and
/// topic, shared by those records (an allocation a record, made on the send thread and freed
/// on librdkafka's, showed in the send path's profile).
pub struct Delivery {
    ack: Arc<BatchAck>,
    topic: OutputTopic,
}

impl Delivery {
    /// Where the delivery reports of `ack`'s records to `topic` go.
    pub fn new(ack: &Arc<BatchAck>, topic: OutputTopic) -> Arc<Delivery> {
        Arc::new(Delivery {
            ack: ack.clone(),
            topic,
        })
    }
}

/// Producer context: turns delivery reports into batch acknowledgements and metrics.
pub struct SinkContext {
    produced: Vec<prometheus::IntCounter>,
    errors: Vec<prometheus::IntCounter>,
    /// A purged output was logged (the rest are only counted).
    purged: AtomicBool,
}

impl SinkContext {
    /// Resolves the per-kind counters once, so a delivery report costs no label lookups.
    pub fn new(metrics: &Metrics) -> SinkContext {
        SinkContext {
            produced: OutputTopic::ALL
                .iter()
                .map(|t| metrics.produced.with_label_values(&[t.record_kind()]))
                .collect(),
            errors: OutputTopic::ALL
                .iter()
                .map(|t| metrics.produce_errors.with_label_values(&[t.record_kind()]))
                .collect(),
            purged: AtomicBool::new(false),
        }
    }
}

impl ClientContext for SinkContext {}

impl ProducerContext for SinkContext {
    type DeliveryOpaque = Arc<Delivery>;

    fn delivery(&self, result: &DeliveryResult<'_>, d: Self::DeliveryOpaque) {
        match result {
            Ok(_) => {
                self.produced[d.topic.index()].inc();
                d.ack.done_one(Ok(()));
            }
            Err((e, _)) => {
                self.errors[d.topic.index()].inc();
                let kind = d.topic.record_kind();
                let purged = matches!(
                    e,
                    KafkaError::MessageProduction(
                        RDKafkaErrorCode::PurgeQueue | RDKafkaErrorCode::PurgeInflight
                    )
                );
                // Purged outputs come by the thousand when the producer closes on a broker
                // that stopped taking them: one line says it.
                if !purged {
                    log::error!(
                        "delivery of a {kind} record failed after librdkafka's retries: {e}; check the broker's logs, the topic's ACLs and min.insync.replicas (this batch's offsets stay uncommitted, so a restart re-screens it)"
                    );
                } else if !self.purged.swap(true, Ordering::Relaxed) {
                    log::warn!(
                        "outputs not yet acknowledged were dropped as the producer closed (first: a {kind} record); their batches stay uncommitted, so a restart re-screens them"
                    );
                }
                d.ack
                    .done_one(Err(format!("delivery of a {kind} record failed: {e}")));
            }
        }
    }
}

/// The output side: one idempotent producer shared by every output topic.
pub struct Sink {
    producer: ThreadedProducer<SinkContext>,
}

impl Sink {
    /// Creates the producer.
    pub fn new(config: &ClientConfig, metrics: &Metrics) -> Result<Sink, KafkaError> {
        let producer = config.create_with_context(SinkContext::new(metrics))?;
        Ok(Sink { producer })
    }

    /// Sends one record to `to`'s topic (named by `topics`); its delivery (or failure) counts
    /// one of the records [`BatchAck::add`] announced for `to`'s batch. Waits while
    /// librdkafka's queue is full (the backpressure that ultimately pauses consumption). A
    /// record librdkafka refuses outright (e.g. over `message.max.bytes`) counts as a failed
    /// delivery of its batch.
    pub fn send(
        &self,
        to: &Arc<Delivery>,
        topics: &KafkaConfig,
        key: Option<&[u8]>,
        payload: &[u8],
        headers: Option<OwnedHeaders>,
    ) {
        let topic = to.topic;
        let name = topic.name(topics);
        let mut record = BaseRecord::with_opaque_to(name, to.clone()).payload(payload);
        if let Some(k) = key {
            record = record.key(k);
        }
        if let Some(h) = headers {
            record = record.headers(h);
        }
        loop {
            match self.producer.send(record) {
                Ok(()) => return,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    record = r;
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err((e, r)) => {
                    let d = r.delivery_opaque;
                    let kind = topic.record_kind();
                    log::error!("cannot send a {kind} record to {name}: {e}");
                    d.ack
                        .done_one(Err(format!("cannot send a {kind} record to {name}: {e}")));
                    return;
                }
            }
        }
    }

    /// Waits for every queued record to be delivered or to fail.
    pub fn flush(&self, timeout: Duration) -> Result<(), KafkaError> {
        self.producer.flush(timeout)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offs(list: &[(&str, i32, i64)]) -> Vec<(Arc<str>, i32, i64)> {
        list.iter()
            .map(|(t, p, o)| (Arc::from(*t), *p, *o))
            .collect()
    }

    /// Acks arrive out of order; offsets may only be stored for a completed prefix.
    #[test]
    fn offsets_are_stored_only_for_the_acknowledged_prefix() {
        // (batch offsets, outputs per batch)
        let t = Tracker::default();
        let batches = [
            t.register(offs(&[("in", 0, 10), ("in", 1, 5)]), 0, Instant::now()),
            t.register(offs(&[("in", 0, 20)]), 0, Instant::now()),
            t.register(offs(&[("in", 1, 9)]), 0, Instant::now()),
        ];
        for b in &batches {
            b.add(2);
            b.sent();
        }
        // Table: (batch, outputs acked now) → offsets expected from take_done.
        type Step<'a> = (usize, usize, &'a [(&'a str, i32, i64)]);
        let steps: &[Step<'_>] = &[
            (1, 2, &[]), // batch 1 complete, batch 0 not: nothing
            (2, 1, &[]),
            (0, 1, &[]),
            (0, 1, &[("in", 0, 20), ("in", 1, 5)]), // 0 and 1 complete; 2 still has one
            (2, 1, &[("in", 1, 9)]),
        ];
        for (i, (batch, n, want)) in steps.iter().enumerate() {
            for _ in 0..*n {
                batches[*batch].done_one(Ok(()));
            }
            let done = t.take_done(0);
            assert!(done.failure.is_none());
            let mut got = done.offsets;
            got.sort();
            assert_eq!(got, offs(want), "step {i}");
        }
        assert!(t.is_empty());
        assert!(t.wait_all(Duration::from_millis(1)));
    }

    #[test]
    fn a_failed_delivery_blocks_its_batch_and_everything_after_it() {
        let t = Tracker::default();
        let a = t.register(offs(&[("in", 0, 10)]), 0, Instant::now());
        let b = t.register(offs(&[("in", 0, 20)]), 0, Instant::now());
        a.add(1);
        a.sent();
        b.sent();
        a.done_one(Err("broker said no".into()));
        for _ in 0..2 {
            let done = t.take_done(0);
            assert!(done.offsets.is_empty());
            assert_eq!(done.failure.as_deref(), Some("broker said no"));
        }
        assert_eq!(t.len(), 2);
    }

    #[test]
    fn offsets_of_an_older_assignment_generation_are_dropped() {
        let t = Tracker::default();
        let old = t.register(offs(&[("in", 0, 10)]), 3, Instant::now());
        let new = t.register(offs(&[("in", 0, 4)]), 4, Instant::now());
        old.sent();
        new.sent();
        let done = t.take_done(4);
        assert_eq!(done.offsets, offs(&[("in", 0, 4)]));
        assert_eq!(done.batches.len(), 2);
    }

    #[test]
    fn wait_all_wakes_when_the_last_ack_arrives() {
        let t = Tracker::default();
        let b = t.register(offs(&[("in", 0, 1)]), 0, Instant::now());
        b.add(1);
        b.sent();
        assert!(!t.wait_all(Duration::from_millis(20)));
        let b2 = b.clone();
        let h = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            b2.done_one(Ok(()));
        });
        assert!(t.wait_all(Duration::from_secs(10)));
        h.join().unwrap();
    }
}
