//! The HTTP side: hyper 1 over HTTP/1.1 with graceful shutdown, connections kept fair by [`conns`]
//! (deadlines, per-client and total limits, bounded request bytes), and the routing table. The webhook is in [`webhook`], the operator's routes in [`admin`],
//! what each error means to the caller in [`error`].

pub mod admin;
pub mod auth;
pub mod conns;
pub mod console;
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
use tracing::{debug, error, warn};

use crate::app::App;
use crate::metrics::UNKNOWN_TARGET;
use auth::{Access, authorized};
use conns::{Conn, Conns, Watched};
use error::{HttpError, Resp};

/// Accepts connections until `shutdown` turns true, then lets in-flight requests finish (bounded by the
/// grace period).
pub async fn serve(listener: TcpListener, app: Arc<App>, mut shutdown: crate::shutdown::Shutdown) {
    let graceful = GracefulShutdown::new();
    let conns = Arc::new(Conns::default());
    let sweeper = tokio::spawn(sweep(app.clone(), conns.clone()));
    loop {
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
            _ = shutdown.recv() => break,
        };
        let live = app.live();
        let server = &live.config.server;
        // Every connection that could make room is being answered: this one is closed at once.
        let Some(conn) = conns.open(peer.ip(), server) else { continue };
        let _ = stream.set_nodelay(true);
        let io = TokioIo::new(Watched { inner: stream, conn: conn.clone() });
        let service = {
            let (app, conns, conn) = (app.clone(), conns.clone(), conn.clone());
            service_fn(move |req| handle(app.clone(), conns.clone(), conn.clone(), req))
        };
        let http = http1::Builder::new()
            // Without a timer hyper silently ignores the header-read timeout.
            .timer(TokioTimer::new())
            .header_read_timeout(server.header_read_timeout.min(server.request_timeout))
            // hyper's read buffer grows to about 400 KB per connection by default: with a thousand
            // connections that alone would pass the memory limit. 16 KiB holds any honest request's
            // headers; bodies pass through it in chunks.
            .max_buf_size(READ_BUFFER)
            .serve_connection(io, service);
        let http = graceful.watch(http);
        let conns = conns.clone();
        tokio::spawn(async move {
            tokio::select! {
                r = http => if let Err(e) = r {
                    debug!(%peer, error = %e, "connection ended with an error");
                },
                // Closed by the registry: dropping the connection closes the socket.
                _ = conn.close.notified() => debug!(%peer, "connection closed by the server"),
            }
            conns.ended(&conn);
        });
        // Let the connections just accepted read their requests before more are let in: a client that
        // opens connections as fast as it can must not starve them (and so have them closed to make room
        // before their first byte is read).
        tokio::task::yield_now().await;
    }
    drop(listener);
    let grace = app.live().config.server.shutdown_grace;
    tokio::select! {
        _ = graceful.shutdown() => debug!("all connections closed"),
        _ = tokio::time::sleep(grace) => warn!(?grace, "connections still open after the shutdown grace period; closing them"),
    }
    sweeper.abort();
}

/// The most a connection's read buffer holds.
const READ_BUFFER: usize = 16 * 1024;

/// How often deadlines are checked.
const SWEEP_EVERY: Duration = Duration::from_millis(200);
/// At most one log line per this long about connections the server closed.
const REPORT_EVERY: Duration = Duration::from_secs(10);

/// Closes connections past their deadlines, keeps the metrics current, and says in the log (at most every
/// ten seconds) when the server had to close connections to keep answering.
async fn sweep(app: Arc<App>, conns: Arc<Conns>) {
    let mut closed = [0u64; 4];
    let mut last_report: Option<tokio::time::Instant> = None;
    loop {
        tokio::time::sleep(SWEEP_EVERY).await;
        let report = conns.sweep(&app.live().config.server);
        app.metrics.connections(report.open, report.bytes);
        for why in conns::Closed::ALL {
            app.metrics.connections_closed(why, report.closed[why as usize]);
        }
        for (sum, n) in closed.iter_mut().zip(report.closed) {
            *sum += n;
        }
        if closed.iter().any(|&n| n > 0) && last_report.is_none_or(|at| at.elapsed() >= REPORT_EVERY) {
            let [request_timeout, idle_timeout, evicted, refused] = closed;
            let (busiest, busiest_connections) =
                report.busiest.map_or((String::new(), 0), |(ip, n)| (ip.to_string(), n));
            warn!(
                request_timeout,
                idle_timeout,
                evicted,
                refused,
                open = report.open,
                busiest,
                busiest_connections,
                "closed connections to keep the server answering (slow, idle or too many; see server.request_timeout, idle_timeout, max_connections_per_client)"
            );
            closed = [0; 4];
            last_report = Some(tokio::time::Instant::now());
        }
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
    /// `/console...` and `/api/v1/...`: the console's own users, not the receiver's credentials.
    Console,
    Unknown,
}

impl Route {
    fn of(path: &str) -> Route {
        match path {
            "/metrics" => Route::Metrics,
            "/-/healthy" => Route::Healthy,
            "/-/ready" => Route::Ready,
            "/-/reload" => Route::Reload,
            "/console" => Route::Console,
            p if p.starts_with("/console/") || p.starts_with("/api/v1/") => Route::Console,
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
            Route::Console => Access::Console,
            _ => Access::Protected,
        }
    }
}

async fn handle(app: Arc<App>, conns: Arc<Conns>, conn: Arc<Conn>, req: Request<Incoming>) -> Result<Resp, Infallible> {
    conn.reading();
    let resp = route(&app, &conns, &conn, req).await;
    conns.release(&conn);
    conn.idle();
    Ok(resp)
}

async fn route(app: &Arc<App>, conns: &Arc<Conns>, conn: &Conn, req: Request<Incoming>) -> Resp {
    let path = req.uri().path().to_string();
    let route = Route::of(&path);
    let live = app.live();
    // The webhook's metric label: a configured target, or one bounded stand-in for anything else.
    let label = match &route {
        Route::Webhook(t) if live.config.targets.contains_key(t) => Some(t.as_str()),
        Route::Webhook(_) => Some(UNKNOWN_TARGET),
        _ => None,
    };
    if !matches!(route, Route::Webhook(_)) {
        conn.working();
    }
    let auth = &live.config.server.auth;
    let result = if !authorized(auth, route.access(), &req) {
        Err(HttpError::Unauthorized { basic: auth.basic.is_some() })
    } else {
        match &route {
            Route::Metrics => Ok(admin::metrics(app).await),
            Route::Healthy => Ok(admin::healthy()),
            Route::Ready => Ok(admin::ready(app).await),
            Route::Reload if req.method() == Method::POST => admin::reload(app).await,
            Route::Reload => Err(HttpError::MethodNotAllowed(req.method().clone())),
            Route::Webhook(target) => webhook::webhook(app, &live, (conns, conn), target, req).await,
            Route::Console => Ok(console::handle(app, &path, req).await),
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
    resp
}
