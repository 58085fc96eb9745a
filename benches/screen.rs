//! Screening throughput on ~100-byte Chinese messages, engine vs an aho-corasick baseline.
//!
//! Pattern sets: 10,000 generated terms always; the real 64k-term dictionary when
//! `QUNGUARD_BENCH_DICT` names a term list (one a line), e.g.
//! `QUNGUARD_BENCH_DICT=../shared/data/sensitive-word/dict.txt cargo bench --bench screen`.
//! Without it only the generated set runs.
//!
//! Every set first checks that the engine reports exactly as many term hits as aho-corasick
//! finds (overlapping) in the same normalised texts, after the engine's ASCII word-edge rule,
//! and at least the number of terms planted.
//! The engine runs with full normalisation; the baseline searches pre-normalised text. Two floor
//! lines run Hyperscan alone on the pre-normalised texts: in UTF-8, and in the dense encoding the
//! engine scans.
//!
//! `engine_plus_scorer_1_thread` is the same engine with the shipped model pack
//! (config/rules/offensive.toml) added, so every message is also scored; after the criterion
//! lines the set prints the ratio of the two throughputs, timed alternately in the same run
//! (in CPU time, so other work on the machine does not move it).

use aho_corasick::AhoCorasick;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use hyperscan::prelude::{BlockDatabase, Builder, Matching, Pattern, Patterns};
use qunguard::internal::synth::{Rng, workload};
use qunguard::screen::dense;
use qunguard::{Engine, Message, Normaliser, normalise};
use std::hint::black_box;

const MESSAGES: usize = 20_000;

fn bench_set(c: &mut Criterion, name: &str, terms: Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    let t0 = std::time::Instant::now();
    let (terms, rules) = workload::rule_set(terms, dir.path()).unwrap();
    let engine = Engine::compile(&rules).unwrap();
    let pack_path = std::path::Path::new("config/rules/offensive.toml");
    let model_pack =
        qunguard::scorer::ModelPack::parse(pack_path, &std::fs::read_to_string(pack_path).unwrap())
            .unwrap();
    let scored = Engine::compile(&rules.clone().with_models(vec![model_pack]).unwrap()).unwrap();
    eprintln!(
        "{name}: {} terms loaded and compiled in {:?}",
        terms.len(),
        t0.elapsed()
    );

    let mut rng = Rng::new(7);
    let (msgs, planted) = workload::messages(&terms, MESSAGES, &mut rng);
    let normalised: Vec<String> = msgs.iter().map(|m| normalise(&m.text).text).collect();
    let mut norm_terms: Vec<String> = rules.packs[0]
        .terms
        .iter()
        .map(|t| t.normalised.to_string())
        .collect();
    norm_terms.sort();
    norm_terms.dedup();
    let ac = AhoCorasick::new(&norm_terms).unwrap();
    // The matcher's floor: Hyperscan alone, the same literals, the normalised texts joined the way
    // the engine joins a chunk (1,024 messages, '\n' between them), no normalisation or verdicts:
    // in UTF-8, and in the dense encoding the engine really scans (`qunguard::screen::dense`).
    let floor = |encode: &dyn Fn(&str) -> Vec<u8>| {
        let db: BlockDatabase = Patterns(
            norm_terms
                .iter()
                .enumerate()
                .map(|(i, t)| {
                    let hex: String = encode(t).iter().map(|b| format!("\\x{b:02x}")).collect();
                    let mut p = Pattern::new(hex).unwrap();
                    p.id = Some(i);
                    p
                })
                .collect(),
        )
        .build()
        .unwrap();
        let joined: Vec<Vec<u8>> = normalised
            .chunks(1024)
            .map(|c| c.iter().map(|t| encode(t)).collect::<Vec<_>>().join(&b'\n'))
            .collect();
        (db, joined)
    };
    let (hs_utf8, joined_utf8) = floor(&|t: &str| t.as_bytes().to_vec());
    let (hs_dense, joined_dense) = floor(&|t: &str| dense::encode(t));
    let hs_count = |db: &BlockDatabase, joined: &[Vec<u8>]| -> usize {
        let scratch = db.alloc_scratch().unwrap();
        let mut n = 0;
        for buf in joined {
            db.scan(buf, &scratch, |_, _, _, _| {
                n += 1;
                Matching::Continue
            })
            .unwrap();
        }
        n
    };
    let ac_count = |texts: &[String]| -> usize {
        texts
            .iter()
            .map(|t| ac.find_overlapping_iter(t).count())
            .sum()
    };
    for (encoding, db, joined) in [
        ("UTF-8", &hs_utf8, &joined_utf8),
        ("dense", &hs_dense, &joined_dense),
    ] {
        assert_eq!(
            hs_count(db, joined),
            ac_count(&normalised),
            "{name}: Hyperscan ({encoding}) and aho-corasick disagree on the normalised texts"
        );
    }
    // The engine drops a hit whose ASCII edge continues an ASCII word in the original text
    // ("sb" in "is bad"); apply the same rule to aho-corasick's matches for the check.
    let expected: usize = msgs
        .iter()
        .map(|m| {
            let n = normalise(&m.text);
            let o = m.text.as_bytes();
            ac.find_overlapping_iter(&n.text)
                .filter(|x| {
                    let (s, e) = n.original_range(x.start(), x.end());
                    let glued = |edge: u8, out: Option<&u8>| {
                        edge.is_ascii_alphanumeric() && out.is_some_and(u8::is_ascii_alphanumeric)
                    };
                    !glued(o[s], s.checked_sub(1).map(|i| &o[i])) && !glued(o[e - 1], o.get(e))
                })
                .count()
        })
        .sum();
    let one = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    let hits = |msgs: &[Message]| -> usize {
        engine.screen_batch(msgs).iter().map(|v| v.hits.len()).sum()
    };
    let got = one.install(|| hits(&msgs));
    assert_eq!(
        got, expected,
        "{name}: engine and aho-corasick disagree on the hit count"
    );
    assert!(
        got >= planted,
        "{name}: {got} hits for {planted} planted terms"
    );
    let bytes: usize = msgs.iter().map(|m| m.text.len()).sum();
    eprintln!(
        "{name}: {MESSAGES} messages, mean {} bytes, {planted} planted terms, {got} hits (checked)",
        bytes / MESSAGES
    );

    let mut g = c.benchmark_group(name);
    g.throughput(Throughput::Elements(MESSAGES as u64));
    g.sample_size(10);
    g.bench_function("engine_1_thread", |b| {
        b.iter(|| one.install(|| black_box(hits(&msgs))))
    });
    let scored_hits = |msgs: &[Message]| -> usize {
        scored
            .screen_batch(msgs)
            .iter()
            .map(|v| v.hits.len() + v.scores.iter().count())
            .sum()
    };
    g.bench_function("engine_plus_scorer_1_thread", |b| {
        b.iter(|| one.install(|| black_box(scored_hits(&msgs))))
    });
    g.bench_function("engine_all_threads", |b| b.iter(|| black_box(hits(&msgs))));
    // The engine's normalisation path (no offset map), message by message into one buffer.
    let mut normaliser = Normaliser::default();
    g.bench_function("normalise_only_1_thread", |b| {
        b.iter(|| {
            msgs.iter()
                .map(|m| normaliser.normalise(&m.text).len())
                .sum::<usize>()
        })
    });
    g.bench_function("hyperscan_prenormalised_1_thread", |b| {
        b.iter(|| black_box(hs_count(&hs_utf8, &joined_utf8)))
    });
    g.bench_function("hyperscan_dense_1_thread", |b| {
        b.iter(|| black_box(hs_count(&hs_dense, &joined_dense)))
    });
    g.bench_function("aho_corasick_prenormalised_1_thread", |b| {
        b.iter(|| black_box(ac_count(&normalised)))
    });
    g.finish();

    // The scorer's cost as a ratio measured in this run: both engines timed in alternation on
    // one thread, the best of several rounds each. Timed in CPU seconds of the process, not
    // on the wall clock: on a shared machine the one worker is preempted at random, which
    // moved the wall-clock ratio by ±0.05 between runs of the same build.
    let (mut plain, mut with) = (f64::MAX, f64::MAX);
    for _ in 0..9 {
        let t = cpu_secs();
        one.install(|| black_box(hits(&msgs)));
        plain = plain.min(cpu_secs() - t);
        let t = cpu_secs();
        one.install(|| black_box(scored_hits(&msgs)));
        with = with.min(cpu_secs() - t);
    }
    eprintln!(
        "{name}: engine {:.0} msg/s, engine + scorer {:.0} msg/s on one thread (CPU time): ratio {:.2}",
        MESSAGES as f64 / plain,
        MESSAGES as f64 / with,
        plain / with
    );
}

/// CPU seconds this process has used (all threads; the caller sleeps while the one-thread pool
/// works).
fn cpu_secs() -> f64 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `t` is a valid timespec to write; the clock id is a constant Linux provides.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut t) };
    assert_eq!(rc, 0, "clock_gettime");
    t.tv_sec as f64 + t.tv_nsec as f64 * 1e-9
}

fn screening(c: &mut Criterion) {
    let mut rng = Rng::new(1);
    bench_set(c, "generated_10k", workload::generated_terms(&mut rng));
    match std::env::var("QUNGUARD_BENCH_DICT") {
        Ok(path) => {
            let terms = workload::read_terms(path.as_ref())
                .unwrap_or_else(|e| panic!("QUNGUARD_BENCH_DICT={path}: {e}"));
            bench_set(c, "dict", terms);
        }
        Err(_) => eprintln!(
            "QUNGUARD_BENCH_DICT not set: skipping the real-dictionary set \
             (e.g. QUNGUARD_BENCH_DICT=../shared/data/sensitive-word/dict.txt)"
        ),
    }
}

criterion_group!(benches, screening);
criterion_main!(benches);
