//! The dry-run channel: renders exactly what the real one would post, logs the body and sends nothing.

use tracing::info;

use super::{Outcome, dingtalk};

/// A target without a receiving end; its bodies are in DingTalk's format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DryRun {
    pub format: dingtalk::Format,
}

impl DryRun {
    pub fn send(&self, target: &str, msg_uuid: &str, body: &str) -> Outcome {
        info!(target, msg_uuid, body, "dry run: would send this body to DingTalk");
        Outcome::Delivered
    }
}
