//! The one place YAML text is parsed.
//!
//! [`load`] turns text into a `serde_yaml::Value` (merge keys applied) and a
//! [`SpanIndex`] mapping every node's path to its line and column. Values are
//! deserialized from the `Value` with `serde_path_to_error`, and the index turns the
//! failing path back into a position, which also works after `--set` overrides edited
//! the value and for kinds dispatched by hand. Swapping serde_yaml for a maintained fork
//! only touches this file.

use std::collections::HashMap;
use std::fmt;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

/// One step of a path into a YAML document.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Seg {
    /// A mapping key.
    Key(String),
    /// A sequence index.
    Index(usize),
}

/// A path into a YAML document, printed as `stages[2].with.epochs`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct YamlPath(pub Vec<Seg>);

impl YamlPath {
    /// The empty (root) path.
    pub fn root() -> Self {
        YamlPath(Vec::new())
    }
    /// This path with a key appended.
    pub fn key(&self, k: &str) -> Self {
        let mut p = self.clone();
        p.0.push(Seg::Key(k.to_string()));
        p
    }
    /// This path with an index appended.
    pub fn index(&self, i: usize) -> Self {
        let mut p = self.clone();
        p.0.push(Seg::Index(i));
        p
    }
    /// This path followed by the segments of a `serde_path_to_error` path.
    pub fn join_serde(&self, path: &serde_path_to_error::Path) -> Self {
        use serde_path_to_error::Segment;
        let mut p = self.clone();
        for seg in path.iter() {
            match seg {
                Segment::Map { key } => p.0.push(Seg::Key(key.clone())),
                Segment::Seq { index } => p.0.push(Seg::Index(*index)),
                Segment::Enum { variant } => p.0.push(Seg::Key(variant.clone())),
                Segment::Unknown => {}
            }
        }
        p
    }
    /// Whether `self` starts with `prefix`.
    pub fn starts_with(&self, prefix: &YamlPath) -> bool {
        self.0.starts_with(&prefix.0)
    }
}

impl fmt::Display for YamlPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for seg in &self.0 {
            match seg {
                Seg::Key(k) if first => write!(f, "{k}")?,
                Seg::Key(k) => write!(f, ".{k}")?,
                Seg::Index(i) => write!(f, "[{i}]")?,
            }
            first = false;
        }
        if first {
            f.write_str("(document)")?;
        }
        Ok(())
    }
}

/// A 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pos {
    /// Line, from 1.
    pub line: usize,
    /// Column, from 1.
    pub col: usize,
}

/// Positions of the nodes of a document, by path.
#[derive(Debug, Default, Clone)]
pub struct SpanIndex {
    values: HashMap<YamlPath, Pos>,
    keys: HashMap<YamlPath, Pos>,
}

impl SpanIndex {
    /// Where the value at `path` starts, or where its closest ancestor starts.
    pub fn value(&self, path: &YamlPath) -> Option<Pos> {
        let mut p = path.clone();
        loop {
            if let Some(pos) = self.values.get(&p) {
                return Some(*pos);
            }
            p.0.pop()?;
        }
    }

    /// Where the key of the mapping entry at `path` is written (falls back to [`Self::value`]).
    pub fn key(&self, path: &YamlPath) -> Option<Pos> {
        self.keys.get(path).copied().or_else(|| self.value(path))
    }
}

/// A YAML syntax error.
#[derive(Debug, Clone)]
pub struct SyntaxError {
    /// What is wrong.
    pub message: String,
    /// Where, when known.
    pub pos: Option<Pos>,
}

/// Parse YAML text into a value and the span index of its nodes.
pub fn load(text: &str) -> Result<(serde_yaml::Value, SpanIndex), SyntaxError> {
    let mut value: serde_yaml::Value = serde_yaml::from_str(text).map_err(|e| SyntaxError {
        message: strip_location(&e.to_string()),
        pos: e.location().map(|l| Pos { line: l.line(), col: l.column() }),
    })?;
    value.apply_merge().map_err(|e| SyntaxError { message: e.to_string(), pos: None })?;
    let mut builder = IndexBuilder::default();
    // serde_yaml accepted the text, so this parser will too; if it does not, positions
    // are merely missing from messages.
    let _ = Parser::new_from_str(text).load(&mut builder, false);
    Ok((value, builder.index))
}

/// serde_yaml appends " at line L column C" to messages; we print positions ourselves.
fn strip_location(msg: &str) -> String {
    match msg.find(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg.to_string(),
    }
}

#[derive(Debug)]
enum Frame {
    Map { path: YamlPath, pending_key: Option<String> },
    Seq { path: YamlPath, next: usize },
}

#[derive(Debug, Default)]
struct IndexBuilder {
    stack: Vec<Frame>,
    index: SpanIndex,
}

impl IndexBuilder {
    /// Path of the node that starts now, if it is a value (not a mapping key).
    fn next_value_path(&mut self, mark: Marker, scalar: Option<&str>) -> Option<YamlPath> {
        let pos = Pos { line: mark.line(), col: mark.col() + 1 };
        match self.stack.last_mut() {
            None => Some(YamlPath::root()),
            Some(Frame::Seq { path, next }) => {
                let p = path.index(*next);
                *next += 1;
                Some(p)
            }
            Some(Frame::Map { path, pending_key }) => match pending_key.take() {
                Some(k) => Some(path.key(&k)),
                None => {
                    // A key. Complex (non-scalar) keys are not used by slimbench.
                    let k = scalar.unwrap_or_default().to_string();
                    self.index.keys.insert(path.key(&k), pos);
                    *pending_key = Some(k);
                    None
                }
            },
        }
    }
}

impl MarkedEventReceiver for IndexBuilder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        let pos = Pos { line: mark.line(), col: mark.col() + 1 };
        match ev {
            Event::Scalar(s, ..) => {
                if let Some(p) = self.next_value_path(mark, Some(&s)) {
                    self.index.values.insert(p, pos);
                }
            }
            Event::Alias(_) => {
                if let Some(p) = self.next_value_path(mark, None) {
                    self.index.values.insert(p, pos);
                }
            }
            Event::SequenceStart(..) => {
                let p = self.next_value_path(mark, None).unwrap_or_default();
                self.index.values.insert(p.clone(), pos);
                self.stack.push(Frame::Seq { path: p, next: 0 });
            }
            Event::MappingStart(..) => {
                let p = self.next_value_path(mark, None).unwrap_or_default();
                self.index.values.insert(p.clone(), pos);
                self.stack.push(Frame::Map { path: p, pending_key: None });
            }
            Event::SequenceEnd | Event::MappingEnd => {
                self.stack.pop();
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indexes_nested_paths() {
        let text = "name: x\nstages:\n  - id: train\n    with: { epochs: 2, lr: 0.1 }\n  - id: eval\n    needs: [train]\n";
        let (_, idx) = load(text).unwrap();
        let p = YamlPath::root().key("stages").index(0).key("with").key("lr");
        assert_eq!(idx.value(&p), Some(Pos { line: 4, col: 28 }));
        assert_eq!(idx.key(&p), Some(Pos { line: 4, col: 24 }));
        let n = YamlPath::root().key("stages").index(1).key("needs").index(0);
        assert_eq!(idx.value(&n), Some(Pos { line: 6, col: 13 }));
        // Unknown deeper paths fall back to the closest ancestor.
        assert_eq!(idx.value(&n.key("zzz")), Some(Pos { line: 6, col: 13 }));
        assert_eq!(p.to_string(), "stages[0].with.lr");
    }

    #[test]
    fn syntax_errors_have_positions() {
        let err = load("name: x\nstages: [\n").unwrap_err();
        assert!(err.pos.is_some());
        assert!(!err.message.contains(" at line "));
    }
}
