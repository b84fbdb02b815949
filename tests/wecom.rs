//! WeCom targets over loopback against `tests/common/mock_wecom.rs`, which enforces the protocol: the
//! key, message types, 4096 bytes of markdown content (2048 of text), 20 a minute.

mod common;

use std::time::Duration;

use common::mock_wecom::MockWeCom;
use common::{Bridge, FIRING, every_notification_delivered, group, metric, post, post_storm, shown_in, wait_for};
use serde_json::{Value, json};

fn config(mock: &MockWeCom) -> String {
    format!(
        r#"timezone: Asia/Shanghai
storage: {{path: outbox.sqlite3}}
delivery: {{backoff_initial: 100ms, backoff_max: 200ms}}
targets:
  ops-wecom:
    type: wecom
    url: "{}"
    keyword: Alert
    mention: {{user_ids: [zhangsan]}}
  ops-wecom-text:
    type: wecom
    url: "{}"
    msgtype: text
    mention: {{user_ids: [zhangsan], mobiles: ["13800000000"]}}
"#,
        mock.url("key-md"),
        mock.url("key-text"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn markdown_and_text_arrive_with_mentions_that_ring() {
    let mock = MockWeCom::start(vec!["key-md".into(), "key-text".into()]).await;
    let dir = tempfile::tempdir().unwrap();
    let bridge = Bridge::start(dir.path(), &config(&mock)).await;
    assert_eq!(post(&bridge.url("/dingtalk/ops-wecom/send"), "application/json", FIRING).await.0, 200);
    assert_eq!(post(&bridge.url("/dingtalk/ops-wecom-text/send"), "application/json", FIRING).await.0, 200);
    wait_for("both", || async { mock.posted().len() == 2 }).await;
    let posted = mock.posted();
    let md = posted.iter().find(|p| p.key == "key-md").unwrap();
    assert!(md.content.starts_with("#### 🟠 <font color=\"warning\">FIRING</font> NodeDiskFull"), "{}", md.content);
    assert!(md.content.contains("Alert"), "keyword in the content");
    assert_eq!(md.rings, ["zhangsan"], "<@zhangsan> in the markdown rings");
    let text = posted.iter().find(|p| p.key == "key-text").unwrap();
    assert_eq!(text.body["msgtype"], "text");
    assert_eq!(text.rings, ["zhangsan", "13800000000"]);
    assert_eq!(mock.codes(), [0, 0]);
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_300_alert_group_is_split_under_4096_bytes_of_content_and_rings_once() {
    let mock = MockWeCom::start(vec!["key-md".into(), "key-text".into()]).await;
    let dir = tempfile::tempdir().unwrap();
    let bridge = Bridge::start(dir.path(), &config(&mock)).await;
    let mut v: Value = serde_json::from_str(FIRING).unwrap();
    let template = v["alerts"][0].clone();
    v["alerts"] = (0..300)
        .map(|i| {
            let mut a = template.clone();
            a["labels"]["instance"] = json!(format!("node{i:03}.prod.example.com:9100"));
            a["fingerprint"] = json!(format!("fp{i:03}"));
            a
        })
        .collect();
    let (status, answer) = post(&bridge.url("/dingtalk/ops-wecom/send"), "application/json", v.to_string()).await;
    assert_eq!(status, 200);
    let parts = answer["messages"].as_array().unwrap().len();
    assert!((2..=5).contains(&parts), "{answer}");
    wait_for("every part", || async { mock.posted().len() == parts }).await;
    assert!(mock.codes().iter().all(|&c| c == 0), "no part over WeCom's limit: {:?}", mock.codes());
    let posted = mock.posted();
    assert!(posted.iter().all(|p| p.content.len() <= 4096));
    assert_eq!(posted.iter().filter(|p| !p.rings.is_empty()).count(), 1, "one ring for the group");
    for i in 0..300 {
        let needle = format!("node{i:03}.prod.example.com:9100 · ");
        assert_eq!(posted.iter().filter(|p| p.content.contains(&needle)).count(), 1, "alert {i} in exactly one part");
    }
    bridge.stop().await;
}

/// One WeCom markdown target for storms: digests after 250 ms, `rate` as its budget (WeCom's minute
/// scaled down with the mock's).
fn storm_config(mock: &MockWeCom, rate: &str) -> String {
    format!(
        r#"listen: "127.0.0.1:0"
storage: {{path: outbox.sqlite3}}
delivery: {{backoff_initial: 50ms, backoff_max: 200ms, digest_after: 250ms, request_timeout: 500ms}}
targets:
  ops-wecom:
    type: wecom
    url: "{}"
    keyword: Alert
    mention: {{user_ids: [zhangsan]}}
    rate_limit: {rate}
"#,
        mock.url("key-md"),
    )
}

fn texts(mock: &MockWeCom) -> Vec<String> {
    mock.posted().into_iter().map(|p| p.content).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storm_of_100_groups_is_never_throttled_and_every_group_shows_once() {
    // WeCom's 20 a minute at 60x: 20 a second.
    let mock = MockWeCom::start_with(vec!["key-md".into()], 20, Duration::from_secs(1)).await;
    let dir = tempfile::tempdir().unwrap();
    let bridge = Bridge::start(dir.path(), &storm_config(&mock, "{messages: 20, per: 1s}")).await;
    post_storm(&bridge.url("/dingtalk/ops-wecom/send"), 100).await;
    wait_for("all 100 groups to show", || async { (0..100).all(|i| shown_in(&texts(&mock), i) >= 1) }).await;
    let texts = texts(&mock);
    for i in 0..100 {
        assert_eq!(shown_in(&texts, i), 1, "group {i} shows exactly once");
    }
    assert!(mock.codes().iter().all(|&c| c == 0), "never refused (45009), never over 4096: {:?}", mock.codes());
    assert!(texts.len() < 100, "digests, not 100 messages: {}", texts.len());
    let digests: Vec<_> = mock.posted().into_iter().filter(|p| p.content.starts_with("#### 📋 DIGEST")).collect();
    assert!(!digests.is_empty());
    for d in &digests {
        assert!(d.content.len() <= 4096 && d.content.contains("Alert"), "within 4096 with the keyword: {}", d.content);
        assert_eq!(d.rings, ["zhangsan"], "a digest of firing groups rings");
    }
    every_notification_delivered(&dir.path().join("outbox.sqlite3"), "ops-wecom").await;
    let m = bridge.metrics().await;
    assert_eq!(metric(&m, "dingtalk_bridge_digests_total", &[("target", "ops-wecom")]), digests.len() as f64);
    assert_eq!(metric(&m, "dingtalk_bridge_throttled_total", &[("target", "ops-wecom")]), 0.0);
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_freq_out_of_limit_is_answered_by_waiting_out_the_window() {
    // A robot stricter than the budget the bridge was given: 3 a second against 20. WeCom answers
    // 45009 past it; the bridge waits out its window (a second here, WeCom's minute by default).
    let mock = MockWeCom::start_with(vec!["key-md".into()], 3, Duration::from_secs(1)).await;
    let dir = tempfile::tempdir().unwrap();
    let bridge = Bridge::start(dir.path(), &storm_config(&mock, "{messages: 20, per: 1s}")).await;
    for i in 0..6 {
        assert_eq!(post(&bridge.url("/dingtalk/ops-wecom/send"), "application/json", group(i)).await.0, 200);
    }
    wait_for("all six", || async { (0..6).all(|i| shown_in(&texts(&mock), i) >= 1) }).await;
    assert!(mock.throttled() >= 1, "the mock had to refuse one: {:?}", mock.codes());
    let texts = texts(&mock);
    for i in 0..6 {
        assert_eq!(shown_in(&texts, i), 1, "group {i} exactly once");
    }
    let m = bridge.metrics().await;
    assert!(metric(&m, "dingtalk_bridge_throttled_total", &[("target", "ops-wecom")]) >= 1.0);
    assert_eq!(
        metric(
            &m,
            "dingtalk_bridge_notification_requests_failed_total",
            &[("target", "ops-wecom"), ("reason", "throttled")]
        ),
        metric(&m, "dingtalk_bridge_throttled_total", &[("target", "ops-wecom")]),
        "each refusal counted as an attempt throttled"
    );
    assert_eq!(metric(&m, "dingtalk_bridge_notifications_failed_total", &[("target", "ops-wecom")]), 0.0);
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_key_is_given_up_once_with_its_reason_and_never_shown() {
    let mock = MockWeCom::start(vec!["another-key".into()]).await;
    let dir = tempfile::tempdir().unwrap();
    let bridge = Bridge::start(dir.path(), &storm_config(&mock, "{messages: 20, per: 60s}")).await;
    assert_eq!(post(&bridge.url("/dingtalk/ops-wecom/send"), "application/json", FIRING).await.0, 200);
    wait_for("the failure", || async {
        let m = bridge.metrics().await;
        metric(
            &m,
            "dingtalk_bridge_notifications_failed_total",
            &[("target", "ops-wecom"), ("reason", "wecom_invalid_url")],
        ) == 1.0
    })
    .await;
    assert_eq!(mock.codes(), [93000], "given up at once, not retried");
    let m = bridge.metrics().await;
    assert!(!m.contains("key-md"), "the key is nowhere in the metrics");
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_with_messages_queued_loses_nothing_and_keeps_the_budget() {
    // 10 per 2 s, so that the kill lands while the window is full.
    let mock = MockWeCom::start_with(vec!["key-md".into()], 10, Duration::from_secs(2)).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bridge.yaml");
    std::fs::write(&path, storm_config(&mock, "{messages: 10, per: 2s}")).unwrap();
    let texts = common::kill_in_a_storm(&path, "ops-wecom", || texts(&mock)).await;
    assert!(common::repeats(&texts, 60) <= 1, "at most the one message in flight at the kill is repeated: {texts:#?}");
    // No 45009: the restart did not reset the budget; no 40058: digests fit WeCom's 4096 bytes too.
    assert!(mock.codes().iter().all(|&c| c == 0), "{:?}", mock.codes());
    every_notification_delivered(&dir.path().join("outbox.sqlite3"), "ops-wecom").await;
}
