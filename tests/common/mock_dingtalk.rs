//! A DingTalk custom-robot endpoint on loopback that enforces the protocol's rules as documented in
//! `dingtalk-protocol.md`: content type, JSON, access_token, signature and its one-hour window, message
//! types and required fields, keywords, 20000 bytes, N messages per window with a block when exceeded,
//! msgUuid deduplication. Answers are HTTP 200 with errcode, like the real server. The signature check is
//! written here independently of the bridge's own signing code.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use bytes::Bytes;
use hmac::{Hmac, Mac};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use serde_json::{Value, json};
use sha2::Sha256;
use tokio::net::TcpListener;

#[derive(Clone, Debug)]
pub struct RobotSpec {
    pub token: String,
    pub secret: Option<String>,
    pub keywords: Vec<String>,
}

#[derive(Clone, Debug)]
pub struct Limits {
    pub max_bytes: usize,
    pub per_window: usize,
    pub window: Duration,
    pub block: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_bytes: 20_000, per_window: 20, window: Duration::from_secs(60), block: Duration::from_secs(600) }
    }
}

/// A message the group would show.
#[derive(Clone, Debug)]
pub struct Posted {
    pub token: String,
    pub body: Value,
    pub msg_uuid: Option<String>,
    /// Every `at` mobile/userId that is also written as `@...` in the text (DingTalk highlights only those).
    pub highlighted: Vec<String>,
}

/// One request as the mock answered it.
#[derive(Clone, Debug)]
pub struct Answered {
    pub token: String,
    pub errcode: i64,
    pub errmsg: String,
}

/// How the mock misbehaves, set by tests.
#[derive(Clone, Debug, Default)]
pub enum Mode {
    #[default]
    Normal,
    /// Drop the connection without answering (DingTalk unreachable).
    Down,
    /// Answer HTTP 502.
    BadGateway,
    /// Accept and post the message, then hold the answer this long (the sender times out or is killed).
    SlowAnswer(Duration),
}

#[derive(Default)]
struct State {
    robots: HashMap<String, RobotSpec>,
    posted: Vec<Posted>,
    answered: Vec<Answered>,
    seen_uuids: HashSet<(String, String)>,
    duplicate_uuids: usize,
    sends: HashMap<String, VecDeque<Instant>>,
    blocked_until: HashMap<String, Instant>,
    /// errcodes to answer the next requests with, before any other check (scripted failures).
    scripted: VecDeque<(i64, String)>,
    mode: Mode,
    requests: usize,
}

#[derive(Clone)]
pub struct MockDingTalk {
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
    limits: Limits,
}

impl MockDingTalk {
    pub async fn start(robots: Vec<RobotSpec>, limits: Limits) -> MockDingTalk {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(State {
            robots: robots.into_iter().map(|r| (r.token.clone(), r)).collect(),
            ..State::default()
        }));
        let mock = MockDingTalk { addr, state, limits };
        super::serve(listener, mock.clone(), |m: MockDingTalk, req| async move { m.handle(req).await });
        mock
    }

    pub fn url(&self, token: &str) -> String {
        format!("http://{}/robot/send?access_token={token}", self.addr)
    }

    pub fn set_mode(&self, mode: Mode) {
        self.state.lock().unwrap().mode = mode;
    }

    pub fn script(&self, errcode: i64, errmsg: &str) {
        self.state.lock().unwrap().scripted.push_back((errcode, errmsg.to_string()));
    }

    pub fn posted(&self) -> Vec<Posted> {
        self.state.lock().unwrap().posted.clone()
    }

    pub fn answered(&self) -> Vec<Answered> {
        self.state.lock().unwrap().answered.clone()
    }

    /// Requests that reached the mock, answered or not.
    pub fn requests(&self) -> usize {
        self.state.lock().unwrap().requests
    }

    /// Resends of an already-posted msgUuid (answered ok, not posted again).
    pub fn duplicate_uuids(&self) -> usize {
        self.state.lock().unwrap().duplicate_uuids
    }

    pub fn throttled(&self) -> usize {
        self.answered().iter().filter(|a| a.errcode == 130101).count()
    }

    async fn handle(&self, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, std::io::Error> {
        let mode = {
            let mut s = self.state.lock().unwrap();
            s.requests += 1;
            s.mode.clone()
        };
        match mode {
            Mode::Down => return Err(std::io::Error::other("mock is down")),
            Mode::BadGateway => {
                let mut r = Response::new(Full::new(Bytes::from_static(b"<html>502 Bad Gateway</html>")));
                *r.status_mut() = hyper::StatusCode::BAD_GATEWAY;
                return Ok(r);
            }
            _ => {}
        }
        let query: HashMap<String, String> = req
            .uri()
            .query()
            .unwrap_or("")
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let path_ok = req.uri().path() == "/robot/send" && req.method() == hyper::Method::POST;
        let content_type = req.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
        let body = req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
        let token = query.get("access_token").cloned().unwrap_or_default();
        let (errcode, errmsg) = self.check(path_ok, &content_type, &query, &token, &body);
        self.state.lock().unwrap().answered.push(Answered { token, errcode, errmsg: errmsg.clone() });
        if let (0, Mode::SlowAnswer(delay)) = (errcode, mode) {
            tokio::time::sleep(delay).await;
        }
        let answer = json!({"errcode": errcode, "errmsg": errmsg}).to_string();
        Ok(Response::new(Full::new(Bytes::from(answer))))
    }

    fn check(
        &self,
        path_ok: bool,
        content_type: &str,
        query: &HashMap<String, String>,
        token: &str,
        body: &[u8],
    ) -> (i64, String) {
        let mut s = self.state.lock().unwrap();
        if let Some(scripted) = s.scripted.pop_front() {
            return scripted;
        }
        if !path_ok {
            return (40035, "缺少参数 json".into());
        }
        if !content_type.starts_with("application/json") {
            return (43004, "无效的HTTP HEADER Content-Type".into());
        }
        let Some(robot) = s.robots.get(token).cloned() else {
            return (300001, "token is not exist".into());
        };
        if let Some(secret) = &robot.secret {
            let (Some(ts), Some(sign)) = (query.get("timestamp"), query.get("sign")) else {
                return (310000, "sign not match, more: [missing timestamp or sign]".into());
            };
            let Ok(ts_ms) = ts.parse::<i64>() else {
                return (310000, "invalid timestamp, more: [not a number]".into());
            };
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
            if (now - ts_ms).abs() > 3600 * 1000 {
                return (310000, "invalid timestamp, more: [over one hour]".into());
            }
            // The server decodes the query once.
            let decoded = percent_decode(sign);
            let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
            mac.update(format!("{ts}\n{secret}").as_bytes());
            let expected = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
            if decoded != expected {
                return (310000, "sign not match, more: [helpLink:https://open.dingtalk.com/document/]".into());
            }
        }
        let now = Instant::now();
        if s.blocked_until.get(token).is_some_and(|&until| until > now) {
            return (130101, "send too fast, exceed 20 times per minute".into());
        }
        let window = self.limits.window;
        let sends = s.sends.entry(token.to_string()).or_default();
        while sends.front().is_some_and(|&t| now.duration_since(t) >= window) {
            sends.pop_front();
        }
        sends.push_back(now);
        if sends.len() > self.limits.per_window {
            s.blocked_until.insert(token.to_string(), now + self.limits.block);
            return (130101, "send too fast, exceed 20 times per minute".into());
        }
        if body.len() > self.limits.max_bytes {
            return (460101, format!("message too long, exceed {} bytes", self.limits.max_bytes));
        }
        let Ok(msg) = serde_json::from_slice::<Value>(body) else {
            return (40035, "缺少参数 json".into());
        };
        let nonempty = |v: &Value| v.as_str().is_some_and(|s| !s.is_empty());
        let visible = match msg["msgtype"].as_str() {
            Some("text") if nonempty(&msg["text"]["content"]) => msg["text"]["content"].as_str().unwrap().to_string(),
            Some("markdown") if nonempty(&msg["markdown"]["title"]) && nonempty(&msg["markdown"]["text"]) => {
                format!("{}\n{}", msg["markdown"]["title"].as_str().unwrap(), msg["markdown"]["text"].as_str().unwrap())
            }
            Some("actionCard")
                if nonempty(&msg["actionCard"]["title"])
                    && nonempty(&msg["actionCard"]["text"])
                    && nonempty(&msg["actionCard"]["singleURL"]) =>
            {
                format!(
                    "{}\n{}",
                    msg["actionCard"]["title"].as_str().unwrap(),
                    msg["actionCard"]["text"].as_str().unwrap()
                )
            }
            Some("text" | "markdown" | "actionCard") => {
                return (40035, "缺少参数 json (required field missing)".into());
            }
            _ => return (400105, "不支持的消息类型".into()),
        };
        if !robot.keywords.is_empty() && !robot.keywords.iter().any(|k| visible.contains(k.as_str())) {
            return (310000, "keywords not in content, more: [helpLink:https://open.dingtalk.com/document/]".into());
        }
        let msg_uuid = msg["msgUuid"].as_str().map(str::to_string);
        if let Some(uuid) = &msg_uuid
            && !s.seen_uuids.insert((token.to_string(), uuid.clone()))
        {
            s.duplicate_uuids += 1;
            return (0, "ok".into());
        }
        let text = msg["markdown"]["text"].as_str().or(msg["text"]["content"].as_str()).unwrap_or("");
        let at = &msg["at"];
        let highlighted = at["atMobiles"]
            .as_array()
            .into_iter()
            .chain(at["atUserIds"].as_array())
            .flatten()
            .filter_map(Value::as_str)
            .filter(|m| text.contains(&format!("@{m}")))
            .map(str::to_string)
            .collect();
        s.posted.push(Posted { token: token.to_string(), body: msg, msg_uuid, highlighted });
        (0, "ok".into())
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        // Query decoding turns a raw '+' into a space, which is why the sign must be percent-encoded.
        out.push(if bytes[i] == b'+' { b' ' } else { bytes[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
