//! Validation: the file as written ([`super::raw`]) into a [`Config`] whose every field is known good.
//! Every problem is collected, named by file and key, so one run of `check-config` shows them all.

use std::any::Any;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::raw::*;
use super::values::{expand_env, parse_duration};
use super::*;
use crate::channel::keys::{Keys, Node, Setup};
use crate::channel::{DEFAULT_RATE_LIMIT, MAX_MESSAGE_BYTES, PROTOCOLS, RateLimit};
use crate::secret::Secret;

pub(super) struct Validator<'a> {
    pub(super) file: String,
    pub(super) base: PathBuf,
    pub(super) env: &'a dyn Fn(&str) -> Option<String>,
    pub(super) problems: Vec<Problem>,
    pub(super) warnings: Vec<Problem>,
    /// The file as a tree: each target's protocol keys and each protocol's section are read from it.
    pub(super) doc: BTreeMap<String, Node>,
    /// The line of each top-level key.
    pub(super) doc_lines: crate::channel::keys::Lines,
    /// The entries of sections protocols own (`dingtalk_apps`), read before the targets that name them.
    pub(super) sections: BTreeMap<(String, String), Arc<dyn Any + Send + Sync>>,
    /// `people` and `groups`, read before the targets whose rules name them.
    pub(super) people: std::sync::Arc<crate::people::Directory>,
}

impl Validator<'_> {
    pub(super) fn problem(&mut self, key: &str, message: impl Into<String>) {
        self.problems.push(Problem { file: self.file.clone(), key: key.to_string(), message: message.into() });
    }

    pub(super) fn warn(&mut self, key: &str, message: impl Into<String>) {
        self.warnings.push(Problem { file: self.file.clone(), key: key.to_string(), message: message.into() });
    }

    pub(super) fn expand(&mut self, key: &str, value: &str) -> Option<String> {
        match expand_env(value, self.env) {
            Ok(v) => Some(v),
            Err(e) => {
                self.problem(key, e.to_string());
                None
            }
        }
    }

    pub(super) fn duration(&mut self, key: &str, value: Option<&str>, default: Duration) -> Duration {
        match value {
            None => default,
            Some(s) => parse_duration(s).unwrap_or_else(|e| {
                self.problem(key, e.to_string());
                default
            }),
        }
    }

    pub(super) fn path(&self, p: &str) -> PathBuf {
        let p = PathBuf::from(p);
        if p.is_absolute() { p } else { self.base.join(p) }
    }

    /// A value given inline or through `<key>_file`, exactly one of them.
    pub(super) fn inline_or_file(&mut self, key: &str, inline: Option<&str>, file: Option<&str>) -> Option<String> {
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
                        self.problem(&key_file, "the file is empty");
                        None
                    }
                    Err(e) => {
                        self.problem(&key_file, format!("cannot read the file: {e}"));
                        None
                    }
                }
            }
            (None, None) => None,
        }
    }

    /// Keys at the top of the file that neither the configuration nor a protocol's section has.
    fn top_level_keys(&mut self) {
        let sections: Vec<&str> = PROTOCOLS.iter().filter_map(|k| k.section.as_ref()).map(|s| s.key).collect();
        let unknown: Vec<String> = self
            .doc
            .keys()
            .filter(|k| !TOP_KEYS.contains(&k.as_str()) && !sections.contains(&k.as_str()))
            .cloned()
            .collect();
        for k in unknown {
            let expected = TOP_KEYS.iter().chain(&sections).copied().collect::<Vec<_>>().join(", ");
            let line = self.doc_lines.get(&k).map(|l| format!(" (line {l})")).unwrap_or_default();
            self.problem(&k, format!("unknown field `{k}`, expected one of {expected}{line}"));
        }
    }

    /// Each section a protocol owns (`dingtalk_apps`): every entry made once, for the targets naming it.
    fn sections(&mut self) {
        for section in PROTOCOLS.iter().filter_map(|k| k.section.as_ref()) {
            let entries = match self.doc.get(section.key) {
                None | Some(Node::Null) => continue,
                Some(Node::Map(m, _)) => m.clone(),
                Some(_) => {
                    self.problem(section.key, "expected a name for each entry".to_string());
                    continue;
                }
            };
            for (name, entry) in entries {
                let key = format!("{}.{name}", section.key);
                let Node::Map(map, lines) = entry else {
                    self.problem(&key, "expected keys under it".to_string());
                    continue;
                };
                let mut keys = Keys::new(&key, map, lines);
                let made = (section.configure)(&mut keys, self);
                keys.finish(self, &format!("an entry of {}", section.key), &|_| Some(vec![]));
                if let Some(made) = made {
                    self.sections.insert((section.key.to_string(), name), made);
                }
            }
        }
    }

    /// A target's own keys: those of the file's tree not common to every target (`mention.rules` and
    /// `mention.on_resolved` aside, whoever reads them too).
    pub(super) fn protocol_keys(&self, name: &str) -> Keys {
        let (mut map, lines) = match self.doc.get("targets") {
            Some(Node::Map(targets, _)) => match targets.get(name) {
                Some(Node::Map(t, lines)) => (t.clone(), lines.clone()),
                _ => Default::default(),
            },
            _ => Default::default(),
        };
        map.retain(|k, _| !TARGET_KEYS.contains(&k.as_str()));
        if let Some(Node::Map(mention, _)) = map.get_mut("mention") {
            mention.remove("rules");
            if mention.is_empty() {
                map.remove("mention");
            }
        }
        Keys::new(&format!("targets.{name}"), map, lines)
    }

    pub(super) fn config(&mut self, raw: RawConfig) -> Option<Config> {
        let listen = self.listen(raw.listen.as_deref());
        let storage = self.storage(&raw.storage);
        let templates_dir = self.templates_dir(raw.templates_dir.as_deref());
        let timezone = self.timezone(raw.timezone.as_deref());
        let server = self.server(raw.server);
        let delivery = self.delivery(&raw.delivery);
        self.top_level_keys();
        self.sections();
        self.directory(raw.people, raw.groups);
        let (targets, routes) = self.targets(raw.targets, delivery.rate_limit);
        Some(Config {
            source: PathBuf::from(&self.file),
            listen,
            storage,
            templates_dir,
            timezone,
            server,
            delivery,
            targets,
            routes,
            console: self.console(raw.console),
            warnings: vec![],
        })
    }

    /// `console.users`: names, passwords (inline or from a file) and roles.
    fn console(&mut self, raw: Option<RawConsole>) -> Vec<ConsoleUser> {
        let Some(raw) = raw else { return vec![] };
        if raw.users.is_empty() {
            self.problem("console.users", "no users: add one, or remove console (the console is off without it)");
        }
        let mut users: Vec<ConsoleUser> = vec![];
        for (i, u) in raw.users.into_iter().enumerate() {
            let key = format!("console.users[{i}]");
            if u.name.is_empty() || u.name.contains(':') || u.name.chars().any(char::is_control) {
                self.problem(&format!("{key}.name"), "a user name, without ':'");
            }
            if users.iter().any(|x| x.name == u.name) {
                self.problem(&format!("{key}.name"), format!("{:?} is listed twice", u.name));
            }
            let password =
                self.inline_or_file(&format!("{key}.password"), u.password.as_deref(), u.password_file.as_deref());
            if password.is_none() && u.password.is_none() && u.password_file.is_none() {
                self.problem(&format!("{key}.password"), "missing: set password_file (or password)");
            }
            if password.as_ref().is_some_and(|p| p.len() < 12) {
                self.problem(&format!("{key}.password"), "shorter than 12 characters");
            }
            let admin = match u.role.as_deref() {
                None | Some("read") => false,
                Some("admin") => true,
                Some(_) => {
                    self.problem(&format!("{key}.role"), "expected admin or read");
                    false
                }
            };
            if let Some(p) = password {
                users.push(ConsoleUser { name: u.name, password: Secret::new(p), admin });
            }
        }
        users
    }

    fn listen(&mut self, raw: Option<&str>) -> SocketAddr {
        let listen = raw.unwrap_or("0.0.0.0:8060");
        match self.expand("listen", listen).map(|l| l.parse::<SocketAddr>()) {
            Some(Ok(addr)) => addr,
            Some(Err(e)) => {
                self.problem("listen", format!("not an address like 0.0.0.0:8060: {e}"));
                SocketAddr::from(([0, 0, 0, 0], 8060))
            }
            None => SocketAddr::from(([0, 0, 0, 0], 8060)),
        }
    }

    fn storage(&mut self, raw: &RawStorage) -> StorageConfig {
        let storage_path = raw.path.as_deref().unwrap_or("data/dingtalk-bridge.sqlite3");
        let storage_path = self.expand("storage.path", storage_path).map(|p| self.path(&p)).unwrap_or_default();
        let sync = match raw.sync.as_deref() {
            None | Some("full") => SyncMode::Full,
            Some("normal") => SyncMode::Normal,
            Some(_) => {
                self.problem("storage.sync", "unknown mode; expected full or normal");
                SyncMode::Full
            }
        };
        let retention = self.duration("storage.retention", raw.retention.as_deref(), Duration::from_secs(7 * 86400));
        StorageConfig { path: storage_path, sync, retention }
    }

    fn templates_dir(&mut self, raw: Option<&str>) -> Option<PathBuf> {
        let templates_dir = raw.and_then(|d| self.expand("templates_dir", d)).map(|d| self.path(&d));
        if let Some(dir) = &templates_dir
            && !dir.is_dir()
        {
            self.problem("templates_dir", "not a directory");
        }
        templates_dir
    }

    fn timezone(&mut self, raw: Option<&str>) -> chrono_tz::Tz {
        match raw {
            None => chrono_tz::UTC,
            Some(tz) => tz.parse::<chrono_tz::Tz>().unwrap_or_else(|_| {
                self.problem("timezone", "not an IANA time zone name (e.g. Asia/Shanghai, UTC)");
                chrono_tz::UTC
            }),
        }
    }

    fn server(&mut self, raw: RawServer) -> ServerConfig {
        ServerConfig {
            max_request_bytes: positive(self, "server.max_request_bytes", raw.max_request_bytes, 4 << 20),
            max_connections: positive(self, "server.max_connections", raw.max_connections, 1024),
            max_connections_per_client: positive(
                self,
                "server.max_connections_per_client",
                raw.max_connections_per_client,
                768,
            ),
            max_inflight_bytes: positive(self, "server.max_inflight_bytes", raw.max_inflight_bytes, 48 << 20),
            header_read_timeout: self.duration(
                "server.header_read_timeout",
                raw.header_read_timeout.as_deref(),
                Duration::from_secs(10),
            ),
            request_timeout: self.duration(
                "server.request_timeout",
                raw.request_timeout.as_deref(),
                Duration::from_secs(10),
            ),
            idle_timeout: self.duration("server.idle_timeout", raw.idle_timeout.as_deref(), Duration::from_secs(60)),
            shutdown_grace: self.duration(
                "server.shutdown_grace",
                raw.shutdown_grace.as_deref(),
                Duration::from_secs(10),
            ),
            auth: self.auth(raw.auth),
            limits: self.limits(&raw.limits),
        }
    }

    fn limits(&mut self, raw: &RawLimits) -> PayloadLimits {
        let d = PayloadLimits::default();
        PayloadLimits {
            max_alerts: positive(self, "server.limits.max_alerts", raw.max_alerts, d.max_alerts),
            max_labels: positive(self, "server.limits.max_labels", raw.max_labels, d.max_labels),
            max_value_bytes: positive(self, "server.limits.max_value_bytes", raw.max_value_bytes, d.max_value_bytes),
            max_fields: positive(self, "server.limits.max_fields", raw.max_fields, d.max_fields),
        }
    }

    fn delivery(&mut self, d: &RawDelivery) -> DeliveryConfig {
        let rate_limit = self.rate_limit("delivery.rate_limit", d.rate_limit.as_ref(), DEFAULT_RATE_LIMIT);
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
            max_message_bytes: d.max_message_bytes.unwrap_or(MAX_MESSAGE_BYTES),
            digest_after: self.duration("delivery.digest_after", d.digest_after.as_deref(), Duration::from_secs(15)),
            dedup_window: self.duration("delivery.dedup_window", d.dedup_window.as_deref(), Duration::from_secs(120)),
        };
        if delivery.max_message_bytes < 2000 || delivery.max_message_bytes > MAX_MESSAGE_BYTES {
            self.problem(
                "delivery.max_message_bytes",
                format!("must be between 2000 and {} (DingTalk's own limit)", MAX_MESSAGE_BYTES),
            );
        }
        if delivery.request_timeout.is_zero() || delivery.connect_timeout.is_zero() {
            self.problem("delivery", "timeouts must be greater than zero");
        }
        if delivery.backoff_initial > delivery.backoff_max {
            self.problem("delivery.backoff_initial", "must not exceed delivery.backoff_max");
        }
        delivery
    }

    /// Every target, and the check that targets sharing a robot agree on its budget.
    fn targets(
        &mut self,
        raw: BTreeMap<String, RawTarget>,
        rate_limit: RateLimit,
    ) -> (BTreeMap<String, Target>, BTreeMap<String, Route>) {
        if raw.is_empty() {
            self.problem("targets", "no targets configured; add at least one under targets:");
        }
        let mut targets: BTreeMap<String, Target> = BTreeMap::new();
        let mut routes: BTreeMap<String, Route> = BTreeMap::new();
        for (name, t) in raw {
            if t.route.is_some() {
                if !valid_target_name(&name) {
                    self.problem(
                        &format!("targets.{name}"),
                        "target names must match [A-Za-z][A-Za-z0-9_-]* (they appear in URLs and metrics)",
                    );
                }
                let protocol_keys = self.protocol_keys(&name).any();
                if let Some(route) = self.route(&format!("targets.{name}"), t, protocol_keys) {
                    routes.insert(name, route);
                }
                continue;
            }
            if let Some(target) = self.target(&name, t, rate_limit) {
                targets.insert(name, target);
            }
        }
        // One robot, one budget: targets posting to the same robot must not disagree about it.
        let mut by_robot: BTreeMap<String, &Target> = BTreeMap::new();
        let mut conflicts = vec![];
        for t in targets.values() {
            let first = by_robot.entry(t.budget_key()).or_insert(t);
            if first.rate_limit != t.rate_limit {
                conflicts.push((first.name.clone(), t.name.clone()));
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
        self.check_routes(&routes, &targets);
        (targets, routes)
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

    pub(super) fn rate_limit(&mut self, key: &str, raw: Option<&RawRateLimit>, default: RateLimit) -> RateLimit {
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
            Some(RawRateLimit::Word(_)) => {
                self.problem(key, "expected {messages: N, per: DURATION} or off");
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
}

pub(super) fn positive(v: &mut Validator, key: &str, value: Option<usize>, default: usize) -> usize {
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

impl Setup for Validator<'_> {
    fn problem(&mut self, key: &str, message: String) {
        Validator::problem(self, key, message);
    }
    fn warn(&mut self, key: &str, message: String) {
        Validator::warn(self, key, message);
    }
    fn expand(&mut self, key: &str, value: &str) -> Option<String> {
        Validator::expand(self, key, value)
    }
    fn inline_or_file(&mut self, key: &str, inline: Option<&str>, file: Option<&str>) -> Option<String> {
        Validator::inline_or_file(self, key, inline, file)
    }
    fn section(&self, section: &str, name: &str) -> Option<Arc<dyn Any + Send + Sync>> {
        self.sections.get(&(section.to_string(), name.to_string())).cloned()
    }
    fn section_names(&self, section: &str) -> Vec<String> {
        self.sections.keys().filter(|(s, _)| s == section).map(|(_, n)| n.clone()).collect()
    }
}
