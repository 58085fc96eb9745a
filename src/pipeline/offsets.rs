//! Offsets: which inputs are done (every output acknowledged), storing and committing their
//! offsets, and the consumer context that drains and commits before a rebalance takes
//! partitions away. The at-least-once rule itself is in [`crate::kafka`].

use super::source::Source;
use crate::kafka::{BatchAck, Tracker};
use crate::metrics::Metrics;
use rdkafka::Offset;
use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::topic_partition_list::TopicPartitionList;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The batches in flight, in dispatch order, and what may be committed of them.
pub(super) struct Offsets {
    tracker: Tracker,
    /// Bumped on every revoke: offsets of batches dispatched before it are never stored (their
    /// partitions may have moved on under another owner).
    generation: AtomicU64,
    failure: Mutex<Option<String>>,
    metrics: Metrics,
    drain_timeout: Duration,
    /// A drain at shutdown timed out: the revoke that closing the consumer brings does not
    /// wait a second time for outputs the broker is not taking.
    gave_up: AtomicBool,
}

impl Offsets {
    pub(super) fn new(metrics: Metrics, drain_timeout: Duration) -> Offsets {
        Offsets {
            tracker: Tracker::default(),
            generation: AtomicU64::new(0),
            failure: Mutex::new(None),
            metrics,
            drain_timeout,
            gave_up: AtomicBool::new(false),
        }
    }

    /// Registers a batch about to be dispatched; `offsets` are its next offset per partition.
    pub(super) fn register(
        &self,
        offsets: Vec<(Arc<str>, i32, i64)>,
        first_polled: Instant,
    ) -> Arc<BatchAck> {
        self.metrics.batches_in_flight.inc();
        self.tracker.register(
            offsets,
            self.generation.load(Ordering::Acquire),
            first_polled,
        )
    }

    /// Stores (and commits, in `commit` mode) the offsets of every completed batch; false when
    /// a commit was due and failed.
    pub(super) fn store<C: ConsumerContext>(
        &self,
        consumer: &BaseConsumer<C>,
        commit: CommitMode,
    ) -> bool {
        let mut committed = true;
        let done = self
            .tracker
            .take_done(self.generation.load(Ordering::Acquire));
        for b in &done.batches {
            self.metrics
                .batch_latency_seconds
                .observe(b.first_polled.elapsed().as_secs_f64());
            self.metrics.batches_in_flight.dec();
        }
        if !done.offsets.is_empty() {
            let mut tpl = TopicPartitionList::new();
            for (t, p, o) in &done.offsets {
                if let Err(e) = tpl.add_partition_offset(t, *p, Offset::Offset(*o)) {
                    log::warn!("offset {t}[{p}]@{o}: {e}");
                }
            }
            // Fails for partitions revoked meanwhile: their next owner re-reads them.
            if let Err(e) = consumer.store_offsets(&tpl) {
                log::debug!("storing offsets: {e}");
            }
            committed = commit_stored(consumer, commit);
        }
        if let Some(f) = done.failure {
            let mut slot = self.failure.lock().expect("not poisoned");
            if slot.is_none() {
                log::error!("stopping: {f}; offsets from this batch on are not committed");
                *slot = Some(f);
            }
        }
        committed
    }

    /// Waits until every dispatched batch's outputs are acknowledged, at most the configured
    /// drain timeout (not at all once a shutdown drain gave up); returns whether they all were.
    pub(super) fn drain(&self) -> bool {
        match self.gave_up.load(Ordering::Acquire) {
            true => self.tracker.wait_all(Duration::ZERO),
            false => self.tracker.wait_all(self.drain_timeout),
        }
    }

    /// The shutdown drain timed out: later drains do not wait again.
    pub(super) fn give_up(&self) {
        self.gave_up.store(true, Ordering::Release);
    }

    pub(super) fn drain_timeout(&self) -> Duration {
        self.drain_timeout
    }

    /// Whether a delivery failed (the pipeline then stops).
    pub(super) fn failed(&self) -> bool {
        self.failure.lock().expect("not poisoned").is_some()
    }

    /// The delivery failure that stopped the pipeline, if one did.
    pub(super) fn take_failure(&self) -> Option<String> {
        self.failure.lock().expect("not poisoned").take()
    }
}

fn commit_stored<C: ConsumerContext>(consumer: &BaseConsumer<C>, mode: CommitMode) -> bool {
    match consumer.commit_consumer_state(mode) {
        Ok(()) => true,
        // Nothing new stored since the last commit.
        Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => true,
        Err(e) => {
            log::warn!(
                "committing offsets failed: {e}; the next commit retries them (if none succeeds, a restart re-screens from the last committed offset: check the group's ACLs and the broker)"
            );
            false
        }
    }
}

fn describe(tpl: &TopicPartitionList) -> String {
    let mut parts: Vec<String> = tpl
        .elements()
        .iter()
        .map(|e| format!("{}[{}]", e.topic(), e.partition()))
        .collect();
    parts.sort();
    parts.join(",")
}

/// Consumer context: drains and commits before partitions are taken away, and publishes
/// librdkafka's statistics (lag, brokers up).
pub(super) struct RebalanceContext {
    pub(super) source: Arc<Source>,
    pub(super) stats: crate::metrics::ConsumerStatsPublisher,
    pub(super) join: Arc<super::join_wait::JoinWait>,
}

impl ClientContext for RebalanceContext {
    fn stats(&self, statistics: rdkafka::Statistics) {
        self.stats.publish(&statistics);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        if error.rdkafka_error_code() == Some(RDKafkaErrorCode::AllBrokersDown) {
            self.source.offsets.metrics.readiness.brokers_down();
        }
        log::error!(
            "librdkafka: {error}: {reason} (librdkafka retries by itself; if this repeats, check kafka.brokers and the [kafka.consumer] security settings)"
        );
    }
}

impl ConsumerContext for RebalanceContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            let offsets = &self.source.offsets;
            log::info!("partitions revoked: {}", describe(tpl));
            // Screen what was already polled, wait for its outputs, and commit: the next owner
            // then starts exactly where we stopped (no duplicates on a clean hand-over).
            self.source.dispatch();
            if !offsets.drain() {
                log::warn!(
                    "revoke: outputs still unacknowledged after {:?}; the next owner will re-screen them",
                    offsets.drain_timeout
                );
            }
            offsets.store(consumer, CommitMode::Sync);
            offsets.generation.fetch_add(1, Ordering::AcqRel);
            offsets.metrics.assigned_partitions.set(0);
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(tpl) => {
                log::info!("partitions assigned: {}", describe(tpl));
                self.join.joined();
                self.source
                    .offsets
                    .metrics
                    .assigned_partitions
                    .set(tpl.count() as i64);
            }
            Rebalance::Revoke(_) => {}
            Rebalance::Error(e) => log::warn!(
                "rebalance error: {e}; the consumer re-joins the group (if it repeats, check the group's ACLs and that kafka.group_instance_id is unique per instance)"
            ),
        }
    }
}
