//! The one place that maps WeCom's answers (HTTP 200 with an errcode, errors too) to an [`Outcome`].

use crate::channel::{Outcome, Reason as Common};

/// WeCom's own reasons for not posting a message. Bounded: these strings are metric label values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// -1: retried.
    Busy,
    /// 93000: a wrong key, or the robot was removed from its group.
    InvalidUrl,
    /// 93004
    Disabled,
    /// 40058, 45002
    TooLong,
    /// 40008
    BadMsgtype,
    /// 44004, 93017
    EmptyContent,
    UnknownErrcode,
}

impl Reason {
    /// Every reason, to read a stored label back.
    pub const ALL: [Reason; 7] = [
        Reason::Busy,
        Reason::InvalidUrl,
        Reason::Disabled,
        Reason::TooLong,
        Reason::BadMsgtype,
        Reason::EmptyContent,
        Reason::UnknownErrcode,
    ];
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Busy => "wecom_busy",
            Reason::InvalidUrl => "wecom_invalid_url",
            Reason::Disabled => "wecom_disabled",
            Reason::TooLong => "wecom_too_long",
            Reason::BadMsgtype => "wecom_bad_msgtype",
            Reason::EmptyContent => "wecom_empty_content",
            Reason::UnknownErrcode => "wecom_unknown_errcode",
        }
    }

    /// What a user should do about a permanent failure; shown in logs.
    pub fn hint(self) -> &'static str {
        match self {
            Reason::InvalidUrl => {
                "WeCom does not know this webhook: check the key in targets.<name>.url, or whether the robot was removed from its group"
            }
            Reason::Disabled => "the robot is disabled in the WeCom group",
            Reason::TooLong => "the message exceeded WeCom's size limit (a bug: the bridge splits messages)",
            Reason::BadMsgtype | Reason::EmptyContent => "WeCom rejected the request format (a bug in the bridge)",
            Reason::UnknownErrcode => "WeCom answered with an errcode the bridge does not know",
            Reason::Busy => "transient",
        }
    }
}

crate::tool_reasons!(Reason);

fn failed(reason: Reason, detail: String) -> Outcome {
    Outcome::Failed { reason: Common::from(reason), detail }
}

/// Classifies an HTTP answer from a WeCom group robot webhook.
pub fn classify_response(status: u16, body: &[u8]) -> Outcome {
    let snippet = || crate::channel::http::answer_snippet(status, body);
    if let Some(outcome) = crate::channel::http::classify_status(status, snippet) {
        return outcome;
    }
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) else {
        return Outcome::Retry { reason: Common::BadResponse, detail: snippet() };
    };
    let Some(errcode) = value.get("errcode").and_then(|c| c.as_i64()) else {
        return Outcome::Retry { reason: Common::BadResponse, detail: snippet() };
    };
    classify_errcode(errcode, value.get("errmsg").and_then(|m| m.as_str()).unwrap_or(""))
}

pub fn classify_errcode(errcode: i64, errmsg: &str) -> Outcome {
    let detail = format!("errcode {errcode}: {errmsg}");
    match errcode {
        0 => Outcome::Delivered,
        -1 => Outcome::Retry { reason: Common::from(Reason::Busy), detail },
        // "Wait out the minute": the sender pauses for the robot's window (Channel::throttle_pause).
        45009 => Outcome::Throttled { detail, retry_after: None },
        93000 => failed(Reason::InvalidUrl, detail),
        93004 => failed(Reason::Disabled, detail),
        40058 | 45002 => failed(Reason::TooLong, detail),
        40008 => failed(Reason::BadMsgtype, detail),
        44004 | 93017 => failed(Reason::EmptyContent, detail),
        _ => failed(Reason::UnknownErrcode, detail),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errcodes_are_classified() {
        assert_eq!(classify_response(200, br#"{"errcode":0,"errmsg":"ok"}"#), Outcome::Delivered);
        let reason = |body: &[u8]| match classify_response(200, body) {
            Outcome::Failed { reason, .. } | Outcome::Retry { reason, .. } => Some(reason),
            _ => None,
        };
        assert_eq!(
            reason(br#"{"errcode":93000,"errmsg":"invalid webhook url"}"#),
            Some(Common::from(Reason::InvalidUrl))
        );
        assert_eq!(reason(br#"{"errcode":93004,"errmsg":"robot disabled"}"#), Some(Common::from(Reason::Disabled)));
        assert_eq!(reason(br#"{"errcode":40058,"errmsg":"too long"}"#), Some(Common::from(Reason::TooLong)));
        assert_eq!(reason(br#"{"errcode":-1,"errmsg":"system busy"}"#), Some(Common::from(Reason::Busy)));
        assert_eq!(
            classify_response(200, br#"{"errcode":45009,"errmsg":"api freq out of limit"}"#),
            Outcome::Throttled { detail: "errcode 45009: api freq out of limit".into(), retry_after: None }
        );
        assert_eq!(reason(b"<html>"), Some(Common::BadResponse));
    }
}
