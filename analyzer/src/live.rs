//! Live: a run in progress, read while its traces are written (`vramtrace top`).
//!
//! A [`Session`] watches a run directory. Each [`Session::refresh`] reads only what every trace
//! gained since the last one (new trace files too, as a server starts runners), and the new
//! lines of the side files; it feeds them to the one memory model `analyze` uses, and
//! [`Session::snapshot`] tells what is on each GPU now ([`Snapshot`], serde like the `Report`).
//!
//! - Reading: a trace is mapped again when it grew and read from where the last refresh
//!   stopped, up to the zero-filled space the shim reserved ahead; a record is published by
//!   its header word, written last, so a record not yet published reads as that tail, never as
//!   damage. Pages read are handed back to the kernel.
//! - Order: items are applied in the order `analyze` replays them (`crate::stream`), which a
//!   live reader can only know for what is old enough: every trace is written as its calls
//!   happen, so an item is applied once it is [`GRACE_NS`] old, or older than the latest time
//!   every trace still being written has reached (or once the refresh is told everything up to
//!   its time is written: [`Session::refresh_until`]); younger items wait for the next refresh,
//!   in case another process's earlier call is not in its file yet.
//! - End: a process's End record ends it, as in a batch analysis; a process whose trace has no
//!   End record is running until its pid is gone from this machine (it crashed or was
//!   killed), where the batch analysis ends it at its last event.
//! - Memory: what is kept is the model's state (bounded by what is live) and the traces'
//!   descriptions (stacks, modules, code objects); events and markers are applied and dropped,
//!   and the items waiting for their turn are the last [`GRACE_NS`] of the run.
//!
//! The log-line fallback (`crate::attribute::fallback`) sees a runner's line when it is read,
//! so a buffer allocated before its line was printed keeps what its stack decided; a batch
//! analysis of the finished run can match it.

use crate::load::{Loaded, TraceFile};
use crate::model::Engine;
pub use crate::snapshot::{LiveDevice, LiveOom, LivePeak, LiveProcess, LiveSite, ProcessState, Snapshot};
use crate::stream::StreamItem;
use crate::symbolize::{ElfCache, Symbolizer};
use crate::{Error, Options};
use std::cell::RefCell;
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use vramtrace_trace::side::{self, JsonLines, OutputLine, SideFile, SideMarker};
use vramtrace_trace::{EventRec, Marker, Record};

/// How old an item must be before a refresh applies it: longer than a call takes between its
/// time stamp and its record's publication, even on a loaded machine.
pub const GRACE_NS: u64 = 500_000_000;

/// Records read from one trace before what can be applied is: bounds a refresh's memory.
const PASS: usize = 1 << 16;

/// The snapshot a live session shows once it has read `loaded` to its end: `analyze`'s replay
/// of the same records, except that a process whose trace has no End record is still running
/// (`analyze` ends it at its last event and counts what it held as a crash leak).
pub fn snapshot_of(loaded: &Loaded, opts: &Options) -> Snapshot {
    let mut e = Engine::new(loaded, opts);
    for item in loaded.stream() {
        if !matches!(item, StreamItem::End { clean: false, .. }) {
            e.feed(loaded, item);
        }
    }
    let mut s = e.snapshot(loaded);
    s.warnings = loaded.warnings.clone();
    s
}

/// Read but not yet applied, of one trace: events in file order, markers by time.
#[derive(Default)]
struct Queue {
    events: VecDeque<EventRec>,
    markers: VecDeque<Marker>,
    /// Its process is gone without an End record.
    gone: bool,
    /// Its End was applied.
    ended: bool,
    /// Stacks and modules symbolized so far (counts).
    symbolized: (usize, usize),
    symbolizer: Option<Symbolizer>,
}

/// Where a side file's complete lines have been read to.
struct SideTail {
    path: PathBuf,
    kind: SideFile,
    offset: u64,
    lines: usize,
    bad: JsonLines<()>,
}

/// A run directory being watched (see the module doc).
pub struct Session {
    dir: PathBuf,
    opts: Options,
    /// The traces read so far (their descriptions grow; events and markers are not kept).
    loaded: Loaded,
    queues: Vec<Queue>,
    /// Trace files found whose header is not written yet, and names already taken in.
    waiting: Vec<TraceFile>,
    known: Vec<PathBuf>,
    sides: Vec<SideTail>,
    side_markers: VecDeque<SideMarker>,
    /// Output lines read before the first trace (the model starts with it).
    output: Vec<OutputLine>,
    elf_cache: Rc<RefCell<ElfCache>>,
    engine: Option<Engine<'static>>,
    warnings: Vec<String>,
}

impl Session {
    /// Watches `dir` (nothing is read before the first refresh).
    pub fn new(dir: &Path, opts: Options) -> Session {
        Session {
            dir: dir.to_path_buf(),
            opts,
            loaded: Loaded { traces: Vec::new(), output: Vec::new(), markers: Vec::new(), warnings: Vec::new(), symbols: crate::Symbols::default() },
            queues: Vec::new(),
            waiting: Vec::new(),
            known: Vec::new(),
            sides: Vec::new(),
            side_markers: VecDeque::new(),
            output: Vec::new(),
            elf_cache: Rc::new(RefCell::new(ElfCache::with_search_dirs(crate::symbolize::search_dirs_for(&[dir])))),
            engine: None,
            warnings: Vec::new(),
        }
    }

    /// Reads what was written since the last refresh and applies every item that can no longer
    /// be preceded by one not read yet: at least [`GRACE_NS`] old, or older than what every
    /// trace still being written has already shown. A process gone without an End record is
    /// ended — as is one whose times are ahead of this machine's clock (a trace from an earlier
    /// boot or another machine, which no process here still writes).
    pub fn refresh(&mut self) -> Result<(), Error> {
        let now = vramtrace_trace::clock::monotonic_ns();
        self.follow(|s, grew| s.settled(now, grew))
    }

    /// Reads what was written since the last refresh and applies every item up to time `t_ns`,
    /// everything up to it being written already (`u64::MAX`: all that was read). Processes
    /// end only by their End record.
    pub fn refresh_until(&mut self, t_ns: u64) -> Result<(), Error> {
        self.follow(|_, _| t_ns)
    }

    /// Reads and applies in passes of at most [`PASS`] records per trace, so that memory does
    /// not grow with what a refresh finds (a program can write millions of events between two);
    /// `until` gives the time up to which items may be applied, once what was read is in (per
    /// trace, whether it grew). Within a pass, a trace not read to its end holds back what is
    /// younger than its last record read.
    fn follow(&mut self, until: impl Fn(&mut Self, &[bool]) -> u64) -> Result<(), Error> {
        self.discover()?;
        self.read_sides();
        let mut grew = vec![false; self.loaded.traces.len()];
        let mut first = true;
        loop {
            let more = self.read_pass(&mut grew, first);
            first = false;
            self.symbolize();
            let mut w = until(self, &grew);
            for (fi, _) in more.iter().enumerate().filter(|(_, &m)| m) {
                w = w.min(self.loaded.traces[fi].last_ns);
            }
            self.apply(w);
            for q in &mut self.queues {
                // A burst read in many passes leaves no large buffer behind.
                if q.events.capacity() > 4 * PASS && q.events.len() < PASS {
                    q.events.shrink_to(PASS);
                }
            }
            if !more.contains(&true) {
                return Ok(());
            }
        }
    }

    /// Up to [`PASS`] records of every trace (in the first pass, of new traces too); per trace,
    /// whether more may be there.
    fn read_pass(&mut self, grew: &mut Vec<bool>, first: bool) -> Vec<bool> {
        let mut recs = Vec::new();
        let mut more = Vec::with_capacity(self.loaded.traces.len());
        for (fi, tf) in self.loaded.traces.iter_mut().enumerate() {
            more.push(tf.read_more(&mut recs, PASS));
            grew[fi] |= !recs.is_empty();
            queue(&mut self.queues[fi], recs.drain(..));
        }
        if first {
            // Files whose first records are written now join, in name order, after the others.
            let mut still = Vec::new();
            for mut tf in std::mem::take(&mut self.waiting) {
                let m = tf.read_more(&mut recs, PASS);
                if tf.readable() {
                    self.add_trace(tf, &mut recs);
                    grew.push(true);
                    more.push(m);
                } else if let Some(e) = &tf.error {
                    self.warnings.push(format!("{}: {e}; skipped", tf.path.display()));
                } else {
                    still.push(tf);
                }
            }
            self.waiting = still;
        }
        more
    }

    /// The time up to which a refresh at `now` may apply items (see [`Session::refresh`]);
    /// marks the processes that are gone.
    fn settled(&mut self, now: u64, grew: &[bool]) -> u64 {
        // A trace whose first records are not written yet may still show anything.
        let mut shown = if self.waiting.is_empty() { u64::MAX } else { 0 };
        for (fi, q) in self.queues.iter_mut().enumerate() {
            let tf = &self.loaded.traces[fi];
            if tf.end_ns.is_some() || q.gone {
                continue;
            }
            if tf.last_ns > now.saturating_add(GRACE_NS) || (!grew[fi] && q.events.is_empty() && !alive(tf)) {
                q.gone = true;
            } else {
                shown = shown.min(tf.last_ns);
            }
        }
        now.saturating_sub(GRACE_NS).max(shown)
    }

    /// What is on each GPU now.
    pub fn snapshot(&self) -> Snapshot {
        let mut s = match &self.engine {
            Some(e) => e.snapshot(&self.loaded),
            None => Snapshot::default(),
        };
        s.warnings = self.warnings.clone();
        for (tf, q) in self.loaded.traces.iter().zip(&self.queues) {
            s.warnings.extend(tf.warnings());
            for w in q.symbolizer.iter().flat_map(|sy| sy.warnings()) {
                if !s.warnings.contains(&w) {
                    s.warnings.push(w);
                }
            }
        }
        for t in &self.sides {
            s.warnings.extend(t.bad.warning(&t.path));
        }
        s
    }

    fn discover(&mut self) -> Result<(), Error> {
        let rd = std::fs::read_dir(&self.dir).map_err(|e| Error::Io(format!("{}: {}", self.dir.display(), crate::io_message(&e))))?;
        let mut found: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| !self.known.contains(p)).collect();
        found.sort();
        for p in found {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if side::is_trace_file_name(name) && p.is_file() {
                self.waiting.push(TraceFile::blank(&p));
            } else if let Some(kind) = SideFile::of_path(&p) {
                self.sides.push(SideTail { path: p.clone(), kind, offset: 0, lines: 0, bad: JsonLines { records: Vec::new(), bad_lines: 0, first_bad_line: 0 } });
            } else {
                continue;
            }
            self.known.push(p);
        }
        Ok(())
    }

    fn add_trace(&mut self, tf: TraceFile, recs: &mut Vec<Record>) {
        let mut q = Queue::default();
        queue(&mut q, recs.drain(..));
        if let Some(e) = &mut self.engine {
            e.add_file(tf.info.pid);
        }
        self.loaded.traces.push(tf);
        self.queues.push(q);
    }

    fn read_sides(&mut self) {
        for t in &mut self.sides {
            let Some(text) = new_lines(&t.path, &mut t.offset) else { continue };
            match t.kind {
                SideFile::Output { pid } => {
                    let mut got: JsonLines<OutputLine> = side::parse_jsonl(&text);
                    got.records.iter_mut().for_each(|l| l.pid = pid);
                    t.count(&got, text.as_slice());
                    match &mut self.engine {
                        Some(e) => e.add_output(&got.records),
                        None => self.output.extend(got.records),
                    }
                }
                SideFile::Markers => {
                    let got: JsonLines<SideMarker> = side::parse_jsonl(&text);
                    t.count(&got, text.as_slice());
                    for m in got.records {
                        let at = self.side_markers.partition_point(|x| x.t_ns <= m.t_ns);
                        self.side_markers.insert(at, m);
                    }
                }
            }
        }
    }

    /// Resolves the addresses of stacks read since the last refresh.
    fn symbolize(&mut self) {
        for (fi, (tf, q)) in self.loaded.traces.iter().zip(&mut self.queues).enumerate() {
            if q.symbolized == (tf.stacks.len(), tf.modules.len()) {
                continue;
            }
            if q.symbolized.1 != tf.modules.len() || q.symbolizer.is_none() {
                q.symbolizer = Some(Symbolizer::with_cache(&tf.modules, self.elf_cache.clone()));
            }
            let sy = q.symbolizer.as_mut().expect("set above");
            for &a in tf.stacks.values().flatten() {
                if self.loaded.symbols.frame(fi, a).is_none() {
                    self.loaded.symbols.insert(fi, a, sy.resolve(a));
                }
            }
            q.symbolized = (tf.stacks.len(), tf.modules.len());
        }
    }

    /// Applies, in the batch replay's order, every queued item up to time `w`.
    fn apply(&mut self, w: u64) {
        if self.engine.is_none() {
            let side = self.side_markers.front().map(|m| m.t_ns);
            let Some(start) = self.loaded.traces.iter().filter_map(TraceFile::start_ns).chain(side).min() else { return };
            let mut e = Engine::live(self.opts.clone(), start);
            for tf in &self.loaded.traces {
                e.add_file(tf.info.pid);
            }
            e.add_output(&std::mem::take(&mut self.output));
            self.engine = Some(e);
        }
        let engine = self.engine.as_mut().expect("created above");
        while let Some((t, src)) = next_source(&self.loaded, &self.queues, &self.side_markers) {
            if t > w {
                break;
            }
            match src {
                Src::Events(fi) => {
                    let event = self.queues[fi].events.pop_front().expect("a head");
                    engine.feed(&self.loaded, StreamItem::Event { file: fi, event });
                }
                Src::End(fi) => {
                    self.queues[fi].ended = true;
                    let clean = self.loaded.traces[fi].end_ns.is_some();
                    engine.feed(&self.loaded, StreamItem::End { file: fi, t_ns: t, clean });
                }
                Src::Markers(fi) => {
                    let marker = self.queues[fi].markers.pop_front().expect("a head");
                    engine.feed(&self.loaded, StreamItem::Marker { file: fi, marker: &marker });
                }
                Src::Side => {
                    let m = self.side_markers.pop_front().expect("a head");
                    engine.feed(&self.loaded, StreamItem::SideMarker(&m));
                }
            }
        }
    }
}

impl SideTail {
    /// Counts the lines that did not parse, numbered from the file's start.
    fn count<T>(&mut self, got: &JsonLines<T>, text: &[u8]) {
        if got.bad_lines > 0 {
            if self.bad.bad_lines == 0 {
                self.bad.first_bad_line = self.lines + got.first_bad_line;
            }
            self.bad.bad_lines += got.bad_lines;
        }
        self.lines += text.iter().filter(|&&b| b == b'\n').count();
    }
}

/// The complete lines appended to `path` since `offset` (which moves past them).
fn new_lines(path: &Path, offset: &mut u64) -> Option<Vec<u8>> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(path).ok()?;
    if f.metadata().ok()?.len() <= *offset {
        return None;
    }
    f.seek(SeekFrom::Start(*offset)).ok()?;
    let mut buf = Vec::new();
    f.read_to_end(&mut buf).ok()?;
    let end = buf.iter().rposition(|&b| b == b'\n')? + 1;
    buf.truncate(end);
    *offset += end as u64;
    Some(buf)
}

fn queue(q: &mut Queue, recs: impl Iterator<Item = Record>) {
    for r in recs {
        match r {
            Record::Event(e) => q.events.push_back(e),
            Record::Marker(m) => {
                // By time, equal times in file order (as the batch scan sorts them).
                let at = q.markers.partition_point(|x| x.t_ns <= m.t_ns);
                q.markers.insert(at, m);
            }
            _ => {}
        }
    }
}

/// A source of the merged stream, numbered as `crate::stream` numbers them.
#[derive(Clone, Copy)]
enum Src {
    Events(usize),
    End(usize),
    Markers(usize),
    Side,
}

/// The source whose head comes first in the batch replay's order (time, then events before
/// ends before markers, then source number), with the head's time.
fn next_source(loaded: &Loaded, queues: &[Queue], side: &VecDeque<SideMarker>) -> Option<(u64, Src)> {
    let mut best: Option<((u64, u8, usize), Src)> = None;
    let mut offer = |key: (u64, u8, usize), src: Src| {
        if best.as_ref().is_none_or(|(k, _)| key < *k) {
            best = Some((key, src));
        }
    };
    for (fi, (q, tf)) in queues.iter().zip(&loaded.traces).enumerate() {
        if let Some(e) = q.events.front() {
            offer((e.t_ns, 0, 2 * fi), Src::Events(fi));
        } else if !q.ended && (tf.end_ns.is_some() || q.gone) {
            offer((tf.end_ns.unwrap_or(0).max(tf.last_ns), 1, 2 * fi), Src::End(fi));
        }
        if let Some(m) = q.markers.front() {
            offer((m.t_ns, 2, 2 * fi + 1), Src::Markers(fi));
        }
    }
    if let Some(m) = side.front() {
        offer((m.t_ns, 2, usize::MAX), Src::Side);
    }
    best.map(|((t, _, _), src)| (t, src))
}

/// Whether the process of `tf` still runs here. A trace written on another machine (or in
/// another container: another host name) is never taken for gone; a zombie is gone.
fn alive(tf: &TraceFile) -> bool {
    let here = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    if !tf.info.hostname.is_empty() && tf.info.hostname != here.trim() {
        return true;
    }
    match std::fs::read_to_string(format!("/proc/{}/stat", tf.info.pid)) {
        // "pid (comm) S …": the state follows the last parenthesis (comm may hold one).
        Ok(stat) => stat.rfind(')').and_then(|i| stat[i + 1..].trim_start().chars().next()).is_some_and(|c| c != 'Z' && c != 'X'),
        Err(_) => false,
    }
}
