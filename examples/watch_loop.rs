//! The heuristics alone in a plain loop, for comparing builds of the watch on a noisy machine:
//! the synthetic city stream is screened once (shipped packs), then every round feeds the same
//! verdicts and signatures through a fresh watch in 4096-message batches and times only the
//! watch. Prints the fastest and the median round, and what the watch did (so two builds can be
//! checked to agree before their times are compared).
//!
//! `cargo run --release --example watch_loop -- [MESSAGES] [ROUNDS] [THREADS] [STAGE_THREADS]`
//! (defaults 400000, 7, one per core, and the watch's own choice: its pre-pass stages on
//! threads of their own from 4 cores on; `1` or `0` to choose).
use qunguard::internal::synth::{Synth, SynthConfig};
use qunguard::watch::{Watch, WatchConfig};
use qunguard::{Engine, Message, RuleSet};

const BATCH: usize = 4096;

fn main() {
    let mut args = std::env::args().skip(1).map(|s| s.parse::<usize>().ok());
    let n = args.next().flatten().unwrap_or(400_000);
    let rounds = args.next().flatten().unwrap_or(7).max(1);
    let threads = args.next().flatten();
    let stage_threads = args.next().flatten().map(|s| s != 0);
    if let Some(t) = threads {
        rayon::ThreadPoolBuilder::new()
            .num_threads(t)
            .build_global()
            .expect("thread pool");
    }
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/rules");
    let engine = Engine::compile(&RuleSet::load_dir(&dir).expect("rules")).expect("compile");
    let msgs: Vec<Message> = Synth::new(SynthConfig::default()).take(n).collect();
    let probe = Watch::new(WatchConfig::default());
    let screened: Vec<_> = msgs
        .chunks(BATCH)
        .map(|b| probe.screen(&engine, b))
        .collect();
    let mut times = Vec::with_capacity(rounds);
    let mut summary = String::new();
    for _ in 0..rounds {
        let mut verdicts: Vec<_> = screened.iter().map(|(v, _)| v.clone()).collect();
        let mut w = Watch::new(WatchConfig::default()).with_clock(|| i64::MAX / 4);
        if let Some(on) = stage_threads {
            w = w.with_stage_threads(on);
        }
        let mut out = Vec::new();
        let t = std::time::Instant::now();
        for ((batch, (_, sigs)), vs) in msgs.chunks(BATCH).zip(&screened).zip(&mut verdicts) {
            w.observe(batch, sigs, vs, &mut out);
        }
        times.push(t.elapsed().as_nanos() as f64 / n as f64);
        let reasons: usize = verdicts.iter().flatten().map(|v| v.reasons.len()).sum();
        let b = w.stage_busy();
        summary = format!(
            "{reasons} reasons, {} records; stages busy (ns/msg): rates {:.0}, floods {:.0}, ordered {:.0}",
            out.len(),
            b.rates.as_nanos() as f64 / n as f64,
            b.floods.as_nanos() as f64 / n as f64,
            b.ordered.as_nanos() as f64 / n as f64
        );
        drop(verdicts);
        drop(w);
    }
    times.sort_by(f64::total_cmp);
    println!(
        "{n} messages, {summary}; watch fastest {:.0} ns/msg, median {:.0} ns/msg",
        times[0],
        times[times.len() / 2]
    );
}
