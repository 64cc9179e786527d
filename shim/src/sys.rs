//! The few libc facilities the shim needs that the `libc` crate does not declare, plus cheap
//! per-thread and per-process facts. Nothing here allocates except `warn`, and nothing here
//! takes a lock.

use std::cell::Cell;
use std::ffi::{c_int, c_void};
use std::sync::atomic::{AtomicU8, Ordering};

unsafe extern "C" {
    /// glibc's `backtrace(3)` (libgcc unwinder).
    pub fn backtrace(buffer: *mut *mut c_void, size: c_int) -> c_int;
    fn pthread_setcancelstate(state: c_int, oldstate: *mut c_int) -> c_int;
}

/// glibc's `PTHREAD_CANCEL_DISABLE`.
const PTHREAD_CANCEL_DISABLE: c_int = 1;

/// `struct link_map`'s public head (glibc `<link.h>`).
#[repr(C)]
pub struct LinkMap {
    pub l_addr: usize,
    pub l_name: *const std::ffi::c_char,
    pub l_ld: *mut c_void,
    pub l_next: *mut LinkMap,
    pub l_prev: *mut LinkMap,
}

pub const RTLD_DL_LINKMAP: c_int = 2;

pub use vramtrace_trace::clock::{monotonic_ns as now_ns, realtime_ns};

thread_local! {
    // `const` thread-locals without destructors compile to plain TLS slots: no allocation, no
    // registration, safe to touch from any hook, from a signal handler and during thread exit.
    static TID: Cell<u32> = const { Cell::new(0) };
}

pub fn tid() -> u32 {
    TID.with(|t| {
        let v = t.get();
        if v != 0 {
            return v;
        }
        // SAFETY: gettid takes no arguments and cannot fail.
        let v = unsafe { libc::syscall(libc::SYS_gettid) } as u32;
        t.set(v);
        v
    })
}

/// After fork the surviving thread has a new tid.
pub fn forget_tid() {
    TID.with(|t| t.set(0));
}

/// The kernel's pid of the calling process. Never cached: a `vfork` child shares our memory but
/// not our pid, and must be told apart from its parent.
pub fn pid() -> u32 {
    // SAFETY: getpid has no preconditions and cannot fail.
    unsafe { libc::getpid() as u32 }
}

/// True when the process runs in secure mode (setuid/setgid, file capabilities: `AT_SECURE`).
/// The shim then stays inert: it must never let an unprivileged user's environment
/// (`VRAMTRACE_DIR`) make a privileged process create files, and a privileged program is not
/// ours to observe.
pub fn secure() -> bool {
    // 0 = not known yet, 1 = no, 2 = yes. Racing threads compute the same answer.
    static SECURE: AtomicU8 = AtomicU8::new(0);
    match SECURE.load(Ordering::Relaxed) {
        1 => false,
        2 => true,
        _ => {
            // SAFETY: getauxval only reads the auxiliary vector; an absent entry reads as 0.
            let yes = unsafe { libc::getauxval(libc::AT_SECURE) } != 0;
            SECURE.store(if yes { 2 } else { 1 }, Ordering::Relaxed);
            yes
        }
    }
}

/// One line on stderr, with a plain write(2): no Rust stdio lock, no panic if stderr is closed.
pub fn warn(msg: &str) {
    let line = format!("vramtrace: {msg}\n");
    // SAFETY: the pointer and length describe `line`, which outlives the call; a failed write
    // (stderr closed) is ignored on purpose.
    unsafe { libc::write(2, line.as_ptr().cast(), line.len()) };
}

/// A slow system call made with thread cancellation disabled: a `pthread_cancel` acting on a
/// cancellation point inside the shim would unwind through frames that must not unwind, with
/// our state half updated.
pub fn uncancellable<R>(f: impl FnOnce() -> R) -> R {
    let mut old: c_int = 0;
    // SAFETY: `old` is a valid out-parameter; the state is restored below.
    unsafe { pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &mut old) };
    let r = f();
    // SAFETY: restores the state saved above; a NULL old-state pointer is allowed.
    unsafe { pthread_setcancelstate(old, std::ptr::null_mut()) };
    r
}
