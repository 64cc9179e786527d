//! Tests call the exported entry points as plain Rust functions, the way C would. The driver state
//! is process-global, so every test takes one lock and starts from a fresh state.

use std::ffi::{c_void, CStr};
use std::ptr::{null, null_mut};
use std::sync::{Mutex, MutexGuard, PoisonError};

use cudarc::driver::sys::{
    CUcontext, CUdeviceptr, CUdriverProcAddressQueryResult, CUmemAccessDesc, CUmemAccess_flags,
    CUmemAllocationProp, CUmemAllocationType, CUmemLocationType, CUmemPoolProps, CUmemoryPool,
    CUresult, CUstream,
};
use CUdriverProcAddressQueryResult::*;
use CUresult::*;

use crate::config::Config;
use crate::exports::*;
use crate::procaddr::{cuGetProcAddress, cuGetProcAddress_v2, lookup, Miss, PROCS};
use crate::state::{self, GRANULARITY};

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;
const G: usize = GRANULARITY as usize;

static SERIAL: Mutex<()> = Mutex::new(());

/// Serialises the test and installs a fresh driver with `capacity` per device and `runtime` bytes.
fn fresh(capacity: u64, runtime: u64) -> MutexGuard<'static, ()> {
    let g = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
    state::reset(Config {
        capacity,
        devices: 2,
        runtime_bytes: runtime,
        ..Config::default()
    });
    g
}

/// cuInit + a context on device 0, made current.
fn ctx() -> CUcontext {
    let mut c: CUcontext = null_mut();
    unsafe {
        assert_eq!(cuInit(0), CUDA_SUCCESS);
        assert_eq!(cuCtxCreate_v2(&mut c, 0, 0), CUDA_SUCCESS);
    }
    assert!(!c.is_null());
    c
}

fn info() -> (u64, u64) {
    let (mut f, mut t) = (0usize, 0usize);
    assert_eq!(unsafe { cuMemGetInfo_v2(&mut f, &mut t) }, CUDA_SUCCESS);
    (f as u64, t as u64)
}

fn used() -> u64 {
    let (f, t) = info();
    t - f
}

fn alloc(size: u64) -> CUdeviceptr {
    let mut p: CUdeviceptr = 0;
    assert_eq!(
        unsafe { cuMemAlloc_v2(&mut p, size as usize) },
        CUDA_SUCCESS
    );
    p
}

fn addr(f: unsafe extern "C" fn(*mut CUdeviceptr, usize) -> CUresult) -> *mut c_void {
    f as *mut c_void
}

fn proc(
    name: &CStr,
    version: i32,
    flags: u64,
) -> (CUresult, *mut c_void, CUdriverProcAddressQueryResult) {
    let mut pfn = std::ptr::dangling_mut::<c_void>(); // must be overwritten either way
    let mut st = CU_GET_PROC_ADDRESS_SUCCESS;
    let r = unsafe { cuGetProcAddress_v2(name.as_ptr(), &mut pfn, version, flags, &mut st) };
    (r, pfn, st)
}

fn prop(dev: i32) -> CUmemAllocationProp {
    // SAFETY: all-zero is a valid CUmemAllocationProp (zero is a variant of each enum).
    let mut p: CUmemAllocationProp = unsafe { std::mem::zeroed() };
    p.type_ = CUmemAllocationType::CU_MEM_ALLOCATION_TYPE_PINNED;
    p.location.type_ = CUmemLocationType::CU_MEM_LOCATION_TYPE_DEVICE;
    p.location.id = dev;
    p
}

fn create(size: usize) -> u64 {
    let mut h = 0u64;
    assert_eq!(
        unsafe { cuMemCreate(&mut h, size, &prop(0), 0) },
        CUDA_SUCCESS
    );
    h
}

fn reserve(size: usize) -> CUdeviceptr {
    let mut va: CUdeviceptr = 0;
    assert_eq!(
        unsafe { cuMemAddressReserve(&mut va, size, 0, 0, 0) },
        CUDA_SUCCESS
    );
    va
}

fn rw_access(dev: i32) -> CUmemAccessDesc {
    // SAFETY: all-zero is a valid CUmemAccessDesc.
    let mut d: CUmemAccessDesc = unsafe { std::mem::zeroed() };
    d.location.type_ = CUmemLocationType::CU_MEM_LOCATION_TYPE_DEVICE;
    d.location.id = dev;
    d.flags = CUmemAccess_flags::CU_MEM_ACCESS_FLAGS_PROT_READWRITE;
    d
}

// ---- configuration --------------------------------------------------------------------------

// ---- cuGetProcAddress -----------------------------------------------------------------------

#[test]
fn procaddr_picks_newest_variant_for_version() {
    let _g = fresh(GIB, 0);
    let cases: &[(&CStr, i32, *mut c_void)] = &[
        (c"cuMemAlloc", 2000, cuMemAlloc as *mut c_void),
        (c"cuMemAlloc", 3010, cuMemAlloc as *mut c_void),
        (c"cuMemAlloc", 3020, addr(cuMemAlloc_v2)),
        (c"cuMemAlloc", 12090, addr(cuMemAlloc_v2)),
        (c"cuMemGetInfo", 2000, cuMemGetInfo as *mut c_void),
        (c"cuMemGetInfo", 3020, cuMemGetInfo_v2 as *mut c_void),
        (c"cuCtxCreate", 3010, cuCtxCreate as *mut c_void),
        (c"cuCtxCreate", 3020, cuCtxCreate_v2 as *mut c_void),
        (c"cuCtxCreate", 11030, cuCtxCreate_v2 as *mut c_void),
        (c"cuCtxCreate", 11040, cuCtxCreate_v3 as *mut c_void),
        (c"cuCtxCreate", 12040, cuCtxCreate_v3 as *mut c_void),
        (c"cuCtxCreate", 12050, cuCtxCreate_v4 as *mut c_void),
        (c"cuMemHostRegister", 6040, cuMemHostRegister as *mut c_void),
        (
            c"cuMemHostRegister",
            6050,
            cuMemHostRegister_v2 as *mut c_void,
        ),
        (c"cuMemAllocHost", 3020, cuMemAllocHost_v2 as *mut c_void),
        (
            c"cuDevicePrimaryCtxRelease",
            10020,
            cuDevicePrimaryCtxRelease as *mut c_void,
        ),
        (
            c"cuDevicePrimaryCtxRelease",
            11000,
            cuDevicePrimaryCtxRelease_v2 as *mut c_void,
        ),
        (
            c"cuDevicePrimaryCtxReset",
            11000,
            cuDevicePrimaryCtxReset_v2 as *mut c_void,
        ),
        (
            c"cuCtxPushCurrent",
            4000,
            cuCtxPushCurrent_v2 as *mut c_void,
        ),
        (c"cuCtxPopCurrent", 3020, cuCtxPopCurrent as *mut c_void),
        (
            c"cuDeviceTotalMem",
            3020,
            cuDeviceTotalMem_v2 as *mut c_void,
        ),
        (c"cuStreamDestroy", 4000, cuStreamDestroy_v2 as *mut c_void),
        (c"cuGetProcAddress", 11030, cuGetProcAddress as *mut c_void),
        (c"cuGetProcAddress", 11080, cuGetProcAddress as *mut c_void),
        (
            c"cuGetProcAddress",
            12000,
            cuGetProcAddress_v2 as *mut c_void,
        ),
    ];
    for &(name, ver, want) in cases {
        let (r, pfn, st) = proc(name, ver, 0);
        assert_eq!(
            (r, st),
            (CUDA_SUCCESS, CU_GET_PROC_ADDRESS_SUCCESS),
            "{name:?}@{ver}"
        );
        assert_eq!(pfn, want, "{name:?}@{ver}");
    }
}

#[test]
fn procaddr_flags_select_ptsz_only_where_it_exists() {
    let _g = fresh(GIB, 0);
    for (name, plain, ptsz) in [
        (
            c"cuMemAllocAsync",
            cuMemAllocAsync as *mut c_void,
            cuMemAllocAsync_ptsz as *mut c_void,
        ),
        (
            c"cuMemFreeAsync",
            cuMemFreeAsync as *mut c_void,
            cuMemFreeAsync_ptsz as *mut c_void,
        ),
        (
            c"cuMemAllocFromPoolAsync",
            cuMemAllocFromPoolAsync as *mut c_void,
            cuMemAllocFromPoolAsync_ptsz as *mut c_void,
        ),
    ] {
        assert_ne!(plain, ptsz);
        assert_eq!(proc(name, 11020, 0).1, plain, "{name:?} legacy");
        assert_eq!(proc(name, 11020, 1).1, plain, "{name:?} default");
        assert_eq!(proc(name, 11020, 2).1, ptsz, "{name:?} per-thread");
        assert_eq!(proc(name, 12090, 3).1, ptsz, "{name:?} per-thread bit");
    }
    // cuStreamSynchronize_ptsz is CUDA 7.0: per-thread before it is too new for the caller.
    assert_eq!(
        proc(c"cuStreamSynchronize", 7000, 2).1,
        cuStreamSynchronize_ptsz as *mut c_void
    );
    assert_eq!(
        proc(c"cuStreamSynchronize", 6050, 2),
        (
            CUDA_SUCCESS,
            null_mut(),
            CU_GET_PROC_ADDRESS_VERSION_NOT_SUFFICIENT
        )
    );
    // No _ptsz variant: the flag changes nothing.
    assert_eq!(proc(c"cuMemAlloc", 12000, 2).1, addr(cuMemAlloc_v2));
    assert_eq!(
        proc(c"cuStreamCreate", 7000, 2).1,
        cuStreamCreate as *mut c_void
    );
}

#[test]
fn procaddr_misses_succeed_with_the_reason_in_the_status() {
    let _g = fresh(GIB, 0);
    let cases: &[(&CStr, i32, CUdriverProcAddressQueryResult)] = &[
        (c"", 0, CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND),
        (c"", 12090, CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND),
        (
            c"cuNoSuchFunction",
            12090,
            CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND,
        ),
        // Exact versioned names are not lookup keys.
        (
            c"cuMemAlloc_v2",
            12090,
            CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND,
        ),
        (
            c"cuMemAllocAsync_ptsz",
            12090,
            CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND,
        ),
        (
            c"cuGetProcAddress_v2",
            12090,
            CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND,
        ),
        // Known, but newer than the caller.
        (
            c"cuMemAllocAsync",
            11010,
            CU_GET_PROC_ADDRESS_VERSION_NOT_SUFFICIENT,
        ),
        (
            c"cuMemCreate",
            10010,
            CU_GET_PROC_ADDRESS_VERSION_NOT_SUFFICIENT,
        ),
        (
            c"cuGetProcAddress",
            11020,
            CU_GET_PROC_ADDRESS_VERSION_NOT_SUFFICIENT,
        ),
        (c"cuMemAlloc", 0, CU_GET_PROC_ADDRESS_VERSION_NOT_SUFFICIENT),
        (
            c"cuMemAlloc",
            1999,
            CU_GET_PROC_ADDRESS_VERSION_NOT_SUFFICIENT,
        ),
    ];
    for &(name, ver, want) in cases {
        // cuGetProcAddress_v2: not an error; NULL and the reason.
        let (r, pfn, st) = proc(name, ver, 0);
        assert_eq!(r, CUDA_SUCCESS, "{name:?}@{ver}");
        assert_eq!(st, want, "{name:?}@{ver}");
        assert!(pfn.is_null(), "{name:?}@{ver}");
        // cuGetProcAddress: CUDA_ERROR_NOT_FOUND, *pfn left as it was.
        let mut pfn = std::ptr::dangling_mut::<c_void>();
        let r = unsafe { cuGetProcAddress(name.as_ptr(), &mut pfn, ver, 0) };
        assert_eq!(
            (r, pfn),
            (CUDA_ERROR_NOT_FOUND, std::ptr::dangling_mut()),
            "v1 {name:?}@{ver}"
        );
        assert_eq!(r as u32, 500);
    }
}

#[test]
fn procaddr_negative_versions_ask_for_the_newest() {
    let _g = fresh(GIB, 0);
    for ver in [-1, i32::MIN, i32::MAX] {
        let (r, pfn, st) = proc(c"cuCtxCreate", ver, 0);
        assert_eq!(
            (r, st, pfn),
            (
                CUDA_SUCCESS,
                CU_GET_PROC_ADDRESS_SUCCESS,
                cuCtxCreate_v4 as *mut c_void
            ),
            "@{ver}"
        );
    }
}

#[test]
fn procaddr_unknown_flag_bits_are_invalid_and_write_nothing() {
    let _g = fresh(GIB, 0);
    for flags in [4, 8, 0x100, 1 << 63, u64::MAX] {
        for name in [c"cuMemAlloc", c"cuNoSuchFunction", c""] {
            let mut pfn = std::ptr::dangling_mut::<c_void>();
            let mut st = CU_GET_PROC_ADDRESS_VERSION_NOT_SUFFICIENT;
            let r = unsafe { cuGetProcAddress_v2(name.as_ptr(), &mut pfn, 12000, flags, &mut st) };
            assert_eq!(r, CUDA_ERROR_INVALID_VALUE, "{name:?} flags {flags:#x}");
            assert_eq!(
                (pfn, st),
                (
                    std::ptr::dangling_mut(),
                    CU_GET_PROC_ADDRESS_VERSION_NOT_SUFFICIENT
                )
            );
            let r = unsafe { cuGetProcAddress(name.as_ptr(), &mut pfn, 12000, flags) };
            assert_eq!(
                (r, pfn),
                (CUDA_ERROR_INVALID_VALUE, std::ptr::dangling_mut()),
                "v1 {name:?} flags {flags:#x}"
            );
        }
    }
    // Both stream bits together: the per-thread one wins.
    assert_eq!(
        proc(c"cuMemFreeAsync", 11020, 3).1,
        cuMemFreeAsync_ptsz as *mut c_void
    );
}

#[test]
fn an_older_driver_has_only_its_own_variants() {
    let _g = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
    state::reset(Config {
        driver_version: 12020,
        ..Config::default()
    });
    let mut v = 0;
    assert_eq!(unsafe { cuDriverGetVersion(&mut v) }, CUDA_SUCCESS);
    assert_eq!(v, 12020);
    // cuCtxCreate_v4 is CUDA 12.5: a 12.2 driver answers a 12.9 caller with _v3.
    for ver in [12050, 12090, -1] {
        assert_eq!(
            proc(c"cuCtxCreate", ver, 0),
            (
                CUDA_SUCCESS,
                cuCtxCreate_v3 as *mut c_void,
                CU_GET_PROC_ADDRESS_SUCCESS
            )
        );
    }
    assert_eq!(proc(c"cuMemAlloc", 12090, 0).1, addr(cuMemAlloc_v2));
    // A base name whose every variant is newer than the driver is unknown to it.
    state::reset(Config {
        driver_version: 11020,
        ..Config::default()
    });
    assert_eq!(
        proc(c"cuGetProcAddress", 12000, 0),
        (
            CUDA_SUCCESS,
            null_mut(),
            CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND
        )
    );
    assert_eq!(
        proc(c"cuMemAllocAsync", 11020, 2).1,
        cuMemAllocAsync_ptsz as *mut c_void
    );
    state::reset(Config::default());
    assert_eq!(unsafe { cuDriverGetVersion(&mut v) }, CUDA_SUCCESS);
    assert_eq!(v, 12090);
}

#[test]
fn procaddr_status_may_be_null() {
    let _g = fresh(GIB, 0);
    let mut pfn = null_mut();
    unsafe {
        let r = cuGetProcAddress_v2(c"cuMemFree".as_ptr(), &mut pfn, 3020, 0, null_mut());
        assert_eq!((r, pfn), (CUDA_SUCCESS, cuMemFree_v2 as *mut c_void));
        let r = cuGetProcAddress_v2(c"nope".as_ptr(), &mut pfn, 3020, 0, null_mut());
        assert_eq!((r, pfn), (CUDA_SUCCESS, null_mut()));
        let r = cuGetProcAddress(c"cuMemFree".as_ptr(), &mut pfn, 2000, 0);
        assert_eq!((r, pfn), (CUDA_SUCCESS, cuMemFree as *mut c_void));
        let r = cuGetProcAddress(c"cuMemAllocAsync".as_ptr(), &mut pfn, 11020, 2);
        assert_eq!(
            (r, pfn),
            (CUDA_SUCCESS, cuMemAllocAsync_ptsz as *mut c_void)
        );
        // NULL symbol or pfn: the real driver crashes; the fake says no.
        assert_eq!(
            cuGetProcAddress(null(), &mut pfn, 12000, 0),
            CUDA_ERROR_INVALID_VALUE
        );
        assert_eq!(
            cuGetProcAddress_v2(c"cuInit".as_ptr(), null_mut(), 12000, 0, null_mut()),
            CUDA_ERROR_INVALID_VALUE
        );
    }
}

#[test]
fn procaddr_table_is_consistent() {
    let mut seen = std::collections::HashSet::new();
    for (base, variants) in PROCS {
        assert!(!variants.is_empty());
        for v in *variants {
            assert!(v.symbol.starts_with(base), "{} under {base}", v.symbol);
            assert!(
                seen.insert(v.f.0),
                "{} shares an address with another entry point",
                v.symbol
            );
            assert!(seen.len() < 1000);
        }
        // Exact lookups resolve to themselves at their own version.
        for v in variants.iter() {
            let got = lookup(base.as_bytes(), v.since, if v.ptsz { 2 } else { 0 }).unwrap();
            assert_eq!(got.symbol, v.symbol);
        }
    }
}

#[test]
fn every_recorded_api_is_exported_and_resolvable() {
    for api in vramtrace_trace::Api::ALL {
        let name = api.name();
        let found = PROCS
            .iter()
            .flat_map(|(_, v)| v.iter())
            .find(|v| v.symbol == name);
        let v = found.unwrap_or_else(|| panic!("{name} is not in the procaddr table"));
        let base = PROCS
            .iter()
            .find(|(_, vs)| vs.iter().any(|x| x.symbol == name))
            .unwrap()
            .0;
        // Reachable by lookup at the version that introduced it, with the matching stream flag.
        let got = lookup(base.as_bytes(), v.since, if v.ptsz { 2 } else { 0 }).unwrap();
        assert_eq!(got.symbol, name);
    }
}

#[test]
fn cudart_lookup_list_resolves_what_the_fake_implements() {
    let list = include_str!("../../runners/cudart12-lookups.txt");
    let mut hits = 0;
    for line in list.lines() {
        let mut it = line.split_whitespace();
        // The first line is the probe with an empty name: "" 0 0 → only two fields.
        let (name, ver, flags) = match (it.next(), it.next(), it.next()) {
            (Some(n), Some(v), Some(f)) => {
                (n, v.parse::<i32>().unwrap(), f.parse::<u64>().unwrap())
            }
            (Some(v), Some(f), None) => ("", v.parse().unwrap(), f.parse().unwrap()),
            _ => continue,
        };
        let known = PROCS.iter().any(|(b, _)| *b == name);
        match lookup(name.as_bytes(), ver, flags) {
            Ok(_) => hits += 1,
            Err(m) => {
                assert!(!known, "{name}@{ver} should resolve, got {m:?}");
                assert_eq!(m, Miss::SymbolNotFound);
            }
        }
    }
    assert!(hits >= 40, "only {hits} cudart lookups resolved");
    assert_eq!(
        lookup(b"cuMemAlloc", 3020, 0).unwrap().symbol,
        "cuMemAlloc_v2"
    );
    assert_eq!(
        lookup(b"cuMemAllocAsync", 11020, 2).unwrap().symbol,
        "cuMemAllocAsync_ptsz"
    );
}

// ---- devices, contexts ----------------------------------------------------------------------

#[test]
fn calls_before_init_fail_and_devices_are_reported() {
    let _g = fresh(5 * GIB, 0);
    let mut n = 0;
    let mut p: CUdeviceptr = 0;
    unsafe {
        assert_eq!(cuDeviceGetCount(&mut n), CUDA_ERROR_NOT_INITIALIZED);
        assert_eq!(cuMemAlloc_v2(&mut p, 4096), CUDA_ERROR_NOT_INITIALIZED);
        let mut v = 0;
        assert_eq!(cuDriverGetVersion(&mut v), CUDA_SUCCESS);
        assert_eq!(v, 12090);
        assert_eq!(cuInit(1), CUDA_ERROR_INVALID_VALUE);
        assert_eq!(cuInit(0), CUDA_SUCCESS);
        assert_eq!(cuDeviceGetCount(&mut n), CUDA_SUCCESS);
        assert_eq!(n, 2);
        let mut d = -1;
        assert_eq!(cuDeviceGet(&mut d, 1), CUDA_SUCCESS);
        assert_eq!(d, 1);
        assert_eq!(cuDeviceGet(&mut d, 2), CUDA_ERROR_INVALID_DEVICE);
        let mut total = 0usize;
        assert_eq!(cuDeviceTotalMem_v2(&mut total, 0), CUDA_SUCCESS);
        assert_eq!(total as u64, 5 * GIB);
        let mut total32 = 0u32;
        assert_eq!(cuDeviceTotalMem(&mut total32, 0), CUDA_SUCCESS);
        assert_eq!(total32, u32::MAX);
        let mut name = [0i8; 64];
        assert_eq!(cuDeviceGetName(name.as_mut_ptr(), 64, 0), CUDA_SUCCESS);
        assert_eq!(CStr::from_ptr(name.as_ptr()), c"Fake CUDA Device");
        assert_eq!(cuDeviceGetName(name.as_mut_ptr(), 5, 0), CUDA_SUCCESS);
        assert_eq!(CStr::from_ptr(name.as_ptr()), c"Fake");
        // Memory calls need a current context.
        assert_eq!(cuMemAlloc_v2(&mut p, 4096), CUDA_ERROR_INVALID_CONTEXT);
        assert_eq!(p, 0);
    }
}

#[test]
fn context_stack_and_primary_context() {
    let _g = fresh(GIB, 100 * MIB);
    unsafe {
        assert_eq!(cuInit(0), CUDA_SUCCESS);
        let mut cur: CUcontext = null_mut();
        // Retaining the primary context does not make it current.
        let mut prim: CUcontext = null_mut();
        assert_eq!(cuDevicePrimaryCtxRetain(&mut prim, 0), CUDA_SUCCESS);
        assert_eq!(cuCtxGetCurrent(&mut cur), CUDA_SUCCESS);
        assert!(cur.is_null());
        let mut p: CUdeviceptr = 0;
        assert_eq!(cuMemAlloc_v2(&mut p, 4096), CUDA_ERROR_INVALID_CONTEXT);
        assert_eq!(cuCtxSetCurrent(prim), CUDA_SUCCESS);
        assert_eq!(
            used(),
            100 * MIB,
            "runtime bytes counted once a context exists"
        );
        let a = alloc(MIB);
        // A created context is pushed and current.
        let mut c: CUcontext = null_mut();
        assert_eq!(cuCtxCreate_v4(&mut c, null_mut(), 0, 1), CUDA_SUCCESS);
        assert_eq!(cuCtxGetCurrent(&mut cur), CUDA_SUCCESS);
        assert_eq!(cur, c);
        let mut dev = -1;
        assert_eq!(cuCtxGetDevice(&mut dev), CUDA_SUCCESS);
        assert_eq!(dev, 1);
        assert_eq!(used(), 100 * MIB, "device 1 has only its runtime share");
        let b = alloc(2 * MIB);
        assert_eq!(cuCtxPopCurrent_v2(&mut cur), CUDA_SUCCESS);
        assert_eq!(cur, c);
        assert_eq!(cuCtxGetCurrent(&mut cur), CUDA_SUCCESS);
        assert_eq!(cur, prim);
        assert_eq!(cuCtxPushCurrent_v2(c), CUDA_SUCCESS);
        assert_eq!(cuCtxSynchronize(), CUDA_SUCCESS);
        // Destroying a context frees its allocations and pops it.
        assert_eq!(cuCtxDestroy_v2(c), CUDA_SUCCESS);
        assert_eq!(cuCtxGetCurrent(&mut cur), CUDA_SUCCESS);
        assert_eq!(cur, prim);
        assert_eq!(cuMemFree_v2(b), CUDA_ERROR_INVALID_VALUE);
        assert_eq!(cuCtxDestroy_v2(c), CUDA_ERROR_INVALID_CONTEXT);
        assert_eq!(
            cuCtxDestroy_v2(prim),
            CUDA_ERROR_INVALID_CONTEXT,
            "primary is not destroyable"
        );
        assert_eq!(
            cuCtxPushCurrent_v2(0xdead as CUcontext),
            CUDA_ERROR_INVALID_CONTEXT
        );
        // Releasing the last reference of the primary context frees what it owned.
        assert_eq!(used(), 100 * MIB + MIB);
        assert_eq!(cuDevicePrimaryCtxRelease_v2(0), CUDA_SUCCESS);
        assert_eq!(
            cuMemFree_v2(a),
            CUDA_ERROR_INVALID_CONTEXT,
            "current primary is inactive"
        );
        assert_eq!(cuDevicePrimaryCtxRelease_v2(0), CUDA_ERROR_INVALID_CONTEXT);
        assert_eq!(cuDevicePrimaryCtxRetain(&mut cur, 0), CUDA_SUCCESS);
        assert_eq!(cur, prim, "the primary context keeps its handle");
        assert_eq!(used(), 100 * MIB);
        alloc(MIB);
        assert_eq!(cuDevicePrimaryCtxReset_v2(0), CUDA_SUCCESS);
        assert_eq!(cuDevicePrimaryCtxRetain(&mut cur, 0), CUDA_SUCCESS);
        assert_eq!(used(), 100 * MIB, "reset destroyed everything");
        assert_eq!(cuCtxPopCurrent_v2(null_mut()), CUDA_SUCCESS);
        assert_eq!(cuCtxPopCurrent_v2(null_mut()), CUDA_ERROR_INVALID_CONTEXT);
    }
}

#[test]
fn context_creation_needs_room_for_the_runtime() {
    let _g = fresh(64 * MIB, 128 * MIB);
    let mut c: CUcontext = null_mut();
    unsafe {
        assert_eq!(cuInit(0), CUDA_SUCCESS);
        assert_eq!(cuCtxCreate_v2(&mut c, 0, 0), CUDA_ERROR_OUT_OF_MEMORY);
        assert!(c.is_null());
        assert_eq!(
            cuCtxCreate_v3(&mut c, null_mut(), -1, 0, 0),
            CUDA_ERROR_INVALID_VALUE
        );
    }
}

// ---- cuMemAlloc family ----------------------------------------------------------------------

#[test]
fn out_of_memory_allocates_nothing() {
    let _g = fresh(GIB, 256 * MIB);
    ctx();
    assert_eq!(info(), (768 * MIB, GIB));
    let mut p: CUdeviceptr = 0x1234;
    assert_eq!(
        unsafe { cuMemAlloc_v2(&mut p, (800 * MIB) as usize) },
        CUDA_ERROR_OUT_OF_MEMORY
    );
    assert_eq!(p, 0x1234, "*dptr untouched on failure");
    assert_eq!(info().0, 768 * MIB);
    let a = alloc(700 * MIB);
    assert_eq!(info().0, 68 * MIB);
    assert_eq!(
        unsafe { cuMemAllocManaged(&mut p, (69 * MIB) as usize, 1) },
        CUDA_ERROR_OUT_OF_MEMORY
    );
    let mut pitch = 0usize;
    let r = unsafe { cuMemAllocPitch_v2(&mut p, &mut pitch, 1 << 20, 69, 4) };
    assert_eq!(r, CUDA_ERROR_OUT_OF_MEMORY);
    assert_eq!(p, 0x1234);
    let b = alloc(68 * MIB);
    assert_eq!(info().0, 0);
    assert_eq!(
        unsafe { cuMemAlloc_v2(&mut p, 1) },
        CUDA_ERROR_OUT_OF_MEMORY
    );
    unsafe {
        assert_eq!(cuMemFree_v2(a), CUDA_SUCCESS);
        assert_eq!(cuMemFree_v2(b), CUDA_SUCCESS);
    }
    assert_eq!(info().0, 768 * MIB);
    assert_eq!(
        unsafe { cuMemAlloc_v2(&mut p, usize::MAX) },
        CUDA_ERROR_OUT_OF_MEMORY
    );
}

#[test]
fn pointers_are_aligned_unique_and_frees_are_checked() {
    let _g = fresh(GIB, 0);
    ctx();
    let mut seen = std::collections::HashSet::new();
    for size in [1u64, 100, 512, 513, 4096, MIB + 3] {
        let p = alloc(size);
        assert_eq!(p % 512, 0);
        assert!(seen.insert(p));
        assert_eq!(unsafe { cuMemFree_v2(p) }, CUDA_SUCCESS);
        assert_eq!(
            unsafe { cuMemFree_v2(p) },
            CUDA_ERROR_INVALID_VALUE,
            "double free"
        );
    }
    let again = alloc(1);
    assert!(!seen.contains(&again), "addresses are never reused");
    unsafe {
        assert_eq!(cuMemFree_v2(again + 512), CUDA_ERROR_INVALID_VALUE);
        assert_eq!(cuMemFree_v2(0), CUDA_ERROR_INVALID_VALUE);
        let mut p: CUdeviceptr = 0;
        assert_eq!(cuMemAlloc_v2(&mut p, 0), CUDA_ERROR_INVALID_VALUE);
        let mut pitch = 0usize;
        assert_eq!(
            cuMemAllocPitch_v2(&mut p, &mut pitch, 1000, 3, 4),
            CUDA_SUCCESS
        );
        assert_eq!(pitch, 1024);
        assert_eq!(used(), 1 + 3 * 1024);
        assert_eq!(
            cuMemAllocPitch_v2(&mut p, &mut pitch, 1000, 3, 3),
            CUDA_ERROR_INVALID_VALUE
        );
        assert_eq!(cuMemAllocManaged(&mut p, 4096, 4), CUDA_ERROR_INVALID_VALUE);
        // The 32-bit entry points.
        let mut p32 = 0u32;
        assert_eq!(cuMemAlloc(&mut p32, 4096), CUDA_ERROR_NOT_SUPPORTED);
        assert_eq!(cuMemFree(0x1000), CUDA_ERROR_INVALID_VALUE);
        let (mut f32, mut t32) = (0u32, 0u32);
        assert_eq!(cuMemGetInfo(&mut f32, &mut t32), CUDA_SUCCESS);
        assert_eq!(t32 as u64, GIB);
    }
}

#[test]
fn null_out_params_are_invalid_value() {
    let _g = fresh(GIB, 0);
    ctx();
    let mut x = 0usize;
    unsafe {
        assert_eq!(
            cuMemGetInfo_v2(null_mut(), &mut x),
            CUDA_ERROR_INVALID_VALUE
        );
        assert_eq!(
            cuMemGetInfo_v2(&mut x, null_mut()),
            CUDA_ERROR_INVALID_VALUE
        );
        assert_eq!(
            cuMemGetInfo_v2(null_mut(), null_mut()),
            CUDA_ERROR_INVALID_VALUE
        );
        assert_eq!(cuMemAlloc_v2(null_mut(), 4096), CUDA_ERROR_INVALID_VALUE);
        assert_eq!(
            cuMemAllocPitch_v2(null_mut(), &mut x, 64, 64, 4),
            CUDA_ERROR_INVALID_VALUE
        );
        let mut p: CUdeviceptr = 0;
        assert_eq!(
            cuMemAllocPitch_v2(&mut p, null_mut(), 64, 64, 4),
            CUDA_ERROR_INVALID_VALUE
        );
        assert_eq!(
            cuMemAllocManaged(null_mut(), 4096, 1),
            CUDA_ERROR_INVALID_VALUE
        );
        assert_eq!(
            cuMemAllocAsync(null_mut(), 4096, null_mut()),
            CUDA_ERROR_INVALID_VALUE
        );
        assert_eq!(
            cuMemCreate(null_mut(), G, &prop(0), 0),
            CUDA_ERROR_INVALID_VALUE
        );
        assert_eq!(
            cuMemAddressReserve(null_mut(), G, 0, 0, 0),
            CUDA_ERROR_INVALID_VALUE
        );
        assert_eq!(
            cuMemGetAllocationGranularity(null_mut(), &prop(0), 0),
            CUDA_ERROR_INVALID_VALUE
        );
        assert_eq!(
            cuMemHostAlloc(null_mut(), 4096, 0),
            CUDA_ERROR_INVALID_VALUE
        );
        assert_eq!(
            cuMemAllocHost_v2(null_mut(), 4096),
            CUDA_ERROR_INVALID_VALUE
        );
        assert_eq!(cuCtxCreate_v2(null_mut(), 0, 0), CUDA_ERROR_INVALID_VALUE);
        assert_eq!(cuCtxGetCurrent(null_mut()), CUDA_ERROR_INVALID_VALUE);
        assert_eq!(
            cuDevicePrimaryCtxRetain(null_mut(), 0),
            CUDA_ERROR_INVALID_VALUE
        );
        assert_eq!(
            cuDeviceGetDefaultMemPool(null_mut(), 0),
            CUDA_ERROR_INVALID_VALUE
        );
        assert_eq!(cuStreamCreate(null_mut(), 0), CUDA_ERROR_INVALID_VALUE);
        assert_eq!(cuDriverGetVersion(null_mut()), CUDA_ERROR_INVALID_VALUE);
        assert_eq!(cuGetErrorString(2, null_mut()), CUDA_ERROR_INVALID_VALUE);
    }
    assert_eq!(used(), 0, "nothing was allocated");
}

#[test]
fn error_names_and_strings() {
    let mut s: *const std::ffi::c_char = null();
    unsafe {
        assert_eq!(cuGetErrorName(2, &mut s), CUDA_SUCCESS);
        assert_eq!(CStr::from_ptr(s), c"CUDA_ERROR_OUT_OF_MEMORY");
        assert_eq!(cuGetErrorString(2, &mut s), CUDA_SUCCESS);
        assert_eq!(CStr::from_ptr(s), c"out of memory");
        assert_eq!(cuGetErrorString(500, &mut s), CUDA_SUCCESS);
        assert_eq!(CStr::from_ptr(s), c"named symbol not found");
        assert_eq!(cuGetErrorName(123456, &mut s), CUDA_ERROR_INVALID_VALUE);
        assert!(s.is_null());
    }
}

// ---- stream-ordered pools -------------------------------------------------------------------

#[test]
fn pools_retain_freed_memory_until_trimmed() {
    let _g = fresh(GIB, 0);
    ctx();
    let mut stream: CUstream = null_mut();
    let mut pool: CUmemoryPool = null_mut();
    unsafe {
        assert_eq!(cuStreamCreate(&mut stream, 0), CUDA_SUCCESS);
        assert_eq!(cuDeviceGetDefaultMemPool(&mut pool, 0), CUDA_SUCCESS);
        let mut a: CUdeviceptr = 0;
        assert_eq!(
            cuMemAllocAsync(&mut a, (100 * MIB) as usize, stream),
            CUDA_SUCCESS
        );
        assert_eq!(used(), 100 * MIB);
        assert_eq!(cuMemFreeAsync(a, stream), CUDA_SUCCESS);
        assert_eq!(used(), 100 * MIB, "the pool retains freed memory");
        assert_eq!(cuMemFreeAsync(a, stream), CUDA_ERROR_INVALID_VALUE);
        // Reuse: a smaller allocation takes no new memory.
        let mut b: CUdeviceptr = 0;
        assert_eq!(
            cuMemAllocAsync_ptsz(&mut b, (60 * MIB) as usize, null_mut()),
            CUDA_SUCCESS
        );
        assert_ne!(a, b);
        assert_eq!(used(), 100 * MIB);
        // Growth takes only the shortfall.
        let mut c: CUdeviceptr = 0;
        assert_eq!(
            cuMemAllocAsync(&mut c, (50 * MIB) as usize, stream),
            CUDA_SUCCESS
        );
        assert_eq!(used(), 110 * MIB);
        // Trim never releases memory in use.
        assert_eq!(cuMemPoolTrimTo(pool, 0), CUDA_SUCCESS);
        assert_eq!(used(), 110 * MIB);
        assert_eq!(cuMemFreeAsync_ptsz(b, 0x2 as CUstream), CUDA_SUCCESS);
        assert_eq!(used(), 110 * MIB);
        assert_eq!(cuMemPoolTrimTo(pool, (80 * MIB) as usize), CUDA_SUCCESS);
        assert_eq!(used(), 80 * MIB);
        assert_eq!(cuMemPoolTrimTo(pool, 0), CUDA_SUCCESS);
        assert_eq!(used(), 50 * MIB);
        // cuMemFree works on stream-ordered memory too, returning it to the pool.
        assert_eq!(cuMemFree_v2(c), CUDA_SUCCESS);
        assert_eq!(used(), 50 * MIB);
        assert_eq!(cuMemPoolTrimTo(pool, 0), CUDA_SUCCESS);
        assert_eq!(used(), 0);
        // Pool retention counts against capacity.
        assert_eq!(
            cuMemAllocAsync(&mut a, (900 * MIB) as usize, stream),
            CUDA_SUCCESS
        );
        assert_eq!(cuMemFreeAsync(a, stream), CUDA_SUCCESS);
        let mut p: CUdeviceptr = 0;
        assert_eq!(
            cuMemAlloc_v2(&mut p, (200 * MIB) as usize),
            CUDA_ERROR_OUT_OF_MEMORY
        );
        assert_eq!(cuMemPoolTrimTo(pool, 0), CUDA_SUCCESS);
        assert_eq!(cuMemAlloc_v2(&mut p, (200 * MIB) as usize), CUDA_SUCCESS);
        // Bad streams and pools.
        assert_eq!(
            cuMemAllocAsync(&mut p, 4096, 0x77 as CUstream),
            CUDA_ERROR_INVALID_HANDLE
        );
        assert_eq!(cuStreamSynchronize(stream), CUDA_SUCCESS);
        assert_eq!(cuStreamDestroy_v2(stream), CUDA_SUCCESS);
        assert_eq!(cuStreamDestroy_v2(stream), CUDA_ERROR_INVALID_HANDLE);
        assert_eq!(cuStreamSynchronize(stream), CUDA_ERROR_INVALID_HANDLE);
        assert_eq!(
            cuMemPoolTrimTo(0x99 as CUmemoryPool, 0),
            CUDA_ERROR_INVALID_VALUE
        );
        assert_eq!(
            cuMemPoolDestroy(pool),
            CUDA_ERROR_INVALID_VALUE,
            "default pool"
        );
    }
}

#[test]
fn explicit_pools() {
    let _g = fresh(GIB, 0);
    ctx();
    // SAFETY: all-zero is a valid CUmemPoolProps.
    let mut props: CUmemPoolProps = unsafe { std::mem::zeroed() };
    props.allocType = CUmemAllocationType::CU_MEM_ALLOCATION_TYPE_PINNED;
    props.location.type_ = CUmemLocationType::CU_MEM_LOCATION_TYPE_DEVICE;
    props.location.id = 0;
    let mut pool: CUmemoryPool = null_mut();
    unsafe {
        assert_eq!(cuMemPoolCreate(&mut pool, &props), CUDA_SUCCESS);
        let mut a: CUdeviceptr = 0;
        assert_eq!(
            cuMemAllocFromPoolAsync(&mut a, (10 * MIB) as usize, pool, null_mut()),
            CUDA_SUCCESS
        );
        let mut b: CUdeviceptr = 0;
        let r = cuMemAllocFromPoolAsync_ptsz(&mut b, (10 * MIB) as usize, pool, null_mut());
        assert_eq!(r, CUDA_SUCCESS);
        assert_eq!(cuMemFreeAsync(a, null_mut()), CUDA_SUCCESS);
        assert_eq!(used(), 20 * MIB);
        // Destroying gives back what is not in use; the rest goes when freed.
        assert_eq!(cuMemPoolDestroy(pool), CUDA_SUCCESS);
        assert_eq!(used(), 10 * MIB);
        assert_eq!(
            cuMemAllocFromPoolAsync(&mut a, 4096, pool, null_mut()),
            CUDA_ERROR_INVALID_VALUE
        );
        assert_eq!(cuMemFreeAsync(b, null_mut()), CUDA_SUCCESS);
        assert_eq!(used(), 0);
        assert_eq!(cuMemPoolDestroy(pool), CUDA_ERROR_INVALID_VALUE);
        props.location.id = 7;
        assert_eq!(cuMemPoolCreate(&mut pool, &props), CUDA_ERROR_INVALID_VALUE);
        assert_eq!(cuMemPoolCreate(&mut pool, null()), CUDA_ERROR_INVALID_VALUE);
    }
}

// ---- VMM ------------------------------------------------------------------------------------

#[test]
fn vmm_granularity_and_create_validation() {
    let _g = fresh(GIB, 0);
    ctx();
    let mut g = 0usize;
    let mut h = 0u64;
    unsafe {
        assert_eq!(
            cuMemGetAllocationGranularity(&mut g, &prop(0), 0),
            CUDA_SUCCESS
        );
        assert_eq!(g, 2 << 20);
        assert_eq!(
            cuMemGetAllocationGranularity(&mut g, &prop(0), 1),
            CUDA_SUCCESS
        );
        assert_eq!(g, 2 << 20);
        assert_eq!(
            cuMemGetAllocationGranularity(&mut g, &prop(0), 2),
            CUDA_ERROR_INVALID_VALUE
        );
        assert_eq!(
            cuMemGetAllocationGranularity(&mut g, null(), 0),
            CUDA_ERROR_INVALID_VALUE
        );

        assert_eq!(
            cuMemCreate(&mut h, G + 4096, &prop(0), 0),
            CUDA_ERROR_INVALID_VALUE
        );
        assert_eq!(
            cuMemCreate(&mut h, 0, &prop(0), 0),
            CUDA_ERROR_INVALID_VALUE
        );
        assert_eq!(cuMemCreate(&mut h, G, null(), 0), CUDA_ERROR_INVALID_VALUE);
        assert_eq!(
            cuMemCreate(&mut h, G, &prop(5), 0),
            CUDA_ERROR_INVALID_VALUE,
            "bad ordinal"
        );
        assert_eq!(
            cuMemCreate(&mut h, G, &prop(-1), 0),
            CUDA_ERROR_INVALID_VALUE
        );
        assert_eq!(
            cuMemCreate(&mut h, G, &prop(0), 1),
            CUDA_ERROR_INVALID_VALUE,
            "flags"
        );
        let mut p = prop(0);
        p.type_ = CUmemAllocationType::CU_MEM_ALLOCATION_TYPE_INVALID;
        assert_eq!(cuMemCreate(&mut h, G, &p, 0), CUDA_ERROR_INVALID_VALUE);
        let mut p = prop(0);
        p.location.type_ = CUmemLocationType::CU_MEM_LOCATION_TYPE_HOST;
        assert_eq!(cuMemCreate(&mut h, G, &p, 0), CUDA_ERROR_INVALID_VALUE);
        // A value outside the enum, as C can pass: an error, not undefined behaviour.
        let mut p = prop(0);
        std::ptr::addr_of_mut!(p.type_).cast::<u32>().write(77);
        assert_eq!(cuMemCreate(&mut h, G, &p, 0), CUDA_ERROR_INVALID_VALUE);
        assert_eq!(h, 0, "*handle untouched on failure");
        assert_eq!(used(), 0);
        // Physical memory counts against capacity.
        assert_eq!(cuMemCreate(&mut h, 1024 << 20, &prop(0), 0), CUDA_SUCCESS);
        assert_eq!(used(), GIB);
        let mut h2 = 0u64;
        assert_eq!(
            cuMemCreate(&mut h2, G, &prop(0), 0),
            CUDA_ERROR_OUT_OF_MEMORY
        );
        assert_eq!(
            cuMemCreate(&mut h2, G, &prop(1), 0),
            CUDA_SUCCESS,
            "device 1 is separate"
        );
        assert_eq!(cuMemRelease(h), CUDA_SUCCESS);
        assert_eq!(cuMemRelease(h), CUDA_ERROR_INVALID_VALUE);
        assert_eq!(cuMemRelease(0x1234), CUDA_ERROR_INVALID_VALUE);
        assert_eq!(used(), 0);
    }
}

#[test]
fn vmm_reserve_map_unmap_validation() {
    let _g = fresh(GIB, 0);
    ctx();
    unsafe {
        let mut va: CUdeviceptr = 0;
        assert_eq!(
            cuMemAddressReserve(&mut va, G + 1, 0, 0, 0),
            CUDA_ERROR_INVALID_VALUE
        );
        assert_eq!(
            cuMemAddressReserve(&mut va, G, 3 * G, 0, 0),
            CUDA_ERROR_INVALID_VALUE
        );
        assert_eq!(
            cuMemAddressReserve(&mut va, G, 0, 0, 1),
            CUDA_ERROR_INVALID_VALUE
        );
        // Address space is not memory.
        let r = reserve(32 << 30);
        assert_eq!(r % GRANULARITY, 0);
        assert_eq!(used(), 0);
        let aligned = {
            assert_eq!(
                cuMemAddressReserve(&mut va, G, 64 << 20, 0, 0),
                CUDA_SUCCESS
            );
            va
        };
        assert_eq!(aligned % (64 << 20), 0);
        let other = reserve(4 * G);

        let h = create(4 * G);
        let u = G as u64;
        // Bad maps.
        assert_eq!(
            cuMemMap(r, G, 4096, h, 0),
            CUDA_ERROR_INVALID_VALUE,
            "unaligned offset"
        );
        assert_eq!(
            cuMemMap(r, G, 4 * G, h, 0),
            CUDA_ERROR_INVALID_VALUE,
            "offset past the handle"
        );
        assert_eq!(
            cuMemMap(r, 3 * G, 2 * G, h, 0),
            CUDA_ERROR_INVALID_VALUE,
            "offset+size too big"
        );
        assert_eq!(
            cuMemMap(r, 8 * G, 0, h, 0),
            CUDA_ERROR_INVALID_VALUE,
            "bigger than handle"
        );
        assert_eq!(
            cuMemMap(r + 4096, G, 0, h, 0),
            CUDA_ERROR_INVALID_VALUE,
            "unaligned va"
        );
        assert_eq!(
            cuMemMap(r, G + 4096, 0, h, 0),
            CUDA_ERROR_INVALID_VALUE,
            "unaligned size"
        );
        assert_eq!(cuMemMap(r, G, 0, h, 1), CUDA_ERROR_INVALID_VALUE, "flags");
        assert_eq!(
            cuMemMap(r, G, 0, 0x4242, 0),
            CUDA_ERROR_INVALID_VALUE,
            "unknown handle"
        );
        assert_eq!(
            cuMemMap(0x1000_0000, G, 0, h, 0),
            CUDA_ERROR_INVALID_VALUE,
            "not reserved"
        );
        assert_eq!(
            cuMemMap(other + 3 * u, 2 * G, 0, h, 0),
            CUDA_ERROR_INVALID_VALUE,
            "runs off the end of the reservation"
        );
        assert_eq!(
            cuMemSetAccess(r, G, &rw_access(0), 1),
            CUDA_ERROR_INVALID_VALUE,
            "unmapped"
        );

        assert_eq!(cuMemMap(r, 2 * G, 0, h, 0), CUDA_SUCCESS);
        assert_eq!(
            cuMemMap(r + u, 2 * G, 2 * G, h, 0),
            CUDA_ERROR_INVALID_VALUE,
            "overlap"
        );
        assert_eq!(
            cuMemMap(r, G, 0, h, 0),
            CUDA_ERROR_INVALID_VALUE,
            "overlap at start"
        );
        assert_eq!(
            cuMemMap(r + 2 * u, 2 * G, 2 * G, h, 0),
            CUDA_SUCCESS,
            "adjacent is fine"
        );

        // Access: fully mapped only; descriptors validated.
        assert_eq!(cuMemSetAccess(r, 4 * G, &rw_access(0), 1), CUDA_SUCCESS);
        assert_eq!(
            cuMemSetAccess(r + u, G, &rw_access(0), 1),
            CUDA_SUCCESS,
            "inner range"
        );
        assert_eq!(
            cuMemSetAccess(r, 5 * G, &rw_access(0), 1),
            CUDA_ERROR_INVALID_VALUE
        );
        assert_eq!(
            cuMemSetAccess(r, G, &rw_access(9), 1),
            CUDA_ERROR_INVALID_VALUE
        );
        assert_eq!(cuMemSetAccess(r, G, null(), 1), CUDA_ERROR_INVALID_VALUE);
        assert_eq!(
            cuMemSetAccess(r, G, &rw_access(0), 0),
            CUDA_ERROR_INVALID_VALUE
        );
        let two = [rw_access(0), rw_access(1)];
        assert_eq!(cuMemSetAccess(r, 4 * G, two.as_ptr(), 2), CUDA_SUCCESS);

        // Unmap: whole mappings only, no gaps.
        assert_eq!(cuMemUnmap(r, G), CUDA_ERROR_INVALID_VALUE, "half a mapping");
        assert_eq!(
            cuMemUnmap(r + u, 2 * G),
            CUDA_ERROR_INVALID_VALUE,
            "straddles two halves"
        );
        assert_eq!(
            cuMemUnmap(r, 6 * G),
            CUDA_ERROR_INVALID_VALUE,
            "past the mapped end"
        );
        assert_eq!(
            cuMemAddressFree(r, 32 << 30),
            CUDA_ERROR_INVALID_VALUE,
            "still mapped"
        );
        assert_eq!(cuMemUnmap(r, 4 * G), CUDA_SUCCESS, "two mappings at once");
        assert_eq!(
            cuMemUnmap(r, 4 * G),
            CUDA_ERROR_INVALID_VALUE,
            "already unmapped"
        );

        // Address free: exact reservation only.
        assert_eq!(cuMemAddressFree(r, G), CUDA_ERROR_INVALID_VALUE);
        assert_eq!(
            cuMemAddressFree(r + u, (32 << 30) - G),
            CUDA_ERROR_INVALID_VALUE
        );
        assert_eq!(cuMemAddressFree(r, 32 << 30), CUDA_SUCCESS);
        assert_eq!(cuMemAddressFree(r, 32 << 30), CUDA_ERROR_INVALID_VALUE);

        // A released handle cannot be mapped again.
        assert_eq!(cuMemRelease(h), CUDA_SUCCESS);
        assert_eq!(cuMemMap(other, G, 0, h, 0), CUDA_ERROR_INVALID_VALUE);
        assert_eq!(used(), 0);
    }
}

#[test]
fn a_handle_mapped_twice_is_counted_once() {
    let _g = fresh(GIB, 0);
    ctx();
    let (r1, r2) = (reserve(8 * G), reserve(8 * G));
    let h = create(4 * G);
    unsafe {
        assert_eq!(cuMemMap(r1, 4 * G, 0, h, 0), CUDA_SUCCESS);
        assert_eq!(cuMemMap(r2, 4 * G, 0, h, 0), CUDA_SUCCESS);
        assert_eq!(
            cuMemMap(r2 + 4 * G as u64, 2 * G, 2 * G, h, 0),
            CUDA_SUCCESS
        );
        assert_eq!(used(), 4 * G as u64);
        assert_eq!(cuMemRelease(h), CUDA_SUCCESS);
        assert_eq!(used(), 4 * G as u64, "still mapped");
        assert_eq!(cuMemUnmap(r1, 4 * G), CUDA_SUCCESS);
        assert_eq!(used(), 4 * G as u64, "still mapped at r2");
        assert_eq!(cuMemUnmap(r2, 6 * G), CUDA_SUCCESS);
        assert_eq!(used(), 0, "last mapping gone");
    }
}

#[test]
fn ggml_vmm_pool_pattern() {
    // ggml_cuda_pool_vmm: reserve 32 GiB once; per growth create → map at the end → release →
    // set access; at teardown one unmap of everything and one address free.
    let _g = fresh(GIB, 0);
    ctx();
    let base = reserve(32 << 30);
    let mut size = 0u64;
    for grow in [G, 3 * G, G, 2 * G] {
        let h = create(grow);
        unsafe {
            assert_eq!(cuMemMap(base + size, grow, 0, h, 0), CUDA_SUCCESS);
            assert_eq!(cuMemRelease(h), CUDA_SUCCESS);
            assert_eq!(
                cuMemSetAccess(base + size, grow, &rw_access(0), 1),
                CUDA_SUCCESS
            );
        }
        size += grow as u64;
        assert_eq!(used(), size, "released handles stay while mapped");
    }
    unsafe {
        assert_eq!(
            cuMemSetAccess(base, size as usize, &rw_access(0), 1),
            CUDA_SUCCESS
        );
        assert_eq!(cuMemUnmap(base, size as usize), CUDA_SUCCESS);
        assert_eq!(used(), 0);
        assert_eq!(cuMemAddressFree(base, 32 << 30), CUDA_SUCCESS);
    }
}

// ---- host memory ----------------------------------------------------------------------------

#[test]
fn pinned_host_memory_is_real_memory() {
    let _g = fresh(GIB, 0);
    ctx();
    unsafe {
        let mut p: *mut c_void = null_mut();
        assert_eq!(cuMemHostAlloc(&mut p, 10000, 1), CUDA_SUCCESS);
        assert_eq!(p as usize % 4096, 0);
        std::ptr::write_bytes(p.cast::<u8>(), 0xab, 10000);
        assert_eq!(used(), 0, "host memory is not device memory");
        let mut q: *mut c_void = null_mut();
        assert_eq!(cuMemAllocHost_v2(&mut q, 64), CUDA_SUCCESS);
        assert_eq!(cuMemHostAlloc(&mut q, 64, 0x100), CUDA_ERROR_INVALID_VALUE);
        assert_eq!(cuMemFreeHost(p), CUDA_SUCCESS);
        assert_eq!(cuMemFreeHost(p), CUDA_ERROR_INVALID_VALUE);
        assert_eq!(cuMemFreeHost(q), CUDA_SUCCESS);

        let mut buf = vec![0u8; 8192];
        let b = buf.as_mut_ptr().cast::<c_void>();
        assert_eq!(cuMemHostRegister_v2(b, 8192, 0), CUDA_SUCCESS);
        assert_eq!(
            cuMemHostRegister_v2(b.cast::<u8>().add(100).cast(), 10, 0),
            CUDA_ERROR_HOST_MEMORY_ALREADY_REGISTERED
        );
        assert_eq!(
            cuMemHostUnregister(b.cast::<u8>().add(100).cast()),
            CUDA_ERROR_HOST_MEMORY_NOT_REGISTERED
        );
        assert_eq!(cuMemHostUnregister(b), CUDA_SUCCESS);
        assert_eq!(
            cuMemHostUnregister(b),
            CUDA_ERROR_HOST_MEMORY_NOT_REGISTERED
        );
        assert_eq!(
            cuMemHostRegister_v2(null_mut(), 10, 0),
            CUDA_ERROR_INVALID_VALUE
        );
        assert_eq!(cuMemHostRegister(b, 8192, 0), CUDA_SUCCESS);
    }
}

// ---- threads --------------------------------------------------------------------------------

#[test]
fn contexts_are_per_thread_and_the_lock_holds_under_contention() {
    let _g = fresh(GIB, 0);
    let c = ctx();
    let c = c as usize;
    let threads: Vec<_> = (0..8)
        .map(|_| {
            std::thread::spawn(move || unsafe {
                let mut p: CUdeviceptr = 0;
                assert_eq!(cuMemAlloc_v2(&mut p, 4096), CUDA_ERROR_INVALID_CONTEXT);
                assert_eq!(cuCtxSetCurrent(c as CUcontext), CUDA_SUCCESS);
                for _ in 0..2000 {
                    assert_eq!(cuMemAlloc_v2(&mut p, 4096), CUDA_SUCCESS);
                    assert_eq!(cuMemFree_v2(p), CUDA_SUCCESS);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(used(), 0);
    let st = state::with(|s| Ok(s.used_on(0))).unwrap();
    assert_eq!(st, 0);
}
