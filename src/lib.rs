//! dingtalk-bridge: carries Prometheus Alertmanager notifications into DingTalk robots.
//!
//! The path of one alert, one module per step: [`receive`] (HTTP) -> [`decode`] (payload) -> [`render`]
//! (templates, keyword, mentions, size) -> [`store`] (durable outbox) -> [`send`] (rate budget, signing,
//! retries) -> [`metrics`]. [`run`] wires them together; `main` only parses arguments and calls it.
#![forbid(unsafe_code)]

pub mod cli;
pub mod config;
pub mod decode;
pub mod dingtalk;
pub mod metrics;
pub mod receive;
pub mod render;
pub mod secret;
pub mod send;
pub mod store;
pub mod telemetry;

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};
use tracing::{error, info, warn};

use crate::config::{Config, Endpoint};
use crate::metrics::Metrics;
use crate::render::Renderer;
use crate::send::{Delivery, Robot};
use crate::store::Store;

/// How often finished messages older than `storage.retention` are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// Why the bridge could not start.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("templates:\n{}", .0.iter().map(|e| format!("  {e}")).collect::<Vec<_>>().join("\n"))]
    Templates(Vec<render::TemplateError>),
    #[error("{0}")]
    Config(String),
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
}

/// What request handlers share.
pub struct App {
    pub config: Config,
    pub renderer: Arc<Renderer>,
    pub store: Store,
    pub metrics: Arc<Metrics>,
    /// Wakes a target's sender when a message for it is committed.
    pub wakers: HashMap<String, Arc<Notify>>,
    pub shutdown: watch::Receiver<bool>,
}

/// Builds the renderer and checks every target names a template set that exists.
pub fn load_templates(config: &Config) -> Result<Renderer, RunError> {
    let renderer = Renderer::new(config.templates_dir.as_deref(), config.timezone, config.delivery.max_message_bytes)
        .map_err(RunError::Templates)?;
    let missing: Vec<String> = config
        .targets
        .values()
        .filter(|t| !renderer.has_set(&t.template))
        .map(|t| {
            let sets: Vec<&str> = renderer.sets().collect();
            format!(
                "{}: targets.{}.template: no template set {:?}; available: {}",
                config.source.display(),
                t.name,
                t.template,
                sets.join(", ")
            )
        })
        .collect();
    if missing.is_empty() { Ok(renderer) } else { Err(RunError::Config(missing.join("\n"))) }
}

/// Runs the bridge on `listener` until `shutdown` completes, then drains: stops accepting, lets in-flight
/// requests and sends finish within `server.shutdown_grace`, and leaves undelivered messages in the store.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RunError> {
    for w in &config.warnings {
        warn!("{w}");
    }
    let renderer = load_templates(&config)?;
    for t in config.targets.values() {
        let endpoint = match &t.endpoint {
            Endpoint::Robot(url) => secret::redact_url(url.expose()),
            Endpoint::DryRun => "dry run (bodies are logged, not sent)".to_string(),
        };
        info!(
            target = %t.name,
            %endpoint,
            signed = t.secret.is_some(),
            keyword = t.keyword.as_deref().unwrap_or(""),
            template = %t.template,
            msgtype = t.msgtype.as_str(),
            "target configured"
        );
    }
    let store = Store::open(&config.storage.path, config.storage.sync)?;
    let metrics = Arc::new(Metrics::new());
    let client = send::http_client(&config.delivery).map_err(|e| RunError::Client(e.to_string()))?;
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        info!("shutting down: no new connections; draining requests and sends");
        let _ = shutdown_tx.send(true);
    });

    for s in store.queue_stats().await? {
        if !config.targets.contains_key(&s.target) {
            warn!(target = %s.target, queued = s.depth, "messages are queued for a target that is no longer configured; they stay in the store until it is configured again");
        } else {
            info!(target = %s.target, queued = s.depth, "resuming delivery of queued messages");
        }
    }

    let renderer = Arc::new(renderer);
    let delivery = Arc::new(Delivery {
        client,
        store: store.clone(),
        metrics: metrics.clone(),
        renderer: renderer.clone(),
        cfg: config.delivery.clone(),
        shutdown_grace: config.server.shutdown_grace,
    });
    // Targets that post to the same robot share its budget, which survives restarts.
    let mut robots: HashMap<String, Arc<Robot>> = HashMap::new();
    let mut wakers = HashMap::new();
    let mut senders = Vec::new();
    for target in config.targets.values() {
        metrics.init_target(&target.name);
        let key = send::robot_key(target);
        let robot = match robots.get(&key) {
            Some(robot) => robot.clone(),
            None => {
                let now = send::now_ms();
                let since = now - target.rate_limit.per.as_millis() as i64;
                let (sends, pause) = store.robot_state(&key, since, now).await?;
                if let Some(until) = pause {
                    warn!(target = %target.name, remaining_s = (until - now) / 1000, "the robot is still paused after DingTalk throttled it");
                }
                let robot = Arc::new(Robot::restore(key.clone(), target.rate_limit, &sends, pause, now));
                robots.insert(key, robot.clone());
                robot
            }
        };
        let wake = Arc::new(Notify::new());
        wakers.insert(target.name.clone(), wake.clone());
        senders.push(tokio::spawn(send::run_sender(
            Arc::new(target.clone()),
            robot,
            delivery.clone(),
            wake,
            shutdown_rx.clone(),
        )));
    }
    let pruner = tokio::spawn(prune_loop(store.clone(), config.storage.retention, shutdown_rx.clone()));

    let addr = listener.local_addr().map(|a| a.to_string()).unwrap_or_default();
    let app = Arc::new(App { config, renderer, store, metrics, wakers, shutdown: shutdown_rx });
    app.metrics.ready.set(1);
    info!(address = %addr, targets = app.config.targets.len(), version = env!("CARGO_PKG_VERSION"), "listening");
    receive::serve(listener, app.clone(), app.shutdown.clone()).await;
    app.metrics.ready.set(0);

    // Senders stop on the same signal; an in-flight send has the grace period, then is abandoned.
    let grace = app.config.server.shutdown_grace + Duration::from_secs(1);
    let all = futures_join(senders);
    if tokio::time::timeout(grace, all).await.is_err() {
        error!("senders did not stop within the grace period");
    }
    pruner.abort();
    info!("stopped");
    Ok(())
}

/// Completes once shutdown has begun.
pub(crate) async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    // The guard `wait_for` returns must not live across an await (it is not Send).
    let _ = shutdown.wait_for(|&s| s).await.map(|_| ());
}

async fn futures_join(handles: Vec<tokio::task::JoinHandle<()>>) {
    for h in handles {
        let _ = h.await;
    }
}

async fn prune_loop(store: Store, retention: Duration, mut shutdown: watch::Receiver<bool>) {
    loop {
        let before = send::now_ms() - retention.as_millis() as i64;
        match store.prune(before).await {
            Ok(0) => {}
            Ok(n) => info!(pruned = n, "pruned finished messages past storage.retention"),
            Err(e) => error!(error = %e, "cannot prune old messages"),
        }
        tokio::select! {
            _ = tokio::time::sleep(PRUNE_EVERY) => {}
            _ = crate::stopped(&mut shutdown) => return,
        }
    }
}
