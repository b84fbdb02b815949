//! `dingtalk_apps.<name>` (an enterprise app's `client_id`, `client_secret` or `client_secret_file`,
//! `robot_code`, `api_base`) and a `type: dingtalk_app` target's keys: `app`, `users`, `conversations`,
//! `msgtype`, `batch_size`.

use std::any::Any;
use std::sync::Arc;

use super::{App, AppTarget, DEFAULT_API_BASE, DEFAULT_BATCH, MsgType};
use crate::channel::keys::{Keys, Setup, check_url};
use crate::channel::{Channel, Kind, Section};
use crate::secret::Secret;

const SECTION: &str = "dingtalk_apps";

pub const KIND: Kind = Kind {
    name: "dingtalk_app",
    configure,
    keys: &["app", "users", "conversations", "msgtype", "batch_size"],
    hosts: &[],
    person_keys: &[],
    template: None,
    section: Some(Section { key: SECTION, configure: app }),
    reasons: super::Reason::all,
    show: super::show::show,
};

/// One app's credentials, checked once.
fn app(keys: &mut Keys, setup: &mut dyn Setup) -> Option<Arc<dyn Any + Send + Sync>> {
    let name = keys.path().rsplit('.').next().unwrap_or_default().to_string();
    let required = |keys: &mut Keys, setup: &mut dyn Setup, field: &str| -> Option<String> {
        let given = keys.has(field);
        match keys.expanded(setup, field) {
            Some(x) if !x.trim().is_empty() => Some(x.trim().to_string()),
            None if given => None,
            _ => {
                setup.problem(&keys.key(field), "missing: copy it from the app in DingTalk's developer console".into());
                None
            }
        }
    };
    let client_id = required(keys, setup, "client_id");
    let robot_code = required(keys, setup, "robot_code");
    let given = keys.has("client_secret") || keys.has("client_secret_file");
    let secret = keys.inline_or_file(setup, "client_secret");
    if !given {
        setup.problem(&keys.key("client_secret"), "missing: set client_secret or client_secret_file".into());
    }
    let api_base = keys.text(setup, "api_base").unwrap_or_else(|| DEFAULT_API_BASE.to_string());
    match reqwest::Url::parse(&api_base) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => {
            check_url(setup, &keys.key("api_base"), &api_base, "token and client secret")
        }
        _ => setup.problem(&keys.key("api_base"), "not an http(s) URL".into()),
    }
    let app = App::new(&name, &client_id?, Secret::new(secret?), &robot_code?, &api_base);
    Some(Arc::new(Arc::new(app)))
}

/// A target of a DingTalk enterprise app's robot: users one to one, and groups the robot is in.
fn configure(keys: &mut Keys, setup: &mut dyn Setup) -> Option<Channel> {
    let app_name = keys.text(setup, "app");
    if app_name.is_none() {
        setup.problem(&keys.key("app"), format!("missing: the name of an app under {SECTION}"));
    }
    let app = app_name
        .as_deref()
        .and_then(|name| setup.section(SECTION, name))
        .and_then(|a| a.downcast_ref::<Arc<App>>().cloned());
    let users = keys.list(setup, "users");
    let conversations = keys.list(setup, "conversations");
    if users.is_empty() && conversations.is_empty() {
        setup.problem(
            keys.path(),
            "no recipients: set users (userIds) and/or conversations (openConversationIds)".into(),
        );
    }
    let msgtype = keys.msgtype(
        setup,
        "a dingtalk_app target",
        &[("markdown", MsgType::Markdown), ("text", MsgType::Text), ("actionCard", MsgType::ActionCard)],
    );
    let batch = keys.number(setup, "batch_size").unwrap_or(DEFAULT_BATCH);
    if !(1..=100).contains(&batch) {
        setup.problem(
            &keys.key("batch_size"),
            "users per call must be between 1 and 100 (DingTalk documents 20)".into(),
        );
    }
    let app_name = app_name?;
    let Some(app) = app else {
        let known = setup.section_names(SECTION);
        setup.problem(&keys.key("app"), format!("no app {app_name:?} under {SECTION} (configured: {known:?})"));
        return None;
    };
    Some(Channel::new(AppTarget { app, users, conversations, msgtype, batch: batch.clamp(1, 100) }))
}
