//! How the program finds the driver, and how we get in between.
//!
//! Three doors lead to driver functions: the exported symbols (programs linked with `-lcuda`),
//! `dlsym` (JAX, anything that `dlopen`s libcuda), and `cuGetProcAddress[_v2]` (cudart, hence ggml,
//! PyTorch, cuBLAS). For the last two we let the real lookup run, then decide by the *identity of
//! the returned pointer* whether it is a function we record — this covers `_v2`, `_ptsz` and
//! per-version variants without re-implementing the driver's name resolution — and hand back our
//! wrapper, remembering the pointer the caller would have called. Caller version, flags and
//! `symbolStatus` are passed through untouched.

use crate::hooks::{Hook, N_HOOKS};
use crate::sys::LinkMap;
use std::ffi::{c_char, c_int, c_void, CStr};
use std::sync::atomic::{AtomicUsize, Ordering::*};

type DlsymFn = unsafe extern "C" fn(*mut c_void, *const c_char) -> *mut c_void;

static REAL_DLSYM: AtomicUsize = AtomicUsize::new(0);

/// glibc's own `dlsym`, found with `dlvsym` (which we do not hook). 2.34 moved it out of libdl.
pub fn real_dlsym() -> Option<DlsymFn> {
    let mut p = REAL_DLSYM.load(Relaxed);
    if p == 0 {
        for ver in [c"GLIBC_2.34", c"GLIBC_2.2.5", c"GLIBC_2.17"] {
            p = unsafe { libc::dlvsym(libc::RTLD_NEXT, c"dlsym".as_ptr(), ver.as_ptr()) } as usize;
            if p != 0 {
                break;
            }
        }
        REAL_DLSYM.store(p, Relaxed);
    }
    (p != 0).then(|| unsafe { std::mem::transmute::<usize, DlsymFn>(p) })
}

/// Decides, before any stack frame of ours exists, whether a `dlsym` call concerns us. Names that
/// are not driver functions go straight to glibc by a tail jump, so glibc sees the program's own
/// return address and `RTLD_NEXT` keeps meaning "after the caller" for every other interposer.
extern "C" fn dlsym_pick(_handle: *mut c_void, name: *const c_char) -> usize {
    let real = real_dlsym().map_or(0, |f| f as usize);
    if name.is_null() || real == 0 {
        return real;
    }
    let b = unsafe { CStr::from_ptr(name) }.to_bytes();
    if b.starts_with(b"cu") { 0 } else { real }
}

/// Our `dlsym`: a naked trampoline (see `dlsym_pick`), then `dlsym_hook` with the caller's return
/// address as third argument.
#[cfg(target_arch = "x86_64")]
#[unsafe(naked)]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dlsym(handle: *mut c_void, name: *const c_char) -> *mut c_void {
    core::arch::naked_asm!(
        "push rdi",
        "push rsi",
        "sub rsp, 8",
        "call {pick}",
        "add rsp, 8",
        "pop rsi",
        "pop rdi",
        "test rax, rax",
        "jz 2f",
        "jmp rax",
        "2:",
        "mov rdx, [rsp]",
        "jmp {hook}",
        pick = sym dlsym_pick,
        hook = sym dlsym_hook,
    )
}

#[cfg(target_arch = "aarch64")]
#[unsafe(naked)]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dlsym(handle: *mut c_void, name: *const c_char) -> *mut c_void {
    core::arch::naked_asm!(
        "stp x29, x30, [sp, #-32]!",
        "stp x0, x1, [sp, #16]",
        "bl {pick}",
        "mov x16, x0",
        "ldp x0, x1, [sp, #16]",
        "ldp x29, x30, [sp], #32",
        "cbz x16, 2f",
        "br x16",
        "2:",
        "mov x2, x30",
        "b {hook}",
        pick = sym dlsym_pick,
        hook = sym dlsym_hook,
    )
}

unsafe extern "C" fn dlsym_hook(handle: *mut c_void, name: *const c_char, caller: *const c_void) -> *mut c_void {
    let Some(real) = real_dlsym() else { return std::ptr::null_mut() };
    let p = if handle == libc::RTLD_NEXT { unsafe { next_after(real, caller, name) } } else { unsafe { real(handle, name) } };
    if p.is_null() {
        return p;
    }
    std::panic::catch_unwind(|| translate(p as usize) as *mut c_void).unwrap_or(p)
}

/// `RTLD_NEXT` on behalf of `caller`: the first definition in an object loaded after the caller's.
/// Only reached for driver names, so the extra failed lookups cannot disturb malloc interposers.
unsafe fn next_after(real: DlsymFn, caller: *const c_void, name: *const c_char) -> *mut c_void {
    let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
    let mut map: *mut LinkMap = std::ptr::null_mut();
    let ok = unsafe { libc::dladdr1(caller, &mut info, (&raw mut map).cast(), crate::sys::RTLD_DL_LINKMAP) };
    if ok == 0 || map.is_null() {
        return unsafe { real(libc::RTLD_NEXT, name) };
    }
    let mut m = unsafe { (*map).l_next };
    while !m.is_null() {
        // A link map is not always a valid dlsym handle (the vDSO's has no search list): get a
        // real handle by name, and skip objects without one.
        let lname = unsafe { (*m).l_name };
        if !lname.is_null() && unsafe { *lname } != 0 {
            let h = unsafe { libc::dlopen(lname, libc::RTLD_NOLOAD | libc::RTLD_LAZY) };
            if !h.is_null() {
                let p = unsafe { real(h, name) };
                unsafe { libc::dlclose(h) };
                // A handle's lookup also searches its dependencies; keep only definitions in `m`.
                if !p.is_null() && owner_map(p) == m {
                    return p;
                }
            }
        }
        m = unsafe { (*m).l_next };
    }
    std::ptr::null_mut()
}

fn owner_map(p: *mut c_void) -> *mut LinkMap {
    let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
    let mut map: *mut LinkMap = std::ptr::null_mut();
    let ok = unsafe { libc::dladdr1(p, &mut info, (&raw mut map).cast(), crate::sys::RTLD_DL_LINKMAP) };
    if ok == 0 { std::ptr::null_mut() } else { map }
}

// ---- identity table ---------------------------------------------------------------------------

/// Real pointers bound to each hook, per route. Exported wrappers forward to what `RTLD_NEXT`
/// finds after us; lookup wrappers forward to the pointer the lookup returned. They may differ
/// when another interposer is stacked with us, so they are kept apart.
pub static NEXT_EXPORT: [AtomicUsize; N_HOOKS] = [const { AtomicUsize::new(0) }; N_HOOKS];
pub static NEXT_LOOKUP: [AtomicUsize; N_HOOKS] = [const { AtomicUsize::new(0) }; N_HOOKS];

/// `RTLD_NEXT` from the shim, resolved once per hook.
pub fn next_export(h: Hook) -> usize {
    let slot = &NEXT_EXPORT[h as usize];
    let p = slot.load(Acquire);
    if p != 0 {
        return p;
    }
    let Some(real) = real_dlsym() else { return 0 };
    let p = unsafe { real(libc::RTLD_NEXT, h.symbol().as_ptr()) } as usize;
    if p != 0 && !crate::hooks::is_wrapper(p) {
        slot.store(p, Release);
        p
    } else {
        0
    }
}

pub fn next_lookup(h: Hook) -> usize {
    NEXT_LOOKUP[h as usize].load(Acquire)
}

struct Identity {
    /// (real pointer, hook) pairs found so far.
    known: [(usize, u8); 512],
    n: usize,
    /// Load bases of the objects whose symbols are already in `known`.
    objects: [usize; 32],
    n_objects: usize,
}

pub static ID_LOCK: crate::recorder::Lock = crate::recorder::Lock::new();
static mut IDENTITY: Identity = Identity { known: [(0, 0); 512], n: 0, objects: [0; 32], n_objects: 0 };

/// Given a pointer a lookup for a `cu*` name returned, returns what the caller should get: our
/// wrapper if the pointer is a function we record, else the pointer unchanged.
pub fn translate(p: usize) -> usize {
    if let Some(h) = crate::hooks::exported_hook(p) {
        // The lookup found our export (RTLD_DEFAULT, or RTLD_NEXT from an interposer before us).
        // Without us it would have found the driver's — or nothing, if libcuda is not in the
        // global scope: then say nothing too, rather than hand out a wrapper with no driver.
        return if next_export(h) != 0 { p } else { 0 };
    }
    if crate::hooks::is_wrapper(p) {
        return p; // already ours: never bind to ourselves
    }
    let Some(h) = identify(p) else { return p };
    let slot = &NEXT_LOOKUP[h as usize];
    match slot.compare_exchange(0, p, AcqRel, Acquire) {
        Ok(_) => crate::hooks::lookup_wrapper(h),
        Err(cur) if cur == p => crate::hooks::lookup_wrapper(h),
        // A second, different implementation of the same function (two drivers, or an
        // interposer's wrapper): hand it back untouched rather than redirect the caller.
        Err(_) => p,
    }
}

fn identify(p: usize) -> Option<Hook> {
    crate::recorder::install_fork_handlers();
    let find = |id: &Identity| id.known[..id.n].iter().find(|k| k.0 == p).and_then(|k| Hook::from_index(k.1 as usize));
    {
        let _g = ID_LOCK.lock();
        if let Some(h) = find(unsafe { &*(&raw const IDENTITY) }) {
            return Some(h);
        }
    }
    // Index the object holding `p`: resolve every hooked name in it, so whatever it defines is
    // known by address. Done without our lock held: `dlopen` takes the loader lock, which a thread
    // running a library constructor may hold while it calls into us.
    let obj = crate::modules::object_containing(p)?;
    {
        let _g = ID_LOCK.lock();
        let id = unsafe { &*(&raw const IDENTITY) };
        if id.objects[..id.n_objects].contains(&obj.base) {
            return None; // indexed already, and `p` is none of ours
        }
    }
    let name = if obj.is_main { std::ptr::null() } else { obj.name.as_ptr() };
    let handle = unsafe { libc::dlopen(name, libc::RTLD_NOLOAD | libc::RTLD_LAZY) };
    if handle.is_null() {
        return None;
    }
    let real = real_dlsym()?;
    let mut found = [(0usize, 0u8); N_HOOKS];
    let mut n = 0;
    for (i, slot) in found.iter_mut().enumerate() {
        let q = unsafe { real(handle, Hook::from_index(i)?.symbol().as_ptr()) } as usize;
        if q != 0 && !crate::hooks::is_wrapper(q) {
            *slot = (q, i as u8);
            n += 1;
        }
    }
    unsafe { libc::dlclose(handle) };
    let _g = ID_LOCK.lock();
    let id = unsafe { &mut *(&raw mut IDENTITY) };
    if !id.objects[..id.n_objects].contains(&obj.base) && id.n_objects < id.objects.len() && id.n + n <= id.known.len() {
        id.objects[id.n_objects] = obj.base;
        id.n_objects += 1;
        for &k in found.iter().filter(|k| k.0 != 0) {
            id.known[id.n] = k;
            id.n += 1;
        }
    }
    find(id)
}

// ---- helper driver calls ------------------------------------------------------------------------

/// Driver functions the shim itself calls (device of the current context, free/total, device
/// descriptions), resolved from libcuda directly, however the program loaded it (cudart loads it
/// `RTLD_LOCAL`). Our own calls happen inside a hook, so they are never recorded.
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

static LIBCUDA: AtomicUsize = AtomicUsize::new(0);
static HELPERS: [AtomicUsize; 6] = [const { AtomicUsize::new(0) }; 6];

fn helper(h: Helper) -> Option<usize> {
    let p = HELPERS[h as usize].load(Acquire);
    if p != 0 {
        return Some(p);
    }
    let mut lib = LIBCUDA.load(Acquire);
    if lib == 0 {
        lib = unsafe { libc::dlopen(c"libcuda.so.1".as_ptr(), libc::RTLD_NOLOAD | libc::RTLD_LAZY) } as usize;
        if lib == 0 {
            return None;
        }
        LIBCUDA.store(lib, Release);
    }
    let p = unsafe { real_dlsym()?(lib as *mut c_void, HELPER_NAMES[h as usize].as_ptr()) } as usize;
    HELPERS[h as usize].store(p, Release);
    (p != 0).then_some(p)
}

/// Ordinal of the calling thread's current context, or -1.
pub fn current_device() -> i32 {
    let Some(f) = helper(Helper::CtxGetDevice) else { return -1 };
    let f: unsafe extern "C" fn(*mut c_int) -> u32 = unsafe { std::mem::transmute(f) };
    let mut d: c_int = -1;
    if unsafe { f(&mut d) } == 0 { d } else { -1 }
}

/// The driver's (free, total) for the current context, if it answers.
pub fn mem_info() -> Option<(u64, u64)> {
    let f = helper(Helper::MemGetInfo)?;
    let f: unsafe extern "C" fn(*mut usize, *mut usize) -> u32 = unsafe { std::mem::transmute(f) };
    let (mut free, mut total) = (0usize, 0usize);
    (unsafe { f(&mut free, &mut total) } == 0).then_some((free as u64, total as u64))
}

/// What the driver says about a device: (name, total bytes, driver version, uuid); parts it does
/// not answer stay empty / zero.
pub fn describe_device(dev: i32) -> (Vec<u8>, u64, i32, [u8; 16]) {
    let mut name = [0u8; 256];
    let mut name_len = 0;
    if let Some(f) = helper(Helper::DeviceGetName) {
        let f: unsafe extern "C" fn(*mut c_char, c_int, c_int) -> u32 = unsafe { std::mem::transmute(f) };
        if unsafe { f(name.as_mut_ptr().cast(), name.len() as c_int - 1, dev) } == 0 {
            name_len = name.iter().position(|&b| b == 0).unwrap_or(0);
        }
    }
    let mut total = 0usize;
    if let Some(f) = helper(Helper::DeviceTotalMem) {
        let f: unsafe extern "C" fn(*mut usize, c_int) -> u32 = unsafe { std::mem::transmute(f) };
        if unsafe { f(&mut total, dev) } != 0 {
            total = 0;
        }
    }
    let mut version: c_int = 0;
    if let Some(f) = helper(Helper::DriverGetVersion) {
        let f: unsafe extern "C" fn(*mut c_int) -> u32 = unsafe { std::mem::transmute(f) };
        if unsafe { f(&mut version) } != 0 {
            version = 0;
        }
    }
    let mut uuid = [0u8; 16];
    if let Some(f) = helper(Helper::DeviceGetUuid) {
        let f: unsafe extern "C" fn(*mut u8, c_int) -> u32 = unsafe { std::mem::transmute(f) };
        if unsafe { f(uuid.as_mut_ptr(), dev) } != 0 {
            uuid = [0; 16];
        }
    }
    (name[..name_len].to_vec(), total as u64, version, uuid)
}
