//! What the engine's table-driven tests share: an engine from inline packs, a message, and the
//! check that a case's hits are exactly the expected ones, with offsets into the original text.

#![allow(dead_code)] // each test crate uses its own part of this

use qunguard::{Engine, MatchKind, Message, Pack, RuleSet};
use std::path::Path;

/// (case, text, expected hits as (rule, kind, original substring)).
pub type Case = (
    &'static str,
    &'static str,
    &'static [(&'static str, MatchKind, &'static str)],
);

/// An engine compiled from `(name, toml)` packs, each read as `rules/NAME.toml`.
pub fn engine_of(packs: &[(&str, &str)]) -> Engine {
    let packs: Vec<Pack> = packs
        .iter()
        .map(|(name, src)| Pack::parse(Path::new(&format!("rules/{name}.toml")), src).unwrap())
        .collect();
    Engine::compile(&RuleSet::new(packs).unwrap()).unwrap()
}

/// The shipped packs (`config/rules`), compiled once per test binary.
pub fn shipped() -> &'static Engine {
    static E: std::sync::OnceLock<Engine> = std::sync::OnceLock::new();
    E.get_or_init(|| {
        Engine::compile(&RuleSet::load_dir(Path::new("config/rules")).unwrap()).unwrap()
    })
}

/// A message holding `text`.
pub fn msg(text: &str) -> Message {
    Message {
        id: "m".into(),
        group_id: "g".into(),
        sender_id: "u".into(),
        ts: 1,
        text: text.into(),
    }
}

/// Screens each case's text with `e`: its hits must be exactly the expected ones, in order, and
/// each hit's offsets must slice its text out of the original.
pub fn check(e: &Engine, cases: &[Case]) {
    for (name, text, want) in cases {
        let v = e.screen(&msg(text));
        let got: Vec<(&str, MatchKind, &str)> = v
            .hits
            .iter()
            .map(|h| {
                assert_eq!(
                    &text[h.start..h.end],
                    h.text,
                    "{name}: offsets must slice the original"
                );
                (&*h.rule, h.kind, h.text.as_str())
            })
            .collect();
        assert_eq!(&got, want, "case {name:?}: {text:?}: {v:?}");
    }
}
