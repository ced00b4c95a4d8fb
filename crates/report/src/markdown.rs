//! `summary.md`: the headline numbers as a GitHub-flavoured markdown table, small
//! enough for a CI job summary (`$GITHUB_STEP_SUMMARY`).

use std::fmt::Write;

use crate::{ReportInput, format};

/// The markdown summary of a run: a heading, a line with run id, device and duration,
/// and one table row per variant (variant, technique, precision, sparsity, accuracy,
/// batch-1 p50 latency and throughput with their intervals, file size, weights and
/// batch-1 peak memory), with the best, fastest and Pareto-optimal variants marked and
/// invalid timings footnoted, each evaluate stage's timing protocol and the repetitions;
/// then, when compressed variants were timed beside their baselines, "Does it really
/// get faster?" with the ones that are not marked; each variant on every backend with
/// the fastest named (when `backends:` timed more than libtorch); the server scenario; then the
/// training stages' parallelism and throughput with their takeaways, and CPU vs GPU
/// where a stage or variant ran on both.
pub fn summary_markdown(input: &ReportInput) -> String {
    let run = &input.run;
    let mut md = String::new();
    let title = if input.title.is_empty() { &run.pipeline } else { &input.title };
    let _ = writeln!(md, "### slimbench: {}\n", cell(title));
    let _ = writeln!(
        md,
        "Run `{}` · device `{}` · {} · {} variant{}\n",
        code(&run.run_id),
        code(&run.device),
        format::duration(run.duration_s),
        input.metrics.len(),
        if input.metrics.len() == 1 { "" } else { "s" },
    );
    if input.metrics.is_empty() {
        md.push_str("No variant was evaluated.\n");
    } else {
        crate::results::markdown_section(&mut md, input);
    }
    crate::speedup::markdown_section(&mut md, &input.speedup);
    crate::backends::markdown_section(&mut md, &input.backends);
    crate::server::markdown_section(&mut md, &input.server);
    crate::parallel::parallel_markdown(&mut md, &input.parallel);
    crate::parallel::cpu_gpu_markdown(&mut md, input);
    md
}

/// Text for a table cell: `|` would end the cell and a newline the row; `<` and `&`
/// would let run text inject HTML or entities into the rendered page (`>` cannot open
/// a tag, and stays readable where the summary is printed: `256 -> 32`).
pub fn cell(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '|' => out.push_str("\\|"),
            '\n' | '\r' => out.push(' '),
            '<' => out.push_str("&lt;"),
            '&' => out.push_str("&amp;"),
            c => out.push(c),
        }
    }
    out
}

/// Text inside a code span: a backtick would end it, and markdown does not unescape
/// inside code spans, so backticks are dropped rather than escaped.
pub fn code(s: &str) -> String {
    s.chars().filter(|&c| c != '`' && c != '\n' && c != '\r').collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_are_escaped() {
        assert_eq!(cell("a|b\nc <x> & y"), "a\\|b c &lt;x> &amp; y");
        assert_eq!(code("run`1"), "run1");
    }
}
