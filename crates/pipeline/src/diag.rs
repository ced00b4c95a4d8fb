//! Errors in a pipeline file, with file:line:col, the offending line and a hint.
//!
//! ```text
//! error: unknown field `epoch`, expected one of `model`, `dataset`, `epochs`, ...
//!   --> pipelines/seed.yaml:7:13
//!    |
//!  7 |     with: { epoch: 2 }
//!    |             ^
//!    = hint: ...
//! ```

use std::fmt;
use std::sync::Arc;

use crate::yaml::Pos;

/// One problem found in a pipeline.
#[derive(Debug, Clone, PartialEq)]
pub struct Diagnostic {
    /// What is wrong, as a sentence.
    pub message: String,
    /// Where in the file, when known.
    pub pos: Option<Pos>,
    /// A `--set` override the problem came from, when it did.
    pub origin: Option<String>,
    /// How to fix it.
    pub hint: Option<String>,
}

impl Diagnostic {
    /// A diagnostic at a position.
    pub fn at(pos: Option<Pos>, message: impl Into<String>) -> Self {
        Diagnostic { message: message.into(), pos, origin: None, hint: None }
    }

    /// Attach a hint.
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

/// Every problem found in one pipeline file (all of them, not just the first, where
/// they are independent).
#[derive(Debug, Clone)]
pub struct SpecError {
    /// The file, as given.
    pub file: String,
    /// Its text, for the source excerpts.
    pub text: Arc<str>,
    /// The problems.
    pub diagnostics: Vec<Diagnostic>,
}

impl std::error::Error for SpecError {}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.diagnostics.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            writeln!(f, "error: {}", d.message)?;
            match (&d.origin, d.pos) {
                (Some(origin), _) => writeln!(f, "  --> {} (from {origin})", self.file)?,
                (None, Some(pos)) => {
                    writeln!(f, "  --> {}:{}:{}", self.file, pos.line, pos.col)?;
                    if let Some(line) = self.text.lines().nth(pos.line.saturating_sub(1)) {
                        let num = pos.line.to_string();
                        let pad = " ".repeat(num.len());
                        writeln!(f, " {pad} |")?;
                        writeln!(f, " {num} | {line}")?;
                        // Columns count characters; tabs are kept so the caret lines up.
                        let lead: String = line
                            .chars()
                            .take(pos.col.saturating_sub(1))
                            .map(|c| if c == '\t' { '\t' } else { ' ' })
                            .collect();
                        writeln!(f, " {pad} | {lead}^")?;
                    }
                }
                (None, None) => writeln!(f, "  --> {}", self.file)?,
            }
            if let Some(h) = &d.hint {
                writeln!(f, "  = hint: {h}")?;
            }
        }
        Ok(())
    }
}

/// The closest candidate to `word` by edit distance, for "did you mean" hints.
pub fn did_you_mean<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (edit_distance(word, c), c))
        .filter(|(d, c)| *d <= (c.len().max(word.len()) / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Optimal-string-alignment distance: edits plus swaps of neighbours ("trian" -> "train" is 1).
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            d[i][j] = (d[i - 1][j] + 1).min(d[i][j - 1] + 1).min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d[i][j] = d[i][j].min(d[i - 2][j - 2] + 1);
            }
        }
    }
    d[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions() {
        assert_eq!(did_you_mean("trian", ["train", "eval"]), Some("train"));
        assert_eq!(did_you_mean("quantise", ["quantize", "prune"]), Some("quantize"));
        assert_eq!(did_you_mean("xyz", ["train", "eval"]), None);
    }

    #[test]
    fn renders_excerpt_with_caret() {
        let err = SpecError {
            file: "p.yaml".into(),
            text: "name: x\nstages:\n  - id: a\n    uses: tran\n".into(),
            diagnostics: vec![
                Diagnostic::at(Some(Pos { line: 4, col: 11 }), "unknown stage kind `tran`")
                    .hint("did you mean `train`?"),
            ],
        };
        insta::assert_snapshot!(err.to_string(), @r"
        error: unknown stage kind `tran`
          --> p.yaml:4:11
           |
         4 |     uses: tran
           |           ^
          = hint: did you mean `train`?
        ");
    }
}
