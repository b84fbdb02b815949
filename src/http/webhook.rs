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
use crate::decode;
use crate::metrics::Suppressed;
use crate::route::Share;
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
    if !live.config.targets.contains_key(name) && !live.config.routes.contains_key(name) {
        return Err(HttpError::UnknownTarget {
            name: name.to_string(),
            configured: live.config.targets.keys().chain(live.config.routes.keys()).cloned().collect(),
        });
    }
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
    if app.shutdown.is_shutdown() {
        return Err(HttpError::ShuttingDown);
    }
    // The work below goes on if the caller hangs up, so its bytes stay taken until it ends, not until the
    // connection does.
    let held = conns.detach(conn);
    // Decoding and rendering a large notification takes a while of CPU: off the async workers, so that
    // probes and other requests are answered meanwhile.
    let work = {
        let (live, name, limits) = (live.clone(), name.to_string(), server.limits);
        tokio::task::spawn_blocking(move || {
            let decoded = decode::decode(&body).map_err(HttpError::Decode)?;
            drop(body);
            decode::check(&decoded.notification, &limits).map_err(HttpError::Limit)?;
            let shares = crate::route::shares(&live.config, live.renderer(), &name, decoded);
            Ok::<_, HttpError>((shares, held))
        })
    };
    let (shares, held) = work.await.map_err(|e| HttpError::Internal(e.to_string()))??;
    // Committing and waking the sender must not be cut short: hyper drops this future when the caller
    // hangs up, and a message committed without its wake-up would wait for the next notification.
    let routed = live.config.routes.contains_key(name);
    let accepting = {
        let (app, live) = (app.clone(), live.clone());
        async move {
            let mut answers = vec![];
            for share in shares {
                answers.push(accept(&app, &live, share).await?);
            }
            Ok::<_, HttpError>(answers)
        }
    };
    let accept = tokio::spawn(async move {
        let answer = accepting.await;
        drop(held);
        answer
    });
    let answers = accept.await.unwrap_or_else(|e| Err(HttpError::Internal(e.to_string())))?;
    let body = match answers.as_slice() {
        [one] if !routed => one.clone(),
        _ => json!({"status": "routed", "targets": answers}),
    };
    Ok(json_response(StatusCode::OK, &body))
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

/// A notification made inside the bridge (the console's test message) through the same path as one from
/// Alertmanager: shares, render, store, wake. Returns each share's answer.
pub(crate) async fn inject(
    app: &Arc<App>,
    name: &str,
    decoded: decode::Decoded,
) -> Result<Vec<serde_json::Value>, HttpError> {
    let live = app.live();
    let shares = crate::route::shares(&live.config, live.renderer(), name, decoded);
    let mut answers = vec![];
    for share in shares {
        answers.push(accept(app, &live, share).await?);
    }
    Ok(answers)
}

/// Store -> wake the sender -> count, for one target's share: runs to the end even if the caller is gone.
/// Returns the answer's part for this target.
async fn accept(app: &Arc<App>, live: &Arc<Live>, share: Share) -> Result<serde_json::Value, HttpError> {
    let Share { target: name, decoded, mut outcome } = share;
    // A disabled target still acknowledges (Alertmanager must not retry) and records, but queues nothing.
    if outcome.is_ok() && live.config.targets.get(&name).is_some_and(|t| !crate::deliver::enabled(&app.store, t)) {
        outcome = Err(crate::route::SkipReason::Disabled);
    }
    let name = name.as_str();
    let n = &decoded.notification;
    let now = now_ms();
    let window = live.config.delivery.dedup_window;
    let identity = (!window.is_zero()).then(|| decoded.identity());
    let no_summary;
    let (messages, summary, skipped) = match &outcome {
        Ok(r) => (r.messages.as_slice(), &r.summary, None),
        Err(reason) => {
            no_summary = crate::render::summarize(&decoded);
            (&[][..], &no_summary, Some(*reason))
        }
    };
    let new = NewNotification {
        target: name,
        group_key: &n.group_key,
        status: n.status.as_str(),
        alerts: n.alerts.len(),
        dedup: identity.as_deref().map(|key| (key, now - window.as_millis() as i64)),
        summary,
        skipped,
    };
    let m = &app.metrics;
    let id = match app.store.enqueue(new, messages, now).await? {
        Enqueued::Accepted(id) => id,
        Enqueued::Duplicate(original) => {
            // Alertmanager retrying after a timeout, or the other peer of an HA pair: acknowledge, don't resend.
            m.suppressed(name, Suppressed::Duplicate);
            info!(target = name, group_key = %n.group_key, status = n.status.as_str(), original, "duplicate notification suppressed");
            return Ok(json!({"target": name, "status": "duplicate", "notification": original, "messages": []}));
        }
    };
    let rendered = match outcome {
        Ok(rendered) => rendered,
        Err(reason) => {
            m.skipped(name, reason);
            let (why, reason) = (reason.why(), reason.as_str());
            info!(target = name, notification = id, group_key = %n.group_key, status = n.status.as_str(), alerts = n.alerts.len(), reason, "notification skipped: {why}");
            return Ok(
                json!({"target": name, "status": "skipped", "reason": reason, "notification": id, "messages": []}),
            );
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
    let heard = &rendered.mentioned;
    m.mentions(name, heard);
    if !heard.unknown.is_empty() {
        warn!(target = name, group_key = %n.group_key, names = ?heard.unknown, "alerts name people the people directory does not have; they were not rung");
    }
    if !heard.no_identifier.is_empty() {
        let service = live.config.targets.get(name).map_or("", |t| t.channel.service());
        warn!(target = name, group_key = %n.group_key, people = ?heard.no_identifier, "the people directory has no {service} identifier for these people; they were not rung");
    }
    if !heard.capped.is_empty() {
        warn!(target = name, group_key = %n.group_key, people = ?heard.capped, "more people than one message may mention; these were not rung");
    }
    let uuids: Vec<&str> = rendered.messages.iter().map(|m| m.msg_uuid.as_str()).collect();
    info!(
        target = name,
        notification = id,
        group_key = %n.group_key,
        status = n.status.as_str(),
        alerts = n.alerts.len(),
        messages = uuids.len(),
        rings = heard.rung,
        "notification accepted"
    );
    Ok(json!({"target": name, "status": "accepted", "notification": id, "messages": uuids}))
}
