//! The two install routes give a `vramtrace` that works alone: `cargo install --path cli` (the
//! shim is built into the binary and written to a per-user cache on first use) and the wheel
//! (`maturin`, what `pip install .` builds: the command plus the `vramtrace` Python module).
//!
//! These tests rebuild the `vramtrace` binary in the shared target directory, so they live in a
//! test binary of their own (cargo runs test binaries one after another) and run one at a time.

use sha2::{Digest, Sha256};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use vramtrace_e2e::*;

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn target_dir() -> PathBuf {
    env().profile_dir.parent().unwrap().to_path_buf()
}

fn ok(cmd: &mut Command, what: &str) -> std::process::Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(out.status.success(), "{what} failed:\n{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    out
}

/// The shim files in a cache directory, checked: private directory, content matches the name.
fn cached_shims(home: &Path) -> Vec<PathBuf> {
    let dir = home.join(".cache/vramtrace");
    let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700, "the cache directory is private");
    let files: Vec<PathBuf> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    for f in &files {
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        let hash: String = Sha256::digest(std::fs::read(f).unwrap()).iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(name, format!("libvramtrace-{}.so", &hash[..16]), "named by its content's hash");
    }
    files
}

/// `vramtrace run` of the llama-shaped runner through `bin` with a fresh HOME, then the report.
fn run_llama(bin: &Path, home: &Path) -> serde_json::Value {
    let out_dir = tempfile::tempdir().unwrap();
    let mut c = Command::new(bin);
    c.arg("run").arg("--out").arg(out_dir.path()).arg("--").arg(runner("llama_shaped"));
    c.envs(LLAMA_SMALL.iter().copied()).env("HOME", home).env("LD_LIBRARY_PATH", &env().fake_dir);
    c.env_remove("XDG_CACHE_HOME").env_remove("VRAMTRACE_SHIM").env_remove("LD_PRELOAD");
    ok(&mut c, "vramtrace run with the installed binary");
    report_json(out_dir.path(), &[])
}

#[test]
fn cargo_install_gives_a_vramtrace_that_works_alone() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let root = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| env!("CARGO").to_string());
    ok(
        Command::new(cargo).current_dir(&env().repo).args(["install", "--quiet", "--locked", "--debug", "--path", "cli", "--root"]).arg(root.path()).arg("--target-dir").arg(target_dir()),
        "cargo install --path cli",
    );
    let bin = root.path().join("bin/vramtrace");
    let installed: Vec<_> = std::fs::read_dir(root.path().join("bin")).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(installed, ["vramtrace"], "the binary alone, no shim file beside it");

    let r = run_llama(&bin, home.path());
    assert_eq!(peak_categories(&r, 0)["weights"], 1 << 30, "the run was recorded and attributed");
    let shims = cached_shims(home.path());
    assert_eq!(shims.len(), 1);

    // A changed file in the cache is never loaded: it is checked and written anew.
    std::fs::write(&shims[0], b"not a library").unwrap();
    let r = run_llama(&bin, home.path());
    assert_eq!(peak_categories(&r, 0)["weights"], 1 << 30);
    assert_eq!(cached_shims(home.path()), shims, "rewritten in place, content matching its name again");

    // `vramtrace shim` prints the path to preload by hand.
    let out = ok(Command::new(&bin).arg("shim").env("HOME", home.path()).env_remove("XDG_CACHE_HOME").env_remove("VRAMTRACE_SHIM"), "vramtrace shim");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), shims[0].display().to_string());
}

/// A venv with maturin (from PyPI, cached under target/); the one download of this tier.
fn maturin() -> Option<PathBuf> {
    let venv = target_dir().join("tools/maturin-venv");
    let bin = venv.join("bin/maturin");
    if bin.exists() {
        return Some(bin);
    }
    let fetch = || -> Result<(), String> {
        let run = |c: &mut Command| c.output().map_err(|e| e.to_string()).and_then(|o| if o.status.success() { Ok(()) } else { Err(String::from_utf8_lossy(&o.stderr).lines().last().unwrap_or("").to_string()) });
        run(Command::new("python3").args(["-m", "venv"]).arg(&venv))?;
        run(Command::new(venv.join("bin/pip")).args(["install", "--quiet", "maturin>=1.5,<2"]))
    };
    match fetch() {
        Ok(()) => Some(bin),
        Err(e) => {
            let _ = std::fs::remove_dir_all(&venv);
            download_tier_failed("wheel", &format!("cannot install maturin from PyPI: {e}"));
            None
        }
    }
}

#[test]
fn the_wheel_installs_the_command_and_the_python_module() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let Some(maturin) = maturin() else { return };
    let wheels = tempfile::tempdir().unwrap();
    ok(
        Command::new(&maturin).current_dir(&env().repo).args(["build", "--quiet", "--profile", "dev", "--out"]).arg(wheels.path()).arg("--target-dir").arg(target_dir()),
        "maturin build",
    );
    let wheel = std::fs::read_dir(wheels.path()).unwrap().map(|e| e.unwrap().path()).find(|p| p.extension().is_some_and(|x| x == "whl")).expect("a wheel");
    let venv = tempfile::tempdir().unwrap();
    ok(Command::new("python3").args(["-m", "venv"]).arg(venv.path()), "python3 -m venv");
    ok(Command::new(venv.path().join("bin/pip")).args(["install", "--quiet", "--no-index", "--no-deps"]).arg(&wheel), "pip install the wheel");

    // The module alone, without the shim: does nothing, says so once, never fails.
    let py = venv.path().join("bin/python");
    let out = ok(
        Command::new(&py).args(["-c", "import vramtrace; print(vramtrace.enabled()); vramtrace.mark('a', 1); vramtrace.mark('b', 2)\nwith vramtrace.phase('weights'): pass"]),
        "the module without the shim",
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "False\n");
    assert_eq!(String::from_utf8_lossy(&out.stderr).matches("the shim is not loaded").count(), 1, "warned once");

    // Under `vramtrace run` from the venv: the phases decide the categories.
    let script = "import ctypes, vramtrace\n\
        assert vramtrace.enabled()\n\
        cu = ctypes.CDLL('libcuda.so.1')\n\
        def ok(r):\n    assert r == 0, r\n\
        ok(cu.cuInit(0))\n\
        ctx = ctypes.c_void_p(); ok(cu.cuCtxCreate_v2(ctypes.byref(ctx), 0, 0))\n\
        P = ctypes.c_uint64\n\
        with vramtrace.phase('weights'):\n    w = P(); ok(cu.cuMemAlloc_v2(ctypes.byref(w), ctypes.c_size_t(96 << 20)))\n\
        with vramtrace.phase('kv_cache'):\n    k = P(); ok(cu.cuMemAlloc_v2(ctypes.byref(k), ctypes.c_size_t(32 << 20)))\n\
        print('done')\n";
    let home = tempfile::tempdir().unwrap();
    let out_dir = tempfile::tempdir().unwrap();
    let out = ok(
        Command::new(venv.path().join("bin/vramtrace"))
            .arg("run")
            .arg("--out")
            .arg(out_dir.path())
            .arg("--")
            .arg(&py)
            .args(["-c", script])
            .env("HOME", home.path())
            .env("LD_LIBRARY_PATH", &env().fake_dir)
            .env("FAKE_CUDA_RUNTIME_BYTES", "0")
            .env_remove("XDG_CACHE_HOME")
            .env_remove("VRAMTRACE_SHIM")
            .env_remove("LD_PRELOAD"),
        "vramtrace run -- python from the venv",
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "done\n");
    let r = report_json(out_dir.path(), &[]);
    let cats = peak_categories(&r, 0);
    assert_eq!((cats["weights"], cats["kv_cache"]), (96 * MIB, 32 * MIB), "{cats:?}");
    let rules: Vec<&str> = r["rules"].as_array().unwrap().iter().map(|u| u["rule"].as_str().unwrap()).collect();
    assert!(rules.contains(&"phase:weights") && rules.contains(&"phase:kv_cache"), "{rules:?}");
}
