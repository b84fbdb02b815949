//! Every metric the bridge exports, in its own registry, recorded only through the typed functions
//! below: a call site names a target and, where there is one, a reason enum, never a label string.
//! Labels are bounded: target names from the configuration, HTTP codes, alert status and reason enums;
//! never alert names or label values.
//!
//! Series appear when something happens to them, except the few per target that alert rules and the
//! dashboard need from their first scrape (created by [`Metrics::init_target`]): queue depth and oldest
//! age, messages finished, throttles and template failures. A counter that first appears at 1 is
//! invisible to `increase()`, so those must exist at 0; the failure alerts catch new series otherwise.

use std::time::Duration;

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};

/// The label used for requests to a target that is not configured (the path is caller-controlled).
pub const UNKNOWN_TARGET: &str = "_unknown";

/// A bounded reason, as a label value.
pub trait Reason: Copy {
    fn label(self) -> &'static str;
}

impl Reason for crate::channel::Reason {
    fn label(self) -> &'static str {
        self.as_str()
    }
}

/// Why a notification was acknowledged without being sent again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Suppressed {
    /// Identical to one accepted within `delivery.dedup_window`.
    Duplicate,
}

impl Reason for Suppressed {
    fn label(self) -> &'static str {
        match self {
            Suppressed::Duplicate => "duplicate",
        }
    }
}

pub struct Metrics {
    registry: Registry,
    webhook_requests: IntCounterVec,
    alerts_received: IntCounterVec,
    notifications: IntCounterVec,
    notifications_failed: IntCounterVec,
    notification_requests: IntCounterVec,
    notification_requests_failed: IntCounterVec,
    notification_latency: HistogramVec,
    queue_depth: IntGaugeVec,
    target_info: IntGaugeVec,
    recipients: IntCounterVec,
    queue_oldest_age: IntGaugeVec,
    template_failures: IntCounterVec,
    keyword_inserted: IntCounterVec,
    messages_split: IntCounterVec,
    messages_truncated: IntCounterVec,
    throttled: IntCounterVec,
    rate_limited: IntCounterVec,
    digests: IntCounterVec,
    suppressed: IntCounterVec,
    skipped: IntCounterVec,
    target_enabled: IntGaugeVec,
    mentions: IntCounterVec,
    alerts_truncated: IntCounterVec,
    corrupt_records: IntCounterVec,
    ready: IntGauge,
    connections_open: IntGauge,
    inflight_bytes: IntGauge,
    connections_closed: IntCounterVec,
    store_healthy: IntGauge,
    reload_successful: IntGauge,
    reload_timestamp: IntGauge,
}

fn counter(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric definition");
    registry.register(Box::new(c.clone())).expect("metric registered once");
    c
}

fn gauge(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let g = IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric definition");
    registry.register(Box::new(g.clone())).expect("metric registered once");
    g
}

fn plain(registry: &Registry, name: &str, help: &str) -> IntGauge {
    let g = IntGauge::new(name, help).expect("valid metric definition");
    registry.register(Box::new(g.clone())).expect("metric registered once");
    g
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let r = &registry;
        let notification_latency = HistogramVec::new(
            HistogramOpts::new(
                "dingtalk_bridge_notification_latency_seconds",
                "Duration of each HTTP request to a chat tool, successful or not.",
            )
            .buckets(vec![0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0]),
            &["target"],
        )
        .expect("valid metric definition");
        registry.register(Box::new(notification_latency.clone())).expect("metric registered once");
        #[cfg(target_os = "linux")]
        registry
            .register(Box::new(prometheus::process_collector::ProcessCollector::for_self()))
            .expect("process collector registered once");
        let build_info =
            gauge(r, "dingtalk_bridge_build_info", "Always 1; the version label says which build runs.", &["version"]);
        build_info.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        let target_info = gauge(
            r,
            "dingtalk_bridge_target_info",
            "Always 1 for each configured target; the type label says its chat tool (for joins on target).",
            &["target", "type"],
        );

        Metrics {
            target_info,
            recipients: counter(
                r,
                "dingtalk_bridge_recipients_total",
                "DingTalk app recipients (users, groups) by outcome: delivered, failed (never will be; with the reason), deferred (flow-controlled, retried).",
                &["target", "outcome", "reason"],
            ),
            webhook_requests: counter(
                r,
                "dingtalk_bridge_webhook_requests_total",
                "Webhook requests received, by target and HTTP status code answered.",
                &["target", "code"],
            ),
            alerts_received: counter(
                r,
                "dingtalk_bridge_alerts_received_total",
                "Alerts in accepted notifications, by status.",
                &["target", "status"],
            ),
            notifications: counter(
                r,
                "dingtalk_bridge_notifications_total",
                "Messages finished: delivered or given up.",
                &["target"],
            ),
            notifications_failed: counter(
                r,
                "dingtalk_bridge_notifications_failed_total",
                "Messages given up, by reason.",
                &["target", "reason"],
            ),
            notification_requests: counter(
                r,
                "dingtalk_bridge_notification_requests_total",
                "HTTP requests (attempts) sent to the chat tools.",
                &["target"],
            ),
            notification_requests_failed: counter(
                r,
                "dingtalk_bridge_notification_requests_failed_total",
                "HTTP requests to the chat tools that did not deliver, by reason.",
                &["target", "reason"],
            ),
            notification_latency,
            queue_depth: gauge(r, "dingtalk_bridge_queue_depth", "Messages waiting in the outbox.", &["target"]),
            queue_oldest_age: gauge(
                r,
                "dingtalk_bridge_queue_oldest_age_seconds",
                "Age of the oldest message waiting in the outbox.",
                &["target"],
            ),
            template_failures: counter(
                r,
                "dingtalk_bridge_template_failures_total",
                "Notifications whose template failed and were rendered with the built-in one.",
                &["target"],
            ),
            keyword_inserted: counter(
                r,
                "dingtalk_bridge_keyword_inserted_total",
                "Messages the bridge added the robot's keyword to because the template left it out.",
                &["target"],
            ),
            messages_split: counter(
                r,
                "dingtalk_bridge_messages_split_total",
                "Notifications split into several messages to fit the size limit.",
                &["target"],
            ),
            messages_truncated: counter(
                r,
                "dingtalk_bridge_messages_truncated_total",
                "Messages whose text was cut to fit the size limit.",
                &["target"],
            ),
            throttled: counter(
                r,
                "dingtalk_bridge_throttled_total",
                "Times DingTalk answered that a robot sends too fast.",
                &["target"],
            ),
            rate_limited: counter(
                r,
                "dingtalk_bridge_rate_limited_total",
                "Sends that waited for the robot's rate budget.",
                &["target"],
            ),
            digests: counter(
                r,
                "dingtalk_bridge_digests_total",
                "Digest messages made because a robot's backlog could not drain within its budget.",
                &["target"],
            ),
            target_enabled: gauge(
                r,
                "dingtalk_bridge_target_enabled",
                "1 while the target sends, 0 while it is disabled (its configuration's enabled, or the console's switch).",
                &["target"],
            ),
            skipped: counter(
                r,
                "dingtalk_bridge_notifications_skipped_total",
                "Notifications acknowledged without a message, by reason: send_on (the target takes none of its alerts), no_route (a router has no target for them), disabled (the target is switched off).",
                &["target", "reason"],
            ),
            mentions: counter(
                r,
                "dingtalk_bridge_mentions_total",
                "People a notification's messages rang or could not: rung, all (@all), unknown (a name from an alert not in the people directory), no_identifier (no identifier for the target's tool), capped (past the tool's limit).",
                &["target", "outcome"],
            ),
            suppressed: counter(
                r,
                "dingtalk_bridge_notifications_suppressed_total",
                "Notifications acknowledged but not sent again, by reason.",
                &["target", "reason"],
            ),
            alerts_truncated: counter(
                r,
                "dingtalk_bridge_alerts_truncated_total",
                "Alerts Alertmanager left out of notifications (truncatedAlerts, from max_alerts).",
                &["target"],
            ),
            corrupt_records: counter(
                r,
                "dingtalk_bridge_store_corrupt_records_total",
                "Stored records the bridge could not read back (a digest summary); the message is sent on its own.",
                &["target"],
            ),
            ready: plain(
                r,
                "dingtalk_bridge_ready",
                "1 when the bridge accepts notifications (config, templates and store are up).",
            ),
            connections_open: plain(
                r,
                "dingtalk_bridge_http_connections_open",
                "HTTP connections open to the bridge's listener.",
            ),
            inflight_bytes: plain(
                r,
                "dingtalk_bridge_http_inflight_bytes",
                "Request bytes held at once: bodies being read and notifications being decoded (server.max_inflight_bytes bounds it).",
            ),
            connections_closed: counter(
                r,
                "dingtalk_bridge_http_connections_closed_total",
                "Connections the bridge closed or refused to keep answering others, by reason: request_timeout, idle_timeout, evicted (to make room), refused.",
                &["reason"],
            ),
            store_healthy: plain(
                r,
                "dingtalk_bridge_store_healthy",
                "1 while the outbox's file is in place and writable; 0 while it is missing, replaced or failing writes (the webhook answers 503).",
            ),
            reload_successful: plain(
                r,
                "dingtalk_bridge_config_last_reload_successful",
                "1 if the last configuration (re)load succeeded; 0 while a broken one is refused and the previous one serves.",
            ),
            reload_timestamp: plain(
                r,
                "dingtalk_bridge_config_last_reload_success_timestamp_seconds",
                "When the configuration was last loaded successfully, as a Unix timestamp.",
            ),
            registry,
        }
    }

    /// Creates at zero the per-target series alert rules and the dashboard need before the first event.
    /// The configured targets and their types (`dingtalk`, `feishu`, `lark`, `wecom`), replacing the
    /// previous configuration's.
    pub fn targets<'a>(&self, targets: impl Iterator<Item = (&'a str, &'a str)>) {
        self.target_info.reset();
        for (name, kind) in targets {
            self.target_info.with_label_values(&[name, kind]).set(1);
        }
    }

    pub fn init_target(&self, target: &str) {
        for m in [&self.notifications, &self.throttled, &self.template_failures] {
            m.with_label_values(&[target]);
        }
        self.queue_depth.with_label_values(&[target]);
        self.queue_oldest_age.with_label_values(&[target]);
    }

    // Intake.

    /// A webhook answered with `code`; `target` is a configured name or [`UNKNOWN_TARGET`].
    pub fn webhook(&self, target: &str, code: hyper::StatusCode) {
        self.webhook_requests.with_label_values(&[target, code.as_str()]).inc();
    }

    pub fn alerts_received(&self, target: &str, firing: usize, resolved: usize) {
        if firing > 0 {
            self.alerts_received.with_label_values(&[target, "firing"]).inc_by(firing as u64);
        }
        if resolved > 0 {
            self.alerts_received.with_label_values(&[target, "resolved"]).inc_by(resolved as u64);
        }
    }

    pub fn target_enabled(&self, target: &str, enabled: bool) {
        self.target_enabled.with_label_values(&[target]).set(i64::from(enabled));
    }

    pub fn skipped(&self, target: &str, reason: impl Reason) {
        self.skipped.with_label_values(&[target, reason.label()]).inc();
    }

    /// Whom one notification's messages rang, and whom they could not.
    pub fn mentions(&self, target: &str, m: &crate::render::Mentioned) {
        let counts = [
            ("rung", m.rung),
            ("all", usize::from(m.all)),
            ("unknown", m.unknown.len()),
            ("no_identifier", m.no_identifier.len()),
            ("capped", m.capped.len()),
        ];
        for (outcome, n) in counts.into_iter().filter(|(_, n)| *n > 0) {
            self.mentions.with_label_values(&[target, outcome]).inc_by(n as u64);
        }
    }

    pub fn suppressed(&self, target: &str, why: Suppressed) {
        self.suppressed.with_label_values(&[target, why.label()]).inc();
    }

    pub fn template_failed(&self, target: &str) {
        self.template_failures.with_label_values(&[target]).inc();
    }

    pub fn keyword_inserted(&self, target: &str, messages: usize) {
        self.keyword_inserted.with_label_values(&[target]).inc_by(messages as u64);
    }

    pub fn split(&self, target: &str) {
        self.messages_split.with_label_values(&[target]).inc();
    }

    pub fn truncated(&self, target: &str, messages: usize) {
        self.messages_truncated.with_label_values(&[target]).inc_by(messages as u64);
    }

    pub fn alerts_truncated(&self, target: &str, alerts: u64) {
        self.alerts_truncated.with_label_values(&[target]).inc_by(alerts);
    }

    // Delivery.

    /// One request to the receiver, however it ended.
    pub fn request(&self, target: &str, took: Duration) {
        self.notification_requests.with_label_values(&[target]).inc();
        self.notification_latency.with_label_values(&[target]).observe(took.as_secs_f64());
    }

    pub fn request_failed(&self, target: &str, reason: impl Reason) {
        self.notification_requests_failed.with_label_values(&[target, reason.label()]).inc();
    }

    /// What became of a DingTalk app message's recipients in one answer: `reached` got it, `deferred`
    /// were flow-controlled and are retried.
    pub fn recipients(&self, target: &str, reached: usize, deferred: usize) {
        self.recipients.with_label_values(&[target, "delivered", ""]).inc_by(reached as u64);
        self.recipients.with_label_values(&[target, "deferred", ""]).inc_by(deferred as u64);
    }

    /// `n` DingTalk app recipients that never will get a message, and why.
    pub fn recipients_failed(&self, target: &str, reason: impl Reason, n: usize) {
        self.recipients.with_label_values(&[target, "failed", reason.label()]).inc_by(n as u64);
    }

    pub fn delivered(&self, target: &str) {
        self.notifications.with_label_values(&[target]).inc();
    }

    pub fn given_up(&self, target: &str, reason: impl Reason) {
        self.notifications.with_label_values(&[target]).inc();
        self.notifications_failed.with_label_values(&[target, reason.label()]).inc();
    }

    pub fn throttled(&self, target: &str) {
        self.throttled.with_label_values(&[target]).inc();
    }

    pub fn rate_limited(&self, target: &str) {
        self.rate_limited.with_label_values(&[target]).inc();
    }

    pub fn digest(&self, target: &str) {
        self.digests.with_label_values(&[target]).inc();
    }

    pub fn corrupt_record(&self, target: &str) {
        self.corrupt_records.with_label_values(&[target]).inc();
    }

    /// The outbox as of a scrape.
    pub fn queue(&self, target: &str, depth: i64, oldest_age_s: i64) {
        self.queue_depth.with_label_values(&[target]).set(depth);
        self.queue_oldest_age.with_label_values(&[target]).set(oldest_age_s);
    }

    // The process.

    /// What the HTTP server holds: open connections and request bytes.
    pub fn connections(&self, open: usize, inflight_bytes: usize) {
        self.connections_open.set(open as i64);
        self.inflight_bytes.set(inflight_bytes as i64);
    }

    /// `n` connections the server closed (or refused) for `why`.
    pub fn connections_closed(&self, why: impl Reason, n: u64) {
        if n > 0 {
            self.connections_closed.with_label_values(&[why.label()]).inc_by(n);
        }
    }

    pub fn set_store_healthy(&self, healthy: bool) {
        self.store_healthy.set(i64::from(healthy));
    }

    pub fn set_ready(&self, ready: bool) {
        self.ready.set(i64::from(ready));
    }

    /// A configuration (re)load succeeded (at `unix_s`) or was refused.
    pub fn reloaded(&self, ok: bool, unix_s: i64) {
        self.reload_successful.set(i64::from(ok));
        if ok {
            self.reload_timestamp.set(unix_s);
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut buf = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut buf).expect("text encoding to memory");
        buf
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
