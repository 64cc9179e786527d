//! The exported driver entry points, with the real driver's exact names and C signatures.
//!
//! Each one validates its out-parameters, runs one [`State`](crate::state::State) method under the
//! global lock and writes results only on success (so a failed call leaves `*out` untouched, as the
//! shim's tests expect). Enum-typed arguments that arrive by value are declared as their `c_uint`
//! representation: a bad value from C must be an error, not undefined behaviour in Rust.
//!
//! Safety, for every function here: the CUDA driver API contract. Pointer arguments are NULL
//! (reported as CUDA_ERROR_INVALID_VALUE where the real driver does) or valid for the access the
//! driver documents.
#![allow(non_snake_case, clippy::missing_safety_doc)]

use std::ffi::{c_char, c_int, c_uint, c_ulonglong, c_void};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr::addr_of;

use cudarc::driver::sys::{
    CUcontext, CUctxCreateParams, CUdevice, CUdeviceptr, CUexecAffinityParam, CUmemAccessDesc,
    CUmemAllocationProp, CUmemGenericAllocationHandle, CUmemPoolProps, CUmemoryPool, CUresult,
    CUstream,
};

use crate::errors;
use crate::state::{self, Location, INVALID_VALUE, R};

const DEVICE_NAME: &[u8] = b"Fake CUDA Device";

/// Runs one entry point's body. A panic (a bug in this fake) becomes CUDA_ERROR_UNKNOWN instead of
/// unwinding into C. `name` also keeps every entry point's machine code distinct, so that the
/// linker never folds two of them (e.g. `cuMemAllocAsync` and its `_ptsz` twin) into one address:
/// the shim tells functions apart by address.
#[inline(always)]
pub(crate) fn guard(name: &'static str, f: impl FnOnce() -> R) -> CUresult {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(())) => CUresult::CUDA_SUCCESS,
        Ok(Err(e)) => e,
        Err(_) => {
            eprintln!("fake libcuda: internal error in {name}");
            CUresult::CUDA_ERROR_UNKNOWN
        }
    }
}

/// An out-parameter, or CUDA_ERROR_INVALID_VALUE when it is NULL.
fn out<T>(p: *mut T) -> R<*mut T> {
    if p.is_null() {
        Err(INVALID_VALUE)
    } else {
        Ok(p)
    }
}

fn ctx_handle(c: CUcontext) -> u64 {
    c as usize as u64
}

fn ctx_ptr(h: u64) -> CUcontext {
    h as usize as CUcontext
}

/// Reads the fields of a `CUmemAllocationProp` that matter: (type, location).
unsafe fn alloc_prop(prop: *const CUmemAllocationProp) -> R<(u32, Location)> {
    if prop.is_null() {
        return Err(INVALID_VALUE);
    }
    // SAFETY: prop is non-null and, per the API, points to a CUmemAllocationProp. Enum fields are
    // read as their u32 representation.
    unsafe {
        Ok((
            addr_of!((*prop).type_).cast::<u32>().read(),
            Location {
                loc_type: addr_of!((*prop).location.type_).cast::<u32>().read(),
                id: addr_of!((*prop).location.id).read(),
            },
        ))
    }
}

// ---- initialization, version, devices, errors ---------------------------------------------

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuInit(Flags: c_uint) -> CUresult {
    guard("cuInit", || state::with(|s| s.init(Flags)))
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuDriverGetVersion(driverVersion: *mut c_int) -> CUresult {
    guard("cuDriverGetVersion", || {
        let o = out(driverVersion)?;
        let v = state::with(|s| Ok(s.cfg.driver_version))?;
        unsafe { o.write(v) };
        Ok(())
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuDeviceGet(device: *mut CUdevice, ordinal: c_int) -> CUresult {
    guard("cuDeviceGet", || {
        let o = out(device)?;
        let d = state::with(|s| s.device(ordinal))?;
        unsafe { o.write(d as CUdevice) };
        Ok(())
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuDeviceGetCount(count: *mut c_int) -> CUresult {
    guard("cuDeviceGetCount", || {
        let o = out(count)?;
        let n = state::with(|s| s.device_count())?;
        unsafe { o.write(n) };
        Ok(())
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuDeviceGetName(name: *mut c_char, len: c_int, dev: CUdevice) -> CUresult {
    guard("cuDeviceGetName", || {
        let o = out(name)?;
        let len = usize::try_from(len)
            .ok()
            .filter(|&l| l > 0)
            .ok_or(INVALID_VALUE)?;
        state::with(|s| s.device(dev))?;
        let n = DEVICE_NAME.len().min(len - 1);
        // SAFETY: the caller provides `len` writable bytes; we write n + 1 <= len.
        unsafe {
            std::ptr::copy_nonoverlapping(DEVICE_NAME.as_ptr().cast::<c_char>(), o, n);
            o.add(n).write(0);
        }
        Ok(())
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuDeviceTotalMem_v2(bytes: *mut usize, dev: CUdevice) -> CUresult {
    guard("cuDeviceTotalMem_v2", || {
        let o = out(bytes)?;
        let n = state::with(|s| s.total_mem(dev))?;
        unsafe { o.write(n as usize) };
        Ok(())
    })
}

/// The CUDA 2.0 entry point with a 32-bit size, saturated like a driver that has more memory than
/// an `unsigned int` holds.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuDeviceTotalMem(bytes: *mut c_uint, dev: CUdevice) -> CUresult {
    guard("cuDeviceTotalMem", || {
        let o = out(bytes)?;
        let n = state::with(|s| s.total_mem(dev))?;
        unsafe { o.write(n.min(c_uint::MAX as u64) as c_uint) };
        Ok(())
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuGetErrorName(error: c_uint, pStr: *mut *const c_char) -> CUresult {
    guard("cuGetErrorName", || {
        let o = out(pStr)?;
        let found = errors::describe(error);
        unsafe { o.write(found.map_or(std::ptr::null(), |(n, _)| n.as_ptr())) };
        found.map(drop).ok_or(INVALID_VALUE)
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuGetErrorString(error: c_uint, pStr: *mut *const c_char) -> CUresult {
    guard("cuGetErrorString", || {
        let o = out(pStr)?;
        let found = errors::describe(error);
        unsafe { o.write(found.map_or(std::ptr::null(), |(_, s)| s.as_ptr())) };
        found.map(drop).ok_or(INVALID_VALUE)
    })
}

// ---- contexts -----------------------------------------------------------------------------

unsafe fn ctx_create(pctx: *mut CUcontext, dev: CUdevice) -> R {
    let o = out(pctx)?;
    let h = state::with(|s| s.ctx_create(dev))?;
    unsafe { o.write(ctx_ptr(h)) };
    Ok(())
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuCtxCreate_v2(
    pctx: *mut CUcontext,
    flags: c_uint,
    dev: CUdevice,
) -> CUresult {
    let _ = flags; // scheduling flags change nothing here
    guard("cuCtxCreate_v2", || unsafe { ctx_create(pctx, dev) })
}

/// The pre-3.2 entry point (32-bit era); same behaviour, distinct function.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuCtxCreate(
    pctx: *mut CUcontext,
    flags: c_uint,
    dev: CUdevice,
) -> CUresult {
    let _ = flags;
    guard("cuCtxCreate", || unsafe { ctx_create(pctx, dev) })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuCtxCreate_v3(
    pctx: *mut CUcontext,
    paramsArray: *mut CUexecAffinityParam,
    numParams: c_int,
    flags: c_uint,
    dev: CUdevice,
) -> CUresult {
    let _ = flags;
    guard("cuCtxCreate_v3", || {
        if numParams < 0 || (numParams > 0 && paramsArray.is_null()) {
            return Err(INVALID_VALUE);
        }
        unsafe { ctx_create(pctx, dev) }
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuCtxCreate_v4(
    pctx: *mut CUcontext,
    ctxCreateParams: *mut CUctxCreateParams,
    flags: c_uint,
    dev: CUdevice,
) -> CUresult {
    let _ = (ctxCreateParams, flags); // NULL params are allowed; affinity/CIG change nothing here
    guard("cuCtxCreate_v4", || unsafe { ctx_create(pctx, dev) })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuCtxDestroy_v2(ctx: CUcontext) -> CUresult {
    guard("cuCtxDestroy_v2", || {
        state::with(|s| s.ctx_destroy(ctx_handle(ctx)))
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuCtxDestroy(ctx: CUcontext) -> CUresult {
    guard("cuCtxDestroy", || {
        state::with(|s| s.ctx_destroy(ctx_handle(ctx)))
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuCtxGetDevice(device: *mut CUdevice) -> CUresult {
    guard("cuCtxGetDevice", || {
        let o = out(device)?;
        let d = state::with(|s| s.ctx_get_device())?;
        unsafe { o.write(d) };
        Ok(())
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuCtxSetCurrent(ctx: CUcontext) -> CUresult {
    guard("cuCtxSetCurrent", || {
        state::with(|s| s.ctx_set_current(ctx_handle(ctx)))
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuCtxGetCurrent(pctx: *mut CUcontext) -> CUresult {
    guard("cuCtxGetCurrent", || {
        let o = out(pctx)?;
        let h = state::with(|s| s.ctx_get_current())?;
        unsafe { o.write(ctx_ptr(h)) };
        Ok(())
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuCtxPushCurrent_v2(ctx: CUcontext) -> CUresult {
    guard("cuCtxPushCurrent_v2", || {
        state::with(|s| s.ctx_push(ctx_handle(ctx)))
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuCtxPushCurrent(ctx: CUcontext) -> CUresult {
    guard("cuCtxPushCurrent", || {
        state::with(|s| s.ctx_push(ctx_handle(ctx)))
    })
}

unsafe fn ctx_pop(pctx: *mut CUcontext) -> R {
    let h = state::with(|s| s.ctx_pop())?;
    if !pctx.is_null() {
        unsafe { pctx.write(ctx_ptr(h)) };
    }
    Ok(())
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuCtxPopCurrent_v2(pctx: *mut CUcontext) -> CUresult {
    guard("cuCtxPopCurrent_v2", || unsafe { ctx_pop(pctx) })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuCtxPopCurrent(pctx: *mut CUcontext) -> CUresult {
    guard("cuCtxPopCurrent", || unsafe { ctx_pop(pctx) })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuCtxSynchronize() -> CUresult {
    guard("cuCtxSynchronize", || state::with(|s| s.ctx_synchronize()))
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuDevicePrimaryCtxRetain(pctx: *mut CUcontext, dev: CUdevice) -> CUresult {
    guard("cuDevicePrimaryCtxRetain", || {
        let o = out(pctx)?;
        let h = state::with(|s| s.primary_retain(dev))?;
        unsafe { o.write(ctx_ptr(h)) };
        Ok(())
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuDevicePrimaryCtxRelease_v2(dev: CUdevice) -> CUresult {
    guard("cuDevicePrimaryCtxRelease_v2", || {
        state::with(|s| s.primary_release(dev))
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuDevicePrimaryCtxRelease(dev: CUdevice) -> CUresult {
    guard("cuDevicePrimaryCtxRelease", || {
        state::with(|s| s.primary_release(dev))
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuDevicePrimaryCtxReset_v2(dev: CUdevice) -> CUresult {
    guard("cuDevicePrimaryCtxReset_v2", || {
        state::with(|s| s.primary_reset(dev))
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuDevicePrimaryCtxReset(dev: CUdevice) -> CUresult {
    guard("cuDevicePrimaryCtxReset", || {
        state::with(|s| s.primary_reset(dev))
    })
}

// ---- cuMemAlloc family --------------------------------------------------------------------

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuMemAlloc_v2(dptr: *mut CUdeviceptr, bytesize: usize) -> CUresult {
    guard("cuMemAlloc_v2", || {
        let o = out(dptr)?;
        let p = state::with(|s| s.mem_alloc(bytesize as u64))?;
        unsafe { o.write(p) };
        Ok(())
    })
}

/// The CUDA 2.0 entry point with 32-bit device pointers: no 64-bit driver can honour it.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuMemAlloc(dptr: *mut c_uint, bytesize: c_uint) -> CUresult {
    let _ = (dptr, bytesize);
    guard("cuMemAlloc", || Err(CUresult::CUDA_ERROR_NOT_SUPPORTED))
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuMemAllocPitch_v2(
    dptr: *mut CUdeviceptr,
    pPitch: *mut usize,
    WidthInBytes: usize,
    Height: usize,
    ElementSizeBytes: c_uint,
) -> CUresult {
    guard("cuMemAllocPitch_v2", || {
        let o = out(dptr)?;
        let op = out(pPitch)?;
        let (p, pitch) = state::with(|s| {
            s.mem_alloc_pitch(WidthInBytes as u64, Height as u64, ElementSizeBytes)
        })?;
        unsafe {
            o.write(p);
            op.write(pitch as usize);
        }
        Ok(())
    })
}

/// 32-bit pointer version, see [`cuMemAlloc`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuMemAllocPitch(
    dptr: *mut c_uint,
    pPitch: *mut c_uint,
    WidthInBytes: c_uint,
    Height: c_uint,
    ElementSizeBytes: c_uint,
) -> CUresult {
    let _ = (dptr, pPitch, WidthInBytes, Height, ElementSizeBytes);
    guard("cuMemAllocPitch", || {
        Err(CUresult::CUDA_ERROR_NOT_SUPPORTED)
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuMemAllocManaged(
    dptr: *mut CUdeviceptr,
    bytesize: usize,
    flags: c_uint,
) -> CUresult {
    guard("cuMemAllocManaged", || {
        let o = out(dptr)?;
        let p = state::with(|s| s.mem_alloc_managed(bytesize as u64, flags))?;
        unsafe { o.write(p) };
        Ok(())
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuMemFree_v2(dptr: CUdeviceptr) -> CUresult {
    guard("cuMemFree_v2", || state::with(|s| s.mem_free(dptr)))
}

/// 32-bit pointer version: no pointer this fake hands out fits in 32 bits, so nothing matches.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuMemFree(dptr: c_uint) -> CUresult {
    guard("cuMemFree", || state::with(|s| s.mem_free(u64::from(dptr))))
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuMemGetInfo_v2(free: *mut usize, total: *mut usize) -> CUresult {
    guard("cuMemGetInfo_v2", || {
        let (of, ot) = (out(free)?, out(total)?);
        let (f, t) = state::with(|s| s.mem_get_info())?;
        unsafe {
            of.write(f as usize);
            ot.write(t as usize);
        }
        Ok(())
    })
}

/// 32-bit sizes, saturated.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuMemGetInfo(free: *mut c_uint, total: *mut c_uint) -> CUresult {
    guard("cuMemGetInfo", || {
        let (of, ot) = (out(free)?, out(total)?);
        let (f, t) = state::with(|s| s.mem_get_info())?;
        let clamp = |x: u64| x.min(c_uint::MAX as u64) as c_uint;
        unsafe {
            of.write(clamp(f));
            ot.write(clamp(t));
        }
        Ok(())
    })
}

// ---- stream-ordered allocation, pools, streams --------------------------------------------

unsafe fn alloc_async(
    dptr: *mut CUdeviceptr,
    size: usize,
    pool: Option<u64>,
    stream: CUstream,
) -> R {
    let o = out(dptr)?;
    let p = state::with(|s| s.mem_alloc_async(size as u64, pool, stream as usize as u64))?;
    unsafe { o.write(p) };
    Ok(())
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuMemAllocAsync(
    dptr: *mut CUdeviceptr,
    bytesize: usize,
    hStream: CUstream,
) -> CUresult {
    guard("cuMemAllocAsync", || unsafe {
        alloc_async(dptr, bytesize, None, hStream)
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuMemAllocAsync_ptsz(
    dptr: *mut CUdeviceptr,
    bytesize: usize,
    hStream: CUstream,
) -> CUresult {
    guard("cuMemAllocAsync_ptsz", || unsafe {
        alloc_async(dptr, bytesize, None, hStream)
    })
}

fn pool_handle(pool: CUmemoryPool) -> R<u64> {
    if pool.is_null() {
        Err(INVALID_VALUE)
    } else {
        Ok(pool as usize as u64)
    }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuMemAllocFromPoolAsync(
    dptr: *mut CUdeviceptr,
    bytesize: usize,
    pool: CUmemoryPool,
    hStream: CUstream,
) -> CUresult {
    guard("cuMemAllocFromPoolAsync", || unsafe {
        alloc_async(dptr, bytesize, Some(pool_handle(pool)?), hStream)
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuMemAllocFromPoolAsync_ptsz(
    dptr: *mut CUdeviceptr,
    bytesize: usize,
    pool: CUmemoryPool,
    hStream: CUstream,
) -> CUresult {
    guard("cuMemAllocFromPoolAsync_ptsz", || unsafe {
        alloc_async(dptr, bytesize, Some(pool_handle(pool)?), hStream)
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuMemFreeAsync(dptr: CUdeviceptr, hStream: CUstream) -> CUresult {
    guard("cuMemFreeAsync", || {
        state::with(|s| s.mem_free_async(dptr, hStream as usize as u64))
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuMemFreeAsync_ptsz(dptr: CUdeviceptr, hStream: CUstream) -> CUresult {
    guard("cuMemFreeAsync_ptsz", || {
        state::with(|s| s.mem_free_async(dptr, hStream as usize as u64))
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuDeviceGetDefaultMemPool(
    pool_out: *mut CUmemoryPool,
    dev: CUdevice,
) -> CUresult {
    guard("cuDeviceGetDefaultMemPool", || {
        let o = out(pool_out)?;
        let h = state::with(|s| s.default_pool(dev))?;
        unsafe { o.write(h as usize as CUmemoryPool) };
        Ok(())
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuMemPoolCreate(
    pool: *mut CUmemoryPool,
    poolProps: *const CUmemPoolProps,
) -> CUresult {
    guard("cuMemPoolCreate", || {
        let o = out(pool)?;
        if poolProps.is_null() {
            return Err(INVALID_VALUE);
        }
        // SAFETY: non-null, points to a CUmemPoolProps per the API; enums read as u32.
        let (alloc_type, loc) = unsafe {
            (
                addr_of!((*poolProps).allocType).cast::<u32>().read(),
                Location {
                    loc_type: addr_of!((*poolProps).location.type_).cast::<u32>().read(),
                    id: addr_of!((*poolProps).location.id).read(),
                },
            )
        };
        let h = state::with(|s| s.pool_create(alloc_type, loc))?;
        unsafe { o.write(h as usize as CUmemoryPool) };
        Ok(())
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuMemPoolDestroy(pool: CUmemoryPool) -> CUresult {
    guard("cuMemPoolDestroy", || {
        let h = pool_handle(pool)?;
        state::with(|s| s.pool_destroy(h))
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuMemPoolTrimTo(pool: CUmemoryPool, minBytesToKeep: usize) -> CUresult {
    guard("cuMemPoolTrimTo", || {
        let h = pool_handle(pool)?;
        state::with(|s| s.pool_trim(h, minBytesToKeep as u64))
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuStreamCreate(phStream: *mut CUstream, Flags: c_uint) -> CUresult {
    guard("cuStreamCreate", || {
        let o = out(phStream)?;
        let h = state::with(|s| s.stream_create(Flags))?;
        unsafe { o.write(h as usize as CUstream) };
        Ok(())
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuStreamDestroy_v2(hStream: CUstream) -> CUresult {
    guard("cuStreamDestroy_v2", || {
        state::with(|s| s.stream_destroy(hStream as usize as u64))
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuStreamDestroy(hStream: CUstream) -> CUresult {
    guard("cuStreamDestroy", || {
        state::with(|s| s.stream_destroy(hStream as usize as u64))
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuStreamSynchronize(hStream: CUstream) -> CUresult {
    guard("cuStreamSynchronize", || {
        state::with(|s| s.stream_synchronize(hStream as usize as u64))
    })
}

/// The per-thread-default-stream flavour (what `flags = 2` lookups get): nothing is ever pending.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuStreamSynchronize_ptsz(hStream: CUstream) -> CUresult {
    guard("cuStreamSynchronize_ptsz", || {
        state::with(|s| s.stream_synchronize(hStream as usize as u64))
    })
}

// ---- virtual memory management ------------------------------------------------------------

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuMemGetAllocationGranularity(
    granularity: *mut usize,
    prop: *const CUmemAllocationProp,
    option: c_uint,
) -> CUresult {
    guard("cuMemGetAllocationGranularity", || {
        let o = out(granularity)?;
        let (t, loc) = unsafe { alloc_prop(prop)? };
        let g = state::with(|s| s.granularity(t, loc, option))?;
        unsafe { o.write(g as usize) };
        Ok(())
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuMemCreate(
    handle: *mut CUmemGenericAllocationHandle,
    size: usize,
    prop: *const CUmemAllocationProp,
    flags: c_ulonglong,
) -> CUresult {
    guard("cuMemCreate", || {
        let o = out(handle)?;
        let (t, loc) = unsafe { alloc_prop(prop)? };
        let h = state::with(|s| s.mem_create(size as u64, t, loc, flags))?;
        unsafe { o.write(h) };
        Ok(())
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuMemRelease(handle: CUmemGenericAllocationHandle) -> CUresult {
    guard("cuMemRelease", || state::with(|s| s.mem_release(handle)))
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuMemAddressReserve(
    ptr: *mut CUdeviceptr,
    size: usize,
    alignment: usize,
    addr: CUdeviceptr,
    flags: c_ulonglong,
) -> CUresult {
    let _ = addr; // only a hint for the real driver too
    guard("cuMemAddressReserve", || {
        let o = out(ptr)?;
        let p = state::with(|s| s.address_reserve(size as u64, alignment as u64, flags))?;
        unsafe { o.write(p) };
        Ok(())
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuMemAddressFree(ptr: CUdeviceptr, size: usize) -> CUresult {
    guard("cuMemAddressFree", || {
        state::with(|s| s.address_free(ptr, size as u64))
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuMemMap(
    ptr: CUdeviceptr,
    size: usize,
    offset: usize,
    handle: CUmemGenericAllocationHandle,
    flags: c_ulonglong,
) -> CUresult {
    guard("cuMemMap", || {
        state::with(|s| s.mem_map(ptr, size as u64, offset as u64, handle, flags))
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuMemUnmap(ptr: CUdeviceptr, size: usize) -> CUresult {
    guard("cuMemUnmap", || {
        state::with(|s| s.mem_unmap(ptr, size as u64))
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuMemSetAccess(
    ptr: CUdeviceptr,
    size: usize,
    desc: *const CUmemAccessDesc,
    count: usize,
) -> CUresult {
    guard("cuMemSetAccess", || {
        if desc.is_null() || count == 0 {
            return Err(INVALID_VALUE);
        }
        let descs: Vec<(Location, u32)> = (0..count)
            .map(|i| {
                // SAFETY: the caller passes `count` descriptors; enums read as u32.
                unsafe {
                    let d = desc.add(i);
                    (
                        Location {
                            loc_type: addr_of!((*d).location.type_).cast::<u32>().read(),
                            id: addr_of!((*d).location.id).read(),
                        },
                        addr_of!((*d).flags).cast::<u32>().read(),
                    )
                }
            })
            .collect();
        state::with(|s| s.set_access(ptr, size as u64, &descs))
    })
}

// ---- pinned host memory -------------------------------------------------------------------

unsafe fn host_alloc(pp: *mut *mut c_void, size: usize, flags: c_uint) -> R {
    let o = out(pp)?;
    let p = state::with(|s| s.host_alloc(size, flags))?;
    unsafe { o.write(p) };
    Ok(())
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuMemHostAlloc(
    pp: *mut *mut c_void,
    bytesize: usize,
    Flags: c_uint,
) -> CUresult {
    guard("cuMemHostAlloc", || unsafe {
        host_alloc(pp, bytesize, Flags)
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuMemAllocHost_v2(pp: *mut *mut c_void, bytesize: usize) -> CUresult {
    guard("cuMemAllocHost_v2", || unsafe {
        host_alloc(pp, bytesize, 0)
    })
}

/// The CUDA 2.0 entry point with a 32-bit size; host pointers are full width, so it works.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuMemAllocHost(pp: *mut *mut c_void, bytesize: c_uint) -> CUresult {
    guard("cuMemAllocHost", || unsafe {
        host_alloc(pp, bytesize as usize, 0)
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuMemFreeHost(p: *mut c_void) -> CUresult {
    guard("cuMemFreeHost", || state::with(|s| s.host_free(p)))
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuMemHostRegister_v2(
    p: *mut c_void,
    bytesize: usize,
    Flags: c_uint,
) -> CUresult {
    guard("cuMemHostRegister_v2", || {
        state::with(|s| s.host_register(p, bytesize, Flags))
    })
}

/// The CUDA 4.0 entry point; same behaviour, distinct function.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuMemHostRegister(
    p: *mut c_void,
    bytesize: usize,
    Flags: c_uint,
) -> CUresult {
    guard("cuMemHostRegister", || {
        state::with(|s| s.host_register(p, bytesize, Flags))
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuMemHostUnregister(p: *mut c_void) -> CUresult {
    guard("cuMemHostUnregister", || {
        state::with(|s| s.host_unregister(p))
    })
}
