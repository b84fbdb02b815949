//! What the console shows, typed: the API serializes these and the pages read them, so nothing is read
//! back from JSON by key.

use serde::Serialize;
use serde_json::Value;

use crate::store::{Attempt, RecordRow};

/// One target as the console and the API show it.
#[derive(Debug, Serialize)]
pub(super) struct TargetView {
    pub name: String,
    /// Its protocol.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Where its messages go, credentials redacted.
    pub describe: String,
    /// Whether it sends now (the console's switch, else its configuration).
    pub enabled: bool,
    pub configured_enabled: bool,
    pub switch: Option<SwitchView>,
    pub queue_depth: i64,
    pub oldest_waiting_s: Option<i64>,
    pub last_delivered_ms: Option<i64>,
    pub last_failure: Option<FailureView>,
    /// `None`: `rate_limit: off`.
    pub rate_limit: Option<RateView>,
    pub budget_remaining: Option<usize>,
    pub budget_used: Option<usize>,
    pub paused_for_s: Option<u64>,
}

#[derive(Debug, Serialize)]
pub(super) struct SwitchView {
    pub enabled: bool,
    pub by: String,
    pub at_ms: i64,
}

#[derive(Debug, Serialize)]
pub(super) struct FailureView {
    pub at_ms: i64,
    pub reason: String,
    pub detail: String,
    pub hint: &'static str,
}

#[derive(Debug, Serialize)]
pub(super) struct RateView {
    pub messages: u32,
    pub per_s: f64,
}

/// A line of the push records: the record and what a reader sees first of its body.
#[derive(Debug, Serialize)]
pub(super) struct RecordView {
    #[serde(flatten)]
    pub row: RecordRow,
    pub title: String,
}

/// One push record in full: the exact body, every attempt, the digest it went into or what it carried,
/// and the failure's hint.
#[derive(Debug, Serialize)]
pub(super) struct RecordDetail {
    #[serde(flatten)]
    pub row: RecordRow,
    pub title: String,
    /// The body as sent (JSON where it is), shown as stored: bodies hold no credential.
    pub body: Value,
    pub attempts: Vec<Attempt>,
    pub carried: Vec<i64>,
    pub hint: &'static str,
}
