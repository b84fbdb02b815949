//! The console's push records: a page of messages and skipped notifications, newest first. Each filter has
//! an index to walk, so a page costs about the rows it shows, not the size of the store:
//! - no alert name or text: the time index of messages (with the target's and state's, if given);
//! - an alert name: each matching name's notifications newest first, then their messages;
//! - text of three characters or more: the trigram text index, newest first, and directly the few
//!   newest messages the storage thread has not indexed yet.
//!
//! Ordering is by time, then kind, then id. A message's id grows with its time (both are taken when it is
//! stored), so walking ids newest first is walking time newest first.

use rusqlite::types::Value as Sql;
use rusqlite::{Connection, OptionalExtension};

use crate::store::{RecordFilter, RecordKind, RecordRow, RecordState};

/// The columns [`message_record`] reads: a message with its notification's group, name and status.
const COLUMNS: &str = "m.id, m.target, m.created_at_ms, m.state, COALESCE(n.group_key, ''),
        COALESCE(n.alertname, ''), COALESCE(n.status, ''), m.reason, m.body,
        m.attempts, m.notification_id, m.carried_by, m.kind, m.last_error";

/// Messages with their notifications (a digest has none), as every message query reads them.
const MESSAGES: &str = "messages m LEFT JOIN notifications n ON n.id = m.notification_id";

/// A message with its notification, for one record by id.
pub(super) fn message_by_id(conn: &Connection, id: i64) -> rusqlite::Result<Option<RecordRow>> {
    conn.prepare_cached(&format!("SELECT {COLUMNS} FROM {MESSAGES} WHERE m.id = ?1"))?
        .query_row([id], message_record)
        .optional()
}

/// A push record from a row of [`COLUMNS`].
fn message_record(r: &rusqlite::Row<'_>) -> rusqlite::Result<RecordRow> {
    Ok(RecordRow {
        kind: RecordKind::Message,
        id: r.get(0)?,
        target: r.get(1)?,
        at_ms: r.get(2)?,
        state: {
            let state: String = r.get(3)?;
            RecordState::parse(&state).ok_or_else(|| {
                let problem = format!("unknown state {state:?}");
                rusqlite::Error::FromSqlConversionFailure(3, rusqlite::types::Type::Text, problem.into())
            })?
        },
        group_key: r.get(4)?,
        alertname: r.get(5)?,
        status: r.get(6)?,
        reason: r.get(7)?,
        body: r.get(8)?,
        attempts: r.get(9)?,
        notification_id: r.get(10)?,
        carried_by: r.get(11)?,
        message_kind: r.get(12)?,
        last_error: r.get(13)?,
    })
}

/// A skipped or suppressed notification's record.
fn notification_record(r: &rusqlite::Row<'_>) -> rusqlite::Result<RecordRow> {
    let reason: String = r.get(6)?;
    Ok(RecordRow {
        kind: RecordKind::Notification,
        id: r.get(0)?,
        target: r.get(1)?,
        at_ms: r.get(2)?,
        state: if reason == "duplicate" { RecordState::Suppressed } else { RecordState::Skipped },
        group_key: r.get(3)?,
        alertname: r.get(4)?,
        status: r.get(5)?,
        reason: Some(reason),
        body: None,
        attempts: 0,
        notification_id: Some(r.get(0)?),
        carried_by: None,
        message_kind: None,
        last_error: None,
    })
}

/// How many distinct alert names a prefix is compared against (one index seek each). A store with more
/// names than this matches the prefix by case only.
const MAX_NAMES: usize = 4096;

/// Up to this many names matched by a prefix are each walked by their own index; more are filtered
/// while walking by time (with so many names, matches are common).
const NAMES_WALKED: usize = 64;

/// The text index answers only for runs of at least this many characters (trigrams).
const TRIGRAM: usize = 3;

/// The filter, resolved once for the queries below.
struct Filter {
    since: i64,
    until: i64,
    before: (i64, String, i64),
    target: Option<String>,
    state: Option<String>,
    /// The alert names the prefix matched (`Some(empty)`: none, so nothing matches).
    names: Option<Vec<String>>,
    /// The text as a `LIKE ... ESCAPE '\'` pattern.
    like: Option<String>,
    /// The longest run of the text without `LIKE` wildcards, as the text index's pattern, when it is long
    /// enough for trigrams.
    probe: Option<String>,
    limit: i64,
}

/// A statement under construction: its text and its parameters in order.
struct Query {
    sql: String,
    args: Vec<Sql>,
}

impl Query {
    fn new(head: String) -> Query {
        Query { sql: head, args: vec![] }
    }

    fn and(&mut self, clause: &str, args: impl IntoIterator<Item = Sql>) {
        self.sql.push_str(" AND ");
        self.sql.push_str(clause);
        self.args.extend(args);
    }

    fn rows(
        mut self,
        conn: &Connection,
        tail: &str,
        limit: i64,
        map: fn(&rusqlite::Row<'_>) -> rusqlite::Result<RecordRow>,
    ) -> rusqlite::Result<Vec<RecordRow>> {
        self.sql.push(' ');
        self.sql.push_str(tail);
        self.sql.push_str(" LIMIT ?");
        self.args.push(Sql::Integer(limit));
        let mut stmt = conn.prepare_cached(&self.sql)?;
        stmt.query_map(rusqlite::params_from_iter(self.args), map)?.collect()
    }
}

fn text(s: &str) -> Sql {
    Sql::Text(s.to_string())
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_")
}

/// A page of push records, newest first.
pub(super) fn page(conn: &Connection, f: &RecordFilter) -> rusqlite::Result<Vec<RecordRow>> {
    let limit = f.limit.clamp(1, 500) as i64;
    let names = match &f.alertname {
        Some(prefix) => Some(alert_names(conn, prefix)?),
        None => None,
    };
    let probe = f.text.as_deref().and_then(|t| {
        let run = t.split(['%', '_']).max_by_key(|run| run.chars().count())?;
        (run.chars().count() >= TRIGRAM).then(|| format!("%{run}%"))
    });
    let filter = Filter {
        since: f.since_ms.unwrap_or(i64::MIN),
        until: f.until_ms.unwrap_or(i64::MAX),
        // No cursor: after every record (`~` sorts after every kind's name).
        before: f.before.map_or((i64::MAX, "~".into(), i64::MAX), |(at, kind, id)| (at, kind.as_str().into(), id)),
        target: f.target.clone(),
        state: f.state.map(|s| s.as_str().to_string()),
        names,
        like: f.text.as_deref().map(|t| format!("%{}%", escape(t))),
        probe,
        limit,
    };
    let mut rows = vec![];
    if filter.names.as_ref().is_some_and(Vec::is_empty) {
        return Ok(rows);
    }
    if !f.state.is_some_and(RecordState::without_message) {
        rows.extend(messages(conn, &filter)?);
    }
    // Skipped notifications have no body to search.
    if f.state.is_none_or(RecordState::without_message) && f.text.is_none() {
        rows.extend(skipped(conn, &filter)?);
    }
    rows.sort_by(|a, b| (b.at_ms, &b.kind, b.id).cmp(&(a.at_ms, &a.kind, a.id)));
    rows.truncate(limit as usize);
    Ok(rows)
}

/// The distinct alert names starting with `prefix`, ignoring case, found by one index seek per name.
fn alert_names(conn: &Connection, prefix: &str) -> rusqlite::Result<Vec<String>> {
    let mut next =
        conn.prepare_cached("SELECT alertname FROM notifications WHERE alertname > ?1 ORDER BY alertname LIMIT 1")?;
    let wanted = prefix.to_lowercase();
    let mut found = vec![];
    let mut last = String::new();
    for _ in 0..MAX_NAMES {
        let Some(name) = next.query_row([&last], |r| r.get::<_, String>(0)).optional()? else {
            return Ok(found);
        };
        if name.to_lowercase().starts_with(&wanted) {
            found.push(name.clone());
        }
        last = name;
    }
    // Too many names to compare each: those that start with the prefix as typed.
    found.clear();
    let mut last = prefix.to_string();
    if let Some(exact) = conn
        .prepare_cached("SELECT alertname FROM notifications WHERE alertname = ?1 LIMIT 1")?
        .query_row([prefix], |r| r.get::<_, String>(0))
        .optional()?
    {
        found.push(exact);
    }
    while let Some(name) = next.query_row([&last], |r| r.get::<_, String>(0)).optional()? {
        if !name.starts_with(prefix) {
            break;
        }
        found.push(name.clone());
        last = name;
    }
    Ok(found)
}

/// The conditions every message query shares: time range, page cursor, target, state, and (unless the
/// query walks them itself) the alert names and the text.
fn message_conditions(q: &mut Query, f: &Filter, names: bool) {
    let (before_ms, kind, before_id) = f.before.clone();
    q.and("m.created_at_ms >= ? AND m.created_at_ms <= ?", [Sql::Integer(f.since), Sql::Integer(f.until)]);
    q.and(
        "(m.created_at_ms < ? OR (m.created_at_ms = ? AND ('message' < ? OR ('message' = ? AND m.id < ?))))",
        [Sql::Integer(before_ms), Sql::Integer(before_ms), text(&kind), text(&kind), Sql::Integer(before_id)],
    );
    if let Some(t) = &f.target {
        q.and("m.target = ?", [text(t)]);
    }
    if let Some(s) = &f.state {
        q.and("m.state = ?", [text(s)]);
    }
    if names && let Some(names) = &f.names {
        let marks = vec!["?"; names.len()].join(", ");
        q.and(&format!("m.alertname IN ({marks})"), names.iter().map(|n| text(n)));
    }
    if let Some(like) = &f.like {
        q.and("m.body LIKE ? ESCAPE '\\'", [text(like)]);
    }
}

/// The page's messages, by whichever index narrows best.
fn messages(conn: &Connection, f: &Filter) -> rusqlite::Result<Vec<RecordRow>> {
    if f.probe.is_some() {
        return messages_by_text(conn, f);
    }
    if let Some(names) = f.names.as_ref().filter(|n| n.len() <= NAMES_WALKED) {
        let mut rows = vec![];
        // With a state too, the messages' own (state, name, time) index: a name's failures are found
        // without walking its deliveries.
        if let Some(state) = &f.state {
            for name in names {
                let mut q = Query::new(format!(
                    "SELECT {COLUMNS} FROM {MESSAGES}
                     WHERE m.state = ? AND m.alertname = ?"
                ));
                q.args.extend([text(state), text(name)]);
                message_conditions(&mut q, f, false);
                rows.extend(q.rows(conn, "ORDER BY m.created_at_ms DESC, m.id DESC", f.limit, message_record)?);
            }
            return Ok(rows);
        }
        for name in names {
            let mut q = Query::new(format!(
                "SELECT {COLUMNS} FROM notifications n JOIN messages m ON m.notification_id = n.id
                 WHERE n.alertname = ? AND n.received_at_ms >= ? AND n.received_at_ms <= ?"
            ));
            // A message is stored with its notification, at the same moment: the notification's time
            // bounds its messages'.
            q.args.extend([text(name), Sql::Integer(f.since), Sql::Integer(f.until.min(f.before.0))]);
            if let Some(t) = &f.target {
                q.and("n.target = ?", [text(t)]);
            }
            message_conditions(&mut q, f, false);
            rows.extend(q.rows(
                conn,
                "ORDER BY n.received_at_ms DESC, n.id DESC, m.id DESC",
                f.limit,
                message_record,
            )?);
        }
        return Ok(rows);
    }
    let mut q = Query::new(format!("SELECT {COLUMNS} FROM {MESSAGES} WHERE 1"));
    message_conditions(&mut q, f, true);
    q.rows(conn, "ORDER BY m.created_at_ms DESC, m.id DESC", f.limit, message_record)
}

/// Messages whose body holds the text: the newest not yet in the text index read directly, the rest
/// through the index, both newest first.
fn messages_by_text(conn: &Connection, f: &Filter) -> rusqlite::Result<Vec<RecordRow>> {
    let probe = f.probe.clone().expect("a text search has a probe");
    let upto: i64 = conn.query_row("SELECT upto FROM text_index", [], |r| r.get(0))?;
    let mut tail = Query::new(format!("SELECT {COLUMNS} FROM {MESSAGES} WHERE m.id > ?"));
    tail.args.push(Sql::Integer(upto));
    message_conditions(&mut tail, f, true);
    let mut rows = tail.rows(conn, "ORDER BY m.id DESC", f.limit, message_record)?;
    if rows.len() as i64 >= f.limit {
        return Ok(rows);
    }
    // The time range and cursor as id bounds, which the text index takes.
    let lowest = if f.since == i64::MIN {
        Some(0)
    } else {
        conn.prepare_cached("SELECT id FROM messages WHERE created_at_ms >= ?1 ORDER BY created_at_ms, id LIMIT 1")?
            .query_row([f.since], |r| r.get(0))
            .optional()?
    };
    let highest = if f.until == i64::MAX {
        Some(i64::MAX)
    } else {
        conn.prepare_cached(
            "SELECT id FROM messages WHERE created_at_ms <= ?1 ORDER BY created_at_ms DESC, id DESC LIMIT 1",
        )?
        .query_row([f.until], |r| r.get(0))
        .optional()?
    };
    let (Some(lowest), Some(highest)) = (lowest, highest) else { return Ok(rows) };
    let mut highest = highest.min(upto);
    if f.before.1 == "message" {
        highest = highest.min(f.before.2 - 1);
    }
    let mut q = Query::new(format!(
        "SELECT {COLUMNS} FROM messages_text t JOIN messages m ON m.id = t.rowid
         LEFT JOIN notifications n ON n.id = m.notification_id
         WHERE t.body LIKE ? AND t.rowid >= ? AND t.rowid <= ?"
    ));
    q.args.extend([Sql::Text(probe), Sql::Integer(lowest), Sql::Integer(highest)]);
    message_conditions(&mut q, f, true);
    rows.extend(q.rows(conn, "ORDER BY t.rowid DESC", f.limit - rows.len() as i64, message_record)?);
    Ok(rows)
}

/// Notifications acknowledged without a message (skipped, or suppressed as duplicates).
fn skipped(conn: &Connection, f: &Filter) -> rusqlite::Result<Vec<RecordRow>> {
    let query = |name: Option<&str>| {
        let (before_ms, kind, before_id) = f.before.clone();
        let mut q = Query::new(
            "SELECT n.id, n.target, n.received_at_ms, n.group_key, COALESCE(n.alertname, ''), n.status, n.skipped
             FROM notifications n
             WHERE n.skipped IS NOT NULL AND n.received_at_ms >= ? AND n.received_at_ms <= ?"
                .to_string(),
        );
        q.args.extend([Sql::Integer(f.since), Sql::Integer(f.until)]);
        q.and(
            "(n.received_at_ms < ? OR (n.received_at_ms = ? AND ('notification' < ? OR ('notification' = ? AND n.id < ?))))",
            [Sql::Integer(before_ms), Sql::Integer(before_ms), text(&kind), text(&kind), Sql::Integer(before_id)],
        );
        if let Some(t) = &f.target {
            q.and("n.target = ?", [text(t)]);
        }
        match f.state.as_deref() {
            Some("suppressed") => q.and("n.skipped = 'duplicate'", []),
            Some("skipped") => q.and("n.skipped != 'duplicate'", []),
            _ => {}
        }
        match (name, &f.names) {
            (Some(name), _) => q.and("n.alertname = ?", [text(name)]),
            (None, Some(names)) => {
                let marks = vec!["?"; names.len()].join(", ");
                q.and(&format!("n.alertname IN ({marks})"), names.iter().map(|n| text(n)));
            }
            (None, None) => {}
        }
        q.rows(conn, "ORDER BY n.received_at_ms DESC, n.id DESC", f.limit, notification_record)
    };
    match f.names.as_ref().filter(|n| n.len() <= NAMES_WALKED) {
        Some(names) => {
            let mut rows = vec![];
            for name in names {
                rows.extend(query(Some(name))?);
            }
            Ok(rows)
        }
        None => query(None),
    }
}

#[cfg(test)]
mod tests {
    use crate::config::SyncMode;
    use crate::render::Message;
    use crate::render::Summary;
    use crate::store::{NewNotification, RecordFilter, RecordKind, RecordState, Store};

    const NAMES: [&str; 5] = ["NodeDiskFull", "KubePodCrashLooping", "KubePodNotReady", "HostOOM", "nodeLowercase"];
    const WORDS: [&str; 6] =
        ["disk_full 50% used", "磁盘告警 on node7", "node1 restarted", "Node7 DOWN", "quiet", "100%_done"];

    /// What a record is, for comparing pages: (kind, id, time, state).
    type Key = (String, i64, i64, String);

    /// Every record with what the filters look at, read with plain queries (no index choices).
    struct Everything {
        /// (key, target, alertname or None, body or None)
        rows: Vec<(Key, String, Option<String>, Option<String>)>,
    }

    impl Everything {
        fn read(path: &std::path::Path) -> Everything {
            let conn = rusqlite::Connection::open(path).unwrap();
            let mut rows = vec![];
            let mut stmt = conn
                .prepare(
                    "SELECT m.id, m.created_at_ms, m.state, m.target, n.alertname, m.body
                     FROM messages m LEFT JOIN notifications n ON n.id = m.notification_id",
                )
                .unwrap();
            for r in stmt
                .query_map([], |r| {
                    Ok((
                        ("message".to_string(), r.get(0)?, r.get(1)?, r.get(2)?),
                        r.get(3)?,
                        r.get(4)?,
                        Some(r.get::<_, String>(5)?),
                    ))
                })
                .unwrap()
            {
                rows.push(r.unwrap());
            }
            let mut stmt = conn
                .prepare(
                    "SELECT id, received_at_ms, skipped, target, alertname FROM notifications WHERE skipped IS NOT NULL",
                )
                .unwrap();
            for r in stmt
                .query_map([], |r| {
                    let reason: String = r.get(2)?;
                    let state = if reason == "duplicate" { "suppressed" } else { "skipped" };
                    Ok((
                        ("notification".to_string(), r.get(0)?, r.get(1)?, state.to_string()),
                        r.get(3)?,
                        r.get(4)?,
                        None,
                    ))
                })
                .unwrap()
            {
                rows.push(r.unwrap());
            }
            Everything { rows }
        }

        /// The page the filter asks for, by brute force: SQLite's LIKE folds ASCII case only.
        fn page(&self, f: &RecordFilter) -> Vec<Key> {
            let mut keys: Vec<&Key> = self
                .rows
                .iter()
                .filter(|(key, target, name, body)| {
                    let (kind, id, at, state) = key;
                    f.target.as_ref().is_none_or(|t| t == target)
                        && f.state.is_none_or(|s| s.as_str() == state)
                        && f.since_ms.is_none_or(|s| *at >= s)
                        && f.until_ms.is_none_or(|u| *at <= u)
                        && f.alertname.as_ref().is_none_or(|p| {
                            name.as_ref().is_some_and(|n| n.to_lowercase().starts_with(&p.to_lowercase()))
                        })
                        && f.text.as_ref().is_none_or(|t| {
                            body.as_ref().is_some_and(|b| b.to_ascii_lowercase().contains(&t.to_ascii_lowercase()))
                        })
                        && f.before
                            .is_none_or(|(bat, bkind, bid)| (*at, kind.as_str(), *id) < (bat, bkind.as_str(), bid))
                })
                .map(|(key, ..)| key)
                .collect();
            keys.sort_by(|a, b| (b.2, &b.0, b.1).cmp(&(a.2, &a.0, a.1)));
            keys.into_iter().take(f.limit).cloned().collect()
        }
    }

    /// A deterministic sequence for the data's variety.
    struct Lcg(u64);
    impl Lcg {
        fn next(&mut self, n: u64) -> u64 {
            self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (self.0 >> 33) % n
        }
    }

    async fn fill(store: &Store) {
        let mut rng = Lcg(7);
        let mut at = 1_000_000;
        for i in 0..300 {
            // Several notifications share a millisecond now and then: ties are broken by kind and id.
            at += rng.next(3) as i64;
            let target = ["a", "b", "c"][rng.next(3) as usize];
            let name = NAMES[rng.next(5) as usize];
            let summary = Summary { name: name.into(), ..Default::default() };
            let skipped = match rng.next(10) {
                0 => Some(crate::route::SkipReason::SendOn),
                1 => Some(crate::route::SkipReason::Disabled),
                _ => None,
            };
            let key = format!("k{}", rng.next(40));
            let n = NewNotification {
                target,
                group_key: "{}:{}",
                status: "firing",
                alerts: 1,
                dedup: Some((&key, at - 5)),
                summary: &summary,
                skipped,
            };
            let messages: Vec<Message> = if skipped.is_some() {
                vec![]
            } else {
                (0..1 + rng.next(2))
                    .map(|p| Message {
                        msg_uuid: format!("u{i}-{p}"),
                        body: format!("{{\"title\":\"{name}\",\"text\":\"{} · {}\"}}", WORDS[rng.next(6) as usize], i),
                        recipients: None,
                    })
                    .collect()
            };
            store.enqueue(n, &messages, at).await.unwrap();
        }
        for p in store.pending("a", 500).await.unwrap().into_iter().chain(store.pending("b", 500).await.unwrap()) {
            match rng.next(4) {
                0 => store.mark_failed(p.id, 1, "keyword", "errcode 310000", at).await.unwrap(),
                1 => {}
                _ => store.mark_delivered(p.id, 1, at).await.unwrap(),
            }
        }
        let merged: Vec<i64> = store.pending("c", 3).await.unwrap().iter().map(|p| p.id).collect();
        let digest =
            Message { msg_uuid: "digest".into(), body: "{\"text\":\"digest of node7\"}".into(), recipients: None };
        store.merge_into_digest("c", &merged, &digest, at).await.unwrap();
    }

    fn filters() -> Vec<RecordFilter> {
        let s = |v: &str| Some(v.to_string());
        let mut out = vec![];
        for target in [None, s("a"), s("c")] {
            let states = std::iter::once(None)
                .chain(["delivered", "failed", "pending", "merged", "skipped", "suppressed"].map(RecordState::parse));
            for state in states {
                for alertname in [None, s("KubePod"), s("kubepod"), s("HostOOM"), s("node"), s("Nope")] {
                    for text in [None, s("disk_full 50%"), s("磁盘告警"), s("NODE7"), s("7"), s("%_d"), s("ode1 ")]
                    {
                        out.push(RecordFilter {
                            target: target.clone(),
                            state,
                            alertname: alertname.clone(),
                            text,
                            limit: 7,
                            ..Default::default()
                        });
                    }
                }
            }
        }
        for (since, until) in [(Some(1_000_100), None), (None, Some(1_000_200)), (Some(1_000_050), Some(1_000_150))] {
            for text in [None, s("node7")] {
                for alertname in [None, s("KubePod")] {
                    out.push(RecordFilter {
                        since_ms: since,
                        until_ms: until,
                        text: text.clone(),
                        alertname,
                        limit: 9,
                        ..Default::default()
                    });
                }
            }
        }
        out
    }

    fn keys(rows: Vec<crate::store::RecordRow>) -> Vec<Key> {
        rows.into_iter().map(|r| (r.kind.as_str().to_string(), r.id, r.at_ms, r.state.as_str().to_string())).collect()
    }

    /// Every page, followed by its cursor to the end, is what brute force over all records says.
    async fn pages_agree(store: &Store, everything: &Everything) {
        for f in filters() {
            let mut f = f;
            for page in 0.. {
                let got = keys(store.record_page(f.clone()).await.unwrap());
                assert_eq!(got, everything.page(&f), "page {page} of {f:?}");
                let Some(last) = got.last().filter(|_| got.len() == f.limit) else { break };
                f.before = Some((last.2, RecordKind::parse(&last.0).expect("a kind"), last.1));
            }
        }
    }

    #[tokio::test]
    async fn every_filter_pages_through_the_same_records_as_brute_force() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("records.sqlite3");
        let store = Store::open(&path, SyncMode::Normal).unwrap();
        fill(&store).await;
        let everything = Everything::read(&path);
        assert!(everything.rows.len() > 300, "{} records", everything.rows.len());
        // Nothing indexed yet: text searches read the messages directly.
        pages_agree(&store, &everything).await;
        // Part indexed, part not.
        for _ in 0..3 {
            assert!(store.index_text(2_000).await.unwrap(), "more to index");
        }
        pages_agree(&store, &everything).await;
        while store.index_text(100_000).await.unwrap() {}
        pages_agree(&store, &everything).await;
    }

    #[tokio::test]
    async fn pruning_keeps_the_text_index_true_even_when_ids_are_handed_out_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("records.sqlite3");
        let store = Store::open(&path, SyncMode::Normal).unwrap();
        let summary = Summary { name: "NodeDiskFull".into(), ..Default::default() };
        let n = |key: &'static str| NewNotification {
            target: "a",
            group_key: key,
            status: "firing",
            alerts: 1,
            dedup: None,
            summary: &summary,
            skipped: None,
        };
        let message = |uuid: &str, text: &str| Message { msg_uuid: uuid.into(), body: text.into(), recipients: None };
        for i in 0..5 {
            store.enqueue(n("g"), &[message(&format!("old{i}"), "old words")], 1000 + i).await.unwrap();
        }
        while store.index_text(100_000).await.unwrap() {}
        for p in store.pending("a", 10).await.unwrap() {
            store.mark_delivered(p.id, 1, 2000).await.unwrap();
        }
        // Every message goes, the newest too, so SQLite starts ids again from 1.
        assert_eq!(store.prune(3000).await.unwrap(), 5);
        store.enqueue(n("g"), &[message("new", "new words")], 4000).await.unwrap();
        let text = |t: &str| RecordFilter { text: Some(t.into()), limit: 10, ..Default::default() };
        assert_eq!(store.record_page(text("old words")).await.unwrap().len(), 0);
        let found = store.record_page(text("new words")).await.unwrap();
        assert_eq!(found.len(), 1, "found before indexing");
        while store.index_text(100_000).await.unwrap() {}
        assert_eq!(keys(store.record_page(text("new words")).await.unwrap()), keys(found), "and after");
        // The index agrees with its content (FTS5's own check).
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute("INSERT INTO messages_text (messages_text, rank) VALUES ('integrity-check', 1)", []).unwrap();
    }
}
