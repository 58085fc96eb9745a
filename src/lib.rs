//! # qunguard
//!
//! Streaming moderation for city-wide group-chat message streams.
//!
//! A message flows: **source** (Kafka, or JSONL for `qunguard scan`) → **batcher** →
//! [`screen`] (normalise the text against evasion, match every rule pack at once with
//! Hyperscan, map hits back to the original text, apply allow-lists and validators) →
//! [`watch`] (heuristics in stream order) → **verdict** (allow / review / block with categories,
//! hit positions and heuristic reasons) → **sink**.
//!
//! The library's parts:
//! - [`Engine`] compiled from a [`RuleSet`] screens [`Message`]s into [`Verdict`]s ([`model`]
//!   holds the wire records);
//! - [`batch`] is the core both jobs run: input records in, verdicts, rejections and heuristic
//!   records out, in input order;
//! - [`scan`] runs it over JSONL files, [`pipeline`] over Kafka (configured by [`config`],
//!   counted in [`metrics`]).
//!
//! ```no_run
//! use qunguard::{Engine, Message, RuleSet};
//! let rules = RuleSet::load_dir(std::path::Path::new("config/rules")).unwrap();
//! let engine = Engine::compile(&rules).unwrap();
//! let msg = Message {
//!     id: "m1".into(), group_id: "g1".into(), sender_id: "u1".into(), ts: 0,
//!     text: "代 開 發 票，加VX".into(),
//! };
//! let verdict = engine.screen(&msg);
//! println!("{}", serde_json::to_string(&verdict).unwrap());
//! ```

#![deny(missing_docs)]

pub mod batch;
pub mod config;
pub mod diff;
pub mod health;
pub mod metrics;
pub mod model;
pub mod pipeline;
pub mod reload;
pub mod rules;
pub mod scan;
pub mod scorer;
pub mod screen;
pub mod watch;

mod defaults;
mod demo;
mod hint;
mod kafka;
mod loadgen;
mod synth;

pub use model::{Action, Hit, Id, MatchKind, Message, Reason, Recommendation, Scores, Verdict};
pub use model::{SuppressedBy, Suppression};
pub use rules::{Pack, RuleError, RuleSet, Validator};
pub use screen::normalise::{Normalised, Normaliser, normalise};
pub use screen::{CompileError, Engine, PackSummary};

/// For the `qunguard` binary and this repository's benches, tests and examples only: the demo,
/// the load generator, the synthetic stream and Kafka client plumbing. Not an API; it changes
/// without notice.
#[doc(hidden)]
pub mod internal {
    /// The shipped config and rule packs, built in.
    pub mod defaults {
        pub use crate::defaults::{CONFIG_NAME, config, rules};
    }
    /// `qunguard demo`.
    pub mod demo {
        pub use crate::demo::{DemoOptions, run};
    }
    /// `qunguard loadgen`.
    pub mod loadgen {
        pub use crate::loadgen::{LoadgenOptions, LoadgenStats, run};
    }
    /// The synthetic city stream (`qunguard gen`) and bench workloads.
    pub mod synth {
        pub use crate::synth::{Rng, Synth, SynthConfig, workload};
    }
    /// Kafka client settings and topic admin.
    pub mod kafka {
        pub use crate::kafka::{admin, admin_config, consumer_config, probe, producer_config};
    }
}
