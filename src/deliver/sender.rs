//! One target's sender, the delivery half of an alert's path: outbox -> expiry -> backoff -> budget ->
//! storm policy -> channel -> record. Messages go in order: one being retried holds back those behind it
//! (for the DingTalk app robot, only those to the same recipients).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, watch};

use crate::shutdown::Shutdown;
use tokio::time::Instant;
use tracing::{debug, error, info, warn};

use super::storm::{make_digest, storm};
use super::{Budget, Delivery, GiveUp, backoff, human};
use crate::channel::{Outcome, Partial, Reason, Request, Sent};
use crate::clock::now_ms;
use crate::config::Target;
use crate::store::{Kind, Pending};

/// How long a sender waits on a store error before trying again.
const STORE_RETRY: Duration = Duration::from_secs(1);
/// While the budget is exhausted, how often the sender looks again (the backlog may call for a digest
/// meanwhile).
const RECHECK: Duration = Duration::from_secs(1);
/// How many pending messages a sender reads from the outbox at once.
const READ_AHEAD: usize = 16;

/// What the sender does next with the message at the head of its queue.
enum Step {
    /// Nothing waits: sleep until woken.
    Idle,
    /// Past `delivery.max_age`.
    Expired(Pending),
    /// Its retry is not due yet.
    NotYet(Duration),
    /// The budget has no send free for this long.
    Budget(Pending, Duration),
    Send(Pending),
}

/// Whether the previous turn's read-ahead copies are still true.
#[derive(PartialEq, Eq)]
enum Ahead {
    /// The last message was finished (delivered or given up) and nothing else changed the outbox.
    Valid,
    Stale,
}

pub struct Sender {
    target: Arc<Target>,
    budget: Arc<Budget>,
    /// The delivery settings in force; a reload sends new ones.
    delivery: watch::Receiver<Arc<Delivery>>,
    d: Arc<Delivery>,
    wake: Arc<Notify>,
    shutdown: Shutdown,
    /// The next messages in order, read ahead. Only this sender changes its target's pending messages, so
    /// the copies stay true while each is finished in turn; anything else drops them.
    ahead: VecDeque<Pending>,
    /// The message already counted as waiting for the budget (counted once, however long it waits).
    counted_wait: Option<i64>,
}

/// Delivers a target's messages until shutdown.
pub async fn run_sender(
    target: Arc<Target>,
    budget: Arc<Budget>,
    mut delivery: watch::Receiver<Arc<Delivery>>,
    wake: Arc<Notify>,
    shutdown: Shutdown,
) {
    let d = delivery.borrow_and_update().clone();
    let mut s = Sender { target, budget, delivery, d, wake, shutdown, ahead: VecDeque::new(), counted_wait: None };
    debug!(target = s.name(), "sender started");
    let mut ahead = Ahead::Valid;
    while !s.shutdown.is_shutdown() {
        if ahead == Ahead::Stale {
            s.ahead.clear();
        }
        if s.delivery.has_changed().unwrap_or(false) {
            s.d = s.delivery.borrow_and_update().clone();
        }
        ahead = Ahead::Stale;
        let step = match s.next().await {
            Ok(step) => step,
            Err(()) => {
                s.pause(STORE_RETRY).await;
                continue;
            }
        };
        match step {
            Step::Idle => {
                tokio::select! {
                    _ = s.wake.notified() => {}
                    _ = s.shutdown.recv() => {}
                }
            }
            Step::Expired(msg) => s.expire(msg).await,
            // New messages may overtake the one waiting (to other recipients): they wake the sender.
            Step::NotYet(wait) if s.target.channel.caps().orders_by_recipient => s.pause_or_wake(wait).await,
            Step::NotYet(wait) => s.pause(wait).await,
            Step::Budget(msg, wait) => s.wait_for_budget(&msg, wait).await,
            // Disabled after the message was queued (by a reload): given up, never sent late.
            Step::Send(msg) if !super::enabled(&s.d.store, &s.target) => {
                let detail = "the target was disabled before it was sent";
                s.give_up(&msg, msg.attempts, GiveUp::Disabled, detail).await;
            }
            Step::Send(msg) => match s.send(msg).await {
                Some(finished) => ahead = finished,
                None => break,
            },
        }
    }
    debug!(target = s.name(), "sender stopped");
}

impl Sender {
    fn name(&self) -> &str {
        &self.target.name
    }

    /// The head of the queue and what to do with it.
    async fn next(&mut self) -> Result<Step, ()> {
        let msg = match self.ahead.pop_front() {
            Some(msg) => msg,
            None => match self.d.store.pending(&self.target.name, READ_AHEAD).await {
                Ok(batch) => {
                    self.ahead = batch.into();
                    match self.ahead.pop_front() {
                        Some(msg) => msg,
                        None => return Ok(Step::Idle),
                    }
                }
                Err(e) => {
                    error!(target = self.name(), error = %e, "cannot read the outbox; retrying");
                    return Err(());
                }
            },
        };
        let now = now_ms();
        let expires_ms = msg.created_at_ms + self.d.cfg.max_age.as_millis() as i64;
        if now >= expires_ms {
            return Ok(Step::Expired(msg));
        }
        let msg = if msg.next_attempt_ms > now {
            match self.due_behind(msg, now) {
                Ok(due) => due,
                Err(head) => {
                    let wait = (head.next_attempt_ms.min(expires_ms) - now) as u64;
                    return Ok(Step::NotYet(Duration::from_millis(wait)));
                }
            }
        } else {
            msg
        };
        let wait = self.budget.wait_time();
        if !wait.is_zero() {
            return Ok(Step::Budget(msg, wait));
        }
        Ok(Step::Send(msg))
    }

    /// The head is waiting for its retry. Where only each recipient's order counts, the first message
    /// behind it that is due and reaches nobody an earlier message still owes is taken instead (the head
    /// goes back in front); `Err(head)` when there is none, or the target keeps one order.
    fn due_behind(&mut self, head: Pending, now: i64) -> Result<Pending, Pending> {
        use crate::channel::Recipients;
        if !self.target.channel.caps().orders_by_recipient {
            return Err(head);
        }
        let to = |m: &Pending| m.recipients.as_ref().map(|d| d.to.clone());
        let mut owed: Vec<Recipients> = to(&head).into_iter().collect();
        for (i, m) in self.ahead.iter().enumerate() {
            let Some(r) = to(m) else { return Err(head) };
            if m.next_attempt_ms <= now && !owed.iter().any(|o| o.meets(&r)) {
                let due = self.ahead.remove(i).expect("in range");
                self.ahead.push_front(head);
                return Ok(due);
            }
            owed.push(r);
        }
        Err(head)
    }

    /// Sleeps for `wait` or until shutdown.
    async fn pause(&mut self, wait: Duration) {
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = self.shutdown.recv() => {}
        }
    }

    /// An expired message is carried on by a digest (with a fresh max_age of its own) together with
    /// everything behind it, unless the receiver may already have it: then it is given up rather than
    /// risk showing it twice. An expired digest is given up.
    async fn expire(&mut self, msg: Pending) {
        let max_age = human(self.d.cfg.max_age);
        if msg.kind == Kind::Digest || !self.target.channel.caps().digests {
            let detail = format!("not delivered within delivery.max_age ({max_age}); attempts: {}", msg.attempts);
            self.give_up(&msg, msg.attempts, GiveUp::Expired, &detail).await;
            return;
        }
        let why = format!(
            "They could not be delivered within delivery.max_age ({max_age}), so they are listed together now."
        );
        match make_digest(&self.d, &self.target, 0, 1, &why).await {
            Ok(merged) if merged.contains(&msg.id) => {}
            Ok(_) => {
                let detail = format!(
                    "not delivered within delivery.max_age ({max_age}); its last attempt got no answer, so {} may have posted it",
                    self.target.channel.service()
                );
                self.give_up(&msg, msg.attempts, GiveUp::Expired, &detail).await;
            }
            Err(e) => {
                error!(target = self.name(), error = %e, "cannot make a digest of expired messages");
                self.pause(STORE_RETRY).await;
            }
        }
    }

    /// Sleeps for `wait`, until a new message arrives, or until shutdown.
    async fn pause_or_wake(&mut self, wait: Duration) {
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = self.wake.notified() => {}
            _ = self.shutdown.recv() => {}
        }
    }

    async fn wait_for_budget(&mut self, msg: &Pending, wait: Duration) {
        if self.counted_wait != Some(msg.id) {
            self.counted_wait = Some(msg.id);
            self.d.metrics.rate_limited(self.name());
            debug!(target = self.name(), ?wait, "waiting for the rate budget");
        }
        tokio::select! {
            _ = tokio::time::sleep(wait.min(RECHECK)) => {}
            _ = self.wake.notified() => {}
            _ = self.shutdown.recv() => {}
        }
    }

    /// One attempt: storm policy, budget slot, the in-doubt mark, the channel, the record. `None`: shutdown
    /// abandoned the attempt; otherwise whether the read-ahead copies are still true.
    async fn send(&mut self, msg: Pending) -> Option<Ahead> {
        if msg.kind == Kind::Message {
            match storm(&self.d, &self.target, &self.budget).await {
                Ok(true) => return Some(Ahead::Stale),
                Ok(false) => {}
                Err(e) => error!(target = self.name(), error = %e, "cannot make a digest; sending messages one by one"),
            }
        }
        // Another target on the same budget may have taken the last free send meanwhile.
        let Ok(slot) = self.budget.try_acquire() else { return Some(Ahead::Stale) };
        if self.budget.limited() {
            // Recorded before the request leaves, at the latest moment the receiver could get it, so a
            // restart after a kill at any point still counts this send.
            let latest_ms = now_ms() + self.d.cfg.request_timeout.as_millis() as i64;
            if let Err(e) = self.d.store.begin_attempt(msg.id, &self.budget.key, latest_ms).await {
                // Sending unrecorded beats not sending; the in-memory budget still holds.
                warn!(target = self.name(), error = %e, "cannot record the attempt");
            }
        } else {
            // No budget to keep across restarts: the in-doubt mark is queued ahead of the outcome.
            self.d.store.submit_attempt(msg.id);
        }
        // An attempt under way when shutdown starts gets the grace period, then is abandoned: the message
        // stays pending and its msgUuid keeps a resend after restart from posting twice.
        let shutdown = self.shutdown.clone();
        let outcome = tokio::select! {
            o = self.attempt(&msg) => o,
            _ = shutdown.grace_over(self.d.shutdown_grace) => {
                warn!(target = self.name(), msg_uuid = %msg.msg_uuid, "send still in flight after the shutdown grace period; left queued for the next start");
                return None;
            }
        };
        self.budget.finished(slot);
        Some(self.record(&msg, outcome).await)
    }

    /// The request, timed, counted and recorded.
    async fn attempt(&self, msg: &Pending) -> Outcome {
        let (channel, name) = (&self.target.channel, self.name());
        let started = Instant::now();
        let at_ms = now_ms();
        // Durations in the text ("for 24m") are computed now, not when the notification arrived.
        let body = crate::render::send_time::resolve(&msg.body, now_ms());
        let to = msg.recipients.as_ref().map(|d| &d.to);
        let request = Request { client: &self.d.client, target: name, msg_uuid: &msg.msg_uuid, body: &body, to };
        let Sent { outcome, status } = channel.send(request).await;
        if channel.caps().sends_requests {
            self.d.metrics.request(name, started.elapsed());
            let (what, reason, detail) = outcome.summary();
            self.d.store.submit_attempt_log(crate::store::Attempt {
                message_id: msg.id,
                at_ms,
                duration_ms: started.elapsed().as_millis() as i64,
                http_status: status,
                outcome: what,
                reason,
                detail: detail.to_string(),
            });
        }
        outcome
    }

    /// Stores the outcome of an attempt.
    async fn record(&mut self, msg: &Pending, outcome: Outcome) -> Ahead {
        let (d, name) = (&self.d, self.target.name.as_str());
        let attempts = msg.attempts + 1;
        let now = now_ms();
        let stored = match outcome {
            Outcome::Partial(partial) => match self.some_recipients(msg, attempts, *partial).await {
                Some(stored) => stored,
                None => return self.delivered(msg, attempts).await,
            },
            Outcome::Delivered => {
                // Every recipient the message was still to reach got it.
                if let Some(r) = &msg.recipients {
                    d.metrics.recipients(name, r.to.count(), 0);
                }
                return self.delivered(msg, attempts).await;
            }
            Outcome::Retry { reason, detail } => {
                d.metrics.request_failed(name, reason);
                let delay = backoff(&d.cfg, attempts);
                warn!(target = name, msg_uuid = %msg.msg_uuid, attempts, reason = reason.as_str(), %detail, retry_in = ?delay, "send failed; will retry");
                d.store
                    .schedule_retry(msg.id, attempts, now + delay.as_millis() as i64, &detail, reason.in_doubt())
                    .await
            }
            Outcome::Throttled { detail, retry_after } => {
                d.metrics.request_failed(name, Reason::Throttled);
                d.metrics.throttled(name);
                let penalty = retry_after.unwrap_or_else(|| {
                    self.target.channel.throttle_pause(self.target.rate_limit, d.cfg.throttle_penalty)
                });
                self.budget.pause(penalty);
                if let Err(e) = d.store.record_pause(&self.budget.key, now + penalty.as_millis() as i64).await {
                    warn!(target = name, error = %e, "cannot record the throttle pause");
                }
                warn!(target = name, msg_uuid = %msg.msg_uuid, %detail, pause = ?penalty, "the receiver throttled this robot; pausing it, the message will be resent");
                d.store.schedule_retry(msg.id, attempts, now + penalty.as_millis() as i64, &detail, false).await
            }
            Outcome::Failed { reason, detail } => {
                d.metrics.request_failed(name, reason);
                return self.give_up(msg, attempts, GiveUp::Channel(reason), &detail).await;
            }
        };
        if let Err(e) = stored {
            // The message stays pending and is resent with the same msgUuid, which the receiver drops.
            error!(target = name, msg_uuid = %msg.msg_uuid, error = %e, "cannot record the send outcome");
            self.pause(STORE_RETRY).await;
        }
        Ahead::Stale
    }

    /// A message that reached every recipient it is going to reach.
    async fn delivered(&self, msg: &Pending, attempts: i64) -> Ahead {
        let (d, name) = (&self.d, self.target.name.as_str());
        let now = now_ms();
        d.metrics.delivered(name);
        info!(target = name, msg_uuid = %msg.msg_uuid, attempts, "delivered");
        d.store.submit_delivered(msg.id, attempts, now);
        // DingTalk drops a resend of a msgUuid it has, so a delivery lost to a crash costs nothing and is
        // not waited for. Feishu, WeCom and the app API would show it twice: the record is waited for,
        // which leaves only the instant between their answer and the commit.
        if !self.target.channel.caps().drops_repeats
            && let Err(e) = d.store.flush().await
        {
            warn!(target = name, msg_uuid = %msg.msg_uuid, error = %e, "cannot record the delivery yet; it is remembered and never sent again");
        }
        Ahead::Valid
    }

    /// Some recipients got the message and some did not: `failed` never will (given up, each named in the
    /// log), `retry` get it later, alone. Returns the store's answer when recipients are left to retry;
    /// `None` when the message is finished.
    async fn some_recipients(
        &self,
        msg: &Pending,
        attempts: i64,
        p: Partial,
    ) -> Option<Result<(), crate::store::StoreError>> {
        let (d, name) = (&self.d, self.target.name.as_str());
        let delivery = *msg.recipients.clone()?;
        let counts = (p.reached.len(), p.failed.len(), p.retry.len());
        if !p.failed.is_empty() {
            error!(target = name, msg_uuid = %msg.msg_uuid, recipients = ?p.failed, reason = p.reason.as_str(), hint = p.reason.hint(), "recipients given up");
        }
        let retry = !p.retry.is_empty();
        if retry {
            warn!(target = name, msg_uuid = %msg.msg_uuid, recipients = ?p.retry, "not reached this time; these recipients only will be sent it again");
        }
        let delivery = delivery.narrowed(p.reached, p.failed, p.retry);
        let now = now_ms();
        let next = if retry { now + backoff(&d.cfg, attempts).as_millis() as i64 } else { now };
        let stored = d.store.narrow_recipients(msg.id, attempts, next, &delivery, &p.detail).await;
        // Counted once recorded: a crash before this resends to every recipient of the call, and counts them then.
        if stored.is_ok() || !retry {
            d.metrics.recipients(name, counts.0, counts.2);
            d.metrics.recipients_failed(name, p.reason, counts.1);
        }
        if !retry {
            if let Err(e) = stored {
                warn!(target = name, msg_uuid = %msg.msg_uuid, error = %e, "cannot record the recipients' outcomes");
            }
            return None;
        }
        Some(stored)
    }

    /// Marks a message failed for good.
    async fn give_up(&mut self, msg: &Pending, attempts: i64, why: GiveUp, detail: &str) -> Ahead {
        let name = self.target.name.as_str();
        self.d.metrics.given_up(name, why);
        if let Some(d) = &msg.recipients {
            self.d.metrics.recipients_failed(name, why, d.to.count());
        }
        error!(target = name, msg_uuid = %msg.msg_uuid, attempts, reason = why.as_str(), %detail, hint = why.hint(), "message given up");
        if let Err(e) = self.d.store.mark_failed(msg.id, attempts, why.as_str(), detail, now_ms()).await {
            error!(target = name, msg_uuid = %msg.msg_uuid, error = %e, "cannot record the failure");
            self.pause(STORE_RETRY).await;
            return Ahead::Stale;
        }
        Ahead::Valid
    }
}
