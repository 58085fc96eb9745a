//! Incident mode from a group's own quarrel, judged on the group's own event time, and which
//! verdict reasons are group-scoped (the replay guarantee: see README, "Replay guarantee").
//!
//! The quarrel alert record resolves at the instance-wide event-time sweep, whose watermark is
//! the latest `ts` of any group: how far it has moved when a group's message is observed
//! depends on how the partitions interleaved. Incident mode, which changes verdicts, must not:
//! so the group keeps its own copy of the quarrel's life (started, last abuse, cooldown), timed
//! by the latest `ts` of its own messages only. It starts, stays on and ends as the quarrel
//! alert would if the group were alone on the instance (without the cap on open alerts, an
//! instance-wide limit).

use crate::model::Reason;

/// Reason code: abuse in a group whose own quarrel is on (group-scoped).
pub const INCIDENT: &str = "incident";
/// Reason code: abuse in a group a flood across groups reached (cross-group).
pub const FLOOD_INCIDENT: &str = "flood_incident";
/// The end of the `rate_limit` detail for the per-sender limit across groups (cross-group);
/// the per-member limit's detail ends with "in this group".
pub const ACROSS_GROUPS: &str = "across groups";

/// Whether a verdict reason depends only on its group's own stream (the messages of that group,
/// in order), so a replay in any interleaving of partitions gives it again. Cross-group reasons
/// (the sender's rate across groups, `duplicate_flood`, `flood_incident`) depend on the other
/// groups' messages too.
pub fn group_scoped(r: &Reason) -> bool {
    match r.reason.as_str() {
        "rate_limit" => !r.detail.ends_with(ACROSS_GROUPS),
        "link_flood" | "mention_flood" | INCIDENT => true,
        _ => false,
    }
}

impl super::config::AlertsConfig {
    /// `quiet_secs` and `cooldown_secs` in milliseconds, for [`QuarrelMode`].
    pub(super) fn incident_times(&self) -> (i64, i64) {
        (
            self.quiet_secs as i64 * 1000,
            self.cooldown_secs as i64 * 1000,
        )
    }
}

/// A group's own quarrel incident.
pub(super) struct QuarrelMode {
    /// Latest `ts` of the group's messages: the group's own event time.
    now: i64,
    on: bool,
    /// Latest abuse while on.
    last: i64,
    /// No new incident before this (`alerts.cooldown_secs` after the last one ended).
    cooldown_until: i64,
}

impl Default for QuarrelMode {
    fn default() -> QuarrelMode {
        QuarrelMode {
            now: i64::MIN,
            on: false,
            last: i64::MIN,
            cooldown_until: i64::MIN,
        }
    }
}

impl QuarrelMode {
    /// Moves the group's event time to `ts` and says whether the incident is on: it ends once
    /// the group's time is more than `quiet_ms` past its last abuse (as the alert's sweep
    /// resolves it), and no new one starts for `cooldown_ms` after that.
    pub(super) fn on_at(&mut self, ts: i64, quiet_ms: i64, cooldown_ms: i64) -> bool {
        self.now = self.now.max(ts);
        if self.on && self.now - self.last > quiet_ms {
            self.on = false;
            self.cooldown_until = self.last.saturating_add(quiet_ms + cooldown_ms);
        }
        self.on
    }

    /// An abusive message at `ts`; `quarrel`: the group's abuse window meets the quarrel
    /// thresholds. Abuse keeps an incident on; a quarrel starts one outside the cooldown.
    pub(super) fn abuse(&mut self, ts: i64, quarrel: bool, quiet_ms: i64, cooldown_ms: i64) {
        if self.on_at(ts, quiet_ms, cooldown_ms) {
            self.last = self.last.max(ts);
        } else if quarrel && ts >= self.cooldown_until {
            self.on = true;
            self.last = ts;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_quarrel_incident_lasts_until_quiet_then_cools_down_on_the_groups_own_time() {
        let (quiet, cool) = (300_000, 600_000);
        let mut q = QuarrelMode::default();
        assert!(!q.on_at(0, quiet, cool));
        q.abuse(0, false, quiet, cool);
        assert!(
            !q.on_at(0, quiet, cool),
            "abuse below the thresholds starts nothing"
        );
        q.abuse(1000, true, quiet, cool);
        assert!(
            q.on_at(1000 + quiet, quiet, cool),
            "quiet_secs exactly: still on"
        );
        q.abuse(1000 + quiet, false, quiet, cool);
        assert!(q.on_at(1000 + 2 * quiet, quiet, cool), "abuse kept it on");
        assert!(!q.on_at(1001 + 2 * quiet, quiet, cool), "quiet: ended");
        // Ended at 1000 + 2·quiet: a new quarrel cannot start within cooldown_secs of that.
        q.abuse(999 + 2 * quiet + cool, true, quiet, cool);
        assert!(!q.on_at(999 + 2 * quiet + cool, quiet, cool));
        q.abuse(1000 + 2 * quiet + cool, true, quiet, cool);
        assert!(q.on_at(1000 + 2 * quiet + cool, quiet, cool));
    }

    #[test]
    fn reasons_are_group_scoped_unless_they_depend_on_other_groups() {
        let r = |code: &str, detail: &str| Reason {
            reason: code.into(),
            action: crate::model::Action::Review,
            detail: detail.into(),
        };
        let table = [
            (r("rate_limit", "… from this member in this group"), true),
            (r("rate_limit", "… from this sender across groups"), false),
            (r("link_flood", ""), true),
            (r("mention_flood", ""), true),
            (r(INCIDENT, ""), true),
            (r(FLOOD_INCIDENT, ""), false),
            (r("duplicate_flood", ""), false),
        ];
        for (reason, scoped) in table {
            assert_eq!(group_scoped(&reason), scoped, "{reason:?}");
        }
    }
}
