//! The `qunguard run` configuration file (`config/qunguard.toml`).
//!
//! Every section and key is documented here and in the shipped file; unknown keys are rejected
//! (a misspelt key silently falling back to a default is how moderation quietly stops working).
//! Defaults live in the `Default` impls below and nowhere else. After parsing, environment
//! overrides apply, then [`Config::validate`] checks values and reports errors that name the
//! file, the key and the fix.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// Environment variables that override config keys (applied after the file is read).
pub const ENV_OVERRIDES: &[(&str, &str)] = &[
    ("QUNGUARD_KAFKA_BROKERS", "kafka.brokers"),
    ("QUNGUARD_KAFKA_GROUP_ID", "kafka.group_id"),
    ("QUNGUARD_METRICS_LISTEN", "metrics.listen"),
    ("QUNGUARD_RULES_DIR", "rules.dir"),
    (
        "QUNGUARD_KAFKA_GROUP_INSTANCE_ID",
        "kafka.group_instance_id",
    ),
];

/// A configuration problem: where it is and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file (or `<built-in>` / `<env>`).
    pub file: String,
    /// Dotted key, e.g. `kafka.brokers`; empty when the file as a whole is the problem.
    pub key: String,
    /// What is wrong.
    pub problem: String,
    /// How to fix it.
    pub fix: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            write!(f, "{}: {}; {}", self.file, self.problem, self.fix)
        } else {
            write!(
                f,
                "{}: `{}`: {}; {}",
                self.file, self.key, self.problem, self.fix
            )
        }
    }
}

impl std::error::Error for ConfigError {}

/// The whole file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Brokers, topics and librdkafka pass-through properties.
    pub kafka: KafkaConfig,
    /// Batching, limits and queue depths.
    pub pipeline: PipelineConfig,
    /// Rule packs.
    pub rules: RulesConfig,
    /// The Prometheus endpoint.
    pub metrics: MetricsConfig,
    /// Heuristics, alerts, reports and scorecards (see README "Heuristics").
    pub watch: crate::watch::WatchConfig,
    /// What `run` logs besides events.
    pub log: LogConfig,
    /// Keys set by [`ENV_OVERRIDES`] as `(variable, key)`, so errors name the variable.
    #[serde(skip)]
    from_env: Vec<(&'static str, &'static str)>,
    /// The bounded store of recent message texts behind corrections and labelled examples
    /// (off by default: it keeps members' texts in memory).
    pub recent_messages: RecentMessagesConfig,
}

/// `[recent_messages]`: recent messages kept, text included, so that a rules reload can
/// re-screen them (corrections) and reviewers' decisions can be written with their text
/// (labelled examples). Off by default for privacy: with `count = 0` no text is kept beyond
/// the batch being screened, no corrections are made and decisions yield no labels.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RecentMessagesConfig {
    /// How many of the most recent messages to keep (0: none, the store is off).
    pub count: usize,
    /// Messages older than this (since they were screened) are forgotten and never corrected.
    pub max_age_secs: u64,
}

impl Default for RecentMessagesConfig {
    fn default() -> Self {
        RecentMessagesConfig {
            count: 0,
            max_age_secs: 3600,
        }
    }
}

/// `[kafka]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaConfig {
    /// Bootstrap servers, `host:port[,host:port…]`. Env: `QUNGUARD_KAFKA_BROKERS`.
    pub brokers: String,
    /// Consumer group; every instance with the same id shares the input partitions.
    /// Env: `QUNGUARD_KAFKA_GROUP_ID`.
    pub group_id: String,
    /// Topics of chat messages (JSON [`crate::Message`] values, keyed by `group_id`).
    pub input_topics: Vec<String>,
    /// Topic of member reports (JSON [`crate::watch::Report`]); empty: no reports are read.
    pub reports_topic: String,
    /// One verdict per message, keyed by `group_id`.
    pub verdicts_topic: String,
    /// A copy of every `review` verdict, with the text, for human reviewers; also report-driven
    /// review requests.
    pub review_topic: String,
    /// Inputs that could not be screened: original bytes, with the reason in headers.
    pub dead_letter_topic: String,
    /// Spike, quarrel and flood alerts and their resolutions.
    pub alerts_topic: String,
    /// Periodic per-group scorecards.
    pub scorecards_topic: String,
    /// Reward ledger for verified member reports.
    pub rewards_topic: String,
    /// Static group membership (librdkafka `group.instance.id`): a stable name per instance
    /// (e.g. a StatefulSet pod name). A restarted instance with the same name gets its
    /// partitions back at once instead of after the old member's session timeout. Empty: a
    /// new member each start. Names must be unique within the group. Env:
    /// `QUNGUARD_KAFKA_GROUP_INSTANCE_ID`.
    pub group_instance_id: String,
    /// Topic of reviewers' decisions (JSON [`crate::watch::Decision`]); empty: none are read.
    pub decisions_topic: String,
    /// Corrections: recent messages whose action a rules reload changed; empty: not written
    /// (needs `[recent_messages]`).
    pub corrections_topic: String,
    /// Labelled examples from reviewers' decisions, for retraining; empty: not written
    /// (needs `[recent_messages]` for the texts).
    pub labels_topic: String,
    /// librdkafka consumer properties passed through as is (e.g. `security.protocol`,
    /// `sasl.mechanisms`, `session.timeout.ms`). They override qunguard's defaults, except
    /// `enable.auto.offset.store`, which must stay `false` for at-least-once delivery.
    pub consumer: BTreeMap<String, String>,
    /// librdkafka producer properties passed through as is (e.g. `compression.type`,
    /// `linger.ms`, SASL/SSL settings).
    pub producer: BTreeMap<String, String>,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        KafkaConfig {
            brokers: "127.0.0.1:9092".into(),
            group_id: "qunguard".into(),
            input_topics: vec!["chat.messages".into()],
            reports_topic: "chat.reports".into(),
            verdicts_topic: "qunguard.verdicts".into(),
            review_topic: "qunguard.review".into(),
            dead_letter_topic: "qunguard.dead-letter".into(),
            alerts_topic: "qunguard.alerts".into(),
            scorecards_topic: "qunguard.scorecards".into(),
            rewards_topic: "qunguard.rewards".into(),
            group_instance_id: String::new(),
            decisions_topic: String::new(),
            corrections_topic: String::new(),
            labels_topic: String::new(),
            consumer: BTreeMap::new(),
            producer: BTreeMap::new(),
        }
    }
}

/// One output topic of the pipeline: the single list of them, so creating, checking, naming
/// and counting topics cannot miss one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OutputTopic {
    /// `kafka.verdicts_topic`.
    Verdicts,
    /// `kafka.review_topic`.
    Review,
    /// `kafka.dead_letter_topic`.
    DeadLetter,
    /// `kafka.alerts_topic`.
    Alerts,
    /// `kafka.scorecards_topic`.
    Scorecards,
    /// `kafka.rewards_topic`.
    Rewards,
    /// `kafka.corrections_topic` (optional).
    Corrections,
    /// `kafka.labels_topic` (optional).
    Labels,
}

impl OutputTopic {
    /// Every output topic; a topic's position here is its [`OutputTopic::index`].
    pub const ALL: [OutputTopic; 8] = [
        OutputTopic::Verdicts,
        OutputTopic::Review,
        OutputTopic::DeadLetter,
        OutputTopic::Alerts,
        OutputTopic::Scorecards,
        OutputTopic::Rewards,
        OutputTopic::Corrections,
        OutputTopic::Labels,
    ];

    /// Whether an empty name turns the topic off (its records are then not made at all).
    pub fn optional(self) -> bool {
        matches!(self, OutputTopic::Corrections | OutputTopic::Labels)
    }

    /// Whether `k` names this topic (every required topic does).
    pub fn enabled(self, k: &KafkaConfig) -> bool {
        !self.name(k).is_empty()
    }

    /// Position in [`OutputTopic::ALL`], for per-topic tables.
    pub fn index(self) -> usize {
        self as usize
    }

    /// The topic's name in `k`.
    pub fn name(self, k: &KafkaConfig) -> &str {
        match self {
            OutputTopic::Verdicts => &k.verdicts_topic,
            OutputTopic::Review => &k.review_topic,
            OutputTopic::DeadLetter => &k.dead_letter_topic,
            OutputTopic::Alerts => &k.alerts_topic,
            OutputTopic::Scorecards => &k.scorecards_topic,
            OutputTopic::Rewards => &k.rewards_topic,
            OutputTopic::Corrections => &k.corrections_topic,
            OutputTopic::Labels => &k.labels_topic,
        }
    }

    /// The topic's name in `k`, to set it.
    pub fn name_mut(self, k: &mut KafkaConfig) -> &mut String {
        match self {
            OutputTopic::Verdicts => &mut k.verdicts_topic,
            OutputTopic::Review => &mut k.review_topic,
            OutputTopic::DeadLetter => &mut k.dead_letter_topic,
            OutputTopic::Alerts => &mut k.alerts_topic,
            OutputTopic::Scorecards => &mut k.scorecards_topic,
            OutputTopic::Rewards => &mut k.rewards_topic,
            OutputTopic::Corrections => &mut k.corrections_topic,
            OutputTopic::Labels => &mut k.labels_topic,
        }
    }

    /// The config key that names it, as error messages spell it.
    pub fn config_key(self) -> &'static str {
        match self {
            OutputTopic::Verdicts => "kafka.verdicts_topic",
            OutputTopic::Review => "kafka.review_topic",
            OutputTopic::DeadLetter => "kafka.dead_letter_topic",
            OutputTopic::Alerts => "kafka.alerts_topic",
            OutputTopic::Scorecards => "kafka.scorecards_topic",
            OutputTopic::Rewards => "kafka.rewards_topic",
            OutputTopic::Corrections => "kafka.corrections_topic",
            OutputTopic::Labels => "kafka.labels_topic",
        }
    }

    /// What one of its records is: the `kind` label of the produced-records metrics and the
    /// key of a `scan --records` line.
    pub fn record_kind(self) -> &'static str {
        match self {
            OutputTopic::Verdicts => "verdict",
            OutputTopic::Review => "review",
            OutputTopic::DeadLetter => "dead_letter",
            OutputTopic::Alerts => "alert",
            OutputTopic::Scorecards => "scorecard",
            OutputTopic::Rewards => "reward",
            OutputTopic::Corrections => "correction",
            OutputTopic::Labels => "label",
        }
    }

    /// Where a heuristics record goes.
    pub fn of_watch_output(o: &crate::watch::Output) -> OutputTopic {
        use crate::watch::Output;
        match o {
            Output::Alert(_) => OutputTopic::Alerts,
            Output::Scorecard(_) => OutputTopic::Scorecards,
            Output::Reward(_) => OutputTopic::Rewards,
            Output::Review(_) => OutputTopic::Review,
        }
    }
}

impl KafkaConfig {
    /// The topics consumed: the input topics, then the reports topic and the decisions topic
    /// when set.
    pub fn source_topics(&self) -> Vec<&str> {
        let mut topics: Vec<&str> = self.input_topics.iter().map(String::as_str).collect();
        if !self.reports_topic.is_empty() {
            topics.push(&self.reports_topic);
        }
        if !self.decisions_topic.is_empty() {
            topics.push(&self.decisions_topic);
        }
        topics
    }

    /// Every topic the pipeline reads or writes: [`KafkaConfig::source_topics`], then the
    /// output topics in [`OutputTopic::ALL`] order (optional ones only when named).
    pub fn all_topics(&self) -> Vec<&str> {
        let mut topics = self.source_topics();
        topics.extend(
            OutputTopic::ALL
                .into_iter()
                .filter(|t| t.enabled(self))
                .map(|t| t.name(self)),
        );
        topics
    }
}

/// `[pipeline]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PipelineConfig {
    /// A batch is screened when it holds this many records…
    pub batch_max_messages: usize,
    /// …or when its oldest record has waited this long (bounds latency at low traffic).
    pub batch_max_wait_ms: u64,
    /// Batches queued between the consumer and the screening stage. A full queue blocks the
    /// consumer, so a slow broker or screener slows consumption instead of growing memory.
    pub queue_batches: usize,
    /// Largest input record accepted for screening, in bytes; larger ones are dead-lettered.
    pub max_message_bytes: usize,
    /// Longest message `text` screened, in bytes; longer ones are dead-lettered.
    pub max_text_bytes: usize,
    /// The dead-letter copy of a record keeps at most this many of its original bytes (with a
    /// `qunguard.truncated` header when cut), so a huge input cannot become an unproducible
    /// dead-letter that stops the pipeline.
    pub dead_letter_max_bytes: usize,
    /// A verdict keeps at most this many hits, and as many suppressions (sorted by position;
    /// `hits_truncated` is set),
    /// so a text full of matches cannot exceed the broker's record size.
    pub max_hits: usize,
    /// On shutdown and partition revoke, how long to wait for in-flight outputs to be
    /// acknowledged before giving up (their inputs are then re-read by the next owner).
    pub drain_timeout_ms: u64,
    /// Screening threads (rayon); 0 = one per core.
    pub threads: usize,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig {
            batch_max_messages: 4096,
            batch_max_wait_ms: 20,
            queue_batches: 4,
            max_message_bytes: 1 << 20,
            max_text_bytes: 64 << 10,
            dead_letter_max_bytes: 512 << 10,
            max_hits: 256,
            drain_timeout_ms: 30_000,
            threads: 0,
        }
    }
}

/// `[rules]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RulesConfig {
    /// Directory of rule packs (`*.toml`); relative paths are resolved against the config
    /// file's directory. Env: `QUNGUARD_RULES_DIR`.
    pub dir: PathBuf,
    /// Reload the rules when a file under `dir` changes (SIGHUP always reloads). A set that
    /// fails to load or compile is rejected and the running one keeps serving.
    pub watch: bool,
    /// How long the files must stay unchanged before a reload: an editor's save or a deploy
    /// that copies several files becomes one reload.
    pub reload_debounce_ms: u64,
}

impl Default for RulesConfig {
    fn default() -> Self {
        RulesConfig {
            dir: PathBuf::from("rules"),
            watch: true,
            reload_debounce_ms: 500,
        }
    }
}

/// `[metrics]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Address of the Prometheus endpoint (`GET /metrics`); empty disables it; port 0 picks a
    /// free port (logged at start). Env: `QUNGUARD_METRICS_LISTEN`.
    pub listen: String,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            listen: "127.0.0.1:9898".into(),
        }
    }
}

/// `[log]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// Seconds between `run`'s one-line summaries (rates, lag, verdict mix); 0 turns them off.
    pub summary_secs: u64,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig { summary_secs: 60 }
    }
}

impl Config {
    /// Whether heuristics, alerts, reports and scorecards run.
    pub fn watch_enabled(&self) -> bool {
        self.watch.enabled
    }

    /// Reads `path`, applies environment overrides and validates.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let file = path.display().to_string();
        let src = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: file.clone(),
            key: String::new(),
            problem: format!("cannot read: {e}"),
            fix: "pass an existing file with --config (see config/qunguard.toml)".into(),
        })?;
        let mut cfg = Config::parse(&src, &file)?;
        let base = path.parent().unwrap_or(Path::new("."));
        if cfg.rules.dir.is_relative() {
            cfg.rules.dir = base.join(&cfg.rules.dir);
        }
        cfg.apply_env(|k| std::env::var(k).ok());
        cfg.validate(&file)?;
        Ok(cfg)
    }

    /// Parses TOML text; `file` names it in errors. Does not apply env overrides or validate.
    pub fn parse(src: &str, file: &str) -> Result<Config, ConfigError> {
        let at = |e: &toml::de::Error| {
            let line = e
                .span()
                .map(|s| src[..s.start.min(src.len())].matches('\n').count() + 1);
            match line {
                Some(l) => format!("{file}:{l}"),
                None => file.to_string(),
            }
        };
        let fix = "compare with the documented keys in config/qunguard.toml";
        let de = toml::Deserializer::parse(src).map_err(|e| ConfigError {
            file: at(&e),
            key: String::new(),
            problem: e.message().trim().to_string(),
            fix: fix.into(),
        })?;
        // The path of the value at fault: a wrong type inside a table names its key.
        serde_path_to_error::deserialize(de).map_err(|e| {
            let key = e.path().to_string();
            let e = e.into_inner();
            let client = key.starts_with("kafka.consumer.") || key.starts_with("kafka.producer.");
            let fix = if client {
                "librdkafka's properties are all strings: quote the value (\"6000\", \"true\")"
            } else {
                fix
            };
            ConfigError {
                file: at(&e),
                // `?` is the path of a value not reached yet (the document as a whole).
                key: if key == "?" || key == "." {
                    String::new()
                } else {
                    key
                },
                problem: e.message().trim().to_string(),
                fix: fix.into(),
            }
        })
    }

    /// Applies [`ENV_OVERRIDES`]; `get` reads a variable (injected for tests).
    pub fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) {
        for (var, key) in ENV_OVERRIDES {
            let Some(v) = get(var) else { continue };
            self.from_env.push((var, key));
            match *key {
                "kafka.brokers" => self.kafka.brokers = v,
                "kafka.group_id" => self.kafka.group_id = v,
                "metrics.listen" => self.metrics.listen = v,
                "rules.dir" => self.rules.dir = PathBuf::from(v),
                "kafka.group_instance_id" => self.kafka.group_instance_id = v,
                _ => unreachable!("every override names a key handled here"),
            }
        }
    }

    /// Checks what the config names in the rules: the categories `[watch.quarrel]` counts as
    /// abuse must be categories of `engine`'s packs, or quarrel alerts and incident mode would
    /// silently never fire (a typo such as `insults`). The built-in default (`insult`) with
    /// packs that have no such category is only warned about: those rules have no abuse to
    /// count. Nothing to check with the watch off.
    pub fn check_rules(&self, engine: &crate::Engine, file: &str) -> Result<(), ConfigError> {
        if !self.watch_enabled() {
            return Ok(());
        }
        // An empty list is no typo, but it turns quarrels off as quietly as one: say so.
        if self.watch.quarrel.categories.is_empty() {
            log::warn!(
                "watch.quarrel.categories in {file} is empty: no quarrel alerts or incident mode from quarrels"
            );
        }
        match self.watch.missing_quarrel_categories(engine).first() {
            None => Ok(()),
            Some(c)
                if self.watch.quarrel.categories
                    == crate::watch::QuarrelConfig::default().categories =>
            {
                log::warn!(
                    "the rules have no category {c:?}, which quarrels count as abuse by default: no quarrel alerts or incident mode; set watch.quarrel.categories in {file} to categories the packs have"
                );
                Ok(())
            }
            Some(c) => Err(ConfigError {
                file: file.to_string(),
                key: "watch.quarrel.categories".into(),
                problem: format!("{c:?} is no category of the rules loaded"),
                fix: format!(
                    "use categories the packs have: {}",
                    engine.categories().join(", ")
                ),
            }),
        }
    }

    /// Checks values that parse but cannot work.
    pub fn validate(&self, file: &str) -> Result<(), ConfigError> {
        let err = |key: &str, problem: String, fix: &str| ConfigError {
            file: match self.from_env.iter().find(|(_, k)| *k == key) {
                Some((var, _)) => format!("environment variable {var} (overrides {file})"),
                None => file.to_string(),
            },
            key: key.to_string(),
            problem,
            fix: fix.to_string(),
        };
        let k = &self.kafka;
        if k.brokers.trim().is_empty() {
            return Err(err(
                "kafka.brokers",
                "is empty".into(),
                "set it to host:port[,host:port…] or set QUNGUARD_KAFKA_BROKERS",
            ));
        }
        if k.group_id.trim().is_empty() {
            return Err(err(
                "kafka.group_id",
                "is empty".into(),
                "name the consumer group all instances share, e.g. \"qunguard\"",
            ));
        }
        if k.input_topics.is_empty() || k.input_topics.iter().any(|t| t.trim().is_empty()) {
            return Err(err(
                "kafka.input_topics",
                "is empty or holds an empty name".into(),
                "list the chat message topics, e.g. [\"chat.messages\"]",
            ));
        }
        for out in OutputTopic::ALL {
            let (key, topic) = (out.config_key(), out.name(k));
            if out.optional() && topic.is_empty() {
                continue;
            }
            if topic.trim().is_empty() {
                return Err(err(key, "is empty".into(), "name an output topic"));
            }
            if k.input_topics.iter().any(|t| t == topic)
                || k.reports_topic == topic
                || k.decisions_topic == topic
            {
                return Err(err(
                    key,
                    format!("`{topic}` is also an input topic"),
                    "use distinct topics, or qunguard would screen its own output",
                ));
            }
        }
        if !k.decisions_topic.is_empty()
            && (k.input_topics.contains(&k.decisions_topic) || k.reports_topic == k.decisions_topic)
        {
            return Err(err(
                "kafka.decisions_topic",
                format!("`{}` is also an input or reports topic", k.decisions_topic),
                "reviewers' decisions need their own topic",
            ));
        }
        if k.input_topics.contains(&k.reports_topic) {
            return Err(err(
                "kafka.reports_topic",
                format!("`{}` is also in kafka.input_topics", k.reports_topic),
                "reports need their own topic",
            ));
        }
        // Outputs that could never be written are a configuration mistake, not a quiet no-op.
        let kept = self.recent_messages.count;
        if !k.corrections_topic.is_empty() && kept == 0 {
            return Err(err(
                "kafka.corrections_topic",
                "is set but recent_messages.count is 0, so no message is kept to re-screen".into(),
                "set recent_messages.count (e.g. 10000; it keeps message texts in memory) or leave corrections_topic empty",
            ));
        }
        if !k.labels_topic.is_empty() && k.decisions_topic.is_empty() {
            return Err(err(
                "kafka.labels_topic",
                "is set but kafka.decisions_topic is empty: labels come from reviewers' decisions"
                    .into(),
                "set kafka.decisions_topic or leave labels_topic empty",
            ));
        }
        if !k.labels_topic.is_empty() && kept == 0 {
            return Err(err(
                "kafka.labels_topic",
                "is set but recent_messages.count is 0, so no decided message has its text".into(),
                "set recent_messages.count (e.g. 10000; it keeps message texts in memory) or leave labels_topic empty",
            ));
        }
        if kept > 0 && k.corrections_topic.is_empty() && k.labels_topic.is_empty() {
            log::warn!(
                "{file}: recent_messages.count = {kept} keeps message texts in memory, but neither kafka.corrections_topic nor kafka.labels_topic uses them: set recent_messages.count = 0"
            );
        }
        for (section, props) in [("consumer", &k.consumer), ("producer", &k.producer)] {
            for (prop, value) in props {
                if prop == "bootstrap.servers" || prop == "group.id" || prop == "group.instance.id"
                {
                    return Err(err(
                        &format!("kafka.{section}.\"{prop}\""),
                        "is set by qunguard".into(),
                        "use kafka.brokers / kafka.group_id / kafka.group_instance_id instead",
                    ));
                }
                if prop == "enable.idempotence" && value != "true" {
                    return Err(err(
                        &format!("kafka.{section}.\"{prop}\""),
                        format!("is {value}"),
                        "remove it: without idempotence a retried send can duplicate or reorder verdicts, and offsets are committed on the strength of those acknowledgements",
                    ));
                }
                // The hand-over on revoke (drain, commit, forget the generation) and the
                // partition count behind /readyz assume eager rebalancing: every revoke
                // takes all partitions.
                if prop == "partition.assignment.strategy" && value.contains("cooperative") {
                    return Err(err(
                        &format!("kafka.{section}.\"{prop}\""),
                        format!("is {value}"),
                        "use \"range\" or \"roundrobin\" (the default \"range,roundrobin\"): incremental cooperative rebalancing is not supported",
                    ));
                }
                if prop == "enable.auto.offset.store" && value != "false" {
                    return Err(err(
                        &format!("kafka.{section}.\"{prop}\""),
                        format!("is {value}"),
                        "remove it: offsets are stored only after outputs are acknowledged",
                    ));
                }
            }
        }
        let p = &self.pipeline;
        for (key, v) in [
            ("pipeline.batch_max_messages", p.batch_max_messages),
            ("pipeline.queue_batches", p.queue_batches),
            ("pipeline.max_message_bytes", p.max_message_bytes),
            ("pipeline.max_text_bytes", p.max_text_bytes),
            ("pipeline.dead_letter_max_bytes", p.dead_letter_max_bytes),
            ("pipeline.max_hits", p.max_hits),
        ] {
            if v == 0 {
                return Err(err(key, "is 0".into(), "use a positive number"));
            }
        }
        if p.max_text_bytes > p.max_message_bytes {
            return Err(err(
                "pipeline.max_text_bytes",
                format!(
                    "{} is larger than pipeline.max_message_bytes ({})",
                    p.max_text_bytes, p.max_message_bytes
                ),
                "the text is part of the record: lower it or raise max_message_bytes",
            ));
        }
        if !self.metrics.listen.is_empty() {
            use std::net::ToSocketAddrs;
            // Host names are fine (`localhost:9898`); they must resolve, as bind will need.
            let resolved = self.metrics.listen.to_socket_addrs().map(|mut a| a.next());
            if !matches!(resolved, Ok(Some(_))) {
                let why = match resolved {
                    Err(e) => format!(" ({e})"),
                    Ok(_) => String::new(),
                };
                return Err(err(
                    "metrics.listen",
                    format!("`{}` is not an address{why}", self.metrics.listen),
                    "use host:port or ip:port such as \"127.0.0.1:9898\", \"localhost:9898\" or \"0.0.0.0:9898\", or \"\" to disable",
                ));
            }
        }
        self.watch
            .validate()
            .map_err(|(key, problem, fix)| err(&key, problem, &fix))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_config_is_valid_and_matches_defaults_where_it_says_so() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/qunguard.toml");
        let cfg = Config::load(&path).expect("shipped config loads");
        assert!(cfg.rules.dir.ends_with("config/./rules") || cfg.rules.dir.ends_with("rules"));
        assert!(cfg.rules.dir.is_dir(), "{:?}", cfg.rules.dir);
        assert_eq!(
            cfg.pipeline.max_text_bytes,
            PipelineConfig::default().max_text_bytes
        );
    }

    #[test]
    fn errors_name_file_key_and_fix() {
        let table: &[(&str, &str, &str)] = &[
            (
                "[kafka]\nbrokerz = \"x\"\n",
                "t.toml:2",
                "unknown field `brokerz`",
            ),
            (
                "[kafka]\nbrokers = \"\"\n",
                "`kafka.brokers`",
                "QUNGUARD_KAFKA_BROKERS",
            ),
            (
                "[kafka]\ninput_topics = []\n",
                "`kafka.input_topics`",
                "chat.messages",
            ),
            (
                "[kafka]\nverdicts_topic = \"chat.messages\"\n",
                "`kafka.verdicts_topic`",
                "screen its own output",
            ),
            (
                "[kafka.consumer]\n\"enable.auto.offset.store\" = \"true\"\n",
                "enable.auto.offset.store",
                "acknowledged",
            ),
            (
                "[pipeline]\nbatch_max_messages = 0\n",
                "batch_max_messages",
                "positive",
            ),
            (
                "[metrics]\nlisten = \"nine\"\n",
                "`metrics.listen`",
                "ip:port",
            ),
            (
                "[kafka.producer]\n\"enable.idempotence\" = \"false\"\n",
                "enable.idempotence",
                "duplicate or reorder",
            ),
            (
                "[kafka.consumer]\n\"group.instance.id\" = \"a\"\n",
                "group.instance.id",
                "kafka.group_instance_id",
            ),
            (
                "[pipeline]\nmax_text_bytes = 99999999\n",
                "max_text_bytes",
                "lower it",
            ),
            (
                "[watch.spike]\nalpha = 2.0\n",
                "`watch.spike.alpha`",
                "(0, 1]",
            ),
            (
                "[watch.flood]\nmax_distance = 9\n",
                "`watch.flood.max_distance`",
                "0..=3",
            ),
            (
                "[watch.rate]\naction = \"allow\"\n",
                "`watch.rate.action`",
                "enabled = false",
            ),
            (
                "[watch.alerts]\nincident_action = \"allow\"\n",
                "`watch.alerts.incident_action`",
                "enabled = false",
            ),
            (
                "[kafka.consumer]\n\"session.timeout.ms\" = 6000\n",
                "`kafka.consumer.session.timeout.ms`",
                "quote the value",
            ),
            (
                "[watch.rate]\ngroup_burst = \"5\"\n",
                "`watch.rate.group_burst`",
                "expected f64",
            ),
            (
                "[watch.scorecard]\ngood_max_per_1000 = 80.0\n",
                "`watch.scorecard.good_max_per_1000`",
                "rectify_min_per_1000",
            ),
            (
                "[watch.limits]\nmembers = 0\n",
                "`watch.limits.members`",
                "positive",
            ),
            // Values that parsed and silently disabled or distorted a heuristic (found by an
            // operator's trial).
            (
                "[watch.rate]\ngroup_burst = 1.5\n",
                "`watch.alerts.incident_rate_factor`",
                "at least 1",
            ),
            (
                "[watch.rate]\nglobal_burst = 0.5\n",
                "`watch.rate.global_burst`",
                "at least 1",
            ),
            (
                "[watch.pressure]\nreview_points = -1.0\n",
                "`watch.pressure.review_points`",
                "0 or a positive",
            ),
            (
                "[watch.pressure]\nevidence = 0\n",
                "`watch.pressure.evidence`",
                "positive",
            ),
            (
                "[watch.flood]\nalert_min_groups = 65\n",
                "`watch.flood.alert_min_groups`",
                "1..=64",
            ),
            (
                "[watch.spike]\nmin_buckets = 65536\n",
                "`watch.spike.min_buckets`",
                "0..=65535",
            ),
            (
                "[watch.scorecard]\nutc_offset_secs = 100000\n",
                "`watch.scorecard.utc_offset_secs`",
                "±14 h",
            ),
            (
                "[watch.scorecard]\nrectify_min_per_1000 = -1.0\n",
                "`watch.scorecard.rectify_min_per_1000`",
                "0 or a positive",
            ),
            (
                "[kafka]\ndecisions_topic = \"chat.messages\"\n",
                "`kafka.decisions_topic`",
                "their own topic",
            ),
            (
                "[kafka]\ncorrections_topic = \"chat.reports\"\n",
                "`kafka.corrections_topic`",
                "screen its own output",
            ),
            (
                "[kafka]\ndecisions_topic = \"d\"\nlabels_topic = \"d\"\n",
                "`kafka.labels_topic`",
                "screen its own output",
            ),
            (
                "[kafka.consumer]\n\"partition.assignment.strategy\" = \"cooperative-sticky\"\n",
                "`kafka.consumer.\"partition.assignment.strategy\"`",
                "not supported",
            ),
            (
                "[kafka]\ncorrections_topic = \"c\"\n",
                "`kafka.corrections_topic`",
                "recent_messages.count",
            ),
            (
                "[kafka]\nlabels_topic = \"l\"\n[recent_messages]\ncount = 10\n",
                "`kafka.labels_topic`",
                "set kafka.decisions_topic",
            ),
            (
                "[kafka]\ndecisions_topic = \"d\"\nlabels_topic = \"l\"\n",
                "`kafka.labels_topic`",
                "recent_messages.count",
            ),
            (
                "[recent_messages]\ncountt = 3\n",
                "t.toml:2",
                "unknown field `countt`",
            ),
        ];
        for (src, want_where, want_fix) in table {
            let e = Config::parse(src, "t.toml")
                .and_then(|c| c.validate("t.toml").map(|_| c))
                .expect_err(src);
            let s = e.to_string();
            assert!(s.starts_with("t.toml"), "{s}");
            assert!(s.contains(want_where), "{src:?}: {s}");
            assert!(s.contains(want_fix), "{src:?}: {s}");
        }
    }

    #[test]
    fn shipped_watch_section_states_the_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/qunguard.toml");
        let cfg = Config::load(&path).expect("shipped config loads");
        assert_eq!(cfg.watch, crate::watch::WatchConfig::default());
    }

    #[test]
    fn shipped_rules_in_production_keys_state_the_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/qunguard.toml");
        let cfg = Config::load(&path).expect("shipped config loads");
        let d = Config::default();
        assert_eq!(cfg.recent_messages, d.recent_messages);
        assert_eq!(
            (cfg.rules.watch, cfg.rules.reload_debounce_ms),
            (d.rules.watch, d.rules.reload_debounce_ms)
        );
        let k = &cfg.kafka;
        assert_eq!(
            [&k.decisions_topic, &k.corrections_topic, &k.labels_topic],
            [
                &d.kafka.decisions_topic,
                &d.kafka.corrections_topic,
                &d.kafka.labels_topic
            ]
        );
        // Optional topics left unnamed are neither required nor created.
        assert!(!k.all_topics().contains(&""));
    }

    #[test]
    fn unknown_watch_keys_are_rejected_with_their_name() {
        let e = Config::parse("[watch.rate]\nspeed = 3\n", "t.toml").unwrap_err();
        assert!(e.to_string().contains("speed"), "{e}");
    }

    #[test]
    fn metrics_listen_accepts_host_names_and_errors_name_the_variable_that_set_it() {
        // (value, from the environment?, accepted?)
        let table: &[(&str, bool, bool)] = &[
            ("localhost:9898", true, true),
            ("localhost:9898", false, true),
            ("127.0.0.1:0", false, true),
            ("[::1]:9898", false, true),
            ("", true, true),
            ("localhost", true, false),
            ("nine", false, false),
        ];
        for (value, env, ok) in table {
            let mut cfg = Config::parse("", "q.toml").unwrap();
            if *env {
                cfg.apply_env(|k| (k == "QUNGUARD_METRICS_LISTEN").then(|| value.to_string()));
            } else {
                cfg.metrics.listen = value.to_string();
            }
            match (cfg.validate("q.toml"), ok) {
                (Ok(()), true) => {}
                (Err(e), false) => {
                    let s = e.to_string();
                    assert!(s.contains("`metrics.listen`"), "{s}");
                    assert_eq!(s.contains("QUNGUARD_METRICS_LISTEN"), *env, "{s}");
                    assert!(s.contains("q.toml"), "{s}");
                }
                (r, _) => panic!("{value:?} (env {env}): {r:?}"),
            }
        }
    }

    #[test]
    fn env_overrides_win_over_the_file() {
        let mut cfg = Config::parse("[kafka]\nbrokers = \"file:1\"\n", "t").unwrap();
        cfg.apply_env(|k| (k == "QUNGUARD_KAFKA_BROKERS").then(|| "env:2".to_string()));
        assert_eq!(cfg.kafka.brokers, "env:2");
        assert_eq!(cfg.kafka.group_id, "qunguard");
    }
}
