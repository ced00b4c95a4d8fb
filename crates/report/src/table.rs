//! A table built once and written both as HTML and as GitHub markdown, so the two
//! documents show the same rows and format their numbers the same way.

use std::fmt::Write;

use crate::format::{self, Timed, html as esc};
use crate::markdown::cell;

/// How run text enters a sentence: names as code, other text plain, emphasis, each
/// escaped for the document the sentence goes into.
pub(crate) struct Style {
    pub(crate) name: fn(&str) -> String,
    pub(crate) text: fn(&str) -> String,
    pub(crate) em: fn(&str) -> String,
}

fn html_name(s: &str) -> String {
    format!("<code>{}</code>", esc(s))
}

fn html_em(s: &str) -> String {
    format!("<i>{}</i>", esc(s))
}

fn md_em(s: &str) -> String {
    format!("*{}*", cell(s))
}

/// Sentences for `report.html`.
pub(crate) const HTML: Style = Style { name: html_name, text: esc, em: html_em };
/// Sentences for `summary.md`: names as plain cell text, as in its tables (a code
/// span would show escapes literally, and could not hold a backtick).
pub(crate) const MARKDOWN: Style = Style { name: cell, text: cell, em: md_em };

/// Where a column appears.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Show {
    /// In both documents.
    Both,
    /// Only in `report.html`.
    Html,
    /// Only in `summary.md` (the HTML shows it elsewhere).
    Markdown,
}

/// A column: its heading, whether it holds numbers (right-aligned) and where it shows.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Column {
    title: String,
    num: bool,
    show: Show,
}

/// One cell, as each document writes it (already escaped for it).
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Cell {
    html: String,
    md: String,
    /// An HTML class for the `<td>` (`slow`, `fast`).
    class: &'static str,
}

impl Cell {
    /// Text from the run, escaped for each document.
    pub(crate) fn text(s: &str) -> Cell {
        Cell { html: esc(s), md: cell(s), class: "" }
    }

    /// A name from the run: code in HTML, plain in markdown (as in its other tables).
    pub(crate) fn name(s: &str) -> Cell {
        Cell { html: format!("<code>{}</code>", esc(s)), md: cell(s), class: "" }
    }

    /// A timed figure with its interval and invalid mark.
    pub(crate) fn timed(t: &Timed<'_>) -> Cell {
        Cell { html: t.html(), md: cell(&t.text()), class: "" }
    }

    /// Markup of each document's own, already escaped.
    pub(crate) fn raw(html: String, md: String) -> Cell {
        Cell { html, md, class: "" }
    }

    /// With a class on its HTML cell.
    pub(crate) fn class(mut self, class: &'static str) -> Cell {
        self.class = class;
        self
    }
}

/// A table: columns, then rows of one cell per column.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Table {
    class: &'static str,
    columns: Vec<Column>,
    rows: Vec<(&'static str, Vec<Cell>)>,
}

impl Table {
    /// An empty table; `class` is its HTML class.
    pub(crate) fn new(class: &'static str) -> Table {
        Table { class, ..Default::default() }
    }

    /// Add a text column.
    pub(crate) fn text(&mut self, title: impl Into<String>, show: Show) -> &mut Table {
        self.columns.push(Column { title: title.into(), num: false, show });
        self
    }

    /// Add a numeric (right-aligned) column.
    pub(crate) fn num(&mut self, title: impl Into<String>, show: Show) -> &mut Table {
        self.columns.push(Column { title: title.into(), num: true, show });
        self
    }

    /// Add a row, `class` on its `<tr>` (empty for none); one cell per column.
    pub(crate) fn row(&mut self, class: &'static str, cells: Vec<Cell>) {
        debug_assert_eq!(cells.len(), self.columns.len(), "one cell per column");
        self.rows.push((class, cells));
    }

    /// Whether it has no rows.
    pub(crate) fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    fn shown(&self, document: Show) -> impl Iterator<Item = (usize, &Column)> + '_ {
        self.columns.iter().enumerate().filter(move |(_, c)| c.show == Show::Both || c.show == document)
    }

    /// The HTML table in a horizontally scrolling container.
    pub(crate) fn html(&self) -> String {
        let mut h = format!("<div class=\"scroll\"><table class=\"{}\">\n<thead><tr>", self.class);
        for (_, c) in self.shown(Show::Html) {
            let _ = write!(h, "<th{}>{}</th>", if c.num { " class=\"num\"" } else { "" }, esc(&c.title));
        }
        h.push_str("</tr></thead>\n<tbody>\n");
        for (class, cells) in &self.rows {
            if class.is_empty() {
                h.push_str("<tr>");
            } else {
                let _ = write!(h, "<tr class=\"{class}\">");
            }
            for (i, c) in self.shown(Show::Html) {
                let cell = &cells[i];
                let classes = [if c.num { "num" } else { "" }, cell.class];
                let classes: Vec<&str> = classes.into_iter().filter(|c| !c.is_empty()).collect();
                if classes.is_empty() {
                    let _ = write!(h, "<td>{}</td>", cell.html);
                } else {
                    let _ = write!(h, "<td class=\"{}\">{}</td>", classes.join(" "), cell.html);
                }
            }
            h.push_str("</tr>\n");
        }
        h.push_str("</tbody></table></div>\n");
        h
    }

    /// The markdown table.
    pub(crate) fn markdown(&self) -> String {
        let columns: Vec<(usize, &Column)> = self.shown(Show::Markdown).collect();
        let mut md = String::new();
        let line = |cells: Vec<String>| format!("| {} |\n", cells.join(" | "));
        md.push_str(&line(columns.iter().map(|(_, c)| cell(&lower_first(&c.title))).collect()));
        md.push_str(&format!(
            "|{}|\n",
            columns.iter().map(|(_, c)| if c.num { "--:" } else { "---" }).collect::<Vec<_>>().join("|")
        ));
        for (_, cells) in &self.rows {
            md.push_str(&line(columns.iter().map(|(i, _)| cells[*i].md.clone()).collect()));
        }
        md
    }
}

/// Markdown headings are lower case, as in the summary's other tables (`variant`,
/// `p50 (µs)`), but acronyms stay (`CUDA peak`).
fn lower_first(title: &str) -> String {
    let mut chars = title.chars();
    match (chars.next(), chars.next()) {
        (Some(a), Some(b)) if a.is_uppercase() && !b.is_uppercase() => {
            a.to_lowercase().chain(title.chars().skip(1)).collect()
        }
        _ => title.to_string(),
    }
}

/// A section with nothing to show: one line, `<b>Title:</b> why`, under the section's
/// id (so the page's links still land somewhere).
pub(crate) fn empty_section(h: &mut String, id: &str, title: &str, why: &str) {
    let _ = writeln!(
        h,
        "<section id=\"{id}\" class=\"empty\"><p class=\"skipped\"><b>{title}:</b> {why}</p></section>"
    );
}

/// `—` for a count or size that was not measured, as every table shows it.
pub(crate) fn missing() -> Cell {
    Cell::text(format::MISSING)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_table_two_documents() {
        let mut t = Table::new("demo");
        t.text("Variant", Show::Both).num("p50 (µs)", Show::Both).num("html only", Show::Html);
        let bad = Timed::interval(41.2, 40.1, 42.3, |v| format::measured(v, 1)).validity("invalid", "busy");
        t.row("best", vec![Cell::name("a|<b>"), Cell::timed(&bad), Cell::text("x").class("slow")]);
        assert_eq!(t.markdown(), "| variant | p50 (µs) |\n|---|--:|\n| a\\|&lt;b> | ⚠ 41.2 [40.1, 42.3] |\n");
        let h = t.html();
        assert!(h.contains("<th class=\"num\">html only</th>"), "{h}");
        assert!(h.contains("<tr class=\"best\"><td><code>a|&lt;b&gt;</code></td>"), "{h}");
        assert!(h.contains("<td class=\"num slow\">x</td>"), "{h}");
        assert!(!t.is_empty());
        assert_eq!(
            [lower_first("Variant"), lower_first("CUDA peak"), lower_first("× baseline")],
            ["variant", "CUDA peak", "× baseline"]
        );
    }
}
