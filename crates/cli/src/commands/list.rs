//! `slimbench list`: every stage, model and dataset kind with its parameters, from the
//! JSON schemas of the parameter types (so the listing is the doc comments of the code
//! that parses them and cannot drift from it).

use serde_json::{Map, Value, json};
use slimbench_core::config::{DatasetConfig, KindInfo, KindSet, ModelConfig, StageParams};

use crate::Failure;
use crate::cli::ListArgs;

/// One parameter of a kind.
struct Field {
    name: String,
    ty: String,
    default: String,
    doc: String,
}

/// Print the kinds as text or JSON.
pub fn run(a: ListArgs) -> Result<(), Failure> {
    let sections: [(&str, &str, Vec<KindInfo>); 3] = [
        ("stage kinds", "uses:", StageParams::kinds()),
        ("model kinds", "models: <name>: { kind: ... }", ModelConfig::kinds()),
        ("dataset kinds", "datasets: <name>: { kind: ... }", DatasetConfig::kinds()),
    ];
    if a.json {
        let out: Map<String, Value> = sections
            .iter()
            .map(|(title, _, kinds)| {
                let list = kinds
                    .iter()
                    .map(|k| json!({"name": k.name, "summary": k.summary, "schema": (k.schema)().to_value()}))
                    .collect();
                (title.replace(' ', "_"), Value::Array(list))
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&out).expect("JSON"));
        return Ok(());
    }
    for (title, syntax, kinds) in &sections {
        println!("{} ({syntax})\n", title[..1].to_uppercase() + &title[1..]);
        for k in kinds {
            println!("  {:<18} {}", k.name, k.summary);
            let schema = (k.schema)().to_value();
            let defs = schema.get("$defs").cloned().unwrap_or(Value::Null);
            let fields = fields(&schema, &defs, "");
            let (nw, tw) = fields.iter().fold((0, 0), |(n, t), f| (n.max(f.name.len()), t.max(f.ty.len())));
            for f in &fields {
                println!("      {:<nw$}  {:<tw$}  {:<14}  {}", f.name, f.ty, f.default, f.doc);
            }
            if fields.is_empty() {
                println!("      (no parameters)");
            }
            println!();
        }
    }
    Ok(())
}

fn resolve<'a>(s: &'a Value, defs: &'a Value) -> &'a Value {
    match s.get("$ref").and_then(Value::as_str).and_then(|r| r.strip_prefix("#/$defs/")) {
        Some(name) => defs.get(name).unwrap_or(s),
        None => s,
    }
}

/// The parameters of an object schema, flattening nested objects as `outer.inner`.
fn fields(schema: &Value, defs: &Value, prefix: &str) -> Vec<Field> {
    let schema = resolve(schema, defs);
    let required: Vec<&str> = schema
        .get("required")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let Some(props) = schema.get("properties").and_then(Value::as_object) else { return vec![] };
    let mut out = Vec::new();
    for (name, p) in props {
        let full = format!("{prefix}{name}");
        let target = resolve(p, defs);
        if target.get("properties").is_some() {
            out.extend(fields(target, defs, &format!("{full}.")));
            continue;
        }
        let default = match p.get("default") {
            Some(Value::Null) | None if required.contains(&name.as_str()) => "required".to_string(),
            Some(Value::Null) | None => "optional".to_string(),
            Some(d) => format!("= {d}"),
        };
        let doc =
            p.get("description").or_else(|| target.get("description")).and_then(Value::as_str).unwrap_or("");
        out.push(Field { name: full, ty: type_name(p, defs), default, doc: doc.replace('\n', " ") });
    }
    out
}

/// A short type description: `integer`, `adam | adamw | sgd`, `list of integer`.
fn type_name(s: &Value, defs: &Value) -> String {
    let s = resolve(s, defs);
    if let Some(e) = s.get("enum").and_then(Value::as_array) {
        return e
            .iter()
            .map(|v| v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string()))
            .collect::<Vec<_>>()
            .join(" | ");
    }
    if let Some(c) = s.get("const") {
        return c.as_str().map(str::to_string).unwrap_or_else(|| c.to_string());
    }
    for key in ["oneOf", "anyOf"] {
        if let Some(alts) = s.get(key).and_then(Value::as_array) {
            let names: Vec<String> = alts
                .iter()
                .filter(|a| a.get("type").and_then(Value::as_str) != Some("null"))
                .map(|a| type_name(a, defs))
                .collect();
            return names.join(" | ");
        }
    }
    let ty = match s.get("type") {
        Some(Value::String(t)) => t.clone(),
        Some(Value::Array(ts)) => {
            ts.iter().filter_map(Value::as_str).find(|t| *t != "null").unwrap_or("any").to_string()
        }
        _ => s.get("description").and_then(Value::as_str).unwrap_or("any").to_string(),
    };
    match ty.as_str() {
        "array" => {
            format!("list of {}", s.get("items").map(|i| type_name(i, defs)).unwrap_or_else(|| "any".into()))
        }
        "object" => "mapping".into(),
        _ => ty,
    }
}
