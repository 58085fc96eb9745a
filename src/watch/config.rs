//! `[watch]`: heuristics, alerts, member reports and scorecards. Defaults live in the `Default`
//! impls here and nowhere else; `config/qunguard.toml` shows each with its meaning.
//!
//! Every window is in event time (the messages' own `ts`), so replaying a file through
//! `qunguard scan` gives the same verdicts as the live pipeline.

use crate::model::Action;
use serde::Deserialize;

/// `[watch]`
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WatchConfig {
    /// Run heuristics, alerts, reports and scorecards at all. `false` leaves verdicts to the
    /// rule packs alone.
    pub enabled: bool,
    /// Per-sender token buckets.
    pub rate: RateConfig,
    /// Duplicate and near-duplicate flooding.
    pub flood: FloodConfig,
    /// Link, contact and @-mention flooding.
    pub links: LinksConfig,
    /// Per-member pressure score and removal advice.
    pub pressure: PressureConfig,
    /// Adaptive-baseline spike alerts.
    pub spike: SpikeConfig,
    /// Quarrel alerts.
    pub quarrel: QuarrelConfig,
    /// Alert merging, rate caps and incident mode.
    pub alerts: AlertsConfig,
    /// Member reports.
    pub reports: ReportsConfig,
    /// Group scorecards.
    pub scorecard: ScorecardConfig,
    /// Bounds on the in-memory state.
    pub limits: LimitsConfig,
    /// Event times more than this many seconds ahead of the wall clock are held at that limit
    /// for windows and periods (a member's phone with a wrong clock must not end every window
    /// and close the day's scorecards). Verdicts keep the message's own `ts`. 0 disables.
    pub max_future_secs: u64,
}

impl Default for WatchConfig {
    fn default() -> Self {
        WatchConfig {
            enabled: true,
            rate: RateConfig::default(),
            flood: FloodConfig::default(),
            links: LinksConfig::default(),
            pressure: PressureConfig::default(),
            spike: SpikeConfig::default(),
            quarrel: QuarrelConfig::default(),
            alerts: AlertsConfig::default(),
            reports: ReportsConfig::default(),
            scorecard: ScorecardConfig::default(),
            limits: LimitsConfig::default(),
            max_future_secs: 60,
        }
    }
}

/// `[watch.rate]`: token buckets per sender in one group and per sender across groups.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateConfig {
    /// Sustained messages a minute one sender may post in one group.
    pub group_per_minute: f64,
    /// Messages one sender may post in one group in a burst.
    pub group_burst: f64,
    /// Sustained messages a minute one sender may post across all groups.
    pub global_per_minute: f64,
    /// Burst across all groups.
    pub global_burst: f64,
    /// Action for a message over either limit.
    pub action: Action,
}

impl Default for RateConfig {
    fn default() -> Self {
        RateConfig {
            group_per_minute: 20.0,
            group_burst: 10.0,
            global_per_minute: 60.0,
            global_burst: 30.0,
            action: Action::Review,
        }
    }
}

/// `[watch.flood]`: the same or nearly the same text posted again and again.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FloodConfig {
    /// Window in which repeats count, in seconds.
    pub window_secs: u64,
    /// One sender posting the same text into this many distinct groups is flooding.
    pub sender_min_groups: usize,
    /// This many distinct senders posting the same text into one group is flooding, when the
    /// text carries a payload (a rule hit, a link, a contact id or @-mentions); members echoing
    /// a harmless text (接龙, greetings) never are.
    pub group_min_senders: usize,
    /// A text seen in this many distinct groups raises a city-wide `flood` alert.
    pub alert_min_groups: usize,
    /// Texts shorter than this (in normalised characters) are never flood fingerprints: short
    /// replies everyone sends are not floods.
    pub min_chars: usize,
    /// Replies that never count, whatever their length (normalised before comparing).
    pub common_replies: Vec<String>,
    /// Near-duplicate: SimHash fingerprints differing in at most this many of 64 bits (0..=3).
    pub max_distance: u32,
    /// Action for a flooding message.
    pub action: Action,
}

impl Default for FloodConfig {
    fn default() -> Self {
        FloodConfig {
            window_secs: 600,
            sender_min_groups: 5,
            group_min_senders: 5,
            alert_min_groups: 10,
            min_chars: 6,
            common_replies: [
                "收到",
                "好的",
                "谢谢",
                "收到谢谢",
                "好的谢谢",
                "谢谢群主",
                "收到收到",
                "明白",
                "了解",
                "已阅",
                "ok",
                "好",
                "嗯",
                "赞",
                "支持",
                "同意",
                "1",
                "+1",
                "哈哈哈",
                "早上好",
                "晚安",
                "辛苦了",
                "大家好",
                "新年快乐",
                "生日快乐",
            ]
            .map(String::from)
            .to_vec(),
            max_distance: 3,
            action: Action::Review,
        }
    }
}

/// `[watch.links]`: links, contact ids and @-mentions posted in bulk.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LinksConfig {
    /// Time constant of the decaying counts, in seconds (a count halves in about 0.7× this).
    pub window_secs: u64,
    /// More links and contact ids than this by one sender in one group, decayed over the
    /// window, is `link_flood`. A message counts the larger of its URLs and its regex hits
    /// (WeChat/QQ ids, phone numbers, URLs in the shipped packs).
    pub max_links: f64,
    /// More @-mentions than this by one sender in one group, decayed, is `mention_flood`.
    pub max_mentions: f64,
    /// More @-mentions than this in one message is `mention_flood` at once.
    pub max_mentions_per_message: u32,
    /// Action for link and mention flooding.
    pub action: Action,
}

impl Default for LinksConfig {
    fn default() -> Self {
        LinksConfig {
            window_secs: 300,
            max_links: 4.0,
            max_mentions: 15.0,
            max_mentions_per_message: 8,
            action: Action::Review,
        }
    }
}

/// `[watch.pressure]`: a per-member, per-group score that rises with violations and decays.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PressureConfig {
    /// The score halves every this many seconds of event time.
    pub half_life_secs: u64,
    /// Points for a message whose verdict is `review`.
    pub review_points: f64,
    /// Points for a message whose verdict is `block`.
    pub block_points: f64,
    /// At or over this score a violating message's verdict recommends `remove_member`.
    pub remove_threshold: f64,
    /// Violating message ids kept as evidence, per member and group.
    pub evidence: usize,
}

impl Default for PressureConfig {
    fn default() -> Self {
        PressureConfig {
            half_life_secs: 6 * 3600,
            review_points: 1.0,
            block_points: 3.0,
            remove_threshold: 10.0,
            evidence: 5,
        }
    }
}

/// `[watch.spike]`: message and violation rates against an adaptive (EWMA) baseline.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SpikeConfig {
    /// Bucket length in seconds; rates are counts per bucket.
    pub bucket_secs: u64,
    /// EWMA weight of the newest bucket in the baseline mean and variance (0..1).
    pub alpha: f64,
    /// Buckets a key must have been seen for before it can spike (warm-up).
    pub min_buckets: u32,
    /// A bucket spikes when its count exceeds mean + `z` × standard deviation (the deviation is
    /// at least √mean and 1, so steady busy groups do not alert on ordinary noise)...
    pub z: f64,
    /// ...and is at least this many messages (per group message rate)...
    pub min_messages: u64,
    /// ...or this many violations (violation rates, per group and city-wide).
    pub min_violations: u64,
}

impl Default for SpikeConfig {
    fn default() -> Self {
        SpikeConfig {
            bucket_secs: 60,
            alpha: 0.1,
            min_buckets: 10,
            z: 5.0,
            min_messages: 30,
            min_violations: 8,
        }
    }
}

/// `[watch.quarrel]`: a burst of abuse among several members of one group.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QuarrelConfig {
    /// Categories that count as abuse.
    pub categories: Vec<String>,
    /// Window in seconds.
    pub window_secs: u64,
    /// Abusive messages in the window...
    pub min_messages: usize,
    /// ...from at least this many distinct members.
    pub min_members: usize,
}

impl Default for QuarrelConfig {
    fn default() -> Self {
        QuarrelConfig {
            categories: vec!["insult".into()],
            window_secs: 120,
            min_messages: 5,
            min_members: 3,
        }
    }
}

/// `[watch.alerts]`: one open alert per (kind, key), rate-capped, with a cooldown.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertsConfig {
    /// An open alert is re-sent (status `update`) at most this often, and only when it grew.
    pub update_secs: u64,
    /// After an alert resolves, the same (kind, key) cannot open again for this long.
    pub cooldown_secs: u64,
    /// Quarrel and flood alerts resolve after this long without new activity.
    pub quiet_secs: u64,
    /// Sample message ids carried by an alert.
    pub samples: usize,
    /// While a group's own quarrel is on (see README, "Replay guarantee"), its per-group
    /// rate limit is multiplied by this (0.5 halves it)...
    pub incident_rate_factor: f64,
    /// ...and, then or while a flood alert reaches the group, hits of the quarrel categories
    /// and flooding get this action.
    pub incident_action: Action,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        AlertsConfig {
            update_secs: 60,
            cooldown_secs: 600,
            quiet_secs: 300,
            samples: 5,
            incident_rate_factor: 0.5,
            incident_action: Action::Block,
        }
    }
}

/// `[watch.reports]`: member reports joined with verdicts.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReportsConfig {
    /// Points credited to a reporter for a verified report (one on a message qunguard flagged).
    pub reward_points: u32,
    /// A new reporter's reputation (0..=1): the weight of their reports.
    pub initial_reputation: f64,
    /// Reputation gained by a verified report (capped at 1).
    pub verified_gain: f64,
    /// Reputation is multiplied by this for a report on a message qunguard allowed.
    pub unverified_factor: f64,
    /// Reputation never falls below this.
    pub min_reputation: f64,
    /// A reported message that qunguard allowed goes to focused review once the reputations
    /// of its distinct reporters add up to this.
    pub review_weight: f64,
}

impl Default for ReportsConfig {
    fn default() -> Self {
        ReportsConfig {
            reward_points: 1,
            initial_reputation: 1.0,
            verified_gain: 0.1,
            unverified_factor: 0.7,
            min_reputation: 0.05,
            review_weight: 0.5,
        }
    }
}

/// `[watch.scorecard]`: a per-group assessment every interval of event time.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScorecardConfig {
    /// Period length in seconds (86400 = daily).
    pub interval_secs: u64,
    /// Periods start at midnight of this UTC offset, in seconds (28800 = UTC+8, Beijing).
    pub utc_offset_secs: i64,
    /// At most this many violations per 1,000 messages is assessed `good`...
    pub good_max_per_1000: f64,
    /// ...over this is `rectify` (ordered to rectify); in between `fair`.
    pub rectify_min_per_1000: f64,
}

impl Default for ScorecardConfig {
    fn default() -> Self {
        ScorecardConfig {
            interval_secs: 86_400,
            utc_offset_secs: 8 * 3600,
            good_max_per_1000: 5.0,
            rectify_min_per_1000: 50.0,
        }
    }
}

/// `[watch.limits]`: caps on every map; the least recently used entry is evicted past them
/// (counted in `qunguard_watch_evictions_total`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Members tracked (sender × group: rate, links). Members who violated also keep their
    /// pressure and evidence, in a second map of this cap.
    pub members: usize,
    /// Senders tracked across groups (global rate).
    pub senders: usize,
    /// Groups tracked (message-rate baseline, quarrels, incident mode, scorecard counts). The
    /// groups' own quarrels (abuse window, incident mode) are a second map of this cap.
    pub groups: usize,
    /// Per-group violation-rate baselines (group × category).
    pub group_categories: usize,
    /// Text fingerprints (flood clusters).
    pub fingerprints: usize,
    /// Flagged verdicts remembered for verifying reports and applying reviewers' decisions
    /// (only by a watch that gets either: see [`crate::watch::Joins`]).
    pub flagged_messages: usize,
    /// Allowed messages remembered (with up to 512 bytes of text) for report-driven review
    /// (only by a watch that gets reports).
    pub allowed_messages: usize,
    /// Reporters' reputations, and reported messages awaiting review weight.
    pub reporters: usize,
    /// Open alerts at once; past it new alerts are suppressed (counted).
    pub open_alerts: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            members: 1_000_000,
            senders: 1_000_000,
            groups: 200_000,
            group_categories: 200_000,
            fingerprints: 100_000,
            flagged_messages: 500_000,
            allowed_messages: 50_000,
            reporters: 200_000,
            open_alerts: 10_000,
        }
    }
}

impl WatchConfig {
    /// The categories `quarrel.categories` names that none of `engine`'s packs has: abuse
    /// that no rule can find, so no quarrel alert or incident mode from them.
    pub fn missing_quarrel_categories(&self, engine: &crate::Engine) -> Vec<&str> {
        let known = engine.categories();
        self.quarrel
            .categories
            .iter()
            .map(String::as_str)
            .filter(|c| !known.contains(c))
            .collect()
    }

    /// Checks values; the error names the key (below `watch.`) and what is wrong.
    pub fn validate(&self) -> Result<(), (String, String, String)> {
        let e = |k: &str, p: String, f: &str| Err((format!("watch.{k}"), p, f.to_string()));
        let positive = [
            ("rate.group_per_minute", self.rate.group_per_minute),
            ("rate.global_per_minute", self.rate.global_per_minute),
            ("links.max_links", self.links.max_links),
            ("links.max_mentions", self.links.max_mentions),
            ("pressure.remove_threshold", self.pressure.remove_threshold),
            ("spike.z", self.spike.z),
            (
                "reports.initial_reputation",
                self.reports.initial_reputation,
            ),
            ("reports.review_weight", self.reports.review_weight),
        ];
        for (k, v) in positive {
            if !(v.is_finite() && v > 0.0) {
                return e(k, format!("is {v}"), "use a positive number");
            }
        }
        // A token bucket must hold one message: under 1, every message is over the rate.
        for (k, v) in [
            ("rate.group_burst", self.rate.group_burst),
            ("rate.global_burst", self.rate.global_burst),
        ] {
            if !(v.is_finite() && v >= 1.0) {
                return e(
                    k,
                    format!("is {v}"),
                    "use at least 1 (messages sent at once)",
                );
            }
        }
        for (k, v) in [
            ("pressure.review_points", self.pressure.review_points),
            ("pressure.block_points", self.pressure.block_points),
            (
                "scorecard.good_max_per_1000",
                self.scorecard.good_max_per_1000,
            ),
            (
                "scorecard.rectify_min_per_1000",
                self.scorecard.rectify_min_per_1000,
            ),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return e(k, format!("is {v}"), "use 0 or a positive number");
            }
        }
        let secs = [
            ("flood.window_secs", self.flood.window_secs),
            ("links.window_secs", self.links.window_secs),
            ("pressure.half_life_secs", self.pressure.half_life_secs),
            ("spike.bucket_secs", self.spike.bucket_secs),
            ("quarrel.window_secs", self.quarrel.window_secs),
            ("alerts.quiet_secs", self.alerts.quiet_secs),
            ("scorecard.interval_secs", self.scorecard.interval_secs),
        ];
        for (k, v) in secs {
            if v == 0 {
                return e(k, "is 0".into(), "use a positive number of seconds");
            }
        }
        let counts = [
            ("flood.sender_min_groups", self.flood.sender_min_groups),
            ("flood.group_min_senders", self.flood.group_min_senders),
            ("flood.alert_min_groups", self.flood.alert_min_groups),
            ("quarrel.min_messages", self.quarrel.min_messages),
            ("quarrel.min_members", self.quarrel.min_members),
            ("limits.members", self.limits.members),
            ("limits.senders", self.limits.senders),
            ("limits.groups", self.limits.groups),
            ("limits.group_categories", self.limits.group_categories),
            ("limits.fingerprints", self.limits.fingerprints),
            ("limits.flagged_messages", self.limits.flagged_messages),
            ("limits.allowed_messages", self.limits.allowed_messages),
            ("limits.reporters", self.limits.reporters),
            ("limits.open_alerts", self.limits.open_alerts),
            ("pressure.evidence", self.pressure.evidence),
        ];
        for (k, v) in counts {
            if v == 0 {
                return e(k, "is 0".into(), "use a positive number");
            }
        }
        // A flood cluster keeps its last 64 posts: no more groups or senders can be counted.
        for (k, v) in [
            ("flood.sender_min_groups", self.flood.sender_min_groups),
            ("flood.group_min_senders", self.flood.group_min_senders),
            ("flood.alert_min_groups", self.flood.alert_min_groups),
        ] {
            if v > 64 {
                return e(
                    k,
                    format!("is {v}"),
                    "use 1..=64 (a near-duplicate text's last 64 posts are what is counted)",
                );
            }
        }
        // Baselines count their buckets in 16 bits.
        if self.spike.min_buckets > u32::from(u16::MAX) {
            return e(
                "spike.min_buckets",
                format!("is {}", self.spike.min_buckets),
                "use 0..=65535",
            );
        }
        if self.scorecard.utc_offset_secs.abs() > 14 * 3600 {
            return e(
                "scorecard.utc_offset_secs",
                format!("is {}", self.scorecard.utc_offset_secs),
                "use an offset from UTC within ±14 h, in seconds (28800 = UTC+8)",
            );
        }
        if self.flood.max_distance > 3 {
            return e(
                "flood.max_distance",
                format!("is {}", self.flood.max_distance),
                "use 0..=3 (the fingerprint index finds near-duplicates up to 3 bits apart)",
            );
        }
        let unit = [
            ("spike.alpha", self.spike.alpha),
            (
                "alerts.incident_rate_factor",
                self.alerts.incident_rate_factor,
            ),
            ("reports.unverified_factor", self.reports.unverified_factor),
        ];
        for (k, v) in unit {
            if !(v > 0.0 && v <= 1.0) {
                return e(k, format!("is {v}"), "use a number in (0, 1]");
            }
        }
        // Incident mode scales the member's bucket: it too must hold one message.
        let incident_burst = self.rate.group_burst * self.alerts.incident_rate_factor;
        if incident_burst < 1.0 {
            return e(
                "alerts.incident_rate_factor",
                format!(
                    "times rate.group_burst is {incident_burst}: in incident mode every message would be over the rate"
                ),
                "raise it or rate.group_burst so that their product is at least 1",
            );
        }
        if !(0.0..=1.0).contains(&self.reports.min_reputation)
            || self.reports.min_reputation > self.reports.initial_reputation
        {
            return e(
                "reports.min_reputation",
                format!("is {}", self.reports.min_reputation),
                "use a number in [0, reports.initial_reputation]",
            );
        }
        if self.scorecard.good_max_per_1000 > self.scorecard.rectify_min_per_1000 {
            return e(
                "scorecard.good_max_per_1000",
                "is larger than scorecard.rectify_min_per_1000".into(),
                "lower it or raise rectify_min_per_1000",
            );
        }
        // An action of "allow" would make the finding change nothing while looking enabled.
        for (key, action) in [
            ("rate.action", self.rate.action),
            ("flood.action", self.flood.action),
            ("links.action", self.links.action),
            ("alerts.incident_action", self.alerts.incident_action),
        ] {
            if action == Action::Allow {
                return e(
                    key,
                    "is \"allow\"".into(),
                    "use \"review\" or \"block\" (set enabled = false to turn heuristics off)",
                );
            }
        }
        Ok(())
    }
}
