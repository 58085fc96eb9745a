//! Adaptive baselines: counts per event-time bucket against an EWMA of mean and variance.

/// One key's rate: the open bucket's count and the baseline of the closed ones.
#[derive(Debug, Clone, Default)]
pub struct Baseline {
    /// Index of the open bucket (`ts / bucket_ms`).
    bucket: i64,
    /// Count in the open bucket.
    pub count: u32,
    mean: f32,
    var: f32,
    /// Closed buckets folded into the baseline (saturating).
    seen: u16,
    started: bool,
}

/// A bucket that closed, with the level it is judged against.
pub struct Closed {
    pub count: u32,
    pub mean: f64,
    pub threshold: f64,
}

impl Closed {
    /// Back at least halfway from the threshold to the baseline: a spike alert resolves.
    pub fn back_to_normal(&self) -> bool {
        f64::from(self.count) <= (self.mean + self.threshold) / 2.0
    }
}

/// The open bucket over the threshold of a warm baseline.
pub struct Over {
    pub count: u32,
    pub mean: f64,
    pub threshold: f64,
}

/// What counting one event did.
pub struct Step {
    /// The bucket that closed before it, if any.
    pub closed: Option<Closed>,
    /// Set when the open bucket is now over the threshold.
    pub over: Option<Over>,
}

/// Baseline parameters.
#[derive(Debug, Clone, Copy)]
pub struct Params {
    pub bucket_ms: i64,
    pub alpha: f64,
    pub min_buckets: u32,
    pub z: f64,
    pub min_count: u64,
}

impl Baseline {
    /// mean + z·sd, with sd at least √mean (Poisson noise) and 1; at least `min_count`.
    pub fn threshold(&self, p: &Params) -> f64 {
        let mean = f64::from(self.mean);
        let sd = f64::from(self.var).sqrt().max(mean.sqrt()).max(1.0);
        (mean + p.z * sd).max(p.min_count as f64)
    }

    pub fn mean(&self) -> f64 {
        f64::from(self.mean)
    }

    /// Whether enough buckets have been seen for the baseline to mean anything.
    pub fn warm(&self, p: &Params) -> bool {
        u32::from(self.seen) >= p.min_buckets
    }

    /// A baseline of nothing for as long as `other` has history: a group's first violation of
    /// a category starts the category's baseline at zero over all the buckets the group was
    /// seen in (else a group that had never broken a rule could not spike for `min_buckets`).
    pub fn zeros_like(other: &Baseline) -> Baseline {
        Baseline {
            bucket: other.bucket,
            count: 0,
            mean: 0.0,
            var: 0.0,
            seen: other.seen,
            started: other.started,
        }
    }

    /// Counts one event at `ts` (see [`Baseline::roll`] for `alerting`).
    pub fn count_one(&mut self, ts: i64, p: &Params, alerting: bool) -> Step {
        let closed = self.roll(ts, p, alerting);
        self.count += 1;
        let threshold = self.threshold(p);
        // "At min_messages or more", as the config says: the threshold is a level to reach.
        let over = (self.warm(p) && f64::from(self.count) >= threshold).then(|| Over {
            count: self.count,
            mean: self.mean(),
            threshold,
        });
        Step { closed, over }
    }

    /// Moves to the bucket of `ts`, folding the closed bucket (and empty ones between) into the
    /// baseline. While `alerting`, the baseline adapts 4× slower, so a spike is not absorbed
    /// into what counts as normal before it is over.
    pub fn roll(&mut self, ts: i64, p: &Params, alerting: bool) -> Option<Closed> {
        let b = ts.div_euclid(p.bucket_ms);
        if !self.started {
            self.started = true;
            self.bucket = b;
            return None;
        }
        if b <= self.bucket {
            return None; // same bucket, or a late message: counted in the open bucket
        }
        let closed = Closed {
            count: self.count,
            mean: self.mean(),
            threshold: self.threshold(p),
        };
        let a = if alerting { p.alpha / 4.0 } else { p.alpha };
        self.fold(f64::from(self.count), a);
        // Empty buckets in between are zeros; past a few hundred the baseline has converged.
        for _ in 0..(b - self.bucket - 1).min(256) {
            self.fold(0.0, a);
        }
        self.bucket = b;
        self.count = 0;
        Some(closed)
    }

    fn fold(&mut self, x: f64, a: f64) {
        let (mean, var) = (f64::from(self.mean), f64::from(self.var));
        if self.seen == 0 {
            self.mean = x as f32;
            self.var = 0.0;
        } else {
            let d = x - mean;
            self.mean = (mean + a * d) as f32;
            self.var = ((1.0 - a) * (var + a * d * d)) as f32;
        }
        self.seen = self.seen.saturating_add(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: Params = Params {
        bucket_ms: 60_000,
        alpha: 0.1,
        min_buckets: 10,
        z: 5.0,
        min_count: 30,
    };

    /// Feeds `per_bucket[i]` messages into bucket i; returns the buckets where the count
    /// crossed the threshold.
    fn spikes(per_bucket: &[u32]) -> Vec<usize> {
        let mut b = Baseline::default();
        let mut out = Vec::new();
        for (i, &n) in per_bucket.iter().enumerate() {
            for k in 0..n {
                let ts = i as i64 * 60_000 + i64::from(k);
                if b.count_one(ts, &P, false).over.is_some() && !out.contains(&i) {
                    out.push(i);
                }
            }
        }
        out
    }

    #[test]
    fn spikes_fire_over_an_adaptive_baseline_only() {
        let quiet_then_burst: Vec<u32> = [vec![5; 20], vec![120], vec![5; 3]].concat();
        let steady_busy: Vec<u32> = (0..40).map(|i| 400 + (i % 5) * 10).collect();
        let warming_up: Vec<u32> = [vec![5; 3], vec![200]].concat();
        let small_bump: Vec<u32> = [vec![5; 20], vec![25]].concat();
        let cases: [(&str, &[u32], &[usize]); 4] = [
            ("quiet group bursts", &quiet_then_burst, &[20]),
            ("steady busy group", &steady_busy, &[]),
            ("no baseline yet", &warming_up, &[]),
            ("under the minimum count", &small_bump, &[]),
        ];
        for (name, input, want) in cases {
            assert_eq!(spikes(input), want, "{name}");
        }
    }

    #[test]
    fn silent_buckets_pull_the_mean_down() {
        let mut b = Baseline::default();
        for i in 0..20 {
            b.roll(i * 60_000, &P, false);
            b.count = 100;
        }
        let before = b.mean();
        b.roll(60 * 60_000, &P, false);
        assert!(b.mean() < before / 10.0, "{} vs {before}", b.mean());
    }
}
