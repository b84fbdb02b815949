//! The command line: `run` (the default), `check-config` and `render`, with logging flags.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tracing::error;

use crate::config::{Config, DEFAULT_CONFIG_PATH};
use crate::decode::{self, Decoded};
use crate::telemetry::{self, LogFormat};

/// Exit status for a configuration that cannot run (EX_USAGE, as linkerd does).
const EXIT_BAD_CONFIG: u8 = 64;

/// Sample payloads `check-config` renders every target's templates against.
pub const SAMPLES: [(&str, &str); 3] = [
    ("firing", include_str!("../tests/fixtures/alertmanager-0.25-firing.json")),
    ("resolved", include_str!("../tests/fixtures/alertmanager-0.25-resolved.json")),
    ("minimal", include_str!("../tests/fixtures/minimal.json")),
];

#[derive(Debug, Parser)]
#[command(
    name = "dingtalk-bridge",
    version,
    about = "Carries Prometheus Alertmanager notifications into DingTalk robots."
)]
struct Cli {
    /// Configuration file.
    #[arg(long, short = 'c', global = true, default_value = DEFAULT_CONFIG_PATH, env = "DINGTALK_BRIDGE_CONFIG")]
    config: PathBuf,
    /// Log filter: error, warn, info, debug, trace, or per module (info,dingtalk_bridge::send=debug).
    #[arg(long, global = true, default_value = "info", env = "DINGTALK_BRIDGE_LOG_LEVEL")]
    log_level: String,
    /// Log line format.
    #[arg(long, global = true, value_enum, default_value = "plain", env = "DINGTALK_BRIDGE_LOG_FORMAT")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the bridge (the default).
    Run,
    /// Load and validate the configuration and templates, render every target against sample payloads.
    CheckConfig,
    /// Print the exact DingTalk request bodies a payload would produce, one per line; sends nothing.
    Render {
        /// The target whose settings and templates to use.
        #[arg(long)]
        target: String,
        /// Alertmanager webhook payload (JSON file, or - for standard input); default: a built-in sample.
        payload: Option<PathBuf>,
        /// Pretty-print the bodies (not byte-exact).
        #[arg(long)]
        pretty: bool,
    },
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let _log = match telemetry::init(&cli.log_level, cli.log_format) {
        Ok(guard) => guard,
        Err(e) => {
            eprintln!("dingtalk-bridge: {e}");
            return ExitCode::from(EXIT_BAD_CONFIG);
        }
    };
    match cli.command.unwrap_or(Command::Run) {
        Command::Run => run(&cli.config),
        Command::CheckConfig => check_config(&cli.config),
        Command::Render { target, payload, pretty } => render(&cli.config, &target, payload.as_deref(), pretty),
    }
}

fn run(path: &Path) -> ExitCode {
    let config = match Config::load(path) {
        Ok(c) => c,
        Err(e) => {
            error!("configuration invalid:\n{e}");
            return ExitCode::from(EXIT_BAD_CONFIG);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            error!(error = %e, "cannot start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let listener = match tokio::net::TcpListener::bind(config.listen).await {
            Ok(l) => l,
            Err(e) => {
                error!(address = %config.listen, error = %e, "cannot listen");
                return ExitCode::FAILURE;
            }
        };
        match crate::run_with_reload(config, listener, shutdown_signal(), Some(reload_signal())).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e @ (crate::RunError::Templates(_) | crate::RunError::Config(_))) => {
                error!("configuration invalid:\n{e}");
                ExitCode::from(EXIT_BAD_CONFIG)
            }
            Err(e) => {
                error!("{e}");
                ExitCode::FAILURE
            }
        }
    })
}

/// Completes on SIGTERM (Kubernetes) or SIGINT (Ctrl-C).
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
        error!("cannot install signal handlers; stop the bridge with SIGKILL");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

/// A message for each SIGHUP: reload the configuration.
fn reload_signal() -> tokio::sync::mpsc::Receiver<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    match signal(SignalKind::hangup()) {
        Ok(mut hup) => {
            tokio::spawn(async move {
                while hup.recv().await.is_some() {
                    // A reload already pending covers this one too.
                    let _ = tx.try_send(());
                }
            });
        }
        Err(e) => error!(error = %e, "cannot install the SIGHUP handler; use POST /-/reload"),
    }
    rx
}

fn check_config(path: &Path) -> ExitCode {
    let config = match Config::load(path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    for w in &config.warnings {
        eprintln!("warning: {w}");
    }
    let renderer = match crate::app::load_templates(&config) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let file = config.source.display();
    let mut failed = false;
    for target in config.targets.values() {
        for (sample, payload) in SAMPLES {
            let decoded = decode::decode(payload.as_bytes()).expect("built-in samples decode");
            match renderer.render_strict(target, &decoded) {
                Ok(r) if r.keyword_inserted > 0 => eprintln!(
                    "warning: {file}: targets.{}.template: template set {:?} leaves out the keyword {:?} (sample {sample}); the bridge adds it to every message",
                    target.name,
                    target.template,
                    target.keyword.as_deref().unwrap_or_default()
                ),
                Ok(_) => {}
                Err(e) => {
                    failed = true;
                    eprintln!("{file}: targets.{}.template: fails on the {sample} sample payload: {e}", target.name);
                }
            }
        }
    }
    if failed {
        return ExitCode::FAILURE;
    }
    println!(
        "{file}: OK ({} targets, template sets: {})",
        config.targets.len(),
        renderer.sets().collect::<Vec<_>>().join(", ")
    );
    ExitCode::SUCCESS
}

fn render(path: &Path, name: &str, payload: Option<&Path>, pretty: bool) -> ExitCode {
    let config = match Config::load(path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let Some(target) = config.targets.get(name) else {
        eprintln!(
            "{}: no target {name:?}; configured: {}",
            config.source.display(),
            config.targets.keys().cloned().collect::<Vec<_>>().join(", ")
        );
        return ExitCode::FAILURE;
    };
    let renderer = match crate::app::load_templates(&config) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let bytes = match payload {
        None => SAMPLES[0].1.as_bytes().to_vec(),
        Some(p) if p == Path::new("-") => {
            let mut buf = Vec::new();
            if let Err(e) = std::io::stdin().read_to_end(&mut buf) {
                eprintln!("cannot read standard input: {e}");
                return ExitCode::FAILURE;
            }
            buf
        }
        Some(p) => match std::fs::read(p) {
            Ok(b) => b,
            Err(e) => {
                eprintln!("{}: cannot read: {e}", p.display());
                return ExitCode::FAILURE;
            }
        },
    };
    let decoded: Decoded = match decode::decode(&bytes) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("payload rejected as the bridge would answer 400: {e}");
            return ExitCode::FAILURE;
        }
    };
    let rendered = renderer.render(target, &decoded);
    if let Some(e) = &rendered.template_error {
        eprintln!(
            "warning: template set {:?} failed, the built-in template rendered these instead: {e}",
            target.template
        );
    }
    if rendered.keyword_inserted > 0 {
        eprintln!(
            "warning: the template left out the keyword; the bridge added it to {} message(s)",
            rendered.keyword_inserted
        );
    }
    for m in &rendered.messages {
        if pretty {
            let v: serde_json::Value = serde_json::from_str(&m.body).expect("rendered bodies are JSON");
            println!("{}", serde_json::to_string_pretty(&v).expect("JSON value prints"));
        } else {
            println!("{}", m.body);
        }
        eprintln!("# {} bytes, msgUuid {}", m.body.len(), m.msg_uuid);
    }
    ExitCode::SUCCESS
}
