//! The operator's routes: metrics (with queue gauges read at scrape time), liveness, readiness, reload.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Response, StatusCode};
use tracing::error;

use super::error::{HttpError, Resp, text_response};
use crate::app::App;
use crate::clock::now_ms;

pub async fn metrics(app: &App) -> Resp {
    match app.store.queue_stats().await {
        Ok(stats) => {
            let now = now_ms();
            for (name, target) in &app.live().config.targets {
                app.metrics.queue(name, 0, 0);
                app.metrics.target_enabled(name, crate::deliver::enabled(&app.store, target));
            }
            // Targets removed from the config still show their queued messages.
            for s in stats {
                app.metrics.queue(&s.target, s.depth, (now - s.oldest_created_ms).max(0) / 1000);
            }
        }
        Err(e) => error!(error = %e, "cannot read queue statistics"),
    }
    let mut resp = Response::new(Full::new(Bytes::from(app.metrics.encode())));
    resp.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"));
    resp
}

pub fn healthy() -> Resp {
    text_response(StatusCode::OK, "OK\n")
}

pub async fn ready(app: &App) -> Resp {
    let stopping = app.shutdown.is_shutdown();
    let ok = !stopping && app.store.problem().is_none() && app.store.ping().await.is_ok();
    app.metrics.set_ready(ok);
    if ok {
        text_response(StatusCode::OK, "ready\n")
    } else {
        text_response(StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
    }
}

/// `POST /-/reload`. On failure the old configuration keeps serving and the caller learns why.
pub async fn reload(app: &Arc<App>) -> Result<Resp, HttpError> {
    app.reload().await?;
    Ok(text_response(StatusCode::OK, "reloaded\n"))
}
