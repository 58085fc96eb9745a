//! End-to-end benchmark against a real Kafka broker.
//!
//! ```text
//! cargo bench --bench e2e                      # starts a broker with scripts/kafka-broker
//! QUNGUARD_BENCH_BROKERS=host:9092 cargo bench --bench e2e   # or use yours
//! QUNGUARD_BENCH_E2E_N=1000000 …               # messages per phase (default 400000)
//! QUNGUARD_BENCH_LAT_RATE=20000 …              # latency phase rate (default half of (b))
//! QUNGUARD_BENCH_BATCH_WAIT_MS=5 …              # the pipeline's batch_max_wait_ms (default 20)
//! ```
//!
//! In one run, on the same broker and the same preloaded data, it measures
//! (a) a bare consume → produce passthrough with qunguard's client settings,
//! (b0) the pipeline with the heuristics off and (b) the full pipeline
//! (`qunguard::pipeline::run`: parse, screen, heuristics, verdicts), and prints the rates and
//! their ratios (target (b)/(a) ≥ 0.8; (b)/(b0) is what the heuristics cost); then
//! (c) p50/p99 produce → verdict latency with the generator at half of (b)'s rate
//! (target p99 ≤ 50 ms). Needs nothing from ../shared.

#[path = "../tests/support/mod.rs"]
mod support;

use qunguard::config::{Config, OutputTopic};
use qunguard::internal::kafka::{self, admin};
use qunguard::internal::loadgen::{self, LoadgenOptions};
use qunguard::metrics::Metrics;
use qunguard::{Engine, RuleSet};
use rdkafka::Message as _;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseRecord, Producer, ThreadedProducer};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn main() {
    // `cargo test --benches` runs benches in test mode: keep that quick and broker-free.
    if std::env::args().any(|a| a == "--test" || a == "--list") {
        return;
    }
    let brokers = match std::env::var("QUNGUARD_BENCH_BROKERS") {
        Ok(b) => b,
        Err(_) => {
            // SAFETY: no other thread exists yet.
            unsafe { std::env::set_var("QUNGUARD_KAFKA_TUNING", "bench") };
            support::broker()
                .expect("set QUNGUARD_BENCH_BROKERS or let the bench start a broker")
                .to_string()
        }
    };
    let n: u64 = std::env::var("QUNGUARD_BENCH_E2E_N")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(400_000);
    let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
    println!("e2e bench: {n} messages per phase, broker {brokers}, {cores} cores");

    let p = support::unique("bench");
    let (input, pass_out) = (format!("{p}.in"), format!("{p}.pass"));
    let mut cfg = Config::default();
    cfg.kafka.brokers = brokers.clone();
    cfg.kafka.input_topics = vec![input.clone()];
    let k = &mut cfg.kafka;
    k.reports_topic = format!("{p}.reports");
    for t in OutputTopic::ALL {
        *t.name_mut(k) = format!("{p}.{}", t.record_kind());
    }
    cfg.rules.dir = support::repo().join("config/rules");
    // QUNGUARD_BENCH_BATCH_WAIT_MS: the pipeline's batch age cap (latency at low traffic).
    if let Some(ms) = std::env::var("QUNGUARD_BENCH_BATCH_WAIT_MS")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        cfg.pipeline.batch_max_wait_ms = ms;
    }
    // Extra librdkafka consumer properties for every consumer here (the pipeline's, the
    // passthrough's, the latency reader's): QUNGUARD_BENCH_CONSUMER_PROPS="k=v,k=v".
    for kv in std::env::var("QUNGUARD_BENCH_CONSUMER_PROPS")
        .unwrap_or_default()
        .split(',')
        .filter(|s| !s.is_empty())
    {
        let (key, value) = kv.split_once('=').expect("k=v");
        k.consumer.insert(key.into(), value.into());
    }
    let parts = 8;
    let mut topics = vec![(pass_out.as_str(), parts)];
    topics.extend(k.all_topics().into_iter().map(|t| (t, parts)));
    admin::create_topics(&brokers, &topics).expect("create topics");

    // Preload the data both phases read.
    let stop = AtomicBool::new(false);
    let t0 = Instant::now();
    let opts = LoadgenOptions {
        topic: input.clone(),
        count: n,
        progress: false,
        ..Default::default()
    };
    let producer_cfg = kafka::producer_config(&brokers, &Default::default());
    let stats = loadgen::run(&producer_cfg, &opts, &stop, |_| {}).expect("preload");
    assert_eq!(
        stats.acked.load(Ordering::Relaxed),
        n,
        "preload acknowledged"
    );
    println!(
        "preload: {n} messages in {:.2} s",
        t0.elapsed().as_secs_f64()
    );

    // (a) passthrough, measured before and after the pipeline phases (the broker keeps
    // warming up); the ratios use the mean of the two.
    let pass = || {
        let cpu0 = cpu_seconds();
        let rate = passthrough(
            &brokers,
            &input,
            &pass_out,
            n,
            &cfg.kafka.consumer,
            &AtomicBool::new(false),
            false,
        );
        (rate, (cpu_seconds() - cpu0) / n as f64 * 1e6)
    };
    // Warm-up, not counted: a fresh broker spends its first minute JIT-compiling (C2 took ~25%
    // of the CPU in a profiled run), which would otherwise fall on whichever phase runs first.
    let t = Instant::now();
    pass();
    println!(
        "warm-up: one passthrough of {n} messages in {:.1} s (untimed)",
        t.elapsed().as_secs_f64()
    );
    let (pass_before, pass_cpu) = pass();
    println!(
        "(a) passthrough consume→produce: {pass_before:>10.0} msg/s   client CPU {pass_cpu:.2} µs/msg"
    );

    let engine = Arc::new(
        Engine::compile(&RuleSet::load_dir(&cfg.rules.dir).expect("rules")).expect("compile"),
    );
    // (b0) the pipeline with the heuristics off ([watch] enabled = false): what they cost.
    let mut off = cfg.clone();
    off.watch.enabled = false;
    let (stop, runner, metrics) = start_pipeline(&off, &engine);
    let (rate_off, cpu_off, _) = measure(&metrics, n);
    stop.store(true, Ordering::Relaxed);
    runner.join().unwrap().expect("pipeline ran cleanly");
    println!(
        "(b0) pipeline, heuristics off:   {rate_off:>10.0} msg/s   client CPU {cpu_off:.2} µs/msg"
    );

    // (b) full pipeline, from the beginning of the same topic with a fresh group.
    let (stop, runner, metrics) = start_pipeline(&cfg, &engine);
    let (pipe_rate, pipe_cpu, wall) = measure(&metrics, n);
    println!(
        "(b) qunguard pipeline:            {pipe_rate:>10.0} msg/s   client CPU {pipe_cpu:.2} µs/msg"
    );
    // Who waits for whom: the screen stage's busy share of the run, and how long the consumer
    // thread sat on a full queue. (Polling is on its own thread, so screening never delays
    // heartbeats or rebalances; a busy screen stage only makes the consumer wait.)
    println!(
        "    screen stage busy {:.0}%, watch stage busy {:.0}%, send stage busy {:.0}% of the run; consumer blocked on a full queue {:.2} s; {} batches, mean {:.0} records",
        100.0 * metrics.batch_screen_seconds.get_sample_sum() / wall,
        100.0 * metrics.batch_watch_seconds.get_sample_sum() / wall,
        100.0 * metrics.batch_send_seconds.get_sample_sum() / wall,
        metrics.consumer_blocked_seconds.get(),
        metrics.batch_size.get_sample_count(),
        metrics.batch_size.get_sample_sum() / metrics.batch_size.get_sample_count().max(1) as f64,
    );
    let (pass_after, _) = pass();
    let pass_rate = (pass_before + pass_after) / 2.0;
    println!(
        "(a') passthrough again:          {pass_after:>10.0} msg/s   (mean of (a) and (a'): {pass_rate:.0})"
    );
    println!(
        "    ratio (b)/(a): {:.2}  (target ≥ 0.80); heuristics on/off (b)/(b0): {:.2}; (b0)/(a): {:.2}",
        pipe_rate / pass_rate,
        pipe_rate / rate_off,
        rate_off / pass_rate
    );

    // (c) latency at half of (b)'s rate, through the same running pipeline.
    let rate = std::env::var("QUNGUARD_BENCH_LAT_RATE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or((pipe_rate / 2.0) as u64);
    let secs = 10u64;
    let before = bucket_counts(&metrics.batch_latency_seconds);
    let (p50, p99, seen) = latency(&brokers, &cfg, &cfg.kafka.verdicts_topic, rate, rate * secs);
    let after = bucket_counts(&metrics.batch_latency_seconds);
    let in_phase: Vec<(f64, u64)> = after
        .iter()
        .zip(&before)
        .map(|((le, a), (_, b))| (*le, a - b))
        .collect();
    println!(
        "    inside qunguard (first record polled → outputs acknowledged), per batch: p50 ≤ {:.0} ms, p99 ≤ {:.0} ms",
        quantile(&in_phase, 0.5) * 1e3,
        quantile(&in_phase, 0.99) * 1e3
    );
    println!(
        "(c) produce→verdict latency at {rate} msg/s for {secs} s: p50 {p50:.1} ms, p99 {p99:.1} ms over {seen} messages (target p99 ≤ 50 ms)"
    );
    stop.store(true, Ordering::Relaxed);
    runner.join().unwrap().expect("pipeline ran cleanly");

    // (d) the same latency through the bare passthrough: the floor set by Kafka and the clients.
    let stop = Arc::new(AtomicBool::new(false));
    let live = {
        let (brokers, input, out, props, stop) = (
            brokers.clone(),
            input.clone(),
            pass_out.clone(),
            cfg.kafka.consumer.clone(),
            stop.clone(),
        );
        std::thread::spawn(move || {
            passthrough(&brokers, &input, &out, u64::MAX, &props, &stop, true)
        })
    };
    while !PASSTHROUGH_READY.load(Ordering::Acquire) {
        std::thread::sleep(Duration::from_millis(10));
    }
    let (p50, p99, seen) = latency(&brokers, &cfg, &pass_out, rate, rate * secs);
    println!(
        "(d) produce→passthrough-copy latency, same rate: p50 {p50:.1} ms, p99 {p99:.1} ms over {seen} messages"
    );
    stop.store(true, Ordering::Relaxed);
    live.join().unwrap();
}

type Runner = std::thread::JoinHandle<anyhow::Result<()>>;

/// Starts `qunguard::pipeline::run` with a fresh consumer group (so it reads the input from the
/// beginning).
fn start_pipeline(cfg: &Config, engine: &Arc<Engine>) -> (Arc<AtomicBool>, Runner, Metrics) {
    let mut cfg = cfg.clone();
    cfg.kafka.group_id = support::unique("bench-pipeline");
    let metrics = Metrics::new(&[], &[], &[]);
    let stop = Arc::new(AtomicBool::new(false));
    let runner = {
        let (engine, metrics, stop) = (engine.clone(), metrics.clone(), stop.clone());
        std::thread::spawn(move || qunguard::pipeline::run(&cfg, engine, metrics, stop))
    };
    (stop, runner, metrics)
}

/// Waits until `n` outputs are acknowledged; rate and client CPU per message, timed from the
/// first consumed record as the passthrough is; and the wall time.
fn measure(metrics: &Metrics, n: u64) -> (f64, f64, f64) {
    let outputs = || {
        metrics.produced.with_label_values(&["verdict"]).get()
            + metrics.produced.with_label_values(&["dead_letter"]).get()
    };
    while metrics.consumed.with_label_values(&["message"]).get() == 0 {
        std::thread::sleep(Duration::from_millis(1));
    }
    let t0 = Instant::now();
    let cpu0 = cpu_seconds();
    while outputs() < n {
        std::thread::sleep(Duration::from_millis(2));
    }
    let wall = t0.elapsed().as_secs_f64();
    let cpu = (cpu_seconds() - cpu0) / n as f64 * 1e6;
    (n as f64 / wall, cpu, wall)
}

/// Consume `input` from the start and produce every value to `output`; rate over `n` acks.
static PASSTHROUGH_READY: AtomicBool = AtomicBool::new(false);

/// Copies `input` to `output` until `n` records are acknowledged or `stop` is set; returns the
/// rate. `latest`: start at the end of `input` (for the latency phase), after joining.
fn passthrough(
    brokers: &str,
    input: &str,
    output: &str,
    n: u64,
    props: &std::collections::BTreeMap<String, String>,
    stop: &AtomicBool,
    latest: bool,
) -> f64 {
    let mut props = props.clone();
    if latest {
        props.insert("auto.offset.reset".into(), "latest".into());
    }
    let consumer: BaseConsumer =
        kafka::consumer_config(brokers, &support::unique("bench-pass"), &props)
            .create()
            .expect("consumer");
    consumer.subscribe(&[input]).expect("subscribe");
    if latest {
        // Hold the partitions before the caller starts producing (else "latest" skips some).
        while consumer.assignment().map_or(0, |a| a.count()) == 0 && !stop.load(Ordering::Relaxed) {
            consumer.poll(Duration::from_millis(50));
        }
        PASSTHROUGH_READY.store(true, Ordering::Release);
    }
    let acked = Arc::new(AtomicU64::new(0));
    struct Ctx(Arc<AtomicU64>);
    impl rdkafka::ClientContext for Ctx {}
    impl rdkafka::producer::ProducerContext for Ctx {
        type DeliveryOpaque = ();
        fn delivery(&self, r: &rdkafka::producer::DeliveryResult<'_>, _: ()) {
            if r.is_ok() {
                self.0.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    let producer: ThreadedProducer<Ctx> = kafka::producer_config(brokers, &Default::default())
        .create_with_context(Ctx(acked.clone()))
        .expect("producer");
    let mut consumed = 0u64;
    let mut t0 = None;
    while consumed < n && !stop.load(Ordering::Relaxed) {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            t0.get_or_insert_with(Instant::now);
            consumed += 1;
            let payload = m.payload().unwrap_or_default().to_vec();
            let key = m.key().map(<[u8]>::to_vec);
            let mut rec = BaseRecord::to(output).payload(&payload[..]);
            if let Some(k) = &key {
                rec = rec.key(&k[..]);
            }
            while let Err((_, r)) = producer.send(rec) {
                rec = r;
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }
    while acked.load(Ordering::Relaxed) < consumed {
        std::thread::sleep(Duration::from_millis(1));
    }
    let rate = consumed as f64 / t0.map_or(f64::INFINITY, |t| t.elapsed().as_secs_f64());
    producer.flush(Duration::from_secs(10)).ok();
    rate
}

/// Produces `count` messages to the input topic at `rate` and times each from send to its
/// output record (verdict, or passthrough copy) being read from `out_topic`.
fn latency(
    brokers: &str,
    cfg: &Config,
    out_topic: &str,
    rate: u64,
    count: u64,
) -> (f64, f64, usize) {
    // Send instants as nanoseconds since `base`, indexed by message number: lock-free, so the
    // measuring costs little next to what is measured.
    let base = Instant::now();
    let sent: Arc<Vec<AtomicU64>> = Arc::new((0..count).map(|_| AtomicU64::new(0)).collect());
    let lat: Arc<Mutex<Vec<f64>>> = Arc::default();
    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let (sent, lat, done) = (sent.clone(), lat.clone(), done.clone());
        let consumer: BaseConsumer = kafka::consumer_config(
            brokers,
            &support::unique("bench-lat"),
            &cfg.kafka
                .consumer
                .clone()
                .into_iter()
                .chain([("auto.offset.reset".to_string(), "latest".to_string())])
                .collect(),
        )
        .create()
        .expect("consumer");
        consumer.subscribe(&[out_topic]).expect("subscribe");
        // Join the group before producing, so "latest" starts before the first message.
        let t = Instant::now();
        while consumer.assignment().map_or(0, |a| a.count()) == 0
            && t.elapsed() < Duration::from_secs(30)
        {
            consumer.poll(Duration::from_millis(50));
        }
        std::thread::spawn(move || {
            let mut mine = Vec::new();
            while !done.load(Ordering::Relaxed) {
                if let Some(Ok(m)) = consumer.poll(Duration::from_millis(50)) {
                    let now = base.elapsed().as_nanos() as u64;
                    // Verdicts (and messages) start with {"id":"lat<n>": no need to parse the rest.
                    let v = m.payload().unwrap_or_default();
                    let n = v
                        .strip_prefix(b"{\"id\":\"lat")
                        .and_then(|r| r.iter().position(|&c| c == b'"').map(|e| &r[..e]))
                        .and_then(|d| std::str::from_utf8(d).ok()?.parse::<usize>().ok());
                    if let Some(t) = n
                        .and_then(|n| sent.get(n))
                        .map(|a| a.swap(0, Ordering::Relaxed))
                        && t > 0
                    {
                        mine.push((now - t) as f64 / 1e6);
                    }
                }
            }
            lat.lock().unwrap().extend(mine);
        })
    };
    let stop = AtomicBool::new(false);
    let opts = LoadgenOptions {
        topic: cfg.kafka.input_topics[0].clone(),
        rate,
        count,
        id_prefix: "lat".into(),
        progress: false,
        ..Default::default()
    };
    let producer_cfg = kafka::producer_config(brokers, &Default::default());
    let s2 = sent.clone();
    loadgen::run(&producer_cfg, &opts, &stop, move |i| {
        s2[i as usize].store(base.elapsed().as_nanos().max(1) as u64, Ordering::Relaxed);
    })
    .expect("latency load");
    let t = Instant::now();
    while sent.iter().any(|a| a.load(Ordering::Relaxed) != 0)
        && t.elapsed() < Duration::from_secs(30)
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    done.store(true, Ordering::Relaxed);
    reader.join().unwrap();
    let mut l = lat.lock().unwrap().clone();
    assert!(!l.is_empty(), "no verdicts seen in the latency phase");
    l.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let q = |p: f64| l[((l.len() as f64 * p) as usize).min(l.len() - 1)];
    (q(0.5), q(0.99), l.len())
}

/// Cumulative bucket counts of a histogram, `(upper bound, count)`.
fn bucket_counts(h: &prometheus::Histogram) -> Vec<(f64, u64)> {
    use prometheus::core::Collector;
    let mf = h.collect();
    mf[0].get_metric()[0]
        .get_histogram()
        .get_bucket()
        .iter()
        .map(|b| (b.upper_bound(), b.cumulative_count()))
        .collect()
}

/// The upper bound of the bucket holding quantile `q` (infinite past the last bucket).
fn quantile(buckets: &[(f64, u64)], q: f64) -> f64 {
    let total = buckets.last().map_or(0, |b| b.1);
    let want = (total as f64 * q).ceil() as u64;
    buckets
        .iter()
        .find(|(_, c)| *c >= want && total > 0)
        .map_or(f64::INFINITY, |(le, _)| *le)
}

/// CPU time (user + system) of this process so far, from /proc (clock ticks of 10 ms).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|s| s.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}
