//! Logging: plain or JSON lines on stderr, level and format from flags or the environment.
//!
//! Log lines carry values an attacker chose (a `groupKey`, a target name in a URL, an error from a
//! remote server), so every line is formatted here rather than by tracing-subscriber's defaults: each
//! value is cut to [`MAX_VALUE_BYTES`], and in the plain format control characters are escaped and a
//! value that holds a space, a quote or `=` is quoted, so no value can start a line of its own or pose as
//! another field. JSON escapes control characters by itself.

use std::fmt::{self, Write as _};

use clap::ValueEnum;
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Plain,
    Json,
}

#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("invalid log level {level:?}: {message}")]
    Level { level: String, message: String },
    #[error("cannot install the logger: {0}")]
    Install(String),
}

/// Keeps the log writer thread alive; dropping it writes out what is still buffered.
pub type LogGuard = tracing_appender::non_blocking::WorkerGuard;

/// The most bytes of one value (or of the message) a line shows; the rest is replaced by a marker that
/// says how much was cut.
pub const MAX_VALUE_BYTES: usize = 1024;

/// `level` is a tracing filter: `info`, `debug`, or per module such as `info,dingtalk_bridge::send=debug`.
/// Lines are formatted where they happen and written by a thread of their own, so a busy bridge does not
/// make a write system call per line; none are dropped (a full buffer makes the caller wait).
pub fn init(level: &str, format: LogFormat) -> Result<LogGuard, TelemetryError> {
    let filter = EnvFilter::try_new(level)
        .map_err(|e| TelemetryError::Level { level: level.to_string(), message: e.to_string() })?;
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .thread_name("log-writer")
        // The default (128000 lines) preallocates megabytes; this still absorbs any burst we log.
        .buffered_lines_limit(4096)
        .finish(std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .event_format(Lines { format })
        .try_init()
        .map_err(|e| TelemetryError::Install(e.to_string()))?;
    Ok(guard)
}

/// The line format for both kinds of log.
pub struct Lines {
    pub format: LogFormat,
}

impl<S, N> FormatEvent<S, N> for Lines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(&self, _ctx: &FmtContext<'_, S, N>, mut writer: Writer<'_>, event: &Event<'_>) -> fmt::Result {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let time = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        let level = event.metadata().level().as_str();
        writer.write_str(&line(self.format, &time, level, fields))
    }
}

/// One formatted line, newline included.
fn line(format: LogFormat, time: &str, level: &str, fields: Fields) -> String {
    match format {
        LogFormat::Json => {
            let mut map = serde_json::Map::new();
            map.insert("timestamp".into(), time.into());
            map.insert("level".into(), level.into());
            map.insert("message".into(), fields.message.into());
            for (name, value) in fields.values {
                map.insert(name.to_string(), value.into_json());
            }
            let mut s = serde_json::Value::Object(map).to_string();
            s.push('\n');
            s
        }
        LogFormat::Plain => {
            let mut s = format!("{time} {level:>5} ");
            escape_into(&mut s, &fields.message, false);
            for (name, value) in fields.values {
                s.push(' ');
                s.push_str(name);
                s.push('=');
                match value {
                    Value::Text(text) => escape_into(&mut s, &text, true),
                    Value::Number(n) => s.push_str(&n.to_string()),
                }
            }
            s.push('\n');
            s
        }
    }
}

/// Writes `text` with control characters escaped; with `quote`, inside quotes when it is empty or holds a
/// space, a quote, a backslash or `=`, so that it reads as one value.
fn escape_into(out: &mut String, text: &str, quote: bool) {
    let quoted = quote && (text.is_empty() || text.chars().any(|c| c.is_whitespace() || matches!(c, '"' | '=' | '\\')));
    if quoted {
        out.push('"');
    }
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '"' | '\\' if quoted => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}') => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    if quoted {
        out.push('"');
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Value {
    Text(String),
    Number(serde_json::Value),
}

impl Value {
    fn into_json(self) -> serde_json::Value {
        match self {
            Value::Text(s) => serde_json::Value::String(s),
            Value::Number(n) => n,
        }
    }
}

/// An event's message and fields, each value already cut to its bound.
#[derive(Default, Clone)]
struct Fields {
    message: String,
    values: Vec<(&'static str, Value)>,
}

impl Fields {
    fn text(&mut self, field: &Field, text: String) {
        if field.name() == "message" {
            self.message = text;
        } else {
            self.values.push((field.name(), Value::Text(text)));
        }
    }
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        let mut b = Bounded::default();
        let _ = b.write_str(value);
        self.text(field, b.finish());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        // Formatted into a bounded buffer: a 3 MB value costs its formatting, never a 3 MB line.
        let mut b = Bounded::default();
        let _ = write!(b, "{value:?}");
        self.text(field, b.finish());
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.values.push((field.name(), Value::Number(value.into())));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.values.push((field.name(), Value::Number(value.into())));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.values.push((field.name(), Value::Number(value.into())));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.values.push((field.name(), Value::Number(serde_json::json!(value))));
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        let mut b = Bounded::default();
        let _ = write!(b, "{value}");
        self.text(field, b.finish());
    }
}

/// Keeps the first [`MAX_VALUE_BYTES`] written to it (on a character boundary) and counts the rest.
#[derive(Default)]
struct Bounded {
    kept: String,
    cut: usize,
}

impl fmt::Write for Bounded {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let room = MAX_VALUE_BYTES.saturating_sub(self.kept.len());
        if self.cut > 0 || s.len() > room {
            let mut end = room.min(s.len());
            while !s.is_char_boundary(end) {
                end -= 1;
            }
            if self.cut == 0 {
                self.kept.push_str(&s[..end]);
            }
            self.cut += s.len() - if self.cut == 0 { end } else { 0 };
        } else {
            self.kept.push_str(s);
        }
        Ok(())
    }
}

impl Bounded {
    fn finish(mut self) -> String {
        if self.cut > 0 {
            let _ = write!(self.kept, "…[{} more bytes cut]", self.cut);
        }
        self.kept
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(message: &str, values: &[(&'static str, &str)]) -> Fields {
        Fields {
            message: message.to_string(),
            values: values.iter().map(|(k, v)| (*k, Value::Text(v.to_string()))).collect(),
        }
    }

    #[test]
    fn a_newline_in_a_value_cannot_start_a_line() {
        let forged = "{}:{a=\"b\"}\n2026-11-23T00:00:00.000000Z ERROR message given up target=ops FORGED";
        let f = fields("notification accepted", &[("target", "ops"), ("group_key", forged)]);
        let plain = line(LogFormat::Plain, "T", "INFO", f.clone());
        assert_eq!(plain.matches('\n').count(), 1, "{plain}");
        assert!(plain.ends_with('\n'));
        assert!(
            plain.contains(
                r#"group_key="{}:{a=\"b\"}\n2026-11-23T00:00:00.000000Z ERROR message given up target=ops FORGED""#
            ),
            "{plain}"
        );
        let json = line(LogFormat::Json, "T", "INFO", f);
        assert_eq!(json.matches('\n').count(), 1, "{json}");
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["group_key"], forged);
    }

    #[test]
    fn a_value_cannot_pose_as_another_field_or_hide_in_escapes() {
        let f = fields("m\r\x1b[2Jx", &[("target", "ops status=delivered"), ("empty", ""), ("plain", "ok")]);
        let plain = line(LogFormat::Plain, "T", "WARN", f);
        assert_eq!(plain, "T  WARN m\\r\\u{1b}[2Jx target=\"ops status=delivered\" empty=\"\" plain=ok\n");
    }

    #[test]
    fn values_are_cut_to_a_bound_on_a_character_boundary() {
        let mut b = Bounded::default();
        let huge = "é".repeat(2_000_000);
        b.write_str(&huge).unwrap();
        b.write_str("more").unwrap();
        let s = b.finish();
        assert!(s.len() <= MAX_VALUE_BYTES + 40, "{}", s.len());
        assert!(s.ends_with(&format!("…[{} more bytes cut]", 4_000_004 - MAX_VALUE_BYTES)), "{}", &s[s.len() - 40..]);

        let mut b = Bounded::default();
        for _ in 0..3000 {
            b.write_str("ab").unwrap();
        }
        assert_eq!(b.finish(), format!("{}…[{} more bytes cut]", "ab".repeat(512), 6000 - MAX_VALUE_BYTES));
    }
}
