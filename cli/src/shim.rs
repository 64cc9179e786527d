//! Where `run`, `sweep` and `shim` get the shim library from, in this order: `--shim PATH`;
//! `VRAMTRACE_SHIM`; a `libvramtrace.so` beside this executable (a build tree, or a package
//! that ships both); else the copy embedded in this binary at build time (`build.rs`), written
//! on first use to a per-user cache directory — so `cargo install` and the wheel give a
//! `vramtrace` that works alone.
//!
//! The cache is `$XDG_CACHE_HOME/vramtrace` (default `~/.cache/vramtrace`), a directory of mode
//! 0700 owned by the user. The file is named by the SHA-256 of its content and used only after
//! its content is checked against that hash: a file changed or planted there is replaced, never
//! loaded. It is written under a temporary name and renamed into place, so concurrent runs never
//! see half a library.

use sha2::{Digest, Sha256};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

static EMBEDDED: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/libvramtrace.so"));
/// The one symbol only our shim exports: what tells it from any other shared library.
const SHIM_EXPORT: &str = "vramtrace_mark";
const FILE_NAME: &str = "libvramtrace.so";

/// The shim to preload.
pub fn find(explicit: Option<&Path>) -> Result<PathBuf, String> {
    if let Some(p) = explicit {
        return check(p).map_err(|e| format!("--shim {}: {e}", p.display()));
    }
    if let Some(p) = std::env::var_os("VRAMTRACE_SHIM").filter(|v| !v.is_empty()) {
        let p = PathBuf::from(p);
        return check(&p).map_err(|e| format!("VRAMTRACE_SHIM={}: {e}", p.display()));
    }
    if let Some(dir) = std::env::current_exe().ok().and_then(|e| e.parent().map(Path::to_path_buf)) {
        for cand in [dir.join(FILE_NAME), dir.join("../lib").join(FILE_NAME), dir.join("../lib/vramtrace").join(FILE_NAME)] {
            if let Ok(p) = check(&cand) {
                return Ok(p);
            }
        }
    }
    extract()
}

/// Accepts `p` only if it is a shared library that exports the shim's marker function: the
/// loader would otherwise refuse it (or worse, preload something else) only after the program
/// started.
fn check(p: &Path) -> Result<PathBuf, String> {
    let data = std::fs::read(p).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => "no such file".to_string(),
        _ => e.to_string(),
    })?;
    let file = object::File::parse(&*data).map_err(|_| "not a shared library".to_string())?;
    use object::{Object, ObjectSymbol};
    if file.kind() != object::ObjectKind::Dynamic {
        return Err("not a shared library".into());
    }
    if !file.dynamic_symbols().any(|s| s.is_definition() && s.name() == Ok(SHIM_EXPORT)) {
        return Err(format!("not the vramtrace shim (it does not export {SHIM_EXPORT})"));
    }
    Ok(p.canonicalize().unwrap_or_else(|_| p.to_path_buf()))
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// The per-user cache directory, created private (0700) if missing; refused if another user
/// owns it, made private if it is ours but open to others.
fn cache_dir() -> Result<PathBuf, String> {
    let base = match std::env::var_os("XDG_CACHE_HOME").map(PathBuf::from).filter(|p| p.is_absolute()) {
        Some(p) => p,
        None => PathBuf::from(std::env::var_os("HOME").filter(|h| !h.is_empty()).ok_or("no HOME or XDG_CACHE_HOME to keep the shim in; pass --shim PATH")?).join(".cache"),
    };
    let dir = base.join("vramtrace");
    std::fs::create_dir_all(&base).map_err(|e| format!("cannot create {}: {e}", base.display()))?;
    match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(format!("cannot create {}: {e}", dir.display())),
    }
    let meta = std::fs::symlink_metadata(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    // SAFETY: getuid has no preconditions and cannot fail.
    let uid = unsafe { libc::getuid() };
    if !meta.is_dir() || meta.uid() != uid {
        return Err(format!("{} is not a directory of yours; refusing to keep the shim there (pass --shim PATH)", dir.display()));
    }
    if meta.mode() & 0o077 != 0 {
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).map_err(|e| format!("cannot make {} private: {e}", dir.display()))?;
    }
    Ok(dir)
}

/// Writes the embedded shim into the cache (or finds it there, verified) and returns its path.
fn extract() -> Result<PathBuf, String> {
    let hash = sha256_hex(EMBEDDED);
    let dir = cache_dir()?;
    let path = dir.join(format!("libvramtrace-{}.so", &hash[..16]));
    let intact = std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_file()) && std::fs::read(&path).is_ok_and(|b| sha256_hex(&b) == hash);
    if intact {
        return Ok(path);
    }
    let tmp = dir.join(format!(".libvramtrace-{}-{}.tmp", std::process::id(), &hash[..16]));
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o700).open(&tmp)?;
        f.write_all(EMBEDDED)?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        format!("cannot write the shim to {}: {e} (pass --shim PATH)", path.display())
    })?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_shim_is_a_shim_and_others_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("good.so");
        std::fs::write(&good, EMBEDDED).unwrap();
        assert!(check(&good).is_ok());
        let text = dir.path().join("passwd");
        std::fs::write(&text, "root:x:0:0:root:/root:/bin/bash\n").unwrap();
        assert_eq!(check(&text).unwrap_err(), "not a shared library");
        // Any other ELF file (this test executable) is refused too.
        assert!(check(&std::fs::read_link("/proc/self/exe").unwrap()).is_err());
        assert!(check(&dir.path().join("missing.so")).is_err());
    }
}
