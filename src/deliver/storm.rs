//! The storm policy: when more messages wait than the budget can send within `delivery.digest_after`, the
//! first of them that the budget allows are sent as they are and the rest are merged into one digest
//! behind them. Expired messages are carried on by a digest the same way.

use tracing::{error, info};

use super::{Budget, Delivery, human};
use crate::clock::now_ms;
use crate::config::Target;
use crate::render::Summary;
use crate::store::StoreError;

/// The most waiting messages one digest considers.
const MAX_DIGEST_CANDIDATES: usize = 2000;

/// Applies the storm policy; true if a digest was made.
pub async fn storm(d: &Delivery, target: &Target, budget: &Budget) -> Result<bool, StoreError> {
    // A DingTalk app's messages name their recipients one by one: a digest would have to keep each
    // recipient's outcome. Its budget (20 calls a second) drains a storm in seconds instead.
    if !target.channel.caps().digests {
        return Ok(false);
    }
    let room = budget.available_within(d.cfg.digest_after);
    if room == usize::MAX {
        return Ok(false);
    }
    // Counting stops where the answer is known, so a deep backlog costs no more than a shallow one.
    let pending = d.store.pending_count(&target.name, (room + 1).max(2)).await? as usize;
    if pending < 2 || pending <= room {
        return Ok(false);
    }
    let limit = target.rate_limit;
    let why = format!(
        "They arrived faster than this robot may post ({} messages per {}), so they are listed together.",
        limit.messages,
        human(limit.per)
    );
    // A digest of one message would cost the same send as the message itself, and say less.
    Ok(!make_digest(d, target, room.saturating_sub(1), 2, &why).await?.is_empty())
}

/// Merges the waiting messages after the first `keep` into a digest (as many as fit one message), if there
/// are at least `min` of them; returns the ids of the messages it merged (none: no digest).
pub async fn make_digest(
    d: &Delivery,
    target: &Target,
    keep: usize,
    min: usize,
    why: &str,
) -> Result<Vec<i64>, StoreError> {
    let name = target.name.as_str();
    let found = d.store.digest_candidates(name, keep + MAX_DIGEST_CANDIDATES).await?;
    if let Some(e) = &found.corrupt {
        // The candidates end before it; it is sent as itself, its body being intact.
        d.metrics.corrupt_record(name);
        error!(target = name, error = %e, "a waiting message's digest summary is unreadable; it is sent on its own");
    }
    let candidates = found.list.get(keep..).unwrap_or_default();
    if candidates.is_empty() || candidates.len() < min {
        return Ok(vec![]);
    }
    // One line per notification: the parts of a split notification share it.
    let mut notifications: Vec<i64> = vec![];
    let mut entries: Vec<Summary> = vec![];
    for c in candidates {
        if notifications.last() != Some(&c.notification_id) {
            notifications.push(c.notification_id);
            entries.push(c.summary.clone());
        }
    }
    let (message, carried) = d.renderer.digest(target, &entries, why);
    let carried: &[i64] = &notifications[..carried];
    let merged: Vec<i64> = candidates.iter().filter(|c| carried.contains(&c.notification_id)).map(|c| c.id).collect();
    let id = d.store.merge_into_digest(name, &merged, &message, now_ms()).await?;
    d.metrics.digest(name);
    info!(
        target = name,
        digest = id,
        msg_uuid = %message.msg_uuid,
        notifications = carried.len(),
        messages = merged.len(),
        kept = keep,
        "merged waiting messages into a digest"
    );
    Ok(merged)
}
