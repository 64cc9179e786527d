//! The table of recorded driver functions. Ids are part of the file format: never renumber, only
//! append. The shim, the fake driver's tests and the analyzer all key off this one table.

/// What a recorded call does to memory; the analyzer dispatches on this, not on names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ApiKind {
    /// Device allocation returning a pointer (`ptr` out, `size`).
    Alloc,
    /// Managed (unified) allocation.
    AllocManaged,
    /// Stream-ordered allocation from a pool (`ptr` out, `size`, `handle` = pool or 0 for the default).
    AllocAsync,
    /// Frees a device pointer (`ptr`).
    Free,
    /// Stream-ordered free (`ptr`, `stream`).
    FreeAsync,
    /// VMM: reserve virtual address space (`ptr` out, `size`).
    AddressReserve,
    /// VMM: give address space back (`ptr`, `size`).
    AddressFree,
    /// VMM: create a physical allocation (`handle` out, `size`).
    Create,
    /// VMM: release a physical handle (`handle`).
    Release,
    /// VMM: map `handle` at `ptr` (`size`, `offset`).
    Map,
    /// VMM: unmap the range (`ptr`, `size`).
    Unmap,
    /// VMM: set access on a range (`ptr`, `size`).
    SetAccess,
    /// Pinned host allocation (`ptr` out, `size`).
    HostAlloc,
    /// Registers existing host memory as pinned (`ptr`, `size`).
    HostRegister,
    /// Frees / unregisters pinned host memory (`ptr`).
    HostFree,
    /// `cuMemGetInfo`: `free`, `total` out.
    GetInfo,
    /// Pool trim (`handle` = pool, `size` = min bytes to keep).
    PoolTrim,
    /// Context created (`handle` = context, `device`).
    CtxCreate,
    /// Context destroyed (`handle` = context).
    CtxDestroy,
    /// Primary context released or reset (`device`).
    CtxRelease,
}

macro_rules! apis {
    ($( $id:literal => $variant:ident, $name:literal, $kind:ident; )*) => {
        /// A recorded driver function, by its exact exported name.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(u16)]
        pub enum Api { $( $variant = $id, )* }

        impl Api {
            /// Every recorded function, in id order.
            pub const ALL: &'static [Api] = &[ $( Api::$variant, )* ];

            /// The exact driver symbol, e.g. `"cuMemAlloc_v2"`.
            pub const fn name(self) -> &'static str {
                match self { $( Api::$variant => $name, )* }
            }

            pub const fn kind(self) -> ApiKind {
                match self { $( Api::$variant => ApiKind::$kind, )* }
            }

            pub const fn from_id(id: u16) -> Option<Api> {
                match id { $( $id => Some(Api::$variant), )* _ => None }
            }

            pub fn from_name(name: &str) -> Option<Api> {
                match name { $( $name => Some(Api::$variant), )* _ => None }
            }
        }
    };
}

apis! {
    1  => MemAlloc,                  "cuMemAlloc_v2",                Alloc;
    2  => MemAllocPitch,             "cuMemAllocPitch_v2",           Alloc;
    3  => MemAllocManaged,           "cuMemAllocManaged",            AllocManaged;
    4  => MemFree,                   "cuMemFree_v2",                 Free;
    5  => MemAllocAsync,             "cuMemAllocAsync",              AllocAsync;
    6  => MemAllocAsyncPtsz,         "cuMemAllocAsync_ptsz",         AllocAsync;
    7  => MemAllocFromPoolAsync,     "cuMemAllocFromPoolAsync",      AllocAsync;
    8  => MemAllocFromPoolAsyncPtsz, "cuMemAllocFromPoolAsync_ptsz", AllocAsync;
    9  => MemFreeAsync,              "cuMemFreeAsync",               FreeAsync;
    10 => MemFreeAsyncPtsz,          "cuMemFreeAsync_ptsz",          FreeAsync;
    11 => MemAddressReserve,         "cuMemAddressReserve",          AddressReserve;
    12 => MemAddressFree,            "cuMemAddressFree",             AddressFree;
    13 => MemCreate,                 "cuMemCreate",                  Create;
    14 => MemRelease,                "cuMemRelease",                 Release;
    15 => MemMap,                    "cuMemMap",                     Map;
    16 => MemUnmap,                  "cuMemUnmap",                   Unmap;
    17 => MemSetAccess,              "cuMemSetAccess",               SetAccess;
    18 => MemHostAlloc,              "cuMemHostAlloc",               HostAlloc;
    19 => MemAllocHost,              "cuMemAllocHost_v2",            HostAlloc;
    20 => MemFreeHost,               "cuMemFreeHost",                HostFree;
    21 => MemHostRegister,           "cuMemHostRegister_v2",         HostRegister;
    22 => MemHostUnregister,         "cuMemHostUnregister",          HostFree;
    23 => MemGetInfo,                "cuMemGetInfo_v2",              GetInfo;
    24 => MemPoolTrimTo,             "cuMemPoolTrimTo",              PoolTrim;
    25 => CtxCreate,                 "cuCtxCreate_v2",               CtxCreate;
    26 => CtxCreateV3,               "cuCtxCreate_v3",               CtxCreate;
    27 => CtxCreateV4,               "cuCtxCreate_v4",               CtxCreate;
    28 => CtxDestroy,                "cuCtxDestroy_v2",              CtxDestroy;
    29 => DevicePrimaryCtxRetain,    "cuDevicePrimaryCtxRetain",     CtxCreate;
    30 => DevicePrimaryCtxRelease,   "cuDevicePrimaryCtxRelease_v2", CtxRelease;
    31 => DevicePrimaryCtxReset,     "cuDevicePrimaryCtxReset_v2",   CtxRelease;
    // cudart 12.x asks for these at version 7000 and so gets the pre-11.0 entry points.
    32 => DevicePrimaryCtxReleaseV1, "cuDevicePrimaryCtxRelease",    CtxRelease;
    33 => DevicePrimaryCtxResetV1,   "cuDevicePrimaryCtxReset",      CtxRelease;
}

/// Which `EventRec` fields carry an argument for a given function (the rest are zero).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fields {
    pub size: bool,
    pub ptr: bool,
    pub handle: bool,
    pub offset: bool,
    pub flags: bool,
    pub stream: bool,
}

impl Api {
    pub fn fields(self) -> Fields {
        let f = |size, ptr, handle, offset, flags, stream| Fields { size, ptr, handle, offset, flags, stream };
        match self.kind() {
            ApiKind::Alloc => f(true, true, false, matches!(self, Api::MemAllocPitch), matches!(self, Api::MemAllocPitch), false),
            ApiKind::AllocManaged => f(true, true, false, false, true, false),
            ApiKind::AllocAsync => f(true, true, matches!(self, Api::MemAllocFromPoolAsync | Api::MemAllocFromPoolAsyncPtsz), false, false, true),
            ApiKind::Free | ApiKind::HostFree => f(false, true, false, false, false, false),
            ApiKind::FreeAsync => f(false, true, false, false, false, true),
            ApiKind::AddressReserve => f(true, true, true, true, true, false),
            ApiKind::AddressFree | ApiKind::Unmap => f(true, true, false, false, false, false),
            ApiKind::Create => f(true, false, true, false, true, false),
            ApiKind::Release => f(false, false, true, false, false, false),
            ApiKind::Map => f(true, true, true, true, true, false),
            ApiKind::SetAccess => f(true, true, true, false, true, false),
            ApiKind::HostAlloc | ApiKind::HostRegister => f(true, true, false, false, !matches!(self, Api::MemAllocHost), false),
            ApiKind::GetInfo => f(false, false, false, false, false, false),
            ApiKind::PoolTrim => f(true, false, true, false, false, false),
            ApiKind::CtxCreate => f(false, false, true, false, !matches!(self, Api::DevicePrimaryCtxRetain), false),
            ApiKind::CtxDestroy => f(false, false, true, false, false, false),
            ApiKind::CtxRelease => f(false, false, false, false, false, false),
        }
    }

    /// True for calls that return a fresh pointer or handle on success.
    pub fn allocates(self) -> bool {
        matches!(
            self.kind(),
            ApiKind::Alloc
                | ApiKind::AllocManaged
                | ApiKind::AllocAsync
                | ApiKind::Create
                | ApiKind::HostAlloc
                | ApiKind::HostRegister
                | ApiKind::AddressReserve
        )
    }
}

/// The CUresult codes vramtrace itself acts on (the driver's values; `cuda.h`). Results stay plain
/// `u32` everywhere: a newer driver may return codes no enum of ours knows.
pub mod cu {
    pub const SUCCESS: u32 = 0;
    pub const ERROR_INVALID_VALUE: u32 = 1;
    pub const ERROR_OUT_OF_MEMORY: u32 = 2;
    pub const ERROR_NOT_INITIALIZED: u32 = 3;
    pub const ERROR_DEINITIALIZED: u32 = 4;
    pub const ERROR_NO_DEVICE: u32 = 100;
    pub const ERROR_INVALID_DEVICE: u32 = 101;
    pub const ERROR_INVALID_CONTEXT: u32 = 201;
    pub const ERROR_INVALID_HANDLE: u32 = 400;
    pub const ERROR_NOT_FOUND: u32 = 500;
    pub const ERROR_ILLEGAL_ADDRESS: u32 = 700;
    pub const ERROR_NOT_SUPPORTED: u32 = 801;
    pub const ERROR_UNKNOWN: u32 = 999;
}

/// The name of a CUresult code the driver's memory calls return, if it is a common one.
pub fn result_name(code: u32) -> Option<&'static str> {
    Some(match code {
        cu::SUCCESS => "CUDA_SUCCESS",
        cu::ERROR_INVALID_VALUE => "CUDA_ERROR_INVALID_VALUE",
        cu::ERROR_OUT_OF_MEMORY => "CUDA_ERROR_OUT_OF_MEMORY",
        cu::ERROR_NOT_INITIALIZED => "CUDA_ERROR_NOT_INITIALIZED",
        cu::ERROR_DEINITIALIZED => "CUDA_ERROR_DEINITIALIZED",
        cu::ERROR_NO_DEVICE => "CUDA_ERROR_NO_DEVICE",
        cu::ERROR_INVALID_DEVICE => "CUDA_ERROR_INVALID_DEVICE",
        cu::ERROR_INVALID_CONTEXT => "CUDA_ERROR_INVALID_CONTEXT",
        cu::ERROR_INVALID_HANDLE => "CUDA_ERROR_INVALID_HANDLE",
        cu::ERROR_NOT_FOUND => "CUDA_ERROR_NOT_FOUND",
        cu::ERROR_ILLEGAL_ADDRESS => "CUDA_ERROR_ILLEGAL_ADDRESS",
        cu::ERROR_NOT_SUPPORTED => "CUDA_ERROR_NOT_SUPPORTED",
        cu::ERROR_UNKNOWN => "CUDA_ERROR_UNKNOWN",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_names_round_trip() {
        for &api in Api::ALL {
            assert_eq!(Api::from_id(api as u16), Some(api));
            assert_eq!(Api::from_name(api.name()), Some(api));
        }
        assert_eq!(Api::from_id(0), None);
        assert_eq!(Api::from_name("cuMemAlloc"), None, "v1 entry points are not recorded");
    }
}
