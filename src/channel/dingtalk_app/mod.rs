//! DingTalk's enterprise app robot (Client ID, Client Secret, RobotCode): messages to members one to one
//! and to groups the robot is in. Its settings, its access token (one per app, cached, refreshed before it
//! expires, fetched by one task at a time, fetched again once when DingTalk says it expired), the stored
//! body (`msgKey` and `msgParam`), the request for each recipient, and (in [`answer`]) what each answer
//! means, per-user failures inside a success included.

pub mod answer;

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::time::Instant;

pub use answer::Reason;

use super::{Content, Outcome, RateLimit};
use crate::secret::{Secret, scrub};

/// `msgParam` for a group may have at most this many bytes (doc); one-to-one messages are kept to it too.
pub const MAX_PARAM_BYTES: usize = 15_000;
/// Users per `batchSend` call (doc text: 20; its error table says 100).
pub const DEFAULT_BATCH: usize = 20;
/// 20 calls a second per app and API (doc); one budget per app is the safe side of that.
pub const RATE_LIMIT: RateLimit = RateLimit { messages: 20, per: Duration::from_secs(1) };
pub const DEFAULT_API_BASE: &str = "https://api.dingtalk.com";
const TOKEN_HEADER: &str = "x-acs-dingtalk-access-token";

/// An enterprise app's credentials and its access token. Shared (`Arc`) by every target of the app, so
/// they share one token and one fetch.
pub struct App {
    pub name: String,
    pub client_id: String,
    pub client_secret: Secret,
    pub robot_code: String,
    /// `https://api.dingtalk.com` unless a test points it elsewhere; no trailing slash.
    pub api_base: String,
    /// The token and when to fetch a new one. The lock is held while fetching: one fetch at a time.
    token: tokio::sync::Mutex<Option<(Secret, Instant)>>,
    fetches: std::sync::atomic::AtomicU64,
}

impl App {
    pub fn new(name: &str, client_id: &str, client_secret: Secret, robot_code: &str, api_base: &str) -> App {
        App {
            name: name.to_string(),
            client_id: client_id.to_string(),
            client_secret,
            robot_code: robot_code.to_string(),
            api_base: api_base.trim_end_matches('/').to_string(),
            token: tokio::sync::Mutex::new(None),
            fetches: Default::default(),
        }
    }

    /// Access tokens fetched so far.
    pub fn token_fetches(&self) -> u64 {
        self.fetches.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// A token valid for a while yet: the cached one, or one fetched now (others wait for that fetch).
    async fn token(&self, client: &reqwest::Client) -> Result<Secret, Outcome> {
        let mut slot = self.token.lock().await;
        if let Some((token, refresh_at)) = slot.as_ref()
            && Instant::now() < *refresh_at
        {
            return Ok(token.clone());
        }
        let body = json!({"appKey": self.client_id, "appSecret": self.client_secret.expose()}).to_string();
        let url = format!("{}/v1.0/oauth2/accessToken", self.api_base);
        self.fetches.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (token, valid) = match super::post_json(client, &url, &body).await {
            Ok((status, answer)) => answer::classify_token(status, &answer)?,
            Err(e) => {
                return Err(Outcome::Retry {
                    reason: super::transport_reason(&e),
                    detail: super::error_chain(&e.without_url()),
                });
            }
        };
        // Fetched again well before it expires: a fifth of its life early, at least a minute.
        let early = (valid / 5).max(Duration::from_secs(60)).min(valid / 2);
        let token = Secret::new(token);
        *slot = Some((token.clone(), Instant::now() + valid - early));
        Ok(token)
    }

    /// Forgets `token` (DingTalk said it expired), unless another task already replaced it.
    async fn drop_token(&self, token: &Secret) {
        let mut slot = self.token.lock().await;
        if slot.as_ref().is_some_and(|(t, _)| t == token) {
            *slot = None;
        }
    }

    /// `text` without the client secret or `token`.
    fn scrub(&self, text: &str, token: Option<&Secret>) -> String {
        scrub(text, &[self.client_secret.expose(), token.map_or("", Secret::expose)])
    }
}

impl PartialEq for App {
    /// Apps are the same app when their settings are (the cached token does not count).
    fn eq(&self, other: &App) -> bool {
        (&self.name, &self.client_id, &self.client_secret, &self.robot_code, &self.api_base)
            == (&other.name, &other.client_id, &other.client_secret, &other.robot_code, &other.api_base)
    }
}

impl Eq for App {}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("name", &self.name)
            .field("client_id", &self.client_id)
            .field("robot_code", &self.robot_code)
            .field("api_base", &self.api_base)
            .finish_non_exhaustive()
    }
}

/// The same three types as the custom robot's, mapped to `msgKey`s.
pub use super::dingtalk::MsgType;

/// Who one stored message goes to: some users (one `batchSend` call), or one group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Recipients {
    Users(Vec<String>),
    Conversation(String),
}

impl Recipients {
    /// Who, for people: `to 2 users (a, b) by POST /v1.0/robot/oToMessages/batchSend`.
    pub fn describe(&self) -> String {
        match self {
            Recipients::Users(u) => {
                let n = if u.len() == 1 { "1 user".to_string() } else { format!("{} users", u.len()) };
                format!("to {n} ({}) by POST /v1.0/robot/oToMessages/batchSend", u.join(", "))
            }
            Recipients::Conversation(c) => format!("to the group {c} by POST /v1.0/robot/groupMessages/send"),
        }
    }

    /// How many recipients: users, or the one group.
    pub fn count(&self) -> usize {
        match self {
            Recipients::Users(u) => u.len(),
            Recipients::Conversation(_) => 1,
        }
    }

    /// Whether a message to `self` and one to `other` reach someone in common, so must arrive in order.
    pub fn meets(&self, other: &Recipients) -> bool {
        match (self, other) {
            (Recipients::Users(a), Recipients::Users(b)) => a.iter().any(|u| b.contains(u)),
            (Recipients::Conversation(a), Recipients::Conversation(b)) => a == b,
            _ => false,
        }
    }
}

/// One stored message's recipients: whom it is still to reach, and what became of the others (the
/// store's `recipients` column).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    pub to: Recipients,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub delivered: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failed: Vec<String>,
}

impl Delivery {
    pub fn new(to: Recipients) -> Delivery {
        Delivery { to, delivered: vec![], failed: vec![] }
    }

    /// The store's `recipients` column read back; `None` for messages of other channels.
    pub fn parse(column: Option<&str>) -> Option<Delivery> {
        column.and_then(|c| serde_json::from_str(c).ok())
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a delivery serializes")
    }
}

/// A `dingtalk_app` target: its app, its recipients, its message type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppTarget {
    pub app: Arc<App>,
    pub users: Vec<String>,
    pub conversations: Vec<String>,
    pub msgtype: MsgType,
    /// Users per call.
    pub batch: usize,
}

impl AppTarget {
    /// The recipients of each message: the users in calls of at most `batch`, then each group.
    pub fn recipients(&self) -> Vec<Recipients> {
        let users = self.users.chunks(self.batch.max(1)).map(|c| Recipients::Users(c.to_vec()));
        users.chain(self.conversations.iter().map(|c| Recipients::Conversation(c.clone()))).collect()
    }

    /// The stored body: `msgKey` and `msgParam` (a JSON string, as the API wants it). Recipients are
    /// added at send time.
    pub fn body(&self, c: &Content) -> String {
        let (key, param) = match self.msgtype {
            MsgType::Text => ("sampleText".to_string(), json!({"content": c.text})),
            MsgType::ActionCard if c.buttons.len() == 1 => (
                "sampleActionCard".to_string(),
                json!({"title": c.title, "text": c.text, "singleTitle": c.buttons[0].0, "singleURL": c.buttons[0].1}),
            ),
            MsgType::ActionCard if c.buttons.len() > 1 => {
                let buttons = &c.buttons[..c.buttons.len().min(5)];
                let mut param = json!({"title": c.title, "text": c.text});
                for (i, (title, url)) in buttons.iter().enumerate() {
                    param[format!("actionTitle{}", i + 1)] = json!(title);
                    param[format!("actionURL{}", i + 1)] = json!(url);
                }
                (format!("sampleActionCard{}", buttons.len()), param)
            }
            _ => ("sampleMarkdown".to_string(), json!({"title": c.title, "text": c.text})),
        };
        json!({"msgKey": key, "msgParam": param.to_string()}).to_string()
    }

    /// What DingTalk counts against its limit: `msgParam`.
    pub fn measure(&self, body: &str) -> usize {
        serde_json::from_str::<Value>(body)
            .ok()
            .and_then(|v| v.get("msgParam").and_then(Value::as_str).map(str::len))
            .unwrap_or(body.len())
    }

    /// The URL and body of the call that sends a stored `body` (msgKey and msgParam) to `to` (the
    /// access token goes in a header).
    pub fn request(&self, body: &str, to: &Recipients) -> (String, String) {
        let stored: Value = serde_json::from_str(body).unwrap_or_default();
        let (path, request) = match to {
            Recipients::Users(users) => (
                "/v1.0/robot/oToMessages/batchSend",
                json!({"robotCode": self.app.robot_code, "userIds": users, "msgKey": stored["msgKey"], "msgParam": stored["msgParam"]}),
            ),
            Recipients::Conversation(id) => (
                "/v1.0/robot/groupMessages/send",
                json!({"robotCode": self.app.robot_code, "openConversationId": id, "msgKey": stored["msgKey"], "msgParam": stored["msgParam"]}),
            ),
        };
        (format!("{}{path}", self.app.api_base), request.to_string())
    }

    /// Sends `body` to `to`: with the app's token, fetched again and resent once if DingTalk says it
    /// expired.
    pub async fn send(&self, client: &reqwest::Client, body: &str, to: &Recipients) -> Outcome {
        let (url, request) = self.request(body, to);
        let mut expired = None;
        for _ in 0..2 {
            let token = match self.app.token(client).await {
                Ok(token) => token,
                Err(outcome) => return outcome.map_detail(|d| self.app.scrub(d, None)),
            };
            let outcome = match super::post_json_with(client, &url, &request, &[(TOKEN_HEADER, token.expose())]).await {
                Ok((status, answer)) => match answer::classify_send(status, &answer) {
                    answer::Answer::Outcome(outcome) => outcome,
                    answer::Answer::TokenExpired(detail) => {
                        self.app.drop_token(&token).await;
                        expired = Some(self.app.scrub(&detail, Some(&token)));
                        continue;
                    }
                },
                Err(e) => {
                    Outcome::Retry { reason: super::transport_reason(&e), detail: super::error_chain(&e.without_url()) }
                }
            };
            return outcome.map_detail(|d| self.app.scrub(d, Some(&token)));
        }
        Outcome::Failed {
            reason: super::Reason::DingTalkApp(Reason::TokenRejected),
            detail: expired.unwrap_or_default(),
        }
    }

    pub fn describe(&self) -> String {
        format!(
            "DingTalk app {} (robot {}, {} users, {} groups, {})",
            self.app.name,
            self.app.robot_code,
            self.users.len(),
            self.conversations.len(),
            self.msgtype.as_str()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channel::Level;

    fn target(msgtype: MsgType, users: usize) -> AppTarget {
        AppTarget {
            app: Arc::new(App::new("corp", "ding123", Secret::new("client-secret-xyz"), "ding123", DEFAULT_API_BASE)),
            users: (0..users).map(|i| format!("user{i:02}")).collect(),
            conversations: vec!["cidA==".into()],
            msgtype,
            batch: DEFAULT_BATCH,
        }
    }

    fn content<'a>(buttons: &'a [(&'a str, &'a str)]) -> Content<'a> {
        Content {
            title: "🔴 FIRING 1 · X",
            text: "**x**",
            firing: true,
            ring: Box::leak(Box::default()),
            buttons,
            level: Level::Critical,
        }
    }

    #[test]
    fn users_go_in_calls_of_twenty_then_each_group() {
        let r = target(MsgType::Markdown, 45).recipients();
        let sizes: Vec<usize> = r
            .iter()
            .map(|r| match r {
                Recipients::Users(u) => u.len(),
                Recipients::Conversation(_) => 0,
            })
            .collect();
        assert_eq!(sizes, [20, 20, 5, 0]);
        assert_eq!(r[3], Recipients::Conversation("cidA==".into()));
        assert_eq!(serde_json::to_string(&r[3]).unwrap(), r#"{"conversation":"cidA=="}"#);
    }

    #[test]
    fn msg_param_is_a_json_string_of_the_msg_key_fields() {
        let body: Value = serde_json::from_str(&target(MsgType::Markdown, 1).body(&content(&[]))).unwrap();
        assert_eq!(body["msgKey"], "sampleMarkdown");
        let param: Value = serde_json::from_str(body["msgParam"].as_str().unwrap()).unwrap();
        assert_eq!(param, json!({"title": "🔴 FIRING 1 · X", "text": "**x**"}));

        let buttons = [("Alertmanager", "http://am"), ("Silence", "http://am/s"), ("Runbook", "http://rb")];
        let body: Value = serde_json::from_str(&target(MsgType::ActionCard, 1).body(&content(&buttons))).unwrap();
        assert_eq!(body["msgKey"], "sampleActionCard3");
        let param: Value = serde_json::from_str(body["msgParam"].as_str().unwrap()).unwrap();
        assert_eq!(
            (param["actionTitle3"].as_str(), param["actionURL3"].as_str()),
            (Some("Runbook"), Some("http://rb"))
        );
        let body: Value = serde_json::from_str(&target(MsgType::ActionCard, 1).body(&content(&buttons[..1]))).unwrap();
        assert_eq!(body["msgKey"], "sampleActionCard");

        let t = target(MsgType::Text, 1);
        let body = t.body(&content(&[]));
        assert_eq!(t.measure(&body), r#"{"content":"**x**"}"#.len());
    }

    #[test]
    fn an_apps_debug_and_errors_never_show_its_secret() {
        let t = target(MsgType::Markdown, 1);
        assert!(!format!("{:?}", t).contains("client-secret-xyz"));
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let mut t2 = t.clone();
        t2.app =
            Arc::new(App::new("corp", "ding123", Secret::new("client-secret-xyz"), "ding123", "http://127.0.0.1:1"));
        let outcome = rt.block_on(t2.send(&reqwest::Client::new(), "{}", &Recipients::Users(vec!["u".into()])));
        let Outcome::Retry { detail, .. } = outcome else { panic!("{outcome:?}") };
        assert!(!detail.contains("client-secret-xyz"), "{detail}");
        assert_eq!(t2.app.token_fetches(), 1);
    }
}
