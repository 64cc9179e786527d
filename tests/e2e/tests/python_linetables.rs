//! The analyzer's Python line-table decoder against each interpreter's own `co_lines()`, at every
//! instruction offset of every code object of a few standard modules, on every CPython 3.10–3.13
//! here (3.10's PEP 626 table and the 3.11+ location table).

use std::process::Command;
use vramtrace_analyzer::pyline::addr2line;
use vramtrace_e2e::python::{interpreters, program};

#[test]
fn decoded_lines_equal_co_lines_at_every_offset() {
    for py in interpreters() {
        let out = Command::new(&py.exe).arg(program("linetables.py")).output().expect("run python");
        assert!(out.status.success(), "{}: {}", py.label(), String::from_utf8_lossy(&out.stderr));
        let (mut codes, mut offsets) = (0, 0);
        for line in String::from_utf8(out.stdout).unwrap().lines() {
            let c: serde_json::Value = serde_json::from_str(line).unwrap();
            let version = c["v"].as_u64().unwrap() as u32;
            let first = c["first"].as_u64().unwrap() as u32;
            let hex = c["table"].as_str().unwrap();
            let table: Vec<u8> = (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap()).collect();
            let ranges: Vec<(u64, u64, Option<u32>)> = c["lines"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| (r[0].as_u64().unwrap(), r[1].as_u64().unwrap(), r[2].as_u64().map(|l| l as u32)))
                .collect();
            for off in (0..c["n"].as_u64().unwrap()).step_by(2) {
                let want = ranges.iter().find(|r| r.0 <= off && off < r.1).and_then(|r| r.2);
                let got = addr2line(version, first, &table, Some(off as u32));
                assert_eq!(got, want, "{}: {} at offset {off}: table {hex}", py.label(), c["name"]);
                offsets += 1;
            }
            codes += 1;
        }
        assert!(codes > 300 && offsets > 10_000, "{}: only {codes} code objects, {offsets} offsets", py.label());
    }
}
