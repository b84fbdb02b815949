//! Storm digests in the store: the waiting messages a digest may take over, and the merge that replaces
//! them with it in one transaction.

use super::*;

impl SqliteStore {
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
}
