//! Feishu's (China) and Lark's (international) custom bot webhook: its target settings, limits, the
//! request body for a rendered message (an interactive card with a header coloured by status and
//! severity and buttons, a post, or text), signing at send time (fields in the body, not the URL), the
//! request, and (in [`answer`]) what each answer means.
//!

pub mod answer;
mod config;
mod show;
pub mod sign;

use std::time::Duration;

use serde_json::{Value, json};

pub use answer::Reason;
pub use config::{FEISHU, LARK};

use super::http::{post, unanswered};
use super::{BoxFuture, Caps, Content, Ident, Level, Protocol, RateLimit, Request, Ring, Sent, Shown};
use crate::people::Person;
use crate::secret::{Secret, scrub};

/// Feishu's documented body limit (a FAQ says 30 KB; the guide's 20 KB is the safe side).
pub const MAX_BYTES: usize = 20_000;
/// What signing adds to a body (`"timestamp":"…","sign":"…"`, 81 bytes), rounded up: the splitter
/// measures bodies before they are signed, so it keeps this much room.
pub const SIGNATURE_BYTES: usize = 128;
/// Feishu's documented budgets per bot; both hold at once.
pub const RATE_LIMITS: [RateLimit; 2] =
    [RateLimit { messages: 100, per: Duration::from_secs(60) }, RateLimit { messages: 5, per: Duration::from_secs(1) }];

/// Where a bot lives: Feishu in China, Lark elsewhere. Same protocol, different hosts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    Feishu,
    Lark,
}

impl Service {
    pub fn name(self) -> &'static str {
        match self {
            Service::Feishu => "Feishu",
            Service::Lark => "Lark",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MsgType {
    /// A card: coloured header, markdown, buttons (the default).
    Interactive,
    Post,
    Text,
}

impl MsgType {
    pub fn as_str(self) -> &'static str {
        match self {
            MsgType::Interactive => "interactive",
            MsgType::Post => "post",
            MsgType::Text => "text",
        }
    }
}

/// Custom bots mention by open_id or user_id only (not by phone number).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Mention {
    pub all: bool,
    pub user_ids: Vec<String>,
    pub on_resolved: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Format {
    pub msgtype: MsgType,
    pub mention: Mention,
}

impl Format {
    fn rings(&self, firing: bool) -> bool {
        (self.mention.all || !self.mention.user_ids.is_empty()) && (firing || self.mention.on_resolved)
    }

    /// The configured mentions, if a message about firing (or only resolved) alerts rings them.
    pub fn fixed(&self, firing: bool) -> Ring {
        if !self.rings(firing) {
            return Ring::default();
        }
        Ring { all: self.mention.all, mobiles: vec![], user_ids: self.mention.user_ids.clone() }
    }

    /// The mention forms written into the text: a card's markdown takes `<at id=...></at>`, text takes
    /// `<at user_id="..."></at>`; a post carries its mentions as elements of its own instead.
    pub fn mention_tokens(&self, ring: &Ring) -> Vec<String> {
        let ids = ring.user_ids.iter().map(String::as_str).chain(ring.all.then_some("all"));
        match self.msgtype {
            MsgType::Interactive => ids.map(|id| format!("<at id={id}></at>")).collect(),
            MsgType::Text => ids.map(|id| format!("<at user_id=\"{id}\"></at>")).collect(),
            MsgType::Post => vec![],
        }
    }

    /// The JSON body Feishu receives (before signing). Feishu has no field like DingTalk's msgUuid.
    pub fn body(&self, c: &Content) -> String {
        let value = match self.msgtype {
            MsgType::Text => json!({"msg_type": "text", "content": {"text": c.text}}),
            MsgType::Post => {
                // The same markdown as a card's, drawn with a post's own elements: a post shows `**` as is.
                let mut lines: Vec<Value> = c.text.split('\n').map(|l| Value::Array(post_paragraph(l))).collect();
                if !c.ring.is_empty() {
                    // On the last line (the keyword's, in the built-in layout), as a card has them.
                    // A mention the template wrote (`<at id=...>`) is not repeated.
                    let written: Vec<Value> = lines
                        .iter()
                        .flat_map(|l| l.as_array().into_iter().flatten())
                        .map(|e| e["user_id"].clone())
                        .collect();
                    let ids = c.ring.user_ids.iter().map(String::as_str).chain(c.ring.all.then_some("all"));
                    let mut ats: Vec<Value> = ids
                        .filter(|id| !written.iter().any(|w| w == id))
                        .map(|id| json!({"tag": "at", "user_id": id}))
                        .collect();
                    match lines.last_mut().and_then(Value::as_array_mut) {
                        _ if ats.is_empty() => {}
                        Some(last) if !last.iter().all(|e| e["text"] == "") => {
                            ats.push(json!({"tag": "text", "text": " "}));
                            last.splice(0..0, ats);
                        }
                        _ => lines.push(Value::Array(ats)),
                    }
                }
                if !c.buttons.is_empty() {
                    let mut links = vec![];
                    for (i, (title, url)) in c.buttons.iter().enumerate() {
                        if i > 0 {
                            links.push(json!({"tag": "text", "text": " · "}));
                        }
                        links.push(json!({"tag": "a", "text": title, "href": url}));
                    }
                    lines.push(Value::Array(links));
                }
                json!({"msg_type": "post", "content": {"post": {"zh_cn": {"title": c.title, "content": lines}}}})
            }
            MsgType::Interactive => {
                let mut elements = vec![json!({"tag": "markdown", "content": c.text})];
                if !c.buttons.is_empty() {
                    let actions: Vec<Value> = c
                        .buttons
                        .iter()
                        .map(|(title, url)| {
                            json!({"tag": "button", "text": {"tag": "plain_text", "content": title}, "url": url, "type": "default"})
                        })
                        .collect();
                    elements.push(json!({"tag": "action", "actions": actions}));
                }
                json!({
                    "msg_type": "interactive",
                    "card": {
                        "config": {"wide_screen_mode": true},
                        "header": {"title": {"tag": "plain_text", "content": c.title}, "template": colour(c)},
                        "elements": elements,
                    },
                })
            }
        };
        value.to_string()
    }
}

/// One line of a card's markdown as a post paragraph: `**bold**` and `*italic*` become styles, `[text](url)`
/// a link element, `<at id=X></at>` a mention, and a backslash escape the character it escapes. Anything
/// else is text as written.
fn post_paragraph(line: &str) -> Vec<Value> {
    let line = line.trim_end();
    let mut out: Vec<Value> = vec![];
    let (mut bold, mut italic) = (false, false);
    let mut run = String::new();
    let flush = |run: &mut String, out: &mut Vec<Value>, bold: bool, italic: bool| {
        if run.is_empty() {
            return;
        }
        let mut el = json!({"tag": "text", "text": std::mem::take(run)});
        let style: Vec<&str> = [(bold, "bold"), (italic, "italic")].iter().filter(|s| s.0).map(|s| s.1).collect();
        if !style.is_empty() {
            el["style"] = json!(style);
        }
        out.push(el);
    };
    let mut rest = line;
    while let Some(c) = rest.chars().next() {
        if c == '\\' && rest.len() > 1 {
            let escaped = rest[1..].chars().next().unwrap_or('\\');
            run.push(escaped);
            rest = &rest[1 + escaped.len_utf8()..];
        } else if let Some(after) = rest.strip_prefix("**") {
            flush(&mut run, &mut out, bold, italic);
            bold = !bold;
            rest = after;
        } else if c == '*' {
            flush(&mut run, &mut out, bold, italic);
            italic = !italic;
            rest = &rest[1..];
        } else if let Some((text, href, after)) = link(rest).filter(|(_, href, _)| {
            // Feishu refuses a link element that is not a web address: anything else stays text.
            href.starts_with("https://") || href.starts_with("http://")
        }) {
            flush(&mut run, &mut out, bold, italic);
            out.push(json!({"tag": "a", "text": unescape(text), "href": href}));
            rest = after;
        } else if let Some((id, after)) = rest.strip_prefix("<at id=").and_then(|r| r.split_once("></at>")) {
            flush(&mut run, &mut out, bold, italic);
            out.push(json!({"tag": "at", "user_id": id.trim_matches(['"', '\''])}));
            rest = after;
        } else {
            run.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    flush(&mut run, &mut out, bold, italic);
    if out.is_empty() {
        out.push(json!({"tag": "text", "text": ""}));
    }
    out
}

/// `[text](url)` at the start of `s`: its text, its URL, and what follows.
fn link(s: &str) -> Option<(&str, &str, &str)> {
    let inner = s.strip_prefix('[')?;
    let mut escaped = false;
    let close = inner.char_indices().find_map(|(i, c)| {
        let found = !escaped && c == ']';
        escaped = !escaped && c == '\\';
        found.then_some(i)
    })?;
    let after = inner[close + 1..].strip_prefix('(')?;
    let end = after.find(')')?;
    Some((&inner[..close], &after[..end], &after[end + 1..]))
}

fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        out.push(if c == '\\' { chars.next().unwrap_or(c) } else { c });
    }
    out
}

/// The card header's colour: red for critical, orange for warning, blue for info, grey otherwise, green
/// once resolved.
fn colour(c: &Content) -> &'static str {
    if !c.firing {
        return "green";
    }
    match c.level {
        Level::Critical => "red",
        Level::Warning => "orange",
        Level::Info => "blue",
        Level::None => "grey",
    }
}

/// A Feishu or Lark custom bot: where to post and how to sign.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bot {
    pub service: Service,
    /// The webhook URL; its last path segment is the bot's token.
    pub url: Secret,
    pub secret: Option<Secret>,
    pub format: Format,
}

impl Protocol for Bot {
    fn caps(&self) -> Caps {
        let name = match self.service {
            Service::Feishu => "feishu",
            Service::Lark => "lark",
        };
        Caps {
            // A card draws no headings: its header says what the message is.
            headings: false,
            template: "feishu",
            max_bytes: Some(MAX_BYTES - SIGNATURE_BYTES),
            rate_windows: &RATE_LIMITS[1..],
            own_rate: Some(RATE_LIMITS[0]),
            ..Caps::webhook(name, self.service.name(), self.format.msgtype.as_str())
        }
    }
    fn fixed_ring(&self, firing: bool) -> Ring {
        self.format.fixed(firing)
    }
    fn person<'p>(&self, p: &'p Person) -> Option<Ident<'p>> {
        match self.service {
            Service::Feishu => p.id("feishu_user_id").map(Ident::UserId),
            Service::Lark => p.id("lark_user_id").map(Ident::UserId),
        }
    }
    fn mention_tokens(&self, ring: &Ring) -> Vec<String> {
        self.format.mention_tokens(ring)
    }
    fn body(&self, content: &Content, _uuid: &str) -> String {
        self.format.body(content)
    }
    /// Feishu documents no penalty, only its windows: the longest one is waited out (the target's
    /// `rate_limit`, or Feishu's minute when that is `off`).
    fn throttle_pause(&self, rate: RateLimit, _penalty: Duration) -> Duration {
        if rate.is_unlimited() { RATE_LIMITS[0].per } else { rate.per }
    }
    fn endpoint(&self, _target: &str) -> String {
        self.url.expose().to_string()
    }
    /// The URL for logs, the hook token redacted, with whether it signs and its message type.
    fn describe(&self) -> String {
        let url = self.url.expose();
        let shown = match url.rsplit_once('/') {
            Some((base, _)) => format!("{base}/<redacted>"),
            None => "<redacted>".to_string(),
        };
        let signed = if self.secret.is_some() { "signed" } else { "unsigned" };
        format!("{} {shown} ({signed}, {})", self.service.name(), self.format.msgtype.as_str())
    }
    /// A signing bot's `timestamp` and `sign` added, the sign itself shown as `<redacted>` (with its
    /// timestamp it posts anything for an hour).
    fn as_sent(&self, body: &str, now_ms: i64, _to: Option<&super::Recipients>) -> String {
        if self.secret.is_none() {
            return body.to_string();
        }
        let signed = sign::signed_body(body, Some(""), now_ms.div_euclid(1000));
        let mut v: Value = serde_json::from_str(&signed).unwrap_or_default();
        if let Some(sign) = v.get_mut("sign") {
            *sign = "<redacted>".into();
        }
        v.to_string()
    }
    fn show(&self, body: &str) -> Option<Shown> {
        show::show(body)
    }
    fn send<'a>(&'a self, req: Request<'a>) -> BoxFuture<'a, Sent> {
        Box::pin(self.post(req.client, req.body))
    }
}

impl Bot {
    /// Signs (at send time: Feishu accepts an hour's skew) and posts one body.
    async fn post(&self, client: &reqwest::Client, body: &str) -> Sent {
        let secret = self.secret.as_ref().map(Secret::expose);
        let signed = sign::signed_body(body, secret, crate::clock::now_ms().div_euclid(1000));
        let (outcome, status) = match post(client, self.url.expose(), &signed, &[]).await {
            Ok(a) => (answer::classify_response(a.status, &a.body), Some(a.status)),
            Err(e) => (unanswered(e), None),
        };
        Sent { outcome: outcome.map_detail(|detail| self.scrub(detail, &signed)), status }
    }

    /// `text` without the hook token, the secret, or the signature.
    fn scrub(&self, text: &str, signed: &str) -> String {
        let token = self.url.expose().trim_end_matches('/').rsplit('/').next().unwrap_or("");
        let sign = serde_json::from_str::<Value>(signed)
            .ok()
            .and_then(|v| v.get("sign").and_then(Value::as_str).map(str::to_string))
            .unwrap_or_default();
        scrub(text, &[token, &sign, self.secret.as_ref().map_or("", Secret::expose)])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn content<'a>(firing: bool, level: Level, buttons: &'a [(&'a str, &'a str)]) -> Content<'a> {
        Content {
            title: "🔴 FIRING 1 · X · Alert",
            text: "**x**\n<at id=ou_1></at> Alert",
            firing,
            ring: Box::leak(Box::new(format(MsgType::Interactive).fixed(firing))),
            buttons,
            level,
        }
    }

    fn format(msgtype: MsgType) -> Format {
        Format { msgtype, mention: Mention { all: false, user_ids: vec!["ou_1".into()], on_resolved: false } }
    }

    #[test]
    fn a_card_is_coloured_by_status_and_severity_with_buttons() {
        let buttons = [("Alertmanager", "http://am/#/alerts"), ("Silence", "http://am/#/silences/new")];
        let card: Value =
            serde_json::from_str(&format(MsgType::Interactive).body(&content(true, Level::Critical, &buttons)))
                .unwrap();
        assert_eq!(card["msg_type"], "interactive");
        assert_eq!(card["card"]["header"]["template"], "red");
        assert_eq!(card["card"]["header"]["title"]["content"], "🔴 FIRING 1 · X · Alert");
        assert_eq!(
            card["card"]["elements"][0],
            json!({"tag": "markdown", "content": "**x**\n<at id=ou_1></at> Alert"})
        );
        assert_eq!(card["card"]["elements"][1]["actions"][1]["url"], "http://am/#/silences/new");
        let colour_of = |firing, level| {
            let v: Value =
                serde_json::from_str(&format(MsgType::Interactive).body(&content(firing, level, &[]))).unwrap();
            v["card"]["header"]["template"].as_str().unwrap().to_string()
        };
        assert_eq!(
            [colour_of(true, Level::Warning), colour_of(true, Level::Info), colour_of(false, Level::Critical)],
            ["orange", "blue", "green"]
        );
    }

    #[test]
    fn mentions_take_each_message_types_form() {
        let f = |t| format(t).mention_tokens(&format(t).fixed(true));
        assert_eq!(f(MsgType::Interactive), ["<at id=ou_1></at>"]);
        assert_eq!(f(MsgType::Text), ["<at user_id=\"ou_1\"></at>"]);
        assert!(f(MsgType::Post).is_empty(), "a post mentions through its own elements");
        assert!(format(MsgType::Interactive).fixed(false).is_empty(), "resolved rings nobody by default");
        let post: Value =
            serde_json::from_str(&format(MsgType::Post).body(&content(true, Level::Warning, &[]))).unwrap();
        let lines = post["content"]["post"]["zh_cn"]["content"].as_array().unwrap();
        assert_eq!(
            lines.last().unwrap(),
            &json!([{"tag": "at", "user_id": "ou_1"}, {"tag": "text", "text": " Alert"}]),
            "the template's own mention, not repeated"
        );
        let plain = Content { text: "**x**\nAlert", ..content(true, Level::Warning, &[]) };
        let post: Value = serde_json::from_str(&format(MsgType::Post).body(&plain)).unwrap();
        assert_eq!(
            post["content"]["post"]["zh_cn"]["content"][1],
            json!([{"tag": "at", "user_id": "ou_1"}, {"tag": "text", "text": " "}, {"tag": "text", "text": "Alert"}]),
            "the configured mention on the last line, before the keyword"
        );
        let text: Value =
            serde_json::from_str(&format(MsgType::Text).body(&content(true, Level::Warning, &[]))).unwrap();
        assert_eq!(text, json!({"msg_type": "text", "content": {"text": "**x**\n<at id=ou_1></at> Alert"}}));
    }

    #[test]
    fn a_post_draws_the_markdown_with_its_own_elements() {
        let para = |l: &str| Value::Array(post_paragraph(l));
        assert_eq!(
            para("**warning** · since 10:16 · *KubePodNotReady* (3):"),
            json!([
                {"tag": "text", "text": "warning", "style": ["bold"]},
                {"tag": "text", "text": " · since 10:16 · "},
                {"tag": "text", "text": "KubePodNotReady", "style": ["italic"]},
                {"tag": "text", "text": " (3):"},
            ])
        );
        assert_eq!(
            para(r"a\*b\_c \[x\](y) [Run\]book](https://r/x?a=1) <at id=ou_1></at> Alert"),
            json!([
                {"tag": "text", "text": "a*b_c [x](y) "},
                {"tag": "a", "text": "Run]book", "href": "https://r/x?a=1"},
                {"tag": "text", "text": " "},
                {"tag": "at", "user_id": "ou_1"},
                {"tag": "text", "text": " Alert"},
            ])
        );
        assert_eq!(para(""), json!([{"tag": "text", "text": ""}]));
        assert_eq!(para("[x](javascript:alert(1))"), json!([{"tag": "text", "text": "[x](javascript:alert(1))"}]));
        let buttons = [("Alertmanager", "http://am/#/alerts"), ("Silence", "http://am/#/silences/new")];
        let post: Value =
            serde_json::from_str(&format(MsgType::Post).body(&content(true, Level::Warning, &buttons))).unwrap();
        let lines = post["content"]["post"]["zh_cn"]["content"].as_array().unwrap();
        assert_eq!(lines[0], json!([{"tag": "text", "text": "x", "style": ["bold"]}]));
        assert_eq!(
            lines.last().unwrap(),
            &json!([
                {"tag": "a", "text": "Alertmanager", "href": "http://am/#/alerts"},
                {"tag": "text", "text": " · "},
                {"tag": "a", "text": "Silence", "href": "http://am/#/silences/new"},
            ])
        );
    }

    #[test]
    fn errors_never_show_the_hook_token_or_secret() {
        let bot = Bot {
            service: Service::Feishu,
            url: Secret::new("http://127.0.0.1:1/open-apis/bot/v2/hook/hook-token-very-secret"),
            secret: Some(Secret::new("feishu-secret")),
            format: format(MsgType::Text),
        };
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let outcome = rt.block_on(bot.post(&reqwest::Client::new(), "{}")).outcome;
        let crate::channel::Outcome::Retry { reason: crate::channel::Reason::Connect, detail } = outcome else {
            panic!("{outcome:?}")
        };
        assert!(!detail.contains("hook-token-very-secret") && !detail.contains("feishu-secret"), "{detail}");
        assert_eq!(bot.scrub("echo hook-token-very-secret and feishu-secret", "{}"), "echo <redacted> and <redacted>");
    }
}
