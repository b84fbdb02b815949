//! Shutdown as one value handed to each task (mini-redis's shape): whether it has begun, a future that
//! completes when it does, and one that completes a grace period later, for work in flight. A
//! [`Trigger`] begins it; every [`Shutdown`] made from it (or cloned) sees it.

use std::time::Duration;

use tokio::sync::watch;

/// Begins shutdown for every [`Shutdown`] made from it.
#[derive(Debug)]
pub struct Trigger(watch::Sender<bool>);

/// Whether shutdown has begun, and a way to wait for it.
#[derive(Debug, Clone)]
pub struct Shutdown(watch::Receiver<bool>);

/// A trigger and the first shutdown value listening to it.
pub fn channel() -> (Trigger, Shutdown) {
    let (tx, rx) = watch::channel(false);
    (Trigger(tx), Shutdown(rx))
}

impl Trigger {
    pub fn trigger(&self) {
        let _ = self.0.send(true);
    }

    /// Another value listening to this trigger.
    pub fn shutdown(&self) -> Shutdown {
        Shutdown(self.0.subscribe())
    }
}

impl Shutdown {
    pub fn is_shutdown(&self) -> bool {
        *self.0.borrow()
    }

    /// Completes once shutdown has begun (at once if it has; never if the trigger is dropped unused).
    pub async fn recv(&mut self) {
        // The guard `wait_for` returns must not live across an await (it is not Send).
        if self.0.wait_for(|&s| s).await.is_err() {
            std::future::pending::<()>().await;
        }
    }

    /// Completes `grace` after shutdown has begun: how long work in flight may go on.
    pub async fn grace_over(&self, grace: Duration) {
        let mut s = self.clone();
        s.recv().await;
        tokio::time::sleep(grace).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn every_value_sees_the_trigger_and_the_grace_runs_from_it() {
        let (trigger, mut a) = channel();
        let b = trigger.shutdown();
        assert!(!a.is_shutdown() && !b.is_shutdown());
        let grace = tokio::spawn({
            let b = b.clone();
            async move {
                b.grace_over(Duration::from_secs(10)).await;
                tokio::time::Instant::now()
            }
        });
        tokio::time::sleep(Duration::from_secs(5)).await;
        let began = tokio::time::Instant::now();
        trigger.trigger();
        a.recv().await;
        assert!(a.is_shutdown() && b.is_shutdown());
        assert_eq!(grace.await.unwrap() - began, Duration::from_secs(10));
    }
}
