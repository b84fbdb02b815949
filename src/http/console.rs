//! The operations console (`/console`, server-rendered HTML without script) and its JSON API
//! (`/api/v1/`). Both need a console user (basic auth, `console.users`); changes need the admin role and a
//! CSRF token, and are logged with who made them. No page or answer shows a credential: targets are
//! described by their redacted `describe()`.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderValue, LOCATION};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{Value, json};
use tracing::info;

use super::error::{Resp, json_response};
use crate::app::App;
use crate::clock::now_ms;
use crate::config::ConsoleUser;
use crate::store::Switch;

const CSS: &str = include_str!("console.css");
/// A form or JSON body the console takes is small.
const MAX_BODY: usize = 16 * 1024;

/// What the console answers with: a page, JSON, or a redirect back to a page.
fn secured(mut resp: Resp) -> Resp {
    let h = resp.headers_mut();
    let set = |h: &mut hyper::HeaderMap, k: &'static str, v: &'static str| {
        h.insert(k, HeaderValue::from_static(v));
    };
    set(
        h,
        "content-security-policy",
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    );
    set(h, "x-content-type-options", "nosniff");
    set(h, "x-frame-options", "DENY");
    // same-origin, not no-referrer: with no-referrer a browser sends `Origin: null` on its own form posts.
    set(h, "referrer-policy", "same-origin");
    set(h, "cache-control", "no-store");
    resp
}

fn html(status: StatusCode, body: String) -> Resp {
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    secured(resp)
}

fn json(status: StatusCode, body: &Value) -> Resp {
    secured(json_response(status, body))
}

fn error(status: StatusCode, message: &str) -> Resp {
    json(status, &json!({"error": message}))
}

fn unauthorized() -> Resp {
    let mut resp = error(StatusCode::UNAUTHORIZED, "log in with a console user (console.users)");
    resp.headers_mut().insert(
        "www-authenticate",
        HeaderValue::from_static("Basic realm=\"dingtalk-bridge console\", charset=\"UTF-8\""),
    );
    resp
}

/// The console user the request's basic credentials name, checked against every user in constant time.
fn user<'a>(users: &'a [ConsoleUser], req: &Request<Incoming>) -> Option<&'a ConsoleUser> {
    use base64::Engine;
    let header = req.headers().get(hyper::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, value) = header.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD.decode(value.trim()).ok()?;
    let mut found = None;
    for u in users {
        let expected = format!("{}:{}", u.name, u.password.expose());
        if super::auth::constant_time_eq(&decoded, expected.as_bytes()) {
            found = Some(u);
        }
    }
    found
}

/// How long a console session lasts.
const SESSION_MS: i64 = 12 * 3600 * 1000;

/// A session cookie's value: the user, when it expires, and an HMAC of both and the user's password under
/// the store's console key. The key survives restarts, so sessions do; changing a user's password (and
/// reloading) ends that user's sessions.
fn session_value(app: &App, user: &ConsoleUser, expires_ms: i64) -> String {
    let sig = signed(app, &format!("session\n{}\n{expires_ms}\n{}", user.name, user.password.expose()));
    // The name in hex: any character may be in a name, and '.' separates the parts.
    let name = hex(user.name.as_bytes());
    format!("{name}.{expires_ms}.{sig}")
}

/// The user a valid, unexpired session cookie names.
fn session_user<'a>(app: &App, users: &'a [ConsoleUser], req: &Request<Incoming>) -> Option<&'a ConsoleUser> {
    let cookies = req.headers().get_all(hyper::header::COOKIE);
    let value = cookies
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| c.trim().strip_prefix("dtb_session="))?;
    let mut parts = value.splitn(3, '.');
    let (name, expires) = (parts.next()?, parts.next()?.parse::<i64>().ok()?);
    let user = users.iter().find(|u| hex(u.name.as_bytes()) == name)?;
    let valid = expires > now_ms()
        && super::auth::constant_time_eq(value.as_bytes(), session_value(app, user, expires).as_bytes());
    valid.then_some(user)
}

fn login_page(problem: &str) -> String {
    let problem = if problem.is_empty() { String::new() } else { format!("<p class=\"bad\">{}</p>", esc(problem)) };
    page(
        "Log in",
        &format!(
            "{problem}<form method=\"post\" action=\"/console/login\" class=\"login\"><label>User <input name=\"user\" autocomplete=\"username\" required></label><label>Password <input name=\"password\" type=\"password\" autocomplete=\"current-password\" required></label><button>Log in</button></form>"
        ),
    )
}

/// Checks a login form against `console.users` and sets the session cookie.
async fn login(app: &App, users: &[ConsoleUser], req: Request<Incoming>) -> Resp {
    let Ok(body) = Limited::new(req.into_body(), MAX_BODY).collect().await.map(|b| b.to_bytes()) else {
        return html(StatusCode::PAYLOAD_TOO_LARGE, login_page("too long"));
    };
    let pairs = query_pairs(Some(&String::from_utf8_lossy(&body)));
    let get = |k: &str| pairs.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone()).unwrap_or_default();
    let (name, password) = (get("user"), get("password"));
    if !app.login_allowed(&name) {
        tracing::warn!(user = %name, "console: log-in refused after too many failures");
        return html(
            StatusCode::TOO_MANY_REQUESTS,
            login_page("too many failed log-ins for this user: wait a minute and try again"),
        );
    }
    let mut found = None;
    for u in users {
        let ok = super::auth::constant_time_eq(u.name.as_bytes(), name.as_bytes())
            & super::auth::constant_time_eq(u.password.expose().as_bytes(), password.as_bytes());
        if ok {
            found = Some(u);
        }
    }
    let Some(user) = found else {
        app.login_failed(&name);
        tracing::warn!(user = %name, "console: failed login");
        return html(StatusCode::UNAUTHORIZED, login_page("wrong user or password"));
    };
    info!(user = %user.name, "console: logged in");
    let cookie = format!(
        "dtb_session={}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}",
        session_value(app, user, now_ms() + SESSION_MS),
        SESSION_MS / 1000
    );
    let mut resp = html(StatusCode::SEE_OTHER, String::new());
    resp.headers_mut().insert(LOCATION, HeaderValue::from_static("/console"));
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        resp.headers_mut().insert(hyper::header::SET_COOKIE, v);
    }
    resp
}

/// The CSRF token of a user: an HMAC of their name under the process's random key, so it needs no state
/// and dies with the process.
fn csrf_token(app: &App, user: &ConsoleUser) -> String {
    signed(app, &format!("csrf\n{}\n{}", user.name, user.password.expose()))
}

/// An HMAC-SHA256 of `data` under the console key, in hex.
fn signed(app: &App, data: &str) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&app.console_key()).expect("any key length");
    mac.update(data.as_bytes());
    hex(&mac.finalize().into_bytes())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `/console...` and `/api/v1/...`.
pub async fn handle(app: &Arc<App>, path: &str, req: Request<Incoming>) -> Resp {
    let live = app.live();
    let users = &live.config.console;
    if users.is_empty() {
        return error(StatusCode::NOT_FOUND, "the console is off: configure console.users to turn it on");
    }
    if path == "/console/style.css" {
        let mut resp = Response::new(Full::new(Bytes::from_static(CSS.as_bytes())));
        resp.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/css; charset=utf-8"));
        return secured(resp);
    }
    if path == "/console/login" {
        return match *req.method() {
            Method::GET => html(StatusCode::OK, login_page("")),
            Method::POST => login(app, users, req).await,
            _ => error(StatusCode::METHOD_NOT_ALLOWED, "GET or POST"),
        };
    }
    let who = user(users, &req).or_else(|| session_user(app, users, &req)).cloned();
    let Some(who) = who else {
        // A browser goes to the login page; an API client is told to authenticate.
        if path.starts_with("/console") && req.method() == Method::GET {
            let mut resp = html(StatusCode::SEE_OTHER, String::new());
            resp.headers_mut().insert(LOCATION, HeaderValue::from_static("/console/login"));
            return resp;
        }
        return unauthorized();
    };
    if path == "/console/logout" && req.method() == Method::POST {
        let mut resp = html(StatusCode::SEE_OTHER, String::new());
        resp.headers_mut().insert(LOCATION, HeaderValue::from_static("/console/login"));
        resp.headers_mut().insert(
            hyper::header::SET_COOKIE,
            HeaderValue::from_static("dtb_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
        );
        info!(user = %who.name, "console: logged out");
        return resp;
    }
    let method = req.method().clone();
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
    match (method, segments.as_slice()) {
        (Method::GET, ["api", "v1", "session"]) => json(
            StatusCode::OK,
            &json!({"user": who.name, "role": if who.admin { "admin" } else { "read" }, "csrf": csrf_token(app, &who)}),
        ),
        (Method::GET, ["api", "v1", "targets"]) => match targets(app).await {
            Ok(list) => json(StatusCode::OK, &json!({"targets": list})),
            Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, &e),
        },
        (Method::POST, ["api", "v1", "targets", name, action]) => {
            let (name, action) = (name.to_string(), action.to_string());
            match change(app, &who, req, &name, &action, false).await {
                Ok(message) => json(StatusCode::OK, &json!({"target": name, "action": action, "result": message})),
                Err((status, message)) => error(status, &message),
            }
        }
        (Method::GET, ["api", "v1", "records"]) => match records(app, req.uri().query()).await {
            Ok((rows, next)) => json(StatusCode::OK, &json!({"records": rows, "next": next})),
            Err((status, e)) => error(status, &e),
        },
        (Method::GET, ["api", "v1", "records", id]) => match record(app, id).await {
            Ok(r) => json(StatusCode::OK, &r),
            Err((status, e)) => error(status, &e),
        },
        (Method::GET, ["console", "records"]) => match records(app, req.uri().query()).await {
            Ok((rows, next)) => {
                let query = req.uri().query().unwrap_or("").to_string();
                html(StatusCode::OK, records_page(&app.live(), &query, &rows, next.as_deref()))
            }
            Err((status, e)) => html(status, page("Push records", &format!("<p class=\"bad\">{}</p>", esc(&e)))),
        },
        (Method::GET, ["console", "records", id]) => match record(app, id).await {
            Ok(r) => html(StatusCode::OK, record_page(&r)),
            Err((status, e)) => html(status, page("Push record", &format!("<p class=\"bad\">{}</p>", esc(&e)))),
        },
        (Method::POST, ["api", "v1", "preview"]) => match preview(app, req, false).await {
            Ok(v) => json(StatusCode::OK, &v),
            Err((status, e)) => error(status, &e),
        },
        (Method::GET, ["console", "preview"]) => html(StatusCode::OK, preview_form(&app.live(), "", "", "")),
        (Method::POST, ["console", "preview"]) => match preview(app, req, true).await {
            Ok(v) => html(StatusCode::OK, v["page"].as_str().unwrap_or_default().to_string()),
            Err((status, e)) => html(
                status,
                page(
                    "Preview",
                    &format!("<p class=\"bad\">{}</p><p><a href=\"/console/preview\">Back</a></p>", esc(&e)),
                ),
            ),
        },
        (Method::GET, ["console", "preview.css"]) => {
            let mut resp = Response::new(Full::new(Bytes::from_static(crate::render::preview::STYLE.as_bytes())));
            resp.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/css; charset=utf-8"));
            secured(resp)
        }
        (Method::GET, ["console"]) => match targets(app).await {
            Ok(list) => html(StatusCode::OK, targets_page(&who, &csrf_token(app, &who), &list)),
            Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, &e),
        },
        (Method::POST, ["console", "targets", name, action]) => {
            let (name, action) = (name.to_string(), action.to_string());
            match change(app, &who, req, &name, &action, true).await {
                Ok(_) => {
                    let mut resp = html(StatusCode::SEE_OTHER, String::new());
                    resp.headers_mut().insert(LOCATION, HeaderValue::from_static("/console"));
                    resp
                }
                Err((status, message)) => html(
                    status,
                    page(
                        "Not done",
                        &format!("<p class=\"bad\">{}</p><p><a href=\"/console\">Back</a></p>", esc(&message)),
                    ),
                ),
            }
        }
        (m, _) if m != Method::GET && m != Method::POST => error(StatusCode::METHOD_NOT_ALLOWED, "GET or POST"),
        _ => error(StatusCode::NOT_FOUND, "no such page; the console is at /console, the API under /api/v1/"),
    }
}

/// Switches a target: `enable`, `disable`, or `clear` (its configuration decides again). Admins only,
/// with the user's CSRF token (a form field `csrf` from a page, or the header `x-csrf-token`), and from
/// this origin if the browser names one.
async fn change(
    app: &Arc<App>,
    who: &ConsoleUser,
    req: Request<Incoming>,
    name: &str,
    action: &str,
    form: bool,
) -> Result<String, (StatusCode, String)> {
    let forbidden = |m: &str| (StatusCode::FORBIDDEN, m.to_string());
    let host = req.headers().get(hyper::header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    if let Some(origin) = req.headers().get(hyper::header::ORIGIN).and_then(|v| v.to_str().ok())
        && origin.split_once("://").map(|(_, h)| h) != Some(host.as_str())
    {
        return Err(forbidden("cross-origin request refused"));
    }
    let header_token = req.headers().get("x-csrf-token").and_then(|v| v.to_str().ok()).map(str::to_string);
    let body = Limited::new(req.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|_| (StatusCode::PAYLOAD_TOO_LARGE, format!("a console request holds at most {MAX_BODY} bytes")))?
        .to_bytes();
    let form_token = form
        .then(|| String::from_utf8_lossy(&body).split('&').find_map(|kv| kv.strip_prefix("csrf=").map(str::to_string)))
        .flatten();
    let expected = csrf_token(app, who);
    let given = header_token.or(form_token).unwrap_or_default();
    if !super::auth::constant_time_eq(given.as_bytes(), expected.as_bytes()) {
        return Err(forbidden("missing or wrong CSRF token (x-csrf-token, from GET /api/v1/session)"));
    }
    if !who.admin {
        return Err(forbidden("read-only user: switching targets needs role admin"));
    }
    let live = app.live();
    if !live.config.targets.contains_key(name) {
        return Err((StatusCode::NOT_FOUND, format!("no target {name:?}")));
    }
    if action == "test" {
        return test_send(app, who, name).await;
    }
    let switch = match action {
        "enable" | "disable" => Some(Switch { enabled: action == "enable", by: who.name.clone(), at_ms: now_ms() }),
        "clear" => None,
        _ => return Err((StatusCode::NOT_FOUND, "actions: enable, disable, clear, test".into())),
    };
    let dropped = app
        .store
        .set_switch(name, switch)
        .await
        .map_err(|e| (StatusCode::SERVICE_UNAVAILABLE, format!("cannot record the switch: {e}")))?;
    info!(user = %who.name, target = name, action, dropped_waiting = dropped, "console: target switched");
    app.wake(name);
    Ok(match action {
        "disable" => format!("disabled; {dropped} waiting message(s) given up as disabled"),
        "enable" => "enabled".into(),
        _ => "switch cleared: the configuration decides".into(),
    })
}

/// Every target as the console and the API show it.
async fn targets(app: &App) -> Result<Vec<Value>, String> {
    let live = app.live();
    let queues = app.store.queue_stats().await.map_err(|e| e.to_string())?;
    let last =
        app.store.last_outcomes(live.config.targets.keys().cloned().collect()).await.map_err(|e| e.to_string())?;
    let now = now_ms();
    Ok(live
        .config
        .targets
        .values()
        .map(|t| {
            let q = queues.iter().find(|q| q.target == t.name);
            let l = last.get(&t.name).cloned().unwrap_or_default();
            let switch = app.store.switch(&t.name);
            let budget = app.budget_of(t);
            let remaining = budget.as_ref().map(|b| b.available_within(std::time::Duration::ZERO));
            json!({
                "name": t.name,
                "type": t.channel.name(),
                "describe": t.channel.describe(),
                "enabled": crate::deliver::enabled(&app.store, t),
                "configured_enabled": t.enabled,
                "switch": switch.map(|s| json!({"enabled": s.enabled, "by": s.by, "at_ms": s.at_ms})),
                "queue_depth": q.map_or(0, |q| q.depth),
                "oldest_waiting_s": q.map(|q| (now - q.oldest_created_ms).max(0) / 1000),
                "last_delivered_ms": l.delivered_ms,
                "last_failure": l.failed.map(|(at, reason, detail)| json!({"at_ms": at, "reason": reason, "detail": detail, "hint": hint(&reason)})),
                "rate_limit": if t.rate_limit.is_unlimited() { Value::Null } else { json!({"messages": t.rate_limit.messages, "per_s": t.rate_limit.per.as_secs_f64()}) },
                "budget_remaining": remaining.filter(|r| *r != usize::MAX),
                "budget_used": remaining
                    .filter(|r| *r != usize::MAX && !t.rate_limit.is_unlimited())
                    .map(|r| (t.rate_limit.messages as usize).saturating_sub(r)),
                "paused_for_s": budget.and_then(|b| b.paused_for()).map(|d| d.as_secs()),
            })
        })
        .collect())
}

/// The hint for a stored reason label.
fn hint(reason: &str) -> &'static str {
    crate::channel::Reason::parse(reason).map_or_else(
        || match reason {
            "expired" => crate::deliver::GiveUp::Expired.hint(),
            "disabled" => crate::deliver::GiveUp::Disabled.hint(),
            _ => "",
        },
        |r| r.hint(),
    )
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&#39;")
}

fn page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{} · dingtalk-bridge</title><link rel=\"stylesheet\" href=\"/console/style.css\"></head><body><header><a href=\"/console\">dingtalk-bridge</a></header><main><h1>{}</h1>{body}</main></body></html>",
        esc(title),
        esc(title)
    )
}

fn when(ms: Option<i64>) -> String {
    ms.and_then(chrono::DateTime::from_timestamp_millis)
        .map_or_else(|| "never".to_string(), |t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
}

fn targets_page(who: &ConsoleUser, csrf: &str, list: &[Value]) -> String {
    let mut rows = String::new();
    for t in list {
        let s = |k: &str| t[k].as_str().unwrap_or_default().to_string();
        let name = s("name");
        let enabled = t["enabled"].as_bool().unwrap_or(true);
        let state = match &t["switch"] {
            Value::Null if enabled => "on".to_string(),
            Value::Null => "off (configuration)".to_string(),
            sw => format!(
                "{} (console, by {})",
                if enabled { "on" } else { "off" },
                esc(sw["by"].as_str().unwrap_or_default())
            ),
        };
        let form = |action: &str, label: &str| {
            format!(
                "<form method=\"post\" action=\"/console/targets/{}/{action}\"><input type=\"hidden\" name=\"csrf\" value=\"{csrf}\"><button>{label}</button></form>",
                esc(&name)
            )
        };
        let actions = if !who.admin {
            String::new()
        } else {
            let toggle = if enabled { form("disable", "Disable") } else { form("enable", "Enable") };
            let clear = if t["switch"].is_null() { String::new() } else { form("clear", "Use configuration") };
            format!("{toggle}{clear}{}", form("test", "Send test"))
        };
        let failure = match &t["last_failure"] {
            Value::Null => "none".to_string(),
            f => format!(
                "{} <b>{}</b>: {}<br><small>{}</small>",
                when(f["at_ms"].as_i64()),
                esc(f["reason"].as_str().unwrap_or_default()),
                esc(f["detail"].as_str().unwrap_or_default()),
                esc(f["hint"].as_str().unwrap_or_default())
            ),
        };
        let budget = match (&t["rate_limit"], t["budget_remaining"].as_u64(), t["budget_used"].as_u64()) {
            (Value::Null, ..) => "off".to_string(),
            (r, Some(left), Some(used)) => format!("{used} used, {left} free of {} per {}s", r["messages"], r["per_s"]),
            (r, ..) => format!("? free of {} per {}s", r["messages"], r["per_s"]),
        };
        let paused =
            t["paused_for_s"].as_u64().map_or(String::new(), |p| format!("<br><b class=\"bad\">paused {p}s</b>"));
        rows.push_str(&format!(
            "<tr class=\"{}\"><th>{}<br><small>{}</small></th><td data-label=\"state\">{}</td><td data-label=\"waiting\">{}</td><td data-label=\"last delivery\">{}</td><td data-label=\"last failure\">{}</td><td data-label=\"budget\">{}{paused}</td><td>{actions}</td></tr>",
            if enabled { "on" } else { "off" },
            esc(&name),
            esc(&s("describe")),
            esc(&state),
            t["queue_depth"],
            when(t["last_delivered_ms"].as_i64()),
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

type Failure = (StatusCode, String);

/// `key=value` pairs of a query string, decoded.
fn query_pairs(query: Option<&str>) -> Vec<(String, String)> {
    let url = reqwest::Url::parse(&format!("http://x/?{}", query.unwrap_or(""))).ok();
    url.map(|u| u.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect()).unwrap_or_default()
}

/// A time given as an RFC 3339 timestamp or milliseconds since the epoch.
fn time_ms(v: &str) -> Result<i64, Failure> {
    v.parse::<i64>()
        .ok()
        .or_else(|| chrono::DateTime::parse_from_rfc3339(v).ok().map(|t| t.timestamp_millis()))
        .or_else(|| {
            chrono::NaiveDateTime::parse_from_str(v, "%Y-%m-%dT%H:%M").ok().map(|t| t.and_utc().timestamp_millis())
        })
        .ok_or((StatusCode::BAD_REQUEST, format!("{v:?}: a time is RFC 3339 (2026-11-23T08:00:00Z) or milliseconds")))
}

/// What a reader sees first of a body: its title, or its first line.
fn title_of(body: Option<&str>) -> String {
    let Some(shown) = body.and_then(crate::channel::show_any) else { return String::new() };
    if !shown.title.is_empty() {
        return shown.title;
    }
    shown.text.lines().map(|l| l.trim_start_matches('#').trim()).find(|l| !l.is_empty()).unwrap_or("").to_string()
}

/// A page of push records for the query's filters, and the cursor of the next page.
async fn records(app: &App, query: Option<&str>) -> Result<(Vec<Value>, Option<String>), Failure> {
    let mut f = crate::store::RecordFilter { limit: 50, ..Default::default() };
    let bad = |m: String| (StatusCode::BAD_REQUEST, m);
    for (k, v) in query_pairs(query) {
        if v.is_empty() {
            continue;
        }
        match k.as_str() {
            "target" => f.target = Some(v),
            "state" => {
                if !["pending", "delivered", "failed", "merged", "skipped", "suppressed"].contains(&v.as_str()) {
                    return Err(bad(format!("state {v:?}: pending, delivered, failed, merged, skipped or suppressed")));
                }
                f.state = Some(v)
            }
            "since" => f.since_ms = Some(time_ms(&v)?),
            "until" => f.until_ms = Some(time_ms(&v)?),
            "alertname" => f.alertname = Some(v),
            "q" => f.text = Some(v),
            "limit" => f.limit = v.parse().map_err(|_| bad(format!("limit {v:?}: a number")))?,
            "before" => {
                let mut parts = v.splitn(3, ':');
                let cursor =
                    (|| Some((parts.next()?.parse().ok()?, parts.next()?.to_string(), parts.next()?.parse().ok()?)))();
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
    let rows = app.store.record_page(f).await.map_err(|e| (StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?;
    let next = (rows.len() == limit).then(|| rows.last().map(|r| format!("{}:{}:{}", r.at_ms, r.kind, r.id))).flatten();
    let values = rows
        .iter()
        .map(|r| {
            let mut v = serde_json::to_value(r).unwrap_or_default();
            v["title"] = json!(title_of(r.body.as_deref()));
            v
        })
        .collect();
    Ok((values, next))
}

/// One message's record: the exact body, every attempt, its notification and its digest.
async fn record(app: &App, id: &str) -> Result<Value, Failure> {
    let id: i64 = id.parse().map_err(|_| (StatusCode::NOT_FOUND, format!("no record {id:?}")))?;
    let found = app.store.record(id).await.map_err(|e| (StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?;
    let Some((row, attempts, carried)) = found else {
        return Err((StatusCode::NOT_FOUND, format!("no record {id} (records are kept for storage.retention)")));
    };
    let mut v = serde_json::to_value(&row).unwrap_or_default();
    v["title"] = json!(title_of(row.body.as_deref()));
    // Bodies hold no credential (DingTalk signs in the URL, Feishu at send time, the app's token is a
    // header); they are shown as stored.
    v["body"] = row.body.as_deref().map_or(Value::Null, |b| serde_json::from_str(b).unwrap_or(json!(b)));
    v["attempts"] = serde_json::to_value(&attempts).unwrap_or_default();
    v["carried"] = json!(carried);
    v["hint"] = json!(row.reason.as_deref().map(hint).unwrap_or(""));
    Ok(v)
}

fn records_page(live: &crate::app::Live, query: &str, rows: &[Value], next: Option<&str>) -> String {
    let pairs = query_pairs(Some(query));
    let val = |k: &str| pairs.iter().find(|(key, _)| key == k).map(|(_, v)| esc(v)).unwrap_or_default();
    let mut targets = String::from("<option value=\"\">every target</option>");
    for name in live.config.targets.keys().chain(live.config.routes.keys()) {
        let sel = if val("target") == esc(name) { " selected" } else { "" };
        targets.push_str(&format!("<option{sel}>{}</option>", esc(name)));
    }
    let mut states = String::from("<option value=\"\">every state</option>");
    for st in ["pending", "delivered", "failed", "merged", "skipped", "suppressed"] {
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
    for r in rows {
        let s = |k: &str| r[k].as_str().unwrap_or_default().to_string();
        let link = if s("kind") == "message" {
            format!(
                "<a href=\"/console/records/{}\">{}</a>",
                r["id"],
                esc(&if s("title").is_empty() { "(no title)".into() } else { s("title") })
            )
        } else {
            format!("<i>notification {}: no message</i>", r["id"])
        };
        let state = match (s("state").as_str(), r["reason"].as_str()) {
            (st, Some(reason)) if ["failed", "skipped", "suppressed"].contains(&st) => {
                format!("{st} <small>({})</small>", esc(reason))
            }
            (st, _) => st.to_string(),
        };
        body.push_str(&format!(
            "<tr class=\"{}\"><td>{}</td><td>{}</td><td>{state}</td><td>{}</td><td>{link}</td></tr>",
            esc(&s("state")),
            when(r["at_ms"].as_i64()),
            esc(&s("target")),
            esc(&s("alertname")),
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

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn record_page(r: &Value) -> String {
    let s = |k: &str| r[k].as_str().unwrap_or_default().to_string();
    let mut attempts = String::new();
    for a in r["attempts"].as_array().into_iter().flatten() {
        attempts.push_str(&format!(
            "<tr><td>{}</td><td>{} ms</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            when(a["at_ms"].as_i64()),
            a["duration_ms"],
            a["http_status"].as_u64().map_or("no answer".to_string(), |s| format!("HTTP {s}")),
            esc(a["outcome"].as_str().unwrap_or_default()),
            esc(a["reason"].as_str().unwrap_or_default()),
            esc(a["detail"].as_str().unwrap_or_default()),
        ));
    }
    if attempts.is_empty() {
        attempts.push_str("<tr><td colspan=\"6\">No attempt yet.</td></tr>");
    }
    let digest = match r["carried_by"].as_i64() {
        Some(d) => format!("<p>Merged into digest <a href=\"/console/records/{d}\">{d}</a>.</p>"),
        None => String::new(),
    };
    let carried: Vec<String> = r["carried"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_i64)
        .map(|id| format!("<a href=\"/console/records/{id}\">{id}</a>"))
        .collect();
    let carried =
        if carried.is_empty() { String::new() } else { format!("<p>This digest carried: {}.</p>", carried.join(", ")) };
    let failure = match r["reason"].as_str() {
        Some(reason) => format!(
            "<p class=\"bad\"><b>{}</b>: {}</p><p><small>{}</small></p>",
            esc(reason),
            esc(&s("last_error")),
            esc(&s("hint"))
        ),
        None => String::new(),
    };
    let body = serde_json::to_string_pretty(&r["body"]).unwrap_or_default();
    page(
        &format!("Push record {}", r["id"]),
        &format!(
            "<p><a href=\"/console/records\">Push records</a></p><dl><dt>target</dt><dd>{}</dd><dt>state</dt><dd>{}</dd><dt>created</dt><dd>{}</dd><dt>title</dt><dd>{}</dd><dt>notification</dt><dd>{} · {} · group {}</dd></dl>{failure}{digest}{carried}<h2>Attempts</h2><div class=\"scroll\"><table><thead><tr><th>time</th><th>took</th><th>status</th><th>outcome</th><th>reason</th><th>answer</th></tr></thead><tbody>{attempts}</tbody></table></div><h2>Body sent</h2><pre>{}</pre>",
            esc(&s("target")),
            esc(&s("state")),
            when(r["at_ms"].as_i64()),
            esc(&s("title")),
            esc(&s("alertname")),
            esc(&s("status")),
            esc(&s("group_key")),
            esc(&body),
        ),
    )
}

/// Sends a clearly marked test message to `name` through the real path: recorded, counted, within the
/// budget, skipped if the target is disabled.
async fn test_send(app: &Arc<App>, who: &ConsoleUser, name: &str) -> Result<String, Failure> {
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
        .map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, format!("the test payload: {e}")))?;
    let answers = super::webhook::inject(app, name, decoded).await.map_err(|e| (e.status(), e.to_string()))?;
    let answer = answers.first().cloned().unwrap_or_default();
    info!(user = %who.name, target = name, status = answer["status"].as_str().unwrap_or(""), "console: test message sent");
    Ok(match answer["status"].as_str() {
        Some("accepted") => format!("test message queued as notification {}", answer["notification"]),
        Some("skipped") => format!("skipped: {}", answer["reason"].as_str().unwrap_or("")),
        other => other.unwrap_or("not accepted").to_string(),
    })
}

/// The preview form, with the target, sample and payload chosen so far.
fn preview_form(live: &crate::app::Live, target: &str, sample: &str, payload: &str) -> String {
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

/// Renders a sample or a pasted payload for a target, sending nothing: JSON for the API, a page for the
/// console (`page`).
async fn preview(app: &App, req: Request<Incoming>, form: bool) -> Result<Value, Failure> {
    use crate::render::preview as pv;
    let body = Limited::new(req.into_body(), 1024 * 1024)
        .collect()
        .await
        .map_err(|_| (StatusCode::PAYLOAD_TOO_LARGE, "a preview payload holds at most 1 MiB".to_string()))?
        .to_bytes();
    let (target, sample, payload) = if form {
        let pairs = query_pairs(Some(&String::from_utf8_lossy(&body)));
        let get = |k: &str| pairs.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone()).unwrap_or_default();
        (get("target"), get("sample"), get("payload"))
    } else {
        let v: Value = serde_json::from_slice(&body)
            .map_err(|e| (StatusCode::BAD_REQUEST, format!("body: {{\"target\", \"sample\" or \"payload\"}}: {e}")))?;
        let s = |k: &str| match &v[k] {
            Value::String(x) => x.clone(),
            Value::Null => String::new(),
            other => other.to_string(),
        };
        (s("target"), s("sample"), s("payload"))
    };
    let live = app.live();
    let Some(t) = live.config.targets.get(&target) else {
        return Err((StatusCode::NOT_FOUND, format!("no target {target:?}")));
    };
    let (label, bytes, at) = if !payload.trim().is_empty() {
        ("pasted payload".to_string(), payload.clone().into_bytes(), chrono::Utc::now())
    } else {
        let all = crate::render::samples::corpus();
        let name = if sample.is_empty() { crate::render::samples::PREVIEW_SAMPLES[0] } else { sample.as_str() };
        let Some(s) = all.iter().find(|s| s.name == name) else {
            return Err((StatusCode::NOT_FOUND, format!("no sample {name:?}")));
        };
        let at =
            chrono::DateTime::parse_from_rfc3339(crate::render::samples::NOW).map(|t| t.to_utc()).unwrap_or_default();
        (s.name.clone(), s.payload.to_string().into_bytes(), at)
    };
    let decoded = crate::decode::decode(&bytes)
        .map_err(|e| (StatusCode::BAD_REQUEST, format!("the payload would be answered 400: {e}")))?;
    // Its own renderer, set to the payload's time (the samples were made for a fixed one).
    let renderer = crate::app::load_templates(&live.config)
        .map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, format!("templates: {e}")))?
        .at(at);
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
        return Ok(json!({"page": page}));
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
    Ok(json!({"target": target, "payload": section.name, "notes": section.notes, "messages": messages}))
}
