//! Feishu and Lark targets over loopback against `tests/common/mock_feishu.rs`, which enforces the
//! protocol: signature in the body with its one-hour window, keywords, sizes, both rate limits (11232).

mod common;

use std::time::Duration;

use common::mock_feishu::{BotSpec, MockFeishu};
use common::{
    Bridge, FIRING, RESOLVED, every_notification_delivered, group, metric, post, post_storm, shown_in, wait_for,
};

const SECRET: &str = "feishu-signing-secret";

fn config(mock: &MockFeishu, secret: &str, extra: &str) -> String {
    format!(
        r#"timezone: Asia/Shanghai
storage: {{path: outbox.sqlite3}}
delivery: {{backoff_initial: 100ms, backoff_max: 200ms}}
targets:
  ops-feishu:
    type: feishu
    url: "{}"
    secret: "{secret}"
    keyword: Alert
    mention: {{user_ids: [ou_oncall]}}
  ops-lark:
    type: lark
    url: "{}"
    msgtype: post
    keyword: Alert
{extra}"#,
        mock.url("hook-feishu"),
        mock.url("hook-lark"),
    )
}

fn bots() -> Vec<BotSpec> {
    vec![
        BotSpec { token: "hook-feishu".into(), secret: Some(SECRET.into()), keywords: vec!["Alert".into()] },
        BotSpec { token: "hook-lark".into(), secret: None, keywords: vec!["Alert".into()] },
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn firing_then_resolved_arrive_as_signed_cards_with_keyword_and_mention() {
    let mock = MockFeishu::start(bots()).await;
    let dir = tempfile::tempdir().unwrap();
    let bridge = Bridge::start(dir.path(), &config(&mock, SECRET, "")).await;
    let send = bridge.url("/dingtalk/ops-feishu/send");
    assert_eq!(post(&send, "application/json", FIRING).await.0, 200);
    wait_for("the firing card", || async { mock.posted().len() == 1 }).await;
    assert_eq!(post(&send, "application/json", RESOLVED).await.0, 200);
    wait_for("the resolved card", || async { mock.posted().len() == 2 }).await;

    let posted = mock.posted();
    let card = &posted[0].body["card"];
    assert_eq!(posted[0].body["msg_type"], "interactive");
    assert_eq!(card["header"]["title"]["content"], "🟠 FIRING 3 · NodeDiskFull · warning · Alert");
    assert_eq!(card["header"]["template"], "orange", "coloured by severity");
    let markdown = card["elements"][0]["content"].as_str().unwrap();
    assert!(markdown.contains("Disk almost full on node1") || markdown.contains("node1:9100"), "{markdown}");
    let buttons: Vec<&str> = card["elements"][1]["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["text"]["content"].as_str().unwrap())
        .collect();
    assert_eq!(buttons, ["Alertmanager", "Silence", "Runbook"]);
    assert_eq!(posted[0].rings, ["ou_oncall"], "the mention is in the card's markdown, so it rings");
    assert_eq!(posted[1].body["card"]["header"]["template"], "green");
    assert!(posted[1].rings.is_empty(), "resolved rings nobody by default");
    assert_eq!(mock.codes(), [0, 0], "signed and with the keyword: the mock checked both");
    assert!(posted.iter().all(|p| p.body.get("sign").is_some()), "signature fields in the body");
    let m = bridge.metrics().await;
    assert_eq!(metric(&m, "dingtalk_bridge_notifications_total", &[("target", "ops-feishu")]), 2.0);
    assert_eq!(metric(&m, "dingtalk_bridge_target_info", &[("target", "ops-feishu"), ("type", "feishu")]), 1.0);
    assert_eq!(metric(&m, "dingtalk_bridge_target_info", &[("target", "ops-lark"), ("type", "lark")]), 1.0);
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lark_post_and_a_wrong_secret() {
    let mock = MockFeishu::start(bots()).await;
    let dir = tempfile::tempdir().unwrap();
    let bridge = Bridge::start(dir.path(), &config(&mock, "not-the-secret", "")).await;
    assert_eq!(post(&bridge.url("/dingtalk/ops-lark/send"), "application/json", FIRING).await.0, 200);
    assert_eq!(post(&bridge.url("/dingtalk/ops-feishu/send"), "application/json", FIRING).await.0, 200);
    wait_for("the Lark post", || async { mock.posted().len() == 1 }).await;
    let p = &mock.posted()[0];
    assert_eq!((p.token.as_str(), p.body["msg_type"].as_str()), ("hook-lark", Some("post")));
    assert_eq!(p.body["content"]["post"]["zh_cn"]["title"], "🟠 FIRING 3 · NodeDiskFull · warning · Alert");
    // A post draws no markdown: emphasis goes in styles, links in link elements, nothing shows raw.
    assert!(!p.text.contains("**") && !p.text.contains('\\') && !p.text.contains("]("), "{}", p.text);
    let paragraphs = p.body["content"]["post"]["zh_cn"]["content"].as_array().unwrap();
    let elements: Vec<&serde_json::Value> = paragraphs.iter().flat_map(|l| l.as_array().unwrap()).collect();
    assert!(
        elements.iter().any(|e| e["style"] == serde_json::json!(["bold"]) && e["text"] == "warning"),
        "{elements:?}"
    );
    let links: Vec<&str> = elements.iter().filter(|e| e["tag"] == "a").map(|e| e["text"].as_str().unwrap()).collect();
    assert_eq!(links, ["Alertmanager", "Silence", "Runbook"]);
    wait_for("the signature failure", || async {
        let m = bridge.metrics().await;
        metric(
            &m,
            "dingtalk_bridge_notifications_failed_total",
            &[("target", "ops-feishu"), ("reason", "feishu_signature_or_clock")],
        ) == 1.0
    })
    .await;
    assert_eq!(mock.codes().iter().filter(|&&c| c == 19021).count(), 1, "given up at once, no retry storm");
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twelve_groups_at_once_keep_to_five_a_second_and_are_never_throttled() {
    let mock = MockFeishu::start(bots()).await;
    let dir = tempfile::tempdir().unwrap();
    let bridge = Bridge::start(dir.path(), &config(&mock, SECRET, "")).await;
    let send = bridge.url("/dingtalk/ops-feishu/send");
    for i in 0..12 {
        assert_eq!(post(&send, "application/json", group(i)).await.0, 200);
    }
    wait_for("all twelve", || async { mock.posted().len() == 12 }).await;
    assert!(!mock.codes().contains(&11232), "Feishu never had to refuse one: {:?}", mock.codes());
    let titles: Vec<String> = mock
        .posted()
        .iter()
        .map(|p| p.body["card"]["header"]["title"]["content"].as_str().unwrap().to_string())
        .collect();
    for i in 0..12 {
        assert!(titles.iter().any(|t| t.contains(&format!("Incident-{i:03}"))), "{titles:?}");
    }
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frequency_limited_is_answered_by_a_pause_never_a_failure() {
    // A bot stricter than documented: 2 a second. Feishu answers 11232 past it.
    let mock = MockFeishu::start_with(bots(), vec![(2, Duration::from_secs(1))]).await;
    let dir = tempfile::tempdir().unwrap();
    // Feishu names no penalty: the bridge waits out the bot's longest window (here a second), not
    // DingTalk's ten-minute throttle_penalty.
    let yaml = config(&mock, SECRET, "").replace(
        "    mention: {user_ids: [ou_oncall]}\n",
        "    mention: {user_ids: [ou_oncall]}\n    rate_limit: {messages: 100, per: 1s}\n",
    );
    let bridge = Bridge::start(dir.path(), &yaml).await;
    let send = bridge.url("/dingtalk/ops-feishu/send");
    for i in 0..4 {
        assert_eq!(post(&send, "application/json", group(i)).await.0, 200);
    }
    wait_for("all four", || async { mock.posted().len() == 4 }).await;
    assert!(mock.codes().contains(&11232), "the mock had to refuse one: {:?}", mock.codes());
    let m = bridge.metrics().await;
    assert!(metric(&m, "dingtalk_bridge_throttled_total", &[("target", "ops-feishu")]) >= 1.0, "counted as throttled");
    assert_eq!(
        metric(&m, "dingtalk_bridge_notifications_failed_total", &[("target", "ops-feishu"), ("reason", "throttled")]),
        0.0
    );
    let titles: Vec<String> = mock
        .posted()
        .iter()
        .map(|p| p.body["card"]["header"]["title"]["content"].as_str().unwrap().to_string())
        .collect();
    let unique: std::collections::BTreeSet<&String> = titles.iter().collect();
    assert_eq!((titles.len(), unique.len()), (4, 4), "each once: {titles:?}");
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_300_alert_group_fits_feishus_size_and_rings_once() {
    let mock = MockFeishu::start(bots()).await;
    let dir = tempfile::tempdir().unwrap();
    let bridge = Bridge::start(dir.path(), &config(&mock, SECRET, "")).await;
    let mut v: serde_json::Value = serde_json::from_str(FIRING).unwrap();
    let template = v["alerts"][0].clone();
    v["alerts"] = (0..300)
        .map(|i| {
            let mut a = template.clone();
            a["labels"]["instance"] = serde_json::json!(format!("node{i:03}:9100"));
            a["labels"]["volume"] =
                serde_json::json!(format!("pvc-{i:03}-磁盘空间不足-filesystem-data-of-the-payments-cluster"));
            a["fingerprint"] = serde_json::json!(format!("fp{i:03}"));
            a
        })
        .collect();
    let (status, answer) = post(&bridge.url("/dingtalk/ops-feishu/send"), "application/json", v.to_string()).await;
    assert_eq!(status, 200);
    let parts = answer["messages"].as_array().unwrap().len();
    assert!((1..=3).contains(&parts), "{answer}");
    wait_for("every part", || async { mock.posted().len() == parts }).await;
    assert!(mock.codes().iter().all(|&c| c == 0), "every part within 20 KB, signed: {:?}", mock.codes());
    let posted = mock.posted();
    assert_eq!(posted.iter().filter(|p| !p.rings.is_empty()).count(), 1, "one ring for the group");
    for i in 0..300 {
        let needle = format!("node{i:03}:9100 · pvc-{i:03}");
        let found =
            posted.iter().filter(|p| p.body["card"]["elements"][0]["content"].as_str().unwrap().contains(&needle));
        assert_eq!(found.count(), 1, "alert {i} in exactly one part");
    }
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_template_without_the_keyword_still_passes_feishus_keyword_check() {
    let mock = MockFeishu::start(bots()).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("templates/mine")).unwrap();
    std::fs::write(dir.path().join("templates/mine/feishu.hbs"), "{{#each alerts}}{{labels.instance}} {{/each}}")
        .unwrap();
    std::fs::write(dir.path().join("templates/mine/title.hbs"), "{{alertname}}").unwrap();
    let yaml = config(&mock, SECRET, "templates_dir: templates\n")
        .replace("    keyword: Alert\n    mention", "    keyword: Alert\n    template: mine\n    mention");
    let bridge = Bridge::start(dir.path(), &yaml).await;
    assert_eq!(post(&bridge.url("/dingtalk/ops-feishu/send"), "application/json", FIRING).await.0, 200);
    wait_for("the card", || async { mock.posted().len() == 1 }).await;
    let card = &mock.posted()[0].body["card"];
    assert_eq!(card["header"]["title"]["content"], "NodeDiskFull Alert", "the keyword added last");
    assert_eq!(mock.codes(), [0], "Feishu found its keyword");
    let m = bridge.metrics().await;
    assert_eq!(metric(&m, "dingtalk_bridge_keyword_inserted_total", &[("target", "ops-feishu")]), 1.0);
    bridge.stop().await;
}

/// One Feishu target for storms: digests after 250 ms, `rate` as its configured window.
fn storm_config(mock: &MockFeishu, rate: &str) -> String {
    format!(
        r#"listen: "127.0.0.1:0"
storage: {{path: outbox.sqlite3}}
delivery: {{backoff_initial: 50ms, backoff_max: 200ms, digest_after: 250ms, request_timeout: 500ms}}
targets:
  ops-feishu:
    type: feishu
    url: "{}"
    secret: "{SECRET}"
    keyword: Alert
    mention: {{user_ids: [ou_oncall]}}
    rate_limit: {rate}
"#,
        mock.url("hook-feishu"),
    )
}

fn texts(mock: &MockFeishu) -> Vec<String> {
    mock.posted().into_iter().map(|p| p.text).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storm_of_100_groups_keeps_to_both_limits_and_every_group_shows_once() {
    // Feishu's real limits, both at once: 100 a minute and 5 a second.
    let mock = MockFeishu::start(bots()).await;
    let dir = tempfile::tempdir().unwrap();
    let bridge = Bridge::start(dir.path(), &storm_config(&mock, "{messages: 100, per: 60s}")).await;
    post_storm(&bridge.url("/dingtalk/ops-feishu/send"), 100).await;
    wait_for("all 100 groups to show", || async { (0..100).all(|i| shown_in(&texts(&mock), i) >= 1) }).await;
    let posted = mock.posted();
    for i in 0..100 {
        assert_eq!(shown_in(&texts(&mock), i), 1, "group {i} shows exactly once");
    }
    assert!(mock.codes().iter().all(|&c| c == 0), "never refused (11232), never over 20 KB: {:?}", mock.codes());
    assert!(posted.len() < 100, "digests, not 100 messages: {}", posted.len());
    let digests: Vec<_> = posted.iter().filter(|p| p.text.contains("DIGEST")).collect();
    assert!(!digests.is_empty());
    for d in &digests {
        assert_eq!(d.body["msg_type"], "interactive", "a digest is a card too");
        assert!(d.text.contains("Alert"), "the keyword: {}", d.text);
        assert_eq!(d.rings, ["ou_oncall"], "a digest of firing groups rings");
    }
    every_notification_delivered(&dir.path().join("outbox.sqlite3"), "ops-feishu").await;
    let m = bridge.metrics().await;
    assert_eq!(metric(&m, "dingtalk_bridge_digests_total", &[("target", "ops-feishu")]), digests.len() as f64);
    assert_eq!(metric(&m, "dingtalk_bridge_throttled_total", &[("target", "ops-feishu")]), 0.0);
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_with_messages_queued_loses_nothing_and_keeps_the_budget() {
    // Scaled so that the kill lands while the windows are full: 10 per 2 s, and 5 a second.
    let mock = MockFeishu::start_with(bots(), vec![(10, Duration::from_secs(2)), (5, Duration::from_secs(1))]).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bridge.yaml");
    std::fs::write(&path, storm_config(&mock, "{messages: 10, per: 2s}")).unwrap();
    let texts = common::kill_in_a_storm(&path, "ops-feishu", || texts(&mock)).await;
    assert!(common::repeats(&texts, 60) <= 1, "at most the one message in flight at the kill is repeated: {texts:#?}");
    // No 11232: the restart did not reset the budget; every message signed and within 20 KB.
    assert!(mock.codes().iter().all(|&c| c == 0), "{:?}", mock.codes());
    every_notification_delivered(&dir.path().join("outbox.sqlite3"), "ops-feishu").await;
}
