//! A `type: wecom` target's keys: `url` (or `url_file`, the robot's webhook with its key: the only
//! credential, there is no signature), `msgtype`, `mention` (by user id; text also by mobile).

use super::{Format, Mention, MsgType, Robot};
use crate::channel::keys::{Keys, Setup, warn_if_other_tool, webhook_url};
use crate::channel::{Channel, Kind};
use crate::secret::Secret;

pub const KIND: Kind = Kind {
    name: "wecom",
    configure,
    keys: &["url", "url_file", "msgtype", "mention.all", "mention.user_ids", "mention.mobiles", "mention.on_resolved"],
    hosts: &["weixin.qq.com"],
    person_keys: &["wecom_user_id", "wecom_mobile"],
    template: Some(("wecom", include_str!("../../../templates/default/wecom.hbs"))),
    section: None,
    reasons: super::Reason::all,
    show: super::show::show,
};

fn configure(keys: &mut Keys, setup: &mut dyn Setup) -> Option<Channel> {
    warn_if_other_tool(setup, keys, "wecom");
    let url =
        webhook_url(keys, setup, "missing: set url or url_file (the robot's webhook address with its key)", "key");
    let msgtype = keys.msgtype(
        setup,
        "a wecom target",
        &[("markdown", MsgType::Markdown), ("markdown_v2", MsgType::MarkdownV2), ("text", MsgType::Text)],
    );
    let mut mention = Mention::default();
    keys.sub(setup, "mention", |m, setup| {
        mention = Mention {
            all: m.flag(setup, "all"),
            user_ids: m.list(setup, "user_ids"),
            mobiles: m.list(setup, "mobiles"),
            on_resolved: m.flag(setup, "on_resolved"),
        };
    });
    let mentions = mention.all || !mention.user_ids.is_empty() || !mention.mobiles.is_empty();
    let key = keys.key("mention");
    match msgtype {
        MsgType::MarkdownV2 if mentions => setup.warn(
            &key,
            "WeCom's markdown_v2 cannot mention anyone: use markdown or text for mentions that ring".into(),
        ),
        MsgType::Markdown if mention.all || !mention.mobiles.is_empty() => setup.warn(
            &key,
            "WeCom's markdown mentions by user id only: mobiles and all ring only with msgtype text".into(),
        ),
        _ => {}
    }
    Some(Channel::new(Robot { url: Secret::new(url?), format: Format { msgtype, mention } }))
}
