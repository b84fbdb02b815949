//! The store's interface: what the intake, the senders, the console and maintenance ask of a store
//! ([`Backend`]), and [`Store`], the handle they hold. SQLite ([`super::sqlite`]) is the first
//! implementation; another (PostgreSQL) implements the same trait beside it and is chosen at open.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use super::*;
use crate::channel::{BoxFuture, Delivery};
use crate::config::SyncMode;
use crate::render::Message;

/// Every operation of a store, in the types of [`super`]. Futures are boxed so a store can be chosen at
/// run time.
pub trait Backend: Send + Sync {
    /// The key the console signs sessions and CSRF tokens with: the same across restarts.
    fn console_key(&self) -> [u8; 32];
    /// When the intake last enqueued a notification (wall-clock ms; 0: not since the store opened), so
    /// background work on the writer can wait for a lull.
    fn last_enqueue_ms(&self) -> i64;

    // outbox
    /// Commits a notification and its messages in one transaction, unless an identical notification was
    /// accepted within the dedup window (checked in the same transaction, so two peers racing still
    /// produce one).
    fn enqueue<'a>(
        &'a self,
        n: NewNotification<'a>,
        messages: &'a [Message],
        now_ms: i64,
    ) -> BoxFuture<'a, Result<Enqueued, StoreError>>;
    /// How many messages wait for a target, counting no further than `up_to`.
    fn pending_count<'a>(&'a self, target: &'a str, up_to: usize) -> BoxFuture<'a, Result<i64, StoreError>>;
    /// The oldest message still pending for a target: targets deliver in order.
    #[cfg(test)]
    fn next_pending<'a>(&'a self, target: &'a str) -> BoxFuture<'a, Result<Option<Pending>, StoreError>>;
    /// The oldest `limit` messages pending for a target, in delivery order.
    /// Leaves out delivered messages whose record the disk refused (they are never sent again).
    fn pending<'a>(&'a self, target: &'a str, limit: usize) -> BoxFuture<'a, Result<Vec<Pending>, StoreError>>;
    fn mark_delivered<'a>(&'a self, id: i64, attempts: i64, now_ms: i64) -> BoxFuture<'a, Result<(), StoreError>>;
    /// [`mark_delivered`](Self::mark_delivered) without waiting for the commit. If the process dies before
    /// it commits, the message is sent again after restart with the same msgUuid, which the receiver drops.
    /// A record that does not commit (a full disk) is remembered: the message is left out of
    /// [`pending`](Self::pending), so it is never sent again, and [`watch`](Self::watch) writes the record
    /// once the disk takes it.
    fn submit_delivered(&self, id: i64, attempts: i64, now_ms: i64);
    /// [`begin_attempt`](Self::begin_attempt) for a robot without a budget, queued (ahead of anything
    /// submitted later) without waiting for the commit.
    fn submit_attempt(&self, id: i64);
    fn mark_failed<'a>(
        &'a self,
        id: i64,
        attempts: i64,
        reason: &'a str,
        detail: &'a str,
        now_ms: i64,
    ) -> BoxFuture<'a, Result<(), StoreError>>;
    /// Schedules another attempt; `in_doubt` says whether the failed one may still have been posted.
    fn schedule_retry<'a>(
        &'a self,
        id: i64,
        attempts: i64,
        next_attempt_ms: i64,
        detail: &'a str,
        in_doubt: bool,
    ) -> BoxFuture<'a, Result<(), StoreError>>;
    /// Records what became of some of a message's recipients and schedules another attempt for the rest
    /// Never in doubt: the answer said who got it.
    fn narrow_recipients<'a>(
        &'a self,
        id: i64,
        attempts: i64,
        next_attempt_ms: i64,
        recipients: &'a Delivery,
        detail: &'a str,
    ) -> BoxFuture<'a, Result<(), StoreError>>;
    /// Depth and oldest message per target with pending messages (targets no longer configured included).
    fn queue_stats<'a>(&'a self) -> BoxFuture<'a, Result<Vec<QueueStats>, StoreError>>;
    /// Every message of a target in the order accepted (tests, diagnostics).
    fn records<'a>(&'a self, target: &'a str) -> BoxFuture<'a, Result<Vec<Record>, StoreError>>;

    // digests
    /// The oldest pending messages of a target that a digest may merge: kind 'message', in order, up to the
    /// first pending digest (which keeps its place), leaving out a message the receiver may already have.
    fn digest_candidates<'a>(&'a self, target: &'a str, limit: usize) -> BoxFuture<'a, Result<Candidates, StoreError>>;
    /// Replaces pending messages by one digest message, in one transaction: the digest takes the place of
    /// the oldest; each merged message records that the digest carries it. Returns the digest's id.
    fn merge_into_digest<'a>(
        &'a self,
        target: &'a str,
        merged: &'a [i64],
        digest: &'a Message,
        now_ms: i64,
    ) -> BoxFuture<'a, Result<i64, StoreError>>;

    // budgets
    /// Before a request leaves: counts it in the robot's (by hash) budget at `sent_at_ms`, and marks the
    /// message in doubt until an answer proves otherwise.
    fn begin_attempt<'a>(&'a self, id: i64, robot: &'a str, sent_at_ms: i64) -> BoxFuture<'a, Result<(), StoreError>>;
    fn record_pause<'a>(&'a self, robot: &'a str, until_ms: i64) -> BoxFuture<'a, Result<(), StoreError>>;
    /// A robot's sends since `since_ms` (oldest first) and its pause, if one is still running at `now_ms`.
    fn robot_state<'a>(
        &'a self,
        robot: &'a str,
        since_ms: i64,
        now_ms: i64,
    ) -> BoxFuture<'a, Result<RobotState, StoreError>>;

    // console
    /// The console's switch for `target`, if it has one.
    fn switch(&self, target: &str) -> Option<Switch>;
    /// Switches `target` on or off (`Some`), or clears the switch so the configuration decides (`None`).
    /// Switching off gives up the target's waiting messages as `disabled`, so switching on again does not
    /// flood its group with old notifications. Returns how many were given up.
    fn set_switch<'a>(&'a self, target: &'a str, switch: Option<Switch>) -> BoxFuture<'a, Result<usize, StoreError>>;
    /// Each of `targets`' last delivery and last failure: a few index seeks per target, however many
    /// records the store keeps. The last delivery is the latest finish among the target's newest
    /// delivered messages (an older message retried can finish after a newer one).
    fn last_outcomes<'a>(
        &'a self,
        targets: Vec<String>,
    ) -> BoxFuture<'a, Result<HashMap<String, LastOutcomes>, StoreError>>;
    /// A page of push records, newest first (on the reader's connection; see [`records`]).
    fn record_page<'a>(&'a self, f: RecordFilter) -> BoxFuture<'a, Result<Vec<RecordRow>, StoreError>>;
    /// One message's record: the message, its attempts, and the messages a digest carried.
    fn record<'a>(&'a self, id: i64) -> BoxFuture<'a, Result<Option<RecordDetail>, StoreError>>;
    /// Notifications of `target` acknowledged without a message, oldest first.
    fn skipped<'a>(&'a self, target: &'a str) -> BoxFuture<'a, Result<Vec<Skipped>, StoreError>>;
    /// Records one attempt (queued with the group commit, not waited for).
    fn submit_attempt_log(&self, a: Attempt);

    // maintenance
    /// Deletes finished messages (and notifications left without messages) finished before `before_ms`,
    /// and send times too old for any rate budget. In batches of [`PRUNE_BATCH`], each its own
    /// transaction, so the intake never waits long behind a large retention sweep.
    fn prune<'a>(&'a self, before_ms: i64) -> BoxFuture<'a, Result<usize, StoreError>>;
    /// Adds the messages stored since the last call to the text index the records search: about `budget`
    /// bytes of bodies at most (always at least one message), in one short transaction. Says whether more
    /// are waiting.
    fn index_text<'a>(&'a self, budget: i64) -> BoxFuture<'a, Result<bool, StoreError>>;
    /// Waits until everything submitted before has been committed.
    fn flush<'a>(&'a self) -> BoxFuture<'a, Result<(), StoreError>>;
    /// What keeps the store from accepting notifications: its file deleted or replaced, or writes failing.
    fn problem(&self) -> Option<String>;
    /// Deliveries made whose records are still to be written.
    fn owed(&self) -> usize;
    /// One look at the store, for the watcher: whether its file is still the one opened; while writes are
    /// failing (or when `probe`), whether a 64 KiB write commits again; and the owed delivery records,
    /// written if the disk takes them.
    fn watch<'a>(&'a self, probe: bool) -> BoxFuture<'a, ()>;
    /// A cheap read that proves the database answers (readiness).
    fn ping<'a>(&'a self) -> BoxFuture<'a, Result<(), StoreError>>;
}

/// The store the bridge runs on: a handle (cheap to clone) over its backend, whose operations it derefs to.
#[derive(Clone)]
pub struct Store(Arc<dyn Backend>);

impl Store {
    /// Opens (creating if needed) the embedded store at `path`.
    pub fn open(path: &Path, sync: SyncMode) -> Result<Store, StoreError> {
        Ok(Store(Arc::new(super::sqlite::SqliteStore::open(path, sync)?)))
    }
}

impl std::ops::Deref for Store {
    type Target = dyn Backend;

    fn deref(&self) -> &(dyn Backend + 'static) {
        &*self.0
    }
}
