//! Content hashes (BLAKE3, hex) for cache keys and artifact integrity.

use std::io::Read;
use std::path::Path;

/// Hex BLAKE3 of a byte slice.
pub fn bytes(data: &[u8]) -> String {
    blake3::hash(data).to_hex().to_string()
}

/// Hex BLAKE3 of a file's content, read in chunks.
pub fn file(path: &Path) -> std::io::Result<String> {
    let mut hasher = blake3::Hasher::new();
    let mut f = std::fs::File::open(path)?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher.finalize().to_hex().to_string())
}

/// Hex BLAKE3 of a value's canonical JSON (object keys keep their declared or sorted
/// order, so equal values hash equally).
pub fn json<T: serde::Serialize>(value: &T) -> String {
    let v = serde_json::to_value(value).expect("serialising to a JSON value cannot fail");
    bytes(canonical(&v).as_bytes())
}

/// JSON text with object keys sorted at every level.
pub fn canonical(v: &serde_json::Value) -> String {
    use serde_json::Value;
    fn sort(v: &Value) -> Value {
        match v {
            Value::Object(m) => {
                let mut keys: Vec<_> = m.keys().collect();
                keys.sort();
                Value::Object(keys.into_iter().map(|k| (k.clone(), sort(&m[k]))).collect())
            }
            Value::Array(a) => Value::Array(a.iter().map(sort).collect()),
            other => other.clone(),
        }
    }
    sort(v).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_hash_ignores_key_order() {
        let a: serde_json::Value = serde_json::from_str(r#"{"a":1,"b":{"x":1,"y":2}}"#).unwrap();
        let b: serde_json::Value = serde_json::from_str(r#"{"b":{"y":2,"x":1},"a":1}"#).unwrap();
        assert_eq!(json(&a), json(&b));
        let c: serde_json::Value = serde_json::from_str(r#"{"b":{"y":3,"x":1},"a":1}"#).unwrap();
        assert_ne!(json(&a), json(&c));
    }
}
