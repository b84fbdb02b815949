//! Many targets: what 2,000 idle targets cost a scrape.

mod common;

use common::Bridge;

async fn metrics_bytes(targets: usize) -> usize {
    let dir = tempfile::tempdir().unwrap();
    let list: String = (0..targets)
        .map(|i| format!("  team-{i:04}:\n    url: \"https://oapi.dingtalk.com/robot/send?access_token=tok{i}\"\n"))
        .collect();
    let yaml = format!("listen: \"127.0.0.1:0\"\nstorage: {{path: outbox.sqlite3}}\ntargets:\n{list}");
    let bridge = Bridge::start(dir.path(), &yaml).await;
    let text = bridge.metrics().await;
    assert!(text.contains(&format!("dingtalk_bridge_queue_depth{{target=\"team-{:04}\"}} 0", targets - 1)));
    bridge.stop().await;
    text.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_idle_targets_cost_under_500_bytes_of_metrics_each() {
    let one = metrics_bytes(1).await;
    let many = metrics_bytes(2001).await;
    let per_target = (many - one) / 2000;
    println!("/metrics: {one} bytes with 1 target, {many} with 2001: {per_target} bytes per idle target");
    assert!(per_target <= 500, "{per_target} bytes per idle target");
    assert!(many < 1 << 20, "{many} bytes");
}
