//! The one place that maps Feishu's and Lark's answers to an [`Outcome`]. Feishu puts its code in the
//! body whatever the HTTP status (a 400 can carry 9499 or 19021), so the body is read first.

use crate::channel::{Outcome, Reason as Common};

/// Feishu's own reasons for not posting a message. Bounded: these strings are metric label values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// 19021: the signature does not match, or its timestamp is over an hour off.
    SignatureOrClock,
    /// 19022
    IpNotAllowed,
    /// 19024
    Keyword,
    /// 9499: malformed or too big.
    BadRequest,
    UnknownCode,
}

impl Reason {
    /// Every reason, to read a stored label back.
    pub const ALL: [Reason; 5] =
        [Reason::SignatureOrClock, Reason::IpNotAllowed, Reason::Keyword, Reason::BadRequest, Reason::UnknownCode];
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::SignatureOrClock => "feishu_signature_or_clock",
            Reason::IpNotAllowed => "feishu_ip_not_allowed",
            Reason::Keyword => "feishu_keyword",
            Reason::BadRequest => "feishu_bad_request",
            Reason::UnknownCode => "feishu_unknown_code",
        }
    }

    /// What a user should do about a permanent failure; shown in logs.
    pub fn hint(self) -> &'static str {
        match self {
            Reason::SignatureOrClock => {
                "Feishu says the signature does not match or its timestamp is over an hour off: check targets.<name>.secret (the bot's signature secret) and this host's clock"
            }
            Reason::IpNotAllowed => "this host's egress IP is not in the bot's IP allowlist",
            Reason::Keyword => {
                "the message lacks the bot's keyword: set targets.<name>.keyword to one of the bot's keywords"
            }
            Reason::BadRequest => "Feishu rejected the request as malformed or too big (a bug in the bridge)",
            Reason::UnknownCode => "Feishu answered with a code the bridge does not know",
        }
    }
}

crate::tool_reasons!(Reason);

fn failed(reason: Reason, detail: String) -> Outcome {
    Outcome::Failed { reason: Common::from(reason), detail }
}

/// Classifies an HTTP answer from a Feishu or Lark bot webhook.
pub fn classify_response(status: u16, body: &[u8]) -> Outcome {
    let snippet = || crate::channel::http::answer_snippet(status, body);
    let value = serde_json::from_slice::<serde_json::Value>(body).ok();
    // `{"code":0,"msg":"success"}`, or the older `{"StatusCode":0,"StatusMessage":"success"}`.
    let code = value.as_ref().and_then(|v| v.get("code").or_else(|| v.get("StatusCode"))).and_then(|c| c.as_i64());
    let Some(code) = code else {
        return crate::channel::http::classify_status(status, snippet)
            .unwrap_or(Outcome::Retry { reason: Common::BadResponse, detail: snippet() });
    };
    let msg = value
        .as_ref()
        .and_then(|v| v.get("msg").or_else(|| v.get("StatusMessage")))
        .and_then(|m| m.as_str())
        .unwrap_or("");
    classify_code(code, msg)
}

/// Maps Feishu's code to an outcome.
pub fn classify_code(code: i64, msg: &str) -> Outcome {
    let detail = format!("code {code}: {msg}");
    match code {
        0 => Outcome::Delivered,
        // Feishu does not say for how long; the sender waits out the bot's window (Channel::throttle_pause).
        11232 => Outcome::Throttled { detail, retry_after: None },
        19021 => failed(Reason::SignatureOrClock, detail),
        19022 => failed(Reason::IpNotAllowed, detail),
        19024 => failed(Reason::Keyword, detail),
        9499 => failed(Reason::BadRequest, detail),
        _ => failed(Reason::UnknownCode, detail),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_classified_whatever_the_http_status() {
        assert_eq!(classify_response(200, br#"{"code":0,"msg":"success","data":{}}"#), Outcome::Delivered);
        assert_eq!(classify_response(200, br#"{"StatusCode":0,"StatusMessage":"success"}"#), Outcome::Delivered);
        let reason = |status, body: &[u8]| match classify_response(status, body) {
            Outcome::Failed { reason, .. } | Outcome::Retry { reason, .. } => Some(reason),
            _ => None,
        };
        assert_eq!(
            reason(
                400,
                br#"{"code":19021,"msg":"sign match fail or timestamp is not within one hour from current time"}"#
            ),
            Some(Common::from(Reason::SignatureOrClock))
        );
        assert_eq!(reason(200, br#"{"code":19024,"msg":"Key Words Not Found"}"#), Some(Common::from(Reason::Keyword)));
        assert_eq!(reason(400, br#"{"code":9499,"msg":"Bad Request"}"#), Some(Common::from(Reason::BadRequest)));
        assert_eq!(reason(200, br#"{"code":19022,"msg":"Ip Not Allowed"}"#), Some(Common::from(Reason::IpNotAllowed)));
        assert!(matches!(
            classify_response(200, br#"{"code":11232,"msg":"frequency limited"}"#),
            Outcome::Throttled { .. }
        ));
        // No code: the HTTP status decides; a 200 that is not Feishu's is a bad response, retried.
        assert_eq!(reason(502, b"<html>bad gateway</html>"), Some(Common::Http5xx));
        assert_eq!(reason(200, b"<html>proxy</html>"), Some(Common::BadResponse));
        assert_eq!(reason(302, b""), Some(Common::Redirect));
    }
}
