//! Which CPython the process runs, found without running any Python: the object that defines
//! `_PyRuntime` (libpython linked by the executable, an executable with Python linked in, or a
//! libpython an embedder `dlopen`ed, even `RTLD_LOCAL`), its version, and its layout.
//!
//! Looked up at the first event, and again whenever the loader's object list changed since (a
//! `dlopen` may bring Python in, a `dlclose` take it away). The native unwinder already reads the
//! loader's counters for every event and passes them on (`loader_seen`), so between changes the
//! check costs a thread-local read; without that note (markers, the libgcc unwinder) it reads
//! them itself (one `dl_iterate_phdr` call, ~20 ns).

use super::layout::{self, Layout};
use super::mem::{self, Mem};
use std::cell::Cell;
use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::sync::atomic::{AtomicPtr, AtomicU64, Ordering::*};
use vramtrace_trace::PyStatus;

pub type GilStateFn = unsafe extern "C" fn() -> *mut c_void;
pub type IsInitializedFn = unsafe extern "C" fn() -> c_int;

/// One interpreter, as found. Never freed: captures on other threads may still hold it.
pub struct Interp {
    /// Address of `_PyRuntime`.
    pub runtime: u64,
    pub hexversion: u32,
    /// `Capturing` when `layout` and the functions below are all known.
    pub status: PyStatus,
    pub detail: String,
    /// The object holding the interpreter.
    pub library: String,
    /// `_PyEval_EvalFrameDefault`'s address range, (0, 0) when unknown.
    pub eval: (u64, u64),
    pub layout: Option<Layout>,
    /// `PyGILState_GetThisThreadState`.
    pub gilstate: Option<GilStateFn>,
    /// `Py_IsInitialized`.
    pub initialized: Option<IsInitializedFn>,
    /// Addresses of `PyCode_Type`, `PyUnicode_Type` and `PyBytes_Type`: what `ob_type` must be.
    pub code_type: u64,
    pub unicode_type: u64,
    pub bytes_type: u64,
}

impl Interp {
    fn same_as(&self, o: &Interp) -> bool {
        (self.runtime, self.hexversion, self.status, &self.library) == (o.runtime, o.hexversion, o.status, &o.library)
    }
}

static INTERP: AtomicPtr<Interp> = AtomicPtr::new(std::ptr::null_mut());
/// Loader generation `INTERP` was found at; u64::MAX = never looked.
static GENERATION: AtomicU64 = AtomicU64::new(u64::MAX);

thread_local! {
    /// The loader generation the unwinder read for the event being recorded on this thread (0 =
    /// none). A `const` thread-local without destructor: a plain TLS slot.
    static NOTED: Cell<u64> = const { Cell::new(0) };
}

/// Called by the native unwinder with the loader counters it just read on this thread.
pub fn loader_seen(adds: u64, subs: u64) {
    NOTED.with(|n| n.set(generation(adds, subs)));
}

/// Both counters only grow, so their sum changes whenever either does; never 0 (the executable
/// itself counts as one object added).
fn generation(adds: u64, subs: u64) -> u64 {
    adds.wrapping_add(subs).max(1)
}

fn loader_generation() -> u64 {
    let noted = NOTED.with(|n| n.replace(0));
    if noted != 0 {
        return noted;
    }
    let mut c = (0u64, 0u64);
    unsafe extern "C" fn cb(info: *mut libc::dl_phdr_info, _: usize, data: *mut c_void) -> c_int {
        // SAFETY: `data` is the `(u64, u64)` passed below; `info` is valid during the callback.
        unsafe { *(data as *mut (u64, u64)) = ((*info).dlpi_adds, (*info).dlpi_subs) };
        1
    }
    // SAFETY: the callback only copies two counters out of the loader's record.
    unsafe { libc::dl_iterate_phdr(Some(cb), (&raw mut c).cast()) };
    generation(c.0, c.1)
}

/// The process's interpreter, if it has one: looked up again if the loader's object list changed.
pub fn current() -> Option<&'static Interp> {
    let g = loader_generation();
    if g != GENERATION.load(Acquire) {
        mem::mark_stale();
        let cur = INTERP.load(Acquire);
        let next = match probe() {
            None => std::ptr::null_mut(),
            // SAFETY: interpreters are never freed.
            Some(i) if !cur.is_null() && unsafe { &*cur }.same_as(&i) => cur,
            Some(i) => Box::into_raw(Box::new(i)),
        };
        INTERP.store(next, Release);
        GENERATION.store(g, Release);
    }
    let p = INTERP.load(Acquire);
    // SAFETY: interpreters are never freed; a non-null pointer is a leaked Box.
    (!p.is_null()).then(|| unsafe { &*p })
}

/// dlopen handles of the global scope and of every loaded object named like libpython.
fn handles() -> Vec<*mut c_void> {
    let mut names: Vec<CString> = Vec::new();
    crate::modules::for_each(|o| {
        let n = o.name.to_bytes();
        let base = n.rsplit(|&b| b == b'/').next().unwrap_or(n);
        if base.windows(9).any(|w| w == b"libpython") {
            names.push(o.name);
        }
        false
    });
    // SAFETY: dlopen(NULL) returns the global scope's handle; RTLD_NOLOAD never loads anything,
    // it only returns a handle (one reference, dropped in `probe`) to an object already loaded.
    let mut hs = vec![unsafe { libc::dlopen(std::ptr::null(), libc::RTLD_LAZY) }];
    for n in &names {
        // SAFETY: as above; `n` is a NUL-terminated path of a loaded object.
        hs.push(unsafe { libc::dlopen(n.as_ptr(), libc::RTLD_LAZY | libc::RTLD_NOLOAD) });
    }
    hs.retain(|h| !h.is_null());
    hs
}

fn probe() -> Option<Interp> {
    let hs = handles();
    let mut best: Option<(Interp, bool)> = None;
    for &h in &hs {
        let Some(i) = examine(h) else { continue };
        if best.as_ref().is_some_and(|(b, _)| b.runtime == i.runtime) {
            continue;
        }
        let ready = i.initialized.is_some_and(|f| {
            // SAFETY: `Py_IsInitialized` reads one field of `_PyRuntime`: no GIL needed, no
            // allocation, callable before, during and after initialization.
            (unsafe { f() }) != 0
        });
        // An initialized interpreter wins over one that is only loaded.
        if best.as_ref().is_none_or(|(_, b_ready)| ready && !b_ready) {
            best = Some((i, ready));
        }
    }
    for h in hs {
        // SAFETY: drops the reference taken in `handles`; the objects stay loaded.
        unsafe { libc::dlclose(h) };
    }
    best.map(|(i, _)| i)
}

/// The object and symbol table entry holding `addr`.
fn object_of(addr: u64) -> Option<(u64, String, u64)> {
    // SAFETY: `Dl_info` is plain pointers and integers: all zeros is a valid value.
    let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
    let mut sym: *const libc::Elf64_Sym = std::ptr::null();
    // SAFETY: dladdr1 fills `info` and, with RTLD_DL_SYMENT, points `sym` at the loader's own
    // symbol table entry (or leaves it NULL); both outlive this call while the object is loaded.
    let ok = unsafe { libc::dladdr1(addr as *const c_void, &mut info, (&raw mut sym).cast(), RTLD_DL_SYMENT) };
    if ok == 0 {
        return None;
    }
    let name = if info.dli_fname.is_null() {
        String::new()
    } else {
        // SAFETY: dladdr returns a NUL-terminated name owned by the loader.
        unsafe { CStr::from_ptr(info.dli_fname) }.to_string_lossy().into_owned()
    };
    // SAFETY: a non-null `sym` points at a valid symbol table entry (see above).
    let size = if sym.is_null() { 0 } else { unsafe { (*sym).st_size } };
    Some((info.dli_fbase as u64, name, size))
}

const RTLD_DL_SYMENT: c_int = 1;

/// The interpreter whose `_PyRuntime` `h` resolves, if any.
fn examine(h: *mut c_void) -> Option<Interp> {
    let dlsym = crate::driver::real_dlsym()?;
    let sym = |name: &CStr| -> u64 {
        // SAFETY: `h` is a live handle and `name` NUL-terminated; dlsym only looks up.
        unsafe { dlsym(h, name.as_ptr()) as u64 }
    };
    let runtime = sym(c"_PyRuntime");
    let (base, mut library, _) = object_of(runtime).filter(|_| runtime != 0)?;
    if crate::modules::object_containing(runtime as usize).is_some_and(|o| o.is_main) {
        library = crate::modules::exe_path();
    }
    // Everything must come from the object that defines `_PyRuntime` (the global scope could
    // hold a second Python).
    let own = |name: &CStr| Some(sym(name)).filter(|&a| a != 0 && object_of(a).is_some_and(|o| o.0 == base)).unwrap_or(0);
    let eval_start = own(c"_PyEval_EvalFrameDefault");
    let eval_size = if eval_start != 0 { object_of(eval_start).map_or(0, |o| o.2) } else { 0 };
    let gil = own(c"PyGILState_GetThisThreadState");
    let init = own(c"Py_IsInitialized");
    let mut i = Interp {
        runtime,
        hexversion: version(&own).unwrap_or(0),
        status: PyStatus::Capturing,
        detail: String::new(),
        library,
        eval: if eval_size > 0 { (eval_start, eval_start + eval_size) } else { (0, 0) },
        layout: None,
        // SAFETY: both are the interpreter's own exported functions of these exact signatures.
        gilstate: (gil != 0).then(|| unsafe { std::mem::transmute::<u64, GilStateFn>(gil) }),
        // SAFETY: as above.
        initialized: (init != 0).then(|| unsafe { std::mem::transmute::<u64, IsInitializedFn>(init) }),
        code_type: own(c"PyCode_Type"),
        unicode_type: own(c"PyUnicode_Type"),
        bytes_type: own(c"PyBytes_Type"),
    };
    let (major, minor, micro) = (i.hexversion >> 24, (i.hexversion >> 16) & 0xff, (i.hexversion >> 8) & 0xff);
    let name = if i.hexversion == 0 { "CPython of unknown version".to_string() } else { format!("CPython {major}.{minor}.{micro}") };
    let exported = i.gilstate.is_some() && i.initialized.is_some() && i.code_type != 0 && i.unicode_type != 0 && i.bytes_type != 0;
    (i.status, i.detail) = match choose_layout(&i) {
        Ok(l) if exported => {
            i.layout = Some(l);
            (PyStatus::Capturing, name)
        }
        Ok(_) => (PyStatus::UnknownLayout, format!("{name}: a function or type the capture needs is not exported")),
        Err((status, why)) => (status, format!("{name}: {why}")),
    };
    Some(i)
}

/// `PY_VERSION_HEX`: `Py_Version` (3.11+), else parsed from `Py_GetVersion()`.
fn version(own: &dyn Fn(&CStr) -> u64) -> Option<u32> {
    let v = own(c"Py_Version");
    if v != 0 {
        // `const unsigned long Py_Version`: its low 4 bytes, little-endian.
        let mut b = Vec::new();
        return Mem::pin()?.bytes(v, 4, &mut b).then(|| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
    }
    let f = own(c"Py_GetVersion");
    if f == 0 {
        return None;
    }
    // SAFETY: `Py_GetVersion` formats constant strings into a static buffer and returns it: no
    // GIL, no Python object, valid before and after initialization. The result is NUL-terminated.
    let s = unsafe { CStr::from_ptr(std::mem::transmute::<u64, unsafe extern "C" fn() -> *const c_char>(f)()) };
    parse_version(s.to_bytes())
}

/// "3.10.13 (main, ...)" → 0x030a0df0. Release level and serial are not needed: final is assumed.
fn parse_version(s: &[u8]) -> Option<u32> {
    let s = std::str::from_utf8(s).ok()?;
    let head = s.split(|c: char| !(c.is_ascii_digit() || c == '.')).next()?;
    let mut it = head.split('.').map(|p| p.parse::<u32>().ok());
    let (major, minor, micro) = (it.next()??, it.next()??, it.next().flatten().unwrap_or(0));
    (major < 256 && minor < 256 && micro < 256).then_some(major << 24 | minor << 16 | micro << 8 | 0xf0)
}

/// The layout for this interpreter, or why there is none.
fn choose_layout(i: &Interp) -> Result<Layout, (PyStatus, String)> {
    let (major, minor) = (i.hexversion >> 24, (i.hexversion >> 16) & 0xff);
    if major != 3 || minor < 10 {
        return Err((PyStatus::UnsupportedVersion, "Python stacks need CPython 3.10 or newer".into()));
    }
    if let Some(l) = layout::from_headers(minor) {
        return Ok(l);
    }
    let mut m = Mem::pin().ok_or((PyStatus::UnknownLayout, "/proc/self/maps is not readable".into()))?;
    let mut cookie = Vec::new();
    if !m.bytes(i.runtime, 8, &mut cookie) || cookie != layout::DEBUG_COOKIE {
        return Err((PyStatus::UnknownLayout, "no _Py_DebugOffsets at the start of _PyRuntime".into()));
    }
    if m.u64(i.runtime + layout::DEBUG_FREE_THREADED) != Some(0) {
        return Err((PyStatus::FreeThreaded, "a free-threaded build; Python stacks are not captured".into()));
    }
    if minor > 13 {
        return Err((PyStatus::UnsupportedVersion, "its _Py_DebugOffsets layout is newer than this vramtrace knows".into()));
    }
    layout::from_debug_offsets(i.hexversion, |off| m.u64(i.runtime + off)).map_err(|e| (PyStatus::UnknownLayout, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse_from_py_getversion() {
        assert_eq!(parse_version(b"3.10.13 (main, Jan  1 2024, 00:00:00) [GCC 12.2.0]"), Some(0x030a0df0));
        assert_eq!(parse_version(b"3.9.18+ (heads/3.9:abc)"), Some(0x030912f0));
        assert_eq!(parse_version(b"3.12"), Some(0x030c00f0));
        assert_eq!(parse_version(b"garbage"), None);
        assert_eq!(parse_version(b""), None);
    }

    fn fake(runtime: &[u64], hexversion: u32) -> Interp {
        Interp {
            runtime: runtime.as_ptr() as u64,
            hexversion,
            status: PyStatus::Capturing,
            detail: String::new(),
            library: String::new(),
            eval: (0, 0),
            layout: None,
            gilstate: None,
            initialized: None,
            code_type: 0,
            unicode_type: 0,
            bytes_type: 0,
        }
    }

    /// A `_PyRuntime` that starts with 3.13's `_Py_DebugOffsets`, as read from a 3.13.0.
    fn runtime_3_13(free_threaded: u64) -> Vec<u64> {
        let mut r = vec![0u64; 128];
        r[0] = u64::from_le_bytes(*layout::DEBUG_COOKIE);
        r[1] = 0x030d00f0;
        r[2] = free_threaded;
        // Plausible sizes so the self-consistency check passes: tstate, frame.
        r[152 / 8] = 304;
        r[224 / 8] = 72;
        r[328 / 8] = 96; // co_localsplusnames
        r
    }

    #[test]
    fn layouts_are_chosen_by_version_and_refused_with_a_reason() {
        let r = runtime_3_13(0);
        assert_eq!(choose_layout(&fake(&r, 0x030c01f0)), Ok(layout::V3_12));
        assert_eq!(choose_layout(&fake(&r, 0x030a0df0)), Ok(layout::V3_10));
        assert!(choose_layout(&fake(&r, 0x030d00f0)).is_ok());
        let (status, why) = choose_layout(&fake(&r, 0x030912f0)).unwrap_err();
        assert_eq!(status, PyStatus::UnsupportedVersion, "{why}");
        let mut r14 = runtime_3_13(0);
        r14[1] = 0x030e00f0;
        assert_eq!(choose_layout(&fake(&r14, 0x030e00f0)).unwrap_err().0, PyStatus::UnsupportedVersion);
        assert_eq!(choose_layout(&fake(&runtime_3_13(1), 0x030d00f0)).unwrap_err().0, PyStatus::FreeThreaded);
        let mut bad = runtime_3_13(0);
        bad[0] = 0;
        assert_eq!(choose_layout(&fake(&bad, 0x030d00f0)).unwrap_err().0, PyStatus::UnknownLayout);
        let mut wrong_version = runtime_3_13(0);
        wrong_version[1] = 0x030d01f0;
        assert_eq!(choose_layout(&fake(&wrong_version, 0x030d00f0)).unwrap_err().0, PyStatus::UnknownLayout);
    }

    #[test]
    fn a_process_without_python_has_no_interpreter() {
        // The shim's own test binary links no libpython.
        assert!(current().is_none());
        assert_eq!(generation(3, 0), generation(3, 0));
        assert_ne!(generation(3, 0), generation(3, 1));
    }
}
