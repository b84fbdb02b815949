//! The operations console and its API over loopback: who may see and change what, the CSRF token, target
//! switches that survive a restart and skip (never queue) notifications, security headers, and no
//! credential anywhere in an answer.

mod common;

use common::mock_dingtalk::{Limits, MockDingTalk, RobotSpec};
use common::{Bridge, FIRING, RESOLVED, metric, post, wait_for};
use serde_json::Value;

const ADMIN: (&str, &str) = ("alice", "admin-password-1234");
const VIEWER: (&str, &str) = ("viewer", "viewer-password-1234");

fn config(mock: &MockDingTalk) -> String {
    format!(
        r#"storage: {{path: outbox.sqlite3}}
delivery: {{backoff_initial: 1s, backoff_max: 2s}}
console:
  users:
  - {{name: {}, password: "{}", role: admin}}
  - {{name: {}, password: "{}"}}
targets:
  ops:
    url: "{}"
    secret: "SEC-console-signing-secret"
    keyword: Alert
  dead:
    url: "http://127.0.0.1:1/robot/send?access_token=tok-dead-robot"
"#,
        ADMIN.0,
        ADMIN.1,
        VIEWER.0,
        VIEWER.1,
        mock.url("tok-console-robot")
    )
}

async fn mock() -> MockDingTalk {
    let robot = RobotSpec {
        token: "tok-console-robot".into(),
        secret: Some("SEC-console-signing-secret".into()),
        keywords: vec!["Alert".into()],
    };
    MockDingTalk::start(vec![robot], Limits::default()).await
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

async fn get(bridge: &Bridge, path: &str, who: Option<(&str, &str)>) -> reqwest::Response {
    let mut req = client().get(bridge.url(path));
    if let Some((u, p)) = who {
        req = req.basic_auth(u, Some(p));
    }
    req.send().await.unwrap()
}

async fn csrf(bridge: &Bridge, who: (&str, &str)) -> String {
    let v: Value =
        serde_json::from_str(&get(bridge, "/api/v1/session", Some(who)).await.text().await.unwrap()).unwrap();
    v["csrf"].as_str().unwrap().to_string()
}

async fn switch(bridge: &Bridge, who: (&str, &str), target: &str, action: &str, token: Option<&str>) -> (u16, Value) {
    let mut req =
        client().post(bridge.url(&format!("/api/v1/targets/{target}/{action}"))).basic_auth(who.0, Some(who.1));
    if let Some(t) = token {
        req = req.header("x-csrf-token", t);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, serde_json::from_str(&resp.text().await.unwrap()).unwrap_or(Value::Null))
}

async fn targets(bridge: &Bridge) -> Value {
    serde_json::from_str(&get(bridge, "/api/v1/targets", Some(VIEWER)).await.text().await.unwrap()).unwrap()
}

fn target<'a>(list: &'a Value, name: &str) -> &'a Value {
    list["targets"].as_array().unwrap().iter().find(|t| t["name"] == name).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nobody_gets_anything_without_a_console_user() {
    let mock = mock().await;
    let dir = tempfile::tempdir().unwrap();
    let bridge = Bridge::start(dir.path(), &config(&mock)).await;
    for path in ["/api/v1/targets", "/api/v1/session", "/api/v1/records"] {
        let resp = get(&bridge, path, None).await;
        assert_eq!(resp.status(), 401, "{path}");
        assert!(resp.headers()["www-authenticate"].to_str().unwrap().starts_with("Basic"));
        assert!(!resp.text().await.unwrap().contains("ops"), "{path} reveals nothing");
        assert_eq!(get(&bridge, path, Some((ADMIN.0, "wrong-password-1234"))).await.status(), 401);
    }
    // A browser is sent to the login page, which reveals nothing either.
    for path in ["/console", "/console/records", "/console/records/1", "/console/nothing"] {
        let resp = get(&bridge, path, None).await;
        assert_eq!((resp.status().as_u16(), resp.headers()["location"].to_str().unwrap()), (303, "/console/login"));
    }
    let login = get(&bridge, "/console/login", None).await.text().await.unwrap();
    assert!(login.contains("name=\"password\"") && !login.contains("ops"));
    let post_login = |user: &str, password: &str| {
        client()
            .post(bridge.url("/console/login"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("user={user}&password={password}"))
            .send()
    };
    assert_eq!(post_login(ADMIN.0, "wrong-password-1234").await.unwrap().status(), 401);
    let ok = post_login(ADMIN.0, ADMIN.1).await.unwrap();
    assert_eq!(ok.status(), 303);
    let cookie = ok.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), "{cookie}");
    let session = cookie.split(';').next().unwrap().to_string();
    let page = client().get(bridge.url("/console")).header("cookie", &session).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("Logged in as alice"));
    // Guessing is slowed: after 10 failures in a minute, even the right password waits.
    for _ in 0..10 {
        assert_eq!(post_login(VIEWER.0, "guess-guess-guess").await.unwrap().status(), 401);
    }
    assert_eq!(post_login(VIEWER.0, VIEWER.1).await.unwrap().status(), 429);
    assert_eq!(post_login(ADMIN.0, ADMIN.1).await.unwrap().status(), 303, "other users are not locked out");
    // A forged cookie (another user, same signature) is nobody.
    let hex = |s: &str| s.bytes().map(|b| format!("{b:02x}")).collect::<String>();
    let forged = session.replacen(&hex("alice"), &hex("viewer"), 1);
    assert_ne!(forged, session);
    assert_eq!(client().get(bridge.url("/console")).header("cookie", forged).send().await.unwrap().status(), 303);
    bridge.stop().await;
    // A restart keeps the session (the key is in the store)...
    let bridge = Bridge::start(dir.path(), &config(&mock)).await;
    let page = client().get(bridge.url("/console")).header("cookie", &session).send().await.unwrap();
    assert_eq!(page.status(), 200, "the session outlives a restart");
    let token = csrf(&bridge, ADMIN).await;
    bridge.stop().await;
    // ...but a new password ends it, and the old CSRF token with it.
    let renamed = config(&mock).replace(ADMIN.1, "a-new-admin-password-5678");
    let bridge = Bridge::start(dir.path(), &renamed).await;
    let page = client().get(bridge.url("/console")).header("cookie", &session).send().await.unwrap();
    assert_eq!(page.status(), 303, "a session from before the password changed is nobody");
    let new_admin = (ADMIN.0, "a-new-admin-password-5678");
    assert_eq!(
        switch(&bridge, new_admin, "ops", "disable", Some(&token)).await.0,
        403,
        "the old CSRF token is refused"
    );
    bridge.stop().await;
    // Without console.users the console does not exist.
    let plain = config(&mock).replace("console:\n  users:\n  - {name: alice, password: \"admin-password-1234\", role: admin}\n  - {name: viewer, password: \"viewer-password-1234\"}\n", "");
    assert!(!plain.contains("console:"), "{plain}");
    let bridge = Bridge::start(dir.path(), &plain).await;
    assert_eq!(get(&bridge, "/console", Some(ADMIN)).await.status(), 404);
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_disables_a_target_and_its_notifications_are_skipped_until_enabled_again() {
    let mock = mock().await;
    let dir = tempfile::tempdir().unwrap();
    let bridge = Bridge::start(dir.path(), &config(&mock)).await;
    let send = bridge.url("/dingtalk/ops/send");

    // A read-only user, a missing token, another origin: refused, and nothing changes.
    let token = csrf(&bridge, ADMIN).await;
    assert_eq!(switch(&bridge, VIEWER, "ops", "disable", Some(&csrf(&bridge, VIEWER).await)).await.0, 403);
    assert_eq!(switch(&bridge, ADMIN, "ops", "disable", None).await.0, 403);
    assert_eq!(switch(&bridge, ADMIN, "ops", "disable", Some("0".repeat(64).as_str())).await.0, 403);
    let cross = client()
        .post(bridge.url("/api/v1/targets/ops/disable"))
        .basic_auth(ADMIN.0, Some(ADMIN.1))
        .header("x-csrf-token", &token)
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(cross.status(), 403);
    assert_eq!(target(&targets(&bridge).await, "ops")["enabled"], true);

    let (status, answer) = switch(&bridge, ADMIN, "ops", "disable", Some(&token)).await;
    assert_eq!(status, 200, "{answer}");
    let ops = target(&targets(&bridge).await, "ops").clone();
    assert_eq!((ops["enabled"].as_bool(), ops["switch"]["by"].as_str()), (Some(false), Some("alice")));
    let (status, answer) = post(&send, "application/json", FIRING).await;
    assert_eq!(
        (status, answer["status"].as_str(), answer["reason"].as_str()),
        (200, Some("skipped"), Some("disabled"))
    );
    let m = bridge.metrics().await;
    assert_eq!(metric(&m, "dingtalk_bridge_target_enabled", &[("target", "ops")]), 0.0);
    assert_eq!(
        metric(&m, "dingtalk_bridge_notifications_skipped_total", &[("target", "ops"), ("reason", "disabled")]),
        1.0
    );
    bridge.stop().await;

    // The switch survives a restart.
    let bridge = Bridge::start(dir.path(), &config(&mock)).await;
    assert_eq!(target(&targets(&bridge).await, "ops")["enabled"], false);
    let send = bridge.url("/dingtalk/ops/send");
    assert_eq!(post(&send, "application/json", RESOLVED).await.1["status"], "skipped");
    let token = csrf(&bridge, ADMIN).await;
    assert_eq!(switch(&bridge, ADMIN, "ops", "enable", Some(&token)).await.0, 200);
    // Enabled again: what it skipped is not sent; what comes next is.
    let next = FIRING.replace("NodeDiskFull", "NodeDiskFullAgain");
    assert_eq!(post(&send, "application/json", next).await.1["status"], "accepted");
    wait_for("the next one", || async { !mock.posted().is_empty() }).await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let posted = mock.posted();
    assert_eq!(posted.len(), 1, "no flood of what was skipped");
    assert!(common::visible(&posted[0]).contains("NodeDiskFullAgain"));
    // Clearing hands the decision back to the configuration.
    assert_eq!(switch(&bridge, ADMIN, "ops", "clear", Some(&token)).await.0, 200);
    assert!(target(&targets(&bridge).await, "ops")["switch"].is_null());
    bridge.stop().await;
    let skipped = dingtalk_bridge::store::Store::open(
        &dir.path().join("outbox.sqlite3"),
        dingtalk_bridge::config::SyncMode::Normal,
    )
    .unwrap()
    .skipped("ops")
    .await
    .unwrap();
    assert_eq!(skipped.iter().filter(|s| s.reason == "disabled").count(), 2, "recorded as skipped: {skipped:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabling_gives_up_what_waits_so_enabling_floods_nothing() {
    let mock = mock().await;
    let dir = tempfile::tempdir().unwrap();
    let bridge = Bridge::start(dir.path(), &config(&mock)).await;
    // The dead robot's messages wait for retries.
    assert_eq!(post(&bridge.url("/dingtalk/dead/send"), "application/json", FIRING).await.0, 200);
    wait_for("a failed attempt", || async {
        metric(&bridge.metrics().await, "dingtalk_bridge_notification_requests_total", &[("target", "dead")]) >= 1.0
    })
    .await;
    let token = csrf(&bridge, ADMIN).await;
    let (status, answer) = switch(&bridge, ADMIN, "dead", "disable", Some(&token)).await;
    assert_eq!(status, 200);
    assert!(answer["result"].as_str().unwrap().contains("1 waiting message(s) given up"), "{answer}");
    let dead = target(&targets(&bridge).await, "dead").clone();
    assert_eq!(dead["queue_depth"], 0);
    assert_eq!(dead["last_failure"]["reason"], "disabled");
    assert!(dead["last_failure"]["hint"].as_str().unwrap().contains("switched off in the console"));
    // Its attempts got no answer at all: no HTTP status.
    let records: Value =
        serde_json::from_str(&get(&bridge, "/api/v1/records?target=dead", Some(VIEWER)).await.text().await.unwrap())
            .unwrap();
    let id = records["records"][0]["id"].as_i64().unwrap();
    let r: Value =
        serde_json::from_str(&get(&bridge, &format!("/api/v1/records/{id}"), Some(VIEWER)).await.text().await.unwrap())
            .unwrap();
    assert_eq!(
        (r["attempts"][0]["http_status"].is_null(), r["attempts"][0]["reason"].as_str()),
        (true, Some("connect"))
    );
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_are_locked_down_and_show_no_credential() {
    let mock = mock().await;
    let dir = tempfile::tempdir().unwrap();
    let bridge = Bridge::start(dir.path(), &config(&mock)).await;
    assert_eq!(post(&bridge.url("/dingtalk/ops/send"), "application/json", FIRING).await.0, 200);
    wait_for("a delivery", || async { mock.posted().len() == 1 }).await;
    let page = get(&bridge, "/console", Some(ADMIN)).await;
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"].to_str().unwrap().to_string();
    assert!(csp.contains("default-src 'none'") && !csp.contains("script-src"), "no script at all: {csp}");
    assert_eq!(page.headers()["x-frame-options"], "DENY");
    let html = page.text().await.unwrap();
    assert!(html.contains("<th>ops<br>") && html.contains("action=\"/console/targets/ops/disable\""), "{html}");
    let api = get(&bridge, "/api/v1/targets", Some(VIEWER)).await.text().await.unwrap();
    // The one delivery is the budget used in this window.
    let ops = target(&serde_json::from_str(&api).unwrap(), "ops").clone();
    let per_window = ops["rate_limit"]["messages"].as_u64().unwrap();
    assert_eq!(
        (ops["budget_used"].as_u64(), ops["budget_remaining"].as_u64()),
        (Some(1), Some(per_window - 1)),
        "{ops}"
    );
    assert!(html.contains(&format!("1 used, {} free of {per_window} per", per_window - 1)), "{html}");
    for secret in ["tok-console-robot", "SEC-console-signing-secret", "tok-dead-robot", ADMIN.1, VIEWER.1] {
        assert!(!html.contains(secret) && !api.contains(secret), "{secret} shown");
    }
    // The page's form: its CSRF field is what makes it work.
    let form = |csrf: &str| {
        client()
            .post(bridge.url("/console/targets/ops/disable"))
            .basic_auth(ADMIN.0, Some(ADMIN.1))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("csrf={csrf}"))
            .send()
    };
    assert_eq!(form("nope").await.unwrap().status(), 403);
    let token = html.split("name=\"csrf\" value=\"").nth(1).unwrap().split('"').next().unwrap().to_string();
    let done = form(&token).await.unwrap();
    assert_eq!((done.status().as_u16(), done.headers()["location"].to_str().unwrap()), (303, "/console"));
    assert_eq!(target(&targets(&bridge).await, "ops")["enabled"], false);
    // A viewer sees the page without the buttons.
    let viewer = get(&bridge, "/console", Some(VIEWER)).await.text().await.unwrap();
    assert!(viewer.contains("read only") && !viewer.contains("action=\"/console/targets"));
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_finds_the_failed_message_with_dingtalks_answer_and_the_hint() {
    let mock = mock().await;
    let dir = tempfile::tempdir().unwrap();
    let bridge = Bridge::start(dir.path(), &config(&mock)).await;
    let send = bridge.url("/dingtalk/ops/send");
    // A morning of alerts: two delivered, one refused for good, one skipped.
    assert_eq!(post(&send, "application/json", FIRING).await.0, 200);
    wait_for("the first", || async { mock.posted().len() == 1 }).await;
    mock.script(310000, "keywords not in content");
    let refused = FIRING.replace("NodeDiskFull", "KubePodCrashLooping");
    assert_eq!(post(&send, "application/json", refused).await.0, 200);
    wait_for("the refusal", || async {
        metric(
            &bridge.metrics().await,
            "dingtalk_bridge_notifications_failed_total",
            &[("target", "ops"), ("reason", "keyword")],
        ) == 1.0
    })
    .await;
    assert_eq!(post(&send, "application/json", RESOLVED).await.0, 200);
    wait_for("the resolved", || async { mock.posted().len() == 2 }).await;
    // Alertmanager's retry of the first: suppressed, and recorded as such.
    assert_eq!(post(&send, "application/json", FIRING).await.1["status"], "duplicate");
    let token = csrf(&bridge, ADMIN).await;
    assert_eq!(switch(&bridge, ADMIN, "ops", "disable", Some(&token)).await.0, 200);
    assert_eq!(post(&send, "application/json", FIRING.replace("NodeDiskFull", "Noisy")).await.1["status"], "skipped");

    let page = |q: &str| {
        let q = q.to_string();
        let bridge = &bridge;
        async move {
            let text = get(bridge, &format!("/api/v1/records?{q}"), Some(VIEWER)).await.text().await.unwrap();
            serde_json::from_str::<Value>(&text).unwrap()
        }
    };
    let all = page("").await;
    let states: Vec<&str> = all["records"].as_array().unwrap().iter().map(|r| r["state"].as_str().unwrap()).collect();
    assert_eq!(states, ["skipped", "suppressed", "delivered", "failed", "delivered"], "newest first");
    let suppressed = page("state=suppressed").await;
    assert_eq!(suppressed["records"][0]["reason"], "duplicate");
    assert_eq!(suppressed["records"][0]["alertname"], "NodeDiskFull");
    let failed = page("state=failed").await;
    let failed = &failed["records"][0];
    assert_eq!(
        (failed["reason"].as_str(), failed["alertname"].as_str()),
        (Some("keyword"), Some("KubePodCrashLooping"))
    );
    assert!(failed["title"].as_str().unwrap().contains("KubePodCrashLooping"), "{failed}");
    assert_eq!(page("q=KubePod").await["records"].as_array().unwrap().len(), 1, "text in the content");
    assert_eq!(
        page("alertname=Node&state=delivered").await["records"].as_array().unwrap().len(),
        2,
        "firing and resolved"
    );
    assert_eq!(page("target=dead").await["records"].as_array().unwrap().len(), 0);
    // Pages of one, following the cursor, see each record once.
    let (mut seen, mut cursor) = (vec![], String::new());
    loop {
        let p = page(&format!("limit=1{cursor}")).await;
        for r in p["records"].as_array().unwrap() {
            seen.push(format!("{}{}", r["kind"], r["id"]));
        }
        match p["next"].as_str() {
            Some(n) => cursor = format!("&before={n}"),
            None => break,
        }
    }
    assert_eq!(seen.len(), 5, "{seen:?}");

    // The record: DingTalk's answer in each attempt, the hint, the exact body.
    let id = failed["id"].as_i64().unwrap();
    let r: Value =
        serde_json::from_str(&get(&bridge, &format!("/api/v1/records/{id}"), Some(VIEWER)).await.text().await.unwrap())
            .unwrap();
    let attempt = &r["attempts"][0];
    assert_eq!((attempt["outcome"].as_str(), attempt["reason"].as_str()), (Some("failed"), Some("keyword")));
    assert!(attempt["detail"].as_str().unwrap().contains("310000"), "{attempt}");
    assert_eq!(attempt["http_status"], 200, "DingTalk refuses with HTTP 200 and an errcode");
    assert!(r["hint"].as_str().unwrap().contains("keyword"), "{r}");
    assert_eq!(r["body"]["msgtype"], "markdown");
    let html = get(&bridge, &format!("/console/records/{id}"), Some(VIEWER)).await.text().await.unwrap();
    assert!(
        html.contains("310000") && html.contains("keywords not in content") && html.contains("&quot;msgtype&quot;"),
        "{html}"
    );
    let list = get(&bridge, "/console/records?state=failed", Some(VIEWER)).await.text().await.unwrap();
    assert!(list.contains(&format!("href=\"/console/records/{id}\"")), "{list}");
    for secret in ["tok-console-robot", "SEC-console-signing-secret"] {
        assert!(!html.contains(secret) && !list.contains(secret));
    }
    assert_eq!(get(&bridge, "/api/v1/records?state=lost", Some(VIEWER)).await.status(), 400);
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_template_is_previewed_without_sending_and_a_test_message_goes_the_real_way() {
    let mock = mock().await;
    let dir = tempfile::tempdir().unwrap();
    let bridge = Bridge::start(dir.path(), &config(&mock)).await;
    // Preview a pasted payload: the messages, their size against the limit, the keyword; nothing sent.
    let resp = client()
        .post(bridge.url("/api/v1/preview"))
        .basic_auth(VIEWER.0, Some(VIEWER.1))
        .body(serde_json::json!({"target": "ops", "payload": FIRING}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let v: Value = serde_json::from_str(&resp.text().await.unwrap()).unwrap();
    let m = &v["messages"][0];
    assert!(m["title"].as_str().unwrap().contains("NodeDiskFull"), "{v}");
    assert_eq!((m["limit"].as_u64(), m["keyword_present"].as_bool()), (Some(20_000), Some(true)));
    assert!(m["bytes"].as_u64().unwrap() < 20_000);
    let form = client()
        .post(bridge.url("/console/preview"))
        .basic_auth(VIEWER.0, Some(VIEWER.1))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("target=ops&sample=&payload=")
        .send()
        .await
        .unwrap();
    assert_eq!(form.status(), 200);
    let html = form.text().await.unwrap();
    assert!(
        html.contains("class=\"banner\"") && html.contains("/console/preview.css") && !html.contains("<style>"),
        "{html}"
    );
    let bad = client()
        .post(bridge.url("/api/v1/preview"))
        .basic_auth(VIEWER.0, Some(VIEWER.1))
        .body(serde_json::json!({"target": "ops", "payload": "{\"alerts\": 3}"}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400, "a payload the intake would refuse is named");
    assert!(mock.posted().is_empty(), "a preview sends nothing");

    // A test send: admin only, with the token; it goes through the outbox and is recorded and counted.
    assert_eq!(switch(&bridge, VIEWER, "ops", "test", Some(&csrf(&bridge, VIEWER).await)).await.0, 403);
    let (status, answer) = switch(&bridge, ADMIN, "ops", "test", Some(&csrf(&bridge, ADMIN).await)).await;
    assert_eq!(status, 200, "{answer}");
    wait_for("the test message", || async { mock.posted().len() == 1 }).await;
    let text = common::visible(&mock.posted()[0]);
    assert!(text.contains("BridgeTestMessage") && text.contains("TEST message") && text.contains("alice"), "{text}");
    let m = bridge.metrics().await;
    assert_eq!(metric(&m, "dingtalk_bridge_notifications_total", &[("target", "ops")]), 1.0);
    let records: Value = serde_json::from_str(
        &get(&bridge, "/api/v1/records?alertname=BridgeTest", Some(VIEWER)).await.text().await.unwrap(),
    )
    .unwrap();
    assert_eq!(records["records"][0]["state"], "delivered");
    bridge.stop().await;
}
