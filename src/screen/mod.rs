//! The screening engine: normalise → Hyperscan match → map back → allow-lists and validators →
//! verdict.
//!
//! [`Engine`] is compiled once from a [`RuleSet`] and shared (it is `Send + Sync`) by every
//! worker. [`Engine::screen_batch`] splits a batch into chunks screened in parallel on rayon;
//! each chunk is normalised into one buffer and scanned with one Hyperscan call.

mod chars;
pub mod dense;
pub mod explain;
pub(crate) mod lexicon;
pub(crate) mod matcher;
pub mod normalise;

use crate::model::{Action, Hit, MatchKind, Message, SuppressedBy, Suppression, Verdict};
use crate::rules::{RuleSet, Validator, validate_match};
use hyperscan::BlockDatabase;
use normalise::{Buffer, Mapped, PinyinBuffer, fold_letter_repeats, pinyin_key};
use rayon::prelude::*;
use sha2::{Digest, Sha256};
use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::mem::MaybeUninit;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError};

/// Bumped whenever normalisation or matching semantics change, so `rules_version` changes too.
const ENGINE_SEMANTICS: &str = "qunguard-engine-5";

/// The version of a rule set: the first 16 hex digits of a SHA-256 over everything that decides
/// a verdict (every pack's settings, terms, allowed terms and regexes, words files included as
/// loaded, and the engine's matching semantics). The one place a rule set's identity is
/// computed: anything else that decides verdicts (a model file) is folded in here.
pub fn rules_version(rules: &RuleSet) -> compact_str::CompactString {
    let mut hasher = Sha256::new();
    hasher.update(ENGINE_SEMANTICS);
    // The common-word lexicon decides which sound-alike hits stand, so a new one is a new
    // rule set even when no pack changed.
    hasher.update(lexicon::fingerprint());
    for pack in &rules.packs {
        hasher.update(format!(
            "\0pack\0{}\0{}\0{:?}\0{}",
            pack.name, pack.category, pack.action, pack.pinyin
        ));
        // Only when set, so versions of rule sets without shadow rules stay as they were.
        if pack.shadow {
            hasher.update("\0shadow");
        }
        for t in pack.terms.iter() {
            hasher.update("\0t\0");
            hasher.update(t.normalised);
        }
        for a in pack.allow.iter() {
            hasher.update("\0a\0");
            hasher.update(a.normalised);
        }
        for r in &pack.regexes {
            hasher.update(format!(
                "\0r\0{}\0{}\0{:?}\0{:?}",
                r.id, r.pattern, r.action, r.validate
            ));
            if r.shadow {
                hasher.update("\0shadow");
            }
        }
    }
    for m in &rules.models {
        // The model file's digest makes the model part of the version.
        hasher.update(format!(
            "\0model\0{}\0{}\0{:?}\0{}\0{}\0",
            m.name, m.category, m.action, m.threshold, m.shadow
        ));
        hasher.update(m.model.digest());
    }
    let digest = hasher.finalize();
    let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    hex.into()
}

/// What a pattern id of the main database stands for.
#[derive(Debug)]
enum MainRule {
    Term {
        pack: u32,
        rule: &'static str,
        len: u32,
    },
    Allow {
        pack: u32,
        len: u32,
        /// The entry as written in the pack, named on the suppressions it causes.
        entry: &'static str,
    },
    Regex {
        regex: u32,
    },
}

#[derive(Debug)]
struct PinyinRule {
    pack: u32,
    rule: &'static str,
    len: u32,
    /// The term's characters after folding repeats, for the homophone check: a range of
    /// [`Engine::pinyin_units`].
    units: (u32, u32),
    /// The key with repeated letters folded ([`fold_letter_repeats`]): only romanised text
    /// (ASCII letters in the span) is folded that way, so only such a match counts.
    romanised_only: bool,
    /// How many times the term's first and last characters stand in a row (时时彩: 2 and 1),
    /// which a match trimmed at a sentence break must keep ([`fold_breaks`]).
    edges: (u8, u8),
    /// Whether a character of the term stands twice or more in a row (时时彩, 牛牛群): a
    /// match in Han characters must then hold each as often ([`Engine::pinyin_repeats`]).
    repeats: bool,
    /// The next term of the pack with the same key ([`Engine::pinyin_alts`]; `NO_ALT`: none).
    alt: u32,
}

const NO_ALT: u32 = u32::MAX;

#[derive(Debug)]
struct PackInfo {
    category: Arc<str>,
    action: Action,
    shadow: bool,
}

#[derive(Debug)]
struct RegexInfo {
    id: &'static str,
    pack: u32,
    action: Action,
    validate: Option<Validator>,
    shadow: bool,
}

/// Per-pack counts, as `check-rules` prints them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackSummary {
    /// Pack name (file stem).
    pub name: String,
    /// Its category.
    pub category: String,
    /// Its default action.
    pub action: Action,
    /// Terms after normalisation and de-duplication.
    pub terms: usize,
    /// Allowed terms.
    pub allow: usize,
    /// Regex rules.
    pub regexes: usize,
    /// Whether pinyin/homophone matching is on.
    pub pinyin: bool,
    /// Whether the whole pack is in shadow.
    pub shadow: bool,
}

/// A compiled rule set, ready to screen messages. Cheap to share behind an `Arc`.
pub struct Engine {
    id: u64,
    main: BlockDatabase,
    main_rules: Vec<MainRule>,
    pinyin: Option<BlockDatabase>,
    pinyin_rules: Vec<PinyinRule>,
    /// Terms whose key an earlier term of the same pack has (傻逼, 煞笔: shabi): one pattern
    /// matches for all, and each is judged on its own characters.
    pinyin_alts: Vec<PinyinRule>,
    /// The pinyin terms' characters after folding repeats, [`PinyinRule::units`] slices.
    pinyin_units: Vec<char>,
    /// For each of [`Engine::pinyin_units`], how many times it stands in a row in the term.
    pinyin_repeats: Vec<u8>,
    packs: Vec<PackInfo>,
    regexes: Vec<RegexInfo>,
    summary: Vec<PackSummary>,
    /// Model packs, scored on every message's normalised text.
    scorers: Vec<crate::scorer::Scorer>,
    /// Pack names by pack index, and the pack of each regex id: which pack a hit came from
    /// (term rule ids are `PACK:TERM`), for per-pack metrics.
    pack_names: Vec<&'static str>,
    regex_packs: std::collections::HashMap<&'static str, u32>,
    /// 16 hex digits: kept inline, so copying it onto every verdict is not an atomic increment.
    version: compact_str::CompactString,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("version", &self.version)
            .field("patterns", &self.main_rules.len())
            .field("pinyin_patterns", &self.pinyin_rules.len())
            .finish()
    }
}

/// Why a rule set could not be compiled.
#[derive(Debug, thiserror::Error)]
#[error("compiling the rule set failed: {0}")]
pub struct CompileError(String);

impl Engine {
    /// Compiles every term, allowed term and regex of `rules` into Hyperscan databases.
    pub fn compile(rules: &RuleSet) -> Result<Engine, CompileError> {
        Engine::compile_cached(rules, None)
    }

    /// Like [`Engine::compile`], reusing databases compiled before and kept in `cache` (a
    /// directory, created if missing). Large rule sets load in milliseconds instead of seconds.
    pub fn compile_cached(rules: &RuleSet, cache: Option<&Path>) -> Result<Engine, CompileError> {
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        let mut sources = matcher::Sources::default();
        let mut main_rules = Vec::new();
        let mut pinyin_sources = matcher::Sources::default();
        let mut pinyin_rules: Vec<PinyinRule> = Vec::new();
        let mut pinyin_alts: Vec<PinyinRule> = Vec::new();
        let mut pinyin_units = Vec::new();
        let mut pinyin_repeats = Vec::new();
        let mut packs = Vec::new();
        let mut regexes = Vec::new();
        let mut summary = Vec::new();
        let mut pack_names = Vec::new();
        let mut regex_packs = std::collections::HashMap::new();
        let mut rule_id = String::new();

        for (p, pack) in rules.packs.iter().enumerate() {
            let p = p as u32;
            let category: Arc<str> = pack.category.as_str().into();
            // Key → its pattern's rule and the last of its alternatives.
            let mut seen_keys: HashMap<String, (u32, u32)> = HashMap::new();
            let mut add = |key: String, rule: PinyinRule, sources: &mut matcher::Sources| {
                use std::collections::hash_map::Entry;
                match seen_keys.entry(key) {
                    Entry::Vacant(e) => {
                        sources.push_literal(e.key().as_bytes());
                        e.insert((pinyin_rules.len() as u32, NO_ALT));
                        pinyin_rules.push(rule);
                    }
                    Entry::Occupied(mut e) => {
                        let at = pinyin_alts.len() as u32;
                        pinyin_alts.push(rule);
                        let (head, last) = *e.get();
                        match last {
                            NO_ALT => pinyin_rules[head as usize].alt = at,
                            last => pinyin_alts[last as usize].alt = at,
                        }
                        e.get_mut().1 = at;
                    }
                }
            };
            for t in pack.terms.iter() {
                rule_id.clear();
                rule_id.push_str(&pack.name);
                rule_id.push(':');
                rule_id.push_str(t.written);
                let rule = intern(&rule_id);
                // The main database scans the dense encoding: terms are encoded like the text.
                let len = sources.push_literal_with(|b| dense::encode_into(t.normalised, b));
                main_rules.push(MainRule::Term {
                    pack: p,
                    rule,
                    len: len as u32,
                });
                if pack.pinyin {
                    let (key, units, runs) = pinyin_key(t.normalised);
                    let folded = fold_letter_repeats(&key);
                    // A folded key of one or two letters ("qq" as "q") would match too much.
                    let folded = (folded != key && folded.len() >= 3).then_some(folded);
                    let first = pinyin_units.len() as u32;
                    let repeats = runs.iter().any(|&n| n > 1);
                    pinyin_units.extend_from_slice(&units);
                    pinyin_repeats.extend_from_slice(&runs);
                    let units = (first, pinyin_units.len() as u32);
                    let edges = repeat_edges(t.normalised);
                    for (key, romanised_only) in [(Some(key), false), (folded, true)] {
                        let Some(key) = key else { continue };
                        let len = key.len() as u32;
                        let r = PinyinRule {
                            pack: p,
                            rule,
                            len,
                            units,
                            romanised_only,
                            edges,
                            repeats,
                            alt: NO_ALT,
                        };
                        add(key, r, &mut pinyin_sources);
                    }
                    // A doubled Han character said with two different ones (实时彩, 十时彩 for
                    // 时时彩) is not folded in the view: the term's unfolded key, over its
                    // unfolded characters, catches it, judged as any sound-alike.
                    if repeats {
                        let (key, chars) = normalise::pinyin_key_unfolded(t.normalised);
                        if chars.iter().all(|&c| normalise::han_pinyin(c).is_some()) {
                            let first = pinyin_units.len() as u32;
                            pinyin_units.extend_from_slice(&chars);
                            pinyin_repeats.extend(std::iter::repeat_n(1, chars.len()));
                            let r = PinyinRule {
                                pack: p,
                                rule,
                                len: key.len() as u32,
                                units: (first, pinyin_units.len() as u32),
                                romanised_only: false,
                                edges,
                                repeats: false,
                                alt: NO_ALT,
                            };
                            add(key, r, &mut pinyin_sources);
                        }
                    }
                }
            }
            for a in pack.allow.iter() {
                let len = sources.push_literal_with(|b| dense::encode_into(a.normalised, b));
                main_rules.push(MainRule::Allow {
                    pack: p,
                    len: len as u32,
                    entry: intern(a.written),
                });
            }
            for r in &pack.regexes {
                // Regexes are translated to the encoding.
                sources.push_regex(
                    &dense::translate_regex(&r.pattern)
                        .map_err(|e| CompileError(format!("regex {}: {e}", r.id)))?,
                );
                main_rules.push(MainRule::Regex {
                    regex: regexes.len() as u32,
                });
                regexes.push(RegexInfo {
                    id: intern(&r.id),
                    pack: p,
                    action: r.action,
                    validate: r.validate,
                    shadow: r.shadow,
                });
                regex_packs.insert(intern(&r.id), p);
            }
            packs.push(PackInfo {
                category,
                action: pack.action,
                shadow: pack.shadow,
            });
            pack_names.push(intern(&pack.name));
            summary.push(PackSummary {
                name: pack.name.clone(),
                category: pack.category.clone(),
                action: pack.action,
                terms: pack.terms.len(),
                allow: pack.allow.len(),
                regexes: pack.regexes.len(),
                pinyin: pack.pinyin,
                shadow: pack.shadow,
            });
        }
        let main = matcher::compile(&sources, cache).map_err(CompileError)?;
        drop(sources);
        if !pinyin_sources.is_empty() {
            // Loaded here, not on the first sound-alike hit, so no verdict waits for it.
            lexicon::lexicon();
        }
        let pinyin = if pinyin_sources.is_empty() {
            None
        } else {
            Some(matcher::compile(&pinyin_sources, cache).map_err(CompileError)?)
        };
        let mut scorers = Vec::new();
        for m in &rules.models {
            scorers.push(crate::scorer::Scorer {
                name: m.name.clone(),
                category: m.category.as_str().into(),
                action: m.action,
                threshold: m.threshold,
                shadow: m.shadow,
                rule: intern(&format!("{}:model", m.name)),
                key: intern(&m.category),
                model: m.model.clone(),
            });
            summary.push(PackSummary {
                name: m.name.clone(),
                category: m.category.clone(),
                action: m.action,
                terms: 0,
                allow: 0,
                regexes: 0,
                pinyin: false,
                shadow: m.shadow,
            });
            pack_names.push(intern(&m.name));
        }
        main_rules.shrink_to_fit();
        pinyin_rules.shrink_to_fit();
        pinyin_alts.shrink_to_fit();
        pinyin_units.shrink_to_fit();
        pinyin_repeats.shrink_to_fit();
        let version = rules_version(rules);
        Ok(Engine {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            main,
            main_rules,
            pinyin,
            pinyin_rules,
            pinyin_alts,
            pinyin_units,
            pinyin_repeats,
            packs,
            regexes,
            summary,
            scorers,
            pack_names,
            regex_packs,
            version,
        })
    }

    /// Hash of the compiled rule set (and engine semantics), written on every verdict.
    pub fn rules_version(&self) -> &str {
        &self.version
    }

    /// Per-pack counts (model packs included, with no terms).
    pub fn packs(&self) -> &[PackSummary] {
        &self.summary
    }

    /// The packs' categories, sorted, without repeats.
    pub fn categories(&self) -> Vec<&str> {
        let mut c: Vec<&str> = self.summary.iter().map(|p| p.category.as_str()).collect();
        c.sort_unstable();
        c.dedup();
        c
    }

    /// The model packs.
    pub fn scorers(&self) -> &[crate::scorer::Scorer] {
        &self.scorers
    }

    /// Every rule id a hit can carry, with the index in [`Engine::packs`] of its pack (for
    /// counting hits by pack: the wire format names rules, not packs).
    pub fn rule_packs(&self) -> impl Iterator<Item = (&'static str, usize)> + '_ {
        let terms = self.main_rules.iter().filter_map(|r| match *r {
            MainRule::Term { pack, rule, .. } => Some((rule, pack as usize)),
            _ => None,
        });
        // Model packs come after the term packs in `packs()`.
        let models = self.scorers.iter().enumerate();
        let models = models.map(|(k, s)| (s.rule, self.packs.len() + k));
        terms
            .chain(self.regexes.iter().map(|r| (r.id, r.pack as usize)))
            .chain(models)
    }

    /// The pack a rule id of this engine's hits belongs to (`None` for a rule it does not
    /// have, e.g. one removed by a reload since).
    pub fn pack_of(&self, rule: &str) -> Option<&'static str> {
        if let Some(&p) = self.regex_packs.get(rule) {
            return Some(self.pack_names[p as usize]);
        }
        // Term ids are `PACK:TERM`; a pack name may itself hold ':', so match whole names.
        self.pack_names.iter().copied().find(|n| {
            rule.len() > n.len() && rule.starts_with(n) && rule.as_bytes()[n.len()] == b':'
        })
    }

    /// Screens one message.
    pub fn screen(&self, msg: &Message) -> Verdict {
        let (mut v, _) = self.screen_batch_map(std::slice::from_ref(msg), false, &|_, _| ());
        v.pop().expect("one verdict per message")
    }

    /// Screens a batch in parallel on the current rayon pool; verdicts come back in input order.
    pub fn screen_batch(&self, msgs: &[Message]) -> Vec<Verdict> {
        self.screen_batch_map(msgs, false, &|_, _| ()).0
    }

    /// Like [`Engine::screen_batch`], and also calls `f(message, normalised_text)` for each
    /// message while its normalised text is at hand (the heuristics fingerprint it there
    /// instead of normalising it a second time): the verdicts, and what `f` returned for each.
    pub fn screen_batch_with<T, F>(&self, msgs: &[Message], f: &F) -> (Vec<Verdict>, Vec<T>)
    where
        T: Send,
        F: Fn(&Message, &str) -> T + Sync,
    {
        self.screen_batch_map(msgs, true, f)
    }

    /// Screens a batch; `side(message, normalised_text)` makes an item to go with each verdict.
    /// Verdicts and items are written in place, in two vectors: pairing them copied every
    /// verdict once more when the caller split the pairs (serially, on the stage's thread). The
    /// normalised text is only written (in UTF-8, besides the matcher's dense encoding) when
    /// `with_text` is set; otherwise `side` gets an empty string.
    fn screen_batch_map<T, F>(
        &self,
        msgs: &[Message],
        with_text: bool,
        side: &F,
    ) -> (Vec<Verdict>, Vec<T>)
    where
        T: Send,
        F: Fn(&Message, &str) -> T + Sync,
    {
        let threads = rayon::current_num_threads().max(1);
        // Enough chunks to keep every worker busy, big enough that one Hyperscan call per chunk
        // amortises its fixed cost.
        let chunk = (msgs.len() / (threads * 4)).clamp(64, 1024);
        // Each chunk writes its items straight into its part of the result: gathering per-chunk
        // vectors afterwards copied every verdict once more (~6% of the engine's time).
        let mut verdicts: Vec<MaybeUninit<Verdict>> = Vec::with_capacity(msgs.len());
        verdicts.resize_with(msgs.len(), MaybeUninit::uninit);
        let mut items: Vec<MaybeUninit<T>> = Vec::with_capacity(msgs.len());
        items.resize_with(msgs.len(), MaybeUninit::uninit);
        if msgs.len() <= chunk {
            self.screen_chunk(msgs, with_text, side, &mut verdicts, &mut items);
        } else {
            verdicts
                .par_chunks_mut(chunk)
                .zip(items.par_chunks_mut(chunk))
                .zip(msgs.par_chunks(chunk))
                .for_each(|((v, t), c)| self.screen_chunk(c, with_text, side, v, t));
        }
        // SAFETY: `screen_with` wrote every element of the slices it was given (it fills one
        // verdict and one item per message of its chunk and panics before returning otherwise,
        // and a panic leaks both vectors rather than reading them), the chunks of both and of
        // `msgs` match one to one, and `MaybeUninit<X>` has the layout of `X`.
        unsafe { (assume_init(verdicts), assume_init(items)) }
    }

    fn screen_chunk<T, F: Fn(&Message, &str) -> T>(
        &self,
        msgs: &[Message],
        with_text: bool,
        side: &F,
        dst: &mut [MaybeUninit<Verdict>],
        items: &mut [MaybeUninit<T>],
    ) {
        thread_local! {
            static WORK: RefCell<Workspace> = RefCell::new(Workspace::default());
        }
        WORK.with(|w| match w.try_borrow_mut() {
            Ok(mut w) => self.screen_with(&mut w, msgs, with_text, side, dst, items),
            Err(_) => {
                self.screen_with(&mut Workspace::default(), msgs, with_text, side, dst, items)
            }
        })
    }

    /// Screens one chunk, writing one verdict per message into `dst` and one item into
    /// `items` (both as long as `msgs`).
    fn screen_with<T, F: Fn(&Message, &str) -> T>(
        &self,
        w: &mut Workspace,
        msgs: &[Message],
        with_text: bool,
        side: &F,
        dst: &mut [MaybeUninit<Verdict>],
        items: &mut [MaybeUninit<T>],
    ) {
        assert_eq!(dst.len(), msgs.len(), "one output slot per message");
        assert_eq!(items.len(), msgs.len(), "one item slot per message");
        w.norm.clear();
        w.norm.dense_only = !with_text;
        for (i, m) in msgs.iter().enumerate() {
            // Each text is its own allocation, so the hardware cannot guess the next one: ask
            // for a text a few messages ahead while this one is normalised.
            if let Some(ahead) = msgs.get(i + 4) {
                prefetch(ahead.text.as_bytes());
            }
            w.norm.push_message(&m.text);
        }
        w.raw.clear();
        w.py_raw.clear();
        let all = [&self.main, self.pinyin.as_ref().unwrap_or(&self.main)];
        let dbs = &all[..1 + usize::from(self.pinyin.is_some())];
        matcher::with_scratch(self.id, dbs, |scratch| {
            let bounds = &w.norm.dense_bounds;
            let raw = &mut w.raw;
            // Hyperscan reports matches by increasing end offset, so the message a match ends
            // in is found by moving a cursor forward (a search only if one ever went back). The
            // rule table is not read here: with a large dictionary each read is a cache miss,
            // and the verdict reads the entry anyway.
            let mut cursor = 0;
            matcher::scan(&self.main, scratch, w.norm.dense_text(), |id, from, to| {
                let i = message_at(bounds, &mut cursor, to);
                let (s, e) = bounds[i];
                debug_assert!(to <= e, "a match ran across the separator");
                // `from` is only meaningful (and then within the message: no translated regex
                // consumes the separator) for regexes, which carry start-of-match.
                raw.push(Raw::new(i, id, from.saturating_sub(s), to - s));
            });
            if let Some(py) = &self.pinyin {
                w.py.clear();
                for i in 0..msgs.len() {
                    w.py.push_message(w.norm.dense_message(i));
                }
                let bounds = &w.py.bounds;
                let raw = &mut w.py_raw;
                let mut cursor = 0;
                matcher::scan(py, scratch, &w.py.text, |id, _, to| {
                    let from = to - self.pinyin_rules[id as usize].len as usize;
                    let i = message_at(bounds, &mut cursor, to);
                    let s = bounds[i].0;
                    raw.push(Raw::new(i, id, from - s, to - s));
                });
            }
        });
        // Model scores for the whole chunk at once, read from the chunk's one encoded buffer.
        w.scores.clear();
        if !self.scorers.is_empty() && !msgs.is_empty() {
            w.scores.resize(msgs.len() * self.scorers.len(), 0.0);
            let (buf, bounds) = w.norm.dense_chunk();
            for (s, out) in self.scorers.iter().zip(w.scores.chunks_mut(msgs.len())) {
                s.model.score_chunk(buf, bounds, out);
            }
        }
        // Verdicts slice each message's matches out of the flat lists.
        for raw in [&mut w.raw, &mut w.py_raw] {
            if !raw.is_sorted_by_key(|r| r.msg) {
                raw.sort_by_key(|r| r.msg);
            }
        }
        let (mut r, mut p) = (0, 0);
        let Workspace {
            norm,
            py,
            raw,
            py_raw,
            scratch,
            scores,
        } = w;
        for (i, ((m, slot), item)) in msgs.iter().zip(dst.iter_mut()).zip(items).enumerate() {
            let r_end = r + raw[r..].iter().take_while(|x| x.msg as usize == i).count();
            let p_end = p + py_raw[p..]
                .iter()
                .take_while(|x| x.msg as usize == i)
                .count();
            let mut v = self.verdict(
                norm.dense_message(i),
                py,
                scratch,
                i,
                m,
                &raw[r..r_end],
                &py_raw[p..p_end],
            );
            (r, p) = (r_end, p_end);
            if !self.scorers.is_empty() {
                // Per model pack, its score of message i.
                let of_msg = scores.iter().skip(i).step_by(msgs.len()).copied();
                self.score(&mut v, m, of_msg);
            }
            item.write(side(m, norm.message(i)));
            slot.write(v);
        }
    }

    /// Turns message `i`'s raw matches into hits and a verdict.
    #[allow(clippy::too_many_arguments)]
    fn verdict(
        &self,
        dense_text: &[u8],
        py: &PinyinBuffer,
        scratch: &mut Scratch,
        i: usize,
        msg: &Message,
        raw: &[Raw],
        py_raw: &[Raw],
    ) -> Verdict {
        let mut verdict = Verdict {
            id: msg.id.clone(),
            group_id: msg.group_id.clone(),
            sender_id: msg.sender_id.clone(),
            ts: msg.ts,
            action: Action::Allow,
            categories: Vec::new(),
            hits: Vec::new(),
            hits_truncated: false,
            reasons: Vec::new(),
            recommend: None,
            rules_version: self.version.clone(),
            suppressed: Vec::new(),
            scores: Default::default(),
        };
        if raw.is_empty() && py_raw.is_empty() {
            return verdict;
        }
        let original = msg.text.as_bytes();
        let Scratch {
            map,
            hits,
            allowed,
            regex: regex_cands,
            dropped,
            chars,
        } = scratch;
        hits.clear();
        allowed.clear();
        regex_cands.clear();
        dropped.clear();
        let map = &mut LazyMap {
            text: &msg.text,
            dense: dense_text,
            map,
            ready: false,
            chars,
            decoded: false,
        };

        // Offsets in the dense encoding, to offsets in the UTF-8 normalised text.
        let utf8 = |from: usize, to: usize| {
            let from8 = dense::utf8_offset(dense_text, from);
            (
                from8,
                from8 + dense::utf8_offset(&dense_text[from..], to - from),
            )
        };
        for &Raw { id, from, to, .. } in raw {
            let rule = &self.main_rules[id as usize];
            let dto = to as usize;
            let dfrom = match rule {
                MainRule::Term { len, .. } | MainRule::Allow { len, .. } => dto - *len as usize,
                MainRule::Regex { .. } => from as usize,
            };
            let (from, to) = utf8(dfrom, dto);
            match rule {
                MainRule::Allow { pack, entry, .. } => {
                    let (s, e) = map.original_range(from, to);
                    // An ordinary word is written together: one that normalisation joined
                    // across punctuation or a symbol (出售大麻，烦请私聊, 出售大麻?烦请) allows
                    // nothing. A space or an invisible character inside it (鸦片 战争) does
                    // not count: without it the text would be allowed just the same.
                    if e - s > to - from {
                        let sc = SpanChars::of(map, (dfrom, dto));
                        if !sc.gaps(map.text).all(|g| g.chars().all(blank)) {
                            continue;
                        }
                    }
                    allowed.push((*pack, s, e, *entry));
                }
                MainRule::Term { pack, rule, .. } => {
                    let (s, e) = map.original_range(from, to);
                    if !stands_alone(original, s, e) {
                        continue;
                    }
                    let mut hit = self.hit(*pack, rule, MatchKind::Term, msg, s, e);
                    // Something was dropped between the term's characters (the original is
                    // longer): rare, and only then is it asked whether they were written apart.
                    if e - s > to - from
                        && let Some((reason, by)) = written_apart((dfrom, dto), map).apply(&mut hit)
                    {
                        dropped.push((hit, reason, by));
                        continue;
                    }
                    hits.push((*pack, hit));
                }
                // Validated on the dense text: digits and 'x' are themselves there.
                MainRule::Regex { regex } => regex_cands.push((*regex, dfrom, dto)),
            }
        }

        // Regex matches: validators first, then leftmost-longest without overlaps per rule.
        regex_cands.retain(|&(r, from, to)| {
            self.regexes[r as usize].validate.is_none_or(|v| {
                let code = |at: usize| country_code_written(at, (from, to), &utf8, map);
                validate_match(v, dense_text, from, to, code)
                    && written_as_one_number((from, to), &utf8, map)
            })
        });
        regex_cands.sort_unstable_by_key(|&(r, from, to)| (r, from, std::cmp::Reverse(to)));
        let mut last: Option<(u32, usize)> = None;
        for &(r, from, to) in regex_cands.iter() {
            if last.is_some_and(|(lr, lend)| lr == r && from < lend) {
                continue;
            }
            last = Some((r, to));
            let info = &self.regexes[r as usize];
            let (from, to) = utf8(from, to);
            let (s, e) = map.original_range(from, to);
            let mut hit = self.hit(info.pack, info.id, MatchKind::Regex, msg, s, e);
            hit.action = info.action;
            hit.shadow = info.shadow;
            hits.push((info.pack, hit));
        }

        if self.pinyin.is_some() {
            let (pbase, pend) = py.bounds[i];
            for &Raw { id, from, to, .. } in py_raw {
                let (f, t) = (pbase + from as usize, pbase + to as usize);
                let on_units =
                    py.on_unit_boundary(i, f) && (t == pend || py.on_unit_boundary(i, t));
                if !on_units {
                    continue;
                }
                let (first, last) = (py.unit_at(i, f), py.unit_at(i, t - 1));
                let units = &py.units[first..=last];
                let romanised = units.iter().any(|u| u.c.is_ascii_alphabetic());
                // Of the pack's terms with this key, the one whose characters the span keeps
                // most of: 煞比 is 煞笔, 傻比 is 傻逼. On a tie the pack's earlier term names
                // the hit (authors list the usual spelling first: 加薇信 is 加微信, not 加威信).
                let mut best: Option<(&PinyinRule, &[char], usize)> = None;
                for rule in self.same_key(id) {
                    let term = &self.pinyin_units[rule.units.0 as usize..rule.units.1 as usize];
                    if (rule.romanised_only && !romanised)
                        || !sounds_deliberate(units.iter().map(|u| u.c), term)
                        || (rule.repeats
                            && !romanised
                            && !keeps_repeats(dense_text, units, rule, self))
                    {
                        continue;
                    }
                    let same = units.iter().zip(term).filter(|(u, c)| u.c == **c).count();
                    if best.is_none_or(|(_, _, b)| same > b) {
                        best = Some((rule, term, same));
                    }
                }
                let Some((rule, term, _)) = best else {
                    continue;
                };
                let whole = (units[0].ns as usize, units[units.len() - 1].ne as usize);
                // Romanised spellings are deliberate: their folds are not judged either.
                let folds = match romanised {
                    true => Some(whole),
                    false => fold_breaks(dense_text, units, rule.edges, &utf8, map),
                };
                let span = folds.unwrap_or(whole);
                let (ns, ne) = utf8(span.0, span.1);
                let (s, e) = map.original_range(ns, ne);
                if !stands_alone(original, s, e) {
                    continue;
                }
                let mut hit = self.hit(rule.pack, rule.rule, MatchKind::Pinyin, msg, s, e);
                if folds.is_none() {
                    dropped.push((hit, SuppressedBy::Sentence, None));
                    continue;
                }
                // Romanised spellings are deliberate. The term's own characters are judged as
                // its literal match is (whose hit is kept over this one); only a sound-alike in
                // other Han characters is checked against sentence breaks and ordinary words
                // (rare: only those pay).
                let why = match romanised {
                    true => None,
                    false if units.iter().map(|u| u.c).eq(term.iter().copied()) => {
                        match (s..e).len() > ne - ns {
                            true => written_apart(span, map).apply(&mut hit),
                            false => None,
                        }
                    }
                    false => self.ordinary_sound_alike(span, term, map),
                };
                if let Some((reason, by)) = why {
                    dropped.push((hit, reason, by));
                    continue;
                }
                hits.push((rule.pack, hit));
            }
        }

        let mut hits: Vec<Hit> = hits
            .drain(..)
            .filter_map(|(pack, h)| {
                let allow = allowed
                    .iter()
                    .find(|&&(ap, s, e, _)| ap == pack && s <= h.start && h.end <= e);
                match allow {
                    Some(&(_, _, _, entry)) => {
                        dropped.push((h, SuppressedBy::Allow, Some(entry.into())));
                        None
                    }
                    None => Some(h),
                }
            })
            .collect();
        one_per_rule_and_span(&mut hits);
        if !dropped.is_empty() {
            verdict.suppressed = suppressions(dropped, &hits);
        }

        // Shadow hits are on the verdict for people and metrics only.
        let live = || hits.iter().filter(|h| !h.shadow);
        verdict.action = live().map(|h| h.action).max().unwrap_or_default();
        let mut categories: Vec<Arc<str>> = live().map(|h| h.category.clone()).collect();
        categories.sort();
        categories.dedup();
        verdict.categories = categories;
        verdict.hits = hits;
        verdict
    }

    /// Adds every model pack's score to a verdict and, at or above a pack's threshold, its
    /// hit, category and action.
    fn score(&self, verdict: &mut Verdict, msg: &Message, scores: impl Iterator<Item = f32>) {
        for (s, score) in self.scorers.iter().zip(scores) {
            // Four decimals, before the threshold is applied: more is noise to a reader and
            // bytes on every verdict, and the verdict then shows exactly what was compared.
            let score = round4(score);
            verdict.scores.push(s.key, score);
            if score < s.threshold {
                continue;
            }
            let hit = Hit {
                rule: Cow::Borrowed(s.rule),
                category: s.category.clone(),
                action: s.action,
                kind: MatchKind::Model,
                start: 0,
                end: msg.text.len(),
                text: msg.text.as_str().into(),
                shadow: s.shadow,
                capped: None,
            };
            let key = |h: &Hit| (h.start, h.end, h.rule.clone());
            let at = verdict.hits.partition_point(|h| key(h) < key(&hit));
            verdict.hits.insert(at, hit);
            // A shadow pack's hit is recorded, not acted on, like any shadow rule's.
            if s.shadow {
                continue;
            }
            verdict.action = verdict.action.max(s.action);
            if let Err(at) = verdict.categories.binary_search(&s.category) {
                verdict.categories.insert(at, s.category.clone());
            }
        }
    }

    /// Why a sound-alike in Han characters (`units` of the pinyin view, matching the term's
    /// characters `term`) is not the term: it runs across sentence punctuation, or the lexicon
    /// explains it as an ordinary word (then with the word).
    fn ordinary_sound_alike(
        &self,
        (ns, ne): (usize, usize),
        term: &[char],
        map: &mut LazyMap<'_>,
    ) -> Option<(SuppressedBy, Option<compact_str::CompactString>)> {
        let sc = SpanChars::of(map, (ns, ne));
        if lexicon::crosses_sentence(sc.gaps(map.text)) {
            return Some((SuppressedBy::Sentence, None));
        }
        let chars = sc.chars();
        let lex = lexicon::lexicon();
        let (first, end) = (sc.first, sc.end);
        if let Some(w) = lex.explain(&chars, first, end, term) {
            return Some((SuppressedBy::Lexicon, Some(w.into())));
        }
        // A repeat the term does not have was folded (消消气 for 笑气): the reader hears the
        // words without it too (消气), so the lexicon is asked again with repeats as one.
        if end - first > term.len() {
            let mut folded: Vec<char> = Vec::with_capacity(chars.len());
            let mut at = Vec::with_capacity(chars.len());
            for &c in &chars {
                if folded.last() != Some(&c) {
                    folded.push(c);
                }
                at.push(folded.len() - 1);
            }
            return lex
                .explain(&folded, at[first], at[end - 1] + 1, term)
                .map(|w| (SuppressedBy::Lexicon, Some(w.into())));
        }
        None
    }

    fn hit(
        &self,
        pack: u32,
        rule: &'static str,
        kind: MatchKind,
        msg: &Message,
        s: usize,
        e: usize,
    ) -> Hit {
        let info = &self.packs[pack as usize];
        Hit {
            rule: Cow::Borrowed(rule),
            category: info.category.clone(),
            action: info.action,
            kind,
            start: s,
            end: e,
            text: msg.text[s..e].into(),
            shadow: info.shadow,
            capped: None,
        }
    }
}

/// Rule ids as `&'static str`: interned for the life of the process, so putting one on a hit
/// copies a pointer. An `Arc` would be cloned and dropped per hit, and with a large dictionary
/// the count sits on a cache line no other hit touches: one cache miss each time (measured: 90%
/// of the time spent making a hit). Recompiling the same rules reuses the interned ids, so only
/// ids never seen before add memory. The ids are cut from large leaked blocks: an allocation per
/// id cost twice the id's own bytes in headers and rounding.
fn intern(s: &str) -> &'static str {
    /// Ids this long or longer get a block of their own.
    const BLOCK: usize = 64 << 10;
    struct Names {
        set: HashSet<&'static str>,
        /// The unused rest of the current block.
        free: &'static mut [u8],
    }
    static NAMES: OnceLock<Mutex<Names>> = OnceLock::new();
    let mut names = NAMES
        .get_or_init(|| {
            Mutex::new(Names {
                set: HashSet::new(),
                free: &mut [],
            })
        })
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    if let Some(&name) = names.set.get(s) {
        return name;
    }
    let room: &'static mut [u8] = if s.len() >= BLOCK / 4 {
        Box::leak(vec![0; s.len()].into_boxed_slice())
    } else {
        if names.free.len() < s.len() {
            names.free = Box::leak(vec![0; BLOCK].into_boxed_slice());
        }
        let (room, rest) = std::mem::take(&mut names.free).split_at_mut(s.len());
        names.free = rest;
        room
    };
    room.copy_from_slice(s.as_bytes());
    let name: &'static str = std::str::from_utf8(room).expect("copied from a str");
    names.set.insert(name);
    name
}

/// A score in `0..=1` rounded to four decimals: `(score * 1e4).round() / 1e4`, without the
/// call to libm's `roundf` that `f32::round` compiles to on baseline x86-64 (one a message).
/// For `x >= 0` below 2^23, `x - trunc(x)` is exact, so rounding half away from zero is one
/// comparison.
#[inline]
fn round4(score: f32) -> f32 {
    let x = score * 1e4;
    if !(x.is_sign_positive() && x < 8_388_608.0) {
        return x.round() / 1e4;
    }
    let t = x as i32 as f32;
    let r = if x - t >= 0.5 { t + 1.0 } else { t };
    r / 1e4
}

/// Hints the CPU to fetch the first two cache lines of `bytes` (most messages fit in them).
#[inline(always)]
fn prefetch(bytes: &[u8]) {
    let p = bytes.as_ptr();
    crate::hint::prefetch(p);
    crate::hint::prefetch(p.wrapping_add(64));
}

/// The message of a batch buffer that a match ending at `to` (> 0) ends in, given `bounds`
/// (each message's `[start, end)`, in order): the last message starting before `to`. `cursor`
/// is the answer for the previous match; it only moves forward while matches do.
fn message_at(bounds: &[(usize, usize)], cursor: &mut usize, to: usize) -> usize {
    if bounds[*cursor].0 >= to {
        *cursor = bounds.partition_point(|&(s, _)| s < to) - 1;
        return *cursor;
    }
    while bounds.get(*cursor + 1).is_some_and(|&(s, _)| s < to) {
        *cursor += 1;
    }
    *cursor
}

/// Keeps one hit per rule per overlapping span: a term found literally and through pinyin over
/// different spans (仿真枪 as the term, and 真枪 as a sound-alike of it) is one finding. Of the
/// overlapping hits the literal one is kept, then the regex, then the sound-alike; then the
/// longest, then the first. The result is sorted by start, end, then rule.
fn one_per_rule_and_span(hits: &mut Vec<Hit>) {
    let by_position = |a: &Hit, b: &Hit| (a.start, a.end, &a.rule).cmp(&(b.start, b.end, &b.rule));
    hits.sort_unstable_by(by_position);
    if hits.len() < 2 {
        return;
    }
    // Compacted in place: `hits[..kept]` are the clusters' best hits so far, and `ends` the end
    // of each one's cluster. A message has a handful of hits, so the clusters are searched (past
    // 16 clusters, later ones are kept as they come: a text that full is cut to `max_hits`).
    let mut ends: [usize; 16] = [0; 16];
    let (mut kept, mut replaced) = (0, false);
    for r in 0..hits.len() {
        let open = (0..kept.min(ends.len()))
            .rev()
            .find(|&k| hits[k].rule == hits[r].rule && hits[r].start < ends[k]);
        match open {
            Some(k) => {
                ends[k] = ends[k].max(hits[r].end);
                let rank = |h: &Hit| (kind_rank(h.kind), std::cmp::Reverse(h.end - h.start));
                if rank(&hits[r]) < rank(&hits[k]) {
                    hits.swap(k, r);
                    replaced = true;
                }
            }
            None => {
                if kept < ends.len() {
                    ends[kept] = hits[r].end;
                }
                hits.swap(kept, r);
                kept += 1;
            }
        }
    }
    hits.truncate(kept);
    if replaced {
        hits.sort_unstable_by(by_position);
    }
}

/// The verdict's suppressions from the dropped matches: one per rule per overlapping span, and
/// none where a reported hit of the same rule overlaps (the finding is on the verdict already).
fn suppressions(
    dropped: &mut Vec<(Hit, SuppressedBy, Option<compact_str::CompactString>)>,
    hits: &[Hit],
) -> Vec<Suppression> {
    dropped.retain(|(d, _, _)| {
        !hits
            .iter()
            .any(|h| h.rule == d.rule && h.start < d.end && d.start < h.end)
    });
    dropped.sort_by(|a, b| {
        (&a.0.rule, a.0.start, kind_rank(a.0.kind)).cmp(&(
            &b.0.rule,
            b.0.start,
            kind_rank(b.0.kind),
        ))
    });
    let mut out: Vec<Suppression> = Vec::new();
    let mut cluster_end = 0;
    for (h, reason, by) in dropped.drain(..) {
        if let Some(last) = out.last_mut()
            && last.rule == h.rule
            && h.start < cluster_end
        {
            cluster_end = cluster_end.max(h.end);
            continue;
        }
        cluster_end = h.end;
        out.push(Suppression {
            rule: h.rule,
            category: h.category,
            kind: h.kind,
            start: h.start,
            end: h.end,
            text: h.text,
            reason,
            by,
        });
    }
    out.sort_by(|a, b| (a.start, a.end, &a.rule).cmp(&(b.start, b.end, &b.rule)));
    out
}

impl Engine {
    /// The pinyin pattern `id`'s rule and the pack's other terms with its key, in order.
    fn same_key(&self, id: u32) -> impl Iterator<Item = &PinyinRule> {
        let head = &self.pinyin_rules[id as usize];
        std::iter::successors(Some(head), |r| self.pinyin_alts.get(r.alt as usize))
    }
}

fn kind_rank(k: MatchKind) -> u8 {
    match k {
        MatchKind::Term => 0,
        MatchKind::Regex => 1,
        MatchKind::Pinyin => 2,
        MatchKind::Model => 3,
    }
}

/// A hit whose first or last original character is an ASCII letter or digit must not continue
/// a longer ASCII word: with spaces removed, "is bad" would otherwise contain the term "sb".
fn stands_alone(original: &[u8], s: usize, e: usize) -> bool {
    let glued = |edge: Option<&u8>, outside: Option<&u8>| {
        edge.is_some_and(u8::is_ascii_alphanumeric)
            && outside.is_some_and(u8::is_ascii_alphanumeric)
    };
    let before = s.checked_sub(1).and_then(|i| original.get(i));
    !glued(original.get(s), before)
        && !glued(
            e.checked_sub(1).and_then(|i| original.get(i)),
            original.get(e),
        )
}

/// Whether a pinyin-view match is an evasion rather than an ordinary word that happens to sound
/// like the term. Romanised text (any ASCII letter in the span) is deliberate. Otherwise the
/// span must be the same number of characters as the term and keep at least half of the term's
/// characters (at least one): 代开发飘 and 枪枝 are caught, while 强制 ("compulsory", which sounds
/// like 枪支) is not.
fn sounds_deliberate(units: impl Iterator<Item = char>, term: &[char]) -> bool {
    let units: Vec<char> = units.collect();
    if units.iter().any(char::is_ascii_alphabetic) {
        return true;
    }
    if units.len() != term.len() {
        return false;
    }
    let same = units.iter().zip(term).filter(|(a, b)| a == b).count();
    same >= 1 && same * 2 >= term.len()
}

/// Whether a Han match of a term with a doubled character holds each of the term's characters
/// as often in a row as the term does: 时时彩 needs 时 twice (时时才 is the term said with
/// another 彩, 时才 "only then" is not), 牛牛群 needs 牛 twice (牛群 is a herd).
fn keeps_repeats(
    dense_text: &[u8],
    units: &[normalise::Unit],
    rule: &PinyinRule,
    engine: &Engine,
) -> bool {
    let runs = &engine.pinyin_repeats[rule.units.0 as usize..rule.units.1 as usize];
    units.iter().zip(runs).all(|(u, &n)| {
        n < 2 || dense::chars(&dense_text[u.ns as usize..u.ne as usize]).count() >= usize::from(n)
    })
}

/// The characters of a dense span `ns..ne` and of its surroundings as far as a lexicon word
/// can reach (`MAX_WORD` each side), with their ranges in the original text: what the
/// sentence and lexicon checks read.
struct SpanChars {
    window: Vec<Ch>,
    /// Original byte range of each character of the window.
    original: Vec<(usize, usize)>,
    /// The span is `window[first..end]`.
    first: usize,
    end: usize,
}

impl SpanChars {
    fn of(map: &mut LazyMap<'_>, (ns, ne): (usize, usize)) -> SpanChars {
        let all = map.chars();
        let first = all.partition_point(|c| c.d < ns);
        let end = all.partition_point(|c| c.d < ne);
        let lo = first.saturating_sub(lexicon::MAX_WORD);
        let hi = (end + lexicon::MAX_WORD).min(all.len());
        let window = all[lo..hi].to_vec();
        let original = window
            .iter()
            .map(|c| map.original_range(c.u, c.ue))
            .collect();
        SpanChars {
            window,
            original,
            first: first - lo,
            end: end - lo,
        }
    }

    /// What was dropped between characters `i` and `i + 1` of the window.
    fn gap<'a>(&self, text: &'a str, i: usize) -> &'a str {
        gap(text, self.original[i].1, self.original[i + 1].0)
    }

    /// Whether nothing was dropped between characters `i` and `i + 1` of the window.
    fn joined(&self, text: &str, i: usize) -> bool {
        self.gap(text, i).is_empty()
    }

    /// The original text between every two consecutive characters of the span.
    fn gaps<'a>(&'a self, text: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        (self.first..self.end - 1).map(move |i| self.gap(text, i))
    }

    fn chars(&self) -> Vec<char> {
        self.window.iter().map(|c| c.c).collect()
    }

    fn span(&self) -> impl Iterator<Item = char> + '_ {
        self.window[self.first..self.end].iter().map(|c| c.c)
    }
}

/// Whether the digits of a validated number were written as one number. Normalisation drops
/// what stands between digits, so scores (89，99，82), dates and times (2025-01-11 18:45) and
/// lottery draws (2 9 16 18 22) would otherwise pass a checksum as a card or an ID by chance.
/// Not one number: a CJK sentence break, a line break, or an ASCII comma or semicolon between
/// two digits (a list: 6201,3345,1200,1006), or a group of exactly two digits among others
/// (what dates, times, scores and draws are made of), except a last one after groups of four
/// (6222 0212 3456 7800 03). Phone and card numbers are grouped by three or four, or hidden
/// digit by digit (1三8 零-零 1二3 4五6).
fn written_as_one_number(
    span: (usize, usize),
    utf8: &impl Fn(usize, usize) -> (usize, usize),
    map: &mut LazyMap<'_>,
) -> bool {
    let (from, to) = utf8(span.0, span.1);
    let (s, e) = map.original_range(from, to);
    // Nothing dropped (the original is no longer than the digits): the usual case.
    if e - s <= to - from {
        return true;
    }
    let sc = SpanChars::of(map, span);
    let mut groups = vec![1usize];
    for g in sc.gaps(map.text) {
        // A comma or semicolon parts items of a list (scores, codes): nobody writes one
        // card or phone number with them.
        if lexicon::breaks_sentence_in_cjk(g) || g.contains([',', ';']) {
            return false;
        }
        match g.is_empty() {
            true => *groups.last_mut().expect("one group at least") += 1,
            false => groups.push(1),
        }
    }
    let (&last, rest) = groups.split_last().expect("one group at least");
    !rest.contains(&2) && (last != 2 || rest.iter().all(|&n| n == 4))
}

/// Whether China's country code (dense `code..from`) before a mobile number (`from..to`) was
/// written as one: after a `+`, or apart from the number. Glued to it without a `+`, 86 and
/// 11 digits are as likely a 13-digit parcel, order or account number.
fn country_code_written(
    code: usize,
    (from, to): (usize, usize),
    utf8: &impl Fn(usize, usize) -> (usize, usize),
    map: &mut LazyMap<'_>,
) -> bool {
    let (cs, ce) = utf8(code, from);
    let (os, oe) = map.original_range(cs, ce);
    let (ns, ne) = utf8(from, to);
    let number = map.original_range(ns, ne).0;
    let before = map.text[..os].trim_end_matches(blank).chars().next_back();
    matches!(before, Some('+' | '＋' | '﹢' | '➕')) || oe < number
}

/// Whitespace, and the characters that show nothing (zero-width, joiners, variation selectors).
fn blank(c: char) -> bool {
    c.is_whitespace()
        || matches!(c, '\u{200B}'..='\u{200F}' | '\u{2060}'..='\u{2064}' | '\u{FE00}'..='\u{FE0F}' | '\u{FEFF}')
}

/// How a listed term matched with something dropped between its characters was written.
enum Apart {
    /// As the term: together, spelt out, or split where nothing says otherwise (出售大 麻).
    Term,
    /// As other words: an ordinary word, written together, runs across an edge of the span,
    /// so the reader pairs the characters the other way (楼上太大，麻烦小声; 音乐太大 麻烦).
    Explained(SuppressedBy, Option<compact_str::CompactString>),
    /// Across a sentence break inside text that goes on, on the same line, on both sides, with
    /// no word to explain it: two sentences' words meeting (抽完血，洗个澡) or a term hidden
    /// (有冰，毒吗).
    /// The hit stays, at review at most, for a person to tell.
    Ambiguous,
}

impl Apart {
    /// Applies the judgement to the term's hit: why it is dropped, if it is; an ambiguous
    /// one is capped at review, and says so.
    fn apply(self, hit: &mut Hit) -> Option<(SuppressedBy, Option<compact_str::CompactString>)> {
        match self {
            Apart::Term => None,
            Apart::Explained(reason, by) => Some((reason, by)),
            Apart::Ambiguous => {
                hit.action = hit.action.min(Action::Review);
                hit.capped = Some(SuppressedBy::Sentence);
                None
            }
        }
    }
}

/// How a listed term in Han characters, matched with something dropped between its
/// characters, was written ([`Apart`]). Only Han terms are judged (an ASCII spelling split by
/// dots, s.b, is deliberate). A break is CJK sentence punctuation or a line break between some
/// of the term's characters but not all (代，开，发，票 is spelt out); ASCII punctuation is not
/// one, unlike for sound-alikes: between Han characters it is the usual way to hide a term
/// (大.麻). At the start or end of a message or a line (出售冰，毒), or one character a line, a
/// break hides a term. A word that explains the split must be written together (not 代 開 發
/// 票, all apart) and not be one character doubled (人人 体炸弹), which costs an evader nothing.
fn written_apart(span: (usize, usize), map: &mut LazyMap<'_>) -> Apart {
    let sc = SpanChars::of(map, span);
    let text = map.text;
    if !sc.span().all(lexicon::is_han) || sc.gaps(text).all(str::is_empty) {
        return Apart::Term;
    }
    let (first, end) = (sc.first, sc.end);
    let joined_before = first > 0 && sc.joined(text, first - 1);
    let joined_after = end < sc.window.len() && sc.joined(text, end - 1);
    // The span itself is split, so no word holding it all is together: only a word across an
    // edge can explain it, and that needs the edge joined to its neighbour outside.
    if joined_before || joined_after {
        let chars = sc.chars();
        let term: Vec<char> = sc.span().collect();
        // The word must pair the term's characters up to its first gap with what stands
        // before it (手套，现 for 套现), or those after its last gap with what follows (大，麻烦):
        // 有色 before 色情 视频 touches no gap and says nothing about the split.
        let gaps: Vec<usize> = (first..end - 1).filter(|&i| !sc.joined(text, i)).collect();
        let (first_gap, last_gap) = (gaps[0], gaps[gaps.len() - 1]);
        let together = |a: usize, b: usize| {
            let at_gap = (a < first && b == first_gap + 1) || (b > end && a == last_gap + 1);
            at_gap
                && (a..b - 1).all(|i| sc.joined(text, i))
                && chars[a + 1..b].iter().any(|&c| c != chars[a])
        };
        if let Some(w) = lexicon::lexicon().across_edge(&chars, first, end, &term, together) {
            return Apart::Explained(SuppressedBy::Lexicon, Some(w.into()));
        }
    }
    // The text goes on past the span on both sides, on the same line: a space or an emoji in
    // between does not end it (宝宝听话，水 要喝完), a break or a line break does.
    let goes_on = |i: usize| !lexicon::breaks_sentence_in_cjk(sc.gap(text, i));
    let inside = first > 0 && goes_on(first - 1) && end < sc.window.len() && goes_on(end - 1);
    match inside && lexicon::broken_in_part(sc.gaps(text).map(lexicon::breaks_sentence_in_cjk)) {
        true => Apart::Ambiguous,
        false => Apart::Term,
    }
}

/// Per-thread reusable buffers, so screening a chunk allocates little.
#[derive(Default)]
struct Workspace {
    norm: Buffer,
    py: PinyinBuffer,
    raw: Vec<Raw>,
    py_raw: Vec<Raw>,
    scratch: Scratch,
    /// Model scores of the chunk: model pack `k`'s score of message `i` at `k * len + i`.
    scores: Vec<f32>,
}

/// Per-message working space of [`Engine::verdict`], reused between messages.
#[derive(Default)]
struct Scratch {
    map: Mapped,
    /// Hits with the pack that produced them, before allow-lists and de-duplication.
    hits: Vec<(u32, Hit)>,
    /// Allowed spans (pack, original start, original end, the entry as written).
    allowed: Vec<(u32, usize, usize, &'static str)>,
    /// Regex matches (regex, normalised from, to) before validation and overlap removal.
    regex: Vec<(u32, usize, usize)>,
    /// Matches dropped, with why and by what (the allow entry or lexicon word).
    dropped: Vec<(Hit, SuppressedBy, Option<compact_str::CompactString>)>,
    /// The message's characters, for [`LazyMap::chars`].
    chars: Vec<Ch>,
}

/// How many times a normalised term's first and last characters stand in a row.
fn repeat_edges(term: &str) -> (u8, u8) {
    let (first, last) = (term.chars().next(), term.chars().next_back());
    let lead = term.chars().take_while(|&c| Some(c) == first).count();
    let trail = term.chars().rev().take_while(|&c| Some(c) == last).count();
    (lead.min(255) as u8, trail.min(255) as u8)
}

/// The original text between two characters that end at `a` and start at `b`: empty when they
/// come from one original character (ⅱ is i and i, ㍿ is 株式会社), whose ranges coincide.
fn gap(text: &str, a: usize, b: usize) -> &str {
    text.get(a..b).unwrap_or("")
}

/// The dense span of a pinyin match over `units` when a repeat folded into one unit has
/// sentence punctuation between its characters. No sound-alike runs across sentence
/// punctuation, folds included: 代开，开发票 folds to 代开发票 across a break inside the span,
/// which is not the term (`None`); 枪，枪枝 folds to 枪 枝, but the match is 枪枝, after the
/// break, as long as what is left keeps the term's own repeats (`edges`: how many times its
/// first and last characters stand in a row, 2 and 1 for 时时彩). Punctuation between every
/// character (代.开.开.发.飘) is a term spelt out and keeps the whole span, as does a match
/// with no break inside a fold (nearly all: only folded units are looked at). Breaks between
/// units are [`Engine::ordinary_sound_alike`]'s to judge.
fn fold_breaks(
    dense_text: &[u8],
    units: &[normalise::Unit],
    edges: (u8, u8),
    utf8: &impl Fn(usize, usize) -> (usize, usize),
    map: &mut LazyMap<'_>,
) -> Option<(usize, usize)> {
    let whole = (units[0].ns as usize, units[units.len() - 1].ne as usize);
    // Every character of the span: (unit, dense start, dense end).
    let mut chars: Vec<(usize, usize, usize)> = Vec::new();
    for (k, u) in units.iter().enumerate() {
        let inner = &dense_text[u.ns as usize..u.ne as usize];
        let base = u.ns as usize;
        chars.extend(dense::chars(inner).map(|(s, e, _)| (k, base + s, base + e)));
    }
    if chars.len() == units.len() {
        return Some(whole);
    }
    let original: Vec<(usize, usize)> = chars
        .iter()
        .map(|&(_, s, e)| {
            let (s, e) = utf8(s, e);
            map.original_range(s, e)
        })
        .collect();
    // For each gap between consecutive characters: whether it breaks, and whether it lies
    // inside a fold (both characters in one unit).
    let gaps: Vec<(bool, bool)> = (1..chars.len())
        .map(|i| {
            let brk = lexicon::breaks_sentence(gap(map.text, original[i - 1].1, original[i].0));
            (brk, chars[i - 1].0 == chars[i].0)
        })
        .collect();
    if !gaps.iter().any(|&(brk, inside)| brk && inside)
        || !lexicon::broken_in_part(gaps.iter().map(|g| g.0))
    {
        return Some(whole);
    }
    // A fold holds a break and the span is not spelt out: only the first and last units may
    // lose the repeats beyond a break, and only while they keep the term's own repeats.
    let last_unit = units.len() - 1;
    let (mut from, mut to) = (0, chars.len());
    for (i, &(brk, inside)) in gaps.iter().enumerate() {
        if !(brk && inside) {
            continue;
        }
        let k = chars[i].0;
        if k == 0 {
            from = i + 1;
        } else if k == last_unit {
            to = to.min(i + 1);
        } else {
            return None;
        }
    }
    let kept = |k: usize| chars[from..to].iter().filter(|c| c.0 == k).count();
    let (lead, trail) = (usize::from(edges.0.max(1)), usize::from(edges.1.max(1)));
    if from >= to || kept(0) < lead || kept(last_unit) < trail {
        return None;
    }
    // Still a break inside a fold (a one-unit span broken on both sides of its middle).
    if gaps[from..to - 1]
        .iter()
        .any(|&(brk, inside)| brk && inside)
    {
        return None;
    }
    Some((chars[from].1, chars[to - 1].2))
}

/// The offset map of one message, built on first use: only messages with matches need one.
struct LazyMap<'a> {
    text: &'a str,
    /// The message's dense encoding, which the map's text must encode to.
    dense: &'a [u8],
    map: &'a mut Mapped,
    ready: bool,
    /// The message's characters, decoded once on first use ([`LazyMap::chars`]).
    chars: &'a mut Vec<Ch>,
    decoded: bool,
}

/// A character of a message's normalised text: where it starts in the dense encoding, and its
/// byte range in the UTF-8 text.
#[derive(Debug, Clone, Copy)]
struct Ch {
    d: usize,
    u: usize,
    ue: usize,
    c: char,
}

impl LazyMap<'_> {
    /// The message's characters: decoded once a message, so a message with many matches is
    /// not decoded again for each (a 60 KB message of 大.麻 took seconds that way).
    fn chars(&mut self) -> &[Ch] {
        if !self.decoded {
            self.chars.clear();
            let mut u = 0;
            for (d, _, c) in dense::chars(self.dense) {
                let ue = u + c.len_utf8();
                self.chars.push(Ch { d, u, ue, c });
                u = ue;
            }
            self.decoded = true;
        }
        self.chars
    }

    /// Maps `from..to` of the message's normalised text to its original byte range.
    fn original_range(&mut self, from: usize, to: usize) -> (usize, usize) {
        if !self.ready {
            self.map.set(self.text);
            debug_assert_eq!(
                dense::encode(&self.map.text),
                self.dense,
                "both normalisation paths agree"
            );
            self.ready = true;
        }
        self.map.original_range(from, to)
    }
}

/// One Hyperscan match: message index in the chunk, pattern id, byte range within the message's
/// normalised text (or pinyin view).
#[derive(Debug, Clone, Copy)]
struct Raw {
    msg: u32,
    id: u32,
    from: u32,
    to: u32,
}

impl Raw {
    fn new(msg: usize, id: u32, from: usize, to: usize) -> Raw {
        Raw {
            msg: msg as u32,
            id,
            from: from as u32,
            to: to as u32,
        }
    }
}

/// The vector of `X`s that `v` holds once every element is written.
///
/// # Safety
/// Every element of `v` must have been written.
unsafe fn assume_init<X>(v: Vec<MaybeUninit<X>>) -> Vec<X> {
    let mut v = std::mem::ManuallyDrop::new(v);
    // SAFETY: the caller wrote every element; `MaybeUninit<X>` has the layout of `X`, and the
    // pointer, length and capacity come from a vector of that layout.
    unsafe { Vec::from_raw_parts(v.as_mut_ptr().cast::<X>(), v.len(), v.capacity()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `round4` is `(x * 1e4).round() / 1e4` for every score: each f32 in 0..=1 around the
    /// half-way points and the ends, and a sweep.
    #[test]
    fn four_decimal_rounding_equals_roundf() {
        let want = |s: f32| (s * 1e4).round() / 1e4;
        let mut probes: Vec<f32> = vec![0.0, 1.0, -0.0, 0.5, 0.99995, 0.00005, 0.12345];
        for k in 0..=10_000u32 {
            let half = (k as f32 + 0.5) / 1e4;
            probes.extend([
                half,
                f32::from_bits(half.to_bits() - 1),
                f32::from_bits(half.to_bits() + 1),
            ]);
        }
        probes.extend((0..1_000_000u32).map(|i| i as f32 / 1e6));
        for s in probes {
            assert_eq!(round4(s).to_bits(), want(s).to_bits(), "{s}");
        }
    }

    #[test]
    fn one_hit_is_kept_per_rule_per_overlapping_span() {
        use MatchKind::*;
        let hit = |rule: &'static str, kind, start, end| Hit {
            rule: Cow::Borrowed(rule),
            category: "c".into(),
            action: Action::Review,
            kind,
            start,
            end,
            text: "".into(),
            shadow: false,
            capped: None,
        };
        type Spec = (&'static str, MatchKind, usize, usize);
        // (case, hits in, hits kept)
        let table: &[(&str, &[Spec], &[Spec])] = &[
            (
                "term and pinyin over different spans",
                &[("w:a", Pinyin, 3, 12), ("w:a", Term, 0, 9)],
                &[("w:a", Term, 0, 9)],
            ),
            (
                "two sound-alikes: the longest",
                &[("w:a", Pinyin, 0, 6), ("w:a", Pinyin, 3, 12)],
                &[("w:a", Pinyin, 3, 12)],
            ),
            (
                "a chain of overlaps is one span",
                &[
                    ("w:a", Pinyin, 0, 6),
                    ("w:a", Pinyin, 5, 9),
                    ("w:a", Term, 8, 12),
                ],
                &[("w:a", Term, 8, 12)],
            ),
            (
                "apart, the same rule twice",
                &[("w:a", Term, 6, 9), ("w:a", Term, 0, 3)],
                &[("w:a", Term, 0, 3), ("w:a", Term, 6, 9)],
            ),
            (
                "other rules overlapping stay",
                &[
                    ("w:b", Pinyin, 3, 9),
                    ("w:a", Term, 0, 6),
                    ("w:a", Pinyin, 0, 6),
                ],
                &[("w:a", Term, 0, 6), ("w:b", Pinyin, 3, 9)],
            ),
            ("one hit", &[("w:a", Regex, 0, 3)], &[("w:a", Regex, 0, 3)]),
        ];
        for (case, input, want) in table {
            let mut hits: Vec<Hit> = input.iter().map(|&(r, k, s, e)| hit(r, k, s, e)).collect();
            one_per_rule_and_span(&mut hits);
            let got: Vec<Spec> = hits
                .iter()
                .map(|h| (&*h.rule, h.kind, h.start, h.end))
                .map(|(r, k, s, e)| (if r == "w:a" { "w:a" } else { "w:b" }, k, s, e))
                .collect();
            assert_eq!(&got, want, "{case}");
        }
    }

    #[test]
    fn message_at_follows_matches_forward_and_searches_when_one_goes_back() {
        // Messages "abc", "" and "defg" joined with separators: starts 0, 4, 5.
        let bounds = [(0, 3), (4, 4), (5, 9)];
        let mut cursor = 0;
        // (match end, message it ends in), in the order a scan might report them.
        let table = [(1, 0), (3, 0), (7, 2), (9, 2), (2, 0), (6, 2)];
        for (to, want) in table {
            assert_eq!(
                message_at(&bounds, &mut cursor, to),
                want,
                "match ending at {to}"
            );
            assert_eq!(cursor, want);
        }
    }
}
