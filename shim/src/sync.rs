//! The shim's locking discipline: one lock type, and a per-thread "inside the shim" state that is
//! checked before any lock is taken.
//!
//! # Locks
//!
//! Every piece of shared mutable state sits inside a [`Lock`]; its [`LockGuard`] is the only way
//! to reach it. There are four:
//!
//! 1. `recorder::STATE`: the process's trace file, stack and module tables, configuration;
//! 2. `identity::TABLE`: which real driver pointer is which hooked function;
//! 3. `unwind::TABLES`: the unwinder's per-module tables and rule cache;
//! 4. `modules::LOADER`: guards no data; held around the shim's own walks of the loader's
//!    object list (`dl_iterate_phdr`), so that no `fork` happens in the middle of one (glibc
//!    does not reset that list's lock in the child, which would block there).
//!
//! **Order: none is ever taken while another is held.** Each is a leaf, so no two threads can
//! wait on each other through them, and the fork handlers may take all four (in the order
//! above) without deadlock.
//!
//! While holding a lock the shim only touches memory, allocates, and writes to stderr. It never
//! calls into the driver or the dynamic loader (`dlopen`, `dlsym`, `dladdr`: a thread running a
//! library constructor holds the loader's lock and may call a hooked function, which would need
//! ours), and never makes slow file system calls (`open`, `posix_fallocate`, `mmap`, `munmap`):
//! those run before the lock is taken or after it is dropped, and their result is installed
//! under the lock (see `recorder` and `tracefile` for how races resolve). The one loader call
//! made under a lock is `dl_iterate_phdr`, under `LOADER` or `TABLES` (the unwinder's cheap
//! check for loaded and unloaded objects): it takes only the lock of the object list, which no
//! loader code holds while it runs the program's code.
//!
//! # Re-entry
//!
//! A thread marks itself inside the shim ([`enter`]) before it can take any lock. A call that
//! arrives on a thread that is already inside never takes a lock; it passes straight through to
//! the driver:
//! - inside the driver ([`Where::Driver`]: the call we forwarded) it is the driver or a stacked
//!   interposer calling back: the outer call is the one recorded, so nothing is lost;
//! - inside the shim's own code ([`Where::Shim`]) it can only come from a signal handler that
//!   interrupted us, perhaps while we hold a lock. Waiting for that lock would deadlock the
//!   thread, so the call is let through unrecorded and counted (the trace's Lost record).
//!
//! # Fork
//!
//! `fork` handlers (module `fork`) take every lock in `prepare`, so the child inherits no lock
//! in the middle of an update, and re-initialize them in the child. A forking thread that is
//! itself inside the shim's own code (a signal handler forked) skips the locks it holds: each
//! lock records its holder for that (see `fork`).

use std::cell::{Cell, UnsafeCell};
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicUsize, Ordering};

/// A `pthread_mutex_t` and the value it protects. A plain mutex rather than `std::sync::Mutex`:
/// it can be taken and re-initialized from `pthread_atfork` handlers, never allocates and never
/// poisons. Only used in statics (a locked pthread mutex must not move).
pub struct Lock<T> {
    mutex: UnsafeCell<libc::pthread_mutex_t>,
    /// `pthread_self()` of the thread holding the lock, 0 when free: lets the fork handlers tell
    /// the locks the forking thread itself holds.
    holder: AtomicUsize,
    value: UnsafeCell<T>,
}

// SAFETY: `value` is only reachable through a `LockGuard`, which exists only while this thread
// holds the mutex, so at most one thread touches it at a time; `T: Send` because that thread may
// be any thread.
unsafe impl<T: Send> Sync for Lock<T> {}

impl<T> Lock<T> {
    pub const fn new(value: T) -> Self {
        Lock { mutex: UnsafeCell::new(libc::PTHREAD_MUTEX_INITIALIZER), holder: AtomicUsize::new(0), value: UnsafeCell::new(value) }
    }

    /// Waits for the lock. Never call it with another shim lock held (see the module doc).
    #[inline]
    pub fn lock(&self) -> LockGuard<'_, T> {
        // SAFETY: the mutex is initialized (statically, or by `reinit`) and lives as long as
        // `self`; a default mutex only fails to lock on a self-deadlock, which the lock order
        // and the re-entry state rule out.
        unsafe { libc::pthread_mutex_lock(self.mutex.get()) };
        self.holder.store(me(), Ordering::Relaxed);
        LockGuard { lock: self, _not_send: PhantomData }
    }
}

#[inline]
fn me() -> usize {
    // SAFETY: pthread_self has no preconditions (a register read on glibc).
    unsafe { libc::pthread_self() as usize }
}

/// Raw access for the `fork` handlers only: they must hold locks across a call boundary
/// (`prepare` → `parent`/`child`), which a guard cannot express.
pub trait ForkLock: Sync {
    /// Whether the calling thread holds this lock (only meaningful to that thread).
    fn held_by_me(&self) -> bool;
    /// # Safety
    /// Only in a `prepare` fork handler, on a thread that does not hold this lock; must be
    /// paired with `raw_unlock` (parent) or `reinit` (child).
    unsafe fn raw_lock(&self);
    /// # Safety
    /// Only in the parent's fork handler, on the thread that took it with `raw_lock`.
    unsafe fn raw_unlock(&self);
    /// # Safety
    /// Only in the child's fork handler, where the calling thread is the only thread, for a lock
    /// that thread does not hold: makes it free again, whoever held it in the parent.
    unsafe fn reinit(&self);
}

impl<T: Send> ForkLock for Lock<T> {
    fn held_by_me(&self) -> bool {
        self.holder.load(Ordering::Relaxed) == me()
    }
    unsafe fn raw_lock(&self) {
        // SAFETY: as in `lock`; the caller pairs it with an unlock or a re-initialization.
        unsafe { libc::pthread_mutex_lock(self.mutex.get()) };
        self.holder.store(me(), Ordering::Relaxed);
    }
    unsafe fn raw_unlock(&self) {
        self.holder.store(0, Ordering::Relaxed);
        // SAFETY: the caller took this lock with `raw_lock` on this thread.
        unsafe { libc::pthread_mutex_unlock(self.mutex.get()) };
    }
    unsafe fn reinit(&self) {
        self.holder.store(0, Ordering::Relaxed);
        // SAFETY: the child has a single thread, and the caller only re-initializes a lock no
        // guard of that thread holds, so nothing reads the mutex while it is overwritten.
        unsafe { self.mutex.get().write(libc::PTHREAD_MUTEX_INITIALIZER) };
    }
}

/// Proof that this thread holds the lock; the only way to reach the value.
pub struct LockGuard<'a, T> {
    lock: &'a Lock<T>,
    /// A pthread mutex must be unlocked by the thread that locked it.
    _not_send: PhantomData<*const ()>,
}

impl<T> Deref for LockGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: this guard proves the mutex is held by this thread, so no other reference to
        // the value exists outside this guard's borrows.
        unsafe { &*self.lock.value.get() }
    }
}

impl<T> DerefMut for LockGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`, and `&mut self` makes this borrow unique.
        unsafe { &mut *self.lock.value.get() }
    }
}

impl<T> Drop for LockGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        self.lock.holder.store(0, Ordering::Relaxed);
        // SAFETY: the guard was created by `lock` on this thread (it is not Send), so this
        // thread holds the mutex.
        unsafe { libc::pthread_mutex_unlock(self.lock.mutex.get()) };
    }
}

/// Where the calling thread is, as far as the shim is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Where {
    /// Not inside the shim: a call is recorded.
    Outside,
    /// Inside the driver call the shim forwarded; no shim lock is held.
    Driver,
    /// Inside the shim's own code; shim locks may be held.
    Shim,
}

thread_local! {
    // A const thread-local without destructor: a plain TLS slot, safe from signal handlers.
    static WHERE: Cell<Where> = const { Cell::new(Where::Outside) };
}

pub fn current() -> Where {
    WHERE.with(Cell::get)
}

/// The calling thread is inside the shim while this lives (and leaves when it is dropped, also
/// when a panic unwinds).
pub struct Inside {
    /// This thread's `WHERE` slot, looked up once (each lookup is a `__tls_get_addr` call in a
    /// shared library). The raw pointer also makes `Inside` neither Send nor Sync.
    slot: *const Cell<Where>,
}

/// Marks the thread as inside the shim's own code, or says where it already is.
pub fn enter() -> Result<Inside, Where> {
    WHERE.with(|w| match w.get() {
        Where::Outside => {
            w.set(Where::Shim);
            Ok(Inside { slot: w })
        }
        other => Err(other),
    })
}

impl Inside {
    fn slot(&self) -> &Cell<Where> {
        // SAFETY: `slot` points to this thread's const thread-local (no destructor, so it lives
        // as long as the thread), and `Inside` cannot leave the thread that created it.
        unsafe { &*self.slot }
    }

    /// Runs `f` (a call into the driver or what we forward to) with the thread marked as in the
    /// driver: calls it makes back into the shim pass through.
    pub fn call_out<R>(&self, f: impl FnOnce() -> R) -> R {
        self.slot().set(Where::Driver);
        let r = f();
        self.slot().set(Where::Shim);
        r
    }
}

impl Drop for Inside {
    fn drop(&mut self) {
        self.slot().set(Where::Outside);
    }
}

/// The entry of every hook that records: the thread's `Inside` handle when this call is to be
/// recorded, `None` when it must only be forwarded — in a setuid program, or when the thread is
/// already inside the shim (`lost` is called for a call nested in the shim's own code).
pub fn enter_hook(lost: fn()) -> Option<Inside> {
    if crate::sys::secure() {
        return None;
    }
    match enter() {
        Ok(inside) => Some(inside),
        Err(w) => {
            if w == Where::Shim {
                lost();
            }
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_entry_reports_where_the_thread_is() {
        let inside = enter().expect("outside at first");
        assert_eq!(enter().err(), Some(Where::Shim));
        inside.call_out(|| assert_eq!(enter().err(), Some(Where::Driver)));
        assert_eq!(current(), Where::Shim);
        drop(inside);
        assert_eq!(current(), Where::Outside);
        let _again = enter().expect("left on drop");
    }

    #[test]
    fn a_panic_leaves_the_shim() {
        let r = std::panic::catch_unwind(|| {
            let _inside = enter().unwrap();
            panic!("boom");
        });
        assert!(r.is_err());
        assert_eq!(current(), Where::Outside);
    }

    #[test]
    fn lock_guards_exclude_each_other() {
        static L: Lock<u64> = Lock::new(0);
        let threads: Vec<_> = (0..4)
            .map(|_| {
                std::thread::spawn(|| {
                    for _ in 0..10_000 {
                        let mut g = L.lock();
                        let v = *g;
                        *g = v + 1;
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(*L.lock(), 40_000);
    }
}
