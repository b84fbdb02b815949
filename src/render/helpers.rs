//! Handlebars helpers a template author expects: markdown escaping, times in the configured time zone,
//! durations, string and list helpers, label maps, and Alertmanager's silence link.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use handlebars::{Context, Handlebars, Helper, HelperDef, RenderContext, RenderError, RenderErrorReason, ScopedJson};
use serde_json::{Map, Value};

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

/// `1d 2h`, `2h 5m`, `5m 3s`, `12s`: two units at most, readable at a glance.
pub fn human_duration(secs: i64) -> String {
    let secs = secs.max(0);
    let (d, h, m, s) = (secs / 86400, secs % 86400 / 3600, secs % 3600 / 60, secs % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m {s}s"),
        (0, _, _) => format!("{h}h {m}m"),
        _ => format!("{d}d {h}h"),
    }
}

/// Escapes the characters DingTalk's markdown would interpret, so label values like `node_exporter` or
/// `a*b` show as written. Line breaks and other control characters become spaces: a value is one line, and
/// cannot start a heading, a rule, a list item or a quote of its own.
pub fn escape_markdown(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}') {
            out.push(' ');
            continue;
        }
        if matches!(c, '\\' | '*' | '_' | '`' | '[' | ']' | '#' | '<' | '>' | '|' | '~') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

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

/// Alertmanager's "new silence" page prefilled with matchers for every label.
pub fn silence_url(external_url: &str, labels: &Map<String, Value>) -> String {
    // {k="v",...} with `\` and `"` escaped in values, percent-encoded as it is written.
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
    // Only under an http(s) Alertmanager address: a relative link would lead nowhere.
    let Some(base) = link_url(external_url) else { return String::new() };
    let base = base.trim_end_matches('/');
    let mut out = String::with_capacity(base.len() + 64 + 48 * labels.len());
    out.push_str(base);
    out.push_str("/#/silences/new?filter=");
    push_encoded(&mut out, "{");
    for (i, (k, v)) in labels.iter().enumerate() {
        if i > 0 {
            push_encoded(&mut out, ",");
        }
        push_encoded(&mut out, k);
        push_encoded(&mut out, "=\"");
        push_encoded(&mut out, &text(v).replace('\\', "\\\\").replace('"', "\\\""));
        push_encoded(&mut out, "\"");
    }
    push_encoded(&mut out, "}");
    out
}

pub fn register_all(hb: &mut Handlebars<'static>, tz: Tz) {
    register(hb, "md", |p, _| Ok(Value::String(escape_markdown(&text(arg(p, 0, "text")?)))));
    register(hb, "url", |p, _| Ok(Value::String(link_url(&text(arg(p, 0, "URL")?)).unwrap_or_default())));
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
    register(hb, "since", |p, _| {
        let Some(t) = parse_time(arg(p, 0, "timestamp")?) else { return Ok(Value::String("-".into())) };
        Ok(Value::String(human_duration((Utc::now() - t).num_seconds())))
    });
    register(hb, "duration", |p, _| {
        let from = parse_time(arg(p, 0, "start")?);
        let to = match p.get(1) {
            Some(v) => parse_time(v),
            None => Some(Utc::now()),
        };
        Ok(Value::String(match (from, to) {
            (Some(a), Some(b)) => human_duration((b - a).num_seconds()),
            _ => "-".to_string(),
        }))
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
        assert_eq!(render("{{md s}}", &d), "node\\_exporter \\*down\\*");
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
        assert_eq!(human_duration(5), "5s");
        assert_eq!(human_duration(65), "1m 5s");
        assert_eq!(human_duration(3 * 3600 + 120), "3h 2m");
        assert_eq!(human_duration(2 * 86400 + 3600), "2d 1h");
        assert_eq!(human_duration(-3), "0s");
    }

    #[test]
    fn links_are_http_only_and_cannot_break_out() {
        assert_eq!(
            link_url(" https://runbooks.example.com/a_b?x=1 ").as_deref(),
            Some("https://runbooks.example.com/a_b?x=1")
        );
        // The example does not even parse (its host is `ok)`): no link at all.
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
        assert_eq!(escape_markdown("a\n# heading\r\n---\n- item"), "a \\# heading  --- - item");
        assert_eq!(escape_markdown("node_exporter"), "node\\_exporter");
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
