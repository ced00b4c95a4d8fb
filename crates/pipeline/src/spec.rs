//! Parse: pipeline YAML -> [`Spec`], a typed mirror of the file.
//!
//! Model and dataset kinds are dispatched here (`kind:`), and `gates:` (the regression
//! gates of `slimbench compare`, [`slimbench_core::gates`]) are typed and checked here;
//! stage parameters are typed in [`crate::resolve`], after matrix expansion. Every error
//! carries the file position of the node it is about (see [`crate::yaml`]).

use std::path::Path;
use std::sync::Arc;

use indexmap::IndexMap;
use serde::Deserialize;
use serde_yaml::Value;
use slimbench_core::config::{DatasetConfig, Defaults, KindSet, ModelConfig};
use slimbench_core::gates::{self, GateRule, Gates};

use crate::diag::{Diagnostic, SpecError, did_you_mean};
use crate::yaml::{self, Pos, SpanIndex, YamlPath};

/// A parsed pipeline file. Stage parameters are still untyped YAML; see
/// [`crate::resolve::resolve`].
#[derive(Debug, Clone)]
pub struct Spec {
    /// The pipeline's name (also its results directory name).
    pub name: String,
    /// Free-text description.
    pub description: String,
    /// Settings every stage inherits.
    pub defaults: Defaults,
    /// Datasets by name.
    pub datasets: IndexMap<String, DatasetConfig>,
    /// Models by name.
    pub models: IndexMap<String, ModelConfig>,
    /// Stages in file order.
    pub stages: Vec<StageSpec>,
    /// Regression gates for `slimbench compare`, by metric.
    pub gates: Gates,
    /// Where the spec came from, for error messages.
    pub source: Source,
}

/// A stage as written.
#[derive(Debug, Clone)]
pub struct StageSpec {
    /// Stage id.
    pub id: String,
    /// Stage kind.
    pub uses: String,
    /// Ids of the stages this one needs.
    pub needs: Vec<String>,
    /// Parameters (typed later, by kind).
    pub with: serde_yaml::Mapping,
    /// Sweep: parameter name -> values; the stage is expanded once per combination.
    pub matrix: IndexMap<String, Vec<Value>>,
    /// Position of the stage in `stages:`.
    pub index: usize,
}

/// The text a spec was parsed from and the positions of its nodes.
#[derive(Debug, Clone)]
pub struct Source {
    /// File name as given.
    pub file: String,
    /// The text.
    pub text: Arc<str>,
    /// Node positions.
    pub spans: SpanIndex,
    /// Paths replaced by `--set`, with the override as written.
    pub overrides: Vec<(YamlPath, String)>,
}

impl Source {
    /// A diagnostic about the value at `path`.
    pub fn at(&self, path: &YamlPath, message: impl Into<String>) -> Diagnostic {
        self.locate(path, message, false)
    }

    /// A diagnostic about the key of the entry at `path` (e.g. an unknown field).
    pub fn at_key(&self, path: &YamlPath, message: impl Into<String>) -> Diagnostic {
        self.locate(path, message, true)
    }

    fn locate(&self, path: &YamlPath, message: impl Into<String>, key: bool) -> Diagnostic {
        let mut d = Diagnostic::at(None, message);
        if let Some((_, origin)) = self.overrides.iter().find(|(p, _)| path.starts_with(p)) {
            d.origin = Some(origin.clone());
        } else {
            d.pos = if key { self.spans.key(path) } else { self.spans.value(path) };
        }
        d
    }

    /// Wrap diagnostics into the error type.
    pub fn error(&self, diagnostics: Vec<Diagnostic>) -> SpecError {
        SpecError { file: self.file.clone(), text: self.text.clone(), diagnostics }
    }

    /// Deserialize `value` (found at `path`) as `T`, turning a failure into a
    /// diagnostic at the failing node.
    pub fn deserialize<T: serde::de::DeserializeOwned>(
        &self,
        path: &YamlPath,
        value: Value,
    ) -> Result<T, Diagnostic> {
        self.deserialize_with(path, value, |d| T::deserialize(d))
    }

    /// Like [`Self::deserialize`] with a custom entry point (used for kind dispatch).
    pub fn deserialize_with<T>(
        &self,
        path: &YamlPath,
        value: Value,
        f: impl FnOnce(serde_path_to_error::Deserializer<'_, '_, Value>) -> Result<T, serde_yaml::Error>,
    ) -> Result<T, Diagnostic> {
        let mut track = serde_path_to_error::Track::new();
        let result = f(serde_path_to_error::Deserializer::new(value, &mut track));
        result.map_err(|e| {
            let at = path.join_serde(&track.path());
            let msg = humanize(&yaml_message(&e.to_string()), &at);
            if msg.starts_with("unknown field") { self.at_key(&at, msg) } else { self.at(&at, msg) }
        })
    }
}

/// serde's "invalid type: string \"two\", expected u32" as "`epochs` expects a whole
/// number, found string \"two\"".
fn humanize(msg: &str, at: &YamlPath) -> String {
    let Some(rest) = msg.strip_prefix("invalid type: ").or_else(|| msg.strip_prefix("invalid value: "))
    else {
        return msg.to_string();
    };
    let Some((found, expected)) = rest.rsplit_once(", expected ") else { return msg.to_string() };
    let expected = match expected {
        "u8" | "u16" | "u32" | "u64" | "usize" => "a whole number (0 or more)",
        "i8" | "i16" | "i32" | "i64" | "isize" => "a whole number",
        "f32" | "f64" => "a number",
        "a sequence" => "a list",
        e if e.starts_with("struct ") || e == "a map" => "a mapping",
        e => e,
    };
    let field = at.0.iter().rev().find_map(|s| match s {
        crate::yaml::Seg::Key(k) => Some(k.as_str()),
        crate::yaml::Seg::Index(_) => None,
    });
    match field {
        Some(f) => format!("`{f}` expects {expected}, found {found}"),
        None => format!("expected {expected}, found {found}"),
    }
}

/// serde_yaml's messages, minus the position it cannot know for values built in memory.
fn yaml_message(msg: &str) -> String {
    msg.trim_start_matches(|c: char| c == ':' || c.is_whitespace())
        .split(" at line ")
        .next()
        .unwrap_or(msg)
        .to_string()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDoc {
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    defaults: Option<Value>,
    #[serde(default)]
    datasets: IndexMap<String, Value>,
    #[serde(default)]
    models: IndexMap<String, Value>,
    stages: Vec<RawStage>,
    #[serde(default)]
    gates: Option<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStage {
    id: String,
    uses: String,
    #[serde(default)]
    needs: OneOrMany,
    #[serde(default)]
    with: Option<serde_yaml::Mapping>,
    #[serde(default)]
    matrix: IndexMap<String, Vec<Value>>,
}

/// `needs: train` or `needs: [train, fp16]`.
#[derive(Deserialize, Default)]
#[serde(untagged, expecting = "a stage id or a list of stage ids")]
enum OneOrMany {
    #[default]
    None,
    One(String),
    Many(Vec<String>),
}

/// Read and parse a pipeline file, applying `--set PATH=VALUE` overrides.
pub fn load_file(path: &Path, overrides: &[String]) -> Result<Spec, SpecError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| SpecError {
        file: file.clone(),
        text: "".into(),
        diagnostics: vec![
            Diagnostic::at(None, format!("cannot read the pipeline file: {e}"))
                .hint("pass the path of a pipeline YAML, e.g. pipelines/quickstart.yaml"),
        ],
    })?;
    let mut spec = parse(&file, &text, overrides)?;
    // A relative dataset `path:` means relative to the pipeline file, as in most tools
    // that read YAML, so a pipeline and its data can move together.
    let base = path.parent().unwrap_or(Path::new(""));
    for cfg in spec.datasets.values_mut() {
        if let Some(p) = cfg.path_mut()
            && p.is_relative()
        {
            *p = base.join(&*p);
        }
    }
    // The same for an imported model's file.
    for cfg in spec.models.values_mut() {
        if let ModelConfig::Onnx(c) = cfg
            && c.path.is_relative()
        {
            c.path = base.join(&c.path);
        }
    }
    Ok(spec)
}

/// Parse pipeline text (`file` is only used in messages).
pub fn parse(file: &str, text: &str, overrides: &[String]) -> Result<Spec, SpecError> {
    let text: Arc<str> = text.into();
    let fail = |d: Diagnostic| SpecError { file: file.to_string(), text: text.clone(), diagnostics: vec![d] };
    let (mut value, spans) =
        yaml::load(&text).map_err(|e| fail(Diagnostic::at(e.pos, format!("invalid YAML: {}", e.message))))?;
    if value.is_null() {
        return Err(fail(
            Diagnostic::at(Some(Pos { line: 1, col: 1 }), "the pipeline file is empty")
                .hint("a pipeline needs at least `name:` and `stages:`"),
        ));
    }
    let mut applied = Vec::new();
    for o in overrides {
        let path = crate::overrides::apply(&mut value, o).map_err(|m| {
            let mut d = Diagnostic::at(None, m);
            d.origin = Some(format!("--set {o}"));
            fail(d)
        })?;
        applied.push((path, format!("--set {o}")));
    }
    let source = Source { file: file.to_string(), text: text.clone(), spans, overrides: applied };
    let root = YamlPath::root();
    let raw: RawDoc = source.deserialize(&root, value).map_err(|d| source.error(vec![d]))?;

    let mut diags = Vec::new();
    if !is_slug(&raw.name) {
        diags.push(
            source
                .at(
                    &root.key("name"),
                    format!("pipeline name `{}` cannot be used as a directory name", raw.name),
                )
                .hint("use letters, digits, `-`, `_` and `.` only"),
        );
    }
    let mut defaults = match raw.defaults {
        Some(v) => source.deserialize(&root.key("defaults"), v).unwrap_or_else(|d| {
            diags.push(d);
            Defaults::default()
        }),
        None => Defaults::default(),
    };
    let problems = defaults.check();
    if problems.is_empty() {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        if let Some(asked) = defaults.clamp_threads(cores) {
            tracing::warn!(
                "defaults.threads is {asked}, more than the {cores} logical cores here; using {cores} \
                 (more threads than cores only slows libtorch down)"
            );
        }
    }
    for (field, msg) in problems {
        diags.push(source.at(&root.key("defaults").key(&field), format!("`{field}` in `defaults` {msg}")));
    }
    let datasets = parse_kinds::<DatasetConfig>(&source, "datasets", raw.datasets, &mut diags);
    let models = parse_kinds::<ModelConfig>(&source, "models", raw.models, &mut diags);
    let gates = raw.gates.map(|v| parse_gates(&source, v, &mut diags)).unwrap_or_default();
    let stages = raw
        .stages
        .into_iter()
        .enumerate()
        .map(|(index, s)| StageSpec {
            id: s.id,
            uses: s.uses,
            needs: match s.needs {
                OneOrMany::None => vec![],
                OneOrMany::One(n) => vec![n],
                OneOrMany::Many(v) => v,
            },
            with: s.with.unwrap_or_default(),
            matrix: s.matrix,
            index,
        })
        .collect::<Vec<_>>();
    if stages.is_empty() {
        diags.push(
            source
                .at(&root.key("stages"), "the pipeline has no stages")
                .hint("add at least one stage, e.g. `- { id: train, uses: train, with: {...} }`"),
        );
    }
    if !diags.is_empty() {
        return Err(source.error(diags));
    }
    Ok(Spec {
        name: raw.name,
        description: raw.description,
        defaults,
        datasets,
        models,
        stages,
        gates,
        source,
    })
}

/// `gates:` — metric name -> rule. Unknown metrics, rules that set nothing and bad
/// thresholds are reported at their node; the other gates are still checked.
fn parse_gates(source: &Source, value: Value, diags: &mut Vec<Diagnostic>) -> Gates {
    let path = YamlPath::root().key("gates");
    if value.is_null() {
        return Gates::new();
    }
    let entries: IndexMap<String, Value> = match source.deserialize(&path, value) {
        Ok(e) => e,
        Err(d) => {
            diags.push(d.hint("`gates:` maps metric names to rules, e.g. `accuracy: { max_drop: 0.005 }`"));
            return Gates::new();
        }
    };
    let mut out = Gates::new();
    for (metric, value) in entries {
        let at = path.key(&metric);
        if !gates::METRICS.contains(&metric.as_str()) {
            let hint = match did_you_mean(&metric, gates::METRICS) {
                Some(m) => format!("did you mean `{m}`?"),
                None => format!("metrics that can be gated: {}", gates::METRICS.join(", ")),
            };
            diags.push(source.at_key(&at, format!("unknown metric `{metric}` in `gates`")).hint(hint));
            continue;
        }
        // `accuracy:` with nothing after it is a rule that sets nothing, said as such.
        let rule = if value.is_null() { Ok(GateRule::default()) } else { source.deserialize(&at, value) };
        let rule: GateRule = match rule {
            Ok(r) => r,
            Err(d) => {
                diags.push(d);
                continue;
            }
        };
        for (field, msg) in rule.check() {
            let d = if field.is_empty() {
                let example = match metric.as_str() {
                    "accuracy" => "max_drop: 0.005",
                    "throughput_ips" => "max_drop: 10%",
                    _ => "max_increase: 10%",
                };
                source.at_key(&at, format!("gate `{metric}` {msg}")).hint(format!(
                    "set `max_drop` (higher is better), `max_increase` (lower is better), `min` or `max`, \
                     e.g. `{metric}: {{ {example} }}`"
                ))
            } else {
                source.at(&at.key(field), format!("gate `{metric}` {msg}"))
            };
            diags.push(d);
        }
        out.insert(metric, rule);
    }
    out
}

/// Names that are safe as directory names.
pub(crate) fn is_slug(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with('.')
        && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// Dispatch each `name: {kind: ..., ...}` entry of a section on its kind.
fn parse_kinds<K: KindSet>(
    source: &Source,
    section: &str,
    entries: IndexMap<String, Value>,
    diags: &mut Vec<Diagnostic>,
) -> IndexMap<String, K> {
    let mut out = IndexMap::new();
    for (name, value) in entries {
        let path = YamlPath::root().key(section).key(&name);
        let Value::Mapping(mut map) = value else {
            diags.push(source.at(&path, format!("`{name}` must be a mapping with a `kind:`")));
            continue;
        };
        let names: Vec<&str> = K::kinds().iter().map(|k| k.name).collect();
        let kind =
            match map.remove("kind") {
                Some(Value::String(k)) => k,
                Some(_) => {
                    diags.push(source.at(
                        &path.key("kind"),
                        format!("`kind` must be a string, one of {}", names.join(", ")),
                    ));
                    continue;
                }
                None => {
                    diags.push(
                        source
                            .at_key(&path, format!("`{name}` has no `kind`"))
                            .hint(format!("add `kind:` with one of {}", names.join(", "))),
                    );
                    continue;
                }
            };
        match source.deserialize_with(&path, Value::Mapping(map), |d| K::deserialize_kind(&kind, d)) {
            Ok(Some(cfg)) => {
                out.insert(name, cfg);
            }
            Ok(None) => {
                let mut d = source.at(&path.key("kind"), format!("unknown {} `{kind}`", K::WHAT));
                d = d.hint(match did_you_mean(&kind, names.iter().copied()) {
                    Some(s) => format!("did you mean `{s}`? (`slimbench list` shows every {})", K::WHAT),
                    None => format!("expected one of {}", names.join(", ")),
                });
                diags.push(d);
            }
            Err(d) => diags.push(d),
        }
    }
    out
}
