//! The whole analysis, as `vramtrace report` runs it: a run directory with one trace (and
//! perhaps a side file) → load → analyze → report.json, read back as `diff` reads it, and the
//! terminal and Markdown summaries.
//!
//! One step differs from `vramtrace_analyzer::load`: stacks are not symbolized from the ELF files
//! the trace's module records name (that reads files on this machine, not the input, and parsing
//! them costs a tenth of a second a run) but named from their addresses, after the functions the
//! built-in attribution rules know, so the input decides what every allocation is attributed to.

use crate::one_line;
use std::path::Path;
use vramtrace_analyzer::symbolize::NameSource;
use vramtrace_analyzer::{analyze, load_traces, Frame, Options, Report, Symbols};

/// The side file an input carries besides its trace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SideKind {
    None,
    /// `markers-x.jsonl`, a client's markers.
    Markers,
    /// `output-1.jsonl`, the captured output of pid 1.
    Output,
}

const TRACE: &str = "vramtrace-1.vtr";
const MARKERS: &str = "markers-x.jsonl";
const OUTPUT: &str = "output-1.jsonl";

/// Lays out an input: one byte for the side file's kind (0 none, 1 markers, 2 output; other
/// values are none), then for a side file its length (u16, little-endian, cut to what follows)
/// and its bytes, then the trace.
pub fn analysis_input(trace: &[u8], side: SideKind, side_bytes: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(3 + side_bytes.len() + trace.len());
    match side {
        SideKind::None => v.push(0),
        SideKind::Markers | SideKind::Output => {
            let n = u16::try_from(side_bytes.len()).expect("a side file of at most 64 KiB");
            v.push(if side == SideKind::Markers { 1 } else { 2 });
            v.extend_from_slice(&n.to_le_bytes());
            v.extend_from_slice(side_bytes);
        }
    }
    v.extend_from_slice(trace);
    v
}

fn split(data: &[u8]) -> (&[u8], SideKind, &[u8]) {
    let Some((&kind, rest)) = data.split_first() else { return (&[], SideKind::None, &[]) };
    let side = match kind {
        1 => SideKind::Markers,
        2 => SideKind::Output,
        _ => return (rest, SideKind::None, &[]),
    };
    if rest.len() < 2 {
        return (&[], side, rest);
    }
    let n = (u16::from_le_bytes([rest[0], rest[1]]) as usize).min(rest.len() - 2);
    let (side_bytes, trace) = rest[2..].split_at(n);
    (trace, side, side_bytes)
}

thread_local! {
    /// One scratch run directory per thread, rewritten by every input (the fuzzer runs millions).
    static SCRATCH: tempfile::TempDir = tempfile::Builder::new().prefix("vramtrace-fuzz-").tempdir().expect("a scratch directory");
}

/// [`analysis_in`] in a scratch directory of this thread's.
pub fn analysis(data: &[u8]) {
    SCRATCH.with(|d| analysis_in(d.path(), data));
}

/// Writes the input's trace and side file into `dir` (which holds nothing else), then analyses
/// the directory as `vramtrace report DIR --json` does.
pub fn analysis_in(dir: &Path, data: &[u8]) {
    let (trace, side, side_bytes) = split(data);
    write(&dir.join(TRACE), Some(trace));
    write(&dir.join(MARKERS), (side == SideKind::Markers).then_some(side_bytes));
    write(&dir.join(OUTPUT), (side == SideKind::Output).then_some(side_bytes));
    let Some(report) = analyze_dir(dir) else { return };
    let json = serde_json::to_string(&report).expect("a report serializes");
    // What `report --json` writes, `diff` must read back.
    if let Err(e) = Report::from_json(json.as_bytes()) {
        panic!("report.json does not read back: {e}");
    }
    std::hint::black_box(vramtrace_viewer::terminal_summary(&report));
    std::hint::black_box(vramtrace_viewer::markdown_summary(&report, "vramtrace report"));
}

/// The report of the run directory `dir`; `None` (after checking the error is one line) when
/// nothing in it reads.
fn analyze_dir(dir: &Path) -> Option<Report> {
    let mut loaded = match load_traces(&[dir.to_path_buf()]) {
        Ok(l) => l,
        Err(e) => {
            one_line("a load error", &e.to_string());
            return None;
        }
    };
    loaded.symbols = Symbols::resolve_with(&loaded, |_, addr| named(addr));
    let report = analyze(&loaded, &Options::default());
    for w in loaded.warnings.iter().chain(&report.warnings) {
        one_line("a warning", w);
    }
    Some(report)
}

/// The report.json of a trace, as the analysis target makes it (for seeds of the diff target).
pub fn report_json(trace: &[u8]) -> Vec<u8> {
    let dir = tempfile::tempdir().expect("a scratch directory");
    write(&dir.path().join(TRACE), Some(trace));
    let report = analyze_dir(dir.path()).expect("a readable trace");
    serde_json::to_vec(&report).expect("a report serializes")
}

/// Functions allocations are made from, in the programs the built-in rules know; an address's
/// low bits pick one (the rest stay unresolved, as in a stripped binary).
const FUNCTIONS: [&str; 12] = [
    "ggml_cuda_pool_vmm::alloc(unsigned long, unsigned long*)",
    "llama_kv_cache::llama_kv_cache(llama_model const&)",
    "ggml_gallocr_reserve_n",
    "ggml_backend_alloc_ctx_tensors_from_buft",
    "llama_model::load_tensors(llama_model_loader&)",
    "cublasCreate_v2",
    "c10::cuda::CUDACachingAllocator::Native::NativeCachingAllocator::malloc(void**, int, unsigned long, CUstream_st*)",
    "tsl::BFCAllocator::AllocateRaw(unsigned long, unsigned long)",
    "ggml_backend_cuda_buffer_type_alloc_buffer",
    "main",
    "cuMemAlloc_v2",
    "ncclCommInitRank",
];

fn named(addr: u64) -> Option<Frame> {
    let i = (addr % 16) as usize;
    FUNCTIONS.get(i).map(|f| Frame { addr, function: Some(f.to_string()), source: NameSource::Injected, ..Frame::default() })
}

fn write(path: &Path, bytes: Option<&[u8]>) {
    match bytes {
        Some(b) => std::fs::write(path, b).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
        None => match std::fs::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => panic!("{}: {e}", path.display()),
        },
    }
}
