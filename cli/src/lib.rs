//! The commands behind the `vramtrace` binary (`main.rs` only parses the command line and calls
//! one of them). Each command wires the crates together and does no analysis or rendering of
//! its own: traces are read and analysed by `vramtrace_analyzer`, rendered by `vramtrace_viewer`,
//! and the shim is `libvramtrace.so`.
//!
//! - `run`: a program under the shim, its output captured beside its traces;
//! - `report`, `events`, `diff`: analyse, print, compare;
//! - `sweep`: drive an OpenAI-compatible server and measure growth per token;
//! - `top`: a live view of a run in progress (a directory, or a program it runs like `run`);
//! - `shim`: where the shim library is (embedded at build time, written out on first use);
//! - `common`: what they share (warnings, output paths, argument parsers, exit codes).

pub mod common;
pub mod diff;
pub mod events;
pub mod report;
pub mod run;
pub mod shim;
pub mod sweep;
pub mod top;
