//! A receiving end's send budget: at most `messages` sends in any window of `per`, shared by every target
//! that posts to the same end, plus the pause the receiver imposes when it throttles. A protocol may hold
//! more than one window at once (Feishu: 100 a minute and 5 a second); every window must allow a send. A send counts from
//! when it *finished*: the receiver got it somewhere between start and finish, so a window measured from
//! finishes is never shorter than the one the receiver sees, whatever the network's delays.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use crate::channel::RateLimit;

pub struct Budget {
    /// A hash of the receiving end: how the store tells budgets apart without keeping a credential.
    pub key: String,
    state: Mutex<State>,
}

struct State {
    /// The configured window (`rate_limit`; `off` turns the whole budget off).
    limit: RateLimit,
    /// Windows the protocol holds besides it.
    also: &'static [RateLimit],
    /// Start (while in flight) or finish times of the sends in the longest window, oldest first.
    sent: VecDeque<Instant>,
    paused_until: Option<Instant>,
}

impl State {
    fn windows(&self) -> impl Iterator<Item = RateLimit> + '_ {
        std::iter::once(self.limit).chain(self.also.iter().copied())
    }

    /// Sends that still count at `at` in `window`.
    fn counted(&self, window: RateLimit, at: Instant) -> usize {
        self.sent.iter().filter(|&&t| t + window.per > at).count()
    }

    /// How long from `now` until a send is allowed (zero: now). Forgets what no longer counts.
    fn wait(&mut self, now: Instant) -> Duration {
        if let Some(until) = self.paused_until {
            if until > now {
                return until - now;
            }
            self.paused_until = None;
        }
        if self.limit.is_unlimited() {
            return Duration::ZERO;
        }
        let longest = self.windows().map(|w| w.per).max().unwrap_or(self.limit.per);
        while self.sent.front().is_some_and(|&t| now.duration_since(t) >= longest) {
            self.sent.pop_front();
        }
        let mut wait = Duration::ZERO;
        for window in self.windows() {
            let messages = window.messages as usize;
            if self.counted(window, now) < messages {
                continue;
            }
            // The window is full: the next send may go when enough of its oldest sends have aged out.
            let oldest_needed = self.sent[self.sent.len() - messages];
            wait = wait.max((oldest_needed + window.per).saturating_duration_since(now));
        }
        wait
    }
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

impl Budget {
    pub fn new(key: String, limit: RateLimit) -> Self {
        Budget::with_windows(key, limit, &[])
    }

    /// A budget that also holds the protocol's own windows `also` (they apply unless `limit` is off).
    pub fn with_windows(key: String, limit: RateLimit, also: &'static [RateLimit]) -> Self {
        Budget { key, state: Mutex::new(State { limit, also, sent: VecDeque::new(), paused_until: None }) }
    }

    /// A budget whose recent sends and pause (wall-clock milliseconds, from the store) still count, so a
    /// restart neither resets the window nor lifts the receiver's penalty.
    pub fn restore(
        key: String,
        limit: RateLimit,
        also: &'static [RateLimit],
        sends_ms: &[i64],
        paused_until_ms: Option<i64>,
        now_ms: i64,
    ) -> Self {
        let budget = Budget::with_windows(key, limit, also);
        {
            let mut s = budget.lock();
            s.sent = sends_ms.iter().filter_map(|&t| instant_at(t, now_ms)).collect();
            s.paused_until = paused_until_ms.and_then(|t| instant_at(t, now_ms));
        }
        budget
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A new limit (after a reload); the sends already made still count.
    pub fn set_limit(&self, limit: RateLimit) {
        self.lock().limit = limit;
    }

    /// Whether sends count against a budget (`rate_limit` is not `off`).
    pub fn limited(&self) -> bool {
        !self.lock().limit.is_unlimited()
    }

    /// Sends the budget allows within `horizon` from now (zero while paused beyond it; `usize::MAX`:
    /// unlimited).
    pub fn available_within(&self, horizon: Duration) -> usize {
        let s = self.lock();
        let at = Instant::now() + horizon;
        if s.paused_until.is_some_and(|until| until > at) {
            return 0;
        }
        if s.limit.is_unlimited() {
            return usize::MAX;
        }
        // The configured window has the room its sends leave at the horizon (as a single window always
        // had: the storm policy plans with it). A protocol's shorter window refills within the horizon,
        // once per full window, so it limits only what could go in a row.
        let now = Instant::now();
        let configured = (s.limit.messages as usize).saturating_sub(s.counted(s.limit, at));
        s.also
            .iter()
            .map(|w| {
                let messages = w.messages as usize;
                let refills = (horizon.as_millis() / w.per.as_millis().max(1)) as usize;
                messages.saturating_sub(s.counted(*w, now)).saturating_add(messages.saturating_mul(refills))
            })
            .fold(configured, usize::min)
    }

    /// How long the receiver's throttle pause has still to run, if it is paused.
    pub fn paused_for(&self) -> Option<Duration> {
        let now = Instant::now();
        self.lock().paused_until.filter(|u| *u > now).map(|u| u - now)
    }

    /// How long until the budget allows a send (zero: now).
    pub fn wait_time(&self) -> Duration {
        self.lock().wait(Instant::now())
    }

    /// Takes a send from the budget if one is free now, in one step under one lock, so targets sharing
    /// the budget cannot both take its last send. The slot is passed to [`finished`](Self::finished);
    /// otherwise, how long until one is free.
    pub fn try_acquire(&self) -> Result<Instant, Duration> {
        let now = Instant::now();
        let mut s = self.lock();
        let wait = s.wait(now);
        if !wait.is_zero() {
            return Err(wait);
        }
        if !s.limit.is_unlimited() {
            s.sent.push_back(now);
        }
        Ok(now)
    }

    /// Waits until a send is allowed and takes it.
    pub async fn acquire(&self) -> Instant {
        loop {
            match self.try_acquire() {
                Ok(slot) => return slot,
                Err(wait) => tokio::time::sleep(wait.max(Duration::from_millis(1))).await,
            }
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

    /// Stops all sends for `penalty` (the receiver said they come too fast).
    pub fn pause(&self, penalty: Duration) {
        self.lock().paused_until = Some(Instant::now() + penalty);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn budget(messages: u32) -> Budget {
        Budget::new("r".into(), RateLimit { messages, per: Duration::from_secs(60) })
    }

    #[tokio::test(start_paused = true)]
    async fn the_budget_is_a_sliding_window() {
        let budget = budget(3);
        let start = Instant::now();
        for _ in 0..3 {
            let slot = budget.acquire().await;
            budget.finished(slot);
        }
        assert_eq!(start.elapsed(), Duration::ZERO);
        assert_eq!(budget.available_within(Duration::ZERO), 0);
        assert_eq!(budget.available_within(Duration::from_secs(60)), 3);
        budget.acquire().await;
        assert_eq!(start.elapsed(), Duration::from_secs(60), "the fourth send in a minute waits for the window");
        budget.pause(Duration::from_secs(600));
        assert_eq!(budget.available_within(Duration::from_secs(599)), 0);
        budget.acquire().await;
        assert_eq!(start.elapsed(), Duration::from_secs(660));
    }

    #[tokio::test(start_paused = true)]
    async fn every_window_must_allow_a_send() {
        // Feishu's: 100 a minute and 5 a second, at once.
        static PER_SECOND: [RateLimit; 1] = [RateLimit { messages: 5, per: Duration::from_secs(1) }];
        let budget =
            Budget::with_windows("r".into(), RateLimit { messages: 100, per: Duration::from_secs(60) }, &PER_SECOND);
        let start = Instant::now();
        let mut at = vec![];
        for _ in 0..102 {
            let slot = budget.acquire().await;
            budget.finished(slot);
            at.push(start.elapsed());
        }
        // Five in each second...
        for second in 0..20 {
            let within = at.iter().filter(|t| t.as_secs() == second).count();
            assert_eq!(within, 5, "second {second}: {at:?}");
        }
        // ...until the minute's 100 are spent: the 101st waits for the first to age out of the minute.
        assert_eq!(at[99], Duration::from_secs(19));
        assert_eq!(at[100], Duration::from_secs(60));
        assert_eq!(at[101], Duration::from_secs(60), "the first second's five have aged out together");
        // Now: the minute holds 97 (3 free) and this second 2 (3 free).
        assert_eq!(budget.available_within(Duration::ZERO), 3);
        // Over a 15 s horizon the minute's window decides; the second's refills 15 times.
        let fresh =
            Budget::with_windows("f".into(), RateLimit { messages: 100, per: Duration::from_secs(60) }, &PER_SECOND);
        assert_eq!(fresh.available_within(Duration::from_secs(15)), 80);
        assert_eq!(fresh.available_within(Duration::ZERO), 5, "right now, five in a row");
    }

    #[tokio::test(start_paused = true)]
    async fn a_send_counts_from_when_it_finished() {
        let budget = budget(1);
        let start = Instant::now();
        let slot = budget.try_acquire().unwrap();
        assert_eq!(budget.try_acquire(), Err(Duration::from_secs(60)));
        tokio::time::sleep(Duration::from_secs(5)).await; // a slow answer
        budget.finished(slot);
        budget.acquire().await;
        assert_eq!(start.elapsed(), Duration::from_secs(65));
    }

    #[tokio::test(start_paused = true)]
    async fn a_restored_budget_keeps_its_window_and_pause() {
        let now = 1_000_000;
        let limit = RateLimit { messages: 2, per: Duration::from_secs(60) };
        let b = Budget::restore("r".into(), limit, &[], &[now - 50_000, now - 10_000], None, now);
        assert_eq!(b.wait_time(), Duration::from_secs(10));
        let b = Budget::restore("r".into(), limit, &[], &[], Some(now + 300_000), now);
        assert_eq!(b.wait_time(), Duration::from_secs(300));
        assert_eq!(b.available_within(Duration::from_secs(301)), 2);
    }

    /// Several targets on one robot race for its last free send on the multi-thread runtime: exactly one
    /// may take it, however the threads interleave.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn targets_sharing_a_budget_never_both_take_its_last_send() {
        for round in 0..2000 {
            let budget = Arc::new(budget(20));
            for _ in 0..19 {
                budget.try_acquire().unwrap();
            }
            let taken = Arc::new(AtomicUsize::new(0));
            let start = Arc::new(tokio::sync::Barrier::new(8));
            let racers: Vec<_> = (0..8)
                .map(|_| {
                    let (budget, taken, start) = (budget.clone(), taken.clone(), start.clone());
                    tokio::spawn(async move {
                        start.wait().await;
                        for _ in 0..50 {
                            if budget.try_acquire().is_ok() {
                                taken.fetch_add(1, Ordering::SeqCst);
                            }
                            tokio::task::yield_now().await;
                        }
                    })
                })
                .collect();
            for r in racers {
                r.await.unwrap();
            }
            assert_eq!(taken.load(Ordering::SeqCst), 1, "round {round}: the last send was taken more than once");
            assert_eq!(budget.available_within(Duration::ZERO), 0);
        }
    }
}
