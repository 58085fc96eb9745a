//! Memory of the watch with 1M distinct senders (target: the process under 300 MB RSS).
//!
//! `cargo bench --bench watch_memory` (needs nothing from ../shared;
//! `QUNGUARD_BENCH_SENDERS=N` changes the count). It screens and watches 2 messages from each
//! of N senders in 5,000 groups, in pipeline-sized batches, with the default limits, and prints
//! the peak RSS of the whole process (engine included) and the entries held.

use qunguard::internal::synth::{Synth, SynthConfig};
use qunguard::watch::{Watch, WatchConfig};
use qunguard::{Engine, Message, RuleSet};

fn status(key: &str) -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn main() {
    if std::env::args().any(|a| a == "--test" || a == "--list") {
        return; // `cargo test --benches`: nothing to check quickly here
    }
    let senders: usize = std::env::var("QUNGUARD_BENCH_SENDERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/rules");
    let engine = Engine::compile(&RuleSet::load_dir(&dir).unwrap()).unwrap();
    let base = status("VmRSS:");
    let mut w = Watch::new(WatchConfig::default());
    let mut synth = Synth::new(SynthConfig {
        gap_ms: 1,
        ..Default::default()
    });
    let t = std::time::Instant::now();
    let mut batch: Vec<Message> = Vec::with_capacity(4096);
    let total = 2 * senders;
    for i in 0..total {
        let mut m = synth.next().unwrap();
        // Every sender posts twice, far apart: all of them are live state at the end.
        m.sender_id = format!("s{}", i % senders).into();
        m.group_id = format!("g{}", (i % senders) % 5000).into();
        batch.push(m);
        if batch.len() == 4096 || i + 1 == total {
            let (mut vs, sigs) = w.screen(&engine, &batch);
            w.observe(&batch, &sigs, &mut vs, &mut Vec::new());
            batch.clear();
        }
    }
    let secs = t.elapsed().as_secs_f64();
    let sizes = w.sizes();
    let held = |k: &str| sizes.iter().find(|s| s.0 == k).map_or(0, |s| s.1);
    assert_eq!(
        held("senders"),
        senders.min(1_000_000),
        "every sender is tracked"
    );
    let (rss, peak) = (status("VmRSS:"), status("VmHWM:"));
    println!(
        "watch_memory: {senders} senders, {total} messages in {secs:.1} s ({:.0} msg/s, screen + watch)",
        total as f64 / secs
    );
    for (map, n, evicted) in &sizes {
        println!("  {map:<18} {n:>9} entries  {evicted:>9} evicted");
    }
    println!(
        "  RSS: engine loaded {} MB, now {} MB, peak {} MB (target < 300 MB): {}",
        base / 1024,
        rss / 1024,
        peak / 1024,
        if peak < 300 * 1024 { "met" } else { "NOT met" }
    );
}
