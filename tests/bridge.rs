//! The bridge in-process (`run()` on loopback) against the protocol-enforcing mock DingTalk: what the
//! group receives, what the webhook caller is answered, what the metrics and the outbox say.

mod common;

use std::time::Duration;

use common::mock_dingtalk::{Limits, MockDingTalk, Mode, RobotSpec};
use common::{Bridge, FIRING, RESOLVED, group, metric, post, shown, wait_for};
use dingtalk_bridge::config::SyncMode;
use dingtalk_bridge::store::Store;
use serde_json::{Value, json};

const SECRET: &str = "SECb1f9c0d3a7e24e5c9f0a1b2c3d4e5f60718293a4b5c6d7e8f9";

fn robot(token: &str, secret: Option<&str>, keyword: &str) -> RobotSpec {
    RobotSpec { token: token.into(), secret: secret.map(str::to_string), keywords: vec![keyword.into()] }
}

fn config(mock: &MockDingTalk, token: &str, secret: &str, extra_delivery: &str) -> String {
    format!(
        r#"
listen: "127.0.0.1:0"
storage: {{path: outbox.sqlite3}}
timezone: Asia/Shanghai
server: {{max_request_bytes: 65536, shutdown_grace: 2s}}
delivery:
  backoff_initial: 50ms
  backoff_max: 200ms
  request_timeout: 2s
{extra_delivery}
targets:
  ops:
    url: "{url}"
    secret: "{secret}"
    keyword: Alert
    mention: {{mobiles: ["13800000000"], user_ids: [manager01]}}
"#,
        url = mock.url(token)
    )
}

async fn records(dir: &std::path::Path) -> Vec<dingtalk_bridge::store::Record> {
    Store::open(&dir.join("outbox.sqlite3"), SyncMode::Full).unwrap().records("ops").await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn firing_then_resolved_arrive_signed_with_keyword_and_mentions() {
    let mock = MockDingTalk::start(vec![robot("tok-ops", Some(SECRET), "Alert")], Limits::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let bridge = Bridge::start(dir.path(), &config(&mock, "tok-ops", SECRET, "")).await;
    let send = bridge.url("/dingtalk/ops/send");

    let (status, answer) = post(&send, "application/json", FIRING).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["status"], "accepted");
    let firing_uuid = answer["messages"][0].as_str().unwrap().to_string();
    wait_for("the firing message", || async { mock.posted().len() == 1 }).await;

    let (status, _) = post(&send, "application/json; charset=utf-8", RESOLVED).await;
    assert_eq!(status, 200);
    wait_for("the resolved message", || async { mock.posted().len() == 2 }).await;

    let posted = mock.posted();
    let firing = &posted[0];
    assert_eq!(firing.msg_uuid.as_deref(), Some(firing_uuid.as_str()));
    assert_eq!(firing.body["msgtype"], "markdown");
    assert_eq!(firing.body["markdown"]["title"], "🟠 FIRING 3 · NodeDiskFull · warning · Alert");
    let text = firing.body["markdown"]["text"].as_str().unwrap();
    assert!(text.contains("Disk almost full on node1") && text.contains("10:16 UTC+8"), "{text}");
    assert_eq!(firing.highlighted, vec!["13800000000", "manager01"], "mentions must ring");
    let resolved = &posted[1];
    assert_eq!(resolved.body["markdown"]["title"], "✅ RESOLVED 3 · NodeDiskFull · warning · Alert");
    assert!(mock.answered().iter().all(|a| a.errcode == 0), "{:?}", mock.answered());

    wait_for("delivered records", || async {
        records(dir.path()).await.iter().all(|r| r.state.as_str() == "delivered")
    })
    .await;
    let m = bridge.metrics().await;
    assert_eq!(metric(&m, "dingtalk_bridge_notifications_total", &[("target", "ops")]), 2.0);
    assert_eq!(metric(&m, "dingtalk_bridge_notification_requests_total", &[("target", "ops")]), 2.0);
    assert_eq!(metric(&m, "dingtalk_bridge_alerts_received_total", &[("target", "ops"), ("status", "firing")]), 3.0);
    assert_eq!(metric(&m, "dingtalk_bridge_alerts_received_total", &[("target", "ops"), ("status", "resolved")]), 3.0);
    assert_eq!(metric(&m, "dingtalk_bridge_webhook_requests_total", &[("target", "ops"), ("code", "200")]), 2.0);
    assert_eq!(metric(&m, "dingtalk_bridge_notification_latency_seconds_count", &[("target", "ops")]), 2.0);
    assert_eq!(metric(&m, "dingtalk_bridge_queue_depth", &[("target", "ops")]), 0.0);
    assert_eq!(metric(&m, "dingtalk_bridge_build_info", &[("version", env!("CARGO_PKG_VERSION"))]), 1.0);
    assert!(m.contains("process_resident_memory_bytes"), "process metrics");
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_secret_is_given_up_once_with_its_reason() {
    let mock = MockDingTalk::start(vec![robot("tok-ops", Some(SECRET), "Alert")], Limits::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let bridge = Bridge::start(dir.path(), &config(&mock, "tok-ops", "SECnot-the-robots-secret", "")).await;
    let (status, _) = post(&bridge.url("/dingtalk/ops/send"), "application/json", FIRING).await;
    assert_eq!(status, 200, "accepted: the problem is DingTalk's answer, which the caller cannot fix by retrying");

    wait_for("the failure to be recorded", || async {
        records(dir.path()).await.iter().any(|r| r.state.as_str() == "failed")
    })
    .await;
    let recs = records(dir.path()).await;
    assert_eq!(recs[0].reason.as_deref(), Some("signature"));
    assert_eq!(recs[0].attempts, 1);
    assert!(recs[0].last_error.as_deref().unwrap().contains("sign not match"));
    // A second notification shows the sender went on after giving up, still without retrying the first.
    post(&bridge.url("/dingtalk/ops/send"), "application/json", RESOLVED).await;
    wait_for("the second failure", || async {
        records(dir.path()).await.iter().filter(|r| r.state.as_str() == "failed").count() == 2
    })
    .await;
    assert_eq!(mock.requests(), 2, "one request per message, no retry storm");
    assert!(mock.posted().is_empty());
    let m = bridge.metrics().await;
    assert_eq!(
        metric(&m, "dingtalk_bridge_notifications_failed_total", &[("target", "ops"), ("reason", "signature")]),
        2.0
    );
    assert_eq!(
        metric(&m, "dingtalk_bridge_notification_requests_failed_total", &[("target", "ops"), ("reason", "signature")]),
        2.0
    );
    assert!(!m.contains(SECRET) && !m.contains("tok-ops"), "no secret in metrics");
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dingtalk_down_then_up_delivers_once() {
    let mock = MockDingTalk::start(vec![robot("tok-ops", Some(SECRET), "Alert")], Limits::default()).await;
    mock.set_mode(Mode::Down);
    let dir = tempfile::tempdir().unwrap();
    let bridge = Bridge::start(dir.path(), &config(&mock, "tok-ops", SECRET, "")).await;
    let (status, _) = post(&bridge.url("/dingtalk/ops/send"), "application/json", FIRING).await;
    assert_eq!(status, 200);
    wait_for("several failed attempts", || async { mock.requests() >= 3 }).await;
    mock.set_mode(Mode::BadGateway);
    let before = mock.requests();
    wait_for("attempts against a 502", || async { mock.requests() >= before + 2 }).await;
    mock.script(-1, "系统繁忙");
    mock.set_mode(Mode::Normal);
    wait_for("delivery", || async { mock.posted().len() == 1 }).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(mock.posted().len(), 1, "delivered exactly once");

    let m = bridge.metrics().await;
    let failed = |reason| {
        metric(&m, "dingtalk_bridge_notification_requests_failed_total", &[("target", "ops"), ("reason", reason)])
    };
    assert!(failed("network") >= 3.0, "{m}");
    assert!(failed("http_5xx") >= 2.0, "{m}");
    assert_eq!(failed("busy"), 1.0);
    assert_eq!(metric(&m, "dingtalk_bridge_notifications_total", &[("target", "ops")]), 1.0);
    assert_eq!(
        metric(&m, "dingtalk_bridge_notifications_failed_total", &[("target", "ops"), ("reason", "network")]),
        0.0
    );
    let rec = &records(dir.path()).await[0];
    assert_eq!(rec.state.as_str(), "delivered");
    assert!(rec.attempts >= 7, "{rec:?}");
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_that_cannot_be_delivered_in_time_expire_visibly() {
    // DingTalk answers 502: provably not posted, so a digest takes the expired message over (with a fresh
    // max_age) and, when that cannot be delivered either, the digest expires.
    let mock = MockDingTalk::start(vec![robot("tok-ops", Some(SECRET), "Alert")], Limits::default()).await;
    mock.set_mode(Mode::BadGateway);
    let dir = tempfile::tempdir().unwrap();
    let bridge = Bridge::start(dir.path(), &config(&mock, "tok-ops", SECRET, "  max_age: 400ms")).await;
    post(&bridge.url("/dingtalk/ops/send"), "application/json", FIRING).await;
    wait_for("expiry", || async { records(dir.path()).await.iter().any(|r| r.state.as_str() == "failed") }).await;
    let recs = records(dir.path()).await;
    let digest = recs.iter().find(|r| r.kind.as_str() == "digest").expect("a digest");
    assert_eq!((digest.state.as_str(), digest.reason.as_deref()), ("failed", Some("expired")));
    assert_eq!((recs[0].state.as_str(), recs[0].carried_by), ("merged", Some(digest.id)));
    let m = bridge.metrics().await;
    assert_eq!(
        metric(&m, "dingtalk_bridge_notifications_failed_total", &[("target", "ops"), ("reason", "expired")]),
        1.0
    );
    assert_eq!(metric(&m, "dingtalk_bridge_digests_total", &[("target", "ops")]), 1.0);
    bridge.stop().await;

    // The connection drops after the request was sent: DingTalk may have posted it, so no digest may
    // repeat it; it expires as itself.
    let mock = MockDingTalk::start(vec![robot("tok-ops", Some(SECRET), "Alert")], Limits::default()).await;
    mock.set_mode(Mode::Down);
    let dir = tempfile::tempdir().unwrap();
    let bridge = Bridge::start(dir.path(), &config(&mock, "tok-ops", SECRET, "  max_age: 400ms")).await;
    post(&bridge.url("/dingtalk/ops/send"), "application/json", FIRING).await;
    wait_for("expiry", || async { records(dir.path()).await.iter().any(|r| r.state.as_str() == "failed") }).await;
    let recs = records(dir.path()).await;
    assert_eq!(recs.len(), 1, "no digest: {recs:?}");
    assert_eq!(recs[0].reason.as_deref(), Some("expired"));
    assert!(recs[0].last_error.as_deref().unwrap().contains("may have posted it"), "{recs:?}");
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_pauses_the_robot_and_loses_nothing() {
    // The bridge is told it may send 100 per second; the mock allows 5 per second and blocks for 500ms.
    let limits = Limits {
        per_window: 5,
        window: Duration::from_secs(1),
        block: Duration::from_millis(500),
        ..Limits::default()
    };
    let mock = MockDingTalk::start(vec![robot("tok-ops", Some(SECRET), "Alert")], limits).await;
    let dir = tempfile::tempdir().unwrap();
    let extra = "  rate_limit: {messages: 100, per: 1s}\n  throttle_penalty: 600ms";
    let bridge = Bridge::start(dir.path(), &config(&mock, "tok-ops", SECRET, extra)).await;
    for i in 0..8 {
        assert_eq!(post(&bridge.url("/dingtalk/ops/send"), "application/json", group(i)).await.0, 200);
    }
    wait_for("all 8 shown", || async { (0..8).all(|i| shown(&mock.posted(), i) == 1) }).await;
    assert!(mock.throttled() >= 1);
    let m = bridge.metrics().await;
    assert!(metric(&m, "dingtalk_bridge_throttled_total", &[("target", "ops")]) >= 1.0);
    let failed: f64 = ["throttled", "expired"]
        .iter()
        .map(|r| metric(&m, "dingtalk_bridge_notifications_failed_total", &[("target", "ops"), ("reason", r)]))
        .sum();
    assert_eq!(failed, 0.0, "throttling is never a failure");
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rate_budget_keeps_the_robot_from_being_throttled() {
    let limits =
        Limits { per_window: 5, window: Duration::from_secs(1), block: Duration::from_secs(600), ..Limits::default() };
    let mock = MockDingTalk::start(vec![robot("tok-ops", Some(SECRET), "Alert")], limits).await;
    let dir = tempfile::tempdir().unwrap();
    // Exactly the mock's own budget: sends count from when they finished, so network delays cannot push
    // DingTalk's count over.
    let extra = "  rate_limit: {messages: 5, per: 1s}";
    let bridge = Bridge::start(dir.path(), &config(&mock, "tok-ops", SECRET, extra)).await;
    // All at once, so the budget is what spreads them (one at a time, a loaded machine may spread them
    // by itself and the budget would never have to wait).
    let mut posts = tokio::task::JoinSet::new();
    for i in 0..12 {
        let url = bridge.url("/dingtalk/ops/send");
        posts.spawn(async move { post(&url, "application/json", group(i)).await.0 });
    }
    while let Some(status) = posts.join_next().await {
        assert_eq!(status.unwrap(), 200);
    }
    wait_for("all 12 shown", || async { (0..12).all(|i| shown(&mock.posted(), i) == 1) }).await;
    assert_eq!(mock.throttled(), 0, "the mock never had to throttle us");
    let m = bridge.metrics().await;
    // The budget acted: it made sends wait, or (when the backlog could not drain in time) merged waiting
    // messages into a digest. Which one depends on how the arrivals interleave with the first sends.
    let waited = metric(&m, "dingtalk_bridge_rate_limited_total", &[("target", "ops")]);
    let digests = metric(&m, "dingtalk_bridge_digests_total", &[("target", "ops")]);
    assert!(waited + digests >= 1.0, "{m}");
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_clear_4xx_answers_and_nothing_is_sent() {
    let mock = MockDingTalk::start(vec![robot("tok-ops", Some(SECRET), "Alert")], Limits::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let bridge = Bridge::start(dir.path(), &config(&mock, "tok-ops", SECRET, "")).await;
    let send = bridge.url("/dingtalk/ops/send");

    let (s, b) = post(&send, "application/json", "{\"status\": \"firing\", \"alerts\": [").await;
    assert_eq!(s, 400);
    assert!(b["error"].as_str().unwrap().contains("not valid JSON"), "{b}");

    let mut v: Value = serde_json::from_str(FIRING).unwrap();
    v["alerts"][2]["startsAt"] = json!("last tuesday");
    let (s, b) = post(&send, "application/json", v.to_string()).await;
    assert_eq!((s, b["field"].as_str()), (400, Some("alerts[2].startsAt")), "{b}");

    let (s, b) = post(&send, "application/json", "{\"status\": \"firing\"}").await;
    assert_eq!((s, b["field"].as_str()), (400, Some("alerts")), "{b}");

    let (s, b) = post(&send, "application/x-www-form-urlencoded", FIRING).await;
    assert_eq!(s, 415, "{b}");

    let mut big: Value = serde_json::from_str(FIRING).unwrap();
    big["commonAnnotations"]["padding"] = json!("x".repeat(70_000));
    let (s, b) = post(&send, "application/json", big.to_string()).await;
    assert_eq!(s, 413, "{b}");
    // Without Content-Length (chunked), the limit still holds while reading.
    let payload = big.to_string();
    let request = format!(
        "POST /dingtalk/ops/send HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n{:x}\r\n{payload}\r\n0\r\n\r\n",
        payload.len()
    );
    assert!(raw(bridge.addr, request.as_bytes()).await.starts_with("HTTP/1.1 413"));

    let (s, b) = post(&bridge.url("/dingtalk/nope/send"), "application/json", FIRING).await;
    assert_eq!(s, 404);
    assert_eq!(b["targets"], json!(["ops"]));

    let get = reqwest::get(&send).await.unwrap();
    assert_eq!(get.status().as_u16(), 405);
    assert_eq!(get.headers()["allow"], "POST");

    assert_eq!(reqwest::get(bridge.url("/-/healthy")).await.unwrap().status().as_u16(), 200);
    assert_eq!(reqwest::get(bridge.url("/-/ready")).await.unwrap().status().as_u16(), 200);
    assert_eq!(reqwest::get(bridge.url("/elsewhere")).await.unwrap().status().as_u16(), 404);

    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(mock.requests(), 0, "nothing rejected was sent");
    assert!(records(dir.path()).await.is_empty(), "nothing rejected was stored");
    let m = bridge.metrics().await;
    assert_eq!(metric(&m, "dingtalk_bridge_webhook_requests_total", &[("target", "ops"), ("code", "400")]), 3.0);
    assert_eq!(metric(&m, "dingtalk_bridge_webhook_requests_total", &[("target", "ops"), ("code", "413")]), 2.0);
    assert_eq!(metric(&m, "dingtalk_bridge_webhook_requests_total", &[("target", "_unknown"), ("code", "404")]), 1.0);
    bridge.stop().await;
}

/// Sends raw bytes and returns everything the server answers before closing.
async fn raw(addr: std::net::SocketAddr, request: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut buf = vec![0; 4096];
    let n = stream.read(&mut buf).await.unwrap();
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_finishes_its_headers_is_cut_off() {
    let mock = MockDingTalk::start(vec![robot("tok-ops", Some(SECRET), "Alert")], Limits::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let yaml = config(&mock, "tok-ops", SECRET, "")
        .replace("shutdown_grace: 2s", "shutdown_grace: 2s, header_read_timeout: 300ms");
    let bridge = Bridge::start(dir.path(), &yaml).await;
    // The server closes the connection (answering 408 or nothing) instead of waiting forever.
    let answer = tokio::time::timeout(
        Duration::from_secs(20),
        raw(bridge.addr, b"POST /dingtalk/ops/send HTTP/1.1\r\nhost: x\r\n"),
    )
    .await
    .expect("connection closed by the header-read timeout");
    assert!(answer.is_empty() || answer.starts_with("HTTP/1.1 408"), "{answer}");
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_that_cannot_accept_answers_503_so_alertmanager_retries() {
    let mock = MockDingTalk::start(vec![robot("tok-ops", Some(SECRET), "Alert")], Limits::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let bridge = Bridge::start(dir.path(), &config(&mock, "tok-ops", SECRET, "")).await;
    // Another connection holds the write lock longer than the bridge's busy timeout.
    let blocker = rusqlite::Connection::open(dir.path().join("outbox.sqlite3")).unwrap();
    blocker.execute_batch("BEGIN IMMEDIATE; INSERT INTO notifications (target, group_key, status, alerts, received_at_ms) VALUES ('x','x','x',0,0);").unwrap();
    let (s, b) = post(&bridge.url("/dingtalk/ops/send"), "application/json", FIRING).await;
    assert_eq!(s, 503, "{b}");
    assert!(b["error"].as_str().unwrap().contains("retry later"), "{b}");
    blocker.execute_batch("ROLLBACK").unwrap();
    let (s, _) = post(&bridge.url("/dingtalk/ops/send"), "application/json", FIRING).await;
    assert_eq!(s, 200, "accepted once the store recovers");
    wait_for("delivery", || async { mock.posted().len() == 1 }).await;
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_leaves_undelivered_messages_for_the_next_start() {
    let mock = MockDingTalk::start(vec![robot("tok-ops", Some(SECRET), "Alert")], Limits::default()).await;
    mock.set_mode(Mode::Down);
    let dir = tempfile::tempdir().unwrap();
    let yaml = config(&mock, "tok-ops", SECRET, "");
    let bridge = Bridge::start(dir.path(), &yaml).await;
    for payload in [FIRING, RESOLVED] {
        assert_eq!(post(&bridge.url("/dingtalk/ops/send"), "application/json", payload).await.0, 200);
    }
    wait_for("an attempt", || async { mock.requests() >= 1 }).await;
    bridge.stop().await;
    assert_eq!(records(dir.path()).await.iter().filter(|r| r.state.as_str() == "pending").count(), 2);

    mock.set_mode(Mode::Normal);
    let bridge = Bridge::start(dir.path(), &yaml).await;
    wait_for("both delivered after restart", || async { mock.posted().len() == 2 }).await;
    let titles: Vec<String> =
        mock.posted().iter().map(|p| p.body["markdown"]["title"].as_str().unwrap().to_string()).collect();
    assert_eq!(
        titles,
        vec!["🟠 FIRING 3 · NodeDiskFull · warning · Alert", "✅ RESOLVED 3 · NodeDiskFull · warning · Alert"],
        "in order"
    );
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_user_template_falls_back_and_is_counted() {
    let mock = MockDingTalk::start(vec![robot("tok-ops", Some(SECRET), "Alert")], Limits::default()).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("templates/team")).unwrap();
    std::fs::write(dir.path().join("templates/team/markdown.hbs"), "{{commonLabels.team}} owns this").unwrap();
    std::fs::write(dir.path().join("templates/team/title.hbs"), "{{groupName}}").unwrap();
    let yaml = config(&mock, "tok-ops", SECRET, "").replace("keyword: Alert", "keyword: Alert\n    template: team")
        + "templates_dir: templates\n";
    let bridge = Bridge::start(dir.path(), &yaml).await;
    assert_eq!(post(&bridge.url("/dingtalk/ops/send"), "application/json", FIRING).await.0, 200);
    wait_for("delivery", || async { mock.posted().len() == 1 }).await;
    let text = mock.posted()[0].body["markdown"]["text"].as_str().unwrap().to_string();
    assert!(text.contains("Disk almost full on node1"), "the built-in template rendered it: {text}");
    let m = bridge.metrics().await;
    assert_eq!(metric(&m, "dingtalk_bridge_template_failures_total", &[("target", "ops")]), 1.0);
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timed_out_send_is_retried_with_the_same_msg_uuid_and_shown_once() {
    let mock = MockDingTalk::start(vec![robot("tok-ops", Some(SECRET), "Alert")], Limits::default()).await;
    // DingTalk posts the message but answers after the bridge's request timeout.
    mock.set_mode(Mode::SlowAnswer(Duration::from_secs(5)));
    let dir = tempfile::tempdir().unwrap();
    let yaml = config(&mock, "tok-ops", SECRET, "").replace("request_timeout: 2s", "request_timeout: 300ms");
    let bridge = Bridge::start(dir.path(), &yaml).await;
    post(&bridge.url("/dingtalk/ops/send"), "application/json", FIRING).await;
    wait_for("a timed-out attempt", || async {
        metric(
            &bridge.metrics().await,
            "dingtalk_bridge_notification_requests_failed_total",
            &[("target", "ops"), ("reason", "timeout")],
        ) >= 1.0
    })
    .await;
    mock.set_mode(Mode::Normal);
    wait_for("the delivered record", || async { records(dir.path()).await[0].state.as_str() == "delivered" }).await;
    assert_eq!(mock.posted().len(), 1, "the group shows it once");
    assert!(mock.duplicate_uuids() >= 1, "the resend carried the same msgUuid");
    bridge.stop().await;
}
