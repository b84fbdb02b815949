//! Any decodable payload through the built-in templates of every tool (DingTalk markdown and text, a
//! Feishu card, a Lark post, WeCom markdown and text): every message fits its tool's limit as that tool counts it, is
//! valid JSON, and carries the keyword.
#![no_main]

use std::sync::OnceLock;

use dingtalk_bridge::config::Config;
use dingtalk_bridge::render::Renderer;
use libfuzzer_sys::fuzz_target;

const YAML: &str = "targets:
  md: {url: 'https://oapi.dingtalk.com/robot/send?access_token=x', keyword: Alert, mention: {mobiles: ['13800000000']}}
  txt: {url: 'https://oapi.dingtalk.com/robot/send?access_token=y', keyword: Alert, msgtype: text}
  fs: {type: feishu, url: 'https://open.feishu.cn/open-apis/bot/v2/hook/z', secret: s, keyword: Alert, mention: {user_ids: [ou_1]}}
  fsp: {type: lark, url: 'https://open.larksuite.com/open-apis/bot/v2/hook/p', keyword: Alert, msgtype: post, mention: {user_ids: [ou_2]}}
  wc: {type: wecom, url: 'https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=k', keyword: Alert, mention: {user_ids: [u1]}}
  wct: {type: wecom, url: 'https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=l', keyword: Alert, msgtype: text}
";

fn setup() -> &'static (Config, Renderer) {
    static SETUP: OnceLock<(Config, Renderer)> = OnceLock::new();
    SETUP.get_or_init(|| {
        let config = Config::from_yaml(YAML, "fuzz.yaml", std::path::Path::new("."), &|_| None).unwrap();
        let renderer = Renderer::new(None, chrono_tz::Asia::Shanghai, 20000).map_err(|_| ()).unwrap();
        (config, renderer)
    })
}

fuzz_target!(|body: &[u8]| {
    let Ok(d) = dingtalk_bridge::decode::decode(body) else { return };
    let (config, renderer) = setup();
    for target in config.targets.values() {
        let rendered = renderer.render(target, &d);
        assert!(!rendered.messages.is_empty());
        for m in &rendered.messages {
            let limit = target.channel.max_bytes().unwrap_or(20000);
            let size = target.channel.measure(&m.body);
            assert!(size <= limit, "{}: {size} bytes over {limit}", target.name);
            let v: serde_json::Value = serde_json::from_str(&m.body).expect("a JSON body");
            assert!(v.to_string().contains("Alert"), "keyword missing: {}", m.body);
        }
    }
});
