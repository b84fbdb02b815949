//! The one interface every chat tool implements ([`Protocol`]), what a tool can do as one data value
//! ([`Caps`]), the registry entry that names a tool ([`Kind`]), and [`Channel`], the handle the rest of
//! the bridge holds.

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use super::keys::{Keys, Setup};
use super::{Content, Delivery, Ident, Outcome, RateLimit, Reason, Recipients, Ring, Shown};
use crate::people::Person;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What a protocol can do, and its limits: facts the rest of the bridge asks as data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caps {
    /// The protocol's name, for logs (`dingtalk`, `dry_run`, `lark`, …).
    pub name: &'static str,
    /// The chat service, as users know it (`DingTalk`, `Feishu`, …).
    pub service: &'static str,
    /// The message type, as configured (`markdown`, `text`, `actionCard`, `interactive`, `post`, …).
    pub msgtype: &'static str,
    /// Plain text: no title, no markdown.
    pub text_only: bool,
    /// Whether the tool shows a message's title (DingTalk's markdown title is the chat list's and the
    /// banner's line, a Feishu card's header): WeCom's messages and every plain text have none.
    pub shows_title: bool,
    /// Whether the message's markup draws headings (a Feishu card's does not: its header says it).
    pub headings: bool,
    /// Whether the receiver drops a message it already has (DingTalk's `msgUuid`): a resend after a
    /// timeout that had in fact arrived shows once.
    pub drops_repeats: bool,
    /// Whether storms are merged into digests (not where messages name their recipients).
    pub digests: bool,
    /// Whether messages need only keep their order per recipient (each names its users or group).
    pub orders_by_recipient: bool,
    /// Whether messages go to people directly (a direct message rings its reader): no mentions, so no
    /// mention rules.
    pub direct: bool,
    /// The template (of a set) that renders the text when it is not plain text.
    pub template: &'static str,
    /// The most bytes a message may have, as [`Protocol::measure`] counts them, where it is less than
    /// `delivery.max_message_bytes` may be.
    pub max_bytes: Option<usize>,
    /// The most people one message may mention, where the tool sets a limit.
    pub max_mentions: Option<usize>,
    /// Whether a message can ring everyone (`@all`).
    pub ring_all: bool,
    /// Send budgets the tool holds besides the target's `rate_limit` (the longest): each must allow a send.
    pub rate_windows: &'static [RateLimit],
    /// The target's budget where it sets none (unless `delivery.rate_limit` is off); `None`: that setting.
    pub own_rate: Option<RateLimit>,
    /// Whether a request leaves the process (dry runs count no requests).
    pub sends_requests: bool,
}

impl Caps {
    /// The facts of a DingTalk-like webhook robot; each protocol changes what differs.
    pub const fn webhook(name: &'static str, service: &'static str, msgtype: &'static str) -> Caps {
        let text_only = matches!(msgtype.as_bytes(), b"text");
        Caps {
            name,
            service,
            msgtype,
            text_only,
            shows_title: !text_only,
            headings: true,
            drops_repeats: false,
            digests: true,
            orders_by_recipient: false,
            direct: false,
            template: "markdown",
            max_bytes: None,
            max_mentions: None,
            ring_all: true,
            rate_windows: &[],
            own_rate: None,
            sends_requests: true,
        }
    }
}

/// One attempt to send a stored message.
pub struct Request<'a> {
    pub client: &'a reqwest::Client,
    /// The target's name (for a dry run's log line).
    pub target: &'a str,
    pub msg_uuid: &'a str,
    /// The body, with its send-time values filled in.
    pub body: &'a str,
    /// Whom it still goes to, for protocols that name recipients per call.
    pub to: Option<&'a Recipients>,
}

/// What an attempt came to, and the HTTP status of the (last) answer (`None`: no answer came).
#[derive(Debug)]
pub struct Sent {
    pub outcome: Outcome,
    pub status: Option<u16>,
}

/// A chat tool. Everything it means lives in its folder under `src/channel/`.
pub trait Protocol: DynEq + fmt::Debug + Send + Sync {
    fn caps(&self) -> Caps;

    /// The mentions configured on the target, for a message about firing alerts (or only resolved ones,
    /// which ring nobody unless `on_resolved`).
    fn fixed_ring(&self, _firing: bool) -> Ring {
        Ring::default()
    }

    /// How this tool names a person of the directory; `None` if the directory has no identifier for this
    /// tool (or the message type cannot mention).
    fn person<'p>(&self, _p: &'p Person) -> Option<Ident<'p>> {
        None
    }

    /// Mentions that must be written into the text for the tool to ring them.
    fn mention_tokens(&self, _ring: &Ring) -> Vec<String> {
        vec![]
    }

    /// The request body for `content`; `uuid` lets the receiver drop a repeat (where the tool can).
    fn body(&self, content: &Content, uuid: &str) -> String;

    /// A body's size as the tool counts it against [`Caps::max_bytes`].
    fn measure(&self, body: &str) -> usize {
        body.len()
    }

    /// The calls each message is planned into: one per entry (users in batches, each group). Empty: one
    /// call to the webhook's group.
    fn plan(&self) -> Vec<Recipients> {
        vec![]
    }

    /// How long to pause an endpoint that answered "too fast" without saying for how long (`rate`: the
    /// target's budget; `penalty`: `delivery.throttle_penalty`).
    fn throttle_pause(&self, _rate: RateLimit, penalty: Duration) -> Duration {
        penalty
    }

    /// What identifies the receiving end: targets with the same one share its rate budget. May hold
    /// credentials: only its hash leaves [`Channel`].
    fn endpoint(&self, target: &str) -> String;

    /// Where messages go, fit for a log line (credentials redacted).
    fn describe(&self) -> String;

    /// Whom one call reaches, for people (`to 2 users (a, b) by POST …`).
    fn describe_recipients(&self, to: &Recipients) -> String {
        match to {
            Recipients::Users(u) => format!("to {} user(s) ({})", u.len(), u.join(", ")),
            Recipients::Conversation(c) => format!("to the group {c}"),
        }
    }

    /// `body` as the request would carry it at `now_ms`, for `render` (no credential shown).
    fn as_sent(&self, body: &str, _now_ms: i64, _to: Option<&Recipients>) -> String {
        body.to_string()
    }

    /// A body of this tool read back for a person: title, text, mentions, buttons, size as counted.
    fn show(&self, body: &str) -> Option<Shown>;

    /// Sends one body: authentication at send time, the request, and its answer classified.
    fn send<'a>(&'a self, req: Request<'a>) -> BoxFuture<'a, Sent>;
}

/// Comparing protocols of unknown type (a reload restarts only the targets whose settings changed).
pub trait DynEq {
    fn as_any(&self) -> &dyn Any;
    fn dyn_eq(&self, other: &dyn Any) -> bool;
}

impl<T: PartialEq + Any> DynEq for T {
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn dyn_eq(&self, other: &dyn Any) -> bool {
        other.downcast_ref::<T>() == Some(self)
    }
}

/// A protocol's registry entry: its `type:` name and how its keys become a [`Channel`].
pub struct Kind {
    /// The value of a target's `type`.
    pub name: &'static str,
    /// Reads the target's own keys (those not common to every target).
    pub configure: fn(&mut Keys, &mut dyn Setup) -> Option<Channel>,
    /// The keys it reads (`mention.user_ids` for nested ones), to say whose a misplaced key is.
    pub keys: &'static [&'static str],
    /// Hosts of its webhooks: a URL of one under another type draws a warning.
    pub hosts: &'static [&'static str],
    /// The keys of `people.<name>` it rings people by.
    pub person_keys: &'static [&'static str],
    /// Its built-in template (file name without `.hbs`, and text) where its markup differs from
    /// DingTalk's markdown; users override it in their sets by that name.
    pub template: Option<(&'static str, &'static str)>,
    /// A top-level section it owns (`dingtalk_apps`), read before the targets.
    pub section: Option<Section>,
    /// Its own reasons, to read a stored label back.
    pub reasons: fn() -> Vec<Reason>,
    /// Reads a stored body of this tool back (a record whose target is no longer configured).
    pub show: fn(&str) -> Option<Shown>,
}

/// A top-level section of the configuration a protocol owns: each entry, made once, shared by the targets
/// that name it.
pub struct Section {
    pub key: &'static str,
    pub configure: fn(&mut Keys, &mut dyn Setup) -> Option<Arc<dyn Any + Send + Sync>>,
}

/// Where a target's messages go: a protocol, behind one handle.
#[derive(Clone)]
pub struct Channel(Arc<dyn Protocol>);

impl Channel {
    pub fn new(p: impl Protocol + 'static) -> Channel {
        Channel(Arc::new(p))
    }

    pub fn caps(&self) -> Caps {
        self.0.caps()
    }

    pub fn name(&self) -> &'static str {
        self.caps().name
    }
    pub fn service(&self) -> &'static str {
        self.caps().service
    }
    pub fn msgtype(&self) -> &'static str {
        self.caps().msgtype
    }
    pub fn text_only(&self) -> bool {
        self.caps().text_only
    }
    pub fn max_bytes(&self) -> Option<usize> {
        self.caps().max_bytes
    }
    pub fn rate_windows(&self) -> &'static [RateLimit] {
        self.caps().rate_windows
    }

    pub fn fixed_ring(&self, firing: bool) -> Ring {
        self.0.fixed_ring(firing)
    }

    /// Adds a person of the directory to `ring` by this tool's identifier for them; false if the
    /// directory has none for this tool (or the message type cannot mention).
    pub fn add_person(&self, ring: &mut Ring, p: &Person) -> bool {
        match self.0.person(p) {
            Some(id) => {
                ring.add(id);
                true
            }
            None => false,
        }
    }

    pub fn mention_tokens(&self, ring: &Ring) -> Vec<String> {
        self.0.mention_tokens(ring)
    }

    pub fn body(&self, content: &Content, uuid: &str) -> String {
        self.0.body(content, uuid)
    }

    pub fn measure(&self, body: &str) -> usize {
        self.0.measure(body)
    }

    pub fn plan(&self) -> Vec<Recipients> {
        self.0.plan()
    }

    pub fn throttle_pause(&self, rate: RateLimit, penalty: Duration) -> Duration {
        self.0.throttle_pause(rate, penalty)
    }

    /// A hash of the receiving end: how the store tells budgets apart without keeping a credential.
    pub fn budget_key(&self, target: &str) -> String {
        use sha2::{Digest, Sha256};
        let digest = Sha256::digest(self.0.endpoint(target).as_bytes());
        digest.iter().take(12).map(|b| format!("{b:02x}")).collect()
    }

    pub fn describe(&self) -> String {
        self.0.describe()
    }

    pub fn describe_recipients(&self, to: &Recipients) -> String {
        self.0.describe_recipients(to)
    }

    pub fn as_sent(&self, body: &str, now_ms: i64, to: Option<&Recipients>) -> String {
        self.0.as_sent(body, now_ms, to)
    }

    /// A body read back for a person, with whom it goes to.
    pub fn show(&self, body: &str, delivery: Option<&Delivery>) -> Option<Shown> {
        let mut shown = self.0.show(body)?;
        shown.to = delivery.map(|d| self.0.describe_recipients(&d.to));
        Some(shown)
    }

    pub async fn send(&self, req: Request<'_>) -> Sent {
        self.0.send(req).await
    }
}

impl PartialEq for Channel {
    fn eq(&self, other: &Channel) -> bool {
        self.0.dyn_eq(other.0.as_any())
    }
}

impl Eq for Channel {}

impl fmt::Debug for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}
