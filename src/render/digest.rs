//! Storm digests: when a robot's backlog cannot drain within its rate budget, waiting notifications are
//! listed one line each in a digest message, made from each one's [`Summary`].

use super::layout;
use super::message::{Message, contains_token, new_uuid};
use super::renderer::Renderer;
use super::summary::Summary;
use crate::channel::Content;
use crate::config::Target;
use crate::decode::Status;

impl Renderer {
    /// A digest of as many of `entries` (in order) as fit one message; returns it and how many it carries
    /// (at least one). `why` is a sentence saying why they are listed together.
    pub fn digest(&self, target: &Target, entries: &[Summary], why: &str) -> (Message, usize) {
        let uuid = new_uuid();
        let build = |k: usize| self.digest_body(target, &entries[..k], entries.len(), why, &uuid);
        // Within the target's protocol's limit as it counts it (WeCom: 4096 bytes of content).
        let limit = self.limit(target);
        let (mut lo, mut hi) = (1, entries.len().max(1));
        while lo < hi {
            let mid = (lo + hi).div_ceil(2);
            if target.channel.measure(&build(mid)) <= limit {
                lo = mid;
            } else {
                hi = mid - 1;
            }
        }
        (Message { msg_uuid: uuid.clone(), body: build(lo), recipients: None }, lo.min(entries.len()))
    }

    fn digest_body(&self, target: &Target, entries: &[Summary], waiting: usize, why: &str, uuid: &str) -> String {
        let markdown = !target.channel.text_only();
        let firing = entries.iter().filter(|e| e.status == Status::Firing).count();
        let resolved = entries.len() - firing;
        // The keyword last, as in every message: a phone's banner starts with what the message is about.
        let kw = target.keyword.as_deref().map(|k| format!(" · {k}")).unwrap_or_default();
        let title = format!("📋 DIGEST {} notifications ({firing} firing, {resolved} resolved){kw}", entries.len());
        let rest = waiting - entries.len();
        let mut text = if markdown && !target.channel.caps().headings {
            // A Feishu card draws no headings: its header already says it is a digest.
            format!("**📋 {} notifications**\n\n", entries.len())
        } else if markdown && !target.channel.caps().shows_title {
            // WeCom shows no title: the heading is what the chat list and the banner show.
            format!("#### {}\n\n", title.strip_suffix(kw.as_str()).unwrap_or(&title))
        } else if markdown {
            format!("#### 📋 {} notifications\n\n", entries.len())
        } else {
            format!("📋 {} notifications ({firing} firing, {resolved} resolved)\n\n", entries.len())
        };
        text.push_str(why);
        if rest > 0 {
            text.push_str(&format!(" {rest} more follow in the next message."));
        }
        text.push_str("\n\n");
        text.push_str(&entries.iter().map(|e| e.line(markdown)).collect::<Vec<_>>().join("\n"));
        // Only an http(s) Alertmanager address makes a link (never `javascript:` or a relative path).
        let url = entries.iter().find_map(|e| super::links::link_url(&e.external_url));
        if let Some(url) = &url {
            text.push_str(&if markdown {
                format!("\n\n[Alertmanager]({url})")
            } else {
                format!("\n\nAlertmanager: {url}")
            });
        }
        let firing = firing > 0;
        // A digest rings the target's fixed mentions; its notifications' own rules rang when they came.
        let ring = target.channel.fixed_ring(firing);
        let mentions: Vec<String> =
            target.channel.mention_tokens(&ring).into_iter().filter(|t| !contains_token(&text, t)).collect();
        let footer: Vec<&str> = mentions.iter().map(String::as_str).chain(target.keyword.as_deref()).collect();
        if !footer.is_empty() {
            text.push_str("\n\n");
            text.push_str(&footer.join(" "));
        }
        let buttons: Vec<(&str, &str)> = url.iter().map(|u| ("Alertmanager", u.as_str())).collect();
        let level = entries
            .iter()
            .filter(|e| e.status == Status::Firing)
            .map(|e| layout::Level::of(&e.severity))
            .max()
            .unwrap_or(layout::Level::None);
        let content = Content { title: &title, text: &text, firing, ring: &ring, buttons: &buttons, level };
        target.channel.body(&content, uuid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channel::testing::channel;
    use crate::decode::decode;
    use crate::render::summarize;
    use serde_json::Value;

    fn target() -> Target {
        Target {
            name: "ops".into(),
            channel: channel(
                "dingtalk",
                "url: https://x/robot/send?access_token=t\nmention: {mobiles: ['13800000000']}",
            ),
            keyword: Some("Alert".into()),
            template: "default".into(),
            labels: crate::config::LabelFilter::default(),
            rate_limit: crate::config::RateLimit { messages: 20, per: std::time::Duration::from_secs(60) },
            mention_rules: Default::default(),
            send_on: Default::default(),
            split: Default::default(),
            enabled: true,
        }
    }

    fn entry(i: usize, status: &str) -> Summary {
        Summary {
            status: if status == "firing" { Status::Firing } else { Status::Resolved },
            name: format!("Incident_{i}"),
            severity: "critical".into(),
            firing: usize::from(status == "firing"),
            resolved: usize::from(status == "resolved"),
            subjects: vec![format!("node{i}:9100")],
            summary: format!("Something broke on node{i}"),
            external_url: "http://am:9093".into(),
            place: String::new(),
        }
    }

    #[test]
    fn summary_of_a_real_capture() {
        let d = decode(include_str!("../../tests/fixtures/alertmanager-0.25-firing.json").as_bytes()).unwrap();
        let s = summarize(&d);
        assert_eq!(s.name, "NodeDiskFull");
        assert_eq!((s.firing, s.resolved, s.severity.as_str()), (3, 0, "warning"));
        assert_eq!(s.subjects, vec!["node1:9100", "node2:9100", "node3:9100"]);
        assert_eq!(s.summary, "Disk almost full on node1");
        assert_eq!(
            s.line(true),
            "- 🟠 **NodeDiskFull** · warning · node1:9100, node2:9100, node3:9100 · Disk almost full on node1"
        );
    }

    #[test]
    fn digest_lists_every_entry_with_keyword_and_mentions() {
        let r = Renderer::new(None, chrono_tz::UTC, 20_000).unwrap();
        let entries: Vec<Summary> = (0..30).map(|i| entry(i, if i % 3 == 0 { "resolved" } else { "firing" })).collect();
        let (m, carried) = r.digest(&target(), &entries, "Too many at once.");
        assert_eq!(carried, 30);
        let b: Value = serde_json::from_str(&m.body).unwrap();
        assert_eq!(b["msgUuid"], m.msg_uuid.as_str());
        assert_eq!(b["markdown"]["title"], "📋 DIGEST 30 notifications (20 firing, 10 resolved) · Alert");
        let text = b["markdown"]["text"].as_str().unwrap();
        for i in 0..30 {
            assert!(
                text.contains(&format!("**Incident_{i}** · critical · node{i}:9100 · Something broke on node{i}")),
                "{text}"
            );
        }
        assert!(text.starts_with("#### 📋 30 notifications\n\nToo many at once."), "{text}");
        assert!(text.contains("- 🔴 **Incident_1**") && text.contains("- ✅ **Incident_0**"), "{text}");
        assert!(text.ends_with("@13800000000 Alert"), "{text}");
        assert_eq!(b["at"]["atMobiles"][0], "13800000000");
    }

    #[test]
    fn digest_packs_what_fits_and_says_more_follow() {
        let r = Renderer::new(None, chrono_tz::UTC, 4_000).unwrap();
        let entries: Vec<Summary> = (0..100).map(|i| entry(i, "firing")).collect();
        let (m, carried) = r.digest(&target(), &entries, "Too many at once.");
        assert!(carried > 5 && carried < 100, "{carried}");
        assert!(m.body.len() <= 4_000);
        let text = serde_json::from_str::<Value>(&m.body).unwrap()["markdown"]["text"].as_str().unwrap().to_string();
        assert!(text.contains(&format!("{} more follow in the next message", 100 - carried)), "{text}");
        assert!(
            text.contains(&format!("Incident_{}**", carried - 1)) && !text.contains(&format!("Incident_{carried}**"))
        );
    }

    #[test]
    fn a_wecom_digest_fits_4096_bytes_of_content_and_heads_with_its_title() {
        let r = Renderer::new(None, chrono_tz::UTC, 20_000).unwrap();
        let mut t = target();
        t.channel = channel("wecom", "url: https://x/cgi-bin/webhook/send?key=k\nmention: {user_ids: [zhangsan]}");
        let entries: Vec<Summary> = (0..100).map(|i| entry(i, "firing")).collect();
        let (m, carried) = r.digest(&t, &entries, "Too many at once.");
        let content =
            serde_json::from_str::<Value>(&m.body).unwrap()["markdown"]["content"].as_str().unwrap().to_string();
        assert!(content.len() <= 4096 && m.body.len() > content.len(), "{} bytes", content.len());
        assert!(carried > 5 && carried < 100, "{carried}");
        assert!(
            content.starts_with(&format!("#### 📋 DIGEST {carried} notifications ({carried} firing, 0 resolved)\n\n")),
            "{content}"
        );
        assert!(content.ends_with("<@zhangsan> Alert"), "{content}");
    }
}
