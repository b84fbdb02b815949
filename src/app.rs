//! The running bridge: the configuration in force ([`Live`]), one sender per target, the budgets they
//! share, and reload. [`run`] wires intake (HTTP) and delivery (senders) to one store and one set of
//! metrics, and drains both on shutdown.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};
use tracing::{error, info, warn};

use crate::channel::http_client;
use crate::clock::now_ms;
use crate::config::{Config, ConfigError, Problem, Target};
use crate::deliver::{Budget, Delivery, run_sender};
use crate::metrics::Metrics;
use crate::render::{Renderer, TemplateError};
use crate::store::{Store, StoreError};

/// How often finished messages older than `storage.retention` are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// Why the bridge could not start (or a configuration could not be loaded).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("templates:\n{}", .0.iter().map(|e| format!("  {e}")).collect::<Vec<_>>().join("\n"))]
    Templates(Vec<TemplateError>),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot build the HTTP client: {0}")]
    Client(#[from] reqwest::Error),
}

/// Why a reload was refused; the previous configuration keeps serving.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("shutting down")]
    ShuttingDown,
    #[error(transparent)]
    Invalid(#[from] RunError),
    #[error("cannot start senders: {0}")]
    Senders(#[from] StoreError),
}

/// What can change on reload: the configuration and everything built from it.
pub struct Live {
    pub config: Config,
    pub renderer: Arc<Renderer>,
    pub delivery: Arc<Delivery>,
}

struct Running {
    /// The settings it runs with: a reload restarts it only if they change.
    target: Arc<Target>,
    stop: watch::Sender<bool>,
    handle: tokio::task::JoinHandle<()>,
}

/// What request handlers and senders share. The store, metrics and budgets outlive reloads.
pub struct App {
    live: RwLock<Arc<Live>>,
    pub store: Store,
    pub metrics: Arc<Metrics>,
    pub shutdown: watch::Receiver<bool>,
    /// Wakes a target's sender when a message for it is committed.
    wakers: RwLock<HashMap<String, Arc<Notify>>>,
    budgets: Mutex<HashMap<String, Arc<Budget>>>,
    /// Senders see each reload's delivery settings, templates and client without restarting.
    delivery: watch::Sender<Arc<Delivery>>,
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
        let delivery = Arc::new(Delivery {
            client: http_client(&config.delivery)?,
            store: store.clone(),
            metrics: metrics.clone(),
            renderer: renderer.clone(),
            cfg: config.delivery.clone(),
            shutdown_grace: config.server.shutdown_grace,
        });
        Ok(Live { config, renderer, delivery })
    }

    /// The budget of a target's receiving end, shared by every target that posts there. It survives
    /// restarts (from the store) and reloads (kept here).
    async fn budget(&self, target: &Target) -> Result<Arc<Budget>, StoreError> {
        let key = target.budget_key();
        let known = self.budgets.lock().unwrap_or_else(|e| e.into_inner()).get(&key).cloned();
        if let Some(budget) = known {
            budget.set_limit(target.rate_limit);
            return Ok(budget);
        }
        let now = now_ms();
        let since = now - target.rate_limit.per.as_millis() as i64;
        let (sends, pause) = self.store.robot_state(&key, since, now).await?;
        if let Some(until) = pause {
            warn!(target = %target.name, remaining_s = (until - now) / 1000, "the robot is still paused after it was throttled");
        }
        let budget = Arc::new(Budget::restore(key.clone(), target.rate_limit, &sends, pause, now));
        Ok(self.budgets.lock().unwrap_or_else(|e| e.into_inner()).entry(key).or_insert(budget).clone())
    }

    /// Brings the senders in line with `live`: targets that are new or whose settings changed get a new
    /// sender (after the old one has let go), removed ones stop, unchanged ones keep sending. Returns
    /// without waiting for an old sender's request in flight.
    async fn sync_senders(&self, live: &Live) -> Result<(), StoreError> {
        let mut senders = self.senders.lock().await;
        let gone: Vec<String> = senders.keys().filter(|n| !live.config.targets.contains_key(*n)).cloned().collect();
        for name in gone {
            if let Some(old) = senders.remove(&name) {
                let _ = old.stop.send(true);
            }
        }
        for target in live.config.targets.values() {
            if senders.get(&target.name).is_some_and(|r| *r.target == *target) {
                continue;
            }
            self.metrics.init_target(&target.name);
            let budget = self.budget(target).await?;
            let wake = self
                .wakers
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .entry(target.name.clone())
                .or_insert_with(|| Arc::new(Notify::new()))
                .clone();
            let previous = senders.remove(&target.name).map(|old| {
                let _ = old.stop.send(true);
                old.handle
            });
            let (stop, stop_rx) = watch::channel(false);
            let target = Arc::new(target.clone());
            let (t, delivery) = (target.clone(), self.delivery.subscribe());
            let handle = tokio::spawn(async move {
                // One sender per target at a time: the old one finishes (or abandons, after the shutdown
                // grace) its request in flight first.
                if let Some(previous) = previous {
                    let _ = previous.await;
                }
                // Whatever arrived while no sender ran is picked up at once.
                wake.notify_one();
                run_sender(t, budget, delivery, wake, stop_rx).await;
            });
            senders.insert(target.name.clone(), Running { target, stop, handle });
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
    pub async fn reload(&self) -> Result<(), ReloadError> {
        let _one = self.reloading.lock().await;
        if *self.shutdown.borrow() {
            return Err(ReloadError::ShuttingDown);
        }
        let old = self.live();
        let prepared = Config::load(&old.config.source).map_err(RunError::from).and_then(|mut config| {
            let (o, n) = (&old.config, &mut config);
            if n.listen != o.listen
                || n.storage.path != o.storage.path
                || n.storage.sync != o.storage.sync
                || n.server.max_connections != o.server.max_connections
            {
                warn!(
                    "listen, storage and server.max_connections take effect at the next restart; keeping the running values"
                );
                n.listen = o.listen;
                n.storage = o.storage.clone();
                n.server.max_connections = o.server.max_connections;
            }
            App::prepare(config, &self.store, &self.metrics)
        });
        let live = match prepared {
            Ok(live) => Arc::new(live),
            Err(e) => {
                self.metrics.reloaded(false, 0);
                error!(error = %e, "reload failed; the previous configuration keeps serving");
                return Err(e.into());
            }
        };
        for w in &live.config.warnings {
            warn!("{w}");
        }
        *self.live.write().unwrap_or_else(|e| e.into_inner()) = live.clone();
        self.delivery.send_replace(live.delivery.clone());
        if let Err(e) = self.sync_senders(&live).await {
            // The store failed under us; senders come back with the next reload or restart.
            error!(error = %e, "cannot start senders after reload");
            self.metrics.reloaded(false, 0);
            return Err(e.into());
        }
        self.report_orphans().await;
        self.metrics.reloaded(true, chrono::Utc::now().timestamp());
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
        info!(
            target = %t.name,
            endpoint = %t.channel.describe(),
            channel = t.channel.name(),
            keyword = t.keyword.as_deref().unwrap_or(""),
            template = %t.template,
            "target configured"
        );
    }
}

/// Builds the renderer and checks every target names a template set that exists.
pub fn load_templates(config: &Config) -> Result<Renderer, RunError> {
    let renderer = Renderer::new(config.templates_dir.as_deref(), config.timezone, config.delivery.max_message_bytes)
        .map_err(RunError::Templates)?;
    let sets: Vec<&str> = renderer.sets().collect();
    let problems: Vec<Problem> = config
        .targets
        .values()
        .filter(|t| !renderer.has_set(&t.template))
        .map(|t| Problem {
            file: config.source.display().to_string(),
            key: format!("targets.{}.template", t.name),
            message: format!("no template set {:?}; available: {}", t.template, sets.join(", ")),
        })
        .collect();
    if problems.is_empty() { Ok(renderer) } else { Err(ConfigError::Invalid { problems }.into()) }
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
        budgets: Mutex::new(HashMap::new()),
        delivery: watch::Sender::new(live.delivery.clone()),
        senders: tokio::sync::Mutex::new(HashMap::new()),
        reloading: tokio::sync::Mutex::new(()),
    });
    app.report_orphans().await;
    app.sync_senders(&live).await?;
    app.metrics.reloaded(true, chrono::Utc::now().timestamp());

    // On shutdown the senders stop alongside the HTTP drain, each with the same grace period.
    let stopper = tokio::spawn({
        let app = app.clone();
        let mut rx = shutdown_rx.clone();
        async move {
            crate::stopped(&mut rx).await;
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
    app.metrics.set_ready(true);
    info!(address = %addr, targets = live.config.targets.len(), version = env!("CARGO_PKG_VERSION"), "listening");
    drop(live);
    crate::http::serve(listener, app.clone(), shutdown_rx).await;
    app.metrics.set_ready(false);
    let _ = stopper.await;
    pruner.abort();
    // Outcomes recorded without waiting (deliveries) are committed before the process may exit.
    if let Err(e) = store.flush().await {
        error!(error = %e, "cannot commit the last delivery records; those messages will be sent again (the receiver drops repeats by msgUuid)");
    }
    info!("stopped");
    Ok(())
}

async fn prune_loop(store: Store, retention: Duration, mut shutdown: watch::Receiver<bool>) {
    loop {
        let before = now_ms() - retention.as_millis() as i64;
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
