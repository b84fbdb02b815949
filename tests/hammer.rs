//! Hammering the delivery path: many targets, closed-loop webhooks with rate limiting off, a fast mock.
//! Every message the mock received must be recorded as delivered: none may stay counted as waiting.

mod common;

use common::mock_dingtalk::{Limits, MockDingTalk, RobotSpec};
use common::{Bridge, group, metric, wait_for};
use dingtalk_bridge::config::SyncMode;
use dingtalk_bridge::store::{State, Store};

const TARGETS: usize = 16;
const CLIENTS: usize = 16;
/// Bounded: each client posts this many webhooks, one after another.
const POSTS_PER_CLIENT: usize = 1000;

fn robot(i: usize) -> RobotSpec {
    RobotSpec { token: format!("tok-{i}"), secret: None, keywords: vec![] }
}

/// A fast mock with one robot per target, and the bridge with rate limiting off.
async fn start(sync: &str) -> (MockDingTalk, Bridge, tempfile::TempDir) {
    let limits = Limits { per_window: 1_000_000, ..Limits::default() };
    let mock = MockDingTalk::start((0..TARGETS).map(robot).collect(), limits).await;
    let dir = tempfile::tempdir().unwrap();
    let targets: String =
        (0..TARGETS).map(|i| format!("  t{i}:\n    url: \"{}\"\n", mock.url(&format!("tok-{i}")))).collect();
    let yaml = format!(
        "listen: \"127.0.0.1:0\"\nstorage: {{path: outbox.sqlite3, sync: {sync}}}\ndelivery:\n  rate_limit: off\ntargets:\n{targets}"
    );
    let bridge = Bridge::start(dir.path(), &yaml).await;
    (mock, bridge, dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn closed_loop_over_many_targets_never_leaves_a_delivered_message_waiting() {
    let (mock, bridge, _dir) = start("normal").await;
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let base = bridge.url("");
            // One keep-alive connection per client, as Alertmanager and wrk have.
            let client = reqwest::Client::new();
            tokio::spawn(async move {
                let mut accepted = 0;
                for k in 0..POSTS_PER_CLIENT {
                    let n = c * POSTS_PER_CLIENT + k;
                    let url = format!("{base}/dingtalk/t{}/send", n % TARGETS);
                    let resp = client.post(&url).header("content-type", "application/json").body(group(n));
                    let resp = resp.send().await.unwrap();
                    assert_eq!(resp.status(), 200);
                    let answer: serde_json::Value = serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap();
                    accepted += answer["messages"].as_array().map_or(0, Vec::len);
                }
                accepted
            })
        })
        .collect();
    let mut expected = 0;
    for c in clients {
        expected += c.await.unwrap();
    }
    assert_eq!(expected, CLIENTS * POSTS_PER_CLIENT);
    wait_for("every message to reach the mock", || async { mock.posted().len() >= expected }).await;
    wait_for("every delivery to be recorded", || async {
        let m = bridge.metrics().await;
        (0..TARGETS).all(|i| metric(&m, "dingtalk_bridge_queue_depth", &[("target", &format!("t{i}"))]) == 0.0)
    })
    .await;
    assert_eq!(mock.posted().len(), expected, "nothing posted twice");
    assert_eq!(mock.duplicate_uuids(), 0);
    let m = bridge.metrics().await;
    let delivered: f64 =
        (0..TARGETS).map(|i| metric(&m, "dingtalk_bridge_notifications_total", &[("target", &format!("t{i}"))])).sum();
    assert_eq!(delivered as usize, expected);
    bridge.stop().await;
}

/// A webhook whose caller hangs up before the answer: hyper drops the request's future, but what the
/// store committed must still be sent (its sender must hear of it), not wait for the next notification.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_caller_that_hangs_up_after_posting_leaves_nothing_waiting() {
    use tokio::io::AsyncWriteExt;
    let (mock, bridge, _dir) = start("full").await;
    for round in 0..20 {
        let posts: Vec<_> = (0..TARGETS)
            .map(|t| {
                let addr = bridge.addr;
                tokio::spawn(async move {
                    let body = group(round * TARGETS + t);
                    let request = format!(
                        "POST /dingtalk/t{t}/send HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
                    s.write_all(request.as_bytes()).await.unwrap();
                    // Gone before the answer.
                    drop(s);
                })
            })
            .collect();
        for p in posts {
            p.await.unwrap();
        }
        // Let the senders go idle, so a lost wake-up would leave the message behind.
        wait_for("the round to be accepted or dropped", || async {
            let m = bridge.metrics().await;
            (0..TARGETS).all(|i| metric(&m, "dingtalk_bridge_queue_depth", &[("target", &format!("t{i}"))]) == 0.0)
        })
        .await;
    }
    // Whatever was committed was delivered, once.
    let store = Store::open(&bridge.dir.join("outbox.sqlite3"), SyncMode::Normal).unwrap();
    let mut stored = 0;
    for t in 0..TARGETS {
        let records = store.records(&format!("t{t}")).await.unwrap();
        assert!(records.iter().all(|r| r.state == State::Delivered), "{records:?}");
        stored += records.len();
    }
    assert!(stored > 0, "some requests got through before their callers hung up");
    assert_eq!(mock.posted().len(), stored);
    assert_eq!(mock.duplicate_uuids(), 0);
    bridge.stop().await;
}
