//! `summary.md`: the headline numbers as a GitHub-flavoured markdown table, small
//! enough for a CI job summary (`$GITHUB_STEP_SUMMARY`).

use std::fmt::Write;

use crate::{Highlight, ReportInput, format};

/// The markdown summary of a run: a heading, a line with run id, device and duration,
/// and one table row per variant (variant, technique, precision, sparsity, accuracy,
/// batch-1 p50 latency, throughput, file size, peak RSS), with the best and the
/// Pareto-optimal variants marked; then, when compressed variants were timed beside
/// their baselines, "Does it really get faster?" with the ones that are not marked; then
/// the training stages' parallelism and throughput with their takeaways, and CPU vs GPU
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
        metrics_table(&mut md, input);
    }
    crate::speedup::markdown_section(&mut md, &input.speedup);
    crate::parallel::parallel_markdown(&mut md, &input.parallel);
    crate::parallel::cpu_gpu_markdown(&mut md, input);
    md
}

fn metrics_table(md: &mut String, input: &ReportInput) {
    md.push_str(
        "| variant | technique | precision | sparsity | accuracy | p50 (µs) | throughput (img/s) | size (KB) \
         | peak RSS (MB) |\n|---|---|---|--:|--:|--:|--:|--:|--:|\n",
    );
    for (m, Highlight { best, pareto }) in input.metrics.iter().zip(crate::highlights(&input.metrics)) {
        let mut variant = cell(&m.variant);
        if best {
            variant.push_str(" ★");
        }
        if pareto {
            variant.push_str(" ◆");
        }
        let accuracy = format::percent(m.accuracy, 2);
        let _ = writeln!(
            md,
            "| {variant} | {} | {} | {} | {} | {} | {} | {} | {} |",
            cell(&m.technique),
            cell(&format::precision(m)),
            format::percent(m.sparsity, 1),
            if best { format!("**{accuracy}**") } else { accuracy },
            format::measured(m.latency_p50_us, 1),
            format::rate(m.throughput_ips),
            format::kb(m.file_size_bytes),
            format::mb(m.mem_peak_b1_bytes),
        );
    }
    md.push_str("\n★ best accuracy · ◆ Pareto-optimal (batch-1 latency vs accuracy)\n");
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
