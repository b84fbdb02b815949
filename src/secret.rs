//! Secrets (robot URLs with their access_token, signing secrets) and redaction of URLs before they reach
//! a log line, an error message or an API answer.

use std::fmt;

/// A value that must never be printed. `Debug` and `Display` both print `<redacted>`; the only way to the
/// value is [`Secret::expose`], which makes every use greppable.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Query parameters whose values are credentials in DingTalk's (and common) URLs.
fn is_sensitive_param(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    name == "sign" || name.contains("token") || name.contains("secret") || name.contains("key")
}

/// The URL with credentials (sensitive query values, userinfo) replaced by `<redacted>`, fit for logs.
pub fn redact_url(url: &str) -> String {
    let Ok(mut parsed) = reqwest::Url::parse(url) else {
        return "<unparseable url>".to_string();
    };
    if !parsed.username().is_empty() || parsed.password().is_some() {
        let _ = parsed.set_username("redacted");
        let _ = parsed.set_password(None);
    }
    if parsed.query().is_some() {
        let pairs: Vec<(String, String)> = parsed
            .query_pairs()
            .map(|(k, v)| {
                let v = if is_sensitive_param(&k) { "<redacted>".to_string() } else { v.into_owned() };
                (k.into_owned(), v)
            })
            .collect();
        // Built by hand so `<redacted>` stays readable instead of percent-encoded.
        let query = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&");
        parsed.set_query(None);
        return format!("{parsed}?{query}");
    }
    parsed.to_string()
}

/// Removes every occurrence of the given secret values from a text (used on error messages from libraries
/// that may echo a URL or body back).
pub fn scrub(text: &str, secrets: &[&str]) -> String {
    let mut out = text.to_string();
    for s in secrets.iter().filter(|s| s.len() >= 4) {
        out = out.replace(*s, "<redacted>");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_never_prints() {
        let s = Secret::new("SECabc");
        assert_eq!(format!("{s} {s:?}"), "<redacted> <redacted>");
        assert_eq!(s.expose(), "SECabc");
    }

    #[test]
    fn redacts_token_and_sign() {
        let r = redact_url("https://oapi.dingtalk.com/robot/send?access_token=abc123&timestamp=17&sign=xy%2Bz");
        assert_eq!(r, "https://oapi.dingtalk.com/robot/send?access_token=<redacted>&timestamp=17&sign=<redacted>");
        assert!(!r.contains("abc123"));
    }

    #[test]
    fn redacts_userinfo_and_survives_garbage() {
        let r = redact_url("https://user:pw@example.com/x");
        assert!(!r.contains("pw"), "{r}");
        assert_eq!(redact_url("not a url"), "<unparseable url>");
    }

    #[test]
    fn scrub_removes_values() {
        assert_eq!(scrub("error for token abcdef here", &["abcdef", ""]), "error for token <redacted> here");
    }
}
