//! Loading traces: files and directories, memory-mapped, scanned in parallel.
//!
//! The scan keeps what is small (process info, modules, stacks, markers, counts, time range)
//! and *not* the events: those stay in the mapping and are streamed again (`stream`), so
//! memory does not grow with the number of events. Damage in a file is a warning; what came
//! before it is kept.

use crate::symbolize::Frame;
use crate::Error;
use rayon::prelude::*;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use vramtrace_trace::api::cu;
use vramtrace_trace::record::{RecordHeader, RecordKind, FILE_HEADER_LEN};
use vramtrace_trace::side::{self, OutputLine, SideFile, SideMarker};
use vramtrace_trace::{EventRec, Info, Marker, Module, Notes, PyCode, PyRuntime, PyStack, PyStatus, Reader, Record, Tail};
use zerocopy::FromBytes;

/// One scanned trace file (one traced process).
pub struct TraceFile {
    pub path: PathBuf,
    pub info: Info,
    pub modules: Vec<Module>,
    /// Stack id → return addresses, innermost first.
    pub stacks: HashMap<u32, Vec<u64>>,
    pub markers: Vec<Marker>,
    /// Time of the End record: present when the process exited normally.
    pub end_ns: Option<u64>,
    /// The file was cut short or damaged (the events before the damage are used).
    pub truncated: bool,
    /// The corruption met, if any.
    pub error: Option<String>,
    pub events: u64,
    /// Earliest and latest event or marker time (0 when none).
    pub first_ns: u64,
    pub last_ns: u64,
    /// Events whose time is earlier than the previous event's in the same file.
    pub out_of_order: u64,
    pub bytes: u64,
    /// GPU ordinals whose memory this process's events can change (allocations, VMM, driver
    /// readings, failures), sorted. Lets the model skip the all-GPUs aggregate when a trace
    /// set uses one GPU only.
    pub devices: Vec<i32>,
    /// GPUs as the driver described them (Device records, trace format 1.1+).
    pub gpus: Vec<vramtrace_trace::DeviceInfo>,
    /// Events of driver functions this reader does not know (a newer shim's); the model skips them.
    pub unknown_functions: u64,
    /// What the shim noted about the recording: calls it let through unrecorded, a cut file.
    pub notes: Notes,
    /// The process's Python interpreter, code objects and Python stacks (format 1.2+).
    pub python: PythonRecords,
    /// End of the last record the scan decoded: the event pass stops here, so both passes
    /// agree on where a damaged file ends.
    stop: usize,
    progress: Progress,
    /// The mapping (absent until a growing file was first read).
    data: Option<memmap2::Mmap>,
}

/// A trace's Python records: what the interpreter was, and the code objects and stacks events
/// refer to by id.
#[derive(Clone, Debug, Default)]
pub struct PythonRecords {
    pub runtimes: Vec<PyRuntime>,
    pub codes: HashMap<u32, PyCode>,
    pub stacks: HashMap<u32, PyStack>,
}

impl TraceFile {
    /// The raw bytes (the memory map).
    pub fn data(&self) -> &[u8] {
        self.data.as_deref().unwrap_or(&[])
    }

    /// Streams the events of this file in file order, stopping where the scan stopped.
    pub fn events(&self) -> EventIter<'_> {
        let data = self.data();
        EventIter::new(&data[..self.stop.min(data.len())])
    }
}

/// Iterator over the events of one mapped trace. Pages already read are handed back to the
/// kernel every few tens of MiB, so resident memory stays small even for very large traces.
///
/// The scan already validated every record up to `stop` with the trace crate's `Reader`, so
/// this pass only walks record headers and copies out event payloads: it is the hot loop of
/// the analysis (one iteration per event) and skips the generic record decoding.
pub struct EventIter<'a> {
    pos: usize,
    data: &'a [u8],
    released: usize,
    populated: usize,
}

const RELEASE_EVERY: usize = 64 << 20;
/// How far ahead of the reader to prefetch. The model does a few hundred ns of work per event
/// between two reads of the trace, which defeats the hardware prefetcher: without this, most
/// of the analysis time is spent waiting for the next record to come from DRAM.
const PREFETCH_AHEAD: usize = 2048;

#[inline(always)]
fn prefetch(data: &[u8], at: usize) {
    #[cfg(target_arch = "x86_64")]
    if at + 128 <= data.len() {
        // SAFETY: the address lies inside the slice; a prefetch never faults anyway.
        unsafe {
            use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
            let p = data.as_ptr().add(at) as *const i8;
            _mm_prefetch(p, _MM_HINT_T0);
            _mm_prefetch(p.add(64), _MM_HINT_T0);
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (data, at);
}
const POPULATE_WINDOW: usize = 4 << 20;

impl<'a> EventIter<'a> {
    fn new(data: &'a [u8]) -> Self {
        advise(data, libc_advice::SEQUENTIAL, 0, data.len());
        let pos = if Reader::new(data).is_ok() { FILE_HEADER_LEN } else { data.len() };
        EventIter { pos, data, released: 0, populated: 0 }
    }
}

impl Iterator for EventIter<'_> {
    type Item = EventRec;

    fn next(&mut self) -> Option<EventRec> {
        loop {
            let rest = self.data.get(self.pos..)?;
            let word = u64::from_le_bytes(rest.get(..8)?.try_into().ok()?);
            let h = RecordHeader::from_u64(word)?;
            let len = h.len as usize;
            if len < 8 || len > rest.len() {
                return None;
            }
            self.pos += len;
            prefetch(self.data, self.pos + PREFETCH_AHEAD);
            if self.pos >= self.populated {
                // Map the next window's pages in one call instead of one fault per page
                // (MADV_POPULATE_READ, Linux 5.14+; harmless where unsupported).
                let next = (self.populated + POPULATE_WINDOW).min(self.data.len());
                advise(self.data, libc_advice::POPULATE_READ, self.populated, next - self.populated);
                self.populated = next;
            }
            if self.pos - self.released >= RELEASE_EVERY {
                // Page-aligned end of the range already consumed.
                let end = self.pos & !0xfff;
                if end > self.released {
                    advise(self.data, libc_advice::DONTNEED, self.released, end - self.released);
                    self.released = end;
                }
            }
            if h.kind == RecordKind::Event as u16 {
                // A newer minor version may append fields: read the known prefix.
                if let Ok((e, _)) = EventRec::read_from_prefix(&rest[8..len]) {
                    return Some(e);
                }
            }
        }
    }
}

mod libc_advice {
    pub const SEQUENTIAL: i32 = 2;
    pub const DONTNEED: i32 = 4;
    pub const POPULATE_READ: i32 = 22;
}

extern "C" {
    fn madvise(addr: *mut std::ffi::c_void, len: usize, advice: i32) -> i32;
}

/// Advisory only: for a read-only file mapping, DONTNEED drops the pages from this process
/// (they are re-read from the page cache if touched again), so correctness never depends on it.
fn advise(data: &[u8], advice: i32, start: usize, len: usize) {
    if len == 0 || data.is_empty() {
        return;
    }
    let base = data.as_ptr() as usize;
    let s = (base + start) & !0xfff;
    let e = base + start + len;
    if s < base {
        return; // the mapping itself is page aligned; never go below it
    }
    // SAFETY: the range lies inside our own read-only mapping.
    unsafe {
        madvise(s as *mut _, e - s, advice);
    }
}

/// Everything `analyze` needs, read from disk.
pub struct Loaded {
    pub traces: Vec<TraceFile>,
    /// Runner output lines, sorted by time.
    pub output: Vec<OutputLine>,
    /// Sidecar markers, sorted by time.
    pub markers: Vec<SideMarker>,
    pub warnings: Vec<String>,
    /// Symbolized frames for the addresses in the traces' stacks (filled by `load`, or by the
    /// caller through `Symbols::resolve_with`).
    pub symbols: crate::Symbols,
}

impl Loaded {
    /// The frames of stack `stack_id` of trace `file`, innermost first: symbolized where
    /// [`Loaded::symbols`] resolved the address, else module+offset from the trace's module
    /// records. Empty for stack 0 (none recorded) and for an id the trace never defined.
    pub fn frames(&self, file: usize, stack_id: u32) -> Vec<Frame> {
        let Some(tf) = self.traces.get(file) else { return Vec::new() };
        let Some(addrs) = tf.stacks.get(&stack_id) else { return Vec::new() };
        addrs.iter().map(|&a| self.symbols.frame(file, a).cloned().unwrap_or_else(|| Frame::unresolved(a, &tf.modules))).collect()
    }

    /// The frames of an event (or marker): its native stack with its Python stack placed in
    /// it (`crate::pyframes`), innermost first.
    pub fn event_frames(&self, file: usize, stack_id: u32, py_stack_id: u32) -> Vec<Frame> {
        let native = self.frames(file, stack_id);
        match self.traces.get(file) {
            Some(tf) if py_stack_id != 0 => crate::pyframes::place(tf, native, py_stack_id),
            _ => native,
        }
    }

    /// Whether a driver call on a GPU failed with out-of-memory at a time in `t0..=t1`, in any
    /// of the traces (how a load generator tells an out-of-memory failure from other errors).
    pub fn device_oom_between(&self, t0: u64, t1: u64) -> bool {
        self.traces.iter().any(|t| t.events().any(|e| e.result == cu::ERROR_OUT_OF_MEMORY && e.device >= 0 && (t0..=t1).contains(&{ e.t_ns })))
    }
}

/// Reads traces without symbolizing (for tools that only need events).
pub fn load_traces(paths: &[PathBuf]) -> Result<Loaded, Error> {
    if paths.is_empty() {
        return Err(Error::NoTrace("no trace path given".into()));
    }
    let mut warnings = Vec::new();
    // (path, whether failure of this one file is fatal)
    let mut traces: Vec<(PathBuf, bool)> = Vec::new();
    let mut sides: Vec<(SideFile, PathBuf)> = Vec::new();
    for p in paths {
        let meta = std::fs::metadata(p).map_err(|e| Error::Io(format!("{}: {}", p.display(), crate::io_message(&e))))?;
        if meta.is_dir() {
            let mut entries: Vec<PathBuf> = std::fs::read_dir(p)
                .map_err(|e| Error::Io(format!("{}: {}", p.display(), crate::io_message(&e))))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .collect();
            entries.sort();
            let before = traces.len();
            for e in entries {
                let name = e.file_name().and_then(|n| n.to_str()).unwrap_or("");
                if side::is_trace_file_name(name) && e.is_file() {
                    traces.push((e.clone(), false));
                } else if let Some(kind) = SideFile::of_path(&e) {
                    sides.push((kind, e));
                }
            }
            if traces.len() == before {
                return Err(Error::NoTrace(format!("{}: no *.vtr trace files in this directory", p.display())));
            }
        } else if let Some(kind) = SideFile::of_path(p) {
            sides.push((kind, p.clone()));
        } else {
            traces.push((p.clone(), true));
        }
    }
    if traces.is_empty() {
        return Err(Error::NoTrace("only side files given, no *.vtr trace".into()));
    }
    let traces = distinct_paths(traces, &mut warnings);
    sides = distinct_paths(sides.into_iter().map(|(k, p)| (p, k)).collect(), &mut warnings).into_iter().map(|(p, k)| (k, p)).collect();

    let scanned: Vec<Result<TraceFile, String>> = traces.par_iter().map(|(p, _)| scan(p)).collect();
    let mut files: Vec<TraceFile> = Vec::new();
    let mut failures = Vec::new();
    for ((p, fatal), r) in traces.iter().zip(scanned) {
        match r {
            Ok(t) => {
                // The same process's trace under two names (a copy): counted once.
                if let Some(first) = files.iter().find(|f| f.info.pid == t.info.pid && f.info.mono_ns == t.info.mono_ns && f.info.mono_ns != 0) {
                    warnings.push(format!("{}: the same process's trace as {}; read once", p.display(), first.path.display()));
                    continue;
                }
                warnings.extend(t.warnings());
                files.push(t);
            }
            Err(msg) if *fatal => return Err(Error::NoTrace(msg)),
            Err(msg) => failures.push(msg),
        }
    }
    if files.is_empty() {
        return Err(Error::NoTrace(match failures.as_slice() {
            [one] => format!("no readable trace: {one}"),
            [first, ..] => format!("no readable trace among {} files (first: {first})", failures.len()),
            [] => "no readable trace".into(),
        }));
    }
    warnings.extend(failures.into_iter().map(|m| format!("{m}; skipped")));

    let mut output = Vec::new();
    let mut markers = Vec::new();
    for (kind, p) in sides {
        let warning = match kind {
            SideFile::Output { .. } => side::read_output(&p).map(|l| {
                output.extend(l.records.iter().cloned());
                l.warning(&p)
            }),
            SideFile::Markers => side::read_markers(&p).map(|l| {
                markers.extend(l.records.iter().cloned());
                l.warning(&p)
            }),
        };
        match warning {
            Ok(w) => warnings.extend(w),
            Err(e) => warnings.push(format!("{}: {e}", p.display())),
        }
    }
    output.sort_by_key(|l| l.t_ns);
    markers.sort_by_key(|m| m.t_ns);
    Ok(Loaded { traces: files, output, markers, warnings, symbols: crate::Symbols::default() })
}

/// Each path once, by its real path: a directory and a file in it, or a path given twice, would
/// otherwise count the same trace twice.
fn distinct_paths<T>(items: Vec<(PathBuf, T)>, warnings: &mut Vec<String>) -> Vec<(PathBuf, T)> {
    let mut seen: Vec<PathBuf> = Vec::new();
    let mut out = Vec::with_capacity(items.len());
    for (p, x) in items {
        let real = p.canonicalize().unwrap_or_else(|_| p.clone());
        if seen.contains(&real) {
            warnings.push(format!("{}: given more than once; read once", p.display()));
            continue;
        }
        seen.push(real);
        out.push((p, x));
    }
    out
}

impl TraceFile {
    /// What a reader of the report should know about this file: damage, a cut recording, calls
    /// not recorded, functions this vramtrace does not know.
    pub(crate) fn warnings(&self) -> Vec<String> {
        let p = self.path.display();
        let mut w = Vec::new();
        if let Some(e) = &self.error {
            w.push(format!("{p}: {e}; using the {} events before it", self.events));
        } else if self.truncated {
            w.push(format!("{p}: cut short (the process died mid-write?); using the {} events before it", self.events));
        }
        if let Some(cut) = self.notes.cut {
            let why = match cut.errno {
                28 => "the disk was full".to_string(),
                27 => "the file size limit (RLIMIT_FSIZE) was reached".to_string(),
                9 => "the program closed or replaced the trace file's descriptor".to_string(),
                n => format!("the file could not grow (errno {n})"),
            };
            w.push(format!("{p}: recording stopped early at {} bytes: {why}; later calls are not in the trace", cut.bytes));
        }
        let lost = self.notes.lost;
        if lost.calls > 0 || lost.lookups > 0 {
            w.push(format!(
                "{p}: {} call(s) and {} lookup(s) were not recorded (made from a signal handler that interrupted the shim, or after the recording stopped)",
                lost.calls, lost.lookups
            ));
        }
        for r in self.python.runtimes.iter().filter(|r| PyStatus::from_u32(r.status) != Some(PyStatus::Capturing)) {
            let why = match (r.detail.as_str(), PyStatus::from_u32(r.status)) {
                (d, _) if !d.is_empty() => d.to_string(),
                (_, Some(PyStatus::Subinterpreters)) => "a second interpreter started; from then on".to_string(),
                (_, Some(PyStatus::FreeThreaded)) => "a free-threaded build".to_string(),
                _ => "an interpreter this vramtrace cannot read".to_string(),
            };
            w.push(format!("{p}: Python stacks not recorded ({why}): those events have native stacks only, and a Python framework's memory among them counts as framework_cache"));
        }
        if self.unknown_functions > 0 {
            w.push(format!("{p}: {} event(s) of driver functions this vramtrace does not know (a newer shim wrote them); skipped", self.unknown_functions));
        }
        w
    }
}

/// Whether the model may account this event on `e.device` (see `TraceFile::devices`).
fn places_device_memory(e: &EventRec) -> bool {
    use vramtrace_trace::{Api, ApiKind};
    let Some(kind) = Api::from_id(e.api).map(Api::kind) else { return false };
    if !vramtrace_trace::record::valid_device(e.device) {
        return false;
    }
    let host = matches!(kind, ApiKind::HostAlloc | ApiKind::HostRegister | ApiKind::HostFree);
    !host
        && (e.total > 0
            || e.result != 0
            || matches!(kind, ApiKind::Alloc | ApiKind::AllocManaged | ApiKind::AllocAsync | ApiKind::Create | ApiKind::AddressReserve | ApiKind::Map | ApiKind::CtxCreate))
}

/// Scan progress of a file that is not in [`TraceFile`]'s public description.
#[derive(Default)]
struct Progress {
    /// An Info record was read (else `info` is a placeholder with the pid of the file name).
    has_info: bool,
    /// An event or marker time was seen (else the time range is the process start).
    timed: bool,
    /// Time of the previous event, to count events that go back in time.
    prev: u64,
}

impl TraceFile {
    /// A file with nothing read yet (the scan's start, or a trace still being written before
    /// its first [`TraceFile::read_more`]): the pid comes from the file name until the Info
    /// record.
    pub(crate) fn blank(path: &Path) -> TraceFile {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        TraceFile {
            path: path.to_path_buf(),
            info: Info { pid: side::pid_of_trace_file(name).unwrap_or(0), ..Info::default() },
            modules: Vec::new(),
            stacks: HashMap::new(),
            markers: Vec::new(),
            end_ns: None,
            truncated: false,
            error: None,
            events: 0,
            first_ns: 0,
            last_ns: 0,
            out_of_order: 0,
            bytes: 0,
            devices: Vec::new(),
            gpus: Vec::new(),
            unknown_functions: 0,
            notes: Notes::default(),
            python: PythonRecords::default(),
            stop: FILE_HEADER_LEN,
            progress: Progress::default(),
            data: None,
        }
    }

    /// When the process started: its start time, else its first event or marker (`None` before
    /// either was read).
    pub(crate) fn start_ns(&self) -> Option<u64> {
        let mono = (self.info.mono_ns > 0).then_some(self.info.mono_ns);
        let first = self.progress.timed.then_some(self.first_ns);
        mono.into_iter().chain(first).min()
    }

    /// A process record, an event or a marker was read: what the scan needs to take a file
    /// for a trace.
    pub(crate) fn readable(&self) -> bool {
        self.progress.has_info || self.progress.timed
    }

    fn saw_time(&mut self, t: u64) {
        self.first_ns = if self.progress.timed { self.first_ns.min(t) } else { t };
        self.progress.timed = true;
        self.last_ns = self.last_ns.max(t);
    }

    /// Takes one record into the file's description; events and markers are handed back (the
    /// scan keeps the markers, a live reader streams both).
    fn take(&mut self, rec: Record) -> Option<Record> {
        match rec {
            Record::Event(e) => {
                self.events += 1;
                if vramtrace_trace::Api::from_id(e.api).is_none() {
                    // A newer shim's function: kept in the file, skipped by the model.
                    self.unknown_functions += 1;
                } else if places_device_memory(&e) && !self.devices.contains(&e.device) {
                    self.devices.push(e.device);
                }
                if e.t_ns < self.progress.prev {
                    self.out_of_order += 1;
                }
                self.progress.prev = e.t_ns;
                self.saw_time(e.t_ns);
                return Some(Record::Event(e));
            }
            Record::Info(i) => {
                if !self.progress.has_info {
                    self.progress.has_info = true;
                    self.info = i;
                }
            }
            Record::Module(m) => self.modules.push(m),
            Record::Stack { id, frames } => {
                self.stacks.insert(id, frames);
            }
            Record::Marker(m) => {
                self.saw_time(m.t_ns);
                return Some(Record::Marker(m));
            }
            Record::End(e) => {
                self.end_ns = Some(e.t_ns);
                self.last_ns = self.last_ns.max(e.t_ns);
            }
            Record::Device(d) if vramtrace_trace::record::valid_device(d.ordinal) => self.gpus.push(d),
            Record::Device(_) => {}
            Record::PyRuntime(r) => self.python.runtimes.push(r),
            Record::PyCode(c) => {
                self.python.codes.insert(c.id, c);
            }
            Record::PyStack(st) => {
                self.python.stacks.insert(st.id, st);
            }
            // The reader gathers them in its notes.
            Record::Lost(_) | Record::Cut(_) => {}
        }
        None
    }

    /// Reads up to `limit` records published since the last call, for a trace still being
    /// written: the file is mapped again when it grew and read from where the last call
    /// stopped, up to the zero-filled space the writer reserved ahead (records not yet
    /// published) or a record the mapping cuts (read next time). Events and markers are
    /// appended to `out`, not kept; the rest joins the description. Pages read are handed back
    /// to the kernel, so resident memory does not grow with the file. A corrupt record stops
    /// the file for good (`error`); a file whose header is not written yet is read again next
    /// time. Returns whether it stopped at `limit` (more may be there).
    pub(crate) fn read_more(&mut self, out: &mut Vec<Record>, limit: usize) -> bool {
        if self.error.is_some() {
            return false;
        }
        let Ok(file) = std::fs::File::open(&self.path) else { return false };
        let len = file.metadata().map(|m| m.len()).unwrap_or(0);
        if len < FILE_HEADER_LEN as u64 {
            return false;
        }
        // A shared mapping shows what the writer stores into the file's pages: mapped again
        // only when the file grew.
        let data = match self.data.take() {
            Some(d) if d.len() as u64 == len => d,
            // SAFETY: read-only mapping of a trace the shim only appends to (never shrinks):
            // what lies before the zero-filled reserved tail is complete records.
            _ => match unsafe { memmap2::Mmap::map(&file) } {
                Ok(d) => d,
                Err(_) => return false,
            },
        };
        if data[..8].iter().all(|&b| b == 0) {
            self.data = Some(data);
            return false; // created, header not written yet
        }
        let mut reader = match Reader::resume(&data, self.stop, self.notes) {
            Ok(r) => r,
            Err(e) => {
                self.error = Some(e.to_string());
                return false;
            }
        };
        let mut left = limit;
        while left > 0 {
            let Some(rec) = reader.next() else { break };
            left -= 1;
            match rec {
                Ok(r) => {
                    self.stop = reader.position();
                    out.extend(self.take(r));
                }
                Err(e) => {
                    self.error = Some(e.to_string());
                    self.truncated = true;
                    break;
                }
            }
        }
        self.notes = reader.notes();
        self.bytes = len;
        advise(&data, libc_advice::DONTNEED, 0, self.stop & !0xfff);
        self.data = Some(data);
        left == 0 && self.error.is_none()
    }
}

fn scan(path: &Path) -> Result<TraceFile, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("{}: {}", path.display(), crate::io_message(&e)))?;
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    if len == 0 {
        return Err(format!("{}: empty file, not a trace", path.display()));
    }
    // SAFETY: read-only mapping; a trace still being written only grows, and the reader stops
    // at the zero-filled tail.
    let data = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| format!("{}: {}", path.display(), crate::io_message(&e)))?;
    let mut reader = Reader::new(&data).map_err(|e| format!("{}: {e}", path.display()))?;
    advise(&data, libc_advice::SEQUENTIAL, 0, data.len());

    let mut tf = TraceFile::blank(path);
    let mut released = 0usize;
    let mut populated = 0usize;
    while let Some(rec) = reader.next() {
        match rec {
            Ok(r) => {
                tf.stop = reader.position();
                if let Some(Record::Marker(m)) = tf.take(r) {
                    tf.markers.push(m);
                }
            }
            Err(e) => {
                tf.error = Some(e.to_string());
                break;
            }
        }
        let pos = reader.position();
        if pos >= populated {
            let next = (populated + POPULATE_WINDOW).min(data.len());
            advise(&data, libc_advice::POPULATE_READ, populated, next - populated);
            populated = next;
        }
        if pos - released >= RELEASE_EVERY {
            let end = pos & !0xfff;
            advise(&data, libc_advice::DONTNEED, released, end - released);
            released = end;
        }
    }
    tf.truncated = matches!(reader.tail(), Tail::Truncated { .. }) || tf.error.is_some();
    if !tf.progress.has_info && tf.events == 0 && tf.markers.is_empty() {
        return Err(format!("{}: no process record and no events", path.display()));
    }
    if !tf.progress.timed {
        tf.first_ns = tf.info.mono_ns;
        tf.last_ns = tf.last_ns.max(tf.info.mono_ns);
    }
    tf.markers.sort_by_key(|m| m.t_ns);
    tf.devices.sort_unstable();
    tf.notes = reader.notes();
    tf.bytes = len;
    tf.data = Some(data);
    Ok(tf)
}
