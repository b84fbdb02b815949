//! Memory benchmark for issue 10's attacks: starts the release binary against a loopback DingTalk stand-in,
//! replays each attack against a fresh bridge, and reports resident memory idle, at its peak (VmHWM) and
//! five seconds after the attack ended, and what the attackers were answered.
//!
//!   cargo build --release && cargo run --release --example memattack
//!
//! Attacks: one 100,000-label payload (about 2 MB); 8 of them at once; 32 concurrent 4 MB webhooks
//! (100 alerts with 39 KB descriptions each); 200 unfinished 4 MB bodies (3.9 MB sent, then silence).
//! Everything stays on 127.0.0.1 and every attack is bounded.
#![forbid(unsafe_code)]

mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Response;
use hyper_util::rt::TokioIo;
use support::status_mib;
use tokio::io::AsyncWriteExt;

async fn sink() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { continue };
            tokio::spawn(async move {
                let service = hyper::service::service_fn(|req: hyper::Request<hyper::body::Incoming>| async move {
                    let _ = req.into_body().collect().await;
                    Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from_static(
                        b"{\"errcode\":0,\"errmsg\":\"ok\"}",
                    ))))
                });
                let _ =
                    hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
            });
        }
    });
    addr
}

fn big_webhook(i: usize) -> String {
    let description = "x".repeat(39_000);
    let alerts: Vec<String> = (0..100)
        .map(|a| format!(r#"{{"status":"firing","labels":{{"alertname":"Big{i}","pod":"p{a}","severity":"warning"}},"annotations":{{"description":"{description}"}},"startsAt":"2026-11-23T10:00:00Z","fingerprint":"{a:016x}"}}"#))
        .collect();
    format!(
        r#"{{"version":"4","groupKey":"big{i}","status":"firing","receiver":"r","groupLabels":{{"alertname":"Big{i}"}},"alerts":[{}]}}"#,
        alerts.join(",")
    )
}

fn many_labels() -> String {
    let labels: Vec<String> = (0..100_000).map(|i| format!(r#""l{i}":"v""#)).collect();
    format!(
        r#"{{"status":"firing","groupKey":"many","alerts":[{{"status":"firing","labels":{{{}}}}}]}}"#,
        labels.join(",")
    )
}

struct Bridge {
    child: Child,
    addr: SocketAddr,
}

impl Bridge {
    async fn start(dir: &Path, sink: SocketAddr) -> Bridge {
        let addr = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        let cfg = dir.join("mem.yaml");
        let _ = std::fs::remove_file(dir.join("outbox.sqlite3"));
        std::fs::write(
            &cfg,
            format!(
                "listen: {addr}\nstorage: {{path: {}}}\ndelivery: {{rate_limit: off}}\ntargets:\n  ops: {{url: \"http://{sink}/robot/send?access_token=t\", keyword: x}}\n",
                dir.join("outbox.sqlite3").display()
            ),
        )
        .unwrap();
        let child = Command::new("target/release/dingtalk-bridge")
            .arg("--config")
            .arg(&cfg)
            .arg("--log-level")
            .arg("error")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("build it first: cargo build --release");
        let ready = format!("http://{addr}/-/ready");
        for _ in 0..200 {
            if reqwest::get(&ready).await.is_ok_and(|r| r.status() == 200) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Bridge { child, addr }
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn post_all(addr: SocketAddr, bodies: Vec<String>) -> String {
    let client = reqwest::Client::new();
    let tasks: Vec<_> = bodies
        .into_iter()
        .map(|b| {
            let client = client.clone();
            tokio::spawn(async move {
                let r = client
                    .post(format!("http://{addr}/dingtalk/ops/send"))
                    .header("content-type", "application/json")
                    .body(b)
                    .send()
                    .await;
                r.map(|r| r.status().as_u16().to_string()).unwrap_or_else(|_| "error".into())
            })
        })
        .collect();
    let mut counts = std::collections::BTreeMap::<String, usize>::new();
    for t in tasks {
        *counts.entry(t.await.unwrap()).or_default() += 1;
    }
    counts.iter().map(|(k, v)| format!("{v}x{k}")).collect::<Vec<_>>().join(" ")
}

async fn unfinished(addr: SocketAddr, n: usize) -> String {
    let body = big_webhook(0);
    let mut held = vec![];
    for _ in 0..n {
        let Ok(mut s) = tokio::net::TcpStream::connect(addr).await else { continue };
        let head = "POST /dingtalk/ops/send HTTP/1.1\r\nhost: b\r\ncontent-type: application/json\r\ncontent-length: 4000000\r\n\r\n";
        let _ = s.write_all(head.as_bytes()).await;
        let _ = tokio::time::timeout(Duration::from_millis(200), s.write_all(&body.as_bytes()[..3_900_000])).await;
        held.push(s);
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let honest = post_all(
        addr,
        vec![String::from(
            r#"{"status":"firing","groupKey":"h","alerts":[{"status":"firing","labels":{"alertname":"Honest"}}]}"#,
        )],
    )
    .await;
    drop(held);
    format!("{n} held; an honest webhook meanwhile: {honest}")
}

#[tokio::main]
async fn main() {
    let sink = sink().await;
    let dir = tempfile::tempdir().unwrap();
    println!("| attack | idle RSS MiB | peak RSS MiB | RSS 5 s after MiB | answers |");
    println!("|---|---|---|---|---|");
    for attack in [
        "one 100,000-label payload",
        "8 x 100,000-label payloads at once",
        "32 concurrent 4 MB webhooks",
        "200 unfinished 4 MB bodies",
    ] {
        let bridge = Bridge::start(dir.path(), sink).await;
        let pid = bridge.child.id();
        let idle = status_mib(pid, "VmRSS:");
        let answers = match attack {
            "one 100,000-label payload" => post_all(bridge.addr, vec![many_labels()]).await,
            "8 x 100,000-label payloads at once" => post_all(bridge.addr, vec![many_labels(); 8]).await,
            "32 concurrent 4 MB webhooks" => post_all(bridge.addr, (0..32).map(big_webhook).collect()).await,
            _ => unfinished(bridge.addr, 200).await,
        };
        tokio::time::sleep(Duration::from_secs(5)).await;
        println!(
            "| {attack} | {idle:.1} | {:.1} | {:.1} | {answers} |",
            status_mib(pid, "VmHWM:"),
            status_mib(pid, "VmRSS:")
        );
    }
}
