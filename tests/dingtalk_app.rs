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
    config_with(mock, secret, "")
}

/// The config with `extra` lines added to each target (indented for a target's keys).
fn config_with(mock: &MockDingTalkApp, secret: &str, extra: &str) -> String {
    let users: Vec<String> = users().iter().map(|u| format!("\"{u}\"")).collect();
    format!(
        r#"listen: "127.0.0.1:0"
storage: {{path: outbox.sqlite3}}
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
{extra}
  ops-app-group:
    type: dingtalk_app
    app: corp
    conversations: ["cidGroup=="]
{extra}
"#,
        mock.api_base(),
        users.join(", ")
    )
}

/// How many messages `to` received that show alert group `i` of [`common::group`].
fn shown_to(mock: &MockDingTalkApp, to: &str, i: usize) -> usize {
    let name = format!("Incident-{i:03}");
    mock.received().iter().filter(|r| r.to == to && r.param.to_string().contains(&name)).count()
}

/// Everyone the targets reach: the 43 valid users and the group.
fn reachable() -> Vec<String> {
    let mut all: Vec<String> = users().into_iter().filter(|u| u != "user07" && u != "user33").collect();
    all.push("cidGroup==".into());
    all
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
    let outcome = |o: &str, r: &str| {
        metric(&m, "dingtalk_bridge_recipients_total", &[("target", "oncall-direct"), ("outcome", o), ("reason", r)])
    };
    assert_eq!(
        (outcome("delivered", ""), outcome("failed", "app_invalid_user"), outcome("deferred", "")),
        (43.0, 2.0, 3.0)
    );
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_revoked_in_the_middle_of_a_storm_costs_nothing() {
    let mock = MockDingTalkApp::start(spec()).await;
    let dir = tempfile::tempdir().unwrap();
    let bridge = Bridge::start(dir.path(), &config(&mock, "app-client-secret")).await;
    // 15 groups to both targets: 45 calls to users and 15 to the group, three seconds at 20 calls a second.
    common::post_storm(&bridge.url("/dingtalk/oncall-direct/send"), 15).await;
    common::post_storm(&bridge.url("/dingtalk/ops-app-group/send"), 15).await;
    wait_for("the storm to be under way", || async { mock.received().len() >= 100 }).await;
    mock.revoke_tokens();
    wait_for("every group to reach everyone", || async {
        reachable().iter().all(|to| (0..15).all(|i| shown_to(&mock, to, i) >= 1))
    })
    .await;
    for to in reachable() {
        for i in 0..15 {
            assert_eq!(shown_to(&mock, &to, i), 1, "{to} got group {i} once");
        }
    }
    assert!(mock.codes().iter().any(|c| c == "InvalidAuthentication"), "the token died mid-storm: {:?}", mock.codes());
    assert_eq!(mock.token_fetches(), 2, "fetched again once, by one task, for both targets");
    let m = bridge.metrics().await;
    // Counted per message sent: three calls of users for each group, one to the group.
    assert_eq!(metric(&m, "dingtalk_bridge_notifications_total", &[("target", "oncall-direct")]), 45.0);
    assert_eq!(metric(&m, "dingtalk_bridge_notifications_total", &[("target", "ops-app-group")]), 15.0);
    assert!(!m.contains("app_token_rejected"), "no failure");
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_apps_20_calls_a_second_answered_by_a_pause_never_a_failure() {
    let mock = MockDingTalkApp::start(spec()).await;
    let dir = tempfile::tempdir().unwrap();
    // A rate_limit above the API's 20 calls a second (a mistake, or another system on the same app): the
    // budget lets calls through that DingTalk refuses with 403 QpsLimitForAppkeyAndApi.
    let config = config_with(&mock, "app-client-secret", "    rate_limit: {messages: 1000, per: 1s}");
    let bridge = Bridge::start(dir.path(), &config).await;
    common::post_storm(&bridge.url("/dingtalk/oncall-direct/send"), 12).await;
    wait_for("every group to reach every user", || async {
        reachable().iter().filter(|u| u.starts_with("user")).all(|u| (0..12).all(|i| shown_to(&mock, u, i) >= 1))
    })
    .await;
    for u in reachable().iter().filter(|u| u.starts_with("user")) {
        for i in 0..12 {
            assert_eq!(shown_to(&mock, u, i), 1, "{u} got group {i} once");
        }
    }
    let refused = mock.codes().iter().filter(|c| c.ends_with("QpsLimitForAppkeyAndApi")).count();
    assert!(refused > 0, "36 calls in a burst must meet the limit: {:?}", mock.codes());
    let m = bridge.metrics().await;
    assert_eq!(metric(&m, "dingtalk_bridge_throttled_total", &[("target", "oncall-direct")]), refused as f64);
    assert_eq!(metric(&m, "dingtalk_bridge_notifications_total", &[("target", "oncall-direct")]), 36.0);
    assert!(!m.contains("dingtalk_bridge_notifications_failed_total{target=\"oncall-direct\""), "nothing failed");
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spent_monthly_quota_is_a_failure_that_says_so() {
    let mock = MockDingTalkApp::start(spec()).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yaml");
    std::fs::write(&path, config(&mock, "app-client-secret")).unwrap();
    let bridge = common::BinaryBridge::start(&path);
    mock.spend_quota();
    assert_eq!(post(&bridge.url("/dingtalk/ops-app-group/send"), "application/json", FIRING).await.0, 200);
    let failed = || async {
        let m = reqwest::get(bridge.url("/metrics")).await.unwrap().text().await.unwrap();
        metric(
            &m,
            "dingtalk_bridge_notifications_failed_total",
            &[("target", "ops-app-group"), ("reason", "app_quota_spent")],
        )
    };
    wait_for("the failure", || async { failed().await == 1.0 }).await;
    assert_eq!(mock.codes(), ["Forbidden.AccessDenied.ApiCountLimitForOrg"], "given up at once, not retried");
    let m = reqwest::get(bridge.url("/metrics")).await.unwrap().text().await.unwrap();
    let group = [("target", "ops-app-group"), ("outcome", "failed"), ("reason", "app_quota_spent")];
    assert_eq!(metric(&m, "dingtalk_bridge_recipients_total", &group), 1.0, "the group is a recipient lost");
    let (_, logs) = bridge.terminate();
    let line = logs.iter().find(|l| l.contains("app_quota_spent")).expect("the failure is logged");
    assert!(line.contains("monthly DingTalk API quota is spent"), "{line}");
    assert!(logs.iter().all(|l| !l.contains("app-token") && !l.contains("app-client-secret")), "{logs:?}");
}

/// Flow-controlled users wait for their retry in the store; a SIGKILL then, and a restart, sends to those
/// users alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_with_per_user_deliveries_half_done_reaches_each_user_once() {
    let mock = MockDingTalkApp::start(spec()).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yaml");
    // Retries wait two seconds, so the kill comes while three users are still owed the message.
    let yaml = config(&mock, "app-client-secret")
        .replace("backoff_initial: 100ms, backoff_max: 200ms", "backoff_initial: 2s, backoff_max: 2s");
    std::fs::write(&path, yaml).unwrap();
    let bridge = common::BinaryBridge::start(&path);
    assert_eq!(post(&bridge.url("/dingtalk/oncall-direct/send"), "application/json", FIRING).await.0, 200);
    let deferred = || async {
        let m = reqwest::get(bridge.url("/metrics")).await.unwrap().text().await.unwrap();
        let deferred = [("target", "oncall-direct"), ("outcome", "deferred"), ("reason", "")];
        metric(&m, "dingtalk_bridge_recipients_total", &deferred)
    };
    wait_for("the three flow-controlled users to be recorded", || async { deferred().await == 3.0 }).await;
    let n = mock.received().len();
    let logs = bridge.kill();
    assert_eq!(n, 40, "40 reached, 3 owed, 2 invalid: {logs:#?}");
    let bridge = common::BinaryBridge::start(&path);
    wait_for("the three after the restart", || async { mock.received().len() == 43 }).await;
    let (status, _) = bridge.terminate();
    assert!(status.success());
    for u in reachable().iter().filter(|u| u.starts_with("user")) {
        assert_eq!(mock.count_for(u), 1, "{u} got it exactly once");
    }
    assert_eq!((mock.count_for("user07"), mock.count_for("user33")), (0, 0));
}

/// A SIGKILL at any moment of a storm to 45 users: nobody loses a message. The app API has nothing like
/// the group robot's msgUuid, so only the call in flight at the kill can reach its users twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_in_a_storm_to_45_users_loses_nobody() {
    let mock = MockDingTalkApp::start(spec()).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yaml");
    std::fs::write(&path, config(&mock, "app-client-secret")).unwrap();
    let bridge = common::BinaryBridge::start(&path);
    common::post_storm(&bridge.url("/dingtalk/oncall-direct/send"), 20).await;
    wait_for("the storm to be under way", || async { mock.received().len() >= 300 }).await;
    bridge.kill();
    let bridge = common::BinaryBridge::start(&path);
    let users: Vec<String> = reachable().into_iter().filter(|u| u.starts_with("user")).collect();
    wait_for("every group to reach every user", || async {
        users.iter().all(|u| (0..20).all(|i| shown_to(&mock, u, i) >= 1))
    })
    .await;
    let (status, _) = bridge.terminate();
    assert!(status.success());
    let twice: Vec<(String, usize)> = users
        .iter()
        .flat_map(|u| (0..20).map(move |i| (u.clone(), i)))
        .filter(|(u, i)| shown_to(&mock, u, *i) > 1)
        .collect();
    assert!(twice.len() <= 20, "at most the one call in flight repeats: {twice:?}");
    assert!(twice.iter().all(|(_, i)| *i == twice[0].1), "and it is one message: {twice:?}");
    common::every_notification_delivered(&dir.path().join("outbox.sqlite3"), "oncall-direct").await;
}

/// A retry holds back only later messages to the same users: other calls go on, and everyone, the
/// flow-controlled users too, gets firing before resolved.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_holds_back_only_the_same_users_and_keeps_their_order() {
    let mock = MockDingTalkApp::start(spec()).await;
    let dir = tempfile::tempdir().unwrap();
    let yaml = config(&mock, "app-client-secret")
        .replace("backoff_initial: 100ms, backoff_max: 200ms", "backoff_initial: 1s, backoff_max: 1s");
    let bridge = Bridge::start(dir.path(), &yaml).await;
    let send = bridge.url("/dingtalk/oncall-direct/send");
    assert_eq!(post(&send, "application/json", FIRING).await.0, 200);
    assert_eq!(post(&send, "application/json", common::RESOLVED).await.0, 200);
    let users: Vec<String> = reachable().into_iter().filter(|u| u.starts_with("user")).collect();
    wait_for("both messages to everyone", || async { users.iter().all(|u| mock.count_for(u) == 2) }).await;
    let r = mock.received();
    let titles = |u: &str| {
        r.iter().filter(|m| m.to == u).map(|m| m.param["title"].as_str().unwrap().to_string()).collect::<Vec<_>>()
    };
    let (firing, resolved) = (titles("user00")[0].clone(), titles("user00")[1].clone());
    assert_ne!(firing, resolved);
    for u in &users {
        assert_eq!(titles(u), [firing.clone(), resolved.clone()], "{u}: firing, then resolved");
    }
    // The second call (users 20..39) went while user01 of the first waited for the retry; the first
    // call's resolved message (users 0..19, user01 among them) waited for it.
    let at = |u: &str, t: &str| r.iter().position(|m| m.to == u && m.param["title"].as_str() == Some(t)).unwrap();
    assert!(at("user20", &firing) < at("user01", &firing), "other users' messages overtook the retry");
    assert!(at("user01", &firing) < at("user00", &resolved), "the same users' next message waited for it");
    bridge.stop().await;
}
