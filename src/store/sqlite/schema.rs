//! The schema as a list of migrations. `PRAGMA user_version` says how many a database has had; opening
//! applies the missing ones, each in its own transaction. A database from a newer bridge (a version above
//! what this one knows) is refused, never written to.

use rusqlite::Connection;

use crate::store::StoreError;

/// Migration `i` takes a database from version `i` to `i + 1`. Append only: never edit one that shipped.
const MIGRATIONS: [&str; 7] = [
    // 1: notifications, messages, robot budgets. Written with IF NOT EXISTS because databases made before
    // migrations existed already have these tables at version 1.
    "
CREATE TABLE IF NOT EXISTS notifications (
    id             INTEGER PRIMARY KEY,
    target         TEXT NOT NULL,
    group_key      TEXT NOT NULL,
    status         TEXT NOT NULL,
    alerts         INTEGER NOT NULL,
    received_at_ms INTEGER NOT NULL,
    -- Identity for duplicate suppression (group key, status, alert states); NULL when suppression is off.
    dedup_key      TEXT,
    -- A compact JSON summary, what a storm digest lists for this notification.
    summary        TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS notifications_dedup ON notifications (target, dedup_key, received_at_ms)
    WHERE dedup_key IS NOT NULL;
-- A message is one DingTalk request body. kind 'message' carries (part of) one notification; kind
-- 'digest' carries the notifications of the messages it merged (state 'merged', carried_by = the digest).
CREATE TABLE IF NOT EXISTS messages (
    id              INTEGER PRIMARY KEY,
    notification_id INTEGER REFERENCES notifications(id),
    target          TEXT NOT NULL,
    kind            TEXT NOT NULL DEFAULT 'message' CHECK (kind IN ('message', 'digest')),
    -- Delivery order within a target; a digest takes the place of the oldest message it merged.
    seq             INTEGER,
    msg_uuid        TEXT NOT NULL UNIQUE,
    body            TEXT NOT NULL,
    state           TEXT NOT NULL DEFAULT 'pending'
                    CHECK (state IN ('pending', 'delivered', 'failed', 'merged')),
    carried_by      INTEGER REFERENCES messages(id),
    -- 1 while DingTalk may have the message: an attempt started and no answer proved it was not posted.
    -- Such a message is resent as itself (DingTalk deduplicates its msgUuid), never merged into a digest.
    in_doubt        INTEGER NOT NULL DEFAULT 0,
    created_at_ms   INTEGER NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_ms INTEGER NOT NULL,
    reason          TEXT,
    last_error      TEXT,
    finished_at_ms  INTEGER
);
CREATE INDEX IF NOT EXISTS messages_pending ON messages (target, seq, id) WHERE state = 'pending';
CREATE INDEX IF NOT EXISTS messages_finished ON messages (finished_at_ms) WHERE state != 'pending';
-- Each robot's recent sends and throttle pause, so a restart keeps its rate budget. `robot` is a hash of
-- the robot URL, never the access_token itself.
CREATE TABLE IF NOT EXISTS robot_sends (
    robot      TEXT NOT NULL,
    sent_at_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS robot_sends_by_robot ON robot_sends (robot, sent_at_ms);
CREATE TABLE IF NOT EXISTS robot_pauses (
    robot       TEXT PRIMARY KEY,
    until_ms    INTEGER NOT NULL
);
",
    // 2: one row the store watcher rewrites (64 KiB) to learn whether a notification would still fit on
    // the disk.
    "
CREATE TABLE health_probe (
    id  INTEGER PRIMARY KEY,
    pad BLOB NOT NULL
);
",
    // 3: whom a DingTalk app robot's message goes to, and each recipient's outcome so far (JSON: the users
    // or group still to reach, the users reached, the users that failed for good); NULL for webhooks.
    "
ALTER TABLE messages ADD COLUMN recipients TEXT;
",
    // 4: why a notification was acknowledged without messages (`send_on`, `no_route`); NULL when sent.
    "
ALTER TABLE notifications ADD COLUMN skipped TEXT;
",
    // 5: targets switched on or off in the console, overriding the configuration until cleared.
    "
CREATE TABLE target_switches (
    target        TEXT PRIMARY KEY,
    enabled       INTEGER NOT NULL,
    changed_by    TEXT NOT NULL,
    changed_at_ms INTEGER NOT NULL
);
",
    // 6: every attempt to send a message, for the console's push records (pruned with their message);
    // and the index the records' newest-first pages read.
    "
CREATE TABLE attempts (
    id          INTEGER PRIMARY KEY,
    message_id  INTEGER NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    at_ms       INTEGER NOT NULL,
    duration_ms INTEGER NOT NULL,
    http_status INTEGER,
    outcome     TEXT NOT NULL,
    reason      TEXT,
    detail      TEXT NOT NULL
);
CREATE INDEX attempts_message ON attempts (message_id);
CREATE INDEX messages_created ON messages (created_at_ms);
CREATE INDEX messages_target_created ON messages (target, created_at_ms);
CREATE INDEX messages_state_created ON messages (state, created_at_ms);
CREATE INDEX messages_target_state_created ON messages (target, state, created_at_ms);
CREATE INDEX notifications_skipped ON notifications (received_at_ms) WHERE skipped IS NOT NULL;
CREATE INDEX notifications_target_skipped ON notifications (target, received_at_ms) WHERE skipped IS NOT NULL;
-- The group's alert name, which the records filter by, as a column (reading it from the summary's JSON
-- for every candidate row was the slowest filter).
ALTER TABLE notifications ADD COLUMN alertname TEXT;
UPDATE notifications SET alertname = json_extract(summary, '$.name');
",
    // 7: the console's signing key; indexes for what pruning and the records look up by. Without the
    // first two, deleting a message checked every other message for a digest or notification pointing at
    // it (foreign keys), so pruning an hour of a million-row store held the writer for minutes. The alert-name indexes let the records
    // walk one name newest first. The text index (trigrams, so any substring of three or more characters
    // is found) covers messages up to `text_index.upto`: the storage thread indexes in small batches behind
    // the intake instead of in each notification's transaction, and a search reads the rest directly.
    "
CREATE INDEX messages_carried ON messages (carried_by) WHERE carried_by IS NOT NULL;
CREATE INDEX messages_notification ON messages (notification_id);
CREATE INDEX notifications_received ON notifications (received_at_ms);
-- A message keeps its notification's alert name too, so a state and a name narrow it in one index.
ALTER TABLE messages ADD COLUMN alertname TEXT;
UPDATE messages SET alertname = (SELECT n.alertname FROM notifications n WHERE n.id = messages.notification_id)
    WHERE notification_id IS NOT NULL;
CREATE INDEX messages_state_alertname ON messages (state, alertname, created_at_ms);
CREATE INDEX notifications_alertname ON notifications (alertname, received_at_ms);
CREATE INDEX notifications_target_alertname ON notifications (target, alertname, received_at_ms);
CREATE INDEX notifications_alertname_skipped ON notifications (alertname, received_at_ms) WHERE skipped IS NOT NULL;
CREATE INDEX notifications_target_alertname_skipped ON notifications (target, alertname, received_at_ms)
    WHERE skipped IS NOT NULL;
CREATE VIRTUAL TABLE messages_text USING fts5 (
    body, content = 'messages', content_rowid = 'id', tokenize = 'trigram', detail = 'none'
);
CREATE TABLE text_index (upto INTEGER NOT NULL);
INSERT INTO text_index (upto) VALUES (0);
-- The key the console signs its sessions and CSRF tokens with, made once, so a restart keeps everyone
-- logged in.
CREATE TABLE console_key (
    id  INTEGER PRIMARY KEY CHECK (id = 1),
    key BLOB NOT NULL
);
-- An indexed message leaves the index with its row (an external-content index must be told the old text).
CREATE TRIGGER messages_text_forget AFTER DELETE ON messages
    WHEN old.id <= (SELECT upto FROM text_index)
BEGIN
    INSERT INTO messages_text (messages_text, rowid, body) VALUES ('delete', old.id, old.body);
END;
",
];

/// The schema version this build writes.
pub const VERSION: i64 = MIGRATIONS.len() as i64;

/// Brings the database up to [`VERSION`], or refuses one written by a newer version.
pub fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let found: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if found > VERSION {
        return Err(StoreError::TooNew { found, supported: VERSION });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", i as i64 + 1)?;
        tx.commit()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SyncMode;
    use crate::store::{RecordFilter, Store};

    #[tokio::test]
    async fn a_store_from_the_previous_version_is_searched_and_filtered_after_the_upgrade() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.sqlite3");
        {
            // A store as version 6 left it, with a delivered message.
            let conn = Connection::open(&path).unwrap();
            for sql in &MIGRATIONS[..6] {
                conn.execute_batch(sql).unwrap();
            }
            conn.execute_batch(
                "PRAGMA user_version = 6;
                 INSERT INTO notifications (id, target, group_key, status, alerts, received_at_ms, alertname)
                     VALUES (1, 'ops', '{}:{}', 'firing', 1, 1000, 'NodeDiskFull');
                 INSERT INTO messages (id, notification_id, target, msg_uuid, body, state, created_at_ms, next_attempt_ms, finished_at_ms)
                     VALUES (1, 1, 'ops', 'u1', '{\"text\":\"disk almost full on node7\"}', 'failed', 1000, 1000, 1000);",
            )
            .unwrap();
        }
        let store = Store::open(&path, SyncMode::Normal).unwrap();
        let page = |f: RecordFilter| store.record_page(RecordFilter { limit: 10, ..f });
        let failed_disk = || RecordFilter {
            state: Some(crate::store::RecordState::Failed),
            alertname: Some("nodedisk".into()),
            text: Some("node7".into()),
            ..Default::default()
        };
        // Found before the storage thread indexes its text, and after.
        assert_eq!(page(failed_disk()).await.unwrap().len(), 1);
        while store.index_text(1 << 20).await.unwrap() {}
        let found = page(failed_disk()).await.unwrap();
        assert_eq!((found.len(), found[0].alertname.as_str()), (1, "NodeDiskFull"));
        assert!(page(RecordFilter { text: Some("node8".into()), ..Default::default() }).await.unwrap().is_empty());
    }
}
