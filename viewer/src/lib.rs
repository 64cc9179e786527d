//! vramtrace viewer: renders analyzer results (`vramtrace_analyzer::Report`) for people. It
//! never analyzes: every figure it shows is already in the report.

pub mod text;

pub use text::terminal_summary;
