//! A `type: feishu` or `type: lark` target's keys: `url` (or `url_file`, the bot's webhook with its hook
//! token), `secret` (or `secret_file`) for signing, `msgtype`, `mention` (by user id or open_id only).

use super::{Bot, Format, Mention, MsgType, Service};
use crate::channel::keys::{Keys, Setup, warn_if_other_tool, webhook_url};
use crate::channel::{Channel, Kind};
use crate::secret::Secret;

const KEYS: &[&str] =
    &["url", "url_file", "secret", "secret_file", "msgtype", "mention.all", "mention.user_ids", "mention.on_resolved"];

pub const FEISHU: Kind = Kind {
    name: "feishu",
    configure: |keys, setup| configure(keys, setup, Service::Feishu),
    keys: KEYS,
    hosts: &["feishu.cn"],
    person_keys: &["feishu_user_id"],
    template: Some(("feishu", include_str!("../../../templates/default/feishu.hbs"))),
    section: None,
    reasons: super::Reason::all,
    show: super::show::show,
};

pub const LARK: Kind = Kind {
    name: "lark",
    configure: |keys, setup| configure(keys, setup, Service::Lark),
    keys: KEYS,
    hosts: &["larksuite.com"],
    person_keys: &["lark_user_id"],
    // Feishu's card template (registered by `FEISHU`).
    template: None,
    section: None,
    reasons: || vec![],
    show: |_| None,
};

fn configure(keys: &mut Keys, setup: &mut dyn Setup, service: Service) -> Option<Channel> {
    let kind = service.name().to_lowercase();
    warn_if_other_tool(setup, keys, &kind);
    let url = webhook_url(keys, setup, "missing: set url or url_file (the bot's webhook address)", "hook token");
    let secret = keys.inline_or_file(setup, "secret");
    let msgtype = keys.msgtype(
        setup,
        &format!("a {kind} target"),
        &[("interactive", MsgType::Interactive), ("post", MsgType::Post), ("text", MsgType::Text)],
    );
    let mut mention = Mention::default();
    keys.sub(setup, "mention", |m, setup| {
        let user_ids = m.list(setup, "user_ids");
        for (i, u) in user_ids.iter().enumerate() {
            if u.trim().is_empty() || u.contains(|c: char| c.is_whitespace() || c == '"' || c == '<' || c == '>') {
                setup.problem(&format!("{}[{i}]", m.key("user_ids")), "not a user id or open_id (ou_...)".into());
            }
        }
        mention = Mention { all: m.flag(setup, "all"), user_ids, on_resolved: m.flag(setup, "on_resolved") };
    });
    let format = Format { msgtype, mention };
    Some(Channel::new(Bot { service, url: Secret::new(url?), secret: secret.map(Secret::new), format }))
}
