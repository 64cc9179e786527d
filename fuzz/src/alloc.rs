//! The memory bound every target is held to: an allocator that stops the process at the first
//! single allocation above [`ALLOC_LIMIT`]. libFuzzer's own `-malloc_limit_mb` needs a
//! sanitizer's malloc hooks, which a stable toolchain does not build; its `-rss_limit_mb`
//! still bounds the total.

use std::alloc::{GlobalAlloc, Layout, System};

/// A trace, report or rules file of any size must be read without one allocation this big.
pub const ALLOC_LIMIT: usize = 1 << 30;

/// The system allocator with [`ALLOC_LIMIT`]; install it with `#[global_allocator]` in the
/// fuzzer binaries and in the replay test.
pub struct Capped;

#[cold]
fn too_big(size: usize) -> ! {
    // Inside the allocator: nothing here may allocate, and unwinding out of it is undefined, so
    // the fuzzer sees an abort (a crash, with the input saved) after one line on stderr.
    eprintln!("vramtrace-fuzz: one allocation of {size} bytes, above the 1 GiB bound");
    std::process::abort()
}

// SAFETY: every call is forwarded unchanged to `System`, which upholds GlobalAlloc's contract;
// the only addition is a size check that aborts before allocating.
unsafe impl GlobalAlloc for Capped {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.size() > ALLOC_LIMIT {
            too_big(layout.size());
        }
        // SAFETY: the caller's layout contract is passed on as is.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if layout.size() > ALLOC_LIMIT {
            too_big(layout.size());
        }
        // SAFETY: as in `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size > ALLOC_LIMIT {
            too_big(new_size);
        }
        // SAFETY: `ptr` was allocated by this allocator (i.e. by System) with `layout`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by System through this allocator with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }
}
