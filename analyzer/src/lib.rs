//! vramtrace analyzer: reads `.vtr` traces, rebuilds device memory over time, attributes every
//! byte to a category with the rule that decided it, and explains peaks, OOMs and growth.
//!
//! Three steps, so the model stays pure and testable:
//! 1. [`load`] (I/O): map and scan the trace files in parallel, read side files (runner output,
//!    sidecar markers), and symbolize the recorded stacks ([`Symbols`]).
//! 2. [`analyze`] (pure): merge the per-process event streams by time and replay them through
//!    the memory model (`model.rs`); nothing there touches the file system.
//! 3. The [`Report`] (serde) is what `vramtrace report --json` writes (docs/report-schema.md).

pub mod attribute;
pub mod diff;
pub mod growth;
pub mod load;
pub mod logs;
mod model;
pub mod pyline;
pub mod report;
pub mod symbolize;

pub use attribute::{Attributor, Category, Rule, RuleSource, Rules};
pub use load::{load_traces, Loaded, TraceFile};
pub use vramtrace_trace::side::{OutputLine, SideMarker};
pub use vramtrace_trace::units::{fmt_bytes, parse_size};
pub use report::*;
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
}

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
}

/// Loads traces (files or directories, with their side files) and symbolizes their stacks.
/// A damaged file is a warning in `Loaded::warnings`; a path with no trace is an error.
pub fn load(paths: &[PathBuf]) -> Result<Loaded, Error> {
    let mut l = load_traces(paths)?;
    l.symbols = Symbols::resolve(&l);
    Ok(l)
}

/// Replays the loaded traces through the memory model. Pure: no I/O.
pub fn analyze(loaded: &Loaded, opts: &Options) -> Report {
    model::Engine::new(loaded, opts).run()
}
