//! DingTalk's enterprise app robot (Client ID, Client Secret, RobotCode): messages to members one to one
//! and to groups the robot is in. Its settings, its access token (one per app, cached, refreshed before it
//! expires, fetched by one task at a time, fetched again once when DingTalk says it expired), the stored
//! body (`msgKey` and `msgParam`), the request for each recipient, and (in [`answer`]) what each answer
//! means, per-user failures inside a success included.

pub mod answer;
mod config;
mod show;

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

pub use answer::Reason;
pub use config::KIND;

use super::http::{post, unanswered};
use super::token::TokenCache;
use super::{BoxFuture, Caps, Content, Outcome, Protocol, RateLimit, Recipients, Request, Sent, Shown};
use crate::secret::{Secret, scrub};

/// `msgParam` for a group may have at most this many bytes (doc); one-to-one messages are kept to it too.
pub const MAX_PARAM_BYTES: usize = 15_000;
/// Users per `batchSend` call (doc text: 20; its error table says 100).
pub const DEFAULT_BATCH: usize = 20;
/// 20 calls a second per app and API (doc); one budget per app is the safe side of that.
pub const RATE_LIMIT: RateLimit = RateLimit { messages: 20, per: Duration::from_secs(1) };
pub const DEFAULT_API_BASE: &str = "https://api.dingtalk.com";
const TOKEN_HEADER: &str = "x-acs-dingtalk-access-token";

/// An enterprise app's credentials (`dingtalk_apps.<name>`), shared by every target of the app. Its
/// access token is runtime state, in the token cache of the app.
#[derive(PartialEq, Eq)]
pub struct App {
    pub name: String,
    pub client_id: String,
    pub client_secret: Secret,
    pub robot_code: String,
    /// `https://api.dingtalk.com` unless a test points it elsewhere; no trailing slash.
    pub api_base: String,
}

impl App {
    pub fn new(name: &str, client_id: &str, client_secret: Secret, robot_code: &str, api_base: &str) -> App {
        App {
            name: name.to_string(),
            client_id: client_id.to_string(),
            client_secret,
            robot_code: robot_code.to_string(),
            api_base: api_base.trim_end_matches('/').to_string(),
        }
    }

    /// The app's token cache: one per app (its API and client id), whichever targets and configurations
    /// name it.
    fn tokens(&self) -> Arc<TokenCache> {
        TokenCache::for_app(&format!("dingtalk-app:{}:{}", self.api_base, self.client_id))
    }

    /// A token valid for a while yet: the cached one, or one fetched now (others wait for that fetch).
    async fn token(&self, client: &reqwest::Client) -> Result<Secret, Outcome> {
        self.tokens()
            .token(|| async {
                let body = json!({"appKey": self.client_id, "appSecret": self.client_secret.expose()}).to_string();
                let url = format!("{}/v1.0/oauth2/accessToken", self.api_base);
                match post(client, &url, &body, &[]).await {
                    Ok(a) => answer::classify_token(a.status, &a.body),
                    Err(e) => Err(unanswered(e)),
                }
            })
            .await
    }

    /// `text` without the client secret or `token`.
    fn scrub(&self, text: &str, token: Option<&Secret>) -> String {
        scrub(text, &[self.client_secret.expose(), token.map_or("", Secret::expose)])
    }
}

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
    /// The stored body: `msgKey` and `msgParam` (a JSON string, as the API wants it). Recipients are
    /// added at send time.
    fn stored_body(&self, c: &Content) -> String {
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

    /// The URL and body of the call that sends a stored `body` (msgKey and msgParam) to `to` (the
    /// access token goes in a header).
    fn request(&self, body: &str, to: &Recipients) -> (String, String) {
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
    async fn post(&self, client: &reqwest::Client, body: &str, to: &Recipients) -> Sent {
        let (url, request) = self.request(body, to);
        let mut expired = None;
        let mut status = None;
        for _ in 0..2 {
            let token = match self.app.token(client).await {
                Ok(token) => token,
                Err(outcome) => return Sent { outcome: outcome.map_detail(|d| self.app.scrub(d, None)), status },
            };
            let outcome = match post(client, &url, &request, &[(TOKEN_HEADER, token.expose())]).await {
                Ok(a) => {
                    status = Some(a.status);
                    match answer::classify_send(a.status, &a.body) {
                        answer::Answer::Outcome(outcome) => outcome,
                        answer::Answer::TokenExpired(detail) => {
                            self.app.tokens().drop_token(&token).await;
                            expired = Some(self.app.scrub(&detail, Some(&token)));
                            continue;
                        }
                    }
                }
                Err(e) => unanswered(e),
            };
            let outcome = match (outcome, to) {
                // Whom the call reached: everyone it named but those the answer lists.
                (Outcome::Partial(mut p), Recipients::Users(users)) => {
                    p.reached =
                        users.iter().filter(|u| !p.failed.contains(u) && !p.retry.contains(u)).cloned().collect();
                    Outcome::Partial(p)
                }
                (outcome, _) => outcome,
            };
            return Sent { outcome: outcome.map_detail(|d| self.app.scrub(d, Some(&token))), status };
        }
        let outcome = Outcome::Failed { reason: Reason::TokenRejected.into(), detail: expired.unwrap_or_default() };
        Sent { outcome, status }
    }
}

impl Protocol for AppTarget {
    fn caps(&self) -> Caps {
        Caps {
            // Messages name their recipients: no digests, order per recipient, no mentions (a direct
            // message rings its reader; the app's group messages carry none).
            digests: false,
            orders_by_recipient: true,
            direct: true,
            max_bytes: Some(MAX_PARAM_BYTES),
            ring_all: false,
            own_rate: Some(RATE_LIMIT),
            ..Caps::webhook("dingtalk_app", "DingTalk", self.msgtype.as_str())
        }
    }
    fn body(&self, content: &Content, _uuid: &str) -> String {
        self.stored_body(content)
    }
    /// What DingTalk counts against its limit: `msgParam`.
    fn measure(&self, body: &str) -> usize {
        serde_json::from_str::<Value>(body)
            .ok()
            .and_then(|v| v.get("msgParam").and_then(Value::as_str).map(str::len))
            .unwrap_or(body.len())
    }
    /// The users in calls of at most `batch`, then each group.
    fn plan(&self) -> Vec<Recipients> {
        let users = self.users.chunks(self.batch.max(1)).map(|c| Recipients::Users(c.to_vec()));
        users.chain(self.conversations.iter().map(|c| Recipients::Conversation(c.clone()))).collect()
    }
    /// The app's answers say how long (a second for QPS); this is for one that does not.
    fn throttle_pause(&self, rate: RateLimit, _penalty: Duration) -> Duration {
        let window = if rate.is_unlimited() { RATE_LIMIT.per } else { rate.per };
        window.max(Duration::from_secs(1))
    }
    /// One budget per app (20 calls a second per app and API; one for both APIs is the safe side).
    fn endpoint(&self, _target: &str) -> String {
        format!("dingtalk-app:{}:{}", self.app.api_base, self.app.client_id)
    }
    fn describe(&self) -> String {
        format!(
            "DingTalk app {} (robot {}, {} users, {} groups, {})",
            self.app.name,
            self.app.robot_code,
            self.users.len(),
            self.conversations.len(),
            self.msgtype.as_str()
        )
    }
    fn describe_recipients(&self, to: &Recipients) -> String {
        match to {
            Recipients::Users(u) => {
                let n = if u.len() == 1 { "1 user".to_string() } else { format!("{} users", u.len()) };
                format!("to {n} ({}) by POST /v1.0/robot/oToMessages/batchSend", u.join(", "))
            }
            Recipients::Conversation(c) => format!("to the group {c} by POST /v1.0/robot/groupMessages/send"),
        }
    }
    /// The call, with the robot code and its recipients (the token goes in a header, not shown).
    fn as_sent(&self, body: &str, _now_ms: i64, to: Option<&Recipients>) -> String {
        match to {
            Some(to) => self.request(body, to).1,
            None => body.to_string(),
        }
    }
    fn show(&self, body: &str) -> Option<Shown> {
        show::show(body)
    }
    fn send<'a>(&'a self, req: Request<'a>) -> BoxFuture<'a, Sent> {
        Box::pin(async move {
            match req.to {
                Some(to) => self.post(req.client, req.body, to).await,
                None => Sent {
                    outcome: Outcome::Failed {
                        reason: Reason::BadRequest.into(),
                        detail: "the stored message names no recipients".into(),
                    },
                    status: None,
                },
            }
        })
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
        let r = target(MsgType::Markdown, 45).plan();
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
        let body: Value = serde_json::from_str(&target(MsgType::Markdown, 1).stored_body(&content(&[]))).unwrap();
        assert_eq!(body["msgKey"], "sampleMarkdown");
        let param: Value = serde_json::from_str(body["msgParam"].as_str().unwrap()).unwrap();
        assert_eq!(param, json!({"title": "🔴 FIRING 1 · X", "text": "**x**"}));

        let buttons = [("Alertmanager", "http://am"), ("Silence", "http://am/s"), ("Runbook", "http://rb")];
        let body: Value =
            serde_json::from_str(&target(MsgType::ActionCard, 1).stored_body(&content(&buttons))).unwrap();
        assert_eq!(body["msgKey"], "sampleActionCard3");
        let param: Value = serde_json::from_str(body["msgParam"].as_str().unwrap()).unwrap();
        assert_eq!(
            (param["actionTitle3"].as_str(), param["actionURL3"].as_str()),
            (Some("Runbook"), Some("http://rb"))
        );
        let body: Value =
            serde_json::from_str(&target(MsgType::ActionCard, 1).stored_body(&content(&buttons[..1]))).unwrap();
        assert_eq!(body["msgKey"], "sampleActionCard");

        let t = target(MsgType::Text, 1);
        let body = t.stored_body(&content(&[]));
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
        let outcome = rt.block_on(t2.post(&reqwest::Client::new(), "{}", &Recipients::Users(vec!["u".into()]))).outcome;
        let Outcome::Retry { detail, .. } = outcome else { panic!("{outcome:?}") };
        assert!(!detail.contains("client-secret-xyz"), "{detail}");
        assert_eq!(t2.app.tokens().fetches(), 1);
    }
}
