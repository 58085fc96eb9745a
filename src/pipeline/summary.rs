//! The periodic one-line summary `run` logs (`[log] summary_secs`): rates, lag and verdict mix
//! since the last line, so a log alone shows the pipeline is moving between assignment and
//! shutdown. Read from the metrics, the one place the numbers are counted.

use crate::metrics::{Input, Metrics};
use crossbeam_channel::{Sender, bounded};
use prometheus::core::Collector;
use std::time::{Duration, Instant};

/// The totals a line is the difference of.
#[derive(Default, Clone, Copy)]
struct Totals {
    /// Chat messages consumed; reports and decisions are counted apart, so the rate is
    /// messages a second whatever else the topics carry.
    consumed: u64,
    reports: u64,
    decisions: u64,
    verdicts: [u64; 3],
    dead_letters: u64,
    alerts: u64,
}

impl Totals {
    fn read(m: &Metrics) -> Totals {
        Totals {
            consumed: m.consumed(Input::Message).get(),
            reports: m.consumed(Input::Report).get(),
            decisions: m.consumed(Input::Decision).get(),
            verdicts: ["allow", "review", "block"]
                .map(|a| m.verdicts.with_label_values(&[a]).get()),
            dead_letters: sum(&m.dead_letters),
            alerts: sum(&m.alerts),
        }
    }
}

/// Sum over every series of a counter vector (its label values are whatever was created).
fn sum(v: &prometheus::IntCounterVec) -> u64 {
    v.collect()
        .iter()
        .flat_map(|f| f.get_metric())
        .map(|m| m.get_counter().get_value() as u64)
        .sum()
}

/// Consumer lag summed over the partitions held, and the largest.
fn lag(m: &Metrics) -> (i64, i64) {
    let lags: Vec<i64> = m
        .consumer_lag
        .collect()
        .iter()
        .flat_map(|f| f.get_metric())
        .map(|m| m.get_gauge().get_value() as i64)
        .collect();
    (lags.iter().sum(), lags.iter().copied().max().unwrap_or(0))
}

/// What happened between two readings of the totals: one summary line.
struct Line {
    secs: f64,
    consumed: u64,
    reports: u64,
    decisions: u64,
    /// Verdicts by action: allow, review, block.
    verdicts: [u64; 3],
    dead_letters: u64,
    alerts: u64,
    lag: i64,
    max_lag: i64,
    partitions: i64,
    in_flight: i64,
}

impl Line {
    fn of(m: &Metrics, last: Totals, now: Totals, secs: f64) -> Line {
        let (lag, max_lag) = lag(m);
        Line {
            secs,
            consumed: now.consumed - last.consumed,
            reports: now.reports - last.reports,
            decisions: now.decisions - last.decisions,
            verdicts: [0, 1, 2].map(|i| now.verdicts[i] - last.verdicts[i]),
            dead_letters: now.dead_letters - last.dead_letters,
            alerts: now.alerts - last.alerts,
            lag,
            max_lag,
            partitions: m.assigned_partitions.get(),
            in_flight: m.batches_in_flight.get(),
        }
    }

    fn rate(&self) -> f64 {
        self.consumed as f64 / self.secs.max(0.001)
    }

    fn pct(&self, action: usize) -> f64 {
        let all: u64 = self.verdicts.iter().sum();
        if all == 0 {
            0.0
        } else {
            100.0 * self.verdicts[action] as f64 / all as f64
        }
    }

    /// Logs the line, with its numbers also as fields (for `--log-format json`).
    fn log(&self) {
        tracing::info!(
            msg_per_s = self.rate().round(),
            consumed = self.consumed,
            reports = self.reports,
            decisions = self.decisions,
            allow = self.verdicts[0],
            review = self.verdicts[1],
            block = self.verdicts[2],
            dead_letters = self.dead_letters,
            alerts_opened = self.alerts,
            lag = self.lag,
            max_partition_lag = self.max_lag,
            partitions = self.partitions,
            batches_in_flight = self.in_flight,
            "{self}"
        );
    }
}

impl std::fmt::Display for Line {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "summary: {:.0} msg/s ({} in {:.0} s) | verdicts allow {:.1}% review {:.1}% block {:.1}% | dead-letters {} | alerts opened {} | lag {} (max partition {}) | partitions {} | batches in flight {}",
            self.rate(),
            self.consumed,
            self.secs,
            self.pct(0),
            self.pct(1),
            self.pct(2),
            self.dead_letters,
            self.alerts,
            self.lag,
            self.max_lag,
            self.partitions,
            self.in_flight,
        )?;
        // Only where those topics carry something: most lines would show two zeros.
        if self.reports > 0 || self.decisions > 0 {
            write!(
                f,
                " | reports {} | decisions {}",
                self.reports, self.decisions
            )?;
        }
        Ok(())
    }
}

/// The logging thread; stops (without a last line) when dropped.
pub(super) struct Summary {
    stop: Option<Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Summary {
    /// Logs a line every `secs` seconds; 0 logs none.
    pub(super) fn start(metrics: Metrics, secs: u64) -> std::io::Result<Summary> {
        if secs == 0 {
            return Ok(Summary {
                stop: None,
                thread: None,
            });
        }
        let (stop, stopped) = bounded::<()>(0);
        let every = Duration::from_secs(secs);
        let thread = std::thread::Builder::new()
            .name("summary".into())
            .spawn(move || {
                let (mut last, mut at) = (Totals::read(&metrics), Instant::now());
                // Wakes every interval until the sender is dropped.
                while let Err(crossbeam_channel::RecvTimeoutError::Timeout) =
                    stopped.recv_timeout(every)
                {
                    let now = Totals::read(&metrics);
                    Line::of(&metrics, last, now, at.elapsed().as_secs_f64()).log();
                    (last, at) = (now, Instant::now());
                }
            })?;
        Ok(Summary {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for Summary {
    fn drop(&mut self) {
        self.stop.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_summary_line_gives_rate_verdict_mix_and_lag_since_the_last() {
        let m = Metrics::new(&["ads"], &["flood"], &["rate_limit"]);
        let before = Totals::read(&m);
        m.consumed(Input::Message).inc_by(1000);
        // Reports and decisions are not messages: the rate leaves them out.
        m.consumed(Input::Report).inc_by(7);
        m.consumed(Input::Decision).inc_by(3);
        m.verdicts.with_label_values(&["allow"]).inc_by(900);
        m.verdicts.with_label_values(&["block"]).inc_by(100);
        m.dead_letters
            .with_label_values(&["invalid_json"])
            .inc_by(2);
        m.consumer_lag
            .with_label_values(&["chat.messages", "0"])
            .set(30);
        m.consumer_lag
            .with_label_values(&["chat.messages", "1"])
            .set(12);
        m.assigned_partitions.set(2);
        let l = Line::of(&m, before, Totals::read(&m), 10.0).to_string();
        for want in [
            "100 msg/s (1000 in 10 s)",
            "allow 90.0% review 0.0% block 10.0%",
            "dead-letters 2",
            "lag 42 (max partition 30)",
            "partitions 2",
            "reports 7 | decisions 3",
        ] {
            assert!(l.contains(want), "{l:?} should contain {want:?}");
        }
        // The next line counts only what happened since.
        let again = Line::of(&m, Totals::read(&m), Totals::read(&m), 10.0).to_string();
        assert!(again.contains("0 msg/s (0 in 10 s)"), "{again}");
        assert!(!again.contains("reports"), "{again}");
    }
}
