//! Issue 10's attacks, each replayed against the bridge in-process (`run()` on loopback): redirects from
//! the chat endpoint, connection floods with probes, a deleted store, a full disk, forged log lines, file
//! modes. The memory figures are a benchmark (`examples/memattack`), not a test.

mod common;

use bytes::Bytes;
use common::mock_dingtalk::{Limits, MockDingTalk, RobotSpec};
use common::{Bridge, FIRING, post, wait_for};
use dingtalk_bridge::config::SyncMode;
use dingtalk_bridge::store::Store;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;

fn robot(token: &str) -> RobotSpec {
    RobotSpec { token: token.into(), secret: None, keywords: vec!["Alert".into()] }
}

fn config(url: &str, server: &str) -> String {
    format!(
        r#"
listen: "127.0.0.1:0"
storage: {{path: outbox.sqlite3}}
server: {{shutdown_grace: 2s{server}}}
delivery: {{backoff_initial: 50ms, backoff_max: 200ms, request_timeout: 2s}}
targets:
  ops: {{url: "{url}", keyword: Alert}}
"#
    )
}

async fn records(dir: &std::path::Path) -> Vec<dingtalk_bridge::store::Record> {
    Store::open(&dir.join("outbox.sqlite3"), SyncMode::Full).unwrap().records("ops").await.unwrap()
}

/// An endpoint that answers every request with `status` and a `Location` leading to `to`.
async fn redirector(status: u16, to: String) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { return };
            let to = to.clone();
            tokio::spawn(http1::Builder::new().serve_connection(
                TokioIo::new(stream),
                service_fn(move |_req| {
                    let to = to.clone();
                    async move {
                        Ok::<_, std::convert::Infallible>(
                            hyper::Response::builder()
                                .status(status)
                                .header("location", to)
                                .body(Full::new(Bytes::from_static(b"moved")))
                                .unwrap(),
                        )
                    }
                }),
            ));
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_is_a_failure_never_followed() {
    let mock = MockDingTalk::start(vec![robot("tok-ops")], Limits::default()).await;
    for status in [302u16, 307] {
        let addr = redirector(status, mock.url("tok-ops")).await;
        let dir = tempfile::tempdir().unwrap();
        let url = format!("http://{addr}/robot/send?access_token=tok-redirected");
        let bridge = Bridge::start(dir.path(), &config(&url, "")).await;
        let (code, answer) = post(&bridge.url("/dingtalk/ops/send"), "application/json", FIRING).await;
        assert_eq!(code, 200, "{answer}");
        wait_for("the redirect to be given up", || async {
            records(dir.path()).await.iter().any(|r| r.state.as_str() == "failed")
        })
        .await;
        let recs = records(dir.path()).await;
        assert_eq!(recs[0].reason.as_deref(), Some("redirect"), "HTTP {status}: {recs:?}");
        assert_eq!(recs[0].attempts, 1, "a redirect is permanent: no retries");
        let m = bridge.metrics().await;
        assert_eq!(
            common::metric(
                &m,
                "dingtalk_bridge_notifications_failed_total",
                &[("target", "ops"), ("reason", "redirect")]
            ),
            1.0
        );
        bridge.stop().await;
        assert_eq!(mock.requests(), 0, "HTTP {status}: the redirect was followed to {}", mock.url("tok-ops"));
    }
}
