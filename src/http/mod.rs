//! The HTTP side: hyper 1 over HTTP/1.1 with a header-read timeout, a connection limit and graceful
//! shutdown, and the routing table. The webhook is in [`webhook`], the operator's routes in [`admin`],
//! what each error means to the caller in [`error`].

pub mod admin;
pub mod auth;
pub mod error;
pub mod webhook;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tracing::{debug, error, warn};

use crate::app::App;
use crate::metrics::UNKNOWN_TARGET;
use auth::{Access, authorized};
use error::{HttpError, Resp};

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

/// The routes.
enum Route {
    Metrics,
    Healthy,
    Ready,
    Reload,
    /// `/dingtalk/<target>/send`.
    Webhook(String),
    Unknown,
}

impl Route {
    fn of(path: &str) -> Route {
        match path {
            "/metrics" => Route::Metrics,
            "/-/healthy" => Route::Healthy,
            "/-/ready" => Route::Ready,
            "/-/reload" => Route::Reload,
            _ => match path.strip_prefix("/dingtalk/").and_then(|r| r.strip_suffix("/send")) {
                Some(target) if !target.contains('/') => Route::Webhook(target.to_string()),
                _ => Route::Unknown,
            },
        }
    }

    fn access(&self) -> Access {
        match self {
            Route::Metrics => Access::Metrics,
            Route::Healthy | Route::Ready => Access::Health,
            _ => Access::Protected,
        }
    }
}

async fn handle(app: Arc<App>, req: Request<Incoming>) -> Result<Resp, Infallible> {
    let path = req.uri().path().to_string();
    let route = Route::of(&path);
    let live = app.live();
    // The webhook's metric label: a configured target, or one bounded stand-in for anything else.
    let label = match &route {
        Route::Webhook(t) if live.config.targets.contains_key(t) => Some(t.as_str()),
        Route::Webhook(_) => Some(UNKNOWN_TARGET),
        _ => None,
    };
    let auth = &live.config.server.auth;
    let result = if !authorized(auth, route.access(), &req) {
        Err(HttpError::Unauthorized { basic: auth.basic.is_some() })
    } else {
        match &route {
            Route::Metrics => Ok(admin::metrics(&app).await),
            Route::Healthy => Ok(admin::healthy()),
            Route::Ready => Ok(admin::ready(&app).await),
            Route::Reload if req.method() == Method::POST => admin::reload(&app).await,
            Route::Reload => Err(HttpError::MethodNotAllowed(req.method().clone())),
            Route::Webhook(target) => webhook::webhook(&app, &live, target, req).await,
            Route::Unknown => Err(HttpError::NoRoute(path)),
        }
    };
    let resp = match result {
        Ok(resp) => resp,
        Err(e) => {
            if let Some(target) = label {
                match e.status() {
                    s if s.is_server_error() => error!(target, error = %e, "webhook not accepted"),
                    _ => warn!(target, error = %e, "webhook rejected"),
                }
            }
            e.response()
        }
    };
    if let Some(target) = label {
        app.metrics.webhook(target, resp.status());
    }
    Ok(resp)
}
