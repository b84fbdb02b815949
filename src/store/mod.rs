//! The durable outbox: accepted notifications and the messages that carry them, committed before the
//! webhook is answered, and each message's delivery state. This file holds what callers see (the types
//! and errors); [`backend`] is the interface every store implements and
//! [`Store`] the handle callers hold; [`sqlite`] is the first implementation.

mod backend;
pub mod sqlite;

pub use backend::{Backend, Store};

use crate::render::Summary;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("storage: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("storage: cannot create {path}: {source}")]
    CreateDir { path: String, source: std::io::Error },
    #[error("storage: cannot create or restrict {path} to its owner: {source}")]
    File { path: String, source: std::io::Error },
    /// A group commit failed: every job in it gets the same message (SQLite's errors are not `Clone`).
    #[error("storage: cannot commit: {0}")]
    Commit(String),
    #[error("storage: cannot start the {what} thread: {source}")]
    Start { what: &'static str, source: std::io::Error },
    #[error("storage: the disk refused the write: {0}")]
    Unwritable(String),
    #[error("storage: the storage thread has stopped")]
    Stopped,
    #[error(
        "storage: the database was written by a newer dingtalk-bridge (schema version {found}; this one knows up to {supported}); it is left untouched: run the newer version, or point storage.path elsewhere"
    )]
    TooNew { found: i64, supported: i64 },
    #[error("storage: the query ran past {0:?} and was stopped; narrow it with a target or a time range")]
    TooSlow(std::time::Duration),
    #[error("storage: record {id}: unreadable {column}: {problem}")]
    Corrupt { id: i64, column: &'static str, problem: String },
}

impl StoreError {
    /// Whether it means the database cannot be written (full disk, read-only or vanished file), rather
    /// than a problem with one statement or record.
    pub fn is_write_trouble(&self) -> bool {
        match self {
            StoreError::Sqlite(e) => sqlite::write_trouble(e),
            StoreError::Unwritable(_) => true,
            _ => false,
        }
    }
}

/// One notification to enqueue.
#[derive(Debug, Clone)]
pub struct NewNotification<'a> {
    pub target: &'a str,
    pub group_key: &'a str,
    pub status: &'a str,
    pub alerts: usize,
    /// Duplicate suppression: the notification's identity and how far back to look for it.
    pub dedup: Option<(&'a str, i64)>,
    pub summary: &'a Summary,
    /// Why it was acknowledged without messages.
    pub skipped: Option<crate::route::SkipReason>,
}

/// What `enqueue` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enqueued {
    Accepted(i64),
    /// An identical notification was accepted within the window (its id); nothing was stored.
    Duplicate(i64),
}

/// What a message carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// (Part of) one notification.
    Message,
    /// The notifications of the messages it merged.
    Digest,
}

/// Where a message is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Pending,
    Delivered,
    /// Given up; `reason` says why.
    Failed,
    /// Taken over by a digest (`carried_by`).
    Merged,
}

/// The names stored in the database's `kind` and `state` columns.
macro_rules! column_enum {
    ($t:ty, $column:literal, $($v:ident = $s:literal),+) => {
        impl $t {
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$v => $s),+ }
            }

            fn parse(id: i64, text: &str) -> Result<Self, StoreError> {
                match text {
                    $($s => Ok(Self::$v),)+
                    other => Err(StoreError::Corrupt { id, column: $column, problem: format!("{other:?}") }),
                }
            }
        }
    };
}
column_enum!(Kind, "kind", Message = "message", Digest = "digest");
column_enum!(State, "state", Pending = "pending", Delivered = "delivered", Failed = "failed", Merged = "merged");

/// A message waiting to be sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    pub id: i64,
    pub kind: Kind,
    pub msg_uuid: String,
    pub body: String,
    pub created_at_ms: i64,
    pub attempts: i64,
    pub next_attempt_ms: i64,
    /// Whom it goes to and what became of each recipient so far (protocols that name recipients per call).
    pub recipients: Option<Box<crate::channel::Delivery>>,
}

/// A pending message a digest may take over, with its notification's summary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub id: i64,
    pub notification_id: i64,
    pub summary: Summary,
}

/// The messages a digest may take over, oldest first, and the first one whose summary could not be read
/// (the candidates end before it: it is sent as itself).
#[derive(Debug, Default)]
pub struct Candidates {
    pub list: Vec<Candidate>,
    pub corrupt: Option<StoreError>,
}

/// A message's record, for tests and (later) the operations console.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub id: i64,
    pub target: String,
    pub kind: Kind,
    pub notification_id: Option<i64>,
    pub msg_uuid: String,
    pub state: State,
    pub carried_by: Option<i64>,
    pub attempts: i64,
    pub reason: Option<String>,
    pub last_error: Option<String>,
}

/// A target switched on or off in the console: it overrides the configuration's `enabled` until cleared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Switch {
    pub enabled: bool,
    /// Who switched it (the console user).
    pub by: String,
    pub at_ms: i64,
}

/// What a push record is: a message, or a notification acknowledged without one. Ordered as their
/// names, which the records' page cursor compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RecordKind {
    Message,
    Notification,
}

impl RecordKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RecordKind::Message => "message",
            RecordKind::Notification => "notification",
        }
    }

    pub fn parse(label: &str) -> Option<RecordKind> {
        [RecordKind::Message, RecordKind::Notification].into_iter().find(|k| k.as_str() == label)
    }
}

/// What became of a push record: a message's state, or why a notification has none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RecordState {
    Pending,
    Delivered,
    Failed,
    Merged,
    /// Acknowledged without a message (`send_on`, `no_route`, `disabled`).
    Skipped,
    /// A duplicate of one accepted within `delivery.dedup_window`.
    Suppressed,
}

impl RecordState {
    pub const ALL: [RecordState; 6] = [
        RecordState::Pending,
        RecordState::Delivered,
        RecordState::Failed,
        RecordState::Merged,
        RecordState::Skipped,
        RecordState::Suppressed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RecordState::Pending => "pending",
            RecordState::Delivered => "delivered",
            RecordState::Failed => "failed",
            RecordState::Merged => "merged",
            RecordState::Skipped => "skipped",
            RecordState::Suppressed => "suppressed",
        }
    }

    pub fn parse(label: &str) -> Option<RecordState> {
        RecordState::ALL.into_iter().find(|s| s.as_str() == label)
    }

    /// Whether the record is a notification without messages.
    pub fn without_message(self) -> bool {
        matches!(self, RecordState::Skipped | RecordState::Suppressed)
    }
}

/// What the console's push records are filtered by. Empty fields do not filter.
#[derive(Debug, Clone, Default)]
pub struct RecordFilter {
    pub target: Option<String>,
    pub state: Option<RecordState>,
    pub since_ms: Option<i64>,
    pub until_ms: Option<i64>,
    /// The start of the group's alert name.
    pub alertname: Option<String>,
    /// Text anywhere in the message's body (its title and content).
    pub text: Option<String>,
    /// Keyset pagination: records older than this (time, kind, id).
    pub before: Option<(i64, RecordKind, i64)>,
    pub limit: usize,
}

/// One line of the push records: a message, or a notification acknowledged without one.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RecordRow {
    pub kind: RecordKind,
    pub id: i64,
    pub target: String,
    pub at_ms: i64,
    pub state: RecordState,
    pub group_key: String,
    pub alertname: String,
    pub status: String,
    pub reason: Option<String>,
    /// The request body (messages only).
    #[serde(skip)]
    pub body: Option<String>,
    pub attempts: i64,
    pub notification_id: Option<i64>,
    pub carried_by: Option<i64>,
    pub message_kind: Option<String>,
    pub last_error: Option<String>,
}

/// A receiving end's sends within the window asked for (their times), and its throttle pause, if any.
pub type RobotState = (Vec<i64>, Option<i64>);

/// One push record: the row, every attempt, and the messages a digest carried.
pub type RecordDetail = (RecordRow, Vec<Attempt>, Vec<i64>);

/// One attempt to send a message.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Attempt {
    pub message_id: i64,
    pub at_ms: i64,
    pub duration_ms: i64,
    /// The answer's HTTP status; `None` when no answer came (refused, timed out).
    pub http_status: Option<u16>,
    pub outcome: crate::channel::AttemptOutcome,
    pub reason: Option<crate::channel::Reason>,
    /// What the receiver answered (its code and message), credentials scrubbed.
    pub detail: String,
}

/// A target's last delivery and last failure, for the console.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LastOutcomes {
    pub delivered_ms: Option<i64>,
    /// When, why (the reason label) and what the tool answered.
    pub failed: Option<(i64, String, String)>,
}

/// A notification acknowledged without a message (`send_on`, `no_route`), kept for `storage.retention`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    pub id: i64,
    pub target: String,
    pub group_key: String,
    pub status: String,
    pub alerts: i64,
    pub reason: String,
    pub received_at_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueStats {
    pub target: String,
    pub depth: i64,
    pub oldest_created_ms: i64,
}
