//! A Feishu/Lark custom-bot webhook on loopback that enforces the protocol's rules as documented in
//! `channels-protocol.md` section 2: JSON, the hook token in the path, the signature in the body (Feishu's
//! algorithm, written here independently of the bridge: key = timestamp + "\n" + secret, empty message)
//! with its one-hour window, message types and their required fields, keywords in the visible text (not
//! in link targets), 20 KB, and both rate limits at once (N a minute and M a second) answered with 11232.
//! Answers carry Feishu's code in the body, with HTTP 400 for request errors, like the real server.

use std::collections::{HashMap, VecDeque};
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
pub struct BotSpec {
    pub token: String,
    pub secret: Option<String>,
    pub keywords: Vec<String>,
}

/// A message the group would show: its body, and the user ids its mentions would ring.
#[derive(Clone, Debug)]
pub struct Posted {
    pub token: String,
    pub body: Value,
    /// What a reader sees: title, text, button labels.
    pub text: String,
    pub rings: Vec<String>,
}

#[derive(Default)]
struct State {
    bots: HashMap<String, BotSpec>,
    posted: Vec<Posted>,
    codes: Vec<i64>,
    sends: HashMap<String, VecDeque<Instant>>,
}

#[derive(Clone)]
pub struct MockFeishu {
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
    /// (messages, per) windows that hold at once.
    windows: Vec<(usize, Duration)>,
}

fn feishu_sign(timestamp: &str, secret: &str) -> String {
    let key = format!("{timestamp}\n{secret}");
    let mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).unwrap();
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// What a reader sees of a message (where Feishu looks for keywords), and who it rings.
fn visible(body: &Value) -> Option<(String, Vec<String>)> {
    let at_ids = |text: &str, open: &str| -> Vec<String> {
        text.split(open).skip(1).filter_map(|rest| rest.split(['>', '"']).next()).map(str::to_string).collect()
    };
    match body.get("msg_type")?.as_str()? {
        "text" => {
            let text = body.pointer("/content/text")?.as_str()?.to_string();
            let rings = at_ids(&text, "<at user_id=\"");
            Some((text, rings))
        }
        "post" => {
            let post = body.pointer("/content/post/zh_cn")?;
            let mut text = post.get("title")?.as_str()?.to_string();
            let mut rings = vec![];
            for line in post.get("content")?.as_array()? {
                for el in line.as_array()? {
                    // A post's text styles are these four; anything else is a bad request.
                    if let Some(style) = el.get("style") {
                        let known = ["bold", "italic", "underline", "lineThrough"];
                        if !style.as_array()?.iter().all(|s| s.as_str().is_some_and(|s| known.contains(&s))) {
                            return None;
                        }
                    }
                    match el.get("tag")?.as_str()? {
                        "text" => text.push_str(el.get("text")?.as_str()?),
                        "a" => {
                            let href = el.get("href")?.as_str()?;
                            if !(href.starts_with("http://") || href.starts_with("https://")) {
                                return None;
                            }
                            text.push_str(el.get("text")?.as_str()?);
                        }
                        "at" => rings.push(el.get("user_id")?.as_str()?.to_string()),
                        _ => return None,
                    }
                }
                text.push('\n');
            }
            Some((text, rings))
        }
        "interactive" => {
            let card = body.get("card")?;
            let mut text = card.pointer("/header/title/content")?.as_str()?.to_string();
            for el in card.get("elements")?.as_array()? {
                match el.get("tag")?.as_str()? {
                    "markdown" => text.push_str(el.get("content")?.as_str()?),
                    "action" => {
                        for b in el.get("actions")?.as_array()? {
                            text.push_str(b.pointer("/text/content")?.as_str()?);
                        }
                    }
                    _ => return None,
                }
            }
            let rings = at_ids(&text, "<at id=");
            Some((text, rings))
        }
        _ => None,
    }
}

impl MockFeishu {
    /// Feishu's documented limits: 100 a minute and 5 a second per bot.
    pub async fn start(bots: Vec<BotSpec>) -> MockFeishu {
        Self::start_with(bots, vec![(100, Duration::from_secs(60)), (5, Duration::from_secs(1))]).await
    }

    pub async fn start_with(bots: Vec<BotSpec>, windows: Vec<(usize, Duration)>) -> MockFeishu {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(State {
            bots: bots.into_iter().map(|b| (b.token.clone(), b)).collect(),
            ..State::default()
        }));
        let mock = MockFeishu { addr, state, windows };
        super::serve(listener, mock.clone(), |m: MockFeishu, req| async move { m.handle(req).await });
        mock
    }

    pub fn url(&self, token: &str) -> String {
        format!("http://{}/open-apis/bot/v2/hook/{token}", self.addr)
    }

    pub fn posted(&self) -> Vec<Posted> {
        self.state.lock().unwrap().posted.clone()
    }

    /// Every code answered, in order.
    pub fn codes(&self) -> Vec<i64> {
        self.state.lock().unwrap().codes.clone()
    }

    async fn handle(&self, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, hyper::Error> {
        let path = req.uri().path().to_string();
        let json_type = req
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json"));
        let bytes = req.into_body().collect().await?.to_bytes();
        let (code, msg) = self.judge(&path, json_type, &bytes);
        self.state.lock().unwrap().codes.push(code);
        let status = if code == 0 || code == 11232 { 200 } else { 400 };
        let body = json!({"code": code, "msg": msg, "data": {}}).to_string();
        Ok(Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .body(Full::new(body.into()))
            .unwrap())
    }

    fn judge(&self, path: &str, json_type: bool, bytes: &[u8]) -> (i64, &'static str) {
        let Some(token) = path.strip_prefix("/open-apis/bot/v2/hook/") else {
            return (19001, "param invalid: incoming webhook access token invalid");
        };
        let mut s = self.state.lock().unwrap();
        let Some(bot) = s.bots.get(token).cloned() else {
            return (19001, "param invalid: incoming webhook access token invalid");
        };
        if !json_type {
            return (9499, "Bad Request");
        }
        if bytes.len() > 20_000 {
            return (9499, "Bad Request");
        }
        let Ok(body) = serde_json::from_slice::<Value>(bytes) else { return (9499, "Bad Request") };
        if let Some(secret) = &bot.secret {
            let (Some(ts), Some(sign)) =
                (body.get("timestamp").and_then(Value::as_str), body.get("sign").and_then(Value::as_str))
            else {
                return (19021, "sign match fail or timestamp is not within one hour from current time");
            };
            let now = chrono::Utc::now().timestamp();
            let fresh = ts.parse::<i64>().is_ok_and(|t| (now - t).abs() <= 3600);
            if !fresh || sign != feishu_sign(ts, secret) {
                return (19021, "sign match fail or timestamp is not within one hour from current time");
            }
        }
        let Some((text, rings)) = visible(&body) else { return (9499, "Bad Request") };
        if !bot.keywords.is_empty() && !bot.keywords.iter().any(|k| text.contains(k.as_str())) {
            return (19024, "Key Words Not Found");
        }
        let now = Instant::now();
        let sends = s.sends.entry(token.to_string()).or_default();
        let longest = self.windows.iter().map(|w| w.1).max().unwrap_or_default();
        while sends.front().is_some_and(|&t| now.duration_since(t) >= longest) {
            sends.pop_front();
        }
        let over =
            self.windows.iter().any(|&(n, per)| sends.iter().filter(|&&t| now.duration_since(t) < per).count() >= n);
        // Every request counts, refused or not.
        sends.push_back(now);
        if over {
            return (11232, "frequency limited psm[lark.oapi.app_platform_runtime]appID[1234]");
        }
        s.posted.push(Posted { token: token.to_string(), body, text, rings });
        (0, "success")
    }
}
