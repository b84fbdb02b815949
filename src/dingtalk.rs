//! DingTalk's custom-robot protocol: request signing ("additional signature") and the one place that maps
//! DingTalk's answers (HTTP status, errcode, errmsg) to what the sender does next.

use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// `sign` for the query string: url_encode(base64(HMAC-SHA256(key = secret, msg = timestamp + "\n" + secret))).
pub fn sign(timestamp_ms: i64, secret: &str) -> String {
    let string_to_sign = format!("{timestamp_ms}\n{secret}");
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC accepts keys of any length");
    mac.update(string_to_sign.as_bytes());
    let b64 = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    // Base64's alphabet needs exactly these three escaped, once.
    b64.replace('+', "%2B").replace('/', "%2F").replace('=', "%3D")
}

/// The robot URL with `timestamp` and `sign` appended, as DingTalk expects them.
pub fn signed_url(url: &str, secret: Option<&str>, timestamp_ms: i64) -> String {
    match secret {
        None => url.to_string(),
        Some(secret) => {
            let sep = if url.contains('?') { '&' } else { '?' };
            format!("{url}{sep}timestamp={timestamp_ms}&sign={}", sign(timestamp_ms, secret))
        }
    }
}

/// Why an attempt or a message failed. Bounded: these strings are metric label values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    // Transient: retried.
    Connect,
    Network,
    Timeout,
    Http5xx,
    Http429,
    Busy,
    BadResponse,
    IpBanned,
    Throttled,
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
    HttpStatus,
    UnknownErrcode,
    Expired,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Connect => "connect",
            Reason::Network => "network",
            Reason::Timeout => "timeout",
            Reason::Http5xx => "http_5xx",
            Reason::Http429 => "http_429",
            Reason::Busy => "busy",
            Reason::BadResponse => "bad_response",
            Reason::IpBanned => "ip_banned",
            Reason::Throttled => "throttled",
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
            Reason::HttpStatus => "http_status",
            Reason::UnknownErrcode => "unknown_errcode",
            Reason::Expired => "expired",
        }
    }

    /// Whether DingTalk may have posted a message whose attempt failed this way (no answer came back).
    pub fn in_doubt(self) -> bool {
        matches!(self, Reason::Network | Reason::Timeout)
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
            Reason::HttpStatus => "the URL answered with an HTTP client error: check targets.<name>.url",
            Reason::UnknownErrcode => "DingTalk answered with an errcode the bridge does not know",
            Reason::Expired => "the message could not be delivered within delivery.max_age",
            _ => "transient",
        }
    }
}

/// What the sender does with a message after one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Delivered,
    /// Try again later with backoff.
    Retry {
        reason: Reason,
        detail: String,
    },
    /// DingTalk says the robot sends too fast: pause the robot for the penalty, then resend.
    Throttled {
        detail: String,
    },
    /// Give the message up.
    Permanent {
        reason: Reason,
        detail: String,
    },
}

/// Classifies an HTTP answer from the robot endpoint.
pub fn classify_response(status: u16, body: &[u8]) -> Outcome {
    let snippet = || {
        let text = String::from_utf8_lossy(&body[..body.len().min(200)]);
        format!("HTTP {status}: {}", text.trim())
    };
    match status {
        200..=299 => {}
        429 => return Outcome::Retry { reason: Reason::Http429, detail: snippet() },
        500..=599 => return Outcome::Retry { reason: Reason::Http5xx, detail: snippet() },
        _ => return Outcome::Permanent { reason: Reason::HttpStatus, detail: snippet() },
    }
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) else {
        // An HTML page instead of JSON: the per-IP ban page, or a proxy in the way. Transient.
        return Outcome::Retry { reason: Reason::BadResponse, detail: snippet() };
    };
    let errcode = match value.get("errcode") {
        Some(serde_json::Value::Number(n)) => n.as_i64(),
        // The documentation's example has it as a string.
        Some(serde_json::Value::String(s)) => s.trim().parse::<i64>().ok(),
        _ => None,
    };
    let Some(errcode) = errcode else {
        if value.get("status").and_then(|s| s.as_i64()) == Some(1111) {
            return Outcome::Retry { reason: Reason::IpBanned, detail: snippet() };
        }
        return Outcome::Retry { reason: Reason::BadResponse, detail: snippet() };
    };
    let errmsg = value.get("errmsg").and_then(|m| m.as_str()).unwrap_or("");
    classify_errcode(errcode, errmsg)
}

/// Maps DingTalk's errcode (and, for 310000, its errmsg) to an outcome.
pub fn classify_errcode(errcode: i64, errmsg: &str) -> Outcome {
    let detail = format!("errcode {errcode}: {errmsg}");
    let permanent = |reason| Outcome::Permanent { reason, detail: detail.clone() };
    match errcode {
        0 => Outcome::Delivered,
        -1 => Outcome::Retry { reason: Reason::Busy, detail },
        130101 | 410100 => Outcome::Throttled { detail },
        310000 => permanent(classify_security(errmsg)),
        300001 | 300005 | 400101 => permanent(Reason::InvalidToken),
        400106 => permanent(Reason::RobotNotFound),
        400102 => permanent(Reason::RobotDisabled),
        400013 => permanent(Reason::GroupDissolved),
        460101 | 101002 => permanent(Reason::TooLong),
        430101..=430104 => permanent(Reason::Moderation),
        40035 | 43004 | 400105 => permanent(Reason::BadRequest),
        _ => permanent(Reason::UnknownErrcode),
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

    #[test]
    fn signing_test_vectors() {
        assert_eq!(sign(1700000000000, "secret"), "OuzzJR5%2BxZ4%2FEYwqtNt6sMYZQMTa%2FHEGvc9miJe7XzY%3D");
        assert_eq!(sign(1577262236757, "this is secret"), "hmPWwU%2B7lVdm3ZZz0r9tSfx0L4Q26jWOZr9%2BGs6EZQM%3D");
        assert_eq!(sign(1700000000000, "SEC0123456789abcdef"), "TSZbRFUuvaSQaRKUpF970OPCb2%2FLcQAP3wOvwZIzBZk%3D");
    }

    #[test]
    fn signed_url_appends_query() {
        let u = signed_url("https://x/robot/send?access_token=t", Some("secret"), 1700000000000);
        assert_eq!(
            u,
            "https://x/robot/send?access_token=t&timestamp=1700000000000&sign=OuzzJR5%2BxZ4%2FEYwqtNt6sMYZQMTa%2FHEGvc9miJe7XzY%3D"
        );
        assert_eq!(signed_url("https://x/send", None, 1), "https://x/send");
        assert!(signed_url("https://x/send", Some("s"), 1).starts_with("https://x/send?timestamp=1&sign="));
    }

    fn reason(o: Outcome) -> Reason {
        match o {
            Outcome::Permanent { reason, .. } | Outcome::Retry { reason, .. } => reason,
            other => panic!("no reason in {other:?}"),
        }
    }

    #[test]
    fn errcodes() {
        assert_eq!(classify_response(200, br#"{"errcode":0,"errmsg":"ok"}"#), Outcome::Delivered);
        assert_eq!(classify_response(200, br#"{"errcode":"0","errmsg":"ok"}"#), Outcome::Delivered);
        assert!(matches!(
            classify_response(200, br#"{"errcode":-1,"errmsg":"busy"}"#),
            Outcome::Retry { reason: Reason::Busy, .. }
        ));
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
        assert_eq!(reason(classify_response(502, b"bad gateway")), Reason::Http5xx);
        assert_eq!(reason(classify_response(429, b"")), Reason::Http429);
        assert_eq!(reason(classify_response(404, b"not found")), Reason::HttpStatus);
        assert_eq!(reason(classify_response(200, b"<html>banned</html>")), Reason::BadResponse);
        assert_eq!(reason(classify_response(200, br#"{"status":1111,"wait":5}"#)), Reason::IpBanned);
    }
}
