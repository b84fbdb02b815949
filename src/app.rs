//! What the running bridge shares: the configuration in force ([`Live`]), one sender per target, the
//! budgets they share, and reload (which restarts only the senders whose settings changed).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio::sync::{Notify, watch};
use tracing::{error, info, warn};

use crate::clock::now_ms;
use crate::config::{Config, ConfigError, Problem, Target};
use crate::deliver::{Budget, Delivery, http_client, run_sender};
use crate::metrics::Metrics;
use crate::render::{Renderer, TemplateError};
use crate::store::{Store, StoreError};

/// Failed console log-ins a user name may have within [`LOGIN_WINDOW`] before log-ins are refused.
pub const LOGIN_FAILURES: usize = 10;
pub const LOGIN_WINDOW: Duration = Duration::from_secs(60);

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
    /// What senders use, the renderer included.
    pub delivery: Arc<Delivery>,
}

impl Live {
    pub fn renderer(&self) -> &Renderer {
        &self.delivery.renderer
    }
}

struct Running {
    /// The settings it runs with: a reload restarts it only if they change. `None`: its target was
    /// removed and it is finishing a request in flight; a target of that name added back waits for it.
    target: Option<Arc<Target>>,
    stop: crate::shutdown::Trigger,
    handle: tokio::task::JoinHandle<()>,
}

/// What request handlers and senders share. The store, metrics and budgets outlive reloads.
pub struct App {
    live: RwLock<Arc<Live>>,
    pub store: Store,
    pub metrics: Arc<Metrics>,
    pub shutdown: crate::shutdown::Shutdown,
    /// Wakes a target's sender when a message for it is committed.
    wakers: RwLock<HashMap<String, Arc<Notify>>>,
    budgets: Mutex<HashMap<String, Arc<Budget>>>,
    /// Senders see each reload's delivery settings, templates and client without restarting.
    delivery: watch::Sender<Arc<Delivery>>,
    senders: tokio::sync::Mutex<HashMap<String, Running>>,
    /// One reload (or shutdown of senders) at a time.
    reloading: tokio::sync::Mutex<()>,
    /// Recent failed console log-ins by user name, to slow guessing.
    login_failures: Mutex<HashMap<String, std::collections::VecDeque<std::time::Instant>>>,
}

impl App {
    pub(crate) fn new(
        live: Arc<Live>,
        store: Store,
        metrics: Arc<Metrics>,
        shutdown: crate::shutdown::Shutdown,
    ) -> App {
        App {
            delivery: watch::Sender::new(live.delivery.clone()),
            live: RwLock::new(live),
            store,
            metrics,
            shutdown,
            wakers: RwLock::new(HashMap::new()),
            budgets: Mutex::new(HashMap::new()),
            senders: tokio::sync::Mutex::new(HashMap::new()),
            reloading: tokio::sync::Mutex::new(()),
            login_failures: Mutex::new(HashMap::new()),
        }
    }

    /// Signs the console's sessions and CSRF tokens; kept in the store, so the same across restarts.
    pub fn console_key(&self) -> [u8; 32] {
        self.store.console_key()
    }

    /// Whether `user` may try to log in now: not after `LOGIN_FAILURES` failures within a minute.
    pub fn login_allowed(&self, user: &str) -> bool {
        let mut map = self.login_failures.lock().unwrap_or_else(|e| e.into_inner());
        let now = std::time::Instant::now();
        if let Some(q) = map.get_mut(user) {
            while q.front().is_some_and(|t| now.duration_since(*t) >= LOGIN_WINDOW) {
                q.pop_front();
            }
            return q.len() < LOGIN_FAILURES;
        }
        true
    }

    /// Counts a failed log-in for `user` (bounded: the map forgets quiet names).
    pub fn login_failed(&self, user: &str) {
        let mut map = self.login_failures.lock().unwrap_or_else(|e| e.into_inner());
        let now = std::time::Instant::now();
        map.retain(|_, q| q.back().is_some_and(|t| now.duration_since(*t) < LOGIN_WINDOW));
        if map.len() >= 10_000 && !map.contains_key(user) {
            return;
        }
        let q = map.entry(user.to_string()).or_default();
        q.push_back(now);
        while q.len() > LOGIN_FAILURES {
            q.pop_front();
        }
    }

    /// One reload, or the shutdown of senders, at a time.
    pub(crate) async fn exclusive(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.reloading.lock().await
    }

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
    pub(crate) fn prepare(config: Config, store: &Store, metrics: &Arc<Metrics>) -> Result<Live, RunError> {
        let delivery = Arc::new(Delivery {
            client: http_client(&config.delivery)?,
            store: store.clone(),
            metrics: metrics.clone(),
            renderer: Arc::new(load_templates(&config)?),
            cfg: config.delivery.clone(),
            shutdown_grace: config.server.shutdown_grace,
        });
        Ok(Live { config, delivery })
    }

    /// The budget of a target's receiving end, if its sender has made it.
    pub fn budget_of(&self, target: &Target) -> Option<Arc<Budget>> {
        self.budgets.lock().unwrap_or_else(|e| e.into_inner()).get(&target.budget_key()).cloned()
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
        let also = target.channel.rate_windows();
        let longest = also.iter().map(|w| w.per).chain([target.rate_limit.per]).max().unwrap_or_default();
        let since = now - longest.as_millis() as i64;
        let (sends, pause) = self.store.robot_state(&key, since, now).await?;
        if let Some(until) = pause {
            warn!(target = %target.name, remaining_s = (until - now) / 1000, "the robot is still paused after it was throttled");
        }
        let budget = Arc::new(Budget::restore(key.clone(), target.rate_limit, also, &sends, pause, now));
        Ok(self.budgets.lock().unwrap_or_else(|e| e.into_inner()).entry(key).or_insert(budget).clone())
    }

    /// Brings the senders in line with `live`: targets that are new or whose settings changed get a new
    /// sender (after the old one has let go), removed ones stop, unchanged ones keep sending. Returns
    /// without waiting for an old sender's request in flight.
    pub(crate) async fn sync_senders(&self, live: &Live) -> Result<(), StoreError> {
        let mut senders = self.senders.lock().await;
        self.metrics.targets(live.config.targets.values().map(|t| (t.name.as_str(), t.channel.name())));
        for (name, old) in senders.iter_mut() {
            if !live.config.targets.contains_key(name) && old.target.take().is_some() {
                old.stop.trigger();
            }
        }
        for target in live.config.targets.values() {
            if senders.get(&target.name).is_some_and(|r| r.target.as_deref() == Some(target)) {
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
                old.stop.trigger();
                old.handle
            });
            let (stop, stop_rx) = crate::shutdown::channel();
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
            senders.insert(target.name.clone(), Running { target: Some(target), stop, handle });
        }
        Ok(())
    }

    /// Stops every sender: an attempt in flight gets the shutdown grace period, then is abandoned (the
    /// message stays queued, in doubt, and is resent with its msgUuid).
    pub(crate) async fn stop_senders(&self) {
        let running: Vec<Running> = self.senders.lock().await.drain().map(|(_, r)| r).collect();
        for r in &running {
            r.stop.trigger();
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
        if self.shutdown.is_shutdown() {
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
    pub(crate) async fn report_orphans(&self) {
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

pub(crate) fn log_targets(config: &Config) {
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
