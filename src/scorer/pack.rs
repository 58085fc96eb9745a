//! Model packs: a rules-directory pack that names a model file instead of terms.

use super::Model;
use crate::model::Action;
use crate::rules::RuleError;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use toml::Spanned;

/// The model pack file as written (see README.md, "Model packs").
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ModelPackFile {
    category: Spanned<String>,
    action: Spanned<Action>,
    #[serde(default)]
    description: Option<String>,
    model: Spanned<String>,
    threshold: Spanned<f64>,
    #[serde(default)]
    shadow: bool,
}

/// A loaded model pack.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelPack {
    /// Pack name: the file name without `.toml`; the rule id of its hits.
    pub name: String,
    /// The label written on verdicts, and the key of its score in `scores`.
    pub category: String,
    /// The action when the score reaches the threshold.
    pub action: Action,
    /// Free text for operators.
    pub description: Option<String>,
    /// Scores at or above this (0–1) flag the message.
    pub threshold: f32,
    /// Report the score only: no hit, category or action.
    pub shadow: bool,
    /// The model.
    pub model: Arc<Model>,
    /// Where the pack was loaded from.
    pub path: PathBuf,
    /// Where the model was loaded from.
    pub model_path: PathBuf,
}

// The threshold is checked to lie in (0, 1], never NaN, so equality is reflexive.
impl Eq for ModelPack {}

/// Whether a pack's source is a model pack (it has a top-level `model` key). Cheap for the
/// large term packs: only a source mentioning `model` at all is parsed to find out.
pub(crate) fn is_model_pack(src: &str) -> bool {
    src.contains("model")
        && toml::from_str::<toml::Table>(src).is_ok_and(|t| t.contains_key("model"))
}

impl ModelPack {
    /// Parses a model pack and loads its model from beside it.
    pub fn parse(path: &Path, src: &str) -> Result<ModelPack, RuleError> {
        ModelPack::parse_with(path, src, Model::load)
    }

    /// Like [`ModelPack::parse`], with the model read by `load` from the path the pack names
    /// (the binary's built-in packs carry their model in memory).
    pub fn parse_with(
        path: &Path,
        src: &str,
        load: impl FnOnce(&Path) -> Result<Model, super::ModelError>,
    ) -> Result<ModelPack, RuleError> {
        let line_of = |at: usize| src[..at.min(src.len())].matches('\n').count() + 1;
        let err = RuleError::in_file(path);
        let file: ModelPackFile = toml::from_str(src).map_err(|e| {
            err(
                "",
                e.span().map(|s| line_of(s.start)),
                e.message().trim().to_string(),
                "see README.md, \"Model packs\", for the keys a model pack may have",
            )
        })?;
        let at = Some(line_of(file.category.span().start));
        let category = crate::rules::category_label(path, file.category.get_ref(), at)?;
        let action = *file.action.get_ref();
        if action == Action::Allow {
            return Err(err(
                "action",
                Some(line_of(file.action.span().start)),
                "a model pack cannot allow".into(),
                "use \"review\" or \"block\"",
            ));
        }
        let threshold = *file.threshold.get_ref();
        if !(threshold > 0.0 && threshold <= 1.0) {
            return Err(err(
                "threshold",
                Some(line_of(file.threshold.span().start)),
                format!("threshold {threshold} is outside (0, 1]"),
                "scores run from 0 to 1; `qunguard train` and `qunguard eval` suggest one",
            ));
        }
        let model_path = path
            .parent()
            .unwrap_or(Path::new("."))
            .join(file.model.get_ref());
        let model = load(&model_path).map_err(|e| RuleError {
            file: model_path.clone(),
            key: String::new(),
            line: None,
            problem: format!("{e} (named by `model` in {})", path.display()),
            fix: "the path is relative to the pack's directory; restore the file shipped with \
                  qunguard or write a new one with `qunguard train`"
                .into(),
        })?;
        Ok(ModelPack {
            name: crate::rules::pack_name(path),
            category,
            action,
            description: file.description,
            threshold: threshold as f32,
            shadow: file.shadow,
            model: Arc::new(model),
            path: path.to_path_buf(),
            model_path,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_top_level_model_key_makes_a_model_pack() {
        // (source, is a model pack)
        let cases = [
            (
                "category = \"x\"\naction = \"review\"\nmodel = \"m\"\nthreshold = 0.5\n",
                true,
            ),
            (
                "category = \"x\"\naction = \"review\"\nwords = [\"model\"]\n",
                false,
            ),
            (
                "category = \"x\"\naction = \"review\"\nwords = [\"a\"]\n",
                false,
            ),
            ("model = [broken", false),
        ];
        for (src, want) in cases {
            assert_eq!(is_model_pack(src), want, "{src}");
        }
    }

    /// (pack source, key the error names, words it holds); the model file `m.model` exists.
    #[test]
    fn bad_model_packs_name_the_file_key_and_fix() {
        let dir = tempfile::tempdir().unwrap();
        let f = super::super::Features {
            bits: 10,
            min_n: 1,
            max_n: 2,
            sqrt_len: false,
            len_floor: 0,
        };
        let model = Model::quantise(f, 0.0, &[0.1; 1024]);
        std::fs::write(dir.path().join("m.model"), model.to_bytes()).unwrap();
        std::fs::write(dir.path().join("bad.model"), b"not a model").unwrap();
        let pack = |rest: &str| format!("category = \"offensive\"\naction = \"review\"\n{rest}");
        let cases = [
            (
                pack("model = \"m.model\"\nthreshold = 0\n"),
                "threshold",
                "outside (0, 1]",
            ),
            (
                pack("model = \"m.model\"\nthreshold = 0.5\nwords = [\"x\"]\n"),
                "",
                "unknown field `words`",
            ),
            (
                pack("model = \"m.model\"\n"),
                "",
                "missing field `threshold`",
            ),
            (
                "category = \"o\"\naction = \"allow\"\nmodel = \"m.model\"\nthreshold = 0.5\n"
                    .into(),
                "action",
                "cannot allow",
            ),
            (
                pack("model = \"gone.model\"\nthreshold = 0.5\n"),
                "",
                "gone.model: cannot read the model file",
            ),
            (
                pack("model = \"bad.model\"\nthreshold = 0.5\n"),
                "",
                "bad.model: not a qunguard model file",
            ),
        ];
        let path = dir.path().join("offensive.toml");
        for (src, key, needle) in &cases {
            let e = ModelPack::parse(&path, src).unwrap_err();
            assert_eq!(e.key, *key, "{src}: {e}");
            assert!(e.to_string().contains(needle), "{src}: {e}");
            assert!(e.to_string().contains("fix:"), "{e}");
        }
        let ok = ModelPack::parse(
            &path,
            &pack("model = \"m.model\"\nthreshold = 0.7\nshadow = true\n"),
        )
        .unwrap();
        assert_eq!(
            (ok.threshold, ok.shadow, ok.action),
            (0.7, true, Action::Review)
        );
        assert_eq!(*ok.model, model);
    }
}
