//! The store in SQLite: opening it (the engine's threads, [`engine`]; the schema and its migrations,
//! [`schema`]; the file's health, [`health`]) and the helpers its operations share. The operations are by
//! concern: [`outbox`], [`digests`], [`budgets`], [`console`] (with [`records`]), [`maintenance`].

mod backend;
mod budgets;
mod console;
mod digests;
mod engine;
mod health;
mod maintenance;
mod outbox;
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
pub struct SqliteStore {
    jobs: mpsc::Sender<Job>,
    /// The console's reads, on a connection of their own.
    reads: mpsc::Sender<Read>,
    health: Arc<Health>,
    file: Arc<FileId>,
    /// The console's switches, read once at open and kept in step with every change: the webhook and the
    /// senders ask on every notification and message.
    switches: Arc<std::sync::RwLock<std::collections::HashMap<String, super::Switch>>>,
    console_key: [u8; 32],
    /// When the intake last enqueued (wall-clock ms): background work on the writer waits for a lull.
    last_enqueue_ms: Arc<std::sync::atomic::AtomicI64>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and starts its thread, which ends when the
    /// last clone of the `Store` is dropped.
    pub fn open(path: &Path, sync: SyncMode) -> Result<SqliteStore, StoreError> {
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
            .map_err(|source| StoreError::Start { what: "storage", source })?;
        let (reads, read_rx) = mpsc::channel::<Read>();
        std::thread::Builder::new()
            .name("storage-reads".into())
            .spawn(move || reader(reading, read_rx))
            .map_err(|source| StoreError::Start { what: "storage reader", source })?;
        Ok(SqliteStore {
            jobs,
            reads,
            health: Arc::new(Health::default()),
            file: Arc::new(file),
            switches: Arc::new(std::sync::RwLock::new(switches)),
            console_key,
            last_enqueue_ms: Default::default(),
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

impl SqliteStore {
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

#[cfg(test)]
mod tests {
    type Store = SqliteStore;
    use super::*;

    fn msg(uuid: &str) -> Message {
        Message { msg_uuid: uuid.into(), body: format!("{{\"msgUuid\":\"{uuid}\"}}"), recipients: None }
    }

    static NO_SUMMARY: Summary = Summary {
        status: crate::decode::Status::Firing,
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
            state: Some(RecordState::Suppressed),
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
