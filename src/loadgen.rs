//! `qunguard loadgen`: produce the synthetic city stream ([`crate::synth`]) to a real broker at a
//! given rate, keyed by `group_id` like a real chat platform's producer.

use crate::synth::{Synth, SynthConfig};
use rdkafka::ClientConfig;
use rdkafka::client::ClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// What to produce.
#[derive(Debug, Clone)]
pub struct LoadgenOptions {
    /// Target topic.
    pub topic: String,
    /// Messages per second; 0 = as fast as the broker takes them.
    pub rate: u64,
    /// How many messages (0 = until stopped).
    pub count: u64,
    /// Shape of the stream (groups, senders, seed).
    pub synth: SynthConfig,
    /// Every Nth record is malformed (broken JSON, invalid UTF-8, missing field); 0 = never.
    pub malformed_every: u64,
    /// Stamp messages with the wall clock instead of the synthetic event time (live traffic).
    pub live_ts: bool,
    /// Message ids are `{id_prefix}{n}`, so runs against one topic stay distinguishable.
    pub id_prefix: String,
    /// Draw a progress bar (or a line every few seconds when stderr is not a terminal).
    pub progress: bool,
    /// Also produce member reports here (keyed by group, like the messages)...
    pub reports_topic: Option<String>,
    /// ...one for every this many messages, about a message 50k–100k messages back (0 = none).
    pub report_every: u64,
}

impl Default for LoadgenOptions {
    fn default() -> Self {
        LoadgenOptions {
            topic: "chat.messages".into(),
            rate: 0,
            count: 100_000,
            synth: SynthConfig::default(),
            malformed_every: 0,
            live_ts: true,
            id_prefix: "m".into(),
            progress: true,
            reports_topic: None,
            report_every: 0,
        }
    }
}

/// Delivery counters.
#[derive(Debug, Default)]
pub struct LoadgenStats {
    /// Records handed to the producer.
    pub sent: AtomicU64,
    /// Records acknowledged by the broker.
    pub acked: AtomicU64,
    /// Records that failed delivery.
    pub failed: AtomicU64,
}

struct Ctx {
    stats: Arc<LoadgenStats>,
}

impl ClientContext for Ctx {}

impl ProducerContext for Ctx {
    type DeliveryOpaque = ();
    fn delivery(&self, r: &DeliveryResult<'_>, _: ()) {
        match r {
            Ok(_) => self.stats.acked.fetch_add(1, Ordering::Relaxed),
            Err((e, _)) => {
                log::warn!("loadgen delivery failed: {e}");
                self.stats.failed.fetch_add(1, Ordering::Relaxed)
            }
        };
    }
}

/// The malformed records cycled through by `malformed_every`.
const MALFORMED: &[&[u8]] = &[
    b"{\"id\": \"broken",
    b"\xff\xfe not utf-8",
    b"{\"id\":\"x\",\"group_id\":\"g1\"}",
    b"",
];

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Produces the stream; returns the counters once every record is acknowledged or failed.
/// `stop` ends it early; `throttle` (if given) is called before each record and may sleep, so a
/// caller can bound how far the producer runs ahead (the demo keeps the mock broker's lag small).
pub fn run(
    producer_cfg: &ClientConfig,
    opts: &LoadgenOptions,
    stop: &AtomicBool,
    mut throttle: impl FnMut(u64),
) -> anyhow::Result<Arc<LoadgenStats>> {
    let stats = Arc::new(LoadgenStats::default());
    let producer: ThreadedProducer<Ctx> = producer_cfg.create_with_context(Ctx {
        stats: stats.clone(),
    })?;
    let start = Instant::now();
    let mut synth = Synth::new(opts.synth.clone());
    let tty = std::io::stderr().is_terminal();
    let mut last_draw = Instant::now();
    let mut n = 0u64;
    let mut buf = Vec::with_capacity(512);
    // Recent (id, group) pairs, for reports about messages that have had time to be screened.
    let mut recent: std::collections::VecDeque<(crate::model::Id, crate::model::Id)> =
        std::collections::VecDeque::with_capacity(RECENT);
    let mut reports = 0u64;
    while (opts.count == 0 || n < opts.count) && !stop.load(Ordering::Relaxed) {
        if opts.rate > 0 {
            // Pace against the schedule, not the previous send, so the long-run rate is exact.
            let due = start + Duration::from_secs_f64(n as f64 / opts.rate as f64);
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
        }
        throttle(n);
        let mut msg = synth.next().expect("endless stream");
        msg.id = format!("{}{n}", opts.id_prefix).into();
        if opts.live_ts {
            msg.ts = now_ms();
        }
        buf.clear();
        let malformed =
            opts.malformed_every > 0 && n % opts.malformed_every == opts.malformed_every - 1;
        if malformed {
            buf.extend_from_slice(MALFORMED[(n / opts.malformed_every) as usize % MALFORMED.len()]);
        } else {
            serde_json::to_writer(&mut buf, &msg).expect("messages serialise");
        }
        send(&producer, &opts.topic, &msg.group_id, &buf)?;
        // Remember one message in 200: the older half of the ring is then 50k–100k messages
        // back, already screened even when the consumer lags (the demo allows 50k).
        if !malformed && n.is_multiple_of(200) {
            if recent.len() == RECENT {
                recent.pop_front();
            }
            recent.push_back((msg.id.clone(), msg.group_id.clone()));
        }
        if let Some(topic) = &opts.reports_topic
            && opts.report_every > 0
            && n % opts.report_every == opts.report_every - 1
            && !recent.is_empty()
        {
            // About a message from the older half of the ring (once it is full, 50k–100k
            // messages back). Waiting for a full ring would mean no report at all in the first
            // 100k messages; a report about a message not screened yet is answered `unknown`.
            let pick = (n.wrapping_mul(0x9E37_79B9) >> 7) as usize % recent.len().div_ceil(2);
            let (id, group) = &recent[pick];
            let reason = ["广告", "辱骂", "谣言", "诈骗"][reports as usize % 4];
            let report = serde_json::json!({
                "report_id": format!("{}r{reports}", opts.id_prefix),
                "reporter_id": format!("reporter{}", (n.wrapping_mul(0x2545_F491) >> 11) % 20_000),
                "message_id": id,
                "group_id": group,
                "reason": reason,
                "ts": now_ms(),
            });
            send(&producer, topic, group, report.to_string().as_bytes())?;
            reports += 1;
        }
        n += 1;
        stats.sent.store(n, Ordering::Relaxed);
        if opts.progress
            && last_draw.elapsed() >= Duration::from_millis(if tty { 200 } else { 5000 })
        {
            last_draw = Instant::now();
            draw(&stats, opts.count, start.elapsed(), tty);
        }
    }
    producer.flush(Duration::from_secs(60))?;
    if opts.progress {
        draw(&stats, opts.count, start.elapsed(), tty);
        if tty {
            eprintln!();
        }
    }
    Ok(stats)
}

/// Recent messages remembered for reports.
const RECENT: usize = 512;

/// Sends one record, waiting while the producer queue is full.
fn send(
    producer: &ThreadedProducer<Ctx>,
    topic: &str,
    key: &str,
    payload: &[u8],
) -> anyhow::Result<()> {
    let mut record = BaseRecord::to(topic).key(key.as_bytes()).payload(payload);
    loop {
        match producer.send(record) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                record = r;
                std::thread::sleep(Duration::from_millis(1));
            }
            Err((e, _)) => anyhow::bail!("cannot produce to {topic}: {e}"),
        }
    }
}

fn draw(stats: &LoadgenStats, count: u64, elapsed: Duration, tty: bool) {
    let sent = stats.sent.load(Ordering::Relaxed);
    let acked = stats.acked.load(Ordering::Relaxed);
    let rate = sent as f64 / elapsed.as_secs_f64().max(1e-9);
    let line = if count > 0 {
        let frac = sent as f64 / count as f64;
        let width = 30usize;
        let filled = ((frac * width as f64) as usize).min(width);
        format!(
            "[{}{}] {:>5.1}% {sent}/{count} sent, {acked} acked, {:.0} msg/s",
            "=".repeat(filled),
            " ".repeat(width - filled),
            frac * 100.0,
            rate
        )
    } else {
        format!("{sent} sent, {acked} acked, {rate:.0} msg/s")
    };
    let mut err = std::io::stderr().lock();
    if tty {
        let _ = write!(err, "\r{line}");
    } else {
        let _ = writeln!(err, "{line}");
    }
    let _ = err.flush();
}
