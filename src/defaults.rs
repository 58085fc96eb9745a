//! The shipped configuration and rule packs, compiled into the binary, so `demo` runs from
//! any directory (a fresh machine, a container, `cargo install`) without the repository.

use crate::config::{Config, ConfigError};
use crate::rules::{Pack, RuleError, RuleSet};
use std::path::Path;

/// Names the built-in config in errors.
pub const CONFIG_NAME: &str = "<built-in config/qunguard.toml>";

/// `config/qunguard.toml` as shipped.
pub const CONFIG: &str = include_str!("../config/qunguard.toml");

/// `config/rules/*.toml` as shipped, in file-name order (as [`RuleSet::load_dir`] reads them).
pub const PACKS: &[(&str, &str)] = &[
    ("ads.toml", include_str!("../config/rules/ads.toml")),
    (
        "disorder.toml",
        include_str!("../config/rules/disorder.toml"),
    ),
    ("drugs.toml", include_str!("../config/rules/drugs.toml")),
    (
        "drugs_review.toml",
        include_str!("../config/rules/drugs_review.toml"),
    ),
    (
        "gambling.toml",
        include_str!("../config/rules/gambling.toml"),
    ),
    ("insult.toml", include_str!("../config/rules/insult.toml")),
    (
        "offensive.toml",
        include_str!("../config/rules/offensive.toml"),
    ),
    (
        "pornography.toml",
        include_str!("../config/rules/pornography.toml"),
    ),
    ("privacy.toml", include_str!("../config/rules/privacy.toml")),
    ("rumour.toml", include_str!("../config/rules/rumour.toml")),
    (
        "subversion.toml",
        include_str!("../config/rules/subversion.toml"),
    ),
    (
        "trade_secret.toml",
        include_str!("../config/rules/trade_secret.toml"),
    ),
    (
        "violence_review.toml",
        include_str!("../config/rules/violence_review.toml"),
    ),
    (
        "violence_terror.toml",
        include_str!("../config/rules/violence_terror.toml"),
    ),
    (
        "vote_canvassing.toml",
        include_str!("../config/rules/vote_canvassing.toml"),
    ),
    ("weapons.toml", include_str!("../config/rules/weapons.toml")),
];

/// The model files of `config/rules` as shipped, by file name.
pub const MODELS: &[(&str, &[u8])] = &[(
    "offensive.model",
    include_bytes!("../config/rules/offensive.model"),
)];

/// The built-in config with environment overrides applied, validated.
pub fn config() -> Result<Config, ConfigError> {
    let mut cfg = Config::parse(CONFIG, CONFIG_NAME)?;
    cfg.apply_env(|k| std::env::var(k).ok());
    cfg.validate(CONFIG_NAME)?;
    Ok(cfg)
}

/// The built-in rule packs.
pub fn rules() -> Result<RuleSet, RuleError> {
    let dir = Path::new("<built-in>/config/rules");
    let (mut packs, mut models) = (Vec::new(), Vec::new());
    for (name, src) in PACKS {
        if crate::scorer::is_model_pack(src) {
            let built_in = |p: &Path| {
                let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
                match MODELS.iter().find(|(n, _)| *n == name) {
                    Some((_, bytes)) => crate::scorer::Model::from_bytes(bytes),
                    None => Err(crate::scorer::ModelError::Read("not built in".into())),
                }
            };
            models.push(crate::scorer::ModelPack::parse_with(
                &dir.join(name),
                src,
                built_in,
            )?);
        } else {
            packs.push(Pack::parse(&dir.join(name), src)?);
        }
    }
    RuleSet::new(packs)?.with_models(models)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_packs_are_exactly_the_shipped_directory() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/rules");
        let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".toml"))
            .collect();
        on_disk.sort();
        let built_in: Vec<&str> = PACKS.iter().map(|(n, _)| *n).collect();
        assert_eq!(
            on_disk, built_in,
            "config/rules changed: list every pack in src/defaults.rs PACKS"
        );
        let loaded = RuleSet::load_dir(&dir).unwrap();
        let embedded = rules().unwrap();
        assert_eq!(loaded.packs.len(), embedded.packs.len());
        assert_eq!(loaded.models.len(), embedded.models.len());
        for (a, b) in loaded.models.iter().zip(&embedded.models) {
            assert_eq!((&a.name, &a.model), (&b.name, &b.model));
        }
        for (a, b) in loaded.packs.iter().zip(&embedded.packs) {
            assert_eq!(a.name, b.name);
            assert_eq!(a.terms.len(), b.terms.len(), "{}", a.name);
            assert_eq!(a.regexes.len(), b.regexes.len(), "{}", a.name);
        }
    }

    #[test]
    fn the_built_in_config_is_valid() {
        let cfg = Config::parse(CONFIG, CONFIG_NAME).unwrap();
        cfg.validate(CONFIG_NAME).unwrap();
    }
}
