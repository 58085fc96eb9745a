//! The watch: per-message heuristics that feed the verdict (rate limits, duplicate/near-duplicate
//! flooding, link and mention flooding, member pressure), alerts (spikes over adaptive
//! baselines, quarrels, floods, with incident mode), member reports and group scorecards.
//!
//! Layout: `fingerprint` (per-message signatures, computed in parallel while screening),
//! `prepass` (what never reads alerts: members' and senders' rates, links and mentions, each
//! group's own quarrel, the flood clusters), this file (the ordered per-message pass: reasons,
//! incident mode, pressure, scorecard counts), `alerting` (spike, quarrel and flood alert
//! policies, the event-time sweep), `alerts` (alert lifecycle), `flood`, `spike`, `reports`,
//! `scorecard`, `state` (bounded maps).
//!
//! It runs in stream order, on event time (`ts`), so the same input gives the same verdicts
//! and records whether it comes from Kafka or from a file (`qunguard scan`). Per-message work
//! that needs no state (fingerprints, link counts) is done beforehand in parallel by
//! [`Fingerprinter::sign`], inside the engine's screening pass where the normalised text is at
//! hand. The rest is three sequential stages, each walking the batch in stream order: the
//! pre-pass's two (rates, then flood clusters) and the ordered pass, which reads what they
//! found. On a big batch each runs on a thread of its own, a chunk behind the one before it;
//! data flows one way (no stage reads what a later one writes), so the results are those of
//! one thread. Determinism is why this is not a concurrent map updated from every worker: the
//! order of updates would then change the verdicts.

mod alerting;
mod alerts;
mod config;
mod decisions;
mod fingerprint;
mod flood;
mod incident;
mod prepass;
mod reports;
mod scorecard;
mod spike;
mod state;

pub use alerts::{ALERT_KINDS, Alert, AlertKind, AlertStatus, Severity};
pub use config::*;
pub use decisions::{Decision, DecisionKind, DecisionOutcome, DecisionResult};
pub use fingerprint::{Fingerprinter, Signature};
pub use incident::group_scoped;
pub use reports::{Joins, REPORT_OUTCOMES, Report, ReviewRequest, Reward};
pub use scorecard::Scorecard;

use crate::hint::timed;
use crate::model::{Action, Message, Reason, Recommendation, Verdict};
use crate::screen::Engine;
use alerts::Alerts;
use prepass::{Batch, Finding, MAX_CATEGORIES, PrePass};
use reports::{ReportOut, Reports};
use scorecard::{Card, period_of};
use serde::Serialize;
use spike::{Baseline, Params};
use state::{Bounded, decay, key_of, pair};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

/// Reason codes on verdicts, the `reason` label of `qunguard_verdict_reasons_total`.
pub const REASONS: &[&str] = &[
    "rate_limit",
    "duplicate_flood",
    "link_flood",
    "mention_flood",
    incident::INCIDENT,
    incident::FLOOD_INCIDENT,
];

/// A record the watch wants written (besides the verdicts it amends).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Output {
    /// To the alerts topic.
    Alert(Alert),
    /// To the scorecards topic.
    Scorecard(Scorecard),
    /// To the rewards topic.
    Reward(Reward),
    /// To the review topic.
    Review(ReviewRequest),
}

impl Output {
    /// The Kafka key: the group where there is one (so a group's records stay in order on one
    /// partition), the reporter for rewards.
    pub fn key(&self) -> &str {
        match self {
            Output::Alert(a) => a.group_id.as_deref().unwrap_or(&a.key),
            Output::Scorecard(s) => &s.group_id,
            Output::Reward(r) => &r.reporter_id,
            Output::Review(r) => &r.group_id,
        }
    }

    /// The alert kind, for alerts that just opened (the `qunguard_alerts_total` count).
    pub fn alert_kind(&self) -> Option<AlertKind> {
        match self {
            Output::Alert(a) if a.status == AlertStatus::Open => Some(a.kind),
            _ => None,
        }
    }
}

/// A member (sender in a group) who has violated: pressure and evidence. Kept apart from the
/// member's rate state (in `prepass`) so the ordered pass looks members up in a map of the few
/// who violate, not of every member.
struct Pressure {
    /// The member's latest `ts` (as of their last message, as the pressure is).
    last: i64,
    pressure: f32,
    over: bool,
    /// Recent violating message ids.
    evidence: VecDeque<Box<str>>,
}

impl Pressure {
    /// A member's first pressure entry, as of their latest `ts`.
    fn new(last: i64) -> Pressure {
        Pressure {
            last,
            pressure: 0.0,
            over: false,
            evidence: VecDeque::new(),
        }
    }
}

struct Group {
    id: Box<str>,
    /// Open flood alerts that reached the group; > 0 means flood incident mode.
    incidents: u8,
    rate: Baseline,
    card: Card,
    /// Categories (indices below 64) that have had a baseline in the group: a baseline made
    /// again after an eviction starts cold, not at zero (the group did have violations).
    cats_seen: u64,
}

/// Cumulative counts, for `scan`'s summary and tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WatchStats {
    /// Reasons added to verdicts, by code.
    pub reasons: HashMap<&'static str, u64>,
    /// Alerts opened, by kind.
    pub alerts_opened: HashMap<String, u64>,
    /// Alerts suppressed (cooldown or cap).
    pub alerts_suppressed: u64,
    /// The same, by kind.
    pub suppressed_by_kind: HashMap<AlertKind, u64>,
    /// Verdicts carrying a removal recommendation.
    pub recommendations: u64,
    /// Members who crossed the removal threshold.
    pub removals: u64,
    /// Reports by outcome.
    pub reports: HashMap<&'static str, u64>,
    /// Scorecards written.
    pub scorecards: u64,
    /// Messages and reports whose `ts` was too far ahead of the clock (held at the limit).
    pub future_timestamps: u64,
    /// Messages and reports whose `ts` looked like seconds, not milliseconds (read as seconds).
    pub seconds_timestamps: u64,
    /// Reviewers' decisions by outcome (see [`DecisionOutcome::outcome`]).
    pub decisions: HashMap<DecisionResult, u64>,
}

/// Time the watch's three stages spent working, not waiting for one another (`scan` logs it
/// at debug level): on many cores the busiest bounds the watch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StageBusy {
    /// Members' and senders' rates, links, mentions, the groups' own quarrels.
    pub rates: Duration,
    /// The flood clusters.
    pub floods: Duration,
    /// The ordered pass (reasons, incident mode, pressure, alerts, scorecards).
    pub ordered: Duration,
}

impl StageBusy {
    /// Each stage's time by its name (the `stage` label of
    /// `qunguard_watch_stage_busy_seconds_total`), in the order messages pass through them.
    pub fn by_stage(&self) -> [(&'static str, Duration); 3] {
        [
            ("rates", self.rates),
            ("floods", self.floods),
            ("ordered", self.ordered),
        ]
    }
}

/// The watch's state. See the module docs.
pub struct Watch {
    busy: StageBusy,
    /// The pre-pass's threads, made on the first big batch.
    stages: StageThreads,
    cfg: WatchConfig,
    fp: Fingerprinter,
    /// Members' rates, groups' own quarrels, senders' rates: see `prepass`. Lent to the
    /// pre-pass's thread while a batch is observed (so `None` only then).
    pre: Option<Box<PrePass>>,
    pressure: Bounded<Pressure>,
    groups: Bounded<Group>,
    group_cats: Bounded<Baseline>,
    city: Vec<Baseline>,
    /// Groups put in incident mode by each open flood alert.
    flood_groups: HashMap<u64, Vec<u64>>,
    alerts: Alerts,
    reports: Reports,
    categories: Vec<Arc<str>>,
    /// Per category: the city-wide violation spike's alert key (`city/CATEGORY`) and its hash.
    city_keys: Vec<(Arc<str>, u64)>,
    watermark: i64,
    next_sweep: i64,
    period: Option<i64>,
    stats: WatchStats,
    /// Wall clock in ms since the epoch, for the future-timestamp guard only.
    clock: fn() -> i64,
}

/// The messages and verdicts were written by the screening threads and the verdicts read by
/// the pre-pass's, on other cores: the ordered pass's first touch of each missed the cache.
/// Fetch the fields it reads some messages ahead, then the categories they point to.
#[inline]
fn prefetch_inputs(msgs: &[Message], verdicts: &[Verdict], j: usize) {
    const AHEAD: usize = 24;
    const CATEGORIES_AHEAD: usize = 16;
    if let Some(v) = verdicts.get(j + AHEAD) {
        crate::hint::prefetch(&v.categories);
        crate::hint::prefetch(&v.reasons);
        crate::hint::prefetch(&v.action);
    }
    if let Some(m) = msgs.get(j + AHEAD) {
        crate::hint::prefetch(&m.group_id);
        crate::hint::prefetch(&m.text);
    }
    if let Some(v) = verdicts.get(j + CATEGORIES_AHEAD)
        && !v.categories.is_empty()
    {
        crate::hint::prefetch(v.categories.as_ptr());
    }
}

/// The pre-pass's two stages' threads, kept for the watch's life: starting threads for every
/// batch cost ~0.1 ms a batch here.
enum StageThreads {
    /// Made on the first big batch.
    NotYet,
    /// The rates stage's pool and the floods stage's, one thread each.
    Ready(rayon::ThreadPool, rayon::ThreadPool),
    /// A batch is using them (and so if it panicked: the watch is not used after that).
    InUse,
    /// Batches run the stages on the caller's thread: chosen (see
    /// [`STAGE_THREADS_FROM_CORES`]), or the system had no threads to give (warned once).
    Inline,
}

/// On fewer cores than this the stages run on the watch's own thread: screening keeps the
/// cores busy, and the hand-offs cost more than the overlap gains (on 2 cores `scan` took
/// 5–7% longer with the stages on threads: 2 × 9 alternated runs, eighth session). From 4
/// cores on the single watch thread was what bounded `scan` (seventh session).
const STAGE_THREADS_FROM_CORES: usize = 4;

fn stage_threads_by_default() -> StageThreads {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    if cores >= STAGE_THREADS_FROM_CORES {
        StageThreads::NotYet
    } else {
        StageThreads::Inline
    }
}

fn stage_threads() -> StageThreads {
    let pool = |name: &'static str| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .thread_name(move |_| name.into())
            .build()
    };
    match (pool("qunguard-rates"), pool("qunguard-floods")) {
        (Ok(r), Ok(f)) => StageThreads::Ready(r, f),
        (Err(e), _) | (_, Err(e)) => {
            log::warn!("no threads for the watch's pre-pass, running it inline: {e}");
            StageThreads::Inline
        }
    }
}

/// A millisecond `ts` below this (1973-03-03) is taken for seconds: no chat message is that
/// old, and seconds stay below it until the year 5138.
pub const SECONDS_BELOW: i64 = 100_000_000_000;

fn wall_clock_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

const MIN: f64 = 60_000.0;

/// Batches this big run the pre-pass on a thread of its own, a chunk ahead of the ordered
/// pass; smaller ones on the caller's (a thread would cost more than it saves). Either way
/// the results are the same.
const PIPELINE_FROM: usize = 2048;
/// Messages the pre-pass hands over at a time, and how many chunks it may run ahead.
const CHUNK: usize = 512;
const CHUNKS_AHEAD: usize = 4;

/// Event time between checks for alerts that ended quietly.
const SWEEP_EVERY_MS: i64 = 1000;

impl Watch {
    /// A watch with `cfg` (validated by [`WatchConfig::validate`]).
    pub fn new(cfg: WatchConfig) -> Watch {
        let l = &cfg.limits;
        Watch {
            busy: StageBusy::default(),
            stages: stage_threads_by_default(),
            fp: Fingerprinter::new(&cfg.flood),
            pre: Some(Box::new(PrePass::new(&cfg))),
            pressure: Bounded::new(l.members),
            groups: Bounded::new(l.groups),
            group_cats: Bounded::new(l.group_categories),
            city: Vec::new(),
            flood_groups: HashMap::new(),
            alerts: Alerts::new(cfg.alerts.clone(), l.open_alerts),
            reports: Reports::new(cfg.reports.clone(), l),
            categories: Vec::new(),
            city_keys: Vec::new(),
            watermark: i64::MIN,
            next_sweep: i64::MIN,
            period: None,
            stats: WatchStats::default(),
            clock: wall_clock_ms,
            cfg,
        }
    }

    /// Tells the watch which joins it will be asked for (default: both), so it remembers only
    /// what they can use: `qunguard scan` reads no reports or decisions, a pipeline only those
    /// whose topic is configured. A report or decision given to a watch told it gets none is
    /// still applied, but finds no message remembered (as if screened elsewhere). Call it
    /// before the first message: joins chosen later would drop what was remembered.
    pub fn with_joins(mut self, joins: Joins) -> Watch {
        self.reports.set_joins(joins, &self.cfg.limits);
        self
    }

    /// The signature function to run inside screening (see [`crate::Engine::screen_batch_with`]).
    pub fn fingerprinter(&self) -> Fingerprinter {
        self.fp.clone()
    }

    /// [`Fingerprinter::screen`] with this watch's settings.
    pub fn screen(&self, engine: &Engine, msgs: &[Message]) -> (Vec<Verdict>, Vec<Signature>) {
        self.fp.screen(engine, msgs)
    }

    /// Alerts open now.
    pub fn open_alerts(&self) -> usize {
        self.alerts.open_count()
    }

    /// The settings it runs with.
    pub fn config(&self) -> &WatchConfig {
        &self.cfg
    }

    /// Counts so far (cumulative: a metrics exporter publishes their growth).
    pub fn stats(&self) -> &WatchStats {
        &self.stats
    }

    /// Time each of the watch's stages has spent working so far.
    pub fn stage_busy(&self) -> StageBusy {
        self.busy
    }

    /// Entries held per map, and evictions so far: (map, entries, evicted).
    pub fn sizes(&self) -> Vec<(&'static str, usize, u64)> {
        let pre = self.pre();
        let (members, members_evicted) = pre.members();
        let (senders, senders_evicted) = pre.senders();
        let (fingerprints, fingerprints_evicted) = pre.fingerprints();
        let mut v = vec![
            ("members", members, members_evicted),
            (
                "member_pressure",
                self.pressure.len(),
                self.pressure.evicted,
            ),
            ("senders", senders, senders_evicted),
            ("groups", self.groups.len(), self.groups.evicted),
            (
                "group_categories",
                self.group_cats.len(),
                self.group_cats.evicted,
            ),
            ("fingerprints", fingerprints, fingerprints_evicted),
            ("open_alerts", self.alerts.open_count(), 0),
        ];
        v.extend(self.reports.sizes());
        v
    }

    /// The index of a category seen before.
    fn known_category(&self, c: &str) -> Option<u16> {
        self.categories
            .iter()
            .position(|k| **k == *c)
            .map(|i| i as u16)
    }

    fn category(&mut self, c: &Arc<str>) -> u16 {
        if let Some(i) = self.known_category(c) {
            return i;
        }
        self.categories.push(c.clone());
        let city_key = format!("city/{c}");
        self.city_keys
            .push((city_key.as_str().into(), key_of(&city_key)));
        self.city.push(Baseline::default());
        (self.categories.len() - 1) as u16
    }

    fn spike_params(&self, min_count: u64) -> Params {
        let s = &self.cfg.spike;
        Params {
            bucket_ms: s.bucket_secs as i64 * 1000,
            alpha: s.alpha,
            min_buckets: s.min_buckets,
            z: s.z,
            min_count,
        }
    }

    /// Runs the heuristics over a screened batch, in order: amends `verdicts` (reasons, raised
    /// actions, removal advice) and pushes alerts and scorecards to `out`. `sigs[i]` is
    /// `self.fingerprinter().sign(&msgs[i], …)`.
    pub fn observe(
        &mut self,
        msgs: &[Message],
        sigs: &[Signature],
        verdicts: &mut [Verdict],
        out: &mut Vec<Output>,
    ) {
        if !self.cfg.enabled {
            return;
        }
        let limit = self.future_limit();
        // As long as the shortest of the three.
        let n = verdicts.len().min(msgs.len()).min(sigs.len());
        let verdicts = &mut verdicts[..n];
        // Event times once, for every stage (the guards' counts with them).
        let ts: Vec<i64> = msgs[..n]
            .iter()
            .map(|m| self.event_time(m.ts, limit))
            .collect();
        let mut pre = self
            .pre
            .take()
            .expect("the pre-pass is back after each batch");
        let b = Batch {
            msgs,
            sigs,
            ts: &ts,
        };
        let pipelined = n >= PIPELINE_FROM && self.pipelined(&mut pre, b, verdicts, out);
        if !pipelined {
            let mut found = timed(&mut self.busy.rates, || pre.rates.run(b, 0, verdicts));
            timed(&mut self.busy.floods, || {
                pre.floods.run(b, 0, verdicts, &mut found)
            });
            let mut busy = self.busy.ordered;
            timed(&mut busy, || self.ordered(b, 0, verdicts, found, out));
            self.busy.ordered = busy;
        }
        self.pre = Some(pre);
    }

    /// Runs the pre-pass ahead in two stages, each on a thread of its own (rates, then
    /// fingerprints), each handing a chunk's verdicts on with the findings so far: each thread
    /// holds what it works on, and each stage sees the chunks in stream order. `false` when a
    /// thread could not be had; nothing has run then.
    fn pipelined(
        &mut self,
        pre: &mut PrePass,
        b: Batch<'_>,
        verdicts: &mut [Verdict],
        out: &mut Vec<Output>,
    ) -> bool {
        if let StageThreads::NotYet = self.stages {
            self.stages = stage_threads();
        }
        let (rates_pool, floods_pool) =
            match std::mem::replace(&mut self.stages, StageThreads::InUse) {
                StageThreads::Ready(r, f) => (r, f),
                other => {
                    self.stages = other;
                    return false;
                }
            };
        let (mut rates_busy, mut floods_busy) = (Duration::ZERO, Duration::ZERO);
        // Each stage has a pool of one thread to itself: the floods stage blocks waiting for
        // the rates stage, which a pool running both could leave queued behind it.
        rates_pool.in_place_scope(|rates_scope| {
            floods_pool.in_place_scope(|floods_scope| {
                let PrePass { rates, floods } = pre;
                // A chunk handed on: where it starts in the batch, its verdicts, the findings
                // so far.
                type Handed<'v> = (usize, &'v mut [Verdict], Vec<Finding>);
                let (to_floods, from_rates) = std::sync::mpsc::sync_channel::<Handed>(CHUNKS_AHEAD);
                let (to_ordered, from_floods) =
                    std::sync::mpsc::sync_channel::<Handed>(CHUNKS_AHEAD);
                let busy = &mut floods_busy;
                floods_scope.spawn(move |_| {
                    for (from, chunk, mut found) in from_rates {
                        timed(busy, || floods.run(b, from, chunk, &mut found));
                        if to_ordered.send((from, chunk, found)).is_err() {
                            break; // the ordered pass panicked
                        }
                    }
                });
                let busy = &mut rates_busy;
                rates_scope.spawn(move |_| {
                    for (k, chunk) in verdicts.chunks_mut(CHUNK).enumerate() {
                        let found = timed(busy, || rates.run(b, k * CHUNK, chunk));
                        if to_floods.send((k * CHUNK, chunk, found)).is_err() {
                            break;
                        }
                    }
                });
                let mut busy = self.busy.ordered;
                for (from, chunk, found) in from_floods {
                    timed(&mut busy, || self.ordered(b, from, chunk, found, out));
                }
                self.busy.ordered = busy;
            });
        });
        self.busy.rates += rates_busy;
        self.busy.floods += floods_busy;
        self.stages = StageThreads::Ready(rates_pool, floods_pool);
        true
    }

    /// The pre-pass, between batches.
    fn pre(&self) -> &PrePass {
        self.pre
            .as_ref()
            .expect("the pre-pass is back after each batch")
    }

    fn pre_mut(&mut self) -> &mut PrePass {
        self.pre
            .as_mut()
            .expect("the pre-pass is back after each batch")
    }

    /// The ordered pass over messages `from..from + verdicts.len()` of a batch, with what the
    /// pre-pass found for them.
    fn ordered(
        &mut self,
        b: Batch<'_>,
        from: usize,
        verdicts: &mut [Verdict],
        found: Vec<Finding>,
        out: &mut Vec<Output>,
    ) {
        let Batch { msgs, sigs, ts } = b;
        let mut alerts = Vec::new();
        for (j, f) in found.into_iter().enumerate() {
            let i = from + j;
            prefetch_inputs(&msgs[from..], verdicts, j);
            self.prefetch(sigs, i);
            // The chunk's own verdicts only: later ones may be the pre-pass's now.
            self.prefetch_group_categories(&sigs[from..], verdicts, j);
            let (m, s, v, ts) = (&msgs[i], &sigs[i], &mut verdicts[j], ts[i]);
            self.advance(ts, out);
            // Sweeping on event time, message by message, keeps the results independent of
            // where batches happen to be cut.
            if self.watermark >= self.next_sweep {
                self.sweep(&mut alerts);
                self.next_sweep = self.watermark + SWEEP_EVERY_MS;
            }
            let member = self.one(m, s, ts, v, f, &mut alerts);
            self.reports.remember(v, &m.text, member);
            out.extend(alerts.drain(..).map(Output::Alert));
        }
    }

    /// Most of the watch's time is the first touch of a message's group, member and sender
    /// entries (cache misses in maps of up to a million entries). The batch's keys are known
    /// up front, so fetch the index words some messages ahead and the entries they point to
    /// a few messages later, while the messages in between are observed.
    #[inline]
    fn prefetch(&self, sigs: &[Signature], i: usize) {
        const INDEX_AHEAD: usize = 16;
        const ENTRY_AHEAD: usize = 8;
        if let Some(a) = sigs.get(i + INDEX_AHEAD) {
            self.groups.prefetch(a.group);
            self.pressure.prefetch(pair(a.sender, a.group));
        }
        if let Some(a) = sigs.get(i + ENTRY_AHEAD) {
            self.groups.prefetch_entry(a.group);
            self.pressure.prefetch_entry(pair(a.sender, a.group));
        }
    }

    /// A flagged message's group-category spike baselines are a lookup per category in a map
    /// of up to 200k entries (the costliest single miss in profiles after the member's):
    /// fetched ahead like the group, member and sender entries. Categories not seen yet have
    /// no entry to fetch.
    #[inline]
    fn prefetch_group_categories(&self, sigs: &[Signature], verdicts: &[Verdict], i: usize) {
        const INDEX_AHEAD: usize = 16;
        const ENTRY_AHEAD: usize = 8;
        let keys = |j: usize| {
            let (s, v) = (sigs.get(j), verdicts.get(j));
            let cats = v.map_or(&[][..], |v| v.categories.as_slice());
            cats.iter().filter_map(move |c| {
                let c = self.known_category(c)?;
                Some(pair(s?.group, u64::from(c) + 1))
            })
        };
        for k in keys(i + INDEX_AHEAD) {
            self.group_cats.prefetch(k);
        }
        for k in keys(i + ENTRY_AHEAD) {
            self.group_cats.prefetch_entry(k);
        }
    }

    /// Moves event time forward; closes the scorecard period when it ends.
    fn advance(&mut self, ts: i64, out: &mut Vec<Output>) {
        self.watermark = self.watermark.max(ts);
        let p = period_of(self.watermark, &self.cfg.scorecard);
        match self.period {
            None => self.period = Some(p),
            Some(cur) if p > cur => {
                self.close_period(cur, out);
                self.period = Some(p);
            }
            Some(_) => {}
        }
    }

    fn close_period(&mut self, period: i64, out: &mut Vec<Output>) {
        let mut cards = Vec::new();
        for (_, g) in self.groups.iter_mut() {
            if !g.card.is_empty() {
                let card = std::mem::take(&mut g.card);
                cards.push(scorecard::scorecard(
                    &g.id,
                    period,
                    &card,
                    &self.categories,
                    &self.cfg.scorecard,
                ));
            }
        }
        cards.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        self.stats.scorecards += cards.len() as u64;
        out.extend(cards.into_iter().map(Output::Scorecard));
    }

    /// Event time more than `watch.max_future_secs` ahead of the clock is a broken sender
    /// clock, not the future: held at the limit, it cannot end every window and period.
    fn future_limit(&self) -> i64 {
        match self.cfg.max_future_secs {
            0 => i64::MAX,
            s => (self.clock)().saturating_add(s as i64 * 1000),
        }
    }

    /// The event time of a message or report with `ts`: seconds read as milliseconds, and held
    /// at `limit`, each counted.
    fn event_time(&mut self, ts: i64, limit: i64) -> i64 {
        let ts = self.seconds_guard(ts);
        if ts <= limit {
            return ts;
        }
        self.stats.future_timestamps += 1;
        limit
    }

    /// A `ts` in seconds (a common producer slip) read as milliseconds would date the message
    /// in January 1970: every window would treat it as ancient and scorecards would be dated
    /// 1970. Below [`SECONDS_BELOW`] it is read as seconds, counted, and warned about once.
    fn seconds_guard(&mut self, ts: i64) -> i64 {
        if !(1..SECONDS_BELOW).contains(&ts) {
            return ts;
        }
        self.stats.seconds_timestamps += 1;
        if self.stats.seconds_timestamps == 1 {
            log::warn!(
                "an input's ts {ts} looks like seconds since the epoch, not milliseconds: read as {} for heuristics and scorecards (verdicts keep the original); fix the producer. Counted in qunguard_seconds_timestamps_total; warned once",
                ts * 1000
            );
        }
        ts * 1000
    }

    /// Whether the pre-pass's stages may run on threads of their own (on batches of 2,048
    /// messages or more). By default they do on machines with 4 cores or more; results are the
    /// same either way (tests and benchmarks set it to compare).
    pub fn with_stage_threads(mut self, on: bool) -> Watch {
        self.stages = if on {
            StageThreads::NotYet
        } else {
            StageThreads::Inline
        };
        self
    }

    /// Replaces the wall clock used by the future-timestamp guard (tests, replays).
    pub fn with_clock(mut self, clock: fn() -> i64) -> Watch {
        self.clock = clock;
        self
    }

    fn one(
        &mut self,
        m: &Message,
        s: &Signature,
        ts: i64,
        v: &mut Verdict,
        mem: Finding,
        alerts: &mut Vec<Alert>,
    ) -> u64 {
        let mut reasons: Vec<Reason> = Vec::new();
        let mut reason = |code: &'static str, action: Action, detail: String| {
            reasons.push(Reason {
                reason: code.into(),
                action,
                detail,
            })
        };
        // Categories as indices, on the stack.
        let mut cat_buf = [0u16; MAX_CATEGORIES];
        let n_cats = v.categories.len().min(cat_buf.len());
        for (i, slot) in cat_buf.iter_mut().enumerate().take(n_cats) {
            *slot = self.category(&v.categories[i]);
        }
        let cats = &cat_buf[..n_cats];
        let abusive = mem.abuse.is_some();
        let cfg = &self.cfg;
        let g = self.groups.entry(s.group, || Group {
            cats_seen: 0,
            id: m.group_id.as_str().into(),
            incidents: 0,
            rate: Baseline::default(),
            card: Card::default(),
        });
        // Incident mode from the group's own quarrel is group-scoped; from a flood it is not
        // (see `incident`), so it has its own reason and does not tighten the member rate.
        let quarrel = mem.quarrel;
        let flooded = g.incidents > 0;
        let incident = quarrel || flooded;
        if quarrel && abusive {
            reason(
                incident::INCIDENT,
                cfg.alerts.incident_action,
                "abuse while this group's own quarrel is on (incident mode)".into(),
            );
        }
        if flooded && abusive {
            reason(
                incident::FLOOD_INCIDENT,
                cfg.alerts.incident_action,
                "abuse while a flood across groups reaches this group (incident mode)".into(),
            );
        }

        // Rate limits: token buckets (in `prepass`), tighter while the group's own quarrel is on.
        let f = if quarrel {
            cfg.alerts.incident_rate_factor
        } else {
            1.0
        };
        let r = &cfg.rate;
        if mem.over_rate {
            reason(
                "rate_limit",
                r.action,
                format!(
                    "over {} messages a minute (burst {}) from this member in this group",
                    r.group_per_minute * f,
                    r.group_burst * f
                ),
            );
        }
        let lc = &cfg.links;
        if f64::from(mem.links) > lc.max_links {
            reason(
                "link_flood",
                lc.action,
                format!(
                    "{:.1} links/contact ids from this member in this group in ~{} s (limit {})",
                    mem.links, lc.window_secs, lc.max_links
                ),
            );
        }
        if u32::from(s.mentions) > lc.max_mentions_per_message
            || f64::from(mem.mentions) > lc.max_mentions
        {
            reason(
                "mention_flood",
                lc.action,
                format!(
                    "{} @-mentions in this message, {:.1} in ~{} s (limits {} and {})",
                    s.mentions,
                    mem.mentions,
                    lc.window_secs,
                    lc.max_mentions_per_message,
                    lc.max_mentions
                ),
            );
        }
        if mem.sender_over {
            reason(
                "rate_limit",
                r.action,
                format!(
                    "over {} messages a minute (burst {}) from this sender {}",
                    r.global_per_minute,
                    r.global_burst,
                    incident::ACROSS_GROUPS
                ),
            );
        }

        // Duplicate and near-duplicate flooding. Many members echoing one harmless text in
        // their group (接龙, greetings, 收到谢谢) is how groups work; many accounts posting
        // the same text with a payload (a rule hit, a link, a contact id, mentions) is a raid.
        // The clusters are the pre-pass's; what a post found comes with the message.
        let mut flood = None;
        if let Some(seen) = mem.flood {
            let fc = &cfg.flood;
            let action = if incident {
                cfg.alerts.incident_action.max(fc.action)
            } else {
                fc.action
            };
            if seen.sender_groups >= fc.sender_min_groups {
                reason(
                    "duplicate_flood",
                    action,
                    format!(
                        "the same text from this sender in {} groups within {} s",
                        seen.sender_groups, fc.window_secs
                    ),
                );
            } else if seen.group_senders >= fc.group_min_senders && seen.payload {
                reason(
                    "duplicate_flood",
                    action,
                    format!(
                        "the same text from {} members of this group within {} s",
                        seen.group_senders, fc.window_secs
                    ),
                );
            }
            flood = Some(seen);
        }

        // The verdict: rules first, then what the heuristics ask for.
        for rs in &reasons {
            v.action = v.action.max(rs.action);
        }
        for rs in &reasons {
            let code = REASONS
                .iter()
                .find(|c| **c == rs.reason)
                .copied()
                .unwrap_or("other");
            *self.stats.reasons.entry(code).or_default() += 1;
        }
        v.reasons = reasons;

        // Pressure: rises with violations, decays with event time; past the threshold the
        // verdict advises removal, with the evidence. Members who never violated have none
        // (a pressure of 0 with no evidence), so they need no entry.
        let pc = &cfg.pressure;
        let points = match v.action {
            Action::Allow => 0.0,
            Action::Review => pc.review_points,
            Action::Block => pc.block_points,
        };
        let key = pair(s.sender, s.group);
        let entry = if points > 0.0 {
            Some(self.pressure.entry(key, || Pressure::new(mem.last)))
        } else {
            // Marked used: a violator who keeps posting is not idle to the eviction.
            self.pressure.get_mut(key)
        };
        let mut crossed = false;
        if let Some(pe) = entry {
            // Decayed over the time since the member's previous message, as kept here: the
            // rate entry's own `dt` would be 0 if that entry had been evicted meanwhile.
            let dt = ts - pe.last;
            let p = if pe.pressure > 0.0 {
                f64::from(pe.pressure) * decay(dt, pc.half_life_secs as f64 * 1000.0) + points
            } else {
                points
            };
            let p = if p < 0.01 { 0.0 } else { p };
            pe.pressure = p as f32;
            pe.last = mem.last;
            if points > 0.0 {
                if pe.evidence.len() >= pc.evidence.max(1) {
                    pe.evidence.pop_front();
                }
                pe.evidence.push_back(m.id.as_str().into());
                if p >= pc.remove_threshold {
                    v.recommend = Some(Box::new(Recommendation {
                        action: "remove_member".into(),
                        pressure: (p * 100.0).round() / 100.0,
                        evidence: pe.evidence.iter().map(|e| e.to_string()).collect(),
                    }));
                    self.stats.recommendations += 1;
                    crossed = !pe.over;
                    pe.over = true;
                }
            }
            if p < pc.remove_threshold {
                pe.over = false;
            }
        }
        if crossed {
            self.stats.removals += 1;
        }

        // Scorecard counts.
        let g = self.groups.peek_mut(s.group).expect("entry made above");
        g.card.messages += 1;
        g.card.removals += u32::from(crossed);
        if v.action > Action::Allow {
            g.card.violations += 1;
            g.card.reviews += u32::from(v.action == Action::Review);
            g.card.blocks += u32::from(v.action == Action::Block);
            for &c in cats {
                g.card.count_category(c);
            }
        }

        // Spikes: this group's message rate, then violation rates per category.
        self.spikes(m, s, ts, cats, alerts);

        // Quarrels: abuse from several members of one group in a short window.
        if let Some(w) = mem.abuse {
            self.quarrel(m, s, ts, *w, alerts);
        }
        if let Some(seen) = flood {
            match seen.alert {
                Some(view) => self.flood(seen.alert_hash, seen.groups, view, ts, alerts),
                // A post to an open flood keeps it open even below the alert threshold.
                None if !self.flood_groups.is_empty() => {
                    self.alerts.touch(AlertKind::Flood, seen.alert_hash, ts)
                }
                None => {}
            }
        }
        key
    }

    /// Joins a member report with what this instance screened: rewards verified reporters,
    /// sends reported messages it allowed to focused review.
    pub fn report(&mut self, r: Report, out: &mut Vec<Output>) {
        if !self.cfg.enabled {
            return;
        }
        let limit = self.future_limit();
        let ts = self.event_time(r.ts, limit);
        self.advance(ts, out);
        let mut ro = Vec::new();
        let outcome = self.reports.report(&r, &mut ro);
        *self.stats.reports.entry(outcome).or_default() += 1;
        if let Some(g) = self.groups.peek_mut(key_of(&r.group_id)) {
            g.card.reports += 1;
            g.card.verified_reports += u32::from(outcome == "verified");
        }
        out.extend(ro.into_iter().map(|o| match o {
            ReportOut::Reward(w) => Output::Reward(w),
            ReportOut::Review(v) => Output::Review(v),
        }));
    }
}
