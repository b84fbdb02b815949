//! The storage thread. One thread owns the connection. Calls queue up as jobs; the thread runs every job
//! waiting at that moment inside one transaction (each multi-statement job in its own savepoint, so one
//! failing job undoes only itself), commits once, and only then answers them all. This is group commit:
//! with `storage.sync: full` every answer still waits for an fsync of the WAL, but one fsync serves
//! everything that arrived meanwhile, and the async runtime never waits on the disk.

use std::sync::mpsc;

use rusqlite::Connection;
use tokio::sync::oneshot;

use super::SqliteStore;
use crate::store::StoreError;

/// What a job gives back once its transaction has committed (or failed to): answers its caller.
type Finish = Box<dyn FnOnce(Option<&TxnError>) + Send>;

/// Why a batch's transaction did not commit.
pub(super) struct TxnError {
    message: String,
    /// The disk refused it (full, read-only, gone), rather than a lock or a bad statement.
    disk: bool,
}

impl From<rusqlite::Error> for TxnError {
    fn from(e: rusqlite::Error) -> Self {
        TxnError { disk: write_trouble(&e), message: e.to_string() }
    }
}
/// A unit of work for the storage thread, run inside the current batch's transaction (`None`: the
/// transaction could not begin, so the job only reports that). Says whether it succeeded.
type Work = Box<dyn FnOnce(Option<&Connection>) -> (bool, Finish) + Send>;

/// Whether an error means the database cannot be written (a full disk, a read-only or vanished file),
/// as opposed to a problem with one statement.
pub(crate) fn write_trouble(e: &rusqlite::Error) -> bool {
    use rusqlite::ErrorCode::*;
    matches!(
        e.sqlite_error_code(),
        Some(
            DiskFull
                | SystemIoFailure
                | ReadOnly
                | CannotOpen
                | DatabaseCorrupt
                | NotADatabase
                | FileLockingProtocolFailed
        )
    )
}

pub(super) struct Job {
    /// Several statements that must apply together: run in a savepoint, undone if the job fails. A single
    /// statement (or a read) is atomic by itself and skips the savepoint.
    atomic: bool,
    work: Work,
}

/// The most jobs one transaction takes: bounds how long the first of them waits for its answer.
const MAX_BATCH: usize = 512;

impl SqliteStore {
    /// Runs `f` in the next batch's transaction (in a savepoint of its own) and returns its result once
    /// that transaction has committed.
    pub(super) async fn call<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, rusqlite::Error> + Send + 'static,
    {
        self.run(true, f).await
    }

    /// [`call`](Self::call) for a single statement or a read, which needs no savepoint of its own.
    pub(super) async fn call_one<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, rusqlite::Error> + Send + 'static,
    {
        self.run(false, f).await
    }

    async fn run<T, F>(&self, atomic: bool, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, rusqlite::Error> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let health = self.health.clone();
        self.jobs
            .send(job(atomic, f, move |answer: Result<T, StoreError>| {
                health.observe(answer.as_ref().err());
                let _ = tx.send(answer);
            }))
            .map_err(|_| StoreError::Stopped)?;
        rx.await.map_err(|_| StoreError::Stopped)?
    }
}

/// A job running `f` whose outcome, once its transaction has committed (or failed to), goes to `answer`.
fn job<T, F, A>(atomic: bool, f: F, answer: A) -> Job
where
    T: Send + 'static,
    F: FnOnce(&Connection) -> Result<T, rusqlite::Error> + Send + 'static,
    A: FnOnce(Result<T, StoreError>) + Send + 'static,
{
    let work: Work = Box::new(move |conn| {
        let result = conn.map(f);
        let ok = matches!(result, Some(Ok(_)));
        let finish: Finish = Box::new(move |txn_error: Option<&TxnError>| {
            answer(match (result, txn_error) {
                (Some(Ok(v)), None) => Ok(v),
                (Some(Err(e)), _) => Err(StoreError::Sqlite(e)),
                (_, Some(e)) if e.disk => Err(StoreError::Unwritable(e.message.clone())),
                (_, Some(e)) => Err(StoreError::Commit(e.message.clone())),
                (None, None) => Err(StoreError::Stopped),
            })
        });
        (ok, finish)
    });
    Job { atomic, work }
}

impl SqliteStore {
    /// Queues `f` behind everything submitted so far without waiting for it: later calls see its writes.
    /// A failure is logged (with `what`), as nobody waits to hear of it.
    pub(super) fn submit<F>(&self, what: &'static str, f: F)
    where
        F: FnOnce(&Connection) -> Result<(), rusqlite::Error> + Send + 'static,
    {
        self.submit_then(what, f, |_| {});
    }

    /// [`submit`](Self::submit), and `failed` runs (on the storage thread) if the write does not commit.
    pub(super) fn submit_then<F, G>(&self, what: &'static str, f: F, failed: G)
    where
        F: FnOnce(&Connection) -> Result<(), rusqlite::Error> + Send + 'static,
        G: FnOnce(&StoreError) + Send + 'static,
    {
        let health = self.health.clone();
        let log = move |answer: Result<(), StoreError>| {
            health.observe(answer.as_ref().err());
            if let Err(error) = answer {
                tracing::error!(%error, "cannot {what}");
                failed(&error);
            }
        };
        if self.jobs.send(job(false, f, log)).is_err() {
            tracing::error!("storage: cannot {what}: the storage thread has stopped");
        }
    }
}

/// The storage thread: waits for a job, takes every other job already queued (up to `MAX_BATCH`), runs
/// them in one transaction, commits once, then answers them all.
pub(super) fn worker(conn: Connection, rx: mpsc::Receiver<Job>) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        if let Err(e) = exec(&conn, "BEGIN IMMEDIATE") {
            let e = TxnError::from(e);
            for job in batch {
                (job.work)(None).1(Some(&e));
            }
            continue;
        }
        let finishes: Vec<Finish> = batch.into_iter().filter_map(|job| run_job(&conn, job)).collect();
        let error = exec(&conn, "COMMIT").err().map(|e| {
            let _ = exec(&conn, "ROLLBACK");
            TxnError::from(e)
        });
        for finish in finishes {
            finish(error.as_ref());
        }
    }
}

/// Runs a statement without parameters from the statement cache (these run a few times per batch).
fn exec(conn: &Connection, sql: &str) -> Result<(), rusqlite::Error> {
    conn.prepare_cached(sql)?.execute([]).map(drop)
}

/// Runs one job, an atomic one in a savepoint that is undone if the job fails. A job that panics is
/// undone too and its caller gets an error (its answer channel is dropped) rather than the thread going
/// down.
fn run_job(conn: &Connection, job: Job) -> Option<Finish> {
    if job.atomic
        && let Err(e) = exec(conn, "SAVEPOINT job")
    {
        let e = TxnError::from(e);
        let (_, finish) = (job.work)(None);
        finish(Some(&e));
        return None;
    }
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (job.work)(Some(conn))));
    let undo = !matches!(outcome, Ok((true, _)));
    if job.atomic {
        let _ = if undo {
            exec(conn, "ROLLBACK TO job").and_then(|()| exec(conn, "RELEASE job"))
        } else {
            exec(conn, "RELEASE job")
        };
    }
    outcome.ok().map(|(_, finish)| finish)
}

/// A read for the reader thread: runs on its own connection, so a long console query never holds up the
/// writer (WAL lets readers and the writer proceed together).
pub(super) type Read = Box<dyn FnOnce(&Connection) + Send>;

/// How long one read may run before it is interrupted with an error: a query the indexes cannot narrow
/// must not leave the console's other pages waiting behind it.
pub(super) const READ_DEADLINE: std::time::Duration = std::time::Duration::from_secs(5);

/// The reader thread: runs reads one at a time on a query-only connection until every sender is gone.
pub(super) fn reader(mut conn: Connection, rx: mpsc::Receiver<Read>) {
    let started = std::sync::Arc::new(std::sync::Mutex::new(std::time::Instant::now()));
    let clock = started.clone();
    // Checked every few thousand virtual-machine steps; returning true interrupts the statement.
    let _ =
        conn.progress_handler(4096, Some(move || clock.lock().map(|t| t.elapsed() > READ_DEADLINE).unwrap_or(false)));
    while let Ok(read) = rx.recv() {
        if let Ok(mut t) = started.lock() {
            *t = std::time::Instant::now();
        }
        read(&conn);
    }
}

impl SqliteStore {
    /// Runs `f` on the reader thread's connection (outside the writer's transactions: it sees what has
    /// committed).
    pub(super) async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, rusqlite::Error> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        self.reads
            .send(Box::new(move |conn| {
                let _ = tx.send(f(conn).map_err(|e| match e.sqlite_error_code() {
                    Some(rusqlite::ErrorCode::OperationInterrupted) => StoreError::TooSlow(READ_DEADLINE),
                    _ => StoreError::from(e),
                }));
            }))
            .map_err(|_| StoreError::Stopped)?;
        rx.await.map_err(|_| StoreError::Stopped)?
    }
}
