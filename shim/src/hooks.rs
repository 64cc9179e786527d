//! The hooked driver functions, declared once. Each line of `hooks!` gives the exact driver
//! symbol, its C signature and how its arguments fill an event; the macro generates the exported
//! wrapper (for `-lcuda` programs), the lookup wrapper (handed out by `dlsym`/`cuGetProcAddress`)
//! and the `Hook` index shared with the identity table. Results are plain `u32` rather than
//! cudarc's `CUresult` enum: a driver newer than our bindings may return codes the enum lacks,
//! and an out-of-range enum value would be undefined behaviour.
//!
//! A fill block only reads the call's arguments (and asks the driver for the current device);
//! whatever else an event needs is done in `after_fill`. That keeps the table testable: a unit
//! test runs every fill block and checks `trace::Api::fields()` against what it sets.

use crate::driver::{self, current_device as dev, mem_info};
use crate::sync;
use crate::{modules, recorder};
use cudarc::driver::sys::{
    CUcontext, CUctxCreateParams, CUdevice, CUdeviceptr, CUexecAffinityParam, CUmemAccessDesc,
    CUmemAllocationProp, CUmemGenericAllocationHandle, CUmemoryPool, CUstream,
};
use std::ffi::{c_int, c_uint, c_void, CStr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::*};
use vramtrace_trace::{Api, ApiKind, EventRec};

use vramtrace_trace::api::cu::{ERROR_NOT_INITIALIZED as CUDA_ERROR_NOT_INITIALIZED, SUCCESS as CUDA_SUCCESS};
const CU_MEM_LOCATION_TYPE_DEVICE: u32 = 1;

/// Reads an out-parameter the driver filled, tolerating NULL.
///
/// # Safety
/// `p` is NULL or points to a readable `T` (the driver wrote it when `r` is success).
unsafe fn out<T: Copy + Into<u64>>(p: *const T, r: u32) -> u64 {
    // SAFETY: non-NULL, and readable per the contract.
    if r == CUDA_SUCCESS && !p.is_null() { unsafe { (*p).into() } } else { 0 }
}

/// # Safety
/// As for [`out`].
unsafe fn out_ptr<T>(p: *const *mut T, r: u32) -> u64 {
    // SAFETY: non-NULL, and readable per the contract.
    if r == CUDA_SUCCESS && !p.is_null() { unsafe { *p as u64 } } else { 0 }
}

/// Reads a `CUmemLocation` as raw integers: the enum field may hold values our bindings lack.
///
/// # Safety
/// `loc` is NULL or points to a readable `CUmemLocation`.
unsafe fn location(loc: *const cudarc::driver::sys::CUmemLocation) -> (u32, i32) {
    if loc.is_null() {
        return (0, -1);
    }
    // SAFETY: `loc` is readable; the enum field is read as the u32 it is in C, never as the
    // Rust enum (whose invalid values would be undefined behaviour).
    unsafe { (*(&raw const (*loc).type_).cast::<u32>(), (*loc).id) }
}

/// The common body of every wrapper: call through, then record. A call arriving on a thread that
/// is already inside the shim passes through unrecorded (see `sync`).
#[inline(always)]
fn wrap(api: Api, real: usize, call: impl FnOnce(usize) -> u32, fill: impl FnOnce(&mut EventRec, u32)) -> u32 {
    if real == 0 {
        return CUDA_ERROR_NOT_INITIALIZED;
    }
    let Some(inside) = sync::enter_hook(recorder::count_lost_call) else { return call(real) };
    let forks = recorder::forks();
    let r = inside.call_out(|| call(real));
    if recorder::forks() != forks {
        // The process forked during the call (inside the driver, or from a signal handler), and
        // this is the child: the call is the parent's, and the parent records it.
        return r;
    }
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mut e = EventRec { api: api as u16, result: r, device: -1, ..Default::default() };
        fill(&mut e, r);
        after_fill(api, &mut e, r);
        recorder::record(&mut e);
    }));
    drop(inside);
    r
}

/// What the driver is asked around an event, beyond its own arguments.
fn after_fill(api: Api, e: &mut EventRec, r: u32) {
    if r == CUDA_SUCCESS && api.kind() == ApiKind::CtxCreate {
        // A fresh context is current on this thread: the driver's free/total now tells what the
        // runtime took before any allocation (the baseline for "invisible" memory). Retaining
        // the primary context does not make it current.
        if api != Api::DevicePrimaryCtxRetain {
            if let Some((free, total)) = mem_info() {
                (e.free, e.total) = (free, total);
            }
        }
        recorder::describe_device(e.device);
    }
    if r != CUDA_SUCCESS && api.allocates() && e.free == 0 {
        // What the driver says is free at the moment of a failure: the core of an OOM post-mortem.
        if let Some((free, total)) = mem_info() {
            (e.free, e.total) = (free, total);
        }
    }
}

/// One exported wrapper. `lookup_only` functions get no exported name: a driver too old to have
/// them must not seem to have them (a program's weak reference or `dlsym` would find ours); they
/// are recorded through the lookup doors only.
macro_rules! export_fn {
    ([] $api:ident $name:ident ($($arg:ident : $ty:ty),*) |$e:ident, $r:ident| $fill:block) => {
        /// # Safety
        /// Same contract as the driver function of this name.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn $name($($arg: $ty),*) -> u32 {
            export_body!($api $name ($($arg : $ty),*) |$e, $r| $fill)
        }
    };
    ([lookup_only] $api:ident $name:ident ($($arg:ident : $ty:ty),*) |$e:ident, $r:ident| $fill:block) => {
        /// # Safety
        /// Same contract as the driver function of this name.
        pub unsafe extern "C" fn $name($($arg: $ty),*) -> u32 {
            export_body!($api $name ($($arg : $ty),*) |$e, $r| $fill)
        }
    };
}

macro_rules! export_body {
    ($api:ident $name:ident ($($arg:ident : $ty:ty),*) |$e:ident, $r:ident| $fill:block) => {{
        type F = unsafe extern "C" fn($($ty),*) -> u32;
        wrap(Api::$api, next_export(Hook::$api),
            // SAFETY: the pointer is the next definition of this very symbol (or what a lookup
            // returned for it), so it has this C signature; the arguments are the caller's,
            // passed on unchanged.
            |p| unsafe { std::mem::transmute::<usize, F>(p)($($arg),*) },
            // SAFETY: the fill block reads only what the driver's contract makes readable:
            // out-parameters after success, descriptors the caller passed.
            #[allow(unused_unsafe)] |$e, $r| unsafe { $fill })
    }};
}

macro_rules! hooks {
    ($( $([$only:ident])? $api:ident = fn $name:ident ( $($arg:ident : $ty:ty),* $(,)? ) |$e:ident, $r:ident| $fill:block )*) => {
        /// Every hooked function: the recorded ones (same order and names as `trace::Api`), then
        /// the two lookup entry points (whose wrappers live in `resolve`).
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        #[repr(usize)]
        pub enum Hook { $($api,)* GetProcAddress, GetProcAddressV2 }

        const ALL_HOOKS: &[Hook] = &[$(Hook::$api,)* Hook::GetProcAddress, Hook::GetProcAddressV2];
        pub const N_HOOKS: usize = ALL_HOOKS.len();

        impl Hook {
            pub fn from_index(i: usize) -> Option<Hook> {
                ALL_HOOKS.get(i).copied()
            }
            pub fn symbol(self) -> &'static CStr {
                match self {
                    $(Hook::$api => {
                        const S: &CStr = match CStr::from_bytes_with_nul(concat!(stringify!($name), "\0").as_bytes()) {
                            Ok(s) => s,
                            Err(_) => panic!("hook name"),
                        };
                        S
                    })*
                    Hook::GetProcAddress => c"cuGetProcAddress",
                    Hook::GetProcAddressV2 => c"cuGetProcAddress_v2",
                }
            }
        }

        /// Exported under the driver's names: what `-lcuda` programs bind to.
        #[allow(non_snake_case)]
        pub mod exported {
            use super::*;
            $(
                export_fn!([$($only)?] $api $name ($($arg : $ty),*) |$e, $r| $fill);
            )*
        }

        /// Handed out by `dlsym` / `cuGetProcAddress` in place of the real pointer.
        #[allow(non_snake_case)]
        pub mod via_lookup {
            use super::*;
            $(
                /// # Safety
                /// Same contract as the driver function it stands for.
                pub unsafe extern "C" fn $name($($arg: $ty),*) -> u32 {
                    type F = unsafe extern "C" fn($($ty),*) -> u32;
                    wrap(Api::$api, next_lookup(Hook::$api),
                        // SAFETY: as for the exported wrapper: the lookup's answer for this name.
                        |p| unsafe { std::mem::transmute::<usize, F>(p)($($arg),*) },
                        // SAFETY: as for the exported wrapper.
                        #[allow(unused_unsafe)] |$e, $r| unsafe { $fill })
                }
            )*
        }

        /// The exported wrappers, indexed like `Hook` (recorded functions only).
        pub fn export_wrappers() -> [usize; Api::ALL.len()] {
            [$(exported::$name as *const () as usize,)*]
        }
        /// The lookup wrappers, indexed like `Hook` (recorded functions only).
        pub fn lookup_wrappers() -> [usize; Api::ALL.len()] {
            [$(via_lookup::$name as *const () as usize,)*]
        }

        /// Runs each recorded function's fill block as after a successful call with non-zero
        /// arguments: pointers to a buffer of non-zero bytes, integers 1.
        #[cfg(test)]
        fn fill_with_dummies(h: Hook) -> Option<EventRec> {
            let mut buf = [0x0101_0101_0101_0101u64; 64];
            let b: *mut u8 = buf.as_mut_ptr().cast();
            let _ = b;
            match h {
                $(Hook::$api => {
                    $(let $arg: $ty = tests::Dummy::dummy(b);)*
                    let mut ev = EventRec { device: -1, ..Default::default() };
                    let $e = &mut ev;
                    let $r = CUDA_SUCCESS;
                    // SAFETY: every pointer argument points into `buf`, which is larger than
                    // any structure a fill block reads.
                    #[allow(unused_unsafe)] unsafe { $fill }
                    Some(ev)
                })*
                _ => None,
            }
        }
    };
}

/// Real pointers bound to each hook, per route. Exported wrappers forward to what `RTLD_NEXT`
/// finds after us; lookup wrappers forward to the pointer the lookup returned. They may differ
/// when another interposer is stacked with us, so they are kept apart.
static NEXT_EXPORT: [AtomicUsize; N_HOOKS] = [const { AtomicUsize::new(0) }; N_HOOKS];
/// The loader generation (+1) each `NEXT_EXPORT` entry was resolved in.
static NEXT_EXPORT_GEN: [AtomicU64; N_HOOKS] = [const { AtomicU64::new(0) }; N_HOOKS];
static NEXT_LOOKUP: [AtomicUsize; N_HOOKS] = [const { AtomicUsize::new(0) }; N_HOOKS];

/// `RTLD_NEXT` from the shim, resolved once per hook and again after a `dlclose` (the driver
/// may have gone, or come back elsewhere).
#[inline]
pub fn next_export(h: Hook) -> usize {
    let i = h as usize;
    let gen = driver::generation() + 1;
    let p = NEXT_EXPORT[i].load(Acquire);
    if p != 0 && NEXT_EXPORT_GEN[i].load(Acquire) == gen {
        return p;
    }
    let p = driver::next_symbol(h.symbol());
    // Never bind to ourselves: forwarding to our own wrapper would recurse.
    if p == 0 || modules::in_shim(p) {
        return 0;
    }
    NEXT_EXPORT[i].store(p, Release);
    NEXT_EXPORT_GEN[i].store(gen, Release);
    p
}

pub fn next_lookup(h: Hook) -> usize {
    NEXT_LOOKUP[h as usize].load(Acquire)
}

/// Binds the lookup route of `h` to the real pointer `p`, unless it is bound to another
/// one (`Err(current)`).
pub fn bind_lookup(h: Hook, p: usize) -> Result<(), usize> {
    match NEXT_LOOKUP[h as usize].compare_exchange(0, p, AcqRel, Acquire) {
        Ok(_) => Ok(()),
        Err(cur) if cur == p => Ok(()),
        Err(cur) => Err(cur),
    }
}

/// Rebinds the lookup route of `h` from `old` (whose object was unloaded) to `p`.
pub fn rebind_lookup(h: Hook, old: usize, p: usize) -> bool {
    let r = NEXT_LOOKUP[h as usize].compare_exchange(old, p, AcqRel, Acquire);
    r.is_ok() || r == Err(p)
}

/// The hook whose exported wrapper `p` is, if it is one of the recorded functions'.
pub fn exported_hook(p: usize) -> Option<Hook> {
    export_wrappers().iter().position(|&w| w == p).and_then(Hook::from_index)
}

hooks! {
    MemAlloc = fn cuMemAlloc_v2(dptr: *mut CUdeviceptr, size: usize) |e, r| {
        e.size = size as u64; e.ptr = out(dptr, r); e.device = dev();
    }
    MemAllocPitch = fn cuMemAllocPitch_v2(dptr: *mut CUdeviceptr, pitch: *mut usize, width: usize, height: usize, elem: c_uint) |e, r| {
        e.offset = out(pitch.cast::<u64>(), r);
        e.size = if e.offset != 0 { e.offset * height as u64 } else { (width * height) as u64 };
        e.ptr = out(dptr, r); e.flags = elem as u64; e.device = dev();
    }
    MemAllocManaged = fn cuMemAllocManaged(dptr: *mut CUdeviceptr, size: usize, flags: c_uint) |e, r| {
        e.size = size as u64; e.ptr = out(dptr, r); e.flags = flags as u64; e.device = dev();
    }
    MemFree = fn cuMemFree_v2(dptr: CUdeviceptr) |e, _r| {
        e.ptr = dptr; e.device = dev();
    }
    MemAllocAsync = fn cuMemAllocAsync(dptr: *mut CUdeviceptr, size: usize, stream: CUstream) |e, r| {
        e.size = size as u64; e.ptr = out(dptr, r); e.stream = stream as u64; e.device = dev();
    }
    MemAllocAsyncPtsz = fn cuMemAllocAsync_ptsz(dptr: *mut CUdeviceptr, size: usize, stream: CUstream) |e, r| {
        e.size = size as u64; e.ptr = out(dptr, r); e.stream = stream as u64; e.device = dev();
    }
    MemAllocFromPoolAsync = fn cuMemAllocFromPoolAsync(dptr: *mut CUdeviceptr, size: usize, pool: CUmemoryPool, stream: CUstream) |e, r| {
        e.size = size as u64; e.ptr = out(dptr, r); e.handle = pool as u64; e.stream = stream as u64; e.device = dev();
    }
    MemAllocFromPoolAsyncPtsz = fn cuMemAllocFromPoolAsync_ptsz(dptr: *mut CUdeviceptr, size: usize, pool: CUmemoryPool, stream: CUstream) |e, r| {
        e.size = size as u64; e.ptr = out(dptr, r); e.handle = pool as u64; e.stream = stream as u64; e.device = dev();
    }
    MemFreeAsync = fn cuMemFreeAsync(dptr: CUdeviceptr, stream: CUstream) |e, _r| {
        e.ptr = dptr; e.stream = stream as u64; e.device = dev();
    }
    MemFreeAsyncPtsz = fn cuMemFreeAsync_ptsz(dptr: CUdeviceptr, stream: CUstream) |e, _r| {
        e.ptr = dptr; e.stream = stream as u64; e.device = dev();
    }
    MemAddressReserve = fn cuMemAddressReserve(ptr: *mut CUdeviceptr, size: usize, alignment: usize, addr: CUdeviceptr, flags: u64) |e, r| {
        e.ptr = out(ptr, r); e.size = size as u64; e.offset = alignment as u64; e.handle = addr; e.flags = flags; e.device = dev();
    }
    MemAddressFree = fn cuMemAddressFree(ptr: CUdeviceptr, size: usize) |e, _r| {
        e.ptr = ptr; e.size = size as u64; e.device = dev();
    }
    MemCreate = fn cuMemCreate(handle: *mut CUmemGenericAllocationHandle, size: usize, prop: *const CUmemAllocationProp, flags: u64) |e, r| {
        e.handle = out(handle, r); e.size = size as u64; e.flags = flags;
        let (ty, id) = if prop.is_null() { (0, -1) } else { location(&raw const (*prop).location) };
        e.device = if ty == CU_MEM_LOCATION_TYPE_DEVICE { id } else { -1 };
    }
    MemRelease = fn cuMemRelease(handle: CUmemGenericAllocationHandle) |e, _r| {
        e.handle = handle; e.device = dev();
    }
    MemMap = fn cuMemMap(ptr: CUdeviceptr, size: usize, offset: usize, handle: CUmemGenericAllocationHandle, flags: u64) |e, _r| {
        e.ptr = ptr; e.size = size as u64; e.offset = offset as u64; e.handle = handle; e.flags = flags; e.device = dev();
    }
    MemUnmap = fn cuMemUnmap(ptr: CUdeviceptr, size: usize) |e, _r| {
        e.ptr = ptr; e.size = size as u64; e.device = dev();
    }
    MemSetAccess = fn cuMemSetAccess(ptr: CUdeviceptr, size: usize, desc: *const CUmemAccessDesc, count: usize) |e, _r| {
        e.ptr = ptr; e.size = size as u64; e.handle = count as u64;
        if !desc.is_null() && count > 0 {
            let (ty, id) = location(&raw const (*desc).location);
            e.device = if ty == CU_MEM_LOCATION_TYPE_DEVICE { id } else { -1 };
            e.flags = *(&raw const (*desc).flags).cast::<u32>() as u64;
        }
    }
    MemHostAlloc = fn cuMemHostAlloc(pp: *mut *mut c_void, size: usize, flags: c_uint) |e, r| {
        e.ptr = out_ptr(pp, r); e.size = size as u64; e.flags = flags as u64;
    }
    MemAllocHost = fn cuMemAllocHost_v2(pp: *mut *mut c_void, size: usize) |e, r| {
        e.ptr = out_ptr(pp, r); e.size = size as u64;
    }
    MemFreeHost = fn cuMemFreeHost(p: *mut c_void) |e, _r| {
        e.ptr = p as u64;
    }
    MemHostRegister = fn cuMemHostRegister_v2(p: *mut c_void, size: usize, flags: c_uint) |e, _r| {
        e.ptr = p as u64; e.size = size as u64; e.flags = flags as u64;
    }
    MemHostUnregister = fn cuMemHostUnregister(p: *mut c_void) |e, _r| {
        e.ptr = p as u64;
    }
    MemGetInfo = fn cuMemGetInfo_v2(free: *mut usize, total: *mut usize) |e, r| {
        e.free = out(free.cast::<u64>(), r); e.total = out(total.cast::<u64>(), r); e.device = dev();
    }
    MemPoolTrimTo = fn cuMemPoolTrimTo(pool: CUmemoryPool, keep: usize) |e, _r| {
        e.handle = pool as u64; e.size = keep as u64; e.device = dev();
    }
    CtxCreate = fn cuCtxCreate_v2(ctx: *mut CUcontext, flags: c_uint, device: CUdevice) |e, r| {
        e.handle = out_ptr(ctx, r); e.flags = flags as u64; e.device = device;
    }
    CtxCreateV3 = fn cuCtxCreate_v3(ctx: *mut CUcontext, params: *mut CUexecAffinityParam, n: c_int, flags: c_uint, device: CUdevice) |e, r| {
        let _ = (params, n);
        e.handle = out_ptr(ctx, r); e.flags = flags as u64; e.device = device;
    }
    // CUDA 12.5: drivers before it lack the function, so it must not be exported.
    [lookup_only] CtxCreateV4 = fn cuCtxCreate_v4(ctx: *mut CUcontext, params: *mut CUctxCreateParams, flags: c_uint, device: CUdevice) |e, r| {
        let _ = params;
        e.handle = out_ptr(ctx, r); e.flags = flags as u64; e.device = device;
    }
    CtxDestroy = fn cuCtxDestroy_v2(ctx: CUcontext) |e, _r| {
        e.handle = ctx as u64;
    }
    DevicePrimaryCtxRetain = fn cuDevicePrimaryCtxRetain(ctx: *mut CUcontext, device: CUdevice) |e, r| {
        e.handle = out_ptr(ctx, r); e.device = device;
    }
    DevicePrimaryCtxRelease = fn cuDevicePrimaryCtxRelease_v2(device: CUdevice) |e, _r| {
        e.device = device;
    }
    DevicePrimaryCtxReset = fn cuDevicePrimaryCtxReset_v2(device: CUdevice) |e, _r| {
        e.device = device;
    }
    DevicePrimaryCtxReleaseV1 = fn cuDevicePrimaryCtxRelease(device: CUdevice) |e, _r| {
        e.device = device;
    }
    DevicePrimaryCtxResetV1 = fn cuDevicePrimaryCtxReset(device: CUdevice) |e, _r| {
        e.device = device;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A non-zero stand-in for each argument type of the table.
    pub trait Dummy {
        fn dummy(buf: *mut u8) -> Self;
    }
    impl<T> Dummy for *mut T {
        fn dummy(buf: *mut u8) -> Self {
            buf.cast()
        }
    }
    impl<T> Dummy for *const T {
        fn dummy(buf: *mut u8) -> Self {
            buf.cast_const().cast()
        }
    }
    macro_rules! one {
        ($($t:ty)*) => { $(impl Dummy for $t { fn dummy(_: *mut u8) -> Self { 1 } })* };
    }
    one!(usize u64 u32 i32);

    #[test]
    fn hook_table_matches_the_trace_api_table() {
        for (i, api) in Api::ALL.iter().enumerate() {
            assert_eq!(Hook::from_index(i).unwrap().symbol().to_str().unwrap(), api.name());
        }
        assert_eq!(N_HOOKS, Api::ALL.len() + 2);
        let w = export_wrappers();
        let l = lookup_wrappers();
        assert!(w.iter().chain(l.iter()).all(|&p| p != 0));
        assert!(w.iter().all(|p| !l.contains(p)), "export and lookup wrappers are distinct");
    }

    /// `Api::fields()` (what readers show per function) says exactly which fields each hook's
    /// fill block sets from the call's arguments.
    #[test]
    fn api_fields_match_what_each_hook_fills() {
        for (i, api) in Api::ALL.iter().enumerate() {
            let e = fill_with_dummies(Hook::from_index(i).unwrap()).unwrap();
            let filled = vramtrace_trace::Fields {
                size: e.size != 0,
                ptr: e.ptr != 0,
                handle: e.handle != 0,
                offset: e.offset != 0,
                flags: e.flags != 0,
                stream: e.stream != 0,
            };
            assert_eq!(filled, api.fields(), "{}", api.name());
        }
        assert!(fill_with_dummies(Hook::GetProcAddress).is_none());
    }
}
