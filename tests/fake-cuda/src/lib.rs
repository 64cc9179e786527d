//! A fake CUDA driver, `libcuda.so.1`, for testing vramtrace on machines without a GPU.
//!
//! vramtrace's shim intercepts the driver's memory calls; to test it (and the runner programs in
//! `tests/runners/`) without NVIDIA hardware, this cdylib exports the subset of the driver API the
//! shim records, under the exact versioned symbol names, with the real driver's observable
//! behaviour and on plain host bookkeeping:
//!
//! - A configurable capacity per device; allocations past it fail with CUDA_ERROR_OUT_OF_MEMORY
//!   and change nothing. `cuMemGetInfo` reports capacity − used, where used also counts pool-held
//!   memory and the runtime's bytes once a context exists (memory no allocation call shows).
//! - `cuGetProcAddress`/`_v2` resolve base names by version and per-thread-stream flags exactly as
//!   the real driver does, so cudart-style lookup sequences can be replayed (see [`procaddr`]).
//! - VMM (reserve / create / map / release / unmap) with the real driver's validity rules and
//!   lifetimes; stream-ordered pools that retain freed memory until trimmed; contexts with a
//!   per-thread current-context stack; pinned host memory that is real `malloc`ed memory.
//! - Device pointers are never dereferenceable and never reused: they come from a `PROT_NONE`
//!   reservation, so they can never alias real host memory either.
//!
//! Configuration (read once per process, from the environment):
//! `FAKE_CUDA_CAPACITY` (bytes per device; `K`/`M`/`G`/`T` or `KiB`/`MiB`/`GiB`/`TiB` suffixes;
//! default 24 GiB), `FAKE_CUDA_DEVICES` (1..=8, default 1), `FAKE_CUDA_RUNTIME_BYTES` (default
//! 256 MiB), `FAKE_CUDA_DRIVER_VERSION` (the driver API version it claims, 2000..=12090, default
//! 12090: what `cuDriverGetVersion` says and which variants `cuGetProcAddress` knows, so that it
//! can stand in for an older driver, such as the one its lookups are compared with). Unparseable
//! values are reported on stderr and replaced by the default.
//!
//! Behaviour worth knowing when reading traces made against it:
//! - Every call except `cuInit`, `cuDriverGetVersion`, `cuGetErrorName/String` and
//!   `cuGetProcAddress*` fails with CUDA_ERROR_NOT_INITIALIZED before `cuInit`. cuMemAlloc-family,
//!   stream-ordered, pinned-host and `cuMemGetInfo` calls need a current context
//!   (CUDA_ERROR_INVALID_CONTEXT otherwise); VMM and pool-object calls only need `cuInit`.
//! - Destroying a context (or releasing/resetting the primary one) frees what was allocated while
//!   it was current: cuMemAlloc-family and stream-ordered allocations, pinned host memory,
//!   registrations, streams. VMM handles, reservations and pools belong to the device and stay.
//! - Sizes are counted as requested (pitch allocations as pitch × height); device pointers are
//!   512-aligned; each device has 1 TiB of never-reused addresses, VA reservations share 8 TiB.
//! - A stream-ordered allocation takes the pool's retained free bytes first and only the
//!   shortfall from the device; `cuMemFreeAsync`/`cuMemFree` return bytes to the pool, which keeps
//!   them (counted as used) until `cuMemPoolTrimTo`.
//! - `cuGetProcAddress` hands out this library's own functions even under an LD_PRELOAD
//!   interposer (linked with `-Bsymbolic-functions`, see build.rs), as the real driver does.
//! - The v1 entry points of the 32-bit era (`cuMemAlloc`, `cuMemAllocPitch`) answer
//!   CUDA_ERROR_NOT_SUPPORTED; other v1 entry points behave like their successors but are
//!   distinct functions, so a version lookup can tell them apart.
//!
//! Not a goal: kernels, copies, modules, or anything cudart needs beyond lookups — real cudart
//! cannot run on a fake driver (it checks undocumented driver tables).
#![warn(unsafe_op_in_unsafe_fn)]

mod config;
mod errors;
pub mod exports;
pub mod procaddr;
mod state;

#[cfg(test)]
mod tests;
