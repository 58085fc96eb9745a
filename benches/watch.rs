//! Throughput with the heuristics on vs off (target: on ≥ 0.8× off), on the synthetic city
//! stream with the shipped rule packs, in batches as the pipeline cuts them.
//!
//! `cargo bench --bench watch` (needs nothing from ../shared). Memory at 1M senders is
//! `cargo bench --bench watch_memory`.
//!
//! Before measuring it checks what it measures: the heuristics leave the rule hits alone, add
//! reasons to some verdicts, and give the same results on a second run.

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use qunguard::internal::synth::{Synth, SynthConfig};
use qunguard::watch::{Signature, Watch, WatchConfig};
use qunguard::{Engine, Message, RuleSet, Verdict};
use std::cell::RefCell;
use std::hint::black_box;

const BATCH: usize = 4096;
const STREAM: usize = 400_000;

fn engine() -> Engine {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/rules");
    Engine::compile(&RuleSet::load_dir(&dir).unwrap()).unwrap()
}

fn stream() -> Vec<Message> {
    Synth::new(SynthConfig {
        gap_ms: 1,
        ..Default::default()
    })
    .take(STREAM)
    .collect()
}

fn with_watch(engine: &Engine, w: &mut Watch, batch: &[Message]) -> usize {
    let (mut vs, sigs) = w.screen(engine, batch);
    let mut out = Vec::new();
    w.observe(batch, &sigs, &mut vs, &mut out);
    vs.len() + out.len()
}

/// Reasons and alerts over the first `n` messages, with a check that hits are untouched.
fn check(engine: &Engine, msgs: &[Message]) -> (u64, u64) {
    let mut w = Watch::new(WatchConfig::default());
    for batch in msgs.chunks(BATCH) {
        let (mut vs, sigs) = w.screen(engine, batch);
        let plain = engine.screen_batch(batch);
        w.observe(batch, &sigs, &mut vs, &mut Vec::new());
        for (a, b) in vs.iter().zip(&plain) {
            assert_eq!(a.hits, b.hits, "the heuristics must not change rule hits");
            assert!(a.action >= b.action);
        }
    }
    let s = w.stats();
    (
        s.reasons.values().sum(),
        s.alerts_opened.values().sum::<u64>(),
    )
}

fn bench(c: &mut Criterion) {
    let engine = engine();
    let msgs = stream();
    let first = check(&engine, &msgs[..100_000]);
    let again = check(&engine, &msgs[..100_000]);
    assert_eq!(first, again, "deterministic");
    assert!(first.0 > 0, "the stream exercises the heuristics");
    println!(
        "check: first 100,000 messages → {} reasons, {} alerts opened",
        first.0, first.1
    );

    let mut g = c.benchmark_group("watch");
    g.throughput(Throughput::Elements(BATCH as u64));
    // Batches in stream order, looping over the stream with event time moving on (a watch fed
    // time running backwards would keep its alerts open forever). Cloning is outside timing.
    let batches: Vec<&[Message]> = msgs.chunks(BATCH).collect();
    let span = msgs.last().unwrap().ts - msgs[0].ts + 1;
    let next = RefCell::new(0usize);
    let pick = || {
        let mut i = next.borrow_mut();
        let (pass, k) = (*i / batches.len(), *i % batches.len());
        *i += 1;
        let mut b = batches[k].to_vec();
        for m in &mut b {
            m.ts += pass as i64 * span;
        }
        b
    };
    g.bench_function("screen only", |b| {
        b.iter_batched(
            pick,
            |batch| black_box(engine.screen_batch(&batch)),
            BatchSize::SmallInput,
        )
    });
    // The watch keeps its state across iterations, as it does in the pipeline.
    let mut w = Watch::new(WatchConfig::default());
    g.bench_function("screen + watch", |b| {
        b.iter_batched(
            pick,
            |batch| black_box(with_watch(&engine, &mut w, &batch)),
            BatchSize::SmallInput,
        )
    });
    // As `qunguard run` does it: the watch of one batch on its own thread while the next batch
    // is screened.
    let mut w = Watch::new(WatchConfig::default());
    g.bench_function("screen + watch, overlapped", |b| {
        b.iter_custom(|iters| {
            type Work = (Vec<Message>, Vec<Verdict>, Vec<Signature>);
            let batches: Vec<Vec<Message>> = (0..iters).map(|_| pick()).collect();
            let t = std::time::Instant::now();
            let (tx, rx) = crossbeam_channel::bounded::<Work>(1);
            let fp = w.fingerprinter();
            std::thread::scope(|sc| {
                let w = &mut w;
                sc.spawn(move || {
                    for (batch, mut vs, sigs) in rx {
                        let mut out = Vec::new();
                        w.observe(&batch, &sigs, &mut vs, &mut out);
                        black_box((vs, out));
                    }
                });
                for batch in batches {
                    let (vs, sigs) = fp.screen(&engine, &batch);
                    tx.send((batch, vs, sigs)).unwrap();
                }
                drop(tx);
            });
            t.elapsed()
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
