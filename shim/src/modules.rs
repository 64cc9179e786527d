//! Loaded objects, read from the dynamic loader (`dl_iterate_phdr`): which object holds an
//! address, and the module records (path, load bias, extent, GNU build-id) that let the analyzer
//! symbolize stacks offline, on another machine, later.
//!
//! Every function here calls into the loader: never with another shim lock held.

use crate::sync::Lock;
use std::ffi::{c_int, c_void, CStr, CString};
use std::sync::atomic::{AtomicUsize, Ordering};

pub struct Object {
    pub base: usize,
    pub start: usize,
    pub end: usize,
    pub name: CString,
    pub is_main: bool,
    pub build_id: [u8; 32],
    pub build_id_len: usize,
}

/// Held around every walk of the loader's object list the shim makes (`dl_iterate_phdr`, and
/// libgcc's `backtrace`, which walks it too), except the unwinder's per-capture check, which runs
/// under `unwind::TABLES`. glibc does not reset the lock of that list in the child of a `fork`:
/// a fork while one of our threads walks the list would leave the child blocked at its first
/// walk. The fork handlers take this lock (and `TABLES`), so that never happens. Like every shim
/// lock it is a leaf: what runs under it (the walk's callbacks) takes no other lock.
pub static LOADER: Lock<()> = Lock::new(());

/// `dl_iterate_phdr`, under [`LOADER`].
///
/// # Safety
/// `cb` must honour `dl_iterate_phdr`'s callback contract for `data`, and take no shim lock.
pub unsafe fn iterate_phdr(cb: unsafe extern "C" fn(*mut libc::dl_phdr_info, usize, *mut c_void) -> c_int, data: *mut c_void) {
    let _g = LOADER.lock();
    // SAFETY: forwarded under the caller's contract.
    unsafe { libc::dl_iterate_phdr(Some(cb), data) };
}

/// Calls `f` for every loaded object. The first object is the main program. `f` must not take
/// a shim lock.
pub fn for_each(mut f: impl FnMut(Object) -> bool) {
    struct Ctx<'a> {
        f: &'a mut dyn FnMut(Object) -> bool,
        index: usize,
    }
    /// # Safety
    /// Called by `dl_iterate_phdr` with a valid `info` and the `Ctx` passed below as `data`.
    unsafe extern "C" fn cb(info: *mut libc::dl_phdr_info, _size: usize, data: *mut c_void) -> c_int {
        // SAFETY: `data` is the `&mut Ctx` handed to dl_iterate_phdr below, alive and not
        // otherwise borrowed during the iteration.
        let ctx = unsafe { &mut *(data as *mut Ctx) };
        // SAFETY: the loader passes a valid dl_phdr_info for the duration of the callback.
        let info = unsafe { &*info };
        // SAFETY: dlpi_phdr points to dlpi_phnum program headers of a loaded object.
        let phdrs = unsafe { std::slice::from_raw_parts(info.dlpi_phdr, info.dlpi_phnum as usize) };
        let base = info.dlpi_addr as usize;
        let (mut start, mut end) = (usize::MAX, 0);
        let mut build_id = [0u8; 32];
        let mut build_id_len = 0;
        for ph in phdrs {
            match ph.p_type {
                libc::PT_LOAD => {
                    start = start.min(base + ph.p_vaddr as usize);
                    end = end.max(base + (ph.p_vaddr + ph.p_memsz) as usize);
                }
                libc::PT_NOTE if build_id_len == 0 => {
                    // SAFETY: a PT_NOTE segment of a loaded object is mapped readable at its
                    // load address for p_memsz bytes.
                    let notes = unsafe { std::slice::from_raw_parts((base + ph.p_vaddr as usize) as *const u8, ph.p_memsz as usize) };
                    if let Some(id) = find_build_id(notes) {
                        build_id_len = id.len().min(32);
                        build_id[..build_id_len].copy_from_slice(&id[..build_id_len]);
                    }
                }
                _ => {}
            }
        }
        // SAFETY: a non-NULL dlpi_name is the loader's NUL-terminated object name.
        let name = if info.dlpi_name.is_null() { c"" } else { unsafe { CStr::from_ptr(info.dlpi_name) } };
        let is_main = ctx.index == 0;
        ctx.index += 1;
        if start == usize::MAX {
            return 0;
        }
        let obj = Object { base, start, end, name: name.to_owned(), is_main, build_id, build_id_len };
        if (ctx.f)(obj) { 1 } else { 0 }
    }
    let mut ctx = Ctx { f: &mut f, index: 0 };
    // SAFETY: `cb` matches the callback contract, `ctx` outlives the call, and the callers'
    // closures only collect objects.
    unsafe { iterate_phdr(cb, (&raw mut ctx).cast()) };
}

/// Every loaded object, in the loader's order (the main program first).
pub fn all() -> Vec<Object> {
    let mut v = Vec::new();
    for_each(|o| {
        v.push(o);
        false
    });
    v
}

/// The loaded object holding `addr`, if any.
pub fn object_containing(addr: usize) -> Option<Object> {
    let mut found = None;
    for_each(|o| {
        if (o.start..o.end).contains(&addr) {
            found = Some(o);
            true
        } else {
            false
        }
    });
    found
}

/// Parses an ELF note segment for NT_GNU_BUILD_ID.
fn find_build_id(mut notes: &[u8]) -> Option<&[u8]> {
    const NT_GNU_BUILD_ID: u32 = 3;
    let word = |b: &[u8], i: usize| -> Option<u32> { Some(u32::from_ne_bytes(b.get(i..i + 4)?.try_into().ok()?)) };
    while notes.len() >= 12 {
        let namesz = word(notes, 0)? as usize;
        let descsz = word(notes, 4)? as usize;
        let ty = word(notes, 8)?;
        let name_end = 12 + ((namesz + 3) & !3);
        let desc_end = name_end + ((descsz + 3) & !3);
        if desc_end > notes.len() {
            return None;
        }
        if ty == NT_GNU_BUILD_ID && notes.get(12..12 + namesz) == Some(b"GNU\0") {
            return notes.get(name_end..name_end + descsz);
        }
        notes = &notes[desc_end..];
    }
    None
}

/// Address range of the shim itself (cached): our frames are dropped from stacks, and a lookup
/// that lands in it is never bound as the "real" function.
pub fn shim_range() -> (usize, usize) {
    static START: AtomicUsize = AtomicUsize::new(0);
    static END: AtomicUsize = AtomicUsize::new(0);
    let end = END.load(Ordering::Acquire);
    if end != 0 {
        return (START.load(Ordering::Relaxed), end);
    }
    let (s, e) = object_containing(shim_range as *const () as usize).map_or((0, 1), |o| (o.start, o.end));
    START.store(s, Ordering::Relaxed);
    END.store(e, Ordering::Release);
    (s, e)
}

pub fn in_shim(addr: usize) -> bool {
    let (s, e) = shim_range();
    (s..e).contains(&addr)
}

/// The executable's real path (the loader reports it as "").
pub fn exe_path() -> String {
    std::fs::read_link("/proc/self/exe").map(|p| p.to_string_lossy().into_owned()).unwrap_or_default()
}
