//! What the console and its API do: switch a target, list targets and push records, show one record,
//! send a test message, preview a payload. Every failure is a [`ConsoleError`].

use std::sync::Arc;

use http_body_util::{BodyExt, Limited};
use hyper::Request;
use hyper::body::Incoming;
use serde_json::{Value, json};
use tracing::info;

use super::error::ConsoleError;
use super::pages::preview_form;
use super::respond::{MAX_BODY, query_pairs};
use super::session::csrf_token;
use super::views::{FailureView, RateView, RecordDetail, RecordView, SwitchView, TargetView};
use crate::app::App;
use crate::clock::now_ms;
use crate::config::ConsoleUser;
use crate::store::{RecordKind, RecordState, Switch};

/// Switches a target: `enable`, `disable`, or `clear` (its configuration decides again). Admins only,
/// with the user's CSRF token (a form field `csrf` from a page, or the header `x-csrf-token`), and from
/// this origin if the browser names one.
pub(super) async fn change(
    app: &Arc<App>,
    who: &ConsoleUser,
    req: Request<Incoming>,
    name: &str,
    action: &str,
    form: bool,
) -> Result<String, ConsoleError> {
    let host = req.headers().get(hyper::header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    if let Some(origin) = req.headers().get(hyper::header::ORIGIN).and_then(|v| v.to_str().ok())
        && origin.split_once("://").map(|(_, h)| h) != Some(host.as_str())
    {
        return Err(ConsoleError::Forbidden("cross-origin request refused"));
    }
    let header_token = req.headers().get("x-csrf-token").and_then(|v| v.to_str().ok()).map(str::to_string);
    let body = Limited::new(req.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|_| ConsoleError::TooLarge(format!("a console request holds at most {MAX_BODY} bytes")))?
        .to_bytes();
    let form_token = form
        .then(|| String::from_utf8_lossy(&body).split('&').find_map(|kv| kv.strip_prefix("csrf=").map(str::to_string)))
        .flatten();
    let expected = csrf_token(app, who);
    let given = header_token.or(form_token).unwrap_or_default();
    if !crate::http::auth::constant_time_eq(given.as_bytes(), expected.as_bytes()) {
        return Err(ConsoleError::Forbidden("missing or wrong CSRF token (x-csrf-token, from GET /api/v1/session)"));
    }
    if !who.admin {
        return Err(ConsoleError::Forbidden("read-only user: switching targets needs role admin"));
    }
    let live = app.live();
    if !live.config.targets.contains_key(name) {
        return Err(ConsoleError::NotFound(format!("no target {name:?}")));
    }
    let Some(action) = Action::parse(action) else {
        return Err(ConsoleError::NotFound("actions: enable, disable, clear, test".into()));
    };
    let switch = match action {
        Action::Test => return test_send(app, who, name).await,
        Action::Enable | Action::Disable => {
            Some(Switch { enabled: action == Action::Enable, by: who.name.clone(), at_ms: now_ms() })
        }
        Action::Clear => None,
    };
    let dropped = app
        .store
        .set_switch(name, switch)
        .await
        .map_err(|e| ConsoleError::Unavailable(format!("cannot record the switch: {e}")))?;
    info!(user = %who.name, target = name, action = action.as_str(), dropped_waiting = dropped, "console: target switched");
    app.wake(name);
    Ok(match action {
        Action::Disable => format!("disabled; {dropped} waiting message(s) given up as disabled"),
        Action::Enable => "enabled".into(),
        _ => "switch cleared: the configuration decides".into(),
    })
}

/// What an admin may do to a target (the last segment of its URL).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Enable,
    Disable,
    /// The configuration's `enabled` decides again.
    Clear,
    /// A clearly marked test message through the real path.
    Test,
}

impl Action {
    const ALL: [Action; 4] = [Action::Enable, Action::Disable, Action::Clear, Action::Test];

    fn as_str(self) -> &'static str {
        match self {
            Action::Enable => "enable",
            Action::Disable => "disable",
            Action::Clear => "clear",
            Action::Test => "test",
        }
    }

    fn parse(segment: &str) -> Option<Action> {
        Action::ALL.into_iter().find(|a| a.as_str() == segment)
    }
}

/// Every target as the console and the API show it.
pub(super) async fn targets(app: &App) -> Result<Vec<TargetView>, ConsoleError> {
    let live = app.live();
    let unavailable = |e: crate::store::StoreError| ConsoleError::Unavailable(e.to_string());
    let queues = app.store.queue_stats().await.map_err(unavailable)?;
    let last = app.store.last_outcomes(live.config.targets.keys().cloned().collect()).await.map_err(unavailable)?;
    let now = now_ms();
    Ok(live
        .config
        .targets
        .values()
        .map(|t| {
            let q = queues.iter().find(|q| q.target == t.name);
            let l = last.get(&t.name).cloned().unwrap_or_default();
            let budget = app.budget_of(t);
            let remaining = budget.as_ref().map(|b| b.available_within(std::time::Duration::ZERO));
            let limited = !t.rate_limit.is_unlimited();
            TargetView {
                name: t.name.clone(),
                kind: t.channel.name(),
                describe: t.channel.describe(),
                enabled: crate::deliver::enabled(&app.store, t),
                configured_enabled: t.enabled,
                switch: app.store.switch(&t.name).map(|s| SwitchView { enabled: s.enabled, by: s.by, at_ms: s.at_ms }),
                queue_depth: q.map_or(0, |q| q.depth),
                oldest_waiting_s: q.map(|q| (now - q.oldest_created_ms).max(0) / 1000),
                last_delivered_ms: l.delivered_ms,
                last_failure: l.failed.map(|(at_ms, reason, detail)| FailureView {
                    at_ms,
                    hint: hint(&reason),
                    reason,
                    detail,
                }),
                rate_limit: limited
                    .then_some(RateView { messages: t.rate_limit.messages, per_s: t.rate_limit.per.as_secs_f64() }),
                budget_remaining: remaining.filter(|r| *r != usize::MAX),
                budget_used: remaining
                    .filter(|r| *r != usize::MAX && limited)
                    .map(|r| (t.rate_limit.messages as usize).saturating_sub(r)),
                paused_for_s: budget.and_then(|b| b.paused_for()).map(|d| d.as_secs()),
            }
        })
        .collect())
}

/// The hint for a stored reason label.
pub(super) fn hint(reason: &str) -> &'static str {
    crate::channel::Reason::parse(reason).map_or_else(
        || match reason {
            "expired" => crate::deliver::GiveUp::Expired.hint(),
            "disabled" => crate::deliver::GiveUp::Disabled.hint(),
            _ => "",
        },
        |r| r.hint(),
    )
}

/// A time given as an RFC 3339 timestamp or milliseconds since the epoch.
pub(super) fn time_ms(v: &str) -> Result<i64, ConsoleError> {
    v.parse::<i64>()
        .ok()
        .or_else(|| chrono::DateTime::parse_from_rfc3339(v).ok().map(|t| t.timestamp_millis()))
        .or_else(|| {
            chrono::NaiveDateTime::parse_from_str(v, "%Y-%m-%dT%H:%M").ok().map(|t| t.and_utc().timestamp_millis())
        })
        .ok_or_else(|| {
            ConsoleError::BadRequest(format!("{v:?}: a time is RFC 3339 (2026-11-23T08:00:00Z) or milliseconds"))
        })
}

/// What a reader sees first of a body: its title, or its first line.
pub(super) fn title_of(body: Option<&str>) -> String {
    let Some(shown) = body.and_then(crate::channel::show_any) else { return String::new() };
    if !shown.title.is_empty() {
        return shown.title;
    }
    shown.text.lines().map(|l| l.trim_start_matches('#').trim()).find(|l| !l.is_empty()).unwrap_or("").to_string()
}

/// A page of push records for the query's filters, and the cursor of the next page.
pub(super) async fn records(app: &App, query: Option<&str>) -> Result<(Vec<RecordView>, Option<String>), ConsoleError> {
    let mut f = crate::store::RecordFilter { limit: 50, ..Default::default() };
    let bad = ConsoleError::BadRequest;
    for (k, v) in query_pairs(query) {
        if v.is_empty() {
            continue;
        }
        match k.as_str() {
            "target" => f.target = Some(v),
            "state" => {
                let Some(state) = RecordState::parse(&v) else {
                    return Err(bad(format!("state {v:?}: pending, delivered, failed, merged, skipped or suppressed")));
                };
                f.state = Some(state)
            }
            "since" => f.since_ms = Some(time_ms(&v)?),
            "until" => f.until_ms = Some(time_ms(&v)?),
            "alertname" => f.alertname = Some(v),
            "q" => f.text = Some(v),
            "limit" => f.limit = v.parse().map_err(|_| bad(format!("limit {v:?}: a number")))?,
            "before" => {
                let mut parts = v.splitn(3, ':');
                let cursor = (|| {
                    Some((parts.next()?.parse().ok()?, RecordKind::parse(parts.next()?)?, parts.next()?.parse().ok()?))
                })();
                f.before = Some(cursor.ok_or_else(|| bad("before: the next cursor of a previous page".into()))?);
            }
            _ => {
                return Err(bad(format!(
                    "unknown filter {k:?}: target, state, since, until, alertname, q, before, limit"
                )));
            }
        }
    }
    let limit = f.limit.clamp(1, 500);
    let rows = app.store.record_page(f).await.map_err(|e| ConsoleError::Unavailable(e.to_string()))?;
    let next = (rows.len() == limit)
        .then(|| rows.last().map(|r| format!("{}:{}:{}", r.at_ms, r.kind.as_str(), r.id)))
        .flatten();
    let views = rows.into_iter().map(|row| RecordView { title: title_of(row.body.as_deref()), row }).collect();
    Ok((views, next))
}

/// One message's record: the exact body, every attempt, its notification and its digest.
pub(super) async fn record(app: &App, id: &str) -> Result<RecordDetail, ConsoleError> {
    let id: i64 = id.parse().map_err(|_| ConsoleError::NotFound(format!("no record {id:?}")))?;
    let found = app.store.record(id).await.map_err(|e| ConsoleError::Unavailable(e.to_string()))?;
    let Some((row, attempts, carried)) = found else {
        return Err(ConsoleError::NotFound(format!("no record {id} (records are kept for storage.retention)")));
    };
    // Bodies hold no credential (DingTalk signs in the URL, Feishu at send time, the app's token is a
    // header); they are shown as stored.
    let body = row.body.as_deref().map_or(Value::Null, |b| serde_json::from_str(b).unwrap_or(json!(b)));
    let hint = row.reason.as_deref().map_or("", hint);
    Ok(RecordDetail { title: title_of(row.body.as_deref()), body, attempts, carried, hint, row })
}

/// Sends a clearly marked test message to `name` through the real path: recorded, counted, within the
/// budget, skipped if the target is disabled.
pub(super) async fn test_send(app: &Arc<App>, who: &ConsoleUser, name: &str) -> Result<String, ConsoleError> {
    let now = chrono::Utc::now();
    let id = uuid::Uuid::new_v4().to_string();
    let payload = json!({
        "version": "4",
        "groupKey": format!("{{}}:{{alertname=\"BridgeTestMessage\"}}:{id}"),
        "status": "firing",
        "receiver": "console",
        "groupLabels": {"alertname": "BridgeTestMessage"},
        "commonLabels": {"alertname": "BridgeTestMessage", "severity": "info"},
        "commonAnnotations": {},
        "externalURL": "",
        "truncatedAlerts": 0,
        "alerts": [{
            "status": "firing",
            "labels": {"alertname": "BridgeTestMessage", "severity": "info", "sent_by": who.name},
            "annotations": {
                "summary": "TEST message from the dingtalk-bridge console: no action needed",
                "description": format!("Sent by {} to check the target {name} end to end.", who.name),
            },
            "startsAt": now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "",
            "fingerprint": id,
        }],
    });
    let decoded = crate::decode::decode(payload.to_string().as_bytes())
        .map_err(|e| ConsoleError::Internal(format!("the test payload: {e}")))?;
    let answers = crate::http::webhook::inject(app, name, decoded).await?;
    let answer = answers.first().cloned().unwrap_or_default();
    info!(user = %who.name, target = name, status = answer["status"].as_str().unwrap_or(""), "console: test message sent");
    Ok(match answer["status"].as_str() {
        Some("accepted") => format!("test message queued as notification {}", answer["notification"]),
        Some("skipped") => format!("skipped: {}", answer["reason"].as_str().unwrap_or("")),
        other => other.unwrap_or("not accepted").to_string(),
    })
}

/// Renders a sample or a pasted payload for a target, sending nothing: JSON for the API, a page for the
/// console (`page`).
pub(super) async fn preview(app: &App, req: Request<Incoming>, form: bool) -> Result<Preview, ConsoleError> {
    use crate::render::preview as pv;
    let body = Limited::new(req.into_body(), 1024 * 1024)
        .collect()
        .await
        .map_err(|_| ConsoleError::TooLarge("a preview payload holds at most 1 MiB".to_string()))?
        .to_bytes();
    let (target, sample, payload) = if form {
        let pairs = query_pairs(Some(&String::from_utf8_lossy(&body)));
        let get = |k: &str| pairs.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone()).unwrap_or_default();
        (get("target"), get("sample"), get("payload"))
    } else {
        let v: Value = serde_json::from_slice(&body)
            .map_err(|e| ConsoleError::BadRequest(format!("body: {{\"target\", \"sample\" or \"payload\"}}: {e}")))?;
        let s = |k: &str| match &v[k] {
            Value::String(x) => x.clone(),
            Value::Null => String::new(),
            other => other.to_string(),
        };
        (s("target"), s("sample"), s("payload"))
    };
    let live = app.live();
    let Some(t) = live.config.targets.get(&target) else {
        return Err(ConsoleError::NotFound(format!("no target {target:?}")));
    };
    let (label, bytes, at) = if !payload.trim().is_empty() {
        ("pasted payload".to_string(), payload.clone().into_bytes(), chrono::Utc::now())
    } else {
        let all = crate::render::samples::corpus();
        let name = if sample.is_empty() { crate::render::samples::PREVIEW_SAMPLES[0] } else { sample.as_str() };
        let Some(s) = all.iter().find(|s| s.name == name) else {
            return Err(ConsoleError::NotFound(format!("no sample {name:?}")));
        };
        let at =
            chrono::DateTime::parse_from_rfc3339(crate::render::samples::NOW).map(|t| t.to_utc()).unwrap_or_default();
        (s.name.clone(), s.payload.to_string().into_bytes(), at)
    };
    let decoded = crate::decode::decode(&bytes)
        .map_err(|e| ConsoleError::BadRequest(format!("the payload would be answered 400: {e}")))?;
    // Its own renderer, set to the payload's time (the samples were made for a fixed one).
    let renderer =
        crate::app::load_templates(&live.config).map_err(|e| ConsoleError::Internal(format!("templates: {e}")))?.at(at);
    let section = pv::section(&renderer, t, label, &decoded, at);
    if form {
        let full = pv::page_for(&live.config, t, std::slice::from_ref(&section));
        let styled = full.replace(
            &format!("<style>{}</style>", pv::STYLE),
            "<link rel=\"stylesheet\" href=\"/console/preview.css\">",
        );
        let controls = preview_form(&live, &target, &sample, &payload);
        let form_html = controls.split("<main>").nth(1).and_then(|m| m.split("</main>").next()).unwrap_or("");
        let page = styled.replacen("<main>\n", &format!("<main>\n<div class=\"console\">{form_html}</div>\n"), 1);
        return Ok(Preview::Page(page));
    }
    let limit = t
        .channel
        .max_bytes()
        .map_or(live.config.delivery.max_message_bytes, |m| m.min(live.config.delivery.max_message_bytes));
    let messages: Vec<Value> = section
        .messages
        .iter()
        .map(|m| {
            json!({
                "title": m.title, "text": m.text, "bytes": m.bytes, "limit": limit, "lines": m.lines(),
                "rings": m.mentions, "to": m.to,
                "keyword_present": t.keyword.as_ref().map(|k| m.text.contains(k.as_str())),
                "body": serde_json::from_str::<Value>(&m.body).unwrap_or_default(),
            })
        })
        .collect();
    Ok(Preview::Api(json!({"target": target, "payload": section.name, "notes": section.notes, "messages": messages})))
}

/// A preview: the page the form shows, or the API's answer.
pub(super) enum Preview {
    Page(String),
    Api(Value),
}
