//! The screen bench's workload in a plain loop, for comparing builds on a noisy machine: the
//! bench's 20,000 messages screened on one thread, round after round, then the fastest and the
//! median round. Run two builds alternately and compare them run by run.
//!
//! `QUNGUARD_BENCH_DICT=../shared/data/sensitive-word/dict.txt cargo run --release --example
//! screen_loop -- 60` (without the variable: the bench's 10k generated terms).
use qunguard::synth::{Rng, workload};
use qunguard::{Engine, RuleSet, normalise};

const MESSAGES: usize = 20_000;

fn main() {
    let rounds: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let terms: Vec<String> = match std::env::var("QUNGUARD_BENCH_DICT") {
        Ok(path) => std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("QUNGUARD_BENCH_DICT={path}: {e}"))
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(String::from)
            .collect(),
        Err(_) => workload::generated_terms(&mut Rng::new(1)),
    };
    // As the bench: terms with nothing left after normalisation are left out.
    let terms: Vec<String> = terms
        .into_iter()
        .filter(|t| !normalise(t).text.is_empty() && !t.contains('\n'))
        .collect();
    let dir = tempfile::tempdir().expect("temporary directory");
    std::fs::write(dir.path().join("terms.txt"), terms.join("\n")).expect("write terms");
    std::fs::write(
        dir.path().join("bench.toml"),
        "category = \"bench\"\naction = \"review\"\nwords_file = \"terms.txt\"\n",
    )
    .expect("write pack");
    let rules = RuleSet::load_dir(dir.path()).expect("rule pack");
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
