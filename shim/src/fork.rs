//! `fork` handlers. The child of a multi-threaded program inherits our memory as it was at the
//! fork, other threads gone: a lock one of them held would stay held forever, over data they left
//! half updated. So `prepare` takes every shim lock (in the order `sync` documents; no thread
//! holds one while waiting for another), the parent releases them, and the child re-initializes
//! them and starts a recording of its own, lazily, in a new file.
//!
//! A forking thread that is itself inside the shim's own code (a signal handler that forked) may
//! already hold some of our locks. `prepare` takes all the others, so no other thread is in the
//! middle of an update, and skips those: the critical sections holding them belong to the code
//! the handler interrupted, which completes them on this same thread once the handler returns —
//! in the parent, and in the child if it returns there too. The child's copy of the parent's
//! session is then released only after that code is done with it
//! (`recorder::after_fork_child`).

use crate::sync::{self, ForkLock, Where};
use crate::{identity, modules, recorder, sys, unwind};
use std::cell::Cell;

thread_local! {
    /// Which of `locks()` this thread's `prepare` took (bit per lock); the parent and child
    /// handlers run on the same thread.
    static TAKEN: Cell<u8> = const { Cell::new(0) };
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
    // Only a thread inside the shim's own code can hold one of our locks.
    let inside = sync::current() == Where::Shim;
    let mut taken = 0u8;
    for (i, l) in locks().into_iter().enumerate() {
        if inside && l.held_by_me() {
            continue;
        }
        // SAFETY: this thread does not hold the lock (checked, or it is outside the shim);
        // `parent` or `child` pairs it.
        unsafe { l.raw_lock() };
        taken |= 1 << i;
    }
    TAKEN.with(|t| t.set(taken));
}

extern "C" fn parent() {
    let taken = TAKEN.with(|t| t.replace(0));
    for (i, l) in locks().into_iter().enumerate().rev() {
        if taken & (1 << i) != 0 {
            // SAFETY: `prepare` took this lock on this thread.
            unsafe { l.raw_unlock() };
        }
    }
}

extern "C" fn child() {
    let taken = TAKEN.with(|t| t.replace(0));
    for (i, l) in locks().into_iter().enumerate() {
        if taken & (1 << i) != 0 {
            // SAFETY: the child runs this one thread, which took the lock raw in `prepare`: no
            // guard of it is alive.
            unsafe { l.reinit() };
        }
    }
    // The session's lock held by this thread means the interrupted code may still be using it.
    let _ = std::panic::catch_unwind(|| recorder::after_fork_child(taken & 1 == 0));
    unwind::forget_thread();
    sys::forget_tid();
}
