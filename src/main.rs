//! The `qunguard` command line: parse arguments, load rules, start the job, map errors to exit
//! codes. Everything else lives in the library.

use anyhow::Context;
use clap::{Parser, Subcommand};
use qunguard::config::Config;
use qunguard::metrics::{Metrics, MetricsServer};
use qunguard::scan::{ScanOptions, ScanWatch, scan_with};
use qunguard::watch::Watch;
use qunguard::{Engine, RuleSet};
use std::io::{BufReader, BufWriter};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

#[derive(Parser)]
#[command(
    name = "qunguard",
    version,
    about = "Streaming moderation for group-chat message streams"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log lines as `text` (for people) or `json` (one object a line, for log shippers).
    /// Level: RUST_LOG (default `info,librdkafka=warn,rdkafka=warn`).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

/// A count that must be at least 1 (a stream of 0 groups has nowhere to post).
fn at_least_one(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(e.to_string()),
    }
}

/// How log lines are written (to stderr).
#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    /// Timestamp, level, target and message.
    Text,
    /// One JSON object a line: `timestamp`, `level`, `target`, `fields.message`.
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Screen JSONL messages from FILE (or stdin) and print one verdict JSON line per input line.
    Scan {
        /// Directory of rule packs (*.toml). Default: `rules.dir` of --config when given,
        /// else config/rules.
        #[arg(long, env = "QUNGUARD_RULES_DIR")]
        rules: Option<PathBuf>,
        /// Input file of JSONL messages; stdin when absent or "-".
        file: Option<PathBuf>,
        /// Longest message text accepted, in bytes (default: `pipeline.max_text_bytes` of
        /// --config, else 65536).
        #[arg(long)]
        max_text_bytes: Option<usize>,
        /// Longest input line accepted, in bytes (default: `pipeline.max_message_bytes` of
        /// --config, else 1 MiB).
        #[arg(long)]
        max_line_bytes: Option<usize>,
        /// Worker threads for screening (default: one per core).
        #[arg(long)]
        threads: Option<usize>,
        /// Config file whose `[watch]` settings drive the heuristics (default: built-in
        /// defaults, as in config/qunguard.toml).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Rules only: no heuristics (rate, floods, pressure), alerts or scorecards.
        #[arg(long)]
        no_watch: bool,
        /// Write alerts and scorecards here, one JSON object a line (default: discarded).
        #[arg(long)]
        records: Option<PathBuf>,
        /// Add "explain" to each verdict line: the normalised text, and for each hit and
        /// suppression its span there and the original bytes of each of its characters.
        #[arg(long)]
        explain: bool,
    },
    /// Write N synthetic city-chat messages as JSONL to stdout (for benchmarks and trials).
    Gen {
        /// How many messages.
        #[arg(long, default_value_t = 100_000)]
        count: usize,
        /// Distinct groups (at least 1).
        #[arg(long, default_value_t = 5000, value_parser = at_least_one)]
        groups: usize,
        /// Seed, for repeatable streams.
        #[arg(long, default_value_t = 42)]
        seed: u64,
    },
    /// Run the Kafka pipeline described by a config file until SIGTERM/Ctrl-C (then drain
    /// in-flight batches, commit offsets and exit).
    Run {
        /// Config file (see config/qunguard.toml for every key).
        #[arg(long, default_value = "config/qunguard.toml")]
        config: PathBuf,
    },
    /// Everything on an embedded mock Kafka: synthetic city stream → pipeline → metrics, with a
    /// live summary each second and a final report. No Kafka install needed.
    Demo {
        /// Config file whose rules, pipeline and watch settings are used (Kafka settings are
        /// replaced by the embedded cluster's). Default: the shipped config/qunguard.toml and
        /// config/rules, built into the binary (QUNGUARD_RULES_DIR still overrides the rules).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Stop after this many seconds (default: run until Ctrl-C).
        #[arg(long)]
        duration: Option<u64>,
        /// Generator rate in messages per second (0 = as fast as the pipeline keeps up).
        #[arg(long, default_value_t = 0)]
        rate: u64,
        /// Metrics endpoint address ("" to disable).
        #[arg(long, default_value = "127.0.0.1:9898")]
        metrics: String,
        /// Distinct groups in the synthetic stream. The stream's `ts` is the wall clock, so
        /// at ~100k msg/s this keeps a group near 1 message a second, as in a city (with 5,000
        /// groups each would see 20 a second and quarrel alerts everywhere).
        #[arg(long, default_value_t = 100_000, value_parser = at_least_one)]
        groups: usize,
    },
    /// Produce the synthetic city stream to a real broker (keyed by group_id).
    Loadgen {
        /// Bootstrap servers.
        #[arg(long, env = "QUNGUARD_KAFKA_BROKERS", default_value = "127.0.0.1:9092")]
        brokers: String,
        /// Take the brokers and the `[kafka.producer]` settings (TLS, SASL…) from this config
        /// file instead of --brokers.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Target topic.
        #[arg(long, default_value = "chat.messages")]
        topic: String,
        /// Messages per second (0 = as fast as possible).
        #[arg(long, default_value_t = 0)]
        rate: u64,
        /// How many messages (0 = until Ctrl-C).
        #[arg(long, default_value_t = 100_000)]
        count: u64,
        /// Distinct groups (at least 1).
        #[arg(long, default_value_t = 5000, value_parser = at_least_one)]
        groups: usize,
        /// Seed, for repeatable streams.
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Make every Nth record malformed (0 = never).
        #[arg(long, default_value_t = 0)]
        malformed_every: u64,
        /// Prefix of message ids.
        #[arg(long, default_value = "m")]
        id_prefix: String,
        /// Also produce member reports to this topic (e.g. chat.reports)...
        #[arg(long)]
        reports_topic: Option<String>,
        /// ...one for every this many messages.
        #[arg(long, default_value_t = 500)]
        report_every: u64,
    },
    /// Create every topic a config names (inputs and outputs) if missing.
    Topics {
        /// Config file.
        #[arg(long, default_value = "config/qunguard.toml")]
        config: PathBuf,
        /// Partitions for new topics.
        #[arg(long, default_value_t = 8)]
        partitions: i32,
        /// Replicas of each new topic (at most the cluster's broker count; 3 is usual in
        /// production, 1 for a single-broker trial).
        #[arg(long, default_value_t = 1)]
        replication_factor: i32,
    },
    /// Replay JSONL messages from FILE (or stdin) through two rule sets and print one JSON line
    /// per message whose action or categories change; a summary goes to stderr. Run it on
    /// recorded traffic before deploying a rule change.
    DiffRules {
        /// The rules directory as deployed now.
        old: PathBuf,
        /// The changed rules directory.
        new: PathBuf,
        /// Input file of JSONL messages; stdin when absent or "-".
        file: Option<PathBuf>,
        /// Longest message text accepted, in bytes (longer ones are skipped and counted).
        #[arg(long, default_value_t = ScanOptions::default().max_text_bytes)]
        max_text_bytes: usize,
    },
    /// Validate and compile a rules directory, print per-pack counts.
    CheckRules {
        /// Directory of rule packs (*.toml).
        dir: PathBuf,
    },
    /// Train a model for a model pack from labelled texts (CSV with `text` and `label` columns,
    /// e.g. COLD's, or JSONL {"text", "label"}); print dev figures and the chosen threshold.
    Train {
        /// Training data; repeat it to train on several files together (e.g. a corpus and
        /// your own ordinary texts, which may hold one label only).
        #[arg(long, required = true)]
        data: Vec<PathBuf>,
        /// Held-out data: the threshold is chosen and the figures measured on it.
        #[arg(long)]
        dev: Option<PathBuf>,
        /// Where to write the model file.
        #[arg(long)]
        out: PathBuf,
        /// Seed of the training order (same data, options and seed → same file).
        #[arg(long, default_value_t = qunguard::scorer::train::TrainOptions::default().seed)]
        seed: u64,
        /// Passes over the data.
        #[arg(long, default_value_t = qunguard::scorer::train::TrainOptions::default().epochs)]
        epochs: u32,
        /// log2 of the number of feature buckets (20 → a 1 MiB model).
        #[arg(long, default_value_t = qunguard::scorer::train::TrainOptions::default().bits)]
        bits: u8,
        /// Shortest character n-gram.
        #[arg(long, default_value_t = qunguard::scorer::train::TrainOptions::default().min_n)]
        min_n: u8,
        /// Longest character n-gram.
        #[arg(long, default_value_t = qunguard::scorer::train::TrainOptions::default().max_n)]
        max_n: u8,
        /// L2 penalty.
        #[arg(long, default_value_t = qunguard::scorer::train::TrainOptions::default().l2)]
        l2: f64,
        /// AdaGrad learning rate.
        #[arg(long, default_value_t = qunguard::scorer::train::TrainOptions::default().learning_rate)]
        learning_rate: f64,
        /// Plain logistic regression, without naive-Bayes feature scaling.
        #[arg(long)]
        no_nb: bool,
        /// Raw n-gram counts, without dividing by the square root of the text's n-grams.
        #[arg(long)]
        no_sqrt_len: bool,
        /// Divide shorter texts as if they had this many n-grams (short texts are not scored
        /// more extreme than their few n-grams warrant).
        #[arg(long, default_value_t = qunguard::scorer::train::TrainOptions::default().len_floor)]
        len_floor: u32,
        /// Choose the lowest threshold flagging at most this share of the dev negatives.
        #[arg(long, default_value_t = qunguard::scorer::train::TrainOptions::default().max_flag_rate)]
        max_flag_rate: f64,
    },
    /// Measure a rules directory on labelled texts (CSV or JSONL, as for `train`; a label may
    /// also name a category): precision, recall, F1 and negatives flagged per category and
    /// overall, and a threshold sweep per model pack.
    Eval {
        /// Directory of rule packs (*.toml).
        #[arg(long, env = "QUNGUARD_RULES_DIR", default_value = "config/rules")]
        rules: PathBuf,
        /// Labelled texts.
        file: PathBuf,
    },
}

/// Where compiled Hyperscan databases are cached: `QUNGUARD_CACHE_DIR` (empty or `off` disables),
/// else `$XDG_CACHE_HOME/qunguard`, else `~/.cache/qunguard`. A directory that cannot be
/// written is warned about once and not used: the cache only saves start-up time, but an
/// operator who set it should learn that it does nothing.
fn cache_dir() -> Option<PathBuf> {
    static DIR: std::sync::OnceLock<Option<PathBuf>> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let dir = configured_cache_dir()?;
        match writable(&dir) {
            Ok(()) => Some(dir),
            Err(e) => {
                say(
                    Level::Warn,
                    &format!(
                        "qunguard: warning: cannot cache compiled rules in {} ({e}); rules are compiled at every start. Set QUNGUARD_CACHE_DIR to a writable directory, or to \"off\".",
                        dir.display()
                    ),
                );
                None
            }
        }
    })
    .clone()
}

/// Creates `dir` if needed and checks that a file can be written in it.
fn writable(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let probe = dir.join(format!(".write-test.{}", std::process::id()));
    std::fs::write(&probe, b"")?;
    std::fs::remove_file(&probe)
}

fn configured_cache_dir() -> Option<PathBuf> {
    match std::env::var_os("QUNGUARD_CACHE_DIR") {
        Some(d) if d.is_empty() || d == "off" => None,
        Some(d) => Some(PathBuf::from(d)),
        None => std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
            .map(|d| d.join("qunguard")),
    }
}

fn load_engine(dir: &Path) -> anyhow::Result<Engine> {
    let rules = RuleSet::load_dir(dir)?;
    Ok(Engine::compile_cached(&rules, cache_dir().as_deref())?)
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let log_format = cli.log_format;
    match cli.command {
        Command::Scan {
            rules,
            file,
            max_text_bytes,
            max_line_bytes,
            threads,
            config,
            no_watch,
            records,
            explain,
        } => {
            // The watch warns through the log (a `ts` in seconds, say), and `--log-format`
            // and RUST_LOG are documented for scan too.
            init_logging(log_format);
            if let Some(n) = threads {
                rayon::ThreadPoolBuilder::new()
                    .num_threads(n)
                    .build_global()
                    .context("setting up the worker threads")?;
            }
            let file_cfg = config.as_deref().map(Config::load).transpose()?;
            let rules = match (rules, &file_cfg) {
                (Some(dir), _) => dir,
                (None, Some(cfg)) => cfg.rules.dir.clone(),
                (None, None) => PathBuf::from("config/rules"),
            };
            let engine = load_engine(&rules)?;
            if let (Some(c), Some(path), false) = (&file_cfg, &config, no_watch) {
                c.check_rules(&engine, &path.display().to_string())?;
            }
            // The pipeline's limits, so that a replay gets the verdicts it gave.
            let limits = file_cfg
                .as_ref()
                .map(|c| c.pipeline.clone())
                .unwrap_or_default();
            let opts = ScanOptions {
                max_text_bytes: max_text_bytes.unwrap_or(limits.max_text_bytes),
                max_line_bytes: max_line_bytes.unwrap_or(limits.max_message_bytes),
                max_hits: limits.max_hits,
                explain,
                ..ScanOptions::default()
            };
            let watch_cfg = match file_cfg {
                Some(c) => c.watch,
                None => qunguard::watch::WatchConfig::default(),
            };
            // A scan reads messages only: no reports or decisions to remember verdicts for.
            let no_joins = qunguard::watch::Joins {
                reports: false,
                decisions: false,
            };
            let mut watch = (!no_watch && watch_cfg.enabled)
                .then(|| Watch::new(watch_cfg).with_joins(no_joins));
            let mut sink: Box<dyn std::io::Write + Send> = match &records {
                Some(p) => Box::new(BufWriter::new(
                    std::fs::File::create(p)
                        .with_context(|| format!("cannot create records file {}", p.display()))?,
                )),
                None => Box::new(std::io::sink()),
            };
            let out = BufWriter::with_capacity(1 << 20, std::io::stdout());
            let stdin = || BufReader::with_capacity(1 << 20, std::io::stdin());
            let sw = watch.as_mut().map(|w| ScanWatch {
                watch: w,
                records: &mut *sink,
            });
            let stats = match file.as_deref() {
                None => scan_with(&engine, sw, stdin(), out, &opts),
                Some(p) if p == Path::new("-") => scan_with(&engine, sw, stdin(), out, &opts),
                Some(p) => {
                    let f = std::fs::File::open(p)
                        .with_context(|| format!("cannot open input {}", p.display()))?;
                    scan_with(
                        &engine,
                        sw,
                        BufReader::with_capacity(1 << 20, f),
                        out,
                        &opts,
                    )
                }
            };
            sink.flush().context("writing the records file")?;
            match stats {
                Ok(s) => {
                    say(
                        Level::Info,
                        &format!(
                            "qunguard scan: {} lines, {} verdicts, {} errors (rules {})",
                            s.lines,
                            s.verdicts,
                            s.errors,
                            engine.rules_version()
                        ),
                    );
                    log::debug!("qunguard scan: stages: {}", s.stages);
                    if let Some(w) = &watch {
                        let b = w.stage_busy();
                        log::debug!(
                            "qunguard scan: watch stages, seconds busy: rates {:.3}; floods {:.3}; ordered pass {:.3}",
                            b.rates.as_secs_f64(),
                            b.floods.as_secs_f64(),
                            b.ordered.as_secs_f64()
                        );
                        let st = w.stats();
                        let mut reasons: Vec<String> =
                            st.reasons.iter().map(|(k, n)| format!("{k} {n}")).collect();
                        reasons.sort();
                        let mut alerts: Vec<String> = st
                            .alerts_opened
                            .iter()
                            .map(|(k, n)| format!("{k} {n}"))
                            .collect();
                        alerts.sort();
                        say(
                            Level::Info,
                            &format!(
                                "qunguard scan: heuristics: reasons [{}], alerts opened [{}], removals recommended {}, scorecards {}",
                                reasons.join(", "),
                                alerts.join(", "),
                                st.removals,
                                st.scorecards
                            ),
                        );
                    }
                    Ok(())
                }
                // A closed pipe (`| head`) is a normal way to stop reading.
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
                Err(e) => Err(e).context("scan failed"),
            }
        }
        Command::Gen {
            count,
            groups,
            seed,
        } => {
            use std::io::Write;
            let cfg = qunguard::internal::synth::SynthConfig {
                groups,
                seed,
                ..Default::default()
            };
            let mut out = BufWriter::with_capacity(1 << 20, std::io::stdout());
            let write = || -> std::io::Result<()> {
                for m in qunguard::internal::synth::Synth::new(cfg).take(count) {
                    serde_json::to_writer(&mut out, &m)?;
                    out.write_all(b"\n")?;
                }
                out.flush()
            };
            match write() {
                // A closed pipe (`| head`) is a normal way to stop reading.
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
                r => r.context("writing the messages"),
            }
        }
        Command::Run { config } => {
            init_logging(log_format);
            // SIGHUP means "reload" from the first instant, not "terminate": one that arrives
            // while the rules compile is remembered and answered once the reloader runs.
            let early_hup = Arc::new(std::sync::atomic::AtomicBool::new(false));
            signal_hook::flag::register(signal_hook::consts::SIGHUP, early_hup.clone())
                .context("installing the SIGHUP handler")?;
            let cfg = Config::load(&config)?;
            let engine = Arc::new(load_engine(&cfg.rules.dir)?);
            cfg.check_rules(&engine, &config.display().to_string())?;
            let metrics = new_metrics(&engine);
            metrics.readiness.set_rules_loaded(true);
            let _server = start_metrics(&cfg.metrics.listen, &metrics)?;
            let stop = stop_on_signals()?;
            log::info!("rules {} loaded", engine.rules_version());
            let live = Arc::new(qunguard::reload::LiveRules::new(engine));
            // SIGHUP reloads the rules (it used to end the process); so can a file change.
            let reloader = qunguard::reload::Reloader::start(
                live.clone(),
                qunguard::reload::ReloadOptions {
                    dir: cfg.rules.dir.clone(),
                    cache: cache_dir(),
                    sighup: true,
                    watch_debounce: cfg
                        .rules
                        .watch
                        .then(|| std::time::Duration::from_millis(cfg.rules.reload_debounce_ms)),
                },
                metrics.rules.clone(),
            )
            .context("starting the rules reloader")?;
            if early_hup.load(std::sync::atomic::Ordering::Relaxed) {
                reloader.trigger();
            }
            qunguard::pipeline::run_live(&cfg, live, metrics, stop)
        }
        Command::Demo {
            config,
            duration,
            rate,
            metrics,
            groups,
        } => {
            init_logging(log_format);
            use qunguard::internal::defaults;
            let (cfg, engine) = match &config {
                Some(path) => {
                    let cfg = Config::load(path)?;
                    let engine = load_engine(&cfg.rules.dir)?;
                    cfg.check_rules(&engine, &path.display().to_string())?;
                    (cfg, engine)
                }
                None => {
                    let cfg = defaults::config()?;
                    let engine = if std::env::var_os("QUNGUARD_RULES_DIR").is_some() {
                        load_engine(&cfg.rules.dir)?
                    } else {
                        Engine::compile_cached(&defaults::rules()?, cache_dir().as_deref())?
                    };
                    (cfg, engine)
                }
            };
            let engine = Arc::new(engine);
            let stop = stop_on_signals()?;
            let opts = qunguard::internal::demo::DemoOptions {
                duration: duration.map(std::time::Duration::from_secs),
                rate,
                metrics_listen: metrics,
                synth: qunguard::internal::synth::SynthConfig {
                    groups,
                    ..Default::default()
                },
                ..Default::default()
            };
            qunguard::internal::demo::run(cfg, engine, &opts, stop)
        }
        Command::Loadgen {
            brokers,
            config,
            topic,
            rate,
            count,
            groups,
            seed,
            malformed_every,
            id_prefix,
            reports_topic,
            report_every,
        } => {
            init_logging(log_format);
            let stop = stop_on_signals()?;
            let opts = qunguard::internal::loadgen::LoadgenOptions {
                topic,
                rate,
                count,
                synth: qunguard::internal::synth::SynthConfig {
                    groups,
                    seed,
                    ..Default::default()
                },
                malformed_every,
                id_prefix,
                reports_topic,
                report_every,
                ..Default::default()
            };
            let cfg = match &config {
                Some(path) => {
                    let k = Config::load(path)?.kafka;
                    qunguard::internal::kafka::producer_config(&k.brokers, &k.producer)
                }
                None => qunguard::internal::kafka::producer_config(&brokers, &Default::default()),
            };
            use qunguard::internal::kafka::probe::{PROBE_TIMEOUT, probe};
            probe(&cfg, PROBE_TIMEOUT)?;
            let stats = qunguard::internal::loadgen::run(&cfg, &opts, &stop, |_| {})?;
            let failed = stats.failed.load(std::sync::atomic::Ordering::Relaxed);
            anyhow::ensure!(failed == 0, "{failed} records failed delivery");
            Ok(())
        }
        Command::Topics {
            config,
            partitions,
            replication_factor,
        } => {
            init_logging(log_format);
            let cfg = Config::load(&config)?;
            let k = &cfg.kafka;
            let topics: Vec<(&str, i32)> = k
                .all_topics()
                .into_iter()
                .map(|t| (t, partitions))
                .collect();
            use qunguard::internal::kafka::admin::{TopicState, ensure_topics};
            let admin = qunguard::internal::kafka::admin_config(&k.brokers, &k.consumer);
            let states = ensure_topics(&admin, &topics, replication_factor)?;
            for (topic, state) in &states {
                match state {
                    TopicState::Created => println!(
                        "created {topic} ({partitions} partitions, replication factor {replication_factor})"
                    ),
                    TopicState::Existed => println!("exists  {topic} (left as it is)"),
                }
            }
            let created = states
                .iter()
                .filter(|(_, s)| *s == TopicState::Created)
                .count();
            println!(
                "ok: {} topics on {}: {created} created, {} already there",
                states.len(),
                k.brokers,
                states.len() - created
            );
            Ok(())
        }
        Command::DiffRules {
            old,
            new,
            file,
            max_text_bytes,
        } => {
            let old = load_engine(&old).with_context(|| format!("old rules {}", old.display()))?;
            let new = load_engine(&new).with_context(|| format!("new rules {}", new.display()))?;
            let out = BufWriter::with_capacity(1 << 20, std::io::stdout().lock());
            let input: Box<dyn std::io::BufRead> = match file.as_deref() {
                None => Box::new(BufReader::with_capacity(1 << 20, std::io::stdin())),
                Some(p) if p == Path::new("-") => {
                    Box::new(BufReader::with_capacity(1 << 20, std::io::stdin()))
                }
                Some(p) => Box::new(BufReader::with_capacity(
                    1 << 20,
                    std::fs::File::open(p)
                        .with_context(|| format!("cannot open input {}", p.display()))?,
                )),
            };
            match qunguard::diff::diff_rules(&old, &new, input, out, max_text_bytes) {
                Ok(s) => {
                    let summary = format!(
                        "qunguard diff-rules: rules {} -> {}: {s}",
                        old.rules_version(),
                        new.rules_version()
                    );
                    say(Level::Info, summary.trim_end());
                    Ok(())
                }
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
                Err(e) => Err(e).context("diff-rules failed"),
            }
        }
        Command::CheckRules { dir } => {
            let engine = load_engine(&dir)?;
            println!(
                "{:<16} {:<16} {:<7} {:>7} {:>6} {:>6}  pinyin",
                "pack", "category", "action", "terms", "allow", "regex"
            );
            for p in engine.packs() {
                println!(
                    "{:<16} {:<16} {:<7} {:>7} {:>6} {:>6}  {}{}",
                    p.name,
                    p.category,
                    p.action.as_str(),
                    p.terms,
                    p.allow,
                    p.regexes,
                    if p.pinyin { "yes" } else { "no" },
                    // Shadow packs are tried on live traffic, never acted on.
                    if p.shadow { "  (shadow)" } else { "" }
                );
            }
            for s in engine.scorers() {
                println!(
                    "model pack {}: threshold {}{}",
                    s.name,
                    s.threshold,
                    if s.shadow {
                        ", shadow (score only)"
                    } else {
                        ""
                    }
                );
            }
            println!(
                "ok: {} packs compiled, rules version {}",
                engine.packs().len(),
                engine.rules_version()
            );
            Ok(())
        }
        Command::Train {
            data,
            dev,
            out,
            seed,
            epochs,
            bits,
            min_n,
            max_n,
            l2,
            learning_rate,
            no_nb,
            no_sqrt_len,
            len_floor,
            max_flag_rate,
        } => {
            let opts = qunguard::scorer::train::TrainOptions {
                seed,
                epochs,
                bits,
                min_n,
                max_n,
                l2,
                learning_rate,
                nb: !no_nb,
                sqrt_len: !no_sqrt_len,
                len_floor,
                max_flag_rate,
            };
            train(&data, dev.as_deref(), &out, &opts)
        }
        Command::Eval { rules, file } => {
            let engine = load_engine(&rules)?;
            let rows = qunguard::scorer::data::read(&file)?;
            // A mistyped category would count its texts as misses of a category nothing
            // flags.
            let known = engine.categories();
            if let Some((line, c)) = rows
                .iter()
                .filter_map(|r| Some((r.line, r.label.category()?)))
                .find(|(_, c)| !known.contains(c))
            {
                anyhow::bail!(
                    "{}:{line}: label {c:?} is no category of the rules in {} (they have: {}); fix the label or use 0/1",
                    file.display(),
                    rules.display(),
                    known.join(", ")
                );
            }
            let report = qunguard::scorer::eval::evaluate(&engine, &rows);
            print!("{report}");
            println!("rules version {}", engine.rules_version());
            Ok(())
        }
    }
}

/// A model learns one yes/no question: its data needs 0/1 labels, and both of them.
/// Refuses category labels in `path`'s rows.
fn binary_labels(path: &Path, rows: &[qunguard::scorer::data::Labelled]) -> anyhow::Result<()> {
    if let Some((line, c)) = rows
        .iter()
        .find_map(|r| Some((r.line, r.label.category()?)))
    {
        let n = rows.iter().filter(|r| r.label.category().is_some()).count();
        anyhow::bail!(
            "{}:{line}: {n} rows are labelled with a category name (the first, on this line: {c:?}); a model is trained on 0/1 labels (true/false, yes/no), category labels are for `qunguard eval`",
            path.display()
        );
    }
    Ok(())
}

/// Refuses data (`what`: the files it came from) without examples of both labels.
fn both_labels(what: &str, rows: &[qunguard::scorer::data::Labelled]) -> anyhow::Result<()> {
    let positive = rows.iter().filter(|r| r.label.is_positive()).count();
    anyhow::ensure!(
        positive > 0 && positive < rows.len(),
        "{what}: {positive} of {} rows are positive; training, and the figures on it, need examples of both labels",
        rows.len()
    );
    Ok(())
}

fn train(
    data: &[PathBuf],
    dev: Option<&Path>,
    out: &Path,
    opts: &qunguard::scorer::train::TrainOptions,
) -> anyhow::Result<()> {
    use qunguard::scorer::{data::read, train::train};
    anyhow::ensure!(
        (10..=24).contains(&opts.bits)
            && (1..=3).contains(&opts.max_n)
            && (1..=opts.max_n).contains(&opts.min_n),
        "--bits must be 10..=24, --max-n 1..=3 and --min-n 1..=max-n"
    );
    anyhow::ensure!(
        opts.epochs >= 1 && opts.max_flag_rate > 0.0 && opts.max_flag_rate < 1.0,
        "--epochs must be at least 1 and --max-flag-rate between 0 and 1 (exclusive)"
    );
    let mut rows = Vec::new();
    for path in data {
        let file = read(path)?;
        binary_labels(path, &file)?;
        rows.extend(file);
    }
    let names: Vec<String> = data.iter().map(|p| p.display().to_string()).collect();
    both_labels(&names.join(" + "), &rows)?;
    let dev_rows = dev.map(read).transpose()?;
    if let (Some(path), Some(dev_rows)) = (dev, &dev_rows) {
        binary_labels(path, dev_rows)?;
        both_labels(&path.display().to_string(), dev_rows)?;
    }
    let t = train(&rows, dev_rows.as_deref(), opts);
    std::fs::write(out, t.model.to_bytes())
        .with_context(|| format!("cannot write the model to {}", out.display()))?;
    let on = match dev {
        Some(d) => format!(
            "dev {} ({} texts)",
            d.display(),
            dev_rows.as_ref().map_or(0, Vec::len)
        ),
        None => "the training data (no --dev: optimistic)".into(),
    };
    println!(
        "trained on {} texts ({} positive) → {} ({} bytes)",
        rows.len(),
        rows.iter().filter(|r| r.label.is_positive()).count(),
        out.display(),
        t.model.to_bytes().len()
    );
    println!("figures on {on}:");
    println!("{}", t.figures);
    println!(
        "threshold = {}   # the lowest flagging at most {:.2}% of the negatives",
        t.threshold,
        100.0 * opts.max_flag_rate
    );
    Ok(())
}

/// Logs through `tracing`; the `log` records of qunguard and its crates (rdkafka among them)
/// arrive through tracing-subscriber's log bridge.
fn init_logging(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,librdkafka=warn,rdkafka=warn"));
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        // Colour codes only for people at a terminal, not in files and log collectors.
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

fn new_metrics(engine: &Engine) -> Metrics {
    let packs: Vec<&str> = engine.packs().iter().map(|p| p.name.as_str()).collect();
    Metrics::new(
        &engine.categories(),
        qunguard::watch::ALERT_KINDS,
        qunguard::watch::REASONS,
    )
    .with_packs(&packs)
}

fn start_metrics(listen: &str, metrics: &Metrics) -> anyhow::Result<Option<MetricsServer>> {
    if listen.is_empty() {
        return Ok(None);
    }
    let s = MetricsServer::start(listen, metrics.clone())
        .with_context(|| {
            format!(
                "cannot serve metrics on {listen} (metrics.listen, or QUNGUARD_METRICS_LISTEN; port 0 = any free port, \"\" turns the endpoint off)"
            )
        })?;
    log::info!(
        "metrics on http://{0}/metrics, readiness on http://{0}/readyz",
        s.addr()
    );
    Ok(Some(s))
}

/// SIGTERM or Ctrl-C asks for a clean stop (drain, commit); a second one exits at once.
fn stop_on_signals() -> anyhow::Result<Arc<AtomicBool>> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [SIGINT, SIGTERM] {
        signal_hook::flag::register_conditional_shutdown(sig, 130, stop.clone())?;
        signal_hook::flag::register(sig, stop.clone())?;
    }
    Ok(stop)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let _ = FORMAT.set(cli.log_format);
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            say(Level::Error, &format!("qunguard: error: {e:#}"));
            ExitCode::FAILURE
        }
    }
}

/// `--log-format`, for [`say`].
static FORMAT: std::sync::OnceLock<LogFormat> = std::sync::OnceLock::new();

/// How much a [`say`] line matters (its `level` in JSON).
#[derive(Clone, Copy)]
enum Level {
    Error,
    Warn,
    Info,
}

/// A command's own words on stderr (its summary, a warning about its setup, the error that
/// ends it), written as the chosen log format writes lines and whatever RUST_LOG says: a log
/// shipper reading JSON gets JSON, a person plain lines.
fn say(level: Level, msg: &str) {
    match FORMAT.get().copied().unwrap_or(LogFormat::Text) {
        LogFormat::Text => eprintln!("{msg}"),
        LogFormat::Json => {
            let one = tracing_subscriber::fmt()
                .json()
                .with_ansi(false)
                .with_writer(std::io::stderr)
                .finish();
            tracing::subscriber::with_default(one, || match level {
                Level::Error => tracing::error!(target: "qunguard", "{msg}"),
                Level::Warn => tracing::warn!(target: "qunguard", "{msg}"),
                Level::Info => tracing::info!(target: "qunguard", "{msg}"),
            });
        }
    }
}
