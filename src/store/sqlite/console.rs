//! What the console reads and changes: target switches, last outcomes, the push records' pages, one
//! record with its attempts, skipped notifications, and the attempt log.

use super::*;

impl SqliteStore {
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
}
