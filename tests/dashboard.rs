//! The Grafana dashboard has no dead panels: a real Prometheus (Debian package `prometheus`) scrapes a
//! running bridge that has delivered, retried, been throttled, failed, split, digested and suppressed
//! messages; every panel's query, with its variables filled in, is evaluated through Prometheus' HTTP API
//! and must return data.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::mock_dingtalk::{Limits, MockDingTalk, RobotSpec};
use common::mock_dingtalk_app::{AppSpec, MockDingTalkApp};
use common::{BinaryBridge, FIRING, group, post, wait_for};
use serde_json::{Value, json};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

struct Prometheus(std::process::Child, String);

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Prometheus {
    async fn query(&self, expr: &str) -> Value {
        let url = reqwest::Url::parse_with_params(&format!("{}/api/v1/query", self.1), &[("query", expr)]).unwrap();
        let v: Value = reqwest::get(url).await.unwrap().json_or_text().await;
        assert_eq!(v["status"], "success", "{expr}: {v}");
        v
    }
}

trait JsonOrText {
    async fn json_or_text(self) -> Value;
}

impl JsonOrText for reqwest::Response {
    async fn json_or_text(self) -> Value {
        let text = self.text().await.unwrap();
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    }
}

/// Whether a query result holds at least one real (not NaN) sample.
fn has_data(v: &Value) -> bool {
    v["data"]["result"].as_array().is_some_and(|r| r.iter().any(|s| s["value"][1].as_str().is_some_and(|x| x != "NaN")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs /usr/bin/prometheus (Debian package prometheus); .ci/run runs it"]
async fn every_dashboard_panel_returns_data_from_a_real_prometheus() {
    let robot = RobotSpec { token: "tok-dash".into(), secret: None, keywords: vec!["Alert".into()] };
    let mock = MockDingTalk::start(vec![robot], Limits::default()).await;
    // A DingTalk app too: one user it does not know, one it flow-controls, and later a spent quota.
    let app = MockDingTalkApp::start(AppSpec {
        client_id: "dash-client".into(),
        client_secret: "dash-secret".into(),
        robot_code: "dash-robot".into(),
        token_ttl: Duration::from_secs(7200),
        invalid: vec!["gone".into()],
        flow_controlled_once: vec!["busy".into()],
        conversations: vec!["cidDash==".into()],
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("bridge.yaml");
    std::fs::write(
        &config,
        format!(
            "listen: 127.0.0.1:0\nstorage: {{path: o.sqlite3}}\ndelivery:\n  rate_limit: {{messages: 4, per: 2s}}\n  digest_after: 500ms\n  throttle_penalty: 300ms\n  backoff_initial: 50ms\n  backoff_max: 100ms\ntargets:\n  ops:\n    url: \"{}\"\n    keyword: Alert\n    mention: {{rules: [{{from_label: owner}}]}}\n  oncall-direct:\n    type: dingtalk_app\n    app: corp\n    users: [alice, gone, busy]\n  ops-app-group:\n    type: dingtalk_app\n    app: corp\n    conversations: [\"cidDash==\"]\npeople:\n  alice: {{dingtalk_mobile: \"13800000001\"}}\ndingtalk_apps:\n  corp: {{client_id: dash-client, client_secret: dash-secret, robot_code: dash-robot, api_base: \"{}\"}}\n",
            mock.url("tok-dash"),
            app.api_base()
        ),
    )
    .unwrap();
    let bridge = BinaryBridge::start(&config);

    let port = free_port();
    std::fs::write(
        dir.path().join("prometheus.yml"),
        format!("global: {{scrape_interval: 1s, evaluation_interval: 1s}}\nscrape_configs:\n- job_name: dingtalk-bridge\n  static_configs:\n  - targets: ['{}']\n", bridge.addr),
    )
    .unwrap();
    let child = Command::new(std::env::var("PROMETHEUS_BIN").unwrap_or_else(|_| "/usr/bin/prometheus".into()))
        .arg(format!("--config.file={}", dir.path().join("prometheus.yml").display()))
        .arg(format!("--storage.tsdb.path={}", dir.path().join("tsdb").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("prometheus starts (Debian package prometheus)");
    let prom = Prometheus(child, format!("http://127.0.0.1:{port}"));
    wait_for("Prometheus to scrape the bridge", || async {
        reqwest::get(format!("{}/-/ready", prom.1)).await.is_ok_and(|r| r.status().is_success())
            && has_data(&prom.query("up{job=\"dingtalk-bridge\"} == 1").await)
    })
    .await;

    // Busy (retried), too fast (throttled), robot disabled (given up); then a burst past the budget
    // (waits, a digest), a 300-alert group (split) and a repeat (suppressed).
    mock.script(-1, "系统繁忙");
    mock.script(130101, "send too fast");
    mock.script(400102, "机器人已停用");
    let send = bridge.url("/dingtalk/ops/send");
    for i in 0..12 {
        // Owned by Alice, or by someone the people directory does not have.
        let mut g: Value = serde_json::from_str(&group(i)).unwrap();
        g["alerts"][0]["labels"]["owner"] = json!(if i % 2 == 0 { "alice" } else { "mallory" });
        assert_eq!(post(&send, "application/json", g.to_string()).await.0, 200);
    }
    assert_eq!(post(&send, "application/json", group(0)).await.1["status"], "duplicate");
    let mut big: Value = serde_json::from_str(FIRING).unwrap();
    let one = big["alerts"][0].clone();
    big["alerts"] = (0..300)
        .map(|i| {
            let mut a = one.clone();
            a["labels"]["instance"] = json!(format!("n{i}"));
            a["annotations"]["description"] = json!("x".repeat(150));
            a
        })
        .collect();
    big["groupKey"] = json!("big");
    assert_eq!(post(&send, "application/json", big.to_string()).await.0, 200);
    assert_eq!(post(&bridge.url("/dingtalk/oncall-direct/send"), "application/json", FIRING).await.0, 200);
    wait_for("alice and busy", || async { app.count_for("alice") == 1 && app.count_for("busy") == 1 }).await;
    app.spend_quota();
    assert_eq!(post(&bridge.url("/dingtalk/ops-app-group/send"), "application/json", FIRING).await.0, 200);
    wait_for("the queue to drain", || async {
        let m = reqwest::get(bridge.url("/metrics")).await.unwrap().text().await.unwrap();
        common::metric(&m, "dingtalk_bridge_queue_depth", &[("target", "ops")]) == 0.0
            && common::metric(&m, "dingtalk_bridge_digests_total", &[("target", "ops")]) >= 1.0
            && common::metric(&m, "dingtalk_bridge_queue_depth", &[("target", "ops-app-group")]) == 0.0
    })
    .await;
    // A few more scrapes, so every rate() has its samples.
    tokio::time::sleep(Duration::from_secs(4)).await;

    let dashboard: Value = serde_json::from_str(include_str!("../deploy/grafana/dashboard.json")).unwrap();
    let vars: Vec<&str> =
        dashboard["templating"]["list"].as_array().unwrap().iter().map(|v| v["name"].as_str().unwrap()).collect();
    assert_eq!(vars, vec!["datasource", "target"]);
    // The target variable's own query lists the target.
    let targets = prom.query("group by (target) (dingtalk_bridge_notifications_total)").await;
    assert!(targets["data"]["result"].as_array().unwrap().iter().any(|r| r["metric"]["target"] == "ops"));

    let mut checked = 0;
    for panel in dashboard["panels"].as_array().unwrap() {
        assert_eq!(panel["datasource"]["uid"], "${datasource}", "{}", panel["title"]);
        for t in panel["targets"].as_array().unwrap() {
            for target in [".*", "ops"] {
                let expr = t["expr"].as_str().unwrap().replace("$target", target).replace("$__rate_interval", "1m");
                assert!(!expr.contains('$'), "unfilled variable in {expr}");
                let result = prom.query(&expr).await;
                assert!(has_data(&result), "panel {:?} query {expr:?} returned no data: {result}", panel["title"]);
                checked += 1;
            }
        }
    }
    assert!(checked >= 50, "{checked}");
    // The app panels show what happened, not only the zeros other targets get.
    let outcomes =
        prom.query("sum by (outcome, reason) (dingtalk_bridge_recipients_total{target=\"oncall-direct\"})").await;
    let mut seen: Vec<String> = outcomes["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            format!(
                "{}{} {}",
                r["metric"]["outcome"].as_str().unwrap(),
                r["metric"]["reason"].as_str().map(|x| format!("/{x}")).unwrap_or_default(),
                r["value"][1].as_str().unwrap()
            )
        })
        .collect();
    seen.sort();
    assert_eq!(seen, ["deferred 1", "delivered 2", "failed/app_invalid_user 1"]);
    let mentions = prom.query("sum by (outcome) (dingtalk_bridge_mentions_total{target=\"ops\"})").await;
    let outcomes: Vec<&str> = mentions["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["metric"]["outcome"].as_str().unwrap())
        .collect();
    assert!(outcomes.contains(&"rung") && outcomes.contains(&"unknown"), "{mentions}");
    let quota = dashboard["panels"].as_array().unwrap().iter().find(|p| p["id"] == 24).unwrap();
    let expr = quota["targets"][0]["expr"].as_str().unwrap().replace("$target", ".*");
    let refused = prom.query(&expr).await;
    assert_eq!(
        refused["data"]["result"][0]["value"][1].as_str().map(|v| v.parse::<f64>().unwrap() > 0.0),
        Some(true),
        "{refused}"
    );
    drop(bridge);
}
