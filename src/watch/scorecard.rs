//! Per-group scorecards: what happened in a group over a period of event time, and an
//! assessment the city can act on (praise `good` groups, order `rectify` ones to rectify).

use super::config::ScorecardConfig;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Counters of one group in the open period.
#[derive(Debug, Clone, Default)]
pub struct Card {
    pub messages: u32,
    pub violations: u32,
    pub reviews: u32,
    pub blocks: u32,
    pub removals: u32,
    pub alerts: u32,
    /// Member reports on the group's messages.
    pub reports: u32,
    /// Of those, reports on messages qunguard had flagged.
    pub verified_reports: u32,
    /// Verdicts hitting each category.
    pub categories: CategoryCounts,
}

impl Card {
    pub fn is_empty(&self) -> bool {
        self.messages == 0 && self.reports == 0 && self.alerts == 0
    }

    pub fn count_category(&mut self, c: u16) {
        self.categories.count(c);
    }
}

/// Categories whose index fits the inline counters (the shipped packs have 14).
const INLINE_CATEGORIES: usize = 16;

/// Counts by category index. The first [`INLINE_CATEGORIES`] live in the group's own entry,
/// which the watch prefetches: a list on the heap cost a cache miss per flagged message.
#[derive(Debug, Clone, Default)]
pub struct CategoryCounts {
    inline: [u32; INLINE_CATEGORIES],
    /// (category index, count) for indices past the inline ones.
    more: Vec<(u16, u32)>,
}

impl CategoryCounts {
    pub fn count(&mut self, c: u16) {
        match self.inline.get_mut(usize::from(c)) {
            Some(n) => *n += 1,
            None => match self.more.iter_mut().find(|(k, _)| *k == c) {
                Some((_, n)) => *n += 1,
                None => self.more.push((c, 1)),
            },
        }
    }

    /// (category index, count) for every category counted at least once.
    pub fn iter(&self) -> impl Iterator<Item = (u16, u32)> + '_ {
        let inline = (0u16..).zip(self.inline).filter(|&(_, n)| n > 0);
        inline.chain(self.more.iter().copied())
    }
}

/// A scorecard record (scorecards topic, keyed by group).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scorecard {
    /// The group assessed.
    pub group_id: String,
    /// The period's start, ms since the epoch (inclusive).
    pub period_start_ts: i64,
    /// The period's end, ms since the epoch (exclusive).
    pub period_end_ts: i64,
    /// Messages screened.
    pub messages: u32,
    /// Messages whose verdict was review or block.
    pub violations: u32,
    /// Violations per 1,000 messages (what `assessment` is judged on).
    pub violations_per_1000: f64,
    /// Per category: verdicts hitting it per 1,000 messages.
    pub category_per_1000: BTreeMap<String, f64>,
    /// Verdicts with action review.
    pub reviews: u32,
    /// Verdicts with action block.
    pub blocks: u32,
    /// Times a member crossed the removal threshold.
    pub removals_recommended: u32,
    /// Alerts opened for this group (quarrels, spikes, floods it was part of).
    pub alerts: u32,
    /// Member reports on the group's messages.
    pub reports: u32,
    /// Of those, reports on messages qunguard had flagged.
    pub verified_reports: u32,
    /// `good` (≤ good_max_per_1000), `rectify` (> rectify_min_per_1000), else `fair`.
    pub assessment: String,
}

/// The period index of `ts`.
pub fn period_of(ts: i64, cfg: &ScorecardConfig) -> i64 {
    (ts + cfg.utc_offset_secs * 1000).div_euclid(cfg.interval_secs as i64 * 1000)
}

/// Builds the record for `card` over period `period`.
pub fn scorecard(
    group_id: &str,
    period: i64,
    card: &Card,
    categories: &[Arc<str>],
    cfg: &ScorecardConfig,
) -> Scorecard {
    let len = cfg.interval_secs as i64 * 1000;
    let start = period * len - cfg.utc_offset_secs * 1000;
    let per_1000 = |n: u32| {
        if card.messages == 0 {
            0.0
        } else {
            (f64::from(n) * 1000.0 / f64::from(card.messages) * 100.0).round() / 100.0
        }
    };
    let v = per_1000(card.violations);
    let assessment = if v <= cfg.good_max_per_1000 {
        "good"
    } else if v > cfg.rectify_min_per_1000 {
        "rectify"
    } else {
        "fair"
    };
    Scorecard {
        group_id: group_id.to_string(),
        period_start_ts: start,
        period_end_ts: start + len,
        messages: card.messages,
        violations: card.violations,
        violations_per_1000: v,
        category_per_1000: card
            .categories
            .iter()
            .map(|(c, n)| (categories[c as usize].to_string(), per_1000(n)))
            .collect(),
        reviews: card.reviews,
        blocks: card.blocks,
        removals_recommended: card.removals,
        alerts: card.alerts,
        reports: card.reports,
        verified_reports: card.verified_reports,
        assessment: assessment.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assessment_follows_violations_per_1000() {
        let cfg = ScorecardConfig::default();
        let cats: Vec<Arc<str>> = vec!["ads".into()];
        for (messages, violations, want) in [
            (1000, 0, "good"),
            (1000, 5, "good"),
            (1000, 6, "fair"),
            (1000, 50, "fair"),
            (1000, 51, "rectify"),
            (0, 0, "good"),
        ] {
            let mut card = Card {
                messages,
                violations,
                ..Default::default()
            };
            for _ in 0..violations {
                card.count_category(0);
            }
            let s = scorecard("g", 20_000, &card, &cats, &cfg);
            assert_eq!(s.assessment, want, "{violations}/{messages}");
            assert_eq!(s.period_end_ts - s.period_start_ts, 86_400_000);
        }
    }

    #[test]
    fn category_counts_keep_every_index_inline_or_not() {
        let mut counts = CategoryCounts::default();
        // (category index, times counted)
        let table = [(0u16, 3u32), (5, 1), (15, 2), (16, 4), (300, 1)];
        for (c, n) in table {
            for _ in 0..n {
                counts.count(c);
            }
        }
        assert_eq!(counts.iter().collect::<Vec<_>>(), table);
    }

    #[test]
    fn periods_start_at_local_midnight() {
        let cfg = ScorecardConfig::default();
        // 2025-11-25 16:00:00 UTC is 2025-11-26 00:00 in Beijing.
        let midnight_bj = 1_764_086_400_000;
        assert_eq!(
            period_of(midnight_bj - 1, &cfg) + 1,
            period_of(midnight_bj, &cfg)
        );
        let s = scorecard(
            "g",
            period_of(midnight_bj, &cfg),
            &Card::default(),
            &[],
            &cfg,
        );
        assert_eq!(s.period_start_ts, midnight_bj);
    }
}
