//! Links a message carries: an alert's own URLs made safe as markdown link targets, and Alertmanager's
//! pages (the alert list of a group, the silence form) prefilled with matchers.

use std::collections::BTreeMap;

/// `s` as the target of a markdown link, if it is an absolute http(s) URL: anything else (`javascript:`,
/// `data:`, a relative path, text that is not a URL) gives `None`, so no link is made. The URL is kept as
/// written, but characters that could end the link or start another (`(`, `)`, `[`, `]`, spaces, quotes,
/// backslashes) are percent-encoded and control characters dropped.
pub fn link_url(s: &str) -> Option<String> {
    let s = s.trim();
    let url = reqwest::Url::parse(s).ok()?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none_or(str::is_empty) {
        return None;
    }
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '(' => out.push_str("%28"),
            ')' => out.push_str("%29"),
            '[' => out.push_str("%5B"),
            ']' => out.push_str("%5D"),
            '\\' => out.push_str("%5C"),
            '`' => out.push_str("%60"),
            '"' => out.push_str("%22"),
            '\'' => out.push_str("%27"),
            '<' => out.push_str("%3C"),
            '>' => out.push_str("%3E"),
            ' ' => out.push_str("%20"),
            c if c.is_whitespace() || c.is_control() => {}
            c => out.push(c),
        }
    }
    Some(out)
}

fn push_encoded(out: &mut String, s: &str) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(b as char),
            _ => {
                out.push('%');
                out.push(HEX[usize::from(b >> 4)] as char);
                out.push(HEX[usize::from(b & 15)] as char);
            }
        }
    }
}

/// `{k="v",...}` percent-encoded for a query parameter, `\\` and `"` escaped in values.
fn matchers<'a>(out: &mut String, labels: impl Iterator<Item = (&'a str, &'a str)>) {
    push_encoded(out, "{");
    for (i, (k, v)) in labels.enumerate() {
        if i > 0 {
            push_encoded(out, ",");
        }
        push_encoded(out, k);
        push_encoded(out, "=\"");
        push_encoded(out, &v.replace('\\', "\\\\").replace('"', "\\\""));
        push_encoded(out, "\"");
    }
    push_encoded(out, "}");
}

/// A page of Alertmanager's UI with a matcher filter, only under an http(s) Alertmanager address (a
/// relative link would lead nowhere).
pub(super) fn alertmanager_page<'a>(
    external_url: &str,
    page: &str,
    labels: impl Iterator<Item = (&'a str, &'a str)>,
) -> String {
    let Some(base) = link_url(external_url) else { return String::new() };
    let base = base.trim_end_matches('/');
    let mut out = format!("{base}/#/{page}?filter=");
    matchers(&mut out, labels);
    out
}

/// The silence page for the labels a group's alerts share (silencing the whole group).
pub fn silence_group_url(external_url: &str, labels: &BTreeMap<String, String>) -> String {
    alertmanager_page(external_url, "silences/new", labels.iter().map(|(k, v)| (k.as_str(), v.as_str())))
}

/// Alertmanager's alert list filtered to a group (by its group labels) and receiver.
pub fn alerts_url(external_url: &str, group: &BTreeMap<String, String>, receiver: &str) -> String {
    let mut url = alertmanager_page(external_url, "alerts", group.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    if !url.is_empty() && !receiver.is_empty() {
        url.push_str("&receiver=");
        push_encoded(&mut url, receiver);
    }
    url
}
