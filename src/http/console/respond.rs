//! The console's answers (HTML and JSON with strict security headers, errors, the log-in challenge) and
//! what every handler reads of a request (its query, its body's limit).

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Response, StatusCode};
use serde_json::json;

use super::error::ConsoleError;
use crate::http::error::{Resp, json_response};

pub(super) const CSS: &str = include_str!("console.css");

/// What the console answers with: a page, JSON, or a redirect back to a page.
pub(super) fn secured(mut resp: Resp) -> Resp {
    let h = resp.headers_mut();
    let set = |h: &mut hyper::HeaderMap, k: &'static str, v: &'static str| {
        h.insert(k, HeaderValue::from_static(v));
    };
    set(
        h,
        "content-security-policy",
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    );
    set(h, "x-content-type-options", "nosniff");
    set(h, "x-frame-options", "DENY");
    // same-origin, not no-referrer: with no-referrer a browser sends `Origin: null` on its own form posts.
    set(h, "referrer-policy", "same-origin");
    set(h, "cache-control", "no-store");
    resp
}

pub(super) fn html(status: StatusCode, body: String) -> Resp {
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    secured(resp)
}

pub(super) fn json(status: StatusCode, body: &impl serde::Serialize) -> Resp {
    secured(json_response(status, &serde_json::to_value(body).unwrap_or_default()))
}

pub(super) fn error(status: StatusCode, message: &str) -> Resp {
    json(status, &json!({"error": message}))
}

pub(super) fn unauthorized() -> Resp {
    let mut resp = error(StatusCode::UNAUTHORIZED, "log in with a console user (console.users)");
    resp.headers_mut().insert(
        "www-authenticate",
        HeaderValue::from_static("Basic realm=\"dingtalk-bridge console\", charset=\"UTF-8\""),
    );
    resp
}

/// An error as an API client gets it: its status and message as JSON.
pub(super) fn failed(e: &ConsoleError) -> Resp {
    error(e.status(), &e.to_string())
}

/// A form or JSON body the console takes is small.
pub(super) const MAX_BODY: usize = 16 * 1024;

/// `key=value` pairs of a query string, decoded.
pub(super) fn query_pairs(query: Option<&str>) -> Vec<(String, String)> {
    let url = reqwest::Url::parse(&format!("http://x/?{}", query.unwrap_or(""))).ok();
    url.map(|u| u.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect()).unwrap_or_default()
}
