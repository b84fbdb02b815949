//! The operations console (`/console`, server-rendered HTML without script) and its JSON API
//! (`/api/v1/`). Both need a console user (basic auth, `console.users`); changes need the admin role and a
//! CSRF token, and are logged with who made them. No page or answer shows a credential: targets are
//! described by their redacted `describe()`.

mod api;
mod error;
mod pages;
mod respond;
mod session;
mod views;

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderValue, LOCATION};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::json;
use tracing::info;

use crate::app::App;

use crate::http::error::Resp;
use api::{Preview, change, preview, record, records, targets};
pub use error::ConsoleError;
use pages::{esc, login_page, page, preview_form, record_page, records_page, targets_page};
use respond::{CSS, error, failed, html, json, secured, unauthorized};
use session::{csrf_token, login, session_user, user};

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
            Err(e) => failed(&e),
        },
        (Method::POST, ["api", "v1", "targets", name, action]) => {
            let (name, action) = (name.to_string(), action.to_string());
            match change(app, &who, req, &name, &action, false).await {
                Ok(message) => json(StatusCode::OK, &json!({"target": name, "action": action, "result": message})),
                Err(e) => failed(&e),
            }
        }
        (Method::GET, ["api", "v1", "records"]) => match records(app, req.uri().query()).await {
            Ok((rows, next)) => json(StatusCode::OK, &json!({"records": rows, "next": next})),
            Err(e) => failed(&e),
        },
        (Method::GET, ["api", "v1", "records", id]) => match record(app, id).await {
            Ok(r) => json(StatusCode::OK, &r),
            Err(e) => failed(&e),
        },
        (Method::GET, ["console", "records"]) => match records(app, req.uri().query()).await {
            Ok((rows, next)) => {
                let query = req.uri().query().unwrap_or("").to_string();
                html(StatusCode::OK, records_page(&app.live(), &query, &rows, next.as_deref()))
            }
            Err(e) => html(e.status(), page("Push records", &format!("<p class=\"bad\">{}</p>", esc(&e.to_string())))),
        },
        (Method::GET, ["console", "records", id]) => match record(app, id).await {
            Ok(r) => html(StatusCode::OK, record_page(&r)),
            Err(e) => html(e.status(), page("Push record", &format!("<p class=\"bad\">{}</p>", esc(&e.to_string())))),
        },
        (Method::POST, ["api", "v1", "preview"]) => match preview(app, req, false).await {
            Ok(Preview::Api(v)) => json(StatusCode::OK, &v),
            Ok(Preview::Page(page)) => html(StatusCode::OK, page),
            Err(e) => failed(&e),
        },
        (Method::GET, ["console", "preview"]) => html(StatusCode::OK, preview_form(&app.live(), "", "", "")),
        (Method::POST, ["console", "preview"]) => match preview(app, req, true).await {
            Ok(Preview::Page(page)) => html(StatusCode::OK, page),
            Ok(Preview::Api(_)) => error(StatusCode::INTERNAL_SERVER_ERROR, "the preview made no page"),
            Err(e) => html(
                e.status(),
                page(
                    "Preview",
                    &format!(
                        "<p class=\"bad\">{}</p><p><a href=\"/console/preview\">Back</a></p>",
                        esc(&e.to_string())
                    ),
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
            Err(e) => failed(&e),
        },
        (Method::POST, ["console", "targets", name, action]) => {
            let (name, action) = (name.to_string(), action.to_string());
            match change(app, &who, req, &name, &action, true).await {
                Ok(_) => {
                    let mut resp = html(StatusCode::SEE_OTHER, String::new());
                    resp.headers_mut().insert(LOCATION, HeaderValue::from_static("/console"));
                    resp
                }
                Err(e) => html(
                    e.status(),
                    page(
                        "Not done",
                        &format!("<p class=\"bad\">{}</p><p><a href=\"/console\">Back</a></p>", esc(&e.to_string())),
                    ),
                ),
            }
        }
        (m, _) if m != Method::GET && m != Method::POST => error(StatusCode::METHOD_NOT_ALLOWED, "GET or POST"),
        _ => error(StatusCode::NOT_FOUND, "no such page; the console is at /console, the API under /api/v1/"),
    }
}
