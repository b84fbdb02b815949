//! The built-in layout's budgets, checked over the whole sample corpus in every tool's message types, and
//! the reviewed snapshots of a selection (`tests/snapshots/layout/`; `UPDATE_SNAPSHOTS=1 cargo test`
//! rewrites them, so a change to the layout shows up as a diff in review).

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};

use super::preview;
use super::samples::{self, Mix, Sample};
use crate::config::Target;
use crate::render::{Renderer, layout, phone, send_time};

const KEYWORD: &str = "ProdAlert";
/// Mentioned by every DingTalk target of the tests.
const MOBILE: &str = "13800000000";
const MAX_BYTES: usize = 20_000;

/// A tool and one of its message types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Kind {
    tool: &'static str,
    msgtype: &'static str,
}

const fn kind(tool: &'static str, msgtype: &'static str) -> Kind {
    Kind { tool, msgtype }
}

const KINDS: [Kind; 7] = [
    kind("dingtalk", "markdown"),
    kind("dingtalk", "text"),
    kind("dingtalk", "actionCard"),
    kind("feishu", "interactive"),
    kind("feishu", "post"),
    kind("wecom", "markdown"),
    kind("wecom", "text"),
];

impl Kind {
    /// DingTalk's message types by their own names (the snapshots' file names), the others by tool.
    fn name(self) -> String {
        match self.tool {
            "dingtalk" => self.msgtype.to_string(),
            tool => format!("{tool}-{}", self.msgtype),
        }
    }

    fn target(self) -> Target {
        let mut target = crate::render::tests::target_with("markdown", KEYWORD);
        target.channel = match self.tool {
            "dingtalk" => crate::render::tests::dingtalk(self.msgtype, ""),
            "feishu" => crate::channel::testing::channel(
                "feishu",
                &format!(
                    "url: https://open.feishu.cn/open-apis/bot/v2/hook/t\nmsgtype: {}\nmention: {{user_ids: [ou_oncall]}}",
                    self.msgtype
                ),
            ),
            _ => crate::channel::testing::channel(
                "wecom",
                &format!(
                    "url: https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=k\nmsgtype: {}\nmention: {{user_ids: [zhangsan], mobiles: ['{MOBILE}']}}",
                    self.msgtype
                ),
            ),
        };
        target
    }
}

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(samples::NOW).unwrap().with_timezone(&Utc)
}

/// The messages of a sample as the tool would receive them at the samples' time, each with its size as
/// the tool counts it and that limit.
fn render(sample: &Sample, kind: Kind) -> Vec<(preview::Shown, usize, usize)> {
    let renderer = Renderer::new(None, chrono_tz::Asia::Shanghai, MAX_BYTES).unwrap().at(now());
    let d = crate::decode::decode(sample.payload.to_string().as_bytes()).unwrap();
    let target = kind.target();
    let r = renderer.render(&target, &d);
    assert!(r.template_error.is_none(), "{}: {:?}", sample.name, r.template_error);
    assert_eq!(r.keyword_inserted, 0, "{}: the built-in layout writes the keyword itself", sample.name);
    let limit = target.channel.max_bytes().map_or(MAX_BYTES, |m| m.min(MAX_BYTES));
    r.messages
        .iter()
        .map(|m| {
            let body = send_time::resolve(&m.body, now().timestamp_millis());
            (target.channel.show(&body, None).unwrap(), target.channel.measure(&body), limit)
        })
        .collect()
}

/// Every link target in a message: markdown links and card buttons.
fn links(m: &preview::Shown) -> Vec<String> {
    let mut out: Vec<String> = m.buttons.iter().map(|(_, u)| u.clone()).collect();
    for block in phone::parse(&m.text) {
        let lines = match block {
            phone::Block::Heading(_, t) => vec![t],
            phone::Block::Paragraph(l) | phone::Block::Quote(l) | phone::Block::Item(_, l) => l,
        };
        for line in lines {
            for part in phone::inline(&line) {
                if let phone::Inline::Link { url, .. } = part {
                    out.push(url);
                }
            }
        }
    }
    out
}

fn visible_text(m: &preview::Shown) -> String {
    if m.msgtype == "text" {
        return m.text.clone();
    }
    m.text.split('\n').map(phone::visible).collect::<Vec<_>>().join("\n")
}

fn rings(m: &preview::Shown) -> bool {
    !m.mentions.is_empty() || m.text.contains(&format!("@{MOBILE}"))
}

#[test]
fn the_budgets_hold_over_the_corpus() {
    let corpus = samples::corpus();
    assert!(corpus.len() > 200, "{} samples", corpus.len());
    // The corpus is checked on every core: a 300-alert group takes a while to render in a debug build.
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let failures: Vec<String> = std::thread::scope(|scope| {
        let chunks: Vec<_> = corpus
            .chunks(corpus.len().div_ceil(threads))
            .map(|chunk| scope.spawn(move || chunk.iter().flat_map(check_budgets).collect::<Vec<_>>()))
            .collect();
        chunks.into_iter().flat_map(|h| h.join().expect("a budget check panicked")).collect()
    });
    assert!(failures.is_empty(), "{} budget failures:\n{}", failures.len(), failures.join("\n"));
}

/// What is wrong with a sample's messages in each message type (nothing, if the budgets hold).
fn check_budgets(sample: &Sample) -> Vec<String> {
    let mut failures = vec![];
    let d = crate::decode::decode(sample.payload.to_string().as_bytes()).unwrap();
    let n = &d.notification;
    let firing: Vec<&crate::decode::Alert> = n.firing().collect();
    let named: BTreeSet<&str> = (if firing.is_empty() { n.alerts.iter().collect() } else { firing.clone() })
        .iter()
        .filter_map(|a| a.labels.get("alertname").map(String::as_str))
        .collect();
    let all: Vec<&layout::Labels> = n.alerts.iter().map(|a| &a.labels).collect();
    let differ = layout::differing(&all, &crate::config::LabelFilter::default());
    for kind in KINDS {
        let rendered = render(sample, kind);
        let messages: Vec<preview::Shown> = rendered.iter().map(|(m, _, _)| m.clone()).collect();
        let case = format!("{} ({})", sample.name, kind.name());
        let mut fail = |what: String| failures.push(format!("{case}: {what}"));
        let texts: Vec<String> = messages.iter().map(visible_text).collect();
        for (i, (m, size, limit)) in rendered.iter().enumerate() {
            // Where a tool shows no title (text, WeCom), the first line is what the banner shows.
            let title = if m.title.is_empty() { m.text.lines().next().unwrap_or_default() } else { m.title.as_str() };
            if !named.iter().any(|name| title.contains(name)) {
                fail(format!("message {i}: title {title:?} names none of {named:?}"));
            }
            if size > limit {
                fail(format!("message {i}: {size} bytes (limit {limit})"));
            }
            if !m.text.contains(KEYWORD) || (!m.title.is_empty() && !m.title.contains(KEYWORD)) {
                fail(format!("message {i}: keyword missing"));
            }
            for url in links(m) {
                if !(url.starts_with("https://") || url.starts_with("http://")) {
                    fail(format!("message {i}: link to {url:?}"));
                }
            }
            if firing.is_empty() && rings(m) {
                fail(format!("message {i}: a resolved notification rings"));
            }
            if m.msgtype == "markdown" && m.text.split('\n').any(|l| l.starts_with('#') && !l.starts_with("#### ")) {
                fail(format!("message {i}: a heading other than the layout's"));
            }
        }
        let lines = messages.first().map_or(0, preview::Shown::lines);
        // WeCom's markdown has no title: its heading says FIRING too, which DingTalk's title (the banner,
        // not counted here) does, and may take a second line.
        let single = if (kind.tool, kind.msgtype) == ("wecom", "markdown") { 13 } else { 12 };
        if sample.size == 1 && sample.mix == Mix::Firing && lines > single {
            fail(format!("a single firing alert takes {lines} lines (budget {single})"));
        }
        if sample.size == 12 && (messages.len() > 1 || lines > 30) {
            fail(format!("12 alerts take {} message(s), {lines} lines (budget 1, 30)", messages.len()));
        }
        if sample.size == 300 {
            // WeCom's 4096 bytes hold a fifth of DingTalk's 20000.
            let budget = if kind.tool == "wecom" { 12 } else { 3 };
            if messages.len() > budget {
                fail(format!("300 alerts take {} messages (budget {budget})", messages.len()));
            }
            if !firing.is_empty() && messages.iter().filter(|m| rings(m)).count() != 1 {
                fail(format!(
                    "{} of {} messages ring (budget 1)",
                    messages.iter().filter(|m| rings(m)).count(),
                    messages.len()
                ));
            }
        }
        // Every alert appears in some message, by what tells it apart from the others.
        for a in &n.alerts {
            let value = differ.first().and_then(|k| a.labels.get(k));
            if let Some(v) = value
                && !texts.iter().any(|t| t.contains(v.as_str()))
            {
                fail(format!("alert {v:?} appears in no message"));
            }
        }
    }
    failures
}

/// The reviewed layouts: one file per sample and message type.
const SNAPSHOTS: [(&str, Kind); 28] = [
    ("kube-prometheus-kube_crashloop", kind("dingtalk", "markdown")),
    ("kube-prometheus-group12_same_alert", kind("dingtalk", "markdown")),
    ("kube-prometheus-mixed_firing_resolved", kind("dingtalk", "markdown")),
    ("KubePodCrashLooping-1-firing-namespace", kind("dingtalk", "markdown")),
    ("KubePodCrashLooping-1-firing-namespace", kind("dingtalk", "text")),
    ("KubePodCrashLooping-1-firing-namespace", kind("dingtalk", "actionCard")),
    ("KubePodCrashLooping-1-resolved-namespace", kind("dingtalk", "markdown")),
    ("KubePodCrashLooping-12-firing-namespace-zh", kind("dingtalk", "markdown")),
    ("HostOutOfMemory-1-firing-namespace-zh", kind("dingtalk", "markdown")),
    ("HostOutOfMemory-12-firing-alertname", kind("dingtalk", "markdown")),
    ("HostOutOfMemory-12-firing-alertname", kind("dingtalk", "text")),
    ("KubePodNotReady-300-firing-namespace", kind("dingtalk", "markdown")),
    ("Namespace-12-mixed-namespace", kind("dingtalk", "markdown")),
    ("KubeDeploymentReplicasMismatch-3-mixed-namespace", kind("dingtalk", "markdown")),
    ("CPUThrottlingHigh-12-resolved-namespace", kind("dingtalk", "markdown")),
    ("TargetDown-3-firing-alertname", kind("dingtalk", "markdown")),
    ("Watchdog-1-firing-all", kind("dingtalk", "markdown")),
    ("NodeFilesystemSpaceFillingUp-1-firing-namespace", kind("dingtalk", "markdown")),
    ("KubePodCrashLooping-1-firing-namespace", kind("feishu", "interactive")),
    ("KubePodCrashLooping-1-firing-namespace", kind("feishu", "post")),
    ("KubePodCrashLooping-1-firing-namespace", kind("wecom", "markdown")),
    ("KubePodCrashLooping-1-firing-namespace", kind("wecom", "text")),
    ("KubeDeploymentReplicasMismatch-3-mixed-namespace", kind("feishu", "interactive")),
    ("KubeDeploymentReplicasMismatch-3-mixed-namespace", kind("wecom", "markdown")),
    ("kube-prometheus-group12_same_alert", kind("feishu", "interactive")),
    ("kube-prometheus-group12_same_alert", kind("wecom", "markdown")),
    ("KubePodCrashLooping-1-resolved-namespace", kind("feishu", "interactive")),
    ("NodeFilesystemSpaceFillingUp-1-firing-namespace", kind("wecom", "markdown")),
];

fn snapshot(messages: &[preview::Shown]) -> String {
    let mut out = String::new();
    for (i, m) in messages.iter().enumerate() {
        out.push_str(&format!(
            "=== message {} of {}: {} · {} bytes · {} lines",
            i + 1,
            messages.len(),
            m.msgtype,
            m.bytes,
            m.lines()
        ));
        if !m.mentions.is_empty() {
            out.push_str(&format!(" · rings {}", m.mentions.join(" ")));
        }
        out.push('\n');
        if m.msgtype != "text" {
            out.push_str(&format!("title: {}\n", m.title));
        }
        for (t, u) in &m.buttons {
            out.push_str(&format!("button: {t} -> {u}\n"));
        }
        out.push('\n');
        out.push_str(&m.text);
        out.push_str("\n\n");
    }
    out
}

#[test]
fn the_layout_matches_the_reviewed_snapshots() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots/layout");
    let update = std::env::var_os("UPDATE_SNAPSHOTS").is_some();
    let mut changed = vec![];
    let corpus = samples::corpus();
    for (name, kind) in SNAPSHOTS {
        let sample = corpus.iter().find(|s| s.name == name).unwrap_or_else(|| panic!("no sample {name}"));
        let got = snapshot(&render(sample, kind).into_iter().map(|(m, _, _)| m).collect::<Vec<_>>());
        let path = dir.join(format!("{name}.{}.txt", kind.name()));
        if update {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, &got).unwrap();
            continue;
        }
        let want = std::fs::read_to_string(&path).unwrap_or_default();
        if want != got {
            changed.push(path.display().to_string());
        }
    }
    assert!(
        changed.is_empty(),
        "layouts changed (review, then UPDATE_SNAPSHOTS=1 cargo test to accept):\n{}",
        changed.join("\n")
    );
}
