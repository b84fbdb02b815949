//! Operating the bridge: reloading the configuration (SIGHUP and POST /-/reload) on the real binary, and
//! receiver authentication.

mod common;

use std::path::Path;
use std::time::Duration;

use common::mock_dingtalk::{Limits, MockDingTalk, RobotSpec};
use common::{BinaryBridge, Bridge, FIRING, group, metric, post, shown, wait_for};

const SECRET: &str = "SECadmin0123456789abcdef0123456789abcdef0123456789abcd";

fn robots() -> Vec<RobotSpec> {
    ["tok-ops", "tok-db", "tok-new"]
        .iter()
        .map(|t| RobotSpec { token: t.to_string(), secret: Some(SECRET.into()), keywords: vec!["Alert".into()] })
        .collect()
}

fn target(name: &str, mock: &MockDingTalk, token: &str) -> String {
    format!("  {name}:\n    url: \"{}\"\n    secret: \"{SECRET}\"\n    keyword: Alert\n", mock.url(token))
}

fn write(path: &Path, targets: &str, extra: &str) {
    let yaml = format!(
        "listen: \"127.0.0.1:0\"\nstorage: {{path: outbox.sqlite3}}\ndelivery:\n  rate_limit: {{messages: 5, per: 2s}}\n  backoff_initial: 50ms\n  backoff_max: 100ms\n{extra}targets:\n{targets}"
    );
    std::fs::write(path, yaml).unwrap();
}

async fn metrics(bridge: &BinaryBridge) -> String {
    reqwest::get(bridge.url("/metrics")).await.unwrap().text().await.unwrap()
}

async fn reload_post(bridge: &BinaryBridge) -> (u16, String) {
    let resp = reqwest::Client::new().post(bridge.url("/-/reload")).send().await.unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

fn sighup(bridge: &BinaryBridge) {
    let status = std::process::Command::new("kill").args(["-HUP", &bridge.pid().to_string()]).status().unwrap();
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_switches_atomically_refuses_broken_configs_and_keeps_what_matters() {
    let mock = MockDingTalk::start(
        robots(),
        Limits { per_window: 5, window: Duration::from_secs(2), block: Duration::from_secs(60), ..Limits::default() },
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bridge.yaml");
    write(&path, &(target("ops", &mock, "tok-ops") + &target("db", &mock, "tok-db")), "");
    let bridge = BinaryBridge::start(&path);
    let m = metrics(&bridge).await;
    assert_eq!(metric(&m, "dingtalk_bridge_config_last_reload_successful", &[]), 1.0);
    let loaded_at = metric(&m, "dingtalk_bridge_config_last_reload_success_timestamp_seconds", &[]);
    assert!(loaded_at > 1.7e9, "{loaded_at}");

    // Use up the ops robot's budget (5 per 2s).
    for i in 0..5 {
        assert_eq!(post(&bridge.url("/dingtalk/ops/send"), "application/json", group(i)).await.1["status"], "accepted");
    }
    wait_for("five delivered", || async { mock.posted().len() == 5 }).await;

    // A broken file is refused; the old configuration keeps serving.
    std::fs::write(&path, "targets:\n  ops:\n    url: [not a string\n").unwrap();
    let (status, body) = reload_post(&bridge).await;
    assert_eq!(status, 500, "{body}");
    assert!(body.contains("bridge.yaml"), "the error names the file: {body}");
    assert_eq!(metric(&metrics(&bridge).await, "dingtalk_bridge_config_last_reload_successful", &[]), 0.0);
    assert_eq!(
        metric(&metrics(&bridge).await, "dingtalk_bridge_config_last_reload_success_timestamp_seconds", &[]),
        loaded_at
    );

    // db goes away while it has a message queued (its robot is down); "new" arrives. SIGHUP this time.
    mock.set_mode(common::mock_dingtalk::Mode::Down);
    assert_eq!(post(&bridge.url("/dingtalk/db/send"), "application/json", group(50)).await.0, 200);
    wait_for("db's attempt", || async { bridge.logs.lock().unwrap().iter().any(|l| l.contains("send failed")) }).await;
    write(&path, &(target("ops", &mock, "tok-ops") + &target("new", &mock, "tok-new")), "");
    sighup(&bridge);
    // The log line is written by its own thread, after the metric: wait for both.
    wait_for("the reload", || async {
        metric(&metrics(&bridge).await, "dingtalk_bridge_config_last_reload_successful", &[]) == 1.0
            && bridge.logs.lock().unwrap().iter().any(|l| l.contains("configuration reloaded"))
    })
    .await;
    mock.set_mode(common::mock_dingtalk::Mode::Normal);
    let logs = bridge.logs.lock().unwrap().clone();
    assert!(logs.iter().any(|l| l.contains("configuration reloaded")));
    assert!(
        logs.iter().any(|l| l.contains("no longer configured") && l.contains("\"target\":\"db\"")),
        "queued messages of the removed target are reported"
    );
    let m = metrics(&bridge).await;
    assert_eq!(metric(&m, "dingtalk_bridge_queue_depth", &[("target", "db")]), 1.0, "and still visible in metrics");
    let (status, _) = post(&bridge.url("/dingtalk/db/send"), "application/json", group(51)).await;
    assert_eq!(status, 404);
    assert_eq!(post(&bridge.url("/dingtalk/new/send"), "application/json", group(60)).await.1["status"], "accepted");
    wait_for("the new target's message", || async { shown(&mock.posted(), 60) == 1 }).await;

    // The ops robot's budget survived the reload: the sixth message waits for the window, never throttled.
    assert_eq!(post(&bridge.url("/dingtalk/ops/send"), "application/json", group(5)).await.1["status"], "accepted");
    wait_for("the sixth ops message", || async { shown(&mock.posted(), 5) == 1 }).await;
    assert_eq!(mock.throttled(), 0);
    assert_eq!(shown(&mock.posted(), 50), 0, "the removed target's message stays queued");
}

/// A reload while a send is in flight answers at once (the send is still in flight when the answer
/// comes), leaves the unchanged target's sender alone (its request is neither abandoned nor repeated)
/// and switches the changed target to its new settings.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_restarts_only_changed_targets_and_does_not_wait_for_a_send_in_flight() {
    let mock = MockDingTalk::start(robots(), Limits::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bridge.yaml");
    // A restarted sender would abandon its request after the 1s grace and send it again.
    let extra = "  request_timeout: 30s\nserver: {shutdown_grace: 1s}\n";
    write(&path, &(target("ops", &mock, "tok-ops") + &target("db", &mock, "tok-db")), extra);
    let bridge = BinaryBridge::start(&path);

    mock.set_mode(common::mock_dingtalk::Mode::SlowAnswer(Duration::from_secs(4)));
    assert_eq!(post(&bridge.url("/dingtalk/ops/send"), "application/json", group(1)).await.0, 200);
    wait_for("the request in flight", || async { mock.requests() == 1 }).await;

    // db changes (plain text from now on); ops does not.
    let db = target("db", &mock, "tok-db") + "    msgtype: text\n";
    write(&path, &(target("ops", &mock, "tok-ops") + &db), extra);
    let (status, body) = reload_post(&bridge).await;
    assert_eq!(status, 200, "{body}");
    let m = metrics(&bridge).await;
    assert_eq!(metric(&m, "dingtalk_bridge_config_last_reload_successful", &[]), 1.0);
    assert_eq!(
        metric(&m, "dingtalk_bridge_notifications_total", &[("target", "ops")]),
        0.0,
        "the reload answered while the send was still in flight"
    );

    wait_for("the slow send to be recorded", || async {
        metric(&metrics(&bridge).await, "dingtalk_bridge_notifications_total", &[("target", "ops")]) == 1.0
    })
    .await;
    mock.set_mode(common::mock_dingtalk::Mode::Normal);
    assert_eq!(post(&bridge.url("/dingtalk/db/send"), "application/json", group(2)).await.0, 200);
    wait_for("the changed target's message", || async { shown(&mock.posted(), 2) == 1 }).await;
    assert_eq!(mock.posted().last().unwrap().body["msgtype"], "text", "in its new format");
    let ops_requests = mock.answered().iter().filter(|a| a.token == "tok-ops").count();
    assert_eq!(ops_requests, 1, "the unchanged target's request was not abandoned and repeated");
    assert_eq!(mock.duplicate_uuids(), 0);
    let logs = bridge.logs.lock().unwrap().clone();
    let started = |t: &str| {
        logs.iter().filter(|l| l.contains("sender started") && l.contains(&format!("\"target\":\"{t}\""))).count()
    };
    assert_eq!((started("ops"), started("db")), (1, 2), "only the changed target's sender restarted");
}

const AUTH: &str =
    "server:\n  auth:\n    bearer_token: s3cret-token\n    basic_auth: {username: alertmanager, password: pa55word}\n";

fn auth_config(mock: &MockDingTalk, extra: &str) -> String {
    format!(
        "listen: \"127.0.0.1:0\"\nstorage: {{path: outbox.sqlite3}}\n{AUTH}{extra}targets:\n{}",
        target("ops", mock, "tok-ops")
    )
}

async fn status(req: reqwest::RequestBuilder) -> u16 {
    req.send().await.unwrap().status().as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receiver_auth_accepts_bearer_or_basic_and_keeps_probes_open() {
    let mock = MockDingTalk::start(robots(), Limits::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let bridge = Bridge::start(dir.path(), &auth_config(&mock, "")).await;
    let client = reqwest::Client::new();
    let send = bridge.url("/dingtalk/ops/send");
    let post = |auth: Option<(&str, &str)>| {
        let mut req = client.post(&send).header("content-type", "application/json").body(FIRING);
        if let Some((scheme, value)) = auth {
            req = req.header("authorization", format!("{scheme} {value}"));
        }
        req
    };
    let resp = post(None).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    assert_eq!(resp.headers()["www-authenticate"], "Basic realm=\"dingtalk-bridge\"");
    assert_eq!(status(post(Some(("Bearer", "wrong")))).await, 401);
    assert_eq!(status(post(Some(("Bearer", "s3cret-token-and-more")))).await, 401);
    assert_eq!(status(post(Some(("Basic", "YWxlcnRtYW5hZ2VyOndyb25n")))).await, 401, "alertmanager:wrong");
    assert_eq!(status(post(Some(("Bearer", "s3cret-token")))).await, 200);
    // alertmanager:pa55word, as Alertmanager's http_config basic_auth sends it.
    assert_eq!(status(post(Some(("Basic", "YWxlcnRtYW5hZ2VyOnBhNTV3b3Jk")))).await, 200);
    assert_eq!(status(client.post(bridge.url("/-/reload"))).await, 401, "admin actions are protected too");

    assert_eq!(status(client.get(bridge.url("/metrics"))).await, 200, "scraping stays open by default");
    assert_eq!(status(client.get(bridge.url("/-/ready"))).await, 200);
    let m = bridge.metrics().await;
    assert_eq!(metric(&m, "dingtalk_bridge_webhook_requests_total", &[("target", "ops"), ("code", "401")]), 4.0);
    assert!(!m.contains("s3cret") && !m.contains("pa55word"));
    wait_for("one delivery", || async { mock.posted().len() == 1 }).await;
    bridge.stop().await;

    let dir = tempfile::tempdir().unwrap();
    let bridge = Bridge::start(
        dir.path(),
        &auth_config(&mock, "").replace("pa55word}\n", "pa55word}\n    protect_metrics: true\n"),
    )
    .await;
    assert_eq!(status(client.get(bridge.url("/metrics"))).await, 401);
    assert_eq!(status(client.get(bridge.url("/metrics")).bearer_auth("s3cret-token")).await, 200);
    assert_eq!(status(client.get(bridge.url("/-/healthy"))).await, 200, "probes stay open unless protect_health");
    bridge.stop().await;
}
