//! `vramtrace diff` of two saved reports: both read back, compared with the gates on, and the
//! diff written as JSON, terminal text, Markdown and HTML (charts are left out: they only draw
//! figures the diff already holds, and would cost most of the time of a run).

use crate::one_line;
use vramtrace_analyzer::diff::{diff, Amount, DiffOptions};
use vramtrace_analyzer::{Category, Report};
use vramtrace_viewer::diff::{diff_html, diff_markdown, diff_terminal};

/// Lays out an input: the old report.json, a NUL byte (JSON never holds a raw one), the new.
pub fn report_diff_input(old: &[u8], new: &[u8]) -> Vec<u8> {
    [old, &[0], new].concat()
}

fn read(json: &[u8]) -> Option<Report> {
    Report::from_json(json).map_err(|e| one_line("a report.json error", &e.to_string())).ok()
}

/// Two reports split at the first NUL (no NUL: the input against itself); when only one side
/// reads, it is compared with itself, so a mutation of one half still reaches the diff.
pub fn report_diff(data: &[u8]) {
    let (a, b) = match data.iter().position(|&c| c == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, data),
    };
    let (old, new) = match (read(a), read(b)) {
        (Some(o), Some(n)) => (o, n),
        (Some(o), None) => (o.clone(), o),
        (None, Some(n)) => (n.clone(), n),
        (None, None) => return,
    };
    let opts = DiffOptions {
        old_name: "old/report.json".into(),
        new_name: "new/report.json".into(),
        threshold: None,
        max_peak_increase: Some(Amount::Percent(5.0)),
        max_increase: vec![(Category::KvCache, Amount::Bytes(0)), (Category::Compute, Amount::Percent(10.0))],
    };
    let d = diff(&old, &new, &opts);
    if let Some(line) = d.gate_failure() {
        one_line("a gate failure", &line);
    }
    std::hint::black_box(serde_json::to_string(&d).expect("a diff serializes"));
    std::hint::black_box(diff_terminal(&d));
    std::hint::black_box(diff_markdown(&d, &[]));
    std::hint::black_box(diff_html(&d, &[]));
}
