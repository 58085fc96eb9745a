//! The pre-pass: the watch's state that never depends on alerts: one group's (its members'
//! rates, links and mentions, its own quarrel incident), one sender's (their rate across
//! groups) and the text fingerprints' (flood clusters, city-wide).
//!
//! It walks the messages in stream order, like the ordered pass (`Watch::one`), but on a
//! thread of its own, a chunk of the batch ahead: the ordered pass reads its findings instead
//! of touching two maps of a million entries itself. A member and a sender lookup per message
//! were most of the ordered pass's time, and the ordered pass is what bounds the watch on many
//! cores; so was a flood cluster's bookkeeping. Data flows one way (the pre-pass never reads
//! what the ordered pass writes), so the results are those of one thread doing both, whatever
//! the chunks or threads.

use super::config::FloodConfig;
use super::flood::{Floods, Seen};
use super::incident::QuarrelMode;
use super::state::{Bounded, decay, pair};
use super::{MIN, Signature, WatchConfig};
use crate::model::{MatchKind, Message, Verdict};
use std::collections::VecDeque;

/// Categories a verdict is judged by in the watch (a verdict has a handful at most).
pub(super) const MAX_CATEGORIES: usize = 16;

/// One member (sender in a group): rate bucket and decaying link/mention counts.
struct Rate {
    last: i64,
    tokens: f32,
    links: f32,
    mentions: f32,
}

/// One sender across groups.
struct Sender {
    last: i64,
    tokens: f32,
}

/// A recent abusive message in a group (quarrel detection).
struct Abuse {
    ts: i64,
    sender: u64,
    id: Box<str>,
}

/// A group's own quarrel: its incident mode and its recent abuse.
#[derive(Default)]
struct Quarrel {
    mode: QuarrelMode,
    abuse: VecDeque<Abuse>,
}

/// What the pre-pass found for one message.
pub(super) struct Finding {
    /// The member's latest `ts`, this message's included.
    pub last: i64,
    /// The group's own quarrel incident is on with the message (its own abuse counted).
    pub quarrel: bool,
    /// Over the member's rate in this group.
    pub over_rate: bool,
    /// Over the sender's rate across groups.
    pub sender_over: bool,
    /// The member's decayed link/contact-id count, this message's included.
    pub links: f32,
    /// The same for @-mentions.
    pub mentions: f32,
    /// For an abusive message: the group's abuse window with it.
    pub abuse: Option<Box<AbuseWindow>>,
    /// For a message with a fingerprint: what its post found of the text's cluster.
    pub flood: Option<Seen>,
}

/// A group's recent abuse, as an abusive message left it.
pub(super) struct AbuseWindow {
    /// Abusive messages in the window.
    pub messages: usize,
    /// Distinct members who sent them.
    pub members: usize,
    /// The quarrel thresholds are met.
    pub quarrel: bool,
    /// The latest message ids (up to `alerts.samples`), when `quarrel`.
    pub samples: Vec<String>,
}

/// The pre-pass's state, in two parts that run one after the other on each chunk (on two
/// threads when the batch is big: see `Watch::observe`). Each map has the whole of its cap
/// (`limits.members`, `limits.groups`, `limits.senders`, `limits.fingerprints`).
pub(super) struct PrePass {
    pub rates: Rates,
    pub floods: FloodPass,
}

/// Members' and senders' rates, links and mentions, and the groups' own quarrels.
pub(super) struct Rates {
    /// Its own copy: it runs while the ordered pass holds the watch.
    cfg: WatchConfig,
    members: Bounded<Rate>,
    quarrels: Bounded<Quarrel>,
    senders: Bounded<Sender>,
}

/// The text fingerprints' clusters (city-wide).
pub(super) struct FloodPass {
    cfg: FloodConfig,
    samples: usize,
    floods: Floods,
}

/// What every stage reads of a batch: its messages, their signatures and event times (each
/// stage gets the verdicts of the chunk it works on separately: see `Watch::observe`).
#[derive(Clone, Copy)]
pub(super) struct Batch<'a> {
    pub msgs: &'a [Message],
    pub sigs: &'a [Signature],
    pub ts: &'a [i64],
}

/// How far ahead the pre-pass fetches index words, then entries (see `Watch::prefetch`).
const INDEX_AHEAD: usize = 16;
const ENTRY_AHEAD: usize = 8;

impl PrePass {
    pub fn new(cfg: &WatchConfig) -> PrePass {
        let l = &cfg.limits;
        PrePass {
            rates: Rates {
                cfg: cfg.clone(),
                members: Bounded::new(l.members),
                quarrels: Bounded::new(l.groups),
                senders: Bounded::new(l.senders),
            },
            floods: FloodPass {
                cfg: cfg.flood.clone(),
                samples: cfg.alerts.samples,
                floods: Floods::new(l.fingerprints),
            },
        }
    }

    /// Members held and evicted so far.
    pub fn members(&self) -> (usize, u64) {
        (self.rates.members.len(), self.rates.members.evicted)
    }

    /// Senders held and evicted so far.
    pub fn senders(&self) -> (usize, u64) {
        (self.rates.senders.len(), self.rates.senders.evicted)
    }

    /// Fingerprint clusters held and evicted so far.
    pub fn fingerprints(&self) -> (usize, u64) {
        let f = &self.floods.floods;
        (f.len(), f.evicted())
    }

    /// The latest `ts` of a member (`pair(sender, group)`), if known.
    pub fn member_last(&mut self, member: u64) -> Option<i64> {
        self.rates.members.peek_mut(member).map(|m| m.last)
    }
}

impl Rates {
    /// Runs over messages `from..from + verdicts.len()` of a batch (`verdicts`: theirs), in
    /// stream order. The findings' `flood` is left for
    /// [`FloodPass::run`].
    pub fn run(&mut self, b: Batch<'_>, from: usize, verdicts: &[Verdict]) -> Vec<Finding> {
        let Batch { msgs, sigs, ts } = b;
        let mut out = Vec::with_capacity(verdicts.len());
        for (j, v) in verdicts.iter().enumerate() {
            let i = from + j;
            // The whole batch's keys are known: fetch ahead across chunk ends too.
            if let Some(a) = sigs.get(i + INDEX_AHEAD) {
                self.members.prefetch(pair(a.sender, a.group));
                self.quarrels.prefetch(a.group);
                self.senders.prefetch(a.sender);
            }
            if let Some(a) = sigs.get(i + ENTRY_AHEAD) {
                self.members.prefetch_entry(pair(a.sender, a.group));
                self.quarrels.prefetch_entry(a.group);
                self.senders.prefetch_entry(a.sender);
            }
            out.push(self.one(&msgs[i], &sigs[i], v, ts[i]));
        }
        out
    }

    fn one(&mut self, m: &Message, s: &Signature, v: &Verdict, ts: i64) -> Finding {
        let cfg = &self.cfg;
        // Incident mode from the group's own quarrel tightens its members' rates.
        let (quiet_ms, cooldown_ms) = cfg.alerts.incident_times();
        let q = self.quarrels.entry(s.group, Quarrel::default);
        let abusive = v
            .categories
            .iter()
            .take(MAX_CATEGORIES)
            .any(|c| cfg.quarrel.categories.iter().any(|q| **q == **c));
        let abuse = abusive.then(|| Box::new(abuse(q, cfg, &m.id, s.sender, ts)));
        // After the message's own abuse is counted: the message that makes it a quarrel is
        // already in incident mode.
        let quarrel = q.mode.on_at(ts, quiet_ms, cooldown_ms);
        let f = if quarrel {
            cfg.alerts.incident_rate_factor
        } else {
            1.0
        };

        let r = &cfg.rate;
        let mem = self.members.entry(pair(s.sender, s.group), || Rate {
            last: ts,
            tokens: r.group_burst as f32,
            links: 0.0,
            mentions: 0.0,
        });
        let dt = ts - mem.last;
        let (cap, per_ms) = (r.group_burst * f, r.group_per_minute * f / MIN);
        mem.tokens = (f64::from(mem.tokens) + dt.max(0) as f64 * per_ms).min(cap) as f32;
        let over_rate = if mem.tokens >= 1.0 {
            mem.tokens -= 1.0;
            false
        } else {
            true
        };
        // Links, contact ids and mentions: decaying counts per member. Shadow hits are tried on
        // live traffic, never acted on: they count for nothing here.
        let contacts = v
            .hits
            .iter()
            .filter(|h| h.kind == MatchKind::Regex && !h.shadow)
            .count();
        // A URL is usually also a regex hit (ads.url): count the larger, not both.
        let links = (s.links as usize).max(contacts) as f32;
        if mem.links + mem.mentions + links + f32::from(s.mentions) > 0.0 {
            let d = decay(
                dt,
                cfg.links.window_secs as f64 * 1000.0 * std::f64::consts::LN_2,
            ) as f32;
            // Tiny leftovers are zero, so quiet members skip the exp() next time.
            let tidy = |x: f32| if x < 0.01 { 0.0 } else { x };
            mem.links = tidy(mem.links * d + links);
            mem.mentions = tidy(mem.mentions * d + f32::from(s.mentions));
        }
        mem.last = mem.last.max(ts);
        let (last, links, mentions) = (mem.last, mem.links, mem.mentions);

        let sender = self.senders.entry(s.sender, || Sender {
            last: ts,
            tokens: r.global_burst as f32,
        });
        let sdt = (ts - sender.last).max(0) as f64;
        sender.tokens =
            (f64::from(sender.tokens) + sdt * r.global_per_minute / MIN).min(r.global_burst) as f32;
        sender.last = sender.last.max(ts);
        let sender_over = if sender.tokens >= 1.0 {
            sender.tokens -= 1.0;
            false
        } else {
            true
        };
        Finding {
            last,
            quarrel,
            over_rate,
            sender_over,
            links,
            mentions,
            abuse,
            flood: None,
        }
    }
}

impl FloodPass {
    /// Posts the fingerprints of messages `from..from + verdicts.len()` of a batch, in stream
    /// order, into their findings. A payload (a rule hit, a link, a contact id, mentions) is
    /// what tells a raid from members echoing a harmless text.
    pub fn run(&mut self, b: Batch<'_>, from: usize, verdicts: &[Verdict], found: &mut [Finding]) {
        let Batch { msgs, sigs, ts } = b;
        let fc = &self.cfg;
        for ((j, v), f) in verdicts.iter().enumerate().zip(found) {
            let (i, s) = (from + j, &sigs[from + j]);
            let Some(sim) = s.sim else { continue };
            let payload = v.hits.iter().any(|h| !h.shadow) || s.links > 0 || s.mentions > 0;
            f.flood = Some(self.floods.post(
                sim,
                fc.max_distance,
                fc.window_secs as i64 * 1000,
                ts[i],
                s.group,
                &msgs[i].group_id,
                s.sender,
                &msgs[i].id,
                self.samples,
                fc.alert_min_groups,
                payload,
            ));
        }
    }
}

/// Quarrels: abuse from several members of one group in a short window. Adds the message to
/// the group's window and moves its incident mode; the alert is the ordered pass's.
fn abuse(q: &mut Quarrel, cfg: &WatchConfig, id: &str, sender: u64, ts: i64) -> AbuseWindow {
    let qc = &cfg.quarrel;
    let window = qc.window_secs as i64 * 1000;
    while q.abuse.front().is_some_and(|a| a.ts + window < ts) || q.abuse.len() >= 32 {
        q.abuse.pop_front();
    }
    q.abuse.push_back(Abuse {
        ts,
        sender,
        id: id.into(),
    });
    let mut members: Vec<u64> = q.abuse.iter().map(|a| a.sender).collect();
    members.sort_unstable();
    members.dedup();
    let n = q.abuse.len();
    let quarrel = n >= qc.min_messages && members.len() >= qc.min_members;
    let (quiet_ms, cooldown_ms) = cfg.alerts.incident_times();
    q.mode.abuse(ts, quarrel, quiet_ms, cooldown_ms);
    let samples = if quarrel {
        q.abuse
            .iter()
            .rev()
            .take(cfg.alerts.samples)
            .rev()
            .map(|a| a.id.to_string())
            .collect()
    } else {
        Vec::new()
    };
    AbuseWindow {
        messages: n,
        members: members.len(),
        quarrel,
        samples,
    }
}
