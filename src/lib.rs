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
use std::sync::{Arc, Mutex, RwLock};
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

/// What can change on reload: the configuration and everything built from it.
pub struct Live {
    pub config: Config,
    pub renderer: Arc<Renderer>,
    pub delivery: Arc<Delivery>,
}

struct Running {
    stop: watch::Sender<bool>,
    handle: tokio::task::JoinHandle<()>,
}

/// What request handlers and senders share. The store, metrics and robots' rate budgets outlive reloads.
pub struct App {
    live: RwLock<Arc<Live>>,
    pub store: Store,
    pub metrics: Arc<Metrics>,
    pub shutdown: watch::Receiver<bool>,
    /// Wakes a target's sender when a message for it is committed.
    wakers: RwLock<HashMap<String, Arc<Notify>>>,
    robots: Mutex<HashMap<String, Arc<Robot>>>,
    senders: tokio::sync::Mutex<HashMap<String, Running>>,
    /// One reload (or shutdown of senders) at a time.
    reloading: tokio::sync::Mutex<()>,
}

impl App {
    /// The configuration in force now.
    pub fn live(&self) -> Arc<Live> {
        self.live.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn wake(&self, target: &str) {
        if let Some(w) = self.wakers.read().unwrap_or_else(|e| e.into_inner()).get(target) {
            w.notify_one();
        }
    }

    /// Validates a configuration and builds what it needs, touching nothing that runs.
    fn prepare(config: Config, store: &Store, metrics: &Arc<Metrics>) -> Result<Live, RunError> {
        let renderer = Arc::new(load_templates(&config)?);
        let client = send::http_client(&config.delivery).map_err(|e| RunError::Client(e.to_string()))?;
        let delivery = Arc::new(Delivery {
            client,
            store: store.clone(),
            metrics: metrics.clone(),
            renderer: renderer.clone(),
            cfg: config.delivery.clone(),
            shutdown_grace: config.server.shutdown_grace,
        });
        Ok(Live { config, renderer, delivery })
    }

    /// Starts a sender per target of `live`. Targets that post to the same robot share its budget, which
    /// survives restarts (from the store) and reloads (kept here).
    async fn start_senders(&self, live: &Live) -> Result<(), RunError> {
        let mut senders = self.senders.lock().await;
        for target in live.config.targets.values() {
            self.metrics.init_target(&target.name);
            let key = send::robot_key(target);
            let known = self.robots.lock().unwrap_or_else(|e| e.into_inner()).get(&key).cloned();
            let robot = match known {
                Some(robot) => {
                    robot.set_limit(target.rate_limit);
                    robot
                }
                None => {
                    let now = send::now_ms();
                    let since = now - target.rate_limit.per.as_millis() as i64;
                    let (sends, pause) = self.store.robot_state(&key, since, now).await?;
                    if let Some(until) = pause {
                        warn!(target = %target.name, remaining_s = (until - now) / 1000, "the robot is still paused after DingTalk throttled it");
                    }
                    let robot = Arc::new(Robot::restore(key.clone(), target.rate_limit, &sends, pause, now));
                    self.robots.lock().unwrap_or_else(|e| e.into_inner()).insert(key, robot.clone());
                    robot
                }
            };
            let wake = self
                .wakers
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .entry(target.name.clone())
                .or_insert_with(|| Arc::new(Notify::new()))
                .clone();
            // Whatever arrived while no sender ran is picked up at once.
            wake.notify_one();
            let (stop, stop_rx) = watch::channel(false);
            let handle =
                tokio::spawn(send::run_sender(Arc::new(target.clone()), robot, live.delivery.clone(), wake, stop_rx));
            senders.insert(target.name.clone(), Running { stop, handle });
        }
        Ok(())
    }

    /// Stops every sender: an attempt in flight gets the shutdown grace period, then is abandoned (the
    /// message stays queued, in doubt, and is resent with its msgUuid).
    async fn stop_senders(&self) {
        let running: Vec<Running> = self.senders.lock().await.drain().map(|(_, r)| r).collect();
        for r in &running {
            let _ = r.stop.send(true);
        }
        let bound = self.live().config.server.shutdown_grace + Duration::from_secs(1);
        let all = async {
            for r in running {
                let _ = r.handle.await;
            }
        };
        if tokio::time::timeout(bound, all).await.is_err() {
            error!("senders did not stop within the grace period");
        }
    }

    /// Re-reads the configuration file and templates and switches to them atomically; on any error the
    /// old configuration keeps serving. Settings bound at start (listen address, storage, connection
    /// limit) keep their old values until a restart.
    pub async fn reload(&self) -> Result<(), String> {
        let _one = self.reloading.lock().await;
        if *self.shutdown.borrow() {
            return Err("shutting down".into());
        }
        let old = self.live();
        let prepared = Config::load(&old.config.source).map_err(|e| e.to_string()).and_then(|mut config| {
            let (o, n) = (&old.config, &mut config);
            if n.listen != o.listen || n.storage.path != o.storage.path || n.storage.sync != o.storage.sync
                || n.server.max_connections != o.server.max_connections
            {
                warn!("listen, storage and server.max_connections take effect at the next restart; keeping the running values");
                n.listen = o.listen;
                n.storage = o.storage.clone();
                n.server.max_connections = o.server.max_connections;
            }
            App::prepare(config, &self.store, &self.metrics).map_err(|e| e.to_string())
        });
        let live = match prepared {
            Ok(live) => live,
            Err(e) => {
                self.metrics.reload_successful.set(0);
                error!(error = %e, "reload failed; the previous configuration keeps serving");
                return Err(e);
            }
        };
        for w in &live.config.warnings {
            warn!("{w}");
        }
        self.stop_senders().await;
        let live = Arc::new(live);
        *self.live.write().unwrap_or_else(|e| e.into_inner()) = live.clone();
        if let Err(e) = self.start_senders(&live).await {
            // The store failed under us; senders come back with the next reload or restart.
            error!(error = %e, "cannot start senders after reload");
            self.metrics.reload_successful.set(0);
            return Err(e.to_string());
        }
        self.report_orphans().await;
        self.metrics.reload_successful.set(1);
        self.metrics.reload_timestamp.set(chrono::Utc::now().timestamp());
        log_targets(&live.config);
        info!(targets = live.config.targets.len(), "configuration reloaded");
        Ok(())
    }

    /// Queued messages for targets the configuration no longer has stay in the store; say so.
    async fn report_orphans(&self) {
        let live = self.live();
        match self.store.queue_stats().await {
            Ok(stats) => {
                for s in stats.iter().filter(|s| !live.config.targets.contains_key(&s.target)) {
                    warn!(target = %s.target, queued = s.depth, "messages are queued for a target that is no longer configured; they stay in the store until it is configured again");
                }
            }
            Err(e) => error!(error = %e, "cannot read queue statistics"),
        }
    }
}

fn log_targets(config: &Config) {
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
    run_with_reload(config, listener, shutdown, None).await
}

/// [`run`], also reloading the configuration each time `reload` receives (the binary wires it to SIGHUP).
pub async fn run_with_reload(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
    reload: Option<tokio::sync::mpsc::Receiver<()>>,
) -> Result<(), RunError> {
    for w in &config.warnings {
        warn!("{w}");
    }
    let store = Store::open(&config.storage.path, config.storage.sync)?;
    let metrics = Arc::new(Metrics::new());
    let live = Arc::new(App::prepare(config, &store, &metrics)?);
    log_targets(&live.config);
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let app = Arc::new(App {
        live: RwLock::new(live.clone()),
        store: store.clone(),
        metrics,
        shutdown: shutdown_rx.clone(),
        wakers: RwLock::new(HashMap::new()),
        robots: Mutex::new(HashMap::new()),
        senders: tokio::sync::Mutex::new(HashMap::new()),
        reloading: tokio::sync::Mutex::new(()),
    });
    app.report_orphans().await;
    app.start_senders(&live).await?;
    app.metrics.reload_successful.set(1);
    app.metrics.reload_timestamp.set(chrono::Utc::now().timestamp());

    // On shutdown the senders stop alongside the HTTP drain, each with the same grace period.
    let stopper = tokio::spawn({
        let app = app.clone();
        let mut rx = shutdown_rx.clone();
        async move {
            stopped(&mut rx).await;
            let _one = app.reloading.lock().await;
            app.stop_senders().await;
        }
    });
    tokio::spawn(async move {
        shutdown.await;
        info!("shutting down: no new connections; draining requests and sends");
        let _ = shutdown_tx.send(true);
    });
    if let Some(mut reload) = reload {
        let app = app.clone();
        tokio::spawn(async move {
            while reload.recv().await.is_some() {
                info!("reloading the configuration (SIGHUP)");
                let _ = app.reload().await;
            }
        });
    }
    let pruner = tokio::spawn(prune_loop(store.clone(), live.config.storage.retention, shutdown_rx.clone()));

    let addr = listener.local_addr().map(|a| a.to_string()).unwrap_or_default();
    app.metrics.ready.set(1);
    info!(address = %addr, targets = live.config.targets.len(), version = env!("CARGO_PKG_VERSION"), "listening");
    drop(live);
    receive::serve(listener, app.clone(), shutdown_rx).await;
    app.metrics.ready.set(0);
    let _ = stopper.await;
    pruner.abort();
    // Outcomes recorded without waiting (deliveries) are committed before the process may exit.
    if let Err(e) = store.flush().await {
        error!(error = %e, "cannot commit the last delivery records; those messages will be sent again (DingTalk drops repeats by msgUuid)");
    }
    info!("stopped");
    Ok(())
}

/// Completes once shutdown has begun.
pub(crate) async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    // The guard `wait_for` returns must not live across an await (it is not Send).
    let _ = shutdown.wait_for(|&s| s).await.map(|_| ());
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
