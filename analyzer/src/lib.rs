//! vramtrace analyzer: reads `.vtr` traces, rebuilds device memory over time, attributes every
//! byte to a category with the rule that decided it, and explains peaks, OOMs and growth.
//!
//! The data flows one way, so the model stays pure and testable:
//! 1. [`load()`] (I/O): map and scan the trace files in parallel, read side files (runner output,
//!    sidecar markers), and symbolize the recorded stacks ([`Symbols`]).
//! 2. [`stream`]: every trace's events and every marker merged into one time-ordered stream
//!    ([`Loaded::stream`]), the same for the model and for `vramtrace events`.
//! 3. [`analyze`] (pure): replay the stream through the memory model (`model`), which asks
//!    [`attribute`] what each allocation is; nothing there touches the file system.
//! 4. The [`Report`] (serde) is what `vramtrace report --json` writes (docs/report-schema.md)
//!    and [`Report::from_json`] reads back.
//!
//! A run still in progress is read by a [`live::Session`] instead: it reads what the traces
//! gained since its last refresh, feeds it to the same memory model, and shows a
//! [`live::Snapshot`] of what is on each GPU now.

pub mod attribute;
pub mod diff;
pub mod growth;
pub mod live;
pub mod load;
mod model;
pub mod pyframes;
pub mod pyline;
pub mod report;
mod report_io;
mod snapshot;
pub mod stream;
pub mod summary;
pub mod symbolize;

pub use attribute::{logs, Attributor, Category, Rule, RuleSource, Rules};
pub use load::{load_traces, Loaded, TraceFile};
pub use vramtrace_trace::side::{OutputLine, SideMarker};
pub use vramtrace_trace::units::{fmt_bytes, parse_size};
pub use report::*;
pub use stream::{EventStream, StreamItem};
pub use symbolize::{Frame, Symbolizer};

use std::collections::HashMap;
use std::path::PathBuf;

/// Errors that stop a load; each displays as one line.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Io(String),
    #[error("{0}")]
    NoTrace(String),
    #[error("rules file: {0}")]
    Rules(String),
    /// A report.json that cannot be read back ([`Report::from_json`]).
    #[error("{0}")]
    Report(String),
}

const MIB: u64 = 1 << 20;

/// Analysis options.
#[derive(Clone, Debug)]
pub struct Options {
    /// User attribution rules; tried before the built-in ones.
    pub rules: Option<Rules>,
    /// Device capacity in bytes, overriding what cuMemGetInfo reported (`--vram`).
    pub vram: Option<u64>,
    /// Upper bound on timeline points per device.
    pub timeline_points: usize,
    /// How many call sites `Peak::top_sites` lists.
    pub top_sites: usize,
    /// Window before an OOM in which growth per category is measured.
    pub oom_window_ns: u64,
}

impl Default for Options {
    fn default() -> Self {
        Options { rules: None, vram: None, timeline_points: 2000, top_sites: 10, oom_window_ns: 10_000_000_000 }
    }
}

/// Symbolized frames for every address in the loaded stacks, per trace file. Built before the
/// analysis (it reads ELF files), so `analyze` itself does no I/O.
#[derive(Clone, Debug, Default)]
pub struct Symbols {
    files: Vec<HashMap<u64, Frame>>,
    pub warnings: Vec<String>,
}

impl Symbols {
    /// Resolves every stack address of every trace with the real symbolizer (ELF files named
    /// by the traces' module records; files shared between processes are parsed once).
    pub fn resolve(loaded: &Loaded) -> Symbols {
        let paths: Vec<&std::path::Path> = loaded.traces.iter().map(|t| t.path.as_path()).collect();
        let cache = std::rc::Rc::new(std::cell::RefCell::new(symbolize::ElfCache::with_search_dirs(symbolize::search_dirs_for(&paths))));
        let mut warnings = Vec::new();
        let mut syms: Vec<Symbolizer> = loaded.traces.iter().map(|t| Symbolizer::with_cache(&t.modules, cache.clone())).collect();
        let s = Self::resolve_with(loaded, |fi, addr| Some(syms[fi].resolve(addr)));
        for sy in &syms {
            for w in sy.warnings() {
                if !warnings.contains(&w) {
                    warnings.push(w);
                }
            }
        }
        Symbols { warnings, ..s }
    }

    /// Resolves with a caller-provided function (file index, return address) — for tests and
    /// for tools with their own symbol source. `None` leaves the address unresolved
    /// (module+offset from the trace's module records).
    pub fn resolve_with(loaded: &Loaded, mut f: impl FnMut(usize, u64) -> Option<Frame>) -> Symbols {
        let mut files = Vec::with_capacity(loaded.traces.len());
        for (fi, t) in loaded.traces.iter().enumerate() {
            let mut addrs: Vec<u64> = t.stacks.values().flatten().copied().collect();
            addrs.sort_unstable();
            addrs.dedup();
            let mut m = HashMap::with_capacity(addrs.len());
            for a in addrs {
                if let Some(fr) = f(fi, a) {
                    m.insert(a, fr);
                }
            }
            files.push(m);
        }
        Symbols { files, warnings: Vec::new() }
    }

    pub fn frame(&self, file: usize, addr: u64) -> Option<&Frame> {
        self.files.get(file)?.get(&addr)
    }

    /// Records the frame of `addr` in trace `file` (a live session symbolizes stacks as they
    /// appear).
    pub(crate) fn insert(&mut self, file: usize, addr: u64, frame: Frame) {
        if self.files.len() <= file {
            self.files.resize_with(file + 1, HashMap::new);
        }
        self.files[file].insert(addr, frame);
    }
}

/// Loads traces (files or directories, with their side files) and symbolizes their stacks.
/// A damaged file is a warning in `Loaded::warnings`; a path with no trace is an error.
pub fn load(paths: &[PathBuf]) -> Result<Loaded, Error> {
    let mut l = load_traces(paths)?;
    l.symbols = Symbols::resolve(&l);
    Ok(l)
}

/// Replays the loaded traces through the memory model, then derives the summary figures
/// ([`summary::finalize`]). Pure: no I/O.
pub fn analyze(loaded: &Loaded, opts: &Options) -> Report {
    let mut report = model::Engine::new(loaded, opts).run(loaded);
    summary::finalize(&mut report);
    report
}

/// An I/O error as one short lowercase phrase (`no such file or directory`), the same in every
/// command's messages.
pub fn io_message(e: &std::io::Error) -> String {
    use std::io::ErrorKind::*;
    match e.kind() {
        NotFound => "no such file or directory".into(),
        PermissionDenied => "permission denied".into(),
        IsADirectory => "is a directory".into(),
        _ => match e.raw_os_error() {
            // "Disk quota exceeded (os error 122)" → "disk quota exceeded"
            Some(_) => {
                let s = e.to_string();
                let s = s.split(" (os error").next().unwrap_or(&s).to_string();
                let mut c = s.chars();
                c.next().map(|f| f.to_lowercase().chain(c).collect()).unwrap_or_default()
            }
            None => e.to_string(),
        },
    }
}
