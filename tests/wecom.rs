//! WeCom targets over loopback against `tests/common/mock_wecom.rs`, which enforces the protocol: the
//! key, message types, 4096 bytes of markdown content (2048 of text), 20 a minute.

mod common;

use common::mock_wecom::MockWeCom;
use common::{Bridge, FIRING, post, wait_for};
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
    let mock = MockWeCom::start(vec!["key-md".into(), "key-text".into()], 20).await;
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
    let mock = MockWeCom::start(vec!["key-md".into(), "key-text".into()], 20).await;
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
