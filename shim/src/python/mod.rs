//! Python stacks: at each recorded event, the calling thread's CPython frames, read straight from
//! the interpreter's memory. No GIL is taken, nothing runs in the evaluation loop, no Python
//! object is created, and nothing is installed between events (no profile or trace hook): a
//! process without Python pays one thread-local read per event.
//!
//! - `find`: which interpreter the process runs (libpython, the executable, or a libpython an
//!   embedder loaded), its version and layout; looked up again when the loader's list changes.
//! - `layout`: structure offsets, 3.10–3.12 from each version's headers, 3.13 from
//!   `_Py_DebugOffsets`.
//! - `mem`: reads that never fault, checked against a snapshot of the readable mappings.
//! - `walk`: the calling thread's frames: bounded, cycle-guarded, innermost first.
//! - `codes`: code objects and stacks, deduplicated per trace file, as trace records.
//!
//! The recorder fills a [`Capture`] before taking its lock, then [`Tables::known`] /
//! [`Tables::add`] under it, like it does for native stacks. Unknown layouts, free-threaded builds
//! and several interpreters give no frames and one PyRuntime record saying why.

mod codes;
mod find;
mod layout;
mod mem;
mod walk;

pub use codes::Tables;
pub use find::loader_seen;
pub use walk::Capture;
