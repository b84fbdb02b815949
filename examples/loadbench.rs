//! Load benchmark: starts the release binary against a fast loopback DingTalk sink, drives its webhook
//! with keep-alive connections, and reports throughput, latency, memory and CPU. Run it with
//! `bench/load.sh` (which builds the binary first); `--help` lists the knobs.
//!
//! Everything stays on 127.0.0.1 and every phase ends by itself: a fixed load time, then at most
//! `--drain-timeout` for the queue to empty.
//!
//! Phases, each against a fresh bridge and an empty database:
//! - `1 alert`: closed loop, `--connections` clients each posting as fast as answers come back;
//! - `300 alerts`: the same with 300-alert notifications (split into several messages each);
//! - `fixed rate`: open loop at `--rate` webhooks/s, latency measured from each request's scheduled time
//!   (so a slow answer cannot hide the requests queued behind it).
//!
//! Side by side: with `--peer` (or `PEER_BIN`) pointing at a prometheus-webhook-dingtalk v2.1.0 binary,
//! every phase runs against the peer and the bridge in turn, `--rounds` times, alternating which goes
//! first, and the ratios of their medians are printed with each side's spread.
#![forbid(unsafe_code)]

mod support;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use clap::Parser;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use support::status_mib;
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;

#[derive(Debug, Parser)]
#[command(about = "Load benchmark for dingtalk-bridge (loopback only)")]
struct Args {
    /// The bridge binary (build it with --release).
    #[arg(long, default_value = "target/release/dingtalk-bridge")]
    bridge: PathBuf,
    /// Concurrent keep-alive connections posting webhooks.
    #[arg(long, default_value_t = 32)]
    connections: usize,
    /// Connections for the 300-alert phase.
    #[arg(long, default_value_t = 8)]
    heavy_connections: usize,
    /// Load time of each phase, in seconds.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Targets (robots) the load is spread over; each has its own in-order sender.
    #[arg(long, default_value_t = 8)]
    targets: usize,
    /// Offered rate of the fixed-rate phase, webhooks per second.
    #[arg(long, default_value_t = 1000)]
    rate: u64,
    /// storage.sync of the bridge: full (fsync each commit) or normal.
    #[arg(long, default_value = "full")]
    sync: String,
    /// The bridge's log level (its log goes to a file in the phase's directory).
    #[arg(long, default_value = "info")]
    log_level: String,
    /// Longest wait, after the load stops, for every accepted message to reach the sink.
    #[arg(long, default_value_t = 120)]
    drain_timeout: u64,
    /// Only these phases (1, 300, rate); default all.
    #[arg(long, value_delimiter = ',')]
    phases: Vec<String>,
    /// Also write the results as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// A prometheus-webhook-dingtalk (v2.1.0) binary to run the same load against, side by side.
    #[arg(long, env = "PEER_BIN")]
    peer: Option<PathBuf>,
    /// With a peer: rounds of every phase, alternating which of the two goes first.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
}

/// What is being measured.
#[derive(Debug, Clone, PartialEq)]
enum Subject {
    Bridge,
    /// prometheus-webhook-dingtalk: the same webhook path, its own configuration, one message per
    /// notification, answered once DingTalk has answered.
    Peer(PathBuf),
}

impl Subject {
    fn name(&self) -> &'static str {
        match self {
            Subject::Bridge => "dingtalk-bridge",
            Subject::Peer(_) => "peer",
        }
    }
}

/// What one phase measured. Times in milliseconds, memory in MiB.
#[derive(Debug, Serialize)]
struct PhaseResult {
    subject: &'static str,
    phase: String,
    alerts_per_notification: usize,
    connections: usize,
    targets: usize,
    offered_per_s: Option<u64>,
    load_s: f64,
    accepted: u64,
    not_accepted: u64,
    accepted_per_s: f64,
    ingest_p50_ms: f64,
    ingest_p99_ms: f64,
    ingest_max_ms: f64,
    messages_delivered: u64,
    messages_expected: u64,
    delivered_per_s: f64,
    e2e_p50_ms: f64,
    e2e_p99_ms: f64,
    drain_s: f64,
    rss_idle_mib: f64,
    rss_peak_mib: f64,
    rss_after_mib: f64,
    anon_idle_mib: f64,
    anon_peak_mib: f64,
    cpu_s_per_1000_notifications: f64,
}

/// The sink's view: when each notification was posted to the bridge, and what reached "DingTalk".
struct Sink {
    start: Instant,
    /// Notification number -> microseconds after `start` when its webhook was sent.
    sent: Mutex<HashMap<u64, u64>>,
    /// Webhook sent -> message received, microseconds, one per message.
    e2e: Mutex<Vec<u64>>,
    delivered: AtomicU64,
    last_us: AtomicU64,
}

impl Sink {
    fn new() -> Arc<Sink> {
        Arc::new(Sink {
            start: Instant::now(),
            sent: Mutex::new(HashMap::new()),
            e2e: Mutex::new(Vec::new()),
            delivered: AtomicU64::new(0),
            last_us: AtomicU64::new(0),
        })
    }

    fn now_us(&self) -> u64 {
        self.start.elapsed().as_micros() as u64
    }

    fn received(&self, body: &[u8]) {
        let now = self.now_us();
        if let Some(n) = notification_number(body)
            && let Some(&sent) = self.sent.lock().unwrap().get(&n)
        {
            self.e2e.lock().unwrap().push(now.saturating_sub(sent));
        }
        self.delivered.fetch_add(1, Ordering::Relaxed);
        self.last_us.fetch_max(now, Ordering::Relaxed);
    }
}

/// The notification a message belongs to: the digits after "Loadbench" (its group name).
fn notification_number(body: &[u8]) -> Option<u64> {
    let pat = b"Loadbench";
    let at = body.windows(pat.len()).position(|w| w == pat)? + pat.len();
    let digits: Vec<u8> = body[at..].iter().take_while(|b| b.is_ascii_digit()).copied().collect();
    std::str::from_utf8(&digits).ok()?.parse().ok()
}

/// A DingTalk stand-in that answers every post at once with success.
async fn start_sink(sink: Arc<Sink>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the sink");
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { continue };
            let _ = stream.set_nodelay(true);
            let sink = sink.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let sink = sink.clone();
                    async move {
                        let body = req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                        sink.received(&body);
                        let mut resp =
                            Response::new(Full::new(Bytes::from_static(b"{\"errcode\":0,\"errmsg\":\"ok\"}")));
                        resp.headers_mut().insert("content-type", "application/json".parse().unwrap());
                        Ok::<_, std::convert::Infallible>(resp)
                    }
                });
                let _ =
                    hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
            });
        }
    });
    addr
}

/// An Alertmanager webhook payload for notification `n` with `alerts` firing alerts.
fn payload(n: u64, alerts: usize) -> Vec<u8> {
    let mut items = Vec::with_capacity(alerts);
    for i in 0..alerts {
        items.push(format!(
            r#"{{"status":"firing","labels":{{"alertname":"Loadbench{n}","instance":"node{i}.prod.example.com:9100","job":"node","mountpoint":"/data","severity":"warning"}},"annotations":{{"description":"Filesystem /data on node{i} has less than 5% space left (4.2%).","runbook_url":"https://runbooks.example.com/NodeDiskFull","summary":"Disk almost full on node{i}"}},"startsAt":"2026-11-22T02:16:51.1959598Z","endsAt":"0001-01-01T00:00:00Z","generatorURL":"http://prometheus.example.com:9090/graph?g0.expr=node_filesystem_avail_bytes","fingerprint":"{n:012x}{i:04x}"}}"#
        ));
    }
    format!(
        r#"{{"receiver":"dingtalk","status":"firing","alerts":[{}],"groupLabels":{{"alertname":"Loadbench{n}"}},"commonLabels":{{"alertname":"Loadbench{n}","job":"node","mountpoint":"/data","severity":"warning"}},"commonAnnotations":{{}},"externalURL":"http://alertmanager.example.com:9093","version":"4","groupKey":"{{}}/{{severity=~\"warning|critical\"}}:{{alertname=\"Loadbench{n}\"}}","truncatedAlerts":0}}"#,
        items.join(",")
    )
    .into_bytes()
}

fn config(dir: &Path, listen: SocketAddr, sink: SocketAddr, targets: usize, sync: &str) -> String {
    let mut yaml = format!(
        "listen: {listen}\nstorage:\n  path: {}\n  sync: {sync}\ndelivery:\n  rate_limit: off\ntargets:\n",
        dir.join("outbox.sqlite3").display()
    );
    for t in 0..targets {
        yaml.push_str(&format!(
            "  t{t}:\n    url: http://{sink}/robot/send?access_token=bench-token-{t}\n    secret: SECbench{t}\n    keyword: alert\n"
        ));
    }
    yaml
}

/// The peer's configuration: the same robots, signed the same way (it has no keyword setting).
fn peer_config(sink: SocketAddr, targets: usize) -> String {
    let mut yaml = String::from("targets:\n");
    for t in 0..targets {
        yaml.push_str(&format!(
            "  t{t}:\n    url: http://{sink}/robot/send?access_token=bench-token-{t}\n    secret: SECbench{t}\n"
        ));
    }
    yaml
}

struct BridgeProcess {
    child: Child,
    addr: SocketAddr,
}

impl BridgeProcess {
    async fn start(args: &Args, subject: &Subject, dir: &Path, sink: SocketAddr) -> BridgeProcess {
        let addr = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("find a free port");
            l.local_addr().unwrap()
        };
        let log = std::fs::File::create(dir.join("bridge.log")).unwrap();
        let mut command = match subject {
            Subject::Bridge => {
                let cfg = dir.join("bench.yaml");
                std::fs::write(&cfg, config(dir, addr, sink, args.targets, &args.sync)).unwrap();
                let mut c = Command::new(&args.bridge);
                c.arg("--config").arg(&cfg).arg("--log-level").arg(&args.log_level).arg("run");
                c
            }
            Subject::Peer(bin) => {
                let cfg = dir.join("peer.yml");
                std::fs::write(&cfg, peer_config(sink, args.targets)).unwrap();
                let mut c = Command::new(bin);
                c.arg(format!("--config.file={}", cfg.display()))
                    .arg(format!("--web.listen-address={addr}"))
                    .arg(format!("--log.level={}", args.log_level));
                c
            }
        };
        let program = match subject {
            Subject::Bridge => args.bridge.clone(),
            Subject::Peer(bin) => bin.clone(),
        };
        let child =
            command.stdout(Stdio::null()).stderr(log).spawn().unwrap_or_else(|e| {
                panic!("cannot start {}: {e} (build it: cargo build --release)", program.display())
            });
        let bridge = BridgeProcess { child, addr };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(mut c) = Client::connect(addr).await
                && c.get("/-/ready").await == Some(200)
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the bridge did not become ready; see {}",
                dir.join("bridge.log").display()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bridge
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn stop(mut self) {
        let _ = Command::new("kill").arg("-TERM").arg(self.pid().to_string()).status();
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Anonymous (private) resident memory in MiB: RSS without the mapped executable and libraries.
fn anon_mib(pid: u32) -> f64 {
    status_mib(pid, "RssAnon:")
}

/// Resident and peak resident memory in MiB (Linux /proc).
fn memory_mib(pid: u32) -> (f64, f64) {
    (status_mib(pid, "VmRSS:"), status_mib(pid, "VmHWM:"))
}

/// User + system CPU seconds the process has used (USER_HZ is 100 on Linux).
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> =
        stat.rsplit_once(')').map(|(_, rest)| rest.split_whitespace().collect()).unwrap_or_default();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // After the command name: state is field 3 (index 0 here), utime 14 and stime 15.
    (ticks(11) + ticks(12)) / 100.0
}

/// One keep-alive HTTP/1.1 connection to the bridge.
struct Client {
    sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
}

impl Client {
    async fn connect(addr: SocketAddr) -> std::io::Result<Client> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let (sender, conn) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(std::io::Error::other)?;
        tokio::spawn(conn);
        Ok(Client { sender })
    }

    async fn get(&mut self, path: &str) -> Option<u16> {
        let req = Request::get(path).header("host", "bench").body(Full::new(Bytes::new())).unwrap();
        let resp = self.sender.send_request(req).await.ok()?;
        let status = resp.status().as_u16();
        resp.into_body().collect().await.ok()?;
        Some(status)
    }

    /// Posts a webhook; the status and how many messages the bridge made of it (the peer says nothing:
    /// it sends one message per notification).
    async fn post(&mut self, path: &str, body: Vec<u8>) -> Option<(u16, u64)> {
        self.sender.ready().await.ok()?;
        let req = Request::post(path)
            .header("host", "bench")
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))
            .unwrap();
        let resp = self.sender.send_request(req).await.ok()?;
        let status = resp.status().as_u16();
        let body = resp.into_body().collect().await.ok()?.to_bytes();
        // The bridge lists the messages it stored; any other answer (the peer's) stands for one message.
        let messages = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v.get("messages").and_then(|m| m.as_array()).map(|m| m.len() as u64))
            .unwrap_or(1);
        Some((status, messages))
    }
}

#[derive(Default)]
struct ClientTally {
    latencies_us: Vec<u64>,
    accepted: u64,
    not_accepted: u64,
    messages: u64,
}

#[derive(Clone, Copy)]
enum Mode {
    /// Each connection posts again as soon as the answer arrives.
    Closed,
    /// Requests at a fixed total rate, spread over the connections.
    Rate(u64),
}

/// One connection's load: posts until `until`, cycling its notifications over the targets.
#[allow(clippy::too_many_arguments)]
async fn drive(
    addr: SocketAddr,
    index: usize,
    args_targets: usize,
    connections: usize,
    alerts: usize,
    mode: Mode,
    until: Instant,
    sink: Arc<Sink>,
    counter: Arc<AtomicU64>,
) -> ClientTally {
    let mut tally = ClientTally::default();
    let Ok(mut client) = Client::connect(addr).await else {
        tally.not_accepted += 1;
        return tally;
    };
    let path = format!("/dingtalk/t{}/send", index % args_targets);
    let start = Instant::now();
    let mut k: u64 = 0;
    loop {
        let scheduled = match mode {
            Mode::Closed => Instant::now(),
            Mode::Rate(rate) => {
                let at = start + Duration::from_secs_f64((k * connections as u64 + index as u64) as f64 / rate as f64);
                tokio::time::sleep_until(at).await;
                at
            }
        };
        if scheduled >= until {
            break;
        }
        k += 1;
        let n = counter.fetch_add(1, Ordering::Relaxed);
        let body = payload(n, alerts);
        sink.sent.lock().unwrap().insert(n, scheduled.duration_since(sink.start).as_micros() as u64);
        match client.post(&path, body).await {
            Some((200, messages)) => {
                tally.accepted += 1;
                tally.messages += messages;
                tally.latencies_us.push(scheduled.elapsed().as_micros() as u64);
            }
            Some(_) => tally.not_accepted += 1,
            None => {
                tally.not_accepted += 1;
                match Client::connect(addr).await {
                    Ok(c) => client = c,
                    Err(_) => break,
                }
            }
        }
    }
    tally
}

fn percentile_ms(sorted_us: &[u64], p: f64) -> f64 {
    if sorted_us.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted_us.len() as f64 * p).ceil() as usize).clamp(1, sorted_us.len()) - 1;
    sorted_us[i] as f64 / 1000.0
}

async fn phase(
    args: &Args,
    subject: &Subject,
    name: &str,
    alerts: usize,
    connections: usize,
    mode: Mode,
) -> PhaseResult {
    let dir = tempfile::tempdir().expect("temporary directory");
    let sink = Sink::new();
    let sink_addr = start_sink(sink.clone()).await;
    let bridge = BridgeProcess::start(args, subject, dir.path(), sink_addr).await;
    let pid = bridge.pid();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (rss_idle, _) = memory_mib(pid);
    let anon_idle = anon_mib(pid);
    let cpu_before = cpu_seconds(pid);
    // The kernel keeps no peak of anonymous memory alone: sample it.
    let anon_peak = Arc::new(Mutex::new(anon_idle));
    let sampler = tokio::spawn({
        let anon_peak = anon_peak.clone();
        async move {
            loop {
                let now = anon_mib(pid);
                {
                    let mut peak = anon_peak.lock().unwrap();
                    *peak = peak.max(now);
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    });

    let counter = Arc::new(AtomicU64::new(0));
    let load_start = Instant::now();
    let until = load_start + Duration::from_secs(args.duration);
    let start_us = sink.now_us();
    let tasks: Vec<_> = (0..connections)
        .map(|i| {
            tokio::spawn(drive(
                bridge.addr,
                i,
                args.targets,
                connections,
                alerts,
                mode,
                until,
                sink.clone(),
                counter.clone(),
            ))
        })
        .collect();
    let mut tally = ClientTally::default();
    for t in tasks {
        let t = t.await.expect("client task");
        tally.latencies_us.extend(t.latencies_us);
        tally.accepted += t.accepted;
        tally.not_accepted += t.not_accepted;
        tally.messages += t.messages;
    }
    let load_s = load_start.elapsed().as_secs_f64();

    let drain_deadline = Instant::now() + Duration::from_secs(args.drain_timeout);
    while sink.delivered.load(Ordering::Relaxed) < tally.messages && Instant::now() < drain_deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let cpu = cpu_seconds(pid) - cpu_before;
    let (_, rss_peak) = memory_mib(pid);
    sampler.abort();
    let anon_peak = *anon_peak.lock().unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (rss_after, _) = memory_mib(pid);
    bridge.stop();

    let delivered = sink.delivered.load(Ordering::Relaxed);
    let last_us = sink.last_us.load(Ordering::Relaxed);
    let deliver_s = (last_us.saturating_sub(start_us)) as f64 / 1e6;
    tally.latencies_us.sort_unstable();
    let mut e2e = std::mem::take(&mut *sink.e2e.lock().unwrap());
    e2e.sort_unstable();
    PhaseResult {
        subject: subject.name(),
        phase: name.to_string(),
        alerts_per_notification: alerts,
        connections,
        targets: args.targets,
        offered_per_s: match mode {
            Mode::Closed => None,
            Mode::Rate(r) => Some(r),
        },
        load_s,
        accepted: tally.accepted,
        not_accepted: tally.not_accepted,
        accepted_per_s: tally.accepted as f64 / load_s,
        ingest_p50_ms: percentile_ms(&tally.latencies_us, 0.50),
        ingest_p99_ms: percentile_ms(&tally.latencies_us, 0.99),
        ingest_max_ms: percentile_ms(&tally.latencies_us, 1.0),
        messages_delivered: delivered,
        messages_expected: tally.messages,
        delivered_per_s: if deliver_s > 0.0 { delivered as f64 / deliver_s } else { 0.0 },
        e2e_p50_ms: percentile_ms(&e2e, 0.50),
        e2e_p99_ms: percentile_ms(&e2e, 0.99),
        drain_s: (last_us as f64 / 1e6 - (start_us as f64 / 1e6 + load_s)).max(0.0),
        rss_idle_mib: rss_idle,
        rss_peak_mib: rss_peak,
        rss_after_mib: rss_after,
        anon_idle_mib: anon_idle,
        anon_peak_mib: anon_peak,
        cpu_s_per_1000_notifications: if tally.accepted > 0 { cpu / tally.accepted as f64 * 1000.0 } else { f64::NAN },
    }
}

fn print_table(results: &[PhaseResult]) {
    print_table_refs(&results.iter().collect::<Vec<_>>());
}

fn print_table_refs(results: &[&PhaseResult]) {
    type Row = (&'static str, fn(&PhaseResult) -> String);
    let rows: [Row; 18] = [
        ("connections / targets", |r| format!("{} / {}", r.connections, r.targets)),
        ("offered webhooks/s", |r| r.offered_per_s.map_or("as fast as answered".into(), |v| v.to_string())),
        ("accepted webhooks/s", |r| format!("{:.0}", r.accepted_per_s)),
        ("not accepted", |r| r.not_accepted.to_string()),
        ("ingest p50 ms", |r| format!("{:.2}", r.ingest_p50_ms)),
        ("ingest p99 ms", |r| format!("{:.2}", r.ingest_p99_ms)),
        ("ingest max ms", |r| format!("{:.2}", r.ingest_max_ms)),
        ("messages delivered / expected", |r| format!("{} / {}", r.messages_delivered, r.messages_expected)),
        ("delivered messages/s", |r| format!("{:.0}", r.delivered_per_s)),
        ("end-to-end p50 ms", |r| format!("{:.1}", r.e2e_p50_ms)),
        ("end-to-end p99 ms", |r| format!("{:.1}", r.e2e_p99_ms)),
        ("drain after load s", |r| format!("{:.1}", r.drain_s)),
        ("RSS idle MiB", |r| format!("{:.1}", r.rss_idle_mib)),
        ("RSS peak MiB", |r| format!("{:.1}", r.rss_peak_mib)),
        ("RSS after load MiB", |r| format!("{:.1}", r.rss_after_mib)),
        ("anonymous RSS idle / peak MiB", |r| format!("{:.1} / {:.1}", r.anon_idle_mib, r.anon_peak_mib)),
        ("CPU s / 1000 notifications", |r| format!("{:.3}", r.cpu_s_per_1000_notifications)),
        ("load time s", |r| format!("{:.1}", r.load_s)),
    ];
    let mut header = format!("| {:<30} |", "");
    let mut rule = format!("|{}|", "-".repeat(32));
    for r in results {
        header.push_str(&format!(" {:>22} |", r.phase));
        rule.push_str(&format!("{}:|", "-".repeat(23)));
    }
    println!("{header}\n{rule}");
    for (label, value) in rows {
        let mut line = format!("| {label:<30} |");
        for r in results {
            line.push_str(&format!(" {:>22} |", value(r)));
        }
        println!("{line}");
    }
}

/// The phases asked for: name, alerts per notification, connections, mode.
fn phases(args: &Args) -> Vec<(String, usize, usize, Mode)> {
    let want = |p: &str| args.phases.is_empty() || args.phases.iter().any(|x| x == p);
    let mut out = vec![];
    if want("1") {
        out.push(("1 alert".to_string(), 1, args.connections, Mode::Closed));
    }
    if want("300") {
        out.push(("300 alerts".to_string(), 300, args.heavy_connections, Mode::Closed));
    }
    if want("rate") {
        out.push((format!("{}/s, 1 alert", args.rate), 1, args.connections, Mode::Rate(args.rate)));
    }
    out
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    if v.is_empty() { f64::NAN } else { v[v.len() / 2] }
}

/// For each phase: the bridge's and the peer's spread of each figure, and the ratio of their medians.
fn print_ratios(results: &[PhaseResult]) {
    type Figure = (&'static str, fn(&PhaseResult) -> f64, &'static str);
    let figures: [Figure; 5] = [
        ("delivered messages/s", |r| r.delivered_per_s, "higher is better"),
        ("ingest p50 ms", |r| r.ingest_p50_ms, "lower is better"),
        ("ingest p99 ms", |r| r.ingest_p99_ms, "lower is better"),
        ("peak RSS MiB", |r| r.rss_peak_mib, "lower is better"),
        ("CPU s / 1000 notifications", |r| r.cpu_s_per_1000_notifications, "lower is better"),
    ];
    let mut names: Vec<&str> = vec![];
    for r in results {
        if !names.contains(&r.phase.as_str()) {
            names.push(&r.phase);
        }
    }
    println!("| phase | figure | dingtalk-bridge (min–max) | peer (min–max) | bridge / peer (medians) |");
    println!("|---|---|---:|---:|---:|");
    for phase in names {
        let of = |subject: &str, f: fn(&PhaseResult) -> f64| -> Vec<f64> {
            results.iter().filter(|r| r.phase == phase && r.subject == subject).map(f).collect()
        };
        for (label, f, better) in figures {
            let (ours, peer) = (of("dingtalk-bridge", f), of("peer", f));
            let spread = |v: &[f64]| {
                let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
                let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                format!("{lo:.2}–{hi:.2}")
            };
            println!(
                "| {phase} | {label} | {} | {} | {:.2} ({better}) |",
                spread(&ours),
                spread(&peer),
                median(ours.clone()) / median(peer.clone())
            );
        }
    }
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    assert!(args.bridge.exists(), "{} not found; build it first: cargo build --release", args.bridge.display());
    let mut results = vec![];
    match &args.peer {
        None => {
            for (name, alerts, connections, mode) in phases(&args) {
                results.push(phase(&args, &Subject::Bridge, &name, alerts, connections, mode).await);
            }
        }
        Some(peer) => {
            assert!(peer.exists(), "{} not found (PEER_BIN): build it with ../shared/anchor/build.sh", peer.display());
            let both = [Subject::Peer(peer.clone()), Subject::Bridge];
            for round in 0..args.rounds.max(1) {
                for (name, alerts, connections, mode) in phases(&args) {
                    // Alternating which goes first: neither always meets a machine warmed by the other.
                    for i in 0..2 {
                        let subject = &both[(i + round) % 2];
                        eprintln!("round {}: {name}: {}", round + 1, subject.name());
                        results.push(phase(&args, subject, &name, alerts, connections, mode).await);
                    }
                }
            }
        }
    }
    println!(
        "\ndingtalk-bridge load benchmark: {}s per phase, storage.sync {}, log level {}, rate limiting off, {} targets, loopback sink\n",
        args.duration, args.sync, args.log_level, args.targets
    );
    if args.peer.is_none() {
        print_table(&results);
    } else {
        for subject in ["dingtalk-bridge", "peer"] {
            println!("{subject}, every round:\n");
            let rows: Vec<&PhaseResult> = results.iter().filter(|r| r.subject == subject).collect();
            print_table_refs(&rows);
            println!();
        }
        println!("Side by side ({} rounds):\n", args.rounds.max(1));
        print_ratios(&results);
    }
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&results).unwrap()).expect("write the JSON results");
        println!("\nJSON: {}", path.display());
    }
}
