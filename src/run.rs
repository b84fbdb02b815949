//! Running the bridge: opens the store, starts the senders, serves HTTP until shutdown, then drains
//! both. The only place that knows both halves of an alert's path.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tracing::{error, info, warn};

use crate::app::{App, RunError, log_targets};
use crate::clock::now_ms;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::store::Store;

/// How often finished messages older than `storage.retention` are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// The most message text one indexing batch takes: a few milliseconds of the storage thread, so the
/// intake's transactions go between batches.
const TEXT_INDEX_BATCH_BYTES: i64 = 64 * 1024;
/// Quiet time after the last notification before the text index takes the writer at full speed.
const TEXT_INDEX_LULL: Duration = Duration::from_millis(250);
/// However busy the intake, a batch at least this often.
const TEXT_INDEX_BUSY_EVERY: Duration = Duration::from_secs(1);

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
    let (trigger, shutdown_rx) = crate::shutdown::channel();
    let app = Arc::new(App::new(live.clone(), store.clone(), metrics, shutdown_rx.clone()));
    app.report_orphans().await;
    app.sync_senders(&live).await?;
    app.metrics.reloaded(true, chrono::Utc::now().timestamp());

    // On shutdown the senders stop alongside the HTTP drain, each with the same grace period.
    let stopper = tokio::spawn({
        let app = app.clone();
        let mut rx = shutdown_rx.clone();
        async move {
            rx.recv().await;
            let _one = app.exclusive().await;
            app.stop_senders().await;
        }
    });
    tokio::spawn(async move {
        shutdown.await;
        info!("shutting down: no new connections; draining requests and sends");
        trigger.trigger();
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
    let watcher = tokio::spawn(watch_store(store.clone(), app.metrics.clone()));
    let indexer = tokio::spawn(index_text_loop(store.clone(), shutdown_rx.clone()));

    let addr = listener.local_addr().map(|a| a.to_string()).unwrap_or_default();
    app.metrics.set_ready(true);
    app.metrics.set_store_healthy(true);
    info!(address = %addr, targets = live.config.targets.len(), version = env!("CARGO_PKG_VERSION"), "listening");
    drop(live);
    crate::http::serve(listener, app.clone(), shutdown_rx).await;
    app.metrics.set_ready(false);
    let _ = stopper.await;
    pruner.abort();
    watcher.abort();
    indexer.abort();
    // Outcomes recorded without waiting (deliveries) are committed before the process may exit.
    if let Err(e) = store.flush().await {
        error!(error = %e, "cannot commit the last delivery records; those messages will be sent again (the receiver drops repeats by msgUuid)");
    }
    store.watch(false).await;
    if store.owed() > 0 {
        error!(
            records = store.owed(),
            "delivery records the disk refused are still unwritten; those messages will be sent again after restart (the receiver drops repeats by msgUuid)"
        );
    }
    info!("stopped");
    Ok(())
}

/// How often the store's file and writes are checked.
const WATCH_EVERY: Duration = Duration::from_secs(1);
/// How often a healthy store is probed with a write (a failing one, at every check).
const PROBE_EVERY: u32 = 10;
/// How often an unhealthy store is reported again.
const REPORT_EVERY: Duration = Duration::from_secs(60);

/// Watches the store: a deleted or replaced file, or a disk that refuses writes, stops the webhook (503)
/// and readiness, and is said in the log when it starts, every minute while it lasts, and when it ends.
async fn watch_store(store: Store, metrics: Arc<Metrics>) {
    let mut tick = 0u32;
    let mut reported: Option<(String, tokio::time::Instant)> = None;
    loop {
        tokio::time::sleep(WATCH_EVERY).await;
        tick = tick.wrapping_add(1);
        store.watch(tick.is_multiple_of(PROBE_EVERY)).await;
        let problem = store.problem();
        metrics.set_store_healthy(problem.is_none());
        match (&problem, &reported) {
            (Some(p), Some((was, at))) if p == was && at.elapsed() < REPORT_EVERY => {}
            (Some(p), _) => {
                error!(problem = %p, owed_records = store.owed(), "the outbox cannot keep notifications: answering webhooks 503 and failing readiness until it can");
                reported = Some((p.clone(), tokio::time::Instant::now()));
            }
            (None, Some(_)) => {
                info!("the outbox is writable again: accepting notifications");
                reported = None;
            }
            (None, None) => {}
        }
    }
}

/// Keeps the push records' text index a step behind the intake: batch after batch while messages wait
/// (pausing briefly between them), then a look every second.
async fn index_text_loop(store: Store, mut shutdown: crate::shutdown::Shutdown) {
    let mut last_batch = tokio::time::Instant::now();
    loop {
        // A batch holds the writer for a while: while notifications arrive it waits for a lull, and runs at
        // least once a second however busy the intake is, so the index falls behind a burst by seconds
        // and catches up after it (searches read unindexed messages directly meanwhile).
        let busy = crate::clock::now_ms() - store.last_enqueue_ms() < TEXT_INDEX_LULL.as_millis() as i64;
        if busy && last_batch.elapsed() < TEXT_INDEX_BUSY_EVERY {
            tokio::select! {
                _ = tokio::time::sleep(TEXT_INDEX_LULL) => continue,
                _ = shutdown.recv() => return,
            }
        }
        last_batch = tokio::time::Instant::now();
        let pause = match store.index_text(TEXT_INDEX_BATCH_BYTES).await {
            Ok(true) => Duration::from_millis(50),
            Ok(false) => Duration::from_secs(1),
            Err(e) => {
                error!(error = %e, "cannot index message text for the console's search; searches read those messages directly");
                Duration::from_secs(30)
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = shutdown.recv() => return,
        }
    }
}

async fn prune_loop(store: Store, retention: Duration, mut shutdown: crate::shutdown::Shutdown) {
    loop {
        let before = now_ms() - retention.as_millis() as i64;
        match store.prune(before).await {
            Ok(0) => {}
            Ok(n) => info!(pruned = n, "pruned finished messages past storage.retention"),
            Err(e) => error!(error = %e, "cannot prune old messages"),
        }
        tokio::select! {
            _ = tokio::time::sleep(PRUNE_EVERY) => {}
            _ = shutdown.recv() => return,
        }
    }
}
