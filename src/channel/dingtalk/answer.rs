//! The one place that maps DingTalk's answers (HTTP status, errcode, errmsg) to an [`Outcome`].

use crate::channel::{Outcome, Reason as Common};

/// DingTalk's own reasons for not posting a message. Bounded: these strings are metric label values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    // Transient: retried.
    Busy,
    IpBanned,
    // Permanent: the message is given up.
    Keyword,
    Signature,
    Timestamp,
    IpNotAllowed,
    SecurityCheck,
    InvalidToken,
    RobotNotFound,
    RobotDisabled,
    GroupDissolved,
    TooLong,
    Moderation,
    BadRequest,
    UnknownErrcode,
}

impl Reason {
    /// Every reason, to read a stored label back.
    pub const ALL: [Reason; 15] = [
        Reason::Busy,
        Reason::IpBanned,
        Reason::Keyword,
        Reason::Signature,
        Reason::Timestamp,
        Reason::IpNotAllowed,
        Reason::SecurityCheck,
        Reason::InvalidToken,
        Reason::RobotNotFound,
        Reason::RobotDisabled,
        Reason::GroupDissolved,
        Reason::TooLong,
        Reason::Moderation,
        Reason::BadRequest,
        Reason::UnknownErrcode,
    ];
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Busy => "busy",
            Reason::IpBanned => "ip_banned",
            Reason::Keyword => "keyword",
            Reason::Signature => "signature",
            Reason::Timestamp => "timestamp",
            Reason::IpNotAllowed => "ip_not_allowed",
            Reason::SecurityCheck => "security_check",
            Reason::InvalidToken => "invalid_token",
            Reason::RobotNotFound => "robot_not_found",
            Reason::RobotDisabled => "robot_disabled",
            Reason::GroupDissolved => "group_dissolved",
            Reason::TooLong => "too_long",
            Reason::Moderation => "moderation",
            Reason::BadRequest => "bad_request",
            Reason::UnknownErrcode => "unknown_errcode",
        }
    }

    /// What a user should do about a permanent failure; shown in logs.
    pub fn hint(self) -> &'static str {
        match self {
            Reason::Keyword => {
                "the message lacks the robot's keyword: set targets.<name>.keyword to one of the robot's keywords"
            }
            Reason::Signature => "the signature does not match: check targets.<name>.secret (it starts with SEC)",
            Reason::Timestamp => "DingTalk says the timestamp is off by over an hour: check this host's clock (NTP)",
            Reason::IpNotAllowed => "this host's egress IP is not in the robot's IP allowlist",
            Reason::SecurityCheck => "a robot security setting rejected the message (see errmsg)",
            Reason::InvalidToken | Reason::RobotNotFound => {
                "the access_token in targets.<name>.url is wrong or the robot was deleted"
            }
            Reason::RobotDisabled => "the robot is disabled in the DingTalk group settings",
            Reason::GroupDissolved => "the robot's group was dissolved",
            Reason::TooLong => "the message exceeded DingTalk's size limit (a bug: the bridge splits messages)",
            Reason::Moderation => "DingTalk's content moderation rejected the message (links or words)",
            Reason::BadRequest => "DingTalk rejected the request format (a bug in the bridge)",
            Reason::UnknownErrcode => "DingTalk answered with an errcode the bridge does not know",
            Reason::Busy | Reason::IpBanned => "transient",
        }
    }
}

crate::tool_reasons!(Reason);

fn retry(reason: Reason, detail: String) -> Outcome {
    Outcome::Retry { reason: Common::from(reason), detail }
}

fn failed(reason: Reason, detail: String) -> Outcome {
    Outcome::Failed { reason: Common::from(reason), detail }
}

/// Classifies an HTTP answer from the robot endpoint.
pub fn classify_response(status: u16, body: &[u8]) -> Outcome {
    let snippet = || crate::channel::http::answer_snippet(status, body);
    if let Some(outcome) = crate::channel::http::classify_status(status, snippet) {
        return outcome;
    }
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) else {
        // An HTML page instead of JSON: the per-IP ban page, or a proxy in the way. Transient.
        return Outcome::Retry { reason: Common::BadResponse, detail: snippet() };
    };
    let errcode = match value.get("errcode") {
        Some(serde_json::Value::Number(n)) => n.as_i64(),
        // The documentation's example has it as a string.
        Some(serde_json::Value::String(s)) => s.trim().parse::<i64>().ok(),
        _ => None,
    };
    let Some(errcode) = errcode else {
        if value.get("status").and_then(|s| s.as_i64()) == Some(1111) {
            return retry(Reason::IpBanned, snippet());
        }
        return Outcome::Retry { reason: Common::BadResponse, detail: snippet() };
    };
    let errmsg = value.get("errmsg").and_then(|m| m.as_str()).unwrap_or("");
    classify_errcode(errcode, errmsg)
}

/// Maps DingTalk's errcode (and, for 310000, its errmsg) to an outcome.
pub fn classify_errcode(errcode: i64, errmsg: &str) -> Outcome {
    let detail = format!("errcode {errcode}: {errmsg}");
    match errcode {
        0 => Outcome::Delivered,
        -1 => retry(Reason::Busy, detail),
        // DingTalk does not say for how long; the sender pauses for delivery.throttle_penalty.
        130101 | 410100 => Outcome::Throttled { detail, retry_after: None },
        310000 => failed(classify_security(errmsg), detail),
        300001 | 300005 | 400101 => failed(Reason::InvalidToken, detail),
        400106 => failed(Reason::RobotNotFound, detail),
        400102 => failed(Reason::RobotDisabled, detail),
        400013 => failed(Reason::GroupDissolved, detail),
        460101 | 101002 => failed(Reason::TooLong, detail),
        430101..=430104 => failed(Reason::Moderation, detail),
        40035 | 43004 | 400105 => failed(Reason::BadRequest, detail),
        _ => failed(Reason::UnknownErrcode, detail),
    }
}

/// errcode 310000 covers every security setting; only the errmsg (English or Chinese style) tells which.
fn classify_security(errmsg: &str) -> Reason {
    let m = errmsg.to_lowercase();
    if m.contains("keywords not in content") || m.contains("关键词") {
        Reason::Keyword
    } else if m.contains("sign not match") || m.contains("签名") {
        Reason::Signature
    } else if m.contains("invalid timestamp") || m.contains("时间戳") {
        Reason::Timestamp
    } else if m.contains("whitelist") || m.contains("白名单") {
        Reason::IpNotAllowed
    } else {
        Reason::SecurityCheck
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(o: Outcome) -> Reason {
        let common = common(o);
        Reason::ALL.into_iter().find(|r| Common::from(*r) == common).expect("a DingTalk reason")
    }

    fn common(o: Outcome) -> Common {
        match o {
            Outcome::Failed { reason, .. } | Outcome::Retry { reason, .. } => reason,
            other => panic!("no reason in {other:?}"),
        }
    }

    #[test]
    fn errcodes() {
        assert_eq!(classify_response(200, br#"{"errcode":0,"errmsg":"ok"}"#), Outcome::Delivered);
        assert_eq!(classify_response(200, br#"{"errcode":"0","errmsg":"ok"}"#), Outcome::Delivered);
        assert_eq!(reason(classify_response(200, br#"{"errcode":-1,"errmsg":"busy"}"#)), Reason::Busy);
        assert!(matches!(classify_errcode(130101, "send too fast"), Outcome::Throttled { .. }));
        assert!(matches!(classify_errcode(410100, "send too fast"), Outcome::Throttled { .. }));
        assert_eq!(reason(classify_errcode(300001, "token is not exist")), Reason::InvalidToken);
        assert_eq!(reason(classify_errcode(400101, "token is not exist")), Reason::InvalidToken);
        assert_eq!(reason(classify_errcode(400106, "机器人不存在")), Reason::RobotNotFound);
        assert_eq!(reason(classify_errcode(400102, "机器人已停用")), Reason::RobotDisabled);
        assert_eq!(reason(classify_errcode(400013, "群已被解散")), Reason::GroupDissolved);
        assert_eq!(reason(classify_errcode(460101, "message too long, exceed 20000 bytes")), Reason::TooLong);
        assert_eq!(reason(classify_errcode(101002, "message is too long")), Reason::TooLong);
        assert_eq!(reason(classify_errcode(430102, "含有不安全的外链")), Reason::Moderation);
        assert_eq!(reason(classify_errcode(400105, "不支持的消息类型")), Reason::BadRequest);
        assert_eq!(reason(classify_errcode(43004, "无效的HTTP HEADER Content-Type")), Reason::BadRequest);
        assert_eq!(reason(classify_errcode(999999, "new")), Reason::UnknownErrcode);
    }

    #[test]
    fn security_errmsgs_old_and_new_style() {
        let r = |m| reason(classify_errcode(310000, m));
        assert_eq!(r("keywords not in content, more: [helpLink:...]"), Reason::Keyword);
        assert_eq!(r("description:关键词不匹配;solution:请联系群管理员查看此机器人的关键词"), Reason::Keyword);
        assert_eq!(r("sign not match, more: [helpLink:...]"), Reason::Signature);
        assert_eq!(r("description:机器人发送签名不匹配;solution:请确认签名和生成签名的时间戳"), Reason::Signature);
        assert_eq!(r("invalid timestamp, more: [...]"), Reason::Timestamp);
        assert_eq!(r("ip 1.2.3.4 not in whitelist"), Reason::IpNotAllowed);
        assert_eq!(r("description:ip 不在白名单中;solution:..."), Reason::IpNotAllowed);
        assert_eq!(r("something else"), Reason::SecurityCheck);
    }

    #[test]
    fn http_level_answers() {
        assert_eq!(common(classify_response(502, b"bad gateway")), Common::Http5xx);
        assert_eq!(common(classify_response(429, b"")), Common::Http429);
        assert_eq!(common(classify_response(404, b"not found")), Common::HttpStatus);
        assert_eq!(common(classify_response(200, b"<html>banned</html>")), Common::BadResponse);
        assert_eq!(reason(classify_response(200, br#"{"status":1111,"wait":5}"#)), Reason::IpBanned);
    }
}
