//! A `type: dingtalk` target's keys (the default type): `url` (or `url_file`) with the robot's
//! access_token, `secret` (or `secret_file`) for "additional signature", `msgtype`, `mention`; or
//! `dry_run: true`, which logs the bodies instead of sending them.

use super::dry_run::DryRun;
use super::{Format, MAX_MENTIONS, Mention, MsgType, Robot};
use crate::channel::keys::{Keys, Setup, warn_if_other_tool, webhook_url};
use crate::channel::{Channel, Kind};
use crate::secret::Secret;

pub const KIND: Kind = Kind {
    name: "dingtalk",
    configure,
    keys: &[
        "url",
        "url_file",
        "secret",
        "secret_file",
        "msgtype",
        "dry_run",
        "mention.all",
        "mention.mobiles",
        "mention.user_ids",
        "mention.on_resolved",
    ],
    hosts: &["dingtalk.com"],
    person_keys: &["dingtalk_mobile", "dingtalk_user_id"],
    template: None,
    section: None,
    reasons: super::Reason::all,
    show: super::show::show,
};

fn configure(keys: &mut Keys, setup: &mut dyn Setup) -> Option<Channel> {
    let dry_run = keys.flag(setup, "dry_run");
    // `None`: the URL is wrong (a problem was reported); `Some(None)`: a dry run. Every other key is read
    // either way, so a wrong URL does not make them look unknown.
    let url = if dry_run {
        if keys.has("url") || keys.has("url_file") {
            setup.problem(&keys.key("dry_run"), "a dry_run target must not set url or url_file".into());
        }
        let _ = (keys.text(setup, "url"), keys.text(setup, "url_file"));
        Some(None)
    } else {
        warn_if_other_tool(setup, keys, "dingtalk");
        webhook_url(keys, setup, "missing: set url, url_file, or dry_run: true", "access_token")
            .map(|u| Some(Secret::new(u)))
    };
    let secret = keys.inline_or_file(setup, "secret");
    if let Some(s) = &secret
        && !s.starts_with("SEC")
    {
        setup.warn(
            &keys.key("secret"),
            "DingTalk signing secrets start with SEC; check you copied the whole secret".into(),
        );
    }
    let msgtype = keys.msgtype(
        setup,
        "a dingtalk target",
        &[("markdown", MsgType::Markdown), ("text", MsgType::Text), ("actionCard", MsgType::ActionCard)],
    );
    let mut mention = Mention::default();
    keys.sub(setup, "mention", |m, setup| {
        mention = Mention {
            all: m.flag(setup, "all"),
            mobiles: m.list(setup, "mobiles"),
            user_ids: m.list(setup, "user_ids"),
            on_resolved: m.flag(setup, "on_resolved"),
        };
        if mention.mobiles.len() + mention.user_ids.len() > MAX_MENTIONS {
            setup.problem(m.path(), format!("DingTalk mentions at most {MAX_MENTIONS} people per message"));
        }
        for (i, mobile) in mention.mobiles.iter().enumerate() {
            if mobile.is_empty() || !mobile.chars().all(|c| c.is_ascii_digit() || c == '+' || c == '-') {
                setup
                    .problem(&format!("{}[{i}]", m.key("mobiles")), "not a phone number (digits, + and - only)".into());
            }
        }
        for (i, u) in mention.user_ids.iter().enumerate() {
            if u.trim().is_empty() || u.contains(char::is_whitespace) {
                setup.problem(
                    &format!("{}[{i}]", m.key("user_ids")),
                    "not a DingTalk user id (empty or holds a space)".into(),
                );
            }
        }
    });
    let format = Format { msgtype, mention };
    Some(match url? {
        Some(url) => Channel::new(Robot { url, secret: secret.map(Secret::new), format }),
        None => Channel::new(DryRun { format }),
    })
}
