//! A WeCom group-robot webhook on loopback that enforces the protocol as documented in
//! `channels-protocol.md` section 3: JSON, the key, message types and their fields, content sizes
//! (4096 bytes for markdown, 2048 for text: 40058 past them), 20 a minute (45009). Answers are HTTP 200
//! with an errcode, like the real server.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use serde_json::{Value, json};
use tokio::net::TcpListener;

/// A message the group would show, and whom it rings.
#[derive(Clone, Debug)]
pub struct Posted {
    pub key: String,
    pub body: Value,
    pub content: String,
    pub rings: Vec<String>,
}

#[derive(Default)]
struct State {
    keys: Vec<String>,
    posted: Vec<Posted>,
    codes: Vec<i64>,
    sends: HashMap<String, VecDeque<Instant>>,
}

#[derive(Clone)]
pub struct MockWeCom {
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
    /// At most this many messages in any window of `window` per key.
    per_window: usize,
    window: Duration,
}

impl MockWeCom {
    /// WeCom's documented limit: 20 a minute per robot.
    pub async fn start(keys: Vec<String>) -> MockWeCom {
        Self::start_with(keys, 20, Duration::from_secs(60)).await
    }

    /// A robot allowing `per_window` messages in any `window` (tests scale WeCom's minute down).
    pub async fn start_with(keys: Vec<String>, per_window: usize, window: Duration) -> MockWeCom {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(State { keys, ..State::default() }));
        let mock = MockWeCom { addr, state, per_window, window };
        super::serve(listener, mock.clone(), |m: MockWeCom, req| async move { m.handle(req).await });
        mock
    }

    pub fn url(&self, key: &str) -> String {
        format!("http://{}/cgi-bin/webhook/send?key={key}", self.addr)
    }

    pub fn posted(&self) -> Vec<Posted> {
        self.state.lock().unwrap().posted.clone()
    }

    pub fn codes(&self) -> Vec<i64> {
        self.state.lock().unwrap().codes.clone()
    }

    /// How many requests were refused with 45009.
    pub fn throttled(&self) -> usize {
        self.codes().iter().filter(|&&c| c == 45009).count()
    }

    async fn handle(&self, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, hyper::Error> {
        let key =
            req.uri().query().and_then(|q| q.split('&').find_map(|p| p.strip_prefix("key="))).unwrap_or("").to_string();
        let path_ok = req.uri().path() == "/cgi-bin/webhook/send";
        let bytes = req.into_body().collect().await?.to_bytes();
        let (code, msg) = if path_ok { self.judge(&key, &bytes) } else { (93000, "invalid webhook url") };
        self.state.lock().unwrap().codes.push(code);
        let body = json!({"errcode": code, "errmsg": msg}).to_string();
        Ok(Response::builder()
            .status(200)
            .header("content-type", "application/json")
            .body(Full::new(body.into()))
            .unwrap())
    }

    fn judge(&self, key: &str, bytes: &[u8]) -> (i64, &'static str) {
        let mut s = self.state.lock().unwrap();
        if !s.keys.iter().any(|k| k == key) {
            return (93000, "invalid webhook url");
        }
        let Ok(body) = serde_json::from_slice::<Value>(bytes) else { return (40008, "invalid message type") };
        let (content, limit, rings) = match body.get("msgtype").and_then(Value::as_str) {
            Some(kind @ ("markdown" | "markdown_v2")) => {
                let Some(content) = body.pointer(&format!("/{kind}/content")).and_then(Value::as_str) else {
                    return (44004, "empty content");
                };
                let rings = if kind == "markdown" {
                    content.split("<@").skip(1).filter_map(|r| r.split('>').next()).map(str::to_string).collect()
                } else {
                    vec![]
                };
                (content.to_string(), 4096, rings)
            }
            Some("text") => {
                let Some(content) = body.pointer("/text/content").and_then(Value::as_str) else {
                    return (44004, "empty content");
                };
                let list = |k: &str| -> Vec<String> {
                    body.pointer(&format!("/text/{k}"))
                        .and_then(Value::as_array)
                        .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
                        .unwrap_or_default()
                };
                let mut rings = list("mentioned_list");
                rings.extend(list("mentioned_mobile_list"));
                (content.to_string(), 2048, rings)
            }
            _ => return (40008, "invalid message type"),
        };
        if content.trim().is_empty() {
            return (44004, "empty content");
        }
        if content.len() > limit {
            return (40058, "content exceed max length");
        }
        let now = Instant::now();
        let sends = s.sends.entry(key.to_string()).or_default();
        while sends.front().is_some_and(|&t| now.duration_since(t) >= self.window) {
            sends.pop_front();
        }
        let over = sends.len() >= self.per_window;
        // Every request counts, refused or not: a sender that keeps trying stays refused.
        sends.push_back(now);
        if over {
            return (45009, "api freq out of limit");
        }
        s.posted.push(Posted { key: key.to_string(), body, content, rings });
        (0, "ok")
    }
}
