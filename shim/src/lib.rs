//! `libvramtrace.so`: preload it into any program (`LD_PRELOAD=libvramtrace.so prog`) and every
//! CUDA driver memory call the program makes is recorded, with its call stack, into
//! `$VRAMTRACE_DIR/vramtrace-<pid>.vtr`. The program behaves exactly as without it.
//!
//! - `resolve`: the three doors to the driver (exports, `dlsym`, `cuGetProcAddress`) and the
//!   identity table that decides what to wrap.
//! - `hooks`: the hooked functions, declared once in a table.
//! - `recorder`: the crash-safe per-process trace file.
//! - `modules`: loaded objects, for offline symbolization.
//! - `unwind`: fast call-stack capture (cached DWARF CFI via framehop).
//! - `python`: the calling thread's CPython stack, read without the GIL.
//!
//! Nothing here analyzes; see the `analyzer` crate.

mod hooks;
mod modules;
mod python;
mod recorder;
mod resolve;
mod sys;
mod unwind;

use std::ffi::{c_char, CStr};

/// Records a marker (a phase, a token count) in the trace: `vramtrace_mark("tokens", 4096)`.
/// Callable from C and from Python's ctypes (`ctypes.CDLL(None).vramtrace_mark`).
///
/// # Safety
/// `label` is NULL or a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vramtrace_mark(label: *const c_char, value: i64) {
    if !sys::enter() {
        return;
    }
    let _ = std::panic::catch_unwind(|| {
        let label = if label.is_null() { &[][..] } else { unsafe { CStr::from_ptr(label) }.to_bytes() };
        recorder::mark(label, value);
    });
    sys::leave();
}

/// Runs at normal exit (after the program's own atexit handlers registered later than us).
extern "C" fn at_exit() {
    if sys::enter() {
        let _ = std::panic::catch_unwind(recorder::finish);
        sys::leave();
    }
}

#[used]
#[unsafe(link_section = ".fini_array")]
static FINI: extern "C" fn() = at_exit;
