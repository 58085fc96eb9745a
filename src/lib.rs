//! # qunguard
//!
//! Streaming moderation for city-wide group-chat message streams.
//!
//! A message flows: **source** (Kafka, or JSONL for `qunguard scan`) → **batcher** →
//! [`screen`] (normalise the text against evasion, match every rule pack at once with
//! Hyperscan, map hits back to the original text, apply allow-lists and validators) →
//! **verdict** (allow / review / block with categories and hit positions) → **sink**.
//!
//! The public API is small:
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

pub mod batch;
pub mod config;
pub mod demo;
pub mod kafka;
pub mod loadgen;
pub mod metrics;
pub mod model;
pub mod pipeline;
pub mod rules;
pub mod scan;
pub mod screen;
pub mod synth;
pub mod watch;

pub use model::{Action, Hit, Id, MatchKind, Message, Reason, Recommendation, Verdict};
pub use rules::{Pack, RuleError, RuleSet, Validator};
pub use screen::normalise::{Normalised, Normaliser, normalise};
pub use screen::{CompileError, Engine, PackSummary};
