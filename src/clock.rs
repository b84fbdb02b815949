//! Time: the wall clock as the store and the protocols count it (milliseconds since the Unix epoch), and
//! durations as people read them.

pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// `1d 2h`, `2h 5m`, `5m`, `12s`: two units at most, and no seconds past the first minute (noise).
pub fn human_duration(secs: i64) -> String {
    let secs = secs.max(0);
    let (d, h, m, s) = (secs / 86400, secs % 86400 / 3600, secs % 3600 / 60, secs % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m"),
        (0, _, _) => format!("{h}h {m}m"),
        _ => format!("{d}d {h}h"),
    }
}
