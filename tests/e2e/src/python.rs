//! Python programs under the shim: the interpreters on this machine, the stacks a program printed
//! (`tests/python/alloc_stacks.py`'s format) and the stacks a trace recorded, decoded with the
//! analyzer's line-table decoder.

use crate::Trace;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A CPython on this machine.
#[derive(Clone, Debug)]
pub struct Interpreter {
    pub exe: PathBuf,
    /// `sys.hexversion`.
    pub hexversion: u32,
}

impl Interpreter {
    pub fn minor(&self) -> u32 {
        (self.hexversion >> 16) & 0xff
    }
    pub fn label(&self) -> String {
        format!("{} ({}.{}.{})", self.exe.display(), self.hexversion >> 24, self.minor(), (self.hexversion >> 8) & 0xff)
    }
}

fn hexversion(exe: &Path) -> Option<u32> {
    let out = Command::new(exe).args(["-c", "import sys; print(sys.hexversion)"]).env_remove("LD_PRELOAD").output().ok()?;
    String::from_utf8(out.stdout).ok()?.trim().parse().ok()
}

/// Every CPython 3.10–3.13 under pyenv (`$PYENV_ROOT`, else `~/.pyenv`) and the system's
/// `/usr/bin/python3`. Panics unless each of 3.10, 3.11, 3.12 and 3.13 is among them: the tests
/// promise every version, so a missing one is a failure, not a skip.
pub fn interpreters() -> Vec<Interpreter> {
    let root = std::env::var_os("PYENV_ROOT").map(PathBuf::from).or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".pyenv")));
    let mut exes: Vec<PathBuf> = Vec::new();
    if let Some(dir) = root.and_then(|r| std::fs::read_dir(r.join("versions")).ok()) {
        for e in dir.flatten() {
            for minor in 10..=13 {
                let exe = e.path().join(format!("bin/python3.{minor}"));
                if exe.exists() {
                    exes.push(exe);
                }
            }
        }
    }
    exes.sort();
    exes.push("/usr/bin/python3".into());
    let found: Vec<Interpreter> = exes
        .into_iter()
        .filter_map(|exe| Some(Interpreter { hexversion: hexversion(&exe)?, exe }))
        .filter(|i| i.hexversion >> 24 == 3 && (10..=13).contains(&i.minor()))
        .collect();
    for m in 10..=13 {
        assert!(found.iter().any(|i| i.minor() == m), "no CPython 3.{m} found (pyenv versions, /usr/bin/python3): {found:?}");
    }
    found
}

/// One Python frame, as printed by the program or decoded from the trace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    pub file: String,
    pub line: Option<u32>,
    pub name: String,
    pub qualname: String,
}

/// What the program printed for one call: `ALLOC <size> <result>` or `MARK <label>`, and its
/// stack, innermost first.
#[derive(Clone, Debug)]
pub struct Printed {
    pub call: String,
    pub frames: Vec<Frame>,
}

pub fn printed(stdout: &str) -> Vec<Printed> {
    let mut out = Vec::new();
    let mut frames = Vec::new();
    for l in stdout.lines() {
        if let Some(f) = l.strip_prefix("FRAME ") {
            let mut p = f.split('\t');
            let (file, line, name, qualname) = (p.next().unwrap(), p.next().unwrap(), p.next().unwrap(), p.next().unwrap_or(""));
            frames.push(Frame { file: file.into(), line: line.parse().ok(), name: name.into(), qualname: qualname.into() });
        } else if l.starts_with("ALLOC ") || l.starts_with("MARK ") {
            frames.reverse();
            out.push(Printed { call: l.to_string(), frames: std::mem::take(&mut frames) });
        }
    }
    out
}

/// The Python stack `id` of `t`, decoded: frames innermost first, and whether it was truncated.
pub fn recorded(t: &Trace, id: u32) -> (Vec<Frame>, bool) {
    let s = t.py_stacks.get(&id).unwrap_or_else(|| panic!("no Python stack {id} in {}", t.path.display()));
    let frames = s
        .frames
        .iter()
        .map(|f| {
            let c = t.py_codes.get(&f.code_id).unwrap_or_else(|| panic!("no code {} in {}", f.code_id, t.path.display()));
            Frame { file: c.filename.clone(), line: vramtrace_analyzer::pyline::line(c, f.offset), name: c.name.clone(), qualname: c.qualname.clone() }
        })
        .collect();
    (frames, s.truncated)
}

/// The path of a program in `tests/python/`.
pub fn program(name: &str) -> PathBuf {
    crate::env().repo.join("tests/python").join(name)
}
