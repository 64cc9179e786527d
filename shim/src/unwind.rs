//! Call-stack capture. glibc's `backtrace()` re-parses unwind tables on every frame (~150 ns per
//! frame, ~5 µs at depth 32, measured with `bench-shim`); we use `framehop` instead: DWARF CFI from
//! each module's in-memory `.eh_frame_hdr`/`.eh_frame`, with a per-address rule cache, so a
//! repeated stack costs a few ns per frame. Stack reads are bounded to the calling thread's own
//! stack, so a bad rule can end a stack early but never fault. `VRAMTRACE_UNWINDER=libgcc`
//! switches back to `backtrace()`.

use crate::recorder::Lock;
use std::cell::Cell;
use std::ffi::c_void;

#[cfg(target_arch = "x86_64")]
mod imp {
    pub use framehop::x86_64::{CacheX86_64 as Cache, UnwindRegsX86_64 as Regs, UnwinderX86_64 as Unwinder};

    /// (pc, sp, fp) at this point of the caller's code.
    #[inline(always)]
    pub fn here() -> (u64, u64, u64) {
        let (pc, sp, fp): (u64, u64, u64);
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

struct Tables {
    unwinder: Unwinder<Data>,
    cache: Cache,
    /// Loader counters when the module list was built: a change means a dlopen/dlclose happened.
    adds: u64,
    subs: u64,
    ranges: Vec<(u64, u64)>,
}

pub static LOCK: Lock = Lock::new();
struct Shared(std::cell::UnsafeCell<Option<Tables>>);
unsafe impl Sync for Shared {}
static TABLES: Shared = Shared(std::cell::UnsafeCell::new(None));

thread_local! {
    /// Highest address of this thread's stack (0 = not known yet).
    static STACK_TOP: Cell<u64> = const { Cell::new(0) };
}

fn stack_top() -> u64 {
    STACK_TOP.with(|t| {
        if t.get() == 0 {
            let mut attr: libc::pthread_attr_t = unsafe { std::mem::zeroed() };
            unsafe {
                if libc::pthread_getattr_np(libc::pthread_self(), &mut attr) == 0 {
                    let mut addr: *mut c_void = std::ptr::null_mut();
                    let mut size = 0usize;
                    if libc::pthread_attr_getstack(&attr, &mut addr, &mut size) == 0 {
                        t.set(addr as u64 + size as u64);
                    }
                    libc::pthread_attr_destroy(&mut attr);
                }
            }
        }
        t.get()
    })
}

pub fn forget_thread() {
    STACK_TOP.with(|t| t.set(0));
}

fn loader_counters() -> (u64, u64) {
    let mut c = (0u64, 0u64);
    unsafe extern "C" fn cb(info: *mut libc::dl_phdr_info, _: usize, data: *mut c_void) -> libc::c_int {
        let c = unsafe { &mut *(data as *mut (u64, u64)) };
        unsafe { *c = ((*info).dlpi_adds, (*info).dlpi_subs) };
        1
    }
    unsafe { libc::dl_iterate_phdr(Some(cb), (&raw mut c).cast()) };
    c
}

/// Reads the modules' unwind sections straight from memory, as the loader mapped them.
fn build() -> Tables {
    let (adds, subs) = loader_counters();
    let mut unwinder = Unwinder::new();
    let mut ranges = Vec::new();
    unsafe extern "C" fn cb(info: *mut libc::dl_phdr_info, _: usize, data: *mut c_void) -> libc::c_int {
        let out = unsafe { &mut *(data as *mut Vec<framehop::Module<Data>>) };
        let info = unsafe { &*info };
        let phdrs = unsafe { std::slice::from_raw_parts(info.dlpi_phdr, info.dlpi_phnum as usize) };
        let base = info.dlpi_addr;
        let loads: Vec<_> = phdrs.iter().filter(|p| p.p_type == libc::PT_LOAD).collect();
        let (Some(lo), Some(hi)) = (loads.iter().map(|p| p.p_vaddr).min(), loads.iter().map(|p| p.p_vaddr + p.p_memsz).max()) else {
            return 0;
        };
        let Some(hdr) = phdrs.iter().find(|p| p.p_type == libc::PT_GNU_EH_FRAME) else { return 0 };
        let hdr_svma = hdr.p_vaddr..hdr.p_vaddr + hdr.p_memsz;
        let hdr_bytes: Data = unsafe { std::slice::from_raw_parts((base + hdr.p_vaddr) as *const u8, hdr.p_memsz as usize) };
        // .eh_frame_hdr: version, eh_frame_ptr encoding, …, then eh_frame_ptr. Only the common
        // pc-relative sdata4 encoding is handled; anything else leaves the module to fp unwinding.
        if hdr_bytes.len() < 8 || hdr_bytes[0] != 1 || hdr_bytes[1] != 0x1b {
            return 0;
        }
        let rel = i32::from_ne_bytes(hdr_bytes[4..8].try_into().unwrap()) as i64;
        let eh_svma = (hdr.p_vaddr as i64 + 4 + rel) as u64;
        // Its length is not recorded anywhere cheap: take the rest of the segment holding it.
        let Some(seg) = loads.iter().find(|p| (p.p_vaddr..p.p_vaddr + p.p_memsz).contains(&eh_svma)) else { return 0 };
        let eh_len = seg.p_vaddr + seg.p_memsz - eh_svma;
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
        out.push(framehop::Module::new(String::new(), base + lo..base + hi, base, info));
        0
    }
    let mut modules: Vec<framehop::Module<Data>> = Vec::new();
    unsafe { libc::dl_iterate_phdr(Some(cb), (&raw mut modules).cast()) };
    for m in modules {
        ranges.push((m.avma_range().start, m.avma_range().end));
        unwinder.add_module(m);
    }
    Tables { unwinder, cache: Cache::new(), adds, subs, ranges }
}

pub fn use_libgcc() -> bool {
    static CHOICE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *CHOICE.get_or_init(|| std::env::var("VRAMTRACE_UNWINDER").is_ok_and(|v| v == "libgcc"))
}

/// Fills `out` with return addresses, innermost first, starting at our caller's caller frames;
/// returns how many. Frames inside `skip` (the shim) are dropped by the caller.
#[inline(never)]
pub fn capture(out: &mut [u64]) -> usize {
    if use_libgcc() {
        let mut raw = [std::ptr::null_mut::<c_void>(); 160];
        let n = out.len().min(raw.len());
        let got = unsafe { crate::sys::backtrace(raw.as_mut_ptr(), n as libc::c_int) }.max(0) as usize;
        for (o, r) in out.iter_mut().zip(&raw[..got]) {
            *o = *r as u64;
        }
        return got;
    }
    let (pc, sp, fp) = here();
    let top = stack_top();
    let mut read = |addr: u64| -> Result<u64, ()> {
        if addr >= sp && addr.checked_add(8).is_some_and(|e| e <= top) && addr.is_multiple_of(8) {
            Ok(unsafe { *(addr as *const u64) })
        } else {
            Err(())
        }
    };
    crate::recorder::install_fork_handlers();
    let _g = LOCK.lock();
    let slot = unsafe { &mut *TABLES.0.get() };
    let counters = loader_counters();
    crate::python::loader_seen(counters.0, counters.1);
    if slot.as_ref().is_none_or(|t| (t.adds, t.subs) != counters) {
        *slot = Some(build());
    }
    let t = slot.as_mut().unwrap();
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
