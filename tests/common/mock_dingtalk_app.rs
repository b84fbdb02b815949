//! The DingTalk app API on loopback (`channels-protocol.md` section 1), enforcing its rules: the token
//! endpoint with the app's credentials and an expiry (short in tests), the access-token header, the robot
//! code, `msgParam` as a JSON string with its msgKey's fields, at most 20 users a call, per-user invalid
//! and flow-controlled lists inside a success, 15000 bytes of msgParam for groups, 20 calls a second per
//! API, and v1.0 error bodies.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use serde_json::{Value, json};
use tokio::net::TcpListener;

#[derive(Clone, Debug)]
pub struct AppSpec {
    pub client_id: String,
    pub client_secret: String,
    pub robot_code: String,
    /// How long a token lives.
    pub token_ttl: Duration,
    /// Users the organisation does not know.
    pub invalid: Vec<String>,
    /// Users flow-controlled the first time they are sent to.
    pub flow_controlled_once: Vec<String>,
    pub conversations: Vec<String>,
}

/// A message one user or group received.
#[derive(Clone, Debug)]
pub struct Received {
    pub to: String,
    pub msg_key: String,
    pub param: Value,
}

#[derive(Default)]
struct State {
    tokens: HashMap<String, Instant>,
    fetches: usize,
    received: Vec<Received>,
    codes: Vec<String>,
    held_back: HashSet<String>,
    calls: HashMap<&'static str, VecDeque<Instant>>,
    quota_spent: bool,
}

#[derive(Clone)]
pub struct MockDingTalkApp {
    pub addr: SocketAddr,
    spec: Arc<AppSpec>,
    state: Arc<Mutex<State>>,
}

fn answer(status: u16, body: Value) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(body.to_string().into()))
        .unwrap()
}

fn error(status: u16, code: &str, message: &str) -> Response<Full<Bytes>> {
    answer(status, json!({"code": code, "requestid": "req-1", "message": message}))
}

impl MockDingTalkApp {
    pub async fn start(spec: AppSpec) -> MockDingTalkApp {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mock = MockDingTalkApp { addr, spec: Arc::new(spec), state: Arc::default() };
        super::serve(listener, mock.clone(), |m: MockDingTalkApp, req| async move { m.handle(req).await });
        mock
    }

    pub fn api_base(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn received(&self) -> Vec<Received> {
        self.state.lock().unwrap().received.clone()
    }

    /// How many messages `to` (a userId or openConversationId) received.
    pub fn count_for(&self, to: &str) -> usize {
        self.state.lock().unwrap().received.iter().filter(|r| r.to == to).count()
    }

    pub fn token_fetches(&self) -> usize {
        self.state.lock().unwrap().fetches
    }

    /// Every token handed out stops working at once, as when DingTalk expires or revokes it early.
    pub fn revoke_tokens(&self) {
        self.state.lock().unwrap().tokens.clear();
    }

    /// From now on every send is refused: the organisation's monthly API quota is spent.
    pub fn spend_quota(&self) {
        self.state.lock().unwrap().quota_spent = true;
    }

    /// Every error code answered, in order.
    pub fn codes(&self) -> Vec<String> {
        self.state.lock().unwrap().codes.clone()
    }

    async fn handle(&self, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, hyper::Error> {
        let path = req.uri().path().to_string();
        let token = req.headers().get("x-acs-dingtalk-access-token").and_then(|v| v.to_str().ok()).map(str::to_string);
        let bytes = req.into_body().collect().await?.to_bytes();
        let resp = self.judge(&path, token.as_deref(), &bytes);
        Ok(resp)
    }

    fn fail(&self, status: u16, code: &str, message: &str) -> Response<Full<Bytes>> {
        self.state.lock().unwrap().codes.push(code.to_string());
        error(status, code, message)
    }

    fn judge(&self, path: &str, token: Option<&str>, bytes: &[u8]) -> Response<Full<Bytes>> {
        let Ok(body) = serde_json::from_slice::<Value>(bytes) else {
            return self.fail(400, "invalidParameter", "body is not JSON");
        };
        if path == "/v1.0/oauth2/accessToken" {
            if body["appKey"] != self.spec.client_id.as_str() || body["appSecret"] != self.spec.client_secret.as_str() {
                return self.fail(400, "invalidClientIdOrSecret", "无效的clientId或者clientSecret");
            }
            let mut s = self.state.lock().unwrap();
            s.fetches += 1;
            // A fetch within validity returns the same token (doc).
            let now = Instant::now();
            let live = s.tokens.iter().find(|(_, until)| **until > now).map(|(t, _)| t.clone());
            let token = live.unwrap_or_else(|| format!("app-token-{}", s.fetches));
            let until = *s.tokens.entry(token.clone()).or_insert(now + self.spec.token_ttl);
            let left = until.saturating_duration_since(now).as_secs().max(1);
            return answer(200, json!({"accessToken": token, "expireIn": left}));
        }
        let api: &'static str = match path {
            "/v1.0/robot/oToMessages/batchSend" => "oto",
            "/v1.0/robot/groupMessages/send" => "group",
            _ => return self.fail(404, "notFound", "no such API"),
        };
        let valid =
            token.is_some_and(|t| self.state.lock().unwrap().tokens.get(t).is_some_and(|&u| u > Instant::now()));
        if !valid {
            return self.fail(401, "InvalidAuthentication", "不合法的access_token");
        }
        {
            let mut s = self.state.lock().unwrap();
            let now = Instant::now();
            let calls = s.calls.entry(api).or_default();
            while calls.front().is_some_and(|&t| now.duration_since(t) >= Duration::from_secs(1)) {
                calls.pop_front();
            }
            calls.push_back(now);
            if calls.len() > 20 {
                drop(s);
                return self.fail(403, "Forbidden.AccessDenied.QpsLimitForAppkeyAndApi", "qps limit");
            }
            if s.quota_spent {
                drop(s);
                return self.fail(403, "Forbidden.AccessDenied.ApiCountLimitForOrg", "api count limit for org");
            }
        }
        if body["robotCode"] != self.spec.robot_code.as_str() {
            return self.fail(400, "invalidParameter.robotCode.notExist", "robotCode不存在");
        }
        let msg_key = body["msgKey"].as_str().unwrap_or_default().to_string();
        let Some(param) = body["msgParam"].as_str() else {
            return self.fail(400, "invalidParameter.msgParam.invalid", "msgParam must be a JSON string");
        };
        let Ok(parsed) = serde_json::from_str::<Value>(param) else {
            return self.fail(400, "invalidParameter.msgParam.invalid", "msgParam is not JSON");
        };
        let needs: &[&str] = match msg_key.as_str() {
            "sampleText" => &["content"],
            "sampleMarkdown" => &["title", "text"],
            "sampleActionCard" => &["title", "text", "singleTitle", "singleURL"],
            k if k.starts_with("sampleActionCard") => &["title", "text", "actionTitle1", "actionURL1"],
            _ => return self.fail(400, "invalidParameter.msgKey.invalid", "unknown msgKey"),
        };
        if needs.iter().any(|f| !parsed[*f].is_string()) {
            return self.fail(400, "invalidParameter.msgParam.invalid", "msgParam lacks its msgKey's fields");
        }
        if api == "group" {
            if param.len() > 15_000 {
                return self.fail(400, "invalidParameter.msgParam.tooLong", "msgParam too long");
            }
            let Some(cid) =
                body["openConversationId"].as_str().filter(|c| self.spec.conversations.iter().any(|k| k == c))
            else {
                return self.fail(400, "invalid.openConversationId", "openConversationId无效");
            };
            let mut s = self.state.lock().unwrap();
            s.received.push(Received { to: cid.to_string(), msg_key, param: parsed });
            return answer(200, json!({"processQueryKey": "pqk"}));
        }
        let users: Vec<String> = body["userIds"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
            .unwrap_or_default();
        if users.is_empty() || users.len() > 20 {
            return self.fail(400, "invalidParameter.userIds.invalid", "userIds: 1 to 20");
        }
        let mut s = self.state.lock().unwrap();
        let (mut invalid, mut flow) = (vec![], vec![]);
        for u in users {
            if self.spec.invalid.contains(&u) {
                invalid.push(u);
            } else if self.spec.flow_controlled_once.contains(&u) && s.held_back.insert(u.clone()) {
                flow.push(u);
            } else {
                s.received.push(Received { to: u, msg_key: msg_key.clone(), param: parsed.clone() });
            }
        }
        answer(200, json!({"processQueryKey": "pqk", "invalidStaffIdList": invalid, "flowControlledStaffIdList": flow}))
    }
}
