//! The access token of an app protocol (DingTalk's enterprise app, and any app that authenticates with a
//! fetched token): one per app, shared by its targets, fetched by one task at a time, refreshed before it
//! expires, dropped when the tool says it expired. Runtime state, kept beside the configuration (which
//! only holds the app's settings), so a reload that keeps the app keeps its token.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use tokio::time::Instant;

use super::Outcome;
use crate::secret::Secret;

/// One app's token and when to fetch a new one. The lock is held while fetching: one fetch at a time.
#[derive(Default)]
pub struct TokenCache {
    slot: tokio::sync::Mutex<Option<(Secret, Instant)>>,
    fetches: std::sync::atomic::AtomicU64,
}

impl TokenCache {
    /// The cache for the app `identity` (its API base and id; never its secret), shared process-wide so
    /// every target of the app, and the configuration after a reload, use one token.
    pub fn for_app(identity: &str) -> Arc<TokenCache> {
        static CACHES: OnceLock<Mutex<HashMap<String, Arc<TokenCache>>>> = OnceLock::new();
        let mut caches = CACHES.get_or_init(Default::default).lock().unwrap_or_else(|e| e.into_inner());
        caches.entry(identity.to_string()).or_default().clone()
    }

    /// Tokens fetched so far.
    pub fn fetches(&self) -> u64 {
        self.fetches.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// A token valid for a while yet: the cached one, or one `fetch`ed now (others wait for that fetch).
    /// `fetch` answers the token and how long it is valid.
    pub async fn token<F, Fut>(&self, fetch: F) -> Result<Secret, Outcome>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<(String, Duration), Outcome>>,
    {
        let mut slot = self.slot.lock().await;
        if let Some((token, refresh_at)) = slot.as_ref()
            && Instant::now() < *refresh_at
        {
            return Ok(token.clone());
        }
        self.fetches.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (token, valid) = fetch().await?;
        // Fetched again well before it expires: a fifth of its life early, at least a minute.
        let early = (valid / 5).max(Duration::from_secs(60)).min(valid / 2);
        let token = Secret::new(token);
        *slot = Some((token.clone(), Instant::now() + valid - early));
        Ok(token)
    }

    /// Forgets `token` (the tool said it expired), unless another task already replaced it.
    pub async fn drop_token(&self, token: &Secret) {
        let mut slot = self.slot.lock().await;
        if slot.as_ref().is_some_and(|(t, _)| t == token) {
            *slot = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn one_fetch_serves_until_refresh_and_a_dropped_token_is_fetched_again() {
        let cache = TokenCache::default();
        let fetch = || async { Ok(("t1".to_string(), Duration::from_secs(7200))) };
        assert_eq!(cache.token(fetch).await.unwrap().expose(), "t1");
        assert_eq!(cache.token(fetch).await.unwrap().expose(), "t1");
        assert_eq!(cache.fetches(), 1);
        // A fifth of its life early: after 5761 s a new one is fetched.
        tokio::time::advance(Duration::from_secs(5761)).await;
        let t2 = cache.token(|| async { Ok(("t2".to_string(), Duration::from_secs(7200))) }).await.unwrap();
        assert_eq!((t2.expose(), cache.fetches()), ("t2", 2));
        cache.drop_token(&Secret::new("t1")).await;
        assert_eq!(cache.token(fetch).await.unwrap().expose(), "t2", "a stale drop keeps the newer token");
        cache.drop_token(&t2).await;
        assert_eq!(cache.token(fetch).await.unwrap().expose(), "t1");
        assert_eq!(cache.fetches(), 3);
    }
}
