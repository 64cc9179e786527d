//! The few libc facilities the shim needs that the `libc` crate does not declare, plus cheap
//! per-thread helpers. Nothing here allocates.

use std::cell::Cell;
use std::ffi::{c_int, c_void};

unsafe extern "C" {
    /// glibc's `backtrace(3)` (libgcc unwinder).
    pub fn backtrace(buffer: *mut *mut c_void, size: c_int) -> c_int;
}

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
    // registration, safe to touch from any hook and during thread exit.
    static TID: Cell<u32> = const { Cell::new(0) };
    static IN_HOOK: Cell<bool> = const { Cell::new(false) };
}

pub fn tid() -> u32 {
    TID.with(|t| {
        let v = t.get();
        if v != 0 {
            return v;
        }
        let v = unsafe { libc::syscall(libc::SYS_gettid) } as u32;
        t.set(v);
        v
    })
}

/// After fork the surviving thread has a new tid.
pub fn forget_tid() {
    TID.with(|t| t.set(0));
}

/// Marks this thread as inside a hook; returns false if it already was. Calls made while inside
/// (the driver calling its own exports, a stacked interposer forwarding to us, our own helper
/// calls) pass straight through, so nothing is recorded twice and nothing recurses.
pub fn enter() -> bool {
    IN_HOOK.with(|f| !f.replace(true))
}

pub fn leave() {
    IN_HOOK.with(|f| f.set(false));
}

/// One line on stderr, with a plain write(2): no Rust stdio lock, no panic if stderr is closed.
pub fn warn(msg: &str) {
    let line = format!("vramtrace: {msg}\n");
    unsafe { libc::write(2, line.as_ptr().cast(), line.len()) };
}
