//! Replays every committed fuzz input through its target, without the fuzzer: the corpus
//! (`fuzz/corpus/<target>/`) and the inputs that once crashed or hung a target and were fixed
//! (`fuzz/regressions/<target>/`), and the worst-case 1 MiB inputs (`large_inputs`). A panic in
//! any of them fails the test, naming the input.

use std::path::{Path, PathBuf};
use vramtrace_fuzz::{target, Capped, TARGETS};

#[global_allocator]
static ALLOC: Capped = Capped;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

/// The files of `dir/<target>/` for every target folder there, sorted.
fn inputs(dir: &str) -> Vec<(String, PathBuf)> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(root().join(dir)) else { return out };
    for t in rd.map(|e| e.unwrap().path()) {
        let name = t.file_name().unwrap().to_string_lossy().into_owned();
        assert!(target(&name).is_some(), "{}: no fuzz target is called {name}", t.display());
        for f in std::fs::read_dir(&t).unwrap().map(|e| e.unwrap().path()) {
            out.push((name.clone(), f));
        }
    }
    out.sort();
    out
}

/// Runs every (label, target, input); the labels of those that panicked, with the message.
fn replay(inputs: impl IntoIterator<Item = (String, &'static str, Vec<u8>)>) -> Vec<String> {
    let mut failed = Vec::new();
    for (label, name, data) in inputs {
        let run = target(name).unwrap().run;
        if let Err(e) = std::panic::catch_unwind(|| run(&data)) {
            let msg = e.downcast_ref::<String>().cloned().or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string())).unwrap_or_default();
            failed.push(format!("{label}: {msg}"));
        }
    }
    failed
}

fn replay_files(files: &[(String, PathBuf)]) -> Vec<String> {
    replay(files.iter().map(|(name, path)| (path.display().to_string(), target(name).unwrap().name, std::fs::read(path).unwrap())))
}

#[test]
fn every_target_has_a_corpus_and_every_input_runs_clean() {
    let corpus = inputs("corpus");
    for t in TARGETS {
        let n = corpus.iter().filter(|(name, _)| name == t.name).count();
        assert!(n >= 3, "fuzz/corpus/{} has {n} inputs; the fuzzer and this test need seeds", t.name);
    }
    let failed = replay_files(&corpus);
    assert!(failed.is_empty(), "{} corpus input(s) failed:\n{}", failed.len(), failed.join("\n"));
}

#[test]
fn every_fixed_crash_stays_fixed() {
    let failed = replay_files(&inputs("regressions"));
    assert!(failed.is_empty(), "{} regression input(s) failed:\n{}", failed.len(), failed.join("\n"));
}

/// The worst-case 1 MiB inputs (their time limit is checked by `fuzz/run.sh`, under the fuzzer).
#[test]
fn every_large_input_runs_clean() {
    let large = vramtrace_fuzz::large_inputs();
    for l in &large {
        assert!(l.data.len() <= vramtrace_fuzz::LARGE, "{}/{}: {} bytes", l.target, l.name, l.data.len());
    }
    for t in TARGETS {
        assert!(large.iter().any(|l| l.target == t.name), "no large input for {}", t.name);
    }
    let failed = replay(large.into_iter().map(|l| (format!("{}/{}", l.target, l.name), l.target, l.data)));
    assert!(failed.is_empty(), "{} large input(s) failed:\n{}", failed.len(), failed.join("\n"));
}
