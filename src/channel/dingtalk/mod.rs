//! DingTalk's custom group robot: its target settings (robot URL, signing secret, message type,
//! mentions), its limits, the request body for a rendered message, signing at send time, the request,
//! and (in [`answer`]) what each answer means.

pub mod answer;
mod config;
mod dry_run;
mod show;
pub mod sign;

use serde_json::json;

pub use answer::Reason;
pub use config::KIND;

use super::http::{post, unanswered};
use super::{BoxFuture, Caps, Content, Ident, Protocol, Request, Ring, Sent, Shown};
use crate::people::Person;
use crate::secret::{Secret, redact_url, scrub};

/// DingTalk mentions at most this many people per message.
pub const MAX_MENTIONS: usize = 50;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MsgType {
    Markdown,
    Text,
    ActionCard,
}

impl MsgType {
    pub fn as_str(self) -> &'static str {
        match self {
            MsgType::Markdown => "markdown",
            MsgType::Text => "text",
            MsgType::ActionCard => "actionCard",
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Mention {
    pub all: bool,
    pub mobiles: Vec<String>,
    pub user_ids: Vec<String>,
    pub on_resolved: bool,
}

impl Mention {
    pub fn is_empty(&self) -> bool {
        !self.all && self.mobiles.is_empty() && self.user_ids.is_empty()
    }
}

/// How a message looks to DingTalk: its type and whom it mentions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Format {
    pub msgtype: MsgType,
    pub mention: Mention,
}

/// How DingTalk names a person: by mobile, else by user id.
fn person(p: &Person) -> Option<Ident<'_>> {
    p.id("dingtalk_mobile").map(Ident::Mobile).or(p.id("dingtalk_user_id").map(Ident::UserId))
}

impl Format {
    /// What a robot (or a dry run) of this format can do. DingTalk's body limit (20000 bytes) is
    /// `delivery.max_message_bytes`'s own ceiling; its budget is the default one.
    fn caps(&self) -> Caps {
        Caps {
            drops_repeats: true,
            max_mentions: Some(MAX_MENTIONS),
            ..Caps::webhook("dingtalk", "DingTalk", self.msgtype.as_str())
        }
    }

    /// Whether a message about firing (or only resolved) alerts rings the mentioned people.
    pub fn rings(&self, firing: bool) -> bool {
        !self.mention.is_empty() && (firing || self.mention.on_resolved)
    }

    /// The configured mentions, if a message about firing (or only resolved) alerts rings them.
    pub fn fixed(&self, firing: bool) -> Ring {
        if !self.rings(firing) {
            return Ring::default();
        }
        let m = &self.mention;
        Ring { all: m.all, mobiles: m.mobiles.clone(), user_ids: m.user_ids.clone() }
    }

    /// `@mobile` / `@userId` tokens: DingTalk only highlights a mention that is also written in the text.
    pub fn mention_tokens(ring: &Ring) -> Vec<String> {
        ring.mobiles.iter().chain(&ring.user_ids).map(|m| format!("@{m}")).collect()
    }

    /// The JSON body DingTalk receives.
    pub fn body(&self, c: &Content, uuid: &str) -> String {
        let at = || json!({"atMobiles": c.ring.mobiles, "atUserIds": c.ring.user_ids, "isAtAll": c.ring.all});
        let markdown = || json!({"msgtype": "markdown", "markdown": {"title": c.title, "text": c.text}, "at": at(), "msgUuid": uuid});
        let value = match self.msgtype {
            MsgType::Text => json!({"msgtype": "text", "text": {"content": c.text}, "at": at(), "msgUuid": uuid}),
            MsgType::Markdown => markdown(),
            // An actionCard needs a link; without one the markdown form says the same.
            MsgType::ActionCard if c.buttons.is_empty() => markdown(),
            MsgType::ActionCard => {
                let btns: Vec<_> =
                    c.buttons.iter().map(|(title, url)| json!({"title": title, "actionURL": url})).collect();
                // Side by side while they fit a phone's width; one per row beyond three.
                let orientation = if btns.len() <= 3 { "1" } else { "0" };
                json!({
                    "msgtype": "actionCard",
                    "actionCard": {"title": c.title, "text": c.text, "btns": btns, "btnOrientation": orientation},
                    "msgUuid": uuid,
                })
            }
        };
        value.to_string()
    }
}

/// A custom group robot: where to post and how to sign.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Robot {
    /// The webhook URL with its access_token.
    pub url: Secret,
    pub secret: Option<Secret>,
    pub format: Format,
}

impl Protocol for Robot {
    fn caps(&self) -> Caps {
        self.format.caps()
    }
    fn fixed_ring(&self, firing: bool) -> Ring {
        self.format.fixed(firing)
    }
    fn person<'p>(&self, p: &'p Person) -> Option<Ident<'p>> {
        person(p)
    }
    fn mention_tokens(&self, ring: &Ring) -> Vec<String> {
        Format::mention_tokens(ring)
    }
    fn body(&self, content: &Content, uuid: &str) -> String {
        self.format.body(content, uuid)
    }
    fn endpoint(&self, _target: &str) -> String {
        self.url.expose().to_string()
    }
    fn describe(&self) -> String {
        let signed = if self.secret.is_some() { "signed" } else { "unsigned" };
        format!("{} ({signed}, {})", redact_url(self.url.expose()), self.format.msgtype.as_str())
    }
    fn show(&self, body: &str) -> Option<Shown> {
        show::show(body)
    }
    fn send<'a>(&'a self, req: Request<'a>) -> BoxFuture<'a, Sent> {
        Box::pin(self.post(req.client, req.body))
    }
}

impl Robot {
    /// Signs (at send time: the signature is valid for an hour) and posts one body.
    async fn post(&self, client: &reqwest::Client, body: &str) -> Sent {
        let secret = self.secret.as_ref().map(Secret::expose);
        let signed = sign::signed_url(self.url.expose(), secret, crate::clock::now_ms());
        let (outcome, status) = match post(client, &signed, body, &[]).await {
            Ok(a) => (answer::classify_response(a.status, &a.body), Some(a.status)),
            Err(e) => (unanswered(e), None),
        };
        // An error page (a proxy's, a redirect's) may echo the request URL; no layer below reqwest should
        // echo a credential, but a leak here would be in every log and record.
        Sent { outcome: outcome.map_detail(|detail| self.scrub(detail, &signed)), status }
    }

    /// `text` without the access_token, the signing secret, or the signature of the `signed` URL.
    fn scrub(&self, text: &str, signed: &str) -> String {
        let query = |url: &str, key: &str| {
            reqwest::Url::parse(url)
                .ok()
                .and_then(|u| u.query_pairs().find(|(k, _)| k == key).map(|(_, v)| v.into_owned()))
                .unwrap_or_default()
        };
        let (token, sign) = (query(self.url.expose(), "access_token"), query(signed, "sign"));
        // The signature as it appears in the URL, percent-encoded, too.
        let sign_raw = signed.split("sign=").nth(1).map_or("", |s| s.split('&').next().unwrap_or(""));
        scrub(text, &[&token, &sign, sign_raw, self.secret.as_ref().map_or("", Secret::expose)])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_never_show_the_token_or_secret() {
        let robot = Robot {
            url: Secret::new("http://127.0.0.1:1/robot/send?access_token=tok-very-secret"),
            secret: Some(Secret::new("SECxyz")),
            format: Format { msgtype: MsgType::Markdown, mention: Mention::default() },
        };
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let outcome = rt.block_on(robot.post(&reqwest::Client::new(), "{}")).outcome;
        let crate::channel::Outcome::Retry { reason: crate::channel::Reason::Connect, detail } = outcome else {
            panic!("{outcome:?}")
        };
        assert!(!detail.contains("tok-very-secret") && !detail.contains("SECxyz"), "{detail}");
        assert!(!detail.contains("sign="), "{detail}");
    }
}
