//! A DingTalk robot's body read back for a person: markdown, text or action card, with its mentions.

use serde_json::Value;

use crate::channel::Shown;

/// Reads a custom robot's body; `None` for anything else (another tool's bodies have other fields).
pub fn show(body: &str) -> Option<Shown> {
    let v: Value = serde_json::from_str(body).ok()?;
    let msgtype = v.get("msgtype")?.as_str()?.to_string();
    let part = v.get(&msgtype)?;
    let s = |k: &str| part.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
    let text = match msgtype.as_str() {
        // WeCom's text has mention lists and no `at`; its markdown has `content`, not `text`.
        "text" if part.get("mentioned_list").is_none() => s("content"),
        "markdown" | "actionCard" if part.get("text").is_some() => s("text"),
        _ => return None,
    };
    let list = |k: &str| -> Vec<String> {
        v.pointer(&format!("/at/{k}"))
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).map(|m| format!("@{m}")).collect())
            .unwrap_or_default()
    };
    let mut mentions = list("atMobiles");
    mentions.extend(list("atUserIds"));
    if v.pointer("/at/isAtAll") == Some(&Value::Bool(true)) {
        mentions.push("@all".into());
    }
    let buttons = part
        .get("btns")
        .and_then(Value::as_array)
        .map(|b| {
            b.iter()
                .map(|b| {
                    let f = |k: &str| b.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
                    (f("title"), f("actionURL"))
                })
                .collect()
        })
        .unwrap_or_default();
    let keeps_lines = msgtype == "text";
    Some(Shown {
        title: s("title"),
        text,
        mentions,
        buttons,
        bytes: body.len(),
        body: body.to_string(),
        msgtype,
        keeps_lines,
        to: None,
    })
}
