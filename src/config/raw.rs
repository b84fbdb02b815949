//! The configuration file as written: its YAML shape, a contract with users. Unknown keys are errors:
//! the keys here are listed in [`TOP_KEYS`] and [`TARGET_KEYS`]; a protocol's own keys (of its targets,
//! and of a section it owns) are read by the protocol, which reports any it does not know.

use std::collections::BTreeMap;

use serde::Deserialize;

/// The top-level keys of [`RawConfig`] (besides the sections protocols own).
pub(super) const TOP_KEYS: &[&str] =
    &["listen", "storage", "templates_dir", "timezone", "server", "delivery", "people", "groups", "targets", "console"];

/// The keys every target has, read here ([`RawTarget`]); the rest are its protocol's (`mention` is
/// shared: `rules` and `on_resolved` are read here, the people it rings by its protocol).
pub(super) const TARGET_KEYS: &[&str] =
    &["type", "keyword", "template", "labels", "rate_limit", "send_on", "split", "route", "enabled"];

#[derive(Debug, Deserialize)]
pub(super) struct RawConfig {
    pub(super) listen: Option<String>,
    #[serde(default)]
    pub(super) storage: RawStorage,
    pub(super) templates_dir: Option<String>,
    pub(super) timezone: Option<String>,
    #[serde(default)]
    pub(super) server: RawServer,
    #[serde(default)]
    pub(super) delivery: RawDelivery,
    /// The people directory: each person's identifier in each chat tool.
    #[serde(default)]
    pub(super) people: BTreeMap<String, RawPerson>,
    /// Named groups of people.
    #[serde(default)]
    pub(super) groups: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    pub(super) targets: BTreeMap<String, RawTarget>,
    /// The operations console and its API: who may use them.
    pub(super) console: Option<RawConsole>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConsole {
    #[serde(default)]
    pub(super) users: Vec<RawConsoleUser>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConsoleUser {
    pub(super) name: String,
    pub(super) password: Option<String>,
    pub(super) password_file: Option<String>,
    /// `admin` (may switch targets and send tests) or `read` (the default).
    pub(super) role: Option<String>,
}

/// `people.<name>`: identifiers by the keys the protocols name (`dingtalk_mobile`, `feishu_user_id`, …).
pub(super) type RawPerson = BTreeMap<String, String>;

/// `targets.<name>.route`: forward each alert to the target its label's value names.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRoute {
    pub(super) by_label: String,
    #[serde(default)]
    pub(super) targets: BTreeMap<String, String>,
    pub(super) default: Option<String>,
}

/// One `mention.rules` entry.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRule {
    /// Label equality, as Alertmanager's `match`.
    #[serde(default, rename = "match")]
    pub(super) match_eq: BTreeMap<String, String>,
    /// Anchored regexes, as Alertmanager's `match_re`.
    #[serde(default)]
    pub(super) match_re: BTreeMap<String, String>,
    /// Alertmanager's matcher strings: `severity=~"critical|page"`, `team!=infra`.
    #[serde(default)]
    pub(super) matchers: Vec<String>,
    #[serde(default)]
    pub(super) people: Vec<String>,
    #[serde(default)]
    pub(super) all: bool,
    pub(super) from_label: Option<String>,
    pub(super) from_annotation: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStorage {
    pub(super) path: Option<String>,
    pub(super) sync: Option<String>,
    pub(super) retention: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawServer {
    pub(super) max_request_bytes: Option<usize>,
    pub(super) max_connections: Option<usize>,
    pub(super) max_connections_per_client: Option<usize>,
    pub(super) max_inflight_bytes: Option<usize>,
    pub(super) header_read_timeout: Option<String>,
    pub(super) request_timeout: Option<String>,
    pub(super) idle_timeout: Option<String>,
    pub(super) shutdown_grace: Option<String>,
    pub(super) auth: Option<RawAuth>,
    #[serde(default)]
    pub(super) limits: RawLimits,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLimits {
    pub(super) max_alerts: Option<usize>,
    pub(super) max_labels: Option<usize>,
    pub(super) max_value_bytes: Option<usize>,
    pub(super) max_fields: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAuth {
    pub(super) bearer_token: Option<String>,
    pub(super) bearer_token_file: Option<String>,
    pub(super) basic_auth: Option<RawBasicAuth>,
    #[serde(default)]
    pub(super) protect_metrics: bool,
    #[serde(default)]
    pub(super) protect_health: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawBasicAuth {
    pub(super) username: String,
    pub(super) password: Option<String>,
    pub(super) password_file: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDelivery {
    pub(super) connect_timeout: Option<String>,
    pub(super) request_timeout: Option<String>,
    pub(super) max_age: Option<String>,
    pub(super) backoff_initial: Option<String>,
    pub(super) backoff_max: Option<String>,
    pub(super) rate_limit: Option<RawRateLimit>,
    pub(super) throttle_penalty: Option<String>,
    pub(super) max_message_bytes: Option<usize>,
    pub(super) digest_after: Option<String>,
    pub(super) dedup_window: Option<String>,
}

/// `{messages: N, per: DURATION}`, or `off` (no budget: for benchmarks and endpoints other than DingTalk).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum RawRateLimit {
    /// YAML 1.1 reads a bare `off` as false.
    Switch(bool),
    Word(String),
    Limit(RawLimit),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLimit {
    pub(super) messages: u32,
    pub(super) per: String,
}

/// What every target has; its protocol's keys are read by the protocol (see [`TARGET_KEYS`]).
#[derive(Debug, Deserialize)]
pub(super) struct RawTarget {
    /// A protocol's `type:` name (`dingtalk`, the default, …).
    #[serde(rename = "type")]
    pub(super) kind: Option<String>,
    pub(super) keyword: Option<String>,
    pub(super) template: Option<String>,
    #[serde(default)]
    pub(super) labels: RawLabels,
    #[serde(default)]
    pub(super) mention: RawMention,
    pub(super) rate_limit: Option<RawRateLimit>,
    /// `firing`, `resolved`: which alerts the target receives.
    pub(super) send_on: Option<Vec<String>>,
    /// `per_group` (the default) or `per_alert`.
    pub(super) split: Option<String>,
    /// A router: forwards to other targets by label.
    pub(super) route: Option<RawRoute>,
    /// Whether it sends (the console may override this until cleared).
    pub(super) enabled: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLabels {
    #[serde(default)]
    pub(super) hide: Vec<String>,
    #[serde(default)]
    pub(super) show: Vec<String>,
}

/// `mention`: the rules (and whether resolved messages ring) are every target's; whom it rings by
/// name is its protocol's.
#[derive(Debug, Default, Deserialize)]
pub(super) struct RawMention {
    #[serde(default)]
    pub(super) on_resolved: bool,
    #[serde(default)]
    pub(super) rules: Vec<RawRule>,
}
