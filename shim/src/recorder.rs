//! Per-process recording: the session (trace file, stack and module tables), and the append path
//! every record takes.
//!
//! Hot path: unwind the stack before taking the lock, hold the lock only to deduplicate the stack
//! and append. Everything slow happens with the lock dropped, and is made race-free like this:
//! - **Creating the file** (`session`): a thread that finds no session creates a file of its own
//!   (open, first chunk, header, Info) without the lock, then installs it under the lock if the
//!   slot is still empty. A thread that lost that race removes its own file (it was created with
//!   `O_EXCL`, so nobody else has it) and appends to the winner's: no event lost, no file left.
//! - **Growing the file** (`finish_append`): see `tracefile`; a record that finds no room makes
//!   no change to the session before it returns `Full`, and is retried from the start.
//! - **Describing modules** (`record`): a stack with an address outside every described module
//!   makes the thread drop the lock, enumerate the loaded objects, re-take the lock, and write
//!   those still undescribed; the stack record follows in the same critical section, so modules
//!   always precede the stacks that need them, and two threads never describe one module twice.
//!
//! A table entry (stack id, module extent) is added only once its record is in the file, so a
//! retried critical section never duplicates or skips one.

use crate::modules;
use crate::sync::{Lock, LockGuard};
use crate::sys::{self, now_ns};
use crate::tracefile::{self, Appended, TraceFile};
use rustc_hash::FxHashMap;
use std::ffi::CString;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use vramtrace_trace::record::{DeviceRec, InfoRec, LostRec, MarkerRec, ModuleRec, RecordKind, StackRec};
use vramtrace_trace::{EndRec, EventRec};

pub const DEFAULT_STACK_DEPTH: usize = 32;
const MAX_STACK_DEPTH: usize = vramtrace_trace::record::MAX_STACK_DEPTH as usize;
/// Frames of our own to unwind through before the caller's (wrapper, `wrap`, `record`).
const SKIP_BUDGET: usize = 8;

#[derive(Clone)]
struct Config {
    dir: CString,
    depth: usize,
}

/// One trace file and what it already holds.
struct Session {
    file: TraceFile,
    /// Stack ids by their frames. Fx, not SipHash: looked up at every event with up to 128
    /// return addresses of this process as the key, nothing an outsider chooses.
    stacks: FxHashMap<Box<[u64]>, u32>,
    /// Extents of the modules already described in the file.
    modules: Vec<(u64, u64)>,
    /// The Lost totals last written, and their sum.
    lost_written: (u64, u64),
    lost_any: u64,
    ended: bool,
    /// Python code objects and stacks already in the file.
    py: crate::python::Tables,
}

enum Status {
    /// No event yet: nothing created, nothing touched.
    Idle,
    Recording(Box<Session>),
    /// Could not create the file; warned once, now inert.
    Disabled,
}

pub struct State {
    status: Status,
    config: Option<Config>,
    /// Markers made before the first driver call: kept here, written when the file is created,
    /// so a program that only marks (and never touches CUDA) leaves no file.
    pending: Vec<PendingMarker>,
    pending_bytes: usize,
}

struct PendingMarker {
    rec: MarkerRec,
    label: Vec<u8>,
}

/// Bound on what waits for the file: enough for any phase markers a program sets up before its
/// first allocation, well within the first chunk of the file. More are counted as lost.
const PENDING_BYTES: usize = 32 << 10;

/// The process's recording state. See `sync` for the lock order.
pub static STATE: Lock<State> = Lock::new(State { status: Status::Idle, config: None, pending: Vec::new(), pending_bytes: 0 });
/// Stack depth, readable without the lock (u64::MAX until configured).
static DEPTH: AtomicU64 = AtomicU64::new(u64::MAX);
/// The process whose session is installed (0: none). A `vfork` child shares our memory but has
/// another pid: it must never write into its parent's file.
static OWNER: AtomicU32 = AtomicU32::new(0);
/// Forks this process descends through (bumped in each child): a hook whose call straddles a
/// fork leaves the recording to the parent.
static FORKS: AtomicU64 = AtomicU64::new(0);
/// The child of a fork made from inside the shim still holds its parent's session (see
/// `after_fork_child`).
static RESET_PENDING: AtomicBool = AtomicBool::new(false);
/// Devices already described in this process's file (bit per ordinal 0..63).
static DESCRIBED: AtomicU64 = AtomicU64::new(0);
/// Running totals for the Lost record, and their sum (one load tells the hot path nothing changed).
static LOST_CALLS: AtomicU64 = AtomicU64::new(0);
static LOST_LOOKUPS: AtomicU64 = AtomicU64::new(0);
static LOST_ANY: AtomicU64 = AtomicU64::new(0);

fn config() -> Config {
    let dir = std::env::var_os("VRAMTRACE_DIR").filter(|d| !d.is_empty()).unwrap_or_else(|| ".".into());
    let depth = match std::env::var("VRAMTRACE_STACK_DEPTH") {
        Ok(v) => match v.trim().parse::<usize>() {
            Ok(d) if d <= MAX_STACK_DEPTH => d,
            Ok(_) => {
                sys::warn(&format!("VRAMTRACE_STACK_DEPTH={v:?} is more than {MAX_STACK_DEPTH}; using {MAX_STACK_DEPTH}"));
                MAX_STACK_DEPTH
            }
            Err(_) => {
                sys::warn(&format!("VRAMTRACE_STACK_DEPTH={v:?} is not a number; using {DEFAULT_STACK_DEPTH}"));
                DEFAULT_STACK_DEPTH
            }
        },
        Err(_) => DEFAULT_STACK_DEPTH,
    };
    use std::os::unix::ffi::OsStrExt;
    Config { dir: CString::new(dir.as_bytes()).unwrap_or_else(|_| c".".into()), depth }
}

/// The configuration, read once (the environment is read before the lock is taken).
fn configured() -> Config {
    if let Some(c) = &STATE.lock().config {
        return c.clone();
    }
    let fresh = config();
    STATE.lock().config.get_or_insert(fresh).clone()
}

fn stack_depth() -> usize {
    let d = DEPTH.load(Ordering::Acquire);
    if d != u64::MAX {
        return d as usize;
    }
    let depth = configured().depth;
    DEPTH.store(depth as u64, Ordering::Release);
    depth
}

/// Captures the caller's stack into `buf` and returns it, innermost first, without our own
/// frames.
fn capture(buf: &mut [u64; MAX_STACK_DEPTH + SKIP_BUDGET], depth: usize) -> &[u64] {
    let (lo, hi) = modules::shim_range();
    let n = crate::unwind::capture(&mut buf[..depth + SKIP_BUDGET]);
    let skip = buf[..n].iter().take_while(|&&a| (lo as u64..hi as u64).contains(&a)).count();
    let take = (n - skip).min(depth);
    &buf[skip..skip + take]
}

/// A driver call or marker that arrived while its thread was already inside the shim's own code.
pub fn count_lost_call() {
    LOST_CALLS.fetch_add(1, Ordering::Relaxed);
    LOST_ANY.fetch_add(1, Ordering::Release);
}

/// A lookup answered without our wrapper, for the same reason.
pub fn count_lost_lookup() {
    LOST_LOOKUPS.fetch_add(1, Ordering::Relaxed);
    LOST_ANY.fetch_add(1, Ordering::Release);
}

/// Records one event. Called with the thread inside the shim.
pub fn record(e: &mut EventRec) {
    let depth = stack_depth();
    // The frame buffer (1 KiB) is only set up when stacks are on: zeroing it is measurable.
    let mut buf;
    let frames: &[u64] = if depth == 0 {
        &[]
    } else {
        buf = [0u64; MAX_STACK_DEPTH + SKIP_BUDGET];
        capture(&mut buf, depth)
    };
    e.tid = sys::tid();
    // The Python stack is read before the lock, like the native one.
    let mut py = crate::python::Capture::new();
    py.fill(depth);
    append_with(|s, objects| {
        e.stack_id = match s.stacks.get(frames) {
            Some(&id) => id,
            None if frames.is_empty() => 0,
            None => {
                if !s.covers(frames) {
                    match objects.take() {
                        // The loader is called without the lock: come back with the list.
                        None => return Err(Again::NeedModules),
                        Some(objs) => {
                            s.describe_modules(objs)?;
                        }
                    }
                }
                s.new_stack(frames)?
            }
        };
        e.py_stack_id = s.py_stack_id(&py)?;
        e.t_ns = now_ns();
        s.put(RecordKind::Event, &*e, &[], &[])
    });
}

/// Records a user marker.
pub fn mark(label: &[u8], value: i64) {
    let tid = sys::tid();
    if keep_pending(label, value, tid) {
        return;
    }
    let mut py = crate::python::Capture::new();
    py.fill(stack_depth());
    append_with(|s, _| {
        let py_stack_id = s.py_stack_id(&py)?;
        s.put(RecordKind::Marker, &MarkerRec { t_ns: now_ns(), value, tid, stack_id: 0 }, &py_stack_id.to_le_bytes(), &[label])
    });
}

/// Keeps a marker made before the process's file exists (no driver call yet); false when the file
/// exists (or recording is off) and the marker takes the normal path. Such a marker carries no
/// Python stack: the frames it would name may be gone when the file is written.
fn keep_pending(label: &[u8], value: i64, tid: u32) -> bool {
    let mut g = STATE.lock();
    if !matches!(g.status, Status::Idle) || RESET_PENDING.load(Ordering::Relaxed) || OWNER.load(Ordering::Relaxed) != 0 {
        return false;
    }
    let size = label.len() + std::mem::size_of::<MarkerRec>() + 16;
    if g.pending_bytes + size > PENDING_BYTES {
        drop(g);
        count_lost_call();
        return true;
    }
    g.pending_bytes += size;
    g.pending.push(PendingMarker { rec: MarkerRec { t_ns: now_ns(), value, tid, stack_id: 0 }, label: label.to_vec() });
    true
}

/// Writes the markers kept while there was no file, first thing in a new file.
fn write_pending(g: &mut State) {
    let pending = std::mem::take(&mut g.pending);
    g.pending_bytes = 0;
    let Status::Recording(s) = &mut g.status else { return };
    for p in pending {
        // The first chunk holds them (see PENDING_BYTES); should it not, they are counted.
        if !matches!(s.file.append(RecordKind::Marker, &p.rec, &0u32.to_le_bytes(), &[&p.label]), Appended::Done) {
            count_lost_call();
        }
    }
}

/// Writes a Device record the first time a context is created on `dev` in this process.
pub fn describe_device(dev: i32) {
    // One bit per possible ordinal: the mask holds them all.
    const _: () = assert!(vramtrace_trace::record::MAX_DEVICES <= 64);
    if !(0..vramtrace_trace::record::MAX_DEVICES).contains(&dev) || DESCRIBED.fetch_or(1 << dev, Ordering::AcqRel) & (1 << dev) != 0 {
        return;
    }
    // Ask the driver before taking the lock: never hold our lock across a driver call.
    let d = crate::driver::describe_device(dev);
    append_with(|s, _| {
        let rec = DeviceRec { t_ns: now_ns(), total_bytes: d.total, ordinal: dev, driver_version: d.driver_version, uuid: d.uuid };
        s.put(RecordKind::Device, &rec, &[], &[&d.name])
    });
}

/// Why a critical section gave up before changing anything: redo it after the slow step.
enum Again {
    /// The file's current chunk is full.
    Full,
    /// A stack needs modules not described yet.
    NeedModules,
}

/// The loaded objects, listed without the lock for a critical section that needs them.
type Objects = Option<Vec<modules::Object>>;

/// Runs `body` on the session under the lock, redoing it after growing the file or listing the
/// loaded modules (both without the lock) until it completes. `body` returns whether its record
/// made it into the file (false: the file was cut).
#[inline]
fn append_with(mut body: impl FnMut(&mut Session, &mut Objects) -> Result<bool, Again>) {
    // The first attempt is the hot path; the retries are out of line.
    let Some(mut g) = session() else { return };
    let Some(s) = session_of(&mut g) else { return };
    let mut objects: Objects = None;
    match s.note_lost().and_then(|()| body(s, &mut objects)) {
        Ok(recorded) => appended(g, recorded),
        Err(again) => retry_append(g, again, body),
    }
}

#[inline]
fn appended(g: LockGuard<'static, State>, recorded: bool) {
    if !recorded {
        count_lost_call();
    }
    finish_append(g, false);
}

#[cold]
#[inline(never)]
fn retry_append(mut g: LockGuard<'static, State>, mut again: Again, mut body: impl FnMut(&mut Session, &mut Objects) -> Result<bool, Again>) {
    let mut waits = 0u32;
    let mut objects: Objects = None;
    loop {
        match again {
            Again::NeedModules => {
                drop(g);
                objects = Some(modules::all());
            }
            Again::Full => {
                if !finish_append(g, true) {
                    // Another thread is reserving the next chunk: give it the CPU.
                    waits += 1;
                    if waits < 100 {
                        std::thread::yield_now();
                    } else {
                        std::thread::sleep(std::time::Duration::from_micros(50));
                    }
                }
            }
        }
        let Some(next) = session() else { return };
        g = next;
        let Some(s) = session_of(&mut g) else { return };
        match s.note_lost().and_then(|()| body(s, &mut objects)) {
            Ok(recorded) => return appended(g, recorded),
            Err(a) => again = a,
        }
    }
}

/// Drops the lock, then unmaps a retired chunk and reserves the next one if this thread claimed
/// it (`now`: the current chunk is full). Returns whether this thread grew the file.
#[inline]
fn finish_append(mut g: LockGuard<'static, State>, now: bool) -> bool {
    let chores = session_of(&mut g).is_some_and(|s| now || s.file.has_chores());
    chores && grow_unlocked(g, now)
}

#[cold]
#[inline(never)]
fn grow_unlocked(mut g: LockGuard<'static, State>, now: bool) -> bool {
    let Some(s) = session_of(&mut g) else { return false };
    let job = s.file.claim_growth(now);
    let retired = s.file.take_retired();
    drop(g);
    tracefile::unmap_retired(retired);
    let Some(job) = job else { return false };
    let grown = job.run();
    let mut g = STATE.lock();
    match &mut g.status {
        Status::Recording(s) => s.file.install(grown),
        _ => grown.discard(),
    }
    true
}

#[inline]
fn session_of<'a>(g: &'a mut LockGuard<'static, State>) -> Option<&'a mut Session> {
    match &mut g.status {
        Status::Recording(s) => Some(s),
        _ => None,
    }
}

/// The lock, with a session in it, created on first use (see the module doc for the race).
#[inline]
fn session() -> Option<LockGuard<'static, State>> {
    let g = STATE.lock();
    if RESET_PENDING.load(Ordering::Relaxed) {
        drop(g);
        reset_after_fork();
        return start_session();
    }
    match g.status {
        Status::Recording(_) => Some(g),
        Status::Disabled => None,
        Status::Idle => {
            drop(g);
            start_session()
        }
    }
}

#[cold]
#[inline(never)]
fn start_session() -> Option<LockGuard<'static, State>> {
    loop {
        let g = STATE.lock();
        match g.status {
            Status::Recording(_) => return Some(g),
            Status::Disabled => return None,
            Status::Idle => {}
        }
        drop(g);
        let cfg = configured();
        let made = open(&cfg);
        let mut g = STATE.lock();
        match (&g.status, made) {
            (Status::Idle, Ok(s)) => {
                g.status = Status::Recording(s);
                OWNER.store(sys::pid(), Ordering::Release);
                write_pending(&mut g);
            }
            (Status::Idle, Err(msg)) => {
                g.status = Status::Disabled;
                drop(g);
                sys::warn(&format!("{msg}; recording is off for this process (pid {})", sys::pid()));
                return None;
            }
            (_, Ok(lost_race)) => {
                drop(g);
                lost_race.file.discard();
            }
            (_, Err(_)) => {}
        }
    }
}

/// A new file with its Info record: slow, done before the file is shared, without the lock.
fn open(cfg: &Config) -> Result<Box<Session>, String> {
    let mut file = TraceFile::create(&cfg.dir)?;
    let info = InfoRec {
        pid: sys::pid(),
        // SAFETY: getppid has no preconditions and cannot fail.
        ppid: unsafe { libc::getppid() } as u32,
        mono_ns: now_ns(),
        realtime_ns: sys::realtime_ns(),
        stack_depth: cfg.depth as u32,
        _reserved: 0,
    };
    let exe = modules::exe_path();
    let mut cmd = std::fs::read("/proc/self/cmdline").unwrap_or_default();
    if cmd.last() == Some(&0) {
        cmd.pop();
    }
    cmd.truncate(32 << 10); // the encode buffer is 64 KiB
    let host = std::fs::read("/proc/sys/kernel/hostname").unwrap_or_default();
    let host = host.trim_ascii_end();
    // The first chunk has room for it: it cannot be Full.
    file.append(RecordKind::Info, &info, &[], &[exe.as_bytes(), &cmd, env!("CARGO_PKG_VERSION").as_bytes(), host]);
    Ok(Box::new(Session { file, stacks: FxHashMap::default(), modules: Vec::new(), lost_written: (0, 0), lost_any: 0, ended: false, py: Default::default() }))
}

impl Session {
    /// Appends a record: Ok(true) written, Ok(false) dropped (cut file), Err(Full) retry.
    fn put<T: zerocopy::IntoBytes + zerocopy::Immutable + ?Sized>(&mut self, kind: RecordKind, fixed: &T, raw: &[u8], strings: &[&[u8]]) -> Result<bool, Again> {
        match self.file.append(kind, fixed, raw, strings) {
            Appended::Done => Ok(true),
            Appended::Dropped => Ok(false),
            Appended::Full => Err(Again::Full),
        }
    }

    /// Writes the Lost totals if they changed since the last Lost record.
    #[inline]
    fn note_lost(&mut self) -> Result<(), Again> {
        if LOST_ANY.load(Ordering::Acquire) == self.lost_any {
            return Ok(());
        }
        self.write_lost()
    }

    #[cold]
    fn write_lost(&mut self) -> Result<(), Again> {
        if self.file.is_cut() {
            return Ok(()); // the final totals go in with End
        }
        let any = LOST_ANY.load(Ordering::Acquire);
        let now = (LOST_CALLS.load(Ordering::Relaxed), LOST_LOOKUPS.load(Ordering::Relaxed));
        self.put(RecordKind::Lost, &LostRec { t_ns: now_ns(), calls: now.0, lookups: now.1 }, &[], &[])?;
        (self.lost_written, self.lost_any) = (now, any);
        Ok(())
    }

    /// Deduplicates a Python stack; what is new (the interpreter's description, code objects,
    /// the stack) is written first. A chunk that fills up midway is retried like any record:
    /// the tables hold only what is already in the file.
    fn py_stack_id(&mut self, py: &crate::python::Capture) -> Result<u32, Again> {
        if let Some(id) = self.py.known(py) {
            return Ok(id);
        }
        let mut tables = std::mem::take(&mut self.py);
        let id = tables.add(py, &mut |kind, fixed, raw, strings| self.put(kind, fixed, raw, strings).map(|_| ()));
        self.py = tables;
        id
    }

    fn covers(&self, frames: &[u64]) -> bool {
        frames.iter().all(|&a| self.modules.iter().any(|&(s, e)| (s..e).contains(&a)))
    }

    /// Writes out a stack not seen before and gives it an id.
    fn new_stack(&mut self, frames: &[u64]) -> Result<u32, Again> {
        let id = self.stacks.len() as u32 + 1;
        let raw: &[u8] = zerocopy::IntoBytes::as_bytes(frames);
        // Only a stack that is in the file gets an id (a cut file records no more events).
        if self.put(RecordKind::Stack, &StackRec { id, depth: frames.len() as u32 }, raw, &[])? {
            self.stacks.insert(frames.into(), id);
            Ok(id)
        } else {
            Ok(0)
        }
    }

    /// Describes every listed module not described yet (new ones appear after each dlopen).
    fn describe_modules(&mut self, objects: Vec<modules::Object>) -> Result<bool, Again> {
        for o in objects {
            let extent = (o.start as u64, o.end as u64);
            if self.modules.contains(&extent) {
                continue;
            }
            let rec = ModuleRec {
                id: self.modules.len() as u32 + 1,
                build_id_len: o.build_id_len as u32,
                base: o.base as u64,
                start: extent.0,
                end: extent.1,
                build_id: o.build_id,
            };
            let path = if o.is_main { modules::exe_path().into_bytes() } else { o.name.into_bytes() };
            if !self.put(RecordKind::Module, &rec, &[], &[&path])? {
                return Ok(false);
            }
            self.modules.push(extent);
        }
        Ok(true)
    }
}

/// See `FORKS`.
#[inline]
pub fn forks() -> u64 {
    FORKS.load(Ordering::Relaxed)
}

/// The process that owns the installed session (0: none).
pub fn owner() -> u32 {
    OWNER.load(Ordering::Acquire)
}

/// At process exit (normal, or `_exit`): the final Lost totals and an End record, which tells
/// the analyzer the process did not crash. Written once, into the space kept for it even in a
/// cut file. The mapping stays: threads may still record during teardown.
pub fn finish() {
    let mut g = STATE.lock();
    let Status::Recording(s) = &mut g.status else { return };
    if s.ended || OWNER.load(Ordering::Acquire) != sys::pid() {
        return;
    }
    s.ended = true;
    let now = (LOST_CALLS.load(Ordering::Relaxed), LOST_LOOKUPS.load(Ordering::Relaxed));
    if now != s.lost_written {
        s.file.append_final(RecordKind::Lost, &LostRec { t_ns: now_ns(), calls: now.0, lookups: now.1 });
        s.lost_written = now;
    }
    s.file.append_final(RecordKind::End, &EndRec { t_ns: now_ns(), _reserved: 0 });
}

/// In the child after `fork`: it must never write into the parent's file. Drop the parent's
/// mappings (the parent's own are unaffected) and start over lazily with a file of its own.
///
/// `held`: the forking thread held `STATE` (a signal handler that interrupted the recorder
/// forked). The code it interrupted may resume in the child, in the middle of a critical section
/// that uses the session: the session is left alone until the next critical section starts
/// (`RESET_PENDING`), and only then released. That interrupted section may still finish the one
/// record it was appending into the parent's file (the parent appends the same record at the
/// same place).
pub fn after_fork_child(held: bool) {
    FORKS.fetch_add(1, Ordering::Relaxed);
    if held {
        RESET_PENDING.store(true, Ordering::Relaxed);
    } else {
        reset_after_fork();
    }
    OWNER.store(0, Ordering::Release);
    DESCRIBED.store(0, Ordering::Relaxed); // the child's file describes its devices again
    LOST_CALLS.store(0, Ordering::Relaxed);
    LOST_LOOKUPS.store(0, Ordering::Relaxed);
    LOST_ANY.store(0, Ordering::Relaxed);
}

/// Releases the parent's session (its mappings and descriptor) in a fork child.
#[cold]
fn reset_after_fork() {
    let mut g = STATE.lock();
    RESET_PENDING.store(false, Ordering::Relaxed);
    let old = std::mem::replace(&mut g.status, Status::Idle);
    // The parent's markers stay the parent's.
    g.pending.clear();
    g.pending_bytes = 0;
    drop(g);
    if let Status::Recording(s) = old {
        s.file.release();
    }
}
