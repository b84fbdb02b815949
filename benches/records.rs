//! The console's push records with one million messages (`cargo bench --bench records`): how long a
//! filtered, newest-first page of 50 takes through `Store::record_page`, the query the console and
//! `/api/v1/records` run. Figures are in docs/performance.md.
#![forbid(unsafe_code)]

use std::time::Instant;

use dingtalk_bridge::config::SyncMode;
use dingtalk_bridge::store::{RecordFilter, RecordKind, RecordState, Store};

const MESSAGES: i64 = 1_000_000;
/// The newest messages left out of the text index, as if the storage thread had not reached them yet.
const UNINDEXED: i64 = 2_000;
const TARGETS: [&str; 8] = ["ops", "ops-feishu", "pay", "search", "db", "k8s", "edge", "oncall-direct"];
const NAMES: [&str; 10] = [
    "NodeDiskFull",
    "KubePodCrashLooping",
    "HostOutOfMemory",
    "TargetDown",
    "KubeDeploymentReplicasMismatch",
    "PrometheusRuleFailures",
    "NodeFilesystemSpaceFillingUp",
    "CPUThrottlingHigh",
    "Watchdog",
    "BlackboxProbeFailed",
];

fn fill(path: &std::path::Path) {
    // The schema comes from the store itself; the rows go in with one transaction.
    drop(Store::open(path, SyncMode::Normal).expect("store opens"));
    let mut conn = rusqlite::Connection::open(path).unwrap();
    let tx = conn.transaction().unwrap();
    {
        let mut n = tx
            .prepare(
                "INSERT INTO notifications (id, target, group_key, status, alerts, received_at_ms, summary, skipped, alertname)
                 VALUES (?1, ?2, ?3, ?4, 3, ?5, ?6, ?7, ?8)",
            )
            .unwrap();
        let mut m = tx
            .prepare(
                "INSERT INTO messages (notification_id, target, msg_uuid, body, state, created_at_ms, next_attempt_ms, attempts, reason, last_error, finished_at_ms, alertname)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6, 1, ?7, ?8, ?6, ?9)",
            )
            .unwrap();
        let start = 1_790_000_000_000i64;
        for i in 0..MESSAGES {
            let target = TARGETS[(i % 8) as usize];
            let name = NAMES[(i * 7 % 10) as usize];
            let at = start + i * 2_600; // a month of records
            let status = if i % 3 == 0 { "resolved" } else { "firing" };
            let summary = format!(r#"{{"status":"{status}","name":"{name}","severity":"warning","firing":3}}"#);
            let skipped = (i % 50 == 0).then_some("send_on");
            n.execute(rusqlite::params![
                i + 1,
                target,
                format!("{{}}:{{alertname=\"{name}\"}}"),
                status,
                at,
                summary,
                skipped,
                name
            ])
            .unwrap();
            if skipped.is_some() {
                continue;
            }
            let (state, reason, error) = match i % 100 {
                0..=96 => ("delivered", None, None),
                97 => ("failed", Some("keyword"), Some("errcode 310000: keywords not in content")),
                98 => ("merged", None, None),
                _ => ("pending", None, None),
            };
            let body = format!(
                r##"{{"msgtype":"markdown","markdown":{{"title":"🟠 FIRING 3 · {name} · warning · node{}","text":"**🟠 {name}**\n**warning** · 3 firing\n\n> Disk almost full on node{} (request {i})"}},"at":{{"atMobiles":[],"isAtAll":false}}}}"##,
                i % 500,
                i % 500
            );
            m.execute(rusqlite::params![i + 1, target, format!("uuid-{i}"), body, state, at, reason, error, name])
                .unwrap();
        }
    }
    tx.commit().unwrap();
    // The text index as the storage thread leaves it: everything but the newest messages, which a search
    // reads directly.
    conn.execute_batch(&format!(
        "INSERT INTO messages_text (messages_text) VALUES ('rebuild');
         DELETE FROM messages_text WHERE rowid > (SELECT MAX(id) FROM messages) - {UNINDEXED};
         UPDATE text_index SET upto = (SELECT MAX(id) FROM messages) - {UNINDEXED};
         ANALYZE"
    ))
    .unwrap();
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("records.sqlite3");
    let started = Instant::now();
    fill(&path);
    println!("filled {MESSAGES} records in {:.1?}", started.elapsed());
    let store = Store::open(&path, SyncMode::Normal).unwrap();
    let week_ago = 1_790_000_000_000i64 + (MESSAGES - 1) * 2_600 - 7 * 86_400_000;
    let page = |f: RecordFilter| RecordFilter { limit: 50, ..f };
    let s = |v: &str| Some(v.to_string());
    let cases: Vec<(&str, RecordFilter)> = vec![
        ("newest page, no filter", page(RecordFilter::default())),
        ("one target", page(RecordFilter { target: s("pay"), ..Default::default() })),
        ("failed, every target", page(RecordFilter { state: Some(RecordState::Failed), ..Default::default() })),
        (
            "failed, one target",
            page(RecordFilter { target: s("db"), state: Some(RecordState::Failed), ..Default::default() }),
        ),
        ("skipped", page(RecordFilter { state: Some(RecordState::Skipped), ..Default::default() })),
        ("alertname prefix", page(RecordFilter { alertname: s("KubePod"), ..Default::default() })),
        ("target + last week", page(RecordFilter { target: s("k8s"), since_ms: Some(week_ago), ..Default::default() })),
        (
            "text in one target's week",
            page(RecordFilter {
                target: s("edge"),
                since_ms: Some(week_ago),
                text: s("node42 "),
                ..Default::default()
            }),
        ),
        (
            "alertname, one target",
            page(RecordFilter { target: s("db"), alertname: s("KubePodCrashLooping"), ..Default::default() }),
        ),
        (
            "alertname, failed",
            page(RecordFilter { state: Some(RecordState::Failed), alertname: s("Blackbox"), ..Default::default() }),
        ),
        (
            "alertname, failed, no match",
            page(RecordFilter { state: Some(RecordState::Failed), alertname: s("Watchdog"), ..Default::default() }),
        ),
        ("alertname, no match", page(RecordFilter { alertname: s("NoSuchAlert"), ..Default::default() })),
        ("text, every target, common", page(RecordFilter { text: s("almost full"), ..Default::default() })),
        ("text, every target, one match", page(RecordFilter { text: s("(request 123457)"), ..Default::default() })),
        ("text, every target, no match", page(RecordFilter { text: s("no such words"), ..Default::default() })),
        ("text + alertname", page(RecordFilter { text: s("node42 "), alertname: s("Host"), ..Default::default() })),
        ("text of 2 characters, no match", page(RecordFilter { text: s("Zq"), ..Default::default() })),
        (
            "page 200 of one target (cursor)",
            page(RecordFilter {
                target: s("ops"),
                before: Some((1_790_000_000_000 + 900_000 * 2_600, RecordKind::Message, i64::MAX)),
                ..Default::default()
            }),
        ),
    ];
    println!("{:<36} {:>10} {:>10} {:>6}", "page of 50", "median", "max", "rows");
    for (name, filter) in cases {
        let mut times = vec![];
        let mut rows = 0;
        for _ in 0..15 {
            let t = Instant::now();
            rows = store.record_page(filter.clone()).await.unwrap().len();
            times.push(t.elapsed());
        }
        times.sort();
        println!("{name:<36} {:>10.2?} {:>10.2?} {rows:>6}", times[times.len() / 2], times[times.len() - 1]);
    }
    let targets: Vec<String> = TARGETS.iter().map(|t| t.to_string()).collect();
    let mut times = vec![];
    for _ in 0..15 {
        let t = Instant::now();
        store.last_outcomes(targets.clone()).await.unwrap();
        times.push(t.elapsed());
    }
    times.sort();
    println!("{:<36} {:>10.2?} {:>10.2?}", "targets page: last outcomes of 8", times[7], times[14]);
    // The storage thread's side: indexing what is left, and a day of retention.
    let t = Instant::now();
    let mut batches = 0;
    while store.index_text(256 * 1024).await.unwrap() {
        batches += 1;
    }
    println!("indexed the last {UNINDEXED} messages in {:.1?} ({} batches of 256 KiB)", t.elapsed(), batches + 1);
    let day = 1_790_000_000_000i64 + 86_400_000;
    let t = Instant::now();
    let pruned = store.prune(day).await.unwrap();
    println!("pruned a day ({pruned} messages) in {:.1?}", t.elapsed());
}
