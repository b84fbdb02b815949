//! Rate budgets that survive restarts: each send's time per receiving end, recorded before the request
//! leaves, and throttle pauses.

use super::*;

impl SqliteStore {
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
}
