//! The request every protocol makes: one `post()` that returns the answer's status and (the start of) its
//! body, and what a request that got no answer means.

use super::{Outcome, Reason};

/// Answers are small; anything longer is an error page, of which the start says enough.
const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// One request's answer: its HTTP status and at most the first 64 KiB of its body.
pub struct Answer {
    pub status: u16,
    pub body: Vec<u8>,
}

/// POSTs a JSON body with extra headers (an access token, or none).
pub async fn post(
    client: &reqwest::Client,
    url: &str,
    body: &str,
    headers: &[(&str, &str)],
) -> Result<Answer, reqwest::Error> {
    let mut request = client.post(url).header(reqwest::header::CONTENT_TYPE, "application/json");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let mut resp = request.body(body.to_string()).send().await?;
    let status = resp.status().as_u16();
    let mut answer = Vec::new();
    while let Some(chunk) = resp.chunk().await? {
        answer.extend_from_slice(&chunk[..chunk.len().min(MAX_RESPONSE_BYTES - answer.len())]);
        if answer.len() >= MAX_RESPONSE_BYTES {
            break;
        }
    }
    Ok(Answer { status, body: answer })
}

/// The outcome of a request that got no answer: a refused connection proves nothing was posted; a
/// timeout or a lost answer does not. The URL (which may hold a credential) is left out.
pub fn unanswered(e: reqwest::Error) -> Outcome {
    Outcome::Retry { reason: transport_reason(&e), detail: error_chain(&e.without_url()) }
}

fn transport_reason(e: &reqwest::Error) -> Reason {
    if e.is_connect() {
        Reason::Connect
    } else if e.is_timeout() {
        Reason::Timeout
    } else {
        Reason::Network
    }
}

/// An error and its sources as one line.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut parts = vec![];
    let mut source: Option<&dyn std::error::Error> = Some(e);
    while let Some(err) = source {
        parts.push(err.to_string());
        source = err.source();
    }
    parts.join(": ")
}

/// The HTTP status alone decides for anything but 2xx.
pub fn classify_status(status: u16, detail: impl Fn() -> String) -> Option<Outcome> {
    match status {
        200..=299 => None,
        300..=399 => Some(Outcome::Failed { reason: Reason::Redirect, detail: detail() }),
        429 => Some(Outcome::Retry { reason: Reason::Http429, detail: detail() }),
        500..=599 => Some(Outcome::Retry { reason: Reason::Http5xx, detail: detail() }),
        _ => Some(Outcome::Failed { reason: Reason::HttpStatus, detail: detail() }),
    }
}

/// An answer for a log line and its detail: the status and the start of the body.
pub fn answer_snippet(status: u16, body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(200)]);
    format!("HTTP {status}: {}", text.trim())
}
