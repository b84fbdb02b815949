//! The one place that maps the DingTalk app API's answers (v1.0: a string `code` in error bodies, per-user
//! lists inside a success) to an [`Outcome`].

use std::time::Duration;

use serde_json::Value;

use crate::channel::{Outcome, Partial, Reason as Common};

/// The app robot's own reasons for not delivering. Bounded: these strings are metric label values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// `invalidClientIdOrSecret` from the token endpoint.
    BadCredentials,
    /// A fresh token was refused as well.
    TokenRejected,
    /// `ApiCountLimitForOrg`: the organisation's monthly API quota is spent.
    QuotaSpent,
    /// `AccessTokenPermissionDenied`: the app lacks `qyapi_robot_sendmsg`.
    PermissionDenied,
    IpNotAllowed,
    /// `invalidParameter.robotCode.*`, `chatbotId.notAllow.sendOTO`, `robot.oto.notExist`.
    RobotCode,
    /// A user id the organisation does not know (`invalidStaffIdList`, `staffId.notExisted`).
    InvalidUser,
    /// `invalid.openConversationId`, `group.disbanded`.
    Conversation,
    /// `bot.stopped`, `send.forbidden`.
    BotStopped,
    /// `invalidParameter.msgParam.tooLong`.
    TooLong,
    /// Any other `invalidParameter.*` or content check: a bug or a template the API refuses.
    BadRequest,
    UnknownCode,
}

impl Reason {
    /// Every reason, to read a stored label back.
    pub const ALL: [Reason; 12] = [
        Reason::BadCredentials,
        Reason::TokenRejected,
        Reason::QuotaSpent,
        Reason::PermissionDenied,
        Reason::IpNotAllowed,
        Reason::RobotCode,
        Reason::InvalidUser,
        Reason::Conversation,
        Reason::BotStopped,
        Reason::TooLong,
        Reason::BadRequest,
        Reason::UnknownCode,
    ];
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::BadCredentials => "app_bad_credentials",
            Reason::TokenRejected => "app_token_rejected",
            Reason::QuotaSpent => "app_quota_spent",
            Reason::PermissionDenied => "app_permission_denied",
            Reason::IpNotAllowed => "app_ip_not_allowed",
            Reason::RobotCode => "app_robot_code",
            Reason::InvalidUser => "app_invalid_user",
            Reason::Conversation => "app_conversation",
            Reason::BotStopped => "app_bot_stopped",
            Reason::TooLong => "app_too_long",
            Reason::BadRequest => "app_bad_request",
            Reason::UnknownCode => "app_unknown_code",
        }
    }

    pub fn hint(self) -> &'static str {
        match self {
            Reason::BadCredentials => {
                "DingTalk refused the app's credentials: check dingtalk_apps.<app>.client_id and client_secret (the developer console's Client ID and Client Secret)"
            }
            Reason::TokenRejected => {
                "DingTalk refused a freshly fetched access token: check the app in the developer console"
            }
            Reason::QuotaSpent => {
                "the organisation's monthly DingTalk API quota is spent (standard edition: 5000 calls a month): nothing reaches people through the app until the month turns or the edition is upgraded; a custom group robot posts through its own webhook and is the fallback"
            }
            Reason::PermissionDenied => {
                "the app lacks the permission qyapi_robot_sendmsg: grant it in the developer console (Permissions) and publish the app"
            }
            Reason::IpNotAllowed => "this host's address is not in the app's IP allow list in the developer console",
            Reason::RobotCode => {
                "DingTalk does not know this robot for the app: check dingtalk_apps.<app>.robot_code (the robot's RobotCode in the developer console) and that the robot is published"
            }
            Reason::InvalidUser => {
                "DingTalk does not know this userId in the organisation: check targets.<name>.users (userIds, not names or mobiles)"
            }
            Reason::Conversation => {
                "the group is unknown to the app robot or was disbanded: check targets.<name>.conversations (openConversationId) and that the robot is still in the group"
            }
            Reason::BotStopped => "the app robot is stopped or may not send: check it in the developer console",
            Reason::TooLong => "the message exceeded the app API's size limit (a bug: the bridge splits messages)",
            Reason::BadRequest => "DingTalk refused the request's format or content (see the detail)",
            Reason::UnknownCode => "DingTalk answered with a code the bridge does not know (see the detail)",
        }
    }
}

crate::tool_reasons!(Reason);

fn failed(reason: Reason, detail: String) -> Outcome {
    Outcome::Failed { reason: Common::from(reason), detail }
}

/// What an answer of the send APIs means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Outcome(Outcome),
    /// The access token is expired or revoked: fetch a new one and resend once.
    TokenExpired(String),
}

/// The error body's code and message, whatever their capitalisation.
fn code_and_message(v: &Value) -> (String, String) {
    let field =
        |names: &[&str]| names.iter().find_map(|n| v.get(*n).and_then(Value::as_str)).unwrap_or_default().to_string();
    (field(&["code", "Code"]), field(&["message", "Message"]))
}

const TOKEN_CODES: [&str; 3] = ["InvalidAuthentication", "token.notExisted", "invalidParameter.token.invalid"];

/// Classifies an answer of `oToMessages/batchSend` or `groupMessages/send`.
pub fn classify_send(status: u16, body: &[u8]) -> Answer {
    let snippet = || crate::channel::http::answer_snippet(status, body);
    let value = serde_json::from_slice::<Value>(body).ok();
    if (200..300).contains(&status) {
        let Some(v) = value.filter(Value::is_object) else {
            return Answer::Outcome(Outcome::Retry { reason: Common::BadResponse, detail: snippet() });
        };
        let list = |k: &str| -> Vec<String> {
            v.get(k)
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
                .unwrap_or_default()
        };
        let (failed, retry) = (list("invalidStaffIdList"), list("flowControlledStaffIdList"));
        if failed.is_empty() && retry.is_empty() {
            return Answer::Outcome(Outcome::Delivered);
        }
        let detail = format!("{} invalid, {} flow-controlled", failed.len(), retry.len());
        // Who got it is known to the caller, which knows whom it sent to.
        let (reached, reason) = (vec![], Common::from(Reason::InvalidUser));
        return Answer::Outcome(Outcome::Partial(Box::new(Partial { reached, failed, retry, reason, detail })));
    }
    let Some(v) = value else {
        return Answer::Outcome(
            crate::channel::http::classify_status(status, snippet)
                .unwrap_or(Outcome::Retry { reason: Common::BadResponse, detail: snippet() }),
        );
    };
    let (code, message) = code_and_message(&v);
    let detail = format!("HTTP {status} {code}: {message}");
    if TOKEN_CODES.contains(&code.as_str()) {
        return Answer::TokenExpired(detail);
    }
    Answer::Outcome(classify_code(status, &code, detail.clone()).unwrap_or_else(|| unknown(status, detail)))
}

/// A code the bridge does not know: transient by its status (429, 5xx, a redirect), else permanent.
fn unknown(status: u16, detail: String) -> Outcome {
    match status {
        300..=399 | 429 | 500..=599 => crate::channel::http::classify_status(status, || detail.clone())
            .unwrap_or(failed(Reason::UnknownCode, detail)),
        _ => failed(Reason::UnknownCode, detail),
    }
}

/// What a v1.0 error code means, if the bridge knows it.
fn classify_code(status: u16, code: &str, detail: String) -> Option<Outcome> {
    let throttled =
        |after: u64| Outcome::Throttled { detail: detail.clone(), retry_after: Some(Duration::from_secs(after)) };
    let outcome = match code {
        // 20 calls a second per app and API: wait the second out.
        c if c.ends_with("QpsLimitForAppkeyAndApi") || c.ends_with("QpsLimitForApi") => throttled(1),
        c if c.ends_with("QpmLimitForAppkeyAndApi") => throttled(60),
        // (unsure) DingTalk does not say how long: a minute.
        "send.too.fast" | "send.byToken.tooFast" | "too.many.group" | "too.many.people" => throttled(60),
        "system.busy" | "systemError.busy" | "system.error" => {
            Outcome::Retry { reason: if status == 429 { Common::Http429 } else { Common::Http5xx }, detail }
        }
        c if c.ends_with("ApiCountLimitForOrg") => failed(Reason::QuotaSpent, detail),
        c if c.ends_with("AccessTokenPermissionDenied") => failed(Reason::PermissionDenied, detail),
        c if c.ends_with("IpNotInWhiteList") || c == "ip.not.match" => failed(Reason::IpNotAllowed, detail),
        "invalidClientIdOrSecret" => failed(Reason::BadCredentials, detail),
        c if c.starts_with("invalidParameter.robotCode")
            || c == "chatbotId.notAllow.sendOTO"
            || c == "robot.oto.notExist" =>
        {
            failed(Reason::RobotCode, detail)
        }
        c if c.starts_with("invalidParameter.userIds") || c == "staffId.notExisted" => {
            failed(Reason::InvalidUser, detail)
        }
        "invalid.openConversationId" | "group.disbanded" => failed(Reason::Conversation, detail),
        "bot.stopped" | "send.forbidden" => failed(Reason::BotStopped, detail),
        "invalidParameter.msgParam.tooLong" => failed(Reason::TooLong, detail),
        c if c.starts_with("invalidParameter.")
            || c.starts_with("contain.")
            || matches!(c, "keywords.not.match" | "sign.not.match") =>
        {
            failed(Reason::BadRequest, detail)
        }
        _ => return None,
    };
    Some(outcome)
}

/// A token endpoint answer: the token and how long it is valid, or why there is none.
pub fn classify_token(status: u16, body: &[u8]) -> Result<(String, Duration), Outcome> {
    let snippet = || crate::channel::http::answer_snippet(status, body);
    let value = serde_json::from_slice::<Value>(body).ok();
    if (200..300).contains(&status)
        && let Some(v) = &value
        && let Some(token) = v.get("accessToken").and_then(Value::as_str)
    {
        let expire = v.get("expireIn").and_then(Value::as_u64).unwrap_or(7200);
        return Ok((token.to_string(), Duration::from_secs(expire)));
    }
    let Some(v) = value.filter(|v| v.get("code").is_some() || v.get("Code").is_some()) else {
        return Err(crate::channel::http::classify_status(status, snippet)
            .unwrap_or(Outcome::Retry { reason: Common::BadResponse, detail: snippet() }));
    };
    let (code, message) = code_and_message(&v);
    let detail = format!("HTTP {status} {code}: {message} (fetching the access token)");
    Err(classify_code(status, &code, detail.clone()).unwrap_or_else(|| unknown(status, detail)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(status: u16, body: &str) -> Option<Common> {
        match classify_send(status, body.as_bytes()) {
            Answer::Outcome(Outcome::Failed { reason, .. } | Outcome::Retry { reason, .. }) => Some(reason),
            _ => None,
        }
    }

    #[test]
    fn per_user_failures_come_inside_a_success() {
        assert_eq!(classify_send(200, br#"{"processQueryKey":"k"}"#), Answer::Outcome(Outcome::Delivered));
        assert_eq!(
            classify_send(
                200,
                br#"{"processQueryKey":"k","invalidStaffIdList":["u1"],"flowControlledStaffIdList":["u2","u3"]}"#
            ),
            Answer::Outcome(Outcome::Partial(Box::new(Partial {
                reached: vec![],
                reason: Common::from(Reason::InvalidUser),
                failed: vec!["u1".into()],
                retry: vec!["u2".into(), "u3".into()],
                detail: "1 invalid, 2 flow-controlled".into()
            })))
        );
        assert_eq!(reason(200, "<html>"), Some(Common::BadResponse));
    }

    #[test]
    fn codes_are_classified_whatever_their_capitalisation() {
        let app = |r| Some(Common::from(r));
        assert!(matches!(
            classify_send(401, br#"{"code":"InvalidAuthentication","requestid":"r","message":"bad token"}"#),
            Answer::TokenExpired(_)
        ));
        assert!(matches!(classify_send(400, br#"{"Code":"token.notExisted","Message":"x"}"#), Answer::TokenExpired(_)));
        assert_eq!(
            reason(403, r#"{"code":"Forbidden.AccessDenied.ApiCountLimitForOrg","message":"quota"}"#),
            app(Reason::QuotaSpent)
        );
        assert_eq!(
            reason(403, r#"{"code":"Forbidden.AccessDenied.AccessTokenPermissionDenied"}"#),
            app(Reason::PermissionDenied)
        );
        assert_eq!(reason(400, r#"{"code":"invalidParameter.robotCode.empty"}"#), app(Reason::RobotCode));
        assert_eq!(reason(400, r#"{"code":"staffId.notExisted"}"#), app(Reason::InvalidUser));
        assert_eq!(reason(400, r#"{"code":"group.disbanded"}"#), app(Reason::Conversation));
        assert_eq!(reason(400, r#"{"code":"invalidParameter.msgParam.tooLong"}"#), app(Reason::TooLong));
        assert_eq!(reason(400, r#"{"code":"contain.unsafe.url"}"#), app(Reason::BadRequest));
        assert_eq!(reason(400, r#"{"code":"something.new"}"#), app(Reason::UnknownCode));
        assert_eq!(reason(429, r#"{"code":"system.busy"}"#), Some(Common::Http429));
        assert_eq!(reason(500, r#"{"code":"systemError.busy"}"#), Some(Common::Http5xx));
        assert_eq!(reason(502, "<html>bad gateway</html>"), Some(Common::Http5xx));
        for (status, code, after) in [
            (403, "Forbidden.AccessDenied.QpsLimitForAppkeyAndApi", 1),
            (403, "Forbidden.AccessDenied.QpmLimitForAppkeyAndApi", 60),
            (400, "send.too.fast", 60),
        ] {
            let body = format!(r#"{{"code":"{code}","message":"m"}}"#);
            match classify_send(status, body.as_bytes()) {
                Answer::Outcome(Outcome::Throttled { retry_after, .. }) => {
                    assert_eq!(retry_after, Some(Duration::from_secs(after)), "{code}")
                }
                other => panic!("{code}: {other:?}"),
            }
        }
    }

    #[test]
    fn the_token_endpoint() {
        assert_eq!(
            classify_token(200, br#"{"accessToken":"tok","expireIn":7200}"#),
            Ok(("tok".to_string(), Duration::from_secs(7200)))
        );
        let Err(Outcome::Failed { reason, detail }) =
            classify_token(400, br#"{"code":"invalidClientIdOrSecret","message":"bad"}"#)
        else {
            panic!()
        };
        assert_eq!(reason, Common::from(Reason::BadCredentials));
        assert!(detail.contains("fetching the access token"), "{detail}");
        assert!(matches!(classify_token(503, b"down"), Err(Outcome::Retry { reason: Common::Http5xx, .. })));
    }
}
