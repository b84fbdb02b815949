//! The outbox in SQLite: the engine ([`engine`], one thread with group commits), the schema and its
//! migrations ([`schema`]), and here the outbox's operations as SQL.

mod engine;
mod health;
mod records;
mod schema;

use crate::channel::Delivery;
use std::path::Path;
use std::sync::mpsc;

use rusqlite::types::Type;
use rusqlite::{Connection, OptionalExtension, params};

use super::*;
use crate::clock::now_ms;
use crate::config::SyncMode;
use crate::render::Message;
pub(crate) use engine::write_trouble;
use engine::{Job, Read, reader, worker};
use health::{FileId, Health};
use std::sync::Arc;

/// How long send times are kept for rate budgets (longer than any sensible window).
const ROBOT_SENDS_KEPT_MS: i64 = 24 * 3600 * 1000;

/// How many rows one pruning transaction deletes at most (of each kind).
const PRUNE_BATCH: i64 = 500;

#[derive(Clone)]
pub struct Store {
    jobs: mpsc::Sender<Job>,
    /// The console's reads, on a connection of their own.
    reads: mpsc::Sender<Read>,
    health: Arc<Health>,
    file: Arc<FileId>,
    /// The console's switches, read once at open and kept in step with every change: the webhook and the
    /// senders ask on every notification and message.
    switches: Arc<std::sync::RwLock<std::collections::HashMap<String, super::Switch>>>,
    console_key: [u8; 32],
}

impl Store {
    /// Opens (creating if needed) the database at `path` and starts its thread, which ends when the
    /// last clone of the `Store` is dropped.
    pub fn open(path: &Path, sync: SyncMode) -> Result<Store, StoreError> {
        private_files(path)?;
        let mut conn = Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", if sync == SyncMode::Full { "FULL" } else { "NORMAL" })?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        // No temp files: the container's root filesystem is read-only, and our temp data is small.
        conn.pragma_update(None, "temp_store", "MEMORY")?;
        conn.set_prepared_statement_cache_capacity(64);
        schema::migrate(&mut conn)?;
        let switches = {
            let mut stmt = conn.prepare("SELECT target, enabled, changed_by, changed_at_ms FROM target_switches")?;
            let rows = stmt.query_map([], |r| {
                Ok((r.get::<_, String>(0)?, super::Switch { enabled: r.get(1)?, by: r.get(2)?, at_ms: r.get(3)? }))
            })?;
            rows.collect::<Result<std::collections::HashMap<_, _>, _>>()?
        };
        let console_key = console_key(&conn)?;
        let file = FileId::of(path).map_err(|source| StoreError::File { path: path.display().to_string(), source })?;
        let reading = Connection::open(path)?;
        reading.busy_timeout(std::time::Duration::from_secs(5))?;
        reading.pragma_update(None, "query_only", "ON")?;
        reading.pragma_update(None, "temp_store", "MEMORY")?;
        reading.set_prepared_statement_cache_capacity(32);
        let (jobs, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("storage".into())
            .spawn(move || worker(conn, rx))
            .map_err(|e| StoreError::Commit(format!("cannot start the storage thread: {e}")))?;
        let (reads, read_rx) = mpsc::channel::<Read>();
        std::thread::Builder::new()
            .name("storage-reads".into())
            .spawn(move || reader(reading, read_rx))
            .map_err(|e| StoreError::Commit(format!("cannot start the storage reader thread: {e}")))?;
        Ok(Store {
            jobs,
            reads,
            health: Arc::new(Health::default()),
            file: Arc::new(file),
            switches: Arc::new(std::sync::RwLock::new(switches)),
            console_key,
        })
    }
}

/// The console's signing key, made from the OS's random source the first time (uuid v4 uses getrandom)
/// and kept in the store.
fn console_key(conn: &Connection) -> Result<[u8; 32], StoreError> {
    let kept: Option<Vec<u8>> =
        conn.query_row("SELECT key FROM console_key WHERE id = 1", [], |r| r.get(0)).optional()?;
    if let Some(key) = kept.and_then(|k| <[u8; 32]>::try_from(k).ok()) {
        return Ok(key);
    }
    let (a, b) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
    let key: [u8; 32] = std::array::from_fn(|i| if i < 16 { a.as_bytes()[i] } else { b.as_bytes()[i - 16] });
    conn.execute("INSERT OR REPLACE INTO console_key (id, key) VALUES (1, ?1)", [&key[..]])?;
    Ok(key)
}

impl Store {
    /// The key the console signs sessions and CSRF tokens with: the same across restarts.
    pub fn console_key(&self) -> [u8; 32] {
        self.console_key
    }
}

/// The outbox holds alert contents: its directory is created 0700 when missing, and the database with its
/// WAL and shared-memory files is 0600 (SQLite gives the latter the database's own mode). Files an older
/// version left readable by others are tightened.
fn private_files(path: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty() && !d.exists()) {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|source| StoreError::CreateDir { path: dir.display().to_string(), source })?;
    }
    let io = |source| StoreError::File { path: path.display().to_string(), source };
    std::fs::OpenOptions::new().create(true).append(true).mode(0o600).open(path).map_err(io)?;
    for suffix in ["", "-wal", "-shm"] {
        let file = std::path::PathBuf::from(format!("{}{suffix}", path.display()));
        if let Ok(meta) = std::fs::metadata(&file)
            && meta.permissions().mode() & 0o077 != 0
        {
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
        }
    }
    Ok(())
}

/// Marks a message as possibly posted: an attempt has started and no answer has proved otherwise.
fn in_doubt(conn: &Connection, id: i64) -> Result<(), rusqlite::Error> {
    conn.prepare_cached("UPDATE messages SET in_doubt = 1 WHERE id = ?1")?.execute([id]).map(drop)
}

/// A `kind` or `state` column of the row whose id is in column `id`: a value this build does not know is
/// an error naming the record.
fn parsed<T>(
    r: &rusqlite::Row,
    id: usize,
    col: usize,
    parse: fn(i64, &str) -> Result<T, StoreError>,
) -> rusqlite::Result<T> {
    let text: String = r.get(col)?;
    parse(r.get(id)?, &text).map_err(|e| rusqlite::Error::FromSqlConversionFailure(col, Type::Text, e.into()))
}

fn delivered(conn: &Connection, id: i64, attempts: i64, now_ms: i64) -> Result<(), rusqlite::Error> {
    conn.prepare_cached(
        "UPDATE messages SET state = 'delivered', attempts = ?2, finished_at_ms = ?3, last_error = NULL WHERE id = ?1",
    )?
    .execute(params![id, attempts, now_ms])
    .map(drop)
}

impl Store {
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
        let skipped = n.skipped.map(str::to_string);
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

    /// The oldest pending messages of a target that a digest may merge: kind 'message', in order, up to the
    /// first pending digest (which keeps its place), leaving out a message the receiver may already have.
    pub async fn digest_candidates(&self, target: &str, limit: usize) -> Result<Candidates, StoreError> {
        let target = target.to_string();
        let health = self.health.clone();
        self.call_one(move |conn| {
            let owed = health.owed_len() > 0;
            let mut stmt = conn.prepare_cached(
                "SELECT m.id, m.kind, m.notification_id, n.summary, m.in_doubt FROM messages m
                 LEFT JOIN notifications n ON n.id = m.notification_id
                 WHERE m.target = ?1 AND m.state = 'pending' ORDER BY m.seq, m.id LIMIT ?2",
            )?;
            let rows = stmt.query_map(params![target, limit as i64], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, Option<i64>>(2)?,
                    r.get::<_, Option<String>>(3)?,
                    r.get::<_, bool>(4)?,
                ))
            })?;
            let mut out = Candidates::default();
            for row in rows {
                match row? {
                    // Only the head can be in doubt (delivery is in order), so skipping it keeps the order.
                    // A delivery whose record the disk refused is as good as delivered.
                    (_, kind, _, _, true) if kind == "message" => continue,
                    (id, ..) if owed && health.is_owed(id) => continue,
                    (id, kind, Some(notification_id), Some(summary), false) if kind == "message" => {
                        match serde_json::from_str::<Summary>(&summary) {
                            Ok(summary) => out.list.push(Candidate { id, notification_id, summary }),
                            Err(e) => {
                                let problem = e.to_string();
                                out.corrupt = Some(StoreError::Corrupt { id, column: "summary", problem });
                                break;
                            }
                        }
                    }
                    _ => break,
                }
            }
            Ok(out)
        })
        .await
    }

    /// Replaces pending messages by one digest message, in one transaction: the digest takes the place of
    /// the oldest; each merged message records that the digest carries it. Returns the digest's id.
    pub async fn merge_into_digest(
        &self,
        target: &str,
        merged: &[i64],
        digest: &Message,
        now_ms: i64,
    ) -> Result<i64, StoreError> {
        let target = target.to_string();
        let merged = merged.to_vec();
        let digest = digest.clone();
        self.call(move |conn| {
            let tx = conn;
            let mut seq: Option<i64> = None;
            for id in &merged {
                let s: i64 = tx
                    .prepare_cached("SELECT seq FROM messages WHERE id = ?1 AND state = 'pending'")?
                    .query_row([id], |r| r.get(0))?;
                seq = Some(seq.map_or(s, |m: i64| m.min(s)));
            }
            tx.prepare_cached(
                "INSERT INTO messages (target, kind, seq, msg_uuid, body, created_at_ms, next_attempt_ms)
                 VALUES (?1, 'digest', ?2, ?3, ?4, ?5, ?5)",
            )?
            .execute(params![target, seq, digest.msg_uuid, digest.body, now_ms])?;
            let digest_id = tx.last_insert_rowid();
            let mut merge = tx.prepare_cached(
                "UPDATE messages SET state = 'merged', carried_by = ?2, finished_at_ms = ?3 WHERE id = ?1 AND state = 'pending'",
            )?;
            for id in &merged {
                merge.execute(params![id, digest_id, now_ms])?;
            }
            drop(merge);
            Ok(digest_id)
        })
        .await
    }

    /// Before a request leaves: counts it in the robot's (by hash) budget at `sent_at_ms`, and marks the
    /// message in doubt until an answer proves otherwise.
    pub async fn begin_attempt(&self, id: i64, robot: &str, sent_at_ms: i64) -> Result<(), StoreError> {
        let robot = robot.to_string();
        self.call(move |conn| {
            let tx = conn;
            tx.prepare_cached("INSERT INTO robot_sends (robot, sent_at_ms) VALUES (?1, ?2)")?
                .execute(params![robot, sent_at_ms])?;
            in_doubt(tx, id)
        })
        .await
    }

    pub async fn record_pause(&self, robot: &str, until_ms: i64) -> Result<(), StoreError> {
        let robot = robot.to_string();
        self.call_one(move |conn| {
            conn.execute(
                "INSERT INTO robot_pauses (robot, until_ms) VALUES (?1, ?2) ON CONFLICT (robot) DO UPDATE SET until_ms = ?2",
                params![robot, until_ms],
            )
            .map(drop)
        })
        .await
    }

    /// A robot's sends since `since_ms` (oldest first) and its pause, if one is still running at `now_ms`.
    pub async fn robot_state(
        &self,
        robot: &str,
        since_ms: i64,
        now_ms: i64,
    ) -> Result<(Vec<i64>, Option<i64>), StoreError> {
        let robot = robot.to_string();
        self.call_one(move |conn| {
            let sends = conn
                .prepare_cached(
                    "SELECT sent_at_ms FROM robot_sends WHERE robot = ?1 AND sent_at_ms > ?2 ORDER BY sent_at_ms",
                )?
                .query_map(params![robot, since_ms], |r| r.get(0))?
                .collect::<Result<Vec<i64>, _>>()?;
            let pause = conn
                .prepare_cached("SELECT until_ms FROM robot_pauses WHERE robot = ?1 AND until_ms > ?2")?
                .query_row(params![robot, now_ms], |r| r.get(0))
                .optional()?;
            Ok((sends, pause))
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

    /// Waits until everything submitted before has been committed.
    pub async fn flush(&self) -> Result<(), StoreError> {
        self.call_one(|_| Ok(())).await
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

    /// Records one attempt (queued with the group commit, not waited for).
    pub fn submit_attempt_log(&self, a: super::Attempt) {
        self.submit("record an attempt's outcome", move |conn| {
            conn.prepare_cached(
                "INSERT INTO attempts (message_id, at_ms, duration_ms, http_status, outcome, reason, detail)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?
            .execute(params![
                a.message_id,
                a.at_ms,
                a.duration_ms,
                a.http_status,
                a.outcome.as_str(),
                a.reason.map(|r| r.as_str()),
                a.detail
            ])
            .map(drop)
        });
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

    /// The console's switch for `target`, if it has one.
    pub fn switch(&self, target: &str) -> Option<super::Switch> {
        self.switches.read().unwrap_or_else(|e| e.into_inner()).get(target).cloned()
    }

    /// Switches `target` on or off (`Some`), or clears the switch so the configuration decides (`None`).
    /// Switching off gives up the target's waiting messages as `disabled`, so switching on again does not
    /// flood its group with old notifications. Returns how many were given up.
    pub async fn set_switch(&self, target: &str, switch: Option<super::Switch>) -> Result<usize, StoreError> {
        let (name, s) = (target.to_string(), switch.clone());
        let dropped = self
            .call(move |conn| {
                let Some(s) = s else {
                    conn.execute("DELETE FROM target_switches WHERE target = ?1", [&name])?;
                    return Ok(0);
                };
                conn.execute(
                    "INSERT INTO target_switches (target, enabled, changed_by, changed_at_ms) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (target) DO UPDATE SET enabled = ?2, changed_by = ?3, changed_at_ms = ?4",
                    params![name, s.enabled, s.by, s.at_ms],
                )?;
                if s.enabled {
                    return Ok(0);
                }
                conn.execute(
                    "UPDATE messages SET state = 'failed', reason = 'disabled', finished_at_ms = ?2,
                     last_error = 'the target was disabled in the console before it was sent'
                     WHERE target = ?1 AND state = 'pending'",
                    params![name, s.at_ms],
                )
            })
            .await?;
        let mut map = self.switches.write().unwrap_or_else(|e| e.into_inner());
        match switch {
            Some(s) => map.insert(target.to_string(), s),
            None => map.remove(target),
        };
        Ok(dropped)
    }

    /// Each of `targets`' last delivery and last failure: a few index seeks per target, however many
    /// records the store keeps. The last delivery is the latest finish among the target's newest
    /// delivered messages (an older message retried can finish after a newer one).
    pub async fn last_outcomes(
        &self,
        targets: Vec<String>,
    ) -> Result<std::collections::HashMap<String, super::LastOutcomes>, StoreError> {
        self.read(move |conn| {
            let mut out: std::collections::HashMap<String, super::LastOutcomes> = Default::default();
            let mut delivered = conn.prepare_cached(
                "SELECT MAX(finished_at_ms) FROM (SELECT finished_at_ms FROM messages
                 WHERE target = ?1 AND state = 'delivered' ORDER BY created_at_ms DESC LIMIT 16)",
            )?;
            let mut failed = conn.prepare_cached(
                "SELECT finished_at_ms, COALESCE(reason, ''), COALESCE(last_error, '') FROM messages
                 WHERE target = ?1 AND state = 'failed' ORDER BY created_at_ms DESC, id DESC LIMIT 1",
            )?;
            for target in targets {
                let delivered_ms = delivered.query_row([&target], |r| r.get::<_, Option<i64>>(0))?;
                let failed = failed
                    .query_row([&target], |r| {
                        Ok((r.get::<_, Option<i64>>(0)?.unwrap_or(0), r.get::<_, String>(1)?, r.get::<_, String>(2)?))
                    })
                    .optional()?;
                out.insert(target, super::LastOutcomes { delivered_ms, failed });
            }
            Ok(out)
        })
        .await
    }

    /// A page of push records, newest first (on the reader's connection; see [`records`]).
    pub async fn record_page(&self, f: super::RecordFilter) -> Result<Vec<super::RecordRow>, StoreError> {
        self.read(move |conn| records::page(conn, &f)).await
    }

    /// One message's record: the message, its attempts, and the messages a digest carried.
    pub async fn record(
        &self,
        id: i64,
    ) -> Result<Option<(super::RecordRow, Vec<super::Attempt>, Vec<i64>)>, StoreError> {
        self.read(move |conn| {
            let row = records::message_by_id(conn, id)?;
            let Some(row) = row else { return Ok(None) };
            let attempts = conn
                .prepare_cached(
                    "SELECT message_id, at_ms, duration_ms, http_status, outcome, reason, detail FROM attempts
                     WHERE message_id = ?1 ORDER BY id",
                )?
                .query_map([id], |r| {
                    Ok(super::Attempt {
                        message_id: r.get(0)?,
                        at_ms: r.get(1)?,
                        duration_ms: r.get(2)?,
                        http_status: r.get(3)?,
                        outcome: parsed(r, 0, 4, |id, label| {
                            crate::channel::AttemptOutcome::parse(label).ok_or_else(|| StoreError::Corrupt {
                                id,
                                column: "attempts.outcome",
                                problem: format!("unknown outcome {label:?}"),
                            })
                        })?,
                        reason: r.get::<_, Option<String>>(5)?.and_then(|l| crate::channel::Reason::parse(&l)),
                        detail: r.get(6)?,
                    })
                })?
                .collect::<Result<Vec<_>, _>>()?;
            let carried = conn
                .prepare_cached("SELECT id FROM messages WHERE carried_by = ?1 ORDER BY id")?
                .query_map([id], |r| r.get(0))?
                .collect::<Result<Vec<i64>, _>>()?;
            Ok(Some((row, attempts, carried)))
        })
        .await
    }

    /// Notifications of `target` acknowledged without a message, oldest first.
    pub async fn skipped(&self, target: &str) -> Result<Vec<super::Skipped>, StoreError> {
        let target = target.to_string();
        self.call_one(move |conn| {
            let mut stmt = conn.prepare(
                "SELECT id, target, group_key, status, alerts, skipped, received_at_ms
                 FROM notifications WHERE target = ?1 AND skipped IS NOT NULL AND skipped != 'duplicate' ORDER BY id",
            )?;
            let rows = stmt.query_map([target], |r| {
                Ok(super::Skipped {
                    id: r.get(0)?,
                    target: r.get(1)?,
                    group_key: r.get(2)?,
                    status: r.get(3)?,
                    alerts: r.get(4)?,
                    reason: r.get(5)?,
                    received_at_ms: r.get(6)?,
                })
            })?;
            rows.collect()
        })
        .await
    }

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

    /// A cheap read that proves the database answers (readiness).
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.call_one(|conn| conn.query_row("SELECT 1", [], |_| Ok(()))).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(uuid: &str) -> Message {
        Message { msg_uuid: uuid.into(), body: format!("{{\"msgUuid\":\"{uuid}\"}}"), recipients: None }
    }

    static NO_SUMMARY: Summary = Summary {
        status: String::new(),
        name: String::new(),
        severity: String::new(),
        firing: 0,
        resolved: 0,
        subjects: vec![],
        summary: String::new(),
        external_url: String::new(),
        place: String::new(),
    };

    fn summary(name: &str) -> Summary {
        Summary { name: name.into(), ..NO_SUMMARY.clone() }
    }

    fn n(target: &str) -> NewNotification<'_> {
        NewNotification {
            target,
            group_key: "{}:{a=\"b\"}",
            status: "firing",
            alerts: 1,
            dedup: None,
            summary: &NO_SUMMARY,
            skipped: None,
        }
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
        store.schedule_retry(p.id, 1, 5000, "HTTP 502", false).await.unwrap();
        let p = store.next_pending("ops").await.unwrap().unwrap();
        assert_eq!((p.attempts, p.next_attempt_ms), (1, 5000));
        store.mark_failed(p.id, 2, "signature", "errcode 310000", 6000).await.unwrap();
        assert_eq!(store.next_pending("ops").await.unwrap(), None);
        let recs = store.records("ops").await.unwrap();
        assert_eq!(recs.iter().map(|r| r.state).collect::<Vec<_>>(), vec![State::Delivered, State::Failed]);
        assert_eq!(recs[1].reason.as_deref(), Some("signature"));

        assert_eq!(store.prune(5999).await.unwrap(), 1);
        assert_eq!(store.records("ops").await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn files_are_private_to_the_owner() {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("new/sub/outbox.sqlite3");
        let store = Store::open(&path, SyncMode::Full).unwrap();
        store.enqueue(n("ops"), &[msg("u1")], 1).await.unwrap();
        assert_eq!(mode(&dir.path().join("new/sub")), 0o700);
        assert_eq!(mode(&dir.path().join("new")), 0o700);
        for suffix in ["", "-wal", "-shm"] {
            assert_eq!(mode(std::path::Path::new(&format!("{}{suffix}", path.display()))), 0o600, "{suffix}");
        }
        drop(store);
        // A store an older version left world-readable is tightened at open.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let _store = Store::open(&path, SyncMode::Full).unwrap();
        assert_eq!(mode(&path), 0o600);
    }

    #[tokio::test]
    async fn a_long_read_neither_holds_up_the_writer_nor_runs_past_its_deadline() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("o.sqlite3"), SyncMode::Normal).unwrap();
        // A query that would run for minutes.
        let reader = store.clone();
        let endless = tokio::spawn(async move {
            reader
                .read(|conn| {
                    conn.query_row(
                        "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c) SELECT COUNT(*) FROM c",
                        [],
                        |r| r.get::<_, i64>(0),
                    )
                })
                .await
        });
        // Meanwhile notifications commit.
        for i in 0..20 {
            store.enqueue(n("ops"), &[msg(&format!("u{i}"))], 1).await.unwrap();
        }
        assert!(!endless.is_finished(), "the read was still running while the writer committed");
        match endless.await.unwrap() {
            Err(StoreError::TooSlow(d)) => assert_eq!(d, engine::READ_DEADLINE),
            other => panic!("expected the read to be stopped, got {other:?}"),
        }
        // The reader goes on with the next read.
        let page = store.record_page(super::super::RecordFilter { limit: 50, ..Default::default() }).await.unwrap();
        assert_eq!(page.len(), 20);
    }

    #[tokio::test]
    async fn duplicate_uuid_rolls_back_the_whole_notification() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("o.sqlite3"), SyncMode::Normal).unwrap();
        store.enqueue(n("ops"), &[msg("u1")], 1).await.unwrap();
        assert!(store.enqueue(n("ops"), &[msg("u2"), msg("u1")], 2).await.is_err());
        assert_eq!(store.records("ops").await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn a_failing_job_undoes_only_itself_within_a_group_commit() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("o.sqlite3"), SyncMode::Full).unwrap();
        store.enqueue(n("ops"), &[msg("taken")], 1).await.unwrap();
        // Submitted together, so the storage thread takes many of them in one batch (one transaction).
        let calls = (0..50).map(|i| {
            let store = store.clone();
            async move {
                match i {
                    // Its second message reuses a msgUuid: the notification and its first message go.
                    7 => store.enqueue(n("ops"), &[msg("m7"), msg("taken")], 10).await,
                    // The same notification twice in one batch: the second sees the first's insert.
                    20 | 21 => {
                        let same = NewNotification { dedup: Some(("same", 0)), ..n("ops") };
                        store.enqueue(same, &[msg(&format!("m{i}"))], 10).await
                    }
                    _ => store.enqueue(n("ops"), &[msg(&format!("m{i}"))], 10).await,
                }
            }
        });
        let results = futures_join_all(calls).await;
        assert!(results[7].is_err());
        let accepted = results.iter().filter(|r| matches!(r, Ok(Enqueued::Accepted(_)))).count();
        let duplicates = results.iter().filter(|r| matches!(r, Ok(Enqueued::Duplicate(_)))).count();
        assert_eq!((accepted, duplicates), (48, 1));
        let recs = store.records("ops").await.unwrap();
        assert_eq!(recs.len(), 1 + 48, "every accepted notification's message, nothing of the failed one");
        assert!(!recs.iter().any(|r| r.msg_uuid == "m7"));
    }

    /// Runs the futures concurrently, results in order.
    async fn futures_join_all<F: std::future::Future + Send + 'static>(futs: impl Iterator<Item = F>) -> Vec<F::Output>
    where
        F::Output: Send + 'static,
    {
        let handles: Vec<_> = futs.map(tokio::spawn).collect();
        let mut out = vec![];
        for h in handles {
            out.push(h.await.unwrap());
        }
        out
    }

    #[tokio::test]
    async fn duplicates_within_the_window_are_not_stored() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("o.sqlite3"), SyncMode::Normal).unwrap();
        let with_key = |since| NewNotification { dedup: Some(("k1", since)), ..n("ops") };
        assert_eq!(store.enqueue(with_key(0), &[msg("u1")], 1000).await.unwrap(), Enqueued::Accepted(1));
        assert_eq!(store.enqueue(with_key(500), &[msg("u2")], 1500).await.unwrap(), Enqueued::Duplicate(1));
        // The duplicate is a record (notification 2, no messages), never matched itself.
        let page = store.record_page(super::super::RecordFilter {
            state: Some("suppressed".into()),
            limit: 10,
            ..Default::default()
        });
        let suppressed = page.await.unwrap();
        assert_eq!((suppressed.len(), suppressed[0].id, suppressed[0].reason.as_deref()), (1, 2, Some("duplicate")));
        assert!(store.records("ops").await.unwrap().iter().all(|r| r.msg_uuid != "u2"), "its message is not stored");
        // Outside the window, or for another target, it is new.
        assert_eq!(store.enqueue(with_key(1001), &[msg("u3")], 2000).await.unwrap(), Enqueued::Accepted(3));
        let other = NewNotification { dedup: Some(("k1", 0)), ..n("dev") };
        assert_eq!(store.enqueue(other, &[msg("u4")], 2000).await.unwrap(), Enqueued::Accepted(4));
    }

    #[tokio::test]
    async fn a_digest_takes_the_place_of_what_it_merges_and_records_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("o.sqlite3"), SyncMode::Normal).unwrap();
        for i in 0..4 {
            let summary = summary(&format!("group {i}"));
            let new = NewNotification { summary: &summary, ..n("ops") };
            store.enqueue(new, &[msg(&format!("m{i}"))], 1000 + i).await.unwrap();
        }
        let candidates = store.digest_candidates("ops", 3).await.unwrap().list;
        assert_eq!(
            candidates.iter().map(|c| c.summary.name.as_str()).collect::<Vec<_>>(),
            vec!["group 0", "group 1", "group 2"]
        );
        let ids: Vec<i64> = candidates.iter().map(|c| c.id).collect();
        let digest = store.merge_into_digest("ops", &ids, &msg("d1"), 5000).await.unwrap();
        assert_eq!(store.pending_count("ops", 100).await.unwrap(), 2);
        let head = store.next_pending("ops").await.unwrap().unwrap();
        assert_eq!((head.id, head.kind, head.created_at_ms), (digest, Kind::Digest, 5000), "the digest goes first");
        // A pending digest is never merged into another.
        assert!(store.digest_candidates("ops", 10).await.unwrap().list.is_empty());
        store.mark_delivered(digest, 1, 6000).await.unwrap();
        assert_eq!(store.next_pending("ops").await.unwrap().unwrap().msg_uuid, "m3");
        let recs = store.records("ops").await.unwrap();
        assert_eq!(recs.iter().filter(|r| r.carried_by == Some(digest) && r.state == State::Merged).count(), 3);

        assert_eq!(store.prune(7000).await.unwrap(), 4, "the digest and what it carried go together");
        assert_eq!(store.records("ops").await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn a_message_that_may_have_been_posted_is_never_merged() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("o.sqlite3"), SyncMode::Normal).unwrap();
        for i in 0..3 {
            store.enqueue(n("ops"), &[msg(&format!("m{i}"))], 1000 + i).await.unwrap();
        }
        store.begin_attempt(1, "r", 1).await.unwrap();
        let ids = |c: Candidates| c.list.iter().map(|c| c.id).collect::<Vec<_>>();
        assert_eq!(ids(store.digest_candidates("ops", 10).await.unwrap()), vec![2, 3], "in doubt: resent as itself");
        store.schedule_retry(1, 1, 0, "connection refused", false).await.unwrap();
        assert_eq!(ids(store.digest_candidates("ops", 10).await.unwrap()), vec![1, 2, 3], "proved not posted");
    }

    #[tokio::test]
    async fn robot_sends_and_pauses_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("o.sqlite3");
        let store = Store::open(&path, SyncMode::Normal).unwrap();
        store.enqueue(n("ops"), &[msg("u1")], 1).await.unwrap();
        for t in [100, 200, 300] {
            store.begin_attempt(1, "robot-a", t).await.unwrap();
        }
        store.record_pause("robot-a", 9000).await.unwrap();
        store.record_pause("robot-a", 9500).await.unwrap();
        drop(store);
        let store = Store::open(&path, SyncMode::Normal).unwrap();
        assert_eq!(store.robot_state("robot-a", 150, 1000).await.unwrap(), (vec![200, 300], Some(9500)));
        assert_eq!(store.robot_state("robot-a", 0, 9600).await.unwrap().1, None);
        assert_eq!(store.robot_state("robot-b", 0, 0).await.unwrap(), (vec![], None));
    }

    #[tokio::test]
    async fn a_store_from_a_newer_version_is_refused_and_left_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("o.sqlite3");
        let store = Store::open(&path, SyncMode::Full).unwrap();
        store.enqueue(n("ops"), &[msg("u1")], 1).await.unwrap();
        drop(store);
        let conn = Connection::open(&path).unwrap();
        assert_eq!(conn.query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0)).unwrap(), schema::VERSION);
        conn.pragma_update(None, "user_version", schema::VERSION + 1).unwrap();
        drop(conn);

        let err = Store::open(&path, SyncMode::Full).err().expect("a newer schema is refused");
        assert!(matches!(err, StoreError::TooNew { .. }), "{err}");
        assert!(err.to_string().contains("written by a newer dingtalk-bridge"), "{err}");
        let conn = Connection::open(&path).unwrap();
        assert_eq!(conn.query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0)).unwrap(), schema::VERSION + 1);
        let kept: i64 = conn.query_row("SELECT COUNT(*) FROM messages", [], |r| r.get(0)).unwrap();
        assert_eq!(kept, 1, "nothing was dropped or rewritten");
    }

    #[tokio::test]
    async fn an_unreadable_summary_is_an_error_and_ends_the_candidates() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("o.sqlite3");
        let store = Store::open(&path, SyncMode::Normal).unwrap();
        for i in 0..3 {
            let s = summary(&format!("group {i}"));
            store
                .enqueue(NewNotification { summary: &s, ..n("ops") }, &[msg(&format!("m{i}"))], 1000 + i)
                .await
                .unwrap();
        }
        store.flush().await.unwrap();
        Connection::open(&path)
            .unwrap()
            .execute("UPDATE notifications SET summary = '{\"nam' WHERE id = 2", [])
            .unwrap();
        let found = store.digest_candidates("ops", 10).await.unwrap();
        assert_eq!(found.list.iter().map(|c| c.summary.name.as_str()).collect::<Vec<_>>(), vec!["group 0"]);
        let err = found.corrupt.expect("the corrupt row is reported");
        assert!(matches!(err, StoreError::Corrupt { id: 2, column: "summary", .. }), "{err}");
    }
}
