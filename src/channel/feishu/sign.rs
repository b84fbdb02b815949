//! Feishu's (and Lark's) signature check ("签名校验"). Not DingTalk's algorithm: the key is the
//! timestamp-and-secret string and the message is empty, the timestamp is in seconds, and both go in the
//! request body, not the URL. Feishu refuses a timestamp more than an hour off, so it is made at send time.

use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// `sign` = base64(HMAC-SHA256(key = timestamp + "\n" + secret, message = empty)).
pub fn sign(timestamp_secs: i64, secret: &str) -> String {
    let key = format!("{timestamp_secs}\n{secret}");
    let mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).expect("HMAC accepts keys of any length");
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// `body` (a JSON object) with `timestamp` (a string of seconds) and `sign` added at its top level, or the
/// body unchanged if the bot has no secret or the body is not an object.
pub fn signed_body(body: &str, secret: Option<&str>, timestamp_secs: i64) -> String {
    let Some(secret) = secret else { return body.to_string() };
    let Ok(serde_json::Value::Object(mut fields)) = serde_json::from_str::<serde_json::Value>(body) else {
        return body.to_string();
    };
    fields.insert("timestamp".into(), serde_json::Value::String(timestamp_secs.to_string()));
    fields.insert("sign".into(), serde_json::Value::String(sign(timestamp_secs, secret)));
    serde_json::Value::Object(fields).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_protocol_notes_vectors() {
        assert_eq!(sign(1_599_360_473, "demo"), "l1N0gAcBjdwBvGm1xMjOF0XSyaLRpR7tuO5dHfhAYc8=");
        assert_eq!(sign(1_700_000_000, "secret"), "fiWS2+gh28DOydAv7hzONH/mDn9+b1Y4Y5ivXWXy8vA=");
    }

    #[test]
    fn the_dingtalk_way_gives_a_value_feishu_rejects() {
        // DingTalk's algorithm (key = secret, message = the string): a common bug in other libraries.
        let mut mac = Hmac::<Sha256>::new_from_slice(b"demo").unwrap();
        mac.update(b"1599360473\ndemo");
        let dingtalk_style = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
        assert_eq!(dingtalk_style, "DkEDUyVoOOJ539qBvUgMyzkzIdRWlf4e/V3Rq+ONJnQ=");
        assert_ne!(sign(1_599_360_473, "demo"), dingtalk_style);
    }

    #[test]
    fn signing_fields_go_in_the_body() {
        let body = signed_body(r#"{"msg_type":"text","content":{"text":"x"}}"#, Some("demo"), 1_599_360_473);
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["timestamp"], "1599360473", "seconds, as a string");
        assert_eq!(v["sign"], "l1N0gAcBjdwBvGm1xMjOF0XSyaLRpR7tuO5dHfhAYc8=");
        assert_eq!(v["content"]["text"], "x");
        assert_eq!(signed_body("{}", None, 1), "{}", "no secret: unchanged");
        let added = signed_body("{}", Some("demo"), 1_599_360_473).len() - "{}".len();
        assert!(added <= super::super::SIGNATURE_BYTES, "{added} bytes of signature");
    }
}
