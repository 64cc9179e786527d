//! The fake driver's bookkeeping: plain Rust, no FFI. Every entry point in `exports` locks the one
//! global [`State`], calls one method here and turns the `Result` into a `CUresult`.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard, PoisonError};

use cudarc::driver::sys::CUresult;

use crate::config::{Config, MAX_DEVICES};

pub type R<T = ()> = Result<T, CUresult>;

pub const INVALID_VALUE: CUresult = CUresult::CUDA_ERROR_INVALID_VALUE;
pub const OUT_OF_MEMORY: CUresult = CUresult::CUDA_ERROR_OUT_OF_MEMORY;
pub const NOT_INITIALIZED: CUresult = CUresult::CUDA_ERROR_NOT_INITIALIZED;
pub const INVALID_DEVICE: CUresult = CUresult::CUDA_ERROR_INVALID_DEVICE;
pub const INVALID_CONTEXT: CUresult = CUresult::CUDA_ERROR_INVALID_CONTEXT;
pub const INVALID_HANDLE: CUresult = CUresult::CUDA_ERROR_INVALID_HANDLE;

/// VMM allocation granularity (minimum and recommended), as on current NVIDIA GPUs.
pub const GRANULARITY: u64 = 2 << 20;
/// cuMemAlloc alignment; the real driver aligns to at least 256, usually 512.
const DEV_ALIGN: u64 = 512;
/// Address space handed out per device for cuMemAlloc-family pointers (never reused).
const DEV_REGION: u64 = 1 << 40;
/// Address space for cuMemAddressReserve.
const VA_REGION: u64 = 8 << 40;
/// Where the regions go when the kernel will not reserve them for us (RLIMIT_AS, sanitizers).
const DEV_FALLBACK_BASE: u64 = 0x7000_0000_0000;
const VA_FALLBACK_BASE: u64 = 0x6000_0000_0000;

/// Opaque handle families, kept apart so a handle passed to the wrong call is never mistaken for
/// a valid one (and so they are recognisable in a debugger or a trace).
const CTX_TAG: u64 = 0x0c70_0000_0000;
const STREAM_TAG: u64 = 0x0570_0000_0000;
const POOL_TAG: u64 = 0x0900_0000_0000;
const VMM_TAG: u64 = 0x0a00_0000_0000;

/// `CU_STREAM_LEGACY` and `CU_STREAM_PER_THREAD`: always valid stream handles.
const STREAM_LEGACY: u64 = 1;
const STREAM_PER_THREAD: u64 = 2;

/// The raw fields of a `CUmemAllocationProp` / `CUmemPoolProps` / `CUmemAccessDesc` that matter
/// here, read as integers so that a garbage enum value from C is an error, not undefined behaviour.
#[derive(Clone, Copy, Debug)]
pub struct Location {
    pub loc_type: u32,
    pub id: i32,
}

/// `CU_MEM_ALLOCATION_TYPE_PINNED`, `CU_MEM_LOCATION_TYPE_DEVICE`.
const ALLOC_TYPE_PINNED: u32 = 1;
const LOCATION_DEVICE: u32 = 1;

#[derive(Debug)]
struct Dev {
    /// Next free device address (bump allocator) and the end of this device's region.
    next: u64,
    end: u64,
    /// Live cuMemAlloc / pitch / managed bytes.
    direct: u64,
    /// Live physical VMM bytes (each handle counted once, however often it is mapped).
    phys: u64,
    primary: u64,
    primary_refs: u32,
    /// Live contexts made with cuCtxCreate.
    created: u32,
    default_pool: u64,
}

#[derive(Clone, Copy, Debug)]
struct Ctx {
    dev: usize,
    primary: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// cuMemAlloc, cuMemAllocPitch, cuMemAllocManaged.
    Direct,
    /// Stream-ordered, from this pool.
    Async(u64),
}

#[derive(Clone, Copy, Debug)]
struct DevAlloc {
    dev: usize,
    size: u64,
    ctx: u64,
    kind: Kind,
}

#[derive(Clone, Copy, Debug)]
struct Phys {
    dev: usize,
    size: u64,
    released: bool,
    maps: u32,
}

#[derive(Clone, Copy, Debug)]
struct Mapping {
    size: u64,
    handle: u64,
}

#[derive(Clone, Copy, Debug)]
struct Pool {
    dev: usize,
    /// Physical bytes the pool holds: live allocations plus retained free memory.
    reserved: u64,
    /// Bytes of live allocations from this pool.
    in_use: u64,
    default: bool,
    destroyed: bool,
}

#[derive(Debug)]
pub struct State {
    pub cfg: Config,
    initialized: bool,
    devs: Vec<Dev>,
    next_id: u64,
    ctxs: HashMap<u64, Ctx>,
    allocs: HashMap<u64, DevAlloc>,
    /// Pinned host allocations: address -> owning context.
    hosts: HashMap<usize, u64>,
    /// cuMemHostRegister ranges: base -> (size, ctx).
    registered: BTreeMap<usize, (usize, u64)>,
    /// VA reservations: base -> size.
    reservations: BTreeMap<u64, u64>,
    /// VMM mappings: va -> mapping. Never overlapping.
    mappings: BTreeMap<u64, Mapping>,
    phys: HashMap<u64, Phys>,
    pools: HashMap<u64, Pool>,
    /// Stream -> owning context.
    streams: HashMap<u64, u64>,
    va_next: u64,
    va_end: u64,
    /// PROT_NONE reservations backing the fake addresses, released on drop.
    regions: Vec<(usize, usize)>,
}

thread_local! {
    /// The calling thread's context stack; the top is the current context.
    static STACK: RefCell<Vec<u64>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` on this thread's context stack. During thread teardown (after the thread-local is
/// gone) the stack reads as empty rather than panicking.
fn with_stack<T>(f: impl FnOnce(&mut Vec<u64>) -> T) -> Option<T> {
    STACK
        .try_with(|s| s.try_borrow_mut().ok().map(|mut s| f(&mut s)))
        .ok()
        .flatten()
}

fn top_of_stack() -> u64 {
    with_stack(|s| s.last().copied()).flatten().unwrap_or(0)
}

static STATE: Mutex<Option<State>> = Mutex::new(None);

/// Locks the global state, creating it from the environment on first use.
fn lock() -> MutexGuard<'static, Option<State>> {
    let mut g = STATE.lock().unwrap_or_else(PoisonError::into_inner);
    if g.is_none() {
        *g = Some(State::new(Config::from_env()));
    }
    g
}

/// Runs `f` on the global state.
pub fn with<T>(f: impl FnOnce(&mut State) -> R<T>) -> R<T> {
    let mut g = lock();
    match g.as_mut() {
        Some(s) => f(s),
        None => Err(CUresult::CUDA_ERROR_UNKNOWN),
    }
}

/// Replaces the global state and clears this thread's context stack (tests only).
#[cfg(test)]
pub fn reset(cfg: Config) {
    let mut g = STATE.lock().unwrap_or_else(PoisonError::into_inner);
    *g = None; // unmap the old regions before reserving new ones
    *g = Some(State::new(cfg));
    with_stack(|s| s.clear());
}

/// Reserves `len` bytes of address space that nothing else in the process will be given, so fake
/// device addresses never collide with real host memory (the real driver's unified address space
/// gives the same guarantee). Returns the base rounded up to `align`.
fn reserve_region(len: u64, align: u64, fallback: u64, regions: &mut Vec<(usize, usize)>) -> u64 {
    let total = (len + align) as usize;
    // SAFETY: an anonymous PROT_NONE mapping at a kernel-chosen address touches no existing memory.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            total,
            libc::PROT_NONE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return fallback;
    }
    regions.push((p as usize, total));
    round_up(p as u64, align)
}

fn round_up(x: u64, align: u64) -> u64 {
    x.div_ceil(align) * align
}

impl Drop for State {
    fn drop(&mut self) {
        for &(p, len) in &self.regions {
            // SAFETY: unmapping exactly the PROT_NONE regions this state mapped.
            unsafe { libc::munmap(p as *mut libc::c_void, len) };
        }
        for (&p, _) in self.hosts.iter() {
            // SAFETY: every key was returned by posix_memalign and not yet freed.
            unsafe { libc::free(p as *mut libc::c_void) };
        }
    }
}

impl State {
    pub fn new(cfg: Config) -> State {
        let devices = cfg.devices.clamp(1, MAX_DEVICES) as usize;
        let mut regions = Vec::new();
        let mut s = State {
            cfg,
            initialized: false,
            devs: Vec::with_capacity(devices),
            next_id: 0,
            ctxs: HashMap::new(),
            allocs: HashMap::new(),
            hosts: HashMap::new(),
            registered: BTreeMap::new(),
            reservations: BTreeMap::new(),
            mappings: BTreeMap::new(),
            phys: HashMap::new(),
            pools: HashMap::new(),
            streams: HashMap::new(),
            va_next: 0,
            va_end: 0,
            regions: Vec::new(),
        };
        for d in 0..devices {
            let fallback = DEV_FALLBACK_BASE + ((d as u64) << 40);
            let base = reserve_region(DEV_REGION, DEV_ALIGN, fallback, &mut regions);
            let primary = s.new_handle(CTX_TAG);
            s.ctxs.insert(
                primary,
                Ctx {
                    dev: d,
                    primary: true,
                },
            );
            let pool = s.new_handle(POOL_TAG);
            s.pools.insert(
                pool,
                Pool {
                    dev: d,
                    reserved: 0,
                    in_use: 0,
                    default: true,
                    destroyed: false,
                },
            );
            s.devs.push(Dev {
                next: base,
                end: base + DEV_REGION,
                direct: 0,
                phys: 0,
                primary,
                primary_refs: 0,
                created: 0,
                default_pool: pool,
            });
        }
        s.va_next = reserve_region(VA_REGION, GRANULARITY, VA_FALLBACK_BASE, &mut regions);
        s.va_end = s.va_next + VA_REGION;
        s.regions = regions;
        s
    }

    fn new_handle(&mut self, tag: u64) -> u64 {
        self.next_id += 1;
        tag + self.next_id * 0x100
    }

    // ---- device and driver ------------------------------------------------------------------

    pub fn init(&mut self, flags: u32) -> R {
        if flags != 0 {
            return Err(INVALID_VALUE);
        }
        self.initialized = true;
        Ok(())
    }

    fn require_init(&self) -> R {
        if self.initialized {
            Ok(())
        } else {
            Err(NOT_INITIALIZED)
        }
    }

    pub fn device_count(&self) -> R<i32> {
        self.require_init()?;
        Ok(self.devs.len() as i32)
    }

    /// Validates a device ordinal.
    pub fn device(&self, ordinal: i32) -> R<usize> {
        self.require_init()?;
        match usize::try_from(ordinal) {
            Ok(d) if d < self.devs.len() => Ok(d),
            _ => Err(INVALID_DEVICE),
        }
    }

    pub fn total_mem(&self, ordinal: i32) -> R<u64> {
        self.device(ordinal)?;
        Ok(self.cfg.capacity)
    }

    // ---- accounting -------------------------------------------------------------------------

    fn live_contexts(&self, dev: usize) -> u32 {
        let d = &self.devs[dev];
        d.created + u32::from(d.primary_refs > 0)
    }

    /// Bytes in use on `dev`: allocations, physical VMM memory, pool-held memory, and the runtime's
    /// share once a context exists (memory the real driver uses without any allocation call).
    pub fn used(&self, dev: usize) -> u64 {
        let d = &self.devs[dev];
        let pools: u64 = self
            .pools
            .values()
            .filter(|p| p.dev == dev)
            .map(|p| p.reserved)
            .sum();
        let runtime = if self.live_contexts(dev) > 0 {
            self.cfg.runtime_bytes
        } else {
            0
        };
        d.direct + d.phys + pools + runtime
    }

    fn fits(&self, dev: usize, extra: u64) -> R {
        match self.used(dev).checked_add(extra) {
            Some(total) if total <= self.cfg.capacity => Ok(()),
            _ => Err(OUT_OF_MEMORY),
        }
    }

    /// A fresh device address for `size` bytes; addresses are never handed out twice.
    fn bump(&mut self, dev: usize, size: u64) -> R<u64> {
        let d = &mut self.devs[dev];
        let len = size
            .checked_next_multiple_of(DEV_ALIGN)
            .ok_or(OUT_OF_MEMORY)?;
        if len > d.end - d.next {
            return Err(OUT_OF_MEMORY);
        }
        let p = d.next;
        d.next += len;
        Ok(p)
    }

    // ---- contexts ---------------------------------------------------------------------------

    /// The device of `ctx` if it is a live context.
    fn alive(&self, ctx: u64) -> Option<usize> {
        let c = self.ctxs.get(&ctx)?;
        if c.primary && self.devs[c.dev].primary_refs == 0 {
            return None;
        }
        Some(c.dev)
    }

    /// The calling thread's current context and its device.
    pub fn current(&self) -> R<(u64, usize)> {
        self.require_init()?;
        let ctx = top_of_stack();
        self.alive(ctx).map(|dev| (ctx, dev)).ok_or(INVALID_CONTEXT)
    }

    /// The first context on a device costs the runtime's bytes; fail like the real driver when
    /// they do not fit.
    fn make_room_for_context(&self, dev: usize) -> R {
        if self.live_contexts(dev) == 0 {
            self.fits(dev, self.cfg.runtime_bytes)?;
        }
        Ok(())
    }

    /// cuCtxCreate: a new context, pushed onto the calling thread's stack (made current).
    pub fn ctx_create(&mut self, ordinal: i32) -> R<u64> {
        let dev = self.device(ordinal)?;
        self.make_room_for_context(dev)?;
        let h = self.new_handle(CTX_TAG);
        self.ctxs.insert(
            h,
            Ctx {
                dev,
                primary: false,
            },
        );
        self.devs[dev].created += 1;
        with_stack(|s| s.push(h));
        Ok(h)
    }

    pub fn ctx_destroy(&mut self, ctx: u64) -> R {
        self.require_init()?;
        if ctx == 0 {
            return Err(INVALID_VALUE);
        }
        match self.ctxs.get(&ctx) {
            Some(c) if !c.primary => {
                let dev = c.dev;
                self.ctxs.remove(&ctx);
                self.devs[dev].created -= 1;
                self.free_context_resources(ctx);
                with_stack(|s| s.retain(|&c| c != ctx));
                Ok(())
            }
            _ => Err(INVALID_CONTEXT),
        }
    }

    /// What the driver frees when a context goes away: its allocations, pinned host memory and
    /// streams. VMM objects and pools belong to the device and stay.
    fn free_context_resources(&mut self, ctx: u64) {
        let dead: Vec<u64> = self
            .allocs
            .iter()
            .filter(|(_, a)| a.ctx == ctx)
            .map(|(&p, _)| p)
            .collect();
        for p in dead {
            if let Some(a) = self.allocs.remove(&p) {
                match a.kind {
                    Kind::Direct => self.devs[a.dev].direct -= a.size,
                    Kind::Async(pool) => {
                        if let Some(pl) = self.pools.get_mut(&pool) {
                            pl.in_use -= a.size;
                            pl.reserved -= a.size;
                        }
                    }
                }
            }
        }
        self.pools.retain(|_, p| !(p.destroyed && p.in_use == 0));
        let hosts: Vec<usize> = self
            .hosts
            .iter()
            .filter(|(_, &c)| c == ctx)
            .map(|(&p, _)| p)
            .collect();
        for p in hosts {
            self.hosts.remove(&p);
            // SAFETY: p came from posix_memalign and was still live in our table.
            unsafe { libc::free(p as *mut libc::c_void) };
        }
        self.registered.retain(|_, &mut (_, c)| c != ctx);
        self.streams.retain(|_, &mut c| c != ctx);
    }

    pub fn ctx_get_device(&self) -> R<i32> {
        self.current().map(|(_, dev)| dev as i32)
    }

    pub fn ctx_synchronize(&self) -> R {
        self.current().map(drop)
    }

    /// cuCtxSetCurrent: replaces the top of the stack; NULL pops it.
    pub fn ctx_set_current(&self, ctx: u64) -> R {
        self.require_init()?;
        if ctx == 0 {
            with_stack(|s| s.pop());
            return Ok(());
        }
        self.alive(ctx).ok_or(INVALID_CONTEXT)?;
        with_stack(|s| match s.last_mut() {
            Some(top) => *top = ctx,
            None => s.push(ctx),
        });
        Ok(())
    }

    pub fn ctx_get_current(&self) -> R<u64> {
        self.require_init()?;
        Ok(top_of_stack())
    }

    pub fn ctx_push(&self, ctx: u64) -> R {
        self.require_init()?;
        self.alive(ctx).ok_or(INVALID_CONTEXT)?;
        with_stack(|s| s.push(ctx));
        Ok(())
    }

    pub fn ctx_pop(&self) -> R<u64> {
        self.require_init()?;
        with_stack(|s| s.pop()).flatten().ok_or(INVALID_CONTEXT)
    }

    /// cuDevicePrimaryCtxRetain: activates the device's primary context; does not make it current.
    pub fn primary_retain(&mut self, ordinal: i32) -> R<u64> {
        let dev = self.device(ordinal)?;
        self.make_room_for_context(dev)?;
        let d = &mut self.devs[dev];
        d.primary_refs += 1;
        Ok(d.primary)
    }

    pub fn primary_release(&mut self, ordinal: i32) -> R {
        let dev = self.device(ordinal)?;
        let d = &mut self.devs[dev];
        if d.primary_refs == 0 {
            return Err(INVALID_CONTEXT);
        }
        d.primary_refs -= 1;
        if d.primary_refs == 0 {
            let primary = d.primary;
            self.free_context_resources(primary);
        }
        Ok(())
    }

    /// cuDevicePrimaryCtxReset: destroys everything the primary context owns and deactivates it.
    pub fn primary_reset(&mut self, ordinal: i32) -> R {
        let dev = self.device(ordinal)?;
        let primary = self.devs[dev].primary;
        self.devs[dev].primary_refs = 0;
        self.free_context_resources(primary);
        Ok(())
    }

    // ---- cuMemAlloc family ------------------------------------------------------------------

    pub fn mem_alloc(&mut self, size: u64) -> R<u64> {
        let (ctx, dev) = self.current()?;
        if size == 0 {
            return Err(INVALID_VALUE);
        }
        self.fits(dev, size)?;
        let p = self.bump(dev, size)?;
        self.allocs.insert(
            p,
            DevAlloc {
                dev,
                size,
                ctx,
                kind: Kind::Direct,
            },
        );
        self.devs[dev].direct += size;
        Ok(p)
    }

    /// cuMemAllocPitch: rows padded to 512 bytes. Returns (pointer, pitch).
    pub fn mem_alloc_pitch(&mut self, width: u64, height: u64, elem: u32) -> R<(u64, u64)> {
        self.current()?;
        if !matches!(elem, 4 | 8 | 16) || width == 0 || height == 0 {
            return Err(INVALID_VALUE);
        }
        let pitch = width
            .checked_next_multiple_of(DEV_ALIGN)
            .ok_or(OUT_OF_MEMORY)?;
        let size = pitch.checked_mul(height).ok_or(OUT_OF_MEMORY)?;
        Ok((self.mem_alloc(size)?, pitch))
    }

    /// cuMemAllocManaged: counted against the device like any allocation.
    pub fn mem_alloc_managed(&mut self, size: u64, flags: u32) -> R<u64> {
        self.current()?;
        // CU_MEM_ATTACH_GLOBAL or CU_MEM_ATTACH_HOST.
        if flags != 1 && flags != 2 {
            return Err(INVALID_VALUE);
        }
        self.mem_alloc(size)
    }

    /// cuMemFree; a stream-ordered pointer goes back to its pool like cuMemFreeAsync.
    pub fn mem_free(&mut self, ptr: u64) -> R {
        self.current()?;
        self.release_alloc(ptr)
    }

    fn release_alloc(&mut self, ptr: u64) -> R {
        let a = self.allocs.remove(&ptr).ok_or(INVALID_VALUE)?;
        match a.kind {
            Kind::Direct => self.devs[a.dev].direct -= a.size,
            Kind::Async(pool) => {
                if let Some(p) = self.pools.get_mut(&pool) {
                    p.in_use -= a.size;
                    // A destroyed pool gives memory back as soon as it is freed.
                    if p.destroyed {
                        p.reserved -= a.size;
                        if p.in_use == 0 {
                            self.pools.remove(&pool);
                        }
                    }
                }
            }
        }
        Ok(())
    }

    // ---- streams and stream-ordered allocation ----------------------------------------------

    fn check_stream(&self, stream: u64) -> R {
        if stream == 0
            || stream == STREAM_LEGACY
            || stream == STREAM_PER_THREAD
            || self.streams.contains_key(&stream)
        {
            Ok(())
        } else {
            Err(INVALID_HANDLE)
        }
    }

    pub fn stream_create(&mut self, flags: u32) -> R<u64> {
        let (ctx, _) = self.current()?;
        // CU_STREAM_DEFAULT or CU_STREAM_NON_BLOCKING.
        if flags > 1 {
            return Err(INVALID_VALUE);
        }
        let h = self.new_handle(STREAM_TAG);
        self.streams.insert(h, ctx);
        Ok(h)
    }

    pub fn stream_destroy(&mut self, stream: u64) -> R {
        self.require_init()?;
        self.streams.remove(&stream).map(drop).ok_or(INVALID_HANDLE)
    }

    pub fn stream_synchronize(&self, stream: u64) -> R {
        self.current()?;
        self.check_stream(stream)
    }

    /// cuMemAllocAsync (pool = None: the current device's default pool) and
    /// cuMemAllocFromPoolAsync. Free memory the pool retains is reused before new memory is taken.
    pub fn mem_alloc_async(&mut self, size: u64, pool: Option<u64>, stream: u64) -> R<u64> {
        let (ctx, cur_dev) = self.current()?;
        self.check_stream(stream)?;
        if size == 0 {
            return Err(INVALID_VALUE);
        }
        let pool = pool.unwrap_or(self.devs[cur_dev].default_pool);
        let p = *self
            .pools
            .get(&pool)
            .filter(|p| !p.destroyed)
            .ok_or(INVALID_VALUE)?;
        let retained = p.reserved - p.in_use;
        let extra = size.saturating_sub(retained);
        self.fits(p.dev, extra)?;
        let ptr = self.bump(p.dev, size)?;
        let pl = self.pools.get_mut(&pool).ok_or(INVALID_VALUE)?;
        pl.reserved += extra;
        pl.in_use += size;
        self.allocs.insert(
            ptr,
            DevAlloc {
                dev: p.dev,
                size,
                ctx,
                kind: Kind::Async(pool),
            },
        );
        Ok(ptr)
    }

    /// cuMemFreeAsync: pool memory stays reserved by the pool until trimmed.
    pub fn mem_free_async(&mut self, ptr: u64, stream: u64) -> R {
        self.current()?;
        self.check_stream(stream)?;
        self.release_alloc(ptr)
    }

    pub fn default_pool(&self, ordinal: i32) -> R<u64> {
        let dev = self.device(ordinal)?;
        Ok(self.devs[dev].default_pool)
    }

    pub fn pool_create(&mut self, alloc_type: u32, loc: Location) -> R<u64> {
        self.require_init()?;
        let dev = self.check_device_location(alloc_type, loc)?;
        let h = self.new_handle(POOL_TAG);
        self.pools.insert(
            h,
            Pool {
                dev,
                reserved: 0,
                in_use: 0,
                default: false,
                destroyed: false,
            },
        );
        Ok(h)
    }

    pub fn pool_destroy(&mut self, pool: u64) -> R {
        self.require_init()?;
        let p = self
            .pools
            .get_mut(&pool)
            .filter(|p| !p.destroyed)
            .ok_or(INVALID_VALUE)?;
        if p.default {
            return Err(INVALID_VALUE);
        }
        p.destroyed = true;
        p.reserved = p.in_use;
        if p.in_use == 0 {
            self.pools.remove(&pool);
        }
        Ok(())
    }

    /// cuMemPoolTrimTo: releases retained memory until the pool reserves at most
    /// max(`keep`, bytes in use).
    pub fn pool_trim(&mut self, pool: u64, keep: u64) -> R {
        self.require_init()?;
        let p = self
            .pools
            .get_mut(&pool)
            .filter(|p| !p.destroyed)
            .ok_or(INVALID_VALUE)?;
        if p.reserved > keep {
            p.reserved = keep.max(p.in_use);
        }
        Ok(())
    }

    // ---- VMM --------------------------------------------------------------------------------

    /// Validates a pinned-device allocation property; returns the device.
    pub fn check_device_location(&self, alloc_type: u32, loc: Location) -> R<usize> {
        if alloc_type != ALLOC_TYPE_PINNED || loc.loc_type != LOCATION_DEVICE {
            return Err(INVALID_VALUE);
        }
        self.device(loc.id).map_err(|e| {
            if e == INVALID_DEVICE {
                INVALID_VALUE
            } else {
                e
            }
        })
    }

    pub fn granularity(&self, alloc_type: u32, loc: Location, option: u32) -> R<u64> {
        self.require_init()?;
        self.check_device_location(alloc_type, loc)?;
        // CU_MEM_ALLOC_GRANULARITY_MINIMUM or _RECOMMENDED.
        if option > 1 {
            return Err(INVALID_VALUE);
        }
        Ok(GRANULARITY)
    }

    pub fn mem_create(&mut self, size: u64, alloc_type: u32, loc: Location, flags: u64) -> R<u64> {
        self.require_init()?;
        let dev = self.check_device_location(alloc_type, loc)?;
        if flags != 0 || size == 0 || !size.is_multiple_of(GRANULARITY) {
            return Err(INVALID_VALUE);
        }
        self.fits(dev, size)?;
        let h = self.new_handle(VMM_TAG);
        self.phys.insert(
            h,
            Phys {
                dev,
                size,
                released: false,
                maps: 0,
            },
        );
        self.devs[dev].phys += size;
        Ok(h)
    }

    /// cuMemRelease: the physical memory goes when the last mapping of it goes.
    pub fn mem_release(&mut self, handle: u64) -> R {
        self.require_init()?;
        let p = self
            .phys
            .get_mut(&handle)
            .filter(|p| !p.released)
            .ok_or(INVALID_VALUE)?;
        p.released = true;
        if p.maps == 0 {
            let p = *p;
            self.drop_phys(handle, p);
        }
        Ok(())
    }

    fn drop_phys(&mut self, handle: u64, p: Phys) {
        self.phys.remove(&handle);
        self.devs[p.dev].phys -= p.size;
    }

    pub fn address_reserve(&mut self, size: u64, align: u64, flags: u64) -> R<u64> {
        self.require_init()?;
        if flags != 0 || size == 0 || !size.is_multiple_of(GRANULARITY) {
            return Err(INVALID_VALUE);
        }
        if align != 0 && !align.is_power_of_two() {
            return Err(INVALID_VALUE);
        }
        let align = align.max(GRANULARITY);
        let base = self
            .va_next
            .checked_next_multiple_of(align)
            .ok_or(OUT_OF_MEMORY)?;
        match base.checked_add(size) {
            Some(end) if end <= self.va_end => self.va_next = end,
            _ => return Err(OUT_OF_MEMORY),
        }
        self.reservations.insert(base, size);
        Ok(base)
    }

    pub fn address_free(&mut self, ptr: u64, size: u64) -> R {
        self.require_init()?;
        if self.reservations.get(&ptr) != Some(&size) {
            return Err(INVALID_VALUE);
        }
        if self.mappings.range(ptr..ptr + size).next().is_some() {
            return Err(INVALID_VALUE);
        }
        self.reservations.remove(&ptr);
        Ok(())
    }

    fn aligned(x: u64) -> bool {
        x.is_multiple_of(GRANULARITY)
    }

    pub fn mem_map(&mut self, ptr: u64, size: u64, offset: u64, handle: u64, flags: u64) -> R {
        self.require_init()?;
        if flags != 0 || size == 0 || !Self::aligned(ptr) || !Self::aligned(size) {
            return Err(INVALID_VALUE);
        }
        if !Self::aligned(offset) {
            return Err(INVALID_VALUE);
        }
        let end = ptr.checked_add(size).ok_or(INVALID_VALUE)?;
        let phys = *self
            .phys
            .get(&handle)
            .filter(|p| !p.released)
            .ok_or(INVALID_VALUE)?;
        match offset.checked_add(size) {
            Some(e) if e <= phys.size => {}
            _ => return Err(INVALID_VALUE),
        }
        // Inside one reservation.
        match self.reservations.range(..=ptr).next_back() {
            Some((&base, &rsize)) if end <= base + rsize => {}
            _ => return Err(INVALID_VALUE),
        }
        // Not overlapping an existing mapping: only the last one starting before `end` can.
        if let Some((&m, mp)) = self.mappings.range(..end).next_back() {
            if m + mp.size > ptr {
                return Err(INVALID_VALUE);
            }
        }
        self.mappings.insert(ptr, Mapping { size, handle });
        if let Some(p) = self.phys.get_mut(&handle) {
            p.maps += 1;
        }
        Ok(())
    }

    /// The mappings that exactly tile [ptr, ptr+size), in order, or None.
    fn tiling(&self, ptr: u64, size: u64) -> Option<Vec<u64>> {
        let end = ptr.checked_add(size)?;
        let mut cur = ptr;
        let mut out = Vec::new();
        while cur < end {
            let m = self.mappings.get(&cur)?;
            out.push(cur);
            cur += m.size;
        }
        (cur == end).then_some(out)
    }

    /// cuMemUnmap: the range must consist of whole mappings with no gaps; it may span several
    /// (ggml unmaps its whole pool at once).
    pub fn mem_unmap(&mut self, ptr: u64, size: u64) -> R {
        self.require_init()?;
        if size == 0 {
            return Err(INVALID_VALUE);
        }
        let starts = self.tiling(ptr, size).ok_or(INVALID_VALUE)?;
        for s in starts {
            let Some(m) = self.mappings.remove(&s) else {
                continue;
            };
            if let Some(p) = self.phys.get_mut(&m.handle) {
                p.maps -= 1;
                if p.released && p.maps == 0 {
                    let p = *p;
                    self.drop_phys(m.handle, p);
                }
            }
        }
        Ok(())
    }

    /// cuMemSetAccess: every byte of the range must be mapped.
    pub fn set_access(&self, ptr: u64, size: u64, descs: &[(Location, u32)]) -> R {
        self.require_init()?;
        if size == 0 || descs.is_empty() || !Self::aligned(ptr) || !Self::aligned(size) {
            return Err(INVALID_VALUE);
        }
        for &(loc, flags) in descs {
            if loc.loc_type != LOCATION_DEVICE || self.device(loc.id).is_err() {
                return Err(INVALID_VALUE);
            }
            // PROT_NONE, PROT_READ, PROT_READWRITE.
            if !matches!(flags, 0 | 1 | 3) {
                return Err(INVALID_VALUE);
            }
        }
        let end = ptr.checked_add(size).ok_or(INVALID_VALUE)?;
        let mut cur = match self.mappings.range(..=ptr).next_back() {
            Some((&m, mp)) if m + mp.size > ptr => m + mp.size,
            _ => return Err(INVALID_VALUE),
        };
        while cur < end {
            cur += self.mappings.get(&cur).ok_or(INVALID_VALUE)?.size;
        }
        Ok(())
    }

    // ---- host memory ------------------------------------------------------------------------

    /// cuMemHostAlloc / cuMemAllocHost: real, page-aligned host memory.
    pub fn host_alloc(&mut self, size: usize, flags: u32) -> R<*mut libc::c_void> {
        let (ctx, _) = self.current()?;
        // PORTABLE | DEVICEMAP | WRITECOMBINED.
        if size == 0 || flags & !7 != 0 {
            return Err(INVALID_VALUE);
        }
        let mut p: *mut libc::c_void = std::ptr::null_mut();
        // SAFETY: posix_memalign writes p only on success.
        if unsafe { libc::posix_memalign(&mut p, 4096, size) } != 0 || p.is_null() {
            return Err(OUT_OF_MEMORY);
        }
        self.hosts.insert(p as usize, ctx);
        Ok(p)
    }

    pub fn host_free(&mut self, p: *mut libc::c_void) -> R {
        self.current()?;
        self.hosts.remove(&(p as usize)).ok_or(INVALID_VALUE)?;
        // SAFETY: p came from posix_memalign and was still live in our table.
        unsafe { libc::free(p) };
        Ok(())
    }

    pub fn host_register(&mut self, p: *mut libc::c_void, size: usize, flags: u32) -> R {
        let (ctx, _) = self.current()?;
        // PORTABLE | DEVICEMAP | IOMEMORY | READ_ONLY.
        if p.is_null() || size == 0 || flags & !0xf != 0 {
            return Err(INVALID_VALUE);
        }
        let base = p as usize;
        let end = base.checked_add(size).ok_or(INVALID_VALUE)?;
        if let Some((&b, &(s, _))) = self.registered.range(..end).next_back() {
            if b + s > base {
                return Err(CUresult::CUDA_ERROR_HOST_MEMORY_ALREADY_REGISTERED);
            }
        }
        self.registered.insert(base, (size, ctx));
        Ok(())
    }

    pub fn host_unregister(&mut self, p: *mut libc::c_void) -> R {
        self.current()?;
        self.registered
            .remove(&(p as usize))
            .map(drop)
            .ok_or(CUresult::CUDA_ERROR_HOST_MEMORY_NOT_REGISTERED)
    }

    /// cuMemGetInfo: (free, total) of the current context's device.
    pub fn mem_get_info(&self) -> R<(u64, u64)> {
        let (_, dev) = self.current()?;
        Ok((
            self.cfg.capacity.saturating_sub(self.used(dev)),
            self.cfg.capacity,
        ))
    }

    /// Test helper: bytes used on a device (see [`State::used`]).
    #[cfg(test)]
    pub fn used_on(&self, dev: usize) -> u64 {
        self.used(dev)
    }
}
