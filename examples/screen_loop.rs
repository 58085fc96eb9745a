//! The screen bench's workload in a plain loop, for comparing builds on a noisy machine: the
//! bench's 20,000 messages screened on one thread, round after round, then the fastest and the
//! median round. Run two builds alternately and compare them run by run.
//!
//! `QUNGUARD_BENCH_DICT=../shared/data/sensitive-word/dict.txt cargo run --release --example
//! screen_loop -- 60` (without the variable: the bench's 10k generated terms).
use qunguard::Engine;
use qunguard::internal::synth::{Rng, workload};

const MESSAGES: usize = 20_000;

fn main() {
    let rounds: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let terms = match std::env::var("QUNGUARD_BENCH_DICT") {
        Ok(path) => workload::read_terms(path.as_ref())
            .unwrap_or_else(|e| panic!("QUNGUARD_BENCH_DICT={path}: {e}")),
        Err(_) => workload::generated_terms(&mut Rng::new(1)),
    };
    // As the bench does.
    let dir = tempfile::tempdir().expect("temporary directory");
    let (terms, rules) = workload::rule_set(terms, dir.path()).expect("rule pack");
    let engine = Engine::compile(&rules).expect("compile");
    let (msgs, _) = workload::messages(&terms, MESSAGES, &mut Rng::new(7));
    let one = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .expect("thread pool");
    let mut times = Vec::with_capacity(rounds);
    let mut hits = 0;
    for _ in 0..rounds.max(1) {
        let t = std::time::Instant::now();
        hits = one.install(|| {
            engine
                .screen_batch(&msgs)
                .iter()
                .map(|v| v.hits.len())
                .sum::<usize>()
        });
        times.push(t.elapsed().as_nanos() as f64 / MESSAGES as f64);
    }
    times.sort_by(f64::total_cmp);
    let (min, median) = (times[0], times[times.len() / 2]);
    println!(
        "{} terms, {hits} hits a round; fastest {min:.0} ns/msg ({:.2} M msg/s), median \
         {median:.0} ns/msg ({:.2} M msg/s)",
        terms.len(),
        1e3 / min,
        1e3 / median
    );
}
