//! Profiling aid: screens the synthetic stream in a loop on one thread.
//! `cargo run --release --example profile_screen -- 200000` (then `perf record` the binary).
use qunguard::synth::{Synth, SynthConfig};
use qunguard::{Engine, RuleSet};

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(200_000);
    let engine = Engine::compile(&RuleSet::load_dir("config/rules".as_ref()).unwrap()).unwrap();
    let msgs: Vec<_> = Synth::new(SynthConfig::default()).take(n).collect();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    for round in 0..3 {
        let t = std::time::Instant::now();
        let hits: usize = pool.install(|| {
            engine
                .screen_batch(&msgs)
                .iter()
                .map(|v| v.hits.len())
                .sum()
        });
        let s = t.elapsed().as_secs_f64();
        println!(
            "round {round}: {n} msgs in {s:.3}s = {:.0} msg/s, {hits} hits",
            n as f64 / s
        );
    }
}
