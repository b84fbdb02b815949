use super::message::contains_token;
use super::*;
use crate::config::Target;
use crate::decode::decode;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

const FIRING: &str = include_str!("../../tests/fixtures/alertmanager-0.25-firing.json");
const RESOLVED: &str = include_str!("../../tests/fixtures/alertmanager-0.25-resolved.json");

fn target(msgtype: &str) -> Target {
    target_with(msgtype, "Alert")
}

/// A DingTalk robot of this message type (`markdown`, `text`, `actionCard`) mentioning 13800000000 and
/// manager01, and more keys of its own (`mention.on_resolved`, …).
pub(super) fn dingtalk(msgtype: &str, more: &str) -> crate::channel::Channel {
    let yaml = format!(
        "url: https://oapi.dingtalk.com/robot/send?access_token=t\nmsgtype: {msgtype}\nmention: {{mobiles: ['13800000000'], user_ids: [manager01]{more}}}"
    );
    crate::channel::testing::channel("dingtalk", &yaml)
}

/// A DingTalk target with this message type and keyword, mentioning 13800000000 and manager01.
pub(super) fn target_with(msgtype: &str, keyword: &str) -> Target {
    Target {
        name: "ops".into(),
        channel: dingtalk(msgtype, ""),
        keyword: Some(keyword.into()),
        template: DEFAULT_SET.into(),
        labels: crate::config::LabelFilter::default(),
        rate_limit: crate::config::RateLimit { messages: 20, per: std::time::Duration::from_secs(60) },
        mention_rules: Default::default(),
        send_on: Default::default(),
        split: Default::default(),
        enabled: true,
    }
}

/// 43 minutes after the fixtures' alerts started.
const NOW: &str = "2026-11-22T03:00:00Z";

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(NOW).unwrap().with_timezone(&Utc)
}

fn renderer() -> Renderer {
    Renderer::new(None, chrono_tz::Asia::Shanghai, 20_000).unwrap().at(now())
}

/// The body as it is sent at [`NOW`] (durations filled in).
fn body(m: &Message) -> Value {
    serde_json::from_str(&send_time::resolve(&m.body, now().timestamp_millis())).unwrap()
}

/// A payload of `n` alerts whose descriptions are `desc_len` characters long.
fn big_group(n: usize, desc_len: usize) -> String {
    group_of(n, |_, a| a["annotations"]["description"] = json!("磁盘".repeat(desc_len / 2)))
}

/// A payload of `n` copies of the fixture's first alert, each its own instance, shaped by `edit`.
fn group_of(n: usize, edit: impl Fn(usize, &mut Value)) -> String {
    let mut v: Value = serde_json::from_str(FIRING).unwrap();
    let template = v["alerts"][0].clone();
    let alerts: Vec<Value> = (0..n)
        .map(|i| {
            let mut a = template.clone();
            a["labels"]["instance"] = json!(format!("node{i}:9100"));
            a["fingerprint"] = json!(format!("fp{i:04}"));
            edit(i, &mut a);
            a
        })
        .collect();
    v["alerts"] = Value::Array(alerts);
    v.to_string()
}

#[test]
fn firing_markdown_has_everything_a_phone_needs() {
    let d = decode(FIRING.as_bytes()).unwrap();
    let r = renderer().render(&target("markdown"), &d);
    assert_eq!(r.messages.len(), 1);
    assert_eq!((r.keyword_inserted, r.truncated), (0, 0));
    assert!(r.template_error.is_none());
    let b = body(&r.messages[0]);
    assert_eq!(b["msgtype"], "markdown");
    assert_eq!(b["msgUuid"], r.messages[0].msg_uuid.as_str());
    // The banner starts with the alert, the keyword last.
    assert_eq!(b["markdown"]["title"], "🟠 FIRING 3 · NodeDiskFull · warning · Alert");
    let text = b["markdown"]["text"].as_str().unwrap();
    for needle in [
        "#### 🟠 NodeDiskFull\n**warning** · 3 firing since 10:16 UTC+8",
        "mountpoint=/data",
        "**node2:9100** · since 10:16 (43m)\n> **Disk almost full on node2**  \n> Filesystem /data on node2",
        "[Runbook](https://runbooks.example.com/NodeDiskFull)",
        "[Silence group](http://alertmanager.example.com:9093/#/silences/new?filter=%7Balertname%3D%22NodeDiskFull%22",
        "[All in Alertmanager](http://alertmanager.example.com:9093/#/alerts?filter=%7Balertname%3D%22NodeDiskFull%22%7D",
        "@13800000000 @manager01 Alert",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }
    assert!(!text.contains("\n\n\n"), "{text}");
    assert_eq!(b["at"], json!({"atMobiles": ["13800000000"], "atUserIds": ["manager01"], "isAtAll": false}));
}

#[test]
fn a_target_decides_which_labels_show() {
    let d = decode(include_str!("../../tests/fixtures/kube-prometheus-kube_crashloop.json").as_bytes());
    let d = d.unwrap();
    let text =
        |t: &Target| body(&renderer().render(t, &d).messages[0])["markdown"]["text"].as_str().unwrap().to_string();
    let mut t = target("markdown");
    let plain = text(&t);
    assert!(plain.contains("payments/payment-api-7d9f8c6b5-x2x9k"), "where: {plain}");
    assert!(!plain.contains("prometheus=") && !plain.contains("uid=") && !plain.contains("instance="), "{plain}");
    t.labels = crate::config::LabelFilter { hide: vec![], show: vec!["prometheus".into()] };
    assert!(text(&t).contains("prometheus=monitoring/k8s"), "{}", text(&t));
}

#[test]
fn durations_are_computed_when_the_message_is_sent() {
    let d = decode(FIRING.as_bytes()).unwrap();
    let stored = renderer().render(&target("markdown"), &d).messages.remove(0);
    let sent_at = |rfc: &str| {
        let ms = DateTime::parse_from_rfc3339(rfc).unwrap().timestamp_millis();
        send_time::resolve(&stored.body, ms).into_owned()
    };
    assert!(sent_at("2026-11-22T03:00:00Z").contains("since 10:16 (43m)"));
    // Held back by a throttle for two hours, the same stored message says so.
    assert!(sent_at("2026-11-22T05:00:00Z").contains("since 10:16 (2h 43m)"));
}

#[test]
fn resolved_shows_how_long_each_lasted_and_does_not_ring_by_default() {
    let d = decode(RESOLVED.as_bytes()).unwrap();
    let mut t = target("markdown");
    let b = body(&renderer().render(&t, &d).messages[0]);
    assert_eq!(b["markdown"]["title"], "✅ RESOLVED 3 · NodeDiskFull · warning · Alert");
    let text = b["markdown"]["text"].as_str().unwrap();
    assert!(text.contains("**Resolved**, lasted:  \nnode1:9100 · 4s  \n"), "{text}");
    assert!(!text.contains("**Firing**") && !text.contains("Silence"), "{text}");
    assert!(!text.contains("@13800000000"), "{text}");
    assert_eq!(b["at"]["atMobiles"], json!([]));

    t.channel = dingtalk("markdown", ", on_resolved: true");
    let b = body(&renderer().render(&t, &d).messages[0]);
    assert!(b["markdown"]["text"].as_str().unwrap().ends_with("@13800000000 @manager01 Alert"));
    assert_eq!(b["at"]["atUserIds"], json!(["manager01"]));
}

#[test]
fn firing_and_resolved_alerts_of_one_group_are_shown_apart() {
    let mut v: Value = serde_json::from_str(FIRING).unwrap();
    v["alerts"][1]["status"] = json!("resolved");
    v["alerts"][1]["endsAt"] = json!("2026-11-22T02:20:00Z");
    let d = decode(v.to_string().as_bytes()).unwrap();
    let b = body(&renderer().render(&target("markdown"), &d).messages[0]);
    assert_eq!(b["markdown"]["title"], "🟠 FIRING 2 (+1 resolved) · NodeDiskFull · warning · Alert");
    let text = b["markdown"]["text"].as_str().unwrap().to_string();
    let (firing, resolved) = (text.find("**Firing**:").unwrap(), text.find("**Resolved**, lasted:").unwrap());
    assert!(firing < resolved);
    assert!(text[resolved..].contains("node2:9100 · 3m"), "{text}");
    assert!(!text[firing..resolved].contains("node2"), "{text}");
}

#[test]
fn text_and_action_card() {
    let d = decode(FIRING.as_bytes()).unwrap();
    let b = body(&renderer().render(&target("text"), &d).messages[0]);
    assert_eq!(b["msgtype"], "text");
    let content = b["text"]["content"].as_str().unwrap();
    assert!(content.starts_with("🟠 FIRING 3: NodeDiskFull\nwarning · 3 firing since 10:16 UTC+8"), "{content}");
    assert!(content.contains("\nnode1:9100 · 10:16\n"), "{content}");
    assert!(content.ends_with("@13800000000 @manager01 Alert"), "{content}");

    let b = body(&renderer().render(&target("actionCard"), &d).messages[0]);
    assert_eq!(b["msgtype"], "actionCard");
    assert!(b.get("at").is_none(), "actionCard has no at field");
    let titles: Vec<&str> =
        b["actionCard"]["btns"].as_array().unwrap().iter().map(|b| b["title"].as_str().unwrap()).collect();
    assert_eq!(titles, ["Alertmanager", "Silence", "Runbook"]);
    assert_eq!(b["actionCard"]["btnOrientation"], "1");
    assert!(
        b["actionCard"]["btns"][1]["actionURL"]
            .as_str()
            .unwrap()
            .starts_with("http://alertmanager.example.com:9093/#/silences/new?filter=")
    );
    let text = b["actionCard"]["text"].as_str().unwrap();
    assert!(text.contains("@manager01") && !text.contains("[Silence"), "the buttons replace the links: {text}");
}

fn user_set(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("mine")).unwrap();
    for (name, text) in files {
        std::fs::write(dir.path().join("mine").join(name), text).unwrap();
    }
    dir
}

#[test]
fn keyword_is_added_when_a_template_leaves_it_out() {
    let dir =
        user_set(&[("title.hbs", "{{groupName}}"), ("markdown.hbs", "{{#each alerts}}{{labels.instance}} {{/each}}")]);
    let r = Renderer::new(Some(dir.path()), chrono_tz::UTC, 20_000).unwrap();
    let mut t = target("markdown");
    t.template = "mine".into();
    let out = r.render(&t, &decode(FIRING.as_bytes()).unwrap());
    assert_eq!(out.keyword_inserted, 1);
    let b = body(&out.messages[0]);
    // Last, so a phone's banner and the message start with the alert.
    assert_eq!(b["markdown"]["title"], "NodeDiskFull Alert");
    assert_eq!(b["markdown"]["text"], "node1:9100 node2:9100 node3:9100\n\nAlert @13800000000 @manager01");
}

#[test]
fn a_template_that_fails_at_run_time_falls_back_to_the_builtin() {
    // Strict mode: a field the payload lacks is an error, not an empty string.
    let dir = user_set(&[("markdown.hbs", "{{commonLabels.team}} is on fire")]);
    let r = Renderer::new(Some(dir.path()), chrono_tz::UTC, 20_000).unwrap();
    let mut t = target("markdown");
    t.template = "mine".into();
    let d = decode(FIRING.as_bytes()).unwrap();
    assert_eq!(r.render_strict(&t, &d).unwrap_err().template, "mine/markdown");
    let out = r.render(&t, &d);
    assert!(out.template_error.as_ref().unwrap().message.contains("commonLabels.team"), "{:?}", out.template_error);
    let text = body(&out.messages[0])["markdown"]["text"].as_str().unwrap().to_string();
    assert!(text.contains("Disk almost full on node3"), "{text}");
}

#[test]
fn broken_template_files_are_named() {
    let dir = user_set(&[("markdown.hbs", "{{#if x}}unclosed"), ("mardown.hbs", "typo")]);
    let errors = Renderer::new(Some(dir.path()), chrono_tz::UTC, 20_000).err().unwrap();
    let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert_eq!(text.len(), 2, "{text:?}");
    assert!(text.iter().any(|e| e.contains("mine/markdown.hbs")), "{text:?}");
    assert!(text.iter().any(|e| e.contains("mine/mardown.hbs") && e.contains("unknown template file")), "{text:?}");
}

#[test]
fn big_group_is_split_into_few_numbered_parts_that_each_fit_and_only_the_first_rings() {
    let d = decode(big_group(300, 120).as_bytes()).unwrap();
    let max = 3_000;
    let out = Renderer::new(None, chrono_tz::Asia::Shanghai, max).unwrap().at(now()).render(&target("markdown"), &d);
    let n = out.messages.len();
    assert!(n > 1, "300 alerts cannot fit one message of {max} bytes");
    let mut seen = vec![0; 300];
    let mut total_bytes = 0;
    for (i, m) in out.messages.iter().enumerate() {
        assert!(m.body.len() <= max, "part {i} is {} bytes", m.body.len());
        total_bytes += m.body.len();
        let b = body(m);
        let title = b["markdown"]["title"].as_str().unwrap();
        assert_eq!(title, format!("🟠 FIRING 300 ({}/{n}) · NodeDiskFull · warning · Alert", i + 1));
        let text = b["markdown"]["text"].as_str().unwrap();
        assert!(text.contains("of 300):"), "each part says which alerts it shows: {text}");
        // One ring for the whole group, not one per part.
        let rings = text.contains("@manager01") || b["at"]["atUserIds"] != json!([]);
        assert_eq!(rings, i == 0, "part {i}: {text}");
        assert!(text.contains("Alert"), "keyword in every part");
        for (k, count) in seen.iter_mut().enumerate() {
            if text.contains(&format!("\nnode{k}:9100 · ")) {
                *count += 1;
            }
        }
    }
    assert!(seen.iter().all(|&c| c == 1), "every alert exactly once: {seen:?}");
    // As few parts as fit: the greedy packing wastes less than one part's worth of space.
    assert!(n <= total_bytes / max + 2, "{n} parts for {total_bytes} bytes");
    assert_eq!(out.truncated, 0);
}

#[test]
fn a_lone_huge_alert_is_cut_at_a_character_boundary() {
    let d = decode(group_of(1, |_, a| a["labels"]["detail"] = json!("磁盘".repeat(15_000))).as_bytes()).unwrap();
    let out = renderer().render(&target("markdown"), &d);
    assert_eq!((out.messages.len(), out.truncated), (1, 1));
    let m = &out.messages[0];
    assert!(m.body.len() <= 20_000 && m.body.len() > 19_000, "{} bytes", m.body.len());
    let text = body(m)["markdown"]["text"].as_str().unwrap().to_string();
    assert!(text.contains("… (cut to fit DingTalk's message size limit)"), "{text}");
    assert!(text.starts_with("#### 🟠 NodeDiskFull") && text.ends_with("Alert @13800000000 @manager01"), "{text}");
}

#[test]
fn mention_tokens_match_whole_ids() {
    assert!(contains_token("hi @138 there", "@138"));
    assert!(contains_token("hi @138", "@138"));
    assert!(!contains_token("hi @1380", "@138"));
    assert!(!contains_token("hi @user01_x", "@user01"));
}

#[test]
fn every_sample_renders_with_the_builtin_templates() {
    for (name, payload) in crate::cli::SAMPLES {
        let d = decode(payload.as_bytes()).unwrap();
        for msgtype in ["markdown", "text", "actionCard"] {
            let r = renderer().render_strict(&target(msgtype), &d);
            assert!(r.is_ok(), "sample {name} as {msgtype:?}: {:?}", r.err());
        }
    }
}

/// Groups of every shape are packed into numbered parts that each fit, carry every alert exactly once in
/// order, and are about as few as the bytes allow.
#[test]
fn packing_holds_for_uneven_groups_and_limits() {
    for (n, max) in [(2, 1_500), (9, 3_000), (40, 6_000), (64, 20_000), (65, 20_000), (300, 20_000), (300, 200_000)] {
        let payload = group_of(n, |i, a| {
            // Very uneven alerts: the size model is a straight line, these are not.
            a["labels"]["detail"] = json!("x".repeat((i * 7919) % 900 + 1));
            if i % 3 == 0 {
                a["status"] = json!("resolved");
                a["endsAt"] = json!("2026-11-22T03:00:00Z");
            }
        });
        let d = decode(payload.as_bytes()).unwrap();
        let renderer = Renderer::new(None, chrono_tz::Asia::Shanghai, max).unwrap();
        let out = renderer.render(&target("markdown"), &d);
        assert!(out.template_error.is_none());
        let parts = out.messages.len();
        let mut seen: Vec<usize> = vec![];
        let mut total_bytes = 0;
        for (i, m) in out.messages.iter().enumerate() {
            assert!(m.body.len() <= max, "n={n}: part {i} is {} > {max} bytes", m.body.len());
            total_bytes += m.body.len();
            let text = body(m)["markdown"]["text"].as_str().unwrap().to_string();
            if parts > 1 {
                assert!(text.contains(&format!("({}/{parts})", i + 1)), "n={n}: part {i} numbered");
            }
            let mut here: Vec<(usize, usize)> =
                (0..n).filter_map(|k| text.find(&format!("node{k}:9100 · ")).map(|at| (at, k))).collect();
            here.sort();
            seen.extend(here.into_iter().map(|(_, k)| k));
        }
        let firing_first: Vec<usize> = (0..n).filter(|i| i % 3 != 0).chain((0..n).filter(|i| i % 3 == 0)).collect();
        assert_eq!(seen, firing_first, "n={n}: every alert once, firing first, in order");
        assert!(parts <= total_bytes / max + 2, "n={n}: {parts} parts for {total_bytes} bytes");
        if max >= 6_000 {
            assert_eq!(out.truncated, 0, "n={n}: only an alert too big alone is cut");
        }
    }
}

#[test]
fn no_annotation_or_label_can_inject_a_link_or_a_heading() {
    let payload = group_of(3, |i, a| {
        a["annotations"]["runbook_url"] = json!(
            [
                "http://ok.example/a) **INJECTED** [evil](http://evil.example",
                "javascript:alert(1)",
                "![img](http://evil.example/x.png)"
            ][i]
        );
        a["generatorURL"] = json!("javascript:alert(document.cookie)");
        a["annotations"]["summary"] = json!("disk\n# HEADING\n---\n[evil](http://evil.example)");
        a["annotations"]["description"] = json!("line one\n\n## not a heading\n> not a quote");
        a["labels"]["pod"] = json!("p\n### label heading");
    });
    let mut v: Value = serde_json::from_str(&payload).unwrap();
    v["externalURL"] = json!("javascript:alert(1)");
    let d = decode(v.to_string().as_bytes()).unwrap();
    for msgtype in ["markdown", "actionCard"] {
        let r = renderer().render(&target(msgtype), &d);
        for m in &r.messages {
            let b = body(m);
            // Without an http(s) link an actionCard is sent as markdown.
            let kind = b["msgtype"].as_str().unwrap().to_string();
            let text = b[&kind]["text"].as_str().unwrap();
            assert!(!text.contains("javascript:"), "{text}");
            // An escaped `\\](` is shown as written; only an unescaped `](` would make a link.
            let linked = text.match_indices("](http://evil").any(|(i, _)| !text[..i].ends_with('\\'));
            assert!(!linked, "an injected link: {text}");
            assert!(!text.contains("!["), "{text}");
            for line in text.lines() {
                let heading = line.starts_with('#') && !line.starts_with("### Alert") && !line.starts_with("#### ");
                assert!(!heading && line.trim() != "---", "an injected heading or rule: {line:?} in\n{text}");
            }
            // The one runbook that is an http(s) URL is linked, percent-encoded so it ends where it should.
            if msgtype == "markdown" {
                assert!(
                    text.contains(
                        "[Runbook](http://ok.example/a%29%20**INJECTED**%20%5Bevil%5D%28http://evil.example)"
                    ),
                    "{text}"
                );
            }
            assert!(!b.to_string().contains("javascript:"), "no button to a javascript: URL: {b}");
        }
    }
}

/// A target whose rules ring everyone of a 60-person group, and the owner label.
fn ringing_everyone() -> Target {
    use crate::people::{Directory, Person, Rule, Rules};
    let mut d = Directory::default();
    for i in 0..60 {
        let name = format!("p{i:02}");
        let p = Person::with(&name, &[("dingtalk_mobile", &format!("139000000{i:02}"))]);
        d.people.insert(name, p);
    }
    let feishu_only = Person::with("feishu-only", &[("feishu_user_id", "ou_x")]);
    d.people.insert("feishu-only".into(), feishu_only);
    d.groups.insert("everyone".into(), (0..60).map(|i| format!("p{i:02}")).collect());
    let rules = vec![
        Rule { people: vec!["everyone".into()], ..Rule::default() },
        Rule { from_label: Some("owner".into()), ..Rule::default() },
    ];
    Target {
        mention_rules: Rules { rules, directory: std::sync::Arc::new(d), on_resolved: false },
        ..target("markdown")
    }
}

#[test]
fn rules_ring_within_dingtalks_50_and_say_whom_they_left_out() {
    let mut v: Value = serde_json::from_str(FIRING).unwrap();
    v["alerts"][0]["labels"]["owner"] = json!("feishu-only");
    v["alerts"][1]["labels"]["owner"] = json!("@stranger");
    let d = decode(v.to_string().as_bytes()).unwrap();
    let r = renderer().render(&ringing_everyone(), &d);
    let b = body(&r.messages[0]);
    let rung = b["at"]["atMobiles"].as_array().unwrap().len() + b["at"]["atUserIds"].as_array().unwrap().len();
    assert_eq!(rung, 50, "DingTalk mentions at most 50 people a message");
    let text = b["markdown"]["text"].as_str().unwrap();
    for m in b["at"]["atMobiles"].as_array().unwrap() {
        assert!(text.contains(&format!("@{}", m.as_str().unwrap())), "{m} written in the text, so it rings");
    }
    let m = &r.mentioned;
    assert_eq!((m.rung, m.capped.len()), (50, 12), "the fixed two first, then 48 of the group");
    assert_eq!(m.no_identifier, ["feishu-only"], "no DingTalk identifier");
    assert_eq!(m.unknown, ["stranger"]);
}

#[test]
fn a_split_group_rings_its_owners_once_in_the_first_part() {
    let payload = group_of(300, |i, a| {
        a["labels"]["detail"] = json!(format!("{i}-{}", "x".repeat(200)));
        if i >= 250 {
            a["labels"]["owner"] = json!("p07");
        }
    });
    let d = decode(payload.as_bytes()).unwrap();
    let r = renderer().render(&ringing_everyone(), &d);
    assert!(r.messages.len() > 1);
    let rings = |m: &Message| {
        let at = &body(m)["at"];
        at["atMobiles"].as_array().unwrap().len() + at["atUserIds"].as_array().unwrap().len()
    };
    assert_eq!(rings(&r.messages[0]), 50, "the first part rings for the whole group");
    assert!(r.messages[1..].iter().all(|m| rings(m) == 0), "later parts ring nobody");
}
