//! A stored body read back for a person ([`Shown`]): what the preview draws as a phone would, and what the
//! console shows of a record. Each protocol reads its own bodies; this is the shape they all give.

/// One rendered message, read back from its body.
#[derive(Debug, Clone, Default)]
pub struct Shown {
    pub msgtype: String,
    pub title: String,
    pub text: String,
    /// `@...` tokens the body rings.
    pub mentions: Vec<String>,
    pub buttons: Vec<(String, String)>,
    /// Its size as the tool counts it.
    pub bytes: usize,
    pub body: String,
    /// Whether the tool keeps the text's line breaks (text everywhere; Feishu and WeCom always) rather
    /// than joining single newlines as DingTalk's markdown does.
    pub keeps_lines: bool,
    /// Whom an app robot's message goes to (`to 20 users (…)`); `None` for webhook bots, which post to
    /// their group.
    pub to: Option<String>,
}

/// Reads a body of any protocol the bridge speaks (a record whose target is gone).
pub fn show_any(body: &str) -> Option<Shown> {
    super::PROTOCOLS.iter().find_map(|p| (p.show)(body))
}

/// `text` with inline mention markup (`<at id=X></at>`, `<at user_id="X"></at>`, `<@X>`) written as `@X`,
/// and colour tags dropped; the mentions found.
pub fn plain_mentions(text: &str) -> (String, Vec<String>) {
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
