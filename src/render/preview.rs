//! `preview`: an HTML page showing rendered messages as DingTalk draws them on a phone 375 px wide (the
//! notification banner with the title, the message with the markdown subset, mentions highlighted, card
//! buttons), with each message's size against the limit, its line count and its checks, and the exact
//! body. Self-contained: no script, no external asset.

use std::fmt::Write;

use serde_json::Value;

use super::phone;

/// One rendered message, read back from its body.
#[derive(Debug, Clone)]
pub struct Shown {
    pub msgtype: String,
    pub title: String,
    pub text: String,
    /// `@...` tokens the body rings.
    pub mentions: Vec<String>,
    pub buttons: Vec<(String, String)>,
    pub bytes: usize,
    pub body: String,
    /// Whether the tool keeps the text's line breaks (text everywhere; Feishu and WeCom always) rather
    /// than joining single newlines as DingTalk's markdown does.
    pub keeps_lines: bool,
    /// Whom an app robot's message goes to (`to 20 users (…)`); `None` for webhook bots, which post to
    /// their group.
    pub to: Option<String>,
}

impl Shown {
    /// Reads a body of any protocol the bridge speaks.
    pub fn of(body: &str) -> Option<Shown> {
        let v: Value = serde_json::from_str(body).ok()?;
        if v.get("msg_type").is_some() {
            return Shown::feishu(&v, body);
        }
        if let Some(key) = v.get("msgKey").and_then(Value::as_str) {
            return Shown::dingtalk_app(key, v.get("msgParam")?.as_str()?, body);
        }
        let msgtype = v.get("msgtype")?.as_str()?.to_string();
        if let Some(content) = v.pointer(&format!("/{msgtype}/content")).and_then(Value::as_str)
            && (msgtype.starts_with("markdown") || v.pointer("/text/mentioned_list").is_some())
        {
            return Some(Shown::wecom(&v, &msgtype, content, body));
        }
        let part = v.get(&msgtype)?;
        let s = |k: &str| part.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
        let text = if msgtype == "text" { s("content") } else { s("text") };
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

    /// A DingTalk app robot's message: `msgKey` and its `msgParam` (a JSON string), drawn as the robot's
    /// markdown, text or action card.
    fn dingtalk_app(key: &str, param: &str, body: &str) -> Option<Shown> {
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

    /// A Feishu or Lark body: a card (header, markdown, buttons), a post or text.
    fn feishu(v: &Value, body: &str) -> Option<Shown> {
        let msgtype = v.get("msg_type")?.as_str()?.to_string();
        let str_at = |p: &str| v.pointer(p).and_then(Value::as_str).unwrap_or_default().to_string();
        let (title, raw, buttons) = match msgtype.as_str() {
            "interactive" => {
                let elements = v.pointer("/card/elements").and_then(Value::as_array).cloned().unwrap_or_default();
                let text = elements
                    .iter()
                    .filter_map(|e| e.get("content").and_then(Value::as_str))
                    .collect::<Vec<_>>()
                    .join("\n");
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
                let lines =
                    v.pointer("/content/post/zh_cn/content").and_then(Value::as_array).cloned().unwrap_or_default();
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

    /// A WeCom body: markdown, markdown_v2 or text (whose mentions are lists).
    fn wecom(v: &Value, msgtype: &str, content: &str, body: &str) -> Shown {
        let (text, mut mentions) = plain_mentions(content);
        for list in ["mentioned_list", "mentioned_mobile_list"] {
            if let Some(items) = v.pointer(&format!("/text/{list}")).and_then(Value::as_array) {
                mentions.extend(items.iter().filter_map(Value::as_str).map(|m| format!("@{m}")));
            }
        }
        Shown {
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
        }
    }

    /// Lines the message takes on the phone (text and buttons, not the banner).
    pub fn lines(&self) -> usize {
        let text = match (self.keeps_lines, self.msgtype.as_str()) {
            (true, "text") => phone::text_lines(&self.text),
            (true, _) => phone::kept_markdown_lines(&self.text),
            (false, _) => phone::markdown_lines(&self.text),
        };
        text + usize::from(!self.buttons.is_empty())
    }
}

/// `text` with the tools' mention and colour tags (`<at id=X></at>`, `<at user_id="X"></at>`, `<@X>`,
/// `<font color="...">`) shown as a reader sees them, and the `@X` mentions they make.
fn plain_mentions(text: &str) -> (String, Vec<String>) {
    let mut out = String::with_capacity(text.len());
    let mut mentions = vec![];
    let mut rest = text;
    while let Some(start) = rest.find('<') {
        out.push_str(&rest[..start]);
        let tag = &rest[start..];
        let Some(end) = tag.find('>') else {
            out.push_str(tag);
            rest = "";
            break;
        };
        let inner = &tag[1..end];
        let id = inner
            .strip_prefix("at id=")
            .or_else(|| inner.strip_prefix("at user_id="))
            .or_else(|| inner.strip_prefix('@'))
            .map(|id| id.trim_matches('"'));
        match id {
            Some(id) => {
                let at = format!("@{id}");
                out.push_str(&at);
                mentions.push(at);
            }
            None if inner.starts_with("font") || inner.starts_with("/font") || inner.starts_with("/at") => {}
            None => out.push_str(&tag[..=end]),
        }
        rest = &tag[end + 1..];
    }
    out.push_str(rest);
    (out, mentions)
}

/// A titled group of messages (one notification).
pub struct Section {
    pub name: String,
    pub messages: Vec<Shown>,
    /// Notes to show above the messages (a template that failed, a keyword added).
    pub notes: Vec<String>,
}

pub const STYLE: &str = r#"
body { margin: 0; background: #e9ebef; font: 15px/1.5 -apple-system, "PingFang SC", "Noto Sans CJK SC", "Noto Sans", "DejaVu Sans", sans-serif; color: #171a1d; }
main { display: flex; flex-wrap: wrap; gap: 24px; padding: 16px; align-items: flex-start; }
section { width: 375px; background: #f2f3f5; border-radius: 18px; box-shadow: 0 1px 4px rgba(0,0,0,.15); overflow: hidden; }
section > h2 { font-size: 13px; margin: 0; padding: 8px 12px; background: #fff; color: #5c6066; font-weight: 600; word-break: break-all; }
.banner { margin: 10px 10px 4px; padding: 8px 12px; background: rgba(255,255,255,.9); border-radius: 12px; font-size: 14px; }
.banner b { display: block; font-size: 12px; color: #8f959e; font-weight: 500; }
.chat { display: flex; gap: 8px; padding: 8px 10px 4px; }
.avatar { flex: none; width: 36px; height: 36px; border-radius: 8px; background: #3296fa; color: #fff; font-size: 13px; line-height: 36px; text-align: center; }
.bubble { width: 291px; background: #fff; border-radius: 8px; padding: 10px 12px; overflow-wrap: anywhere; }
.bubble h1, .bubble h2, .bubble h3, .bubble h4, .bubble h5, .bubble h6 { margin: 0 0 6px; line-height: 1.4; }
.bubble h4 { font-size: 17px; } .bubble h3 { font-size: 19px; } .bubble h2 { font-size: 21px; } .bubble h1 { font-size: 23px; }
.bubble p { margin: 0 0 8px; }
.bubble blockquote { margin: 0 0 8px; padding: 0 0 0 9px; border-left: 3px solid #d0d3d6; color: #5c6066; }
.bubble .li { display: flex; gap: 6px; } .bubble .li .mark { flex: none; color: #8f959e; }
.bubble a { color: #0089ff; text-decoration: none; }
.bubble .at { color: #0089ff; }
.bubble .plain { margin: 0; }
.bubble .kept p, .bubble .kept blockquote, .bubble .kept h4 { margin: 0; } .bubble .kept .gap { height: 8px; }
.btns { display: flex; border-top: 1px solid #eceef0; margin: 8px -12px -10px; }
.btns a { flex: 1; text-align: center; padding: 8px 0; color: #0089ff; text-decoration: none; border-left: 1px solid #eceef0; }
.btns a:first-child { border-left: none; }
.facts { margin: 0 10px 10px 54px; font-size: 12px; color: #5c6066; }
.facts .bad { color: #d40000; font-weight: 600; }
.facts details { margin-top: 2px; } .facts pre { white-space: pre-wrap; word-break: break-all; font-size: 11px; background: #fff; padding: 6px; border-radius: 6px; max-height: 240px; overflow: auto; }
.note { margin: 8px 10px 0; font-size: 12px; color: #a85d00; }
"#;

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// One notification's messages as `target` renders them at `at`, with what the rendering had to do.
pub fn section(
    renderer: &super::Renderer,
    target: &crate::config::Target,
    label: String,
    decoded: &crate::decode::Decoded,
    at: chrono::DateTime<chrono::Utc>,
) -> Section {
    let rendered = renderer.render(target, decoded);
    let mut notes = vec![];
    if let Some(e) = &rendered.template_error {
        notes.push(format!("template set {:?} failed; the built-in template rendered these: {e}", target.template));
    }
    if rendered.keyword_inserted > 0 {
        notes.push(format!(
            "the template left out the keyword; the bridge added it to {} message(s)",
            rendered.keyword_inserted
        ));
    }
    let heard = &rendered.mentioned;
    for (what, names) in [
        ("named in the alerts but not in the people directory", &heard.unknown),
        ("without an identifier for this tool", &heard.no_identifier),
        ("past the tool's limit on mentions", &heard.capped),
    ] {
        if !names.is_empty() {
            notes.push(format!("not rung, {what}: {}", names.join(", ")));
        }
    }
    let messages = rendered
        .messages
        .iter()
        .filter_map(|m| {
            let mut shown = Shown::of(&super::send_time::resolve(&m.body, at.timestamp_millis()))?;
            shown.to = crate::channel::dingtalk_app::Delivery::parse(m.recipients.as_deref()).map(|d| d.to.describe());
            Some(shown)
        })
        .collect();
    Section { name: label, messages, notes }
}

/// The page for `sections` rendered for `target`, checked against its size limit and keyword.
pub fn page_for(config: &crate::config::Config, target: &crate::config::Target, sections: &[Section]) -> String {
    let limit = target
        .channel
        .max_bytes()
        .map_or(config.delivery.max_message_bytes, |m| m.min(config.delivery.max_message_bytes));
    page(target.channel.service(), &target.name, sections, limit, target.keyword.as_deref())
}

/// The page for `sections`, each message checked against `max_bytes` and `keyword`.
pub fn page(service: &str, target: &str, sections: &[Section], max_bytes: usize, keyword: Option<&str>) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\">\
         <title>dingtalk-bridge preview: {}</title><style>{STYLE}</style></head><body><main>\n",
        escape(target)
    );
    for section in sections {
        let _ = writeln!(out, "<section><h2>{}</h2>", escape(&section.name));
        for note in &section.notes {
            let _ = writeln!(out, "<div class=\"note\">{}</div>", escape(note));
        }
        let total = section.messages.len();
        for (i, m) in section.messages.iter().enumerate() {
            let _ = writeln!(
                out,
                "<div class=\"banner\"><b>{} · {}</b>{}</div>",
                escape(service),
                escape(target),
                escape(&m.title)
            );
            let inner = if m.msgtype == "text" {
                phone::text_html(&m.text, &m.mentions)
            } else if m.keeps_lines {
                phone::lines_html(&m.text, &m.mentions)
            } else {
                phone::markdown_html(&m.text, &m.mentions)
            };
            let buttons: String =
                m.buttons.iter().map(|(t, u)| format!("<a href=\"{}\">{}</a>", escape(u), escape(t))).collect();
            let buttons =
                if buttons.is_empty() { String::new() } else { format!("<div class=\"btns\">{buttons}</div>") };
            let _ = writeln!(
                out,
                "<div class=\"chat\"><div class=\"avatar\">Bot</div><div class=\"bubble\">{inner}{buttons}</div></div>"
            );
            let size = if m.bytes > max_bytes {
                format!("<span class=\"bad\">{} bytes, over the {max_bytes}-byte limit</span>", m.bytes)
            } else {
                format!("{} of {max_bytes} bytes", m.bytes)
            };
            let kw = match keyword {
                Some(k) if (m.title.is_empty() || m.title.contains(k)) && m.text.contains(k) => {
                    format!(" · keyword “{}” present", escape(k))
                }
                Some(k) => format!(" · <span class=\"bad\">keyword “{}” missing</span>", escape(k)),
                None => String::new(),
            };
            let rings = if let Some(to) = &m.to {
                format!(" · {}", escape(to))
            } else if m.mentions.is_empty() {
                " · rings no one".to_string()
            } else {
                let unwritten: Vec<&String> =
                    m.mentions.iter().filter(|t| *t != "@all" && !m.text.contains(t.as_str())).collect();
                if unwritten.is_empty() {
                    format!(" · rings {}", escape(&m.mentions.join(" ")))
                } else {
                    format!(
                        " · <span class=\"bad\">{} not written in the text: no ring</span>",
                        escape(&format!("{unwritten:?}"))
                    )
                }
            };
            let _ = writeln!(
                out,
                "<div class=\"facts\">message {} of {total} · {} · {} lines{kw}{rings}<details><summary>body</summary><pre>{}</pre></details></div>",
                i + 1,
                size,
                m.lines(),
                escape(&m.body)
            );
        }
        out.push_str("</section>\n");
    }
    out.push_str("</main></body></html>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_shows_each_message_with_its_checks() {
        let body = serde_json::json!({
            "msgtype": "markdown",
            "markdown": {"title": "🔴 FIRING 1 · X · Alert", "text": "#### 🔴 X\n\n**critical** <script>\n\n@138 Alert"},
            "at": {"atMobiles": ["138"], "atUserIds": [], "isAtAll": false},
        })
        .to_string();
        let shown = Shown::of(&body).unwrap();
        assert_eq!(shown.mentions, ["@138"]);
        let html = page(
            "DingTalk",
            "ops",
            &[Section { name: "s".into(), messages: vec![shown], notes: vec![] }],
            20_000,
            Some("Alert"),
        );
        assert!(html.contains("🔴 FIRING 1 · X · Alert"), "{html}");
        assert!(html.contains("<span class=\"at\">@138</span>"), "{html}");
        assert!(!html.contains("<script>"), "escaped");
        assert!(html.contains("keyword “Alert” present") && html.contains("rings @138"), "{html}");
    }

    #[test]
    fn feishu_and_wecom_bodies_are_read_too() {
        let card = serde_json::json!({"msg_type": "interactive", "card": {
            "header": {"title": {"tag": "plain_text", "content": "🔴 FIRING 1 · X · Alert"}, "template": "red"},
            "elements": [{"tag": "markdown", "content": "**critical**\n<at id=ou_1></at> Alert"},
                         {"tag": "action", "actions": [{"tag": "button", "text": {"tag": "plain_text", "content": "Silence"}, "url": "http://am/s"}]}]}});
        let shown = Shown::of(&card.to_string()).unwrap();
        assert_eq!(
            (shown.title.as_str(), shown.text.as_str()),
            ("🔴 FIRING 1 · X · Alert", "**critical**\n@ou_1 Alert")
        );
        assert_eq!(shown.mentions, ["@ou_1"]);
        assert_eq!(shown.buttons, [("Silence".to_string(), "http://am/s".to_string())]);
        assert_eq!(shown.lines(), 3, "two kept lines and the buttons");
        let wecom = serde_json::json!({"msgtype": "markdown", "markdown": {"content": "#### <font color=\"warning\">FIRING</font> X\n<@zhangsan> Alert"}});
        let shown = Shown::of(&wecom.to_string()).unwrap();
        assert_eq!(shown.text, "#### FIRING X\n@zhangsan Alert");
        assert_eq!(shown.mentions, ["@zhangsan"]);
        let html = page(
            "WeCom",
            "ops",
            &[Section { name: "w".into(), messages: vec![shown], notes: vec![] }],
            4096,
            Some("Alert"),
        );
        assert!(
            html.contains("keyword “Alert” present") && html.contains("<span class=\"at\">@zhangsan</span>"),
            "{html}"
        );
    }
}
