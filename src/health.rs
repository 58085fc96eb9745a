//! Readiness: whether an instance is doing its job, for `GET /readyz` and `qunguard_ready`.
//!
//! An instance is ready while it holds input partitions, librdkafka reports a broker it can
//! talk to, and a rule set is loaded. `/healthz` is liveness only (the process answers), so an
//! orchestrator restarts a hung process but only routes traffic or rolls on to the next
//! instance once this one is ready.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::{Duration, Instant};

/// The facts readiness is decided on, set by whoever learns them (the pipeline's consumer
/// context, rule loading). The partition count is read from the metrics' gauge, its one owner.
#[derive(Debug)]
pub struct Readiness {
    rules_loaded: AtomicBool,
    /// Brokers up in the last statistics; -1 before any arrived.
    brokers_up: AtomicI64,
    /// When the last statistics arrived and how old they may get before they say nothing.
    last_stats: Mutex<Option<(Instant, Duration)>>,
}

impl Default for Readiness {
    fn default() -> Self {
        Readiness {
            rules_loaded: AtomicBool::new(false),
            brokers_up: AtomicI64::new(-1),
            last_stats: Mutex::new(None),
        }
    }
}

impl Readiness {
    /// Records whether a rule set is loaded and in use.
    pub fn set_rules_loaded(&self, loaded: bool) {
        self.rules_loaded.store(loaded, Ordering::Relaxed);
    }

    /// Records librdkafka's latest statistics: `up` brokers connected, received `at`; they
    /// stand for `max_age` (a few statistics intervals), after which the broker counts as silent.
    pub fn broker_report(&self, up: i64, at: Instant, max_age: Duration) {
        self.brokers_up.store(up, Ordering::Relaxed);
        *self.last_stats.lock().expect("not poisoned") = Some((at, max_age));
    }

    /// Records that librdkafka lost every broker (its `AllBrokersDown` error), without
    /// waiting for the next statistics.
    pub fn brokers_down(&self) {
        self.brokers_up.store(0, Ordering::Relaxed);
    }

    /// `Ok` when ready at `now` holding `partitions` input partitions; else every reason it
    /// is not, joined by `; `.
    pub fn check(&self, partitions: i64, now: Instant) -> Result<(), String> {
        let mut why = Vec::new();
        if !self.rules_loaded.load(Ordering::Relaxed) {
            why.push("no rule set loaded".to_string());
        }
        match *self.last_stats.lock().expect("not poisoned") {
            None => why.push(
                "no word from the brokers yet (waiting for librdkafka's first statistics)".into(),
            ),
            Some((at, max_age)) if now.saturating_duration_since(at) > max_age => {
                why.push(format!(
                    "no librdkafka statistics for {} s (the poll loop may be stuck)",
                    now.saturating_duration_since(at).as_secs()
                ))
            }
            Some(_) => {
                if self.brokers_up.load(Ordering::Relaxed) <= 0 {
                    why.push("no broker answering (check kafka.brokers and the network)".into());
                }
            }
        }
        if partitions <= 0 {
            why.push(
                "no input partitions assigned (joining the consumer group, or more instances than partitions)"
                    .into(),
            );
        }
        if why.is_empty() {
            Ok(())
        } else {
            Err(why.join("; "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_only_with_rules_a_broker_and_partitions() {
        let t0 = Instant::now();
        let fresh = Duration::from_secs(15);
        // (rules loaded, brokers up in the last statistics and their age in seconds,
        // partitions, the reason wanted)
        type Case = (bool, Option<(i64, u64)>, i64, Option<&'static str>);
        let cases: &[Case] = &[
            (true, Some((1, 0)), 4, None),
            (false, Some((1, 0)), 4, Some("no rule set loaded")),
            (true, None, 4, Some("no word from the brokers yet")),
            (true, Some((0, 0)), 4, Some("no broker answering")),
            (
                true,
                Some((1, 20)),
                4,
                Some("no librdkafka statistics for 20 s"),
            ),
            (true, Some((1, 0)), 0, Some("no input partitions assigned")),
        ];
        for &(rules, stats, partitions, want) in cases {
            let r = Readiness::default();
            r.set_rules_loaded(rules);
            let mut now = t0;
            if let Some((up, age)) = stats {
                r.broker_report(up, t0, fresh);
                now = t0 + Duration::from_secs(age);
            }
            let got = r.check(partitions, now);
            match want {
                None => assert_eq!(got, Ok(()), "{rules} {stats:?} {partitions}"),
                Some(w) => {
                    let e = got.expect_err(w);
                    assert!(e.contains(w), "{e:?} should say {w:?}");
                    assert!(!e.contains("; "), "only one thing is wrong: {e}");
                }
            }
        }
    }

    #[test]
    fn every_reason_is_given_and_losing_all_brokers_is_immediate() {
        let r = Readiness::default();
        let e = r.check(0, Instant::now()).unwrap_err();
        assert_eq!(e.matches("; ").count(), 2, "{e}");
        r.set_rules_loaded(true);
        r.broker_report(2, Instant::now(), Duration::from_secs(15));
        assert_eq!(r.check(3, Instant::now()), Ok(()));
        r.brokers_down();
        assert!(
            r.check(3, Instant::now())
                .unwrap_err()
                .contains("no broker")
        );
    }
}
