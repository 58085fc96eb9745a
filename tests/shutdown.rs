//! Stopping while the broker hangs (alive but not answering: a stopped JVM, a network
//! partition): SIGTERM must end `qunguard run` in bounded time, and a restart must still give
//! every message a verdict. A broker of this test binary's own (tests/support starts one per
//! test process), so stopping it disturbs no other test.

mod support;

use qunguard::internal::synth::{Synth, SynthConfig};
use std::collections::HashSet;
use std::process::Command;
use std::time::{Duration, Instant};
use support::*;

const WAIT: Duration = Duration::from_secs(120);

/// Resumes the broker when dropped, so a failing assertion does not leave it stopped.
struct Stopped(String);

impl Stopped {
    fn new(pid: &str) -> Stopped {
        let ok = Command::new("kill").args(["-STOP", pid]).status().unwrap();
        assert!(ok.success(), "kill -STOP {pid}");
        Stopped(pid.to_string())
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-CONT", &self.0]).status();
    }
}

#[test]
fn sigterm_with_a_hung_broker_stops_in_bounded_time_and_loses_nothing() {
    let Some(brokers) = broker() else { return };
    // The broker tests/support started for this process.
    let dir = std::env::temp_dir().join(format!("qunguard-kafka-{}", std::process::id()));
    let broker_pid = std::fs::read_to_string(dir.join("broker.pid")).expect("broker.pid");
    let broker_pid = broker_pid.trim();

    let t = Topics::create(brokers, 2);
    // Enough that batches are in flight when the broker stops.
    let n = 200_000;
    let msgs: Vec<qunguard::Message> = Synth::new(SynthConfig::default())
        .take(n)
        .enumerate()
        .map(|(i, mut m)| {
            m.id = format!("h{i}").into();
            m
        })
        .collect();
    produce_msgs(brokers, &t.input, &msgs);
    let verdicts = Reader::start(brokers, &t.verdicts);
    let work = tempfile::tempdir().unwrap();
    let extra = "[pipeline]\nbatch_max_messages = 500\ndrain_timeout_ms = 2000\n";
    let cfg = t.config(work.path(), brokers, &unique("g"), extra);
    // librdkafka's own group timeouts (the harness shortens them for the other tests): with
    // them, closing the consumer against a hung broker waited for minutes.
    let text = std::fs::read_to_string(&cfg).unwrap();
    let text = text
        .replace("\"session.timeout.ms\" = \"6000\"\n", "")
        .replace("\"heartbeat.interval.ms\" = \"500\"\n", "");
    std::fs::write(&cfg, text).unwrap();
    let mut first = Qunguard::start("h1", &cfg);
    // Mid-stream: the 200k messages take seconds to screen, so outputs are in flight when the
    // broker stops (waiting for verdicts to be read back was sometimes too late, and a fixed
    // wait after the assignment sometimes too early: nothing polled yet).
    let deadline = Instant::now() + WAIT;
    while first.metric("qunguard_messages_consumed_total{input=\"message\"}") < 5_000.0 {
        assert!(Instant::now() < deadline, "nothing consumed");
        std::thread::sleep(Duration::from_millis(20));
    }

    let hung = Stopped::new(broker_pid);
    std::thread::sleep(Duration::from_secs(1));
    let t0 = Instant::now();
    // Drain (2 s), the bounded commit and close (15 s), the producer flush (10 s): well
    // under a minute. Unbounded, librdkafka's close waited for the broker for minutes.
    let status = first.terminate(Duration::from_secs(60));
    let took = t0.elapsed();
    eprintln!("stopped {took:?} after SIGTERM with the broker hung: {status}");
    assert!(took < Duration::from_secs(45), "{took:?}");
    assert_eq!(status.code(), Some(1), "not a clean stop");
    let log = first.log.lock().unwrap().clone();
    // Which step gave up depends on librdkafka's timing (the close may return after its
    // request timeout, or not): the last word says why the stop was not clean.
    assert!(
        log.last()
            .is_some_and(|l| l.starts_with("qunguard: error: shutdown:")),
        "the last word says why: {:?}",
        &log[log.len().saturating_sub(5)..]
    );
    let purged = log
        .iter()
        .filter(|l| l.contains("dropped as the producer closed"))
        .count();
    assert!(
        purged <= 1,
        "purged outputs logged one by one ({purged} lines)"
    );
    drop(hung);

    // Nothing lost: a restart re-reads what was not committed (once the broker has timed
    // out the first instance's session: it could not leave the group).
    let _second = Qunguard::start("h2", &cfg);
    verdicts.wait_until("every id after the restart", WAIT, |r| {
        id_counts(r).len() == n
    });
    let want: HashSet<String> = msgs.iter().map(|m| m.id.to_string()).collect();
    let got: HashSet<String> = id_counts(&verdicts.snapshot()).into_keys().collect();
    assert_eq!(got, want);
}
