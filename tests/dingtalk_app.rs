//! DingTalk app robot targets over loopback against `tests/common/mock_dingtalk_app.rs`, which enforces
//! the app API: the token and its expiry, the token header, msgParam, 20 users a call, per-user lists.

mod common;

use std::time::Duration;

use common::mock_dingtalk_app::{AppSpec, MockDingTalkApp};
use common::{Bridge, FIRING, metric, post, wait_for};

fn users() -> Vec<String> {
    (0..45).map(|i| format!("user{i:02}")).collect()
}

fn spec() -> AppSpec {
    AppSpec {
        client_id: "dingclient".into(),
        client_secret: "app-client-secret".into(),
        robot_code: "dingrobot".into(),
        token_ttl: Duration::from_secs(7200),
        invalid: vec!["user07".into(), "user33".into()],
        flow_controlled_once: vec!["user01".into(), "user21".into(), "user44".into()],
        conversations: vec!["cidGroup==".into()],
    }
}

fn config(mock: &MockDingTalkApp, secret: &str) -> String {
    let users: Vec<String> = users().iter().map(|u| format!("\"{u}\"")).collect();
    format!(
        r#"storage: {{path: outbox.sqlite3}}
delivery: {{backoff_initial: 100ms, backoff_max: 200ms}}
dingtalk_apps:
  corp:
    client_id: dingclient
    client_secret: "{secret}"
    robot_code: dingrobot
    api_base: "{}"
targets:
  oncall-direct:
    type: dingtalk_app
    app: corp
    users: [{}]
  ops-app-group:
    type: dingtalk_app
    app: corp
    conversations: ["cidGroup=="]
"#,
        mock.api_base(),
        users.join(", ")
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_reaches_45_users_in_three_calls_the_flow_controlled_ones_after_a_retry() {
    let mock = MockDingTalkApp::start(spec()).await;
    let dir = tempfile::tempdir().unwrap();
    let bridge = Bridge::start(dir.path(), &config(&mock, "app-client-secret")).await;
    let (status, answer) = post(&bridge.url("/dingtalk/oncall-direct/send"), "application/json", FIRING).await;
    assert_eq!(status, 200);
    assert_eq!(answer["messages"].as_array().unwrap().len(), 3, "45 users: three calls of at most 20");
    assert_eq!(post(&bridge.url("/dingtalk/ops-app-group/send"), "application/json", FIRING).await.0, 200);
    let reachable: Vec<String> = users().into_iter().filter(|u| u != "user07" && u != "user33").collect();
    wait_for("43 users and the group", || async {
        reachable.iter().all(|u| mock.count_for(u) >= 1) && mock.count_for("cidGroup==") == 1
    })
    .await;
    for u in &reachable {
        assert_eq!(mock.count_for(u), 1, "{u} got it exactly once");
    }
    assert_eq!((mock.count_for("user07"), mock.count_for("user33")), (0, 0));
    let r = mock.received();
    let first = r.iter().find(|r| r.to == "user00").unwrap();
    assert_eq!(first.msg_key, "sampleMarkdown");
    assert!(first.param["title"].as_str().unwrap().contains("NodeDiskFull"), "{:?}", first.param);
    assert_eq!(mock.token_fetches(), 1, "one token for both targets of the app");
    let m = bridge.metrics().await;
    let outcome =
        |o: &str| metric(&m, "dingtalk_bridge_recipients_total", &[("target", "oncall-direct"), ("outcome", o)]);
    assert_eq!((outcome("delivered"), outcome("failed"), outcome("deferred")), (43.0, 2.0, 3.0));
    assert!(!m.contains("app-token") && !m.contains("app-client-secret"));
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_token_is_fetched_again_and_costs_nothing() {
    let mock = MockDingTalkApp::start(AppSpec { token_ttl: Duration::from_secs(1), ..spec() }).await;
    let dir = tempfile::tempdir().unwrap();
    let bridge = Bridge::start(dir.path(), &config(&mock, "app-client-secret")).await;
    let send = bridge.url("/dingtalk/ops-app-group/send");
    assert_eq!(post(&send, "application/json", FIRING).await.0, 200);
    wait_for("the first", || async { mock.count_for("cidGroup==") == 1 }).await;
    // The token expires while the bridge still holds it (a 1 s token is refreshed at half its life, so
    // wait past its whole life): DingTalk says InvalidAuthentication, the bridge fetches again and resends.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(post(&send, "application/json", common::RESOLVED).await.0, 200);
    wait_for("the second", || async { mock.count_for("cidGroup==") == 2 }).await;
    assert!(mock.token_fetches() >= 2);
    let m = bridge.metrics().await;
    assert_eq!(metric(&m, "dingtalk_bridge_notifications_total", &[("target", "ops-app-group")]), 2.0);
    assert_eq!(
        metric(
            &m,
            "dingtalk_bridge_notifications_failed_total",
            &[("target", "ops-app-group"), ("reason", "app_token_rejected")]
        ),
        0.0
    );
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_client_secret_is_a_configuration_error_named_once() {
    let mock = MockDingTalkApp::start(spec()).await;
    let dir = tempfile::tempdir().unwrap();
    let bridge = Bridge::start(dir.path(), &config(&mock, "not-the-secret")).await;
    assert_eq!(post(&bridge.url("/dingtalk/ops-app-group/send"), "application/json", FIRING).await.0, 200);
    wait_for("the failure", || async {
        let m = bridge.metrics().await;
        metric(
            &m,
            "dingtalk_bridge_notifications_failed_total",
            &[("target", "ops-app-group"), ("reason", "app_bad_credentials")],
        ) == 1.0
    })
    .await;
    assert_eq!(mock.codes(), ["invalidClientIdOrSecret"], "given up at once");
    assert_eq!(mock.received().len(), 0);
    bridge.stop().await;
}
