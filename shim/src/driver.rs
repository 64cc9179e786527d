//! Reaching the real thing: glibc's own `dlsym` and `dlclose` (ours are hooks), the loader
//! generation (bumped by our `dlclose` hook, so pointers cached before an unload are looked up
//! again), and the few driver functions the shim calls for itself (device of the current
//! context, free/total, device descriptions).
//!
//! The driver functions are resolved from libcuda directly, however the program loaded it
//! (cudart loads it `RTLD_LOCAL`), and without keeping it loaded: a program that `dlclose`s the
//! driver really unloads it, as without the shim. They are called from the shim's own code: were
//! the driver to call a hooked function back from one of them, that call would pass through
//! unrecorded (see `sync`).

use std::ffi::{c_char, c_int, c_void, CStr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::*};

pub type DlsymFn = unsafe extern "C" fn(*mut c_void, *const c_char) -> *mut c_void;
type DlcloseFn = unsafe extern "C" fn(*mut c_void) -> c_int;

/// glibc's symbol `name` at the first of `versions` it has, found with `dlvsym` (never hooked).
fn glibc(name: &CStr, versions: &[&CStr]) -> usize {
    for v in versions {
        // SAFETY: both strings are NUL-terminated literals; dlvsym has no other precondition.
        let p = unsafe { libc::dlvsym(libc::RTLD_NEXT, name.as_ptr(), v.as_ptr()) } as usize;
        if p != 0 {
            return p;
        }
    }
    0
}

/// glibc's own `dlsym`. 2.34 moved it out of libdl.
pub fn real_dlsym() -> Option<DlsymFn> {
    static REAL: AtomicUsize = AtomicUsize::new(0);
    let mut p = REAL.load(Relaxed);
    if p == 0 {
        p = glibc(c"dlsym", &[c"GLIBC_2.34", c"GLIBC_2.2.5", c"GLIBC_2.17"]);
        REAL.store(p, Relaxed);
    }
    // SAFETY: a non-zero `p` is glibc's dlsym, whose signature DlsymFn matches.
    (p != 0).then(|| unsafe { std::mem::transmute::<usize, DlsymFn>(p) })
}

/// glibc's own `dlclose`: the shim's own `dlopen` handles are closed with it, so our `dlclose`
/// hook (and the generation) sees only the program's.
pub fn real_dlclose(handle: *mut c_void) -> c_int {
    static REAL: AtomicUsize = AtomicUsize::new(0);
    let mut p = REAL.load(Relaxed);
    if p == 0 {
        p = glibc(c"dlclose", &[c"GLIBC_2.34", c"GLIBC_2.2.5", c"GLIBC_2.17"]);
        REAL.store(p, Relaxed);
    }
    if p == 0 {
        return -1;
    }
    // SAFETY: `p` is glibc's dlclose; the caller passes a handle it got from dlopen.
    unsafe { std::mem::transmute::<usize, DlcloseFn>(p)(handle) }
}

/// The symbol `name` in the objects loaded after the shim, found with glibc's dlsym.
pub fn next_symbol(name: &CStr) -> usize {
    // SAFETY: `name` is NUL-terminated; RTLD_NEXT is a valid pseudo-handle.
    real_dlsym().map_or(0, |f| unsafe { f(libc::RTLD_NEXT, name.as_ptr()) } as usize)
}

#[derive(Clone, Copy)]
enum Helper {
    CtxGetDevice,
    MemGetInfo,
    DeviceGetName,
    DeviceTotalMem,
    DriverGetVersion,
    DeviceGetUuid,
}
const HELPER_NAMES: [&CStr; 6] =
    [c"cuCtxGetDevice", c"cuMemGetInfo_v2", c"cuDeviceGetName", c"cuDeviceTotalMem_v2", c"cuDriverGetVersion", c"cuDeviceGetUuid"];

static GENERATION: AtomicU64 = AtomicU64::new(0);

/// Counts the program's `dlclose` calls: a pointer cached in an older generation may point into
/// an object that is gone.
pub fn generation() -> u64 {
    GENERATION.load(Acquire)
}

pub fn bump_generation() {
    GENERATION.fetch_add(1, AcqRel);
}

/// The helpers' pointers, and the generation (+1; 0 = never) they were resolved in.
static HELPERS: [AtomicUsize; 6] = [const { AtomicUsize::new(0) }; 6];
static HELPERS_GEN: AtomicU64 = AtomicU64::new(0);

fn helper(h: Helper) -> Option<usize> {
    let gen = generation() + 1;
    if HELPERS_GEN.load(Acquire) != gen {
        refresh_helpers();
        HELPERS_GEN.store(gen, Release);
    }
    let p = HELPERS[h as usize].load(Acquire);
    (p != 0).then_some(p)
}

/// Resolves every helper in the loaded libcuda (none if it is not loaded), without keeping a
/// reference to it. Threads racing here store the same values.
fn refresh_helpers() {
    // SAFETY: a NUL-terminated name; RTLD_NOLOAD never loads anything.
    let lib = unsafe { libc::dlopen(c"libcuda.so.1".as_ptr(), libc::RTLD_NOLOAD | libc::RTLD_LAZY) };
    for (slot, name) in HELPERS.iter().zip(HELPER_NAMES) {
        let p = match real_dlsym() {
            // SAFETY: `lib` is a live handle until the dlclose below; the name is NUL-terminated.
            Some(f) if !lib.is_null() => (unsafe { f(lib, name.as_ptr()) }) as usize,
            _ => 0,
        };
        slot.store(p, Release);
    }
    if !lib.is_null() {
        real_dlclose(lib);
    }
}

/// Ordinal of the calling thread's current context, or -1.
pub fn current_device() -> i32 {
    let Some(f) = helper(Helper::CtxGetDevice) else { return -1 };
    // SAFETY: `f` is the driver's cuCtxGetDevice, whose C signature this is.
    let f: unsafe extern "C" fn(*mut c_int) -> u32 = unsafe { std::mem::transmute(f) };
    let mut d: c_int = -1;
    // SAFETY: `d` is a valid out-parameter for the duration of the call.
    if unsafe { f(&mut d) } == 0 { d } else { -1 }
}

/// The driver's (free, total) for the current context, if it answers.
pub fn mem_info() -> Option<(u64, u64)> {
    let f = helper(Helper::MemGetInfo)?;
    // SAFETY: `f` is the driver's cuMemGetInfo_v2, whose C signature this is.
    let f: unsafe extern "C" fn(*mut usize, *mut usize) -> u32 = unsafe { std::mem::transmute(f) };
    let (mut free, mut total) = (0usize, 0usize);
    // SAFETY: both out-parameters are valid for the duration of the call.
    (unsafe { f(&mut free, &mut total) } == 0).then_some((free as u64, total as u64))
}

/// What the driver says about a device; parts it does not answer stay empty / zero.
pub struct DeviceDesc {
    pub name: Vec<u8>,
    pub total: u64,
    pub driver_version: i32,
    pub uuid: [u8; 16],
}

pub fn describe_device(dev: i32) -> DeviceDesc {
    let mut name = [0u8; 256];
    let mut name_len = 0;
    if let Some(f) = helper(Helper::DeviceGetName) {
        // SAFETY: `f` is the driver's cuDeviceGetName, whose C signature this is.
        let f: unsafe extern "C" fn(*mut c_char, c_int, c_int) -> u32 = unsafe { std::mem::transmute(f) };
        // SAFETY: the buffer holds len - 1 bytes plus the NUL we keep free.
        if unsafe { f(name.as_mut_ptr().cast(), name.len() as c_int - 1, dev) } == 0 {
            name_len = name.iter().position(|&b| b == 0).unwrap_or(0);
        }
    }
    let mut total = 0usize;
    if let Some(f) = helper(Helper::DeviceTotalMem) {
        // SAFETY: `f` is the driver's cuDeviceTotalMem_v2, whose C signature this is.
        let f: unsafe extern "C" fn(*mut usize, c_int) -> u32 = unsafe { std::mem::transmute(f) };
        // SAFETY: `total` is a valid out-parameter.
        if unsafe { f(&mut total, dev) } != 0 {
            total = 0;
        }
    }
    let mut version: c_int = 0;
    if let Some(f) = helper(Helper::DriverGetVersion) {
        // SAFETY: `f` is the driver's cuDriverGetVersion, whose C signature this is.
        let f: unsafe extern "C" fn(*mut c_int) -> u32 = unsafe { std::mem::transmute(f) };
        // SAFETY: `version` is a valid out-parameter.
        if unsafe { f(&mut version) } != 0 {
            version = 0;
        }
    }
    let mut uuid = [0u8; 16];
    if let Some(f) = helper(Helper::DeviceGetUuid) {
        // SAFETY: `f` is the driver's cuDeviceGetUuid (a CUuuid is 16 bytes).
        let f: unsafe extern "C" fn(*mut u8, c_int) -> u32 = unsafe { std::mem::transmute(f) };
        // SAFETY: `uuid` has room for the 16 bytes written.
        if unsafe { f(uuid.as_mut_ptr(), dev) } != 0 {
            uuid = [0; 16];
        }
    }
    DeviceDesc { name: name[..name_len].to_vec(), total: total as u64, driver_version: version, uuid }
}
