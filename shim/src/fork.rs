//! `fork` handlers. The child of a multi-threaded program inherits our memory as it was at the
//! fork, other threads gone: a lock one of them held would stay held forever. So `prepare` takes
//! every shim lock (in the order `sync` documents; no thread holds one while waiting for
//! another), the parent releases them, and the child re-initializes them and starts a recording
//! of its own, lazily, in a new file.
//!
//! If the forking thread is itself inside the shim's own code (a signal handler that forked), it
//! may already hold one of our locks: `prepare` then takes none, and the child abandons the state
//! it inherited rather than read what may be half updated.

use crate::sync::{self, ForkLock, Where};
use crate::{identity, modules, recorder, sys, unwind};
use std::cell::Cell;

thread_local! {
    /// `prepare` took no lock on this thread (the parent and child handlers run on it too).
    static SKIPPED: Cell<bool> = const { Cell::new(false) };
}

fn locks() -> [&'static dyn ForkLock; 4] {
    [&recorder::STATE, &identity::TABLE, &unwind::TABLES, &modules::LOADER]
}

/// Registers the handlers; called once, from the shim's constructor.
pub fn install() {
    // SAFETY: the three handlers are `extern "C" fn()` that never unwind.
    unsafe { libc::pthread_atfork(Some(prepare), Some(parent), Some(child)) };
}

extern "C" fn prepare() {
    if sync::current() == Where::Shim {
        SKIPPED.with(|s| s.set(true));
        return;
    }
    for l in locks() {
        // SAFETY: this thread is not inside the shim's own code, so it holds none of our locks;
        // `parent` or `child` pairs each of these.
        unsafe { l.raw_lock() };
    }
}

extern "C" fn parent() {
    if SKIPPED.with(|s| s.replace(false)) {
        return;
    }
    for l in locks().iter().rev() {
        // SAFETY: `prepare` took every lock on this thread.
        unsafe { l.raw_unlock() };
    }
}

extern "C" fn child() {
    let abandon = SKIPPED.with(|s| s.replace(false));
    for l in locks() {
        // SAFETY: the child runs this one thread, and no guard of ours is alive in it (prepare
        // took the locks raw, or the forking thread was inside the shim and we abandon its state).
        unsafe { l.reinit() };
    }
    let _ = std::panic::catch_unwind(|| {
        recorder::after_fork_child(abandon);
        identity::after_fork_child(abandon);
        unwind::after_fork_child(abandon);
    });
    sys::forget_tid();
}
