//! Delivery under DingTalk's limits, with the mock's window and block scaled down together with the
//! bridge's budget (60x: one "minute" is a second): a storm of alert groups, a huge group, duplicates from
//! retries and HA peers, and SIGKILL in the middle of a storm.

mod common;

use std::time::Duration;

use common::mock_dingtalk::{Limits, MockDingTalk, RobotSpec};
use common::{
    BinaryBridge, Bridge, FIRING, RESOLVED, every_notification_delivered, group, metric, post, post_storm, shown,
    visible, wait_for,
};
use serde_json::{Value, json};

const SECRET: &str = "SECstorm0123456789abcdef0123456789abcdef0123456789abcdef";

/// DingTalk's rules at 60x speed: 20 per "minute" (1s), a "10-minute" (10s) block when exceeded.
fn scaled_limits() -> Limits {
    Limits { per_window: 20, window: Duration::from_secs(1), block: Duration::from_secs(10), ..Limits::default() }
}

fn robot() -> RobotSpec {
    RobotSpec { token: "tok-storm".into(), secret: Some(SECRET.into()), keywords: vec!["Alert".into()] }
}

fn config(mock: &MockDingTalk, extra: &str) -> String {
    format!(
        r#"
listen: "127.0.0.1:0"
storage: {{path: outbox.sqlite3}}
delivery:
  rate_limit: {{messages: 20, per: 1s}}
  digest_after: 250ms
  throttle_penalty: 10s
  request_timeout: 2s
  backoff_initial: 50ms
  backoff_max: 200ms
{extra}
targets:
  ops:
    url: "{url}"
    secret: "{SECRET}"
    keyword: Alert
    mention: {{mobiles: ["13800000000"]}}
"#,
        url = mock.url("tok-storm")
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storm_of_100_groups_is_never_throttled_and_every_group_shows_once() {
    let mock = MockDingTalk::start(vec![robot()], scaled_limits()).await;
    let dir = tempfile::tempdir().unwrap();
    let bridge = Bridge::start(dir.path(), &config(&mock, "")).await;
    let start = std::time::Instant::now();
    post_storm(&bridge.url("/dingtalk/ops/send"), 100).await;
    wait_for("all 100 groups to show", || async { (0..100).all(|i| shown(&mock.posted(), i) >= 1) }).await;
    let posted = mock.posted();
    for i in 0..100 {
        assert_eq!(shown(&posted, i), 1, "group {i} shows exactly once");
    }
    assert_eq!(mock.throttled(), 0, "DingTalk never had to throttle the robot");
    // Digests, not 100 messages: at most the budget of the windows the storm lasted, plus one (the posts
    // themselves take wall time, so a slow run spans more windows; a fast one, two).
    let windows = (start.elapsed().as_secs_f64().ceil() as usize + 1).max(2);
    assert!(posted.len() <= 20 * windows && posted.len() < 100, "{} messages in {windows} windows", posted.len());
    let digests: Vec<&common::mock_dingtalk::Posted> =
        posted.iter().filter(|p| p.body["markdown"]["title"].as_str().unwrap().contains("DIGEST")).collect();
    assert!(!digests.is_empty());
    for d in &digests {
        let text = visible(d);
        assert!(text.contains("Alert") && text.contains("@13800000000"), "keyword and mention in every digest: {text}");
        assert_eq!(d.highlighted, vec!["13800000000"]);
    }
    every_notification_delivered(&dir.path().join("outbox.sqlite3"), "ops").await;
    let m = bridge.metrics().await;
    assert_eq!(metric(&m, "dingtalk_bridge_digests_total", &[("target", "ops")]), digests.len() as f64);
    assert!(metric(&m, "dingtalk_bridge_rate_limited_total", &[("target", "ops")]) >= 1.0);
    assert_eq!(metric(&m, "dingtalk_bridge_throttled_total", &[("target", "ops")]), 0.0);
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_300_alert_group_arrives_in_numbered_parts_each_under_the_limit() {
    let mock = MockDingTalk::start(vec![robot()], Limits::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let bridge =
        Bridge::start(dir.path(), &config(&mock, "").replace("{messages: 20, per: 1s}", "{messages: 20, per: 60s}"))
            .await;
    let mut v: Value = serde_json::from_str(FIRING).unwrap();
    let template = v["alerts"][0].clone();
    v["alerts"] = (0..300)
        .map(|i| {
            let mut a = template.clone();
            a["labels"]["instance"] = json!(format!("node{i:03}:9100"));
            a["fingerprint"] = json!(format!("fp{i:03}"));
            // A long label that differs per alert: the one-line-per-alert layout still needs parts.
            a["labels"]["volume"] =
                json!(format!("pvc-{i:03}-磁盘空间不足-filesystem-data-on-node{i:03}-of-the-payments-cluster"));
            a
        })
        .collect();
    v["truncatedAlerts"] = json!(12);
    let (status, answer) = post(&bridge.url("/dingtalk/ops/send"), "application/json", v.to_string()).await;
    assert_eq!(status, 200);
    let parts = answer["messages"].as_array().unwrap().len();
    assert!((2..=3).contains(&parts), "split, into at most 3 messages: {answer}");
    wait_for("every part", || async { mock.posted().len() == parts }).await;
    let posted = mock.posted();
    assert!(mock.answered().iter().all(|a| a.errcode == 0), "no part over the limit: {:?}", mock.answered());
    for (i, p) in posted.iter().enumerate() {
        assert!(p.body.to_string().len() <= 20_000);
        assert_eq!(
            p.body["markdown"]["title"],
            format!("🟠 FIRING 300 ({}/{parts}) · NodeDiskFull · warning · Alert", i + 1)
        );
        // One ring for the group, in its first part.
        assert_eq!(p.highlighted.is_empty(), i > 0, "part {i}: {:?}", p.highlighted);
        assert!(visible(p).contains("12 more alerts were left out by Alertmanager"), "truncatedAlerts shown");
    }
    for i in 0..300 {
        let needle = format!("node{i:03}:9100 · pvc-{i:03}");
        assert_eq!(posted.iter().filter(|p| visible(p).contains(&needle)).count(), 1, "alert {i} in exactly one part");
    }
    let m = bridge.metrics().await;
    assert_eq!(metric(&m, "dingtalk_bridge_messages_split_total", &[("target", "ops")]), 1.0);
    assert_eq!(metric(&m, "dingtalk_bridge_alerts_truncated_total", &[("target", "ops")]), 12.0);
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_notification_from_a_retry_and_from_an_ha_peer_is_delivered_once() {
    let mock = MockDingTalk::start(vec![robot()], Limits::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let bridge = Bridge::start(dir.path(), &config(&mock, "")).await;
    let send = bridge.url("/dingtalk/ops/send");

    let (status, first) = post(&send, "application/json", FIRING).await;
    assert_eq!((status, first["status"].as_str()), (200, Some("accepted")));
    // Alertmanager retrying after a timeout: byte for byte the same.
    let (status, again) = post(&send, "application/json", FIRING).await;
    assert_eq!((status, again["status"].as_str()), (200, Some("duplicate")), "{again}");
    assert_eq!(again["notification"], first["notification"]);
    // The other peer of an HA pair: its own externalURL, alerts in another order, endsAt moved.
    let mut peer: Value = serde_json::from_str(FIRING).unwrap();
    peer["externalURL"] = json!("http://alertmanager-1.example.com:9093");
    peer["alerts"].as_array_mut().unwrap().reverse();
    peer["alerts"][0]["endsAt"] = json!("2026-11-22T03:00:00Z");
    let (status, from_peer) = post(&send, "application/json", peer.to_string()).await;
    assert_eq!((status, from_peer["status"].as_str()), (200, Some("duplicate")));
    // The group resolving is news, and is delivered.
    assert_eq!(post(&send, "application/json", RESOLVED).await.1["status"], "accepted");

    wait_for("two messages", || async { mock.posted().len() == 2 }).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(mock.posted().len(), 2);
    let m = bridge.metrics().await;
    assert_eq!(
        metric(&m, "dingtalk_bridge_notifications_suppressed_total", &[("target", "ops"), ("reason", "duplicate")]),
        2.0
    );
    bridge.stop().await;

    // dedup_window: 0 turns suppression off.
    let mock = MockDingTalk::start(vec![robot()], Limits::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let bridge = Bridge::start(dir.path(), &config(&mock, "  dedup_window: 0s")).await;
    for _ in 0..2 {
        assert_eq!(post(&bridge.url("/dingtalk/ops/send"), "application/json", FIRING).await.1["status"], "accepted");
    }
    wait_for("both", || async { mock.posted().len() == 2 }).await;
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_in_a_storm_keeps_the_budget_and_loses_and_repeats_nothing() {
    // A slower scale here (10 per 2s) so that the kill lands while the window is still full.
    let limits =
        Limits { per_window: 10, window: Duration::from_secs(2), block: Duration::from_secs(30), ..Limits::default() };
    let mock = MockDingTalk::start(vec![robot()], limits).await;
    let dir = tempfile::tempdir().unwrap();
    let yaml = config(&mock, "")
        .replace("{messages: 20, per: 1s}", "{messages: 10, per: 2s}")
        .replace("request_timeout: 2s", "request_timeout: 500ms");
    let path = dir.path().join("bridge.yaml");
    std::fs::write(&path, yaml).unwrap();

    let bridge = BinaryBridge::start(&path);
    for i in 0..60 {
        assert_eq!(post(&bridge.url("/dingtalk/ops/send"), "application/json", group(i)).await.0, 200);
    }
    wait_for("the storm to be under way", || async { mock.posted().len() >= 4 }).await;
    bridge.kill();
    // Restarted at once: the sends of the last window still count.
    let bridge = BinaryBridge::start(&path);
    wait_for("every group to show", || async { (0..60).all(|i| shown(&mock.posted(), i) >= 1) }).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let posted = mock.posted();
    for i in 0..60 {
        assert_eq!(shown(&posted, i), 1, "group {i} exactly once across the kill");
    }
    assert_eq!(mock.throttled(), 0, "the restart did not reset the budget");
    drop(bridge);
    every_notification_delivered(&dir.path().join("outbox.sqlite3"), "ops").await;
}

/// A waiting message whose stored summary cannot be read back: the digest leaves it out (its line would
/// be blank), it is sent on its own, and the bridge says so in its metrics.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_summary_is_counted_and_its_message_sent_on_its_own() {
    let mock = MockDingTalk::start(vec![robot()], Limits::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let yaml = config(&mock, "").replace("rate_limit: {messages: 20, per: 1s}", "rate_limit: {messages: 1, per: 2s}");
    let bridge = Bridge::start(dir.path(), &yaml).await;
    let url = bridge.url("/dingtalk/ops/send");
    assert_eq!(post(&url, "application/json", group(0)).await.0, 200);
    wait_for("the first message", || async { shown(&mock.posted(), 0) == 1 }).await;
    // The budget is spent for two seconds: these wait, and the second's summary is damaged meanwhile.
    for i in 1..4 {
        assert_eq!(post(&url, "application/json", group(i)).await.0, 200);
    }
    let db = rusqlite::Connection::open(dir.path().join("outbox.sqlite3")).unwrap();
    db.busy_timeout(Duration::from_secs(5)).unwrap();
    let damaged = db.execute("UPDATE notifications SET summary = '{\"status\":' WHERE id = 3", []).unwrap();
    assert_eq!(damaged, 1);
    wait_for("every group", || async { (0..4).all(|i| shown(&mock.posted(), i) >= 1) }).await;
    let posted = mock.posted();
    for i in 0..4 {
        assert_eq!(shown(&posted, i), 1, "group {i} shows exactly once");
    }
    let alone = posted.iter().filter(|p| shown(std::slice::from_ref(p), 2) == 1).collect::<Vec<_>>();
    assert!(!visible(alone[0]).contains("DIGEST"), "the damaged one went on its own");
    let m = bridge.metrics().await;
    assert!(metric(&m, "dingtalk_bridge_store_corrupt_records_total", &[("target", "ops")]) >= 1.0, "{m}");
    bridge.stop().await;
}
