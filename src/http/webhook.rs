//! The intake half of an alert's path, top to bottom: HTTP request -> decode -> render -> store -> wake
//! the target's sender -> answer. Alertmanager hears 200 only once the notification is committed.

use std::sync::Arc;

use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::{CONTENT_LENGTH, CONTENT_TYPE};
use hyper::{Method, Request, StatusCode};
use serde_json::json;
use tracing::{info, warn};

use super::error::{HttpError, Resp, json_response};
use tokio::time::Instant;

use super::conns::{Conn, Conns, Pool};
use crate::app::{App, Live};
use crate::clock::now_ms;
use crate::config::ServerConfig;
use crate::decode::{self, Decoded};
use crate::metrics::Suppressed;
use crate::render::Rendered;
use crate::store::{Enqueued, NewNotification};

/// `POST /dingtalk/<target>/send`. `conn` is the connection it came on and the registry that bounds what
/// its body may hold.
pub async fn webhook(
    app: &Arc<App>,
    live: &Arc<Live>,
    (conns, conn): (&Arc<Conns>, &Conn),
    name: &str,
    req: Request<Incoming>,
) -> Result<Resp, HttpError> {
    if req.method() != Method::POST {
        return Err(HttpError::MethodNotAllowed(req.method().clone()));
    }
    let target = live.config.targets.get(name).ok_or_else(|| HttpError::UnknownTarget {
        name: name.to_string(),
        configured: live.config.targets.keys().cloned().collect(),
    })?;
    let server = &live.config.server;
    let body = read_json_body(req, server, conns, conn).await?;
    // Limits first, from the bytes alone: what decoding would cost is known before paying it.
    let shape = decode::scan(&body, &server.limits).map_err(HttpError::Limit)?;
    conn.working();
    let extra = shape.decoded_cost(body.len()).saturating_sub(body.len());
    conns
        .take(conn, Pool::Decoding, extra, server, Instant::now() + server.request_timeout)
        .await
        .map_err(|_| HttpError::Busy)?;
    if let Some(problem) = app.store.problem() {
        return Err(HttpError::StoreUnhealthy(problem));
    }
    if *app.shutdown.borrow() {
        return Err(HttpError::ShuttingDown);
    }
    // The work below goes on if the caller hangs up, so its bytes stay taken until it ends, not until the
    // connection does.
    let held = conns.detach(conn);
    // Decoding and rendering a large notification takes a while of CPU: off the async workers, so that
    // probes and other requests are answered meanwhile.
    let work = {
        let (live, target, limits) = (live.clone(), target.clone(), server.limits);
        tokio::task::spawn_blocking(move || {
            let decoded = decode::decode(&body).map_err(HttpError::Decode)?;
            drop(body);
            decode::check(&decoded.notification, &limits).map_err(HttpError::Limit)?;
            let rendered = live.renderer().render(&target, &decoded);
            Ok::<_, HttpError>((decoded, rendered, held))
        })
    };
    let (decoded, rendered, held) = work.await.map_err(|e| HttpError::Internal(e.to_string()))??;
    // Committing and waking the sender must not be cut short: hyper drops this future when the caller
    // hangs up, and a message committed without its wake-up would wait for the next notification.
    let accepting = accept(app.clone(), live.clone(), name.to_string(), decoded, rendered);
    let accept = tokio::spawn(async move {
        let answer = accepting.await;
        drop(held);
        answer
    });
    accept.await.unwrap_or_else(|e| Err(HttpError::Internal(e.to_string())))
}

/// The body of a JSON request, within `server.max_request_bytes`, in by the connection's deadline, each
/// byte taken from the registry's budget before it is kept.
async fn read_json_body(
    req: Request<Incoming>,
    server: &ServerConfig,
    conns: &Conns,
    conn: &Conn,
) -> Result<Vec<u8>, HttpError> {
    let limit = server.max_request_bytes;
    let content_type = req.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let mime = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    if mime != "application/json" {
        return Err(HttpError::UnsupportedMediaType(content_type));
    }
    let declared = req.headers().get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(HttpError::TooLarge(limit));
    }
    let deadline = conn.deadline(server.request_timeout);
    let slow = || HttpError::SlowRequest(server.request_timeout);
    // A declared length is taken whole up front and allocated once; otherwise the buffer grows as chunks
    // come, each growth taken first.
    let mut buf: Vec<u8> = Vec::new();
    if let Some(len) = declared {
        conns.take(conn, Pool::Body, len as usize, server, deadline).await.map_err(|_| HttpError::Busy)?;
        buf.reserve_exact(len as usize);
    }
    let mut body = req.into_body();
    loop {
        let frame = match tokio::time::timeout_at(deadline, body.frame()).await {
            Err(_) => return Err(slow()),
            Ok(None) => break,
            Ok(Some(frame)) => frame.map_err(|e| HttpError::Body(e.to_string()))?,
        };
        let Ok(data) = frame.into_data() else { continue };
        if buf.len() + data.len() > limit {
            return Err(HttpError::TooLarge(limit));
        }
        if buf.capacity() < buf.len() + data.len() {
            let want = (buf.capacity() * 2).max(buf.len() + data.len()).min(limit);
            conns.take(conn, Pool::Body, want - buf.capacity(), server, deadline).await.map_err(|_| HttpError::Busy)?;
            buf.reserve_exact(want - buf.len());
        }
        buf.extend_from_slice(&data);
    }
    Ok(buf)
}

/// Store -> wake the sender -> count: runs to the end even if the caller is gone.
async fn accept(
    app: Arc<App>,
    live: Arc<Live>,
    name: String,
    decoded: Decoded,
    rendered: Rendered,
) -> Result<Resp, HttpError> {
    let name = name.as_str();
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
            m.suppressed(name, Suppressed::Duplicate);
            info!(target = name, group_key = %n.group_key, status = n.status.as_str(), original, "duplicate notification suppressed");
            return Ok(json_response(
                StatusCode::OK,
                &json!({"status": "duplicate", "notification": original, "messages": []}),
            ));
        }
    };
    app.wake(name);
    m.alerts_received(name, n.firing().count(), n.resolved().count());
    if let Some(error) = &rendered.template_error {
        m.template_failed(name);
        let template = live.config.targets.get(name).map_or("", |t| t.template.as_str());
        warn!(target = name, template, %error, "template failed; rendered with the built-in template instead");
    }
    if rendered.keyword_inserted > 0 {
        m.keyword_inserted(name, rendered.keyword_inserted);
    }
    if rendered.messages.len() > 1 {
        m.split(name);
    }
    if rendered.truncated > 0 {
        m.truncated(name, rendered.truncated);
    }
    if n.truncated_alerts > 0 {
        m.alerts_truncated(name, n.truncated_alerts);
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
