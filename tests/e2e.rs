//! End to end with the real tools from Debian's packages: Prometheus Alertmanager (prometheus-alertmanager)
//! posting to the real bridge binary, which delivers to the protocol-enforcing mock DingTalk; and
//! `promtool check metrics` (prometheus) on the bridge's /metrics. Ignored on machines without them;
//! `.ci/run` installs them and runs these with `--include-ignored`.

mod common;

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::mock_dingtalk::{Limits, MockDingTalk, RobotSpec};
use common::{BinaryBridge, metric, wait_for};
use serde_json::json;

const TOKEN: &str = "tok-e2e-8c1d";
const SECRET: &str = "SECe2e0f1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f7";

fn tool(name: &str) -> String {
    let env = format!("{}_BIN", name.to_uppercase().replace('-', "_"));
    std::env::var(env).unwrap_or_else(|_| format!("/usr/bin/{name}"))
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

struct Alertmanager {
    child: Child,
    url: String,
}

/// Alertmanager's quick route (grouped by alertname, 1 s group wait) to one receiver, `bridge`, that posts
/// each group to every one of `targets` on the bridge at `bridge_url`.
fn one_receiver(bridge_url: &str, targets: &[&str], group_interval: &str) -> String {
    let hooks: String =
        targets.iter().map(|t| format!("  - url: {bridge_url}/dingtalk/{t}/send\n    send_resolved: true\n")).collect();
    format!(
        "route:\n  receiver: bridge\n  group_by: [alertname]\n  group_wait: 1s\n  group_interval: {group_interval}\n  repeat_interval: 1h\nreceivers:\n- name: bridge\n  webhook_configs:\n{hooks}"
    )
}

impl Alertmanager {
    fn start(dir: &Path, bridge_url: &str) -> Alertmanager {
        Self::start_with(dir, bridge_url, "2s", &[])
    }

    /// `cluster`: extra flags for an HA peer. Each peer gets its own config and storage under `dir`.
    fn start_with(dir: &Path, bridge_url: &str, group_interval: &str, cluster: &[String]) -> Alertmanager {
        Self::start_config(dir, &one_receiver(bridge_url, &["ops"], group_interval), cluster)
    }

    /// An Alertmanager with this configuration.
    fn start_config(dir: &Path, yaml: &str, cluster: &[String]) -> Alertmanager {
        let port = free_port();
        let dir = dir.join(format!("am-{port}"));
        std::fs::create_dir_all(&dir).unwrap();
        let config = dir.join("alertmanager.yml");
        std::fs::write(&config, yaml).unwrap();
        let child = Command::new(tool("prometheus-alertmanager"))
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.path={}", dir.join("am-data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg(format!("--web.external-url=http://127.0.0.1:{port}"))
            .args(if cluster.is_empty() { vec!["--cluster.listen-address=".to_string()] } else { cluster.to_vec() })
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus-alertmanager starts (Debian package prometheus-alertmanager)");
        Alertmanager { child, url: format!("http://127.0.0.1:{port}") }
    }

    async fn post_alert(&self, ends_at: Option<chrono::DateTime<chrono::Utc>>) {
        self.post_named("NodeDiskFull", ends_at).await
    }

    async fn post_named(&self, name: &str, ends_at: Option<chrono::DateTime<chrono::Utc>>) {
        self.post_labelled(name, &[("severity", "critical")], ends_at).await
    }

    /// An alert named `name` on node1 with these labels (besides alertname and instance).
    async fn post_labelled(&self, name: &str, labels: &[(&str, &str)], ends_at: Option<chrono::DateTime<chrono::Utc>>) {
        let mut alert = json!({
            "labels": {"alertname": name, "instance": "node1:9100"},
            "annotations": {"summary": "Disk almost full on node1", "runbook_url": "https://runbooks.example.com/NodeDiskFull"},
            "startsAt": (chrono::Utc::now() - chrono::Duration::minutes(3)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "generatorURL": "http://prometheus.example.com:9090/graph",
        });
        for (k, v) in labels {
            alert["labels"][*k] = json!(v);
        }
        if let Some(end) = ends_at {
            alert["endsAt"] = json!(end.to_rfc3339());
        }
        let resp = reqwest::Client::new()
            .post(format!("{}/api/v2/alerts", self.url))
            .header("content-type", "application/json")
            .body(json!([alert]).to_string())
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success(), "Alertmanager took the alert: {}", resp.status());
    }
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn bridge_config(dir: &Path, mock: &MockDingTalk) -> std::path::PathBuf {
    bridge_config_on(dir, mock, "127.0.0.1:0")
}

fn bridge_config_on(dir: &Path, mock: &MockDingTalk, listen: &str) -> std::path::PathBuf {
    let path = dir.join("bridge.yaml");
    std::fs::write(
        &path,
        format!(
            r#"
listen: "{listen}"
storage: {{path: outbox.sqlite3}}
timezone: Asia/Shanghai
targets:
  ops:
    url: "{url}"
    secret: "{SECRET}"
    keyword: Alert
    mention: {{mobiles: ["13800000000"]}}
"#,
            url = mock.url(TOKEN)
        ),
    )
    .unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs /usr/bin/prometheus-alertmanager (Debian package prometheus-alertmanager); .ci/run runs it"]
async fn real_alertmanager_firing_then_resolved_reaches_dingtalk_signed_with_keyword() {
    let robot = RobotSpec { token: TOKEN.into(), secret: Some(SECRET.into()), keywords: vec!["Alert".into()] };
    let mock = MockDingTalk::start(vec![robot], Limits::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let bridge = BinaryBridge::start(&bridge_config(dir.path(), &mock));
    let am = Alertmanager::start(dir.path(), &format!("http://{}", bridge.addr));
    wait_for("Alertmanager to be ready", || async {
        reqwest::get(format!("{}/-/ready", am.url)).await.is_ok_and(|r| r.status().is_success())
    })
    .await;

    am.post_alert(None).await;
    wait_for("the firing message", || async { !mock.posted().is_empty() }).await;
    am.post_alert(Some(chrono::Utc::now())).await;
    wait_for("the resolved message", || async { mock.posted().len() >= 2 }).await;

    let posted = mock.posted();
    assert_eq!(posted.len(), 2, "{posted:#?}");
    assert_eq!(posted[0].body["markdown"]["title"], "🔴 FIRING 1 · NodeDiskFull · critical · node1:9100 · Alert");
    assert_eq!(posted[1].body["markdown"]["title"], "✅ RESOLVED 1 · NodeDiskFull · critical · node1:9100 · Alert");
    let firing_text = posted[0].body["markdown"]["text"].as_str().unwrap();
    assert!(firing_text.contains("Disk almost full on node1"), "{firing_text}");
    assert!(
        firing_text.contains(&format!("[Silence]({}/#/silences/new?filter=", am.url)),
        "externalURL links back: {firing_text}"
    );
    assert!(firing_text.contains("[Runbook](https://runbooks.example.com/NodeDiskFull)"), "{firing_text}");
    assert_eq!(posted[0].highlighted, vec!["13800000000"]);
    // The mock checked signature, timestamp window and keyword before posting either.
    assert!(mock.answered().iter().all(|a| a.errcode == 0), "{:?}", mock.answered());

    let m = reqwest::get(bridge.url("/metrics")).await.unwrap().text().await.unwrap();
    assert_eq!(metric(&m, "dingtalk_bridge_notifications_total", &[("target", "ops")]), 2.0);
    assert_eq!(metric(&m, "dingtalk_bridge_webhook_requests_total", &[("target", "ops"), ("code", "200")]), 2.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs /usr/bin/promtool (Debian package prometheus); .ci/run runs it"]
async fn promtool_finds_nothing_to_complain_about_in_metrics() {
    let robot = RobotSpec { token: TOKEN.into(), secret: Some(SECRET.into()), keywords: vec!["Alert".into()] };
    let mock = MockDingTalk::start(vec![robot], Limits::default()).await;
    mock.script(400102, "机器人已停用");
    let dir = tempfile::tempdir().unwrap();
    let bridge = BinaryBridge::start(&bridge_config(dir.path(), &mock));
    for payload in [common::FIRING, common::RESOLVED] {
        let (s, _) = common::post(&bridge.url("/dingtalk/ops/send"), "application/json", payload).await;
        assert_eq!(s, 200);
    }
    // A repeat within the dedup window moves the suppression counter too.
    assert_eq!(
        common::post(&bridge.url("/dingtalk/ops/send"), "application/json", common::FIRING).await.1["status"],
        "duplicate"
    );
    common::post(&bridge.url("/dingtalk/ops/send"), "application/json", "{}").await;
    wait_for("one delivered, one failed", || async { mock.posted().len() == 1 && mock.answered().len() == 2 }).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let text = reqwest::get(bridge.url("/metrics")).await.unwrap().text().await.unwrap();
    assert!(
        text.contains("dingtalk_bridge_notifications_failed_total{reason=\"robot_disabled\",target=\"ops\"} 1"),
        "{text}"
    );

    let mut child = Command::new(tool("promtool"))
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool starts (Debian package prometheus)");
    use std::io::Write;
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let complaints = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && complaints.trim().is_empty(), "promtool check metrics: {complaints}");
}

async fn ready(am: &Alertmanager) {
    wait_for("Alertmanager to be ready", || async {
        reqwest::get(format!("{}/-/ready", am.url)).await.is_ok_and(|r| r.status().is_success())
    })
    .await;
}

fn robot() -> RobotSpec {
    RobotSpec { token: TOKEN.into(), secret: Some(SECRET.into()), keywords: vec!["Alert".into()] }
}

fn titles(mock: &MockDingTalk) -> Vec<String> {
    mock.posted().iter().map(|p| p.body["markdown"]["title"].as_str().unwrap_or_default().to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs /usr/bin/prometheus-alertmanager (Debian package prometheus-alertmanager); .ci/run runs it"]
async fn several_groups_and_a_bridge_that_is_briefly_unavailable() {
    let mock = MockDingTalk::start(vec![robot()], Limits::default()).await;
    let dir = tempfile::tempdir().unwrap();
    // A fixed port, so the restarted bridge is where Alertmanager keeps retrying.
    let listen = format!("127.0.0.1:{}", free_port());
    let config = bridge_config_on(dir.path(), &mock, &listen);
    let bridge = BinaryBridge::start(&config);
    let am = Alertmanager::start_with(dir.path(), &format!("http://{listen}"), "30s", &[]);
    ready(&am).await;

    for name in ["DiskFull", "HighLatency", "PodCrashLooping"] {
        am.post_named(name, None).await;
    }
    wait_for("three groups", || async { mock.posted().len() == 3 }).await;
    let mut got = titles(&mock);
    got.sort();
    assert_eq!(
        got,
        ["DiskFull", "HighLatency", "PodCrashLooping"]
            .map(|n| format!("🔴 FIRING 1 · {n} · critical · node1:9100 · Alert"))
    );

    // The bridge goes away; a new group fires; Alertmanager's retries reach the bridge once it is back.
    bridge.kill();
    am.post_named("NodeDown", None).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let bridge = BinaryBridge::start(&config);
    wait_for("the retried notification", || async {
        titles(&mock).contains(&"🔴 FIRING 1 · NodeDown · critical · node1:9100 · Alert".to_string())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(mock.posted().len(), 4, "{:?}", titles(&mock));
    drop(bridge);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs /usr/bin/prometheus-alertmanager (Debian package prometheus-alertmanager); .ci/run runs it"]
async fn an_ha_pair_of_alertmanagers_gets_each_notification_to_dingtalk_once() {
    let mock = MockDingTalk::start(vec![robot()], Limits::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let bridge = BinaryBridge::start(&bridge_config(dir.path(), &mock));
    let (p1, p2) = (free_port(), free_port());
    let peer = |me: u16, other: u16| {
        vec![
            format!("--cluster.listen-address=127.0.0.1:{me}"),
            format!("--cluster.advertise-address=127.0.0.1:{me}"),
            format!("--cluster.peer=127.0.0.1:{other}"),
            "--cluster.peer-timeout=2s".to_string(),
            "--cluster.gossip-interval=100ms".to_string(),
            "--cluster.pushpull-interval=1s".to_string(),
        ]
    };
    let url = format!("http://{}", bridge.addr);
    let am1 = Alertmanager::start_with(dir.path(), &url, "2s", &peer(p1, p2));
    let am2 = Alertmanager::start_with(dir.path(), &url, "2s", &peer(p2, p1));
    ready(&am1).await;
    ready(&am2).await;
    // Prometheus sends every alert to every Alertmanager.
    for am in [&am1, &am2] {
        am.post_alert(None).await;
    }
    wait_for("the firing message", || async { !mock.posted().is_empty() }).await;
    // Long enough for the second peer (peer-timeout 2s) to have sent, had it not deduplicated.
    tokio::time::sleep(Duration::from_secs(5)).await;
    for am in [&am1, &am2] {
        am.post_alert(Some(chrono::Utc::now())).await;
    }
    wait_for("the resolved message", || async { mock.posted().len() >= 2 }).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        titles(&mock),
        vec![
            "🔴 FIRING 1 · NodeDiskFull · critical · node1:9100 · Alert",
            "✅ RESOLVED 1 · NodeDiskFull · critical · node1:9100 · Alert"
        ],
        "each once"
    );
    let m = reqwest::get(bridge.url("/metrics")).await.unwrap().text().await.unwrap();
    let accepted = metric(&m, "dingtalk_bridge_webhook_requests_total", &[("target", "ops"), ("code", "200")]);
    let suppressed =
        metric(&m, "dingtalk_bridge_notifications_suppressed_total", &[("target", "ops"), ("reason", "duplicate")]);
    // Whichever of Alertmanager's gossip and the bridge's duplicate check caught the second peer's copy.
    assert_eq!(accepted - suppressed, 2.0, "accepted {accepted}, suppressed {suppressed}");
}

/// One alert group, four receivers of one bridge, four chat tools: each mock gets its own format within its
/// own rules (signature, keyword, mention), firing and then resolved.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs /usr/bin/prometheus-alertmanager (Debian package prometheus-alertmanager); .ci/run runs it"]
async fn one_alert_group_reaches_dingtalk_feishu_lark_and_wecom_each_within_its_rules() {
    use common::mock_feishu::{BotSpec, MockFeishu};
    use common::mock_wecom::MockWeCom;
    let dingtalk = MockDingTalk::start(vec![robot()], Limits::default()).await;
    let feishu = MockFeishu::start(vec![
        BotSpec { token: "hook-fs".into(), secret: Some("fs-secret".into()), keywords: vec!["Alert".into()] },
        BotSpec { token: "hook-lark".into(), secret: Some("lark-secret".into()), keywords: vec!["Alert".into()] },
    ])
    .await;
    let wecom = MockWeCom::start(vec!["wecom-key".into()]).await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("bridge.yaml");
    std::fs::write(
        &config,
        format!(
            r#"
listen: "127.0.0.1:0"
storage: {{path: outbox.sqlite3}}
timezone: Asia/Shanghai
targets:
  ops:
    url: "{dt}"
    secret: "{SECRET}"
    keyword: Alert
    mention: {{mobiles: ["13800000000"]}}
  ops-feishu:
    type: feishu
    url: "{fs}"
    secret: fs-secret
    keyword: Alert
    mention: {{user_ids: [ou_oncall]}}
  ops-lark:
    type: lark
    url: "{lark}"
    secret: lark-secret
    keyword: Alert
  ops-wecom:
    type: wecom
    url: "{wc}"
    keyword: Alert
    mention: {{user_ids: [zhangsan]}}
"#,
            dt = dingtalk.url(TOKEN),
            fs = feishu.url("hook-fs"),
            lark = feishu.url("hook-lark"),
            wc = wecom.url("wecom-key"),
        ),
    )
    .unwrap();
    let bridge = BinaryBridge::start(&config);
    let url = format!("http://{}", bridge.addr);
    let receivers: String = ["ops", "ops-feishu", "ops-lark", "ops-wecom"]
        .iter()
        .map(|t| {
            format!("- name: {t}\n  webhook_configs:\n  - url: {url}/dingtalk/{t}/send\n    send_resolved: true\n")
        })
        .collect();
    let routes: String = ["ops-feishu", "ops-lark", "ops-wecom"]
        .iter()
        .map(|t| format!("  - receiver: {t}\n    continue: true\n"))
        .collect();
    let yaml = format!(
        "route:\n  receiver: ops\n  group_by: [alertname]\n  group_wait: 1s\n  group_interval: 2s\n  repeat_interval: 1h\n  routes:\n  - receiver: ops\n    continue: true\n{routes}receivers:\n{receivers}"
    );
    let am = Alertmanager::start_config(dir.path(), &yaml, &[]);
    ready(&am).await;

    am.post_alert(None).await;
    wait_for("the firing message in every tool", || async {
        dingtalk.posted().len() == 1 && feishu.posted().len() == 2 && wecom.posted().len() == 1
    })
    .await;
    am.post_alert(Some(chrono::Utc::now())).await;
    wait_for("the resolved message in every tool", || async {
        dingtalk.posted().len() == 2 && feishu.posted().len() == 4 && wecom.posted().len() == 2
    })
    .await;

    let title = "🔴 FIRING 1 · NodeDiskFull · critical · node1:9100 · Alert";
    assert_eq!(dingtalk.posted()[0].body["markdown"]["title"], title);
    assert_eq!(dingtalk.posted()[0].highlighted, ["13800000000"]);
    for token in ["hook-fs", "hook-lark"] {
        let cards: Vec<_> = feishu.posted().into_iter().filter(|p| p.token == token).collect();
        assert_eq!(cards.len(), 2, "{token}");
        assert_eq!(cards[0].body["card"]["header"]["title"]["content"], title, "{token}");
        assert_eq!(cards[0].body["card"]["header"]["template"], "red", "{token}");
        assert_eq!(cards[1].body["card"]["header"]["template"], "green", "{token}");
    }
    assert_eq!(feishu.posted().iter().find(|p| p.token == "hook-fs").unwrap().rings, ["ou_oncall"]);
    assert!(feishu.codes().iter().all(|&c| c == 0), "signed, with keywords: {:?}", feishu.codes());
    let firing = &wecom.posted()[0];
    assert!(
        firing.content.starts_with("#### 🔴 <font color=\"warning\">FIRING</font> NodeDiskFull")
            && firing.content.contains("Alert"),
        "{}",
        firing.content
    );
    assert_eq!(firing.rings, ["zhangsan"]);
    assert!(wecom.codes().iter().all(|&c| c == 0), "{:?}", wecom.codes());
    drop(bridge);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs /usr/bin/prometheus-alertmanager (Debian package prometheus-alertmanager); .ci/run runs it"]
async fn one_alert_group_reaches_45_people_through_the_dingtalk_app_robot() {
    use common::mock_dingtalk_app::{AppSpec, MockDingTalkApp};
    let users: Vec<String> = (0..45).map(|i| format!("user{i:02}")).collect();
    let (invalid, flow) = (["user07", "user33"], ["user01", "user21", "user44"]);
    let app = MockDingTalkApp::start(AppSpec {
        client_id: "dingclient-e2e".into(),
        client_secret: "e2e-client-secret-3f9a".into(),
        robot_code: "dingrobot-e2e".into(),
        token_ttl: Duration::from_secs(7200),
        invalid: invalid.map(String::from).to_vec(),
        flow_controlled_once: flow.map(String::from).to_vec(),
        conversations: vec![],
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("dt-client-secret"), "e2e-client-secret-3f9a\n").unwrap();
    let config = dir.path().join("bridge.yaml");
    let list: Vec<String> = users.iter().map(|u| format!("\"{u}\"")).collect();
    std::fs::write(
        &config,
        format!(
            r#"
listen: "127.0.0.1:0"
storage: {{path: outbox.sqlite3}}
timezone: Asia/Shanghai
delivery: {{backoff_initial: 1s, backoff_max: 2s}}
dingtalk_apps:
  corp:
    client_id: dingclient-e2e
    client_secret_file: dt-client-secret
    robot_code: dingrobot-e2e
    api_base: "{}"
targets:
  oncall-direct:
    type: dingtalk_app
    app: corp
    users: [{}]
"#,
            app.api_base(),
            list.join(", ")
        ),
    )
    .unwrap();
    let bridge = BinaryBridge::start(&config);
    let url = format!("http://{}", bridge.addr);
    let am = Alertmanager::start_config(dir.path(), &one_receiver(&url, &["oncall-direct"], "2s"), &[]);
    ready(&am).await;

    am.post_alert(None).await;
    let reachable: Vec<&String> = users.iter().filter(|u| !invalid.contains(&u.as_str())).collect();
    wait_for("the firing message to 43 people", || async { reachable.iter().all(|u| app.count_for(u) == 1) }).await;
    let firing = app.received();
    assert_eq!(firing.len(), 43);
    // 40 at once (three calls), then the 3 flow-controlled ones after the retry.
    let (first, retried) = firing.split_at(40);
    assert!(first.iter().all(|r| !flow.contains(&r.to.as_str())), "the first 40 are the others");
    let mut late: Vec<&str> = retried.iter().map(|r| r.to.as_str()).collect();
    late.sort();
    assert_eq!(late, flow);
    assert!(firing[0].param["title"].as_str().unwrap().contains("NodeDiskFull"), "{:?}", firing[0].param);

    // The token dies before the resolved notification: fetched again, nothing lost.
    app.revoke_tokens();
    am.post_alert(Some(chrono::Utc::now())).await;
    wait_for("the resolved message to 43 people", || async { reachable.iter().all(|u| app.count_for(u) == 2) }).await;
    assert_eq!((app.count_for("user07"), app.count_for("user33")), (0, 0));
    assert!(app.codes().iter().any(|c| c == "InvalidAuthentication"), "{:?}", app.codes());
    assert_eq!(app.token_fetches(), 2);

    let m = reqwest::get(bridge.url("/metrics")).await.unwrap().text().await.unwrap();
    let (status, logs) = bridge.terminate();
    assert!(status.success());
    let given_up: Vec<&String> = logs.iter().filter(|l| l.contains("recipients given up")).collect();
    // Each call names its own unknown users (user07 is in the first call of 20, user33 in the second).
    assert_eq!(given_up.len(), 4, "per call, per notification: {given_up:?}");
    for user in invalid {
        assert_eq!(given_up.iter().filter(|l| l.contains(&format!("[\\\"{user}\\\"]"))).count(), 2, "{user}");
    }
    for line in given_up {
        assert!(line.contains("app_invalid_user") && line.contains("userIds, not names or mobiles"), "{line}");
    }
    let token_seen = |t: &str| t.contains("app-token-") || t.contains("e2e-client-secret-3f9a");
    assert!(!logs.iter().any(|l| token_seen(l)), "no token or secret in the logs");
    assert!(!token_seen(&m), "nor in the metrics");
    let failed = [("target", "oncall-direct"), ("outcome", "failed"), ("reason", "app_invalid_user")];
    assert_eq!(metric(&m, "dingtalk_bridge_recipients_total", &failed), 4.0);
    drop(am);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs /usr/bin/prometheus-alertmanager (Debian package prometheus-alertmanager); .ci/run runs it"]
async fn the_alerts_own_labels_ring_their_owner_and_route_their_team() {
    use common::mock_feishu::{BotSpec, MockFeishu};
    let tokens = ["tok-ops", "tok-firing", "tok-pay"];
    let dingtalk = MockDingTalk::start(
        tokens
            .iter()
            .map(|t| RobotSpec { token: t.to_string(), secret: None, keywords: vec!["Alert".into()] })
            .collect(),
        Limits::default(),
    )
    .await;
    let feishu = MockFeishu::start(vec![BotSpec { token: "hook-fs".into(), secret: None, keywords: vec![] }]).await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("bridge.yaml");
    std::fs::write(
        &config,
        format!(
            r#"
listen: "127.0.0.1:0"
storage: {{path: outbox.sqlite3}}
people:
  alice: {{dingtalk_mobile: "13800000001", feishu_user_id: ou_alice}}
  bob: {{dingtalk_mobile: "13800000002"}}
targets:
  ops:
    url: "{ops}"
    keyword: Alert
    mention:
      rules:
      - match: {{severity: critical}}
        all: true
      - from_label: owner
  ops-feishu:
    type: feishu
    url: "{fs}"
    mention: {{rules: [{{from_label: owner}}]}}
  firing-only:
    url: "{firing}"
    keyword: Alert
    send_on: [firing]
  pay:
    url: "{pay}"
    keyword: Alert
  by-team:
    route: {{by_label: team, targets: {{payments: pay}}}}
"#,
            ops = dingtalk.url("tok-ops"),
            fs = feishu.url("hook-fs"),
            firing = dingtalk.url("tok-firing"),
            pay = dingtalk.url("tok-pay"),
        ),
    )
    .unwrap();
    let bridge = BinaryBridge::start(&config);
    let url = format!("http://{}", bridge.addr);
    // One receiver posting to each target, the router among them.
    let targets = ["ops", "ops-feishu", "firing-only", "by-team"];
    let am = Alertmanager::start_config(dir.path(), &one_receiver(&url, &targets, "2s"), &[]);
    ready(&am).await;
    let to = |token: &str| dingtalk.posted().into_iter().filter(|p| p.token == token).collect::<Vec<_>>();
    let titled = |token: &str, name: &str| {
        to(token)
            .into_iter()
            .filter(|p| p.body["markdown"]["title"].as_str().unwrap_or("").contains(name))
            .collect::<Vec<_>>()
    };

    let critical = [("severity", "critical"), ("owner", "alice"), ("team", "payments")];
    am.post_labelled("PaymentsDown", &critical, None).await;
    wait_for("the critical alert everywhere", || async {
        to("tok-ops").len() == 1
            && feishu.posted().len() == 1
            && to("tok-firing").len() == 1
            && to("tok-pay").len() == 1
    })
    .await;
    let ops = &to("tok-ops")[0];
    assert_eq!(
        (ops.highlighted.as_slice(), &ops.body["at"]["isAtAll"]),
        (&["13800000001".to_string()][..], &json!(true))
    );
    assert_eq!(feishu.posted()[0].rings, ["ou_alice"], "Alice in Feishu");

    am.post_labelled("PaymentsSlow", &[("severity", "warning"), ("owner", "alice")], None).await;
    wait_for("the warning", || async { titled("tok-ops", "PaymentsSlow").len() == 1 }).await;
    let warning = &titled("tok-ops", "PaymentsSlow")[0];
    assert_eq!(
        (warning.highlighted.as_slice(), &warning.body["at"]["isAtAll"]),
        (&["13800000001".to_string()][..], &json!(false))
    );

    am.post_labelled("PaymentsDown", &critical, Some(chrono::Utc::now())).await;
    wait_for("the resolved one", || async { titled("tok-ops", "PaymentsDown").len() == 2 }).await;
    let resolved = &titled("tok-ops", "PaymentsDown")[1];
    assert!(resolved.body["markdown"]["title"].as_str().unwrap().contains("RESOLVED"));
    assert!(resolved.highlighted.is_empty() && resolved.body["at"]["isAtAll"] == false, "rings nobody");

    am.post_labelled("Unowned", &[("severity", "warning"), ("owner", "13999999999")], None).await;
    wait_for("the stranger's alert", || async { titled("tok-ops", "Unowned").len() == 1 }).await;
    assert!(titled("tok-ops", "Unowned")[0].highlighted.is_empty(), "an alert cannot ring a number");
    // Resolved and the rest have arrived; the firing-only group has only firing messages, the payments
    // group only the payments alert.
    wait_for("the pay group's resolved", || async { to("tok-pay").len() == 2 }).await;
    // Each target has its own sender: the firing-only group's third message may come a moment later.
    wait_for("the firing-only group's three", || async { to("tok-firing").len() >= 3 }).await;
    let firing_only: Vec<String> = to("tok-firing").iter().map(common::visible).collect();
    assert_eq!(firing_only.len(), 3, "{firing_only:#?}");
    assert!(firing_only.iter().all(|t| !t.contains("RESOLVED")), "{firing_only:#?}");
    assert!(to("tok-pay").iter().all(|p| common::visible(p).contains("PaymentsDown")));

    let (status, logs) = bridge.terminate();
    assert!(status.success());
    let strangers: Vec<&String> = logs.iter().filter(|l| l.contains("people directory does not have")).collect();
    assert_eq!(strangers.len(), 2, "once per target that reads the label: {strangers:#?}");
    assert!(strangers.iter().all(|l| l.contains("13999999999") && l.contains("Unowned")), "{strangers:#?}");
    assert!(
        logs.iter().any(|l| l.contains("notification skipped") && l.contains("send_on")),
        "the resolved one skipped"
    );
    assert!(logs.iter().any(|l| l.contains("notification skipped") && l.contains("no_route")), "no team, no route");
    drop(am);
}
