//! `cuGetProcAddress` / `cuGetProcAddress_v2` with the real driver's version semantics, as
//! measured on NVIDIA's driver library (and checked lookup by lookup against it by the e2e tests
//! when that library is available).
//!
//! Callers ask by BASE name ("cuMemAlloc") and the CUDA version they were built against; the
//! driver answers with the newest variant introduced at or before that version
//! (`cuMemAlloc`@2000 → `cuMemAlloc`, @3020 → `cuMemAlloc_v2`) among those it has: a driver of
//! an older version than the caller's answers with its own newest variant. The version is read
//! as unsigned, so a negative one asks for the newest. `flags` with
//! CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM selects the `_ptsz` variant where one exists;
//! any bit other than that and CU_GET_PROC_ADDRESS_LEGACY_STREAM is CUDA_ERROR_INVALID_VALUE,
//! with nothing written. Exact versioned names ("cuMemAlloc_v2") are not lookup keys.
//!
//! A miss is not an error for `_v2`: CUDA_SUCCESS, `*pfn` = NULL and the reason in
//! `symbolStatus` (cudart's probe for `""` relies on it). The four-argument form answers
//! CUDA_ERROR_NOT_FOUND and leaves `*pfn` alone. (A NULL `symbol` or `pfn` crashes the real
//! driver; here it is CUDA_ERROR_INVALID_VALUE.)
#![allow(non_snake_case, clippy::missing_safety_doc)]

use std::ffi::{c_char, c_int, c_void, CStr};
use std::ptr::null_mut;

use cudarc::driver::sys::{cuuint64_t, CUdriverProcAddressQueryResult, CUresult};

use crate::config::NEWEST_DRIVER_VERSION;
use crate::exports::*;
use crate::state::{self, INVALID_VALUE};

/// `CU_GET_PROC_ADDRESS_LEGACY_STREAM`: the default; accepted, changes nothing.
pub const LEGACY_STREAM: u64 = 1;
/// `CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM`.
pub const PER_THREAD_DEFAULT_STREAM: u64 = 2;

/// A function pointer in a static table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fp(pub *const c_void);
// SAFETY: function addresses are immutable and valid on every thread.
unsafe impl Sync for Fp {}

/// One exported variant of a base name.
#[derive(Debug)]
pub struct Variant {
    /// Exact exported symbol.
    pub symbol: &'static str,
    /// CUDA version (1000 × major + 10 × minor) that introduced it.
    pub since: i32,
    /// A per-thread-default-stream (`_ptsz`) flavour.
    pub ptsz: bool,
    pub f: Fp,
}

macro_rules! variant {
    (ptsz $since:literal $f:ident) => {
        Variant {
            symbol: stringify!($f),
            since: $since,
            ptsz: true,
            f: Fp($f as *const c_void),
        }
    };
    ($since:literal $f:ident) => {
        Variant {
            symbol: stringify!($f),
            since: $since,
            ptsz: false,
            f: Fp($f as *const c_void),
        }
    };
}

macro_rules! procs {
    ($( $base:literal => [ $( $($tok:ident)? $since:literal $f:ident ),+ ] ),* $(,)?) => {
        /// Base name → its variants. The one table every lookup goes through.
        pub static PROCS: &[(&str, &[Variant])] = &[
            $( ($base, &[ $( variant!($($tok)? $since $f) ),+ ]) ),*
        ];
    };
}

// Introduction versions are the real driver's (cudart 12.9 asks with exactly these; see
// tests/runners/cudart12-lookups.txt). VMM entry points appeared in 10.2.
procs! {
    "cuInit" => [2000 cuInit],
    "cuDriverGetVersion" => [2020 cuDriverGetVersion],
    "cuDeviceGet" => [2000 cuDeviceGet],
    "cuDeviceGetCount" => [2000 cuDeviceGetCount],
    "cuDeviceGetName" => [2000 cuDeviceGetName],
    "cuDeviceTotalMem" => [2000 cuDeviceTotalMem, 3020 cuDeviceTotalMem_v2],
    "cuGetErrorName" => [6000 cuGetErrorName],
    "cuGetErrorString" => [6000 cuGetErrorString],
    "cuGetProcAddress" => [11030 cuGetProcAddress, 12000 cuGetProcAddress_v2],

    "cuCtxCreate" => [2000 cuCtxCreate, 3020 cuCtxCreate_v2, 11040 cuCtxCreate_v3, 12050 cuCtxCreate_v4],
    "cuCtxDestroy" => [2000 cuCtxDestroy, 4000 cuCtxDestroy_v2],
    "cuCtxGetDevice" => [2000 cuCtxGetDevice],
    "cuCtxSetCurrent" => [4000 cuCtxSetCurrent],
    "cuCtxGetCurrent" => [4000 cuCtxGetCurrent],
    "cuCtxPushCurrent" => [2000 cuCtxPushCurrent, 4000 cuCtxPushCurrent_v2],
    "cuCtxPopCurrent" => [2000 cuCtxPopCurrent, 4000 cuCtxPopCurrent_v2],
    "cuCtxSynchronize" => [2000 cuCtxSynchronize],
    "cuDevicePrimaryCtxRetain" => [7000 cuDevicePrimaryCtxRetain],
    "cuDevicePrimaryCtxRelease" => [7000 cuDevicePrimaryCtxRelease, 11000 cuDevicePrimaryCtxRelease_v2],
    "cuDevicePrimaryCtxReset" => [7000 cuDevicePrimaryCtxReset, 11000 cuDevicePrimaryCtxReset_v2],

    "cuMemAlloc" => [2000 cuMemAlloc, 3020 cuMemAlloc_v2],
    "cuMemAllocPitch" => [2000 cuMemAllocPitch, 3020 cuMemAllocPitch_v2],
    "cuMemAllocManaged" => [6000 cuMemAllocManaged],
    "cuMemFree" => [2000 cuMemFree, 3020 cuMemFree_v2],
    "cuMemGetInfo" => [2000 cuMemGetInfo, 3020 cuMemGetInfo_v2],
    "cuMemAllocAsync" => [11020 cuMemAllocAsync, ptsz 11020 cuMemAllocAsync_ptsz],
    "cuMemAllocFromPoolAsync" => [11020 cuMemAllocFromPoolAsync, ptsz 11020 cuMemAllocFromPoolAsync_ptsz],
    "cuMemFreeAsync" => [11020 cuMemFreeAsync, ptsz 11020 cuMemFreeAsync_ptsz],
    "cuDeviceGetDefaultMemPool" => [11020 cuDeviceGetDefaultMemPool],
    "cuMemPoolCreate" => [11020 cuMemPoolCreate],
    "cuMemPoolDestroy" => [11020 cuMemPoolDestroy],
    "cuMemPoolTrimTo" => [11020 cuMemPoolTrimTo],
    "cuStreamCreate" => [2000 cuStreamCreate],
    "cuStreamDestroy" => [2000 cuStreamDestroy, 4000 cuStreamDestroy_v2],
    "cuStreamSynchronize" => [2000 cuStreamSynchronize, ptsz 7000 cuStreamSynchronize_ptsz],

    "cuMemAddressReserve" => [10020 cuMemAddressReserve],
    "cuMemAddressFree" => [10020 cuMemAddressFree],
    "cuMemCreate" => [10020 cuMemCreate],
    "cuMemRelease" => [10020 cuMemRelease],
    "cuMemMap" => [10020 cuMemMap],
    "cuMemUnmap" => [10020 cuMemUnmap],
    "cuMemSetAccess" => [10020 cuMemSetAccess],
    "cuMemGetAllocationGranularity" => [10020 cuMemGetAllocationGranularity],

    "cuMemHostAlloc" => [2020 cuMemHostAlloc],
    "cuMemAllocHost" => [2000 cuMemAllocHost, 3020 cuMemAllocHost_v2],
    "cuMemFreeHost" => [2000 cuMemFreeHost],
    "cuMemHostRegister" => [4000 cuMemHostRegister, 6050 cuMemHostRegister_v2],
    "cuMemHostUnregister" => [4000 cuMemHostUnregister],
}

/// Why a lookup failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Miss {
    /// Flag bits the driver does not know: CUDA_ERROR_INVALID_VALUE.
    InvalidFlags,
    SymbolNotFound,
    VersionNotSufficient,
}

/// The variant a (name, version, flags) lookup resolves to in a driver of the newest version the
/// fake models.
pub fn lookup(name: &[u8], version: i32, flags: u64) -> Result<&'static Variant, Miss> {
    lookup_in(NEWEST_DRIVER_VERSION, name, version, flags)
}

/// The variant a (name, version, flags) lookup resolves to in a driver of version `driver`,
/// which has only the variants introduced at or before it.
pub fn lookup_in(
    driver: i32,
    name: &[u8],
    version: i32,
    flags: u64,
) -> Result<&'static Variant, Miss> {
    if flags & !(LEGACY_STREAM | PER_THREAD_DEFAULT_STREAM) != 0 {
        return Err(Miss::InvalidFlags);
    }
    let variants: Vec<&Variant> = PROCS
        .iter()
        .find(|(base, _)| base.as_bytes() == name)
        .map(|(_, v)| v.iter().filter(|v| v.since <= driver).collect())
        .unwrap_or_default();
    if variants.is_empty() {
        return Err(Miss::SymbolNotFound);
    }
    // Per-thread flavour only where the name has one; otherwise flags change nothing.
    let ptsz = flags & PER_THREAD_DEFAULT_STREAM != 0 && variants.iter().any(|v| v.ptsz);
    // Read as unsigned, as the driver does: -1 is "the newest".
    let version = version as u32;
    variants
        .into_iter()
        .filter(|v| v.ptsz == ptsz && v.since as u32 <= version)
        .max_by_key(|v| v.since)
        .ok_or(Miss::VersionNotSufficient)
}

/// One lookup, shared by both entry points. Found: `*pfn` and the status written, `Ok`. A miss:
/// `*pfn` = NULL and the status written, `Err(SymbolNotFound | VersionNotSufficient)`. Bad flags:
/// nothing written, `Err(InvalidFlags)`.
unsafe fn get_proc_address(
    symbol: *const c_char,
    pfn: *mut *mut c_void,
    version: c_int,
    flags: cuuint64_t,
    status: *mut CUdriverProcAddressQueryResult,
) -> Result<(), Miss> {
    use CUdriverProcAddressQueryResult::*;
    // SAFETY: the caller checked `symbol`: non-null and NUL-terminated per the API.
    let name = unsafe { CStr::from_ptr(symbol) }.to_bytes();
    let driver = state::with(|s| Ok(s.cfg.driver_version)).unwrap_or(NEWEST_DRIVER_VERSION);
    let found = lookup_in(driver, name, version, flags);
    let (f, st) = match found {
        Ok(v) => (v.f.0 as *mut c_void, CU_GET_PROC_ADDRESS_SUCCESS),
        Err(Miss::InvalidFlags) => return Err(Miss::InvalidFlags),
        Err(Miss::SymbolNotFound) => (null_mut(), CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND),
        Err(Miss::VersionNotSufficient) => (null_mut(), CU_GET_PROC_ADDRESS_VERSION_NOT_SUFFICIENT),
    };
    // SAFETY: the caller checked `pfn`; `status` may be NULL.
    unsafe {
        pfn.write(f);
        if !status.is_null() {
            status.write(st);
        }
    }
    found.map(|_| ())
}

/// CUDA 11.3's four-argument form (no status): a miss is CUDA_ERROR_NOT_FOUND and leaves
/// `*pfn` as it was.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuGetProcAddress(
    symbol: *const c_char,
    pfn: *mut *mut c_void,
    cudaVersion: c_int,
    flags: cuuint64_t,
) -> CUresult {
    guard("cuGetProcAddress", || {
        if symbol.is_null() || pfn.is_null() {
            return Err(INVALID_VALUE);
        }
        // SAFETY: `pfn` is non-null and, per the API, points to a writable pointer.
        let before = unsafe { pfn.read() };
        // SAFETY: both pointers checked above.
        match unsafe { get_proc_address(symbol, pfn, cudaVersion, flags, null_mut()) } {
            Ok(()) => Ok(()),
            Err(Miss::InvalidFlags) => Err(INVALID_VALUE),
            Err(_) => {
                // SAFETY: `pfn` checked above; the miss wrote NULL there, the v1 form does not.
                unsafe { pfn.write(before) };
                Err(CUresult::CUDA_ERROR_NOT_FOUND)
            }
        }
    })
}

/// CUDA 12.0's form; `symbolStatus` may be NULL. A miss is CUDA_SUCCESS with `*pfn` = NULL and
/// the reason in `symbolStatus`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuGetProcAddress_v2(
    symbol: *const c_char,
    pfn: *mut *mut c_void,
    cudaVersion: c_int,
    flags: cuuint64_t,
    symbolStatus: *mut CUdriverProcAddressQueryResult,
) -> CUresult {
    guard("cuGetProcAddress_v2", || {
        if symbol.is_null() || pfn.is_null() {
            return Err(INVALID_VALUE);
        }
        // SAFETY: both pointers checked above; `symbolStatus` may be NULL.
        match unsafe { get_proc_address(symbol, pfn, cudaVersion, flags, symbolStatus) } {
            Err(Miss::InvalidFlags) => Err(INVALID_VALUE),
            Ok(()) | Err(_) => Ok(()),
        }
    })
}
