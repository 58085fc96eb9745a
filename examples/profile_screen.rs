//! Profiling aid: screens the synthetic stream in a loop on one thread.
//! `cargo run --release --example profile_screen -- 200000` (then `perf record` the binary).
//!
//! `QUNGUARD_RULES=DIR` screens with another rules directory (default `config/rules`), e.g. one
//! holding the 64k dictionary as a pack. The wall clock on a shared machine varies by ±30%;
//! instruction counts do not:
//! `valgrind --tool=callgrind --toggle-collect='qunguard::screen::Engine::screen_batch'
//! target/release/examples/profile_screen 30000`, then `callgrind_annotate --inclusive=yes`.
use qunguard::internal::synth::{Synth, SynthConfig};
use qunguard::{Engine, RuleSet};

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(200_000);
    let rules = std::env::var("QUNGUARD_RULES").unwrap_or_else(|_| "config/rules".into());
    let engine = Engine::compile(&RuleSet::load_dir(rules.as_ref()).unwrap()).unwrap();
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
