//! Per-process trace recording: the file, stacks, modules, and the append path.
//!
//! Durability: records go into a `MAP_SHARED` mapping of the trace file. A store into it is in the
//! kernel's page cache the moment it happens, so it survives `abort()` and SIGKILL without any
//! flush. The file grows in chunks reserved with `posix_fallocate` first, so a full disk is an
//! error at growth time (we stop recording, with a warning) instead of a SIGBUS on a store. Each
//! record's payload is copied before its header word is published with one atomic store: a
//! reader sees either a whole record or zeros.
//!
//! Hot path: unwind the stack before taking the lock, hold the lock only to deduplicate the stack
//! and append.

use crate::modules;
use crate::sys::{self, now_ns};
use std::cell::UnsafeCell;
use std::collections::HashMap;
use std::ffi::{c_int, CString};
use std::sync::atomic::{AtomicU64, Ordering};
use vramtrace_trace::record::{self, encode, DeviceRec, InfoRec, MarkerRec, ModuleRec, RecordKind, StackRec};
use vramtrace_trace::{EndRec, EventRec};

/// A `pthread_mutex_t`: usable from `pthread_atfork` handlers, no allocation, no poisoning.
pub struct Lock(UnsafeCell<libc::pthread_mutex_t>);
unsafe impl Sync for Lock {}

pub struct Guard<'a>(&'a Lock);
impl Drop for Guard<'_> {
    fn drop(&mut self) {
        unsafe { libc::pthread_mutex_unlock(self.0 .0.get()) };
    }
}

impl Lock {
    pub const fn new() -> Self {
        Lock(UnsafeCell::new(libc::PTHREAD_MUTEX_INITIALIZER))
    }
    pub fn lock(&self) -> Guard<'_> {
        unsafe { libc::pthread_mutex_lock(self.0.get()) };
        Guard(self)
    }
    unsafe fn raw_lock(&self) {
        unsafe { libc::pthread_mutex_lock(self.0.get()) };
    }
    unsafe fn raw_unlock(&self) {
        unsafe { libc::pthread_mutex_unlock(self.0.get()) };
    }
    unsafe fn reinit(&self) {
        unsafe { *self.0.get() = libc::PTHREAD_MUTEX_INITIALIZER };
    }
}

pub const DEFAULT_STACK_DEPTH: usize = 32;
const MAX_STACK_DEPTH: usize = 128;
/// Frames of our own to unwind through before the caller's (wrapper, `wrap`, `record`).
const SKIP_BUDGET: usize = 8;
const FIRST_CHUNK: usize = 256 << 10;
const MAX_CHUNK: usize = 8 << 20;

struct Config {
    dir: CString,
    depth: usize,
}

struct Writer {
    fd: c_int,
    map: *mut u8,
    map_off: u64,
    map_len: usize,
    pos: usize,
    next_chunk: usize,
    buf: Vec<u8>,
    stacks: HashMap<Box<[u64]>, u32>,
    /// Extents of the modules already described in the file.
    modules: Vec<(u64, u64)>,
    /// Python code objects and stacks already in the file.
    py: crate::python::Tables,
}

enum Status {
    /// No event yet: nothing created, nothing touched.
    Idle,
    Recording(Box<Writer>),
    /// Could not create or grow the file; warned once, now inert.
    Disabled,
}

struct State {
    status: Status,
    config: Option<Config>,
}

static LOCK: Lock = Lock::new();
struct Shared(UnsafeCell<State>);
unsafe impl Sync for Shared {}
static STATE: Shared = Shared(UnsafeCell::new(State { status: Status::Idle, config: None }));
/// Stack depth, readable without the lock (u64::MAX until configured).
static DEPTH: AtomicU64 = AtomicU64::new(u64::MAX);
/// Address range of the shim itself, to drop our own frames from stacks; set with DEPTH.
static SELF_START: AtomicU64 = AtomicU64::new(0);
static SELF_END: AtomicU64 = AtomicU64::new(0);

fn config() -> Config {
    let dir = std::env::var_os("VRAMTRACE_DIR").filter(|d| !d.is_empty()).unwrap_or_else(|| ".".into());
    let depth = match std::env::var("VRAMTRACE_STACK_DEPTH") {
        Ok(v) => v.trim().parse::<usize>().unwrap_or_else(|_| {
            sys::warn(&format!("VRAMTRACE_STACK_DEPTH={v:?} is not a number; using {DEFAULT_STACK_DEPTH}"));
            DEFAULT_STACK_DEPTH
        }),
        Err(_) => DEFAULT_STACK_DEPTH,
    }
    .min(MAX_STACK_DEPTH);
    use std::os::unix::ffi::OsStrExt;
    Config { dir: CString::new(dir.as_bytes()).unwrap_or_else(|_| c".".into()), depth }
}

/// The configured depth and the shim's own address range, read once.
fn stack_config() -> (usize, (u64, u64)) {
    let d = DEPTH.load(Ordering::Acquire);
    if d == u64::MAX {
        let range = self_range();
        SELF_START.store(range.0, Ordering::Relaxed);
        SELF_END.store(range.1, Ordering::Relaxed);
        let _g = LOCK.lock();
        let st = unsafe { &mut *STATE.0.get() };
        let depth = st.config.get_or_insert_with(config).depth;
        DEPTH.store(depth as u64, Ordering::Release);
    }
    (DEPTH.load(Ordering::Acquire) as usize, (SELF_START.load(Ordering::Relaxed), SELF_END.load(Ordering::Relaxed)))
}

/// Captures the caller's stack into `buf` and returns it, innermost first, without our own
/// frames.
fn capture(buf: &mut [u64; MAX_STACK_DEPTH + SKIP_BUDGET], depth: usize, self_range: (u64, u64)) -> &[u64] {
    let n = crate::unwind::capture(&mut buf[..depth + SKIP_BUDGET]);
    let skip = buf[..n].iter().take_while(|&&a| (self_range.0..self_range.1).contains(&a)).count();
    let take = (n - skip).min(depth);
    &buf[skip..skip + take]
}

fn self_range() -> (u64, u64) {
    modules::object_containing(self_range as *const () as usize).map_or((0, 0), |o| (o.start as u64, o.end as u64))
}

/// Records one event. Called with the thread's re-entry flag set.
pub fn record(e: &mut EventRec) {
    let (depth, range) = stack_config();
    // The frame buffer (1 KiB) is only set up when stacks are on: zeroing it is measurable.
    let mut buf;
    let frames: &[u64] = if depth == 0 {
        &[]
    } else {
        buf = [0u64; MAX_STACK_DEPTH + SKIP_BUDGET];
        capture(&mut buf, depth, range)
    };
    let mut py = crate::python::Capture::new();
    py.fill(depth);
    e.tid = sys::tid();
    let _g = LOCK.lock();
    let Some(w) = writer() else { return };
    e.stack_id = w.stack_id(frames);
    e.py_stack_id = w.py_stack_id(&py);
    e.t_ns = now_ns();
    w.append(RecordKind::Event, &*e, &[], &[]);
}

/// Records a user marker.
pub fn mark(label: &[u8], value: i64) {
    let mut py = crate::python::Capture::new();
    py.fill(stack_config().0);
    let tid = sys::tid();
    let _g = LOCK.lock();
    let Some(w) = writer() else { return };
    let m = MarkerRec { t_ns: now_ns(), value, tid, stack_id: 0 };
    let py_stack_id = w.py_stack_id(&py);
    w.append(RecordKind::Marker, &m, &py_stack_id.to_le_bytes(), &[label]);
}

/// Devices already described in this process's file (bit per ordinal 0..63).
static DESCRIBED: AtomicU64 = AtomicU64::new(0);

/// Writes a Device record the first time a context is created on `dev` in this process.
pub fn describe_device(dev: i32) {
    if !(0..64).contains(&dev) || DESCRIBED.fetch_or(1 << dev, Ordering::AcqRel) & (1 << dev) != 0 {
        return;
    }
    // Ask the driver before taking the lock: never hold our lock across a driver call.
    let (name, total, version, uuid) = crate::resolve::describe_device(dev);
    let _g = LOCK.lock();
    let Some(w) = writer() else { return };
    let rec = DeviceRec { t_ns: now_ns(), total_bytes: total, ordinal: dev, driver_version: version, uuid };
    w.append(RecordKind::Device, &rec, &[], &[&name]);
}

/// The writer, created on first use. Must be called with `LOCK` held.
fn writer() -> Option<&'static mut Writer> {
    let st = unsafe { &mut *STATE.0.get() };
    if let Status::Idle = st.status {
        install_fork_handlers();
        let cfg = st.config.get_or_insert_with(config);
        st.status = match Writer::create(cfg) {
            Ok(w) => Status::Recording(w),
            Err(msg) => {
                sys::warn(&format!("{msg}; recording is off for this process (pid {})", std::process::id()));
                Status::Disabled
            }
        };
    }
    match &mut st.status {
        Status::Recording(w) if w.fd >= 0 => Some(&mut **w),
        _ => None,
    }
}

impl Writer {
    fn create(cfg: &Config) -> Result<Box<Writer>, String> {
        let pid = std::process::id();
        let dir = cfg.dir.to_string_lossy();
        let mut last_err = String::new();
        // O_EXCL never overwrites (and refuses to follow a symlink at the final component); a
        // taken name (pid reuse, or the image before an exec in this same process) gets a suffix.
        for n in 0..100 {
            let name = format!("{dir}/{}", vramtrace_trace::side::trace_file_name(pid, n));
            let path = CString::new(name.clone()).map_err(|_| "bad VRAMTRACE_DIR".to_string())?;
            let fd = unsafe {
                libc::open(path.as_ptr(), libc::O_RDWR | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC, 0o600)
            };
            if fd >= 0 {
                let mut w = Box::new(Writer {
                    fd,
                    map: std::ptr::null_mut(),
                    map_off: 0,
                    map_len: 0,
                    pos: 0,
                    next_chunk: FIRST_CHUNK,
                    buf: vec![0; 64 << 10],
                    stacks: HashMap::new(),
                    modules: Vec::new(),
                    py: Default::default(),
                });
                w.grow(0).map_err(|e| format!("cannot reserve space in {name}: {e}"))?;
                let header = record::file_header();
                unsafe { std::ptr::copy_nonoverlapping(header.as_ptr(), w.map, header.len()) };
                w.pos = header.len();
                w.write_info(cfg.depth);
                return Ok(w);
            }
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() != Some(libc::EEXIST) {
                return Err(format!("cannot create trace file {name}: {err}"));
            }
            last_err = format!("cannot create trace file {name}: {err}");
        }
        Err(last_err)
    }

    /// Maps a new chunk at the end of the file, big enough for `need` bytes.
    fn grow(&mut self, need: usize) -> Result<(), std::io::Error> {
        let off = self.map_off + self.map_len as u64;
        let len = self.next_chunk.max(record::pad8(need).next_multiple_of(4096));
        let rc = unsafe { libc::posix_fallocate(self.fd, off as libc::off_t, len as libc::off_t) };
        if rc != 0 {
            return Err(std::io::Error::from_raw_os_error(rc));
        }
        let map = unsafe {
            libc::mmap(std::ptr::null_mut(), len, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_SHARED | libc::MAP_POPULATE, self.fd, off as libc::off_t)
        };
        if map == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        if !self.map.is_null() {
            unsafe { libc::munmap(self.map.cast(), self.map_len) };
        }
        (self.map, self.map_off, self.map_len, self.pos) = (map.cast(), off, len, 0);
        self.next_chunk = (self.next_chunk * 2).min(MAX_CHUNK);
        Ok(())
    }

    fn append<T: zerocopy::IntoBytes + zerocopy::Immutable + ?Sized>(&mut self, kind: RecordKind, fixed: &T, raw: &[u8], strings: &[&[u8]]) {
        let Some((header, len)) = encode(kind, fixed, raw, strings, &mut self.buf) else { return };
        if self.pos + len > self.map_len {
            let rest = self.map_len - self.pos;
            if rest >= 8 {
                // Fill the chunk's tail so the reader steps over it to the next chunk.
                let pad = record::RecordHeader { len: rest as u32, kind: RecordKind::Pad as u16 };
                self.publish(pad.to_u64());
            }
            if let Err(e) = self.grow(len) {
                sys::warn(&format!("cannot grow the trace file: {e}; recording stops here (pid {})", std::process::id()));
                unsafe { libc::close(self.fd) };
                self.fd = -1;
                return;
            }
        }
        unsafe { std::ptr::copy_nonoverlapping(self.buf.as_ptr().add(8), self.map.add(self.pos + 8), len - 8) };
        self.publish(header);
        self.pos += len;
    }

    /// Publishes a record by storing its header word last.
    fn publish(&mut self, header: u64) {
        let slot = unsafe { &*(self.map.add(self.pos) as *const AtomicU64) };
        slot.store(header.to_le(), Ordering::Release);
    }

    fn write_info(&mut self, depth: usize) {
        let info = InfoRec {
            pid: std::process::id(),
            ppid: unsafe { libc::getppid() } as u32,
            mono_ns: now_ns(),
            realtime_ns: sys::realtime_ns(),
            stack_depth: depth as u32,
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
        self.append(RecordKind::Info, &info, &[], &[exe.as_bytes(), &cmd, env!("CARGO_PKG_VERSION").as_bytes(), host]);
    }

    /// Deduplicates a stack; a new one is written out (with any module it needs first).
    fn stack_id(&mut self, frames: &[u64]) -> u32 {
        if frames.is_empty() {
            return 0;
        }
        if let Some(&id) = self.stacks.get(frames) {
            return id;
        }
        if frames.iter().any(|&a| !self.modules.iter().any(|&(s, e)| (s..e).contains(&a))) {
            self.write_modules();
        }
        let id = self.stacks.len() as u32 + 1;
        self.stacks.insert(frames.into(), id);
        let raw: &[u8] = zerocopy::IntoBytes::as_bytes(frames);
        self.append(RecordKind::Stack, &StackRec { id, depth: frames.len() as u32 }, raw, &[]);
        id
    }

    /// Deduplicates a Python stack; what is new (code objects, the stack) is written out first.
    fn py_stack_id(&mut self, py: &crate::python::Capture) -> u32 {
        if let Some(id) = self.py.known(py) {
            return id;
        }
        let mut tables = std::mem::take(&mut self.py);
        let id = tables.add(py, &mut |kind, fixed, raw, strings| self.append(kind, fixed, raw, strings));
        self.py = tables;
        id
    }

    /// Describes every loaded module not described yet (new ones appear after each dlopen).
    fn write_modules(&mut self) {
        let mut new = Vec::new();
        modules::for_each(|o| {
            if !self.modules.contains(&(o.start as u64, o.end as u64)) {
                new.push(o);
            }
            false
        });
        for o in new {
            let id = self.modules.len() as u32 + 1;
            self.modules.push((o.start as u64, o.end as u64));
            let rec = ModuleRec {
                id,
                build_id_len: o.build_id_len as u32,
                base: o.base as u64,
                start: o.start as u64,
                end: o.end as u64,
                build_id: o.build_id,
            };
            let path = if o.is_main { modules::exe_path().into_bytes() } else { o.name.into_bytes() };
            self.append(RecordKind::Module, &rec, &[], &[&path]);
        }
    }
}

/// Called at normal process exit: an End record tells the analyzer the process did not crash.
/// The mapping stays: threads may still record during teardown.
pub fn finish() {
    let _g = LOCK.lock();
    let st = unsafe { &mut *STATE.0.get() };
    if let Status::Recording(w) = &mut st.status {
        if w.fd >= 0 {
            w.append(RecordKind::End, &EndRec { t_ns: now_ns(), _reserved: 0 }, &[], &[]);
        }
    }
}

pub fn install_fork_handlers() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| unsafe {
        libc::pthread_atfork(Some(before_fork), Some(after_fork_parent), Some(after_fork_child));
    });
}

/// Every lock of the shim. Held across fork so the child never inherits one mid-update.
fn all_locks() -> [&'static Lock; 3] {
    [&crate::resolve::ID_LOCK, &crate::unwind::LOCK, &LOCK]
}

unsafe extern "C" fn before_fork() {
    for l in all_locks() {
        unsafe { l.raw_lock() };
    }
}
unsafe extern "C" fn after_fork_parent() {
    for l in all_locks().iter().rev() {
        unsafe { l.raw_unlock() };
    }
}
/// The child must never write into the parent's file: drop the parent's mapping (the parent's own
/// mapping is unaffected) and start over lazily with a file of its own.
unsafe extern "C" fn after_fork_child() {
    let st = unsafe { &mut *STATE.0.get() };
    if let Status::Recording(w) = std::mem::replace(&mut st.status, Status::Idle) {
        unsafe {
            if !w.map.is_null() {
                libc::munmap(w.map.cast(), w.map_len);
            }
            if w.fd >= 0 {
                libc::close(w.fd);
            }
        }
    } else {
        st.status = Status::Idle;
    }
    sys::forget_tid();
    crate::unwind::forget_thread();
    DESCRIBED.store(0, Ordering::Relaxed); // the child's file describes its devices again
    for l in all_locks() {
        unsafe { l.reinit() };
    }
}
