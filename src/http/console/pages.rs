//! The console's pages, drawn on the server (no script): targets, push records, one record, the preview
//! form and the log-in form. Every value from an alert or a user is escaped.

use serde_json::json;

use crate::config::ConsoleUser;

use super::respond::query_pairs;
use super::views::{RecordDetail, RecordView, TargetView};
use crate::store::{RecordKind, RecordState};

pub(super) fn login_page(problem: &str) -> String {
    let problem = if problem.is_empty() { String::new() } else { format!("<p class=\"bad\">{}</p>", esc(problem)) };
    page(
        "Log in",
        &format!(
            "{problem}<form method=\"post\" action=\"/console/login\" class=\"login\"><label>User <input name=\"user\" autocomplete=\"username\" required></label><label>Password <input name=\"password\" type=\"password\" autocomplete=\"current-password\" required></label><button>Log in</button></form>"
        ),
    )
}

pub(super) fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&#39;")
}

pub(super) fn page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{} · dingtalk-bridge</title><link rel=\"stylesheet\" href=\"/console/style.css\"></head><body><header><a href=\"/console\">dingtalk-bridge</a></header><main><h1>{}</h1>{body}</main></body></html>",
        esc(title),
        esc(title)
    )
}

pub(super) fn when(ms: Option<i64>) -> String {
    ms.and_then(chrono::DateTime::from_timestamp_millis)
        .map_or_else(|| "never".to_string(), |t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
}

pub(super) fn targets_page(who: &ConsoleUser, csrf: &str, list: &[TargetView]) -> String {
    let mut rows = String::new();
    for t in list {
        let name = &t.name;
        let enabled = t.enabled;
        let state = match &t.switch {
            None if enabled => "on".to_string(),
            None => "off (configuration)".to_string(),
            Some(sw) => format!("{} (console, by {})", if enabled { "on" } else { "off" }, esc(&sw.by)),
        };
        let form = |action: &str, label: &str| {
            format!(
                "<form method=\"post\" action=\"/console/targets/{}/{action}\"><input type=\"hidden\" name=\"csrf\" value=\"{csrf}\"><button>{label}</button></form>",
                esc(name)
            )
        };
        let actions = if !who.admin {
            String::new()
        } else {
            let toggle = if enabled { form("disable", "Disable") } else { form("enable", "Enable") };
            let clear = if t.switch.is_none() { String::new() } else { form("clear", "Use configuration") };
            format!("{toggle}{clear}{}", form("test", "Send test"))
        };
        let failure = match &t.last_failure {
            None => "none".to_string(),
            Some(f) => format!(
                "{} <b>{}</b>: {}<br><small>{}</small>",
                when(Some(f.at_ms)),
                esc(&f.reason),
                esc(&f.detail),
                esc(f.hint)
            ),
        };
        let budget = match (&t.rate_limit, t.budget_remaining, t.budget_used) {
            (None, ..) => "off".to_string(),
            (Some(r), Some(left), Some(used)) => {
                format!("{used} used, {left} free of {} per {}s", r.messages, json!(r.per_s))
            }
            (Some(r), ..) => format!("? free of {} per {}s", r.messages, json!(r.per_s)),
        };
        let paused = t.paused_for_s.map_or(String::new(), |p| format!("<br><b class=\"bad\">paused {p}s</b>"));
        rows.push_str(&format!(
            "<tr class=\"{}\"><th>{}<br><small>{}</small></th><td data-label=\"state\">{}</td><td data-label=\"waiting\">{}</td><td data-label=\"last delivery\">{}</td><td data-label=\"last failure\">{}</td><td data-label=\"budget\">{}{paused}</td><td>{actions}</td></tr>",
            if enabled { "on" } else { "off" },
            esc(name),
            esc(&t.describe),
            esc(&state),
            t.queue_depth,
            when(t.last_delivered_ms),
            failure,
            budget,
        ));
    }
    page(
        "Targets",
        &format!(
            "<p>Logged in as {} ({}). <a href=\"/console/records\">Push records</a> · <a href=\"/console/preview\">Template preview</a></p><form method=\"post\" action=\"/console/logout\"><button>Log out</button></form><div class=\"scroll\"><table class=\"cards\"><thead><tr><th>target</th><th>state</th><th>waiting</th><th>last delivery</th><th>last failure</th><th>budget</th><th></th></tr></thead><tbody>{rows}</tbody></table></div>",
            esc(&who.name),
            if who.admin { "admin" } else { "read only" }
        ),
    )
}

pub(super) fn records_page(live: &crate::app::Live, query: &str, rows: &[RecordView], next: Option<&str>) -> String {
    let pairs = query_pairs(Some(query));
    let val = |k: &str| pairs.iter().find(|(key, _)| key == k).map(|(_, v)| esc(v)).unwrap_or_default();
    let mut targets = String::from("<option value=\"\">every target</option>");
    for name in live.config.targets.keys().chain(live.config.routes.keys()) {
        let sel = if val("target") == esc(name) { " selected" } else { "" };
        targets.push_str(&format!("<option{sel}>{}</option>", esc(name)));
    }
    let mut states = String::from("<option value=\"\">every state</option>");
    for st in RecordState::ALL.map(RecordState::as_str) {
        let sel = if val("state") == st { " selected" } else { "" };
        states.push_str(&format!("<option{sel}>{st}</option>"));
    }
    let form = format!(
        "<form method=\"get\" action=\"/console/records\" class=\"filters\"><select name=\"target\">{targets}</select><select name=\"state\">{states}</select><input name=\"alertname\" placeholder=\"alertname\" value=\"{}\"><input name=\"q\" placeholder=\"text in title or content\" value=\"{}\"><input name=\"since\" placeholder=\"since (2026-11-23T08:00:00Z)\" value=\"{}\"><input name=\"until\" placeholder=\"until\" value=\"{}\"><button>Filter</button></form>",
        val("alertname"),
        val("q"),
        val("since"),
        val("until")
    );
    let mut body = String::new();
    for RecordView { row: r, title } in rows {
        let link = if r.kind == RecordKind::Message {
            format!(
                "<a href=\"/console/records/{}\">{}</a>",
                r.id,
                esc(if title.is_empty() { "(no title)" } else { title })
            )
        } else {
            format!("<i>notification {}: no message</i>", r.id)
        };
        let st = r.state.as_str();
        let state = match (r.state, r.reason.as_deref()) {
            (RecordState::Failed | RecordState::Skipped | RecordState::Suppressed, Some(reason)) => {
                format!("{st} <small>({})</small>", esc(reason))
            }
            _ => st.to_string(),
        };
        body.push_str(&format!(
            "<tr class=\"{st}\"><td>{}</td><td>{}</td><td>{state}</td><td>{}</td><td>{link}</td></tr>",
            when(Some(r.at_ms)),
            esc(&r.target),
            esc(&r.alertname),
        ));
    }
    if rows.is_empty() {
        body.push_str("<tr><td colspan=\"5\">No records match.</td></tr>");
    }
    let more = next.map_or(String::new(), |n| {
        let kept: Vec<String> = pairs
            .iter()
            .filter(|(k, _)| k != "before")
            .map(|(k, v)| format!("{}={}", esc(k), esc(&urlencode(v))))
            .chain([format!("before={}", esc(&urlencode(n)))])
            .collect();
        format!("<p><a href=\"/console/records?{}\">Older records</a></p>", kept.join("&amp;"))
    });
    page(
        "Push records",
        &format!(
            "<p><a href=\"/console\">Targets</a></p>{form}<div class=\"scroll\"><table><thead><tr><th>time</th><th>target</th><th>state</th><th>alertname</th><th>title</th></tr></thead><tbody>{body}</tbody></table></div>{more}"
        ),
    )
}

pub(super) fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

pub(super) fn record_page(d: &RecordDetail) -> String {
    let r = &d.row;
    let mut attempts = String::new();
    for a in &d.attempts {
        attempts.push_str(&format!(
            "<tr><td>{}</td><td>{} ms</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            when(Some(a.at_ms)),
            a.duration_ms,
            a.http_status.map_or("no answer".to_string(), |s| format!("HTTP {s}")),
            esc(a.outcome.as_str()),
            esc(a.reason.map_or("", |r| r.as_str())),
            esc(&a.detail),
        ));
    }
    if attempts.is_empty() {
        attempts.push_str("<tr><td colspan=\"6\">No attempt yet.</td></tr>");
    }
    let digest = match r.carried_by {
        Some(d) => format!("<p>Merged into digest <a href=\"/console/records/{d}\">{d}</a>.</p>"),
        None => String::new(),
    };
    let carried: Vec<String> =
        d.carried.iter().map(|id| format!("<a href=\"/console/records/{id}\">{id}</a>")).collect();
    let carried =
        if carried.is_empty() { String::new() } else { format!("<p>This digest carried: {}.</p>", carried.join(", ")) };
    let failure = match r.reason.as_deref() {
        Some(reason) => format!(
            "<p class=\"bad\"><b>{}</b>: {}</p><p><small>{}</small></p>",
            esc(reason),
            esc(r.last_error.as_deref().unwrap_or_default()),
            esc(d.hint)
        ),
        None => String::new(),
    };
    let body = serde_json::to_string_pretty(&d.body).unwrap_or_default();
    page(
        &format!("Push record {}", r.id),
        &format!(
            "<p><a href=\"/console/records\">Push records</a></p><dl><dt>target</dt><dd>{}</dd><dt>state</dt><dd>{}</dd><dt>created</dt><dd>{}</dd><dt>title</dt><dd>{}</dd><dt>notification</dt><dd>{} · {} · group {}</dd></dl>{failure}{digest}{carried}<h2>Attempts</h2><div class=\"scroll\"><table><thead><tr><th>time</th><th>took</th><th>status</th><th>outcome</th><th>reason</th><th>answer</th></tr></thead><tbody>{attempts}</tbody></table></div><h2>Body sent</h2><pre>{}</pre>",
            esc(&r.target),
            esc(r.state.as_str()),
            when(Some(r.at_ms)),
            esc(&d.title),
            esc(&r.alertname),
            esc(&r.status),
            esc(&r.group_key),
            esc(&body),
        ),
    )
}

/// The preview form, with the target, sample and payload chosen so far.
pub(super) fn preview_form(live: &crate::app::Live, target: &str, sample: &str, payload: &str) -> String {
    let mut targets = String::new();
    for name in live.config.targets.keys() {
        let sel = if name == target { " selected" } else { "" };
        targets.push_str(&format!("<option{sel}>{}</option>", esc(name)));
    }
    let mut samples = String::from("<option value=\"\">a sample</option>");
    for s in crate::render::samples::corpus() {
        let sel = if s.name == sample { " selected" } else { "" };
        samples.push_str(&format!("<option{sel}>{}</option>", esc(&s.name)));
    }
    page(
        "Template preview",
        &format!(
            "<p><a href=\"/console\">Targets</a> · <a href=\"/console/records\">Push records</a></p><form method=\"post\" action=\"/console/preview\" class=\"filters\"><select name=\"target\">{targets}</select><select name=\"sample\">{samples}</select><textarea name=\"payload\" rows=\"6\" cols=\"60\" placeholder=\"or paste an Alertmanager payload (JSON)\">{}</textarea><button>Preview</button></form><p><small>Nothing is sent. The page shows the messages as the phone draws them, their sizes against the limit, the keyword and whom they ring.</small></p>",
            esc(payload)
        ),
    )
}
