//! The command line: `run` (the default), `check-config` and `render`, with logging flags.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use chrono::{DateTime, Utc};
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
    about = "Carries Prometheus Alertmanager notifications into DingTalk, Feishu, Lark and WeCom."
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
    /// Print the exact request bodies a payload would produce for a target, one per line; sends nothing.
    Render {
        /// The target whose settings and templates to use.
        #[arg(long)]
        target: String,
        /// Alertmanager webhook payload (JSON file, or - for standard input); default: a built-in sample.
        payload: Option<PathBuf>,
        /// Pretty-print the bodies (not byte-exact).
        #[arg(long)]
        pretty: bool,
        /// Render and send as if it were this time (RFC 3339), for durations and "today".
        #[arg(long, value_parser = parse_at)]
        at: Option<DateTime<Utc>>,
    },
    /// Write an HTML page showing the messages as the target's chat tool draws them on a phone, with sizes
    /// and checks; sends nothing.
    Preview {
        /// The target whose settings and templates to use.
        #[arg(long)]
        target: String,
        /// Alertmanager webhook payloads (JSON files).
        payloads: Vec<PathBuf>,
        /// Built-in sample payloads by name (see --list-samples); without payloads or samples, a selection.
        #[arg(long = "sample")]
        samples: Vec<String>,
        /// Print the names of the built-in samples and exit.
        #[arg(long)]
        list_samples: bool,
        /// Render as if it were this time (RFC 3339); samples default to the time they were made for.
        #[arg(long, value_parser = parse_at)]
        at: Option<DateTime<Utc>>,
        /// Where to write the page.
        #[arg(long, short = 'o', default_value = "preview.html")]
        out: PathBuf,
    },
}

fn parse_at(s: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(s).map(|t| t.with_timezone(&Utc)).map_err(|e| format!("not an RFC 3339 time: {e}"))
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
        Command::Render { target, payload, pretty, at } => render(&cli.config, &target, payload.as_deref(), pretty, at),
        Command::Preview { target, payloads, samples, list_samples, at, out } => {
            if list_samples {
                crate::render::samples::corpus().iter().for_each(|s| println!("{}", s.name));
                return ExitCode::SUCCESS;
            }
            preview(&cli.config, &target, &payloads, &samples, at, &out)
        }
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

/// The configuration, the named target and its renderer, or the reason why not (already printed).
fn load_target(path: &Path, name: &str) -> Result<(Config, crate::render::Renderer), ExitCode> {
    load(path, name, false)
}

/// The configuration and templates, and the check that `name` is a target (or, `routers`, a router).
fn load(path: &Path, name: &str, routers: bool) -> Result<(Config, crate::render::Renderer), ExitCode> {
    let config = Config::load(path).map_err(|e| {
        eprintln!("{e}");
        ExitCode::FAILURE
    })?;
    if let Some(route) = config.routes.get(name).filter(|_| !routers) {
        let mut to: Vec<&str> = route.targets.values().chain(&route.default).map(String::as_str).collect();
        to.sort();
        to.dedup();
        eprintln!(
            "{}: {name:?} is a router (by label {}): it sends nothing itself; render one of its targets: {}",
            config.source.display(),
            route.by_label,
            to.join(", ")
        );
        return Err(ExitCode::FAILURE);
    }
    let known = config.targets.contains_key(name) || (routers && config.routes.contains_key(name));
    if !known {
        eprintln!(
            "{}: no target {name:?}; configured: {}",
            config.source.display(),
            config.targets.keys().cloned().collect::<Vec<_>>().join(", ")
        );
        return Err(ExitCode::FAILURE);
    }
    let renderer = crate::app::load_templates(&config).map_err(|e| {
        eprintln!("{e}");
        ExitCode::FAILURE
    })?;
    Ok((config, renderer))
}

fn render(path: &Path, name: &str, payload: Option<&Path>, pretty: bool, at: Option<DateTime<Utc>>) -> ExitCode {
    let (config, renderer) = match load(path, name, true) {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    let renderer = match at {
        Some(t) => renderer.at(t),
        None => renderer,
    };
    let now_ms = at.map_or_else(crate::clock::now_ms, |t| t.timestamp_millis());
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
    let routed = config.routes.contains_key(name);
    for share in crate::route::shares(&config, &renderer, name, decoded) {
        let rendered = match share.outcome {
            Ok(rendered) => rendered,
            Err(reason) => {
                let alerts = share.decoded.notification.alerts.len();
                eprintln!("# {}: skipped ({}): {alerts} alert(s), no message", share.target, reason.as_str());
                continue;
            }
        };
        if routed {
            eprintln!("# routed to {} ({} alert(s))", share.target, share.decoded.notification.alerts.len());
        }
        let target = &config.targets[&share.target];
        print_rendered(target, rendered, now_ms, pretty);
    }
    ExitCode::SUCCESS
}

/// Prints one target's request bodies, each with its size and whom it reaches or rings, and what the
/// rendering had to do.
fn print_rendered(target: &crate::config::Target, rendered: crate::render::Rendered, now_ms: i64, pretty: bool) {
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
        // As it would be sent now (durations are computed at send time, Feishu's signature fields added).
        let resolved = crate::render::send_time::resolve(&m.body, now_ms);
        let to = m.recipients.as_ref().map(|d| &d.to);
        let body = target.channel.as_sent(&resolved, now_ms, to);
        if let Some(to) = to {
            eprintln!("# {}", target.channel.describe_recipients(to));
        }
        if pretty {
            let v: serde_json::Value = serde_json::from_str(&body).expect("rendered bodies are JSON");
            println!("{}", serde_json::to_string_pretty(&v).expect("JSON value prints"));
        } else {
            println!("{body}");
        }
        let size = target.channel.measure(&body);
        match target.channel.max_bytes() {
            Some(max) if size != body.len() => {
                eprintln!("# {} bytes, {size} of {max} counted by {}", body.len(), target.channel.service())
            }
            Some(_) => eprintln!("# {} bytes, message {}", body.len(), m.msg_uuid),
            None => eprintln!("# {} bytes, msgUuid {}", body.len(), m.msg_uuid),
        }
    }
    let heard = &rendered.mentioned;
    if heard.rung > 0 || heard.all {
        eprintln!(
            "# rings {} {}{}",
            heard.rung,
            if heard.rung == 1 { "person" } else { "people" },
            if heard.all { " and @all" } else { "" }
        );
    }
    for (what, names) in [
        ("named in the alerts but not in the people directory", &heard.unknown),
        (&*format!("without a {} identifier in the people directory", target.channel.service()), &heard.no_identifier),
        ("past the tool's limit on mentions", &heard.capped),
    ] {
        if !names.is_empty() {
            eprintln!("# not rung, {what}: {}", names.join(", "));
        }
    }
}

fn preview(
    path: &Path,
    name: &str,
    payloads: &[PathBuf],
    samples: &[String],
    at: Option<DateTime<Utc>>,
    out: &Path,
) -> ExitCode {
    use crate::render::{preview, samples as corpus};
    let (config, renderer) = match load_target(path, name) {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    let target = &config.targets[name];
    let mut inputs: Vec<(String, Vec<u8>)> = vec![];
    for p in payloads {
        match std::fs::read(p) {
            Ok(b) => inputs.push((p.display().to_string(), b)),
            Err(e) => {
                eprintln!("{}: cannot read: {e}", p.display());
                return ExitCode::FAILURE;
            }
        }
    }
    let mut names: Vec<String> = samples.to_vec();
    if names.is_empty() && payloads.is_empty() {
        names = crate::render::samples::PREVIEW_SAMPLES.iter().map(|s| s.to_string()).collect();
    }
    let all = if names.is_empty() { vec![] } else { corpus::corpus() };
    for n in &names {
        let Some(sample) = all.iter().find(|s| &s.name == n) else {
            eprintln!("no sample {n:?}; --list-samples prints their names");
            return ExitCode::FAILURE;
        };
        inputs.push((sample.name.clone(), sample.payload.to_string().into_bytes()));
    }
    // Samples were made for a fixed time; payloads are shown as of now unless told otherwise.
    let at = at.unwrap_or_else(|| {
        if payloads.is_empty() { parse_at(corpus::NOW).expect("the samples' time parses") } else { Utc::now() }
    });
    let renderer = renderer.at(at);
    let mut sections = vec![];
    for (label, bytes) in inputs {
        let decoded = match decode::decode(&bytes) {
            Ok(d) => d,
            Err(e) => {
                eprintln!("{label}: payload rejected as the bridge would answer 400: {e}");
                return ExitCode::FAILURE;
            }
        };
        sections.push(preview::section(&renderer, target, label, &decoded, at));
    }
    let html = preview::page_for(&config, target, &sections);
    if let Err(e) = std::fs::write(out, html) {
        eprintln!("{}: cannot write: {e}", out.display());
        return ExitCode::FAILURE;
    }
    eprintln!("wrote {} ({} notifications)", out.display(), sections.len());
    ExitCode::SUCCESS
}
