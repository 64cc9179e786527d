//! `vramtrace sweep`'s handling of what an inference server answers: every parser of an HTTP
//! answer, on the status the input gives and on 200, and the URL the user typed.

use vramtrace_cli::sweep::{completion_tokens, error_message, first_model, normalize_url, readiness, tokenize_count};

/// Lays out an input: the HTTP status (u16, little-endian), then the body.
pub fn sweep_http_input(status: u16, body: &[u8]) -> Vec<u8> {
    [&status.to_le_bytes()[..], body].concat()
}

/// A message shown on one line, at most 300 characters and an ellipsis.
fn short_line(m: &str) {
    assert!(!m.contains(['\n', '\r']), "error_message is not one line: {m:?}");
    assert!(m.chars().count() <= 301, "error_message is longer than 300 characters: {m:?}");
}

/// The status from the first two bytes, the body (lossy UTF-8, as the HTTP client reads it)
/// from the rest; the body is also tried as a `--url`.
pub fn sweep_http(data: &[u8]) {
    let (status, body) = match data {
        [a, b, rest @ ..] => (u16::from_le_bytes([*a, *b]), rest),
        _ => (200, data),
    };
    let body = String::from_utf8_lossy(body);
    let body = body.as_ref();
    short_line(&error_message(body));
    for s in [status, 200] {
        match completion_tokens(s, body) {
            Ok(n) => std::hint::black_box(n),
            Err(m) => {
                assert!(!m.contains('\n'), "completion_tokens' error is not one line: {m:?}");
                0
            }
        };
        std::hint::black_box((tokenize_count(s, body), first_model(s, body)));
    }
    std::hint::black_box(readiness((status, body), None));
    for other in [200, 503, 404] {
        std::hint::black_box(readiness((status, body), Some((other, body))));
    }
    if let Ok(u) = normalize_url(body) {
        assert!(u.starts_with("http://") && !u.ends_with('/'), "normalize_url kept {u:?}");
    }
}
