//! The source: the poll loop, on the caller's thread, and the batcher that cuts what it polls
//! into batches (by size or age) for the screen stage. The loop never screens, so heartbeats
//! and rebalances are never starved; it also stores and commits offsets of completed batches.

use super::offsets::{Offsets, RebalanceContext};
use crate::config::Config;
use crate::kafka::BatchAck;
use crate::metrics::{Input, Metrics};
use crate::reload::LiveRules;
use crossbeam_channel::{Sender, TrySendError};
use rdkafka::Message as _;
use rdkafka::consumer::{BaseConsumer, CommitMode};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One polled record, owned (librdkafka reuses the consumer's buffer).
pub(super) struct Polled {
    pub(super) topic: Arc<str>,
    pub(super) partition: i32,
    pub(super) offset: i64,
    pub(super) key: Option<Vec<u8>>,
    pub(super) payload: Option<Vec<u8>>,
    /// Read from the reports topic.
    pub(super) report: bool,
    /// The record's Kafka timestamp (ms since the epoch), when it has one.
    pub(super) timestamp: Option<i64>,
    /// Read from the reviewers' decisions topic.
    pub(super) decision: bool,
}

/// A batch on its way to the screen stage.
pub(super) struct Batch {
    pub(super) records: Vec<Polled>,
    /// Tracks the delivery of every output of the batch.
    pub(super) ack: Arc<BatchAck>,
}

/// The batch being filled.
#[derive(Default)]
struct Pending {
    records: Vec<Polled>,
    /// Next offset per partition.
    offsets: Vec<(Arc<str>, i32, i64)>,
    since: Option<Instant>,
}

/// State shared by the poll loop and the rebalance callbacks (which run inside `poll`, on the
/// same thread; the locks are uncontended and exist because the context must be `Sync`).
pub(super) struct Source {
    pending: Mutex<Pending>,
    /// To the screen stage; `None` once closed.
    tx: Mutex<Option<Sender<Batch>>>,
    pub(super) offsets: Offsets,
    metrics: Metrics,
}

impl Source {
    pub(super) fn new(tx: Sender<Batch>, offsets: Offsets, metrics: Metrics) -> Source {
        Source {
            pending: Mutex::new(Pending::default()),
            tx: Mutex::new(Some(tx)),
            offsets,
            metrics,
        }
    }

    /// Hands the partial batch to the screen stage. Returns false if the stage is gone.
    pub(super) fn dispatch(&self) -> bool {
        let p = std::mem::take(&mut *self.pending.lock().expect("not poisoned"));
        if p.records.is_empty() {
            return true;
        }
        let ack = self
            .offsets
            .register(p.offsets, p.since.unwrap_or_else(Instant::now));
        self.metrics.batch_size.observe(p.records.len() as f64);
        let tx = self.tx.lock().expect("not poisoned");
        let Some(tx) = tx.as_ref() else {
            return false;
        };
        let batch = Batch {
            records: p.records,
            ack,
        };
        let batch = match tx.try_send(batch) {
            Ok(()) => return true,
            Err(TrySendError::Full(b)) => b,
            Err(TrySendError::Disconnected(_)) => return false,
        };
        // The queue is full: screening is the bottleneck right now. Waiting here is the
        // backpressure; librdkafka keeps heartbeating meanwhile.
        let t = Instant::now();
        let ok = tx.send(batch).is_ok();
        self.metrics
            .consumer_blocked_seconds
            .inc_by(t.elapsed().as_secs_f64());
        ok
    }

    /// Sends an empty batch through the stages, so that a rules reload while no input arrives
    /// is noticed at once (the watch stage writes its corrections then, not with the next
    /// message). Its outputs are tracked like any batch's; it has no offsets to commit.
    pub(super) fn dispatch_tick(&self) -> bool {
        let ack = self.offsets.register(Vec::new(), Instant::now());
        let tx = self.tx.lock().expect("not poisoned");
        let Some(tx) = tx.as_ref() else {
            return false;
        };
        tx.send(Batch {
            records: Vec::new(),
            ack,
        })
        .is_ok()
    }

    /// Dispatches what is pending and closes the queue, so the stages finish and exit.
    pub(super) fn close(&self) {
        self.dispatch();
        *self.tx.lock().expect("not poisoned") = None;
    }

    /// Adds a polled record; returns whether the batch is now full.
    fn push(&self, record: Polled, max_batch: usize) -> bool {
        let mut p = self.pending.lock().expect("not poisoned");
        p.since.get_or_insert_with(Instant::now);
        let next = record.offset + 1;
        match p
            .offsets
            .iter_mut()
            .find(|(t, part, _)| *t == record.topic && *part == record.partition)
        {
            Some(slot) => slot.2 = next,
            None => p
                .offsets
                .push((record.topic.clone(), record.partition, next)),
        }
        p.records.push(record);
        p.records.len() >= max_batch
    }

    /// When the oldest pending record was polled.
    fn pending_since(&self) -> Option<Instant> {
        self.pending.lock().expect("not poisoned").since
    }
}

/// Polls until `stop` is set, a delivery fails or the screen stage is gone.
pub(super) fn poll_loop(
    consumer: &BaseConsumer<RebalanceContext>,
    source: &Source,
    cfg: &Config,
    rules: &LiveRules,
    stop: &AtomicBool,
) {
    let mut rules_seen = rules.generation();
    let max_batch = cfg.pipeline.batch_max_messages;
    let max_wait = Duration::from_millis(cfg.pipeline.batch_max_wait_ms);
    let reports_topic = cfg.kafka.reports_topic.as_str();
    let consumed_msgs = source.metrics.consumed(Input::Message);
    let consumed_reports = source.metrics.consumed(Input::Report);
    let decisions_topic = cfg.kafka.decisions_topic.as_str();
    let consumed_decisions = source.metrics.consumed(Input::Decision);
    // Interned topic names, so a polled record costs no allocation for its topic.
    let mut topic_names: Vec<Arc<str>> = Vec::new();
    let mut since_store = 0u32;
    let mut errors = Repeats::new(REPEAT_EVERY);
    while !stop.load(Ordering::Relaxed) && !source.offsets.failed() {
        let timeout = match source.pending_since() {
            Some(t) => max_wait.saturating_sub(t.elapsed()),
            None => Duration::from_millis(100),
        };
        let mut idle = false;
        match consumer.poll(timeout) {
            Some(Ok(m)) => {
                if !errors.seen.is_empty() {
                    errors.recovered(Instant::now());
                }
                let topic = match topic_names.iter().find(|t| &***t == m.topic()) {
                    Some(t) => t.clone(),
                    None => {
                        let t: Arc<str> = m.topic().into();
                        topic_names.push(t.clone());
                        t
                    }
                };
                let report = !reports_topic.is_empty() && m.topic() == reports_topic;
                let decision = !decisions_topic.is_empty() && m.topic() == decisions_topic;
                if report {
                    consumed_reports.inc();
                } else if decision {
                    consumed_decisions.inc();
                } else {
                    consumed_msgs.inc();
                }
                let record = Polled {
                    topic,
                    partition: m.partition(),
                    offset: m.offset(),
                    key: m.key().map(<[u8]>::to_vec),
                    payload: m.payload().map(<[u8]>::to_vec),
                    report,
                    timestamp: m.timestamp().to_millis(),
                    decision,
                };
                if source.push(record, max_batch) && !source.dispatch() {
                    break;
                }
            }
            Some(Err(e)) => {
                errors.note(&e.to_string(), Instant::now());
            }
            None => idle = true,
        }
        // Checked only when idle: with input flowing, the next batch carries a reload anyway.
        if idle && rules.generation() != rules_seen {
            rules_seen = rules.generation();
            if source.pending_since().is_none() && !source.dispatch_tick() {
                break;
            }
        }
        let age_out = source
            .pending_since()
            .is_some_and(|t| t.elapsed() >= max_wait);
        if age_out && !source.dispatch() {
            break;
        }
        since_store += 1;
        if since_store >= 256 || age_out || idle {
            since_store = 0;
            source.offsets.store(consumer, CommitMode::Async);
        }
    }
}

/// How often one kind of consumer error is logged while it repeats.
const REPEAT_EVERY: Duration = Duration::from_secs(30);

/// Consumer errors come once a poll while a broker is away (each also in librdkafka's own
/// log), often two kinds taking turns: the first of each text is logged, its repeats once per
/// interval with their count, and what was held back once it has stopped for an interval
/// while polling works, so an outage reads as a few lines, not thousands.
struct Repeats {
    every: Duration,
    /// Error texts seen lately: when each was last logged, its repeats since, and when it
    /// last came.
    seen: Vec<(String, Instant, u64, Instant)>,
}

/// How many error texts [`Repeats`] tracks at once (the oldest is forgotten past it).
const REPEAT_KINDS: usize = 8;

impl Repeats {
    fn new(every: Duration) -> Repeats {
        Repeats {
            every,
            seen: Vec::new(),
        }
    }

    /// Logs `error` unless the same text was logged within the interval; returns the lines
    /// logged.
    fn note(&mut self, error: &str, now: Instant) -> Vec<String> {
        let line = match self.seen.iter_mut().find(|(text, ..)| text == error) {
            Some((_, at, held, last)) => {
                *last = now;
                if now.duration_since(*at) < self.every {
                    *held += 1;
                    return Vec::new();
                }
                let line = format!(
                    "consumer: {error} (again; {} times since the last line; polling goes on)",
                    *held + 1
                );
                (*at, *held) = (now, 0);
                line
            }
            None => {
                if self.seen.len() >= REPEAT_KINDS {
                    self.seen.remove(0);
                }
                self.seen.push((error.to_owned(), now, 0, now));
                format!(
                    "consumer: {error} (polling goes on; if this repeats, check kafka.brokers, the input topics and the [kafka.consumer] settings)"
                )
            }
        };
        log::warn!("{line}");
        vec![line]
    }

    /// Polling works: logs the repeats held back of the errors that have not come for an
    /// interval, and forgets those (one broker failing while others deliver keeps its own).
    fn recovered(&mut self, now: Instant) -> Vec<String> {
        let mut lines = Vec::new();
        self.seen.retain(|(text, _, held, last)| {
            let gone = now.duration_since(*last) >= self.every;
            if gone && *held > 0 {
                lines.push(format!(
                    "consumer: {text} (repeated {held} more times; polling works again)"
                ));
            }
            !gone
        });
        for line in &lines {
            log::info!("{line}");
        }
        lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeating_consumer_errors_are_logged_once_an_interval_each_with_their_counts() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut r = Repeats::new(s(30));
        // (seconds after t0, error, lines logged, what the last line contains)
        let table: [(u64, &str, usize, &str); 9] = [
            (0, "broker down", 1, "check kafka.brokers"),
            (1, "broker down", 0, ""),
            // Two kinds taking turns are each limited.
            (
                1,
                "transport failure",
                1,
                "consumer: transport failure (polling goes on",
            ),
            (2, "broker down", 0, ""),
            (2, "transport failure", 0, ""),
            (29, "broker down", 0, ""),
            (30, "broker down", 1, "again; 4 times since the last line"),
            (31, "broker down", 0, ""),
            (
                32,
                "transport failure",
                1,
                "again; 2 times since the last line",
            ),
        ];
        for (at, error, count, last) in table {
            let lines = r.note(error, t0 + s(at));
            assert_eq!(lines.len(), count, "at {at} s: {lines:?}");
            if let Some(line) = lines.last() {
                assert!(line.contains(last), "at {at} s: {line:?}");
            }
        }
        // Polling works while an error still comes now and then: it is kept (and limited).
        assert!(r.recovered(t0 + s(40)).is_empty());
        assert!(r.note("broker down", t0 + s(41)).is_empty());
        // Once an error has not come for an interval, what it held back is told and it is
        // forgotten: the next one is logged as new.
        assert_eq!(
            r.recovered(t0 + s(71)),
            ["consumer: broker down (repeated 2 more times; polling works again)"]
        );
        assert!(r.recovered(t0 + s(72)).is_empty());
        assert_eq!(r.note("broker down", t0 + s(73)).len(), 1);
    }
}
