//! One step of a sweep: a fresh prompt of the target length sent to `/v1/completions`,
//! bracketed by markers in `markers-sweep.jsonl`, and how it ended.

use super::http::{completion_tokens, error_message, tokenize_count, Client, HttpError};
use super::prompt::{Prompt, Rng};
use super::server::{describe_exit, server_tail};
use super::INTERRUPTED;
use crate::run::Traced;
use serde_json::{json, Value};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use vramtrace_trace::clock::monotonic_ns;
use vramtrace_trace::side::{self, SideMarker};
use vramtrace_viewer::sweep::SweepStep;

/// Calibration: rounds of /tokenize per step, and how close to the target is close enough.
const TOKENIZE_ROUNDS: usize = 4;
const TARGET_TOLERANCE: f64 = 0.005;

pub(super) struct Markers {
    file: std::fs::File,
    path: PathBuf,
}

impl Markers {
    pub(super) fn create(out: &Path) -> Result<Markers, String> {
        let path = out.join(side::markers_file_name("sweep"));
        let file = std::fs::File::create(&path).map_err(|e| format!("cannot create {}: {e}", path.display()))?;
        Ok(Markers { file, path })
    }

    /// One line per write, so a reader never sees half a marker.
    fn mark(&mut self, label: &str, value: u64) -> Result<u64, String> {
        let t = monotonic_ns();
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

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Status {
    Ok,
    HttpError,
    Timeout,
    BadResponse,
    ServerDied,
    Unreachable,
    Interrupted,
}

impl Status {
    pub(super) fn name(self) -> &'static str {
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

pub(super) struct Step {
    pub(super) index: usize,
    pub(super) target: u64,
    pub(super) words: usize,
    /// Count from the server's /tokenize, when it has one.
    pub(super) tokenized: Option<u64>,
    /// `usage.prompt_tokens` of the answer.
    pub(super) prompt_tokens: Option<u64>,
    pub(super) t_start: u64,
    pub(super) t_end: u64,
    pub(super) seconds: f64,
    pub(super) status: Status,
    pub(super) http_status: Option<u16>,
    pub(super) error: Option<String>,
    /// Something to know about a completed step (a truncated prompt).
    pub(super) note: Option<String>,
    pub(super) oom_in_trace: bool,
}

impl Step {
    pub(super) fn tokens(&self) -> Option<u64> {
        self.prompt_tokens.or(self.tokenized)
    }
    pub(super) fn json(&self) -> Value {
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
    pub(super) fn view(&self) -> SweepStep {
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
    pub(super) fn describe(&self) -> String {
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

pub(super) struct Sweeper<'a> {
    pub(super) client: Client,
    pub(super) model: Option<String>,
    pub(super) tokenize: bool,
    /// Prompt tokens per word, learned from the server's own counts.
    pub(super) ratio: f64,
    pub(super) rng: Rng,
    pub(super) markers: Markers,
    pub(super) out: &'a Path,
    /// Traces of the server in `out` (so OOM inside a failed step can be looked up).
    pub(super) traced_here: bool,
    /// The server's output passes through to ours (no need to repeat its last lines).
    pub(super) output_shown: bool,
}

impl Sweeper<'_> {
    fn tokenize_count(&self, text: &str) -> Option<u64> {
        let (status, body) = self.client.post("/tokenize", &json!({"content": text, "add_special": true})).ok()?;
        tokenize_count(status, &body)
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

    pub(super) fn run_step(&mut self, index: usize, target: u64, server: Option<&mut Traced>) -> Result<Step, String> {
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
            Ok((200, resp)) => match completion_tokens(200, &resp) {
                Ok(n) => step.prompt_tokens = Some(n),
                Err(e) if step.tokens().is_none() => {
                    step.status = Status::BadResponse;
                    step.error = Some(e);
                }
                Err(_) => {}
            },
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
            let now = monotonic_ns();
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
