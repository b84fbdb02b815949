//! The container image, built from the repository's Dockerfile by podman and run the way the StatefulSet
//! runs it: non-root (65532), read-only root filesystem, `--memory 128m`, config and store mounted, all
//! capabilities dropped. The probes answer, a webhook reaches the mock DingTalk on the host, and the
//! attacks of issue 10 (600 slow and idle connections, 32 concurrent 4 MB webhooks, 200 unfinished 4 MB
//! bodies, a 100,000-label payload) neither get it killed nor stop it answering.
//!
//! Needs podman, runc and debootstrap (`.ci/run` installs them) and root; the base images are made by
//! `deploy/container/base-images.sh` when missing (no registry is reachable here).

mod common;

use std::process::Command;

use common::mock_dingtalk::{Limits, MockDingTalk, RobotSpec};
use common::{post, wait_for};
use tokio::io::AsyncWriteExt;

const IMAGE: &str = "localhost/dingtalk-bridge:test";

fn podman(args: &[&str]) -> std::process::Output {
    let conf = std::env::temp_dir().join("dingtalk-bridge-containers.conf");
    std::fs::write(&conf, "[containers]\ndefault_ulimits = []\n").unwrap();
    Command::new("podman")
        .env("CONTAINERS_CONF", &conf)
        .arg("--runtime")
        .arg("runc")
        .args(args)
        .output()
        .expect("podman runs (install podman and runc)")
}

fn build_image() {
    let root = env!("CARGO_MANIFEST_DIR");
    let base = Command::new("bash").arg(format!("{root}/deploy/container/base-images.sh")).output().unwrap();
    assert!(base.status.success(), "base images: {}", String::from_utf8_lossy(&base.stderr));
    let build_args = String::from_utf8(base.stdout).unwrap();
    let mut args: Vec<&str> = vec!["build", "--network=host", "-t", IMAGE];
    args.extend(build_args.split_whitespace());
    args.push(root);
    let out = podman(&args);
    assert!(out.status.success(), "podman build: {}", String::from_utf8_lossy(&out.stderr));
}

/// A 4,000,000-byte notification of 100 alerts with long descriptions (it passes every limit).
fn big_webhook(i: usize) -> String {
    let description = "x".repeat(39_000);
    let alerts: Vec<String> = (0..100)
        .map(|a| {
            format!(
                r#"{{"status":"firing","labels":{{"alertname":"Big{i}","pod":"p{a}","severity":"warning"}},"annotations":{{"description":"{description}"}},"startsAt":"2026-11-23T10:00:00Z","endsAt":"0001-01-01T00:00:00Z","generatorURL":"http://prom/","fingerprint":"{a:016x}"}}"#
            )
        })
        .collect();
    format!(
        r#"{{"version":"4","groupKey":"big{i}","status":"firing","receiver":"r","groupLabels":{{"alertname":"Big{i}"}},"commonLabels":{{}},"commonAnnotations":{{}},"externalURL":"http://am","alerts":[{}]}}"#,
        alerts.join(",")
    )
}

/// A notification with one alert carrying 100,000 labels (about 2 MB).
fn many_labels() -> String {
    let labels: Vec<String> = (0..100_000).map(|i| format!(r#""l{i}":"v""#)).collect();
    format!(
        r#"{{"status":"firing","groupKey":"many","alerts":[{{"status":"firing","labels":{{{}}},"annotations":{{}}}}]}}"#,
        labels.join(",")
    )
}

/// The bridge's peak resident memory inside the container (VmHWM of its process, read from the host), in
/// MiB. Not the cgroup's figure: that one counts the page cache of the store's writes, which the kernel
/// reclaims under the limit rather than killing anything.
fn peak_rss_mib(name: &str) -> f64 {
    let pid = inspect(name, "{{.State.Pid}}");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kb = status.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| l.split_whitespace().nth(1));
    kb.and_then(|v| v.parse::<f64>().ok()).expect("the bridge's VmHWM") / 1024.0
}

struct Container(String);

impl Drop for Container {
    fn drop(&mut self) {
        // Shown when the test fails: how the container ended and its last words.
        let state =
            inspect(&self.0, "running={{.State.Running}} oom_killed={{.State.OOMKilled}} exit={{.State.ExitCode}}");
        let logs = podman(&["logs", "--tail", "15", &self.0]);
        eprintln!("container {}: {state}\n{}", self.0, String::from_utf8_lossy(&logs.stderr));
        let _ = podman(&["rm", "-f", &self.0]);
    }
}

fn inspect(name: &str, format: &str) -> String {
    String::from_utf8(podman(&["inspect", "--format", format, name]).stdout).unwrap().trim().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "builds and runs the image with podman (root; .ci/run installs podman, runc and debootstrap)"]
async fn the_image_runs_as_the_statefulset_does_and_survives_the_memory_attacks() {
    build_image();
    let robot = RobotSpec { token: "tok-container".into(), secret: None, keywords: vec!["Alert".into()] };
    let mock = MockDingTalk::start(vec![robot], Limits { per_window: 1000, ..Limits::default() }).await;
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let (config, data) = (dir.path().join("config"), dir.path().join("data"));
    std::fs::create_dir_all(&config).unwrap();
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(
        config.join("dingtalk-bridge.yaml"),
        format!(
            "listen: \"127.0.0.1:{port}\"\nstorage: {{path: /var/lib/dingtalk-bridge/outbox.sqlite3}}\ntargets:\n  ops: {{url: \"{}\", keyword: Alert, rate_limit: off}}\n",
            mock.url("tok-container")
        ),
    )
    .unwrap();
    Command::new("chown").args(["-R", "65532:65532"]).arg(&data).status().unwrap();
    let name = format!("dingtalk-bridge-test-{port}");
    let (config_mount, data_mount) = (
        format!("{}:/etc/dingtalk-bridge/config:ro", config.display()),
        format!("{}:/var/lib/dingtalk-bridge", data.display()),
    );
    let run = podman(&[
        "run",
        "-d",
        "--name",
        &name,
        "--network=host",
        "--user",
        "65532:65532",
        "--read-only",
        "--memory",
        "128m",
        "--memory-swap",
        "128m",
        "--cap-drop",
        "ALL",
        "--security-opt",
        "no-new-privileges",
        "-v",
        &config_mount,
        "-v",
        &data_mount,
        IMAGE,
    ]);
    assert!(run.status.success(), "podman run: {}", String::from_utf8_lossy(&run.stderr));
    let container = Container(name.clone());
    let base = format!("http://127.0.0.1:{port}");
    let ready = format!("{base}/-/ready");
    wait_for("the container to be ready", || async {
        reqwest::get(&ready).await.is_ok_and(|r| r.status().is_success())
    })
    .await;
    let send = format!("{base}/dingtalk/ops/send");
    assert_eq!(post(&send, "application/json", common::group(1)).await.0, 200);
    wait_for("the first delivery", || async { mock.posted().len() == 1 }).await;

    // 600 slow-body, slow-header and idle connections, reopened when closed: probes and webhooks are
    // answered within a second throughout.
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let flood = common::attack::flood(([127, 0, 0, 1], port).into(), [127, 0, 0, 2].into(), 600, 20, stop);
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    for round in 0..5 {
        common::attack::honest_round(&base, 100 + round).await;
    }
    let _ = stop_tx.send(true);
    let mut opened = 0;
    for f in flood {
        opened += f.await.unwrap();
    }
    assert!(opened >= 600, "the flood opened {opened} connections");

    // 32 concurrent 4 MB webhooks.
    let client = reqwest::Client::new();
    let big: Vec<_> = (0..32)
        .map(|i| {
            let (client, send) = (client.clone(), send.clone());
            tokio::spawn(async move {
                let r = client.post(send).header("content-type", "application/json").body(big_webhook(i)).send().await;
                r.map(|r| r.status().as_u16()).map_err(|e| format!("{e:?}"))
            })
        })
        .collect();
    let mut codes = vec![];
    for b in big {
        codes.push(b.await.unwrap());
    }
    assert!(
        codes.iter().all(|c| c.as_ref().is_ok_and(|c| [200, 503].contains(c))),
        "each accepted or answered 503 to retry: {codes:?}; running: {}, OOM-killed: {}; {}",
        inspect(&name, "{{.State.Running}}"),
        inspect(&name, "{{.State.OOMKilled}}"),
        reqwest::get(format!("{base}/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
            .lines()
            .filter(|l| l.contains("http_"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    // A 100,000-label payload is refused before it is decoded.
    let (code, answer) = post(&send, "application/json", many_labels()).await;
    assert_eq!(code, 413, "{answer}");
    assert_eq!(answer["limit"], "server.limits.max_fields", "{answer}");
    // 200 unfinished 4 MB bodies.
    let mut unfinished = vec![];
    for _ in 0..200 {
        let Ok(mut s) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else { continue };
        let head = "POST /dingtalk/ops/send HTTP/1.1\r\nhost: b\r\ncontent-type: application/json\r\ncontent-length: 4000000\r\n\r\n";
        let _ = s.write_all(head.as_bytes()).await;
        let _ = s.write_all(&big_webhook(0).as_bytes()[..3_900_000]).await;
        unfinished.push(s);
    }
    let (code, answer) = post(&send, "application/json", common::group(2)).await;
    drop(unfinished);
    let logs = || String::from_utf8_lossy(&podman(&["logs", "--tail", "20", &name]).stderr).to_string();
    assert_eq!(
        code,
        200,
        "an honest webhook meanwhile: {answer}; OOM-killed: {}; {}",
        inspect(&name, "{{.State.OOMKilled}}"),
        logs()
    );

    assert_eq!(inspect(&name, "{{.State.Running}}"), "true", "the container is still running");
    assert_eq!(inspect(&name, "{{.State.OOMKilled}}"), "false");
    wait_for("readiness after the attacks", || async { reqwest::get(&ready).await.is_ok_and(|r| r.status() == 200) })
        .await;
    // (Its delivery waits behind the 32 big notifications' messages; the first delivery showed the path.)
    let metrics = reqwest::get(format!("{base}/metrics")).await.unwrap().text().await.unwrap();
    let rss = common::metric(&metrics, "process_resident_memory_bytes", &[]);
    let peak = peak_rss_mib(&name);
    eprintln!(
        "container: peak RSS {peak:.1} MiB, RSS after the attacks {:.1} MiB; answers to the big webhooks: {codes:?}",
        rss / 1048576.0
    );
    assert!(peak < 96.0, "peak resident memory {peak:.1} MiB");
    assert!(rss < 96.0 * 1048576.0, "resident memory after the attacks: {rss}");
    // The store is the non-root user's, private.
    let logs = String::from_utf8_lossy(&podman(&["logs", &name]).stderr).to_string();
    assert!(logs.contains("\"listening\""), "{logs}");
    drop(container);
}
