//! One process's trace file: created with `O_EXCL`, grown in chunks reserved with
//! `posix_fallocate` and mapped `MAP_SHARED`, records appended with one copy and one store.
//!
//! Durability: a store into the mapping is in the kernel's page cache the moment it happens, so
//! it survives `abort()` and SIGKILL without any flush. Each record's payload is copied before its
//! header word is published with one atomic store: a reader sees a whole record or zeros.
//!
//! Space is reserved before it is written, so a full disk or a file size limit is an error when
//! reserving (recording stops with a Cut record) instead of a SIGBUS on a store. The last
//! [`RESERVE`] bytes of every chunk are kept for the final records (Cut, Lost, End), so a cut
//! file still says why it stopped and whether the process exited normally.
//!
//! Slow calls never run under the recorder's lock: [`TraceFile::create`] runs before the file is
//! shared, and growth is split in three steps: [`TraceFile::claim_growth`] (under the lock: one
//! thread at a time reserves the next chunk, once the current one is half full),
//! [`GrowJob::run`] (no lock: verify the descriptor, `posix_fallocate`, `mmap`) and
//! [`TraceFile::install`] (under the lock). Appends switch to the new chunk when the current one
//! is full; if it is not ready yet they wait for it (`Appended::Full`), so chunks are used in
//! file order and the reader never meets an unwritten gap.
//!
//! The descriptor may be closed or replaced by the program (`closefrom`, `dup2` onto our
//! number). Records never go through it, and before each use for growth it is checked to still
//! be our file (device and inode); if not, the file is re-opened by its absolute path (and again
//! checked), or recording is cut with `EBADF`. A descriptor that is no longer ours is never
//! closed or written.

use crate::sys;
use std::ffi::{c_int, CStr, CString};
use std::os::unix::ffi::OsStrExt;
use std::sync::atomic::{AtomicU64, Ordering};
use vramtrace_trace::record::{self, encode, CutRec, EndRec, LostRec, RecordKind};

/// The largest record: the encode buffer's size.
const MAX_RECORD: usize = 64 << 10;
const FIRST_CHUNK: usize = 256 << 10;
const MAX_CHUNK: usize = 8 << 20;
/// A chunk smaller than this (a file size limit leaves no more) is not worth reserving.
const MIN_CHUNK: usize = MAX_RECORD + 4096;
/// Kept free at the end of each chunk for a Cut, a Lost and an End record.
pub const RESERVE: usize = record::pad8(8 + size_of::<CutRec>()) + record::pad8(8 + size_of::<LostRec>()) + record::pad8(8 + size_of::<EndRec>());

/// A mapped, reserved region of the file.
pub struct Chunk {
    ptr: *mut u8,
    off: u64,
    len: usize,
}

impl Chunk {
    fn unmap(self) {
        // SAFETY: `ptr`/`len` are a mapping this chunk owns (from `map_chunk`), and it is being
        // consumed, so nothing reads or writes it afterwards.
        unsafe { libc::munmap(self.ptr.cast(), self.len) };
    }
}

enum Next {
    None,
    /// A thread is reserving the next chunk.
    Growing,
    Ready(Chunk),
    /// Reserving failed with this errno: the file is cut when the current chunk is full.
    Failed(c_int),
}

/// (st_dev, st_ino): what makes a descriptor ours.
type FileId = (u64, u64);

pub struct TraceFile {
    fd: c_int,
    id: FileId,
    path: CString,
    cur: Chunk,
    pos: usize,
    next: Next,
    /// Size of the next chunk to reserve (doubles up to MAX_CHUNK).
    next_len: usize,
    /// A full chunk switched away from, to unmap once the lock is dropped.
    retired: Option<Chunk>,
    buf: Vec<u8>,
    cut: bool,
    /// `pos` from which `has_chores` is true: a cached summary of `retired`, `next` and `cut`.
    chores_at: usize,
}

// SAFETY: the mappings are process-wide memory owned by this value alone (nothing else holds
// their pointers), and the descriptor is a process-wide resource: any thread may use them.
unsafe impl Send for TraceFile {}

pub enum Appended {
    Done,
    /// The current chunk is full and the next is not ready: claim growth or wait, then retry.
    Full,
    /// Not recorded: the file was cut.
    Dropped,
}

/// Reserving the next chunk, done without the lock.
pub struct GrowJob {
    fd: c_int,
    id: FileId,
    path: CString,
    off: u64,
    len: usize,
}

pub struct Grown {
    off: u64,
    result: Result<Chunk, c_int>,
    /// A re-opened descriptor, when the old one was no longer ours.
    fd: Option<c_int>,
}

fn errno() -> c_int {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(libc::EIO)
}

fn file_id(fd: c_int) -> Option<FileId> {
    // SAFETY: `stat` is plain data; zeroed is a valid out-parameter.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: fstat on any integer is safe: a bad descriptor is EBADF.
    (unsafe { libc::fstat(fd, &mut st) } == 0).then_some((st.st_dev, st.st_ino))
}

/// Reserves [off, off + len) in the file and maps it. A file size limit (`RLIMIT_FSIZE`) is
/// checked first: crossing it would not only fail but send the program SIGXFSZ, which kills it.
fn map_chunk(fd: c_int, off: u64, len: usize) -> Result<Chunk, c_int> {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: `lim` is a valid out-parameter.
    let len = if unsafe { libc::getrlimit(libc::RLIMIT_FSIZE, &mut lim) } == 0 && lim.rlim_cur != libc::RLIM_INFINITY {
        let room = (lim.rlim_cur.saturating_sub(off) as usize) & !4095;
        if room < MIN_CHUNK {
            return Err(libc::EFBIG);
        }
        len.min(room)
    } else {
        len
    };
    // SAFETY: posix_fallocate on a descriptor we verified is ours; errors come back as a value.
    let rc = unsafe { libc::posix_fallocate(fd, off as libc::off_t, len as libc::off_t) };
    if rc != 0 {
        return Err(rc);
    }
    // SAFETY: maps `len` bytes of the file we just reserved; the kernel chooses the address.
    let ptr = unsafe {
        libc::mmap(std::ptr::null_mut(), len, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_SHARED | libc::MAP_POPULATE, fd, off as libc::off_t)
    };
    if ptr == libc::MAP_FAILED {
        return Err(errno());
    }
    Ok(Chunk { ptr: ptr.cast(), off, len })
}

impl TraceFile {
    /// Creates `dir/vramtrace-<pid>[.<n>].vtr` with its first chunk and file header. Slow (file
    /// system calls): runs before the file is shared, without any lock.
    pub fn create(dir: &CStr) -> Result<TraceFile, String> {
        sys::uncancellable(|| Self::create_inner(dir))
    }

    fn create_inner(dir: &CStr) -> Result<TraceFile, String> {
        let pid = sys::pid();
        let shown = dir.to_string_lossy();
        // The absolute directory, so the file can be re-opened after the program's chdir.
        let abs = std::fs::canonicalize(std::ffi::OsStr::from_bytes(dir.to_bytes()))
            .map_err(|e| format!("cannot create trace file in {shown}: {e}"))?;
        let mut last_err = String::new();
        // O_EXCL never overwrites (and refuses to follow a symlink at the final component); a
        // taken name (pid reuse, the image before an exec in this same process, or a thread of
        // ours that lost a creation race) gets a suffix.
        for n in 0..100 {
            let name = vramtrace_trace::side::trace_file_name(pid, n);
            let shown = format!("{shown}/{name}");
            let path = CString::new(abs.join(&name).as_os_str().as_bytes()).map_err(|_| "bad VRAMTRACE_DIR".to_string())?;
            let flags = libc::O_RDWR | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC;
            // SAFETY: `path` is NUL-terminated; open has no other precondition.
            let fd = unsafe { libc::open(path.as_ptr(), flags, 0o600) };
            if fd < 0 {
                let err = std::io::Error::last_os_error();
                last_err = format!("cannot create trace file {shown}: {err}");
                if err.raw_os_error() != Some(libc::EEXIST) {
                    break;
                }
                continue;
            }
            let first = match file_id(fd).ok_or(libc::EBADF).and_then(|id| Ok((id, map_chunk(fd, 0, FIRST_CHUNK)?))) {
                Ok(x) => x,
                Err(e) => {
                    // Nothing was written: remove the empty file rather than leave a broken trace.
                    // SAFETY: `fd` is the descriptor we just opened; `path` is NUL-terminated.
                    unsafe {
                        libc::close(fd);
                        libc::unlink(path.as_ptr());
                    }
                    return Err(format!("cannot reserve space in {shown}: {}", std::io::Error::from_raw_os_error(e)));
                }
            };
            let (id, cur) = first;
            let mut f = TraceFile { fd, id, path, cur, pos: 0, next: Next::None, next_len: FIRST_CHUNK * 2, retired: None, buf: vec![0; MAX_RECORD], cut: false, chores_at: 0 };
            f.update_chores();
            let header = record::file_header();
            // SAFETY: the chunk is at least FIRST_CHUNK bytes of our own mapping.
            unsafe { std::ptr::copy_nonoverlapping(header.as_ptr(), f.cur.ptr, header.len()) };
            f.pos = header.len();
            return Ok(f);
        }
        Err(last_err)
    }

    /// Removes a file that lost a creation race: it was ours alone (O_EXCL), nothing refers to it.
    pub fn discard(self) {
        let path = self.path.clone();
        let id = self.id;
        let ours = file_id(self.fd) == Some(id);
        let fd = self.fd;
        self.release();
        if ours {
            // SAFETY: `stat` is plain data; zeroed is a valid out-parameter.
            let mut st: libc::stat = unsafe { std::mem::zeroed() };
            // SAFETY: `path` is NUL-terminated; lstat never follows a symlink planted there.
            let same = unsafe { libc::lstat(path.as_ptr(), &mut st) } == 0 && (st.st_dev, st.st_ino) == id;
            if same {
                // SAFETY: `path` is NUL-terminated and names our own file (checked just above).
                unsafe { libc::unlink(path.as_ptr()) };
            }
            // SAFETY: `fd` was verified to still be our descriptor.
            unsafe { libc::close(fd) };
        }
    }

    /// Unmaps everything and closes the descriptor if it is still ours; the file stays. Used
    /// after `fork` in the child (the parent's mappings stay the parent's).
    pub fn release(self) {
        let TraceFile { fd, id, cur, next, retired, .. } = self;
        cur.unmap();
        if let Next::Ready(c) = next {
            c.unmap();
        }
        if let Some(c) = retired {
            c.unmap();
        }
        if file_id(fd) == Some(id) {
            // SAFETY: the descriptor refers to our file, so it is ours to close.
            unsafe { libc::close(fd) };
        }
    }

    pub fn is_cut(&self) -> bool {
        self.cut
    }

    /// Appends one record, keeping [`RESERVE`] bytes free for the final records.
    #[inline]
    pub fn append<T: zerocopy::IntoBytes + zerocopy::Immutable + ?Sized>(&mut self, kind: RecordKind, fixed: &T, raw: &[u8], strings: &[&[u8]]) -> Appended {
        if self.cut {
            return Appended::Dropped;
        }
        let Some((header, len)) = encode(kind, fixed, raw, strings, &mut self.buf) else { return Appended::Done };
        if self.pos + len + RESERVE > self.cur.len {
            match std::mem::replace(&mut self.next, Next::None) {
                Next::Ready(c) => self.switch_to(c),
                Next::Failed(e) => {
                    self.cut(e);
                    return Appended::Dropped;
                }
                other => {
                    self.next = other;
                    return Appended::Full;
                }
            }
        }
        self.write(header, len);
        Appended::Done
    }

    /// Appends a final record (Cut, Lost, End) into the space kept for them; false if none is left.
    pub fn append_final<T: zerocopy::IntoBytes + zerocopy::Immutable>(&mut self, kind: RecordKind, fixed: &T) -> bool {
        let Some((header, len)) = encode(kind, fixed, &[], &[], &mut self.buf) else { return false };
        if self.pos + len > self.cur.len {
            return false;
        }
        self.write(header, len);
        true
    }

    #[inline]
    fn write(&mut self, header: u64, len: usize) {
        // SAFETY: pos + len <= cur.len (checked by the callers), so the payload lands inside
        // our own mapping; buf holds at least len bytes (encode succeeded).
        unsafe { std::ptr::copy_nonoverlapping(self.buf.as_ptr().add(8), self.cur.ptr.add(self.pos + 8), len - 8) };
        self.publish(header);
        self.pos += len;
    }

    /// Publishes a record by storing its header word last.
    #[inline]
    fn publish(&mut self, header: u64) {
        // SAFETY: the mapping is page-aligned and pos a multiple of 8, so the slot is an aligned
        // u64 inside our mapping; only this thread (holding the recorder lock) writes it.
        let slot = unsafe { &*(self.cur.ptr.add(self.pos) as *const AtomicU64) };
        slot.store(header.to_le(), Ordering::Release);
    }

    /// Fills the rest of the current chunk with a Pad record and continues in `next`.
    fn switch_to(&mut self, next: Chunk) {
        let rest = self.cur.len - self.pos;
        if rest >= 8 {
            self.publish(record::RecordHeader { len: rest as u32, kind: RecordKind::Pad as u16 }.to_u64());
        }
        let old = std::mem::replace(&mut self.cur, next);
        self.pos = 0;
        if let Some(stale) = self.retired.replace(old) {
            stale.unmap(); // never reached in practice: a chunk cannot fill between two appends
        }
        self.update_chores();
    }

    /// The chunk switched away from, for the caller to unmap after dropping the lock.
    pub fn take_retired(&mut self) -> Option<Chunk> {
        let r = self.retired.take();
        self.update_chores();
        r
    }

    /// Stops recording: a Cut record, then only final records.
    fn cut(&mut self, errno: c_int) {
        let bytes = self.cur.off + self.pos as u64;
        self.append_final(RecordKind::Cut, &CutRec { t_ns: sys::now_ns(), errno, _reserved: 0, bytes });
        self.cut = true;
        self.update_chores();
        let msg = std::io::Error::from_raw_os_error(errno);
        sys::warn(&format!("cannot grow the trace file: {msg}; recording stops here (pid {})", sys::pid()));
    }

    /// Whether `claim_growth` or `take_retired` have something to do (a cheap check for the hot path).
    #[inline]
    pub fn has_chores(&self) -> bool {
        self.pos >= self.chores_at
    }

    fn update_chores(&mut self) {
        self.chores_at = if self.retired.is_some() {
            0
        } else if !self.cut && matches!(self.next, Next::None) {
            self.cur.len / 2
        } else {
            usize::MAX
        };
    }

    /// Claims the reservation of the next chunk, once the current one is half used and no other
    /// thread is at it. The job runs without the lock; its result goes to [`Self::install`].
    /// `now`: the current chunk is already full, claim whatever its fill level.
    pub fn claim_growth(&mut self, now: bool) -> Option<GrowJob> {
        if self.cut || !matches!(self.next, Next::None) || (!now && self.pos < self.cur.len / 2) {
            return None;
        }
        self.next = Next::Growing;
        self.update_chores();
        let len = self.next_len;
        self.next_len = (self.next_len * 2).min(MAX_CHUNK);
        Some(GrowJob { fd: self.fd, id: self.id, path: self.path.clone(), off: self.cur.off + self.cur.len as u64, len })
    }

    /// Installs a reserved chunk (or the reason there is none).
    pub fn install(&mut self, g: Grown) {
        let expected = matches!(self.next, Next::Growing) && g.off == self.cur.off + self.cur.len as u64;
        if !expected {
            if let Ok(c) = g.result {
                c.unmap();
            }
            return;
        }
        if let Some(fd) = g.fd {
            // The old number is no longer ours (closed, or the program's now): leave it alone.
            self.fd = fd;
        }
        self.next = match g.result {
            Ok(c) => Next::Ready(c),
            Err(e) => Next::Failed(e),
        };
        self.update_chores();
    }
}

impl Grown {
    /// Drops a reserved chunk nobody will install (the session is gone).
    pub fn discard(self) {
        if let Ok(c) = self.result {
            c.unmap();
        }
    }
}

impl GrowJob {
    /// Checks the descriptor, reserves and maps the chunk. Slow: never under the lock.
    pub fn run(self) -> Grown {
        sys::uncancellable(|| {
            let mut fresh = None;
            let fd = if file_id(self.fd) == Some(self.id) {
                self.fd
            } else {
                match self.reopen() {
                    Some(fd) => {
                        fresh = Some(fd);
                        fd
                    }
                    None => return Grown { off: self.off, result: Err(libc::EBADF), fd: None },
                }
            };
            Grown { off: self.off, result: map_chunk(fd, self.off, self.len), fd: fresh }
        })
    }

    /// Our file again, by path, if it is still there and still ours.
    fn reopen(&self) -> Option<c_int> {
        // SAFETY: `path` is NUL-terminated; O_NOFOLLOW refuses a symlink planted in its place.
        let fd = unsafe { libc::open(self.path.as_ptr(), libc::O_RDWR | libc::O_NOFOLLOW | libc::O_CLOEXEC) };
        if fd < 0 {
            return None;
        }
        if file_id(fd) == Some(self.id) {
            return Some(fd);
        }
        // SAFETY: `fd` is the descriptor we just opened.
        unsafe { libc::close(fd) };
        None
    }
}

/// Unmaps a retired chunk; call it with no lock held.
pub fn unmap_retired(c: Option<Chunk>) {
    if let Some(c) = c {
        c.unmap();
    }
}
