//! The largest inputs a target is held to: 1 MiB each, built as worst cases (every event a new
//! allocation, a new device, a new 128-frame stack, a marker; a report with every list long; a
//! rules file of thousands of rules). A fuzzer seldom grows an input that far, so these are
//! written out and run under the fuzzer's 2 s limit by `fuzz/run.sh` (a hang there is a finding),
//! and replayed for panics by the replay test.

use crate::{analysis, analysis_input, report_diff_input, rules_input, sweep_http_input, SideKind};
use std::cell::Cell;
use std::io::Write;
use vramtrace_trace::record::MAX_STACK_DEPTH;
use vramtrace_trace::{Api, DeviceInfo, EventRec, Info, Module, PyCode, PyFrame, PyStack, TraceWriter};

/// The size every large input is built to (at most).
pub const LARGE: usize = 1 << 20;

/// One large input: the target it is for, a name, the bytes.
pub struct Large {
    pub target: &'static str,
    pub name: &'static str,
    pub data: Vec<u8>,
}

/// A trace being built in memory, its length readable while the writer holds it.
struct Counted<'a>(Vec<u8>, &'a Cell<usize>);

impl Write for Counted<'_> {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(b);
        self.1.set(self.0.len());
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Steps until the trace is about 1 MiB: `each(i, writer)` writes the records of step `i` (a
/// few KiB at most).
fn trace(mut each: impl FnMut(u64, &mut TraceWriter<Counted>) -> std::io::Result<()>) -> Vec<u8> {
    let len = Cell::new(0);
    let info = Info { pid: 1, ppid: 0, mono_ns: 1, stack_depth: MAX_STACK_DEPTH, exe: "/bin/large".into(), ..Info::default() };
    let m = Module { id: 1, base: 0x40_0000, start: 0x40_0000, end: 0x80_0000, build_id: vec![], path: "/bin/large".into() };
    let mut w = TraceWriter::new(Counted(Vec::with_capacity(LARGE), &len), &info).expect("writing to memory");
    w.module(&m).expect("writing to memory");
    let mut i = 0;
    while len.get() < LARGE - 8192 {
        each(i, &mut w).expect("writing to memory");
        i += 1;
    }
    w.into_inner().0
}

fn ev(api: Api, t: u64, size: u64, ptr: u64) -> EventRec {
    EventRec { t_ns: t * 1000, size, ptr, api: api as u16, tid: 1, ..EventRec::default() }
}

fn traces() -> Vec<(&'static str, Vec<u8>)> {
    let gib = 1u64 << 30;
    vec![
        // Every allocation freed again: the longest replay.
        ("churn", trace(|i, w| {
            w.event(&ev(Api::MemAlloc, 2 * i, 4096 * (i % 64 + 1), 0x7f00_0000_0000 + i * 0x10_0000))?;
            w.event(&ev(Api::MemFree, 2 * i + 1, 0, 0x7f00_0000_0000 + i * 0x10_0000))
        })),
        // Every allocation live at the end, each from its own call site (addresses the analysis
        // target leaves unresolved, so each frame has a name of its own).
        ("live-sites", trace(|i, w| {
            w.stack(i as u32 + 1, &[0x40_100d + i * 16, 0x40_200d + i * 16, 0x40_300d])?;
            w.event(&EventRec { stack_id: i as u32 + 1, ..ev(Api::MemAlloc, i, 1 << 20, 0x7f00_0000_0000 + i * 0x20_0000) })
        })),
        // Every allocation on another device, half of them announced.
        ("devices", trace(|i, w| {
            if i % 2 == 0 {
                w.device(&DeviceInfo { t_ns: i, ordinal: i as i32, name: "GPU".into(), total_bytes: 80 * gib, driver_version: 12090, uuid: [i as u8; 16] })?;
            }
            w.event(&EventRec { device: i as i32, ..ev(Api::MemAlloc, i, 1 << 20, 0x7f00_0000_0000 + i * 0x20_0000) })
        })),
        // Every allocation under a new stack of the deepest kind.
        ("deep-stacks", trace(|i, w| {
            let frames: Vec<u64> = (0..MAX_STACK_DEPTH as u64).map(|f| 0x40_1000 + ((i * 7 + f) % 4096) * 16).collect();
            w.stack(i as u32 + 1, &frames)?;
            w.event(&EventRec { stack_id: i as u32 + 1, ..ev(Api::MemAlloc, i, 4096, 0x7f00_0000_0000 + i * 0x1000) })
        })),
        // Markers between every call: phases opening and closing, token counts for growth fits.
        ("markers", trace(|i, w| {
            let label = ["phase:weights", "phase:", "tokens", "phase:kv_cache"][i as usize % 4];
            w.marker(i * 1000, 1, label, i as i64)?;
            w.event(&ev(Api::MemAlloc, i, 1 << 16, 0x7f00_0000_0000 + i * 0x1_0000))
        })),
        // VMM: one large reservation, mapped piece by piece.
        ("vmm", trace(|i, w| {
            if i == 0 {
                w.event(&ev(Api::MemAddressReserve, 0, 1 << 46, 0x7e00_0000_0000))?;
            }
            let h = 0x1000 + i;
            w.event(&EventRec { handle: h, ..ev(Api::MemCreate, i, 2 << 20, 0) })?;
            w.event(&EventRec { handle: h, ..ev(Api::MemMap, i, 2 << 20, 0x7e00_0000_0000 + i * (2 << 20)) })
        })),
        // Python: a new code object and stack for every call.
        ("python", trace(|i, w| {
            let id = i as u32 + 1;
            w.py_code(&PyCode { id, py_version: 0x030c_00f0, first_line: 1, linetable_cut: false, filename: "m.py".into(), name: "f".into(), qualname: "C.f".into(), linetable: vec![0x80 | (i as u8 & 0x7f); 64] })?;
            let frames = (1..=id.min(64)).map(|c| PyFrame { code_id: c, offset: Some(c * 2), entry: c == 1 }).collect();
            w.py_stack(&PyStack { id, frames, truncated: false })?;
            w.event(&EventRec { py_stack_id: id, ..ev(Api::MemAlloc, i, 4096, 0x7f00_0000_0000 + i * 0x1000) })
        })),
    ]
}

/// The report.json of the longest prefix of `trace` (records are cut where they are cut: the
/// reader takes a cut record as the end) whose report fits in `max` bytes.
fn report_of_size(trace: &[u8], max: usize) -> Vec<u8> {
    let mut len = trace.len();
    loop {
        let r = analysis::report_json(&trace[..len]);
        if r.len() <= max {
            return r;
        }
        // Reports grow about linearly with the trace; aim a little under.
        len = (len as u128 * max as u128 * 9 / 10 / r.len() as u128) as usize;
    }
}

/// Rules with patterns only, asked about a 128-frame stack none of them matches.
fn many_rules() -> Vec<u8> {
    let rule = |i: usize| format!("[[rule]]\nname = \"r{i}\"\npattern = \"*nomatch{i}*x?\"\nmodule = \"lib{i}\"\ncategory = \"weights\"\n");
    let mut toml = String::new();
    for i in 0.. {
        let r = rule(i);
        if toml.len() + r.len() > LARGE - 16384 {
            break;
        }
        toml.push_str(&r);
    }
    let names: Vec<String> = (0..MAX_STACK_DEPTH).map(|i| format!("_ZN4ggml{i}allocEv_nomatch")).collect();
    let frames: Vec<(&str, Option<&str>)> = names.iter().map(|n| (n.as_str(), Some("/usr/lib/libggml.so"))).collect();
    rules_input(&toml, &frames)
}

/// Every large input, for every target.
pub fn large_inputs() -> Vec<Large> {
    let mut out = Vec::new();
    let traces = traces();
    for (name, t) in &traces {
        out.push(Large { target: "trace_reader", name, data: t.clone() });
        out.push(Large { target: "analysis", name, data: analysis_input(t, SideKind::None, &[]) });
    }
    let lines: String = (0..6000).map(|i| format!("{{\"t_ns\":{},\"label\":\"tokens\",\"value\":{i}}}\n", i * 10)).collect();
    out.push(Large { target: "analysis", name: "markers-side-file", data: analysis_input(&traces[0].1[..LARGE - 70_000], SideKind::Markers, &lines.as_bytes()[..65_535]) });
    // Reports with long lists, in pairs of 1 MiB: many devices against many call sites, many
    // sites against many markers.
    let report = |name: &str| traces.iter().find(|(t, _)| *t == name).map(|(_, t)| report_of_size(t, LARGE / 2 - 1)).expect("a built trace");
    let (devices, sites, markers) = (report("devices"), report("live-sites"), report("markers"));
    out.push(Large { target: "report_diff", name: "devices-vs-sites", data: report_diff_input(&devices, &sites) });
    out.push(Large { target: "report_diff", name: "sites-vs-markers", data: report_diff_input(&sites, &markers) });
    out.push(Large { target: "rules", name: "many-rules", data: many_rules() });
    let tokens = format!("{{\"tokens\":[{}0]}}", "1,".repeat((LARGE - 64) / 2));
    out.push(Large { target: "sweep_http", name: "tokens", data: sweep_http_input(200, tokens.as_bytes()) });
    let nested = format!("{{\"error\":{}", "{\"message\":".repeat(LARGE / 12));
    out.push(Large { target: "sweep_http", name: "nested", data: sweep_http_input(500, nested.as_bytes()) });
    out.push(Large { target: "sweep_http", name: "control-characters", data: sweep_http_input(500, &[b'\x07'; LARGE - 2]) });
    out
}
