//! An app robot's stored body read back for a person: `msgKey` and its `msgParam` (a JSON string), drawn
//! as the robot's markdown, text or action card, sized by `msgParam` as DingTalk counts it.

use serde_json::Value;

use crate::channel::Shown;

/// Reads an app robot's body; `None` for anything else.
pub fn show(body: &str) -> Option<Shown> {
    let v: Value = serde_json::from_str(body).ok()?;
    let key = v.get("msgKey")?.as_str()?;
    let param = v.get("msgParam")?.as_str()?;
    let p: Value = serde_json::from_str(param).ok()?;
    let s = |k: &str| p.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
    let (msgtype, text) = match key {
        "sampleText" => ("text", s("content")),
        "sampleMarkdown" => ("markdown", s("text")),
        _ => ("actionCard", s("text")),
    };
    let mut buttons = vec![];
    if key == "sampleActionCard" {
        buttons.push((s("singleTitle"), s("singleURL")));
    }
    for i in 1..=5 {
        if p.get(format!("actionTitle{i}")).is_some() {
            buttons.push((s(&format!("actionTitle{i}")), s(&format!("actionURL{i}"))));
        }
    }
    Some(Shown {
        msgtype: msgtype.to_string(),
        title: s("title"),
        text,
        mentions: vec![],
        buttons,
        bytes: param.len(),
        body: body.to_string(),
        keeps_lines: msgtype == "text",
        to: None,
    })
}
