//! Delivery: one sender per target takes its messages from the outbox in order ([`sender`]), waits for
//! the receiving end's [`budget`], merges a backlog the budget cannot drain into a digest ([`storm`]),
//! hands each message to its channel and records the outcome.

pub mod budget;
pub mod sender;
pub mod storm;

use std::sync::Arc;
use std::time::Duration;

pub use budget::Budget;
pub use sender::run_sender;

use crate::config::DeliveryConfig;
use crate::metrics::Metrics;
use crate::render::Renderer;
use crate::store::Store;

/// Everything a sender needs, shared by all senders.
pub struct Delivery {
    pub client: reqwest::Client,
    pub store: Store,
    pub metrics: Arc<Metrics>,
    pub renderer: Arc<Renderer>,
    pub cfg: DeliveryConfig,
    pub shutdown_grace: Duration,
}

/// Why the bridge gave a message up: its channel's reason, or its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GiveUp {
    Channel(crate::channel::Reason),
    /// Not delivered within `delivery.max_age`.
    Expired,
    /// The target is disabled (by its configuration, or in the console).
    Disabled,
}

/// Whether `target` sends now: the console's switch if it has one, else its configuration.
pub fn enabled(store: &crate::store::Store, target: &crate::config::Target) -> bool {
    store.switch(&target.name).map_or(target.enabled, |s| s.enabled)
}

impl GiveUp {
    pub fn as_str(self) -> &'static str {
        match self {
            GiveUp::Channel(r) => r.as_str(),
            GiveUp::Expired => "expired",
            GiveUp::Disabled => "disabled",
        }
    }

    pub fn hint(self) -> &'static str {
        match self {
            GiveUp::Channel(r) => r.hint(),
            GiveUp::Expired => "the message could not be delivered within delivery.max_age",
            GiveUp::Disabled => {
                "the target is disabled (enabled: false in the configuration, or switched off in the console): its messages are not sent"
            }
        }
    }
}

impl crate::metrics::Reason for GiveUp {
    fn label(self) -> &'static str {
        self.as_str()
    }
}

/// The one HTTP client: keep-alive, real timeouts, TLS verification on, proxies from the environment.
pub fn http_client(cfg: &DeliveryConfig) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .connect_timeout(cfg.connect_timeout)
        .timeout(cfg.request_timeout)
        .pool_idle_timeout(Duration::from_secs(60))
        // Never follow a redirect: a 3xx is not a delivery, and following one would post the body (and a
        // Referer holding the signed URL) somewhere else. channel::classify_status makes it a failure.
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("dingtalk-bridge/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// Exponential backoff with jitter: the n-th retry waits between half and all of initial * 2^(n-1), capped.
pub fn backoff(cfg: &DeliveryConfig, attempts: i64) -> Duration {
    let exp = attempts.clamp(1, 30) as u32 - 1;
    let full = cfg.backoff_initial.saturating_mul(2u32.saturating_pow(exp)).min(cfg.backoff_max);
    full / 2 + full.mul_f64(fastrand::f64() / 2.0)
}

fn human(d: Duration) -> String {
    crate::clock::human_duration(d.as_secs() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channel::RateLimit;

    fn cfg() -> DeliveryConfig {
        DeliveryConfig {
            connect_timeout: Duration::from_secs(1),
            request_timeout: Duration::from_secs(1),
            max_age: Duration::from_secs(3600),
            backoff_initial: Duration::from_secs(1),
            backoff_max: Duration::from_secs(60),
            rate_limit: RateLimit { messages: 20, per: Duration::from_secs(60) },
            throttle_penalty: Duration::from_secs(600),
            max_message_bytes: 20000,
            digest_after: Duration::from_secs(15),
            dedup_window: Duration::from_secs(120),
        }
    }

    #[test]
    fn backoff_grows_with_jitter_and_caps() {
        let c = cfg();
        for _ in 0..100 {
            let first = backoff(&c, 1);
            assert!(first >= Duration::from_millis(500) && first <= Duration::from_secs(1), "{first:?}");
            let fourth = backoff(&c, 4);
            assert!(fourth >= Duration::from_secs(4) && fourth <= Duration::from_secs(8), "{fourth:?}");
            let late = backoff(&c, 40);
            assert!(late >= Duration::from_secs(30) && late <= Duration::from_secs(60), "{late:?}");
        }
    }
}
