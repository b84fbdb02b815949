//! SQLite as a [`Backend`]: each operation is the inherent one of [`SqliteStore`] (in the file of its
//! concern), boxed.

use std::collections::HashMap;

use super::*;
use crate::channel::BoxFuture;
use crate::store::backend::Backend;

impl Backend for SqliteStore {
    fn console_key(&self) -> [u8; 32] {
        SqliteStore::console_key(self)
    }

    fn last_enqueue_ms(&self) -> i64 {
        SqliteStore::last_enqueue_ms(self)
    }

    fn enqueue<'a>(
        &'a self,
        n: NewNotification<'a>,
        messages: &'a [Message],
        now_ms: i64,
    ) -> BoxFuture<'a, Result<Enqueued, StoreError>> {
        Box::pin(SqliteStore::enqueue(self, n, messages, now_ms))
    }

    fn pending_count<'a>(&'a self, target: &'a str, up_to: usize) -> BoxFuture<'a, Result<i64, StoreError>> {
        Box::pin(SqliteStore::pending_count(self, target, up_to))
    }

    #[cfg(test)]
    fn next_pending<'a>(&'a self, target: &'a str) -> BoxFuture<'a, Result<Option<Pending>, StoreError>> {
        Box::pin(SqliteStore::next_pending(self, target))
    }

    fn pending<'a>(&'a self, target: &'a str, limit: usize) -> BoxFuture<'a, Result<Vec<Pending>, StoreError>> {
        Box::pin(SqliteStore::pending(self, target, limit))
    }

    fn mark_delivered<'a>(&'a self, id: i64, attempts: i64, now_ms: i64) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(SqliteStore::mark_delivered(self, id, attempts, now_ms))
    }

    fn submit_delivered(&self, id: i64, attempts: i64, now_ms: i64) {
        SqliteStore::submit_delivered(self, id, attempts, now_ms)
    }

    fn submit_attempt(&self, id: i64) {
        SqliteStore::submit_attempt(self, id)
    }

    fn mark_failed<'a>(
        &'a self,
        id: i64,
        attempts: i64,
        reason: &'a str,
        detail: &'a str,
        now_ms: i64,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(SqliteStore::mark_failed(self, id, attempts, reason, detail, now_ms))
    }

    fn schedule_retry<'a>(
        &'a self,
        id: i64,
        attempts: i64,
        next_attempt_ms: i64,
        detail: &'a str,
        in_doubt: bool,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(SqliteStore::schedule_retry(self, id, attempts, next_attempt_ms, detail, in_doubt))
    }

    fn narrow_recipients<'a>(
        &'a self,
        id: i64,
        attempts: i64,
        next_attempt_ms: i64,
        recipients: &'a Delivery,
        detail: &'a str,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(SqliteStore::narrow_recipients(self, id, attempts, next_attempt_ms, recipients, detail))
    }

    fn queue_stats<'a>(&'a self) -> BoxFuture<'a, Result<Vec<QueueStats>, StoreError>> {
        Box::pin(SqliteStore::queue_stats(self))
    }

    fn records<'a>(&'a self, target: &'a str) -> BoxFuture<'a, Result<Vec<Record>, StoreError>> {
        Box::pin(SqliteStore::records(self, target))
    }

    fn digest_candidates<'a>(&'a self, target: &'a str, limit: usize) -> BoxFuture<'a, Result<Candidates, StoreError>> {
        Box::pin(SqliteStore::digest_candidates(self, target, limit))
    }

    fn merge_into_digest<'a>(
        &'a self,
        target: &'a str,
        merged: &'a [i64],
        digest: &'a Message,
        now_ms: i64,
    ) -> BoxFuture<'a, Result<i64, StoreError>> {
        Box::pin(SqliteStore::merge_into_digest(self, target, merged, digest, now_ms))
    }

    fn begin_attempt<'a>(&'a self, id: i64, robot: &'a str, sent_at_ms: i64) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(SqliteStore::begin_attempt(self, id, robot, sent_at_ms))
    }

    fn record_pause<'a>(&'a self, robot: &'a str, until_ms: i64) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(SqliteStore::record_pause(self, robot, until_ms))
    }

    fn robot_state<'a>(
        &'a self,
        robot: &'a str,
        since_ms: i64,
        now_ms: i64,
    ) -> BoxFuture<'a, Result<RobotState, StoreError>> {
        Box::pin(SqliteStore::robot_state(self, robot, since_ms, now_ms))
    }

    fn switch(&self, target: &str) -> Option<Switch> {
        SqliteStore::switch(self, target)
    }

    fn set_switch<'a>(&'a self, target: &'a str, switch: Option<Switch>) -> BoxFuture<'a, Result<usize, StoreError>> {
        Box::pin(SqliteStore::set_switch(self, target, switch))
    }

    fn last_outcomes<'a>(
        &'a self,
        targets: Vec<String>,
    ) -> BoxFuture<'a, Result<HashMap<String, LastOutcomes>, StoreError>> {
        Box::pin(SqliteStore::last_outcomes(self, targets))
    }

    fn record_page<'a>(&'a self, f: RecordFilter) -> BoxFuture<'a, Result<Vec<RecordRow>, StoreError>> {
        Box::pin(SqliteStore::record_page(self, f))
    }

    fn record<'a>(&'a self, id: i64) -> BoxFuture<'a, Result<Option<RecordDetail>, StoreError>> {
        Box::pin(SqliteStore::record(self, id))
    }

    fn skipped<'a>(&'a self, target: &'a str) -> BoxFuture<'a, Result<Vec<Skipped>, StoreError>> {
        Box::pin(SqliteStore::skipped(self, target))
    }

    fn submit_attempt_log(&self, a: Attempt) {
        SqliteStore::submit_attempt_log(self, a)
    }

    fn prune<'a>(&'a self, before_ms: i64) -> BoxFuture<'a, Result<usize, StoreError>> {
        Box::pin(SqliteStore::prune(self, before_ms))
    }

    fn index_text<'a>(&'a self, budget: i64) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(SqliteStore::index_text(self, budget))
    }

    fn flush<'a>(&'a self) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(SqliteStore::flush(self))
    }

    fn problem(&self) -> Option<String> {
        SqliteStore::problem(self)
    }

    fn owed(&self) -> usize {
        SqliteStore::owed(self)
    }

    fn watch<'a>(&'a self, probe: bool) -> BoxFuture<'a, ()> {
        Box::pin(SqliteStore::watch(self, probe))
    }

    fn ping<'a>(&'a self) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(SqliteStore::ping(self))
    }
}
