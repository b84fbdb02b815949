//! Splitting under a small size limit: the fuzzer chooses how many alerts a real notification has and what
//! their labels and descriptions say (any Unicode, markdown, newlines); every message must fit the limit.
#![no_main]

use std::sync::OnceLock;

use dingtalk_bridge::config::Config;
use dingtalk_bridge::render::Renderer;
use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};

const LIMIT: usize = 2000;
const FIRING: &str = include_str!("../../tests/fixtures/alertmanager-0.25-firing.json");

fn setup() -> &'static (Config, Renderer) {
    static SETUP: OnceLock<(Config, Renderer)> = OnceLock::new();
    SETUP.get_or_init(|| {
        let yaml = "targets:\n  md: {url: 'https://oapi.dingtalk.com/robot/send?access_token=x', keyword: Alert}\n";
        let config = Config::from_yaml(yaml, "fuzz.yaml", std::path::Path::new("."), &|_| None).unwrap();
        let renderer = Renderer::new(None, chrono_tz::UTC, LIMIT).map_err(|_| ()).unwrap();
        (config, renderer)
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&count, text)) = data.split_first() else { return };
    let text = String::from_utf8_lossy(text);
    let mut parts = text.split('\u{0}');
    let mut payload: Value = serde_json::from_str(FIRING).unwrap();
    let template = payload["alerts"][0].clone();
    let alerts: Vec<Value> = (0..(count % 40) as usize + 1)
        .map(|i| {
            let mut a = template.clone();
            a["labels"]["instance"] = json!(format!("node{i}:{}", parts.next().unwrap_or("")));
            a["annotations"]["description"] = json!(parts.next().unwrap_or(""));
            a["fingerprint"] = json!(format!("{i:016x}"));
            a
        })
        .collect();
    payload["alerts"] = Value::Array(alerts);
    let Ok(d) = dingtalk_bridge::decode::decode(payload.to_string().as_bytes()) else { return };
    let (config, renderer) = setup();
    let rendered = renderer.render(&config.targets["md"], &d);
    for m in &rendered.messages {
        assert!(m.body.len() <= LIMIT, "{} bytes over {LIMIT}", m.body.len());
    }
});
