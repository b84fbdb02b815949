//! Shared by the integration tests: the protocol-enforcing mock DingTalk, a bridge started in-process
//! with `run()` on loopback, and small HTTP and metrics helpers.
#![allow(dead_code)]

pub mod attack;
pub mod mock_dingtalk;
pub mod mock_dingtalk_app;
pub mod mock_feishu;
pub mod mock_wecom;
pub mod webdriver;

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use dingtalk_bridge::config::Config;
use tokio::sync::oneshot;

/// The mocks' HTTP server: `handle(mock, request)` on every request of every connection to `listener`.
pub fn serve<M, F, Fut, E>(listener: tokio::net::TcpListener, mock: M, handle: F)
where
    M: Clone + Send + Sync + 'static,
    F: Fn(M, hyper::Request<hyper::body::Incoming>) -> Fut + Copy + Send + Sync + 'static,
    Fut: Future<Output = Result<hyper::Response<http_body_util::Full<bytes::Bytes>>, E>> + Send + 'static,
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { continue };
            let m = mock.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req| handle(m.clone(), req));
                let io = hyper_util::rt::TokioIo::new(stream);
                let _ = hyper::server::conn::http1::Builder::new().serve_connection(io, svc).await;
            });
        }
    });
}

pub const FIRING: &str = include_str!("../fixtures/alertmanager-0.25-firing.json");
pub const RESOLVED: &str = include_str!("../fixtures/alertmanager-0.25-resolved.json");

/// A bridge running in this process.
pub struct Bridge {
    pub addr: SocketAddr,
    pub dir: PathBuf,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Bridge {
    /// Starts the bridge with `yaml` (storage goes to `dir` unless the yaml says otherwise).
    pub async fn start(dir: &Path, yaml: &str) -> Bridge {
        let config =
            Config::from_yaml(yaml, "test.yaml", dir, &|n| std::env::var(n).ok()).expect("test config is valid");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            dingtalk_bridge::run(config, listener, async move {
                let _ = rx.await;
            })
            .await
            .expect("bridge runs");
        });
        let bridge = Bridge { addr, dir: dir.to_path_buf(), stop: Some(tx), task };
        let ready = bridge.url("/-/ready");
        wait_for("the bridge to be ready", || async {
            reqwest::get(&ready).await.is_ok_and(|r| r.status().is_success())
        })
        .await;
        bridge
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Graceful shutdown, waiting for `run()` to return.
    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        tokio::time::timeout(Duration::from_secs(30), &mut self.task).await.expect("bridge stops").unwrap();
    }

    pub async fn metrics(&self) -> String {
        reqwest::get(self.url("/metrics")).await.unwrap().text().await.unwrap()
    }
}

/// POSTs `body` as JSON (or with the given content type); returns status and body.
pub async fn post(url: &str, content_type: &str, body: impl Into<reqwest::Body>) -> (u16, serde_json::Value) {
    let resp = reqwest::Client::new().post(url).header("content-type", content_type).body(body).send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)))
}

/// Polls `cond` until it holds. The limit only keeps a broken test from hanging; it is not a speed check.
pub async fn wait_for<F, Fut>(what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !cond().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The value of one sample in Prometheus text format, by name and exact label set; 0 if absent.
pub fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    let wanted: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let (metric_name, rest) = series.split_once('{').unwrap_or((series, "}"));
            let got: Vec<&str> = rest.trim_end_matches('}').split(',').filter(|s| !s.is_empty()).collect();
            (metric_name == name && got.len() == wanted.len() && wanted.iter().all(|w| got.contains(&w.as_str())))
                .then(|| value.parse::<f64>().unwrap())
        })
        .next()
        .unwrap_or(0.0)
}

/// The real `dingtalk-bridge` binary, started with a config file, JSON logs captured.
pub struct BinaryBridge {
    pub addr: SocketAddr,
    child: std::process::Child,
    pub logs: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl BinaryBridge {
    pub fn start(config_path: &Path) -> BinaryBridge {
        Self::start_with_env(config_path, &[])
    }

    pub fn start_with_env(config_path: &Path, env: &[(&str, &str)]) -> BinaryBridge {
        Self::start_with(config_path, env, "json")
    }

    /// Started with `--log-format` `format` (`json` or `plain`).
    pub fn start_with(config_path: &Path, env: &[(&str, &str)], format: &str) -> BinaryBridge {
        use std::io::BufRead;
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_dingtalk-bridge"))
            .args(["--config", config_path.to_str().unwrap(), "--log-format", format, "--log-level", "debug"])
            .env_remove("HTTP_PROXY")
            .env_remove("HTTPS_PROXY")
            .env_remove("http_proxy")
            .env_remove("https_proxy")
            .env_remove("ALL_PROXY")
            .env_remove("NO_PROXY")
            .env_remove("no_proxy")
            .envs(env.iter().copied())
            .stderr(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("binary starts");
        let stderr = child.stderr.take().unwrap();
        let logs = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = logs.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line)
                    && v["message"] == "listening"
                {
                    let _ = tx.send(v["address"].as_str().unwrap_or_default().to_string());
                } else if line.contains(" listening ")
                    && let Some(addr) = line.split(" address=").nth(1)
                {
                    let _ = tx.send(addr.split(' ').next().unwrap_or_default().to_string());
                }
                sink.lock().unwrap().push(line);
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("bridge did not log its address; logs: {:?}", logs.lock().unwrap()));
        BinaryBridge { addr: addr.parse().unwrap(), child, logs }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL: no chance to clean up.
    pub fn kill(mut self) -> Vec<String> {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        std::thread::sleep(Duration::from_millis(100));
        self.logs.lock().unwrap().clone()
    }

    /// SIGTERM, then wait for a clean exit.
    pub fn terminate(mut self) -> (std::process::ExitStatus, Vec<String>) {
        let _ = std::process::Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let status = self.child.wait().unwrap();
        std::thread::sleep(Duration::from_millis(100));
        (status, self.logs.lock().unwrap().clone())
    }
}

impl Drop for BinaryBridge {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A distinct alert group (`Incident-007`) of the firing capture's three alerts.
pub fn group(i: usize) -> String {
    let name = format!("Incident-{i:03}");
    let mut v: serde_json::Value = serde_json::from_str(FIRING).unwrap();
    v["groupLabels"] = serde_json::json!({"alertname": name});
    v["commonLabels"]["alertname"] = serde_json::json!(name);
    v["groupKey"] = serde_json::json!(format!("{{}}:{{alertname=\"{name}\"}}"));
    for a in v["alerts"].as_array_mut().unwrap() {
        a["labels"]["alertname"] = serde_json::json!(name);
        a["fingerprint"] = serde_json::json!(format!("{}-{i:03}", a["fingerprint"].as_str().unwrap()));
    }
    v.to_string()
}

/// The text of a message DingTalk posted (title and body, any msgtype).
pub fn visible(p: &mock_dingtalk::Posted) -> String {
    let b = &p.body;
    [
        &b["markdown"]["title"],
        &b["markdown"]["text"],
        &b["text"]["content"],
        &b["actionCard"]["title"],
        &b["actionCard"]["text"],
    ]
    .iter()
    .filter_map(|v| v.as_str())
    .collect::<Vec<_>>()
    .join("\n")
}

/// How many posted messages show group `i` (alone or as a digest line).
pub fn shown(posted: &[mock_dingtalk::Posted], i: usize) -> usize {
    let name = format!("Incident-{i:03}");
    posted.iter().filter(|p| visible(p).contains(&name)).count()
}

/// Posts `n` alert groups (`group(0..n)`), ten at a time, each accepted.
pub async fn post_storm(url: &str, n: usize) {
    let mut posts = tokio::task::JoinSet::new();
    for i in 0..n {
        let url = url.to_string();
        posts.spawn(async move { post(&url, "application/json", group(i)).await.0 });
        if i % 10 == 9 || i + 1 == n {
            while let Some(status) = posts.join_next().await {
                assert_eq!(status.unwrap(), 200);
            }
        }
    }
}

/// How many of `texts` (what readers saw) show group `i` of [`group`].
pub fn shown_in(texts: &[String], i: usize) -> usize {
    let name = format!("Incident-{i:03}");
    texts.iter().filter(|t| t.contains(&name)).count()
}

/// Every notification `target` accepted is carried by a delivered message: its own, or a digest that
/// merged it.
pub async fn every_notification_delivered(path: &Path, target: &str) {
    use dingtalk_bridge::config::SyncMode;
    use dingtalk_bridge::store::Store;
    let recs = Store::open(path, SyncMode::Normal).unwrap().records(target).await.unwrap();
    assert!(!recs.is_empty(), "{target} has records");
    let state = |id: i64| recs.iter().find(|r| r.id == id).map(|r| r.state.as_str());
    for r in recs.iter().filter(|r| r.kind.as_str() == "message") {
        match r.state.as_str() {
            "delivered" => {}
            "merged" => assert_eq!(state(r.carried_by.unwrap()), Some("delivered"), "{r:?}"),
            other => panic!("message of notification {:?} is {other}", r.notification_id),
        }
    }
}

/// Messages (by what readers saw) that repeat an earlier one, by the groups of [`group`] they show (a
/// digest shows many). Feishu and WeCom have nothing like DingTalk's msgUuid: a message delivered in the
/// instant before a SIGKILL, before its record was written, is sent again after the restart.
pub fn repeats(texts: &[String], n: usize) -> usize {
    let groups = |t: &String| (0..n).filter(|&i| t.contains(&format!("Incident-{i:03}"))).collect::<Vec<_>>();
    let sets: Vec<Vec<usize>> = texts.iter().map(groups).collect();
    (0..sets.len()).filter(|&i| sets[..i].contains(&sets[i])).count()
}

/// Starts the bridge binary on `config`, posts 60 groups to `target`, SIGKILLs it once `texts` (what the
/// mock's readers saw) shows the storm under way, restarts it, waits until every group shows, and stops it
/// cleanly (so its last records are written). Returns what readers saw.
pub async fn kill_in_a_storm(config: &Path, target: &str, texts: impl Fn() -> Vec<String>) -> Vec<String> {
    let bridge = BinaryBridge::start(config);
    for i in 0..60 {
        assert_eq!(post(&bridge.url(&format!("/dingtalk/{target}/send")), "application/json", group(i)).await.0, 200);
    }
    wait_for("the storm to be under way", || async { texts().len() >= 4 }).await;
    bridge.kill();
    let bridge = BinaryBridge::start(config);
    wait_for("every group to show", || async { (0..60).all(|i| shown_in(&texts(), i) >= 1) }).await;
    let (status, _) = bridge.terminate();
    assert!(status.success(), "{status:?}");
    texts()
}
