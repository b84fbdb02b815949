//! The one HTTP error type every route answers through, and the one function that decides what each
//! error means to the caller. Only trouble on our side is 5xx, so Alertmanager retries exactly what a
//! retry can fix; never 429, which it does not retry.

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{ALLOW, CONTENT_TYPE, HeaderValue, WWW_AUTHENTICATE};
use hyper::{Method, Response, StatusCode};
use serde_json::json;

use crate::app::ReloadError;
use crate::decode::{DecodeError, LimitError};
use crate::store::StoreError;

pub type Resp = Response<Full<Bytes>>;

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("method {0} not allowed; use POST")]
    MethodNotAllowed(Method),
    #[error("no such endpoint {0}; notifications go to POST /dingtalk/<target>/send")]
    NoRoute(String),
    #[error("missing or wrong credentials")]
    Unauthorized { basic: bool },
    #[error("unknown target {name:?}")]
    UnknownTarget { name: String, configured: Vec<String> },
    #[error("content type {0:?} is not supported; send application/json")]
    UnsupportedMediaType(String),
    #[error("request body exceeds {0} bytes (server.max_request_bytes)")]
    TooLarge(usize),
    #[error("cannot read request body: {0}")]
    Body(String),
    #[error("{0}")]
    Decode(DecodeError),
    #[error("payload too large: {0}")]
    Limit(LimitError),
    #[error("request not complete within server.request_timeout ({0:?}); retry")]
    SlowRequest(std::time::Duration),
    #[error("the bridge is busy with other requests (server.max_inflight_bytes); retry")]
    Busy,
    #[error("not accepting notifications: {0}; retry later")]
    StoreUnhealthy(String),
    #[error("cannot store the notification, retry later: {0}")]
    Store(#[from] StoreError),
    #[error("shutting down, retry later")]
    ShuttingDown,
    /// The configuration could not be reloaded; the previous one keeps serving.
    #[error(transparent)]
    Reload(#[from] ReloadError),
    #[error("internal error, retry later: {0}")]
    Internal(String),
}

impl HttpError {
    pub fn status(&self) -> StatusCode {
        match self {
            HttpError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            HttpError::NoRoute(_) | HttpError::UnknownTarget { .. } => StatusCode::NOT_FOUND,
            HttpError::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            HttpError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            HttpError::TooLarge(_) | HttpError::Limit(_) => StatusCode::PAYLOAD_TOO_LARGE,
            HttpError::Body(_) | HttpError::Decode(_) => StatusCode::BAD_REQUEST,
            // A body that arrives too slowly is answered 503, not 408: Alertmanager does not retry a 4xx.
            HttpError::Store(_)
            | HttpError::ShuttingDown
            | HttpError::SlowRequest(_)
            | HttpError::Busy
            | HttpError::StoreUnhealthy(_) => StatusCode::SERVICE_UNAVAILABLE,
            // As Prometheus answers a failed reload.
            HttpError::Reload(_) | HttpError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn response(&self) -> Resp {
        let mut body = json!({"status": "error", "error": self.to_string()});
        match self {
            HttpError::Decode(DecodeError { field: Some(field), .. }) => body["field"] = json!(field),
            HttpError::UnknownTarget { configured, .. } => body["targets"] = json!(configured),
            HttpError::Limit(limit) => body["limit"] = json!(format!("server.limits.{}", limit.key)),
            _ => {}
        }
        let mut resp = json_response(self.status(), &body);
        match self {
            HttpError::MethodNotAllowed(_) => {
                resp.headers_mut().insert(ALLOW, HeaderValue::from_static("POST"));
            }
            HttpError::Unauthorized { basic } => {
                let challenge = if *basic { "Basic realm=\"dingtalk-bridge\"" } else { "Bearer" };
                resp.headers_mut().insert(WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
            }
            _ => {}
        }
        resp
    }
}

pub fn json_response(status: StatusCode, body: &serde_json::Value) -> Resp {
    let mut resp = Response::new(Full::new(Bytes::from(body.to_string())));
    *resp.status_mut() = status;
    resp.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

pub fn text_response(status: StatusCode, body: &'static str) -> Resp {
    let mut resp = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *resp.status_mut() = status;
    resp.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    resp
}
