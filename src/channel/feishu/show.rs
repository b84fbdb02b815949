//! A Feishu or Lark bot's body read back for a person: a card (header, markdown, buttons), a post drawn
//! back as markdown, or text, with its mentions.

use serde_json::Value;

use crate::channel::Shown;
use crate::channel::show::plain_mentions;

/// Reads a Feishu or Lark body; `None` for anything else.
pub fn show(body: &str) -> Option<Shown> {
    let v: Value = serde_json::from_str(body).ok()?;
    let msgtype = v.get("msg_type")?.as_str()?.to_string();
    let str_at = |p: &str| v.pointer(p).and_then(Value::as_str).unwrap_or_default().to_string();
    let (title, raw, buttons) = match msgtype.as_str() {
        "interactive" => {
            let elements = v.pointer("/card/elements").and_then(Value::as_array).cloned().unwrap_or_default();
            let text =
                elements.iter().filter_map(|e| e.get("content").and_then(Value::as_str)).collect::<Vec<_>>().join("\n");
            let buttons = elements
                .iter()
                .filter_map(|e| e.get("actions").and_then(Value::as_array))
                .flatten()
                .map(|b| {
                    let f = |p: &str| b.pointer(p).and_then(Value::as_str).unwrap_or_default().to_string();
                    (f("/text/content"), f("/url"))
                })
                .collect();
            (str_at("/card/header/title/content"), text, buttons)
        }
        "post" => {
            let lines = v.pointer("/content/post/zh_cn/content").and_then(Value::as_array).cloned().unwrap_or_default();
            let text = lines
                .iter()
                .map(|line| {
                    line.as_array()
                        .map(|els| {
                            els.iter()
                                .map(|e| match e.get("tag").and_then(Value::as_str) {
                                    Some("at") => format!(
                                        "<at id={}></at>",
                                        e.get("user_id").and_then(Value::as_str).unwrap_or("")
                                    ),
                                    Some("a") => format!(
                                        "[{}]({})",
                                        e.get("text").and_then(Value::as_str).unwrap_or(""),
                                        e.get("href").and_then(Value::as_str).unwrap_or("")
                                    ),
                                    _ => {
                                        let text = e.get("text").and_then(Value::as_str).unwrap_or("");
                                        let styled = |s: &str| {
                                            e.get("style")
                                                .and_then(Value::as_array)
                                                .is_some_and(|a| a.iter().any(|v| v == s))
                                        };
                                        match (styled("bold"), styled("italic")) {
                                            (true, _) => format!("**{text}**"),
                                            (false, true) => format!("*{text}*"),
                                            _ => text.to_string(),
                                        }
                                    }
                                })
                                .collect::<String>()
                        })
                        .unwrap_or_default()
                })
                .collect::<Vec<_>>()
                .join("\n");
            (str_at("/content/post/zh_cn/title"), text, vec![])
        }
        _ => (String::new(), str_at("/content/text"), vec![]),
    };
    let (text, mentions) = plain_mentions(&raw);
    Some(Shown {
        msgtype,
        title,
        text,
        mentions,
        buttons,
        bytes: body.len(),
        body: body.to_string(),
        keeps_lines: true,
        to: None,
    })
}
