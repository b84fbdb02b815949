//! The seam between the bridge and the chat tools. Each protocol lives in a folder of its own and owns
//! everything it means: its configuration keys, what it can do ([`Caps`]), how it names a person, the
//! request body for a rendered message (which the splitter measures), how a message is planned into calls,
//! authentication at send time, the request, what its answers mean, and how a body reads back. The rest of
//! the bridge names no protocol: it looks a `type:` up in [`PROTOCOLS`], holds a [`Channel`] and gets back
//! an [`Outcome`] with a bounded [`Reason`].
//!
//! Adding a protocol: a folder beside `dingtalk/` whose `KIND` is one line of [`PROTOCOLS`], a built-in
//! template if its markup differs, a mock in `tests/common/` and tests.

pub mod content;
pub mod http;
pub mod keys;
pub mod outcome;
pub mod protocol;
pub mod recipients;
pub mod show;
pub mod token;

pub mod dingtalk;
pub mod dingtalk_app;
pub mod feishu;
pub mod wecom;

pub use content::{Content, Ident, Level, Ring};
pub use outcome::{AttemptOutcome, Outcome, Partial, RateLimit, Reason, ToolReason};
pub use protocol::{BoxFuture, Caps, Channel, Kind, Protocol, Request, Section, Sent};
pub use recipients::{Delivery, Recipients};
pub use show::{Shown, show_any};

/// The protocols the bridge speaks, by their `type:` name: the only place that lists them.
pub static PROTOCOLS: &[Kind] = &[dingtalk::KIND, feishu::FEISHU, feishu::LARK, wecom::KIND, dingtalk_app::KIND];

/// The registry entry for a target's `type:`.
pub fn kind(name: &str) -> Option<&'static Kind> {
    PROTOCOLS.iter().find(|k| k.name == name)
}

/// The `type:` names, for a message listing them.
pub fn kind_names() -> Vec<&'static str> {
    PROTOCOLS.iter().map(|k| k.name).collect()
}

/// The protocols that read `key` of a target (to say whose a misplaced key is).
pub fn owners_of(key: &str) -> Vec<&'static str> {
    PROTOCOLS.iter().filter(|k| k.keys.contains(&key)).map(|k| k.name).collect()
}

/// The highest size limit of every protocol's (DingTalk's 20000 bytes): `delivery.max_message_bytes`.
pub const MAX_MESSAGE_BYTES: usize = 20_000;
/// The budget a target gets by default where its protocol has none of its own (DingTalk's 20 a minute).
pub const DEFAULT_RATE_LIMIT: RateLimit = RateLimit { messages: 20, per: std::time::Duration::from_secs(60) };

#[cfg(test)]
pub mod testing;
#[cfg(test)]
mod tests;
