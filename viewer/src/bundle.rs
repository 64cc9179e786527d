//! The one render pipeline of `report -o DIR` and `diff -o DIR`: every chart of a
//! `ChartSource` rendered in memory (`render_source`), then one directory written by
//! `write_bundle` — an HTML page, a Markdown summary, the JSON, and each chart as `<name>.svg`
//! (and `<name>.png`) — returning what it wrote.

use crate::charts::{source_png, source_svg, Chart, ChartError, ChartKind, ChartSource, DEFAULT_HEIGHT, DEFAULT_WIDTH};
use std::path::{Path, PathBuf};

/// Options of a bundle (`render_all`; a diff uses the defaults).
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

/// A chart rendered in memory (SVG text, PNG bytes).
#[derive(Clone, Debug)]
pub struct RenderedChart<K = ChartKind> {
    pub chart: Chart<K>,
    pub svg: String,
    pub png: Option<Vec<u8>>,
}

impl<K> RenderedChart<K> {
    /// The PNG's file name in the bundle, when there is one.
    pub fn png_file(&self) -> Option<String> {
        self.png.as_ref().map(|_| format!("{}.png", self.chart.name))
    }
}

/// One chart as written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WrittenChart<K = ChartKind> {
    pub chart: Chart<K>,
    pub svg: PathBuf,
    pub png: Option<PathBuf>,
}

/// What a bundle writer wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Written<K = ChartKind> {
    pub dir: PathBuf,
    pub html: PathBuf,
    pub markdown: PathBuf,
    pub json: PathBuf,
    pub charts: Vec<WrittenChart<K>>,
}

impl<K> Written<K> {
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
    #[error("{file}: {source}")]
    Json { file: String, source: serde_json::Error },
}

/// Renders every chart `src` has data for, at the options' size (as the source adjusts it).
pub(crate) fn render_source<S: ChartSource>(src: &S, opts: &RenderOptions) -> Result<Vec<RenderedChart<S::Kind>>, Error> {
    let base = (opts.chart_width.max(320), opts.chart_height.max(240));
    src.charts()
        .into_iter()
        .map(|c| {
            let size = src.size(&c, base);
            let svg = source_svg(src, &c, size)?;
            let png = if opts.png { Some(source_png(src, &c, size)?) } else { None };
            Ok(RenderedChart { chart: c, svg, png })
        })
        .collect()
}

/// (title, PNG file name) of every chart with a PNG: what a Markdown summary links.
pub(crate) fn png_files<K>(charts: &[RenderedChart<K>]) -> Vec<(String, String)> {
    charts.iter().filter_map(|c| c.png_file().map(|f| (c.chart.title.clone(), f))).collect()
}

/// `value` as pretty-printed JSON with a final newline, for the file `file`.
pub(crate) fn pretty_json(file: &str, value: &impl serde::Serialize) -> Result<String, Error> {
    let mut js = serde_json::to_string_pretty(value).map_err(|source| Error::Json { file: file.to_string(), source })?;
    js.push('\n');
    Ok(js)
}

/// The three documents of a bundle as (file name, content).
pub(crate) struct Documents {
    pub html: (&'static str, String),
    pub markdown: (&'static str, String),
    pub json: (&'static str, String),
}

/// Writes the charts (`<name>.svg`, and `<name>.png` when rendered) and the documents into `dir`
/// (created if missing; files of the same names are replaced).
pub(crate) fn write_bundle<K: Clone>(dir: &Path, charts: &[RenderedChart<K>], docs: Documents) -> Result<Written<K>, Error> {
    std::fs::create_dir_all(dir).map_err(|source| Error::Io { path: dir.to_path_buf(), source })?;
    let write = |name: &str, bytes: &[u8]| -> Result<PathBuf, Error> {
        let path = dir.join(name);
        std::fs::write(&path, bytes).map_err(|source| Error::Io { path: path.clone(), source })?;
        Ok(path)
    };
    let mut written = Vec::with_capacity(charts.len());
    for rc in charts {
        let svg = write(&format!("{}.svg", rc.chart.name), rc.svg.as_bytes())?;
        let png = match (&rc.png, rc.png_file()) {
            (Some(bytes), Some(name)) => Some(write(&name, bytes)?),
            _ => None,
        };
        written.push(WrittenChart { chart: rc.chart.clone(), svg, png });
    }
    let html = write(docs.html.0, docs.html.1.as_bytes())?;
    let markdown = write(docs.markdown.0, docs.markdown.1.as_bytes())?;
    let json = write(docs.json.0, docs.json.1.as_bytes())?;
    Ok(Written { dir: dir.to_path_buf(), html, markdown, json, charts: written })
}
