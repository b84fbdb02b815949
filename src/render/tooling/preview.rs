//! `preview`: an HTML page showing rendered messages as DingTalk draws them on a phone 375 px wide (the
//! notification banner with the title, the message with the markdown subset, mentions highlighted, card
//! buttons), with each message's size against the limit, its line count and its checks, and the exact
//! body. Self-contained: no script, no external asset.

use std::fmt::Write;

use crate::render::phone;

pub use crate::channel::Shown;

impl Shown {
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
    renderer: &crate::render::Renderer,
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
            target
                .channel
                .show(&crate::render::send_time::resolve(&m.body, at.timestamp_millis()), m.recipients.as_ref())
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
        let shown = crate::channel::show_any(&body).unwrap();
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
        let shown = crate::channel::show_any(&card.to_string()).unwrap();
        assert_eq!(
            (shown.title.as_str(), shown.text.as_str()),
            ("🔴 FIRING 1 · X · Alert", "**critical**\n@ou_1 Alert")
        );
        assert_eq!(shown.mentions, ["@ou_1"]);
        assert_eq!(shown.buttons, [("Silence".to_string(), "http://am/s".to_string())]);
        assert_eq!(shown.lines(), 3, "two kept lines and the buttons");
        let wecom = serde_json::json!({"msgtype": "markdown", "markdown": {"content": "#### <font color=\"warning\">FIRING</font> X\n<@zhangsan> Alert"}});
        let shown = crate::channel::show_any(&wecom.to_string()).unwrap();
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
