//! Misbehaving clients shared by the hardening and container tests: connection floods that hold the
//! server's attention, and the honest client that must still be answered.

use std::time::Duration;

/// How an attacking connection misbehaves.
#[derive(Clone, Copy, Debug)]
pub enum Attack {
    /// Headers of a 4 MB webhook and 1 KB of its body, then nothing.
    SlowBody,
    /// Half a request line's headers, then nothing.
    SlowHeaders,
    /// Connects and sends nothing.
    Idle,
}

/// Keeps `n` misbehaving connections from `from` open to `addr`, reopening each one the server closes
/// (at most `reopen` times each), until `stop`.
pub fn flood(
    addr: std::net::SocketAddr,
    from: std::net::IpAddr,
    n: usize,
    reopen: usize,
    stop: tokio::sync::watch::Receiver<bool>,
) -> Vec<tokio::task::JoinHandle<usize>> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    (0..n)
        .map(|i| {
            let attack = [Attack::SlowBody, Attack::SlowHeaders, Attack::Idle][i % 3];
            let mut stop = stop.clone();
            tokio::spawn(async move {
                let mut opened = 0;
                while opened <= reopen && !*stop.borrow() {
                    let socket = tokio::net::TcpSocket::new_v4().unwrap();
                    socket.bind(std::net::SocketAddr::new(from, 0)).unwrap();
                    let Ok(mut s) = socket.connect(addr).await else { continue };
                    opened += 1;
                    let head = "POST /dingtalk/ops/send HTTP/1.1\r\nhost: bridge\r\n";
                    let sent = match attack {
                        Attack::SlowBody => {
                            let headers =
                                format!("{head}content-type: application/json\r\ncontent-length: 4000000\r\n\r\n");
                            let body = format!("{{\"status\":\"firing\",\"alerts\":[{}", "{\"a\":1},".repeat(128));
                            s.write_all(format!("{headers}{body}").as_bytes()).await
                        }
                        Attack::SlowHeaders => s.write_all(head.as_bytes()).await,
                        Attack::Idle => Ok(()),
                    };
                    if sent.is_err() {
                        continue;
                    }
                    // Held until the server closes it (or the test ends).
                    let mut sink = [0u8; 1024];
                    tokio::select! {
                        _ = async { while matches!(s.read(&mut sink).await, Ok(n) if n > 0) {} } => {}
                        _ = stop.changed() => {}
                    }
                }
                opened
            })
        })
        .collect()
}

/// Health, readiness, metrics and a webhook, each on a new connection, each answered within a second.
pub async fn honest_round(base: &str, round: usize) {
    let client = reqwest::Client::builder().pool_max_idle_per_host(0).timeout(Duration::from_secs(1)).build().unwrap();
    for path in ["/-/healthy", "/-/ready", "/metrics"] {
        let r = client.get(format!("{base}{path}")).send().await;
        let r = r.unwrap_or_else(|e| panic!("round {round}: {path} not answered within a second: {e}"));
        assert_eq!(r.status(), 200, "round {round}: {path}");
    }
    let r = client
        .post(format!("{base}/dingtalk/ops/send"))
        .header("content-type", "application/json")
        .body(super::group(1000 + round))
        .send()
        .await
        .unwrap_or_else(|e| panic!("round {round}: webhook not answered within a second: {e}"));
    assert_eq!(r.status(), 200, "round {round}: {}", r.text().await.unwrap_or_default());
}
