//! `--set PATH=VALUE` overrides, applied to the YAML value before it is typed.
//!
//! PATH is dot-separated. Inside `stages`, a segment selects the stage with that `id`
//! (`stages.train.with.epochs=2`); numbers index sequences; missing mapping keys are
//! created. VALUE is YAML (`2`, `0.5`, `[1, 64]`, `cuda`).

use serde_yaml::Value;

use crate::yaml::YamlPath;

/// Apply one override; returns the path it replaced (with stage ids turned into indices).
pub fn apply(doc: &mut Value, assignment: &str) -> Result<YamlPath, String> {
    let (path, raw) =
        assignment.split_once('=').ok_or_else(|| format!("`{assignment}` is not of the form PATH=VALUE"))?;
    let segs: Vec<&str> = path.trim().split('.').collect();
    if segs.iter().any(|s| s.is_empty()) {
        return Err(format!("`{path}` is not a valid path (e.g. stages.train.with.epochs)"));
    }
    let new: Value =
        serde_yaml::from_str(raw).map_err(|e| format!("the value `{raw}` is not valid YAML: {e}"))?;
    let mut at = YamlPath::root();
    let mut node = doc;
    for (i, seg) in segs.iter().enumerate() {
        let last = i + 1 == segs.len();
        node = match node {
            Value::Mapping(map) => {
                at = at.key(seg);
                if last {
                    map.insert(Value::String(seg.to_string()), new);
                    return Ok(at);
                }
                map.entry(Value::String(seg.to_string()))
                    .or_insert_with(|| Value::Mapping(Default::default()))
            }
            Value::Sequence(items) => {
                let idx = match seg.parse::<usize>() {
                    Ok(n) if n < items.len() => n,
                    _ => items
                        .iter()
                        .position(|item| item.get("id").and_then(Value::as_str) == Some(seg))
                        .ok_or_else(|| {
                            let ids: Vec<&str> =
                                items.iter().filter_map(|it| it.get("id").and_then(Value::as_str)).collect();
                            format!("`{at}` has no entry `{seg}` (ids: {})", ids.join(", "))
                        })?,
                };
                at = at.index(idx);
                if last {
                    items[idx] = new;
                    return Ok(at);
                }
                &mut items[idx]
            }
            Value::Null => {
                *node = Value::Mapping(Default::default());
                at = at.key(seg);
                let Value::Mapping(map) = node else { unreachable!() };
                if last {
                    map.insert(Value::String(seg.to_string()), new);
                    return Ok(at);
                }
                map.entry(Value::String(seg.to_string()))
                    .or_insert_with(|| Value::Mapping(Default::default()))
            }
            _ => return Err(format!("cannot set `{path}`: `{at}` is a single value, not a mapping")),
        };
    }
    unreachable!("the loop returns on the last segment")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc() -> Value {
        serde_yaml::from_str("name: x\nstages:\n  - id: train\n    with: {epochs: 1}\n  - id: eval\n")
            .unwrap()
    }

    #[test]
    fn sets_by_stage_id_and_creates_keys() {
        let mut d = doc();
        let p = apply(&mut d, "stages.train.with.epochs=3").unwrap();
        assert_eq!(p.to_string(), "stages[0].with.epochs");
        assert_eq!(d["stages"][0]["with"]["epochs"], Value::from(3));
        apply(&mut d, "stages.eval.with.latency.iters=10").unwrap();
        assert_eq!(d["stages"][1]["with"]["latency"]["iters"], Value::from(10));
        apply(&mut d, "defaults.device=cpu").unwrap();
        assert_eq!(d["defaults"]["device"], Value::from("cpu"));
    }

    #[test]
    fn errors_name_the_problem() {
        let mut d = doc();
        assert!(apply(&mut d, "stages.nope.with.x=1").unwrap_err().contains("ids: train, eval"));
        assert!(apply(&mut d, "nonsense").unwrap_err().contains("PATH=VALUE"));
        assert!(apply(&mut d, "name.x=1").unwrap_err().contains("single value"));
    }
}
