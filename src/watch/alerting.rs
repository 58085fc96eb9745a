//! Alert policies: spikes over adaptive baselines, quarrels, floods and the incident mode a
//! flood puts groups in (a quarrel's is the group's own: `incident`), and the event-time sweep
//! that resolves alerts whose condition ended quietly.
//! Each turns what the per-message pass observed into [`Observation`]s; [`Alerts`] decides
//! whether they open, update or are suppressed.

use super::alerts::{Alert, AlertKind, Observation, Outcome};
use super::flood::{AlertView, alert_key};
use super::prepass::AbuseWindow;
use super::spike::{Baseline, Closed, Step};
use super::state::{key_of, pair};
use super::{Signature, Watch};
use crate::model::Message;

impl Watch {
    pub(super) fn spikes(
        &mut self,
        m: &Message,
        s: &Signature,
        ts: i64,
        cats: &[u16],
        alerts: &mut Vec<Alert>,
    ) {
        let pm = self.spike_params(self.cfg.spike.min_messages);
        let alerting = self.alerts.is_open(AlertKind::MessageSpike, s.group);
        let g = self.groups.peek_mut(s.group).expect("entry made above");
        let step = g.rate.count_one(ts, &pm, alerting);
        let key = Spike {
            kind: AlertKind::MessageSpike,
            key: &m.group_id,
            hash: s.group,
            group: Some(s.group),
            category: None,
        };
        self.spike(key, m, ts, alerting, step, alerts);
        let pv = self.spike_params(self.cfg.spike.min_violations);
        // Keys are built in one buffer (the city's once per category): formatting two strings
        // per flagged message and category was a visible share of the watch.
        let mut group_key = String::new();
        for &c in cats {
            let cat = self.categories[c as usize].clone();
            let (city_key, city_hash) = self.city_keys[c as usize].clone();
            group_key.clear();
            group_key.push_str(&m.group_id);
            group_key.push('/');
            group_key.push_str(&cat);
            let group_hash = key_of(&group_key);
            for city in [false, true] {
                let (kind, key, hash) = if city {
                    (AlertKind::CityViolationSpike, &*city_key, city_hash)
                } else {
                    (AlertKind::ViolationSpike, group_key.as_str(), group_hash)
                };
                let alerting = self.alerts.is_open(kind, hash);
                let b = if city {
                    &mut self.city[c as usize]
                } else {
                    let g = self.groups.peek_mut(s.group).expect("entry made above");
                    self.group_cats.entry(pair(s.group, u64::from(c) + 1), || {
                        // The group's first violation of the category: none in all the
                        // buckets it chatted in. Seen before (an evicted baseline): cold.
                        // Past 64 categories nothing is tracked: taken as the first.
                        let bit = 1u64.checked_shl(u32::from(c)).unwrap_or(0);
                        let first = g.cats_seen & bit == 0;
                        g.cats_seen |= bit;
                        match first {
                            true => Baseline::zeros_like(&g.rate),
                            false => Baseline::default(),
                        }
                    })
                };
                let step = b.count_one(ts, &pv, alerting);
                let key = Spike {
                    kind,
                    key,
                    hash,
                    group: (!city).then_some(s.group),
                    category: Some(&cat),
                };
                self.spike(key, m, ts, alerting, step, alerts);
            }
        }
    }

    /// Acts on one spike baseline's step: resolves its alert when the bucket that closed is
    /// back to normal, opens or updates it when the open bucket is over the threshold.
    fn spike(
        &mut self,
        sp: Spike<'_>,
        m: &Message,
        ts: i64,
        alerting: bool,
        step: Step,
        alerts: &mut Vec<Alert>,
    ) {
        if alerting && let Some(c) = step.closed.filter(Closed::back_to_normal) {
            self.alerts
                .resolve(sp.kind, sp.key, ts, f64::from(c.count), alerts);
        }
        let Some(over) = step.over else { return };
        let observed = f64::from(over.count);
        if self
            .settled(sp.kind, sp.hash, ts, observed, Some(&m.id))
            .is_some()
        {
            return;
        }
        let ob = Observation {
            kind: sp.kind,
            key: sp.key.to_string(),
            group_id: sp.group.map(|_| m.group_id.to_string()),
            category: sp.category.map(|c| c.to_string()),
            window_secs: self.cfg.spike.bucket_secs,
            observed,
            baseline: round2(over.mean),
            threshold: round2(over.threshold),
            members: None,
            samples: vec![m.id.to_string()],
            groups: vec![],
        };
        let groups: Vec<u64> = sp.group.into_iter().collect();
        self.observe_alert(ts, ob, &groups, alerts);
    }

    /// Quarrels: abuse from several members of one group in a short window (`w`, the group's
    /// window as this abusive message left it in `prepass`).
    pub(super) fn quarrel(
        &mut self,
        m: &Message,
        s: &Signature,
        ts: i64,
        w: AbuseWindow,
        alerts: &mut Vec<Alert>,
    ) {
        let qc = &self.cfg.quarrel;
        let (window_secs, min_messages) = (qc.window_secs, qc.min_messages);
        if w.quarrel
            && self
                .settled(AlertKind::Quarrel, s.group, ts, w.messages as f64, None)
                .is_none()
        {
            let ob = Observation {
                kind: AlertKind::Quarrel,
                key: m.group_id.to_string(),
                group_id: Some(m.group_id.to_string()),
                category: None,
                window_secs,
                observed: w.messages as f64,
                baseline: min_messages as f64,
                threshold: min_messages as f64,
                members: Some(w.members),
                samples: w.samples,
                groups: vec![],
            };
            // Incident mode follows the group's own quarrel (`QuarrelMode`), not this record.
            self.observe_alert(ts, ob, &[s.group], alerts);
        } else {
            // Abuse keeps an open quarrel from resolving, even below the thresholds.
            self.alerts.touch(AlertKind::Quarrel, s.group, ts);
        }
    }

    /// A post that qualifies for a flood alert (`view`: its cluster as the post left it;
    /// `hash`: the alert key's hash): opens or updates the alert, and puts every group the
    /// flood reached in incident mode until it resolves.
    pub(super) fn flood(
        &mut self,
        hash: u64,
        groups: usize,
        view: AlertView,
        ts: i64,
        alerts: &mut Vec<Alert>,
    ) {
        let fc = FloodLimits {
            window_secs: self.cfg.flood.window_secs,
            alert_min_groups: self.cfg.flood.alert_min_groups,
        };
        let outcome = match self.settled(AlertKind::Flood, hash, ts, groups as f64, None) {
            Some(o) => o,
            None => {
                let ob = Observation {
                    kind: AlertKind::Flood,
                    key: alert_key(view.sim),
                    group_id: None,
                    category: None,
                    window_secs: fc.window_secs,
                    observed: groups as f64,
                    baseline: fc.alert_min_groups as f64,
                    threshold: fc.alert_min_groups as f64,
                    members: None,
                    samples: view.samples.to_vec(),
                    groups: view.groups.iter().map(|(_, id)| id.clone()).collect(),
                };
                self.observe_alert(ts, ob, &[], alerts)
            }
        };
        if outcome == Outcome::Suppressed {
            return;
        }
        // Groups are only ever appended to the cluster's list, so the new ones are its tail.
        let marked = self.flood_groups.entry(hash).or_default();
        if marked.len() >= view.groups.len() {
            return;
        }
        let tail = &view.groups[marked.len()..];
        let new: Vec<u64> = tail.iter().map(|(k, _)| *k).collect();
        // Listed on the alert too: a group reached between two records would otherwise be in
        // incident mode and on its scorecard but in no record of the alert.
        self.alerts
            .list_groups(AlertKind::Flood, hash, tail.iter().map(|(_, id)| id));
        marked.extend(&new);
        for g in new {
            self.incident(g, 1);
            if let Some(gr) = self.groups.peek_mut(g) {
                gr.card.alerts += 1;
            }
        }
    }

    /// [`Alerts::settle`], counting suppressions: `None` means an observation is needed.
    /// `key` is the alert key hashed by [`key_of`] (a group's is its signature's `group`).
    fn settled(
        &mut self,
        kind: AlertKind,
        key: u64,
        ts: i64,
        observed: f64,
        sample: Option<&str>,
    ) -> Option<Outcome> {
        let o = self.alerts.settle(kind, key, ts, observed, sample)?;
        if o == Outcome::Suppressed {
            self.suppressed(kind);
        }
        Some(o)
    }

    fn suppressed(&mut self, kind: AlertKind) {
        self.stats.alerts_suppressed += 1;
        *self.stats.suppressed_by_kind.entry(kind).or_default() += 1;
    }

    fn incident(&mut self, group: u64, delta: i8) {
        if let Some(g) = self.groups.peek_mut(group) {
            g.incidents = g.incidents.saturating_add_signed(delta);
        }
    }

    fn observe_alert(
        &mut self,
        ts: i64,
        ob: Observation,
        groups: &[u64],
        alerts: &mut Vec<Alert>,
    ) -> Outcome {
        let kind = ob.kind;
        let o = self.alerts.observe(ts, ob, alerts);
        match o {
            Outcome::Opened => {
                *self
                    .stats
                    .alerts_opened
                    .entry(kind.to_string())
                    .or_default() += 1;
                for &g in groups {
                    if let Some(gr) = self.groups.peek_mut(g) {
                        gr.card.alerts += 1;
                    }
                }
            }
            Outcome::Suppressed => self.suppressed(kind),
            _ => {}
        }
        o
    }

    /// Resolves alerts whose condition ended without a message to notice it: quarrels and
    /// floods gone quiet, spikes whose bucket closed while their key fell silent.
    pub(super) fn sweep(&mut self, alerts: &mut Vec<Alert>) {
        let now = self.watermark;
        let quiet = now - self.cfg.alerts.quiet_secs as i64 * 1000;
        for (kind, key) in self
            .alerts
            .quiet(&[AlertKind::Quarrel, AlertKind::Flood], quiet)
        {
            self.alerts.resolve(kind, &key, now, 0.0, alerts);
            if kind == AlertKind::Flood {
                for g in self.flood_groups.remove(&key_of(&key)).unwrap_or_default() {
                    self.incident(g, -1);
                }
            }
        }
        for kind in [
            AlertKind::MessageSpike,
            AlertKind::ViolationSpike,
            AlertKind::CityViolationSpike,
        ] {
            let min = if kind == AlertKind::MessageSpike {
                self.cfg.spike.min_messages
            } else {
                self.cfg.spike.min_violations
            };
            let p = self.spike_params(min);
            for key in self.alerts.open_of(kind) {
                let b = match kind {
                    AlertKind::MessageSpike => {
                        self.groups.peek_mut(key_of(&key)).map(|g| &mut g.rate)
                    }
                    _ => {
                        let (scope, cat) = key.rsplit_once('/').expect("KEY/CATEGORY");
                        let Some(c) = self.categories.iter().position(|k| **k == *cat) else {
                            continue;
                        };
                        if kind == AlertKind::CityViolationSpike {
                            self.city.get_mut(c)
                        } else {
                            self.group_cats.peek_mut(pair(key_of(scope), c as u64 + 1))
                        }
                    }
                };
                let Some(b) = b else {
                    // State evicted: nothing left to judge it by.
                    self.alerts.resolve(kind, &key, now, 0.0, alerts);
                    continue;
                };
                // A key that fell silent never closes its bucket by itself: close it here.
                if let Some(cl) = b.roll(now, &p, true).filter(Closed::back_to_normal) {
                    self.alerts
                        .resolve(kind, &key, now, f64::from(cl.count), alerts);
                }
            }
        }
        self.alerts.expire_cooldowns(now);
    }
}

/// Which spike alert a baseline feeds.
struct Spike<'a> {
    kind: AlertKind,
    key: &'a str,
    /// `key_of(key)`.
    hash: u64,
    /// The group, for per-group spikes (its scorecard counts the alert).
    group: Option<u64>,
    category: Option<&'a str>,
}

/// The scalars of [`FloodConfig`] an alert needs.
struct FloodLimits {
    window_secs: u64,
    alert_min_groups: usize,
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}
