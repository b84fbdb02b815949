//! The real binary: SIGKILL while messages are queued and while a send is in flight, restart, and every
//! message reaches the group exactly once; SIGTERM drains and exits 0; no secret ever reaches the logs;
//! the command line's check-config and render.

mod common;

use std::time::Duration;

use common::mock_dingtalk::{Limits, MockDingTalk, Mode, RobotSpec};
use common::{BinaryBridge, post, wait_for};
use serde_json::Value;

const TOKEN: &str = "tok-4f1e9a7c2b";
const SECRET: &str = "SEC7d2c9b1e4f6a8d0c3b5e7f9a1c2d4e6f8a0b1c3d5e7f9";

fn write_config(dir: &std::path::Path, mock: &MockDingTalk) -> std::path::PathBuf {
    let path = dir.join("dingtalk-bridge.yaml");
    std::fs::write(dir.join("robot-url"), mock.url(TOKEN)).unwrap();
    std::fs::write(dir.join("robot-secret"), format!("{SECRET}\n")).unwrap();
    std::fs::write(
        &path,
        r#"
listen: "127.0.0.1:0"
storage: {path: data/outbox.sqlite3}
server: {shutdown_grace: 1s}
delivery: {backoff_initial: 50ms, backoff_max: 100ms, request_timeout: 30s}
targets:
  ops:
    url_file: robot-url
    secret_file: robot-secret
    keyword: Alert
"#,
    )
    .unwrap();
    path
}

fn payload(i: usize) -> String {
    common::group(i)
}

fn assert_no_secrets(logs: &[String]) {
    assert!(!logs.is_empty());
    for line in logs {
        assert!(
            !line.contains(TOKEN) && !line.contains(SECRET) && !line.contains("sign="),
            "secret in log line: {line}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_while_queued_and_in_flight_loses_nothing_and_duplicates_nothing() {
    let robot = RobotSpec { token: TOKEN.into(), secret: Some(SECRET.into()), keywords: vec!["Alert".into()] };
    let mock = MockDingTalk::start(vec![robot], Limits::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &mock);

    // 1. DingTalk unreachable: five notifications accepted, then the bridge is killed.
    mock.set_mode(Mode::Down);
    let bridge = BinaryBridge::start(&config);
    for i in 0..5 {
        let (status, body) = post(&bridge.url("/dingtalk/ops/send"), "application/json", payload(i)).await;
        assert_eq!(status, 200, "{body}");
    }
    wait_for("failed attempts", || async { mock.requests() >= 2 }).await;
    let mut logs = bridge.kill();

    // 2. DingTalk posts the first message but its answer never comes back before the kill.
    mock.set_mode(Mode::SlowAnswer(Duration::from_secs(30)));
    let bridge = BinaryBridge::start(&config);
    wait_for("the first message to be posted", || async { mock.posted().len() == 1 }).await;
    logs.extend(bridge.kill());

    // 3. Back to normal: the first message is resent with its msgUuid (DingTalk keeps one copy), the rest follow.
    mock.set_mode(Mode::Normal);
    let bridge = BinaryBridge::start(&config);
    wait_for("all five in the group", || async { mock.posted().len() == 5 }).await;
    wait_for("the resend of the first", || async { mock.duplicate_uuids() >= 1 }).await;
    let titles: Vec<String> =
        mock.posted().iter().map(|p| p.body["markdown"]["title"].as_str().unwrap().to_string()).collect();
    let expected: Vec<String> = (0..5).map(|i| format!("🟠 FIRING 3 · Incident-{i:03} · warning · Alert")).collect();
    assert_eq!(titles, expected, "each exactly once, in the order accepted");
    let (status, more) = bridge.terminate();
    assert!(status.success(), "SIGTERM exits 0: {status:?}");
    logs.extend(more);
    assert!(logs.iter().any(|l| l.contains("\"reason\":\"network\"")), "the outage was logged with its reason");
    assert_no_secrets(&logs);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permanent_failures_are_logged_with_reason_and_hint_but_no_secret() {
    let robot = RobotSpec { token: TOKEN.into(), secret: Some(SECRET.into()), keywords: vec!["Alert".into()] };
    let mock = MockDingTalk::start(vec![robot], Limits::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &mock);
    mock.script(400102, "机器人已停用");
    let bridge = BinaryBridge::start(&config);
    post(&bridge.url("/dingtalk/ops/send"), "application/json", payload(0)).await;
    wait_for("the give-up log line", || async {
        bridge.logs.lock().unwrap().iter().any(|l| l.contains("message given up"))
    })
    .await;
    let logs = bridge.kill();
    let line = logs.iter().find(|l| l.contains("message given up")).unwrap();
    let v: Value = serde_json::from_str(line).unwrap();
    assert_eq!(v["reason"], "robot_disabled");
    assert!(v["hint"].as_str().unwrap().contains("disabled"), "{line}");
    assert_no_secrets(&logs);
}

fn cli(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_dingtalk-bridge")).args(args).output().unwrap()
}

#[test]
fn check_config_names_file_key_and_problem() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.yaml");
    std::fs::write(
        &path,
        "targets:\n  ops:\n    url: \"https://oapi.dingtalk.com/robot/send?access_token=${NO_SUCH_VAR_X}\"\n",
    )
    .unwrap();
    let out = cli(&["check-config", "--config", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("c.yaml: targets.ops.url: environment variable NO_SUCH_VAR_X is not set"), "{err}");

    std::fs::write(&path, "targets:\n  ops:\n    dry_run: true\n    keyword: Alert\n    mentoin: {}\n").unwrap();
    let out = cli(&["check-config", "--config", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown field `mentoin`"));

    std::fs::create_dir_all(dir.path().join("t/quiet")).unwrap();
    std::fs::write(dir.path().join("t/quiet/markdown.hbs"), "{{groupName}} is {{status}}").unwrap();
    std::fs::write(
        &path,
        "templates_dir: t\ntargets:\n  ops:\n    dry_run: true\n    keyword: Alert\n    template: quiet\n",
    )
    .unwrap();
    let out = cli(&["check-config", "--config", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("targets.ops.template: template set \"quiet\" leaves out the keyword \"Alert\""), "{err}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("OK (1 targets"));

    std::fs::write(dir.path().join("t/quiet/markdown.hbs"), "{{commonLabels.team}}").unwrap();
    let out = cli(&["check-config", "--config", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("targets.ops.template: fails on the firing sample payload") && err.contains("commonLabels.team"),
        "{err}"
    );
}

#[test]
fn render_prints_the_exact_bodies() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.yaml");
    std::fs::write(&path, "targets:\n  ops:\n    dry_run: true\n    keyword: Alert\n    msgtype: text\n").unwrap();
    let payload = dir.path().join("p.json");
    std::fs::write(&payload, common::RESOLVED).unwrap();
    let out = cli(&["render", "--config", path.to_str().unwrap(), "--target", "ops", payload.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let body: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(body["msgtype"], "text");
    assert!(body["text"]["content"].as_str().unwrap().starts_with("✅ RESOLVED 3: NodeDiskFull"));
    assert!(String::from_utf8_lossy(&out.stderr).contains(&format!("# {} bytes", stdout.trim().len())));

    let out = cli(&["render", "--config", path.to_str().unwrap(), "--target", "nope"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no target \"nope\"; configured: ops"));
}

#[test]
fn render_shows_the_exact_feishu_card_and_wecom_sizes_without_a_credential() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.yaml");
    std::fs::write(
        &path,
        r#"targets:
  ops-feishu:
    type: feishu
    url: "https://open.feishu.cn/open-apis/bot/v2/hook/hook-token-abc"
    secret: "feishu-secret-xyz"
    keyword: Alert
    mention: {user_ids: [ou_oncall]}
  ops-wecom:
    type: wecom
    url: "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=wecom-key-abc"
"#,
    )
    .unwrap();
    let config = path.to_str().unwrap();
    let out = cli(&["render", "--config", config, "--target", "ops-feishu", "--at", "2026-11-23T08:00:00Z"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (stdout, stderr) = (String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap());
    let card: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(card["msg_type"], "interactive");
    assert_eq!(card["card"]["header"]["template"], "orange");
    assert_eq!(card["card"]["header"]["title"]["content"], "🟠 FIRING 3 · NodeDiskFull · warning · Alert");
    assert!(card["card"]["elements"][0]["content"].as_str().unwrap().ends_with("<at id=ou_oncall></at> Alert"));
    // As it would be sent at --at: signed then, the signature itself redacted.
    assert_eq!(card["timestamp"], "1795420800");
    assert_eq!(card["sign"], "<redacted>");
    for secret in ["hook-token-abc", "feishu-secret-xyz"] {
        assert!(!stdout.contains(secret) && !stderr.contains(secret), "{secret}");
    }
    assert!(stderr.contains(&format!("# {} bytes", stdout.trim().len())), "{stderr}");

    let out = cli(&["render", "--config", config, "--target", "ops-wecom"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (stdout, stderr) = (String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap());
    let body: Value = serde_json::from_str(stdout.trim()).unwrap();
    let content = body["markdown"]["content"].as_str().unwrap();
    assert!(stderr.contains(&format!("{} of 4096 counted by WeCom", content.len())), "{stderr}");
    assert!(!stdout.contains("wecom-key-abc") && !stderr.contains("wecom-key-abc"));
}

#[test]
fn render_and_preview_show_each_app_robot_call_and_whom_it_reaches() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.yaml");
    std::fs::write(
        &path,
        r#"dingtalk_apps:
  corp: {client_id: dingclient-abc, client_secret: "app-secret-xyz", robot_code: dingrobot}
targets:
  oncall-direct:
    type: dingtalk_app
    app: corp
    users: [u1, u2, u3]
    conversations: ["cidGroup=="]
    batch_size: 2
"#,
    )
    .unwrap();
    let config = path.to_str().unwrap();
    let out = cli(&["render", "--config", config, "--target", "oncall-direct"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (stdout, stderr) = (String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap());
    let calls: Vec<Value> = stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(calls.len(), 3, "two calls of at most 2 users, one to the group");
    assert_eq!(calls[0]["userIds"], serde_json::json!(["u1", "u2"]));
    assert_eq!(calls[1]["userIds"], serde_json::json!(["u3"]));
    assert_eq!(calls[2]["openConversationId"], "cidGroup==");
    for c in &calls {
        assert_eq!(c["robotCode"], "dingrobot");
        assert_eq!(c["msgKey"], "sampleMarkdown");
        let param: Value = serde_json::from_str(c["msgParam"].as_str().unwrap()).unwrap();
        assert!(param["title"].as_str().unwrap().contains("NodeDiskFull"));
    }
    assert!(stderr.contains("# to 2 users (u1, u2) by POST /v1.0/robot/oToMessages/batchSend"), "{stderr}");
    assert!(stderr.contains("# to the group cidGroup== by POST /v1.0/robot/groupMessages/send"), "{stderr}");
    assert!(!stdout.contains("app-secret-xyz") && !stderr.contains("app-secret-xyz"));

    let page = dir.path().join("p.html");
    let out = cli(&["preview", "--config", config, "--target", "oncall-direct", "-o", page.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(html.contains("to 1 user (u3) by POST"), "whom each message reaches");
    assert!(html.contains("class=\"bubble\"><h4>"), "the messages are drawn, markdown and all");
    assert!(!html.contains("app-secret-xyz"));
}

#[test]
fn render_shows_whom_the_rules_ring_and_where_a_router_sends() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.yaml");
    std::fs::write(
        &path,
        r#"people:
  alice: {dingtalk_mobile: "13800000001"}
  bob: {wecom_user_id: bob}
targets:
  ops:
    dry_run: true
    mention: {rules: [{from_label: owner}, {people: [bob]}]}
  firing-only: {dry_run: true, send_on: [firing]}
  by-team:
    route: {by_label: team, targets: {payments: ops}}
"#,
    )
    .unwrap();
    let payload = dir.path().join("p.json");
    let mut v: Value = serde_json::from_str(include_str!("fixtures/alertmanager-0.25-firing.json")).unwrap();
    v["alerts"][0]["labels"]["team"] = serde_json::json!("payments");
    v["alerts"][0]["labels"]["owner"] = serde_json::json!("alice");
    v["alerts"][1]["labels"]["owner"] = serde_json::json!("mallory");
    std::fs::write(&payload, v.to_string()).unwrap();
    let (config, payload) = (path.to_str().unwrap(), payload.to_str().unwrap());

    let out = cli(&["render", "--config", config, "--target", "ops", payload]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (stdout, stderr) = (String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap());
    let body: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(body["at"]["atMobiles"], serde_json::json!(["13800000001"]));
    assert!(stderr.contains("# rings 1 person"), "{stderr}");
    assert!(stderr.contains("# not rung, named in the alerts but not in the people directory: mallory"), "{stderr}");
    assert!(stderr.contains("# not rung, without a DingTalk identifier in the people directory: bob"), "{stderr}");

    // A router renders what each of its targets would get, and what it has no target for.
    let out = cli(&["render", "--config", config, "--target", "by-team", payload]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (stdout, stderr) = (String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap());
    assert_eq!(stdout.lines().count(), 1, "one message for ops");
    assert!(stderr.contains("# routed to ops (1 alert(s))"), "{stderr}");
    assert!(stderr.contains("# by-team: skipped (no_route): 2 alert(s), no message"), "{stderr}");

    let resolved = dir.path().join("r.json");
    std::fs::write(&resolved, include_str!("fixtures/alertmanager-0.25-resolved.json")).unwrap();
    let out = cli(&["render", "--config", config, "--target", "firing-only", resolved.to_str().unwrap()]);
    assert!(out.status.success());
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("# firing-only: skipped (send_on)"));
}

#[test]
fn version_and_bad_config_exit_codes() {
    let out = cli(&["--version"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), format!("dingtalk-bridge {}", env!("CARGO_PKG_VERSION")));
    let out = cli(&["--config", "/nonexistent/dingtalk-bridge.yaml"]);
    assert_eq!(out.status.code(), Some(64), "running with a config that cannot load exits 64");
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/dingtalk-bridge.yaml: cannot read"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_log_lines_cannot_be_forged_or_made_huge() {
    let robot = RobotSpec { token: TOKEN.into(), secret: Some(SECRET.into()), keywords: vec!["Alert".into()] };
    let mock = MockDingTalk::start(vec![robot], Limits::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &mock);
    // A 3 MB group key passes the payload limits only when they are raised; the log must hold anyway.
    let text = std::fs::read_to_string(&config).unwrap();
    let text = text
        .replace("server: {shutdown_grace: 1s}", "server: {shutdown_grace: 1s, limits: {max_value_bytes: 4000000}}");
    std::fs::write(&config, text).unwrap();
    let bridge = BinaryBridge::start_with(&config, &[], "plain");
    let forged_line = "2026-11-23T00:00:00.000000Z ERROR message given up target=ops reason=FORGED";
    let mut forged: Value = serde_json::from_str(common::FIRING).unwrap();
    forged["groupKey"] = Value::String(format!("{{}}:{{alertname=\"X\"}}\n{forged_line}"));
    let mut huge: Value = serde_json::from_str(&payload(7)).unwrap();
    huge["groupKey"] = Value::String("k".repeat(3 << 20));
    for body in [forged, huge] {
        let (status, answer) = post(&bridge.url("/dingtalk/ops/send"), "application/json", body.to_string()).await;
        assert_eq!(status, 200, "{answer}");
    }
    wait_for("both delivered", || async { mock.posted().len() == 2 }).await;
    let logs = bridge.kill();
    let accepted: Vec<&String> = logs.iter().filter(|l| l.contains("notification accepted")).collect();
    assert_eq!(accepted.len(), 2, "{logs:#?}");
    assert!(accepted[0].contains(&format!("\\n{forged_line}")), "the newline is escaped in place: {}", accepted[0]);
    for line in &logs {
        assert!(!line.starts_with(forged_line), "forged line: {line}");
        assert!(
            line.starts_with("20") && line.as_bytes()[4] == b'-',
            "every line starts with its own timestamp: {line}"
        );
        assert!(line.len() < 8 * 1024, "a {} byte line: {}…", line.len(), &line[..200]);
    }
    assert!(accepted[1].contains("more bytes cut]"), "{}", &accepted[1][..300]);
}
