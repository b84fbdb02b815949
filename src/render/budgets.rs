//! The built-in layout's budgets, checked over the whole sample corpus in every message type, and the
//! reviewed snapshots of a selection (`tests/snapshots/layout/`; `UPDATE_SNAPSHOTS=1 cargo test` rewrites
//! them, so a change to the layout shows up as a diff in review).

use std::collections::BTreeSet;

use super::samples::{self, Mix, Sample};
use super::*;
use crate::channel::dingtalk::MsgType;

const KEYWORD: &str = "ProdAlert";
/// Mentioned by every target of the tests.
const MOBILE: &str = "13800000000";
const MAX_BYTES: usize = 20_000;

fn target(msgtype: MsgType) -> Target {
    super::tests::target_with(msgtype, KEYWORD)
}

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(samples::NOW).unwrap().with_timezone(&Utc)
}

/// The messages of a sample as DingTalk would receive them at the samples' time.
fn render(sample: &Sample, msgtype: MsgType) -> Vec<preview::Shown> {
    let renderer = Renderer::new(None, chrono_tz::Asia::Shanghai, MAX_BYTES).unwrap().at(now());
    let d = crate::decode::decode(sample.payload.to_string().as_bytes()).unwrap();
    let r = renderer.render(&target(msgtype), &d);
    assert!(r.template_error.is_none(), "{}: {:?}", sample.name, r.template_error);
    assert_eq!(r.keyword_inserted, 0, "{}: the built-in layout writes the keyword itself", sample.name);
    r.messages
        .iter()
        .map(|m| preview::Shown::of(&send_time::resolve(&m.body, now().timestamp_millis())).unwrap())
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
    for msgtype in [MsgType::Markdown, MsgType::Text, MsgType::ActionCard] {
        let messages = render(sample, msgtype);
        let case = format!("{} ({})", sample.name, msgtype.as_str());
        let mut fail = |what: String| failures.push(format!("{case}: {what}"));
        let texts: Vec<String> = messages.iter().map(visible_text).collect();
        for (i, m) in messages.iter().enumerate() {
            let title = if m.msgtype == "text" { m.text.lines().next().unwrap_or_default() } else { m.title.as_str() };
            if !named.iter().any(|name| title.contains(name)) {
                fail(format!("message {i}: title {title:?} names none of {named:?}"));
            }
            if m.bytes > MAX_BYTES {
                fail(format!("message {i}: {} bytes", m.bytes));
            }
            if !m.text.contains(KEYWORD) || (m.msgtype != "text" && !m.title.contains(KEYWORD)) {
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
        if sample.size == 1 && sample.mix == Mix::Firing && lines > 12 {
            fail(format!("a single firing alert takes {lines} lines (budget 12)"));
        }
        if sample.size == 12 && (messages.len() > 1 || lines > 30) {
            fail(format!("12 alerts take {} message(s), {lines} lines (budget 1, 30)", messages.len()));
        }
        if sample.size == 300 {
            if messages.len() > 3 {
                fail(format!("300 alerts take {} messages (budget 3)", messages.len()));
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
const SNAPSHOTS: [(&str, MsgType); 18] = [
    ("kube-prometheus-kube_crashloop", MsgType::Markdown),
    ("kube-prometheus-group12_same_alert", MsgType::Markdown),
    ("kube-prometheus-mixed_firing_resolved", MsgType::Markdown),
    ("KubePodCrashLooping-1-firing-namespace", MsgType::Markdown),
    ("KubePodCrashLooping-1-firing-namespace", MsgType::Text),
    ("KubePodCrashLooping-1-firing-namespace", MsgType::ActionCard),
    ("KubePodCrashLooping-1-resolved-namespace", MsgType::Markdown),
    ("KubePodCrashLooping-12-firing-namespace-zh", MsgType::Markdown),
    ("HostOutOfMemory-1-firing-namespace-zh", MsgType::Markdown),
    ("HostOutOfMemory-12-firing-alertname", MsgType::Markdown),
    ("HostOutOfMemory-12-firing-alertname", MsgType::Text),
    ("KubePodNotReady-300-firing-namespace", MsgType::Markdown),
    ("Namespace-12-mixed-namespace", MsgType::Markdown),
    ("KubeDeploymentReplicasMismatch-3-mixed-namespace", MsgType::Markdown),
    ("CPUThrottlingHigh-12-resolved-namespace", MsgType::Markdown),
    ("TargetDown-3-firing-alertname", MsgType::Markdown),
    ("Watchdog-1-firing-all", MsgType::Markdown),
    ("NodeFilesystemSpaceFillingUp-1-firing-namespace", MsgType::Markdown),
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
    for (name, msgtype) in SNAPSHOTS {
        let sample = corpus.iter().find(|s| s.name == name).unwrap_or_else(|| panic!("no sample {name}"));
        let got = snapshot(&render(sample, msgtype));
        let path = dir.join(format!("{name}.{}.txt", msgtype.as_str()));
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
