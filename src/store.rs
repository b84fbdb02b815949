//! The durable outbox in SQLite: accepted notifications and the messages that carry them, committed
//! before the webhook is answered, and each message's delivery state. Every call runs on tokio's
//! blocking pool so the async runtime never waits on the disk.

use std::path::Path;
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OptionalExtension, params};

use crate::config::SyncMode;
use crate::render::Message;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("storage: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("storage: cannot create {path}: {source}")]
    CreateDir { path: String, source: std::io::Error },
    #[error("storage: worker task failed: {0}")]
    Task(String),
    #[error("storage: lock poisoned")]
    Poisoned,
}

/// One notification to enqueue.
#[derive(Debug, Clone)]
pub struct NewNotification<'a> {
    pub target: &'a str,
    pub group_key: &'a str,
    pub status: &'a str,
    pub alerts: usize,
}

/// A message waiting to be sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    pub id: i64,
    pub msg_uuid: String,
    pub body: String,
    pub created_at_ms: i64,
    pub attempts: i64,
    pub next_attempt_ms: i64,
}

/// A message's record, for tests and (later) the operations console.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub id: i64,
    pub target: String,
    pub msg_uuid: String,
    pub state: String,
    pub attempts: i64,
    pub reason: Option<String>,
    pub last_error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueStats {
    pub target: String,
    pub depth: i64,
    pub oldest_created_ms: i64,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS notifications (
    id             INTEGER PRIMARY KEY,
    target         TEXT NOT NULL,
    group_key      TEXT NOT NULL,
    status         TEXT NOT NULL,
    alerts         INTEGER NOT NULL,
    received_at_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS messages (
    id              INTEGER PRIMARY KEY,
    notification_id INTEGER NOT NULL REFERENCES notifications(id),
    target          TEXT NOT NULL,
    msg_uuid        TEXT NOT NULL UNIQUE,
    body            TEXT NOT NULL,
    state           TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'failed')),
    created_at_ms   INTEGER NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_ms INTEGER NOT NULL,
    reason          TEXT,
    last_error      TEXT,
    finished_at_ms  INTEGER
);
CREATE INDEX IF NOT EXISTS messages_pending ON messages (target, id) WHERE state = 'pending';
CREATE INDEX IF NOT EXISTS messages_finished ON messages (finished_at_ms) WHERE state != 'pending';
PRAGMA user_version = 1;
";

#[derive(Clone)]
pub struct Store {
    conn: Arc<Mutex<Connection>>,
}

impl Store {
    /// Opens (creating if needed) the database at `path`.
    pub fn open(path: &Path, sync: SyncMode) -> Result<Store, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|source| StoreError::CreateDir { path: dir.display().to_string(), source })?;
        }
        let conn = Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", if sync == SyncMode::Full { "FULL" } else { "NORMAL" })?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.execute_batch(SCHEMA)?;
        Ok(Store { conn: Arc::new(Mutex::new(conn)) })
    }

    async fn call<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, rusqlite::Error> + Send + 'static,
    {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = conn.lock().map_err(|_| StoreError::Poisoned)?;
            f(&mut guard).map_err(StoreError::from)
        })
        .await
        .map_err(|e| StoreError::Task(e.to_string()))?
    }

    /// Commits a notification and its messages in one transaction; returns the notification's id.
    pub async fn enqueue(&self, n: NewNotification<'_>, messages: &[Message], now_ms: i64) -> Result<i64, StoreError> {
        let (target, group_key, status, alerts) =
            (n.target.to_string(), n.group_key.to_string(), n.status.to_string(), n.alerts as i64);
        let messages = messages.to_vec();
        self.call(move |conn| {
            let tx = conn.transaction()?;
            tx.execute(
                "INSERT INTO notifications (target, group_key, status, alerts, received_at_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![target, group_key, status, alerts, now_ms],
            )?;
            let id = tx.last_insert_rowid();
            {
                let mut insert = tx.prepare_cached(
                    "INSERT INTO messages (notification_id, target, msg_uuid, body, created_at_ms, next_attempt_ms)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
                )?;
                for m in &messages {
                    insert.execute(params![id, target, m.msg_uuid, m.body, now_ms])?;
                }
            }
            tx.commit()?;
            Ok(id)
        })
        .await
    }

    /// The oldest message still pending for a target: targets deliver in order.
    pub async fn next_pending(&self, target: &str) -> Result<Option<Pending>, StoreError> {
        let target = target.to_string();
        self.call(move |conn| {
            conn.prepare_cached(
                "SELECT id, msg_uuid, body, created_at_ms, attempts, next_attempt_ms FROM messages
                 WHERE target = ?1 AND state = 'pending' ORDER BY id LIMIT 1",
            )?
            .query_row([target], |r| {
                Ok(Pending {
                    id: r.get(0)?,
                    msg_uuid: r.get(1)?,
                    body: r.get(2)?,
                    created_at_ms: r.get(3)?,
                    attempts: r.get(4)?,
                    next_attempt_ms: r.get(5)?,
                })
            })
            .optional()
        })
        .await
    }

    pub async fn mark_delivered(&self, id: i64, attempts: i64, now_ms: i64) -> Result<(), StoreError> {
        self.call(move |conn| {
            conn.execute(
                "UPDATE messages SET state = 'delivered', attempts = ?2, finished_at_ms = ?3, last_error = NULL WHERE id = ?1",
                params![id, attempts, now_ms],
            )
            .map(drop)
        })
        .await
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
        self.call(move |conn| {
            conn.execute(
                "UPDATE messages SET state = 'failed', attempts = ?2, reason = ?3, last_error = ?4, finished_at_ms = ?5 WHERE id = ?1",
                params![id, attempts, reason, detail, now_ms],
            )
            .map(drop)
        })
        .await
    }

    pub async fn schedule_retry(
        &self,
        id: i64,
        attempts: i64,
        next_attempt_ms: i64,
        detail: &str,
    ) -> Result<(), StoreError> {
        let detail = detail.to_string();
        self.call(move |conn| {
            conn.execute(
                "UPDATE messages SET attempts = ?2, next_attempt_ms = ?3, last_error = ?4 WHERE id = ?1",
                params![id, attempts, next_attempt_ms, detail],
            )
            .map(drop)
        })
        .await
    }

    /// Depth and oldest message per target with pending messages (targets no longer configured included).
    pub async fn queue_stats(&self) -> Result<Vec<QueueStats>, StoreError> {
        self.call(|conn| {
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
        self.call(move |conn| {
            let mut stmt = conn.prepare(
                "SELECT id, target, msg_uuid, state, attempts, reason, last_error FROM messages WHERE target = ?1 ORDER BY id",
            )?;
            let rows = stmt.query_map([target], |r| {
                Ok(Record {
                    id: r.get(0)?,
                    target: r.get(1)?,
                    msg_uuid: r.get(2)?,
                    state: r.get(3)?,
                    attempts: r.get(4)?,
                    reason: r.get(5)?,
                    last_error: r.get(6)?,
                })
            })?;
            rows.collect()
        })
        .await
    }

    /// Deletes finished messages (and notifications left without messages) finished before `before_ms`.
    pub async fn prune(&self, before_ms: i64) -> Result<usize, StoreError> {
        self.call(move |conn| {
            let tx = conn.transaction()?;
            let n = tx.execute("DELETE FROM messages WHERE state != 'pending' AND finished_at_ms < ?1", [before_ms])?;
            tx.execute(
                "DELETE FROM notifications WHERE received_at_ms < ?1
                 AND NOT EXISTS (SELECT 1 FROM messages WHERE messages.notification_id = notifications.id)",
                [before_ms],
            )?;
            tx.commit()?;
            Ok(n)
        })
        .await
    }

    /// A cheap read that proves the database answers (readiness).
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.call(|conn| conn.query_row("SELECT 1", [], |_| Ok(()))).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(uuid: &str) -> Message {
        Message { msg_uuid: uuid.into(), body: format!("{{\"msgUuid\":\"{uuid}\"}}") }
    }

    fn n(target: &str) -> NewNotification<'_> {
        NewNotification { target, group_key: "{}:{a=\"b\"}", status: "firing", alerts: 1 }
    }

    #[tokio::test]
    async fn enqueue_deliver_in_order_and_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/outbox.sqlite3");
        let store = Store::open(&path, SyncMode::Full).unwrap();
        store.enqueue(n("ops"), &[msg("u1"), msg("u2")], 1000).await.unwrap();
        store.enqueue(n("dev"), &[msg("u3")], 1001).await.unwrap();
        let first = store.next_pending("ops").await.unwrap().unwrap();
        assert_eq!(first.msg_uuid, "u1");
        store.mark_delivered(first.id, 1, 2000).await.unwrap();
        assert_eq!(store.next_pending("ops").await.unwrap().unwrap().msg_uuid, "u2");
        drop(store);

        let store = Store::open(&path, SyncMode::Full).unwrap();
        let stats = store.queue_stats().await.unwrap();
        assert_eq!(
            stats,
            vec![
                QueueStats { target: "dev".into(), depth: 1, oldest_created_ms: 1001 },
                QueueStats { target: "ops".into(), depth: 1, oldest_created_ms: 1000 },
            ]
        );
        let p = store.next_pending("ops").await.unwrap().unwrap();
        store.schedule_retry(p.id, 1, 5000, "HTTP 502").await.unwrap();
        let p = store.next_pending("ops").await.unwrap().unwrap();
        assert_eq!((p.attempts, p.next_attempt_ms), (1, 5000));
        store.mark_failed(p.id, 2, "signature", "errcode 310000", 6000).await.unwrap();
        assert_eq!(store.next_pending("ops").await.unwrap(), None);
        let recs = store.records("ops").await.unwrap();
        assert_eq!(recs.iter().map(|r| r.state.as_str()).collect::<Vec<_>>(), vec!["delivered", "failed"]);
        assert_eq!(recs[1].reason.as_deref(), Some("signature"));

        assert_eq!(store.prune(5999).await.unwrap(), 1);
        assert_eq!(store.records("ops").await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn duplicate_uuid_rolls_back_the_whole_notification() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("o.sqlite3"), SyncMode::Normal).unwrap();
        store.enqueue(n("ops"), &[msg("u1")], 1).await.unwrap();
        assert!(store.enqueue(n("ops"), &[msg("u2"), msg("u1")], 2).await.is_err());
        assert_eq!(store.records("ops").await.unwrap().len(), 1);
    }
}
