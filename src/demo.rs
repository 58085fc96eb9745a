//! `qunguard demo`: the whole pipeline on an embedded Kafka, no install needed.
//!
//! librdkafka's in-process mock cluster stands in for the broker (a mock, because the point is
//! "runs anywhere"; the tests use a real Apache Kafka). The mock keeps only a few MiB per
//! partition and drops older data silently, so the generator is throttled to stay within a
//! bounded lag of the pipeline instead of running ahead.

use crate::config::{Config, OutputTopic};
use crate::loadgen::{self, LoadgenOptions};
use crate::metrics::{Metrics, MetricsServer};
use crate::screen::Engine;
use crate::synth::SynthConfig;
use rdkafka::ClientConfig;
use rdkafka::producer::{BaseProducer, Producer};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Demo settings.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Stop after this long (else on Ctrl-C).
    pub duration: Option<Duration>,
    /// Messages per second from the generator; 0 = as fast as the pipeline keeps up.
    pub rate: u64,
    /// Metrics endpoint address ("" = none).
    pub metrics_listen: String,
    /// Input topic partitions.
    pub partitions: i32,
    /// Stream shape.
    pub synth: SynthConfig,
    /// Every Nth input is malformed, to show dead-lettering (0 = never).
    pub malformed_every: u64,
}

impl Default for DemoOptions {
    fn default() -> Self {
        DemoOptions {
            duration: None,
            rate: 0,
            metrics_listen: "127.0.0.1:9898".into(),
            partitions: 8,
            synth: SynthConfig::default(),
            malformed_every: 5000,
        }
    }
}

/// Most records the generator may run ahead of the pipeline (kept far below the mock's
/// per-partition retention).
const MAX_LAG: u64 = 50_000;

/// Runs the demo until `stop` is set or the duration passes; prints a line a second and a final
/// report to stdout.
pub fn run(
    mut cfg: Config,
    engine: Arc<Engine>,
    opts: &DemoOptions,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<()> {
    // The producer's handle owns the mock cluster; keep it alive for the whole demo.
    let holder: BaseProducer = ClientConfig::new()
        .set("test.mock.num.brokers", "1")
        .create()?;
    let mock = holder
        .client()
        .mock_cluster()
        .ok_or_else(|| anyhow::anyhow!("librdkafka did not create a mock cluster"))?;
    // SAFETY: the mock cluster pointer is owned by `holder`, which outlives this call.
    unsafe {
        let mc = rdkafka::bindings::rd_kafka_handle_mock_cluster(holder.client().native_ptr());
        // Without this, the first consumer group join waits 3 s.
        rdkafka::bindings::rd_kafka_mock_group_initial_rebalance_delay_ms(mc, 0);
    }
    let brokers = mock.bootstrap_servers();
    let k = &mut cfg.kafka;
    k.brokers = brokers.clone();
    k.group_id = "qunguard-demo".into();
    mock.create_topic(&k.input_topics[0], opts.partitions, 1)?;
    for t in std::iter::once(k.reports_topic.as_str()).chain(OutputTopic::ALL.map(|t| t.name(k))) {
        // Optional outputs left unnamed are off.
        if t.is_empty() {
            continue;
        }
        mock.create_topic(t, 4, 1)?;
    }
    cfg.metrics.listen = opts.metrics_listen.clone();
    // Statistics each second, so lag and readiness show within a second of starting.
    fast_statistics(&mut cfg);

    let categories: Vec<String> = engine.categories().into_iter().map(String::from).collect();
    let metrics = Metrics::new(
        &engine.categories(),
        crate::watch::ALERT_KINDS,
        crate::watch::REASONS,
    )
    .with_packs(
        &engine
            .packs()
            .iter()
            .map(|p| p.name.as_str())
            .collect::<Vec<_>>(),
    );
    metrics.readiness.set_rules_loaded(true);
    let _server = if cfg.metrics.listen.is_empty() {
        None
    } else {
        let s = MetricsServer::start(&cfg.metrics.listen, metrics.clone()).map_err(|e| {
            anyhow::anyhow!(
                "cannot serve metrics on {}: {e}; pick another address with --metrics ADDR (port 0 = any free port), or --metrics \"\" to disable",
                cfg.metrics.listen
            )
        })?;
        println!("metrics: http://{}/metrics", s.addr());
        Some(s)
    };
    println!(
        "demo: mock Kafka at {brokers}; {} groups, {} senders; Ctrl-C to stop",
        opts.synth.groups, opts.synth.senders
    );

    let start = Instant::now();
    std::thread::scope(|s| -> anyhow::Result<()> {
        let gen_stop = &stop;
        let consumed = metrics.consumed(crate::metrics::Input::Message);
        let lg = LoadgenOptions {
            topic: cfg.kafka.input_topics[0].clone(),
            rate: opts.rate,
            count: 0,
            synth: opts.synth.clone(),
            malformed_every: opts.malformed_every,
            live_ts: true,
            id_prefix: "m".into(),
            progress: false,
            // Members report about one message in 500, so the report join, rewards and
            // report-driven review show up in the demo too.
            reports_topic: (!cfg.kafka.reports_topic.is_empty())
                .then(|| cfg.kafka.reports_topic.clone()),
            report_every: 500,
        };
        let producer_cfg = crate::kafka::producer_config(&brokers, &Default::default());
        let generator = s.spawn(move || {
            loadgen::run(&producer_cfg, &lg, gen_stop, |n| {
                while n.saturating_sub(consumed.get()) > MAX_LAG
                    && !gen_stop.load(Ordering::Relaxed)
                {
                    std::thread::sleep(Duration::from_millis(2));
                }
            })
        });
        let printer = s.spawn(|| print_live(&metrics, &stop, opts.duration, start));
        let result = crate::pipeline::run(&cfg, engine.clone(), metrics.clone(), stop.clone());
        stop.store(true, Ordering::Relaxed);
        printer.join().expect("printer thread");
        generator.join().expect("generator thread")?;
        result
    })?;
    print_final(&metrics, &categories, start.elapsed());
    Ok(())
}

fn fast_statistics(cfg: &mut Config) {
    cfg.kafka
        .consumer
        .entry("statistics.interval.ms".into())
        .or_insert_with(|| "1000".into());
}

fn print_live(metrics: &Metrics, stop: &AtomicBool, duration: Option<Duration>, start: Instant) {
    let mut last = (0u64, Instant::now());
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(100));
        if duration.is_some_and(|d| start.elapsed() >= d) {
            stop.store(true, Ordering::Relaxed);
            break;
        }
        if last.1.elapsed() < Duration::from_secs(1) {
            continue;
        }
        let consumed = metrics.consumed(crate::metrics::Input::Message).get();
        let rate = (consumed - last.0) as f64 / last.1.elapsed().as_secs_f64();
        last = (consumed, Instant::now());
        println!(
            "[{:>4}s] {:>9.0} msg/s | consumed {consumed} | {} | dead-letters {} | alerts {}",
            start.elapsed().as_secs(),
            rate,
            actions(metrics),
            Metrics::total(&metrics.dead_letters, crate::batch::REJECTION_CODES),
            Metrics::total(&metrics.alerts, crate::watch::ALERT_KINDS),
        );
    }
}

fn actions(m: &Metrics) -> String {
    ["allow", "review", "block"]
        .iter()
        .map(|a| format!("{a} {}", m.verdicts.with_label_values(&[a]).get()))
        .collect::<Vec<_>>()
        .join(" ")
}

fn print_final(m: &Metrics, categories: &[String], elapsed: Duration) {
    let consumed = m.consumed(crate::metrics::Input::Message).get();
    let verdicts = m.produced.with_label_values(&["verdict"]).get();
    let dead = m.produced.with_label_values(&["dead_letter"]).get();
    println!(
        "\n== qunguard demo: final report ({:.1} s) ==",
        elapsed.as_secs_f64()
    );
    println!(
        "consumed {consumed} messages ({:.0} msg/s)",
        consumed as f64 / elapsed.as_secs_f64()
    );
    println!("verdicts acknowledged: {verdicts} ({})", actions(m));
    println!("dead-letters acknowledged: {dead}");
    let mut cats: Vec<(&str, u64)> = categories
        .iter()
        .map(|c| {
            (
                c.as_str(),
                m.verdict_categories.with_label_values(&[c]).get(),
            )
        })
        .filter(|(_, n)| *n > 0)
        .collect();
    cats.sort_by_key(|c| std::cmp::Reverse(c.1));
    println!(
        "categories: {}",
        cats.iter()
            .map(|(c, n)| format!("{c} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let by = |v: &prometheus::IntCounterVec, labels: &[&str]| {
        labels
            .iter()
            .map(|l| (l, v.with_label_values(&[l]).get()))
            .filter(|(_, n)| *n > 0)
            .map(|(l, n)| format!("{l} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!(
        "alerts opened: {} ({}) | open now: {} | review copies: {}",
        Metrics::total(&m.alerts, crate::watch::ALERT_KINDS),
        by(&m.alerts, crate::watch::ALERT_KINDS),
        m.alerts_open.get(),
        m.produced.with_label_values(&["review"]).get()
    );
    println!(
        "heuristic reasons: {} | removals recommended: {} | scorecards: {}",
        by(&m.verdict_reasons, crate::watch::REASONS),
        m.removals_recommended.get(),
        m.produced.with_label_values(&["scorecard"]).get()
    );
    println!(
        "member reports: {} ({}) | rewards: {}",
        m.consumed(crate::metrics::Input::Report).get(),
        by(&m.reports, crate::watch::REPORT_OUTCOMES),
        m.produced.with_label_values(&["reward"]).get()
    );
    let ok = verdicts + dead == consumed;
    println!(
        "every consumed message has a verdict or a dead-letter: {}",
        if ok { "yes" } else { "NO" }
    );
}
