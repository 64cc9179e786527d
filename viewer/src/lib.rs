//! vramtrace viewer: renders analyzer results (`vramtrace_analyzer::Report`) for people. It
//! never analyzes: every figure it shows is already in the report.

pub mod text;

pub use text::terminal_summary;

// Charts, HTML, Markdown and the output directory (issue 5).
pub mod address_map;
pub mod charts;
pub mod diff;
pub mod colors;
pub mod downsample;
pub mod html;
pub mod markdown;
pub mod render;
pub mod util;

pub use charts::{address_map_svg, chart_png, chart_svg, charts, fragmentation_svg, growth_svg, peak_composition_svg, timeline_svg, top_sites_svg, Chart, ChartKind};
pub use colors::{category_color, category_hex};
pub use markdown::markdown_summary;
pub use render::{render_all, render_charts, Error, RenderOptions, RenderedChart, Written, WrittenChart};
