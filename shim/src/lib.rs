//! `libvramtrace.so`: preload it into any program (`LD_PRELOAD=libvramtrace.so prog`) and every
//! CUDA driver memory call the program makes is recorded, with its call stack, into
//! `$VRAMTRACE_DIR/vramtrace-<pid>.vtr`. The program behaves exactly as without it.
//!
//! Modules, each using only those listed before it:
//! - `sys`: libc bits, thread id, secure mode. `sync`: the one lock type, the lock order, and
//!   the per-thread re-entry state (read it first).
//! - `modules`: loaded objects, for offline symbolization. `driver`: glibc's own `dlsym`, and
//!   the driver calls the shim makes for itself. `python`: the calling thread's CPython stack,
//!   read without the GIL. `unwind`: fast call-stack capture.
//! - `tracefile`: the crash-safe file. `recorder`: the per-process session and append path.
//! - `hooks`: the hooked functions, declared once in a table. `identity`: which real pointer is
//!   which hooked function. `resolve`: the lookup doors (`dlsym`, `cuGetProcAddress`).
//! - `fork`, `exit`: the process's life cycle (a child of `fork` records into a file of its own;
//!   `_exit` still ends the file with an End record).
//!
//! What the shim must never do: change what the program does (results, output, exit code,
//! signals, descriptors, files other than its own trace); wait for a lock from a call that
//! arrives while its thread is inside the shim; hold a lock across a call into the driver or the
//! loader; record anything, or create any file, in a setuid/setgid program (`AT_SECURE`: it then
//! only forwards calls). Nothing here analyzes; see the `analyzer` crate.
#![deny(clippy::undocumented_unsafe_blocks)]

mod driver;
mod exit;
mod fork;
mod hooks;
mod identity;
mod modules;
mod python;
mod recorder;
mod resolve;
mod sync;
mod sys;
mod tracefile;
mod unwind;

use std::ffi::{c_char, CStr};

/// Records a marker (a phase, a token count) in the trace: `vramtrace_mark("tokens", 4096)`.
/// Callable from C and from Python's ctypes (`ctypes.CDLL(None).vramtrace_mark`).
///
/// # Safety
/// `label` is NULL or a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vramtrace_mark(label: *const c_char, value: i64) {
    if sys::secure() {
        return;
    }
    let Ok(_inside) = sync::enter() else {
        // A marker never comes from the driver: a nested one is a signal handler's.
        recorder::count_lost_call();
        return;
    };
    let _ = std::panic::catch_unwind(|| {
        // SAFETY: a non-NULL `label` is NUL-terminated (this function's contract).
        let label = if label.is_null() { &[][..] } else { unsafe { CStr::from_ptr(label) }.to_bytes() };
        recorder::mark(label, value);
    });
}

/// Runs when the shim is loaded: registers the fork handlers and finds what the exit hooks need.
/// Nothing is created or read here; the trace file appears with the first event.
extern "C" fn init() {
    exit::init();
    if !sys::secure() {
        fork::install();
    }
}

/// Runs at normal exit (after the program's own atexit handlers registered later than us).
extern "C" fn at_exit() {
    exit::end();
}

#[used]
#[unsafe(link_section = ".init_array")]
static INIT: extern "C" fn() = init;

#[used]
#[unsafe(link_section = ".fini_array")]
static FINI: extern "C" fn() = at_exit;
