//! `qunguard run`: Kafka source → batcher → screen (+ watch) → Kafka sink, with metrics beside.
//!
//! Threads:
//! - the **consumer** thread (the caller's) polls Kafka, cuts batches by size or age and hands
//!   them over a bounded queue; it also stores and commits offsets of completed batches and
//!   handles rebalances. It never screens, so heartbeats and rebalances are never starved.
//! - the **screen** thread parses, screens (on rayon), runs the heuristics and serialises every
//!   output record;
//! - the **send** thread hands them to the producer in order (so screening the next batch
//!   overlaps with sending this one); librdkafka's own threads deliver them and report back
//!   through [`crate::kafka::SinkContext`].
//!
//! A full queue blocks the consumer and a full producer queue blocks the send thread, so
//! a slow broker slows consumption instead of growing memory.

use crate::config::Config;
use crate::kafka::{self, BatchAck, OutputKind, Sink, Tracker};
use crate::metrics::Metrics;
use crate::model::{Action, Message, Verdict};
use crate::scan::{Rejection, parse_message};
use crate::screen::Engine;
use crate::watch::{Fingerprinter, Output, Report, Signature, Watch};
use crossbeam_channel::{Receiver, Sender};
use rayon::prelude::*;
use rdkafka::Message as _;
use rdkafka::Offset;
use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::topic_partition_list::TopicPartitionList;
use serde::Serialize;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One polled record, owned (the consumer's buffer is reused by librdkafka).
struct Input {
    topic: Arc<str>,
    partition: i32,
    offset: i64,
    key: Option<Vec<u8>>,
    payload: Option<Vec<u8>>,
    report: bool,
}

struct Batch {
    inputs: Vec<Input>,
    ack: Arc<BatchAck>,
}

#[derive(Default)]
struct Pending {
    inputs: Vec<Input>,
    /// Next offset per partition.
    offsets: Vec<(Arc<str>, i32, i64)>,
    since: Option<Instant>,
}

/// State shared by the poll loop and the rebalance callbacks (which run inside `poll`, on the
/// same thread; the locks are uncontended and exist because the context must be `Sync`).
struct Shared {
    pending: Mutex<Pending>,
    tx: Mutex<Option<Sender<Batch>>>,
    tracker: Tracker,
    generation: AtomicU64,
    metrics: Metrics,
    drain_timeout: Duration,
    failure: Mutex<Option<String>>,
}

impl Shared {
    /// Hands the partial batch to the screen stage. Returns false if the stage is gone.
    fn dispatch(&self) -> bool {
        let p = std::mem::take(&mut *self.pending.lock().expect("not poisoned"));
        if p.inputs.is_empty() {
            return true;
        }
        let ack = self.tracker.register(
            p.offsets,
            self.generation.load(Ordering::Acquire),
            p.since.unwrap_or_else(Instant::now),
        );
        self.metrics.batches_in_flight.inc();
        self.metrics.batch_size.observe(p.inputs.len() as f64);
        let tx = self.tx.lock().expect("not poisoned");
        let Some(tx) = tx.as_ref() else {
            return false;
        };
        let batch = Batch {
            inputs: p.inputs,
            ack,
        };
        let batch = match tx.try_send(batch) {
            Ok(()) => return true,
            Err(crossbeam_channel::TrySendError::Full(b)) => b,
            Err(crossbeam_channel::TrySendError::Disconnected(_)) => return false,
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

    /// Stores (and asynchronously commits) the offsets of every completed batch.
    fn store<C: ConsumerContext>(&self, consumer: &BaseConsumer<C>, commit: CommitMode) {
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
            commit_stored(consumer, commit);
        }
        if let Some(f) = done.failure {
            let mut slot = self.failure.lock().expect("not poisoned");
            if slot.is_none() {
                log::error!("stopping: {f}; offsets from this batch on are not committed");
                *slot = Some(f);
            }
        }
    }

    fn failed(&self) -> bool {
        self.failure.lock().expect("not poisoned").is_some()
    }
}

fn commit_stored<C: ConsumerContext>(consumer: &BaseConsumer<C>, mode: CommitMode) {
    match consumer.commit_consumer_state(mode) {
        Ok(()) => {}
        // Nothing new stored since the last commit.
        Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
        Err(e) => log::warn!("committing offsets: {e}"),
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

/// Consumer context: drains and commits before partitions are taken away.
struct PipelineContext {
    shared: Arc<Shared>,
}

impl ClientContext for PipelineContext {}

impl ConsumerContext for PipelineContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            let s = &self.shared;
            log::info!("partitions revoked: {}", describe(tpl));
            // Screen what was already polled, wait for its outputs, and commit: the next owner
            // then starts exactly where we stopped (no duplicates on a clean hand-over).
            s.dispatch();
            if !s.tracker.wait_all(s.drain_timeout) {
                log::warn!(
                    "revoke: outputs still unacknowledged after {:?}; the next owner will re-screen them",
                    s.drain_timeout
                );
            }
            s.store(consumer, CommitMode::Sync);
            s.generation.fetch_add(1, Ordering::AcqRel);
            s.metrics.assigned_partitions.set(0);
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(tpl) => {
                log::info!("partitions assigned: {}", describe(tpl));
                self.shared
                    .metrics
                    .assigned_partitions
                    .set(tpl.count() as i64);
            }
            Rebalance::Revoke(_) => {}
            Rebalance::Error(e) => log::warn!("rebalance error: {e}"),
        }
    }
}

/// A review-topic copy of a verdict: the verdict plus the text reviewers need to judge it.
#[derive(Serialize)]
struct ReviewRecord<'a> {
    /// Why it is up for review: `screen` (the rules said review).
    source: &'static str,
    #[serde(flatten)]
    verdict: &'a Verdict,
    text: &'a str,
}

/// One output record, ready to send.
struct OutRecord {
    kind: OutputKind,
    key: Option<Vec<u8>>,
    payload: Vec<u8>,
    headers: Option<OwnedHeaders>,
}

/// A screened batch: its outputs in send order.
struct Prepared {
    ack: Arc<BatchAck>,
    records: Vec<OutRecord>,
}

enum Parsed {
    Msg(Box<Message>),
    Report(Box<Report>),
    Reject(Rejection),
}

/// A batch parsed and screened, on its way to the watch.
struct Screened {
    inputs: Vec<Input>,
    ack: Arc<BatchAck>,
    msgs: Vec<Message>,
    verdicts: Vec<Verdict>,
    sigs: Vec<Signature>,
    reports: Vec<Report>,
    rejects: Vec<(usize, Rejection)>,
    /// Per input: the index of its message in `msgs` (and so of its verdict).
    msg_of: Vec<Option<usize>>,
    took: Duration,
}

/// The screen stage: parse and screen (in parallel on rayon), fingerprint for the watch.
struct Stage {
    engine: Arc<Engine>,
    fingerprinter: Option<Fingerprinter>,
    cfg: Config,
}

/// The watch stage: heuristics in stream order, then every output record of the batch. It
/// runs on a thread of its own, so the watch of one batch overlaps screening of the next.
struct Finish {
    watch: Option<Watch>,
    publisher: crate::metrics::WatchPublisher,
    cfg: Config,
    metrics: Metrics,
    verdict_counters: [prometheus::IntCounter; 3],
}

impl Stage {
    fn parse(&self, input: &Input) -> Parsed {
        let max = self.cfg.pipeline.max_message_bytes;
        let Some(payload) = &input.payload else {
            return Parsed::Reject(Rejection {
                code: "empty",
                detail: "record has no value".into(),
            });
        };
        if payload.len() > max {
            return Parsed::Reject(Rejection {
                code: "too_large",
                detail: format!(
                    "record is {} bytes, over pipeline.max_message_bytes ({max})",
                    payload.len()
                ),
            });
        }
        if input.report {
            return match serde_json::from_slice::<Report>(payload) {
                Ok(r) => Parsed::Report(Box::new(r)),
                Err(e) => Parsed::Reject(Rejection {
                    code: "report_invalid",
                    detail: format!("not a valid report: {e}"),
                }),
            };
        }
        match parse_message(payload, self.cfg.pipeline.max_text_bytes) {
            Ok(m) => Parsed::Msg(Box::new(m)),
            Err(r) => Parsed::Reject(r),
        }
    }

    /// Parses and screens one batch.
    fn screen(&self, batch: Batch) -> Screened {
        let t0 = Instant::now();
        let Batch { inputs, ack } = batch;
        let parsed: Vec<Parsed> = inputs.par_iter().map(|i| self.parse(i)).collect();
        let mut msgs = Vec::with_capacity(parsed.len());
        let mut reports = Vec::new();
        let mut rejects: Vec<(usize, Rejection)> = Vec::new();
        let mut msg_of = Vec::with_capacity(parsed.len());
        for (i, p) in parsed.into_iter().enumerate() {
            match p {
                Parsed::Msg(m) => {
                    msg_of.push(Some(msgs.len()));
                    msgs.push(*m);
                }
                Parsed::Report(r) => {
                    msg_of.push(None);
                    reports.push(*r);
                }
                Parsed::Reject(r) => {
                    msg_of.push(None);
                    rejects.push((i, r));
                }
            }
        }
        let (verdicts, sigs) = match &self.fingerprinter {
            Some(fp) => fp.screen(&self.engine, &msgs),
            None => (self.engine.screen_batch(&msgs), Vec::new()),
        };
        Screened {
            inputs,
            ack,
            msgs,
            verdicts,
            sigs,
            reports,
            rejects,
            msg_of,
            took: t0.elapsed(),
        }
    }
}

impl Finish {
    /// Runs the watch over a screened batch; returns its outputs in order.
    fn finish(&mut self, sc: Screened) -> Prepared {
        let t0 = Instant::now();
        let Screened {
            inputs,
            ack,
            msgs,
            mut verdicts,
            sigs,
            reports,
            rejects,
            msg_of,
            took,
        } = sc;
        let mut outs: Vec<Output> = Vec::new();
        if let Some(w) = &mut self.watch {
            w.observe(&msgs, &sigs, &mut verdicts, &mut outs);
            for r in reports {
                w.report(r, &mut outs);
            }
            self.publisher.publish(&self.metrics, w);
        }
        let max_hits = self.cfg.pipeline.max_hits;
        for v in &mut verdicts {
            if v.hits.len() > max_hits {
                v.hits.truncate(max_hits);
                v.hits_truncated = true;
            }
        }
        let payloads: Vec<Vec<u8>> = verdicts
            .par_iter()
            .map(|v| serde_json::to_vec(v).expect("verdicts serialise"))
            .collect();

        let mut records = Vec::with_capacity(inputs.len() + outs.len());
        let mut rejects = rejects.into_iter().peekable();
        let mut payloads = payloads.into_iter();
        for (i, input) in inputs.iter().enumerate() {
            if let Some(vi) = msg_of[i] {
                let v = &verdicts[vi];
                records.push(OutRecord {
                    kind: OutputKind::Verdict,
                    key: Some(v.group_id.as_bytes().to_vec()),
                    payload: payloads.next().expect("one payload per verdict"),
                    headers: None,
                });
                self.verdict_counters[v.action as usize].inc();
                for c in &v.categories {
                    self.metrics
                        .verdict_categories
                        .with_label_values(&[c])
                        .inc();
                }
                if v.action == Action::Review {
                    let rec = ReviewRecord {
                        source: "screen",
                        verdict: v,
                        text: &msgs[vi].text,
                    };
                    records.push(OutRecord {
                        kind: OutputKind::Review,
                        key: Some(v.group_id.as_bytes().to_vec()),
                        payload: serde_json::to_vec(&rec).expect("review records serialise"),
                        headers: None,
                    });
                }
            } else if rejects.peek().is_some_and(|(ri, _)| *ri == i) {
                let (_, r) = rejects.next().expect("peeked");
                records.push(self.dead_letter(input, &r));
            }
        }
        for o in &outs {
            let kind = match o {
                Output::Alert(_) => OutputKind::Alert,
                Output::Scorecard(_) => OutputKind::Scorecard,
                Output::Reward(_) => OutputKind::Reward,
                Output::Review(_) => OutputKind::Review,
            };
            if let Some(alert_kind) = o.alert_kind() {
                self.metrics
                    .alerts
                    .with_label_values(&[alert_kind.name()])
                    .inc();
            }
            records.push(OutRecord {
                kind,
                key: Some(o.key().as_bytes().to_vec()),
                payload: serde_json::to_vec(o).expect("watch records serialise"),
                headers: None,
            });
        }
        self.metrics
            .batch_screen_seconds
            .observe((took + t0.elapsed()).as_secs_f64());
        Prepared { ack, records }
    }

    fn dead_letter(&self, input: &Input, r: &Rejection) -> OutRecord {
        self.metrics.dead_letters.with_label_values(&[r.code]).inc();
        log::debug!(
            "dead-letter {}[{}]@{}: {}",
            input.topic,
            input.partition,
            input.offset,
            r.detail
        );
        let payload = input.payload.as_deref().unwrap_or_default();
        let cap = self.cfg.pipeline.dead_letter_max_bytes;
        let kept = &payload[..payload.len().min(cap)];
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
            kind: OutputKind::DeadLetter,
            key: input.key.clone(),
            payload: kept.to_vec(),
            headers: Some(h),
        }
    }
}

/// The send stage: hands prepared records to the producer in order, so screening of the next
/// batch overlaps with sending this one.
fn send_stage(sink: &Sink, cfg: &Config, metrics: &Metrics, rx: Receiver<Prepared>) {
    let k = &cfg.kafka;
    for p in rx {
        let t0 = Instant::now();
        for r in p.records {
            let topic = match r.kind {
                OutputKind::Verdict => &k.verdicts_topic,
                OutputKind::Review => &k.review_topic,
                OutputKind::DeadLetter => &k.dead_letter_topic,
                OutputKind::Alert => &k.alerts_topic,
                OutputKind::Scorecard => &k.scorecards_topic,
                OutputKind::Reward => &k.rewards_topic,
            };
            sink.send(
                &p.ack,
                r.kind,
                topic,
                r.key.as_deref(),
                &r.payload,
                r.headers,
            );
        }
        p.ack.sent();
        metrics
            .batch_send_seconds
            .observe(t0.elapsed().as_secs_f64());
    }
}

/// Runs the pipeline until `stop` is set (then drains and commits) or a delivery fails.
///
/// `on_ready` is called once the consumer has subscribed (the demo starts its generator then).
pub fn run(
    cfg: &Config,
    engine: Arc<Engine>,
    metrics: Metrics,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<()> {
    let k = &cfg.kafka;
    let pc = &cfg.pipeline;
    let sink = Arc::new(Sink::new(
        &kafka::producer_config(&k.brokers, &k.producer),
        &metrics,
    )?);
    let (tx, rx) = crossbeam_channel::bounded::<Batch>(pc.queue_batches);
    let shared = Arc::new(Shared {
        pending: Mutex::new(Pending::default()),
        tx: Mutex::new(Some(tx)),
        tracker: Tracker::default(),
        generation: AtomicU64::new(0),
        metrics: metrics.clone(),
        drain_timeout: Duration::from_millis(pc.drain_timeout_ms),
        failure: Mutex::new(None),
    });
    let consumer_cfg = kafka::consumer_config(&k.brokers, &k.group_id, &k.consumer);
    let mut topics: Vec<&str> = k.input_topics.iter().map(String::as_str).collect();
    if !k.reports_topic.is_empty() {
        topics.push(&k.reports_topic);
    }
    let mut needed = topics.clone();
    needed.extend([
        k.verdicts_topic.as_str(),
        k.review_topic.as_str(),
        k.dead_letter_topic.as_str(),
        k.alerts_topic.as_str(),
        k.scorecards_topic.as_str(),
        k.rewards_topic.as_str(),
    ]);
    let missing = kafka::admin::missing_topics(&consumer_cfg, &needed, Duration::from_secs(30))
        .map_err(|e| anyhow::anyhow!("cannot read cluster metadata from {}: {e}", k.brokers))?;
    if !missing.is_empty() {
        anyhow::bail!(
            "topics missing on {}: {}; create them (README: \"Running against your Kafka\") or fix [kafka] in the config",
            k.brokers,
            missing.join(", ")
        );
    }
    let consumer: BaseConsumer<PipelineContext> =
        consumer_cfg.create_with_context(PipelineContext {
            shared: shared.clone(),
        })?;
    consumer.subscribe(&topics)?;
    log::info!(
        "consuming {} as group {} from {}",
        topics.join(","),
        k.group_id,
        k.brokers
    );

    let verdict_counters = [
        metrics.verdicts.with_label_values(&["allow"]),
        metrics.verdicts.with_label_values(&["review"]),
        metrics.verdicts.with_label_values(&["block"]),
    ];
    let watch = cfg.watch_enabled().then(|| Watch::new(cfg.watch.clone()));
    let stage = Stage {
        engine,
        fingerprinter: watch.as_ref().map(Watch::fingerprinter),
        cfg: cfg.clone(),
    };
    let mut finish = Finish {
        watch,
        publisher: Default::default(),
        cfg: cfg.clone(),
        metrics: metrics.clone(),
        verdict_counters,
    };
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(pc.threads)
        .thread_name(|i| format!("screen-{i}"))
        .build()?;
    let pool = Arc::new(pool);
    let (screened_tx, screened_rx) = crossbeam_channel::bounded::<Screened>(1);
    let (prepared_tx, prepared_rx) = crossbeam_channel::bounded::<Prepared>(1);
    let screen = {
        let pool = pool.clone();
        std::thread::Builder::new()
            .name("screen".into())
            .spawn(move || screen_stage(&stage, rx, screened_tx, &pool))?
    };
    let watch = std::thread::Builder::new()
        .name("watch".into())
        .spawn(move || watch_stage(&mut finish, screened_rx, prepared_tx, &pool))?;
    let send = {
        let (sink, cfg, metrics) = (sink.clone(), cfg.clone(), metrics.clone());
        std::thread::Builder::new()
            .name("send".into())
            .spawn(move || send_stage(&sink, &cfg, &metrics, prepared_rx))?
    };

    poll_loop(&consumer, &shared, cfg, &stop);

    // Drain: screen what was polled, wait for its outputs, commit, then leave the group.
    shared.dispatch();
    *shared.tx.lock().expect("not poisoned") = None;
    if screen.join().is_err() || watch.join().is_err() || send.join().is_err() {
        anyhow::bail!("a pipeline stage panicked; uncommitted input will be re-read on restart");
    }
    if !shared.tracker.wait_all(shared.drain_timeout) {
        log::warn!(
            "shutdown: outputs still unacknowledged after {:?}",
            shared.drain_timeout
        );
    }
    shared.store(&consumer, CommitMode::Sync);
    drop(consumer);
    sink.flush(Duration::from_secs(10))?;
    if let Some(f) = shared.failure.lock().expect("not poisoned").take() {
        anyhow::bail!("{f}");
    }
    log::info!("stopped cleanly; offsets committed");
    Ok(())
}

fn poll_loop(
    consumer: &BaseConsumer<PipelineContext>,
    shared: &Shared,
    cfg: &Config,
    stop: &AtomicBool,
) {
    let max_batch = cfg.pipeline.batch_max_messages;
    let max_wait = Duration::from_millis(cfg.pipeline.batch_max_wait_ms);
    let reports_topic = cfg.kafka.reports_topic.as_str();
    let consumed_msgs = shared.metrics.consumed.with_label_values(&["message"]);
    let consumed_reports = shared.metrics.consumed.with_label_values(&["report"]);
    let mut topic_names: Vec<Arc<str>> = Vec::new();
    let mut since_store = 0u32;
    while !stop.load(Ordering::Relaxed) && !shared.failed() {
        let since = shared.pending.lock().expect("not poisoned").since;
        let timeout = match since {
            Some(t) => max_wait.saturating_sub(t.elapsed()),
            None => Duration::from_millis(100),
        };
        let mut idle = false;
        match consumer.poll(timeout) {
            Some(Ok(m)) => {
                let topic = match topic_names.iter().find(|t| &***t == m.topic()) {
                    Some(t) => t.clone(),
                    None => {
                        let t: Arc<str> = m.topic().into();
                        topic_names.push(t.clone());
                        t
                    }
                };
                let report = !reports_topic.is_empty() && m.topic() == reports_topic;
                if report {
                    consumed_reports.inc();
                } else {
                    consumed_msgs.inc();
                }
                let full = {
                    let mut p = shared.pending.lock().expect("not poisoned");
                    p.since.get_or_insert_with(Instant::now);
                    let next = m.offset() + 1;
                    match p
                        .offsets
                        .iter_mut()
                        .find(|(t, part, _)| *t == topic && *part == m.partition())
                    {
                        Some(slot) => slot.2 = next,
                        None => p.offsets.push((topic.clone(), m.partition(), next)),
                    }
                    p.inputs.push(Input {
                        topic,
                        partition: m.partition(),
                        offset: m.offset(),
                        key: m.key().map(<[u8]>::to_vec),
                        payload: m.payload().map(<[u8]>::to_vec),
                        report,
                    });
                    p.inputs.len() >= max_batch
                };
                if full && !shared.dispatch() {
                    break;
                }
            }
            Some(Err(e)) => log::warn!("consumer: {e}"),
            None => idle = true,
        }
        let age_out = shared
            .pending
            .lock()
            .expect("not poisoned")
            .since
            .is_some_and(|t| t.elapsed() >= max_wait);
        if age_out && !shared.dispatch() {
            break;
        }
        since_store += 1;
        if since_store >= 256 || age_out || idle {
            since_store = 0;
            shared.store(consumer, CommitMode::Async);
        }
    }
}

fn screen_stage(
    stage: &Stage,
    rx: Receiver<Batch>,
    tx: Sender<Screened>,
    pool: &rayon::ThreadPool,
) {
    for batch in rx {
        let screened = pool.install(|| stage.screen(batch));
        if tx.send(screened).is_err() {
            return;
        }
    }
}

fn watch_stage(
    finish: &mut Finish,
    rx: Receiver<Screened>,
    tx: Sender<Prepared>,
    pool: &rayon::ThreadPool,
) {
    for screened in rx {
        let prepared = pool.install(|| finish.finish(screened));
        if tx.send(prepared).is_err() {
            return;
        }
    }
}
