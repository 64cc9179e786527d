//! Link settings that make the cdylib behave like the real `libcuda.so.1`:
//! - the soname, so programs linked against `target/*/libcuda.so` record `NEEDED libcuda.so.1`
//!   and `dlopen("libcuda.so.1")` finds it through a `libcuda.so.1` symlink;
//! - `-Bsymbolic-functions`, so the pointers `cuGetProcAddress` hands out are this library's own
//!   functions even when an LD_PRELOADed interposer exports the same names (without it, taking
//!   the address of `cuMemAlloc_v2` goes through the GOT and returns the interposer's wrapper;
//!   the real driver never does that).
fn main() {
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libcuda.so.1");
    println!("cargo:rustc-cdylib-link-arg=-Wl,-Bsymbolic-functions");
    println!("cargo:rerun-if-changed=build.rs");
}
