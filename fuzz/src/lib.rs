//! Fuzz targets: what vramtrace does with bytes it did not write — a trace, a report.json, a
//! rules file, a server's HTTP answer — driven with arbitrary input.
//!
//! Each target takes any bytes and must return: a panic, a hang or an unbounded allocation is a
//! bug, and so is an error or warning that is not one line (every command prints them as one).
//! The coverage-guided fuzzer (`fuzz/libfuzzer`, built and run by `fuzz/run.sh`, which needs
//! special compiler flags and so stays out of the workspace) calls these functions, and
//! `tests/replay.rs` replays every committed corpus and crash file through the same functions
//! in a plain `cargo test`, so a bug once found stays fixed wherever the fuzzer cannot be built.
//!
//! Inputs that carry two parts (two reports, a rules file and a stack, a side file and a trace)
//! are laid out so that a real file is a valid input on its own: see each target.

mod alloc;
mod analysis;
mod diff;
mod large;
mod rules;
mod sweep;

pub use alloc::{Capped, ALLOC_LIMIT};
pub use analysis::{analysis, analysis_in, analysis_input, report_json, SideKind};
pub use diff::{report_diff, report_diff_input};
pub use large::{large_inputs, Large, LARGE};
pub use rules::{rules, rules_input};
pub use sweep::{sweep_http, sweep_http_input};

use vramtrace_trace::Reader;

/// One fuzz target: its name (the folder under `fuzz/corpus/`, the binary `fuzz/run.sh`
/// builds) and its body.
pub struct Target {
    pub name: &'static str,
    pub run: fn(&[u8]),
}

/// Every target, in the order `fuzz/run.sh all` runs them.
pub const TARGETS: &[Target] = &[
    Target { name: "trace_reader", run: trace_reader },
    Target { name: "analysis", run: analysis },
    Target { name: "report_diff", run: report_diff },
    Target { name: "rules", run: rules },
    Target { name: "sweep_http", run: sweep_http },
];

/// The target called `name`.
pub fn target(name: &str) -> Option<&'static Target> {
    TARGETS.iter().find(|t| t.name == name)
}

/// Fails when a message meant for one line of a terminal spans several.
pub(crate) fn one_line(what: &str, msg: &str) {
    assert!(!msg.contains('\n'), "{what} is not one line: {msg:?}");
}

/// The trace reader over arbitrary bytes: every record, to the end of the stream; the reader
/// must always advance and end.
pub fn trace_reader(data: &[u8]) {
    let mut r = match Reader::new(data) {
        Ok(r) => r,
        Err(e) => return one_line("a trace error", &e.to_string()),
    };
    let mut pos = r.position();
    while let Some(rec) = r.next() {
        match rec {
            Ok(rec) => {
                std::hint::black_box(&rec);
                assert!(r.position() > pos, "the reader yielded a record without advancing at offset {pos}");
                pos = r.position();
            }
            // The reader stops at the first corruption: the loop ends with the next call.
            Err(e) => one_line("a trace error", &e.to_string()),
        }
    }
    std::hint::black_box((r.tail(), r.notes()));
}
