//! The end of the process: an End record tells the analyzer it did not crash. Written at normal
//! exit (from `.fini_array`, after the program's own exit handlers registered later than us), and
//! at `_exit`/`_Exit`, which skip exit handlers (Python's `os._exit`, forked server workers).
//!
//! `_exit` is also what a `vfork` child calls after a failed `exec`. That child shares our memory
//! (even this thread's thread-locals) but not our pid: before anything else the hook compares the
//! pid with the recording's owner, and a child touches nothing of ours.

use crate::{driver, recorder, sync, sys};
use std::ffi::c_int;
use std::sync::atomic::{AtomicUsize, Ordering};

static REAL_EXIT: AtomicUsize = AtomicUsize::new(0);

/// Finds glibc's `_exit` ahead of time: at exit the loader may be busy (or, in a `vfork` child,
/// shared with a parent thread).
pub fn init() {
    REAL_EXIT.store(driver::next_symbol(c"_exit"), Ordering::Relaxed);
}

/// Writes the End record if this process is recording and the thread can take our lock.
pub fn end() {
    if recorder::owner() != sys::pid() {
        return;
    }
    // A thread already inside the shim (an exit from a signal handler) may hold the lock.
    if let Ok(_inside) = sync::enter() {
        let _ = std::panic::catch_unwind(recorder::finish);
    }
}

fn real_exit(status: c_int) -> ! {
    let p = REAL_EXIT.load(Ordering::Relaxed);
    if p != 0 {
        // SAFETY: `p` is glibc's `_exit`, resolved in `init`.
        unsafe { std::mem::transmute::<usize, extern "C" fn(c_int) -> !>(p)(status) }
    }
    loop {
        // SAFETY: exit_group takes a status and never returns.
        unsafe { libc::syscall(libc::SYS_exit_group, status) };
    }
}

/// # Safety
/// Same contract as glibc's `_exit`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn _exit(status: c_int) -> ! {
    end();
    real_exit(status)
}

/// # Safety
/// Same contract as glibc's `_Exit`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn _Exit(status: c_int) -> ! {
    end();
    real_exit(status)
}
