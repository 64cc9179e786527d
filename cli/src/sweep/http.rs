//! Talking to the server: a plain-HTTP client, and what its answers mean. The meaning is in pure
//! functions over (status, body), so hostile or broken answers can be fuzzed without a server.

use serde_json::Value;
use std::time::Duration;

pub(super) enum HttpError {
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

/// Bodies larger than this are cut (a sane server answers a one-token completion in a few KiB).
const MAX_BODY: u64 = 64 << 20;

pub(super) struct Client {
    agent: ureq::Agent,
    base: String,
}

impl Client {
    pub(super) fn new(base: &str, timeout: Duration) -> Client {
        let agent = ureq::Agent::config_builder().timeout_global(Some(timeout)).http_status_as_error(false).build().into();
        Client { agent, base: base.to_string() }
    }

    fn finish(r: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Result<(u16, String), HttpError> {
        let mut resp = r.map_err(classify)?;
        let status = resp.status().as_u16();
        let body = resp.body_mut().with_config().limit(MAX_BODY).lossy_utf8(true).read_to_string().map_err(classify)?;
        Ok((status, body))
    }

    pub(super) fn get(&self, path: &str) -> Result<(u16, String), HttpError> {
        Self::finish(self.agent.get(format!("{}{path}", self.base)).call())
    }

    pub(super) fn post(&self, path: &str, body: &Value) -> Result<(u16, String), HttpError> {
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

/// `http://host:port` from what the user typed: no trailing slash, no `/v1` (paths add it).
pub fn normalize_url(url: &str) -> Result<String, String> {
    let u = url.trim().trim_end_matches('/');
    // `http://host//v1` too: a slash left before the `/v1` would double the paths' slashes.
    let u = u.strip_suffix("/v1").unwrap_or(u).trim_end_matches('/');
    if u.starts_with("https://") {
        return Err(format!("--url {url}: https is not supported (sweep talks plain HTTP to a local server)"));
    }
    if !u.starts_with("http://") || u.len() <= "http://".len() {
        return Err(format!("--url {url}: expected http://HOST:PORT"));
    }
    Ok(u.to_string())
}

/// The message of an OpenAI/llama-server error body (`{"error": {"message": ...}}`, or
/// `{"error": "..."}` as Ollama sends), else the body's start; one line, at most 300 characters.
pub fn error_message(body: &str) -> String {
    let v: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    let m = match &v["error"] {
        Value::String(s) => Some(s.clone()),
        e => e["message"].as_str().map(str::to_string),
    }
    .or_else(|| v["detail"].as_str().map(str::to_string))
    .or_else(|| v["message"].as_str().map(str::to_string));
    let m = m.unwrap_or_else(|| body.trim().to_string());
    let m: String = m.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    if m.chars().count() > 300 {
        format!("{}…", m.chars().take(300).collect::<String>())
    } else if m.is_empty() {
        "(empty body)".into()
    } else {
        m
    }
}

/// `usage.prompt_tokens` of a `/v1/completions` answer, or why there is none.
pub fn completion_tokens(status: u16, body: &str) -> Result<u64, String> {
    if status != 200 {
        return Err(error_message(body));
    }
    let v: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    v["usage"]["prompt_tokens"].as_u64().ok_or_else(|| format!("no usage.prompt_tokens in the answer: {}", error_message(body)))
}

/// The token count of a `/tokenize` answer (llama-server: `{"tokens": [...]}`).
pub fn tokenize_count(status: u16, body: &str) -> Option<u64> {
    if status != 200 {
        return None;
    }
    serde_json::from_str::<Value>(body).ok()?["tokens"].as_array().map(|a| a.len() as u64)
}

/// The first model a `/v1/models` answer lists (vLLM and Ollama need its name).
pub fn first_model(status: u16, body: &str) -> Option<String> {
    if status != 200 {
        return None;
    }
    serde_json::from_str::<Value>(body).ok()?["data"][0]["id"].as_str().map(str::to_string)
}

/// What the server's answers to `/health` and, when that is not 200, `/v1/models` say about it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Readiness {
    Ready,
    /// Up but not ready (503, model loading): keep waiting; the text says what it answered.
    Loading(String),
    /// It answers HTTP, but neither endpoint of an OpenAI-compatible server: waiting cannot help.
    NotOpenAi(String),
}

pub fn readiness(health: (u16, &str), models: Option<(u16, &str)>) -> Readiness {
    match (health, models) {
        ((200, _), _) | (_, Some((200, _))) => Readiness::Ready,
        ((503, body), _) => Readiness::Loading(format!("/health: 503 {}", error_message(body))),
        (_, Some((503, body))) => Readiness::Loading(format!("/v1/models: 503 {}", error_message(body))),
        ((code, _), Some((c2, body))) => Readiness::NotOpenAi(format!("/health: HTTP {code}; /v1/models: HTTP {c2} {}", error_message(body))),
        ((code, body), None) => Readiness::NotOpenAi(format!("/health: HTTP {code} {}", error_message(body))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_error_bodies() {
        assert_eq!(normalize_url("http://127.0.0.1:11434/v1/").unwrap(), "http://127.0.0.1:11434");
        assert_eq!(normalize_url("http://127.0.0.1:8080//v1").unwrap(), "http://127.0.0.1:8080");
        assert!(normalize_url("https://x").unwrap_err().contains("https"));
        assert!(normalize_url("localhost:8080").is_err());
        assert_eq!(error_message(r#"{"error":{"code":500,"message":"CUDA error: out of memory"}}"#), "CUDA error: out of memory");
        assert_eq!(error_message(r#"{"error":"model not found"}"#), "model not found");
        assert_eq!(error_message("Internal\nServer Error"), "Internal Server Error");
        assert_eq!(error_message(""), "(empty body)");
    }

    #[test]
    fn answers_mean_what_they_say() {
        assert_eq!(completion_tokens(200, r#"{"usage":{"prompt_tokens":512}}"#), Ok(512));
        assert!(completion_tokens(200, r#"{"usage":{}}"#).unwrap_err().contains("no usage.prompt_tokens"));
        assert_eq!(completion_tokens(400, r#"{"error":"too long"}"#), Err("too long".into()));
        assert_eq!(tokenize_count(200, r#"{"tokens":[1,2,3]}"#), Some(3));
        assert_eq!(tokenize_count(404, "not found"), None);
        assert_eq!(first_model(200, r#"{"data":[{"id":"m"}]}"#).as_deref(), Some("m"));
        assert_eq!(readiness((200, ""), None), Readiness::Ready);
        assert_eq!(readiness((404, ""), Some((200, ""))), Readiness::Ready);
        assert!(matches!(readiness((503, "loading"), None), Readiness::Loading(_)));
        assert!(matches!(readiness((404, "nope"), Some((404, "nope"))), Readiness::NotOpenAi(m) if m.contains("404")));
    }
}
