//! `qunguard run`: the batch core ([`crate::batch`]) with Kafka around it.
//!
//! Threads, joined by bounded queues:
//! - the caller's thread runs the **poll loop** (`source.rs`): polls Kafka, cuts batches by
//!   size or age, stores and commits offsets of completed batches and drains and commits on
//!   rebalance (`offsets.rs`). It never screens, so heartbeats and rebalances are never
//!   starved.
//! - `screen` (`screen_stage.rs`): parses and screens each batch;
//! - `watch` (`watch_stage.rs`): runs the heuristics in stream order and serialises every
//!   output record of the batch;
//! - `send` (`sink.rs`): hands the records to the producer in order; librdkafka's own threads
//!   deliver them and report back, acknowledging each batch's outputs.
//!
//! `screen` and `watch` do their parallel work on one rayon pool of `pipeline.threads` threads
//! (`screen-N`). A full queue blocks the poll loop and a full producer queue blocks `send`, so
//! a slow broker slows consumption instead of growing memory.

mod join_wait;
mod offsets;
mod recent;
mod screen_stage;
mod sink;
mod source;
mod summary;
mod watch_stage;

use crate::config::{Config, OutputTopic};
use crate::kafka::{self, Sink};
use crate::metrics::Metrics;
use crate::reload::LiveRules;
use crate::screen::Engine;
use crate::watch::Watch;
use offsets::{Offsets, RebalanceContext};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use source::Source;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;
use watch_stage::WatchStage;

/// Runs the pipeline until `stop` is set (then drains and commits) or a delivery fails.
pub fn run(
    cfg: &Config,
    engine: Arc<Engine>,
    metrics: Metrics,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<()> {
    run_live(cfg, Arc::new(LiveRules::new(engine)), metrics, stop)
}

pub use recent::Correction;

/// Like [`run`], screening each batch with the rule set live in `rules` when the batch starts
/// (a [`crate::reload::Reloader`] replaces it while the pipeline runs).
pub fn run_live(
    cfg: &Config,
    rules: Arc<LiveRules>,
    metrics: Metrics,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<()> {
    metrics.rules.set_live(rules.current().rules_version());
    let k = &cfg.kafka;
    let pc = &cfg.pipeline;
    let producer_cfg = kafka::producer_config(&k.brokers, &k.producer);
    let mut consumer_cfg = kafka::consumer_config(&k.brokers, &k.group_id, &k.consumer);
    if !k.group_instance_id.is_empty() {
        consumer_cfg.set("group.instance.id", &k.group_instance_id);
    }
    use kafka::probe::{Side, check_settings};
    for (name, side, c) in [
        ("producer", Side::Producer, &producer_cfg),
        ("consumer", Side::Consumer, &consumer_cfg),
    ] {
        check_settings(c, side).map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
    }
    // [kafka.producer] may carry its own credentials: check them before consuming anything.
    kafka::probe::probe(&producer_cfg, kafka::probe::PROBE_TIMEOUT)
        .map_err(|e| anyhow::anyhow!("producer: {e}"))?;
    let sink = Arc::new(Sink::new(&producer_cfg, &metrics)?);
    let (batch_tx, batch_rx) = crossbeam_channel::bounded(pc.queue_batches);
    let source = Arc::new(Source::new(
        batch_tx,
        Offsets::new(metrics.clone(), Duration::from_millis(pc.drain_timeout_ms)),
        metrics.clone(),
    ));
    let missing =
        kafka::admin::missing_topics(&consumer_cfg, &k.all_topics(), kafka::probe::PROBE_TIMEOUT)
            .map_err(|e| anyhow::anyhow!("consumer: {e}"))?;
    if !missing.is_empty() {
        anyhow::bail!(
            "topics missing on {}: {}; create them (README: \"Running against your Kafka\") or fix [kafka] in the config",
            k.brokers,
            missing.join(", ")
        );
    }
    // Lag per partition and readiness come from librdkafka's statistics (the metadata
    // check above ran without them: its short-lived client has nobody to report to).
    let stats_interval = stats_interval(&mut consumer_cfg);
    let join = Arc::new(join_wait::JoinWait::default());
    let consumer: BaseConsumer<RebalanceContext> =
        consumer_cfg.create_with_context(RebalanceContext {
            source: source.clone(),
            stats: crate::metrics::ConsumerStatsPublisher::new(metrics.clone(), stats_interval),
            join: join.clone(),
        })?;
    let topics = k.source_topics();
    consumer.subscribe(&topics)?;
    log::info!(
        "consuming {} as group {} from {}",
        topics.join(","),
        k.group_id,
        k.brokers
    );

    let summary = summary::Summary::start(metrics.clone(), cfg.log.summary_secs)?;
    {
        let (consumer, group, instance) = (
            k.consumer.clone(),
            k.group_id.clone(),
            k.group_instance_id.clone(),
        );
        join_wait::watch(join, stop.clone(), move |waited| {
            join_wait::explanation(&consumer, &group, &instance, waited)
        });
    }

    let joins = crate::watch::Joins {
        reports: !k.reports_topic.is_empty(),
        decisions: !k.decisions_topic.is_empty(),
    };
    let watch = cfg
        .watch_enabled()
        .then(|| Watch::new(cfg.watch.clone()).with_joins(joins));
    let fingerprinter = watch.as_ref().map(Watch::fingerprinter);
    let mut watch_stage = WatchStage::new(watch, pc, metrics.clone()).with_recent(
        recent::RecentMessages::new(&cfg.recent_messages),
        OutputTopic::Corrections.enabled(k),
        OutputTopic::Labels.enabled(k),
    );
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(pc.threads)
        .thread_name(|i| format!("screen-{i}"))
        .build()?;
    let pool = Arc::new(pool);
    let (screened_tx, screened_rx) = crossbeam_channel::bounded(1);
    let (outgoing_tx, outgoing_rx) = crossbeam_channel::bounded(1);
    let screen = {
        let stage = screen_stage::ScreenStage {
            rules: rules.clone(),
            fingerprinter,
            max_message_bytes: pc.max_message_bytes,
            max_text_bytes: pc.max_text_bytes,
            metrics: metrics.clone(),
        };
        let pool = pool.clone();
        std::thread::Builder::new()
            .name("screen".into())
            .spawn(move || stage.run(batch_rx, screened_tx, &pool))?
    };
    let watch = std::thread::Builder::new()
        .name("watch".into())
        .spawn(move || watch_stage::run(&mut watch_stage, screened_rx, outgoing_tx, &pool))?;
    let send = {
        let (sink, topics, metrics) = (sink.clone(), k.clone(), metrics.clone());
        std::thread::Builder::new()
            .name("send".into())
            .spawn(move || sink::run(&sink, &topics, &metrics, outgoing_rx))?
    };

    source::poll_loop(&consumer, &source, cfg, &rules, &stop);
    // Summaries describe the running pipeline, not its shutdown.
    drop(summary);

    // Drain: screen what was polled, wait for its outputs, commit, then leave the group.
    source.close();
    if screen.join().is_err() || watch.join().is_err() || send.join().is_err() {
        anyhow::bail!("a pipeline stage panicked; uncommitted input will be re-read on restart");
    }
    let offsets = &source.offsets;
    let drained = offsets.drain();
    if !drained {
        log::warn!(
            "shutdown: outputs still unacknowledged after {:?} (pipeline.drain_timeout_ms)",
            offsets.drain_timeout()
        );
        offsets.give_up();
    }
    // The last commit and leaving the group need the broker: one that does not answer (hung,
    // not down) would keep a synchronous commit and librdkafka's close waiting for minutes,
    // past any orchestrator's grace period. Bounded; what is not committed is re-read.
    let closing = {
        let source = source.clone();
        let (done_tx, done_rx) = crossbeam_channel::bounded(1);
        std::thread::Builder::new()
            .name("close".into())
            .spawn(move || {
                let committed = source.offsets.store(&consumer, CommitMode::Sync);
                drop(consumer);
                let _ = done_tx.send(committed);
            })?;
        done_rx.recv_timeout(CLOSE_TIMEOUT)
    };
    // Outputs the broker did not take while draining: waiting longer for a broker that does
    // not answer only delays the stop (their input is not committed, so it is re-screened).
    let flushed = drained && closing.is_ok() && sink.flush(Duration::from_secs(10)).is_ok();
    if let Some(f) = offsets.take_failure() {
        anyhow::bail!("{f}");
    }
    match closing {
        Err(_) => anyhow::bail!(
            "shutdown: the consumer did not commit and close within {CLOSE_TIMEOUT:?} (the broker does not answer); stopping anyway: a restart re-screens from the last committed offset"
        ),
        Ok(false) => anyhow::bail!(
            "shutdown: the last offsets were not committed (see above); a restart re-screens from the last committed offset"
        ),
        Ok(true) if !flushed => anyhow::bail!(
            "shutdown: the broker did not acknowledge every output; what was acknowledged is committed, the rest is re-screened on restart"
        ),
        Ok(true) => log::info!("stopped cleanly; offsets committed"),
    }
    Ok(())
}

/// How long the last commit and leaving the group may take at shutdown.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(15);

/// librdkafka's statistics interval: the one set in `[kafka.consumer]`, else 5 s (set here).
fn stats_interval(cfg: &mut rdkafka::ClientConfig) -> Duration {
    const KEY: &str = "statistics.interval.ms";
    let ms = match cfg.get(KEY).map(str::parse::<u64>) {
        Some(Ok(ms)) => ms,
        // librdkafka itself rejects a malformed value when the consumer is created.
        Some(Err(_)) => 5000,
        None => {
            cfg.set(KEY, "5000");
            5000
        }
    };
    if ms == 0 {
        log::warn!(
            "[kafka.consumer] {KEY} = 0 turns librdkafka's statistics off: no consumer lag metrics, and /readyz never reports ready"
        );
    }
    Duration::from_millis(ms)
}
