//! vramtrace viewer: renders analyzer results (`vramtrace_analyzer::Report`, `Diff`) for people
//! — terminal text, SVG and PNG charts, a self-contained HTML page, Markdown for an issue. It
//! never analyzes: every figure it shows is already in the report (docs/architecture.md), and
//! every phrase that carries one is worded once ([`words`]).
//!
//! Layers, each importing only those above it: [`util`], [`colors`], [`downsample`], [`words`],
//! [`markup`] → [`charts`](mod@charts) → [`bundle`] (the one render pipeline) → the outputs: [`text`],
//! [`markdown`], [`html`], [`render`] (report bundle), [`diff`] (diff outputs and bundle),
//! [`events`] and [`sweep`] (the `events` and `sweep` commands' lines), [`live`] (the view of
//! `vramtrace top`, drawn from a live snapshot rather than a report).

pub mod bundle;
pub mod charts;
pub mod colors;
pub mod diff;
pub mod downsample;
pub mod events;
pub mod html;
pub mod live;
pub mod markdown;
pub mod markup;
pub mod render;
pub mod sweep;
pub mod text;
pub mod util;
pub mod words;

pub use bundle::{Error, RenderOptions, RenderedChart, Written, WrittenChart};
pub use charts::{address_map_svg, chart_png, chart_svg, charts, fragmentation_svg, growth_svg, peak_composition_svg, timeline_svg, top_sites_svg, Chart, ChartKind};
pub use colors::{category_color, category_hex};
pub use markdown::markdown_summary;
pub use render::{render_all, render_charts};
pub use text::terminal_summary;
