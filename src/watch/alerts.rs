//! Alert lifecycle: one open alert per (kind, key), updates rate-capped, a resolution record
//! when it ends, and a cooldown before the same (kind, key) may open again.

use super::config::AlertsConfig;
use super::state::{PreHashed, key_of};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// What an alert is about. Declared in the alphabetical order of the names: sorting by kind
/// orders the records an event-time sweep emits, and must order them as the names do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    /// A city-wide category's violation rate over its baseline (`city/CATEGORY`).
    CityViolationSpike,
    /// One text (near-duplicates) posted into many groups.
    Flood,
    /// A group's message rate over its baseline.
    MessageSpike,
    /// Abuse among several members of one group in a short window.
    Quarrel,
    /// A group's violation rate in one category over its baseline (`GROUP/CATEGORY`).
    ViolationSpike,
}

impl AlertKind {
    /// Every kind.
    pub const ALL: [AlertKind; 5] = [
        AlertKind::CityViolationSpike,
        AlertKind::Flood,
        AlertKind::MessageSpike,
        AlertKind::Quarrel,
        AlertKind::ViolationSpike,
    ];
}

/// The names of [`AlertKind::ALL`], the `kind` label of `qunguard_alerts_total`.
pub const ALERT_KINDS: &[&str] = &{
    let mut names = [""; AlertKind::ALL.len()];
    let mut i = 0;
    while i < names.len() {
        names[i] = AlertKind::ALL[i].name();
        i += 1;
    }
    names
};

/// Where an alert is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertStatus {
    /// It just opened.
    Open,
    /// It grew (rate-capped by `alerts.update_secs`).
    Update,
    /// Its condition ended; the key is in cooldown.
    Resolved,
}

/// How far over its threshold an alert got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Below 1.5× the threshold.
    Warning,
    /// At least 1.5× the threshold.
    High,
    /// At least 3× the threshold.
    Critical,
}

macro_rules! names {
    ($t:ty: $($v:ident => $s:literal),+) => {
        impl $t {
            /// The name in records.
            pub const fn name(self) -> &'static str {
                match self { $(<$t>::$v => $s),+ }
            }
        }
        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.name())
            }
        }
        impl PartialEq<&str> for $t {
            fn eq(&self, other: &&str) -> bool {
                self.name() == *other
            }
        }
    };
}
names!(AlertKind: CityViolationSpike => "city_violation_spike", Flood => "flood",
    MessageSpike => "message_spike", Quarrel => "quarrel", ViolationSpike => "violation_spike");
names!(AlertStatus: Open => "open", Update => "update", Resolved => "resolved");
names!(Severity: Warning => "warning", High => "high", Critical => "critical");

/// An alert record on the alerts topic (see README "Alerts").
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Alert {
    /// Stable for the alert's whole life: `KIND:KEY:STARTED_TS`.
    pub alert_id: String,
    /// What it is about.
    pub kind: AlertKind,
    /// `open`, `update` (it grew) or `resolved`.
    pub status: AlertStatus,
    /// What the alert is about: a group id, `GROUP/CATEGORY`, `city/CATEGORY`, or a flood's
    /// fingerprint.
    pub key: String,
    /// The group, for group alerts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group_id: Option<String>,
    /// The category, for violation spikes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    /// The window the observation covers, in seconds.
    pub window_secs: u64,
    /// What was seen in the window: messages, violations, abusive messages, or groups reached.
    pub observed: f64,
    /// What is normal: the EWMA mean for spikes; for quarrels and floods, the threshold.
    pub baseline: f64,
    /// The level `observed` had to reach.
    pub threshold: f64,
    /// `warning`, `high` or `critical` (observed ≥ 1.5× / 3× the threshold).
    pub severity: Severity,
    /// The largest `observed` so far.
    pub peak: f64,
    /// Distinct members involved (quarrels) or groups reached (floods), when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub members: Option<usize>,
    /// Ids of recent messages that made it.
    pub samples: Vec<String>,
    /// Groups involved (floods), up to a few dozen.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    /// Event time it opened (ms).
    pub started_ts: i64,
    /// Event time of this record (ms).
    pub ts: i64,
    /// Update records sent so far.
    pub updates: u32,
}

/// What a detector saw; the manager decides whether it opens, updates or is suppressed.
pub struct Observation {
    pub kind: AlertKind,
    pub key: String,
    pub group_id: Option<String>,
    pub category: Option<String>,
    pub window_secs: u64,
    pub observed: f64,
    pub baseline: f64,
    pub threshold: f64,
    pub members: Option<usize>,
    pub samples: Vec<String>,
    pub groups: Vec<String>,
}

/// What the manager did with an observation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Opened,
    Updated,
    /// Already open; nothing sent now (rate cap or no growth).
    Merged,
    /// In cooldown, or too many open alerts.
    Suppressed,
}

struct Open {
    alert: Alert,
    last_activity: i64,
    last_emit: i64,
    emitted_observed: f64,
    /// The highest severity any observation reached, each against the threshold of its time
    /// (a spike's threshold keeps moving while it is open): what its records say.
    worst: Severity,
    /// The severity of the last record sent: a higher one is news that does not wait for
    /// `update_secs` (a spike opens as it crosses the threshold, so always as a warning).
    emitted_severity: Severity,
}

/// The open alerts of one instance.
pub struct Alerts {
    cfg: AlertsConfig,
    cap: usize,
    /// Keyed by kind and a hash of the key (lookups happen for every message; no allocation).
    open: HashMap<(AlertKind, u64), Open, PreHashed>,
    cooldown: HashMap<(AlertKind, u64), i64, PreHashed>,
}

impl Open {
    /// Whether a grown observation at `ts` (reaching severity `worst`) is worth a record:
    /// `update_secs` after the last one, or at once when the severity rose.
    fn due(&self, ts: i64, cfg: &AlertsConfig, worst: Severity) -> bool {
        ts - self.last_emit >= cfg.update_secs as i64 * 1000 || worst > self.emitted_severity
    }
}

/// Groups an alert's records list at most (README: "groups reached (floods, up to 64)").
const LISTED_GROUPS: usize = 64;

/// Adds `g` to an alert's group list: each group once, up to [`LISTED_GROUPS`].
fn list_group(list: &mut Vec<String>, g: impl AsRef<str> + Into<String>) {
    if list.len() < LISTED_GROUPS && !list.iter().any(|x| x == g.as_ref()) {
        list.push(g.into());
    }
}

fn severity(observed: f64, threshold: f64) -> Severity {
    let r = observed / threshold.max(1e-9);
    if r >= 3.0 {
        Severity::Critical
    } else if r >= 1.5 {
        Severity::High
    } else {
        Severity::Warning
    }
}

impl Alerts {
    pub fn new(cfg: AlertsConfig, cap: usize) -> Alerts {
        Alerts {
            cfg,
            cap,
            open: HashMap::with_hasher(PreHashed),
            cooldown: HashMap::with_hasher(PreHashed),
        }
    }

    pub fn open_count(&self) -> usize {
        self.open.len()
    }

    /// Whether an alert is open; `key` is the alert key hashed by [`key_of`].
    pub fn is_open(&self, kind: AlertKind, key: u64) -> bool {
        !self.open.is_empty() && self.open.contains_key(&(kind, key))
    }

    /// Marks activity on an open alert without a new observation (keeps it from resolving).
    /// `key` is the alert key hashed by [`key_of`].
    pub fn touch(&mut self, kind: AlertKind, key: u64, ts: i64) {
        if let Some(o) = self.open.get_mut(&(kind, key)) {
            o.last_activity = o.last_activity.max(ts);
        }
    }

    /// Cheap pre-check before building an [`Observation`] (which clones samples and group
    /// lists): `Some(outcome)` settles it without one — an open alert that is not due for an
    /// update just notes the activity and level, a key in cooldown is suppressed. `None`: call
    /// [`Alerts::observe`].
    /// `key` is the alert key hashed by [`key_of`]; `sample`, the message observed, is kept
    /// among the alert's samples while there is room (a spike's observations carry one each).
    pub fn settle(
        &mut self,
        kind: AlertKind,
        key: u64,
        ts: i64,
        observed: f64,
        sample: Option<&str>,
    ) -> Option<Outcome> {
        let k = (kind, key);
        if let Some(o) = self.open.get_mut(&k) {
            let worst = o.worst.max(severity(observed, o.alert.threshold));
            if o.due(ts, &self.cfg, worst) && observed > o.emitted_observed {
                return None;
            }
            o.last_activity = o.last_activity.max(ts);
            o.alert.observed = observed;
            o.alert.peak = o.alert.peak.max(observed);
            o.worst = worst;
            let samples = &mut o.alert.samples;
            if let Some(s) = sample
                && samples.len() < self.cfg.samples
                && !samples.iter().any(|x| x == s)
            {
                samples.push(s.to_string());
            }
            return Some(Outcome::Merged);
        }
        if self.cooldown.get(&k).is_some_and(|&until| ts < until) || self.open.len() >= self.cap {
            return Some(Outcome::Suppressed);
        }
        None
    }

    /// Adds groups to an open alert's list, for its next record.
    /// `key` is the alert key hashed by [`key_of`].
    pub fn list_groups<'a>(
        &mut self,
        kind: AlertKind,
        key: u64,
        groups: impl Iterator<Item = &'a String>,
    ) {
        if let Some(o) = self.open.get_mut(&(kind, key)) {
            for g in groups {
                list_group(&mut o.alert.groups, g);
            }
        }
    }

    /// Feeds an observation at event time `ts`; pushes an `open` or `update` record to `out`.
    pub fn observe(&mut self, ts: i64, ob: Observation, out: &mut Vec<Alert>) -> Outcome {
        let samples_cap = self.cfg.samples;
        let k = (ob.kind, key_of(&ob.key));
        if let Some(o) = self.open.get_mut(&k) {
            let a = &mut o.alert;
            o.last_activity = o.last_activity.max(ts);
            a.observed = ob.observed;
            a.baseline = ob.baseline;
            a.threshold = ob.threshold;
            a.peak = a.peak.max(ob.observed);
            o.worst = o.worst.max(severity(ob.observed, ob.threshold));
            a.members = ob.members.or(a.members);
            for s in ob.samples {
                if !a.samples.contains(&s) {
                    if a.samples.len() >= samples_cap {
                        a.samples.remove(0);
                    }
                    a.samples.push(s);
                }
            }
            for g in ob.groups {
                list_group(&mut a.groups, g);
            }
            if o.due(ts, &self.cfg, o.worst) && ob.observed > o.emitted_observed {
                let a = &mut o.alert;
                a.updates += 1;
                a.status = AlertStatus::Update;
                a.severity = o.worst;
                a.ts = ts;
                o.last_emit = ts;
                o.emitted_observed = ob.observed;
                o.emitted_severity = o.worst;
                out.push(a.clone());
                return Outcome::Updated;
            }
            return Outcome::Merged;
        }
        if self.cooldown.get(&k).is_some_and(|&until| ts < until) || self.open.len() >= self.cap {
            return Outcome::Suppressed;
        }
        let mut samples = ob.samples;
        samples.truncate(samples_cap);
        let alert = Alert {
            alert_id: format!("{}:{}:{ts}", ob.kind, ob.key),
            kind: ob.kind,
            status: AlertStatus::Open,
            key: ob.key,
            group_id: ob.group_id,
            category: ob.category,
            window_secs: ob.window_secs,
            observed: ob.observed,
            baseline: ob.baseline,
            threshold: ob.threshold,
            severity: severity(ob.observed, ob.threshold),
            peak: ob.observed,
            members: ob.members,
            samples,
            groups: ob.groups,
            started_ts: ts,
            ts,
            updates: 0,
        };
        out.push(alert.clone());
        let worst = alert.severity;
        self.open.insert(
            k,
            Open {
                alert,
                last_activity: ts,
                last_emit: ts,
                emitted_observed: ob.observed,
                worst,
                emitted_severity: worst,
            },
        );
        Outcome::Opened
    }

    /// Closes an open alert with a `resolved` record; returns it (None if none was open).
    pub fn resolve(
        &mut self,
        kind: AlertKind,
        key: &str,
        ts: i64,
        observed: f64,
        out: &mut Vec<Alert>,
    ) -> Option<Alert> {
        let k = (kind, key_of(key));
        let o = self.open.remove(&k)?;
        let mut a = o.alert;
        a.status = AlertStatus::Resolved;
        a.observed = observed;
        // The peak may have grown since the last record (updates are rate-capped): the closing
        // record says how bad it got.
        a.severity = o.worst;
        a.ts = ts.max(a.started_ts);
        out.push(a.clone());
        self.cooldown
            .insert(k, a.ts + self.cfg.cooldown_secs as i64 * 1000);
        Some(a)
    }

    /// Open alerts of `kinds` with no activity since `before` (quarrels and floods that went
    /// quiet).
    pub fn quiet(&self, kinds: &[AlertKind], before: i64) -> Vec<(AlertKind, String)> {
        let mut v: Vec<_> = self
            .open
            .iter()
            .filter(|(k, o)| kinds.contains(&k.0) && o.last_activity < before)
            .map(|(k, o)| (k.0, o.alert.key.clone()))
            .collect();
        v.sort(); // deterministic output order
        v
    }

    /// Open alerts of `kind`, sorted.
    pub fn open_of(&self, kind: AlertKind) -> Vec<String> {
        let mut v: Vec<String> = self
            .open
            .iter()
            .filter(|(k, _)| k.0 == kind)
            .map(|(_, o)| o.alert.key.clone())
            .collect();
        v.sort();
        v
    }

    /// Forgets cooldowns that have ended (keeps the map bounded by recent alerts).
    pub fn expire_cooldowns(&mut self, now: i64) {
        self.cooldown.retain(|_, until| *until > now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ob(observed: f64) -> Observation {
        Observation {
            kind: AlertKind::Quarrel,
            key: "g1".into(),
            group_id: Some("g1".into()),
            category: None,
            window_secs: 120,
            observed,
            baseline: 5.0,
            threshold: 5.0,
            members: Some(3),
            samples: vec![format!("m{observed}")],
            groups: vec![],
        }
    }

    #[test]
    fn one_open_alert_per_key_updates_rate_capped_then_resolution_and_cooldown() {
        let mut a = Alerts::new(AlertsConfig::default(), 100);
        let mut out = Vec::new();
        let s = 1000;
        // (ts, observed, expected outcome)
        let steps = [
            (0, 5.0, Outcome::Opened),
            (10 * s, 6.0, Outcome::Merged), // grew, but within update_secs
            (61 * s, 5.0, Outcome::Merged), // due, but no growth since the open record
            (62 * s, 9.0, Outcome::Updated), // due and grew (to high)
            (70 * s, 10.0, Outcome::Merged), // rate cap again
            (71 * s, 15.0, Outcome::Updated), // within update_secs, but now critical: at once
            (72 * s, 20.0, Outcome::Merged), // still critical: rate cap
        ];
        for (ts, o, want) in steps {
            assert_eq!(a.observe(ts, ob(o), &mut out), want, "at {ts}");
        }
        let severities: Vec<_> = out.iter().map(|r| r.severity.name()).collect();
        assert_eq!(severities, ["warning", "high", "critical"]);
        assert!(
            a.resolve(AlertKind::Quarrel, "g1", 400 * s, 0.0, &mut out)
                .is_some()
        );
        assert_eq!(out.last().unwrap().status, "resolved");
        assert_eq!(out.last().unwrap().peak, 20.0);
        // 20 against a threshold of 5 came after the last update: the closing record says so.
        assert_eq!(out.last().unwrap().severity, "critical");
        let ids: std::collections::HashSet<_> = out.iter().map(|a| a.alert_id.clone()).collect();
        assert_eq!(ids.len(), 1, "one alert id for the whole life");
        // Cooldown: the same key cannot reopen for 600 s after resolving.
        assert_eq!(a.observe(500 * s, ob(9.0), &mut out), Outcome::Suppressed);
        assert_eq!(a.observe(1001 * s, ob(9.0), &mut out), Outcome::Opened);
    }

    /// A spike's threshold moves while it is open: the closing record keeps the worst severity
    /// any observation reached against the threshold of its time.
    #[test]
    fn the_resolved_record_keeps_the_worst_severity_reached() {
        let mut a = Alerts::new(AlertsConfig::default(), 100);
        let mut out = Vec::new();
        let at = |observed: f64, threshold: f64| Observation {
            threshold,
            ..ob(observed)
        };
        a.observe(0, at(6.0, 5.0), &mut out);
        a.observe(10_000, at(16.0, 5.0), &mut out); // 3.2x then: critical, within update_secs
        a.observe(100_000, at(17.0, 10.0), &mut out); // an update, against a risen threshold
        a.resolve(AlertKind::Quarrel, "g1", 400_000, 0.0, &mut out);
        let severities: Vec<_> = out.iter().map(|r| r.severity).collect();
        assert_eq!(
            severities,
            [
                Severity::Warning,
                Severity::Critical, // at once: the severity rose
                Severity::Critical,
                Severity::Critical
            ],
            "{out:?}"
        );
    }

    /// The cheap path keeps the messages it sees as samples while there is room: a spike's
    /// observations carry one message each, and its open record only the first.
    #[test]
    fn an_open_alert_collects_samples_up_to_the_cap() {
        let mut a = Alerts::new(AlertsConfig::default(), 100);
        let mut out = Vec::new();
        a.observe(0, ob(5.0), &mut out);
        let k = key_of("g1");
        for i in 0..9 {
            let id = format!("s{i}");
            let o = a.settle(AlertKind::Quarrel, k, 1000 + i, 5.0, Some(&id));
            assert_eq!(o, Some(Outcome::Merged));
        }
        a.settle(AlertKind::Quarrel, k, 2000, 5.0, Some("s0"));
        a.resolve(AlertKind::Quarrel, "g1", 400_000, 0.0, &mut out);
        let samples = &out.last().unwrap().samples;
        assert_eq!(samples, &["m5", "s0", "s1", "s2", "s3"]);
    }
}
