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
use crate::render::{Renderer, Summary};
use crate::secret::scrub;
use crate::store::{Kind, Pending, Store, StoreError};

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
/// posts to the same robot, plus the pause DingTalk imposes when it throttles. A send counts from when
/// it *finished*: DingTalk received it somewhere between start and finish, so a window measured from
/// finishes is never shorter than the one DingTalk sees, whatever the network's delays.
pub struct Robot {
    /// A hash of the robot URL: how the store tells robots apart without keeping the access_token.
    pub key: String,
    state: Mutex<RobotState>,
}

struct RobotState {
    limit: RateLimit,
    /// Start (while in flight) or finish times of the sends in the current window, oldest first.
    sent: VecDeque<Instant>,
    paused_until: Option<Instant>,
}

/// The store's name for a target's robot.
pub fn robot_key(target: &Target) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(target.robot_key().as_bytes()).iter().take(12).map(|b| format!("{b:02x}")).collect()
}

/// A wall-clock time in milliseconds as an `Instant`, if it is not before the process could represent.
fn instant_at(at_ms: i64, now_ms: i64) -> Option<Instant> {
    let now = Instant::now();
    if at_ms >= now_ms {
        Some(now + Duration::from_millis((at_ms - now_ms) as u64))
    } else {
        now.checked_sub(Duration::from_millis((now_ms - at_ms) as u64))
    }
}

impl Robot {
    pub fn new(key: String, limit: RateLimit) -> Self {
        Robot { key, state: Mutex::new(RobotState { limit, sent: VecDeque::new(), paused_until: None }) }
    }

    /// A robot whose recent sends and pause (wall-clock milliseconds, from the store) still count, so a
    /// restart neither resets the window nor lifts DingTalk's penalty.
    pub fn restore(key: String, limit: RateLimit, sends_ms: &[i64], paused_until_ms: Option<i64>, now_ms: i64) -> Self {
        let robot = Robot::new(key, limit);
        {
            let mut s = robot.lock();
            s.sent = sends_ms.iter().filter_map(|&t| instant_at(t, now_ms)).collect();
            s.paused_until = paused_until_ms.and_then(|t| instant_at(t, now_ms));
        }
        robot
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, RobotState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A new budget (after a reload); the sends already made still count.
    pub fn set_limit(&self, limit: RateLimit) {
        self.lock().limit = limit;
    }

    /// Sends the budget allows within `horizon` from now (zero while paused beyond it).
    pub fn available_within(&self, horizon: Duration) -> usize {
        let s = self.lock();
        let at = Instant::now() + horizon;
        if s.paused_until.is_some_and(|until| until > at) {
            return 0;
        }
        if s.limit.is_unlimited() {
            return usize::MAX;
        }
        let counted = s.sent.iter().filter(|&&t| t + s.limit.per > at).count();
        (s.limit.messages as usize).saturating_sub(counted)
    }

    /// How long until the budget allows a send (zero: now).
    pub fn wait_time(&self) -> Duration {
        let mut s = self.lock();
        let now = Instant::now();
        if let Some(until) = s.paused_until {
            if until > now {
                return until - now;
            }
            s.paused_until = None;
        }
        let limit = s.limit;
        if limit.is_unlimited() {
            return Duration::ZERO;
        }
        while s.sent.front().is_some_and(|&t| now.duration_since(t) >= limit.per) {
            s.sent.pop_front();
        }
        if s.sent.len() < limit.messages as usize {
            return Duration::ZERO;
        }
        // The window is full: the next send may go when enough of the oldest sends have aged out.
        let excess = s.sent.len() - limit.messages as usize;
        (s.sent[excess] + limit.per).saturating_duration_since(now)
    }

    /// Takes a send from the budget if one is free now; the returned slot is passed to `finished`.
    pub fn try_acquire(&self) -> Option<Instant> {
        if !self.wait_time().is_zero() {
            return None;
        }
        let now = Instant::now();
        let mut s = self.lock();
        if !s.limit.is_unlimited() {
            s.sent.push_back(now);
        }
        Some(now)
    }

    /// Whether sends to this robot count against a budget (`rate_limit` is not `off`).
    pub fn limited(&self) -> bool {
        !self.lock().limit.is_unlimited()
    }

    /// Waits until a send is allowed and takes it.
    pub async fn acquire(&self) -> Instant {
        loop {
            if let Some(slot) = self.try_acquire() {
                return slot;
            }
            tokio::time::sleep(self.wait_time().max(Duration::from_millis(1))).await;
        }
    }

    /// The send that took `slot` has finished: from now on it counts from now.
    pub fn finished(&self, slot: Instant) {
        let mut s = self.lock();
        let now = Instant::now();
        if let Some(pos) = s.sent.iter().position(|&t| t == slot) {
            s.sent[pos] = now;
            s.sent.make_contiguous().sort_unstable();
        }
    }

    /// Stops all sends to this robot for `penalty` (DingTalk said it sends too fast).
    pub fn pause(&self, penalty: Duration) {
        self.lock().paused_until = Some(Instant::now() + penalty);
    }
}

/// Everything a sender needs, shared by all senders.
pub struct Delivery {
    pub client: reqwest::Client,
    pub store: Store,
    pub metrics: Arc<Metrics>,
    pub renderer: Arc<Renderer>,
    pub cfg: DeliveryConfig,
    pub shutdown_grace: Duration,
}

/// While a robot's budget is exhausted, how often the sender looks again (the backlog may call for a
/// digest meanwhile).
const RECHECK: Duration = Duration::from_secs(1);
/// The most waiting messages one digest considers.
const MAX_DIGEST_CANDIDATES: usize = 2000;
/// How many pending messages a sender reads from the outbox at once.
const READ_AHEAD: usize = 16;

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
    // The message already counted as waiting for the budget (counted once, however long it waits).
    let mut counted_wait: Option<i64> = None;
    // The next messages in order, read ahead. Only this sender changes its target's pending messages, so
    // the copies stay true while each is delivered in turn; any other turn of events drops them and reads
    // the outbox again.
    let mut ahead: VecDeque<Pending> = VecDeque::new();
    // Whether the last turn ended with its message finished, leaving the read-ahead copies true.
    let mut ahead_valid = true;
    debug!(target = name, "sender started");
    while !*shutdown.borrow() {
        if !std::mem::replace(&mut ahead_valid, false) {
            ahead.clear();
        }
        let next = match ahead.pop_front() {
            Some(msg) => Ok(Some(msg)),
            None => d.store.pending(name, READ_AHEAD).await.map(|batch| {
                ahead = batch.into();
                ahead.pop_front()
            }),
        };
        let msg = match next {
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
            match msg.kind {
                // A digest carries it (and everything behind it), with a fresh max_age of its own, unless
                // DingTalk may already have it: then it is given up rather than risk showing it twice.
                Kind::Message => {
                    let why = format!(
                        "They could not be delivered within delivery.max_age ({}), so they are listed together now.",
                        human(d.cfg.max_age)
                    );
                    match make_digest(&d, &target, 0, 1, &why).await {
                        Ok(merged) if merged.contains(&msg.id) => {}
                        Ok(_) => {
                            let detail = format!(
                                "not delivered within delivery.max_age ({}); its last attempt got no answer, so DingTalk may have posted it",
                                human(d.cfg.max_age)
                            );
                            give_up(&d, name, &msg, msg.attempts, Reason::Expired, &detail).await;
                        }
                        Err(e) => {
                            error!(target = name, error = %e, "cannot make a digest of expired messages");
                            sleep_until(Instant::now() + STORE_RETRY, &mut shutdown).await;
                        }
                    }
                }
                Kind::Digest => {
                    let detail = format!(
                        "not delivered within delivery.max_age ({}); attempts: {}",
                        human(d.cfg.max_age),
                        msg.attempts
                    );
                    give_up(&d, name, &msg, msg.attempts, Reason::Expired, &detail).await;
                }
            }
            continue;
        }
        if msg.next_attempt_ms > now {
            let wait_ms = (msg.next_attempt_ms.min(expires_ms) - now) as u64;
            sleep_until(Instant::now() + Duration::from_millis(wait_ms), &mut shutdown).await;
            continue;
        }
        let wait = robot.wait_time();
        if !wait.is_zero() {
            if counted_wait != Some(msg.id) {
                counted_wait = Some(msg.id);
                d.metrics.rate_limited.with_label_values(&[name]).inc();
                debug!(target = name, ?wait, "waiting for the robot's rate budget");
            }
            tokio::select! {
                _ = tokio::time::sleep(wait.min(RECHECK)) => {}
                _ = wake.notified() => {}
                _ = crate::stopped(&mut shutdown) => {}
            }
            continue;
        }
        if msg.kind == Kind::Message {
            match storm(&d, &target, &robot).await {
                Ok(true) => continue,
                Ok(false) => {}
                Err(e) => error!(target = name, error = %e, "cannot make a digest; sending messages one by one"),
            }
        }
        // Another target on the same robot may have taken the last free send meanwhile.
        let Some(slot) = robot.try_acquire() else { continue };
        if robot.limited() {
            // Recorded before the request leaves, at the latest moment DingTalk could receive it, so a
            // restart after a kill at any point still counts this send.
            let latest_ms = now_ms() + d.cfg.request_timeout.as_millis() as i64;
            if let Err(e) = d.store.begin_attempt(msg.id, &robot.key, latest_ms).await {
                // Sending unrecorded beats not sending; the in-memory budget still holds.
                warn!(target = name, error = %e, "cannot record the attempt");
            }
        } else {
            // No budget to keep across restarts: the in-doubt mark is queued ahead of the outcome, not
            // waited for.
            d.store.submit_attempt(msg.id);
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
        robot.finished(slot);
        ahead_valid = record(&d, &target, &robot, &msg, outcome).await;
    }
    debug!(target = name, "sender stopped");
}

fn human(d: Duration) -> String {
    crate::render::helpers::human_duration(d.as_secs() as i64)
}

/// The storm policy: when more messages wait than the robot's budget can send within
/// `delivery.digest_after`, the first of them that the budget allows are sent as they are and the rest
/// are merged into one digest behind them. True if a digest was made.
async fn storm(d: &Delivery, target: &Target, robot: &Robot) -> Result<bool, StoreError> {
    let room = robot.available_within(d.cfg.digest_after);
    if room == usize::MAX {
        return Ok(false);
    }
    // Counting stops where the answer is known, so a deep backlog costs no more than a shallow one.
    let pending = d.store.pending_count(&target.name, (room + 1).max(2)).await? as usize;
    if pending < 2 || pending <= room {
        return Ok(false);
    }
    let limit = target.rate_limit;
    let why = format!(
        "They arrived faster than this robot may post ({} messages per {}), so they are listed together.",
        limit.messages,
        human(limit.per)
    );
    // A digest of one message would cost the same send as the message itself, and say less.
    Ok(!make_digest(d, target, room.saturating_sub(1), 2, &why).await?.is_empty())
}

/// Merges the waiting messages after the first `keep` into a digest (as many as fit one message), if there
/// are at least `min` of them; returns the ids of the messages it merged (none: no digest).
async fn make_digest(
    d: &Delivery,
    target: &Target,
    keep: usize,
    min: usize,
    why: &str,
) -> Result<Vec<i64>, StoreError> {
    let name = target.name.as_str();
    let candidates = d.store.digest_candidates(name, keep + MAX_DIGEST_CANDIDATES).await?;
    let candidates = candidates.get(keep..).unwrap_or_default();
    if candidates.is_empty() || candidates.len() < min {
        return Ok(vec![]);
    }
    // One line per notification: the parts of a split notification share it.
    let mut notifications: Vec<i64> = vec![];
    let mut entries: Vec<Summary> = vec![];
    for c in candidates {
        if notifications.last() != Some(&c.notification_id) {
            notifications.push(c.notification_id);
            entries.push(serde_json::from_str(&c.summary).unwrap_or_default());
        }
    }
    let (message, carried) = d.renderer.digest(target, &entries, why);
    let carried: &[i64] = &notifications[..carried];
    let merged: Vec<i64> = candidates.iter().filter(|c| carried.contains(&c.notification_id)).map(|c| c.id).collect();
    let id = d.store.merge_into_digest(name, &merged, &message, now_ms()).await?;
    d.metrics.digests.with_label_values(&[name]).inc();
    info!(
        target = name,
        digest = id,
        msg_uuid = %message.msg_uuid,
        notifications = carried.len(),
        messages = merged.len(),
        kept = keep,
        "merged waiting messages into a digest"
    );
    Ok(merged)
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
            // A refused connection proves nothing was posted; a timeout or a lost answer does not.
            let reason = if e.is_connect() {
                Reason::Connect
            } else if e.is_timeout() {
                Reason::Timeout
            } else {
                Reason::Network
            };
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

/// Stores the outcome of an attempt; true if the message is finished (delivered or given up) and the
/// messages behind it are unchanged.
async fn record(d: &Delivery, target: &Target, robot: &Robot, msg: &Pending, outcome: Outcome) -> bool {
    let name = target.name.as_str();
    let attempts = msg.attempts + 1;
    let now = now_ms();
    let failed_request =
        |reason: Reason| d.metrics.notification_requests_failed.with_label_values(&[name, reason.as_str()]).inc();
    let stored = match outcome {
        Outcome::Delivered => {
            d.metrics.notifications.with_label_values(&[name]).inc();
            info!(target = name, msg_uuid = %msg.msg_uuid, attempts, "delivered");
            // Not waited for: a delivery lost to a crash is resent with its msgUuid, which DingTalk drops.
            d.store.submit_delivered(msg.id, attempts, now);
            return true;
        }
        Outcome::Retry { reason, detail } => {
            failed_request(reason);
            let delay = backoff(&d.cfg, attempts);
            warn!(target = name, msg_uuid = %msg.msg_uuid, attempts, reason = reason.as_str(), %detail, retry_in = ?delay, "send failed; will retry");
            d.store.schedule_retry(msg.id, attempts, now + delay.as_millis() as i64, &detail, reason.in_doubt()).await
        }
        Outcome::Throttled { detail } => {
            failed_request(Reason::Throttled);
            d.metrics.throttled.with_label_values(&[name]).inc();
            let penalty = d.cfg.throttle_penalty;
            robot.pause(penalty);
            if let Err(e) = d.store.record_pause(&robot.key, now + penalty.as_millis() as i64).await {
                warn!(target = name, error = %e, "cannot record the throttle pause");
            }
            warn!(target = name, msg_uuid = %msg.msg_uuid, %detail, pause = ?penalty, "DingTalk throttled the robot; pausing it, the message will be resent");
            d.store.schedule_retry(msg.id, attempts, now + penalty.as_millis() as i64, &detail, false).await
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
    false
}

/// Marks a message failed for good; true if that was stored.
async fn give_up(d: &Delivery, name: &str, msg: &Pending, attempts: i64, reason: Reason, detail: &str) -> bool {
    d.metrics.notifications.with_label_values(&[name]).inc();
    d.metrics.notifications_failed.with_label_values(&[name, reason.as_str()]).inc();
    error!(target = name, msg_uuid = %msg.msg_uuid, attempts, reason = reason.as_str(), %detail, hint = reason.hint(), "message given up");
    if let Err(e) = d.store.mark_failed(msg.id, attempts, reason.as_str(), detail, now_ms()).await {
        error!(target = name, msg_uuid = %msg.msg_uuid, error = %e, "cannot record the failure");
        tokio::time::sleep(STORE_RETRY).await;
        return false;
    }
    true
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

    fn robot(messages: u32) -> Robot {
        Robot::new("r".into(), RateLimit { messages, per: Duration::from_secs(60) })
    }

    #[tokio::test(start_paused = true)]
    async fn robot_budget_is_a_sliding_window() {
        let robot = robot(3);
        let start = Instant::now();
        for _ in 0..3 {
            let slot = robot.acquire().await;
            robot.finished(slot);
        }
        assert_eq!(start.elapsed(), Duration::ZERO);
        assert_eq!(robot.available_within(Duration::ZERO), 0);
        assert_eq!(robot.available_within(Duration::from_secs(60)), 3);
        robot.acquire().await;
        assert_eq!(start.elapsed(), Duration::from_secs(60), "the fourth send in a minute waits for the window");
        robot.pause(Duration::from_secs(600));
        assert_eq!(robot.available_within(Duration::from_secs(599)), 0);
        robot.acquire().await;
        assert_eq!(start.elapsed(), Duration::from_secs(660));
    }

    #[tokio::test(start_paused = true)]
    async fn a_send_counts_from_when_it_finished() {
        let robot = robot(1);
        let start = Instant::now();
        let slot = robot.try_acquire().unwrap();
        assert!(robot.try_acquire().is_none());
        tokio::time::sleep(Duration::from_secs(5)).await; // a slow answer
        robot.finished(slot);
        robot.acquire().await;
        assert_eq!(start.elapsed(), Duration::from_secs(65));
    }

    #[tokio::test(start_paused = true)]
    async fn a_restored_robot_keeps_its_window_and_pause() {
        let now = 1_000_000;
        let r = Robot::restore(
            "r".into(),
            RateLimit { messages: 2, per: Duration::from_secs(60) },
            &[now - 50_000, now - 10_000],
            None,
            now,
        );
        assert_eq!(r.wait_time(), Duration::from_secs(10));
        let r = Robot::restore(
            "r".into(),
            RateLimit { messages: 2, per: Duration::from_secs(60) },
            &[],
            Some(now + 300_000),
            now,
        );
        assert_eq!(r.wait_time(), Duration::from_secs(300));
        assert_eq!(r.available_within(Duration::from_secs(301)), 2);
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
