//! Realistic Alertmanager notifications to judge a layout by: the alerts kube-prometheus and
//! node-exporter users see most (labels and annotations as their rules write them), in groups of 1, 3, 12
//! and 300, firing, resolved and mixed, grouped by namespace, by alertname or by every label (`...`), in
//! English and Chinese. The layout tests check their budgets over all of them; `preview --sample` draws any.

use serde_json::{Map, Value, json};

/// The time the samples are rendered at, so pictures and snapshots do not change from day to day.
/// The samples `preview` shows when given none: one alert, a dozen, hundreds, a mixed group, Chinese.
pub const PREVIEW_SAMPLES: [&str; 6] = [
    "KubePodCrashLooping-1-firing-namespace",
    "HostOutOfMemory-12-firing-alertname",
    "KubePodNotReady-300-firing-namespace",
    "Namespace-12-mixed-namespace",
    "HostOutOfMemory-1-firing-namespace-zh",
    "KubeDeploymentReplicasMismatch-3-resolved-namespace",
];

pub const NOW: &str = "2026-11-23T08:17:15Z";
/// Where the first alert of a sample started; later ones started a minute apart before it.
const FIRST_START: i64 = 1_795_420_380; // 2026-11-23T07:53:00Z
const EXTERNAL_URL: &str = "http://alertmanager.monitoring.svc:9093";

/// The alerts the corpus is made of.
pub const KINDS: [&str; 8] = [
    "KubePodCrashLooping",
    "KubePodNotReady",
    "KubeDeploymentReplicasMismatch",
    "CPUThrottlingHigh",
    "TargetDown",
    "Watchdog",
    "NodeFilesystemSpaceFillingUp",
    "HostOutOfMemory",
];
pub const SIZES: [usize; 4] = [1, 3, 12, 300];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mix {
    Firing,
    Resolved,
    /// About a third of the alerts resolved.
    Mixed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupBy {
    Namespace,
    Alertname,
    /// `group_by: ['...']`: every label, so a group of one.
    Everything,
}

/// One notification of the corpus.
#[derive(Debug, Clone)]
pub struct Sample {
    /// `KubePodCrashLooping-12-firing-namespace` (`-zh` for Chinese annotations).
    pub name: String,
    pub size: usize,
    pub mix: Mix,
    pub payload: Value,
}

/// Every sample: each kind in each size, status and grouping that Alertmanager can produce, Chinese
/// variants, a namespace holding several kinds of alert at once, and three notifications captured from
/// kube-prometheus.
pub fn corpus() -> Vec<Sample> {
    let mut out = vec![];
    for kind in KINDS {
        for size in SIZES {
            for mix in [Mix::Firing, Mix::Resolved, Mix::Mixed] {
                if size == 1 && mix == Mix::Mixed {
                    continue;
                }
                let groupings: &[GroupBy] = if size == 1 {
                    &[GroupBy::Namespace, GroupBy::Alertname, GroupBy::Everything]
                } else {
                    &[GroupBy::Namespace, GroupBy::Alertname]
                };
                for &group_by in groupings {
                    out.push(sample(&[kind], size, mix, group_by, false));
                }
            }
        }
        for size in [1, 12] {
            out.push(sample(&[kind], size, Mix::Firing, GroupBy::Namespace, true));
        }
    }
    for size in [3, 12, 300] {
        out.push(sample(
            &["KubePodCrashLooping", "KubePodNotReady", "CPUThrottlingHigh"],
            size,
            Mix::Mixed,
            GroupBy::Namespace,
            false,
        ));
    }
    // Real kube-prometheus notifications, as captured.
    for (name, size, mix, json) in [
        ("kube-prometheus-kube_crashloop", 1, Mix::Firing, FIXTURES[0]),
        ("kube-prometheus-group12_same_alert", 12, Mix::Firing, FIXTURES[1]),
        ("kube-prometheus-mixed_firing_resolved", 5, Mix::Mixed, FIXTURES[2]),
    ] {
        let payload: Value = serde_json::from_str(json).expect("the fixtures are JSON");
        out.push(Sample { name: name.to_string(), size, mix, payload });
    }
    out
}

const FIXTURES: [&str; 3] = [
    include_str!("../../../tests/fixtures/kube-prometheus-kube_crashloop.json"),
    include_str!("../../../tests/fixtures/kube-prometheus-group12_same_alert.json"),
    include_str!("../../../tests/fixtures/kube-prometheus-mixed_firing_resolved.json"),
];

fn mix_name(mix: Mix) -> &'static str {
    match mix {
        Mix::Firing => "firing",
        Mix::Resolved => "resolved",
        Mix::Mixed => "mixed",
    }
}

fn group_name(g: GroupBy) -> &'static str {
    match g {
        GroupBy::Namespace => "namespace",
        GroupBy::Alertname => "alertname",
        GroupBy::Everything => "all",
    }
}

/// A notification of `size` alerts of `kinds` (taken in turn).
pub fn sample(kinds: &[&'static str], size: usize, mix: Mix, group_by: GroupBy, chinese: bool) -> Sample {
    let alerts: Vec<Value> = (0..size)
        .map(|i| {
            let resolved = match mix {
                Mix::Firing => false,
                Mix::Resolved => true,
                Mix::Mixed => i % 3 == 2,
            };
            alert(kinds[i % kinds.len()], i, resolved, chinese)
        })
        .collect();
    let label_sets: Vec<&Map<String, Value>> =
        alerts.iter().map(|a| a["labels"].as_object().expect("labels")).collect();
    let annotation_sets: Vec<&Map<String, Value>> =
        alerts.iter().map(|a| a["annotations"].as_object().expect("annotations")).collect();
    let common = |sets: &[&Map<String, Value>]| -> Map<String, Value> {
        sets[0]
            .iter()
            .filter(|(k, v)| sets.iter().all(|s| s.get(*k) == Some(*v)))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    };
    let common_labels = common(&label_sets);
    let group_labels: Map<String, Value> = match group_by {
        GroupBy::Namespace => {
            common_labels.iter().filter(|(k, _)| *k == "namespace").map(|(k, v)| (k.clone(), v.clone())).collect()
        }
        GroupBy::Alertname => {
            common_labels.iter().filter(|(k, _)| *k == "alertname").map(|(k, v)| (k.clone(), v.clone())).collect()
        }
        GroupBy::Everything => common_labels.clone(),
    };
    let group_key =
        format!("{{}}:{{{}}}", group_labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(", "));
    let firing = alerts.iter().any(|a| a["status"] == "firing");
    let payload = json!({
        "receiver": "dingtalk-prod",
        "status": if firing { "firing" } else { "resolved" },
        "alerts": alerts,
        "groupLabels": group_labels,
        "commonLabels": common_labels,
        "commonAnnotations": common(&annotation_sets),
        "externalURL": EXTERNAL_URL,
        "version": "4",
        "groupKey": group_key,
        "truncatedAlerts": 0,
    });
    let kind_name = if kinds.len() == 1 { kinds[0] } else { "Namespace" };
    let zh = if chinese { "-zh" } else { "" };
    Sample { name: format!("{kind_name}-{size}-{}-{}{zh}", mix_name(mix), group_name(group_by)), size, mix, payload }
}

fn time(secs: i64) -> String {
    chrono::DateTime::from_timestamp(secs, 0).expect("a time in range").format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// A pod name as a Deployment's ReplicaSet makes them.
fn pod_name(app: &str, i: usize) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let suffix: String = (0..5).map(|k| ALPHABET[(i * 7 + k * 13 + i / 27) % ALPHABET.len()] as char).collect();
    format!("{app}-7d9f8c6b5-{suffix}")
}

const APPS: [&str; 6] = ["payment-api", "checkout", "cart", "search", "orders", "gateway"];

fn alert(kind: &str, i: usize, resolved: bool, zh: bool) -> Value {
    let ns = "payments";
    let app = APPS[i % APPS.len()];
    let pod = pod_name(app, i);
    let node = format!("ip-10-0-{}-{}.ec2.internal", 1 + i / 200, 10 + i % 200);
    let host = format!("10.0.{}.{}:9100", 2 + i / 250, 11 + i % 250);
    let runbook =
        |name: &str| format!("https://runbooks.prometheus-operator.dev/runbooks/kubernetes/{}", name.to_lowercase());
    let value = 7.1 + (i % 9) as f64 * 0.37;
    let (labels, summary, description, runbook_url, expr): (Value, String, String, String, &str) = match kind {
        "KubePodCrashLooping" => (
            json!({"alertname": kind, "container": app, "endpoint": "http", "instance": "10.244.3.17:8080",
                   "job": "kube-state-metrics", "namespace": ns, "pod": pod, "prometheus": "monitoring/k8s",
                   "reason": "CrashLoopBackOff", "service": "kube-state-metrics", "severity": "warning",
                   "uid": format!("3f1c2a9e-5b7d-4e1a-9c0f-{:012x}", 0x2d8e_6b4a_1f37_u64 + i as u64)}),
            if zh { "Pod 反复崩溃重启。".into() } else { "Pod is crash looping.".into() },
            if zh {
                format!("命名空间 {ns} 中的 Pod {pod}（容器 {app}）处于等待状态（原因：\"CrashLoopBackOff\"）。")
            } else {
                format!("Pod {ns}/{pod} ({app}) is in waiting state (reason: \"CrashLoopBackOff\").")
            },
            runbook(kind),
            "max_over_time(kube_pod_container_status_waiting_reason{reason=\"CrashLoopBackOff\",job=\"kube-state-metrics\"}[5m]) >= 1",
        ),
        "KubePodNotReady" => (
            json!({"alertname": kind, "namespace": ns, "pod": pod, "prometheus": "monitoring/k8s", "severity": "warning"}),
            if zh {
                "Pod 超过 15 分钟未就绪。".into()
            } else {
                "Pod has been in a non-ready state for more than 15 minutes.".into()
            },
            if zh {
                format!("Pod {ns}/{pod} 已超过 15 分钟处于未就绪状态。")
            } else {
                format!("Pod {ns}/{pod} has been in a non-ready state for longer than 15 minutes.")
            },
            runbook(kind),
            "sum by (namespace, pod, cluster) (max by (namespace, pod, cluster) (kube_pod_status_phase{job=\"kube-state-metrics\",phase=~\"Pending|Unknown|Failed\"})) > 0",
        ),
        "KubeDeploymentReplicasMismatch" => (
            json!({"alertname": kind, "container": "kube-state-metrics", "deployment": format!("{app}-{i}"),
                   "endpoint": "http", "instance": "10.244.1.5:8080", "job": "kube-state-metrics", "namespace": ns,
                   "prometheus": "monitoring/k8s", "service": "kube-state-metrics", "severity": "warning"}),
            if zh {
                "Deployment 副本数与期望不符。".into()
            } else {
                "Deployment has not matched the expected number of replicas.".into()
            },
            if zh {
                format!("Deployment {ns}/{app}-{i} 超过 15 分钟未达到期望的副本数。")
            } else {
                format!(
                    "Deployment {ns}/{app}-{i} has not matched the expected number of replicas for longer than 15 minutes."
                )
            },
            runbook(kind),
            "(kube_deployment_spec_replicas{job=\"kube-state-metrics\"} > kube_deployment_status_replicas_available{job=\"kube-state-metrics\"})",
        ),
        "CPUThrottlingHigh" => (
            json!({"alertname": kind, "container": app, "namespace": ns, "pod": pod, "prometheus": "monitoring/k8s", "severity": "info"}),
            if zh {
                "进程的 CPU 限流过高。".into()
            } else {
                "Processes experience elevated CPU throttling.".into()
            },
            if zh {
                format!("命名空间 {ns} 中 Pod {pod} 的容器 {app} 有 {:.0}% 的 CPU 时间被限流。", 25.0 + value)
            } else {
                format!("{:.0}% throttling of CPU in namespace {ns} for container {app} in pod {pod}.", 25.0 + value)
            },
            runbook(kind),
            "sum(increase(container_cpu_cfs_throttled_periods_total{container!=\"\"}[5m])) by (container, pod, namespace) > ( 25 / 100 )",
        ),
        "TargetDown" => (
            json!({"alertname": kind, "job": format!("{app}-metrics"), "namespace": ns, "service": format!("{app}-metrics"),
                   "prometheus": "monitoring/k8s", "severity": "warning"}),
            if zh {
                "一个或多个抓取目标不可达。".into()
            } else {
                "One or more targets are unreachable.".into()
            },
            if zh {
                format!("命名空间 {ns} 中 {app}-metrics/{app}-metrics 的抓取目标有 100% 不可达。")
            } else {
                format!("100% of the {app}-metrics/{app}-metrics targets in {ns} namespace are down.")
            },
            "https://runbooks.prometheus-operator.dev/runbooks/general/targetdown".into(),
            "100 * (count(up == 0) BY (cluster, job, namespace, service) / count(up) BY (cluster, job, namespace, service)) > 10",
        ),
        "Watchdog" => (
            json!({"alertname": kind, "prometheus": format!("monitoring/k8s-{i}"), "severity": "none"}),
            if zh {
                "用于确认整条告警链路正常工作、应当一直处于触发状态的告警。".into()
            } else {
                "An alert that should always be firing to certify that Alertmanager is working properly.".into()
            },
            if zh {
                "这条告警用于确认整条告警链路正常工作。\n它应当一直处于触发状态，因此会一直出现在 Alertmanager 中，\n并一直发送给接收者。".into()
            } else {
                "This is an alert meant to ensure that the entire alerting pipeline is functional.\nThis alert is always firing, therefore it should always be firing in Alertmanager\nand always fire against a receiver. There are integrations with various notification\nmechanisms that send a notification when this alert is not firing.".into()
            },
            "https://runbooks.prometheus-operator.dev/runbooks/general/watchdog".into(),
            "vector(1)",
        ),
        "NodeFilesystemSpaceFillingUp" => (
            json!({"alertname": kind, "container": "kube-rbac-proxy", "device": "/dev/nvme0n1p1", "endpoint": "https",
                   "fstype": "ext4", "instance": node, "job": "node-exporter", "mountpoint": "/var/lib/kubelet",
                   "namespace": "monitoring", "pod": pod_name("node-exporter", i), "prometheus": "monitoring/k8s",
                   "service": "node-exporter", "severity": "warning"}),
            if zh {
                "预计 24 小时内文件系统空间将耗尽。".into()
            } else {
                "Filesystem is predicted to run out of space within the next 24 hours.".into()
            },
            if zh {
                format!(
                    "{node} 上挂载于 /var/lib/kubelet 的文件系统 /dev/nvme0n1p1 仅剩 {value:.2}% 可用空间，且仍在快速增长。"
                )
            } else {
                format!(
                    "Filesystem on /dev/nvme0n1p1, mounted on /var/lib/kubelet, at {node} has only {value:.2}% available space left and is filling up."
                )
            },
            "https://runbooks.prometheus-operator.dev/runbooks/node/nodefilesystemspacefillingup".into(),
            "(node_filesystem_avail_bytes{job=\"node-exporter\",fstype!=\"\",mountpoint!=\"\"} / node_filesystem_size_bytes{job=\"node-exporter\",fstype!=\"\",mountpoint!=\"\"} * 100 < 15)",
        ),
        _ => (
            json!({"alertname": "HostOutOfMemory", "env": "prod", "instance": host, "job": "node", "severity": "critical", "team": "sre"}),
            if zh {
                format!("主机内存不足（实例 {host}）")
            } else {
                format!("Host out of memory (instance {host})")
            },
            if zh {
                format!(
                    "节点内存即将耗尽（剩余不足 10%）\n  当前值 = {value:.2}\n  标签 = map[env:prod instance:{host} job:node]"
                )
            } else {
                format!(
                    "Node memory is filling up (< 10% left)\n  VALUE = {value:.2}\n  LABELS = map[env:prod instance:{host} job:node]"
                )
            },
            "https://wiki.example.com/sre/runbooks/host-out-of-memory".into(),
            "node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes * 100 < 10",
        ),
    };
    let starts = FIRST_START - 60 * i as i64;
    let ends = if resolved { time(starts + 60 * (31 + i as i64 % 40)) } else { "0001-01-01T00:00:00Z".to_string() };
    let mut generator = String::from("http://prometheus-k8s-0:9090/graph?g0.expr=");
    generator.extend(expr.bytes().map(|b| match b {
        b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
        b' ' => "+".to_string(),
        _ => format!("%{b:02X}"),
    }));
    generator.push_str("&g0.tab=1");
    json!({
        "status": if resolved { "resolved" } else { "firing" },
        "labels": labels,
        "annotations": {"summary": summary, "description": description, "runbook_url": runbook_url},
        "startsAt": time(starts),
        "endsAt": ends,
        "generatorURL": generator,
        "fingerprint": format!("{:016x}", 0x3f52_7250_7a37_0000_u64 + i as u64 * 0x9e37 + kind.len() as u64),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_corpus_decodes_and_names_are_unique() {
        let corpus = corpus();
        let names: std::collections::BTreeSet<&str> = corpus.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names.len(), corpus.len());
        for s in &corpus {
            let d =
                crate::decode::decode(s.payload.to_string().as_bytes()).unwrap_or_else(|e| panic!("{}: {e}", s.name));
            assert_eq!(d.notification.alerts.len(), s.size, "{}", s.name);
        }
        assert_eq!(time(FIRST_START), "2026-11-23T07:53:00.000Z");
    }
}
