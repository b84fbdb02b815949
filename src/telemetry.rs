//! Logging: plain or JSON lines on stderr, level and format from flags or the environment.

use clap::ValueEnum;
use tracing_subscriber::EnvFilter;

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

/// `level` is a tracing filter: `info`, `debug`, or per module such as `info,dingtalk_bridge::send=debug`.
/// Lines are formatted where they happen and written by a thread of their own, so a busy bridge does not
/// make a write system call per line; none are dropped (a full buffer makes the caller wait).
pub fn init(level: &str, format: LogFormat) -> Result<LogGuard, TelemetryError> {
    let filter = EnvFilter::try_new(level)
        .map_err(|e| TelemetryError::Level { level: level.to_string(), message: e.to_string() })?;
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .thread_name("log-writer")
        // The default (128000 lines) preallocates megabytes; this still absorbs any burst we log.
        .buffered_lines_limit(4096)
        .finish(std::io::stderr());
    let builder =
        tracing_subscriber::fmt().with_env_filter(filter).with_writer(writer).with_target(false).with_ansi(colour);
    let result = match format {
        LogFormat::Plain => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(false).try_init(),
    };
    result.map_err(|e| TelemetryError::Install(e.to_string()))?;
    Ok(guard)
}
