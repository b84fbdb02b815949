//! Every metric the bridge exports, in its own registry. Labels are bounded: target names from the
//! configuration, HTTP codes, alert status and the `Reason` enum; never alert names or label values.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};

/// The label used for requests to a target that is not configured (the path is caller-controlled).
pub const UNKNOWN_TARGET: &str = "_unknown";
/// `reason` of a notification identical to one accepted within the dedup window.
pub const SUPPRESSED_DUPLICATE: &str = "duplicate";

pub struct Metrics {
    pub registry: Registry,
    pub webhook_requests: IntCounterVec,
    pub alerts_received: IntCounterVec,
    pub notifications: IntCounterVec,
    pub notifications_failed: IntCounterVec,
    pub notification_requests: IntCounterVec,
    pub notification_requests_failed: IntCounterVec,
    pub notification_latency: HistogramVec,
    pub queue_depth: IntGaugeVec,
    pub queue_oldest_age: IntGaugeVec,
    pub template_failures: IntCounterVec,
    pub keyword_inserted: IntCounterVec,
    pub messages_split: IntCounterVec,
    pub messages_truncated: IntCounterVec,
    pub throttled: IntCounterVec,
    pub rate_limited: IntCounterVec,
    pub digests: IntCounterVec,
    pub suppressed: IntCounterVec,
    pub alerts_truncated: IntCounterVec,
    pub build_info: IntGaugeVec,
    pub ready: IntGauge,
    pub reload_successful: IntGauge,
    pub reload_timestamp: IntGauge,
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

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let r = &registry;
        let notification_latency = HistogramVec::new(
            HistogramOpts::new(
                "dingtalk_bridge_notification_latency_seconds",
                "Duration of each HTTP request to DingTalk, successful or not.",
            )
            .buckets(vec![0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0]),
            &["target"],
        )
        .expect("valid metric definition");
        registry.register(Box::new(notification_latency.clone())).expect("metric registered once");
        let ready = IntGauge::new(
            "dingtalk_bridge_ready",
            "1 when the bridge accepts notifications (config, templates and store are up).",
        )
        .expect("valid metric definition");
        registry.register(Box::new(ready.clone())).expect("metric registered once");
        let plain = |name: &str, help: &str| {
            let g = IntGauge::new(name, help).expect("valid metric definition");
            registry.register(Box::new(g.clone())).expect("metric registered once");
            g
        };
        let reload_successful = plain(
            "dingtalk_bridge_config_last_reload_successful",
            "1 if the last configuration (re)load succeeded; 0 while a broken one is refused and the previous one serves.",
        );
        let reload_timestamp = plain(
            "dingtalk_bridge_config_last_reload_success_timestamp_seconds",
            "When the configuration was last loaded successfully, as a Unix timestamp.",
        );
        #[cfg(target_os = "linux")]
        registry
            .register(Box::new(prometheus::process_collector::ProcessCollector::for_self()))
            .expect("process collector registered once");

        let m = Metrics {
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
                "DingTalk messages finished: delivered or given up.",
                &["target"],
            ),
            notifications_failed: counter(
                r,
                "dingtalk_bridge_notifications_failed_total",
                "DingTalk messages given up, by reason.",
                &["target", "reason"],
            ),
            notification_requests: counter(
                r,
                "dingtalk_bridge_notification_requests_total",
                "HTTP requests (attempts) sent to DingTalk.",
                &["target"],
            ),
            notification_requests_failed: counter(
                r,
                "dingtalk_bridge_notification_requests_failed_total",
                "HTTP requests to DingTalk that did not deliver, by reason.",
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
            build_info: gauge(
                r,
                "dingtalk_bridge_build_info",
                "Always 1; the version label says which build runs.",
                &["version"],
            ),
            ready,
            reload_successful,
            reload_timestamp,
            registry,
        };
        m.build_info.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        m
    }

    /// Creates every per-target series at zero, so dashboards and alert rules see the target before its
    /// first event.
    pub fn init_target(&self, target: &str) {
        for m in [&self.notifications, &self.notification_requests, &self.template_failures, &self.keyword_inserted] {
            m.with_label_values(&[target]);
        }
        for m in [
            &self.messages_split,
            &self.messages_truncated,
            &self.throttled,
            &self.rate_limited,
            &self.digests,
            &self.alerts_truncated,
        ] {
            m.with_label_values(&[target]);
        }
        self.suppressed.with_label_values(&[target, SUPPRESSED_DUPLICATE]);
        for status in ["firing", "resolved"] {
            self.alerts_received.with_label_values(&[target, status]);
        }
        self.queue_depth.with_label_values(&[target]);
        self.queue_oldest_age.with_label_values(&[target]);
        self.notification_latency.with_label_values(&[target]);
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
