//! The configuration: what a validated [`Config`] holds, and loading it. The file's shape is in [`raw`],
//! its checks in [`validate`] and [`targets`], value syntax (`${VAR}`, durations) in [`values`]. Problems
//! name the file, the key and what is wrong, never the value: a token pasted into the wrong key must not
//! reach a log or the `/-/reload` answer.

mod people;
mod raw;
mod targets;
mod validate;
mod values;

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::channel::Channel;
pub use crate::channel::RateLimit;
use crate::channel::keys::Node;
use crate::secret::Secret;
pub use validate::valid_target_name;
pub use values::{ValueError, expand_env, parse_duration};

pub const DEFAULT_CONFIG_PATH: &str = "dingtalk-bridge.yaml";

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
    /// Targets that only forward to other targets by label (`route:`), by name.
    pub routes: BTreeMap<String, Route>,
    /// Who may use the console and its API; empty: both are off.
    pub console: Vec<ConsoleUser>,
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
    /// Open connections in all; past it the oldest connection not being answered is closed.
    pub max_connections: usize,
    /// Open connections from one IP address; past it that client's oldest one not being answered is closed.
    pub max_connections_per_client: usize,
    /// Request bytes held at once across all requests: half for bodies being read, half for notifications
    /// being decoded (at their estimated decoded size).
    pub max_inflight_bytes: usize,
    pub header_read_timeout: Duration,
    /// From a request's first byte until its whole body has arrived.
    pub request_timeout: Duration,
    /// How long a keep-alive connection may wait for its next request.
    pub idle_timeout: Duration,
    pub shutdown_grace: Duration,
    pub auth: Auth,
    pub limits: PayloadLimits,
}

/// What one notification may hold (kept with the decoder, which enforces it).
pub use crate::decode::PayloadLimits;

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

/// Someone who may use the console and its API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleUser {
    pub name: String,
    pub password: Secret,
    /// May switch targets on and off and send test messages; otherwise read only.
    pub admin: bool,
}

/// A router target (`targets.<name>.route`): each alert goes to the target its label's value names, else
/// to `default`, else nowhere (counted and logged). Only configured targets can be reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub by_label: String,
    pub targets: BTreeMap<String, String>,
    pub default: Option<String>,
}

impl Route {
    /// The target an alert with these labels goes to.
    pub fn destination(&self, labels: &BTreeMap<String, String>) -> Option<&str> {
        labels.get(&self.by_label).and_then(|v| self.targets.get(v)).or(self.default.as_ref()).map(String::as_str)
    }
}

/// Which alerts a target receives (`send_on`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendOn {
    pub firing: bool,
    pub resolved: bool,
}

impl Default for SendOn {
    fn default() -> Self {
        SendOn { firing: true, resolved: true }
    }
}

impl SendOn {
    pub fn takes(&self, status: crate::decode::Status) -> bool {
        match status {
            crate::decode::Status::Firing => self.firing,
            crate::decode::Status::Resolved => self.resolved,
        }
    }
}

/// How a notification becomes messages (`split`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Split {
    /// One message per alert group (split further only for size).
    #[default]
    PerGroup,
    /// One message per alert, each with its own mentions.
    PerAlert,
}

/// `labels: {hide: [...], show: [...]}` on a target: labels the built-in layout hides although they would
/// identify an alert, or shows although it takes them for noise (`prometheus`, `endpoint`, ...).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelFilter {
    pub hide: Vec<String>,
    pub show: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub name: String,
    /// Where its messages go, and everything that protocol needs.
    pub channel: Channel,
    pub keyword: Option<String>,
    pub template: String,
    /// Which labels the built-in layout hides or shows besides its own choice.
    pub labels: LabelFilter,
    /// The receiving end's send budget (targets that share one share the budget, so they must agree).
    pub rate_limit: RateLimit,
    /// Whom messages ring besides the fixed `mention`, from the alerts (`mention.rules`).
    pub mention_rules: crate::people::Rules,
    pub send_on: SendOn,
    pub split: Split,
    /// Whether it sends, as configured (`enabled`); the console's switch overrides it until cleared.
    pub enabled: bool,
}

impl Target {
    /// A hash naming the receiving end (its budget) without its credentials.
    pub fn budget_key(&self) -> String {
        self.channel.budget_key(&self.name)
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
        let parse_error = |e: serde_saphyr::Error| ConfigError::Parse {
            file: file.to_string(),
            // Only the first line (line, column, problem): the rest quotes the file's lines around the
            // error, which may hold a robot URL or secret.
            message: e.to_string().lines().next().unwrap_or_default().trim_start_matches("error: ").to_string(),
        };
        let raw: raw::RawConfig = serde_saphyr::from_str(text).map_err(parse_error)?;
        // The same file as a tree, for the keys protocols read themselves.
        let (doc, doc_lines) = match serde_saphyr::from_str::<Option<Node>>(text).map_err(parse_error)? {
            Some(Node::Map(map, lines)) => (map, lines),
            _ => Default::default(),
        };
        let mut v = validate::Validator {
            file: file.to_string(),
            base: base.to_path_buf(),
            env,
            problems: vec![],
            warnings: vec![],
            doc,
            doc_lines,
            sections: BTreeMap::new(),
            people: Default::default(),
        };
        let config = v.config(raw);
        match config {
            Some(config) if v.problems.is_empty() => Ok(Config { warnings: v.warnings, ..config }),
            _ => Err(ConfigError::Invalid { problems: v.problems }),
        }
    }
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

    /// The channel a target's protocol makes of these keys of its own.
    fn made(kind: &str, yaml: &str) -> Channel {
        crate::channel::testing::channel(kind, yaml)
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
        let robot = "url: https://oapi.dingtalk.com/robot/send?access_token=tok123\nsecret: SECabc\nmention: {mobiles: ['13800000000'], user_ids: [manager01]}";
        assert_eq!(t.channel, made("dingtalk", robot), "the URL and secret expanded, the mobiles read");
        assert_eq!(t.keyword.as_deref(), Some("Alert"));
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
    fn problems_name_the_key_never_the_value() {
        // A token pasted into the wrong key, everywhere a value is checked.
        let t = "tok-PASTED-9f2c";
        let text = format!(
            "timezone: {t}\nstorage: {{sync: {t}}}\ndelivery: {{max_age: {t}}}\ntemplates_dir: {t}\ntargets:\n  ops:\n    url: https://x/send?access_token=1\n    msgtype: {t}\n    secret_file: {t}\n    rate_limit: {t}\n    mention: {{mobiles: [{t}], user_ids: [\"{t} x\"]}}\n"
        );
        let ConfigError::Invalid { problems } = load(&text).unwrap_err() else { panic!("expected Invalid") };
        let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
        for key in ["timezone", "storage.sync", "delivery.max_age", "templates_dir", "targets.ops.msgtype"] {
            assert!(keys.contains(&key), "{key} not reported: {keys:?}");
        }
        for key in ["targets.ops.secret_file", "targets.ops.rate_limit", "targets.ops.mention.mobiles[0]"] {
            assert!(keys.contains(&key), "{key} not reported: {keys:?}");
        }
        assert!(keys.contains(&"targets.ops.mention.user_ids[0]"), "{keys:?}");
        let all = ConfigError::Invalid { problems }.to_string();
        assert!(!all.contains("PASTED"), "{all}");
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
        let robot = "url: https://oapi.dingtalk.com/robot/send?access_token=tok123\nsecret: SECfromfile\nmention: {mobiles: ['13800000000'], user_ids: [manager01]}";
        assert_eq!(c.targets["ops"].channel, made("dingtalk", robot));
        let both = GOOD.replace("secret: \"${OPS_SECRET}\"", "secret: x\n    secret_file: secret");
        let err = Config::from_yaml(&both, "t.yaml", dir.path(), &env).unwrap_err().to_string();
        assert!(err.contains("set either targets.ops.secret or targets.ops.secret_file"), "{err}");
    }

    #[test]
    fn a_target_type_decides_its_keys() {
        let hook = "https://open.feishu.cn/open-apis/bot/v2/hook/tok";
        let c = load(&format!(
            "targets:\n  f:\n    type: feishu\n    url: {hook}\n    secret: s\n    mention: {{user_ids: [ou_1]}}\n"
        ))
        .unwrap();
        let caps = c.targets["f"].channel.caps();
        assert_eq!((caps.service, caps.msgtype), ("Feishu", "interactive"), "cards by default");
        let minute = RateLimit { messages: 100, per: Duration::from_secs(60) };
        assert_eq!(c.targets["f"].rate_limit, minute, "Feishu's own budget");
        assert_eq!(caps.rate_windows, &[RateLimit { messages: 5, per: Duration::from_secs(1) }]);
        let err = load(&format!("targets:\n  f:\n    type: feishu\n    url: {hook}\n    msgtype: markdown\n    mention: {{mobiles: ['138']}}\n")).unwrap_err().to_string();
        assert!(err.contains("targets.f.mention.mobiles: not a key of a feishu target"), "{err}");
        assert!(err.contains("targets.f.msgtype: unsupported message type for a feishu target"), "{err}");
        let err = load("targets:\n  w:\n    type: wechat\n    url: https://x/y\n").unwrap_err().to_string();
        assert!(err.contains("targets.w.type: unknown target type"), "{err}");
        // The host never decides the type, but a mismatch is pointed out.
        let c = load(&format!("targets:\n  d:\n    url: {hook}\n")).unwrap();
        assert_eq!(c.targets["d"].channel.name(), "dingtalk");
        assert!(
            c.warnings.iter().any(|w| w.key == "targets.d.url" && w.message.contains("looks like a feishu webhook"))
        );
    }

    #[test]
    fn labels_to_hide_and_show_are_read_and_may_not_conflict() {
        let c = load("targets:\n  t:\n    dry_run: true\n    labels: {hide: [cluster], show: [service]}\n").unwrap();
        assert_eq!(c.targets["t"].labels, LabelFilter { hide: vec!["cluster".into()], show: vec!["service".into()] });
        let err = load("targets:\n  t:\n    dry_run: true\n    labels: {hide: [a, b], show: [b]}\n").unwrap_err();
        assert!(err.to_string().contains("targets.t.labels.hide[1]: \"b\" is in both hide and show"), "{err}");
        let err = load("targets:\n  t:\n    dry_run: true\n    labels: {hdie: [a]}\n").unwrap_err();
        assert!(err.to_string().contains("hdie"), "{err}");
    }

    #[test]
    fn a_wrong_key_does_not_make_the_targets_other_keys_look_unknown() {
        let text = "targets:\n  t:\n    url_file: /nonexistent/url\n    secret: SECx\n    mention: {all: true}\n    mentoin: {}\n";
        let err = load(text).unwrap_err().to_string();
        assert!(err.contains("targets.t.url_file: cannot read the file"), "{err}");
        assert!(err.contains("targets.t.mentoin: unknown field `mentoin`"), "a real typo is still named: {err}");
        assert!(!err.contains("targets.t.secret") && !err.contains("targets.t.mention:"), "{err}");
        let app = "targets:\n  a:\n    type: dingtalk_app\n    users: [u1]\n";
        let err = load(app).unwrap_err().to_string();
        assert!(err.contains("targets.a.app: missing") && !err.contains("targets.a.users"), "{err}");
    }

    #[test]
    fn dry_run_needs_no_url() {
        let c = load("targets:\n  try:\n    dry_run: true\n").unwrap();
        assert_eq!(c.targets["try"].channel.name(), "dry_run");
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

    #[test]
    fn dingtalk_app_targets_share_their_app() {
        let text = r#"
dingtalk_apps:
  corp:
    client_id: "${OPS_TOKEN}"
    client_secret: "app-secret"
    robot_code: dingrobot
    api_base: "http://127.0.0.1:9/"
targets:
  oncall-direct:
    type: dingtalk_app
    app: corp
    users: ["manager01", "user0231"]
  ops-app-group:
    type: dingtalk_app
    app: corp
    conversations: ["cidXXXX=="]
    msgtype: actionCard
"#;
        let c = load(text).unwrap();
        let app = [(
            "dingtalk_apps",
            "corp",
            "client_id: tok123\nclient_secret: app-secret\nrobot_code: dingrobot\napi_base: http://127.0.0.1:9",
        )];
        let direct =
            crate::channel::testing::channel_in("dingtalk_app", &app, "app: corp\nusers: [manager01, user0231]");
        assert_eq!(c.targets["oncall-direct"].channel, direct, "the app's settings read once, the users");
        assert_eq!(c.targets["ops-app-group"].channel.msgtype(), "actionCard");
        assert_eq!(
            c.targets["oncall-direct"].budget_key(),
            c.targets["ops-app-group"].budget_key(),
            "one budget per app"
        );
        assert_eq!(c.targets["oncall-direct"].rate_limit, RateLimit { messages: 20, per: Duration::from_secs(1) });

        let err = load(&text.replace("    app: corp\n    users", "    app: nope\n    users")).unwrap_err().to_string();
        assert!(err.contains("targets.oncall-direct.app: no app \"nope\" under dingtalk_apps"), "{err}");
        let err = load(&text.replace("    client_secret: \"app-secret\"\n", "")).unwrap_err().to_string();
        assert!(err.contains("dingtalk_apps.corp.client_secret: missing"), "{err}");
        assert!(!err.contains("app-secret"));
        let err = load(&text.replace("    conversations:", "    url: https://x/y\n    conversations:"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("targets.ops-app-group.url: not a key of a dingtalk_app target"), "{err}");
        let err = load(&format!(
            "{text}  hook:\n    url: https://oapi.dingtalk.com/robot/send?access_token=x\n    users: [a]\n"
        ))
        .unwrap_err()
        .to_string();
        assert!(err.contains("targets.hook.users: not a key of a dingtalk target"), "{err}");
    }
}
