//! Call-stack capture. glibc's `backtrace()` re-parses unwind tables on every frame (~150 ns per
//! frame, ~5 µs at depth 32, measured with `bench-shim`); we use `framehop` instead: DWARF CFI from
//! each module's in-memory `.eh_frame_hdr`/`.eh_frame`, with a per-address rule cache, so a
//! repeated stack costs a few ns per frame. Stack reads are bounded to the calling thread's own
//! stack, so a bad rule can end a stack early but never fault. `VRAMTRACE_UNWINDER=libgcc`
//! switches back to `backtrace()`.
//!
//! The tables are rebuilt when the loader's counters say an object was loaded or unloaded. The
//! rebuild walks the loader's list, so it runs without our lock; the lock is held only to swap
//! the tables in and to unwind with them.

use crate::modules;
use crate::sync::{Lock, LockGuard};
use std::cell::Cell;
use std::ffi::c_void;
use std::sync::atomic::{AtomicU8, Ordering};

#[cfg(target_arch = "x86_64")]
mod imp {
    pub use framehop::x86_64::{CacheX86_64 as Cache, UnwindRegsX86_64 as Regs, UnwinderX86_64 as Unwinder};

    /// (pc, sp, fp) at this point of the caller's code.
    #[inline(always)]
    pub fn here() -> (u64, u64, u64) {
        let (pc, sp, fp): (u64, u64, u64);
        // SAFETY: reads three registers into outputs; touches no memory and no flags.
        unsafe {
            core::arch::asm!("lea {pc}, [rip]", "mov {sp}, rsp", "mov {fp}, rbp", pc = out(reg) pc, sp = out(reg) sp, fp = out(reg) fp, options(nomem, nostack, preserves_flags));
        }
        (pc, sp, fp)
    }
    pub fn regs(_pc: u64, sp: u64, fp: u64) -> Regs {
        Regs::new(_pc, sp, fp)
    }
}

#[cfg(target_arch = "aarch64")]
mod imp {
    pub use framehop::aarch64::{CacheAarch64 as Cache, UnwindRegsAarch64 as Regs, UnwinderAarch64 as Unwinder};

    #[inline(always)]
    pub fn here() -> (u64, u64, u64) {
        let (pc, sp, fp): (u64, u64, u64);
        // SAFETY: reads three registers into outputs; touches no memory and no flags.
        unsafe {
            core::arch::asm!("adr {pc}, .", "mov {sp}, sp", "mov {fp}, x29", pc = out(reg) pc, sp = out(reg) sp, fp = out(reg) fp, options(nomem, nostack, preserves_flags));
        }
        (pc, sp, fp)
    }
    pub fn regs(_pc: u64, sp: u64, fp: u64) -> Regs {
        // lr is not needed once CFI describes the frame; fp-based fallback uses fp.
        Regs::new(0, sp, fp)
    }
}

use framehop::Unwinder as _;
use imp::*;

type Data = &'static [u8];

pub struct Tables {
    unwinder: Unwinder<Data>,
    cache: Cache,
    /// Loader counters (objects added, removed) when the module list was read.
    counters: (u64, u64),
    ranges: Vec<(u64, u64)>,
}

// SAFETY: the tables own their data except the `&'static [u8]` section slices, which point into
// mapped objects readable from any thread; nothing in them is tied to the thread that built them.
unsafe impl Send for Tables {}

pub static TABLES: Lock<Option<Tables>> = Lock::new(None);

thread_local! {
    /// This thread's stack: lowest and highest address (0, 0 = not known yet).
    static STACK: Cell<(u64, u64)> = const { Cell::new((0, 0)) };
}

fn thread_stack() -> (u64, u64) {
    STACK.with(|t| {
        if t.get().1 == 0 {
            t.set(query_thread_stack());
        }
        t.get()
    })
}

fn query_thread_stack() -> (u64, u64) {
    // SAFETY: pthread_attr_t is plain data; zeroed is a valid state to pass as an out-parameter.
    let mut attr: libc::pthread_attr_t = unsafe { std::mem::zeroed() };
    // SAFETY: `attr` is a valid out-parameter for the calling thread's attributes.
    if unsafe { libc::pthread_getattr_np(libc::pthread_self(), &mut attr) } != 0 {
        return (0, 0);
    }
    let mut addr: *mut c_void = std::ptr::null_mut();
    let mut size = 0usize;
    // SAFETY: `attr` was initialized by pthread_getattr_np; the out-parameters are valid.
    let ok = unsafe { libc::pthread_attr_getstack(&attr, &mut addr, &mut size) } == 0;
    // SAFETY: destroys the attributes initialized above, once.
    unsafe { libc::pthread_attr_destroy(&mut attr) };
    if ok { (addr as u64, addr as u64 + size as u64) } else { (0, 0) }
}

/// The readable stack range [sp, top) for a capture at `sp`: the thread's stack, or the
/// alternate signal stack when a handler runs on one. None when `sp` is on neither (then no
/// stack is read: the range between them may be unmapped).
fn readable_from(sp: u64) -> Option<(u64, u64)> {
    let (lo, hi) = thread_stack();
    if (lo..hi).contains(&sp) {
        return Some((sp, hi));
    }
    // SAFETY: stack_t is plain data; zeroed is a valid out-parameter.
    let mut ss: libc::stack_t = unsafe { std::mem::zeroed() };
    // SAFETY: a NULL new stack only queries; `ss` is a valid out-parameter.
    if unsafe { libc::sigaltstack(std::ptr::null(), &mut ss) } != 0 || ss.ss_flags & libc::SS_ONSTACK == 0 {
        return None;
    }
    let (lo, hi) = (ss.ss_sp as u64, ss.ss_sp as u64 + ss.ss_size as u64);
    (lo..hi).contains(&sp).then_some((sp, hi))
}

/// The calling thread's stack is looked up again (after `fork`, the one thread of the child).
pub fn forget_thread() {
    STACK.with(|t| t.set((0, 0)));
}

/// The loader's counters of objects added and removed. Walks the loader's list: called with
/// `TABLES` held, which fork's `prepare` takes like `modules::LOADER`, so no fork happens in the
/// middle of the walk (the walk takes only the list's own lock, which no loader code holds while
/// it runs the program's code: no deadlock either).
fn loader_counters(_tables: &LockGuard<'static, Option<Tables>>) -> (u64, u64) {
    let mut c = (0u64, 0u64);
    /// # Safety
    /// Called by `dl_iterate_phdr` with a valid `info` and `data` = the `(u64, u64)` below.
    unsafe extern "C" fn cb(info: *mut libc::dl_phdr_info, _: usize, data: *mut c_void) -> libc::c_int {
        // SAFETY: `data` is `&mut c`, alive and unaliased during the iteration.
        let c = unsafe { &mut *(data as *mut (u64, u64)) };
        // SAFETY: the loader passes a valid dl_phdr_info for the duration of the callback.
        let info = unsafe { &*info };
        *c = (info.dlpi_adds, info.dlpi_subs);
        1
    }
    // SAFETY: `cb` matches the callback contract, takes no lock, and `c` outlives the call.
    unsafe { libc::dl_iterate_phdr(Some(cb), (&raw mut c).cast()) };
    c
}

/// One loaded object's unwind sections, read straight from memory as the loader mapped them.
///
/// # Safety
/// `info` describes an object that stays loaded while the returned module is in use.
unsafe fn module(info: &libc::dl_phdr_info) -> Option<framehop::Module<Data>> {
    // SAFETY: dlpi_phdr points to dlpi_phnum program headers of a loaded object.
    let phdrs = unsafe { std::slice::from_raw_parts(info.dlpi_phdr, info.dlpi_phnum as usize) };
    let base = info.dlpi_addr;
    let loads: Vec<_> = phdrs.iter().filter(|p| p.p_type == libc::PT_LOAD).collect();
    let lo = loads.iter().map(|p| p.p_vaddr).min()?;
    let hi = loads.iter().map(|p| p.p_vaddr + p.p_memsz).max()?;
    let hdr = phdrs.iter().find(|p| p.p_type == libc::PT_GNU_EH_FRAME)?;
    let hdr_svma = hdr.p_vaddr..hdr.p_vaddr + hdr.p_memsz;
    // SAFETY: PT_GNU_EH_FRAME lies inside a loaded, readable segment of this object.
    let hdr_bytes: Data = unsafe { std::slice::from_raw_parts((base + hdr.p_vaddr) as *const u8, hdr.p_memsz as usize) };
    // .eh_frame_hdr: version, eh_frame_ptr encoding, …, then eh_frame_ptr. Only the common
    // pc-relative sdata4 encoding is handled; anything else leaves the module to fp unwinding.
    if hdr_bytes.len() < 8 || hdr_bytes[0] != 1 || hdr_bytes[1] != 0x1b {
        return None;
    }
    let rel = i32::from_ne_bytes(hdr_bytes[4..8].try_into().ok()?) as i64;
    let eh_svma = (hdr.p_vaddr as i64 + 4 + rel) as u64;
    // Its length is not recorded anywhere cheap: take the rest of the segment holding it.
    let seg = loads.iter().find(|p| (p.p_vaddr..p.p_vaddr + p.p_memsz).contains(&eh_svma))?;
    let eh_len = seg.p_vaddr + seg.p_memsz - eh_svma;
    // SAFETY: [eh_svma, end of its segment) is inside a loaded, readable segment.
    let eh_bytes: Data = unsafe { std::slice::from_raw_parts((base + eh_svma) as *const u8, eh_len as usize) };
    let text = loads.iter().find(|p| p.p_flags & libc::PF_X != 0).map(|p| p.p_vaddr..p.p_vaddr + p.p_memsz);
    let info = framehop::ExplicitModuleSectionInfo {
        base_svma: 0,
        text_svma: text,
        eh_frame_svma: Some(eh_svma..eh_svma + eh_len),
        eh_frame: Some(eh_bytes),
        eh_frame_hdr_svma: Some(hdr_svma),
        eh_frame_hdr: Some(hdr_bytes),
        ..Default::default()
    };
    Some(framehop::Module::new(String::new(), base + lo..base + hi, base, info))
}

/// Reads every loaded object's unwind sections. Calls into the loader: never under our lock.
fn build(counters: (u64, u64)) -> Tables {
    /// # Safety
    /// Called by `dl_iterate_phdr` with a valid `info` and `data` = the Vec below.
    unsafe extern "C" fn cb(info: *mut libc::dl_phdr_info, _: usize, data: *mut c_void) -> libc::c_int {
        // SAFETY: `data` is `&mut modules`, alive and unaliased during the iteration.
        let out = unsafe { &mut *(data as *mut Vec<framehop::Module<Data>>) };
        // SAFETY: the loader passes a valid dl_phdr_info for the duration of the callback; the
        // tables are dropped when the loader's counters change (an object may be gone), and are
        // only read for addresses on a live stack, whose objects cannot be unloaded meanwhile.
        if let Some(m) = unsafe { module(&*info) } {
            out.push(m);
        }
        0
    }
    let mut modules: Vec<framehop::Module<Data>> = Vec::new();
    // SAFETY: `cb` matches the callback contract, takes no lock, and `modules` outlives the call.
    unsafe { modules::iterate_phdr(cb, (&raw mut modules).cast()) };
    let mut unwinder = Unwinder::new();
    let mut ranges = Vec::new();
    for m in modules {
        ranges.push((m.avma_range().start, m.avma_range().end));
        unwinder.add_module(m);
    }
    Tables { unwinder, cache: Cache::new(), counters, ranges }
}

pub fn use_libgcc() -> bool {
    // 0 = not read yet, 1 = framehop, 2 = libgcc. An atomic rather than a OnceLock: a fork in the
    // middle of a OnceLock's initialization would leave it blocked in the child.
    static CHOICE: AtomicU8 = AtomicU8::new(0);
    match CHOICE.load(Ordering::Relaxed) {
        0 => {
            let libgcc = match std::env::var_os("VRAMTRACE_UNWINDER") {
                Some(v) if v == "libgcc" => true,
                Some(v) if v == "framehop" || v.is_empty() => false,
                Some(v) => {
                    crate::sys::warn(&format!("VRAMTRACE_UNWINDER={v:?} is neither framehop nor libgcc; using framehop"));
                    false
                }
                None => false,
            };
            CHOICE.store(if libgcc { 2 } else { 1 }, Ordering::Relaxed);
            libgcc
        }
        c => c == 2,
    }
}

/// The tables, rebuilt (without the lock) if an object was loaded or unloaded since they were.
fn current_tables() -> LockGuard<'static, Option<Tables>> {
    let g = TABLES.lock();
    let counters = loader_counters(&g);
    // The Python capture rescans for an interpreter when the loader changed: tell it for free.
    crate::python::loader_seen(counters.0, counters.1);
    if g.as_ref().is_some_and(|t| t.counters == counters) {
        return g;
    }
    drop(g);
    let fresh = build(counters);
    let mut g = TABLES.lock();
    // Another thread may have installed newer tables meanwhile: both counters only grow.
    if g.as_ref().is_none_or(|t| t.counters.0 + t.counters.1 < counters.0 + counters.1) {
        *g = Some(fresh);
    }
    g
}

/// Fills `out` with return addresses, innermost first, starting at our own frame; returns how
/// many. The caller drops the frames that lie inside the shim.
#[inline(never)]
pub fn capture(out: &mut [u64]) -> usize {
    if use_libgcc() {
        let mut raw = [std::ptr::null_mut::<c_void>(); 160];
        let n = out.len().min(raw.len());
        // libgcc finds unwind tables with dl_iterate_phdr: walk under the same lock as ours.
        let loader = modules::LOADER.lock();
        // SAFETY: `raw` has room for `n` entries.
        let got = unsafe { crate::sys::backtrace(raw.as_mut_ptr(), n as libc::c_int) }.max(0) as usize;
        drop(loader);
        for (o, r) in out.iter_mut().zip(&raw[..got]) {
            *o = *r as u64;
        }
        return got;
    }
    let (pc, sp, fp) = here();
    let Some((lo, hi)) = readable_from(sp) else { return 0 };
    let mut read = |addr: u64| -> Result<u64, ()> {
        if addr >= lo && addr.checked_add(8).is_some_and(|e| e <= hi) && addr.is_multiple_of(8) {
            // SAFETY: `addr` is 8-aligned and inside [sp, top) of the stack this thread runs on,
            // which is mapped and readable (it holds our own live frames and their callers').
            Ok(unsafe { *(addr as *const u64) })
        } else {
            Err(())
        }
    };
    let mut g = current_tables();
    let Some(t) = g.as_mut() else { return 0 };
    let mut n = 0;
    let mut it = t.unwinder.iter_frames(pc, regs(pc, sp, fp), &mut t.cache, &mut read);
    while n < out.len() {
        match it.next() {
            Ok(Some(f)) => {
                // The first frame is our own pc: it lies in the shim and is dropped with the
                // shim's other frames.
                let a = f.address();
                // Addresses outside every module are garbage from a frame-pointer guess: stop.
                if !t.ranges.iter().any(|&(s, e)| (s..e).contains(&a)) {
                    break;
                }
                out[n] = a;
                n += 1;
            }
            _ => break,
        }
    }
    n
}
