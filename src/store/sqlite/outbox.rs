//! The outbox: a notification and its messages committed together (with duplicate suppression), the
//! pending messages of a target in order, and what became of each attempt.

use super::*;

impl SqliteStore {
    /// Commits a notification and its messages in one transaction, unless an identical notification was
    /// accepted within the dedup window (checked in the same transaction, so two peers racing still
    /// produce one).
    pub async fn enqueue(
        &self,
        n: NewNotification<'_>,
        messages: &[Message],
        now_ms: i64,
    ) -> Result<Enqueued, StoreError> {
        let (target, group_key, status, alerts) =
            (n.target.to_string(), n.group_key.to_string(), n.status.to_string(), n.alerts as i64);
        let dedup = n.dedup.map(|(key, since)| (key.to_string(), since));
        let summary = serde_json::to_string(n.summary).expect("a summary serializes");
        let skipped = n.skipped.map(|r| r.as_str());
        self.last_enqueue_ms.fetch_max(now_ms, std::sync::atomic::Ordering::Relaxed);
        let alertname = n.summary.name.clone();
        let messages = messages.to_vec();
        self.call(move |conn| {
            let tx = conn;
            if let Some((key, since)) = &dedup {
                let existing: Option<i64> = tx
                    .prepare_cached(
                        "SELECT id FROM notifications WHERE target = ?1 AND dedup_key = ?2 AND received_at_ms >= ?3
                         ORDER BY id DESC LIMIT 1",
                    )?
                    .query_row(params![target, key, since], |r| r.get(0))
                    .optional()?;
                if let Some(id) = existing {
                    // Kept as a record (not matched by later dedup checks: no dedup key).
                    tx.prepare_cached(
                        "INSERT INTO notifications (target, group_key, status, alerts, received_at_ms, summary, skipped, alertname)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'duplicate', ?7)",
                    )?
                    .execute(params![target, group_key, status, alerts, now_ms, summary, alertname])?;
                    return Ok(Enqueued::Duplicate(id));
                }
            }
            tx.prepare_cached(
                "INSERT INTO notifications (target, group_key, status, alerts, received_at_ms, dedup_key, summary, skipped, alertname)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )?
            .execute(params![
                target,
                group_key,
                status,
                alerts,
                now_ms,
                dedup.as_ref().map(|d| &d.0),
                summary,
                skipped,
                alertname
            ])?;
            let id = tx.last_insert_rowid();
            {
                let mut insert = tx.prepare_cached(
                    "INSERT INTO messages (notification_id, target, msg_uuid, body, created_at_ms, next_attempt_ms, recipients, alertname)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?5, ?6, ?7)",
                )?;
                let mut first = None;
                for m in &messages {
                    let recipients = m.recipients.as_ref().map(Delivery::to_column);
                    insert.execute(params![id, target, m.msg_uuid, m.body, now_ms, recipients, alertname])?;
                    first = first.or(Some(tx.last_insert_rowid()));
                }
                // A message's place in its target's order is its own id (a digest later takes over the
                // place of the oldest message it merges). By rowid range: no scan of the table.
                if let Some(first) = first {
                    tx.prepare_cached("UPDATE messages SET seq = id WHERE id BETWEEN ?1 AND ?2")?
                        .execute([first, tx.last_insert_rowid()])?;
                }
            }
            Ok(Enqueued::Accepted(id))
        })
        .await
    }

    /// How many messages wait for a target, counting no further than `up_to`.
    pub async fn pending_count(&self, target: &str, up_to: usize) -> Result<i64, StoreError> {
        let target = target.to_string();
        self.call_one(move |conn| {
            conn.prepare_cached(
                "SELECT COUNT(*) FROM (SELECT 1 FROM messages WHERE target = ?1 AND state = 'pending' LIMIT ?2)",
            )?
            .query_row(params![target, up_to as i64], |r| r.get(0))
        })
        .await
    }

    /// The oldest message still pending for a target: targets deliver in order.
    #[cfg(test)]
    pub async fn next_pending(&self, target: &str) -> Result<Option<Pending>, StoreError> {
        Ok(self.pending(target, 1).await?.into_iter().next())
    }

    /// The oldest `limit` messages pending for a target, in delivery order.
    /// Leaves out delivered messages whose record the disk refused (they are never sent again).
    pub async fn pending(&self, target: &str, limit: usize) -> Result<Vec<Pending>, StoreError> {
        let target = target.to_string();
        let health = self.health.clone();
        self.call_one(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT id, kind, msg_uuid, body, created_at_ms, attempts, next_attempt_ms, recipients FROM messages
                 WHERE target = ?1 AND state = 'pending' ORDER BY seq, id LIMIT ?2",
            )?;
            // Nearly always none owed: then no row is checked.
            let owed = health.owed_len();
            let rows = stmt.query_map(params![target, (limit + owed) as i64], |r| {
                Ok(Pending {
                    id: r.get(0)?,
                    kind: parsed(r, 0, 1, Kind::parse)?,
                    msg_uuid: r.get(2)?,
                    body: r.get(3)?,
                    created_at_ms: r.get(4)?,
                    attempts: r.get(5)?,
                    next_attempt_ms: r.get(6)?,
                    recipients: Delivery::from_column(r.get::<_, Option<String>>(7)?.as_deref()).map(Box::new),
                })
            })?;
            let mut out = Vec::with_capacity(limit);
            for row in rows {
                let p = row?;
                if owed == 0 || !health.is_owed(p.id) {
                    out.push(p);
                }
                if out.len() == limit {
                    break;
                }
            }
            Ok(out)
        })
        .await
    }

    pub async fn mark_delivered(&self, id: i64, attempts: i64, now_ms: i64) -> Result<(), StoreError> {
        self.call_one(move |conn| delivered(conn, id, attempts, now_ms)).await
    }

    /// [`mark_delivered`](Self::mark_delivered) without waiting for the commit. If the process dies before
    /// it commits, the message is sent again after restart with the same msgUuid, which the receiver drops.
    /// A record that does not commit (a full disk) is remembered: the message is left out of
    /// [`pending`](Self::pending), so it is never sent again, and [`watch`](Self::watch) writes the record
    /// once the disk takes it.
    pub fn submit_delivered(&self, id: i64, attempts: i64, now_ms: i64) {
        let health = self.health.clone();
        self.submit_then(
            "record a delivery (remembered; recorded when the disk takes it, never sent again)",
            move |conn| delivered(conn, id, attempts, now_ms),
            move |_| health.owe(id, attempts, now_ms),
        );
    }

    /// [`begin_attempt`](Self::begin_attempt) for a robot without a budget, queued (ahead of anything
    /// submitted later) without waiting for the commit.
    pub fn submit_attempt(&self, id: i64) {
        self.submit("record an attempt", move |conn| in_doubt(conn, id));
    }

    pub async fn mark_failed(
        &self,
        id: i64,
        attempts: i64,
        reason: &str,
        detail: &str,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let (reason, detail) = (reason.to_string(), detail.to_string());
        self.call_one(move |conn| {
            conn.execute(
                "UPDATE messages SET state = 'failed', attempts = ?2, reason = ?3, last_error = ?4, finished_at_ms = ?5 WHERE id = ?1",
                params![id, attempts, reason, detail, now_ms],
            )
            .map(drop)
        })
        .await
    }

    /// Schedules another attempt; `in_doubt` says whether the failed one may still have been posted.
    pub async fn schedule_retry(
        &self,
        id: i64,
        attempts: i64,
        next_attempt_ms: i64,
        detail: &str,
        in_doubt: bool,
    ) -> Result<(), StoreError> {
        let detail = detail.to_string();
        self.call_one(move |conn| {
            conn.execute(
                "UPDATE messages SET attempts = ?2, next_attempt_ms = ?3, last_error = ?4, in_doubt = ?5 WHERE id = ?1",
                params![id, attempts, next_attempt_ms, detail, in_doubt],
            )
            .map(drop)
        })
        .await
    }

    /// Records what became of some of a message's recipients and schedules another attempt for the rest
    /// Never in doubt: the answer said who got it.
    pub async fn narrow_recipients(
        &self,
        id: i64,
        attempts: i64,
        next_attempt_ms: i64,
        recipients: &Delivery,
        detail: &str,
    ) -> Result<(), StoreError> {
        let (recipients, detail) = (recipients.to_column(), detail.to_string());
        self.call_one(move |conn| {
            conn.execute(
                "UPDATE messages SET attempts = ?2, next_attempt_ms = ?3, recipients = ?4, last_error = ?5, in_doubt = 0
                 WHERE id = ?1",
                params![id, attempts, next_attempt_ms, recipients, detail],
            )
            .map(drop)
        })
        .await
    }

    /// Depth and oldest message per target with pending messages (targets no longer configured included).
    pub async fn queue_stats(&self) -> Result<Vec<QueueStats>, StoreError> {
        self.call_one(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT target, COUNT(*), MIN(created_at_ms) FROM messages WHERE state = 'pending' GROUP BY target",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok(QueueStats { target: r.get(0)?, depth: r.get(1)?, oldest_created_ms: r.get(2)? })
            })?;
            rows.collect()
        })
        .await
    }

    /// Every message of a target in the order accepted (tests, diagnostics).
    pub async fn records(&self, target: &str) -> Result<Vec<Record>, StoreError> {
        let target = target.to_string();
        self.call_one(move |conn| {
            let mut stmt = conn.prepare(
                "SELECT id, target, kind, notification_id, msg_uuid, state, carried_by, attempts, reason, last_error
                 FROM messages WHERE target = ?1 ORDER BY id",
            )?;
            let rows = stmt.query_map([target], |r| {
                Ok(Record {
                    id: r.get(0)?,
                    target: r.get(1)?,
                    kind: parsed(r, 0, 2, Kind::parse)?,
                    notification_id: r.get(3)?,
                    msg_uuid: r.get(4)?,
                    state: parsed(r, 0, 5, State::parse)?,
                    carried_by: r.get(6)?,
                    attempts: r.get(7)?,
                    reason: r.get(8)?,
                    last_error: r.get(9)?,
                })
            })?;
            rows.collect()
        })
        .await
    }
}
