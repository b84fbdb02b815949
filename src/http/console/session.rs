//! Who a console request is: HTTP basic auth (the API) or the signed session cookie (pages), the log-in
//! form, and the CSRF token a change must carry.

use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, LOCATION};
use hyper::{Request, StatusCode};
use tracing::info;

use super::pages::login_page;
use super::respond::{MAX_BODY, html, query_pairs};
use crate::app::App;
use crate::clock::now_ms;
use crate::config::ConsoleUser;
use crate::http::error::Resp;

/// The console user the request's basic credentials name, checked against every user in constant time.
pub(super) fn user<'a>(users: &'a [ConsoleUser], req: &Request<Incoming>) -> Option<&'a ConsoleUser> {
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
        if crate::http::auth::constant_time_eq(&decoded, expected.as_bytes()) {
            found = Some(u);
        }
    }
    found
}

/// How long a console session lasts.
pub(super) const SESSION_MS: i64 = 12 * 3600 * 1000;

/// A session cookie's value: the user, when it expires, and an HMAC of both and the user's password under
/// the store's console key. The key survives restarts, so sessions do; changing a user's password (and
/// reloading) ends that user's sessions.
pub(super) fn session_value(app: &App, user: &ConsoleUser, expires_ms: i64) -> String {
    let sig = signed(app, &format!("session\n{}\n{expires_ms}\n{}", user.name, user.password.expose()));
    // The name in hex: any character may be in a name, and '.' separates the parts.
    let name = hex(user.name.as_bytes());
    format!("{name}.{expires_ms}.{sig}")
}

/// The user a valid, unexpired session cookie names.
pub(super) fn session_user<'a>(
    app: &App,
    users: &'a [ConsoleUser],
    req: &Request<Incoming>,
) -> Option<&'a ConsoleUser> {
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
        && crate::http::auth::constant_time_eq(value.as_bytes(), session_value(app, user, expires).as_bytes());
    valid.then_some(user)
}

/// Checks a login form against `console.users` and sets the session cookie.
pub(super) async fn login(app: &App, users: &[ConsoleUser], req: Request<Incoming>) -> Resp {
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
        let ok = crate::http::auth::constant_time_eq(u.name.as_bytes(), name.as_bytes())
            & crate::http::auth::constant_time_eq(u.password.expose().as_bytes(), password.as_bytes());
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
pub(super) fn csrf_token(app: &App, user: &ConsoleUser) -> String {
    signed(app, &format!("csrf\n{}\n{}", user.name, user.password.expose()))
}

/// An HMAC-SHA256 of `data` under the console key, in hex.
pub(super) fn signed(app: &App, data: &str) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&app.console_key()).expect("any key length");
    mac.update(data.as_bytes());
    hex(&mac.finalize().into_bytes())
}

pub(super) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
