//! The `preview` page in a real browser: Debian's Chromium draws the built-in layout at phone width, and the
//! lines it takes there (measured by the browser, not by the bridge's own model) stay within the budgets of
//! issue 11 for every single firing alert and every 12-alert group of the sample corpus, for DingTalk's
//! markdown, a Feishu card and WeCom's markdown.

use std::process::Command;

use dingtalk_bridge::render::samples::{self, Mix};

const CONFIG: &str = r#"
timezone: Asia/Shanghai
targets:
  ops:
    dry_run: true
    keyword: ProdAlert
    mention: {mobiles: ["13800000000"], user_ids: ["manager01"]}
  ops-feishu:
    type: feishu
    url: "https://open.feishu.cn/open-apis/bot/v2/hook/preview-only"
    keyword: ProdAlert
    mention: {user_ids: [ou_oncall]}
  ops-wecom:
    type: wecom
    url: "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=preview-only"
    keyword: ProdAlert
    mention: {user_ids: [zhangsan]}
"#;

/// Each target, with its budgets for a single firing alert and for 12 alerts. WeCom's markdown has no
/// title: its heading says FIRING as DingTalk's title does, and may take a second line.
const TARGETS: [(&str, usize, usize); 3] = [("ops", 12, 30), ("ops-feishu", 12, 30), ("ops-wecom", 13, 30)];

/// Counts the lines of each message bubble as the browser drew them (test-only: the page itself has no
/// script).
const MEASURE: &str = r#"<script>
addEventListener('load', () => {
  for (const bubble of document.querySelectorAll('.bubble')) {
    let lines = 0;
    for (const el of bubble.querySelectorAll('h1,h2,h3,h4,h5,h6,p,blockquote,.li')) {
      lines += Math.round(el.getBoundingClientRect().height / parseFloat(getComputedStyle(el).lineHeight));
    }
    bubble.setAttribute('data-lines', lines);
  }
});
</script>"#;

#[test]
#[ignore = "needs Debian's chromium; .ci/run installs it"]
fn the_budgets_hold_as_a_real_browser_draws_the_messages() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.yaml"), CONFIG).unwrap();
    let mut failures = vec![];
    for (target, single, twelve) in TARGETS {
        failures.extend(measure(dir.path(), target, single, twelve));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The samples that are over budget for `target` as Chromium draws them.
fn measure(dir: &std::path::Path, target: &str, single: usize, twelve: usize) -> Vec<String> {
    let chosen: Vec<(String, usize)> = samples::corpus()
        .into_iter()
        .filter_map(|s| match (s.size, s.mix) {
            (1, Mix::Firing) => Some((s.name, single)),
            (12, _) => Some((s.name, twelve)),
            _ => None,
        })
        .collect();
    assert!(chosen.len() > 80, "{}", chosen.len());
    let page = dir.join(format!("preview-{target}.html"));
    let mut preview = Command::new(env!("CARGO_BIN_EXE_dingtalk-bridge"));
    preview.args(["-c", &dir.join("config.yaml").display().to_string(), "preview", "--target", target, "-o"]);
    preview.arg(&page);
    for (name, _) in &chosen {
        preview.args(["--sample", name]);
    }
    let out = preview.output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(!html.contains("<script"), "the page itself needs no script");
    std::fs::write(&page, html.replace("</body>", &format!("{MEASURE}</body>"))).unwrap();

    let dom = Command::new("chromium")
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=5000", "--dump-dom"])
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("chromium runs");
    let dom = String::from_utf8_lossy(&dom.stdout);
    // Each section: its sample's name, then its bubbles with the lines the browser measured.
    let mut failures = vec![];
    let mut measured = 0;
    for section in dom.split("<section>").skip(1) {
        let name = section.split("<h2>").nth(1).and_then(|s| s.split("</h2>").next()).unwrap_or_default();
        let budget = chosen.iter().find(|(n, _)| n == name).map(|(_, b)| *b).expect("a chosen sample");
        let lines: Vec<usize> =
            section.split("data-lines=\"").skip(1).map(|s| s.split('"').next().unwrap().parse().unwrap()).collect();
        assert_eq!(lines.len(), 1, "{target} {name}: one message");
        assert!(lines[0] > 2, "{target} {name}: {} lines measured: nothing drawn?", lines[0]);
        measured += 1;
        if lines[0] > budget {
            failures.push(format!("{target} {name}: {} lines as drawn (budget {budget})", lines[0]));
        }
    }
    assert_eq!(measured, chosen.len(), "{target}: every sample was drawn");
    failures
}
