//! The bridge honours the proxy environment (HTTP_PROXY / HTTPS_PROXY / NO_PROXY) for its DingTalk
//! requests: the mock DingTalk plays the proxy for a robot host that does not resolve.

mod common;

use common::mock_dingtalk::{Limits, MockDingTalk, RobotSpec};
use common::{BinaryBridge, FIRING, RESOLVED, post, wait_for};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_go_through_the_proxy_unless_no_proxy_says_otherwise() {
    let robot = RobotSpec { token: "tok-proxy".into(), secret: None, keywords: vec![] };
    let mock = MockDingTalk::start(vec![robot], Limits::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("c.yaml");
    std::fs::write(
        &config,
        "listen: 127.0.0.1:0\nstorage: {path: o.sqlite3}\ndelivery: {backoff_initial: 50ms, backoff_max: 100ms}\n\
         targets:\n  ops:\n    url: http://dingtalk.invalid/robot/send?access_token=tok-proxy\n",
    )
    .unwrap();
    let proxy = format!("http://{}", mock.addr);

    let bridge = BinaryBridge::start_with_env(&config, &[("HTTP_PROXY", &proxy)]);
    assert_eq!(post(&bridge.url("/dingtalk/ops/send"), "application/json", FIRING).await.0, 200);
    wait_for("delivery through the proxy", || async { mock.posted().len() == 1 }).await;
    drop(bridge);

    let bridge = BinaryBridge::start_with_env(&config, &[("HTTP_PROXY", &proxy), ("NO_PROXY", "dingtalk.invalid")]);
    let (status, answer) = post(&bridge.url("/dingtalk/ops/send"), "application/json", RESOLVED).await;
    assert_eq!((status, answer["status"].as_str()), (200, Some("accepted")));
    wait_for("a direct attempt that cannot resolve the host", || async {
        bridge.logs.lock().unwrap().iter().any(|l| l.contains("\"reason\":\"connect\""))
    })
    .await;
    assert_eq!(mock.posted().len(), 1, "NO_PROXY bypassed the proxy");
}
