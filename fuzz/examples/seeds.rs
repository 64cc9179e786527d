//! Writes seed inputs for every fuzz target from real run directories (`fuzz/seeds.sh` runs the
//! test runners under vramtrace to make them):
//!
//!   cargo run -p vramtrace-fuzz --example seeds -- OUT_DIR RUN_DIR...
//!
//! OUT_DIR/<target>/ receives: every trace (zero tail cut) for the reader; every trace with its
//! run's captured output, or with made-up sweep markers, for the analysis; their report.json in
//! pairs for the diff; the rules-file examples of docs/report-schema.md with real symbolized
//! stacks; and answers of OpenAI-compatible servers for sweep. `fuzz/run.sh minimize` then folds
//! them into the committed corpus.

use std::path::{Path, PathBuf};
use vramtrace_analyzer::{analyze, load, Options};
use vramtrace_fuzz::{analysis_input, report_diff_input, rules_input, sweep_http_input, SideKind};

const RULES: [&str; 4] = [
    "[[rule]]\nname = \"my pool\"\npattern = \"my_pool_alloc\"\ncategory = \"scratch_pool\"\n\n[[rule]]\nmodule = \"libfoo.so\"\ncategory = \"workspace\"\n\n[[rule]]\npattern = \"alloc_tensors\"\nwithin = \"load_model*\"\ncategory = \"weights\"\n",
    "[[rule]]\npattern = \"llama_kv_cache*\"\ncategory = \"kv_cache\"\n[[rule]]\npattern = \"*cuda_pool?vmm*\"\nmodule = \"*ggml*\"\ncategory = \"compute\"\n",
    "# no rules\n",
    "[[rule]]\npattern = \"main\"\nwithin = \"__libc_start_main\"\ncategory = \"unknown\"\n",
];

const ANSWERS: [(u16, &str); 12] = [
    (200, r#"{"id":"cmpl-1","object":"text_completion","choices":[{"text":"","index":0}],"usage":{"prompt_tokens":512,"completion_tokens":1,"total_tokens":513}}"#),
    (200, r#"{"tokens":[1,2,3,4]}"#),
    (200, r#"{"object":"list","data":[{"id":"llama-3-8b","object":"model"}]}"#),
    (200, r#"{"status":"ok"}"#),
    (503, r#"{"error":{"code":503,"message":"Loading model","type":"unavailable_error"}}"#),
    (500, r#"{"error":{"code":500,"message":"CUDA error: out of memory","type":"server_error"}}"#),
    (404, r#"{"error":"model 'x' not found"}"#),
    (422, r#"{"detail":[{"loc":["body","prompt"],"msg":"field required"}]}"#),
    (400, r#"{"message":"too long"}"#),
    (404, "<html><body>Not Found</body></html>\r\n"),
    (0, "http://127.0.0.1:8080/v1/"),
    (200, ""),
];

/// The trace files of a run directory, sorted.
fn traces(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).filter(|p| p.extension().is_some_and(|x| x == "vtr")).collect();
    v.sort();
    v
}

/// A trace without the zero tail the shim reserves (the reader ends there either way).
fn trimmed(path: &Path) -> Vec<u8> {
    let mut d = std::fs::read(path).unwrap();
    let end = d.iter().rposition(|&b| b != 0).map_or(0, |i| (i + 8) & !7);
    d.truncate(end.min(d.len()));
    d
}

fn output_of(dir: &Path) -> Option<Vec<u8>> {
    let p = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).find(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("output-")))?;
    let mut d = std::fs::read(p).ok()?;
    d.truncate(u16::MAX as usize);
    Some(d)
}

fn sweep_markers() -> Vec<u8> {
    (1..=4).map(|i| format!("{{\"t_ns\":{},\"label\":\"tokens\",\"value\":{}}}\n", i * 1000, i * 512)).chain(["{\"t_ns\":1,\"label\":\"phase:weights\"}\nnot json\n".into()]).collect::<String>().into_bytes()
}

struct Out(PathBuf);

impl Out {
    fn put(&self, target: &str, name: &str, data: &[u8]) {
        let dir = self.0.join(target);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(name), data).unwrap();
    }
}

fn main() {
    let args: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    let [out, runs @ ..] = args.as_slice() else {
        eprintln!("usage: seeds OUT_DIR RUN_DIR...");
        std::process::exit(2);
    };
    let out = Out(out.clone());
    let mut reports = Vec::new();
    let mut stacks = Vec::new();
    for (i, run) in runs.iter().enumerate() {
        let output = output_of(run);
        for (j, t) in traces(run).iter().enumerate() {
            let name = format!("run{i}-{j}");
            let data = trimmed(t);
            out.put("trace_reader", &name, &data);
            out.put("analysis", &name, &analysis_input(&data, SideKind::None, &[]));
            if let Some(o) = &output {
                out.put("analysis", &format!("{name}-output"), &analysis_input(&data, SideKind::Output, o));
            }
            out.put("analysis", &format!("{name}-markers"), &analysis_input(&data, SideKind::Markers, &sweep_markers()));
        }
        let Ok(loaded) = load(std::slice::from_ref(run)) else { continue };
        reports.push(serde_json::to_vec(&analyze(&loaded, &Options::default())).unwrap());
        for (fi, tf) in loaded.traces.iter().enumerate() {
            let mut ids: Vec<u32> = tf.stacks.keys().copied().collect();
            ids.sort_unstable();
            stacks.extend(ids.into_iter().take(2).map(|id| loaded.frames(fi, id)));
        }
    }
    for (i, pair) in reports.windows(2).enumerate() {
        out.put("report_diff", &format!("pair{i}"), &report_diff_input(&pair[0], &pair[1]));
    }
    if let Some(r) = reports.first() {
        out.put("report_diff", "self", r);
    }
    for (i, toml) in RULES.iter().enumerate() {
        let frames: Vec<(String, Option<String>)> = stacks.get(i).into_iter().flatten().map(|f| (f.symbol.clone().or(f.function.clone()).unwrap_or_default(), f.module.clone())).collect();
        let frames: Vec<(&str, Option<&str>)> = frames.iter().map(|(s, m)| (s.as_str(), m.as_deref())).collect();
        out.put("rules", &format!("rules{i}"), &rules_input(toml, &frames));
    }
    for (i, (status, body)) in ANSWERS.iter().enumerate() {
        out.put("sweep_http", &format!("answer{i}"), &sweep_http_input(*status, body.as_bytes()));
    }
}
