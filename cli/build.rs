//! Embeds the shim (`libvramtrace.so`) in the `vramtrace` binary, so an installed `vramtrace`
//! (`cargo install --path cli`, the Python wheel) needs no file beside it: `run` and `sweep`
//! write it out on first use (see `src/shim.rs`).
//!
//! Stable Cargo cannot depend on another package's cdylib, so the shim is built here by a
//! nested `cargo build` of this workspace's `shim` package, with the same profile, in a target
//! directory of its own (the outer build holds the lock on its own). `VRAMTRACE_EMBED_SHIM=PATH`
//! embeds a prebuilt shim instead.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let dst = out.join("libvramtrace.so");
    println!("cargo:rerun-if-env-changed=VRAMTRACE_EMBED_SHIM");
    let built = match env::var_os("VRAMTRACE_EMBED_SHIM") {
        Some(p) => {
            let p = PathBuf::from(p);
            println!("cargo:rerun-if-changed={}", p.display());
            p
        }
        None => build_shim(&out),
    };
    std::fs::copy(&built, &dst).unwrap_or_else(|e| panic!("cannot copy the shim {}: {e}", built.display()));
}

fn build_shim(out: &Path) -> PathBuf {
    let cli = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let root = cli.parent().expect("cli/ sits in the workspace");
    for dir in ["shim", "trace"] {
        println!("cargo:rerun-if-changed={}", root.join(dir).display());
    }
    println!("cargo:rerun-if-changed={}", root.join("Cargo.lock").display());
    let release = env::var("PROFILE").is_ok_and(|p| p == "release");
    let target = out.join("shim-target");
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.arg("build").arg("--locked").arg("--lib").arg("--manifest-path").arg(root.join("shim/Cargo.toml")).arg("--target-dir").arg(&target);
    if release {
        cmd.arg("--release");
    }
    // Cargo reads `cargo:` directives from a build script's stdout; the nested build's own
    // progress goes to stderr, shown when it fails.
    cmd.stdout(std::process::Stdio::null());
    // The outer build's target directory and flags for *its* crates must not leak in.
    cmd.env_remove("CARGO_TARGET_DIR").env_remove("CARGO_BUILD_TARGET_DIR");
    let status = cmd.status().unwrap_or_else(|e| panic!("cannot run cargo to build the shim: {e}"));
    assert!(status.success(), "building the shim (libvramtrace.so) failed");
    target.join(if release { "release" } else { "debug" }).join("libvramtrace.so")
}
