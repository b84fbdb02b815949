//! The HTTP side: hyper 1 over HTTP/1.1 with a header-read timeout, a connection limit and graceful
//! shutdown; routes for the webhook, metrics and probes; and the one function that decides which HTTP
//! status an error means to Alertmanager (which retries 5xx only).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::header::{ALLOW, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, HeaderValue, WWW_AUTHENTICATE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tracing::{debug, error, info, warn};

use base64::Engine;

use crate::config::Auth;
use crate::decode::{self, DecodeError};
use crate::metrics::{SUPPRESSED_DUPLICATE, UNKNOWN_TARGET};
use crate::send::now_ms;
use crate::store::{Enqueued, NewNotification, StoreError};
use crate::{App, Live};

type Resp = Response<Full<Bytes>>;

/// Why a webhook request was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("method {0} not allowed; use POST")]
    MethodNotAllowed(Method),
    #[error("unknown target {0:?}")]
    UnknownTarget(String),
    #[error("content type {0:?} is not supported; send application/json")]
    UnsupportedMediaType(String),
    #[error("request body exceeds {0} bytes (server.max_request_bytes)")]
    TooLarge(usize),
    #[error("cannot read request body: {0}")]
    Body(String),
    #[error("{0}")]
    Decode(DecodeError),
    #[error("cannot store the notification, retry later: {0}")]
    Store(#[from] StoreError),
    #[error("shutting down, retry later")]
    ShuttingDown,
    #[error("internal error, retry later: {0}")]
    Internal(String),
}

impl WebhookError {
    /// What each error means to the caller. Only trouble on our side is 5xx, so Alertmanager retries
    /// exactly what a retry can fix; never 429, which it does not retry.
    fn status(&self) -> StatusCode {
        match self {
            WebhookError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            WebhookError::UnknownTarget(_) => StatusCode::NOT_FOUND,
            WebhookError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            WebhookError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            WebhookError::Body(_) | WebhookError::Decode(_) => StatusCode::BAD_REQUEST,
            WebhookError::Store(_) | WebhookError::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
            WebhookError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn response(&self, live: &Live) -> Resp {
        let mut body = json!({"status": "error", "error": self.to_string()});
        match self {
            WebhookError::Decode(DecodeError { field: Some(field), .. }) => body["field"] = json!(field),
            WebhookError::UnknownTarget(_) => body["targets"] = json!(live.config.targets.keys().collect::<Vec<_>>()),
            _ => {}
        }
        let mut resp = json_response(self.status(), &body);
        if let WebhookError::MethodNotAllowed(_) = self {
            resp.headers_mut().insert(ALLOW, HeaderValue::from_static("POST"));
        }
        resp
    }
}

fn json_response(status: StatusCode, body: &serde_json::Value) -> Resp {
    let mut resp = Response::new(Full::new(Bytes::from(body.to_string())));
    *resp.status_mut() = status;
    resp.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

fn text_response(status: StatusCode, body: &'static str) -> Resp {
    let mut resp = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *resp.status_mut() = status;
    resp.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    resp
}

/// Accepts connections until `shutdown` turns true, then lets in-flight requests finish (bounded by the
/// grace period).
pub async fn serve(listener: TcpListener, app: Arc<App>, mut shutdown: watch::Receiver<bool>) {
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(app.live().config.server.max_connections));
    loop {
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => p.expect("semaphore never closed"),
            _ = crate::stopped(&mut shutdown) => break,
        };
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(conn) => conn,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = crate::stopped(&mut shutdown) => break,
        };
        let _ = stream.set_nodelay(true);
        let header_timeout = app.live().config.server.header_read_timeout;
        let app = app.clone();
        let conn = http1::Builder::new()
            // Without a timer hyper silently ignores the header-read timeout.
            .timer(TokioTimer::new())
            .header_read_timeout(header_timeout)
            .serve_connection(TokioIo::new(stream), service_fn(move |req| handle(app.clone(), req)));
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                debug!(%peer, error = %e, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    let grace = app.live().config.server.shutdown_grace;
    tokio::select! {
        _ = graceful.shutdown() => debug!("all connections closed"),
        _ = tokio::time::sleep(grace) => warn!(?grace, "connections still open after the shutdown grace period; closing them"),
    }
}

/// Which credentials a route needs.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Access {
    /// Notifications and admin actions: whenever auth is configured.
    Protected,
    Metrics,
    Health,
}

async fn handle(app: Arc<App>, req: Request<Incoming>) -> Result<Resp, Infallible> {
    let path = req.uri().path().to_string();
    let live = app.live();
    let webhook_target = path
        .strip_prefix("/dingtalk/")
        .and_then(|r| r.strip_suffix("/send"))
        .filter(|t| !t.contains('/'))
        .map(str::to_string);
    let access = match path.as_str() {
        "/metrics" => Access::Metrics,
        "/-/healthy" | "/-/ready" => Access::Health,
        _ => Access::Protected,
    };
    if !authorized(&live.config.server.auth, access, &req) {
        if let Some(target) = &webhook_target {
            let label = if live.config.targets.contains_key(target) { target.as_str() } else { UNKNOWN_TARGET };
            app.metrics.webhook_requests.with_label_values(&[label, "401"]).inc();
            warn!(target = label, "webhook rejected: missing or wrong credentials");
        }
        return Ok(unauthorized(&live.config.server.auth));
    }
    let resp = match (path.as_str(), webhook_target) {
        ("/metrics", _) => metrics(&app).await,
        ("/-/healthy", _) => text_response(StatusCode::OK, "OK\n"),
        ("/-/ready", _) => ready(&app).await,
        ("/-/reload", _) if req.method() == Method::POST => match app.reload().await {
            Ok(()) => text_response(StatusCode::OK, "reloaded\n"),
            // As Prometheus does: the old configuration keeps serving, the caller learns why.
            Err(e) => json_response(StatusCode::INTERNAL_SERVER_ERROR, &json!({"status": "error", "error": e})),
        },
        ("/-/reload", _) => WebhookError::MethodNotAllowed(req.method().clone()).response(&live),
        (_, Some(target)) => {
            let result = webhook(&app, &live, &target, req).await;
            let label = if live.config.targets.contains_key(&target) { target.as_str() } else { UNKNOWN_TARGET };
            let resp = match result {
                Ok(resp) => resp,
                Err(e) => {
                    match e.status() {
                        s if s.is_server_error() => error!(target = label, error = %e, "webhook not accepted"),
                        _ => warn!(target = label, error = %e, "webhook rejected"),
                    }
                    e.response(&live)
                }
            };
            app.metrics.webhook_requests.with_label_values(&[label, resp.status().as_str()]).inc();
            resp
        }
        (p, None) => json_response(
            StatusCode::NOT_FOUND,
            &json!({"status": "error", "error": format!("no such endpoint {p}; notifications go to POST /dingtalk/<target>/send")}),
        ),
    };
    Ok(resp)
}

/// Whether the request carries the configured credentials (bearer token or basic auth), compared in
/// constant time.
fn authorized(auth: &Auth, access: Access, req: &Request<Incoming>) -> bool {
    let required = auth.enabled()
        && match access {
            Access::Protected => true,
            Access::Metrics => auth.protect_metrics,
            Access::Health => auth.protect_health,
        };
    if !required {
        return true;
    }
    let Some(header) = req.headers().get(AUTHORIZATION).and_then(|v| v.to_str().ok()) else { return false };
    let (scheme, value) = header.split_once(' ').unwrap_or((header, ""));
    let value = value.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        return auth.bearer_token.as_ref().is_some_and(|t| constant_time_eq(value.as_bytes(), t.expose().as_bytes()));
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let Some((user, password)) = auth.basic.as_ref() else { return false };
        let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(value) else { return false };
        let expected = format!("{user}:{}", password.expose());
        return constant_time_eq(&decoded, expected.as_bytes());
    }
    false
}

/// Equality whose time does not depend on where the inputs differ (nor, via hashing, on their lengths).
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use sha2::{Digest, Sha256};
    let (ha, hb) = (Sha256::digest(a), Sha256::digest(b));
    ha.iter().zip(hb.iter()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn unauthorized(auth: &Auth) -> Resp {
    let mut resp =
        json_response(StatusCode::UNAUTHORIZED, &json!({"status": "error", "error": "missing or wrong credentials"}));
    let challenge = if auth.basic.is_some() { "Basic realm=\"dingtalk-bridge\"" } else { "Bearer" };
    resp.headers_mut().insert(WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
    resp
}

async fn metrics(app: &App) -> Resp {
    match app.store.queue_stats().await {
        Ok(stats) => {
            let now = now_ms();
            for name in app.live().config.targets.keys() {
                app.metrics.queue_depth.with_label_values(&[name]).set(0);
                app.metrics.queue_oldest_age.with_label_values(&[name]).set(0);
            }
            // Targets removed from the config still show their queued messages.
            for s in stats {
                app.metrics.queue_depth.with_label_values(&[&s.target]).set(s.depth);
                app.metrics
                    .queue_oldest_age
                    .with_label_values(&[&s.target])
                    .set((now - s.oldest_created_ms).max(0) / 1000);
            }
        }
        Err(e) => error!(error = %e, "cannot read queue statistics"),
    }
    let mut resp = Response::new(Full::new(Bytes::from(app.metrics.encode())));
    resp.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"));
    resp
}

async fn ready(app: &App) -> Resp {
    let stopping = *app.shutdown.borrow();
    let ok = !stopping && app.store.ping().await.is_ok();
    app.metrics.ready.set(i64::from(ok));
    if ok {
        text_response(StatusCode::OK, "ready\n")
    } else {
        text_response(StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
    }
}

/// Receive -> decode -> render -> store; the sender takes it from there.
async fn webhook(app: &Arc<App>, live: &Arc<Live>, name: &str, req: Request<Incoming>) -> Result<Resp, WebhookError> {
    if req.method() != Method::POST {
        return Err(WebhookError::MethodNotAllowed(req.method().clone()));
    }
    let target = live.config.targets.get(name).ok_or_else(|| WebhookError::UnknownTarget(name.to_string()))?;
    let content_type = req.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let mime = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    if mime != "application/json" {
        return Err(WebhookError::UnsupportedMediaType(content_type));
    }
    let limit = live.config.server.max_request_bytes;
    let declared = req.headers().get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(WebhookError::TooLarge(limit));
    }
    let body = Limited::new(req.into_body(), limit).collect().await.map_err(|e| {
        if e.downcast_ref::<LengthLimitError>().is_some() {
            WebhookError::TooLarge(limit)
        } else {
            WebhookError::Body(e.to_string())
        }
    })?;
    let decoded = decode::decode(&body.to_bytes()).map_err(WebhookError::Decode)?;
    if *app.shutdown.borrow() {
        return Err(WebhookError::ShuttingDown);
    }
    let rendered = live.renderer.render(target, &decoded);
    // Committing and waking the sender must not be cut short: hyper drops this future when the caller
    // hangs up, and a message committed without its wake-up would wait for the next notification.
    let accept = tokio::spawn(accept(app.clone(), live.clone(), name.to_string(), decoded, rendered));
    match accept.await {
        Ok(result) => result,
        Err(e) => Err(WebhookError::Internal(e.to_string())),
    }
}

/// Store -> wake the sender -> count: runs to the end even if the caller is gone.
async fn accept(
    app: Arc<App>,
    live: Arc<Live>,
    name: String,
    decoded: decode::Decoded,
    rendered: crate::render::Rendered,
) -> Result<Resp, WebhookError> {
    let name = name.as_str();
    let target = live.config.targets.get(name).ok_or_else(|| WebhookError::UnknownTarget(name.to_string()))?;
    let n = &decoded.notification;
    let now = now_ms();
    let window = live.config.delivery.dedup_window;
    let identity = (!window.is_zero()).then(|| decoded.identity());
    let new = NewNotification {
        target: name,
        group_key: &n.group_key,
        status: n.status.as_str(),
        alerts: n.alerts.len(),
        dedup: identity.as_deref().map(|key| (key, now - window.as_millis() as i64)),
        summary: &rendered.summary,
    };
    let m = &app.metrics;
    let id = match app.store.enqueue(new, &rendered.messages, now).await? {
        Enqueued::Accepted(id) => id,
        Enqueued::Duplicate(original) => {
            // Alertmanager retrying after a timeout, or the other peer of an HA pair: acknowledge, don't resend.
            m.suppressed.with_label_values(&[name, SUPPRESSED_DUPLICATE]).inc();
            info!(target = name, group_key = %n.group_key, status = n.status.as_str(), original, "duplicate notification suppressed");
            return Ok(json_response(
                StatusCode::OK,
                &json!({"status": "duplicate", "notification": original, "messages": []}),
            ));
        }
    };
    app.wake(name);
    m.alerts_received.with_label_values(&[name, "firing"]).inc_by(n.firing().count() as u64);
    m.alerts_received.with_label_values(&[name, "resolved"]).inc_by(n.resolved().count() as u64);
    if let Some(error) = &rendered.template_error {
        m.template_failures.with_label_values(&[name]).inc();
        warn!(target = name, template = %target.template, %error, "template failed; rendered with the built-in template instead");
    }
    if rendered.keyword_inserted > 0 {
        m.keyword_inserted.with_label_values(&[name]).inc_by(rendered.keyword_inserted as u64);
    }
    if rendered.messages.len() > 1 {
        m.messages_split.with_label_values(&[name]).inc();
    }
    if rendered.truncated > 0 {
        m.messages_truncated.with_label_values(&[name]).inc_by(rendered.truncated as u64);
    }
    if n.truncated_alerts > 0 {
        m.alerts_truncated.with_label_values(&[name]).inc_by(n.truncated_alerts);
    }
    let uuids: Vec<&str> = rendered.messages.iter().map(|m| m.msg_uuid.as_str()).collect();
    info!(
        target = name,
        notification = id,
        group_key = %n.group_key,
        status = n.status.as_str(),
        alerts = n.alerts.len(),
        messages = uuids.len(),
        "notification accepted"
    );
    Ok(json_response(StatusCode::OK, &json!({"status": "accepted", "notification": id, "messages": uuids})))
}
