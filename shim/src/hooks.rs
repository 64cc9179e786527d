//! The hooked driver functions, declared once. Each line of `hooks!` gives the exact driver
//! symbol, its C signature and how its arguments fill an event; the macro generates the exported
//! wrapper (for `-lcuda` programs), the lookup wrapper (handed out by `dlsym`/`cuGetProcAddress`)
//! and the `Hook` index shared with the identity table. Results are plain `u32` rather than
//! cudarc's `CUresult` enum: a driver newer than our bindings may return codes the enum lacks,
//! and an out-of-range enum value would be undefined behaviour.

use crate::recorder;
use crate::resolve::{current_device as dev, mem_info, next_export, next_lookup, translate};
use cudarc::driver::sys::{
    CUcontext, CUctxCreateParams, CUdevice, CUdeviceptr, CUexecAffinityParam, CUmemAccessDesc,
    CUmemAllocationProp, CUmemGenericAllocationHandle, CUmemoryPool, CUstream,
};
use std::ffi::{c_char, c_int, c_uint, c_void, CStr};
use vramtrace_trace::{Api, EventRec};

use vramtrace_trace::api::cu::{ERROR_NOT_INITIALIZED as CUDA_ERROR_NOT_INITIALIZED, SUCCESS as CUDA_SUCCESS};
const CU_MEM_LOCATION_TYPE_DEVICE: u32 = 1;

/// Reads an out-parameter the driver filled, tolerating NULL.
unsafe fn out<T: Copy + Into<u64>>(p: *const T, r: u32) -> u64 {
    if r == CUDA_SUCCESS && !p.is_null() { unsafe { (*p).into() } } else { 0 }
}
unsafe fn out_ptr<T>(p: *const *mut T, r: u32) -> u64 {
    if r == CUDA_SUCCESS && !p.is_null() { unsafe { *p as u64 } } else { 0 }
}
/// Reads a `CUmemLocation` as raw integers: the enum field may hold values our bindings lack.
unsafe fn location(loc: *const cudarc::driver::sys::CUmemLocation) -> (u32, i32) {
    if loc.is_null() {
        return (0, -1);
    }
    unsafe { (*(&raw const (*loc).type_).cast::<u32>(), (*loc).id) }
}

/// The common body of every wrapper: call through, then record. Nested calls (our own helper
/// calls, a driver or interposer calling back in) pass through unrecorded.
#[inline(always)]
fn wrap(api: Api, real: usize, call: impl FnOnce(usize) -> u32, fill: impl FnOnce(&mut EventRec, u32)) -> u32 {
    if real == 0 {
        return CUDA_ERROR_NOT_INITIALIZED;
    }
    if !crate::sys::enter() {
        return call(real);
    }
    let r = call(real);
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mut e = EventRec { api: api as u16, result: r, device: -1, ..Default::default() };
        fill(&mut e, r);
        if r != CUDA_SUCCESS && api.allocates() && e.free == 0 {
            // What the driver says is free at the moment of a failure: the core of an OOM post-mortem.
            if let Some((free, total)) = mem_info() {
                (e.free, e.total) = (free, total);
            }
        }
        recorder::record(&mut e);
    }));
    crate::sys::leave();
    r
}

macro_rules! hooks {
    ($( $api:ident = fn $name:ident ( $($arg:ident : $ty:ty),* $(,)? ) |$e:ident, $r:ident| $fill:block )*) => {
        /// Every hooked function: the recorded ones (same order and names as `trace::Api`), then
        /// the two lookup entry points.
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
                let s: &'static str = match self {
                    $(Hook::$api => concat!(stringify!($name), "\0"),)*
                    Hook::GetProcAddress => "cuGetProcAddress\0",
                    Hook::GetProcAddressV2 => "cuGetProcAddress_v2\0",
                };
                CStr::from_bytes_with_nul(s.as_bytes()).unwrap()
            }
        }

        /// Exported under the driver's names: what `-lcuda` programs bind to.
        #[allow(non_snake_case, clippy::missing_safety_doc)]
        pub mod exported {
            use super::*;
            $(
                #[unsafe(no_mangle)]
                pub unsafe extern "C" fn $name($($arg: $ty),*) -> u32 {
                    type F = unsafe extern "C" fn($($ty),*) -> u32;
                    wrap(Api::$api, next_export(Hook::$api),
                        |p| unsafe { std::mem::transmute::<usize, F>(p)($($arg),*) },
                        #[allow(unused_unsafe)] |$e, $r| unsafe { $fill })
                }
            )*
        }

        /// Handed out by `dlsym` / `cuGetProcAddress` in place of the real pointer.
        #[allow(non_snake_case)]
        pub mod via_lookup {
            use super::*;
            $(
                pub unsafe extern "C" fn $name($($arg: $ty),*) -> u32 {
                    type F = unsafe extern "C" fn($($ty),*) -> u32;
                    wrap(Api::$api, next_lookup(Hook::$api),
                        |p| unsafe { std::mem::transmute::<usize, F>(p)($($arg),*) },
                        #[allow(unused_unsafe)] |$e, $r| unsafe { $fill })
                }
            )*
        }

        fn export_wrappers() -> [usize; N_HOOKS] {
            [$(exported::$name as *const () as usize,)* cuGetProcAddress as *const () as usize, cuGetProcAddress_v2 as *const () as usize]
        }
        fn lookup_wrappers() -> [usize; N_HOOKS] {
            [$(via_lookup::$name as *const () as usize,)* procaddr_v1_lookup as *const () as usize, procaddr_v2_lookup as *const () as usize]
        }
    };
}

pub fn is_wrapper(p: usize) -> bool {
    export_wrappers().contains(&p) || lookup_wrappers().contains(&p)
}

/// The hook whose exported wrapper `p` is, if it is one.
pub fn exported_hook(p: usize) -> Option<Hook> {
    export_wrappers().iter().position(|&w| w == p).and_then(Hook::from_index)
}

pub fn lookup_wrapper(h: Hook) -> usize {
    lookup_wrappers()[h as usize]
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
        e.handle = out_ptr(ctx, r); e.flags = flags as u64; e.device = device; ctx_info(e, r);
    }
    CtxCreateV3 = fn cuCtxCreate_v3(ctx: *mut CUcontext, params: *mut CUexecAffinityParam, n: c_int, flags: c_uint, device: CUdevice) |e, r| {
        let _ = (params, n);
        e.handle = out_ptr(ctx, r); e.flags = flags as u64; e.device = device; ctx_info(e, r);
    }
    CtxCreateV4 = fn cuCtxCreate_v4(ctx: *mut CUcontext, params: *mut CUctxCreateParams, flags: c_uint, device: CUdevice) |e, r| {
        let _ = params;
        e.handle = out_ptr(ctx, r); e.flags = flags as u64; e.device = device; ctx_info(e, r);
    }
    CtxDestroy = fn cuCtxDestroy_v2(ctx: CUcontext) |e, _r| {
        e.handle = ctx as u64;
    }
    DevicePrimaryCtxRetain = fn cuDevicePrimaryCtxRetain(ctx: *mut CUcontext, device: CUdevice) |e, r| {
        e.handle = out_ptr(ctx, r); e.device = device;
        if r == CUDA_SUCCESS { recorder::describe_device(device); }
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

/// A fresh context is current on this thread: the driver's free/total now tells what the runtime
/// took before any allocation (the baseline for "invisible" memory).
fn ctx_info(e: &mut EventRec, r: u32) {
    if r == CUDA_SUCCESS {
        if let Some((free, total)) = mem_info() {
            (e.free, e.total) = (free, total);
        }
        recorder::describe_device(e.device);
    }
}

// ---- the lookup entry points -------------------------------------------------------------------

type ProcV1 = unsafe extern "C" fn(*const c_char, *mut *mut c_void, c_int, u64) -> u32;
type ProcV2 = unsafe extern "C" fn(*const c_char, *mut *mut c_void, c_int, u64, *mut c_void) -> u32;

/// After a successful lookup, swap the returned pointer for our wrapper if it is one we record.
unsafe fn after_lookup(r: u32, symbol: *const c_char, pfn: *mut *mut c_void) {
    if r != CUDA_SUCCESS || symbol.is_null() || pfn.is_null() || unsafe { (*pfn).is_null() } {
        return;
    }
    let p = unsafe { *pfn } as usize;
    if let Ok(q) = std::panic::catch_unwind(|| translate(p)) {
        unsafe { *pfn = q as *mut c_void };
    }
}

unsafe fn procaddr_v1(real: usize, symbol: *const c_char, pfn: *mut *mut c_void, ver: c_int, flags: u64) -> u32 {
    if real == 0 {
        return CUDA_ERROR_NOT_INITIALIZED;
    }
    let r = unsafe { std::mem::transmute::<usize, ProcV1>(real)(symbol, pfn, ver, flags) };
    unsafe { after_lookup(r, symbol, pfn) };
    r
}

unsafe fn procaddr_v2(real: usize, symbol: *const c_char, pfn: *mut *mut c_void, ver: c_int, flags: u64, status: *mut c_void) -> u32 {
    if real == 0 {
        return CUDA_ERROR_NOT_INITIALIZED;
    }
    let r = unsafe { std::mem::transmute::<usize, ProcV2>(real)(symbol, pfn, ver, flags, status) };
    unsafe { after_lookup(r, symbol, pfn) };
    r
}

/// # Safety
/// Same contract as the driver's `cuGetProcAddress`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuGetProcAddress(symbol: *const c_char, pfn: *mut *mut c_void, ver: c_int, flags: u64) -> u32 {
    unsafe { procaddr_v1(next_export(Hook::GetProcAddress), symbol, pfn, ver, flags) }
}

/// # Safety
/// Same contract as the driver's `cuGetProcAddress_v2`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuGetProcAddress_v2(symbol: *const c_char, pfn: *mut *mut c_void, ver: c_int, flags: u64, status: *mut c_void) -> u32 {
    unsafe { procaddr_v2(next_export(Hook::GetProcAddressV2), symbol, pfn, ver, flags, status) }
}

unsafe extern "C" fn procaddr_v1_lookup(symbol: *const c_char, pfn: *mut *mut c_void, ver: c_int, flags: u64) -> u32 {
    unsafe { procaddr_v1(next_lookup(Hook::GetProcAddress), symbol, pfn, ver, flags) }
}

unsafe extern "C" fn procaddr_v2_lookup(symbol: *const c_char, pfn: *mut *mut c_void, ver: c_int, flags: u64, status: *mut c_void) -> u32 {
    unsafe { procaddr_v2(next_lookup(Hook::GetProcAddressV2), symbol, pfn, ver, flags, status) }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
