//! Everything under deploy/ is checked by the tool that consumes it: the Kubernetes manifests against
//! Kubernetes' schemas (kubernetes-validate), the kustomization by rendering it (kubectl kustomize), the
//! alert rules with promtool (check and unit tests), the Alertmanager receiver with amtool, and the
//! bridge's own config and templates in the ConfigMap with the bridge itself. Tests that need a tool this
//! machine lacks are ignored with the reason; `.ci/run` installs the tools and runs them all.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn yaml(path: &Path) -> Value {
    serde_saphyr::from_str(&std::fs::read_to_string(path).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{cmd:?} failed:\n{text}");
    text
}

/// The manifests kustomize renders, one JSON value per document.
fn rendered() -> Vec<Value> {
    let text = run(Command::new("kubectl").args(["kustomize"]).arg(root().join("deploy/kubernetes")));
    text.split("\n---\n")
        .map(|doc| doc.lines().filter(|l| !l.starts_with("# Warning")).collect::<Vec<_>>().join("\n"))
        .filter(|doc| !doc.trim().is_empty())
        .map(|doc| serde_saphyr::from_str::<Value>(&doc).unwrap())
        .collect()
}

#[test]
#[ignore = "needs kubectl (kustomize) and kubernetes-validate (PyPI); .ci/run runs it"]
fn kubernetes_base_renders_and_validates_against_the_schemas() {
    let docs = rendered();
    let kinds: Vec<&str> = docs.iter().map(|d| d["kind"].as_str().unwrap()).collect();
    for kind in [
        "ServiceAccount",
        "Secret",
        "ConfigMap",
        "StatefulSet",
        "Service",
        "NetworkPolicy",
        "ServiceMonitor",
        "PrometheusRule",
    ] {
        assert!(kinds.contains(&kind), "{kind} missing from {kinds:?}");
    }
    // The generated ConfigMaps (with their content hashes) are the ones the StatefulSet mounts.
    let sts = docs.iter().find(|d| d["kind"] == "StatefulSet").unwrap();
    let volumes = sts["spec"]["template"]["spec"]["volumes"].as_array().unwrap();
    for d in docs.iter().filter(|d| d["kind"] == "ConfigMap") {
        let name = d["metadata"]["name"].as_str().unwrap();
        assert!(volumes.iter().any(|v| v["configMap"]["name"] == name), "{name} is not mounted");
    }

    // Core kinds against Kubernetes' own schemas; the operator's kinds are checked below.
    let dir = tempfile::tempdir().unwrap();
    for (i, d) in
        docs.iter().filter(|d| !["ServiceMonitor", "PrometheusRule"].contains(&d["kind"].as_str().unwrap())).enumerate()
    {
        let file = dir.path().join(format!("{i}.json"));
        std::fs::write(&file, d.to_string()).unwrap();
        let out = run(Command::new("kubernetes-validate").arg("--strict").arg(&file));
        assert!(out.contains("passed"), "{}: {out}", d["kind"]);
    }
}

#[test]
fn the_workload_is_locked_down() {
    let sts = yaml(&root().join("deploy/kubernetes/statefulset.yaml"));
    let pod = &sts["spec"]["template"]["spec"];
    assert_eq!(sts["spec"]["replicas"], 1, "one process owns the SQLite outbox");
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(pod["securityContext"]["seccompProfile"]["type"], "RuntimeDefault");
    assert_eq!(pod["automountServiceAccountToken"], false);
    let c = &pod["containers"][0];
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(c["securityContext"]["allowPrivilegeEscalation"], false);
    assert_eq!(c["securityContext"]["capabilities"]["drop"], serde_json::json!(["ALL"]));
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/-/healthy");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/-/ready");
    assert!(c["resources"]["requests"]["memory"].is_string() && c["resources"]["limits"]["memory"].is_string());
    // Graceful shutdown fits: Kubernetes waits longer than the bridge's own grace period.
    let config: Value = yaml(&root().join("deploy/kubernetes/dingtalk-bridge.yaml"));
    let grace = dingtalk_bridge::config::parse_duration(config["server"]["shutdown_grace"].as_str().unwrap()).unwrap();
    assert!(pod["terminationGracePeriodSeconds"].as_u64().unwrap() > grace.as_secs());
    assert_eq!(sts["spec"]["volumeClaimTemplates"][0]["spec"]["accessModes"][0], "ReadWriteOnce");
}

#[test]
fn prometheus_operator_kinds_have_their_essentials() {
    let sm = yaml(&root().join("deploy/kubernetes/servicemonitor.yaml"));
    assert_eq!(
        (sm["apiVersion"].as_str(), sm["kind"].as_str()),
        (Some("monitoring.coreos.com/v1"), Some("ServiceMonitor"))
    );
    let svc = yaml(&root().join("deploy/kubernetes/service.yaml"));
    for (k, v) in sm["spec"]["selector"]["matchLabels"].as_object().unwrap() {
        assert_eq!(&svc["spec"]["selector"][k], v, "the ServiceMonitor selects the Service's pods' labels");
    }
    let port = sm["spec"]["endpoints"][0]["port"].as_str().unwrap();
    assert!(
        svc["spec"]["ports"].as_array().unwrap().iter().any(|p| p["name"] == port),
        "endpoint port {port} is a named Service port"
    );
    assert_eq!(sm["spec"]["endpoints"][0]["path"], "/metrics");

    let pr = yaml(&root().join("deploy/kubernetes/prometheusrule.yaml"));
    assert_eq!(
        (pr["apiVersion"].as_str(), pr["kind"].as_str()),
        (Some("monitoring.coreos.com/v1"), Some("PrometheusRule"))
    );
    let rules = pr["spec"]["groups"][0]["rules"].as_array().unwrap();
    let names: Vec<&str> = rules.iter().map(|r| r["alert"].as_str().unwrap()).collect();
    for wanted in [
        "DingTalkBridgeDown",
        "DingTalkBridgeDeliveryFailing",
        "DingTalkBridgeQueueBackingUp",
        "DingTalkBridgeRobotThrottled",
        "DingTalkBridgeConfigReloadFailed",
        "DingTalkBridgeStoreUnhealthy",
    ] {
        assert!(names.contains(&wanted), "{wanted} missing");
    }
    for r in rules {
        assert!(
            r["expr"].is_string() && r["labels"]["severity"].is_string() && r["annotations"]["summary"].is_string(),
            "{r}"
        );
    }
    let readme = std::fs::read_to_string(root().join("docs/metrics.md")).unwrap();
    for name in names {
        assert!(readme.contains(name), "docs/metrics.md says what to do when {name} fires");
    }
}

#[test]
#[ignore = "needs promtool (Debian package prometheus); .ci/run runs it"]
fn alert_rules_pass_promtool_check_and_unit_tests() {
    let pr = yaml(&root().join("deploy/kubernetes/prometheusrule.yaml"));
    let dir = tempfile::tempdir().unwrap();
    // JSON is YAML: the rules under spec, as a plain Prometheus rule file.
    std::fs::write(dir.path().join("rules.yml"), pr["spec"].to_string()).unwrap();
    std::fs::copy(root().join("deploy/prometheus/rules-test.yml"), dir.path().join("rules-test.yml")).unwrap();
    run(Command::new("promtool").args(["check", "rules"]).arg(dir.path().join("rules.yml")));
    let out = run(Command::new("promtool").args(["test", "rules", "rules-test.yml"]).current_dir(dir.path()));
    assert!(out.contains("SUCCESS"), "{out}");
    // Every alert has a unit test.
    let tests = std::fs::read_to_string(root().join("deploy/prometheus/rules-test.yml")).unwrap();
    for r in pr["spec"]["groups"][0]["rules"].as_array().unwrap() {
        let name = r["alert"].as_str().unwrap();
        assert!(tests.contains(&format!("alertname: {name}")), "no unit test for {name}");
    }
}

#[test]
#[ignore = "needs amtool (Debian package prometheus-alertmanager); .ci/run runs it"]
fn alertmanager_receiver_example_passes_amtool() {
    let out = run(Command::new("amtool").args(["check-config"]).arg(root().join("deploy/alertmanager.yml")));
    assert!(out.contains("SUCCESS"), "{out}");
}

#[test]
fn the_configmaps_config_and_templates_pass_check_config() {
    // The cluster's paths, moved into a scratch directory with stand-ins for the Secret's files.
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().to_str().unwrap();
    std::fs::create_dir_all(dir.path().join("secrets")).unwrap();
    std::fs::write(dir.path().join("secrets/ops-url"), "https://oapi.dingtalk.com/robot/send?access_token=x").unwrap();
    std::fs::write(dir.path().join("secrets/ops-secret"), "SECx").unwrap();
    std::fs::write(dir.path().join("secrets/receiver-token"), "t").unwrap();
    let templates = root().join("deploy/kubernetes/templates");
    let localized = |file: &str| {
        std::fs::read_to_string(root().join(file))
            .unwrap()
            .replace("/etc/dingtalk-bridge/templates", templates.to_str().unwrap())
            .replace("/etc/dingtalk-bridge", base)
            .replace("/var/lib/dingtalk-bridge", base)
    };
    std::fs::write(dir.path().join("c.yaml"), localized("deploy/kubernetes/dingtalk-bridge.yaml")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_dingtalk-bridge"))
        .args(["check-config", "--config"])
        .arg(dir.path().join("c.yaml"))
        .output()
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{text}");
    assert!(text.contains("OK (2 targets, template sets: compact, default)"), "{text}");
    assert!(!text.contains("warning"), "{text}");

    // And the production example in deploy/ loads once its files and variables exist.
    let prod = localized("deploy/dingtalk-bridge.yaml");
    std::fs::write(dir.path().join("prod.yaml"), prod).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_dingtalk-bridge"))
        .args(["check-config", "--config"])
        .arg(dir.path().join("prod.yaml"))
        .env("DB_TEAM_TOKEN", "x")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}
