//! `render_all`: everything `vramtrace report -o DIR` writes, in one call, through the bundle
//! writer ([`crate::bundle`]).
//!
//! Output directory layout (names are stable; summary.md links to the PNGs by name):
//! - `report.html` — one self-contained page (inline SVG and CSS, no script, no network);
//! - `<chart>.svg` and `<chart>.png` for every chart in [`crate::charts::charts`];
//! - `summary.md` — to paste into a GitHub issue;
//! - `report.json` — the analyzer's `Report`, pretty-printed (what `vramtrace diff` reads back).

use crate::bundle::{png_files, pretty_json, render_source, write_bundle, Documents, Error, RenderOptions, RenderedChart, Written};
use std::path::Path;
use vramtrace_analyzer::Report;

/// Renders every chart the report has data for.
pub fn render_charts(report: &Report, opts: &RenderOptions) -> Result<Vec<RenderedChart>, Error> {
    render_source(report, opts)
}

/// Writes report.html, one .svg (and .png) per chart, summary.md and report.json into
/// `out_dir` (created if missing). Existing files of the same names are replaced.
pub fn render_all(report: &Report, out_dir: &Path, opts: &RenderOptions) -> Result<Written, Error> {
    let charts = render_charts(report, opts)?;
    let repro = opts.repro.clone().unwrap_or_else(|| crate::util::default_repro(report));
    let docs = Documents {
        html: ("report.html", crate::html::html_report(report, &charts, opts)),
        markdown: ("summary.md", crate::markdown::markdown_with_charts(report, &repro, &png_files(&charts))),
        json: ("report.json", pretty_json("report.json", report)?),
    };
    write_bundle(out_dir, &charts, docs)
}
