//! Reads of the interpreter's memory that never fault.
//!
//! Every address is checked against a snapshot of the process's readable mappings (from
//! `/proc/self/maps`) before it is dereferenced. A miss refreshes the snapshot (a few at once,
//! then one per `REFRESH_EVERY_NS`; at once after the loader's object list changed) and checks
//! again. Between refreshes, a missed page is probed with `process_vm_readv` on ourselves, which
//! copies or fails with EFAULT but never faults; a page that answers is used for the rest of the
//! walk. What stays unproven is not read, so a garbage pointer ends a walk instead of crashing the
//! program. Device mappings (`/dev/...`) and the kernel's special pages are never part of it.
//!
//! The snapshot is shared without a lock on the hot path: a reader pins it with a reader count;
//! a refresh builds the next one in the spare slot (only once no reader is left on it) and
//! publishes it with one atomic store. Cost: two uncontended atomic adds per walk, and per object a
//! check against the ranges last hit, which a thread keeps from one walk to the next (a binary
//! search on a miss).
//!
//! What this cannot prove: a region unmapped after the snapshot was taken still looks readable
//! until the next refresh. The objects a walk follows are kept alive by the parked thread's own
//! frames, so only a wrong pointer could land there; the layout checks in `find` and `walk` make
//! that a second, independent failure.

use std::cell::{Cell, UnsafeCell};
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering::SeqCst};

/// Refreshes: `REFRESH_BURST` may follow each other, then one per `REFRESH_EVERY_NS` (a refresh
/// of a large process's maps takes up to a millisecond).
const REFRESH_EVERY_NS: u64 = 250_000_000;
const REFRESH_BURST: u64 = 4;
const PAGE: u64 = 4096;

struct Snapshot {
    readers: AtomicUsize,
    /// Sorted, merged, readable [start, end) ranges, and the number of the refresh that read
    /// them. Written only while no reader holds the snapshot and it is not the current one (see
    /// `publish`).
    ranges: UnsafeCell<(Vec<(u64, u64)>, u64)>,
}

// SAFETY: `ranges` is only written by the one refreshing thread while no reader has the snapshot
// pinned, and only read by readers that pinned it (see `pin_current` and `publish`).
unsafe impl Sync for Snapshot {}

impl Snapshot {
    fn ranges(&self) -> &[(u64, u64)] {
        // SAFETY: called only on a pinned snapshot, which no refresh writes (see `publish`).
        unsafe { &(*self.ranges.get()).0 }
    }
    fn generation(&self) -> u64 {
        // SAFETY: as in `ranges`.
        unsafe { (*self.ranges.get()).1 }
    }
}

static CURRENT: AtomicPtr<Snapshot> = AtomicPtr::new(std::ptr::null_mut());
/// The previous snapshot, reused by the next refresh once its readers are gone. Only touched by
/// the thread holding `REFRESHING`.
static SPARE: AtomicPtr<Snapshot> = AtomicPtr::new(std::ptr::null_mut());
static REFRESHING: AtomicBool = AtomicBool::new(false);
/// Refresh budget as a time: a refresh may run when `now` is past it; each one moves it forward by
/// `REFRESH_EVERY_NS`, and it never lags `now` by more than the burst.
static REFRESH_AT_NS: AtomicU64 = AtomicU64::new(0);
/// `process_vm_readv` is refused here (seccomp); probing is off.
static NO_PROBE: AtomicBool = AtomicBool::new(false);
/// Set when the loader's object list changed: the next miss refreshes at once.
static STALE: AtomicBool = AtomicBool::new(false);
/// Number of the last refresh.
static GENERATION: AtomicU64 = AtomicU64::new(0);

/// Ranges of one snapshot a thread hit, kept from one walk to the next: most lookups are then a
/// few comparisons instead of a binary search.
#[derive(Clone, Copy)]
struct Hot {
    generation: u64,
    ranges: [(u64, u64); 8],
    next: usize,
}

const NO_HOT: Hot = Hot { generation: u64::MAX, ranges: [(0, 0); 8], next: 0 };

thread_local! {
    /// A `const` thread-local without destructor: a plain TLS slot, usable at any time.
    static HOT: Cell<Hot> = const { Cell::new(NO_HOT) };
}

/// The next refresh may run at once (objects were loaded or unloaded).
pub fn mark_stale() {
    STALE.store(true, SeqCst);
}

/// A pinned snapshot: checked reads for the length of one walk.
pub struct Mem {
    snap: &'static Snapshot,
    /// Snapshot ranges recently hit, replaced in turn; handed to the thread's next walk.
    hot: Hot,
    /// Pages proven readable by `probe` during this walk (not kept: they are not in a snapshot).
    probed: [(u64, u64); 4],
    next_probed: usize,
    /// The range that answered last, per kind of object (see `Slot`).
    last: [(u64, u64); 4],
    /// The range `lookup` found.
    found: (u64, u64),
    refreshed: bool,
}

/// Kinds of objects a walk reads, each with its own last-hit range.
#[derive(Clone, Copy)]
pub enum Slot {
    Frame = 0,
    Code = 1,
    Bytes = 2,
    Other = 3,
}

/// A range of memory proven readable: its fields are read without further checks.
#[derive(Clone, Copy)]
pub struct View {
    base: u64,
    len: u64,
}

impl View {
    /// The aligned u64 at `off`, if inside the view.
    pub fn u64(&self, off: u64) -> Option<u64> {
        let a = self.at(off, 8)?;
        // SAFETY: `Mem::view` proved [base, base + len) readable and `at` keeps the 8 aligned
        // bytes inside it. The interpreter's memory may change under us (other threads): the
        // value is only used as untrusted bits, and every address derived from it is checked.
        Some(unsafe { std::ptr::read_volatile(a as *const u64) })
    }

    /// The aligned u32 at `off`, if inside the view.
    pub fn u32(&self, off: u64) -> Option<u32> {
        let a = self.at(off, 4)?;
        // SAFETY: as in `u64`: 4 aligned bytes inside the proven range, read as untrusted bits.
        Some(unsafe { std::ptr::read_volatile(a as *const u32) })
    }

    /// The byte at `off`, if inside the view.
    pub fn u8(&self, off: u64) -> Option<u8> {
        let a = self.at(off, 1)?;
        // SAFETY: as in `u64`: one byte inside the proven range, read as untrusted bits.
        Some(unsafe { std::ptr::read_volatile(a as *const u8) })
    }

    fn at(&self, off: u64, size: u64) -> Option<u64> {
        let a = self.base + off;
        (off.checked_add(size)? <= self.len && a.is_multiple_of(size)).then_some(a)
    }
}

impl Drop for Mem {
    fn drop(&mut self) {
        HOT.with(|h| h.set(self.hot));
        self.snap.readers.fetch_sub(1, SeqCst);
    }
}

fn pin_current() -> Option<&'static Snapshot> {
    loop {
        let p = CURRENT.load(SeqCst);
        if p.is_null() {
            return None;
        }
        // SAFETY: snapshots are never freed (a busy one is leaked, an idle one reused in place
        // only while no reader holds it), so `p` stays valid for the life of the process.
        let s = unsafe { &*p };
        s.readers.fetch_add(1, SeqCst);
        if CURRENT.load(SeqCst) == p {
            return Some(s);
        }
        // A refresh published another snapshot meanwhile; this one may be about to be rewritten.
        s.readers.fetch_sub(1, SeqCst);
    }
}

impl Mem {
    /// Pins the current snapshot, taking the first one if there is none yet.
    pub fn pin() -> Option<Mem> {
        if CURRENT.load(SeqCst).is_null() {
            refresh(true);
        }
        let snap = pin_current()?;
        let hot = HOT.with(|h| h.get());
        let hot = if hot.generation == snap.generation() { hot } else { Hot { generation: snap.generation(), ..NO_HOT } };
        Some(Mem { snap, hot, probed: [(0, 0); 4], next_probed: 0, last: [(0, 0); 4], found: (0, 0), refreshed: false })
    }

    /// `len` bytes at `addr` are inside one readable mapping.
    #[inline]
    pub fn readable(&mut self, addr: u64, len: u64) -> bool {
        self.readable_as(Slot::Other, addr, len)
    }

    /// `readable`, first trying the range that last answered for this kind of object: frames of
    /// one thread share a data stack chunk, code objects a few arenas.
    #[inline]
    fn readable_as(&mut self, slot: Slot, addr: u64, len: u64) -> bool {
        let Some(end) = addr.checked_add(len) else { return false };
        let (s, e) = self.last[slot as usize];
        if addr != 0 && s <= addr && end <= e {
            return true;
        }
        // Another kind's range may hold it (code objects and line tables share arenas).
        if let Some(&r) = self.last.iter().find(|&&(s, e)| addr != 0 && s <= addr && end <= e) {
            self.last[slot as usize] = r;
            return true;
        }
        let ok = self.lookup(addr, len, end);
        if ok {
            self.last[slot as usize] = self.found;
        }
        ok
    }

    fn lookup(&mut self, addr: u64, len: u64, end: u64) -> bool {
        if addr == 0 {
            return false;
        }
        let within = |&(s, e): &(u64, u64)| s <= addr && end <= e;
        if let Some(&r) = self.hot.ranges.iter().find(|r| within(r)).or_else(|| self.probed.iter().find(|r| within(r))) {
            self.found = r;
            return true;
        }
        if let Some(r) = find(self.snap.ranges(), addr, end) {
            self.remember(r);
            self.found = r;
            return true;
        }
        // Not in the snapshot: memory mapped since? Refresh (once per walk) and look again, or
        // probe the pages themselves.
        if !self.refreshed && refresh(false) {
            self.refreshed = true;
            if let Some(next) = pin_current() {
                self.snap.readers.fetch_sub(1, SeqCst);
                self.snap = next;
                self.hot = Hot { generation: next.generation(), ..NO_HOT };
                self.last = [(0, 0); 4];
            }
            return self.readable(addr, len);
        }
        let (first, last) = (addr & !(PAGE - 1), (end - 1) & !(PAGE - 1));
        if last - first > 4 * PAGE || !(first..=last).step_by(PAGE as usize).all(probe) {
            return false;
        }
        self.probed[self.next_probed] = (first, last + PAGE);
        self.next_probed = (self.next_probed + 1) % self.probed.len();
        self.found = (first, last + PAGE);
        true
    }

    fn remember(&mut self, r: (u64, u64)) {
        let h = &mut self.hot;
        h.ranges[h.next] = r;
        h.next = (h.next + 1) % h.ranges.len();
    }

    /// `len` bytes at `addr`, if readable.
    pub fn view(&mut self, addr: u64, len: u64) -> Option<View> {
        self.view_as(Slot::Other, addr, len)
    }

    /// `view` of an object of one kind (see `readable_as`).
    #[inline]
    pub fn view_as(&mut self, slot: Slot, addr: u64, len: u64) -> Option<View> {
        self.readable_as(slot, addr, len).then_some(View { base: addr, len })
    }

    /// An aligned u64 at `addr`, if readable.
    pub fn u64(&mut self, addr: u64) -> Option<u64> {
        self.view(addr, 8)?.u64(0)
    }

    /// An aligned u32 at `addr`, if readable.
    pub fn u32(&mut self, addr: u64) -> Option<u32> {
        self.view(addr, 4)?.u32(0)
    }

    /// `len` bytes at `addr` appended to `out`, if readable.
    pub fn bytes(&mut self, addr: u64, len: usize, out: &mut Vec<u8>) -> bool {
        if !self.readable(addr, len as u64) {
            return false;
        }
        out.reserve(len);
        for i in 0..len as u64 {
            // SAFETY: every byte of [addr, addr + len) lies inside a readable mapping (checked
            // above); bytes have no alignment and any value is valid.
            out.push(unsafe { std::ptr::read_volatile((addr + i) as *const u8) });
        }
        true
    }
}

/// The range of `ranges` holding [addr, end), if one does.
fn find(ranges: &[(u64, u64)], addr: u64, end: u64) -> Option<(u64, u64)> {
    let i = ranges.partition_point(|&(s, _)| s <= addr);
    let r = *ranges.get(i.checked_sub(1)?)?;
    (end <= r.1).then_some(r)
}

/// Whether the page at `page` is readable now: `process_vm_readv` copies one byte of it, or fails
/// with EFAULT where reading would fault.
fn probe(page: u64) -> bool {
    if NO_PROBE.load(SeqCst) {
        return false;
    }
    let mut byte = 0u8;
    let local = libc::iovec { iov_base: (&raw mut byte).cast(), iov_len: 1 };
    let remote = libc::iovec { iov_base: page as *mut libc::c_void, iov_len: 1 };
    // SAFETY: the kernel copies into our own one-byte buffer; the remote side is only read by the
    // kernel, which reports an unmapped or unreadable address as an error instead of faulting.
    let n = unsafe { libc::process_vm_readv(libc::getpid(), &local, 1, &remote, 1, 0) };
    if n < 0 && matches!(std::io::Error::last_os_error().raw_os_error(), Some(libc::EPERM | libc::ENOSYS)) {
        NO_PROBE.store(true, SeqCst);
    }
    n == 1
}

/// Reads `/proc/self/maps` into a new snapshot, unless the refresh budget is spent (and nothing
/// was loaded since) or another thread is reading it now. Returns whether a new snapshot was
/// published.
fn refresh(first: bool) -> bool {
    let now = crate::sys::now_ns();
    let at = REFRESH_AT_NS.load(SeqCst);
    if !first && !STALE.load(SeqCst) && now < at {
        return false;
    }
    if REFRESHING.swap(true, SeqCst) {
        return false;
    }
    install_fork_handler();
    let done = match read_maps() {
        Some(ranges) => {
            publish(ranges);
            STALE.store(false, SeqCst);
            true
        }
        None => false,
    };
    REFRESH_AT_NS.store(at.max(now.saturating_sub(REFRESH_BURST * REFRESH_EVERY_NS)) + REFRESH_EVERY_NS, SeqCst);
    REFRESHING.store(false, SeqCst);
    done
}

/// Publishes `ranges`, in the spare snapshot when no reader holds it, in a new one otherwise.
/// Called with `REFRESHING` held.
fn publish(ranges: Vec<(u64, u64)>) {
    let generation = GENERATION.fetch_add(1, SeqCst) + 1;
    let spare = SPARE.load(SeqCst);
    let next = if !spare.is_null() && {
        // SAFETY: snapshots are never freed; `spare` is valid.
        unsafe { &*spare }.readers.load(SeqCst) == 0
    } {
        // SAFETY: `spare` is not CURRENT, so no new reader can keep a pin on it (a reader that
        // pins it sees CURRENT differ and lets go), and no reader holds it now: we are its only
        // user until it is published below.
        unsafe { *(*spare).ranges.get() = (ranges, generation) };
        spare
    } else {
        // A reader is still on the spare (or a fork left its count behind): leave it to that
        // reader, for good, and start a new one.
        Box::into_raw(Box::new(Snapshot { readers: AtomicUsize::new(0), ranges: UnsafeCell::new((ranges, generation)) }))
    };
    let old = CURRENT.swap(next, SeqCst);
    SPARE.store(old, SeqCst);
}

/// Readable mappings, sorted and merged; device memory and the kernel's special pages left out.
fn read_maps() -> Option<Vec<(u64, u64)>> {
    let text = std::fs::read("/proc/self/maps").ok()?;
    let mut ranges: Vec<(u64, u64)> = text.split(|&b| b == b'\n').filter_map(parse_line).collect();
    ranges.sort_unstable();
    let mut merged: Vec<(u64, u64)> = Vec::with_capacity(ranges.len());
    for (s, e) in ranges {
        match merged.last_mut() {
            Some(last) if s <= last.1 => last.1 = last.1.max(e),
            _ => merged.push((s, e)),
        }
    }
    Some(merged)
}

/// `start-end perms offset dev inode [path]`: the range, if readable and ordinary memory.
fn parse_line(line: &[u8]) -> Option<(u64, u64)> {
    let line = std::str::from_utf8(line).ok()?;
    let mut f = line.split_ascii_whitespace();
    let (s, e) = f.next()?.split_once('-')?;
    let perms = f.next()?;
    let path = f.nth(3).unwrap_or("");
    if !perms.starts_with('r') || path.starts_with("/dev/") || matches!(path, "[vvar]" | "[vvar_vclock]" | "[vsyscall]") {
        return None;
    }
    Some((u64::from_str_radix(s, 16).ok()?, u64::from_str_radix(e, 16).ok()?))
}

/// A fork while another thread was refreshing would leave `REFRESHING` set in the child forever.
fn install_fork_handler() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    unsafe extern "C" fn child() {
        REFRESHING.store(false, SeqCst);
    }
    ONCE.call_once(|| {
        // SAFETY: registers a handler that only stores to an atomic: async-signal-safe, as a
        // fork child handler must be.
        unsafe { libc::pthread_atfork(None, None, Some(child)) };
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_lines_keep_only_readable_ordinary_memory() {
        assert_eq!(parse_line(b"7f00-7f10 r--p 00000000 08:01 12 /usr/lib/libpython3.12.so"), Some((0x7f00, 0x7f10)));
        assert_eq!(parse_line(b"1000-2000 rw-p 00000000 00:00 0 "), Some((0x1000, 0x2000)));
        assert_eq!(parse_line(b"1000-2000 rw-p 00000000 00:00 0"), Some((0x1000, 0x2000)));
        assert_eq!(parse_line(b"1000-2000 ---p 00000000 00:00 0"), None);
        assert_eq!(parse_line(b"1000-2000 rw-s 00000000 00:05 9 /dev/nvidia0"), None);
        assert_eq!(parse_line(b"1000-2000 r--p 00000000 00:00 0 [vvar]"), None);
        assert_eq!(parse_line(b"garbage"), None);
    }

    #[test]
    fn lookups_need_the_whole_range_inside_one_mapping() {
        let r = [(0x1000, 0x2000), (0x3000, 0x5000)];
        assert_eq!(find(&r, 0x1000, 0x1008), Some((0x1000, 0x2000)));
        assert_eq!(find(&r, 0x1ff8, 0x2008), None);
        assert_eq!(find(&r, 0x2800, 0x2808), None);
        assert_eq!(find(&r, 0x4ff8, 0x5000), Some((0x3000, 0x5000)));
        assert_eq!(find(&r, 0x800, 0x808), None);
    }

    #[test]
    fn reads_own_memory_and_refuses_unmapped_memory() {
        let v: Box<u64> = Box::new(0x1122334455667788);
        let mut m = Mem::pin().unwrap();
        assert_eq!(m.u64(&*v as *const u64 as u64), Some(0x1122334455667788));
        assert_eq!(m.u64(8), None, "the zero page");
        assert_eq!(m.u64(&*v as *const u64 as u64 + 1), None, "misaligned");
        // A page of our own: found once mapped, refused once it is not readable.
        // SAFETY: an anonymous mapping of our own, unmapped before the read is attempted.
        let p = unsafe { libc::mmap(std::ptr::null_mut(), 4096, libc::PROT_READ, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, -1, 0) };
        assert_ne!(p, libc::MAP_FAILED);
        drop(m);
        mark_stale();
        let mut m = Mem::pin().unwrap();
        assert_eq!(m.u64(p as u64), Some(0), "mapped after the first snapshot: found by a refresh");
        drop(m);
        // Made unreadable rather than unmapped: another test thread could map the freed address
        // again between the munmap and the read.
        // SAFETY: our own mapping, which nothing else references.
        assert_eq!(unsafe { libc::mprotect(p, 4096, libc::PROT_NONE) }, 0);
        mark_stale();
        assert!(refresh(false));
        let mut m = Mem::pin().unwrap();
        assert_eq!(m.u64(p as u64), None, "no longer readable: gone after a refresh");
        assert!(!m.readable(u64::MAX - 4, 8));
        drop(m);
        // SAFETY: our own mapping, no longer used.
        unsafe { libc::munmap(p, 4096) };
    }
}
