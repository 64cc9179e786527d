//! `vramtrace sweep`: memory growth per token of context, measured against an OpenAI-compatible
//! server — llama-server, ik_llama.cpp, vLLM, Ollama (issue 6).
//!
//! With a command, the server runs under the shim exactly as with `vramtrace run` (its traces and
//! captured output go to `--out`) and is stopped at the end; without one, an already running
//! server is driven and only the markers are written. Each step sends one fresh prompt of a
//! growing token count to `/v1/completions` (`max_tokens: 1`, prompt caching off) and brackets it
//! with sidecar markers in `<out>/markers-sweep.jsonl`, on the shim's clock (CLOCK_MONOTONIC):
//! `request_start` before the request, `prompt_tokens` = `usage.prompt_tokens` after the answer.
//! The analyzer takes the highest VRAM between the two as the step's sample, fits
//! `bytes = a + b·tokens` per category and predicts the context at which the device is full
//! (docs/report-schema.md, "Marker" and "Growth").
//!
//! A failed step must not become a sample (its memory did not grow as its token count says), so
//! it gets a `request_failed` marker instead of closing the step — unless the trace shows an
//! out-of-memory failure inside it: then the step is closed with its token count, which makes the
//! analyzer leave it out of the fit *and* name it as the step the OOM happened in.

use crate::run::{spawn_with, OutDir, Traced};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{json, Value};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use vramtrace_analyzer::{analyze, load, Options};
use vramtrace_trace::clock::monotonic_ns as mono_ns;
use vramtrace_trace::side::{self, SideMarker};
use vramtrace_viewer::sweep::{growth_summary, steps_table, SweepStep};
use vramtrace_viewer::util::shell_join;

#[derive(clap::Args)]
pub struct SweepArgs {
    /// Base URL of the server, e.g. http://127.0.0.1:8080 (a trailing /v1 is accepted).
    #[arg(long)]
    pub url: String,
    /// Model name sent with each request; default: the first model /v1/models lists.
    #[arg(long)]
    pub model: Option<String>,
    /// Prompt tokens of the first step.
    #[arg(long, default_value_t = 256)]
    pub from: u64,
    /// Prompt tokens of the last step.
    #[arg(long, default_value_t = 65536)]
    pub to: u64,
    /// Number of steps (requests).
    #[arg(long, default_value_t = 12)]
    pub steps: u32,
    /// How the token counts are spaced between --from and --to.
    #[arg(long, value_enum, default_value_t = Spacing::Geometric)]
    pub spacing: Spacing,
    /// Device capacity to predict the maximum context for, instead of the driver's total (e.g. 24GiB).
    #[arg(long, value_parser = vramtrace_analyzer::parse_size)]
    pub vram: Option<u64>,
    /// Directory for traces, server output, markers and reports (created if missing).
    #[arg(long, short)]
    pub out: Option<PathBuf>,
    /// Seconds one request may take.
    #[arg(long, default_value_t = 600)]
    pub timeout: u64,
    /// Seconds the server may take until it answers: model loading when started here
    /// (default 600), else just a check that it is up (default 10).
    #[arg(long)]
    pub startup_timeout: Option<u64>,
    /// The shim library (default: $VRAMTRACE_SHIM, a libvramtrace.so beside this executable,
    /// else the copy built into vramtrace).
    #[arg(long)]
    pub shim: Option<PathBuf>,
    /// Call-stack depth recorded per event (0 = no stacks, at most 128).
    #[arg(long, value_parser = clap::value_parser!(u32).range(0..=vramtrace_trace::record::MAX_STACK_DEPTH as i64))]
    pub stack_depth: Option<u32>,
    /// Show the server's output even while the progress bar is on the terminal.
    #[arg(long)]
    pub server_output: bool,
    /// The server command, started under the shim; without it, the server at --url is used as is.
    #[arg(last = true)]
    pub cmd: Vec<String>,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Spacing {
    Geometric,
    Linear,
}

/// How long a stopped server gets between SIGTERM and SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(10);
/// Poll interval while waiting for the server to come up or go away.
const POLL: Duration = Duration::from_millis(100);
/// Calibration: rounds of /tokenize per step, and how close to the target is close enough.
const TOKENIZE_ROUNDS: usize = 4;
const TARGET_TOLERANCE: f64 = 0.005;

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_sigint(_: libc::c_int) {
    if INTERRUPTED.swap(true, Ordering::SeqCst) {
        // Second Ctrl-C: the user wants out now.
        unsafe { libc::_exit(130) };
    }
}

/// Token counts from `from` to `to` (both included), geometric or linear, without repeats.
pub fn targets(from: u64, to: u64, steps: u32, spacing: Spacing) -> Vec<u64> {
    let n = steps.max(1) as usize;
    let mut v: Vec<u64> = (0..n)
        .map(|i| {
            if n == 1 {
                return from;
            }
            let f = i as f64 / (n - 1) as f64;
            let x = match spacing {
                Spacing::Geometric => from as f64 * (to as f64 / from as f64).powf(f),
                Spacing::Linear => from as f64 + (to - from) as f64 * f,
            };
            x.round() as u64
        })
        .collect();
    v.dedup();
    v
}

// ---- HTTP -----------------------------------------------------------------------------------

enum HttpError {
    Timeout,
    /// Nothing answered, or the connection broke: the server is gone or not up yet.
    Connection(String),
    Other(String),
}

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HttpError::Timeout => f.write_str("no answer in time"),
            HttpError::Connection(e) | HttpError::Other(e) => f.write_str(e),
        }
    }
}

struct Client {
    agent: ureq::Agent,
    base: String,
}

impl Client {
    fn new(base: &str, timeout: Duration) -> Client {
        let agent = ureq::Agent::config_builder().timeout_global(Some(timeout)).http_status_as_error(false).build().into();
        Client { agent, base: base.to_string() }
    }

    fn finish(r: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Result<(u16, String), HttpError> {
        let mut resp = r.map_err(classify)?;
        let status = resp.status().as_u16();
        let body = resp.body_mut().with_config().limit(256 << 20).lossy_utf8(true).read_to_string().map_err(classify)?;
        Ok((status, body))
    }

    fn get(&self, path: &str) -> Result<(u16, String), HttpError> {
        Self::finish(self.agent.get(format!("{}{path}", self.base)).call())
    }

    fn post(&self, path: &str, body: &Value) -> Result<(u16, String), HttpError> {
        Self::finish(self.agent.post(format!("{}{path}", self.base)).header("Content-Type", "application/json").send(body.to_string()))
    }
}

fn classify(e: ureq::Error) -> HttpError {
    match e {
        ureq::Error::Timeout(_) => HttpError::Timeout,
        ureq::Error::Io(ref io) if io.kind() == std::io::ErrorKind::TimedOut || io.kind() == std::io::ErrorKind::WouldBlock => HttpError::Timeout,
        ureq::Error::Io(_) | ureq::Error::ConnectionFailed | ureq::Error::HostNotFound | ureq::Error::Protocol(_) => {
            HttpError::Connection(e.to_string())
        }
        e => HttpError::Other(e.to_string()),
    }
}

/// The message of an OpenAI/llama-server error body (`{"error": {"message": ...}}`, or
/// `{"error": "..."}` as Ollama sends), else the body's start.
fn error_message(body: &str) -> String {
    let v: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    let m = match &v["error"] {
        Value::String(s) => Some(s.clone()),
        e => e["message"].as_str().map(str::to_string),
    }
    .or_else(|| v["detail"].as_str().map(str::to_string))
    .or_else(|| v["message"].as_str().map(str::to_string));
    let m = m.unwrap_or_else(|| body.trim().to_string());
    let m = m.replace(['\n', '\r'], " ");
    if m.chars().count() > 300 {
        format!("{}…", m.chars().take(300).collect::<String>())
    } else if m.is_empty() {
        "(empty body)".into()
    } else {
        m
    }
}

/// `http://host:port` from what the user typed: no trailing slash, no `/v1` (paths add it).
fn normalize_url(url: &str) -> Result<String, String> {
    let u = url.trim().trim_end_matches('/');
    let u = u.strip_suffix("/v1").unwrap_or(u);
    if u.starts_with("https://") {
        return Err(format!("--url {url}: https is not supported (sweep talks plain HTTP to a local server)"));
    }
    if !u.starts_with("http://") || u.len() <= "http://".len() {
        return Err(format!("--url {url}: expected http://HOST:PORT"));
    }
    Ok(u.to_string())
}

// ---- prompts --------------------------------------------------------------------------------

/// Common short English words: one token each in most tokenizers, so prompt length is easy to
/// steer, and never the same sequence twice (no prompt-cache hit between steps).
const WORDS: &[&str] = &[
    "the", "of", "and", "to", "in", "is", "was", "that", "for", "on", "are", "with", "as", "at", "be", "this", "have", "from",
    "or", "one", "had", "by", "word", "but", "not", "what", "all", "were", "we", "when", "your", "can", "said", "there", "use",
    "an", "each", "which", "she", "do", "how", "their", "if", "will", "up", "other", "about", "out", "many", "then", "them",
    "these", "so", "some", "her", "would", "make", "like", "him", "into", "time", "has", "look", "two", "more", "write", "go",
    "see", "number", "no", "way", "could", "people", "my", "than", "first", "water", "been", "call", "who", "oil", "its", "now",
    "find", "long", "down", "day", "did", "get", "come", "made", "may", "part", "over", "new", "sound", "take", "only", "little",
    "work", "know", "place", "year", "live", "me", "back", "give", "most", "very", "after", "thing", "our", "just", "name",
    "good", "sentence", "man", "think", "say", "great", "where", "help", "through", "much", "before", "line", "right", "too",
    "mean", "old", "any", "same", "tell", "boy", "follow", "came", "want", "show", "also", "around", "form", "three", "small",
    "set", "put", "end", "does", "another", "well", "large", "must", "big", "even", "such", "because", "turn", "here", "why",
    "ask", "went", "men", "read", "need", "land", "different", "home", "us", "move", "try", "kind", "hand", "picture", "again",
    "change", "off", "play", "spell", "air", "away", "animal", "house", "point", "page", "letter", "mother", "answer", "found",
    "study", "still", "learn", "should", "world", "high", "every", "near", "add", "food", "between", "own", "below", "country",
    "plant", "last", "school", "father", "keep", "tree", "never", "start", "city", "earth", "eye", "light", "thought", "head",
    "under", "story", "saw", "left", "few", "while", "along", "might", "close", "something", "seem", "next", "hard", "open",
    "example", "begin", "life", "always", "those", "both", "paper", "together", "got", "group", "often", "run",
];

/// xorshift64*: deterministic enough to debug, seeded per run so runs differ.
struct Rng(u64);

impl Rng {
    fn new() -> Rng {
        let seed = mono_ns() ^ ((std::process::id() as u64) << 32) ^ 0x9e37_79b9_7f4a_7c15;
        Rng(seed | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// One step's prompt: a unique tag, then random words; grows or shrinks without changing its
/// beginning, so calibration rounds measure the same text.
struct Prompt {
    tag: String,
    words: Vec<&'static str>,
}

impl Prompt {
    fn new(rng: &mut Rng, step: usize) -> Prompt {
        Prompt { tag: format!("Sweep{step}-{:012x}:", rng.next() & 0xffff_ffff_ffff), words: Vec::new() }
    }
    fn text(&mut self, rng: &mut Rng, n: usize) -> String {
        while self.words.len() < n {
            self.words.push(WORDS[(rng.next() % WORDS.len() as u64) as usize]);
        }
        let mut s = String::with_capacity(self.tag.len() + n * 6);
        s.push_str(&self.tag);
        for w in &self.words[..n] {
            s.push(' ');
            s.push_str(w);
        }
        s
    }
}

// ---- markers --------------------------------------------------------------------------------

struct Markers {
    file: std::fs::File,
    path: PathBuf,
}

impl Markers {
    fn create(out: &Path) -> Result<Markers, String> {
        let path = out.join(side::markers_file_name("sweep"));
        let file = std::fs::File::create(&path).map_err(|e| format!("cannot create {}: {e}", path.display()))?;
        Ok(Markers { file, path })
    }

    /// One line per write, so a reader never sees half a marker.
    fn mark(&mut self, label: &str, value: u64) -> Result<u64, String> {
        let t = mono_ns();
        let line = side::to_jsonl(&SideMarker { t_ns: t, label: label.into(), value: value as i64 });
        self.file.write_all(line.as_bytes()).map_err(|e| format!("{}: {e}", self.path.display()))?;
        Ok(t)
    }
}

/// Whether some traced process in `out` had a device allocation fail with out-of-memory between
/// `t0` and `t1` (the shim has written every event by the time its call returned).
fn oom_in_trace(out: &Path, t0: u64, t1: u64) -> bool {
    vramtrace_analyzer::load_traces(&[out.to_path_buf()]).is_ok_and(|l| l.device_oom_between(t0, t1))
}

// ---- the server -----------------------------------------------------------------------------

/// The last lines the server printed (from its captured output), for error messages — only
/// when its output did not already pass through to the terminal.
fn server_tail(out: &Path, pid: u32, n: usize, shown: bool) -> String {
    if shown {
        return String::new();
    }
    let Ok(read) = side::read_output(&out.join(side::output_file_name(pid))) else { return String::new() };
    let lines: Vec<String> = read.records.into_iter().map(|l| l.line).collect();
    if lines.is_empty() {
        return String::new();
    }
    let tail = &lines[lines.len().saturating_sub(n)..];
    format!("\n  last server output:\n    {}", tail.join("\n    "))
}

fn describe_exit(s: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (s.code(), s.signal()) {
        (Some(c), _) => format!("exit code {c}"),
        (None, Some(sig)) => format!("signal {sig}{}", if sig == libc::SIGABRT { " (abort)" } else if sig == libc::SIGKILL { " (killed)" } else { "" }),
        _ => s.to_string(),
    }
}

/// Waits until the server answers `/health` (llama-server, vLLM) or `/v1/models` (Ollama, and
/// servers without /health). 503 means "still loading".
fn wait_ready(base: &str, mut server: Option<&mut Traced>, out: &Path, shown: bool, timeout: Duration, bar: &ProgressBar) -> Result<(), String> {
    let probe = Client::new(base, Duration::from_secs(5));
    let start = Instant::now();
    loop {
        if INTERRUPTED.load(Ordering::SeqCst) {
            return Err("interrupted while waiting for the server".into());
        }
        if let Some(s) = server.as_deref_mut() {
            if let Ok(Some(st)) = s.child.try_wait() {
                return Err(format!("the server exited ({}) before it answered at {base}{}", describe_exit(st), server_tail(out, s.child.id(), 12, shown)));
            }
        }
        let last = match probe.get("/health") {
            Ok((200, _)) => return Ok(()),
            Ok((503, body)) => format!("/health: 503 {}", error_message(&body)),
            Ok((code, _)) => match probe.get("/v1/models") {
                Ok((200, _)) => return Ok(()),
                Ok((c2, body)) => format!("/health: HTTP {code}; /v1/models: HTTP {c2} {}", error_message(&body)),
                Err(e) => format!("/v1/models: {e}"),
            },
            Err(e) => e.to_string(),
        };
        if start.elapsed() >= timeout {
            return Err(format!("the server at {base} did not answer within {} s (last: {last}); raise --startup-timeout?", timeout.as_secs()));
        }
        bar.set_message(format!("waiting for {base} ({:.0} s)", start.elapsed().as_secs_f64()));
        bar.tick();
        std::thread::sleep(POLL);
    }
}

/// SIGTERM, then SIGKILL after a grace period; then the output tees are drained (bounded: a
/// grandchild still holding the pipes must not hang us). Returns how the server ended.
fn stop_server(mut s: Traced) -> String {
    let pid = s.child.id();
    let mut how = match s.child.try_wait() {
        Ok(Some(st)) => format!("had exited ({})", describe_exit(st)),
        _ => {
            unsafe { libc::kill(pid as i32, libc::SIGTERM) };
            let t = Instant::now();
            let mut st = None;
            while t.elapsed() < STOP_GRACE {
                if let Ok(Some(x)) = s.child.try_wait() {
                    st = Some(x);
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            match st {
                Some(x) => format!("stopped with SIGTERM ({})", describe_exit(x)),
                None => {
                    let _ = s.child.kill();
                    format!("did not stop within {} s of SIGTERM: killed", STOP_GRACE.as_secs())
                }
            }
        }
    };
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(s.wait());
    });
    if rx.recv_timeout(Duration::from_secs(5)).is_err() {
        how.push_str("; its output pipes are still held by a child process");
    }
    how
}

// ---- the sweep ------------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq)]
enum Status {
    Ok,
    HttpError,
    Timeout,
    BadResponse,
    ServerDied,
    Unreachable,
    Interrupted,
}

impl Status {
    fn name(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::HttpError => "http_error",
            Status::Timeout => "timeout",
            Status::BadResponse => "bad_response",
            Status::ServerDied => "server_died",
            Status::Unreachable => "unreachable",
            Status::Interrupted => "interrupted",
        }
    }
}

struct Step {
    index: usize,
    target: u64,
    words: usize,
    /// Count from the server's /tokenize, when it has one.
    tokenized: Option<u64>,
    /// `usage.prompt_tokens` of the answer.
    prompt_tokens: Option<u64>,
    t_start: u64,
    t_end: u64,
    seconds: f64,
    status: Status,
    http_status: Option<u16>,
    error: Option<String>,
    /// Something to know about a completed step (a truncated prompt).
    note: Option<String>,
    oom_in_trace: bool,
}

impl Step {
    fn tokens(&self) -> Option<u64> {
        self.prompt_tokens.or(self.tokenized)
    }
    fn json(&self) -> Value {
        json!({
            "step": self.index, "target_tokens": self.target, "words": self.words,
            "tokenize_count": self.tokenized, "prompt_tokens": self.prompt_tokens,
            "t_start_ns": self.t_start, "t_end_ns": self.t_end, "seconds": self.seconds,
            "status": self.status.name(), "http_status": self.http_status, "error": self.error,
            "note": self.note, "oom_in_trace": self.oom_in_trace,
        })
    }
    /// The step as the viewer shows it (first line of the result only: the server's last
    /// output was shown with the step's progress line).
    fn view(&self) -> SweepStep {
        SweepStep {
            index: self.index,
            target: self.target,
            prompt_tokens: self.prompt_tokens,
            tokens: self.tokens(),
            seconds: self.seconds,
            completed: self.status == Status::Ok,
            result: self.describe().lines().next().unwrap_or("").to_string(),
            t_start_ns: self.t_start,
            t_end_ns: self.t_end,
        }
    }
    fn describe(&self) -> String {
        match self.status {
            Status::Ok => match &self.note {
                Some(n) => format!("ok; {n}"),
                None => "ok".into(),
            },
            _ => {
                let what = match self.http_status {
                    Some(c) => format!("HTTP {c}"),
                    None => self.status.name().replace('_', " "),
                };
                match &self.error {
                    Some(e) => format!("{what}: {e}"),
                    None => what,
                }
            }
        }
    }
}

struct Sweeper<'a> {
    client: Client,
    model: Option<String>,
    tokenize: bool,
    /// Prompt tokens per word, learned from the server's own counts.
    ratio: f64,
    rng: Rng,
    markers: Markers,
    out: &'a Path,
    /// Traces of the server in `out` (so OOM inside a failed step can be looked up).
    traced_here: bool,
    /// The server's output passes through to ours (no need to repeat its last lines).
    output_shown: bool,
}

impl Sweeper<'_> {
    fn tokenize_count(&self, text: &str) -> Option<u64> {
        match self.client.post("/tokenize", &json!({"content": text, "add_special": true})) {
            Ok((200, body)) => serde_json::from_str::<Value>(&body).ok()?["tokens"].as_array().map(|a| a.len() as u64),
            _ => None,
        }
    }

    /// Builds the step's prompt: with /tokenize, adjusts the word count until the server's own
    /// count is within 0.5% of the target; without it, scales by what earlier steps measured.
    fn prompt_for(&mut self, index: usize, target: u64) -> (String, usize, Option<u64>) {
        let mut p = Prompt::new(&mut self.rng, index);
        let mut words = ((target as f64 / self.ratio).round() as usize).max(1);
        let mut text = p.text(&mut self.rng, words);
        let mut counted = None;
        if self.tokenize {
            for _ in 0..TOKENIZE_ROUNDS {
                let Some(c) = self.tokenize_count(&text) else { break };
                counted = Some(c);
                self.ratio = (c as f64 / words as f64).max(1e-3);
                if (c as f64 - target as f64).abs() <= (target as f64 * TARGET_TOLERANCE).max(1.0) {
                    break;
                }
                let next = ((words as f64 * target as f64 / c.max(1) as f64).round() as usize).max(1);
                if next == words {
                    break;
                }
                words = next;
                text = p.text(&mut self.rng, words);
                counted = None;
            }
        }
        (text, words, counted)
    }

    fn run_step(&mut self, index: usize, target: u64, server: Option<&mut Traced>) -> Result<Step, String> {
        let (text, words, tokenized) = self.prompt_for(index, target);
        let mut body = json!({
            "prompt": text, "max_tokens": 1, "temperature": 0, "stream": false,
            // llama-server: no prompt cache reuse across requests.
            "cache_prompt": false,
        });
        if let Some(m) = &self.model {
            body["model"] = json!(m);
        }
        let t_start = self.markers.mark("request_start", target)?;
        let started = Instant::now();
        let r = self.client.post("/v1/completions", &body);
        let seconds = started.elapsed().as_secs_f64();
        let mut step = Step {
            index,
            target,
            words,
            tokenized,
            prompt_tokens: None,
            t_start,
            t_end: t_start,
            seconds,
            status: Status::Ok,
            http_status: None,
            error: None,
            note: None,
            oom_in_trace: false,
        };
        match r {
            Ok((200, resp)) => {
                let v: Value = serde_json::from_str(&resp).unwrap_or(Value::Null);
                step.prompt_tokens = v["usage"]["prompt_tokens"].as_u64();
                if step.tokens().is_none() {
                    step.status = Status::BadResponse;
                    step.error = Some(format!("no usage.prompt_tokens in the answer: {}", error_message(&resp)));
                }
            }
            Ok((code, resp)) => {
                step.status = Status::HttpError;
                step.http_status = Some(code);
                step.error = Some(error_message(&resp));
            }
            Err(HttpError::Timeout) => {
                step.status = Status::Timeout;
                step.error = Some(format!("no answer within {:.0} s (--timeout)", seconds));
            }
            Err(e @ (HttpError::Connection(_) | HttpError::Other(_))) => {
                step.error = Some(e.to_string());
                step.status = if INTERRUPTED.load(Ordering::SeqCst) {
                    Status::Interrupted
                } else if let Some(s) = server {
                    // A connection dropped by a dying process: give the kernel a moment to reap it.
                    let t = Instant::now();
                    let mut died = None;
                    while died.is_none() && t.elapsed() < Duration::from_secs(2) {
                        died = s.child.try_wait().ok().flatten();
                        if died.is_none() {
                            std::thread::sleep(Duration::from_millis(20));
                        }
                    }
                    match died {
                        Some(st) => {
                            step.error = Some(format!("{}{}", describe_exit(st), server_tail(self.out, s.child.id(), 8, self.output_shown)));
                            Status::ServerDied
                        }
                        None if matches!(e, HttpError::Connection(_)) && self.client.get("/v1/models").is_err() => Status::Unreachable,
                        None => Status::HttpError,
                    }
                } else if matches!(e, HttpError::Connection(_)) && self.client.get("/v1/models").is_err() {
                    Status::Unreachable
                } else {
                    Status::HttpError
                };
            }
        }
        if step.status == Status::Ok {
            step.t_end = self.markers.mark("prompt_tokens", step.tokens().unwrap_or(target))?;
            if let Some(n) = step.prompt_tokens {
                let expected = tokenized.map_or(words as f64 * self.ratio, |c| c as f64);
                if (n as f64) < 0.5 * expected {
                    // Ollama cuts prompts to its context (num_ctx) without an error: the sample
                    // is still right for n tokens, but n is not what was sent.
                    step.note = Some(format!("the server counted only {n} of ~{expected:.0} prompt tokens: it truncates prompts (Ollama: raise OLLAMA_CONTEXT_LENGTH)"));
                } else {
                    self.ratio = (n as f64 / words as f64).max(1e-3);
                }
            }
        } else {
            let now = mono_ns();
            step.oom_in_trace = self.traced_here && oom_in_trace(self.out, t_start, now);
            // See the module doc: close an OOM step (so the analyzer names it), never a plain failure.
            step.t_end = if step.oom_in_trace {
                self.markers.mark("prompt_tokens", step.tokens().unwrap_or(target))?
            } else {
                self.markers.mark("request_failed", target)?
            };
        }
        Ok(step)
    }
}

fn say(bar: &ProgressBar, line: String) {
    if bar.is_hidden() {
        eprintln!("{line}");
    } else {
        bar.println(line);
    }
}

pub fn sweep(args: SweepArgs) -> Result<ExitCode, String> {
    let base = normalize_url(&args.url)?;
    if args.from == 0 || args.to < args.from {
        return Err(format!("--from {} --to {}: need 1 <= from <= to", args.from, args.to));
    }
    if args.steps == 0 {
        return Err("--steps must be at least 1".into());
    }
    if args.timeout == 0 {
        return Err("--timeout must be at least 1 second".into());
    }
    let plan = targets(args.from, args.to, args.steps, args.spacing);
    let out_dir = OutDir::prepare(args.out.clone(), "sweep")?;
    let out = out_dir.path.clone();
    let with_server = !args.cmd.is_empty();
    if with_server && crate::trace_files(std::slice::from_ref(&out)).is_ok_and(|f| !f.is_empty()) {
        return Err(format!("{} already holds traces from an earlier run; choose an empty --out", out.display()));
    }
    let interactive = std::io::stderr().is_terminal();
    let bar = if interactive { ProgressBar::new_spinner() } else { ProgressBar::hidden() };
    bar.enable_steady_tick(Duration::from_millis(120));
    unsafe { libc::signal(libc::SIGINT, on_sigint as *const () as libc::sighandler_t) };

    let mut server = if with_server {
        let start = || -> Result<Traced, String> {
            let shim = crate::shim::find(args.shim.as_deref())?;
            // A server already answering there would be measured instead of the one started
            // here (which would then fail to bind its port).
            if let Ok((code, _)) = Client::new(&base, Duration::from_secs(2)).get("/v1/models") {
                return Err(format!("something already answers at {base} (HTTP {code}); stop it or give the server another port"));
            }
            // The server's output would tear the progress bar apart: it goes to
            // output-<pid>.jsonl only, unless asked for or unless there is no bar.
            spawn_with(&args.cmd, &shim, &out, args.stack_depth, args.server_output || !interactive)
        };
        let s = start().inspect_err(|_| out_dir.discard_if_empty())?;
        say(&bar, format!("vramtrace: started {} (pid {}) under the shim; traces in {}", args.cmd[0], s.child.id(), out.display()));
        Some(s)
    } else {
        None
    };

    // Everything that can fail with the server up runs here, so the server is always stopped.
    let output_shown = args.server_output || !interactive;
    let result = drive(&args, &base, &plan, &out, server.as_mut(), output_shown, &bar);
    let stopped = server.map(stop_server);
    bar.finish_and_clear();
    unsafe { libc::signal(libc::SIGINT, libc::SIG_DFL) };
    if let Some(how) = &stopped {
        eprintln!("vramtrace: server {how}");
    }
    let steps = result?;

    // Per-step record for scripts, next to the report.
    let sweep_json = out.join("sweep.json");
    let doc = json!({"url": base, "model": args.model, "targets": plan, "steps": steps.iter().map(Step::json).collect::<Vec<_>>()});
    std::fs::write(&sweep_json, format!("{doc:#}\n")).map_err(|e| format!("cannot write {}: {e}", sweep_json.display()))?;

    let done = steps.iter().filter(|s| s.status == Status::Ok).count();
    let shown: Vec<SweepStep> = steps.iter().map(Step::view).collect();
    print!("{}", steps_table(&base, plan.len(), &shown));

    if crate::trace_files(std::slice::from_ref(&out)).is_err() {
        println!("no traces in {0}: analyze with `vramtrace report <trace dir> {0}/markers-sweep.jsonl`", out.display());
    } else {
        let pb = crate::report::spinner("analyzing the traces");
        let loaded = load(std::slice::from_ref(&out)).map_err(|e| {
            pb.finish_and_clear();
            e.to_string()
        })?;
        let opts = Options { vram: args.vram, ..Options::default() };
        let report = analyze(&loaded, &opts);
        pb.finish_and_clear();
        for w in &loaded.warnings {
            eprintln!("vramtrace: warning: {w}");
        }
        print!("{}", growth_summary(&report, &shown));
        let path = out.join("report.json");
        let f = std::fs::File::create(&path).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        serde_json::to_writer_pretty(std::io::BufWriter::new(f), &report).map_err(|e| format!("{}: {e}", path.display()))?;
        // The HTML report (with the growth chart) is a bonus: a rendering failure is a warning.
        let pb = crate::report::spinner("rendering the HTML report");
        let repro = shell_join(&std::iter::once("vramtrace".to_string()).chain(std::env::args().skip(1)).collect::<Vec<_>>());
        let rendered = vramtrace_viewer::render_all(&report, &out, &vramtrace_viewer::RenderOptions { repro: Some(repro), ..Default::default() });
        pb.finish_and_clear();
        match rendered {
            Ok(w) => println!("report: {} and {} (per-step results: {})", w.html.display(), path.display(), sweep_json.display()),
            Err(e) => {
                eprintln!("vramtrace: warning: HTML report not written: {e}");
                println!("report: {} (per-step results: {})", path.display(), sweep_json.display());
            }
        }
    }
    Ok(if done == 0 { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

/// Waits for the server, then runs the steps; stops early when the server is gone or on Ctrl-C.
fn drive(
    args: &SweepArgs,
    base: &str,
    plan: &[u64],
    out: &Path,
    mut server: Option<&mut Traced>,
    output_shown: bool,
    bar: &ProgressBar,
) -> Result<Vec<Step>, String> {
    let startup = args.startup_timeout.unwrap_or(if server.is_some() { 600 } else { 10 });
    wait_ready(base, server.as_deref_mut(), out, output_shown, Duration::from_secs(startup), bar)?;
    let client = Client::new(base, Duration::from_secs(args.timeout));
    let model = match &args.model {
        Some(m) => Some(m.clone()),
        // vLLM and Ollama need the model's name; llama-server ignores it.
        None => client
            .get("/v1/models")
            .ok()
            .filter(|(c, _)| *c == 200)
            .and_then(|(_, b)| serde_json::from_str::<Value>(&b).ok())
            .and_then(|v| v["data"][0]["id"].as_str().map(str::to_string)),
    };
    let tokenize = matches!(client.post("/tokenize", &json!({"content": "hello world"})), Ok((200, b)) if serde_json::from_str::<Value>(&b).is_ok_and(|v| v["tokens"].is_array()));
    let traced_here = server.is_some() || crate::trace_files(&[out.to_path_buf()]).is_ok();
    let mut sw = Sweeper { client, model, tokenize, ratio: 1.0, rng: Rng::new(), markers: Markers::create(out)?, out, traced_here, output_shown };
    say(
        bar,
        format!(
            "vramtrace: sweeping {} step(s), {}..{} prompt tokens; model {}; token counts {}",
            plan.len(),
            plan[0],
            plan[plan.len() - 1],
            sw.model.as_deref().unwrap_or("(server default)"),
            if sw.tokenize { "calibrated with the server's /tokenize" } else { "scaled from usage.prompt_tokens" }
        ),
    );
    if !bar.is_hidden() {
        bar.set_length(plan.len() as u64);
        bar.set_position(0);
        bar.set_style(ProgressStyle::with_template("{spinner} [{bar:30}] {pos}/{len} {msg} ({elapsed})").expect("static template").progress_chars("=> "));
    }
    let mut steps = Vec::new();
    for (i, &target) in plan.iter().enumerate() {
        if INTERRUPTED.load(Ordering::SeqCst) {
            say(bar, "vramtrace: interrupted; analyzing the steps so far".into());
            break;
        }
        bar.set_message(format!("step {}: {target} tokens", i + 1));
        let step = sw.run_step(i + 1, target, server.as_deref_mut())?;
        bar.inc(1);
        let n = step.tokens().map(|n| format!("{n} tokens")).unwrap_or_else(|| format!("~{target} tokens"));
        say(bar, format!("vramtrace: step {}/{}: {n}: {} ({:.2} s)", i + 1, plan.len(), step.describe(), step.seconds));
        let stop = matches!(step.status, Status::ServerDied | Status::Unreachable | Status::Interrupted);
        steps.push(step);
        if stop {
            break;
        }
    }
    Ok(steps)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_spacing() {
        assert_eq!(targets(256, 65536, 9, Spacing::Geometric), vec![256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536]);
        assert_eq!(targets(100, 500, 5, Spacing::Linear), vec![100, 200, 300, 400, 500]);
        assert_eq!(targets(10, 10, 4, Spacing::Geometric), vec![10]);
        assert_eq!(targets(7, 9, 1, Spacing::Linear), vec![7]);
    }

    #[test]
    fn urls_and_error_bodies() {
        assert_eq!(normalize_url("http://127.0.0.1:11434/v1/").unwrap(), "http://127.0.0.1:11434");
        assert!(normalize_url("https://x").unwrap_err().contains("https"));
        assert!(normalize_url("localhost:8080").is_err());
        assert_eq!(error_message(r#"{"error":{"code":500,"message":"CUDA error: out of memory"}}"#), "CUDA error: out of memory");
        assert_eq!(error_message(r#"{"error":"model not found"}"#), "model not found");
        assert_eq!(error_message("Internal\nServer Error"), "Internal Server Error");
    }

    #[test]
    fn prompts_are_unique_and_stable_while_growing() {
        let mut rng = Rng::new();
        let mut a = Prompt::new(&mut rng, 1);
        let short = a.text(&mut rng, 10);
        let long = a.text(&mut rng, 20);
        assert!(long.starts_with(&short));
        assert_eq!(long.split_whitespace().count(), 21);
        let mut b = Prompt::new(&mut rng, 1);
        assert_ne!(b.text(&mut rng, 10), short);
    }
}
