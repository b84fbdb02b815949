//! Durations computed when a message is sent, not when its notification arrived: "for 24m" must still be
//! right after a throttle pause or an outage. Rendering writes a marker holding the start time (between two
//! private-use characters); the sender replaces each marker just before the request. A marker is longer
//! than any duration it becomes, so a body that fitted the size limit still fits. `md` leaves markers
//! alone, so `{{md (since startsAt)}}` works; a marker an alert's own text carried would only become a
//! duration.

use std::borrow::Cow;

use chrono::{DateTime, Utc};

use crate::clock::human_duration;

const OPEN: char = '\u{E000}';
const CLOSE: char = '\u{E001}';

/// A marker that becomes the time elapsed since `t` when the message is sent.
pub fn since(t: DateTime<Utc>) -> String {
    // Fixed width, so even a start in 1970 makes a marker longer than the duration it becomes.
    format!("{OPEN}{:011}{CLOSE}", t.timestamp().max(0))
}

/// `body` with every marker replaced by the time elapsed from its start to `now_ms`. A marker cut in half
/// (by truncation to the size limit) is dropped.
pub fn resolve(body: &str, now_ms: i64) -> Cow<'_, str> {
    if !body.contains(OPEN) {
        return Cow::Borrowed(body);
    }
    let mut out = String::with_capacity(body.len());
    let mut rest = body;
    while let Some(start) = rest.find(OPEN) {
        out.push_str(&rest[..start]);
        let after = &rest[start + OPEN.len_utf8()..];
        let digits = after.find(|c: char| !c.is_ascii_digit()).unwrap_or(after.len());
        let closed = after[digits..].starts_with(CLOSE);
        if closed && let Ok(secs) = after[..digits].parse::<i64>() {
            out.push_str(&human_duration(now_ms.div_euclid(1000) - secs));
        }
        rest = if closed { &after[digits + CLOSE.len_utf8()..] } else { &after[digits..] };
    }
    out.push_str(rest);
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_become_durations_at_send_time() {
        let t = DateTime::parse_from_rfc3339("2026-11-23T07:53:00Z").unwrap().with_timezone(&Utc);
        let body = format!("{{\"text\":\"since 15:53 ({})\"}}", since(t));
        let at = |rfc: &str| DateTime::parse_from_rfc3339(rfc).unwrap().timestamp_millis();
        assert_eq!(resolve(&body, at("2026-11-23T08:17:15Z")), "{\"text\":\"since 15:53 (24m)\"}");
        // An hour later the same stored body says so.
        assert_eq!(resolve(&body, at("2026-11-23T09:17:15Z")), "{\"text\":\"since 15:53 (1h 24m)\"}");
        assert!(matches!(resolve("no markers", 0), Cow::Borrowed(_)));
    }

    #[test]
    fn a_marker_is_never_shorter_than_its_duration_and_a_cut_one_is_dropped() {
        let t = DateTime::from_timestamp(1, 0).unwrap();
        let marker = since(t);
        // From 1970 to the year 9999.
        let resolved = resolve(&marker, 253_402_300_799_000);
        assert!(resolved.len() <= marker.len(), "{resolved}");
        let cut = &marker[..marker.len() - CLOSE.len_utf8() - 2];
        assert_eq!(resolve(&format!("a {cut}"), 0), "a ");
    }
}
