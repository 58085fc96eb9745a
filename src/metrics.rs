//! Prometheus metrics and the `/metrics` endpoint.
//!
//! Names follow `qunguard_<noun>_<unit>[_total]`. Label sets are bounded: actions (3),
//! categories (one per rule pack), rejection codes (5), output kinds (one per output topic), alert kinds (a few).
//! Every label value is created up front so dashboards see zeros rather than missing series.

use crate::config::OutputTopic;
use prometheus::{
    Counter, Histogram, HistogramOpts, IntCounterVec, IntGauge, Opts, Registry, TextEncoder,
};
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// The `clock` label of `qunguard_verdict_latency_seconds`.
pub const LATENCY_CLOCKS: [&str; 2] = ["event", "broker"];
const ALERT_STATUSES: [&str; 3] = [
    crate::watch::AlertStatus::Open.name(),
    crate::watch::AlertStatus::Update.name(),
    crate::watch::AlertStatus::Resolved.name(),
];
const ALERT_SEVERITIES: [&str; 3] = [
    crate::watch::Severity::Warning.name(),
    crate::watch::Severity::High.name(),
    crate::watch::Severity::Critical.name(),
];

/// Registers `metric` and hands it back. Names are fixed in this file, so a clash is a bug.
fn registered<M: prometheus::core::Collector + Clone + 'static>(
    registry: &Registry,
    metric: M,
) -> M {
    registry
        .register(Box::new(metric.clone()))
        .expect("unique name");
    metric
}

/// What a polled record is: the `input` label of `qunguard_messages_consumed_total`, one
/// owner for the label values the source counts by and the summary reads back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    /// A chat message.
    Message,
    /// A member report.
    Report,
    /// A reviewer's decision.
    Decision,
}

impl Input {
    /// Every input, for pre-registering the label values.
    pub const ALL: [Input; 3] = [Input::Message, Input::Report, Input::Decision];

    /// The label value.
    pub fn label(self) -> &'static str {
        match self {
            Input::Message => "message",
            Input::Report => "report",
            Input::Decision => "decision",
        }
    }
}

/// Every metric qunguard exports.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    /// Input records polled from Kafka, by `input` ([`Input::label`]); [`Metrics::consumed`]
    /// gives one input's counter.
    pub consumed: IntCounterVec,
    /// Verdicts produced, by action.
    pub verdicts: IntCounterVec,
    /// Verdicts produced that hit a category, by category (a verdict counts once per category).
    pub verdict_categories: IntCounterVec,
    /// Heuristic reasons added to verdicts, by reason.
    pub verdict_reasons: IntCounterVec,
    /// Inputs dead-lettered, by reason code.
    pub dead_letters: IntCounterVec,
    /// Output records acknowledged by the broker, by kind.
    pub produced: IntCounterVec,
    /// Output records whose delivery failed after librdkafka's retries, by kind.
    pub produce_errors: IntCounterVec,
    /// Alert records produced, by alert kind.
    pub alerts: IntCounterVec,
    /// Records per batch.
    pub batch_size: Histogram,
    /// Time to parse, screen and hand a batch's outputs to the producer.
    pub batch_screen_seconds: Histogram,
    /// Time to hand a batch's outputs to the producer (includes waiting on a full producer
    /// queue, i.e. broker backpressure).
    pub batch_send_seconds: Histogram,
    /// Time from a batch's first record being polled to all its outputs acknowledged (offsets
    /// stored).
    pub batch_latency_seconds: Histogram,
    /// Batches dispatched but not yet fully acknowledged.
    pub batches_in_flight: IntGauge,
    /// Input partitions assigned to this instance.
    pub assigned_partitions: IntGauge,
    /// Time the consumer thread spent blocked because the screening queue was full.
    pub consumer_blocked_seconds: Counter,
    /// Alerts open now.
    pub alerts_open: IntGauge,
    /// Alerts not opened because of a cooldown or the open-alert cap, by kind.
    pub alerts_suppressed: IntCounterVec,
    /// Members who crossed the removal threshold (a `remove_member` recommendation).
    pub removals_recommended: prometheus::IntCounter,
    /// Member reports, by outcome (verified, review_requested, pending, duplicate).
    pub reports: IntCounterVec,
    /// Entries held in each bounded watch map, by map.
    pub watch_entries: prometheus::IntGaugeVec,
    /// Entries evicted from each watch map because its cap was reached, by map.
    pub watch_evictions: IntCounterVec,
    /// Inputs whose `ts` was too far ahead of the clock (held at `watch.max_future_secs`).
    pub future_timestamps: prometheus::IntCounter,
    /// Rule hits, by pack (a verdict with two hits of one pack counts two).
    pub rule_hits: IntCounterVec,
    /// Alert records produced, by kind, status (`open`, `update`, `resolved`) and severity.
    pub alert_records: IntCounterVec,
    /// Time the watch stage spent on a batch: heuristics and serialising its outputs.
    pub batch_watch_seconds: Histogram,
    /// Time each of the watch's own stages spent working (`rates`, `floods`, `ordered`): the
    /// busiest bounds the watch on many cores.
    pub watch_stage_busy_seconds: prometheus::CounterVec,
    /// Produce→verdict latency of each batch's first message, by `clock`: `event` (the
    /// message's `ts`) or `broker` (the Kafka record timestamp).
    pub verdict_latency_seconds: prometheus::HistogramVec,
    /// Consumer lag per assigned input partition, from librdkafka's statistics.
    pub consumer_lag: prometheus::IntGaugeVec,
    /// Brokers librdkafka has a working connection to, from its statistics.
    pub kafka_brokers_up: IntGauge,
    /// 1 while `/readyz` would answer 200; evaluated at each scrape.
    pub ready: IntGauge,
    /// What `/readyz` checks besides the partition count; shared with the pipeline.
    pub readiness: Arc<crate::health::Readiness>,
    /// Inputs whose `ts` looked like seconds instead of milliseconds (read as seconds).
    pub seconds_timestamps: prometheus::IntCounter,
    /// Rules in production: reloads, the live version, shadow hits, corrections, reviewers'
    /// decisions.
    pub rules: RulesMetrics,
}

impl Metrics {
    /// The counter of one kind of input polled.
    pub fn consumed(&self, input: Input) -> prometheus::IntCounter {
        self.consumed.with_label_values(&[input.label()])
    }

    /// Creates and registers every metric; `categories` pre-creates the category series.
    pub fn new(categories: &[&str], alert_kinds: &[&str], reasons: &[&str]) -> Metrics {
        let registry = Registry::new();
        let counter_vec = |name: &str, help: &str, label: &str| {
            let c = IntCounterVec::new(Opts::new(name, help), &[label]).expect("valid metric");
            registered(&registry, c)
        };
        let consumed = counter_vec(
            "qunguard_messages_consumed_total",
            "Input records polled from Kafka.",
            "input",
        );
        let verdicts = counter_vec(
            "qunguard_verdicts_total",
            "Verdicts produced, by action.",
            "action",
        );
        let verdict_categories = counter_vec(
            "qunguard_verdict_categories_total",
            "Verdicts produced that hit a category, by category.",
            "category",
        );
        let verdict_reasons = counter_vec(
            "qunguard_verdict_reasons_total",
            "Heuristic reasons added to verdicts, by reason.",
            "reason",
        );
        let dead_letters = counter_vec(
            "qunguard_dead_letters_total",
            "Inputs that could not be screened, by reason.",
            "reason",
        );
        let produced = counter_vec(
            "qunguard_records_produced_total",
            "Output records acknowledged by the broker, by kind.",
            "kind",
        );
        let produce_errors = counter_vec(
            "qunguard_produce_errors_total",
            "Output records whose delivery failed, by kind.",
            "kind",
        );
        let alerts = counter_vec(
            "qunguard_alerts_total",
            "Alert records produced, by alert kind.",
            "kind",
        );
        let histogram = |name: &str, help: &str, buckets: Vec<f64>| {
            let h = Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets))
                .expect("valid histogram");
            registered(&registry, h)
        };
        let batch_size = histogram(
            "qunguard_batch_size_messages",
            "Records per batch.",
            prometheus::exponential_buckets(1.0, 4.0, 9).expect("valid buckets"),
        );
        let batch_screen_seconds = histogram(
            "qunguard_batch_screen_seconds",
            "Time to parse, screen and hand a batch's outputs to the producer.",
            prometheus::exponential_buckets(0.0005, 2.0, 14).expect("valid buckets"),
        );
        let batch_send_seconds = histogram(
            "qunguard_batch_send_seconds",
            "Time to hand a batch's outputs to the producer (waits on a full producer queue).",
            prometheus::exponential_buckets(0.0005, 2.0, 14).expect("valid buckets"),
        );
        let batch_latency_seconds = histogram(
            "qunguard_batch_latency_seconds",
            "First record polled to all outputs acknowledged.",
            prometheus::exponential_buckets(0.001, 2.0, 15).expect("valid buckets"),
        );
        let gauge = |name: &str, help: &str| {
            registered(&registry, IntGauge::new(name, help).expect("valid gauge"))
        };
        let batches_in_flight = gauge(
            "qunguard_batches_in_flight",
            "Batches dispatched but not yet fully acknowledged.",
        );
        let assigned_partitions = gauge(
            "qunguard_assigned_partitions",
            "Partitions of the input topics (messages, reports, decisions) assigned to this instance.",
        );
        let consumer_blocked_seconds = registered(
            &registry,
            Counter::new(
                "qunguard_consumer_blocked_seconds_total",
                "Seconds the consumer waited on a full screening queue (backpressure).",
            )
            .expect("valid counter"),
        );
        let alerts_open = gauge("qunguard_alerts_open", "Alerts open now.");
        let alerts_suppressed = counter_vec(
            "qunguard_alerts_suppressed_total",
            "Alerts not opened because of a cooldown or the open-alert cap, by kind.",
            "kind",
        );
        let counter = |name: &str, help: &str| {
            let c = prometheus::IntCounter::new(name, help).expect("valid counter");
            registered(&registry, c)
        };
        let removals_recommended = counter(
            "qunguard_removals_recommended_total",
            "Members who crossed the removal threshold (remove_member recommended).",
        );
        let reports = counter_vec(
            "qunguard_reports_total",
            "Member reports, by outcome.",
            "outcome",
        );
        let watch_entries = registered(
            &registry,
            prometheus::IntGaugeVec::new(
                Opts::new(
                    "qunguard_watch_entries",
                    "Entries held in each bounded watch map, by map.",
                ),
                &["map"],
            )
            .expect("valid metric"),
        );
        let watch_evictions = counter_vec(
            "qunguard_watch_evictions_total",
            "Entries evicted from each watch map because its cap was reached, by map.",
            "map",
        );
        let future_timestamps = counter(
            "qunguard_future_timestamps_total",
            "Inputs whose ts was too far ahead of the clock (held at watch.max_future_secs).",
        );
        let rule_hits = counter_vec("qunguard_rule_hits_total", "Rule hits, by pack.", "pack");
        let alert_records = registered(
            &registry,
            IntCounterVec::new(
                Opts::new(
                    "qunguard_alert_records_total",
                    "Alert records produced, by kind, status and severity.",
                ),
                &["kind", "status", "severity"],
            )
            .expect("valid metric"),
        );
        let batch_watch_seconds = histogram(
            "qunguard_batch_watch_seconds",
            "Time to run the heuristics over a batch and serialise its outputs.",
            prometheus::exponential_buckets(0.0005, 2.0, 14).expect("valid buckets"),
        );
        let watch_stage_busy_seconds = registered(
            &registry,
            prometheus::CounterVec::new(
                Opts::new(
                    "qunguard_watch_stage_busy_seconds_total",
                    "Time each of the watch's stages spent working, by stage (rates, floods, ordered).",
                ),
                &["stage"],
            )
            .expect("valid metric"),
        );
        let verdict_latency_seconds = registered(
            &registry,
            prometheus::HistogramVec::new(
                HistogramOpts::new(
                    "qunguard_verdict_latency_seconds",
                    "Produce to verdict latency of each batch's first message, by clock (event: the message ts, broker: the record timestamp).",
                )
                .buckets(prometheus::exponential_buckets(0.001, 2.0, 18).expect("valid buckets")),
                &["clock"],
            )
            .expect("valid histogram"),
        );
        let consumer_lag = registered(
            &registry,
            prometheus::IntGaugeVec::new(
                Opts::new(
                    "qunguard_consumer_lag_messages",
                    "Messages behind the partition's end, per assigned input partition (librdkafka statistics).",
                ),
                &["topic", "partition"],
            )
            .expect("valid metric"),
        );
        let kafka_brokers_up = gauge(
            "qunguard_kafka_brokers_up",
            "Brokers with a working connection, from librdkafka statistics.",
        );
        let ready = gauge(
            "qunguard_ready",
            "1 while /readyz answers 200 (partitions assigned, broker answering, rules loaded).",
        );
        for clock in LATENCY_CLOCKS {
            verdict_latency_seconds.with_label_values(&[clock]);
        }
        for kind in alert_kinds {
            for status in ALERT_STATUSES {
                for severity in ALERT_SEVERITIES {
                    alert_records.with_label_values(&[kind, status, severity]);
                }
            }
        }
        let seconds_timestamps = counter(
            "qunguard_seconds_timestamps_total",
            "Inputs whose ts looked like seconds instead of milliseconds (read as seconds).",
        );
        let rules = RulesMetrics::new(&registry);
        for o in crate::watch::REPORT_OUTCOMES {
            reports.with_label_values(&[o]);
        }
        for input in Input::ALL {
            consumed.with_label_values(&[input.label()]);
        }
        for a in ["allow", "review", "block"] {
            verdicts.with_label_values(&[a]);
        }
        for c in categories {
            verdict_categories.with_label_values(&[c]);
        }
        for r in reasons {
            verdict_reasons.with_label_values(&[r]);
        }
        for code in crate::batch::REJECTION_CODES
            .iter()
            .chain(&["report_invalid", "decision_invalid"])
        {
            dead_letters.with_label_values(&[code]);
        }
        for k in OutputTopic::ALL.map(OutputTopic::record_kind) {
            produced.with_label_values(&[k]);
            produce_errors.with_label_values(&[k]);
        }
        for k in alert_kinds {
            alerts.with_label_values(&[k]);
            alerts_suppressed.with_label_values(&[k]);
        }
        Metrics {
            registry,
            consumed,
            verdicts,
            verdict_categories,
            verdict_reasons,
            dead_letters,
            produced,
            produce_errors,
            alerts,
            batch_size,
            batch_screen_seconds,
            batch_send_seconds,
            batch_latency_seconds,
            batches_in_flight,
            assigned_partitions,
            consumer_blocked_seconds,
            alerts_open,
            alerts_suppressed,
            removals_recommended,
            reports,
            watch_entries,
            watch_evictions,
            future_timestamps,
            rule_hits,
            alert_records,
            batch_watch_seconds,
            watch_stage_busy_seconds,
            verdict_latency_seconds,
            consumer_lag,
            kafka_brokers_up,
            ready,
            readiness: Arc::new(crate::health::Readiness::default()),
            seconds_timestamps,
            rules,
        }
    }

    /// Pre-creates the per-pack series (`qunguard_rule_hits_total` and the others labelled by
    /// `pack`) of `packs` (pack names).
    pub fn with_packs(self, packs: &[&str]) -> Metrics {
        for p in packs {
            self.rule_hits.with_label_values(&[p]);
            self.rules.shadow_hits.with_label_values(&[p]);
            self.rules.overturns.with_label_values(&[p]);
            for r in crate::model::SuppressedBy::ALL {
                self.rules.suppressions.with_label_values(&[p, r.as_str()]);
            }
        }
        self
    }

    /// Whether this instance is ready (see [`crate::health::Readiness::check`]).
    pub fn readiness_check(&self) -> Result<(), String> {
        self.readiness
            .check(self.assigned_partitions.get(), std::time::Instant::now())
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        self.ready.set(i64::from(self.readiness_check().is_ok()));
        TextEncoder::new()
            .encode_to_string(&self.registry.gather())
            .expect("text encoding cannot fail")
    }

    /// Sum of a counter vector over its labels.
    pub fn total(v: &IntCounterVec, labels: &[&str]) -> u64 {
        labels.iter().map(|l| v.with_label_values(&[l]).get()).sum()
    }
}

/// The metrics of rules in production (hot reload, shadow rules, corrections, reviewers'
/// decisions).
#[derive(Clone)]
pub struct RulesMetrics {
    /// Rule reloads, by `outcome` (`ok`: the set compiled and is live, or was unchanged;
    /// `failed`: rejected, the previous set keeps serving).
    pub reloads: IntCounterVec,
    /// 1 for the live rules version (the only series; a reload replaces it).
    pub info: prometheus::IntGaugeVec,
    /// Hits of shadow rules, by pack.
    pub shadow_hits: IntCounterVec,
    /// Matches dropped before they became hits, by pack and reason (`allow`, `lexicon`,
    /// `sentence`): what an allow entry or the lexicon is saving reviewers from.
    pub suppressions: IntCounterVec,
    /// Correction records (a message's action changed by a reload), by old and new action.
    pub corrections: IntCounterVec,
    /// Corrections not written because a reviewer had decided the message.
    pub corrections_withheld: prometheus::IntCounter,
    /// Reviewers' decisions read, by decision (`confirm`, `overturn`).
    pub review_decisions: IntCounterVec,
    /// Overturned flags, by the pack of each rule that flagged the message.
    pub overturns: IntCounterVec,
    /// Decisions on messages this instance does not know (screened by another instance, or
    /// too old for its bounded maps): they change nothing.
    pub decisions_unknown: prometheus::IntCounter,
    /// The version `info` shows, so a swap removes exactly that series.
    live_version: Arc<std::sync::Mutex<String>>,
}

impl RulesMetrics {
    fn new(registry: &Registry) -> RulesMetrics {
        let vec = |name: &str, help: &str, labels: &[&str]| {
            registered(
                registry,
                IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric"),
            )
        };
        let reloads = vec(
            "qunguard_rules_reloads_total",
            "Rule reloads, by outcome (failed: rejected, the previous set keeps serving).",
            &["outcome"],
        );
        let info = registered(
            registry,
            prometheus::IntGaugeVec::new(
                Opts::new(
                    "qunguard_rules_info",
                    "1 for the rules version now screening (one series).",
                ),
                &["version"],
            )
            .expect("valid metric"),
        );
        let shadow_hits = vec(
            "qunguard_rule_shadow_hits_total",
            "Hits of shadow rules (recorded, not acted on), by pack.",
            &["pack"],
        );
        let suppressions = vec(
            "qunguard_rule_suppressions_total",
            "Matches dropped before they became hits (allow entry, lexicon word, sentence punctuation), by pack and reason.",
            &["pack", "reason"],
        );
        let corrections = vec(
            "qunguard_corrections_total",
            "Correction records: recent messages whose action a reload changed.",
            &["old_action", "new_action"],
        );
        let review_decisions = vec(
            "qunguard_review_decisions_total",
            "Reviewers' decisions read, by decision.",
            &["decision"],
        );
        let overturns = vec(
            "qunguard_rule_overturns_total",
            "Flags reviewers overturned, by the pack of each rule that flagged the message.",
            &["pack"],
        );
        for o in ["ok", "failed"] {
            reloads.with_label_values(&[o]);
        }
        for d in ["confirm", "overturn"] {
            review_decisions.with_label_values(&[d]);
        }
        // The six ways an action can change, so dashboards see zeros rather than no series.
        use crate::model::Action;
        let actions = [Action::Allow, Action::Review, Action::Block];
        for old in actions {
            for new in actions.into_iter().filter(|&n| n != old) {
                corrections.with_label_values(&[old.as_str(), new.as_str()]);
            }
        }
        RulesMetrics {
            reloads,
            info,
            shadow_hits,
            suppressions,
            corrections,
            corrections_withheld: registered(
                registry,
                prometheus::IntCounter::new(
                    "qunguard_corrections_withheld_total",
                    "Recent messages whose action a reload changed but that a reviewer had decided: not corrected, the decision stands.",
                )
                .expect("valid metric"),
            ),
            review_decisions,
            overturns,
            decisions_unknown: registered(
                registry,
                prometheus::IntCounter::new(
                    "qunguard_review_decisions_unknown_total",
                    "Reviewers' decisions on messages this instance does not know (screened by another instance, or too old).",
                )
                .expect("valid metric"),
            ),
            live_version: Arc::default(),
        }
    }

    /// Makes `version` the one series of `qunguard_rules_info`.
    pub fn set_live(&self, version: &str) {
        // New series first, then the old one goes: a scrape in between sees two versions
        // for a moment rather than none.
        self.info.with_label_values(&[version]).set(1);
        let mut live = self
            .live_version
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !live.is_empty() && *live != version {
            let _ = self.info.remove_label_values(&[live.as_str()]);
        }
        *live = version.to_string();
    }
}

/// A running `/metrics` endpoint; stops when dropped.
pub struct MetricsServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl MetricsServer {
    /// Binds `listen` and serves `GET /metrics` (and `GET /healthz`) on a thread of its own.
    /// Deliberately tiny: one request per connection, no keep-alive; Prometheus scrapes are rare.
    pub fn start(listen: &str, metrics: Metrics) -> std::io::Result<MetricsServer> {
        let listener = TcpListener::bind(listen)?;
        let addr = listener.local_addr()?;
        listener.set_nonblocking(true)?;
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let thread = std::thread::Builder::new()
            .name("metrics".into())
            .spawn(move || {
                while !stop2.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            // A stuck client must not block scrapes for long.
                            let _ = stream.set_nonblocking(false);
                            let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
                            let _ = stream.set_write_timeout(Some(Duration::from_secs(2)));
                            let _ = serve_one(stream, &metrics);
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                            std::thread::sleep(Duration::from_millis(50));
                        }
                        Err(e) => {
                            log::warn!("metrics endpoint: accept failed: {e}");
                            std::thread::sleep(Duration::from_millis(200));
                        }
                    }
                }
            })?;
        Ok(MetricsServer {
            addr,
            stop,
            thread: Some(thread),
        })
    }

    /// The bound address (useful with port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve_one(stream: std::net::TcpStream, metrics: &Metrics) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    // Drain the headers so the client sees a clean close.
    let mut line = String::new();
    while reader.read_line(&mut line)? > 2 {
        line.clear();
    }
    let path = request_line.split_whitespace().nth(1).unwrap_or("");
    let (status, ctype, body) = match path {
        "/metrics" => (
            "200 OK",
            "text/plain; version=0.0.4; charset=utf-8",
            metrics.render(),
        ),
        "/healthz" => ("200 OK", "text/plain", "ok\n".to_string()),
        "/readyz" => match metrics.readiness_check() {
            Ok(()) => ("200 OK", "text/plain", "ready\n".to_string()),
            Err(why) => (
                "503 Service Unavailable",
                "text/plain",
                format!("not ready: {why}\n"),
            ),
        },
        _ => (
            "404 Not Found",
            "text/plain",
            "try /metrics, /healthz or /readyz\n".to_string(),
        ),
    };
    let mut stream = reader.into_inner();
    write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    stream.flush()
}

/// Publishes what a [`crate::watch::Watch`] counted. The watch only keeps cumulative
/// [`WatchStats`](crate::watch::WatchStats) (so it runs the same in `scan`, tests and the
/// pipeline, none of which need a registry); after each batch the pipeline hands it here and
/// the growth since the last call becomes counter increments.
#[derive(Default)]
pub struct WatchPublisher {
    last: crate::watch::WatchStats,
    last_busy: crate::watch::StageBusy,
}

impl WatchPublisher {
    /// Counts the growth of `w`'s stats since the last call and sets its gauges.
    pub fn publish(&mut self, m: &Metrics, w: &crate::watch::Watch) {
        let now = w.stats();
        publish_growth(&m.verdict_reasons, &now.reasons, &self.last.reasons, |c| c);
        publish_growth(
            &m.alerts_suppressed,
            &now.suppressed_by_kind,
            &self.last.suppressed_by_kind,
            |k| k.name(),
        );
        publish_growth(&m.reports, &now.reports, &self.last.reports, |o| o);
        m.removals_recommended
            .inc_by(now.removals.saturating_sub(self.last.removals));
        m.future_timestamps.inc_by(
            now.future_timestamps
                .saturating_sub(self.last.future_timestamps),
        );
        m.seconds_timestamps.inc_by(
            now.seconds_timestamps
                .saturating_sub(self.last.seconds_timestamps),
        );
        m.alerts_open.set(w.open_alerts() as i64);
        for (map, n, evicted) in w.sizes() {
            m.watch_entries.with_label_values(&[map]).set(n as i64);
            let c = m.watch_evictions.with_label_values(&[map]);
            c.inc_by(evicted.saturating_sub(c.get()));
        }
        let busy = w.stage_busy();
        for ((stage, now), (_, last)) in busy.by_stage().into_iter().zip(self.last_busy.by_stage())
        {
            m.watch_stage_busy_seconds
                .with_label_values(&[stage])
                .inc_by(now.saturating_sub(last).as_secs_f64());
        }
        self.last = now.clone();
        self.last_busy = busy;
    }
}

/// Publishes what librdkafka's statistics (every `statistics.interval.ms`) say about the
/// consumer: lag per assigned partition, brokers up, and that the client is alive (readiness).
pub struct ConsumerStatsPublisher {
    metrics: Metrics,
    /// How long one report stands for readiness (a few statistics intervals).
    max_age: Duration,
    /// Lag series set by the last report, so series of partitions no longer held are removed.
    lag_series: std::sync::Mutex<Vec<(String, String)>>,
}

impl ConsumerStatsPublisher {
    /// Publishes into `metrics`; statistics arrive every `interval`.
    pub fn new(metrics: Metrics, interval: Duration) -> ConsumerStatsPublisher {
        ConsumerStatsPublisher {
            metrics,
            // Generous: the poll loop that serves the statistics also waits out backpressure.
            max_age: (interval * 3).max(Duration::from_secs(30)),
            lag_series: Default::default(),
        }
    }

    /// Publishes one statistics report.
    pub fn publish(&self, stats: &rdkafka::Statistics) {
        // Real brokers only: bootstrap entries (node id -1) duplicate a learned broker's
        // connection, and librdkafka's internal and logical handles are not connections.
        let up = stats
            .brokers
            .values()
            .filter(|b| b.state == "UP" && b.nodeid >= 0 && b.source == "learned")
            .count();
        self.metrics
            .readiness
            .broker_report(up as i64, std::time::Instant::now(), self.max_age);
        self.metrics.kafka_brokers_up.set(up as i64);
        let mut now = Vec::new();
        for (topic, t) in &stats.topics {
            for p in t.partitions.values() {
                // Partition -1 is librdkafka's internal unassigned queue; a lag of -1 means
                // unknown (not assigned here, or no offsets yet).
                if p.partition >= 0 && p.consumer_lag >= 0 {
                    let labels = (topic.clone(), p.partition.to_string());
                    self.metrics
                        .consumer_lag
                        .with_label_values(&[&labels.0, &labels.1])
                        .set(p.consumer_lag);
                    now.push(labels);
                }
            }
        }
        let mut last = self.lag_series.lock().expect("not poisoned");
        for old in last.iter().filter(|l| !now.contains(l)) {
            let _ = self
                .metrics
                .consumer_lag
                .remove_label_values(&[&old.0, &old.1]);
        }
        *last = now;
    }
}

/// Adds to `counter` each label's growth from `last` to `now` (cumulative counts by label).
fn publish_growth<K: Eq + std::hash::Hash + Copy>(
    counter: &IntCounterVec,
    now: &std::collections::HashMap<K, u64>,
    last: &std::collections::HashMap<K, u64>,
    label: impl Fn(K) -> &'static str,
) {
    for (&k, &n) in now {
        let d = n.saturating_sub(last.get(&k).copied().unwrap_or(0));
        if d > 0 {
            counter.with_label_values(&[label(k)]).inc_by(d);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn watch_counts_are_published_as_their_growth() {
        use crate::model::Message;
        use crate::watch::{Watch, WatchConfig};
        let m = Metrics::new(&["ads"], crate::watch::ALERT_KINDS, crate::watch::REASONS);
        let mut w = Watch::new(WatchConfig::default()).with_clock(|| i64::MAX / 4);
        let mut p = WatchPublisher::default();
        let rules = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/rules");
        let engine = crate::Engine::compile(&crate::RuleSet::load_dir(&rules).unwrap()).unwrap();
        // One member posting far over the per-member rate: rate_limit reasons.
        let msgs: Vec<Message> = (0..100)
            .map(|i| Message {
                id: format!("m{i}").into(),
                group_id: "g1".into(),
                sender_id: "u1".into(),
                ts: 1_000 + i,
                text: format!("第{i}条消息，内容各不相同"),
            })
            .collect();
        let reasons = |m: &Metrics| m.verdict_reasons.with_label_values(&["rate_limit"]).get();
        let mut seen = Vec::new();
        for batch in msgs.chunks(50) {
            let (mut vs, sigs) = w.screen(&engine, batch);
            w.observe(batch, &sigs, &mut vs, &mut Vec::new());
            p.publish(&m, &w);
            p.publish(&m, &w); // nothing grew since: nothing counted twice
            seen.push(reasons(&m));
        }
        let want = w.stats().reasons["rate_limit"];
        assert!(seen[0] > 0 && seen[0] < want, "{seen:?}");
        assert_eq!(seen[1], want);
        assert_eq!(
            m.watch_entries.with_label_values(&["members"]).get(),
            1,
            "one member"
        );
    }

    #[test]
    fn consumer_statistics_publish_lag_of_held_partitions_and_learned_brokers_up() {
        use rdkafka::statistics::{Broker, Partition, Statistics, Topic};
        let m = Metrics::new(&["ads"], &["flood"], &["rate_limit"]);
        let p = ConsumerStatsPublisher::new(m.clone(), Duration::from_secs(5));
        let broker = |state: &str, source: &str, nodeid: i32| Broker {
            state: state.into(),
            source: source.into(),
            nodeid,
            ..Default::default()
        };
        let stats = |parts: &[(i32, i64)]| Statistics {
            brokers: [
                ("a:9092/bootstrap", broker("UP", "configured", -1)),
                ("a:9092/1", broker("UP", "learned", 1)),
                ("b:9092/2", broker("DOWN", "learned", 2)),
                ("GroupCoordinator", broker("UP", "logical", 1)),
            ]
            .into_iter()
            .map(|(k, b)| (k.to_string(), b))
            .collect(),
            topics: [(
                "chat.messages".to_string(),
                Topic {
                    partitions: parts
                        .iter()
                        .map(|&(partition, consumer_lag)| {
                            let p = Partition {
                                partition,
                                consumer_lag,
                                ..Default::default()
                            };
                            (partition, p)
                        })
                        .collect(),
                    ..Default::default()
                },
            )]
            .into_iter()
            .collect(),
            ..Default::default()
        };
        let lag = |part: &str| {
            m.render()
                .lines()
                .find_map(|l| {
                    l.strip_prefix(&format!(
                        "qunguard_consumer_lag_messages{{partition=\"{part}\",topic=\"chat.messages\"}} "
                    ))
                    .map(|v| v.parse::<i64>().unwrap())
                })
        };
        // -1: librdkafka's unassigned queue, and a partition whose lag is not known.
        p.publish(&stats(&[(-1, -1), (0, 7), (1, 3), (2, -1)]));
        assert_eq!(
            (lag("0"), lag("1"), lag("2"), lag("-1")),
            (Some(7), Some(3), None, None)
        );
        assert_eq!(
            m.kafka_brokers_up.get(),
            1,
            "only the learned broker that is UP"
        );
        m.readiness.set_rules_loaded(true);
        assert_eq!(m.readiness.check(2, std::time::Instant::now()), Ok(()));
        // Partition 0 moved to another instance: its series goes.
        p.publish(&stats(&[(1, 0)]));
        assert_eq!((lag("0"), lag("1")), (None, Some(0)));
    }

    /// The whole reply of the metrics endpoint to `GET path`.
    fn get(server: &MetricsServer, path: &str) -> String {
        let mut s = std::net::TcpStream::connect(server.addr()).unwrap();
        write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    }

    #[test]
    fn endpoint_serves_prometheus_text() {
        let m = Metrics::new(&["ads", "insult"], &["spike"], &["rate_limit"]);
        m.verdicts.with_label_values(&["block"]).inc_by(3);
        m.batch_size.observe(100.0);
        let server = MetricsServer::start("127.0.0.1:0", m).unwrap();
        let fetch = |path: &str| get(&server, path);
        let body = fetch("/metrics");
        assert!(body.starts_with("HTTP/1.1 200"), "{body}");
        assert!(
            body.contains("qunguard_verdicts_total{action=\"block\"} 3"),
            "{body}"
        );
        assert!(body.contains("qunguard_verdicts_total{action=\"allow\"} 0"));
        assert!(body.contains("qunguard_verdict_categories_total{category=\"insult\"} 0"));
        assert!(body.contains("qunguard_batch_size_messages_count 1"));
        assert!(body.contains("qunguard_dead_letters_total{reason=\"invalid_utf8\"} 0"));
        assert!(fetch("/nope").starts_with("HTTP/1.1 404"));
        assert!(fetch("/healthz").starts_with("HTTP/1.1 200"));
    }

    #[test]
    fn readyz_answers_503_with_the_reason_until_ready_then_200() {
        let m = Metrics::new(&["ads"], &["spike"], &["rate_limit"]);
        let server = MetricsServer::start("127.0.0.1:0", m.clone()).unwrap();
        let fetch = |path: &str| get(&server, path);
        let not_ready = fetch("/readyz");
        assert!(not_ready.starts_with("HTTP/1.1 503"), "{not_ready}");
        assert!(not_ready.contains("no rule set loaded"), "{not_ready}");
        assert!(fetch("/metrics").contains("qunguard_ready 0"));
        m.readiness.set_rules_loaded(true);
        m.readiness
            .broker_report(1, std::time::Instant::now(), Duration::from_secs(60));
        let still = fetch("/readyz");
        assert!(still.contains("no input partitions assigned"), "{still}");
        assert!(!still.contains("rule set"), "{still}");
        m.assigned_partitions.set(3);
        let ready = fetch("/readyz");
        assert!(ready.starts_with("HTTP/1.1 200"), "{ready}");
        assert!(fetch("/metrics").contains("qunguard_ready 1"));
        assert!(fetch("/healthz").starts_with("HTTP/1.1 200"));
    }
}
