//! The seam between the bridge and the chat tools. Each protocol lives in a folder of its own and owns
//! everything it means: its target settings, the request body for a rendered message (which the splitter
//! measures), its limits, authentication at send time, the request, and what its answers mean. The rest of
//! the bridge names no protocol: it holds a [`Channel`] and gets back an [`Outcome`] with a bounded
//! [`Reason`].
//!
//! Adding a protocol: a folder beside `dingtalk/`, an arm in [`Channel`] (and in each `match` below), its
//! config section in `config/`, its reasons as a variant of [`Reason`], and a mock in `tests/common/`.

pub mod dingtalk;
pub mod dingtalk_app;
pub mod dry_run;
pub mod feishu;
pub mod wecom;

use std::time::Duration;

/// Where a target's messages go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Channel {
    /// A DingTalk custom group robot.
    DingTalk(dingtalk::Robot),
    /// Logs the exact bodies instead of sending them (trying the bridge without a robot).
    DryRun(dry_run::DryRun),
    /// A Feishu or Lark custom bot.
    Feishu(feishu::Bot),
    /// A DingTalk enterprise app's robot: members one to one, and groups it is in.
    DingTalkApp(dingtalk_app::AppTarget),
    /// A WeCom group robot.
    WeCom(wecom::Robot),
}

/// Whom one message rings, in its chat tool's own identifiers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ring {
    pub all: bool,
    pub mobiles: Vec<String>,
    pub user_ids: Vec<String>,
}

impl Ring {
    pub fn is_empty(&self) -> bool {
        !self.all && self.mobiles.is_empty() && self.user_ids.is_empty()
    }

    /// People rung (`@all` aside).
    pub fn people(&self) -> usize {
        self.mobiles.len() + self.user_ids.len()
    }
}

/// How a person is named to a chat tool.
enum Ident<'a> {
    Mobile(&'a str),
    UserId(&'a str),
}

/// A rendered message, before any protocol has turned it into a request body.
#[derive(Debug, Clone, Copy)]
pub struct Content<'a> {
    pub title: &'a str,
    pub text: &'a str,
    /// Whether any alert in it is firing (resolved-only messages need not ring anyone).
    pub firing: bool,
    /// Whom it rings, in this tool's identifiers (empty for later parts of a split group, and for
    /// messages that ring nobody).
    pub ring: &'a Ring,
    /// Buttons a card shows: title and http(s) URL (Alertmanager, Silence, Runbook).
    pub buttons: &'a [(&'a str, &'a str)],
    /// How bad the worst firing alert is (a card's colour).
    pub level: Level,
}

/// How bad an alert is, from its `severity` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    None,
    Info,
    Warning,
    Critical,
}

impl Level {
    pub fn of(severity: &str) -> Level {
        match severity.trim().to_lowercase().as_str() {
            "critical" | "crit" | "page" | "fatal" | "emergency" | "alert" | "error" | "high" | "p1" | "disaster"
            | "严重" | "紧急" => Level::Critical,
            "warning" | "warn" | "major" | "medium" | "average" | "p2" | "警告" => Level::Warning,
            "info" | "informational" | "notice" | "low" | "minor" | "p3" | "p4" | "提示" => Level::Info,
            _ => Level::None,
        }
    }
}

impl Channel {
    /// The protocol's message type, as configured (`markdown`, `text`, `actionCard`, `interactive`, `post`).
    pub fn msgtype(&self) -> &'static str {
        match self {
            Channel::DingTalk(robot) => robot.format.msgtype.as_str(),
            Channel::DryRun(dry) => dry.format.msgtype.as_str(),
            Channel::Feishu(bot) => bot.format.msgtype.as_str(),
            Channel::WeCom(robot) => robot.format.msgtype.as_str(),
            Channel::DingTalkApp(app) => app.msgtype.as_str(),
        }
    }

    /// Whether messages are plain text (no title, no markdown).
    pub fn text_only(&self) -> bool {
        self.msgtype() == "text"
    }

    /// Whether the receiver drops a message it already has (DingTalk's `msgUuid`). Feishu, WeCom and the
    /// DingTalk app API have no such field: a message resent after a timeout that had in fact arrived shows twice.
    pub fn drops_repeats(&self) -> bool {
        matches!(self, Channel::DingTalk(_) | Channel::DryRun(_))
    }

    /// Whether messages need only keep their order per recipient: the app robot's messages each name
    /// their users or group, so one waiting to retry holds back only later ones to the same people.
    pub fn orders_by_recipient(&self) -> bool {
        matches!(self, Channel::DingTalkApp(_))
    }

    /// Whether storms are merged into digests (not for the app robot, whose messages name recipients).
    pub fn digests(&self) -> bool {
        !matches!(self, Channel::DingTalkApp(_))
    }

    /// Whether the protocol shows a message's title (DingTalk's markdown title is the chat list's and the
    /// banner's line, a Feishu card's header): WeCom's messages and every plain text have none.
    pub fn shows_title(&self) -> bool {
        !self.text_only() && !matches!(self, Channel::WeCom(_))
    }

    /// The template (of a set) that renders a message's text when it is not plain text.
    pub fn template(&self) -> &'static str {
        match self {
            Channel::DingTalk(_) | Channel::DryRun(_) | Channel::DingTalkApp(_) => "markdown",
            Channel::Feishu(_) => "feishu",
            // markdown_v2 draws no colours: it takes the plain markdown layout.
            Channel::WeCom(robot) if robot.format.msgtype == wecom::MsgType::MarkdownV2 => "markdown",
            Channel::WeCom(_) => "wecom",
        }
    }

    /// Send budgets the protocol holds besides the target's `rate_limit` (which is the longest one): every
    /// window must allow a send.
    pub fn rate_windows(&self) -> &'static [RateLimit] {
        match self {
            Channel::DingTalk(_) | Channel::DryRun(_) | Channel::WeCom(_) | Channel::DingTalkApp(_) => &[],
            Channel::Feishu(_) => &feishu::RATE_LIMITS[1..],
        }
    }

    /// How long to pause an endpoint that answered "too fast" without saying for how long. DingTalk
    /// blocks a robot for ten minutes (`delivery.throttle_penalty`); Feishu and WeCom document no
    /// penalty, only their windows, so the bridge waits out its longest window (`rate`, the target's
    /// `rate_limit`, or the protocol's minute when that is `off`).
    pub fn throttle_pause(&self, rate: RateLimit, penalty: Duration) -> Duration {
        let window = |documented: RateLimit| if rate.is_unlimited() { documented.per } else { rate.per };
        match self {
            Channel::DingTalk(_) | Channel::DryRun(_) => penalty,
            // The app's answers say how long (a second for QPS); this is for one that does not.
            Channel::DingTalkApp(_) => window(dingtalk_app::RATE_LIMIT).max(Duration::from_secs(1)),
            Channel::Feishu(_) => window(feishu::RATE_LIMITS[0]),
            Channel::WeCom(_) => window(wecom::RATE_LIMIT),
        }
    }

    /// The mentions configured on the target (`mention:`), for a message about firing alerts (or only
    /// resolved ones, which ring nobody unless `on_resolved`).
    pub fn fixed_ring(&self, firing: bool) -> Ring {
        match self {
            Channel::DingTalk(robot) => robot.format.fixed(firing),
            Channel::DryRun(dry) => dry.format.fixed(firing),
            Channel::Feishu(bot) => bot.format.fixed(firing),
            Channel::WeCom(robot) => robot.format.fixed(firing),
            // A direct message rings its reader; the app's group messages carry no mentions.
            Channel::DingTalkApp(_) => Ring::default(),
        }
    }

    /// Adds a person of the directory to `ring` by this tool's identifier for them; false if the
    /// directory has none for this tool (or the message type cannot mention).
    pub fn add_person(&self, ring: &mut Ring, p: &crate::people::Person) -> bool {
        let id = match self {
            Channel::DingTalk(_) | Channel::DryRun(_) => {
                p.dingtalk_mobile.as_deref().map(Ident::Mobile).or(p.dingtalk_user_id.as_deref().map(Ident::UserId))
            }
            Channel::Feishu(bot) => match bot.service {
                feishu::Service::Feishu => p.feishu_user_id.as_deref().map(Ident::UserId),
                feishu::Service::Lark => p.lark_user_id.as_deref().map(Ident::UserId),
            },
            Channel::WeCom(robot) => match robot.format.msgtype {
                wecom::MsgType::Markdown => p.wecom_user_id.as_deref().map(Ident::UserId),
                wecom::MsgType::Text => {
                    p.wecom_user_id.as_deref().map(Ident::UserId).or(p.wecom_mobile.as_deref().map(Ident::Mobile))
                }
                wecom::MsgType::MarkdownV2 => None,
            },
            Channel::DingTalkApp(_) => None,
        };
        let (list, id) = match id {
            Some(Ident::Mobile(m)) => (&mut ring.mobiles, m),
            Some(Ident::UserId(u)) => (&mut ring.user_ids, u),
            None => return false,
        };
        if !list.iter().any(|x| x == id) {
            list.push(id.to_string());
        }
        true
    }

    /// Whether a message can ring everyone (`@all`).
    pub fn can_ring_all(&self) -> bool {
        match self {
            Channel::DingTalk(_) | Channel::DryRun(_) | Channel::Feishu(_) => true,
            Channel::WeCom(robot) => robot.format.msgtype == wecom::MsgType::Text,
            Channel::DingTalkApp(_) => false,
        }
    }

    /// The most people one message may mention, where the protocol sets a limit.
    pub fn max_mentions(&self) -> Option<usize> {
        match self {
            Channel::DingTalk(_) | Channel::DryRun(_) => Some(dingtalk::MAX_MENTIONS),
            _ => None,
        }
    }

    /// Mentions that must be written into the text for the protocol to ring them.
    pub fn mention_tokens(&self, ring: &Ring) -> Vec<String> {
        match self {
            Channel::DingTalk(_) | Channel::DryRun(_) => dingtalk::Format::mention_tokens(ring),
            Channel::Feishu(bot) => bot.format.mention_tokens(ring),
            Channel::WeCom(robot) => robot.format.mention_tokens(ring),
            Channel::DingTalkApp(_) => vec![],
        }
    }

    /// [`send`](Self::send), and the HTTP status of the receiver's answer (`None`: no answer came).
    pub async fn send_recording_status(
        &self,
        client: &reqwest::Client,
        target: &str,
        uuid: &str,
        body: &str,
        recipients: Option<&str>,
    ) -> (Outcome, Option<u16>) {
        LAST_STATUS
            .scope(std::cell::Cell::new(None), async {
                let outcome = self.send(client, target, uuid, body, recipients).await;
                (outcome, LAST_STATUS.with(|s| s.get()))
            })
            .await
    }

    /// The request body for `content`; `uuid` lets the receiver drop a repeat (where the protocol can).
    pub fn body(&self, content: &Content, uuid: &str) -> String {
        match self {
            Channel::DingTalk(robot) => robot.format.body(content, uuid),
            Channel::DryRun(dry) => dry.format.body(content, uuid),
            Channel::Feishu(bot) => bot.format.body(content),
            Channel::WeCom(robot) => robot.format.body(content),
            Channel::DingTalkApp(app) => app.body(content),
        }
    }

    /// The most bytes a message may have, as the protocol counts them (see [`measure`](Self::measure)),
    /// where it is less than `delivery.max_message_bytes` may be (that setting is checked against
    /// DingTalk's 20000 bytes).
    pub fn max_bytes(&self) -> Option<usize> {
        match self {
            Channel::DingTalk(_) | Channel::DryRun(_) => None,
            Channel::Feishu(_) => Some(feishu::MAX_BYTES - feishu::SIGNATURE_BYTES),
            Channel::WeCom(robot) => Some(robot.format.msgtype.max_content_bytes()),
            Channel::DingTalkApp(_) => Some(dingtalk_app::MAX_PARAM_BYTES),
        }
    }

    /// A body's size as the protocol counts it against [`max_bytes`](Self::max_bytes): the whole body,
    /// or (WeCom) the message's content.
    pub fn measure(&self, body: &str) -> usize {
        match self {
            Channel::WeCom(robot) => robot.format.measure(body),
            Channel::DingTalkApp(app) => app.measure(body),
            _ => body.len(),
        }
    }

    /// What identifies the receiving end: targets with the same one share its rate budget. Holds
    /// credentials; use [`budget_key`](Self::budget_key) to store or show it.
    fn endpoint_identity(&self, target: &str) -> String {
        match self {
            Channel::DingTalk(robot) => robot.url.expose().to_string(),
            Channel::DryRun(_) => format!("dry-run:{target}"),
            Channel::Feishu(bot) => bot.url.expose().to_string(),
            Channel::WeCom(robot) => robot.url.expose().to_string(),
            // One budget per app (20 calls a second per app and API; one for both APIs is the safe side).
            Channel::DingTalkApp(app) => format!("dingtalk-app:{}:{}", app.app.api_base, app.app.client_id),
        }
    }

    /// A hash of the receiving end: how the store tells budgets apart without keeping a credential.
    pub fn budget_key(&self, target: &str) -> String {
        use sha2::{Digest, Sha256};
        let digest = Sha256::digest(self.endpoint_identity(target).as_bytes());
        digest.iter().take(12).map(|b| format!("{b:02x}")).collect()
    }

    /// The protocol's name, for logs.
    pub fn name(&self) -> &'static str {
        match self {
            Channel::DingTalk(_) => "dingtalk",
            Channel::DryRun(_) => "dry_run",
            Channel::Feishu(bot) => match bot.service {
                feishu::Service::Feishu => "feishu",
                feishu::Service::Lark => "lark",
            },
            Channel::WeCom(_) => "wecom",
            Channel::DingTalkApp(_) => "dingtalk_app",
        }
    }

    /// `body` as the request would carry it at `now_ms`, for `render`: a signing Feishu bot's `timestamp`
    /// and `sign` added, the sign itself shown as `<redacted>` (with its timestamp it posts anything for
    /// an hour). DingTalk signs in the URL, which `render` does not show. An app robot's message becomes
    /// its call, with the robot code and its `recipients` (the token goes in a header, not shown).
    pub fn as_sent(&self, body: &str, now_ms: i64, recipients: Option<&str>) -> String {
        match self {
            Channel::DingTalkApp(t) => match dingtalk_app::Delivery::parse(recipients) {
                Some(d) => t.request(body, &d.to).1,
                None => body.to_string(),
            },
            Channel::Feishu(bot) if bot.secret.is_some() => {
                let signed = feishu::sign::signed_body(body, Some(""), now_ms.div_euclid(1000));
                let mut v: serde_json::Value = serde_json::from_str(&signed).unwrap_or_default();
                if let Some(sign) = v.get_mut("sign") {
                    *sign = "<redacted>".into();
                }
                v.to_string()
            }
            _ => body.to_string(),
        }
    }

    /// The chat service, as users know it (for messages about what it may have done).
    pub fn service(&self) -> &'static str {
        match self {
            Channel::DingTalk(_) | Channel::DryRun(_) | Channel::DingTalkApp(_) => "DingTalk",
            Channel::Feishu(bot) => bot.service.name(),
            Channel::WeCom(_) => "WeCom",
        }
    }

    /// Where messages go, fit for a log line (credentials redacted).
    pub fn describe(&self) -> String {
        match self {
            Channel::DingTalk(robot) => robot.describe(),
            Channel::DryRun(_) => "dry run (bodies are logged, not sent)".to_string(),
            Channel::Feishu(bot) => bot.describe(),
            Channel::WeCom(robot) => robot.describe(),
            Channel::DingTalkApp(app) => app.describe(),
        }
    }

    /// Whether a request leaves the process (dry runs count no requests).
    pub fn sends_requests(&self) -> bool {
        !matches!(self, Channel::DryRun(_))
    }

    /// Sends one body: authentication at send time, the request, and its answer classified.
    /// `recipients` is the stored [`dingtalk_app::Delivery`] of an app robot's message.
    pub async fn send(
        &self,
        client: &reqwest::Client,
        target: &str,
        msg_uuid: &str,
        body: &str,
        recipients: Option<&str>,
    ) -> Outcome {
        match self {
            Channel::DingTalkApp(app) => {
                match recipients.and_then(|r| serde_json::from_str::<dingtalk_app::Delivery>(r).ok()) {
                    Some(delivery) => app.send(client, body, &delivery.to).await,
                    None => Outcome::Failed {
                        reason: Reason::DingTalkApp(dingtalk_app::Reason::BadRequest),
                        detail: "the stored message names no recipients".into(),
                    },
                }
            }
            Channel::DingTalk(robot) => robot.send(client, body).await,
            Channel::DryRun(dry) => dry.send(target, msg_uuid, body),
            Channel::Feishu(bot) => bot.send(client, body).await,
            Channel::WeCom(robot) => robot.send(client, body).await,
        }
    }
}

/// What became of one attempt, in terms every protocol shares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Delivered,
    /// Posted, but not to every recipient: `failed` will never get it, `retry` might later. No protocol
    /// in the bridge reports this yet (the DingTalk app robot will); the sender records the message as
    /// delivered and logs both lists.
    Partial {
        failed: Vec<String>,
        retry: Vec<String>,
        detail: String,
    },
    /// Try again after a backoff.
    Retry {
        reason: Reason,
        detail: String,
    },
    /// The receiver says this endpoint sends too fast: pause it (for `retry_after` if the protocol says,
    /// else `delivery.throttle_penalty`), then resend.
    Throttled {
        detail: String,
        retry_after: Option<Duration>,
    },
    /// Give the message up.
    Failed {
        reason: Reason,
        detail: String,
    },
}

impl Outcome {
    /// For an attempt's record: what happened (`delivered`, `partial`, `retry`, `throttled`, `failed`),
    /// its reason label, and what the receiver said.
    pub fn summary(&self) -> (&'static str, Option<&'static str>, &str) {
        match self {
            Outcome::Delivered => ("delivered", None, ""),
            Outcome::Partial { detail, .. } => ("partial", None, detail),
            Outcome::Retry { reason, detail } => ("retry", Some(reason.as_str()), detail),
            Outcome::Throttled { detail, .. } => ("throttled", Some(Reason::Throttled.as_str()), detail),
            Outcome::Failed { reason, detail } => ("failed", Some(reason.as_str()), detail),
        }
    }

    /// The same outcome with its detail passed through `f` (to take out what must not be logged).
    pub fn map_detail(self, f: impl Fn(&str) -> String) -> Outcome {
        match self {
            Outcome::Delivered => Outcome::Delivered,
            Outcome::Partial { failed, retry, detail } => Outcome::Partial { failed, retry, detail: f(&detail) },
            Outcome::Retry { reason, detail } => Outcome::Retry { reason, detail: f(&detail) },
            Outcome::Throttled { detail, retry_after } => Outcome::Throttled { detail: f(&detail), retry_after },
            Outcome::Failed { reason, detail } => Outcome::Failed { reason, detail: f(&detail) },
        }
    }
}

/// Why an attempt did not deliver: transport trouble any protocol can meet, or the protocol's own
/// reason. Bounded: [`as_str`](Self::as_str) values are metric labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// The connection was refused or could not be made: nothing was posted.
    Connect,
    /// The connection broke after the request left: it may have been posted.
    Network,
    /// No answer in time: it may have been posted.
    Timeout,
    Http5xx,
    Http429,
    /// An HTTP client error other than 429: the URL is wrong.
    HttpStatus,
    /// The endpoint answered with a redirect, which is never followed: nothing was delivered.
    Redirect,
    /// An answer that is not the protocol's (an HTML page, a proxy).
    BadResponse,
    Throttled,
    DingTalk(dingtalk::Reason),
    DingTalkApp(dingtalk_app::Reason),
    Feishu(feishu::Reason),
    WeCom(wecom::Reason),
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Connect => "connect",
            Reason::Network => "network",
            Reason::Timeout => "timeout",
            Reason::Http5xx => "http_5xx",
            Reason::Http429 => "http_429",
            Reason::HttpStatus => "http_status",
            Reason::Redirect => "redirect",
            Reason::BadResponse => "bad_response",
            Reason::Throttled => "throttled",
            Reason::DingTalk(r) => r.as_str(),
            Reason::DingTalkApp(r) => r.as_str(),
            Reason::Feishu(r) => r.as_str(),
            Reason::WeCom(r) => r.as_str(),
        }
    }

    /// Whether the receiver may have posted a message whose attempt failed this way (no answer came back).
    pub fn in_doubt(self) -> bool {
        matches!(self, Reason::Network | Reason::Timeout)
    }

    /// What a user should do about a permanent failure; shown in logs.
    /// The reason a stored label names, if any.
    pub fn parse(label: &str) -> Option<Reason> {
        use Reason::*;
        let common = [Connect, Network, Timeout, Http5xx, Http429, HttpStatus, Redirect, BadResponse, Throttled];
        common
            .into_iter()
            .chain(dingtalk::Reason::ALL.into_iter().map(DingTalk))
            .chain(dingtalk_app::Reason::ALL.into_iter().map(DingTalkApp))
            .chain(feishu::Reason::ALL.into_iter().map(Feishu))
            .chain(wecom::Reason::ALL.into_iter().map(WeCom))
            .find(|r| r.as_str() == label)
    }

    pub fn hint(self) -> &'static str {
        match self {
            Reason::HttpStatus => "the URL answered with an HTTP client error: check targets.<name>.url",
            Reason::Redirect => {
                "the URL answered with a redirect, which the bridge never follows (it would post the message and its credentials elsewhere): set targets.<name>.url to the chat service's own address"
            }
            Reason::DingTalk(r) => r.hint(),
            Reason::DingTalkApp(r) => r.hint(),
            Reason::Feishu(r) => r.hint(),
            Reason::WeCom(r) => r.hint(),
            _ => "transient",
        }
    }
}

/// The HTTP status alone decides for anything but 2xx.
pub(crate) fn classify_status(status: u16, detail: impl Fn() -> String) -> Option<Outcome> {
    match status {
        200..=299 => None,
        300..=399 => Some(Outcome::Failed { reason: Reason::Redirect, detail: detail() }),
        429 => Some(Outcome::Retry { reason: Reason::Http429, detail: detail() }),
        500..=599 => Some(Outcome::Retry { reason: Reason::Http5xx, detail: detail() }),
        _ => Some(Outcome::Failed { reason: Reason::HttpStatus, detail: detail() }),
    }
}

/// An answer for a log line and its detail: the status and the start of the body.
pub(crate) fn answer_snippet(status: u16, body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(200)]);
    format!("HTTP {status}: {}", text.trim())
}

/// Answers are small; anything longer is an error page, of which the start says enough.
const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// POSTs a JSON body and reads the answer's status and (at most the first 64 KiB of) body.
pub(crate) async fn post_json(
    client: &reqwest::Client,
    url: &str,
    body: &str,
) -> Result<(u16, Vec<u8>), reqwest::Error> {
    post_json_with(client, url, body, &[]).await
}

tokio::task_local! {
    /// The HTTP status of the last answer within an attempt ([`Channel::send_recording_status`]), for its
    /// record. The app robot's token fetch and resend make several requests; the last one counts.
    static LAST_STATUS: std::cell::Cell<Option<u16>>;
}

/// [`post_json`] with extra headers (an access token).
pub(crate) async fn post_json_with(
    client: &reqwest::Client,
    url: &str,
    body: &str,
    headers: &[(&str, &str)],
) -> Result<(u16, Vec<u8>), reqwest::Error> {
    let mut request = client.post(url).header(reqwest::header::CONTENT_TYPE, "application/json");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let mut resp = request.body(body.to_string()).send().await?;
    let status = resp.status().as_u16();
    let _ = LAST_STATUS.try_with(|s| s.set(Some(status)));
    let mut answer = Vec::new();
    while let Some(chunk) = resp.chunk().await? {
        answer.extend_from_slice(&chunk[..chunk.len().min(MAX_RESPONSE_BYTES - answer.len())]);
        if answer.len() >= MAX_RESPONSE_BYTES {
            break;
        }
    }
    Ok((status, answer))
}

/// Why a request got no answer: a refused connection proves nothing was posted; a timeout or a lost
/// answer does not.
pub(crate) fn transport_reason(e: &reqwest::Error) -> Reason {
    if e.is_connect() {
        Reason::Connect
    } else if e.is_timeout() {
        Reason::Timeout
    } else {
        Reason::Network
    }
}

/// An error and its sources as one line.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut parts = vec![];
    let mut source: Option<&dyn std::error::Error> = Some(e);
    while let Some(err) = source {
        parts.push(err.to_string());
        source = err.source();
    }
    parts.join(": ")
}

/// A send budget: at most `messages` in any window of `per`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub messages: u32,
    pub per: Duration,
}

impl RateLimit {
    /// No budget at all (`rate_limit: off`).
    pub const UNLIMITED: RateLimit = RateLimit { messages: u32::MAX, per: Duration::from_secs(1) };

    pub fn is_unlimited(self) -> bool {
        self.messages == u32::MAX
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::people::Person;
    use crate::secret::Secret;

    fn alice() -> Person {
        Person {
            name: "alice".into(),
            dingtalk_mobile: Some("13800000001".into()),
            dingtalk_user_id: Some("manager01".into()),
            feishu_user_id: Some("ou_alice".into()),
            lark_user_id: Some("ou_lark_alice".into()),
            wecom_user_id: None,
            wecom_mobile: Some("13800000001".into()),
        }
    }

    fn wecom(msgtype: wecom::MsgType) -> Channel {
        let format = wecom::Format { msgtype, mention: wecom::Mention::default() };
        Channel::WeCom(wecom::Robot { url: Secret::new("https://qyapi.weixin.qq.com/x?key=k"), format })
    }

    fn feishu(service: feishu::Service) -> Channel {
        let format = feishu::Format { msgtype: feishu::MsgType::Interactive, mention: feishu::Mention::default() };
        Channel::Feishu(feishu::Bot { service, url: Secret::new("https://x/hook/h"), secret: None, format })
    }

    #[test]
    fn a_person_is_rung_by_each_tools_own_identifier_or_not_at_all() {
        let dingtalk = Channel::DryRun(dry_run::DryRun {
            format: dingtalk::Format { msgtype: dingtalk::MsgType::Markdown, mention: dingtalk::Mention::default() },
        });
        let ring = |c: &Channel| {
            let mut r = Ring::default();
            c.add_person(&mut r, &alice()).then(|| (r.clone(), c.mention_tokens(&r)))
        };
        let (r, tokens) = ring(&dingtalk).unwrap();
        assert_eq!((r.mobiles, tokens), (vec!["13800000001".to_string()], vec!["@13800000001".to_string()]));
        assert_eq!(ring(&feishu(feishu::Service::Feishu)).unwrap().1, ["<at id=ou_alice></at>"]);
        assert_eq!(ring(&feishu(feishu::Service::Lark)).unwrap().1, ["<at id=ou_lark_alice></at>"]);
        // WeCom markdown mentions by user id only: Alice has none there; text takes her mobile in its list.
        assert!(ring(&wecom(wecom::MsgType::Markdown)).is_none());
        let (r, tokens) = ring(&wecom(wecom::MsgType::Text)).unwrap();
        assert_eq!((r.mobiles, tokens.len()), (vec!["13800000001".to_string()], 0));
        assert!(ring(&wecom(wecom::MsgType::MarkdownV2)).is_none(), "markdown_v2 cannot mention");
        assert!(!wecom(wecom::MsgType::Markdown).can_ring_all() && wecom(wecom::MsgType::Text).can_ring_all());
        // Twice the same person is one mention.
        let mut r = Ring::default();
        assert!(dingtalk.add_person(&mut r, &alice()) && dingtalk.add_person(&mut r, &alice()));
        assert_eq!(r.people(), 1);
    }
}
