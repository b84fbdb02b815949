//! Micro benchmarks of the steps one notification takes inside the bridge (`cargo bench`): decode the
//! webhook, render the built-in template (1, 10 and 300 alerts; 300 is split into parts under DingTalk's
//! 20000-byte limit), sign. Figures are in docs/performance.md.
#![forbid(unsafe_code)]

use std::hint::black_box;
use std::path::Path;

use criterion::{Criterion, criterion_group, criterion_main};
use dingtalk_bridge::channel::dingtalk::sign as dingtalk;
use dingtalk_bridge::config::Config;
use dingtalk_bridge::decode;
use dingtalk_bridge::render::Renderer;

/// A firing group of `alerts` node-disk alerts, shaped like Alertmanager 0.25's payloads.
fn payload(alerts: usize) -> Vec<u8> {
    let items: Vec<String> = (0..alerts)
        .map(|i| {
            format!(
                r#"{{"status":"firing","labels":{{"alertname":"NodeDiskFull","instance":"node{i}.prod.example.com:9100","job":"node","mountpoint":"/data","severity":"warning"}},"annotations":{{"description":"Filesystem /data on node{i} has less than 5% space left (4.2%).","runbook_url":"https://runbooks.example.com/NodeDiskFull","summary":"Disk almost full on node{i}"}},"startsAt":"2026-11-22T02:16:51.1959598Z","endsAt":"0001-01-01T00:00:00Z","generatorURL":"http://prometheus.example.com:9090/graph?g0.expr=node_filesystem_avail_bytes","fingerprint":"{i:016x}"}}"#
            )
        })
        .collect();
    format!(
        r#"{{"receiver":"dingtalk","status":"firing","alerts":[{}],"groupLabels":{{"alertname":"NodeDiskFull"}},"commonLabels":{{"alertname":"NodeDiskFull","job":"node","mountpoint":"/data","severity":"warning"}},"commonAnnotations":{{}},"externalURL":"http://alertmanager.example.com:9093","version":"4","groupKey":"{{}}:{{alertname=\"NodeDiskFull\"}}","truncatedAlerts":0}}"#,
        items.join(",")
    )
    .into_bytes()
}

fn config() -> Config {
    let yaml = "targets:\n  ops:\n    url: https://oapi.dingtalk.com/robot/send?access_token=bench\n    secret: SECbench\n    keyword: alert\n    mention:\n      mobiles: ['13800000000']\n";
    Config::from_yaml(yaml, "bench.yaml", Path::new("."), &|_| None).expect("bench config is valid")
}

fn benches(c: &mut Criterion) {
    let config = config();
    let target = &config.targets["ops"];
    let renderer = Renderer::new(None, config.timezone, config.delivery.max_message_bytes).expect("built-in templates");
    let unlimited = Renderer::new(None, config.timezone, usize::MAX).expect("built-in templates");

    let mut decode_group = c.benchmark_group("decode");
    for n in [1, 10, 300] {
        let body = payload(n);
        decode_group.bench_function(format!("{n} alerts ({} bytes)", body.len()), |b| {
            b.iter(|| decode::decode(black_box(&body)).expect("valid payload"))
        });
    }
    decode_group.finish();

    let mut render_group = c.benchmark_group("render");
    for n in [1, 10, 300] {
        let decoded = decode::decode(&payload(n)).expect("valid payload");
        let parts = renderer.render(target, &decoded).messages.len();
        let name = if parts > 1 { format!("{n} alerts, split into {parts} parts") } else { format!("{n} alerts") };
        render_group.bench_function(name, |b| b.iter(|| renderer.render(target, black_box(&decoded))));
    }
    // The same 300 alerts without a size limit: one render, no packing; the difference is the split's cost.
    let decoded = decode::decode(&payload(300)).expect("valid payload");
    render_group.bench_function("300 alerts, no size limit (one part)", |b| {
        b.iter(|| unlimited.render(target, black_box(&decoded)))
    });
    render_group.finish();

    let mut sign_group = c.benchmark_group("sign");
    sign_group.bench_function("HMAC-SHA256 signature", |b| {
        b.iter(|| {
            dingtalk::sign(black_box(1_700_000_000_000), black_box("SECbench-secret-of-typical-length-0123456789"))
        })
    });
    let url = "https://oapi.dingtalk.com/robot/send?access_token=0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    sign_group.bench_function("signed URL", |b| {
        b.iter(|| dingtalk::signed_url(black_box(url), Some("SECbench-secret"), black_box(1_700_000_000_000)))
    });
    sign_group.finish();
}

criterion_group!(micro, benches);
criterion_main!(micro);
