//! Which real driver pointer is which hooked function. A lookup (`dlsym`, `cuGetProcAddress`)
//! answers with a pointer; we decide by its identity, not by the requested name, whether it is a
//! function we record. This covers `_v2`, `_ptsz` and per-version variants without
//! re-implementing the driver's name resolution.
//!
//! The first time a pointer from some object is seen, every hooked name is resolved in that
//! object and remembered by address. That takes the loader's lock (`dlopen`, `dlsym`), which a
//! thread running a library constructor may hold while it calls into us: it is done without our
//! lock, and the result merged under it. After the program `dlclose`s anything the table starts
//! over: an address may now belong to something else.

use crate::driver;
use crate::hooks::{Hook, N_HOOKS};
use crate::modules;
use crate::sync::Lock;

pub struct Identity {
    /// (real pointer, hook) pairs found so far.
    known: [(usize, u8); 512],
    n: usize,
    /// Load bases of the objects whose symbols are already in `known`.
    objects: [usize; 32],
    n_objects: usize,
    /// The loader generation the table was built in.
    generation: u64,
}

const EMPTY: Identity = Identity { known: [(0, 0); 512], n: 0, objects: [0; 32], n_objects: 0, generation: 0 };

/// See `sync` for the lock order.
pub static TABLE: Lock<Identity> = Lock::new(EMPTY);

impl Identity {
    fn find(&self, p: usize) -> Option<Hook> {
        self.known[..self.n].iter().find(|k| k.0 == p).and_then(|k| Hook::from_index(k.1 as usize))
    }

    fn indexed(&self, base: usize) -> bool {
        self.objects[..self.n_objects].contains(&base)
    }

    /// Forgets everything if the program unloaded something since the table was built.
    fn current(&mut self) -> &mut Self {
        let gen = driver::generation();
        if self.generation != gen {
            *self = Identity { generation: gen, ..EMPTY };
        }
        self
    }
}

/// The hook `p` is the real function of, if any.
pub fn identify(p: usize) -> Option<Hook> {
    if let Some(h) = TABLE.lock().current().find(p) {
        return Some(h);
    }
    let obj = modules::object_containing(p)?;
    {
        let mut g = TABLE.lock();
        let id = g.current();
        // Another thread may have indexed the object since we looked: look again first.
        if let Some(h) = id.find(p) {
            return Some(h);
        }
        if id.indexed(obj.base) {
            return None; // indexed already, and `p` is none of ours
        }
    }
    let found = index(&obj)?;
    let mut g = TABLE.lock();
    let id = g.current();
    let n = found.iter().filter(|k| k.0 != 0).count();
    if !id.indexed(obj.base) && id.n_objects < id.objects.len() && id.n + n <= id.known.len() {
        id.objects[id.n_objects] = obj.base;
        id.n_objects += 1;
        for &k in found.iter().filter(|k| k.0 != 0) {
            id.known[id.n] = k;
            id.n += 1;
        }
    }
    id.find(p)
}

/// Resolves every hooked name in `obj`: whatever it defines, by address. Calls the loader: never
/// under our lock.
fn index(obj: &modules::Object) -> Option<[(usize, u8); N_HOOKS]> {
    let name = if obj.is_main { std::ptr::null() } else { obj.name.as_ptr() };
    // SAFETY: `name` is NULL (the main program) or a NUL-terminated path; RTLD_NOLOAD never
    // loads anything, it only hands out a reference to an object already there.
    let handle = unsafe { libc::dlopen(name, libc::RTLD_NOLOAD | libc::RTLD_LAZY) };
    if handle.is_null() {
        return None;
    }
    let mut found = [(0usize, 0u8); N_HOOKS];
    if let Some(real) = driver::real_dlsym() {
        for (i, slot) in found.iter_mut().enumerate() {
            let Some(h) = Hook::from_index(i) else { break };
            // SAFETY: `handle` is live until the dlclose below; the symbol is NUL-terminated.
            let q = unsafe { real(handle, h.symbol().as_ptr()) } as usize;
            if q != 0 && !modules::in_shim(q) {
                *slot = (q, i as u8);
            }
        }
    }
    driver::real_dlclose(handle);
    Some(found)
}
