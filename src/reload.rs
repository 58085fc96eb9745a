//! Hot reload: the live rule set, and the thread that replaces it on SIGHUP or when a file under
//! the rules directory changes.
//!
//! A new set is loaded and compiled on the reloader's own thread, off the screening path; only
//! a fully compiled [`Engine`] is ever published. The screen stage takes
//! [`LiveRules::current`] once per batch, so a batch is screened by one set from start to end
//! and every verdict carries the version that screened it. A set that fails to load or compile
//! is logged (file, key, fix), counted, and dropped: the running set keeps serving.

use crate::metrics::RulesMetrics;
use crate::rules::RuleSet;
use crate::screen::Engine;
use crossbeam_channel::{Receiver, Sender};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

/// The rule set screening now, replaced whole by a reload.
#[derive(Debug)]
pub struct LiveRules {
    current: RwLock<Arc<Engine>>,
    /// Bumped by every swap: a lock-free way to notice one.
    generation: AtomicU64,
}

impl LiveRules {
    /// Starts with `engine` live.
    pub fn new(engine: Arc<Engine>) -> LiveRules {
        LiveRules {
            current: RwLock::new(engine),
            generation: AtomicU64::new(0),
        }
    }

    /// The live engine. Callers hold it for a whole batch; a reload meanwhile only affects the
    /// next call.
    pub fn current(&self) -> Arc<Engine> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Makes `engine` live; returns the one it replaces.
    pub fn swap(&self, engine: Arc<Engine>) -> Arc<Engine> {
        let mut cur = self.current.write().unwrap_or_else(PoisonError::into_inner);
        let old = std::mem::replace(&mut *cur, engine);
        self.generation.fetch_add(1, Ordering::Release);
        old
    }

    /// How many swaps so far (cheap to poll: no lock).
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }
}

/// What one reload did.
#[derive(Debug)]
pub enum Reloaded {
    /// A new version is live.
    Swapped {
        /// The version it replaced.
        old: String,
        /// The live version.
        new: String,
        /// Time to load and compile it.
        took: Duration,
    },
    /// The files load to the version already live.
    Unchanged(String),
    /// Rejected; the live set keeps serving.
    Failed(String),
}

/// Loads `dir` and compiles it (reusing `cache`), then swaps it in if its version differs.
/// Logs and counts the outcome.
pub fn reload_once(
    live: &LiveRules,
    dir: &Path,
    cache: Option<&Path>,
    metrics: &RulesMetrics,
) -> Reloaded {
    let t0 = Instant::now();
    let old = live.current();
    let result = RuleSet::load_dir(dir)
        .map_err(|e| e.to_string())
        .and_then(|rules| {
            // Loading is cheap next to compiling: skip the compile when nothing changed.
            let version = crate::screen::rules_version(&rules);
            if version == old.rules_version() {
                return Ok(None);
            }
            Engine::compile_cached(&rules, cache)
                .map(Some)
                .map_err(|e| format!("{}: {e}", dir.display()))
        });
    let outcome = match result {
        Ok(None) => Reloaded::Unchanged(old.rules_version().to_string()),
        Ok(Some(engine)) => {
            let new = engine.rules_version().to_string();
            live.swap(Arc::new(engine));
            metrics.set_live(&new);
            Reloaded::Swapped {
                old: old.rules_version().to_string(),
                new,
                took: t0.elapsed(),
            }
        }
        Err(e) => Reloaded::Failed(e),
    };
    match &outcome {
        Reloaded::Swapped { old, new, took } => {
            metrics.reloads.with_label_values(&["ok"]).inc();
            log::info!(
                "rules reloaded: {new} is live (was {old}; loaded and compiled in {took:.2?})"
            );
        }
        Reloaded::Unchanged(v) => {
            metrics.reloads.with_label_values(&["ok"]).inc();
            log::info!("rules reload: unchanged, {v} stays live");
        }
        Reloaded::Failed(e) => {
            metrics.reloads.with_label_values(&["failed"]).inc();
            log::error!(
                "rules reload rejected, {} keeps serving: {e}",
                old.rules_version()
            );
        }
    }
    outcome
}

/// Why a reload was asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Trigger {
    Signal,
    FileChange,
}

/// The reloader thread and what feeds it; stops when dropped.
pub struct Reloader {
    tx: Option<Sender<Trigger>>,
    thread: Option<std::thread::JoinHandle<()>>,
    signals: Option<signal_hook::iterator::Handle>,
    /// Kept alive: dropping it stops watching.
    watcher: Option<DirWatcher>,
}

/// Watches the rules directory; the reload loop waits for a quiet period after a change.
type DirWatcher = notify::RecommendedWatcher;

/// Reloader settings.
#[derive(Debug, Clone)]
pub struct ReloadOptions {
    /// The rules directory.
    pub dir: PathBuf,
    /// The compiled-database cache, if any.
    pub cache: Option<PathBuf>,
    /// Reload on SIGHUP.
    pub sighup: bool,
    /// Reload when a file under `dir` changes, after it has been quiet this long (`None`: do
    /// not watch the files).
    pub watch_debounce: Option<Duration>,
}

impl Reloader {
    /// Starts the reloader thread for `live`.
    pub fn start(
        live: Arc<LiveRules>,
        opts: ReloadOptions,
        metrics: RulesMetrics,
    ) -> std::io::Result<Reloader> {
        let (tx, rx) = crossbeam_channel::unbounded();
        let signals = if opts.sighup {
            let mut signals = signal_hook::iterator::Signals::new([signal_hook::consts::SIGHUP])?;
            let handle = signals.handle();
            let tx = tx.clone();
            std::thread::Builder::new()
                .name("sighup".into())
                .spawn(move || {
                    for _ in signals.forever() {
                        if tx.send(Trigger::Signal).is_err() {
                            return;
                        }
                    }
                })?;
            Some(handle)
        } else {
            None
        };
        // A watcher that cannot start (e.g. the inotify watch limit is spent, common on busy
        // nodes) must not keep the pipeline from starting: SIGHUP still reloads.
        let watcher = match opts.watch_debounce {
            Some(_) => match watch_dir(&opts.dir, tx.clone()) {
                Ok(d) => Some(d),
                Err(e) => {
                    log::warn!(
                        "rules.watch: {e}; file changes will not reload the rules, SIGHUP still does (raise fs.inotify.max_user_watches, or set rules.watch = false to silence this)"
                    );
                    None
                }
            },
            None => None,
        };
        let thread = std::thread::Builder::new()
            .name("reload".into())
            .spawn(move || reload_loop(&live, &opts, &metrics, rx))?;
        Ok(Reloader {
            tx: Some(tx),
            thread: Some(thread),
            signals,
            watcher,
        })
    }

    /// Asks for a reload, as SIGHUP does.
    pub fn trigger(&self) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(Trigger::Signal);
        }
    }
}

impl Drop for Reloader {
    fn drop(&mut self) {
        if let Some(h) = self.signals.take() {
            h.close();
        }
        self.watcher.take();
        self.tx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn watch_dir(dir: &Path, tx: Sender<Trigger>) -> std::io::Result<DirWatcher> {
    use notify::event::{AccessKind, AccessMode};
    use notify::{EventKind, RecursiveMode, Watcher};
    let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        match res {
            // Reading a pack opens it, and a reload reads them all: only a change is a change
            // (counting opens made every reload trigger the next, four times a second).
            Ok(ev)
                if matches!(ev.kind, EventKind::Access(k)
                    if k != AccessKind::Close(AccessMode::Write)) => {}
            Ok(_) => {
                let _ = tx.send(Trigger::FileChange);
            }
            Err(e) => log::warn!("watching the rules directory: {e}"),
        }
    })
    .map_err(std::io::Error::other)?;
    watcher
        .watch(dir, RecursiveMode::Recursive)
        .map_err(|e| std::io::Error::other(format!("cannot watch {}: {e}", dir.display())))?;
    Ok(watcher)
}

fn reload_loop(
    live: &LiveRules,
    opts: &ReloadOptions,
    metrics: &RulesMetrics,
    rx: Receiver<Trigger>,
) {
    while let Ok(first) = rx.recv() {
        // Triggers that piled up while compiling are answered by one reload.
        let mut why = first;
        for t in rx.try_iter() {
            if t == Trigger::Signal {
                why = t;
            }
        }
        // A file change waits until the directory has been quiet a while (an editor or a
        // deploy writes several files, some in several steps); SIGHUP reloads at once.
        if let (Trigger::FileChange, Some(quiet)) = (why, opts.watch_debounce) {
            loop {
                match rx.recv_timeout(quiet) {
                    Ok(Trigger::Signal) => {
                        why = Trigger::Signal;
                        break;
                    }
                    Ok(Trigger::FileChange) => {}
                    Err(_) => break,
                }
            }
        }
        log::info!(
            "rules reload ({}) from {}",
            match why {
                Trigger::Signal => "SIGHUP",
                Trigger::FileChange => "files changed",
            },
            opts.dir.display()
        );
        // A panic while loading or compiling a pack must not end hot reload for good: the
        // live set keeps serving and the next trigger tries again.
        let run = std::panic::AssertUnwindSafe(|| {
            reload_once(live, &opts.dir, opts.cache.as_deref(), metrics)
        });
        if let Err(panic) = std::panic::catch_unwind(run) {
            let what = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("unknown panic");
            metrics.reloads.with_label_values(&["failed"]).inc();
            log::error!(
                "rules reload from {} panicked ({what}); {} keeps serving: please report this with the rule files",
                opts.dir.display(),
                live.current().rules_version()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pack(dir: &Path, name: &str, body: &str) {
        std::fs::write(dir.join(name), body).unwrap();
    }

    #[test]
    fn a_bad_pack_is_rejected_and_the_live_set_keeps_serving() {
        let dir = tempfile::tempdir().unwrap();
        pack(
            dir.path(),
            "ads.toml",
            "category = \"ads\"\naction = \"review\"\nwords = [\"代开发票\"]\n",
        );
        let metrics = crate::metrics::Metrics::new(&[], &[], &[]).rules;
        let engine = Engine::compile(&RuleSet::load_dir(dir.path()).unwrap()).unwrap();
        let first = engine.rules_version().to_string();
        let live = LiveRules::new(Arc::new(engine));
        let count = |o: &str| metrics.reloads.with_label_values(&[o]).get();

        // (pack source, outcome, live version afterwards: the first or a new one)
        let steps: &[(&str, &str, bool)] = &[
            (
                "category = \"ads\"\naction = \"review\"\nwords = [\"代开发票\"]\n",
                "unchanged",
                true,
            ),
            (
                "category = \"ads\"\naction = \"review\"\nwordz = [\"x\"]\n",
                "failed",
                true,
            ),
            (
                "category = \"ads\"\naction = \"block\"\nwords = [\"代开发票\"]\n",
                "swapped",
                false,
            ),
        ];
        for (src, want, first_live) in steps {
            pack(dir.path(), "ads.toml", src);
            let got = reload_once(&live, dir.path(), None, &metrics);
            let kind = match &got {
                Reloaded::Swapped { .. } => "swapped",
                Reloaded::Unchanged(_) => "unchanged",
                Reloaded::Failed(e) => {
                    assert!(e.contains("ads.toml") && e.contains("wordz"), "{e}");
                    "failed"
                }
            };
            assert_eq!(kind, *want, "{src}");
            assert_eq!(
                live.current().rules_version() == first,
                *first_live,
                "{src}"
            );
        }
        assert_eq!((count("ok"), count("failed")), (2, 1));
        let new = live.current().rules_version().to_string();
        assert_eq!(metrics.info.with_label_values(&[&new]).get(), 1);
    }

    #[test]
    fn a_file_change_reloads_without_a_signal() {
        let dir = tempfile::tempdir().unwrap();
        pack(
            dir.path(),
            "ads.toml",
            "category = \"ads\"\naction = \"review\"\nwords = [\"代开发票\"]\n",
        );
        let engine = Engine::compile(&RuleSet::load_dir(dir.path()).unwrap()).unwrap();
        let first = engine.rules_version().to_string();
        let live = Arc::new(LiveRules::new(Arc::new(engine)));
        let metrics = crate::metrics::Metrics::new(&[], &[], &[]).rules;
        let reloads = || {
            let count = |o: &str| metrics.reloads.with_label_values(&[o]).get();
            count("ok") + count("failed")
        };
        let _r = Reloader::start(
            live.clone(),
            ReloadOptions {
                dir: dir.path().to_path_buf(),
                cache: None,
                sighup: false,
                watch_debounce: Some(Duration::from_millis(100)),
            },
            metrics.clone(),
        )
        .unwrap();
        pack(
            dir.path(),
            "ads.toml",
            "category = \"ads\"\naction = \"block\"\nwords = [\"代开发票\"]\n",
        );
        let deadline = Instant::now() + Duration::from_secs(20);
        while live.current().rules_version() == first {
            assert!(
                Instant::now() < deadline,
                "no reload after the file changed"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let m = crate::Message {
            id: "m".into(),
            group_id: "g".into(),
            sender_id: "u".into(),
            ts: 0,
            text: "代开发票".into(),
        };
        assert_eq!(live.current().screen(&m).action, crate::Action::Block);
        // Reading the packs opens them: the reload's own reads must not count as changes (an
        // instance reloaded four times a second, for ever, after its first reload).
        std::thread::sleep(Duration::from_millis(1500));
        assert_eq!(reloads(), 1, "one change, one reload");
        // ...and a later change still reloads.
        pack(
            dir.path(),
            "ads.toml",
            "category = \"ads\"\naction = \"review\"\nwords = [\"代开发票\"]\n",
        );
        let deadline = Instant::now() + Duration::from_secs(20);
        while live.current().screen(&m).action == crate::Action::Block {
            assert!(
                Instant::now() < deadline,
                "no reload after the second change"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        std::thread::sleep(Duration::from_millis(1500));
        assert_eq!(reloads(), 2, "two changes, two reloads");
    }
}
