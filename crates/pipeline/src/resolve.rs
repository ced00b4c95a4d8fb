//! Resolve: [`Spec`] -> [`Plan`]. Stage parameters are typed by kind, `matrix` sweeps
//! are expanded, `needs` are checked and ordered, and cross-references (models,
//! datasets, teachers, inputs) are validated, all before anything runs.

use std::collections::{BTreeSet, HashMap};

use indexmap::IndexMap;
use serde::Serialize;
use serde_yaml::Value;
use slimbench_core::config::{DatasetConfig, Defaults, KindSet, ModelConfig, StageParams};
use slimbench_core::gates::Gates;

use crate::diag::{Diagnostic, SpecError, did_you_mean};
use crate::spec::{Spec, StageSpec, is_slug};
use crate::yaml::YamlPath;

/// A checked, expanded, ordered pipeline.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// Pipeline name.
    pub name: String,
    /// Description.
    pub description: String,
    /// Inherited settings.
    pub defaults: Defaults,
    /// Datasets by name.
    pub datasets: IndexMap<String, DatasetConfig>,
    /// Models by name.
    pub models: IndexMap<String, ModelConfig>,
    /// Stages in execution order (dependencies first).
    pub stages: Vec<PlannedStage>,
    /// Regression gates for `slimbench compare`, by metric.
    #[serde(skip_serializing_if = "Gates::is_empty")]
    pub gates: Gates,
    /// The file the plan was read from, as given.
    #[serde(skip)]
    pub file: String,
    /// That file's text, copied into every run directory as `pipeline.yaml`.
    #[serde(skip)]
    pub text: std::sync::Arc<str>,
}

/// One stage instance (a matrix stage yields one per combination).
#[derive(Debug, Clone)]
pub struct PlannedStage {
    /// Unique id: the stage id, plus `[key=value,...]` for matrix instances.
    pub id: String,
    /// The id written in the file.
    pub base_id: String,
    /// Ids of the stage instances it needs.
    pub needs: Vec<String>,
    /// Matrix coordinates of this instance.
    pub matrix: IndexMap<String, serde_json::Value>,
    /// Typed parameters.
    pub params: StageParams,
}

impl PlannedStage {
    /// The stage kind.
    pub fn kind(&self) -> &'static str {
        self.params.kind()
    }

    /// A directory-safe form of the id (`prune[sparsity=0.5]` -> `prune@sparsity-0.5`).
    pub fn slug(&self) -> String {
        slug(&self.id)
    }
}

impl Serialize for PlannedStage {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut with = serde_json::to_value(&self.params).map_err(serde::ser::Error::custom)?;
        if let Some(m) = with.as_object_mut() {
            m.remove("uses");
        }
        let mut map = s.serialize_map(None)?;
        map.serialize_entry("id", &self.id)?;
        map.serialize_entry("uses", self.kind())?;
        if !self.needs.is_empty() {
            map.serialize_entry("needs", &self.needs)?;
        }
        if !self.matrix.is_empty() {
            map.serialize_entry("matrix", &self.matrix)?;
        }
        map.serialize_entry("with", &with)?;
        map.end()
    }
}

impl Plan {
    /// The stage with this id.
    pub fn stage(&self, id: &str) -> Option<&PlannedStage> {
        self.stages.iter().find(|s| s.id == id)
    }

    /// The plan as YAML (written into every run directory as `plan.resolved.yaml`).
    pub fn to_yaml(&self) -> String {
        serde_yaml::to_string(self).expect("a plan always serializes")
    }

    /// Names of the datasets some stage names explicitly.
    pub fn used_datasets(&self) -> BTreeSet<String> {
        self.stages.iter().filter_map(|s| explicit_dataset(&s.params).map(str::to_string)).collect()
    }
}

/// The dataset a stage names in its parameters, if any.
pub fn explicit_dataset(params: &StageParams) -> Option<&str> {
    match params {
        StageParams::Train(p) => Some(&p.dataset),
        StageParams::Quantize(p) => p.dataset.as_deref(),
        StageParams::Prune(p) => p.dataset.as_deref(),
        StageParams::LowRank(p) => p.dataset.as_deref(),
        StageParams::Distill(p) => p.dataset.as_deref(),
        _ => None,
    }
}

/// Whether a stage kind produces models that later stages can take as input.
pub fn produces_models(kind: &str) -> bool {
    matches!(kind, "train" | "quantize" | "prune" | "low-rank" | "distill")
}

/// Directory-safe form of a stage id.
pub fn slug(id: &str) -> String {
    id.chars()
        .filter_map(|c| match c {
            '[' => Some('@'),
            ']' => None,
            '=' => Some('-'),
            ',' => Some('+'),
            c if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') => Some(c),
            _ => Some('_'),
        })
        .collect()
}

/// Check and expand a spec into a plan. Every independent problem is reported.
pub fn resolve(spec: &Spec) -> Result<Plan, SpecError> {
    let src = &spec.source;
    let mut diags = Vec::new();
    let stage_path = |s: &StageSpec| YamlPath::root().key("stages").index(s.index);

    // Ids: valid and unique.
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for s in &spec.stages {
        if !is_slug(&s.id) {
            diags.push(
                src.at(&stage_path(s).key("id"), format!("stage id `{}` is not allowed", s.id))
                    .hint("use letters, digits, `-`, `_` and `.` only"),
            );
        }
        if let Some(first) = seen.insert(&s.id, s.index) {
            diags.push(src.at(&stage_path(s).key("id"), format!("duplicate stage id `{}`", s.id)).hint(
                format!(
                    "stage ids must be unique; `{}` is already the id of stage {} (counting from 1)",
                    s.id,
                    first + 1
                ),
            ));
        }
    }

    // Kinds, parameters, matrix expansion.
    let kinds: Vec<&str> = StageParams::kinds().iter().map(|k| k.name).collect();
    let mut instances: Vec<(usize, PlannedStage)> = Vec::new();
    for s in &spec.stages {
        let path = stage_path(s);
        if !kinds.contains(&s.uses.as_str()) {
            let hint = match did_you_mean(&s.uses, kinds.iter().copied()) {
                Some(k) => format!("did you mean `{k}`?"),
                None => format!("stage kinds: {} (`slimbench list` describes them)", kinds.join(", ")),
            };
            diags.push(src.at(&path.key("uses"), format!("unknown stage kind `{}`", s.uses)).hint(hint));
            continue;
        }
        match expand(spec, s, &path) {
            Ok(list) => instances.extend(list.into_iter().map(|p| (s.index, p))),
            Err(mut d) => diags.append(&mut d),
        }
    }
    if !diags.is_empty() {
        return Err(src.error(diags));
    }

    // Needs: expand base ids to instances; unknown ids are errors.
    let mut by_base: IndexMap<&str, Vec<String>> = IndexMap::new();
    for (_, p) in &instances {
        by_base
            .entry(spec.stages.iter().find(|s| s.id == p.base_id).map(|s| s.id.as_str()).unwrap_or_default())
            .or_default()
            .push(p.id.clone());
    }
    let all_ids: Vec<String> = instances.iter().map(|(_, p)| p.id.clone()).collect();
    let mut resolved_needs: HashMap<String, Vec<String>> = HashMap::new();
    for s in &spec.stages {
        let mut needs = Vec::new();
        for (j, n) in s.needs.iter().enumerate() {
            let at = if s.needs.len() == 1 {
                stage_path(s).key("needs")
            } else {
                stage_path(s).key("needs").index(j)
            };
            if n == &s.id {
                diags.push(src.at(&at, format!("stage `{}` needs itself", s.id)));
            } else if let Some(ids) = by_base.get(n.as_str()) {
                needs.extend(ids.iter().cloned());
            } else if all_ids.contains(n) {
                needs.push(n.clone());
            } else {
                let hint = match did_you_mean(n, by_base.keys().copied()) {
                    Some(k) => format!("did you mean `{k}`?"),
                    None => format!("stage ids: {}", by_base.keys().copied().collect::<Vec<_>>().join(", ")),
                };
                diags.push(
                    src.at(&at, format!("stage `{}` needs `{n}`, which is not a stage", s.id)).hint(hint),
                );
            }
        }
        resolved_needs.insert(s.id.clone(), needs);
    }
    for (_, p) in &mut instances {
        p.needs = resolved_needs.get(&p.base_id).cloned().unwrap_or_default();
    }
    if !diags.is_empty() {
        return Err(src.error(diags));
    }

    // Order, or report a cycle.
    let order = match topo_order(&instances) {
        Ok(o) => o,
        Err(cycle) => {
            let first =
                spec.stages.iter().find(|s| s.id == base_of(&instances, &cycle[0])).expect("stage exists");
            let shown: Vec<String> = cycle.iter().map(|id| base_of(&instances, id).to_string()).collect();
            return Err(src.error(vec![
                src.at(
                    &stage_path(first).key("needs"),
                    format!("stages form a cycle: {}", shown.join(" -> ")),
                )
                .hint("a stage can only need stages that do not (indirectly) need it"),
            ]));
        }
    };
    let mut by_id: HashMap<String, (usize, PlannedStage)> =
        instances.into_iter().map(|(i, p)| (p.id.clone(), (i, p))).collect();
    let stages: Vec<(usize, PlannedStage)> =
        order.iter().map(|id| by_id.remove(id).expect("ordered ids exist")).collect();

    // Cross-references.
    for (index, st) in &stages {
        let path = YamlPath::root().key("stages").index(*index);
        check_references(spec, st, &path, &stages, &mut diags);
    }
    if !diags.is_empty() {
        return Err(src.error(diags));
    }
    check_models_against_data(spec, &stages, &mut diags);
    if !diags.is_empty() {
        return Err(src.error(diags));
    }

    Ok(Plan {
        name: spec.name.clone(),
        description: spec.description.clone(),
        defaults: spec.defaults.clone(),
        datasets: spec.datasets.clone(),
        models: spec.models.clone(),
        stages: stages.into_iter().map(|(_, p)| p).collect(),
        gates: spec.gates.clone(),
        file: src.file.clone(),
        text: src.text.clone(),
    })
}

/// Every model a train stage trains is built as a graph for its dataset's images, so
/// a layer list whose shapes do not meet, or a preset that cannot take the images, is
/// found here, pointing at the model (or the layer) in the YAML.
fn check_models_against_data(spec: &Spec, stages: &[(usize, PlannedStage)], diags: &mut Vec<Diagnostic>) {
    let src = &spec.source;
    // Structured pruning of a model straight from a train stage: say now when no
    // layer's channels can go on their own (all tied to the image, the output, a
    // concat, ...), instead of failing half-way through the run.
    for (index, st) in stages {
        let StageParams::Prune(p) = &st.params else { continue };
        if p.method != slimbench_core::config::PruneMethod::Structured {
            continue;
        }
        let train = st.needs.iter().filter_map(|n| stages.iter().find(|(_, s)| &s.id == n)).find_map(
            |(_, s)| match &s.params {
                StageParams::Train(t) if p.input.as_ref().is_none_or(|i| i == &s.id || i == &s.base_id) => {
                    Some(t)
                }
                _ => None,
            },
        );
        let Some(t) = train else { continue };
        let (Some(model), Some(data)) = (spec.models.get(&t.model), spec.datasets.get(&t.dataset)) else {
            continue;
        };
        let (input, classes) = data.shape_hint();
        let io = slimbench_core::artifact::IoShape {
            channels: input[0],
            height: input[1],
            width: input[2],
            classes: classes.unwrap_or(2),
        };
        if let Ok(graph) = model.graph(io)
            && slimbench_graph::channels::dependency_groups(&graph).is_empty()
        {
            let at = YamlPath::root().key("stages").index(*index).key("with").key("method");
            diags.push(
                src.at(
                    &at,
                    format!(
                        "structured pruning cannot apply to model `{}`: no layer's channels can be removed on their own (each feeds a residual add with the image, a concat, a grouped convolution or the output)",
                        t.model
                    ),
                )
                .hint("use `method: magnitude`, or give the model a layer whose channels only the next layer reads"),
            );
        }
    }
    let mut seen = std::collections::HashSet::new();
    for (_, st) in stages {
        let StageParams::Train(t) = &st.params else { continue };
        let (Some(model), Some(data)) = (spec.models.get(&t.model), spec.datasets.get(&t.dataset)) else {
            continue;
        };
        if !seen.insert((t.model.clone(), t.dataset.clone())) {
            continue;
        }
        let (input, classes) = data.shape_hint();
        let path = YamlPath::root().key("models").key(&t.model);
        let shape = format!("{}x{}x{}", input[0], input[1], input[2]);
        let on = format!(
            "on `{}` ({shape} images{})",
            t.dataset,
            classes.map(|c| format!(", {c} classes")).unwrap_or_default()
        );
        match model {
            ModelConfig::Onnx(c) => {
                // Read at validate time, so a broken or unsupported file stops the run
                // before anything is written.
                let at = path.key("path");
                match slimbench_onnx::import(&c.path) {
                    Err(e) => {
                        let hint = if e.is_unsupported() {
                            "export the model with the supported ops (e.g. opset 17 from torch.onnx.export), or describe it as `kind: layers`"
                        } else {
                            "pass an .onnx file exported from PyTorch, Keras (tf2onnx) or another framework"
                        };
                        diags.push(src.at(&at, format!("model `{}`: {e}", t.model)).hint(hint));
                    }
                    Ok(imported) => {
                        let g = &imported.graph;
                        let fits = g.input == input && classes.is_none_or(|c| g.check(c).is_ok());
                        if !fits {
                            let out = g.shapes().ok().and_then(|s| s.last().cloned()).unwrap_or_default();
                            diags.push(
                                src.at(
                                    &at,
                                    format!(
                                        "model `{}` ({}) takes {}x{}x{} images and gives {} scores, but it trains {on}",
                                        t.model,
                                        c.path.display(),
                                        g.input[0],
                                        g.input[1],
                                        g.input[2],
                                        out.iter().map(i64::to_string).collect::<Vec<_>>().join("x")
                                    ),
                                )
                                .hint("use the dataset the model was exported for, or resize it (image-folder `size:`)"),
                            );
                        }
                    }
                }
            }
            ModelConfig::Layers(l) => {
                // An image folder's class count is known once it is read: checked then.
                let result = match classes {
                    Some(c) => l.build(input, c).map(|_| ()),
                    None => Ok(()),
                };
                if let Err(e) = result {
                    diags.push(
                        src.at(&path.key("layers").index(e.layer), format!("model `{}` {on}: {e}", t.model))
                            .hint(
                                "every layer reads the shape the one before it gives (see `slimbench list`)",
                            ),
                    );
                }
            }
            other => {
                let io = slimbench_core::artifact::IoShape {
                    channels: input[0],
                    height: input[1],
                    width: input[2],
                    classes: classes.unwrap_or(2),
                };
                if let Err(e) = other.graph(io) {
                    diags.push(src.at(&path, format!("model `{}` {on}: {e}", t.model)));
                }
            }
        }
    }
}

fn base_of<'a>(instances: &'a [(usize, PlannedStage)], id: &'a str) -> &'a str {
    instances.iter().find(|(_, p)| p.id == id).map(|(_, p)| p.base_id.as_str()).unwrap_or(id)
}

/// Type a stage's parameters once per matrix combination.
fn expand(spec: &Spec, s: &StageSpec, path: &YamlPath) -> Result<Vec<PlannedStage>, Vec<Diagnostic>> {
    let src = &spec.source;
    let mut diags = Vec::new();
    for (key, values) in &s.matrix {
        if values.is_empty() {
            diags.push(src.at(&path.key("matrix").key(key), format!("matrix `{key}` has no values")));
        }
        if s.with.contains_key(key.as_str()) {
            diags.push(
                src.at(&path.key("with").key(key), format!("`{key}` is set both in `with` and in `matrix`"))
                    .hint("keep it in one place"),
            );
        }
    }
    if !diags.is_empty() {
        return Err(diags);
    }
    let mut combos: Vec<Vec<(usize, &String, &Value)>> = vec![vec![]];
    for (key, values) in &s.matrix {
        combos = combos
            .into_iter()
            .flat_map(|c| {
                values.iter().enumerate().map(move |(j, v)| {
                    let mut c = c.clone();
                    c.push((j, key, v));
                    c
                })
            })
            .collect();
    }
    let mut out = Vec::new();
    for combo in combos {
        let mut with = s.with.clone();
        let mut coords = IndexMap::new();
        for (_, key, v) in &combo {
            with.insert(Value::String((*key).clone()), (*v).clone());
            coords.insert((*key).clone(), serde_json::to_value(v).unwrap_or(serde_json::Value::Null));
        }
        let params = src.deserialize_with(&path.key("with"), Value::Mapping(with), |d| {
            StageParams::deserialize_kind(&s.uses, d)
        });
        let params = match params {
            Ok(Some(p)) => p,
            Ok(None) => unreachable!("kinds were checked"),
            Err(mut d) => {
                // Point errors about a swept key at the matrix value that caused them.
                if let Some((j, key, _)) = combo.iter().find(|(_, k, _)| {
                    d.message.contains(&format!("`{k}`"))
                        || d.pos == src.spans.value(&path.key("with").key(k))
                }) {
                    let better = src.at(&path.key("matrix").key(key).index(*j), d.message.clone());
                    d.pos = better.pos;
                }
                diags.push(d);
                break;
            }
        };
        for (field, msg) in params.check() {
            let mut fpath = path.key("with");
            let mut from_matrix = None;
            for part in field.split('.') {
                fpath = fpath.key(part);
            }
            if let Some((j, key, _)) = combo.iter().find(|(_, k, _)| **k == field) {
                from_matrix = Some(path.key("matrix").key(key).index(*j));
            }
            let at = from_matrix.unwrap_or(fpath);
            diags.push(src.at(&at, format!("`{field}` of stage `{}` {msg}", s.id)));
        }
        let id = if coords.is_empty() {
            s.id.clone()
        } else {
            let parts: Vec<String> = coords.iter().map(|(k, v)| format!("{k}={}", short_value(v))).collect();
            format!("{}[{}]", s.id, parts.join(","))
        };
        out.push(PlannedStage { id, base_id: s.id.clone(), needs: vec![], matrix: coords, params });
    }
    if diags.is_empty() { Ok(out) } else { Err(diags) }
}

fn short_value(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Kahn's algorithm, taking stages in file order when several are ready. On a cycle,
/// returns the ids along it.
fn topo_order(instances: &[(usize, PlannedStage)]) -> Result<Vec<String>, Vec<String>> {
    let mut remaining: Vec<&PlannedStage> = instances.iter().map(|(_, p)| p).collect();
    let mut done: BTreeSet<String> = BTreeSet::new();
    let mut order = Vec::new();
    while !remaining.is_empty() {
        let Some(pos) = remaining.iter().position(|p| p.needs.iter().all(|n| done.contains(n))) else {
            // Follow unmet needs until a stage repeats: that is the cycle.
            let mut path: Vec<String> = vec![remaining[0].id.clone()];
            loop {
                let cur =
                    remaining.iter().find(|p| &p.id == path.last().expect("non-empty")).expect("remaining");
                let next =
                    cur.needs.iter().find(|n| !done.contains(*n)).expect("a blocked stage has an unmet need");
                if let Some(start) = path.iter().position(|p| p == next) {
                    let mut cycle = path[start..].to_vec();
                    cycle.push(next.clone());
                    return Err(cycle);
                }
                path.push(next.clone());
            }
        };
        let p = remaining.remove(pos);
        done.insert(p.id.clone());
        order.push(p.id.clone());
    }
    Ok(order)
}

fn check_references(
    spec: &Spec,
    st: &PlannedStage,
    path: &YamlPath,
    stages: &[(usize, PlannedStage)],
    diags: &mut Vec<Diagnostic>,
) {
    let src = &spec.source;
    let with = path.key("with");
    let model_ref = |name: &str, field: &str, diags: &mut Vec<Diagnostic>| {
        if !spec.models.contains_key(name) {
            diags.push(unknown_ref(src, &with.key(field), "model", name, spec.models.keys()));
        }
    };
    let dataset_ref = |name: &str, field: &str, diags: &mut Vec<Diagnostic>| {
        if !spec.datasets.contains_key(name) {
            diags.push(unknown_ref(src, &with.key(field), "dataset", name, spec.datasets.keys()));
        }
    };
    let kind_of = |id: &str| stages.iter().find(|(_, p)| p.id == id).map(|(_, p)| p.kind()).unwrap_or("");
    let model_needs: Vec<&String> = st.needs.iter().filter(|n| produces_models(kind_of(n))).collect();
    let base_matches =
        |n: &str, want: &str| n == want || stages.iter().any(|(_, p)| p.id == n && p.base_id == want);
    // A stage taking one model input: an explicit `input`/`teacher` among its needs, or
    // exactly one model-producing need.
    let single_input = |field: &str, chosen: &Option<String>, what: &str, diags: &mut Vec<Diagnostic>| {
        match chosen {
            Some(c) => {
                let hits = model_needs.iter().filter(|n| base_matches(n, c)).count();
                if hits == 0 {
                    diags.push(
                        src.at(
                            &with.key(field),
                            format!(
                                "`{field}: {c}` of stage `{}` is not one of its model-producing needs",
                                st.base_id
                            ),
                        )
                        .hint("add it to `needs`, or name a train/quantize/prune/distill stage listed there"),
                    );
                } else if hits > 1 {
                    diags.push(src.at(&with.key(field), format!("`{field}: {c}` of stage `{}` matches {hits} matrix instances; name one, e.g. `{}`", st.base_id, model_needs.iter().find(|n| base_matches(n, c)).expect("hits > 1"))));
                }
            }
            None if model_needs.len() != 1 => {
                let msg = if model_needs.is_empty() {
                    format!("stage `{}` needs a stage that produces a model ({what})", st.base_id)
                } else {
                    format!(
                        "stage `{}` has {} model-producing needs; say which is the {what} with `{field}:`",
                        st.base_id,
                        model_needs.len()
                    )
                };
                diags.push(
                    src.at(&path.key("needs"), msg)
                        .hint("list a train, quantize, prune or distill stage in `needs`"),
                );
            }
            None => {}
        }
    };
    match &st.params {
        StageParams::Train(p) => {
            model_ref(&p.model, "model", diags);
            dataset_ref(&p.dataset, "dataset", diags);
        }
        StageParams::Quantize(p) => {
            single_input("input", &p.input, "input", diags);
            if let Some(d) = &p.dataset {
                dataset_ref(d, "dataset", diags);
            }
        }
        StageParams::Prune(p) => {
            single_input("input", &p.input, "input", diags);
            if let Some(d) = &p.dataset {
                dataset_ref(d, "dataset", diags);
            }
        }
        StageParams::LowRank(p) => {
            single_input("input", &p.input, "input", diags);
            if let Some(d) = &p.dataset {
                dataset_ref(d, "dataset", diags);
            }
        }
        StageParams::Distill(p) => {
            model_ref(&p.student, "student", diags);
            single_input("teacher", &p.teacher, "teacher", diags);
            // Layers are checked where the models are known: the student's always, the
            // teacher's when it comes straight from a train stage.
            let layer_ref =
                |layer: &Option<String>, field: &str, model: Option<&String>, diags: &mut Vec<Diagnostic>| {
                    let (Some(layer), Some(model)) = (layer, model) else { return };
                    let Some(config) = spec.models.get(model) else { return };
                    // Layer ids do not depend on the image size; a graph that cannot be
                    // built is reported where the model is checked against its data.
                    let Some(Ok(points)) = config.points(slimbench_core::artifact::IoShape {
                        channels: 1,
                        height: 28,
                        width: 28,
                        classes: 10,
                    }) else {
                        return;
                    };
                    if !points.contains(layer) {
                        diags.push(
                            src.at(&with.key(field), format!("model `{model}` has no layer `{layer}`"))
                                .hint(format!("its layers: {}", points.join(", "))),
                        );
                    }
                };
            layer_ref(&p.student_layer, "student_layer", Some(&p.student), diags);
            let teacher_stage = match &p.teacher {
                Some(t) => model_needs.iter().find(|n| base_matches(n, t)).copied(),
                None if model_needs.len() == 1 => Some(model_needs[0]),
                None => None,
            };
            let teacher_model = teacher_stage
                .and_then(|id| stages.iter().find(|(_, s)| &s.id == id))
                .and_then(|(_, s)| if let StageParams::Train(t) = &s.params { Some(&t.model) } else { None });
            layer_ref(&p.teacher_layer, "teacher_layer", teacher_model, diags);
            if let Some(d) = &p.dataset {
                dataset_ref(d, "dataset", diags);
            }
        }
        StageParams::Evaluate(p) => {
            if model_needs.is_empty() {
                diags.push(
                    src.at(
                        &path.key("needs"),
                        format!("evaluate stage `{}` has no model to evaluate", st.base_id),
                    )
                    .hint("list the train/quantize/prune/distill stages to measure in `needs`"),
                );
            }
            for (j, inp) in p.inputs.iter().flatten().enumerate() {
                if !model_needs.iter().any(|n| base_matches(n, inp)) {
                    diags.push(src.at(
                        &with.key("inputs").index(j),
                        format!("`{inp}` is not a model-producing need of stage `{}`", st.base_id),
                    ));
                }
            }
        }
        StageParams::Report(_) => {}
    }
}

fn unknown_ref<'a>(
    src: &crate::spec::Source,
    at: &YamlPath,
    what: &str,
    name: &str,
    known: impl Iterator<Item = &'a String> + Clone,
) -> Diagnostic {
    let hint = match did_you_mean(name, known.clone().map(String::as_str)) {
        Some(k) => format!("did you mean `{k}`?"),
        None => {
            let all: Vec<&str> = known.map(String::as_str).collect();
            if all.is_empty() {
                format!("declare it under `{what}s:`")
            } else {
                format!("declared {what}s: {}", all.join(", "))
            }
        }
    };
    src.at(at, format!("unknown {what} `{name}`")).hint(hint)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(text: &str) -> Result<Plan, SpecError> {
        resolve(&crate::spec::parse("p.yaml", text, &[])?)
    }

    const HEAD: &str = "name: p\ndatasets:\n  d: { kind: synthetic-digits }\nmodels:\n  m: { kind: seed-cnn }\n  t: { kind: cnn }\nstages:\n";

    #[test]
    fn matrix_expands_and_needs_follow_every_instance() {
        let p = plan(&format!(
            "{HEAD}  - {{ id: eval, uses: evaluate, needs: [prune] }}\n  - {{ id: prune, uses: prune, needs: train, matrix: {{ sparsity: [0.5, 0.9], finetune_epochs: [0, 1] }} }}\n  - {{ id: train, uses: train, with: {{ model: m, dataset: d }} }}\n"
        ))
        .unwrap();
        let ids: Vec<&str> = p.stages.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "train",
                "prune[sparsity=0.5,finetune_epochs=0]",
                "prune[sparsity=0.5,finetune_epochs=1]",
                "prune[sparsity=0.9,finetune_epochs=0]",
                "prune[sparsity=0.9,finetune_epochs=1]",
                "eval"
            ]
        );
        assert_eq!(p.stage("eval").unwrap().needs.len(), 4);
        let StageParams::Prune(pp) = &p.stages[4].params else { panic!() };
        assert_eq!((pp.sparsity, pp.finetune_epochs), (Some(0.9), 1));
        assert_eq!(p.stages[4].slug(), "prune@sparsity-0.9+finetune_epochs-1");
        // The resolved plan lists defaults that were filled in.
        assert!(p.to_yaml().contains("log_every: 50"));
    }

    #[test]
    fn a_single_matrix_instance_can_be_needed() {
        let p = plan(&format!(
            "{HEAD}  - {{ id: train, uses: train, with: {{ model: m, dataset: d }} }}\n  - {{ id: prune, uses: prune, needs: train, matrix: {{ sparsity: [0.5, 0.9] }} }}\n  - {{ id: fp16, uses: quantize, needs: 'prune[sparsity=0.9]', with: {{ method: fp16 }} }}\n"
        ))
        .unwrap();
        assert_eq!(p.stage("fp16").unwrap().needs, ["prune[sparsity=0.9]"]);
    }

    #[test]
    fn ambiguous_inputs_need_naming() {
        let two = format!(
            "{HEAD}  - {{ id: a, uses: train, with: {{ model: m, dataset: d }} }}\n  - {{ id: b, uses: train, with: {{ model: t, dataset: d }} }}\n"
        );
        let err =
            plan(&format!("{two}  - {{ id: q, uses: quantize, needs: [a, b], with: {{ method: fp16 }} }}\n"))
                .unwrap_err();
        assert!(
            err.to_string().contains("has 2 model-producing needs; say which is the input with `input:`"),
            "{err}"
        );
        plan(&format!(
            "{two}  - {{ id: q, uses: quantize, needs: [a, b], with: {{ method: fp16, input: b }} }}\n"
        ))
        .unwrap();
        let err = plan(&format!(
            "{two}  - {{ id: k, uses: distill, needs: [a, b], with: {{ student: m, teacher: c }} }}\n"
        ))
        .unwrap_err();
        assert!(
            err.to_string().contains("`teacher: c` of stage `k` is not one of its model-producing needs"),
            "{err}"
        );
        let err = plan(&format!("{two}  - {{ id: e, uses: evaluate, needs: [] }}\n")).unwrap_err();
        assert!(err.to_string().contains("has no model to evaluate"), "{err}");
    }

    #[test]
    fn matrix_keys_cannot_also_be_set_in_with() {
        let err = plan(&format!(
            "{HEAD}  - {{ id: train, uses: train, with: {{ model: m, dataset: d }} }}\n  - {{ id: p, uses: prune, needs: train, with: {{ sparsity: 0.5 }}, matrix: {{ sparsity: [0.9] }} }}\n"
        ))
        .unwrap_err();
        assert!(err.to_string().contains("`sparsity` is set both in `with` and in `matrix`"), "{err}");
    }

    #[test]
    fn gates_are_typed_and_kept_in_the_resolved_plan() {
        let p = plan(&format!(
            "{HEAD}  - {{ id: train, uses: train, with: {{ model: m, dataset: d }} }}\ngates:\n  accuracy: {{ max_drop: 0.005 }}\n  latency_p50_us: {{ max_increase: 10% }}\n"
        ))
        .unwrap();
        use slimbench_core::gates::Threshold;
        assert_eq!(p.gates["accuracy"].max_drop, Some(Threshold::Absolute(0.005)));
        assert_eq!(p.gates["latency_p50_us"].max_increase, Some(Threshold::Relative(0.1)));
        let yaml = p.to_yaml();
        assert!(yaml.contains("gates:\n  accuracy:\n    max_drop: 0.005\n"), "{yaml}");
        assert!(yaml.contains("max_increase: 10%"), "{yaml}");
        // No gates, no `gates:` key.
        let p = plan(&format!("{HEAD}  - {{ id: train, uses: train, with: {{ model: m, dataset: d }} }}\n"))
            .unwrap();
        assert!(p.gates.is_empty() && !p.to_yaml().contains("gates"));
    }

    #[test]
    fn gate_errors_point_at_their_node() {
        let err = plan(&format!(
            "{HEAD}  - {{ id: train, uses: train, with: {{ model: m, dataset: d }} }}\ngates:\n  acuracy: {{ max_drop: 0.005 }}\n  sparsity: {{}}\n  params: {{ max_increase: -3 }}\n  latency_p90_us: {{ max_increase: lots% }}\n  throughput_ips:\n"
        ))
        .unwrap_err();
        let text = err.to_string();
        assert_eq!(err.diagnostics.len(), 5, "{text}");
        assert!(text.contains("unknown metric `acuracy` in `gates`\n  --> p.yaml:10:3"), "{text}");
        assert!(text.contains("did you mean `accuracy`?"), "{text}");
        assert!(text.contains("gate `sparsity` sets no rule\n  --> p.yaml:11:3"), "{text}");
        assert!(
            text.contains("`max_increase` expects a threshold of 0 or more, found integer `-3`"),
            "{text}"
        );
        assert!(text.contains("p.yaml:13:35"), "{text}");
        assert!(text.contains("found string \"lots%\""), "{text}");
        assert!(text.contains("gate `throughput_ips` sets no rule"), "{text}");
    }

    #[test]
    fn slugs_are_directory_safe() {
        assert_eq!(slug("prune[sparsity=0.5]"), "prune@sparsity-0.5");
        assert_eq!(slug("a b/c"), "a_b_c");
    }
}
