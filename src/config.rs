//! The configuration file: its YAML shape (a contract with users), `${VAR}` expansion, `*_file` secrets,
//! and validation into a [`Config`] whose every field is known good. Problems name the file, the key and
//! what is wrong.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::secret::Secret;

pub const DEFAULT_CONFIG_PATH: &str = "dingtalk-bridge.yaml";
/// DingTalk rejects a body over this many bytes (errcode 460101).
pub const DINGTALK_MAX_BYTES: usize = 20_000;
/// DingTalk's documented budget per robot.
pub const DINGTALK_RATE_LIMIT: RateLimit = RateLimit { messages: 20, per: Duration::from_secs(60) };
/// DingTalk mentions at most this many people per message.
pub const DINGTALK_MAX_MENTIONS: usize = 50;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}: cannot read: {source}")]
    Read { file: String, source: std::io::Error },
    #[error("{file}: {message}")]
    Parse { file: String, message: String },
    #[error("{}", problems.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("\n"))]
    Invalid { problems: Vec<Problem> },
}

/// One thing wrong with the configuration, located by file and key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub file: String,
    pub key: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {}", self.file, self.key, self.message)
    }
}

// ---------------------------------------------------------------------------------------------------
// The file as written.

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    listen: Option<String>,
    #[serde(default)]
    storage: RawStorage,
    templates_dir: Option<String>,
    timezone: Option<String>,
    #[serde(default)]
    server: RawServer,
    #[serde(default)]
    delivery: RawDelivery,
    #[serde(default)]
    targets: BTreeMap<String, RawTarget>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStorage {
    path: Option<String>,
    sync: Option<String>,
    retention: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServer {
    max_request_bytes: Option<usize>,
    max_connections: Option<usize>,
    header_read_timeout: Option<String>,
    shutdown_grace: Option<String>,
    auth: Option<RawAuth>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAuth {
    bearer_token: Option<String>,
    bearer_token_file: Option<String>,
    basic_auth: Option<RawBasicAuth>,
    #[serde(default)]
    protect_metrics: bool,
    #[serde(default)]
    protect_health: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBasicAuth {
    username: String,
    password: Option<String>,
    password_file: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDelivery {
    connect_timeout: Option<String>,
    request_timeout: Option<String>,
    max_age: Option<String>,
    backoff_initial: Option<String>,
    backoff_max: Option<String>,
    rate_limit: Option<RawRateLimit>,
    throttle_penalty: Option<String>,
    max_message_bytes: Option<usize>,
    digest_after: Option<String>,
    dedup_window: Option<String>,
}

/// `{messages: N, per: DURATION}`, or `off` (no budget: for benchmarks and endpoints other than DingTalk).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawRateLimit {
    /// YAML 1.1 reads a bare `off` as false.
    Switch(bool),
    Word(String),
    Limit(RawLimit),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimit {
    messages: u32,
    per: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTarget {
    url: Option<String>,
    url_file: Option<String>,
    secret: Option<String>,
    secret_file: Option<String>,
    keyword: Option<String>,
    template: Option<String>,
    msgtype: Option<String>,
    #[serde(default)]
    mention: RawMention,
    #[serde(default)]
    dry_run: bool,
    rate_limit: Option<RawRateLimit>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMention {
    #[serde(default)]
    all: bool,
    #[serde(default)]
    mobiles: Vec<String>,
    #[serde(default)]
    user_ids: Vec<String>,
    #[serde(default)]
    on_resolved: bool,
}

// ---------------------------------------------------------------------------------------------------
// The validated configuration.

#[derive(Debug, Clone)]
pub struct Config {
    /// The file it was loaded from (for messages).
    pub source: PathBuf,
    pub listen: SocketAddr,
    pub storage: StorageConfig,
    pub templates_dir: Option<PathBuf>,
    pub timezone: chrono_tz::Tz,
    pub server: ServerConfig,
    pub delivery: DeliveryConfig,
    pub targets: BTreeMap<String, Target>,
    /// Things that work but are probably not meant (plain http, ...), for `check-config` and start-up logs.
    pub warnings: Vec<Problem>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncMode {
    /// fsync on every commit: an accepted alert survives power loss.
    Full,
    /// fsync at WAL checkpoints: an accepted alert survives a crash or kill of the bridge, not power loss.
    Normal,
}

#[derive(Debug, Clone)]
pub struct StorageConfig {
    pub path: PathBuf,
    pub sync: SyncMode,
    /// How long finished (delivered or given-up) messages are kept as records.
    pub retention: Duration,
}

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub max_request_bytes: usize,
    pub max_connections: usize,
    pub header_read_timeout: Duration,
    pub shutdown_grace: Duration,
    pub auth: Auth,
}

/// Who may post notifications (and, optionally, scrape and probe). Empty: anyone.
#[derive(Debug, Clone, Default)]
pub struct Auth {
    pub bearer_token: Option<Secret>,
    pub basic: Option<(String, Secret)>,
    pub protect_metrics: bool,
    pub protect_health: bool,
}

impl Auth {
    pub fn enabled(&self) -> bool {
        self.bearer_token.is_some() || self.basic.is_some()
    }
}

#[derive(Debug, Clone)]
pub struct DeliveryConfig {
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    pub max_age: Duration,
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    pub rate_limit: RateLimit,
    pub throttle_penalty: Duration,
    pub max_message_bytes: usize,
    /// Waiting messages are merged into a digest when the robot's budget cannot send them all within this.
    pub digest_after: Duration,
    /// An identical notification for the same target within this window is acknowledged, not sent again
    /// (zero turns suppression off).
    pub dedup_window: Duration,
}

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

#[derive(Debug, Clone)]
pub enum Endpoint {
    /// A DingTalk robot webhook URL (with its access_token).
    Robot(Secret),
    /// Log the exact body instead of sending it (for trying the bridge without a robot).
    DryRun,
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

#[derive(Debug, Clone)]
pub struct Target {
    pub name: String,
    pub endpoint: Endpoint,
    pub secret: Option<Secret>,
    pub keyword: Option<String>,
    pub template: String,
    pub msgtype: MsgType,
    pub mention: Mention,
    /// The robot's send budget (targets that share a robot share one budget, so they must agree).
    pub rate_limit: RateLimit,
}

impl Target {
    /// Identifies the robot behind this target: targets with the same robot share its rate budget.
    pub fn robot_key(&self) -> String {
        match &self.endpoint {
            Endpoint::Robot(url) => url.expose().to_string(),
            Endpoint::DryRun => format!("dry-run:{}", self.name),
        }
    }
}

// ---------------------------------------------------------------------------------------------------
// Loading.

impl Config {
    /// Reads, expands and validates the file at `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { file: file.clone(), source })?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Self::from_yaml(&text, &file, &base, &|name| std::env::var(name).ok())
    }

    /// Parses YAML text; `base` resolves relative paths, `env` looks up `${VAR}`s (tests pass their own).
    pub fn from_yaml(
        text: &str,
        file: &str,
        base: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let raw: RawConfig = serde_saphyr::from_str(text).map_err(|e| ConfigError::Parse {
            file: file.to_string(),
            // Only the first line (line, column, problem): the rest quotes the file's lines around the
            // error, which may hold a robot URL or secret.
            message: e.to_string().lines().next().unwrap_or_default().trim_start_matches("error: ").to_string(),
        })?;
        let mut v =
            Validator { file: file.to_string(), base: base.to_path_buf(), env, problems: vec![], warnings: vec![] };
        let config = v.config(raw);
        match config {
            Some(config) if v.problems.is_empty() => Ok(Config { warnings: v.warnings, ..config }),
            _ => Err(ConfigError::Invalid { problems: v.problems }),
        }
    }
}

struct Validator<'a> {
    file: String,
    base: PathBuf,
    env: &'a dyn Fn(&str) -> Option<String>,
    problems: Vec<Problem>,
    warnings: Vec<Problem>,
}

impl Validator<'_> {
    fn problem(&mut self, key: &str, message: impl Into<String>) {
        self.problems.push(Problem { file: self.file.clone(), key: key.to_string(), message: message.into() });
    }

    fn warn(&mut self, key: &str, message: impl Into<String>) {
        self.warnings.push(Problem { file: self.file.clone(), key: key.to_string(), message: message.into() });
    }

    fn expand(&mut self, key: &str, value: &str) -> Option<String> {
        match expand_env(value, self.env) {
            Ok(v) => Some(v),
            Err(e) => {
                self.problem(key, e);
                None
            }
        }
    }

    fn duration(&mut self, key: &str, value: Option<&str>, default: Duration) -> Duration {
        match value {
            None => default,
            Some(s) => parse_duration(s).unwrap_or_else(|e| {
                self.problem(key, e);
                default
            }),
        }
    }

    fn path(&self, p: &str) -> PathBuf {
        let p = PathBuf::from(p);
        if p.is_absolute() { p } else { self.base.join(p) }
    }

    /// A value given inline or through `<key>_file`, exactly one of them.
    fn inline_or_file(&mut self, key: &str, inline: Option<&str>, file: Option<&str>) -> Option<String> {
        match (inline, file) {
            (Some(_), Some(_)) => {
                self.problem(key, format!("set either {key} or {key}_file, not both"));
                None
            }
            (Some(v), None) => self.expand(key, v),
            (None, Some(f)) => {
                let key_file = format!("{key}_file");
                let f = self.expand(&key_file, f)?;
                let path = self.path(&f);
                match std::fs::read_to_string(&path) {
                    // Secret mounts often end with a newline that is not part of the value.
                    Ok(v) if !v.trim().is_empty() => Some(v.trim().to_string()),
                    Ok(_) => {
                        self.problem(&key_file, format!("{} is empty", path.display()));
                        None
                    }
                    Err(e) => {
                        self.problem(&key_file, format!("cannot read {}: {e}", path.display()));
                        None
                    }
                }
            }
            (None, None) => None,
        }
    }

    fn config(&mut self, raw: RawConfig) -> Option<Config> {
        let listen = raw.listen.as_deref().unwrap_or("0.0.0.0:8060");
        let listen = match self.expand("listen", listen).map(|l| l.parse::<SocketAddr>()) {
            Some(Ok(addr)) => addr,
            Some(Err(e)) => {
                self.problem("listen", format!("not an address like 0.0.0.0:8060: {e}"));
                SocketAddr::from(([0, 0, 0, 0], 8060))
            }
            None => SocketAddr::from(([0, 0, 0, 0], 8060)),
        };

        let storage_path = raw.storage.path.as_deref().unwrap_or("data/dingtalk-bridge.sqlite3");
        let storage_path = self.expand("storage.path", storage_path).map(|p| self.path(&p)).unwrap_or_default();
        let sync = match raw.storage.sync.as_deref() {
            None | Some("full") => SyncMode::Full,
            Some("normal") => SyncMode::Normal,
            Some(other) => {
                self.problem("storage.sync", format!("unknown mode {other:?}; expected full or normal"));
                SyncMode::Full
            }
        };
        let retention =
            self.duration("storage.retention", raw.storage.retention.as_deref(), Duration::from_secs(7 * 86400));

        let templates_dir =
            raw.templates_dir.as_deref().and_then(|d| self.expand("templates_dir", d)).map(|d| self.path(&d));
        if let Some(dir) = &templates_dir
            && !dir.is_dir()
        {
            self.problem("templates_dir", format!("{} is not a directory", dir.display()));
        }

        let timezone = match raw.timezone.as_deref() {
            None => chrono_tz::UTC,
            Some(tz) => tz.parse::<chrono_tz::Tz>().unwrap_or_else(|_| {
                self.problem("timezone", format!("unknown IANA time zone {tz:?} (e.g. Asia/Shanghai, UTC)"));
                chrono_tz::UTC
            }),
        };

        let server = ServerConfig {
            max_request_bytes: positive(self, "server.max_request_bytes", raw.server.max_request_bytes, 4 << 20),
            max_connections: positive(self, "server.max_connections", raw.server.max_connections, 512),
            header_read_timeout: self.duration(
                "server.header_read_timeout",
                raw.server.header_read_timeout.as_deref(),
                Duration::from_secs(10),
            ),
            shutdown_grace: self.duration(
                "server.shutdown_grace",
                raw.server.shutdown_grace.as_deref(),
                Duration::from_secs(10),
            ),
            auth: self.auth(raw.server.auth),
        };

        let d = &raw.delivery;
        let rate_limit = self.rate_limit("delivery.rate_limit", d.rate_limit.as_ref(), DINGTALK_RATE_LIMIT);
        let delivery = DeliveryConfig {
            connect_timeout: self.duration(
                "delivery.connect_timeout",
                d.connect_timeout.as_deref(),
                Duration::from_secs(5),
            ),
            request_timeout: self.duration(
                "delivery.request_timeout",
                d.request_timeout.as_deref(),
                Duration::from_secs(15),
            ),
            max_age: self.duration("delivery.max_age", d.max_age.as_deref(), Duration::from_secs(3 * 3600)),
            backoff_initial: self.duration(
                "delivery.backoff_initial",
                d.backoff_initial.as_deref(),
                Duration::from_secs(1),
            ),
            backoff_max: self.duration("delivery.backoff_max", d.backoff_max.as_deref(), Duration::from_secs(300)),
            rate_limit,
            throttle_penalty: self.duration(
                "delivery.throttle_penalty",
                d.throttle_penalty.as_deref(),
                Duration::from_secs(600),
            ),
            max_message_bytes: d.max_message_bytes.unwrap_or(DINGTALK_MAX_BYTES),
            digest_after: self.duration("delivery.digest_after", d.digest_after.as_deref(), Duration::from_secs(15)),
            dedup_window: self.duration("delivery.dedup_window", d.dedup_window.as_deref(), Duration::from_secs(120)),
        };
        if delivery.max_message_bytes < 2000 || delivery.max_message_bytes > DINGTALK_MAX_BYTES {
            self.problem(
                "delivery.max_message_bytes",
                format!("must be between 2000 and {DINGTALK_MAX_BYTES} (DingTalk's own limit)"),
            );
        }
        if delivery.request_timeout.is_zero() || delivery.connect_timeout.is_zero() {
            self.problem("delivery", "timeouts must be greater than zero");
        }
        if delivery.backoff_initial > delivery.backoff_max {
            self.problem("delivery.backoff_initial", "must not exceed delivery.backoff_max");
        }

        if raw.targets.is_empty() {
            self.problem("targets", "no targets configured; add at least one under targets:");
        }
        let mut targets: BTreeMap<String, Target> = BTreeMap::new();
        for (name, t) in raw.targets {
            if let Some(target) = self.target(&name, t, rate_limit) {
                targets.insert(name, target);
            }
        }
        // One robot, one budget: targets posting to the same robot must not disagree about it.
        let mut by_robot: BTreeMap<String, &Target> = BTreeMap::new();
        let mut conflicts = vec![];
        for t in targets.values() {
            match by_robot.get(&t.robot_key()) {
                Some(first) if first.rate_limit != t.rate_limit => conflicts.push((first.name.clone(), t.name.clone())),
                Some(_) => {}
                None => {
                    by_robot.insert(t.robot_key(), t);
                }
            }
        }
        for (a, b) in conflicts {
            self.problem(
                &format!("targets.{b}.rate_limit"),
                format!(
                    "targets {a} and {b} post to the same robot, which has one budget; give them the same rate_limit"
                ),
            );
        }
        Some(Config {
            source: PathBuf::from(&self.file),
            listen,
            storage: StorageConfig { path: storage_path, sync, retention },
            templates_dir,
            timezone,
            server,
            delivery,
            targets,
            warnings: vec![],
        })
    }

    fn auth(&mut self, raw: Option<RawAuth>) -> Auth {
        let Some(raw) = raw else { return Auth::default() };
        let bearer_token = self
            .inline_or_file("server.auth.bearer_token", raw.bearer_token.as_deref(), raw.bearer_token_file.as_deref())
            .map(Secret::new);
        let basic = raw.basic_auth.and_then(|b| {
            let password = self.inline_or_file(
                "server.auth.basic_auth.password",
                b.password.as_deref(),
                b.password_file.as_deref(),
            );
            match password {
                Some(p) if !b.username.is_empty() => Some((b.username, Secret::new(p))),
                _ => {
                    if !self.problems.iter().any(|p| p.key.starts_with("server.auth.basic_auth")) {
                        self.problem("server.auth.basic_auth", "needs a username and a password or password_file");
                    }
                    None
                }
            }
        });
        let auth =
            Auth { bearer_token, basic, protect_metrics: raw.protect_metrics, protect_health: raw.protect_health };
        if !auth.enabled() && !self.problems.iter().any(|p| p.key.starts_with("server.auth")) {
            self.problem("server.auth", "set bearer_token(_file) or basic_auth, or remove server.auth");
        }
        auth
    }

    fn rate_limit(&mut self, key: &str, raw: Option<&RawRateLimit>, default: RateLimit) -> RateLimit {
        match raw {
            None => default,
            Some(RawRateLimit::Switch(false)) => self.rate_limit(key, Some(&RawRateLimit::Word("off".into())), default),
            Some(RawRateLimit::Switch(true)) => {
                self.problem(key, "expected {messages: N, per: DURATION} or off, got true");
                default
            }
            Some(RawRateLimit::Word(w)) if w == "off" => {
                self.warn(
                    key,
                    "rate limiting is off: DingTalk throttles a robot beyond 20 messages a minute (use only for benchmarks or other endpoints)",
                );
                RateLimit::UNLIMITED
            }
            Some(RawRateLimit::Word(w)) => {
                self.problem(key, format!("expected {{messages: N, per: DURATION}} or off, got {w:?}"));
                default
            }
            Some(RawRateLimit::Limit(r)) => {
                let per = self.duration(&format!("{key}.per"), Some(&r.per), default.per);
                if r.messages == 0 || per.is_zero() {
                    self.problem(key, "messages and per must be greater than zero");
                }
                RateLimit { messages: r.messages.clamp(1, u32::MAX - 1), per: per.max(Duration::from_millis(1)) }
            }
        }
    }

    fn target(&mut self, name: &str, t: RawTarget, default_rate: RateLimit) -> Option<Target> {
        let key = format!("targets.{name}");
        if !valid_target_name(name) {
            self.problem(&key, "target names must match [A-Za-z][A-Za-z0-9_-]* (they appear in URLs and metrics)");
        }
        let endpoint = if t.dry_run {
            if t.url.is_some() || t.url_file.is_some() {
                self.problem(&format!("{key}.dry_run"), "a dry_run target must not set url or url_file");
            }
            Endpoint::DryRun
        } else {
            let url = self.inline_or_file(&format!("{key}.url"), t.url.as_deref(), t.url_file.as_deref());
            let Some(url) = url else {
                if !self.problems.iter().any(|p| p.key.starts_with(&format!("{key}.url"))) {
                    self.problem(&format!("{key}.url"), "missing: set url, url_file, or dry_run: true");
                }
                return None;
            };
            match reqwest::Url::parse(&url) {
                Ok(u) if (u.scheme() == "https" || u.scheme() == "http") && u.host().is_some() => {
                    if u.scheme() == "http" {
                        self.warn(
                            &format!("{key}.url"),
                            "plain http: the access_token travels unencrypted (fine for tests on loopback)",
                        );
                    }
                }
                // The URL holds the access_token: never echo it.
                _ => self.problem(
                    &format!("{key}.url"),
                    "not an http(s) URL with a host (value not shown: it holds the access_token)",
                ),
            }
            Endpoint::Robot(Secret::new(url))
        };
        let secret = self.inline_or_file(&format!("{key}.secret"), t.secret.as_deref(), t.secret_file.as_deref());
        if let Some(s) = &secret
            && !s.starts_with("SEC")
        {
            self.warn(
                &format!("{key}.secret"),
                "DingTalk signing secrets start with SEC; check you copied the whole secret",
            );
        }
        let keyword = match t.keyword.as_deref().map(|k| self.expand(&format!("{key}.keyword"), k)) {
            Some(Some(k)) if k.trim().is_empty() => {
                self.problem(&format!("{key}.keyword"), "empty keyword; remove the key if the robot has none");
                None
            }
            Some(k) => k,
            None => None,
        };
        let msgtype = match t.msgtype.as_deref() {
            None | Some("markdown") => MsgType::Markdown,
            Some("text") => MsgType::Text,
            Some("actionCard") => MsgType::ActionCard,
            Some(other) => {
                self.problem(
                    &format!("{key}.msgtype"),
                    format!("unsupported {other:?}; expected markdown, text or actionCard"),
                );
                MsgType::Markdown
            }
        };
        let template = t.template.unwrap_or_else(|| "default".to_string());
        let expand_all = |v: &mut Self, list: Vec<String>, k: &str| -> Vec<String> {
            list.into_iter().enumerate().filter_map(|(i, m)| v.expand(&format!("{key}.mention.{k}[{i}]"), &m)).collect()
        };
        let mention = Mention {
            all: t.mention.all,
            mobiles: expand_all(self, t.mention.mobiles, "mobiles"),
            user_ids: expand_all(self, t.mention.user_ids, "user_ids"),
            on_resolved: t.mention.on_resolved,
        };
        if mention.mobiles.len() + mention.user_ids.len() > DINGTALK_MAX_MENTIONS {
            self.problem(
                &format!("{key}.mention"),
                format!("DingTalk mentions at most {DINGTALK_MAX_MENTIONS} people per message"),
            );
        }
        for (i, m) in mention.mobiles.iter().enumerate() {
            if m.is_empty() || !m.chars().all(|c| c.is_ascii_digit() || c == '+' || c == '-') {
                self.problem(&format!("{key}.mention.mobiles[{i}]"), format!("{m:?} is not a phone number"));
            }
        }
        for (i, u) in mention.user_ids.iter().enumerate() {
            if u.trim().is_empty() || u.contains(char::is_whitespace) {
                self.problem(&format!("{key}.mention.user_ids[{i}]"), format!("{u:?} is not a DingTalk user id"));
            }
        }
        let rate_limit = self.rate_limit(&format!("{key}.rate_limit"), t.rate_limit.as_ref(), default_rate);
        Some(Target {
            name: name.to_string(),
            endpoint,
            secret: secret.map(Secret::new),
            keyword,
            template,
            msgtype,
            mention,
            rate_limit,
        })
    }
}

fn positive(v: &mut Validator, key: &str, value: Option<usize>, default: usize) -> usize {
    match value {
        Some(0) => {
            v.problem(key, "must be greater than zero");
            default
        }
        Some(n) => n,
        None => default,
    }
}

pub fn valid_target_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// Replaces `${NAME}` with the environment's value; `$$` is a literal `$`. An unset variable is an error.
pub fn expand_env(value: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(stripped) = after.strip_prefix('$') {
            out.push('$');
            rest = stripped;
        } else if let Some(inner) = after.strip_prefix('{') {
            let end = inner.find('}').ok_or_else(|| "unterminated ${...}".to_string())?;
            let name = &inner[..end];
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(format!("invalid variable name ${{{name}}}"));
            }
            match env(name) {
                Some(v) => out.push_str(&v),
                None => return Err(format!("environment variable {name} is not set")),
            }
            rest = &inner[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// Parses `500ms`, `10s`, `5m`, `1h`, `7d`, or combinations such as `1h30m`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = || format!("invalid duration {s:?}; use e.g. 500ms, 10s, 5m, 1h, 7d");
    let s = s.trim();
    if s.is_empty() {
        return Err(bad());
    }
    let mut total = Duration::ZERO;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        if digits == 0 {
            return Err(bad());
        }
        let n: u64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
        let unit = match &rest[..unit_len] {
            "ms" => Duration::from_millis(n),
            "s" => Duration::from_secs(n),
            "m" => Duration::from_secs(n * 60),
            "h" => Duration::from_secs(n * 3600),
            "d" => Duration::from_secs(n * 86400),
            _ => return Err(bad()),
        };
        total += unit;
        rest = &rest[unit_len..];
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "OPS_TOKEN" => Some("tok123".into()),
            "OPS_SECRET" => Some("SECabc".into()),
            _ => None,
        }
    }

    fn load(text: &str) -> Result<Config, ConfigError> {
        Config::from_yaml(text, "test.yaml", Path::new("/etc/bridge"), &env)
    }

    const GOOD: &str = r#"
listen: "127.0.0.1:8060"
storage:
  path: "data/db.sqlite3"
timezone: "Asia/Shanghai"
targets:
  ops:
    url: "https://oapi.dingtalk.com/robot/send?access_token=${OPS_TOKEN}"
    secret: "${OPS_SECRET}"
    keyword: "Alert"
    template: "default"
    msgtype: "markdown"
    mention:
      all: false
      mobiles: ["13800000000"]
      user_ids: ["manager01"]
"#;

    #[test]
    fn loads_the_documented_example() {
        let c = load(GOOD).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:8060");
        assert_eq!(c.storage.path, PathBuf::from("/etc/bridge/data/db.sqlite3"));
        assert_eq!(c.timezone, chrono_tz::Asia::Shanghai);
        let t = &c.targets["ops"];
        match &t.endpoint {
            Endpoint::Robot(u) => assert_eq!(u.expose(), "https://oapi.dingtalk.com/robot/send?access_token=tok123"),
            Endpoint::DryRun => panic!("expected a robot"),
        }
        assert_eq!(t.secret.as_ref().unwrap().expose(), "SECabc");
        assert_eq!(t.keyword.as_deref(), Some("Alert"));
        assert_eq!(t.mention.mobiles, vec!["13800000000"]);
        assert_eq!(c.delivery.rate_limit, RateLimit { messages: 20, per: Duration::from_secs(60) });
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    }

    #[test]
    fn unknown_keys_are_errors_naming_the_key() {
        let err = load(&GOOD.replace("keyword:", "keywrod:")).unwrap_err().to_string();
        assert!(err.starts_with("test.yaml:"), "{err}");
        assert!(err.contains("unknown field `keywrod`"), "{err}");
        assert!(err.contains("line 10"), "{err}");
    }

    #[test]
    fn parse_errors_never_quote_the_file() {
        let text = GOOD.replace("keyword: \"Alert\"", "keyword: [\"Alert\"");
        let err = load(&text.replace("${OPS_TOKEN}", "tok-in-file")).unwrap_err().to_string();
        assert!(err.starts_with("test.yaml: line "), "{err}");
        assert!(!err.contains("tok-in-file") && !err.contains("access_token") && !err.contains('\n'), "{err}");
    }

    #[test]
    fn unset_variable_is_named() {
        let err = load(&GOOD.replace("${OPS_SECRET}", "${NOPE_SECRET}")).unwrap_err().to_string();
        assert_eq!(err, "test.yaml: targets.ops.secret: environment variable NOPE_SECRET is not set");
    }

    #[test]
    fn bad_values_are_all_reported() {
        let text = GOOD
            .replace("Asia/Shanghai", "Mars/Olympus")
            .replace("msgtype: \"markdown\"", "msgtype: \"feedCard\"")
            .replace("ops:", "9ops:");
        let ConfigError::Invalid { problems } = load(&text).unwrap_err() else { panic!("expected Invalid") };
        let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(keys, vec!["timezone", "targets.9ops", "targets.9ops.msgtype"]);
    }

    #[test]
    fn url_problems_never_echo_the_token() {
        let err = load(&GOOD.replace("https://oapi", "ftp://oapi")).unwrap_err().to_string();
        assert!(err.contains("targets.ops.url"), "{err}");
        assert!(!err.contains("tok123"), "{err}");
    }

    #[test]
    fn http_url_warns() {
        let c = load(&GOOD.replace("https://oapi", "http://oapi")).unwrap();
        assert_eq!(c.warnings.len(), 1);
        assert_eq!(c.warnings[0].key, "targets.ops.url");
    }

    #[test]
    fn secret_file_is_read_and_trimmed() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("secret"), "SECfromfile\n").unwrap();
        let text = GOOD.replace("secret: \"${OPS_SECRET}\"", "secret_file: secret");
        let c = Config::from_yaml(&text, "t.yaml", dir.path(), &env).unwrap();
        assert_eq!(c.targets["ops"].secret.as_ref().unwrap().expose(), "SECfromfile");
        let both = GOOD.replace("secret: \"${OPS_SECRET}\"", "secret: x\n    secret_file: secret");
        let err = Config::from_yaml(&both, "t.yaml", dir.path(), &env).unwrap_err().to_string();
        assert!(err.contains("set either targets.ops.secret or targets.ops.secret_file"), "{err}");
    }

    #[test]
    fn dry_run_needs_no_url() {
        let c = load("targets:\n  try:\n    dry_run: true\n").unwrap();
        assert!(matches!(c.targets["try"].endpoint, Endpoint::DryRun));
        let err = load("targets:\n  t:\n    keyword: x\n").unwrap_err().to_string();
        assert!(err.contains("targets.t.url: missing"), "{err}");
    }

    #[test]
    fn targets_sharing_a_robot_share_one_rate_limit() {
        let text = "targets:\n  a:\n    url: https://x/send?access_token=1\n  b:\n    url: https://x/send?access_token=1\n    rate_limit: {messages: 5, per: 1m}\n  c:\n    url: https://x/send?access_token=2\n    rate_limit: {messages: 5, per: 1m}\n";
        let ConfigError::Invalid { problems } = load(text).unwrap_err() else { panic!("expected Invalid") };
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].key, "targets.b.rate_limit");
        let ok =
            load(&text.replace("rate_limit: {messages: 5, per: 1m}\n  c", "rate_limit: {messages: 20, per: 60s}\n  c"))
                .unwrap();
        assert_eq!(ok.targets["c"].rate_limit, RateLimit { messages: 5, per: Duration::from_secs(60) });
        assert_eq!(ok.delivery.dedup_window, Duration::from_secs(120));
    }

    #[test]
    fn rate_limiting_can_be_turned_off_with_a_warning() {
        let ok =
            load("delivery:\n  rate_limit: off\ntargets:\n  a:\n    url: https://x/send?access_token=1\n").unwrap();
        assert!(ok.targets["a"].rate_limit.is_unlimited());
        assert!(ok.warnings.iter().any(|w| w.key == "delivery.rate_limit" && w.message.contains("20 messages")));
        let text = "targets:\n  a:\n    url: https://x/send?access_token=1\n    rate_limit: fast\n";
        let ConfigError::Invalid { problems } = load(text).unwrap_err() else { panic!("expected Invalid") };
        assert_eq!(problems[0].key, "targets.a.rate_limit");
        assert!(problems[0].message.contains("off"), "{}", problems[0].message);
    }

    #[test]
    fn receiver_auth_from_inline_values_and_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("pw"), "hunter2\n").unwrap();
        let text = format!(
            "server:\n  auth:\n    bearer_token: ${{OPS_TOKEN}}\n    basic_auth: {{username: am, password_file: pw}}\n    protect_metrics: true\n{}",
            &GOOD[GOOD.find("targets:").unwrap()..]
        );
        let c = Config::from_yaml(&text, "t.yaml", dir.path(), &env).unwrap();
        let a = &c.server.auth;
        assert_eq!(a.bearer_token.as_ref().unwrap().expose(), "tok123");
        assert_eq!(a.basic.as_ref().map(|(u, p)| (u.as_str(), p.expose())), Some(("am", "hunter2")));
        assert!(a.protect_metrics && !a.protect_health);
        let err = Config::from_yaml(
            &text.replace("    bearer_token: ${OPS_TOKEN}\n    basic_auth: {username: am, password_file: pw}\n", ""),
            "t.yaml",
            dir.path(),
            &env,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("server.auth: set bearer_token"), "{err}");
    }

    #[test]
    fn expansion_rules() {
        assert_eq!(expand_env("a${OPS_TOKEN}b$$c$d", &env).unwrap(), "atok123b$c$d");
        assert!(expand_env("${OPS_TOKEN", &env).is_err());
        assert!(expand_env("${}", &env).is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("7d").unwrap(), Duration::from_secs(7 * 86400));
        assert!(parse_duration("10").is_err());
        assert!(parse_duration("5 minutes").is_err());
    }

    #[test]
    fn target_names() {
        assert!(valid_target_name("ops"));
        assert!(valid_target_name("Ops_team-2"));
        assert!(!valid_target_name("2ops"));
        assert!(!valid_target_name("ops/x"));
        assert!(!valid_target_name(""));
    }
}
