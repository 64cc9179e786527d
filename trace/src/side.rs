//! The files of a run directory, and the two side-file formats, each written and read by the
//! types here and nowhere else:
//!
//! - `vramtrace-<pid>.vtr` (`vramtrace-<pid>.<n>.vtr` for a second file of the same pid): one
//!   trace per process, written by the shim ([`trace_file_name`]).
//! - `output-<pid>.jsonl`: what the traced program printed, one [`OutputLine`] per line, written
//!   by `vramtrace run` (the analyzer matches runners' buffer-size log lines to allocations).
//! - `markers-<tag>.jsonl`: markers written beside the traces by a client (`vramtrace sweep`
//!   writes `markers-sweep.jsonl`), one [`SideMarker`] per line.
//!
//! Both side files are JSON Lines on the trace clock ([`crate::clock::monotonic_ns`]); a line
//! is written with one `write`, so a reader never sees half of one, and a reader skips (and
//! counts) lines it cannot parse instead of failing.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// File name of a process's trace: `vramtrace-<pid>.vtr`, or `vramtrace-<pid>.<n>.vtr` when
/// the first name is taken (`n` ≥ 1).
pub fn trace_file_name(pid: u32, n: u32) -> String {
    if n == 0 {
        format!("vramtrace-{pid}.vtr")
    } else {
        format!("vramtrace-{pid}.{n}.vtr")
    }
}

/// Whether a file name is a trace's (by extension: a renamed trace still reads).
pub fn is_trace_file_name(name: &str) -> bool {
    name.ends_with(".vtr")
}

/// The pid in a trace file's name, when it has the shim's form.
pub fn pid_of_trace_file(name: &str) -> Option<u32> {
    let stem = name.strip_prefix("vramtrace-")?.strip_suffix(".vtr")?;
    stem.split('.').next()?.parse().ok()
}

/// File name of a program's captured output: `output-<pid>.jsonl`.
pub fn output_file_name(pid: u32) -> String {
    format!("output-{pid}.jsonl")
}

/// File name of a client's marker file: `markers-<tag>.jsonl`.
pub fn markers_file_name(tag: &str) -> String {
    format!("markers-{tag}.jsonl")
}

/// What a side file is, by its name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SideFile {
    /// Captured output; the pid when the name carries one.
    Output { pid: Option<u32> },
    Markers,
}

impl SideFile {
    pub fn classify(name: &str) -> Option<SideFile> {
        if let Some(stem) = name.strip_prefix("output-").and_then(|s| s.strip_suffix(".jsonl")) {
            Some(SideFile::Output { pid: stem.parse().ok() })
        } else if name.starts_with("markers-") && name.ends_with(".jsonl") {
            Some(SideFile::Markers)
        } else {
            None
        }
    }

    pub fn of_path(path: &Path) -> Option<SideFile> {
        Self::classify(path.file_name()?.to_str()?)
    }
}

/// One line a traced program printed, with the time it arrived (`output-<pid>.jsonl`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputLine {
    pub t_ns: u64,
    /// `stdout` or `stderr`.
    #[serde(default)]
    pub stream: String,
    /// The line without its line ending.
    pub line: String,
    /// The process that printed it: from the file's name, not stored in the line.
    #[serde(skip)]
    pub pid: Option<u32>,
}

/// A marker from a side file (`markers-<tag>.jsonl`): same meaning as a trace's own markers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SideMarker {
    pub t_ns: u64,
    pub label: String,
    #[serde(default)]
    pub value: i64,
}

/// Renders one record as its JSON line, newline included.
pub fn to_jsonl<T: Serialize>(rec: &T) -> String {
    let mut s = serde_json::to_string(rec).expect("side records always serialize");
    s.push('\n');
    s
}

/// What reading a side file found: the records, and the lines that did not parse.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JsonLines<T> {
    pub records: Vec<T>,
    /// Lines that were not a record (counted, skipped).
    pub bad_lines: usize,
    /// 1-based number of the first such line.
    pub first_bad_line: usize,
}

impl<T> JsonLines<T> {
    /// A warning for the skipped lines, if any: `<path>: N unreadable line(s), first at line L; skipped`.
    pub fn warning(&self, path: &Path) -> Option<String> {
        (self.bad_lines > 0).then(|| format!("{}: {} unreadable line(s), first at line {}; skipped", path.display(), self.bad_lines, self.first_bad_line))
    }
}

/// Parses JSON Lines text (blank lines are ignored, invalid UTF-8 is replaced).
pub fn parse_jsonl<T: DeserializeOwned>(bytes: &[u8]) -> JsonLines<T> {
    let text = String::from_utf8_lossy(bytes);
    let mut out = JsonLines { records: Vec::new(), bad_lines: 0, first_bad_line: 0 };
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<T>(line) {
            Ok(v) => out.records.push(v),
            Err(_) => {
                if out.bad_lines == 0 {
                    out.first_bad_line = i + 1;
                }
                out.bad_lines += 1;
            }
        }
    }
    out
}

/// Reads captured output; each line gets the pid of the file's name.
pub fn read_output(path: &Path) -> std::io::Result<JsonLines<OutputLine>> {
    let pid = match SideFile::of_path(path) {
        Some(SideFile::Output { pid }) => pid,
        _ => None,
    };
    let mut lines: JsonLines<OutputLine> = parse_jsonl(&std::fs::read(path)?);
    for l in &mut lines.records {
        l.pid = pid;
    }
    Ok(lines)
}

/// Reads a marker file.
pub fn read_markers(path: &Path) -> std::io::Result<JsonLines<SideMarker>> {
    Ok(parse_jsonl(&std::fs::read(path)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_classify() {
        assert_eq!(trace_file_name(42, 0), "vramtrace-42.vtr");
        assert_eq!(pid_of_trace_file(&trace_file_name(42, 3)), Some(42));
        assert_eq!(pid_of_trace_file("x.vtr"), None);
        assert_eq!(SideFile::classify(&output_file_name(7)), Some(SideFile::Output { pid: Some(7) }));
        assert_eq!(SideFile::classify("output-x.jsonl"), Some(SideFile::Output { pid: None }));
        assert_eq!(SideFile::classify(&markers_file_name("sweep")), Some(SideFile::Markers));
        assert_eq!(SideFile::classify("report.json"), None);
    }

    #[test]
    fn lines_round_trip_and_bad_lines_are_counted() {
        let a = OutputLine { t_ns: 5, stream: "stderr".into(), line: "KV buffer size = 1.00 MiB \"q\"".into(), pid: Some(9) };
        let m = SideMarker { t_ns: 6, label: "prompt_tokens".into(), value: -3 };
        let text = format!("{}not json\n\n{}", to_jsonl(&a), to_jsonl(&a));
        let got: JsonLines<OutputLine> = parse_jsonl(text.as_bytes());
        assert_eq!(got.records.len(), 2);
        assert_eq!(got.records[0], OutputLine { pid: None, ..a.clone() });
        assert_eq!((got.bad_lines, got.first_bad_line), (1, 2));
        let got: JsonLines<SideMarker> = parse_jsonl(to_jsonl(&m).as_bytes());
        assert_eq!(got.records, vec![m]);
        assert!(got.warning(Path::new("m.jsonl")).is_none());
    }
}
