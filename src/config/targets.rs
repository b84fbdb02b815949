//! Targets: what every target has (name, keyword, template, rate limit), and one function per protocol
//! that turns that protocol's keys into a [`Channel`].

use super::raw::RawTarget;
use super::validate::Validator;
use super::*;
use crate::channel::dingtalk::{self, Format, Mention, MsgType};
use crate::channel::dry_run::DryRun;
use crate::channel::{Channel, RateLimit};
use crate::channel::{dingtalk_app, feishu, wecom};
use crate::secret::Secret;

impl Validator<'_> {
    pub(super) fn target(&mut self, name: &str, mut t: RawTarget, default_rate: RateLimit) -> Option<Target> {
        let key = format!("targets.{name}");
        if !valid_target_name(name) {
            self.problem(&key, "target names must match [A-Za-z][A-Za-z0-9_-]* (they appear in URLs and metrics)");
        }
        let keyword = match t.keyword.as_deref().map(|k| self.expand(&format!("{key}.keyword"), k)) {
            Some(Some(k)) if k.trim().is_empty() => {
                self.problem(&format!("{key}.keyword"), "empty keyword; remove the key if the robot has none");
                None
            }
            Some(k) => k,
            None => None,
        };
        let template = t.template.clone().unwrap_or_else(|| "default".to_string());
        let labels = LabelFilter { hide: t.labels.hide.clone(), show: t.labels.show.clone() };
        for (i, k) in labels.hide.iter().enumerate().filter(|(_, k)| labels.show.contains(k)) {
            self.problem(&format!("{key}.labels.hide[{i}]"), format!("{k:?} is in both hide and show"));
        }
        let kind = t.kind.clone().unwrap_or_else(|| "dingtalk".to_string());
        // A protocol's own budget is the default where the configuration sets none (unless it turned them off).
        let default_rate = match kind.as_str() {
            "feishu" | "lark" if !default_rate.is_unlimited() => feishu::RATE_LIMITS[0],
            "wecom" if !default_rate.is_unlimited() => wecom::RATE_LIMIT,
            "dingtalk_app" if !default_rate.is_unlimited() => dingtalk_app::RATE_LIMIT,
            _ => default_rate,
        };
        let rate_limit = self.rate_limit(&format!("{key}.rate_limit"), t.rate_limit.as_ref(), default_rate);
        if kind != "dingtalk_app" {
            for (set, field) in [
                (t.app.is_some(), "app"),
                (!t.users.is_empty(), "users"),
                (!t.conversations.is_empty(), "conversations"),
                (t.batch_size.is_some(), "batch_size"),
            ] {
                if set {
                    self.problem(
                        &format!("{key}.{field}"),
                        format!("not a key of a {kind} target (it belongs to type: dingtalk_app)"),
                    );
                }
            }
        }
        let routing = super::people::Routing::take(&mut t);
        let enabled = t.enabled.unwrap_or(true);
        let channel = match kind.as_str() {
            "dingtalk" => {
                self.warn_if_other_tool(&key, t.url.as_deref(), "dingtalk");
                self.dingtalk(&key, t)?
            }
            "feishu" => self.feishu(&key, t, feishu::Service::Feishu)?,
            "lark" => self.feishu(&key, t, feishu::Service::Lark)?,
            "wecom" => self.wecom(&key, t)?,
            "dingtalk_app" => self.dingtalk_app(&key, t)?,
            _ => {
                self.problem(
                    &format!("{key}.type"),
                    "unknown target type; expected dingtalk, feishu, lark, wecom or dingtalk_app",
                );
                return None;
            }
        };
        let (mention_rules, send_on, split) = self.routing(&key, routing, &channel);
        Some(Target {
            name: name.to_string(),
            channel,
            keyword,
            template,
            labels,
            rate_limit,
            mention_rules,
            send_on,
            split,
            enabled,
        })
    }

    /// A DingTalk robot (url, secret, msgtype, mention), or a dry run in DingTalk's format.
    fn dingtalk(&mut self, key: &str, t: RawTarget) -> Option<Channel> {
        let url = if t.dry_run {
            if t.url.is_some() || t.url_file.is_some() {
                self.problem(&format!("{key}.dry_run"), "a dry_run target must not set url or url_file");
            }
            None
        } else {
            let url = self.webhook_url(key, &t, "missing: set url, url_file, or dry_run: true", "access_token")?;
            Some(Secret::new(url))
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
        let msgtype = match t.msgtype.as_deref() {
            None | Some("markdown") => MsgType::Markdown,
            Some("text") => MsgType::Text,
            Some("actionCard") => MsgType::ActionCard,
            Some(_) => {
                self.problem(
                    &format!("{key}.msgtype"),
                    "unsupported message type; expected markdown, text or actionCard",
                );
                MsgType::Markdown
            }
        };
        let expand_all = |v: &mut Self, list: Vec<String>, k: &str| -> Vec<String> {
            list.into_iter().enumerate().filter_map(|(i, m)| v.expand(&format!("{key}.mention.{k}[{i}]"), &m)).collect()
        };
        let mention = Mention {
            all: t.mention.all,
            mobiles: expand_all(self, t.mention.mobiles, "mobiles"),
            user_ids: expand_all(self, t.mention.user_ids, "user_ids"),
            on_resolved: t.mention.on_resolved,
        };
        if mention.mobiles.len() + mention.user_ids.len() > dingtalk::MAX_MENTIONS {
            self.problem(
                &format!("{key}.mention"),
                format!("DingTalk mentions at most {} people per message", dingtalk::MAX_MENTIONS),
            );
        }
        for (i, m) in mention.mobiles.iter().enumerate() {
            if m.is_empty() || !m.chars().all(|c| c.is_ascii_digit() || c == '+' || c == '-') {
                self.problem(&format!("{key}.mention.mobiles[{i}]"), "not a phone number (digits, + and - only)");
            }
        }
        for (i, u) in mention.user_ids.iter().enumerate() {
            if u.trim().is_empty() || u.contains(char::is_whitespace) {
                self.problem(
                    &format!("{key}.mention.user_ids[{i}]"),
                    "not a DingTalk user id (empty or holds a space)",
                );
            }
        }
        let format = Format { msgtype, mention };
        Some(match url {
            Some(url) => Channel::DingTalk(dingtalk::Robot { url, secret: secret.map(Secret::new), format }),
            None => Channel::DryRun(DryRun { format }),
        })
    }

    /// A Feishu or Lark custom bot (url, secret, msgtype, mention by user id).
    fn feishu(&mut self, key: &str, t: RawTarget, service: feishu::Service) -> Option<Channel> {
        let kind = service.name().to_lowercase();
        // Keys only DingTalk targets have: an error naming the key and the type, not a silent no-op.
        if t.dry_run {
            self.problem(&format!("{key}.dry_run"), format!("not a key of a {kind} target (dry runs are DingTalk's)"));
        }
        if !t.mention.mobiles.is_empty() {
            self.problem(
                &format!("{key}.mention.mobiles"),
                format!("not a key of a {kind} target: {} custom bots mention by user id only", service.name()),
            );
        }
        self.warn_if_other_tool(key, t.url.as_deref(), &kind);
        let url =
            self.webhook_url(key, &t, "missing: set url or url_file (the bot's webhook address)", "hook token")?;
        let secret = self.inline_or_file(&format!("{key}.secret"), t.secret.as_deref(), t.secret_file.as_deref());
        let msgtype = match t.msgtype.as_deref() {
            None | Some("interactive") => feishu::MsgType::Interactive,
            Some("post") => feishu::MsgType::Post,
            Some("text") => feishu::MsgType::Text,
            Some(_) => {
                self.problem(
                    &format!("{key}.msgtype"),
                    format!("unsupported message type for a {kind} target; expected interactive, post or text"),
                );
                feishu::MsgType::Interactive
            }
        };
        let user_ids: Vec<String> = t
            .mention
            .user_ids
            .iter()
            .enumerate()
            .filter_map(|(i, m)| self.expand(&format!("{key}.mention.user_ids[{i}]"), m))
            .collect();
        for (i, u) in user_ids.iter().enumerate() {
            if u.trim().is_empty() || u.contains(|c: char| c.is_whitespace() || c == '"' || c == '<' || c == '>') {
                self.problem(&format!("{key}.mention.user_ids[{i}]"), "not a user id or open_id (ou_...)");
            }
        }
        let mention = feishu::Mention { all: t.mention.all, user_ids, on_resolved: t.mention.on_resolved };
        let format = feishu::Format { msgtype, mention };
        Some(Channel::Feishu(feishu::Bot { service, url: Secret::new(url), secret: secret.map(Secret::new), format }))
    }

    /// `dingtalk_apps`: each app's credentials (the secret inline or from a file), checked once.
    pub(super) fn apps(&mut self, raw: BTreeMap<String, super::raw::RawApp>) {
        for (name, a) in raw {
            let key = format!("dingtalk_apps.{name}");
            let required = |v: &mut Self, field: &str, value: Option<&str>| -> Option<String> {
                match value.map(|x| v.expand(&format!("{key}.{field}"), x)) {
                    Some(Some(x)) if !x.trim().is_empty() => Some(x.trim().to_string()),
                    Some(None) => None,
                    _ => {
                        v.problem(
                            &format!("{key}.{field}"),
                            "missing: copy it from the app in DingTalk's developer console",
                        );
                        None
                    }
                }
            };
            let client_id = required(self, "client_id", a.client_id.as_deref());
            let robot_code = required(self, "robot_code", a.robot_code.as_deref());
            let secret = self.inline_or_file(
                &format!("{key}.client_secret"),
                a.client_secret.as_deref(),
                a.client_secret_file.as_deref(),
            );
            if secret.is_none() && a.client_secret.is_none() && a.client_secret_file.is_none() {
                self.problem(&format!("{key}.client_secret"), "missing: set client_secret or client_secret_file");
            }
            let api_base = a.api_base.unwrap_or_else(|| dingtalk_app::DEFAULT_API_BASE.to_string());
            match reqwest::Url::parse(&api_base) {
                Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => {
                    if u.scheme() == "http" {
                        self.warn(
                            &format!("{key}.api_base"),
                            "plain http: the token and client secret travel unencrypted (fine for tests on loopback)",
                        );
                    }
                }
                _ => self.problem(&format!("{key}.api_base"), "not an http(s) URL"),
            }
            if let (Some(id), Some(code), Some(secret)) = (client_id, robot_code, secret) {
                let app = dingtalk_app::App::new(&name, &id, Secret::new(secret), &code, &api_base);
                self.apps.insert(name, std::sync::Arc::new(app));
            }
        }
    }

    /// A target of a DingTalk enterprise app's robot: users one to one, and groups the robot is in.
    fn dingtalk_app(&mut self, key: &str, t: RawTarget) -> Option<Channel> {
        for (set, name) in [
            (t.dry_run, "dry_run"),
            (t.url.is_some(), "url"),
            (t.url_file.is_some(), "url_file"),
            (t.secret.is_some(), "secret"),
            (t.secret_file.is_some(), "secret_file"),
            (t.mention.all || !t.mention.mobiles.is_empty() || !t.mention.user_ids.is_empty(), "mention"),
        ] {
            if set {
                self.problem(
                    &format!("{key}.{name}"),
                    "not a key of a dingtalk_app target (its credentials are under dingtalk_apps; users get direct messages, which ring)",
                );
            }
        }
        let Some(app_name) = t.app.as_deref() else {
            self.problem(&format!("{key}.app"), "missing: the name of an app under dingtalk_apps");
            return None;
        };
        let Some(app) = self.apps.get(app_name).cloned() else {
            let known: Vec<&str> = self.apps.keys().map(String::as_str).collect();
            self.problem(
                &format!("{key}.app"),
                format!("no app {app_name:?} under dingtalk_apps (configured: {known:?})"),
            );
            return None;
        };
        let expand_all = |v: &mut Self, list: &[String], k: &str| -> Vec<String> {
            list.iter().enumerate().filter_map(|(i, m)| v.expand(&format!("{key}.{k}[{i}]"), m)).collect()
        };
        let users = expand_all(self, &t.users, "users");
        let conversations = expand_all(self, &t.conversations, "conversations");
        if users.is_empty() && conversations.is_empty() {
            self.problem(key, "no recipients: set users (userIds) and/or conversations (openConversationIds)");
        }
        let msgtype = match t.msgtype.as_deref() {
            None | Some("markdown") => dingtalk_app::MsgType::Markdown,
            Some("text") => dingtalk_app::MsgType::Text,
            Some("actionCard") => dingtalk_app::MsgType::ActionCard,
            Some(_) => {
                self.problem(
                    &format!("{key}.msgtype"),
                    "unsupported message type for a dingtalk_app target; expected markdown, text or actionCard",
                );
                dingtalk_app::MsgType::Markdown
            }
        };
        let batch = t.batch_size.unwrap_or(dingtalk_app::DEFAULT_BATCH);
        if !(1..=100).contains(&batch) {
            self.problem(
                &format!("{key}.batch_size"),
                "users per call must be between 1 and 100 (DingTalk documents 20)",
            );
        }
        Some(Channel::DingTalkApp(dingtalk_app::AppTarget {
            app,
            users,
            conversations,
            msgtype,
            batch: batch.clamp(1, 100),
        }))
    }

    /// A WeCom group robot (url with its key, msgtype, mention by user id and mobile).
    fn wecom(&mut self, key: &str, t: RawTarget) -> Option<Channel> {
        for (set, name) in
            [(t.dry_run, "dry_run"), (t.secret.is_some(), "secret"), (t.secret_file.is_some(), "secret_file")]
        {
            if set {
                self.problem(
                    &format!("{key}.{name}"),
                    "not a key of a wecom target (a WeCom robot has no signing secret: its key is in the URL)",
                );
            }
        }
        self.warn_if_other_tool(key, t.url.as_deref(), "wecom");
        let url = self.webhook_url(
            key,
            &t,
            "missing: set url or url_file (the robot's webhook address with its key)",
            "key",
        )?;
        let msgtype = match t.msgtype.as_deref() {
            None | Some("markdown") => wecom::MsgType::Markdown,
            Some("markdown_v2") => wecom::MsgType::MarkdownV2,
            Some("text") => wecom::MsgType::Text,
            Some(_) => {
                self.problem(
                    &format!("{key}.msgtype"),
                    "unsupported message type for a wecom target; expected markdown, markdown_v2 or text",
                );
                wecom::MsgType::Markdown
            }
        };
        let expand_all = |v: &mut Self, list: &[String], k: &str| -> Vec<String> {
            list.iter().enumerate().filter_map(|(i, m)| v.expand(&format!("{key}.mention.{k}[{i}]"), m)).collect()
        };
        let mention = wecom::Mention {
            all: t.mention.all,
            user_ids: expand_all(self, &t.mention.user_ids, "user_ids"),
            mobiles: expand_all(self, &t.mention.mobiles, "mobiles"),
            on_resolved: t.mention.on_resolved,
        };
        let mentions = mention.all || !mention.user_ids.is_empty() || !mention.mobiles.is_empty();
        match msgtype {
            wecom::MsgType::MarkdownV2 if mentions => self.warn(
                &format!("{key}.mention"),
                "WeCom's markdown_v2 cannot mention anyone: use markdown or text for mentions that ring",
            ),
            wecom::MsgType::Markdown if mention.all || !mention.mobiles.is_empty() => self.warn(
                &format!("{key}.mention"),
                "WeCom's markdown mentions by user id only: mobiles and all ring only with msgtype text",
            ),
            _ => {}
        }
        Some(Channel::WeCom(wecom::Robot { url: Secret::new(url), format: wecom::Format { msgtype, mention } }))
    }

    /// A target's webhook URL (`url` or `url_file`): an http(s) URL with a host, plain http warned about.
    /// It holds `credential`, so no message echoes it.
    fn webhook_url(&mut self, key: &str, t: &RawTarget, missing: &str, credential: &str) -> Option<String> {
        let url = self.inline_or_file(&format!("{key}.url"), t.url.as_deref(), t.url_file.as_deref());
        let Some(url) = url else {
            if !self.problems.iter().any(|p| p.key.starts_with(&format!("{key}.url"))) {
                self.problem(&format!("{key}.url"), missing);
            }
            return None;
        };
        match reqwest::Url::parse(&url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {
                if u.scheme() == "http" {
                    self.warn(
                        &format!("{key}.url"),
                        format!("plain http: the {credential} travels unencrypted (fine for tests on loopback)"),
                    );
                }
            }
            _ => self.problem(
                &format!("{key}.url"),
                format!("not an http(s) URL with a host (value not shown: it holds the {credential})"),
            ),
        }
        Some(url)
    }

    /// A URL whose host is another chat tool's draws a warning (the type is never guessed from it).
    fn warn_if_other_tool(&mut self, key: &str, url: Option<&str>, kind: &str) {
        let Some(host) = url.and_then(|u| reqwest::Url::parse(u).ok()).and_then(|u| u.host_str().map(str::to_string))
        else {
            return;
        };
        let looks = if host.ends_with("dingtalk.com") {
            "dingtalk"
        } else if host.ends_with("feishu.cn") {
            "feishu"
        } else if host.ends_with("larksuite.com") {
            "lark"
        } else if host.ends_with("weixin.qq.com") {
            "wecom"
        } else {
            return;
        };
        if looks != kind {
            self.warn(&format!("{key}.url"), format!("the URL looks like a {looks} webhook, but the target's type is {kind}: set type: {looks} if it is one"));
        }
    }
}
