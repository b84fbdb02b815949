//! Handlebars helpers a template author expects: markdown escaping, times in the configured time zone,
//! durations, string and list helpers, label maps, and Alertmanager's silence link.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use handlebars::{Context, Handlebars, Helper, HelperDef, RenderContext, RenderError, RenderErrorReason, ScopedJson};
use serde_json::{Map, Value};

use super::links::{alertmanager_page, link_url};
use super::{layout, phone, send_time};
use crate::config::LabelFilter;

type HelperFn = dyn Fn(&[&Value], &Context) -> Result<Value, String> + Send + Sync;

/// Adapts a plain function over the helper's parameter values into a Handlebars helper that works both as
/// `{{name a b}}` and as a subexpression `(name a b)`.
struct ValueHelper(Box<HelperFn>);

impl HelperDef for ValueHelper {
    fn call_inner<'reg: 'rc, 'rc>(
        &self,
        h: &Helper<'rc>,
        _: &'reg Handlebars<'reg>,
        ctx: &'rc Context,
        _: &mut RenderContext<'reg, 'rc>,
    ) -> Result<ScopedJson<'rc>, RenderError> {
        let params: Vec<&Value> = h.params().iter().map(|p| p.value()).collect();
        (self.0)(&params, ctx)
            .map(ScopedJson::Derived)
            .map_err(|m| RenderErrorReason::Other(format!("helper {}: {m}", h.name())).into())
    }
}

fn register(
    hb: &mut Handlebars<'static>,
    name: &str,
    f: impl Fn(&[&Value], &Context) -> Result<Value, String> + Send + Sync + 'static,
) {
    hb.register_helper(name, Box::new(ValueHelper(Box::new(f))));
}

fn arg<'a>(params: &[&'a Value], i: usize, what: &str) -> Result<&'a Value, String> {
    params.get(i).copied().ok_or_else(|| format!("missing argument {} ({what})", i + 1))
}

/// The text of a value as a template shows it.
fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
        Value::Number(n) => n.as_f64() != Some(0.0),
    }
}

/// Alertmanager writes `0001-01-01T00:00:00Z` for "no end yet".
fn parse_time(v: &Value) -> Option<DateTime<Utc>> {
    let t = v.as_str().and_then(|s| DateTime::parse_from_rfc3339(s).ok())?.with_timezone(&Utc);
    (t.timestamp() > 0).then_some(t)
}

/// Escapes what would change how DingTalk draws a value, and nothing else, so `node_exporter`, `a-b`,
/// `10.0.0.1:9100` and `map[a:b]` show as written: `\\`, `*` and `` ` `` anywhere; `]` before `(` or `[`
/// (a link or an image); `_` where it could start or end emphasis (not inside a word); `<` before a letter,
/// `/` or `!` (a tag); and at the start of the value `#`, `>`, `-`, `+`, `=` and a number followed by `. `
/// (a heading, quote, list item or rule if the value starts a line). Line breaks and other control
/// characters become spaces: a value is one line.
pub fn escape_markdown(s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    let mut out = String::with_capacity(s.len() + 8);
    let word = |i: Option<usize>| i.and_then(|i| chars.get(i)).is_some_and(|c| c.is_alphanumeric());
    let lead_digits = chars.iter().take_while(|c| c.is_ascii_digit()).count();
    for (i, &c) in chars.iter().enumerate() {
        if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}') {
            out.push(' ');
            continue;
        }
        let escape = match c {
            '\\' | '*' | '`' => true,
            // `[text](url)`, `[text][ref]` and images need `](` or `][`: a lone bracket is text.
            ']' => chars.get(i + 1).is_some_and(|n| matches!(n, '(' | '[')),
            '_' => !(word(i.checked_sub(1)) && word(Some(i + 1))),
            '<' => chars.get(i + 1).is_some_and(|n| n.is_alphabetic() || matches!(n, '/' | '!')),
            '#' | '>' | '-' | '+' | '=' => i == 0,
            '.' | ')' => i > 0 && i == lead_digits && chars.get(i + 1).is_none_or(|n| n.is_whitespace()),
            _ => false,
        };
        if escape {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A markdown quote of `blocks`, every line kept (joined by hard line breaks, as DingTalk needs), escaped,
/// trimmed, blank lines dropped so the quote cannot end early; the first block (a summary) in bold. At most
/// `max_lines` lines, then `…`.
pub fn quote(blocks: &[String], max_lines: usize) -> String {
    note_lines(blocks, max_lines).iter().map(|l| format!("> {l}")).collect::<Vec<_>>().join("  \n")
}

/// The lines of [`quote`] without the quote: escaped, blank lines dropped, the first block in bold, at
/// most `max_lines` with `…`.
fn note_lines(blocks: &[String], max_lines: usize) -> Vec<String> {
    let first = blocks.first().is_some_and(|b| !b.trim().is_empty()).then_some(0);
    let mut lines: Vec<String> = vec![];
    for (i, block) in blocks.iter().enumerate() {
        for line in block.split(['\n', '\r', '\u{2028}', '\u{2029}']).map(str::trim).filter(|l| !l.is_empty()) {
            let text = escape_markdown(line);
            lines.push(if Some(i) == first { format!("**{text}**") } else { text });
        }
    }
    if lines.len() > max_lines {
        lines.truncate(max_lines.saturating_sub(1));
        lines.push("…".to_string());
    }
    lines
}

/// Alertmanager's "new silence" page prefilled with matchers for every label.
pub fn silence_url(external_url: &str, labels: &Map<String, Value>) -> String {
    let texts: Vec<(&str, String)> = labels.iter().map(|(k, v)| (k.as_str(), text(v))).collect();
    alertmanager_page(external_url, "silences/new", texts.iter().map(|(k, v)| (*k, v.as_str())))
}

/// Lines a quote shows before `…`.
const QUOTE_MAX_LINES: usize = 8;
/// Phone lines of a summary, and of a summary and description together, the layout shows (the rest is
/// in Alertmanager): six lines leave room for what, where, labels and links within twelve.
const SUMMARY_LINES: usize = 2;
const NOTES_LINES: usize = 6;

/// An alert's summary and description as `notes` shows them: clipped to fit [`NOTES_LINES`] in a quote.
fn clipped_notes(summary: &str, description: &str, lines: usize) -> (String, String) {
    let columns = phone::BODY_COLUMNS - 3;
    let summary = phone::clip(summary, SUMMARY_LINES, columns);
    let used = if summary.is_empty() { 0 } else { phone::text_lines_in(&summary, columns) };
    (summary, phone::clip(description, lines.saturating_sub(used), columns))
}

/// The summary and description `notes annotations [shared]` shows, clipped.
fn notes_of(p: &[&Value]) -> Result<[String; 2], String> {
    let Value::Object(own) = arg(p, 0, "annotations")? else { return Err("argument must be annotations".into()) };
    let shared = p.get(1).and_then(|v| v.as_object());
    let field = |k: &str| match own.get(k) {
        Some(v) if shared.is_none_or(|s| s.get(k) != Some(v)) => text(v),
        _ => String::new(),
    };
    let (summary, description) = clipped_notes(&field("summary"), &field("description"), NOTES_LINES);
    Ok([summary, description])
}

fn labels_of(v: &Value) -> Result<layout::Labels, String> {
    let Value::Object(o) = v else { return Err("argument must be a map such as labels".into()) };
    Ok(o.iter().map(|(k, v)| (k.clone(), text(v))).collect())
}

/// The target's `labels` setting, which the context carries as `target.labels`.
fn label_filter(ctx: &Context) -> LabelFilter {
    let list = |key: &str| -> Vec<String> {
        ctx.data()
            .pointer(&format!("/target/labels/{key}"))
            .and_then(Value::as_array)
            .map(|a| a.iter().map(text).collect())
            .unwrap_or_default()
    };
    LabelFilter { hide: list("hide"), show: list("show") }
}

/// When the message was rendered (the context's `now`), for "today" and the zone's offset.
fn rendered_at(ctx: &Context) -> DateTime<Utc> {
    ctx.data().get("now").and_then(parse_time).unwrap_or_else(Utc::now)
}

pub fn clock(t: DateTime<Utc>, now: DateTime<Utc>, tz: Tz) -> String {
    let (local, today) = (t.with_timezone(&tz), now.with_timezone(&tz));
    let days = (today.date_naive() - local.date_naive()).num_days();
    let fmt = match days {
        0 => "%H:%M",
        1..=6 => "%a %H:%M",
        _ => "%b %-d %H:%M",
    };
    local.format(fmt).to_string()
}

/// `UTC`, `UTC+8`, `UTC+5:30`, `UTC-3`: the offset in effect at `at`.
pub fn zone_name(at: DateTime<Utc>, tz: Tz) -> String {
    use chrono::Offset;
    let secs = at.with_timezone(&tz).offset().fix().local_minus_utc();
    let (sign, abs) = (if secs < 0 { '-' } else { '+' }, secs.abs());
    match (abs / 3600, abs % 3600 / 60) {
        (0, 0) => "UTC".to_string(),
        (h, 0) => format!("UTC{sign}{h}"),
        (h, m) => format!("UTC{sign}{h}:{m:02}"),
    }
}

pub fn register_all(hb: &mut Handlebars<'static>, tz: Tz) {
    register(hb, "md", |p, _| Ok(Value::String(escape_markdown(&text(arg(p, 0, "text")?)))));
    register(hb, "url", |p, _| Ok(Value::String(link_url(&text(arg(p, 0, "URL")?)).unwrap_or_default())));
    // Two spaces: the end of a line DingTalk keeps (a single newline alone joins lines).
    register(hb, "br", |_, _| Ok(Value::String("  ".into())));
    register(hb, "upper", |p, _| Ok(Value::String(text(arg(p, 0, "text")?).to_uppercase())));
    register(hb, "lower", |p, _| Ok(Value::String(text(arg(p, 0, "text")?).to_lowercase())));
    register(hb, "default", |p, _| {
        let v = arg(p, 0, "value")?;
        Ok(if truthy(v) { v.clone() } else { arg(p, 1, "fallback")?.clone() })
    });
    register(hb, "truncate", |p, _| {
        let s = text(arg(p, 0, "text")?);
        let n = arg(p, 1, "max characters")?.as_u64().ok_or("max characters must be a number")? as usize;
        Ok(Value::String(if s.chars().count() > n {
            let mut cut: String = s.chars().take(n.saturating_sub(1)).collect();
            cut.push('…');
            cut
        } else {
            s
        }))
    });
    register(hb, "join", |p, _| {
        let sep = p.get(1).map(|v| text(v)).unwrap_or_else(|| ", ".to_string());
        let items: Vec<String> = match arg(p, 0, "list")? {
            Value::Array(a) => a.iter().map(text).collect(),
            Value::Object(o) => o.values().map(text).collect(),
            other => vec![text(other)],
        };
        Ok(Value::String(items.join(&sep)))
    });
    // `kv labels` -> "k=v, k=v" (sorted by key, as label sets are).
    register(hb, "kv", |p, _| {
        let Value::Object(o) = arg(p, 0, "map")? else { return Err("argument must be a map such as labels".into()) };
        let sep = p.get(1).map(|v| text(v)).unwrap_or_else(|| ", ".to_string());
        Ok(Value::String(o.iter().map(|(k, v)| format!("{k}={}", text(v))).collect::<Vec<_>>().join(&sep)))
    });
    // `exclude labels "alertname" "severity"` or `exclude labels @root.commonLabels`: a map without those keys.
    register(hb, "exclude", |p, _| {
        let Value::Object(o) = arg(p, 0, "map")? else {
            return Err("first argument must be a map such as labels".into());
        };
        let mut out = o.clone();
        for key in &p[1..] {
            match key {
                Value::Object(keys) => keys.keys().for_each(|k| {
                    out.remove(k);
                }),
                Value::Array(keys) => keys.iter().for_each(|k| {
                    out.remove(&text(k));
                }),
                other => {
                    out.remove(&text(other));
                }
            }
        }
        Ok(Value::Object(out))
    });
    register(hb, "time", move |p, _| {
        let Some(t) = parse_time(arg(p, 0, "timestamp")?) else { return Ok(Value::String("-".into())) };
        let fmt = p.get(1).map(|v| text(v)).unwrap_or_else(|| "%Y-%m-%d %H:%M:%S %Z".to_string());
        let mut out = String::new();
        use std::fmt::Write;
        write!(out, "{}", t.with_timezone(&tz).format(&fmt)).map_err(|_| format!("invalid time format {fmt:?}"))?;
        Ok(Value::String(out))
    });
    // Computed when the message is sent (see send_time), so it is right after a throttle or an outage.
    register(hb, "since", |p, _| {
        let Some(t) = parse_time(arg(p, 0, "timestamp")?) else { return Ok(Value::String("-".into())) };
        Ok(Value::String(send_time::since(t)))
    });
    register(hb, "duration", |p, _| {
        let from = parse_time(arg(p, 0, "start")?);
        Ok(Value::String(match (from, p.get(1).map(|v| parse_time(v))) {
            (Some(a), Some(Some(b))) => crate::clock::human_duration((b - a).num_seconds()),
            (Some(a), None) => send_time::since(a),
            _ => "-".to_string(),
        }))
    });
    // `15:53` today, `Mon 15:53` within a week, `Nov 16 15:53` before, in the configured time zone.
    register(hb, "clock", move |p, ctx| {
        let Some(t) = parse_time(arg(p, 0, "timestamp")?) else { return Ok(Value::String("-".into())) };
        Ok(Value::String(clock(t, rendered_at(ctx), tz)))
    });
    // `UTC+8`: the zone the times are in, unambiguous (unlike `CST`).
    register(hb, "zone", move |_, ctx| Ok(Value::String(zone_name(rendered_at(ctx), tz))));
    register(hb, "quote", |p, _| {
        let blocks: Vec<String> = p.iter().map(|v| text(v)).collect();
        Ok(Value::String(quote(&blocks, QUOTE_MAX_LINES)))
    });
    // `notes annotations [shared]`: summary and description as a quote, leaving out what `shared` (the
    // group's common annotations) already says.
    register(hb, "notes", |p, _| {
        let [summary, description] = notes_of(p)?;
        Ok(Value::String(quote(&[summary, description], NOTES_LINES + 2)))
    });
    // `notelines annotations [shared]`: the same lines as `notes`, one per line and not quoted (for Feishu
    // cards, which draw no quotes but keep line breaks).
    register(hb, "notelines", |p, _| Ok(Value::String(note_lines(&notes_of(p)?, NOTES_LINES + 2).join("\n"))));
    // `lines text`: each line escaped as `md` does, blank lines dropped, line breaks kept (for Feishu, which
    // keeps them).
    register(hb, "lines", |p, _| {
        let s = text(arg(p, 0, "text")?);
        let lines: Vec<String> = s.lines().map(str::trim).filter(|l| !l.is_empty()).map(escape_markdown).collect();
        Ok(Value::String(lines.join("\n")))
    });
    // `clip text lines`: at most that many lines on a phone, its own line breaks kept, `…` if cut.
    register(hb, "clip", |p, _| {
        let s = text(arg(p, 0, "text")?);
        let n = arg(p, 1, "lines")?.as_u64().ok_or("lines must be a number")? as usize;
        Ok(Value::String(phone::clip(&s, n, phone::BODY_COLUMNS)))
    });
    // `linkline "Title" url "Title" url ...`: markdown links to the http(s) URLs among them, joined by ` · `.
    register(hb, "linkline", |p, _| {
        let links: Vec<String> = p
            .chunks(2)
            .filter_map(|pair| match pair {
                [title, url] => link_url(&text(url)).map(|u| format!("[{}]({u})", escape_markdown(&text(title)))),
                _ => None,
            })
            .collect();
        Ok(Value::String(links.join(" · ")))
    });
    register(hb, "icon", |p, _| {
        let status = text(arg(p, 0, "status")?);
        let severity = p.get(1).map(|v| text(v)).unwrap_or_default();
        Ok(Value::String(
            if status == "resolved" { layout::RESOLVED_ICON } else { layout::Level::of(&severity).icon() }.into(),
        ))
    });
    register(hb, "where", |p, _| Ok(Value::String(layout::where_text(&labels_of(arg(p, 0, "labels")?)?))));
    // `shown labels [annotations [lines]]`: the labels worth showing; with annotations, not those whose
    // values the summary or description already name, as far as a message shows them (as `notes` does, or
    // within `lines` lines of summary and description).
    register(hb, "shown", |p, ctx| {
        let labels = labels_of(arg(p, 0, "labels")?)?;
        let mut shown = layout::identifying(&labels, &label_filter(ctx));
        if let Some(Value::Object(notes)) = p.get(1) {
            let field = |k: &str| notes.get(k).map(text).unwrap_or_default();
            let lines = p.get(2).and_then(|v| v.as_u64()).map_or(NOTES_LINES, |n| n as usize);
            let (summary, description) = clipped_notes(&field("summary"), &field("description"), lines);
            shown.retain(|_, v| !summary.contains(v.as_str()) && !description.contains(v.as_str()));
        }
        Ok(Value::Object(shown.into_iter().map(|(k, v)| (k, Value::String(v))).collect()))
    });
    // `values labels keys`: the values of those keys, in that order, joined by ` · `.
    register(hb, "values", |p, _| {
        let labels = labels_of(arg(p, 0, "labels")?)?;
        let Value::Array(keys) = arg(p, 1, "keys")? else {
            return Err("second argument must be a list of keys".into());
        };
        let values: Vec<&str> =
            keys.iter().filter_map(|k| labels.get(&text(k))).map(String::as_str).filter(|v| !v.is_empty()).collect();
        Ok(Value::String(values.join(" · ")))
    });
    register(hb, "silence_url", |p, ctx| {
        let Value::Object(labels) = arg(p, 0, "labels")? else {
            return Err("argument must be an alert's labels".into());
        };
        let external = ctx.data().get("externalURL").and_then(Value::as_str).unwrap_or("");
        Ok(Value::String(silence_url(external, labels)))
    });
    register(hb, "contains", |p, _| {
        let hay = arg(p, 0, "text or list")?;
        let needle = arg(p, 1, "value")?;
        Ok(Value::Bool(match hay {
            Value::Array(a) => a.contains(needle),
            Value::Object(o) => o.contains_key(&text(needle)),
            other => text(other).contains(&text(needle)),
        }))
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn hb() -> Handlebars<'static> {
        let mut hb = Handlebars::new();
        hb.set_strict_mode(true);
        hb.register_escape_fn(handlebars::no_escape);
        register_all(&mut hb, chrono_tz::Asia::Shanghai);
        hb
    }

    fn render(t: &str, data: &Value) -> String {
        hb().render_template(t, data).unwrap()
    }

    #[test]
    fn string_helpers() {
        let d = json!({"s": "node_exporter *down*", "n": 0, "e": ""});
        assert_eq!(render("{{md s}}", &d), "node_exporter \\*down\\*");
        assert_eq!(render("{{upper s}}|{{lower \"AB\"}}", &d), "NODE_EXPORTER *DOWN*|ab");
        assert_eq!(render("{{truncate s 6}}", &d), "node_…");
        assert_eq!(render("{{default e \"none\"}}|{{default s \"none\"}}", &d), "none|node_exporter *down*");
        assert_eq!(render("{{#if (contains s \"down\")}}yes{{/if}}", &d), "yes");
    }

    #[test]
    fn label_helpers() {
        let d = json!({"labels": {"alertname": "A", "instance": "i1", "job": "node"}, "common": {"job": "node"}, "l": ["a", "b"]});
        assert_eq!(render("{{kv labels}}", &d), "alertname=A, instance=i1, job=node");
        assert_eq!(render("{{kv (exclude labels \"alertname\" \"job\")}}", &d), "instance=i1");
        assert_eq!(render("{{kv (exclude labels common)}}", &d), "alertname=A, instance=i1");
        assert_eq!(render("{{join l \" / \"}}|{{join l}}", &d), "a / b|a, b");
    }

    #[test]
    fn time_helpers_use_the_time_zone() {
        let d = json!({"s": "2026-11-22T02:16:51.19Z", "e": "2026-11-22T03:20:00Z", "zero": "0001-01-01T00:00:00Z"});
        assert_eq!(render("{{time s}}", &d), "2026-11-22 10:16:51 CST");
        assert_eq!(render("{{time s \"%H:%M\"}}", &d), "10:16");
        assert_eq!(render("{{duration s e}}", &d), "1h 3m");
        assert_eq!(render("{{time zero}}|{{duration s zero}}", &d), "-|-");
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(crate::clock::human_duration(5), "5s");
        assert_eq!(crate::clock::human_duration(65), "1m", "no seconds past the first minute");
        assert_eq!(crate::clock::human_duration(3 * 3600 + 120), "3h 2m");
        assert_eq!(crate::clock::human_duration(2 * 86400 + 3600), "2d 1h");
        assert_eq!(crate::clock::human_duration(-3), "0s");
    }

    #[test]
    fn links_are_http_only_and_cannot_break_out() {
        assert_eq!(
            link_url(" https://runbooks.example.com/a_b?x=1 ").as_deref(),
            Some("https://runbooks.example.com/a_b?x=1")
        );
        // The issue's example does not even parse (its host is `ok)`): no link at all.
        assert_eq!(link_url("http://ok) **INJECTED** [evil](http://evil.example"), None);
        let injected = "http://ok.example/a) **INJECTED** [evil](http://evil.example";
        let safe = link_url(injected).unwrap();
        assert!(!safe.contains(')') && !safe.contains('(') && !safe.contains('[') && !safe.contains(' '), "{safe}");
        for bad in
            ["javascript:alert(1)", "data:text/html,x", "/relative/path", "ftp://x/y", "not a url", "http://", ""]
        {
            assert_eq!(link_url(bad), None, "{bad}");
        }
        let hb = hb();
        let t = "{{#if (url u)}}[x]({{url u}}){{/if}}";
        assert_eq!(render(t, &json!({"u": "javascript:alert(1)"})), "");
        assert_eq!(render(t, &json!({"u": "http://a.example/p (1)"})), "[x](http://a.example/p%20%281%29)");
        let _ = hb;
        // No silence link without an http(s) Alertmanager address.
        assert_eq!(silence_url("", &serde_json::Map::new()), "");
        assert_eq!(silence_url("/am", &serde_json::Map::new()), "");
    }

    #[test]
    fn markdown_values_stay_on_one_line() {
        // Mid-line, `#`, `---` and `- ` are only text.
        assert_eq!(escape_markdown("a\n# heading\r\n---\n- item"), "a # heading  --- - item");
        for (value, shown) in [
            ("# heading", "\\# heading"),
            ("- item", "\\- item"),
            ("> quote", "\\> quote"),
            ("===", "\\==="),
            ("1. item", "1\\. item"),
            ("10.0.2.11:9100", "10.0.2.11:9100"),
            ("node_exporter", "node_exporter"),
            ("_private_", "\\_private\\_"),
            ("a*b*c", "a\\*b\\*c"),
            ("[x](http://evil)", "[x\\](http://evil)"),
            ("![i](http://evil/i.png)", "![i\\](http://evil/i.png)"),
            ("map[a:b]", "map[a:b]"),
            ("<b>bold</b>", "\\<b>bold\\</b>"),
            ("a < b", "a < b"),
            ("C:\\dir", "C:\\\\dir"),
        ] {
            assert_eq!(escape_markdown(value), shown, "{value}");
        }
    }

    #[test]
    fn quotes_keep_line_breaks_and_cannot_end_early() {
        let q = quote(
            &["Host out of memory".into(), "Node memory is filling up\n  VALUE = 7.10\n\n  LABELS = map[a:b]".into()],
            8,
        );
        assert_eq!(
            q,
            "> **Host out of memory**  \n> Node memory is filling up  \n> VALUE = 7.10  \n> LABELS = map[a:b]"
        );
        let d = json!({"a": {"summary": "s", "description": "same"}, "common": {"description": "same"}});
        assert_eq!(render("{{notes a}}", &d), "> **s**  \n> same");
        assert_eq!(render("{{notes a common}}", &d), "> **s**", "what the group shares is said once");
        assert_eq!(render("{{clip \"a\\nb\\nc\" 2}}", &d), "a\nb …");
    }

    #[test]
    fn layout_helpers() {
        let d = json!({
            "labels": {"alertname": "KubePodCrashLooping", "namespace": "payments", "pod": "api-1", "container": "api",
                       "reason": "CrashLoopBackOff", "job": "kube-state-metrics", "instance": "10.0.0.1:8080", "severity": "critical"},
            "annotations": {"description": "waiting (reason: CrashLoopBackOff)"},
            "target": {"labels": {"hide": [], "show": []}},
            "keys": ["pod", "container"],
            "now": "2026-11-23T08:17:15Z", "today": "2026-11-23T07:53:00Z", "monday": "2026-11-16T07:53:00Z", "sunday": "2026-11-22T07:53:00Z",
        });
        assert_eq!(render("{{where labels}}", &d), "payments/api-1");
        assert_eq!(render("{{kv (shown labels)}}", &d), "reason=CrashLoopBackOff");
        assert_eq!(render("{{kv (shown labels annotations)}}", &d), "", "the description names the reason");
        assert_eq!(render("{{values labels keys}}", &d), "api-1 · api");
        assert_eq!(
            render(
                "{{icon \"firing\" labels.severity}}{{icon \"firing\" \"warning\"}}{{icon \"resolved\" \"critical\"}}",
                &d
            ),
            "🔴🟠✅"
        );
        assert_eq!(
            render("{{clock today}}|{{clock sunday}}|{{clock monday}}|{{zone}}", &d),
            "15:53|Sun 15:53|Nov 16 15:53|UTC+8"
        );
        assert_eq!(render("x{{br}}", &d), "x  ");
        // `since` leaves a marker the sender fills in, even through `md`.
        let at_send = |t: &str| send_time::resolve(&render(t, &d), 1_795_421_835_000).into_owned();
        assert_eq!(at_send("{{since today}}|{{md (since today)}}|{{duration today}}"), "24m|24m|24m");
        assert_eq!(zone_name(Utc::now(), chrono_tz::UTC), "UTC");
        assert_eq!(zone_name(Utc::now(), chrono_tz::Asia::Kolkata), "UTC+5:30");
    }

    #[test]
    fn silence_link_matches_every_label() {
        let d = json!({"externalURL": "http://am:9093/", "labels": {"alertname": "Disk\"Full", "instance": "n1"}});
        assert_eq!(
            render("{{silence_url labels}}", &d),
            "http://am:9093/#/silences/new?filter=%7Balertname%3D%22Disk%5C%22Full%22%2Cinstance%3D%22n1%22%7D"
        );
    }

    #[test]
    fn helper_misuse_is_an_error_not_empty_output() {
        assert!(hb().render_template("{{kv \"x\"}}", &json!({})).is_err());
        assert!(hb().render_template("{{truncate \"x\"}}", &json!({})).is_err());
    }
}
