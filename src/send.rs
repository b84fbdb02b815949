//! Delivery: one sender task per target takes its messages from the outbox in order, waits for the
//! robot's rate budget, signs at send time, posts, and records the outcome (delivered, retry later with
//! backoff, pause for DingTalk's throttle penalty, or give up with a reason).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::header::CONTENT_TYPE;
use tokio::sync::{Notify, watch};
use tokio::time::Instant;
use tracing::{debug, error, info, warn};

use crate::config::{DeliveryConfig, Endpoint, RateLimit, Target};
use crate::dingtalk::{self, Outcome, Reason};
use crate::metrics::Metrics;
use crate::secret::scrub;
use crate::store::{Pending, Store};

/// DingTalk's answers are tiny; anything longer is an error page, of which the start says enough.
const MAX_RESPONSE_BYTES: usize = 64 * 1024;
/// How long a sender waits on a store error before trying again.
const STORE_RETRY: Duration = Duration::from_secs(1);

pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// The one HTTP client: keep-alive, real timeouts, TLS verification on, proxies from the environment.
pub fn http_client(cfg: &DeliveryConfig) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .connect_timeout(cfg.connect_timeout)
        .timeout(cfg.request_timeout)
        .pool_idle_timeout(Duration::from_secs(60))
        .user_agent(concat!("dingtalk-bridge/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// A robot's send budget: at most `messages` sends in any window of `per`, shared by every target that
/// posts to the same robot, plus the pause DingTalk imposes when it throttles.
pub struct Robot {
    limit: RateLimit,
    state: Mutex<RobotState>,
}

struct RobotState {
    sent: VecDeque<Instant>,
    paused_until: Option<Instant>,
}

impl Robot {
    pub fn new(limit: RateLimit) -> Self {
        Robot { limit, state: Mutex::new(RobotState { sent: VecDeque::new(), paused_until: None }) }
    }

    /// Waits until a send is allowed and takes it from the budget; true if it had to wait.
    pub async fn acquire(&self) -> bool {
        let mut waited = false;
        loop {
            let wait = {
                let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
                let now = Instant::now();
                match s.paused_until {
                    Some(until) if until > now => until - now,
                    _ => {
                        s.paused_until = None;
                        while s.sent.front().is_some_and(|&t| now.duration_since(t) >= self.limit.per) {
                            s.sent.pop_front();
                        }
                        if s.sent.len() < self.limit.messages as usize {
                            s.sent.push_back(now);
                            return waited;
                        }
                        self.limit.per - now.duration_since(s.sent[0])
                    }
                }
            };
            waited = true;
            tokio::time::sleep(wait).await;
        }
    }

    /// Stops all sends to this robot for `penalty` (DingTalk said it sends too fast).
    pub fn pause(&self, penalty: Duration) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        s.paused_until = Some(Instant::now() + penalty);
    }
}

/// Everything a sender needs, shared by all senders.
pub struct Delivery {
    pub client: reqwest::Client,
    pub store: Store,
    pub metrics: Arc<Metrics>,
    pub cfg: DeliveryConfig,
    pub shutdown_grace: Duration,
}

/// Exponential backoff with jitter: the n-th retry waits between half and all of initial * 2^(n-1), capped.
pub fn backoff(cfg: &DeliveryConfig, attempts: i64) -> Duration {
    let exp = attempts.clamp(1, 30) as u32 - 1;
    let full = cfg.backoff_initial.saturating_mul(2u32.saturating_pow(exp)).min(cfg.backoff_max);
    full / 2 + full.mul_f64(fastrand::f64() / 2.0)
}

/// Waits until `deadline` or shutdown; false if shutdown came first.
async fn sleep_until(deadline: Instant, shutdown: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        _ = tokio::time::sleep_until(deadline) => true,
        _ = crate::stopped(shutdown) => false,
    }
}

/// Delivers a target's messages until shutdown. In order: a message being retried holds back later ones.
pub async fn run_sender(
    target: Arc<Target>,
    robot: Arc<Robot>,
    d: Arc<Delivery>,
    wake: Arc<Notify>,
    mut shutdown: watch::Receiver<bool>,
) {
    let name = target.name.as_str();
    debug!(target = name, "sender started");
    while !*shutdown.borrow() {
        let msg = match d.store.next_pending(name).await {
            Ok(Some(msg)) => msg,
            Ok(None) => {
                tokio::select! {
                    _ = wake.notified() => {}
                    _ = crate::stopped(&mut shutdown) => {}
                }
                continue;
            }
            Err(e) => {
                error!(target = name, error = %e, "cannot read the outbox; retrying");
                sleep_until(Instant::now() + STORE_RETRY, &mut shutdown).await;
                continue;
            }
        };
        let now = now_ms();
        let expires_ms = msg.created_at_ms + d.cfg.max_age.as_millis() as i64;
        if now >= expires_ms {
            let detail =
                format!("not delivered within delivery.max_age ({:?}); last attempts: {}", d.cfg.max_age, msg.attempts);
            give_up(&d, name, &msg, msg.attempts, Reason::Expired, &detail).await;
            continue;
        }
        if msg.next_attempt_ms > now {
            let wait_ms = (msg.next_attempt_ms.min(expires_ms) - now) as u64;
            sleep_until(Instant::now() + Duration::from_millis(wait_ms), &mut shutdown).await;
            continue;
        }
        let waited = tokio::select! {
            w = robot.acquire() => w,
            _ = crate::stopped(&mut shutdown) => break,
        };
        if waited {
            d.metrics.rate_limited.with_label_values(&[name]).inc();
        }
        // An attempt under way when shutdown starts gets the grace period, then is abandoned: the message
        // stays pending and its msgUuid keeps a resend after restart from posting twice.
        let mut grace_rx = shutdown.clone();
        let grace = d.shutdown_grace;
        let outcome = tokio::select! {
            o = attempt(&d, &target, &msg) => o,
            _ = async { crate::stopped(&mut grace_rx).await; tokio::time::sleep(grace).await } => {
                warn!(target = name, msg_uuid = %msg.msg_uuid, "send still in flight after the shutdown grace period; left queued for the next start");
                break;
            }
        };
        record(&d, &target, &robot, &msg, outcome).await;
    }
    debug!(target = name, "sender stopped");
}

/// One HTTP request to DingTalk (or a log line for a dry-run target).
async fn attempt(d: &Delivery, target: &Target, msg: &Pending) -> Outcome {
    let name = target.name.as_str();
    let url = match &target.endpoint {
        Endpoint::DryRun => {
            info!(target = name, msg_uuid = %msg.msg_uuid, body = %msg.body, "dry run: would send this body to DingTalk");
            return Outcome::Delivered;
        }
        Endpoint::Robot(url) => url,
    };
    let secret = target.secret.as_ref().map(|s| s.expose());
    let signed = dingtalk::signed_url(url.expose(), secret, now_ms());
    d.metrics.notification_requests.with_label_values(&[name]).inc();
    let started = Instant::now();
    let result = async {
        let resp =
            d.client.post(&signed).header(CONTENT_TYPE, "application/json").body(msg.body.clone()).send().await?;
        let status = resp.status().as_u16();
        let mut resp = resp;
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await? {
            body.extend_from_slice(&chunk[..chunk.len().min(MAX_RESPONSE_BYTES - body.len())]);
            if body.len() >= MAX_RESPONSE_BYTES {
                break;
            }
        }
        Ok::<_, reqwest::Error>((status, body))
    }
    .await;
    d.metrics.notification_latency.with_label_values(&[name]).observe(started.elapsed().as_secs_f64());
    match result {
        Ok((status, body)) => dingtalk::classify_response(status, &body),
        Err(e) => {
            let reason = if e.is_timeout() { Reason::Timeout } else { Reason::Network };
            Outcome::Retry { reason, detail: describe(e, url.expose(), secret) }
        }
    }
}

/// A reqwest error as one line without the URL (it holds the access_token and sign) or any secret.
fn describe(e: reqwest::Error, url: &str, secret: Option<&str>) -> String {
    let e = e.without_url();
    let mut parts = vec![];
    let mut source: Option<&dyn std::error::Error> = Some(&e);
    while let Some(err) = source {
        parts.push(err.to_string());
        source = err.source();
    }
    let line = parts.join(": ");
    let token = reqwest::Url::parse(url)
        .ok()
        .and_then(|u| u.query_pairs().find(|(k, _)| k == "access_token").map(|(_, v)| v.into_owned()))
        .unwrap_or_default();
    // Belt and braces: no layer below reqwest should echo these, but a leak here would be in every log.
    scrub(&line, &[&token, secret.unwrap_or("")])
}

async fn record(d: &Delivery, target: &Target, robot: &Robot, msg: &Pending, outcome: Outcome) {
    let name = target.name.as_str();
    let attempts = msg.attempts + 1;
    let now = now_ms();
    let failed_request =
        |reason: Reason| d.metrics.notification_requests_failed.with_label_values(&[name, reason.as_str()]).inc();
    let stored = match outcome {
        Outcome::Delivered => {
            d.metrics.notifications.with_label_values(&[name]).inc();
            info!(target = name, msg_uuid = %msg.msg_uuid, attempts, "delivered");
            d.store.mark_delivered(msg.id, attempts, now).await
        }
        Outcome::Retry { reason, detail } => {
            failed_request(reason);
            let delay = backoff(&d.cfg, attempts);
            warn!(target = name, msg_uuid = %msg.msg_uuid, attempts, reason = reason.as_str(), %detail, retry_in = ?delay, "send failed; will retry");
            d.store.schedule_retry(msg.id, attempts, now + delay.as_millis() as i64, &detail).await
        }
        Outcome::Throttled { detail } => {
            failed_request(Reason::Throttled);
            d.metrics.throttled.with_label_values(&[name]).inc();
            let penalty = d.cfg.throttle_penalty;
            robot.pause(penalty);
            warn!(target = name, msg_uuid = %msg.msg_uuid, %detail, pause = ?penalty, "DingTalk throttled the robot; pausing it, the message will be resent");
            d.store.schedule_retry(msg.id, attempts, now + penalty.as_millis() as i64, &detail).await
        }
        Outcome::Permanent { reason, detail } => {
            failed_request(reason);
            return give_up(d, name, msg, attempts, reason, &detail).await;
        }
    };
    if let Err(e) = stored {
        // The message stays pending and is resent with the same msgUuid, which DingTalk deduplicates.
        error!(target = name, msg_uuid = %msg.msg_uuid, error = %e, "cannot record the send outcome");
        tokio::time::sleep(STORE_RETRY).await;
    }
}

async fn give_up(d: &Delivery, name: &str, msg: &Pending, attempts: i64, reason: Reason, detail: &str) {
    d.metrics.notifications.with_label_values(&[name]).inc();
    d.metrics.notifications_failed.with_label_values(&[name, reason.as_str()]).inc();
    error!(target = name, msg_uuid = %msg.msg_uuid, attempts, reason = reason.as_str(), %detail, hint = reason.hint(), "message given up");
    if let Err(e) = d.store.mark_failed(msg.id, attempts, reason.as_str(), detail, now_ms()).await {
        error!(target = name, msg_uuid = %msg.msg_uuid, error = %e, "cannot record the failure");
        tokio::time::sleep(STORE_RETRY).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[tokio::test(start_paused = true)]
    async fn robot_budget_is_a_sliding_window() {
        let robot = Robot::new(RateLimit { messages: 3, per: Duration::from_secs(60) });
        let start = Instant::now();
        for _ in 0..3 {
            assert!(!robot.acquire().await);
        }
        assert!(robot.acquire().await, "the fourth send in a minute must wait");
        assert_eq!(start.elapsed(), Duration::from_secs(60));
        robot.pause(Duration::from_secs(600));
        assert!(robot.acquire().await);
        assert_eq!(start.elapsed(), Duration::from_secs(660));
    }

    #[test]
    fn errors_never_show_the_token_or_secret() {
        let url = "http://127.0.0.1:1/robot/send?access_token=tok-very-secret";
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let err = rt.block_on(async {
            reqwest::Client::new().post(dingtalk::signed_url(url, Some("SECxyz"), 1)).send().await.unwrap_err()
        });
        let line = describe(err, url, Some("SECxyz"));
        assert!(!line.contains("tok-very-secret") && !line.contains("SECxyz"), "{line}");
        assert!(!line.contains("sign="), "{line}");
    }
}
