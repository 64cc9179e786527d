//! How the program finds the driver, and how we get in between.
//!
//! Three doors lead to driver functions: the exported symbols (programs linked with `-lcuda`,
//! see `hooks`), `dlsym` (JAX, anything that `dlopen`s libcuda), and `cuGetProcAddress[_v2]`
//! (cudart, hence ggml, PyTorch, cuBLAS). For the last two we let the real lookup run, then ask
//! `identity` whether the returned pointer is a function we record, and if so hand back our
//! wrapper, remembering the pointer the caller would have called. Caller version, flags and
//! `symbolStatus` are passed through untouched.
//!
//! A lookup made while its thread is already inside the shim is answered by the real lookup
//! alone, without our wrapper: from inside the driver it is the driver's own business; from a
//! signal handler that interrupted the shim it must not wait for our locks (it is counted in the
//! trace's Lost record).
//!
//! We also hook `dlclose`, only to count it: pointers cached before it may point into an object
//! that is gone.


use crate::driver::{self, DlsymFn};
use crate::hooks::{self, Hook};
use crate::identity;
use crate::modules;
use crate::recorder;
use crate::sync::{self, Where};
use crate::sys::{self, LinkMap};
use std::ffi::{c_char, c_int, c_void, CStr};

use vramtrace_trace::api::cu::{ERROR_NOT_INITIALIZED as CUDA_ERROR_NOT_INITIALIZED, SUCCESS as CUDA_SUCCESS};

/// Decides, before any stack frame of ours exists, whether a `dlsym` call concerns us. Names that
/// are not driver functions go straight to glibc by a tail jump, so glibc sees the program's own
/// return address and `RTLD_NEXT` keeps meaning "after the caller" for every other interposer.
extern "C" fn dlsym_pick(_handle: *mut c_void, name: *const c_char) -> usize {
    let real = driver::real_dlsym().map_or(0, |f| f as usize);
    if name.is_null() || real == 0 || sys::secure() {
        return real;
    }
    // SAFETY: a non-NULL `name` is the caller's NUL-terminated symbol name (dlsym's contract).
    let b = unsafe { CStr::from_ptr(name) }.to_bytes();
    if b.starts_with(b"cu") { 0 } else { real }
}

/// Our `dlsym`: a naked trampoline (see `dlsym_pick`), then `dlsym_hook` with the caller's return
/// address as third argument.
///
/// # Safety
/// Same contract as glibc's `dlsym`.
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

/// # Safety
/// Same contract as glibc's `dlsym`.
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

/// # Safety
/// Reached from `dlsym` with its arguments and the caller's return address.
unsafe extern "C" fn dlsym_hook(handle: *mut c_void, name: *const c_char, caller: *const c_void) -> *mut c_void {
    let Some(real) = driver::real_dlsym() else { return std::ptr::null_mut() };
    let lookup = || {
        if handle == libc::RTLD_NEXT {
            // SAFETY: the caller's own name, passed on under dlsym's contract.
            unsafe { next_after(real, caller, name) }
        } else {
            // SAFETY: the caller's own arguments, passed on under dlsym's contract.
            unsafe { real(handle, name) }
        }
    };
    match sync::enter() {
        Ok(inside) => {
            let p = inside.call_out(lookup);
            if p.is_null() {
                return p;
            }
            std::panic::catch_unwind(|| translate(p as usize) as *mut c_void).unwrap_or(p)
        }
        Err(Where::Driver) => lookup(),
        Err(_) => {
            recorder::count_lost_lookup();
            // No loader walk here: relative to the shim is close enough for a signal handler.
            // SAFETY: the caller's own arguments, passed on under dlsym's contract.
            unsafe { real(handle, name) }
        }
    }
}

/// `RTLD_NEXT` on behalf of `caller`: the first definition in an object loaded after the caller's.
/// Only reached for driver names, so the extra failed lookups cannot disturb malloc interposers.
///
/// # Safety
/// `name` is NUL-terminated; `caller` is any address.
unsafe fn next_after(real: DlsymFn, caller: *const c_void, name: *const c_char) -> *mut c_void {
    let mut map = owner_map(caller);
    if map.is_null() {
        // SAFETY: forwarded under dlsym's contract.
        return unsafe { real(libc::RTLD_NEXT, name) };
    }
    // SAFETY: `map` is a link map the loader handed us; its list stays valid while we walk it
    // (objects are only removed under the loader lock by dlclose, which the program does not
    // race with its own lookups).
    map = unsafe { (*map).l_next };
    while !map.is_null() {
        // A link map is not always a valid dlsym handle (the vDSO's has no search list): get a
        // real handle by name, and skip objects without one.
        // SAFETY: `map` is a live link map entry (see above).
        let lname = unsafe { (*map).l_name };
        // SAFETY: a non-NULL l_name is a NUL-terminated string.
        if !lname.is_null() && unsafe { *lname } != 0 {
            // SAFETY: NOLOAD only returns a reference to an object already loaded.
            let h = unsafe { libc::dlopen(lname, libc::RTLD_NOLOAD | libc::RTLD_LAZY) };
            if !h.is_null() {
                // SAFETY: `h` is live until the dlclose below; `name` is NUL-terminated.
                let p = unsafe { real(h, name) };
                driver::real_dlclose(h);
                // A handle's lookup also searches its dependencies; keep only definitions in `m`.
                if !p.is_null() && owner_map(p) == map {
                    return p;
                }
            }
        }
        // SAFETY: as above.
        map = unsafe { (*map).l_next };
    }
    std::ptr::null_mut()
}

fn owner_map(p: *const c_void) -> *mut LinkMap {
    // SAFETY: Dl_info is plain data; zeroed is a valid out-parameter.
    let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
    let mut map: *mut LinkMap = std::ptr::null_mut();
    // SAFETY: both out-parameters are valid; RTLD_DL_LINKMAP makes the last one a link map
    // pointer, which is what `map` is.
    let ok = unsafe { libc::dladdr1(p, &mut info, (&raw mut map).cast(), sys::RTLD_DL_LINKMAP) };
    if ok == 0 { std::ptr::null_mut() } else { map }
}

/// Given a pointer a lookup for a `cu*` name returned, returns what the caller should get: our
/// wrapper if the pointer is a function we record, else the pointer unchanged.
pub fn translate(p: usize) -> usize {
    if let Some(h) = exported_hook(p) {
        // The lookup found our export (RTLD_DEFAULT, or RTLD_NEXT from an interposer before us).
        // Without us it would have found the driver's — or nothing, if libcuda is not in the
        // global scope: then say nothing too, rather than hand out a wrapper with no driver.
        return if hooks::next_export(h) != 0 { p } else { 0 };
    }
    if modules::in_shim(p) {
        return p; // already ours: never bind to ourselves
    }
    let Some(h) = identity::identify(p) else { return p };
    match hooks::bind_lookup(h, p) {
        Ok(()) => lookup_wrapper(h),
        // The bound function's object was unloaded and the driver is back (elsewhere): rebind.
        Err(old) if modules::object_containing(old).is_none() && hooks::rebind_lookup(h, old, p) => lookup_wrapper(h),
        // A second, different implementation of the same function (two drivers, or an
        // interposer's wrapper): hand it back untouched rather than redirect the caller.
        Err(_) => p,
    }
}

fn exported_hook(p: usize) -> Option<Hook> {
    if p == cuGetProcAddress as *const () as usize {
        return Some(Hook::GetProcAddress);
    }
    if p == cuGetProcAddress_v2 as *const () as usize {
        return Some(Hook::GetProcAddressV2);
    }
    hooks::exported_hook(p)
}

fn lookup_wrapper(h: Hook) -> usize {
    match h {
        Hook::GetProcAddress => procaddr_v1_lookup as *const () as usize,
        Hook::GetProcAddressV2 => procaddr_v2_lookup as *const () as usize,
        h => hooks::lookup_wrappers()[h as usize],
    }
}

// ---- cuGetProcAddress --------------------------------------------------------------------------

type ProcV1 = unsafe extern "C" fn(*const c_char, *mut *mut c_void, c_int, u64) -> u32;
type ProcV2 = unsafe extern "C" fn(*const c_char, *mut *mut c_void, c_int, u64, *mut c_void) -> u32;

/// Runs the real lookup, then swaps the returned pointer for our wrapper if it is one we record.
///
/// # Safety
/// `pfn` is what the caller passed (NULL, or a writable pointer slot).
unsafe fn procaddr(real: usize, call: impl FnOnce(usize) -> u32, symbol: *const c_char, pfn: *mut *mut c_void) -> u32 {
    if real == 0 {
        return CUDA_ERROR_NOT_INITIALIZED;
    }
    let Some(inside) = sync::enter_hook(recorder::count_lost_lookup) else { return call(real) };
    let r = inside.call_out(|| call(real));
    // SAFETY: `pfn` is NULL-checked, and on success the driver stored a pointer in it.
    if r != CUDA_SUCCESS || symbol.is_null() || pfn.is_null() || unsafe { (*pfn).is_null() } {
        return r;
    }
    // SAFETY: `pfn` is a valid, non-NULL slot holding the driver's answer (checked above).
    let p = unsafe { *pfn } as usize;
    if let Ok(q) = std::panic::catch_unwind(|| translate(p)) {
        // SAFETY: as above; the slot is the caller's out-parameter.
        unsafe { *pfn = q as *mut c_void };
    }
    r
}

/// # Safety
/// Same contract as the driver's `cuGetProcAddress`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuGetProcAddress(symbol: *const c_char, pfn: *mut *mut c_void, ver: c_int, flags: u64) -> u32 {
    let real = hooks::next_export(Hook::GetProcAddress);
    // SAFETY: `real` is the driver's cuGetProcAddress; the arguments are the caller's.
    unsafe { procaddr(real, |p| std::mem::transmute::<usize, ProcV1>(p)(symbol, pfn, ver, flags), symbol, pfn) }
}

/// # Safety
/// Same contract as the driver's `cuGetProcAddress_v2`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuGetProcAddress_v2(symbol: *const c_char, pfn: *mut *mut c_void, ver: c_int, flags: u64, status: *mut c_void) -> u32 {
    let real = hooks::next_export(Hook::GetProcAddressV2);
    // SAFETY: `real` is the driver's cuGetProcAddress_v2; the arguments are the caller's.
    unsafe { procaddr(real, |p| std::mem::transmute::<usize, ProcV2>(p)(symbol, pfn, ver, flags, status), symbol, pfn) }
}

/// # Safety
/// Same contract as the driver's `cuGetProcAddress`.
unsafe extern "C" fn procaddr_v1_lookup(symbol: *const c_char, pfn: *mut *mut c_void, ver: c_int, flags: u64) -> u32 {
    let real = hooks::next_lookup(Hook::GetProcAddress);
    // SAFETY: `real` is the pointer a lookup returned for cuGetProcAddress.
    unsafe { procaddr(real, |p| std::mem::transmute::<usize, ProcV1>(p)(symbol, pfn, ver, flags), symbol, pfn) }
}

/// # Safety
/// Same contract as the driver's `cuGetProcAddress_v2`.
unsafe extern "C" fn procaddr_v2_lookup(symbol: *const c_char, pfn: *mut *mut c_void, ver: c_int, flags: u64, status: *mut c_void) -> u32 {
    let real = hooks::next_lookup(Hook::GetProcAddressV2);
    // SAFETY: `real` is the pointer a lookup returned for cuGetProcAddress_v2.
    unsafe { procaddr(real, |p| std::mem::transmute::<usize, ProcV2>(p)(symbol, pfn, ver, flags, status), symbol, pfn) }
}

// ---- dlclose -----------------------------------------------------------------------------------

/// Our `dlclose`: glibc's, then a new loader generation (see `driver`).
///
/// # Safety
/// Same contract as glibc's `dlclose`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dlclose(handle: *mut c_void) -> c_int {
    let r = driver::real_dlclose(handle);
    driver::bump_generation();
    r
}
