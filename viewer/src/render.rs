//! `render_all`: everything `vramtrace report -o DIR` writes, in one call.
//!
//! Output directory layout (names are stable; summary.md links to the PNGs by name):
//! - `report.html` — one self-contained page (inline SVG and CSS, no script, no network);
//! - `<chart>.svg` and `<chart>.png` for every chart in [`crate::charts::charts`];
//! - `summary.md` — to paste into a GitHub issue;
//! - `report.json` — the analyzer's `Report`, pretty-printed (what `vramtrace diff` reads back).

use crate::charts::{self, chart_png, chart_svg, Chart, ChartError, DEFAULT_HEIGHT, DEFAULT_WIDTH};
use std::path::{Path, PathBuf};
use vramtrace_analyzer::Report;

/// Options of [`render_all`].
#[derive(Clone, Debug)]
pub struct RenderOptions {
    /// The reproduce line of summary.md; default `vramtrace run -- <command line of the traced
    /// root process>`.
    pub repro: Option<String>,
    /// Chart size in pixels (SVG viewBox and PNG).
    pub chart_width: u32,
    pub chart_height: u32,
    /// Write a PNG beside every SVG (GitHub issues show PNG, not SVG).
    pub png: bool,
    /// Rows shown per HTML table (attribution audit, leaks, anomalies…); the rest are counted
    /// and stay in report.json. Bounds the page size for traces with many call sites.
    pub max_table_rows: usize,
}

impl Default for RenderOptions {
    fn default() -> Self {
        RenderOptions { repro: None, chart_width: DEFAULT_WIDTH, chart_height: DEFAULT_HEIGHT, png: true, max_table_rows: 300 }
    }
}

/// One chart as written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WrittenChart {
    pub chart: Chart,
    pub svg: PathBuf,
    pub png: Option<PathBuf>,
}

/// What [`render_all`] wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Written {
    pub dir: PathBuf,
    pub html: PathBuf,
    pub markdown: PathBuf,
    pub json: PathBuf,
    pub charts: Vec<WrittenChart>,
}

impl Written {
    /// Every file written, HTML first.
    pub fn files(&self) -> Vec<PathBuf> {
        let mut v = vec![self.html.clone(), self.markdown.clone(), self.json.clone()];
        for c in &self.charts {
            v.push(c.svg.clone());
            v.extend(c.png.clone());
        }
        v
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Chart(#[from] ChartError),
    #[error("report.json: {0}")]
    Json(#[from] serde_json::Error),
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    std::fs::write(path, bytes).map_err(|source| Error::Io { path: path.to_path_buf(), source })
}

/// A rendered chart held in memory (SVG text, PNG bytes).
#[derive(Clone, Debug)]
pub struct RenderedChart {
    pub chart: Chart,
    pub svg: String,
    pub png: Option<Vec<u8>>,
}

/// Renders every chart the report has data for.
pub fn render_charts(report: &Report, opts: &RenderOptions) -> Result<Vec<RenderedChart>, Error> {
    let size = (opts.chart_width.max(320), opts.chart_height.max(240));
    charts::charts(report)
        .into_iter()
        .map(|c| {
            let svg = chart_svg(report, &c, size)?;
            let png = if opts.png { Some(chart_png(report, &c, size)?) } else { None };
            Ok(RenderedChart { chart: c, svg, png })
        })
        .collect()
}

/// Writes report.html, one .svg (and .png) per chart, summary.md and report.json into
/// `out_dir` (created if missing). Existing files of the same names are replaced.
pub fn render_all(report: &Report, out_dir: &Path, opts: &RenderOptions) -> Result<Written, Error> {
    std::fs::create_dir_all(out_dir).map_err(|source| Error::Io { path: out_dir.to_path_buf(), source })?;
    let rendered = render_charts(report, opts)?;
    let mut written = Vec::with_capacity(rendered.len());
    for rc in &rendered {
        let svg = out_dir.join(format!("{}.svg", rc.chart.name));
        write(&svg, rc.svg.as_bytes())?;
        let png = match &rc.png {
            Some(bytes) => {
                let p = out_dir.join(format!("{}.png", rc.chart.name));
                write(&p, bytes)?;
                Some(p)
            }
            None => None,
        };
        written.push(WrittenChart { chart: rc.chart.clone(), svg, png });
    }
    let repro = opts.repro.clone().unwrap_or_else(|| crate::util::default_repro(report));
    let html = out_dir.join("report.html");
    write(&html, crate::html::html_report(report, &rendered, opts).as_bytes())?;
    let markdown = out_dir.join("summary.md");
    let png_names: Vec<(String, String)> = written
        .iter()
        .filter_map(|w| w.png.as_ref().map(|p| (w.chart.title.clone(), p.file_name().unwrap_or_default().to_string_lossy().into_owned())))
        .collect();
    write(&markdown, crate::markdown::markdown_with_charts(report, &repro, &png_names).as_bytes())?;
    let json = out_dir.join("report.json");
    let mut js = serde_json::to_string_pretty(report)?;
    js.push('\n');
    write(&json, js.as_bytes())?;
    Ok(Written { dir: out_dir.to_path_buf(), html, markdown, json, charts: written })
}
