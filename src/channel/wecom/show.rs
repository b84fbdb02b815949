//! A WeCom robot's body read back for a person: markdown, markdown_v2 or text (whose mentions are lists),
//! sized by its content, as WeCom counts it.

use serde_json::Value;

use crate::channel::Shown;
use crate::channel::show::plain_mentions;

/// Reads a WeCom body; `None` for anything else (DingTalk's text has no mention lists, its markdown a
/// `text`, not a `content`).
pub fn show(body: &str) -> Option<Shown> {
    let v: Value = serde_json::from_str(body).ok()?;
    let msgtype = v.get("msgtype")?.as_str()?;
    let content = v.pointer(&format!("/{msgtype}/content")).and_then(Value::as_str)?;
    if !(msgtype.starts_with("markdown") || v.pointer("/text/mentioned_list").is_some()) {
        return None;
    }
    let (text, mut mentions) = plain_mentions(content);
    for list in ["mentioned_list", "mentioned_mobile_list"] {
        if let Some(items) = v.pointer(&format!("/text/{list}")).and_then(Value::as_array) {
            mentions.extend(items.iter().filter_map(Value::as_str).map(|m| format!("@{m}")));
        }
    }
    Some(Shown {
        msgtype: msgtype.to_string(),
        title: String::new(),
        text,
        mentions,
        buttons: vec![],
        // What WeCom counts against its limit: the content.
        bytes: content.len(),
        body: body.to_string(),
        keeps_lines: true,
        to: None,
    })
}
