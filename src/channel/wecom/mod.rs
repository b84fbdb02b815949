//! WeCom's (WeChat Work) group robot webhook: its target settings, limits (measured on the message's
//! content, not the request body: 4096 bytes for markdown, 2048 for text), the request body, the request
//! (the key in the URL is the only credential; there is no signature), and (in [`answer`]) what each
//! answer means.

pub mod answer;
mod config;
mod show;

use std::time::Duration;

use serde_json::{Value, json};

pub use answer::Reason;
pub use config::KIND;

use super::http::{post, unanswered};
use super::{BoxFuture, Caps, Content, Ident, Protocol, RateLimit, Request, Ring, Sent, Shown};
use crate::people::Person;
use crate::secret::{Secret, redact_url, scrub};

/// WeCom's documented budget per webhook.
pub const RATE_LIMIT: RateLimit = RateLimit { messages: 20, per: Duration::from_secs(60) };

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MsgType {
    /// Headings, bold, links, quotes, `<font color>`, `<@userid>` mentions (the default).
    Markdown,
    /// Tables, lists, code; no colour and no mentions.
    MarkdownV2,
    Text,
}

impl MsgType {
    pub fn as_str(self) -> &'static str {
        match self {
            MsgType::Markdown => "markdown",
            MsgType::MarkdownV2 => "markdown_v2",
            MsgType::Text => "text",
        }
    }

    /// The most bytes WeCom takes in a message's content.
    pub fn max_content_bytes(self) -> usize {
        match self {
            MsgType::Markdown | MsgType::MarkdownV2 => 4096,
            MsgType::Text => 2048,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Mention {
    pub all: bool,
    pub user_ids: Vec<String>,
    pub mobiles: Vec<String>,
    pub on_resolved: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Format {
    pub msgtype: MsgType,
    pub mention: Mention,
}

impl Format {
    fn rings(&self, firing: bool) -> bool {
        let m = &self.mention;
        (m.all || !m.user_ids.is_empty() || !m.mobiles.is_empty()) && (firing || m.on_resolved)
    }

    /// The configured mentions, if a message about firing (or only resolved) alerts rings them.
    pub fn fixed(&self, firing: bool) -> Ring {
        if self.msgtype == MsgType::MarkdownV2 || !self.rings(firing) {
            return Ring::default();
        }
        let m = &self.mention;
        Ring { all: m.all, mobiles: m.mobiles.clone(), user_ids: m.user_ids.clone() }
    }

    /// Markdown mentions are `<@userid>` in the content (by user id only); text mentions go in the body's
    /// lists; markdown_v2 cannot mention.
    pub fn mention_tokens(&self, ring: &Ring) -> Vec<String> {
        if self.msgtype != MsgType::Markdown {
            return vec![];
        }
        ring.user_ids.iter().map(|id| format!("<@{id}>")).collect()
    }

    /// The JSON body WeCom receives. WeCom has no field like DingTalk's msgUuid.
    pub fn body(&self, c: &Content) -> String {
        let value = match self.msgtype {
            MsgType::Markdown => json!({"msgtype": "markdown", "markdown": {"content": c.text}}),
            MsgType::MarkdownV2 => json!({"msgtype": "markdown_v2", "markdown_v2": {"content": c.text}}),
            MsgType::Text => {
                let mut users: Vec<String> = c.ring.user_ids.clone();
                if c.ring.all {
                    users.push("@all".into());
                }
                let mobiles = &c.ring.mobiles;
                json!({"msgtype": "text", "text": {"content": c.text, "mentioned_list": users, "mentioned_mobile_list": mobiles}})
            }
        };
        value.to_string()
    }

    /// The bytes WeCom counts against its limit: the content's.
    pub fn measure(&self, body: &str) -> usize {
        let content =
            |v: &Value| v.pointer(&format!("/{}/content", self.msgtype.as_str())).and_then(Value::as_str).map(str::len);
        serde_json::from_str::<Value>(body).ok().as_ref().and_then(content).unwrap_or(body.len())
    }
}

/// A WeCom group robot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Robot {
    /// The webhook URL with its key.
    pub url: Secret,
    pub format: Format,
}

impl Protocol for Robot {
    fn caps(&self) -> Caps {
        let msgtype = self.format.msgtype;
        Caps {
            // WeCom's messages have no title: the first line is the chat list's and the banner's.
            shows_title: false,
            // markdown_v2 draws no colours: it takes the plain markdown layout.
            template: if msgtype == MsgType::MarkdownV2 { "markdown" } else { "wecom" },
            max_bytes: Some(msgtype.max_content_bytes()),
            ring_all: msgtype == MsgType::Text,
            own_rate: Some(RATE_LIMIT),
            ..Caps::webhook("wecom", "WeCom", msgtype.as_str())
        }
    }
    fn fixed_ring(&self, firing: bool) -> Ring {
        self.format.fixed(firing)
    }
    fn person<'p>(&self, p: &'p Person) -> Option<Ident<'p>> {
        match self.format.msgtype {
            MsgType::Markdown => p.id("wecom_user_id").map(Ident::UserId),
            MsgType::Text => p.id("wecom_user_id").map(Ident::UserId).or(p.id("wecom_mobile").map(Ident::Mobile)),
            MsgType::MarkdownV2 => None,
        }
    }
    fn mention_tokens(&self, ring: &Ring) -> Vec<String> {
        self.format.mention_tokens(ring)
    }
    fn body(&self, content: &Content, _uuid: &str) -> String {
        self.format.body(content)
    }
    fn measure(&self, body: &str) -> usize {
        self.format.measure(body)
    }
    /// WeCom documents no penalty, only its window: the longest one is waited out.
    fn throttle_pause(&self, rate: RateLimit, _penalty: std::time::Duration) -> std::time::Duration {
        if rate.is_unlimited() { RATE_LIMIT.per } else { rate.per }
    }
    fn endpoint(&self, _target: &str) -> String {
        self.url.expose().to_string()
    }
    /// The URL for logs, its key redacted, with the message type.
    fn describe(&self) -> String {
        format!("WeCom {} ({})", redact_url(self.url.expose()), self.format.msgtype.as_str())
    }
    fn show(&self, body: &str) -> Option<Shown> {
        show::show(body)
    }
    fn send<'a>(&'a self, req: Request<'a>) -> BoxFuture<'a, Sent> {
        Box::pin(self.post(req.client, req.body))
    }
}

impl Robot {
    async fn post(&self, client: &reqwest::Client, body: &str) -> Sent {
        let (outcome, status) = match post(client, self.url.expose(), body, &[]).await {
            Ok(a) => (answer::classify_response(a.status, &a.body), Some(a.status)),
            Err(e) => (unanswered(e), None),
        };
        Sent { outcome: outcome.map_detail(|detail| self.scrub(detail)), status }
    }

    fn scrub(&self, text: &str) -> String {
        let key = reqwest::Url::parse(self.url.expose())
            .ok()
            .and_then(|u| u.query_pairs().find(|(k, _)| k == "key").map(|(_, v)| v.into_owned()))
            .unwrap_or_default();
        scrub(text, &[&key])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channel::Level;

    fn format(msgtype: MsgType) -> Format {
        let mention = Mention {
            all: true,
            user_ids: vec!["zhangsan".into()],
            mobiles: vec!["13800000000".into()],
            on_resolved: false,
        };
        Format { msgtype, mention }
    }

    fn content(firing: bool) -> Content<'static> {
        let ring = Box::leak(Box::new(format(MsgType::Text).fixed(firing)));
        Content { title: "t", text: "磁盘 <@zhangsan>", firing, ring, buttons: &[], level: Level::Warning }
    }

    #[test]
    fn each_message_type_mentions_its_own_way_and_is_measured_by_its_content() {
        let tokens = |t: MsgType| format(t).mention_tokens(&format(t).fixed(true));
        assert_eq!(tokens(MsgType::Markdown), ["<@zhangsan>"]);
        assert!(tokens(MsgType::MarkdownV2).is_empty(), "markdown_v2 cannot mention");
        assert!(tokens(MsgType::Text).is_empty(), "text mentions go in lists");
        let text: Value = serde_json::from_str(&format(MsgType::Text).body(&content(true))).unwrap();
        assert_eq!(text["text"]["mentioned_list"], json!(["zhangsan", "@all"]));
        assert_eq!(text["text"]["mentioned_mobile_list"], json!(["13800000000"]));
        let resolved: Value = serde_json::from_str(&format(MsgType::Text).body(&content(false))).unwrap();
        assert_eq!(resolved["text"]["mentioned_list"], json!([]), "resolved rings nobody by default");
        let md = format(MsgType::Markdown).body(&content(true));
        assert_eq!(
            format(MsgType::Markdown).measure(&md),
            "磁盘 <@zhangsan>".len(),
            "the content's bytes, not the body's"
        );
        assert_eq!((MsgType::Markdown.max_content_bytes(), MsgType::Text.max_content_bytes()), (4096, 2048));
    }

    #[test]
    fn errors_never_show_the_key() {
        let robot = Robot {
            url: Secret::new("http://127.0.0.1:1/cgi-bin/webhook/send?key=wecom-key-very-secret"),
            format: format(MsgType::Markdown),
        };
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let outcome = rt.block_on(robot.post(&reqwest::Client::new(), "{}")).outcome;
        let crate::channel::Outcome::Retry { detail, .. } = outcome else { panic!("{outcome:?}") };
        assert!(!detail.contains("wecom-key-very-secret"), "{detail}");
        assert!(!robot.describe().contains("wecom-key-very-secret"), "{}", robot.describe());
    }
}
