//! Keeping the store well: pruning finished records past retention in small batches, the records' text
//! index kept a step behind the intake, commits flushed, and the file's health watched.

use super::*;

impl SqliteStore {
    /// Deletes finished messages (and notifications left without messages) finished before `before_ms`,
    /// and send times too old for any rate budget. In batches of [`PRUNE_BATCH`], each its own
    /// transaction, so the intake never waits long behind a large retention sweep.
    pub async fn prune(&self, before_ms: i64) -> Result<usize, StoreError> {
        let mut pruned = 0;
        loop {
            let n = self
                .call(move |conn| {
                    // Merged messages go with the digest that carried them, and before it (they reference it).
                    let carried = conn
                        .prepare_cached(
                            "DELETE FROM messages WHERE id IN (SELECT m.id FROM messages d JOIN messages m ON m.carried_by = d.id
                             WHERE d.state IN ('delivered', 'failed') AND d.finished_at_ms < ?1 AND m.state = 'merged' LIMIT ?2)",
                        )?
                        .execute([before_ms, PRUNE_BATCH])?;
                    let finished = conn
                        .prepare_cached(
                            "DELETE FROM messages WHERE id IN (SELECT id FROM messages
                             WHERE state IN ('delivered', 'failed') AND finished_at_ms < ?1
                             AND NOT EXISTS (SELECT 1 FROM messages c WHERE c.carried_by = messages.id) LIMIT ?2)",
                        )?
                        .execute([before_ms, PRUNE_BATCH])?;
                    let notifications = conn
                        .prepare_cached(
                            "DELETE FROM notifications WHERE id IN (SELECT id FROM notifications WHERE received_at_ms < ?1
                             AND NOT EXISTS (SELECT 1 FROM messages WHERE messages.notification_id = notifications.id) LIMIT ?2)",
                        )?
                        .execute([before_ms, PRUNE_BATCH])?;
                    // With the newest messages pruned too, SQLite hands out their ids again: in the same
                    // transaction, the text index's mark comes down to the highest id left, so a reused id
                    // counts as not indexed.
                    conn.prepare_cached(
                        "UPDATE text_index SET upto = MIN(upto, COALESCE((SELECT MAX(id) FROM messages), 0))",
                    )?
                    .execute([])?;
                    Ok((carried + finished, carried.max(finished).max(notifications) as i64 == PRUNE_BATCH))
                })
                .await?;
            pruned += n.0;
            if !n.1 {
                break;
            }
        }
        self.call(|conn| {
            conn.execute("DELETE FROM robot_sends WHERE sent_at_ms < ?1", [now_ms() - ROBOT_SENDS_KEPT_MS])?;
            conn.execute("DELETE FROM robot_pauses WHERE until_ms < ?1", [now_ms()])?;
            Ok(())
        })
        .await?;
        Ok(pruned)
    }

    /// Adds the messages stored since the last call to the text index the records search: about `budget`
    /// bytes of bodies at most (always at least one message), in one short transaction. Says whether more
    /// are waiting.
    pub async fn index_text(&self, budget: i64) -> Result<bool, StoreError> {
        self.call(move |conn| {
            let upto: i64 = conn.prepare_cached("SELECT upto FROM text_index")?.query_row([], |r| r.get(0))?;
            let mut next =
                conn.prepare_cached("SELECT id, length(body) FROM messages WHERE id > ?1 ORDER BY id LIMIT 256")?;
            let waiting = next.query_map([upto], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)))?;
            let (mut last, mut bytes, mut seen, mut taken) = (upto, 0, 0, 0);
            for row in waiting {
                let (id, len) = row?;
                seen += 1;
                if taken > 0 && bytes + len > budget {
                    break;
                }
                (last, bytes, taken) = (id, bytes + len, taken + 1);
            }
            if taken == 0 {
                return Ok(false);
            }
            conn.prepare_cached(
                "INSERT INTO messages_text (rowid, body) SELECT id, body FROM messages WHERE id > ?1 AND id <= ?2",
            )?
            .execute([upto, last])?;
            conn.prepare_cached("UPDATE text_index SET upto = ?1")?.execute([last])?;
            Ok(seen > taken || seen == 256)
        })
        .await
    }

    /// When the intake last enqueued a notification (wall-clock ms; 0: not since the store opened).
    pub fn last_enqueue_ms(&self) -> i64 {
        self.last_enqueue_ms.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Waits until everything submitted before has been committed.
    pub async fn flush(&self) -> Result<(), StoreError> {
        self.call_one(|_| Ok(())).await
    }

    /// What keeps the store from accepting notifications: its file deleted or replaced, or writes failing.
    pub fn problem(&self) -> Option<String> {
        self.health.problem()
    }

    /// Deliveries made whose records are still to be written.
    pub fn owed(&self) -> usize {
        self.health.owed_len()
    }

    /// One look at the store, for the watcher: whether its file is still the one opened; while writes are
    /// failing (or when `probe`), whether a 64 KiB write commits again; and the owed delivery records,
    /// written if the disk takes them.
    pub async fn watch(&self, probe: bool) {
        if let Some(why) = self.file.changed() {
            self.health.lose(why);
        }
        if probe || self.health.failing() {
            let wrote = self
                .call_one(|conn| {
                    conn.prepare_cached("INSERT OR REPLACE INTO health_probe (id, pad) VALUES (1, randomblob(65536))")?
                        .execute([])
                        .map(drop)
                })
                .await;
            if wrote.is_ok() {
                self.health.recovered();
            }
        }
        let owed = self.health.owed();
        if !owed.is_empty() {
            let ids: Vec<i64> = owed.iter().map(|o| o.0).collect();
            let wrote = self
                .call(move |conn| {
                    for (id, attempts, at_ms) in owed {
                        delivered(conn, id, attempts, at_ms)?;
                    }
                    Ok(())
                })
                .await;
            if wrote.is_ok() {
                self.health.paid(&ids);
                tracing::info!(records = ids.len(), "wrote the delivery records the disk had refused");
            }
        }
    }

    /// A cheap read that proves the database answers (readiness).
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.call_one(|conn| conn.query_row("SELECT 1", [], |_| Ok(()))).await
    }
}
