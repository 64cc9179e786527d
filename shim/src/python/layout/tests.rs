//! The offsets in `layout.rs` against the real interpreters: `offsets.c` compiled against the
//! headers of every CPython 3.10–3.13 on the machine (pyenv's and the system's), and, for 3.13, the
//! `_Py_DebugOffsets` of the running interpreter parsed by `from_debug_offsets`.

use super::*;
use std::path::{Path, PathBuf};
use std::process::Command;

/// (python executable, its include directory) for every CPython 3.10+ with headers.
fn interpreters() -> Vec<(PathBuf, PathBuf)> {
    let mut found = Vec::new();
    let pyenv = std::env::var_os("PYENV_ROOT").map(PathBuf::from).or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".pyenv")));
    let mut roots: Vec<PathBuf> = pyenv.and_then(|p| std::fs::read_dir(p.join("versions")).ok()).into_iter().flatten().flatten().map(|e| e.path()).collect();
    roots.push("/usr".into());
    roots.sort();
    for root in roots {
        for minor in 10..=13 {
            let inc = root.join(format!("include/python3.{minor}"));
            let exe = root.join(format!("bin/python3.{minor}"));
            if inc.join("internal/pycore_runtime.h").exists() && exe.exists() {
                found.push((exe, inc));
            }
        }
    }
    found
}

/// `offsets.c` built against `inc` and run: name → value.
fn header_offsets(inc: &Path) -> Vec<(String, u64)> {
    let dir = tempfile_dir();
    let bin = dir.join("offsets");
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/python/offsets.c");
    let out = Command::new("gcc").arg(format!("-I{}", inc.display())).arg(format!("-I{}/internal", inc.display())).arg("-o").arg(&bin).arg(&src).output().expect("gcc");
    assert!(out.status.success(), "offsets.c against {}: {}", inc.display(), String::from_utf8_lossy(&out.stderr));
    let out = Command::new(&bin).output().expect("run offsets");
    let _ = std::fs::remove_dir_all(&dir);
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let (k, v) = l.split_once(' ').unwrap();
            (k.to_string(), v.parse().unwrap())
        })
        .collect()
}

fn tempfile_dir() -> PathBuf {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let d = std::env::temp_dir().join(format!("vramtrace-layout-{}-{}", std::process::id(), N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The layout's value for each name `offsets.c` prints.
fn field(l: &Layout, name: &str) -> Option<u64> {
    Some(match name {
        "runtime.finalizing" => l.runtime_finalizing,
        "runtime.interpreters_head" => l.runtime_interpreters_head,
        "interp.next" => l.interp_next,
        "tstate.size" => l.tstate_size,
        "tstate.interp" => l.tstate_interp,
        "tstate.frame" => l.tstate_frame,
        "cframe.current_frame" => l.cframe_current_frame?,
        "frame.previous" => l.frame_previous,
        "frame.code" => l.frame_code,
        "frame.instr" => l.frame_instr,
        "frame.owner" => l.frame_owner?,
        "frame.is_entry" => l.frame_is_entry?,
        "code.qualname" => l.code_qualname?,
        "code.code_adaptive" => l.code_code_adaptive?,
        "code.firsttraceable" => l.code_firsttraceable?,
        "code.version" => l.code_version?,
        "code.filename" => l.code_filename,
        "code.name" => l.code_name,
        "code.linetable" => l.code_linetable,
        "code.firstlineno" => l.code_firstlineno,
        "object.type" => l.object_type,
        "bytes.size" => l.bytes_size,
        "bytes.data" => l.bytes_data,
        "unicode.length" => l.unicode_length,
        "unicode.state" => l.unicode_state,
        "unicode.ascii_size" => l.unicode_ascii_size,
        "unicode.compact_size" => l.unicode_compact_size,
        _ => return None,
    })
}

/// The running interpreter's `_Py_DebugOffsets` bytes and `sys.hexversion`.
fn live_debug_offsets(exe: &Path) -> (Vec<u8>, u32) {
    let script = "import ctypes, sys\n\
                  a = ctypes.addressof(ctypes.c_char.in_dll(ctypes.pythonapi, '_PyRuntime'))\n\
                  print(ctypes.string_at(a, 1024).hex()); print(sys.hexversion)";
    let out = Command::new(exe).args(["-c", script]).output().expect("run python");
    assert!(out.status.success(), "{}: {}", exe.display(), String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    let mut lines = text.lines();
    let hex = lines.next().unwrap();
    let bytes = (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap()).collect();
    (bytes, lines.next().unwrap().parse().unwrap())
}

#[test]
fn offsets_match_every_interpreters_headers() {
    let found = interpreters();
    let mut minors: Vec<u32> = Vec::new();
    for (exe, inc) in &found {
        let printed = header_offsets(inc);
        let hexversion = printed.iter().find(|(k, _)| k == "version_hex").unwrap().1 as u32;
        let minor = (hexversion >> 16) & 0xff;
        let layout = if minor >= 13 {
            let (bytes, live) = live_debug_offsets(exe);
            assert_eq!(&bytes[..8], DEBUG_COOKIE);
            assert_eq!(bytes[DEBUG_FREE_THREADED as usize], 0);
            let read = |off: u64| Some(u64::from_le_bytes(bytes.get(off as usize..off as usize + 8)?.try_into().unwrap()));
            from_debug_offsets(live, read).unwrap_or_else(|e| panic!("{}: {e}", exe.display()))
        } else {
            from_headers(minor).unwrap()
        };
        for (name, value) in &printed {
            if name == "version_hex" || name == "frame.size" {
                continue;
            }
            // 3.13's debug offsets do not carry `_co_firsttraceable`; the walk does without it.
            if minor >= 13 && name == "code.firsttraceable" {
                assert_eq!(layout.code_firsttraceable, None);
                continue;
            }
            assert_eq!(field(&layout, name), Some(*value), "{name} for {} ({})", exe.display(), inc.display());
        }
        let frame_size = printed.iter().find(|(k, _)| k == "frame.size").unwrap().1;
        assert!(layout.frame_extent() <= frame_size + 8, "{}", exe.display());
        minors.push(minor);
    }
    for m in 10..=13 {
        assert!(minors.contains(&m), "no CPython 3.{m} with headers found (pyenv versions or /usr); found {found:?}");
    }
}

#[test]
fn debug_offsets_that_contradict_themselves_are_refused() {
    let mut bytes = vec![0u8; 1024];
    bytes[..8].copy_from_slice(DEBUG_COOKIE);
    bytes[8..16].copy_from_slice(&0x030d00f0u64.to_le_bytes());
    let put = |b: &mut Vec<u8>, off: u64, v: u64| b[off as usize..off as usize + 8].copy_from_slice(&v.to_le_bytes());
    put(&mut bytes, debug_offsets_3_13::TSTATE_SIZE, 64);
    put(&mut bytes, debug_offsets_3_13::TSTATE_CURRENT_FRAME, 4096);
    let read = |off: u64| Some(u64::from_le_bytes(bytes.get(off as usize..off as usize + 8)?.try_into().unwrap()));
    assert!(from_debug_offsets(0x030d00f0, read).is_err());
    assert!(from_debug_offsets(0x030e00f0, read).unwrap_err().contains("version"));
}
