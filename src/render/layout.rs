//! What the built-in layout knows about alerts, so a reader on a phone sees the one thing they need first:
//! how bad (severity levels and their markers), where (the labels that locate an alert, chosen by which
//! exist), which labels mean nothing to a reader, and what a group is called whatever Alertmanager grouped
//! it by. Templates reach all of it through helpers and context fields; see docs/templates.md, "Template helpers".

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value, json};

use super::links;
use crate::config::LabelFilter;
use crate::decode::{Alert, Decoded, Status};

/// Labels that say how an alert was collected, not what is wrong: hidden unless a target shows them.
pub const NOISE_LABELS: [&str; 8] =
    ["prometheus", "prometheus_replica", "replica", "endpoint", "service", "uid", "metrics_path", "id"];
/// Labels naming a Kubernetes object that is not a pod, in the order they locate an alert.
const WORKLOADS: [&str; 9] = [
    "deployment",
    "statefulset",
    "daemonset",
    "job_name",
    "cronjob",
    "replicaset",
    "horizontalpodautoscaler",
    "persistentvolumeclaim",
    "pvc",
];
/// Exporters whose `instance` is the machine the alert is about (their pod and namespace are the exporter's).
const HOST_JOBS: [&str; 4] = ["node-exporter", "node_exporter", "node", "windows-exporter"];
/// Exporters that report on other objects: their own `instance` and `job` would mislead.
const STATE_JOBS: [&str; 1] = ["kube-state-metrics"];

/// How bad an alert is (from its `severity` label); protocols colour by it too.
pub use crate::channel::Level;

impl Level {
    /// A marker that tells the levels apart at a glance, in a notification banner too.
    pub fn icon(self) -> &'static str {
        match self {
            Level::Critical => "🔴",
            Level::Warning => "🟠",
            Level::Info => "🔵",
            Level::None => "⚪",
        }
    }
}

/// The marker of resolved alerts.
pub const RESOLVED_ICON: &str = "✅";

pub type Labels = BTreeMap<String, String>;

fn job_in(labels: &Labels, jobs: &[&str]) -> bool {
    labels.get("job").is_some_and(|j| jobs.contains(&j.as_str()))
}

/// The labels that locate an alert, chosen by which exist: a node exporter's `instance`; a pod (with its
/// namespace); another Kubernetes object; a node; a namespace; an `instance` (not kube-state-metrics'
/// own); a host; the job.
pub fn where_keys(labels: &Labels) -> Vec<&'static str> {
    let has = |k: &str| labels.get(k).is_some_and(|v| !v.is_empty());
    if job_in(labels, &HOST_JOBS) && has("instance") {
        return vec!["instance"];
    }
    let with_namespace = |k: &'static str| if has("namespace") { vec!["namespace", k] } else { vec![k] };
    if has("pod") {
        return with_namespace("pod");
    }
    if let Some(w) = WORKLOADS.iter().find(|w| has(w)) {
        return with_namespace(w);
    }
    for k in ["node", "namespace"] {
        if has(k) {
            return vec![k];
        }
    }
    if has("instance") && !job_in(labels, &STATE_JOBS) {
        return vec!["instance"];
    }
    for k in ["host", "hostname", "job"] {
        if has(k) {
            return vec![k];
        }
    }
    vec![]
}

/// `payments/payment-api-7d9f8c6b5-x2x9k`, `10.0.2.11:9100`, or empty.
pub fn where_text(labels: &Labels) -> String {
    where_keys(labels).iter().filter_map(|k| labels.get(*k)).map(String::as_str).collect::<Vec<_>>().join("/")
}

/// Whether a label tells the reader nothing about the alert: the collection labels, the exporter's own
/// `job`/`instance` for kube-state-metrics, the exporter's pod for node exporters, and labels that only
/// repeat the job's name (`service`, `container` of the exporter). A target's `labels.show` and
/// `labels.hide` have the last word.
pub fn is_noise(key: &str, labels: &Labels, filter: &LabelFilter) -> bool {
    if filter.show.iter().any(|k| k == key) {
        return false;
    }
    if filter.hide.iter().any(|k| k == key) || NOISE_LABELS.contains(&key) {
        return true;
    }
    if job_in(labels, &STATE_JOBS) && matches!(key, "job" | "instance") {
        return true;
    }
    if job_in(labels, &HOST_JOBS) && matches!(key, "pod" | "container" | "namespace" | "job") {
        return true;
    }
    key != "job" && labels.get("job").is_some_and(|job| labels.get(key) == Some(job))
}

/// The labels worth showing: not the alertname or severity (the title has them), not where the alert is
/// (the glance line has it), not noise.
pub fn identifying(labels: &Labels, filter: &LabelFilter) -> Labels {
    let located = where_keys(labels);
    let place: Vec<&str> = located.iter().filter_map(|k| labels.get(*k)).map(String::as_str).collect();
    labels
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "alertname" | "severity") && !located.contains(&k.as_str()))
        .filter(|(k, v)| !is_noise(k, labels, filter) && (shown_by_filter(k, filter) || !repeats(v, &place)))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Whether a target's `labels.show` names the key.
fn shown_by_filter(key: &str, filter: &LabelFilter) -> bool {
    filter.show.iter().any(|k| k == key)
}

/// Whether `value` says nothing the `shown` values do not (a pod's container is usually in its name).
fn repeats(value: &str, shown: &[&str]) -> bool {
    value.chars().count() >= 3 && shown.iter().any(|s| s.contains(value))
}

/// At most this many keys tell alerts apart in a one-line-per-alert list (more would not fit a line).
const MAX_DIFFERING: usize = 2;

/// The keys whose values tell a group's alerts apart, for one line per alert: the alertname if it
/// differs, then the labels that locate an alert, then the other identifying ones by name; if only noise
/// differs, the noise.
pub fn differing(alerts: &[&Labels], filter: &LabelFilter) -> Vec<String> {
    let Some(first) = alerts.first() else { return vec![] };
    let differs = |k: &str| alerts.iter().any(|l| l.get(k) != first.get(k));
    let mut keys: BTreeSet<&String> = alerts.iter().flat_map(|l| l.keys()).collect();
    keys.retain(|k| differs(k));
    let wanted = |k: &str| k != "severity" && alerts.iter().any(|l| l.contains_key(k) && !is_noise(k, l, filter));
    let located = where_keys(first);
    let preferred = std::iter::once("alertname").chain(located.iter().copied().filter(|k| *k != "namespace"));
    let limit = if differs("alertname") { MAX_DIFFERING + 1 } else { MAX_DIFFERING };
    let mut out: Vec<String> = vec![];
    for k in preferred.map(str::to_string).chain(keys.iter().map(|k| k.to_string())) {
        if keys.contains(&k) && wanted(&k) && !out.contains(&k) {
            out.push(k);
        }
    }
    if out.is_empty() {
        out = keys.into_iter().filter(|k| k.as_str() != "severity").cloned().collect();
    }
    // A key whose value every alert already shows in an earlier one's (a pod's container) adds nothing.
    let mut kept: Vec<String> = vec![];
    for k in out {
        let redundant = alerts.iter().all(|l| {
            let earlier: Vec<&str> = kept.iter().filter_map(|e| l.get(e)).map(String::as_str).collect();
            l.get(&k).is_none_or(|v| repeats(v, &earlier))
        });
        if !redundant || kept.is_empty() {
            kept.push(k);
        }
    }
    let mut out = kept;
    out.truncate(limit);
    out
}

/// The keys that tell apart the alerts of each name (messages list each name's alerts together, under
/// the name), falling back to what tells the whole group apart.
pub fn differing_by_name(alerts: &[&Labels], filter: &LabelFilter) -> Vec<String> {
    let mut names: BTreeMap<&str, Vec<&Labels>> = BTreeMap::new();
    for l in alerts {
        names.entry(l.get("alertname").map_or("", String::as_str)).or_default().push(l);
    }
    let mut out: Vec<String> = vec![];
    for group in names.values().filter(|g| g.len() > 1) {
        for k in differing(group, filter) {
            if !out.contains(&k) {
                out.push(k);
            }
        }
    }
    if out.is_empty() {
        out = differing(alerts, filter).into_iter().filter(|k| k != "alertname").collect();
    }
    out.truncate(MAX_DIFFERING);
    out
}

/// What a group is called: its common alertname, else the most frequent one among `firing` (all alerts if
/// none fire) and how many other names the group has.
pub fn group_alertname(alerts: &[&Labels], firing: &[&Labels]) -> String {
    let names = |set: &[&Labels]| -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for l in set {
            if let Some(name) = l.get("alertname").filter(|n| !n.is_empty()) {
                *counts.entry(name.clone()).or_default() += 1;
            }
        }
        counts
    };
    let all = names(alerts);
    let considered = if firing.is_empty() { all.clone() } else { names(firing) };
    let Some((top, _)) = considered.iter().max_by_key(|(name, n)| (**n, std::cmp::Reverse(*name))) else {
        return "alerts".to_string();
    };
    match all.len() {
        0 | 1 => top.clone(),
        n => format!("{top} +{}", n - 1),
    }
}

/// The most identifying label of a group for its title: the common namespace, else where a lone alert
/// is, else a common instance or node.
pub fn place(common: &Labels, alerts: usize, first: &Labels) -> String {
    if let Some(ns) = common.get("namespace").filter(|_| !job_in(common, &HOST_JOBS)) {
        return ns.clone();
    }
    if alerts == 1 {
        return where_text(first);
    }
    let keys = where_keys(common);
    if keys.iter().any(|k| matches!(*k, "instance" | "node" | "host" | "hostname")) {
        return where_text(common);
    }
    String::new()
}

/// Where a group's alerts are: the labels they share if those locate an alert as well as its own labels do
/// (a group of one, or of one pod's alerts), else their common namespace.
fn location(common: &Labels, first: &Labels) -> String {
    if where_keys(common) == where_keys(first) {
        return where_text(common);
    }
    match common.get("namespace") {
        Some(ns) if !job_in(common, &HOST_JOBS) => ns.clone(),
        _ => String::new(),
    }
}

/// At most this many alerts get a block each; more get one line each.
pub const FEW_ALERTS: usize = 3;

/// The links a group may have: Alertmanager's list of its alerts, a silence for it, its runbook, and the
/// Prometheus graph of a lone alert.
pub const LINK_TITLES: [&str; 4] = ["Alertmanager", "Silence", "Runbook", "Source"];

/// A button or link of a message: its label and an http(s) URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub title: &'static str,
    pub url: String,
}

/// What the layout says about a whole group (not only the part being rendered): computed once per
/// notification and given to templates as context fields (docs/templates.md, "Template context").
#[derive(Debug, Clone, Default)]
pub struct Facts {
    /// The group's alertname whatever it was grouped by (`KubePodNotReady +2` when several).
    pub alertname: String,
    /// The highest severity among the firing alerts (among all if none is firing), as written.
    pub severity: String,
    pub icon: &'static str,
    /// The most identifying label for the title (namespace, or where a lone alert is).
    pub place: String,
    /// Where the group's alerts are, from the labels they share.
    pub where_: String,
    /// Identifying labels every alert shares, beyond alertname, severity and where.
    pub shared: Labels,
    /// Keys whose values tell apart the alerts of one name (messages list each name's alerts together).
    pub differ: Vec<String>,
    /// Whether the group holds alerts of several names.
    pub mixed_names: bool,
    /// One line per alert.
    pub compact: bool,
    /// The earliest start of the firing alerts (of all alerts if none is firing), as Alertmanager wrote it.
    pub first_start: String,
    pub links: Vec<Link>,
}

impl Facts {
    pub fn of(d: &Decoded, filter: &LabelFilter) -> Facts {
        let n = &d.notification;
        let firing: Vec<&Alert> = n.firing().collect();
        let considered: Vec<&Alert> = if firing.is_empty() { n.alerts.iter().collect() } else { firing };
        let all: Vec<&Labels> = n.alerts.iter().map(|a| &a.labels).collect();
        let severity = considered
            .iter()
            .filter_map(|a| a.labels.get("severity"))
            .max_by_key(|s| Level::of(s))
            .cloned()
            .unwrap_or_default();
        let icon = if n.status == Status::Resolved { RESOLVED_ICON } else { Level::of(&severity).icon() };
        let common = &n.common_labels;
        let first = all.first().copied().cloned().unwrap_or_default();
        let place = place(common, n.alerts.len(), &first);
        let first_start = considered
            .iter()
            .filter_map(|a| a.starts_at)
            .filter(|t| t.timestamp() > 0)
            .min()
            .map(|t| t.to_rfc3339())
            .unwrap_or_default();
        let mut links = vec![];
        let group: &Labels = if n.group_labels.is_empty() { common } else { &n.group_labels };
        let alerts_page = links::alerts_url(&n.external_url, group, &n.receiver);
        if !alerts_page.is_empty() {
            links.push(Link { title: "Alertmanager", url: alerts_page });
        }
        let silence = links::silence_group_url(&n.external_url, common);
        if !silence.is_empty() {
            links.push(Link { title: "Silence", url: silence });
        }
        let runbooks: BTreeSet<&str> =
            n.alerts.iter().filter_map(|a| a.annotations.get("runbook_url")).map(String::as_str).collect();
        if let [one] = runbooks.into_iter().collect::<Vec<_>>()[..]
            && let Some(url) = links::link_url(one)
        {
            links.push(Link { title: "Runbook", url });
        }
        if let [alert] = &n.alerts[..]
            && let Some(url) = links::link_url(&alert.generator_url)
        {
            links.push(Link { title: "Source", url });
        }
        Facts {
            alertname: group_alertname(&all, &considered.iter().map(|a| &a.labels).collect::<Vec<_>>()),
            severity,
            icon,
            place,
            where_: location(common, &first),
            shared: identifying(common, filter),
            differ: differing_by_name(&all, filter),
            mixed_names: all.iter().any(|l| l.get("alertname") != all[0].get("alertname")),
            compact: n.alerts.len() > FEW_ALERTS,
            first_start,
            links,
        }
    }

    /// The URL of the link called `title`, if the group has one.
    pub fn link(&self, title: &str) -> Option<&str> {
        self.links.iter().find(|l| l.title == title).map(|l| l.url.as_str())
    }

    pub fn to_json(&self) -> Value {
        // Every key present (empty if there is no such link), so templates in strict mode can test them.
        let links: Map<String, Value> = LINK_TITLES
            .iter()
            .map(|t| (t.to_lowercase(), Value::String(self.link(t).unwrap_or_default().to_string())))
            .collect();
        json!({
            "alertname": self.alertname,
            "severity": self.severity,
            "marker": self.icon,
            "place": self.place,
            "location": self.where_,
            "shared": self.shared,
            "differ": self.differ,
            "mixedNames": self.mixed_names,
            "compact": self.compact,
            "firstStart": self.first_start,
            "links": links,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn levels_have_distinct_markers() {
        let icons: BTreeSet<&str> =
            ["critical", "warning", "info", "none"].iter().map(|s| Level::of(s).icon()).collect();
        assert_eq!(icons.len(), 4);
        assert_eq!(Level::of("CRITICAL"), Level::Critical);
        assert_eq!(Level::of("unknown"), Level::None);
        assert!(Level::Critical > Level::Warning && Level::Warning > Level::Info && Level::Info > Level::None);
    }

    #[test]
    fn where_is_chosen_by_which_labels_exist() {
        let ksm = labels(&[
            ("job", "kube-state-metrics"),
            ("instance", "10.244.3.17:8080"),
            ("namespace", "payments"),
            ("pod", "api-1"),
        ]);
        assert_eq!(where_text(&ksm), "payments/api-1");
        let node =
            labels(&[("job", "node-exporter"), ("instance", "n1"), ("namespace", "monitoring"), ("pod", "ne-1")]);
        assert_eq!(where_text(&node), "n1");
        let deploy = labels(&[("job", "kube-state-metrics"), ("namespace", "shop"), ("deployment", "cart")]);
        assert_eq!(where_text(&deploy), "shop/cart");
        let ksm_only = labels(&[("job", "kube-state-metrics"), ("instance", "10.0.0.1:8080")]);
        assert_eq!(where_text(&ksm_only), "kube-state-metrics");
        assert_eq!(where_text(&labels(&[("alertname", "Watchdog")])), "");
    }

    #[test]
    fn noise_is_hidden_and_targets_decide_last() {
        let l = labels(&[
            ("alertname", "KubePodCrashLooping"),
            ("container", "payment-api"),
            ("endpoint", "http"),
            ("instance", "10.244.3.17:8080"),
            ("job", "kube-state-metrics"),
            ("namespace", "payments"),
            ("pod", "payment-api-7d9f8c6b5-x2x9k"),
            ("prometheus", "monitoring/k8s"),
            ("reason", "CrashLoopBackOff"),
            ("service", "kube-state-metrics"),
            ("severity", "warning"),
            ("uid", "3f1c"),
        ]);
        let shown = identifying(&l, &LabelFilter::default());
        // The container is in the pod's name.
        assert_eq!(shown.keys().collect::<Vec<_>>(), ["reason"]);
        let filter = LabelFilter { hide: vec!["reason".into()], show: vec!["prometheus".into(), "container".into()] };
        assert_eq!(identifying(&l, &filter).keys().collect::<Vec<_>>(), ["container", "prometheus"]);
    }

    #[test]
    fn groups_are_named_and_told_apart() {
        let a = labels(&[("alertname", "KubePodNotReady"), ("namespace", "shop"), ("pod", "a")]);
        let b = labels(&[("alertname", "KubePodNotReady"), ("namespace", "shop"), ("pod", "b")]);
        let c = labels(&[("alertname", "CPUThrottlingHigh"), ("namespace", "shop"), ("pod", "c")]);
        assert_eq!(group_alertname(&[&a, &b], &[&a, &b]), "KubePodNotReady");
        assert_eq!(group_alertname(&[&a, &b, &c], &[&a, &b, &c]), "KubePodNotReady +1");
        // Named after what fires, not what has resolved.
        assert_eq!(group_alertname(&[&a, &b, &c], &[&c]), "CPUThrottlingHigh +1");
        assert_eq!(differing(&[&a, &b], &LabelFilter::default()), ["pod"]);
        assert_eq!(differing(&[&a, &b, &c], &LabelFilter::default()), ["alertname", "pod"]);
    }
}
