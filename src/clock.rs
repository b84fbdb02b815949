//! Wall-clock time as the store and the protocols count it: milliseconds since the Unix epoch.

pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
