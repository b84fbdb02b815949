//! Mentions and routing from the alerts themselves (issue 14), over loopback against the mocks that
//! enforce each protocol: who is rung (DingTalk highlights only mentions written in the text, Feishu rings
//! `<at>`), `send_on`, `split: per_alert` under the rate budget, and routers.

mod common;

use common::mock_dingtalk::{Limits, MockDingTalk, RobotSpec};
use common::mock_feishu::{BotSpec, MockFeishu};
use common::{Bridge, FIRING, RESOLVED, metric, post, wait_for};
use serde_json::{Value, json};

const ALICE: &str = "13800000001";
const BOB: &str = "13800000002";

fn robot(token: &str) -> RobotSpec {
    RobotSpec { token: token.into(), secret: None, keywords: vec!["Alert".into()] }
}

struct Tools {
    dingtalk: MockDingTalk,
    feishu: MockFeishu,
}

async fn tools() -> Tools {
    let tokens = ["tok-ops", "tok-firing", "tok-pay", "tok-each"];
    let dingtalk = MockDingTalk::start(tokens.iter().map(|t| robot(t)).collect(), Limits::default()).await;
    let feishu = MockFeishu::start(vec![BotSpec { token: "hook-fs".into(), secret: None, keywords: vec![] }]).await;
    Tools { dingtalk, feishu }
}

fn config(t: &Tools) -> String {
    format!(
        r#"storage: {{path: outbox.sqlite3}}
delivery: {{backoff_initial: 100ms, backoff_max: 200ms, digest_after: 1s}}
people:
  alice: {{dingtalk_mobile: "{ALICE}", feishu_user_id: ou_alice}}
  bob: {{dingtalk_mobile: "{BOB}"}}
groups:
  payments-oncall: [alice, bob]
targets:
  ops:
    url: "{ops}"
    keyword: Alert
    mention:
      rules:
      - match: {{severity: critical}}
        all: true
      - from_label: owner
      - from_annotation: mention
  ops-feishu:
    type: feishu
    url: "{fs}"
    mention:
      rules:
      - from_label: owner
  firing-only:
    url: "{firing}"
    keyword: Alert
    send_on: [firing]
  pay:
    url: "{pay}"
    keyword: Alert
    mention:
      rules:
      - matchers: ['severity=~"critical|page"']
        people: [payments-oncall]
  each:
    url: "{each}"
    keyword: Alert
    split: per_alert
    mention: {{rules: [{{from_label: owner}}]}}
  by-team:
    route:
      by_label: team
      targets: {{payments: pay}}
      default: ops
  strict-router:
    route:
      by_label: team
      targets: {{payments: pay}}
"#,
        ops = t.dingtalk.url("tok-ops"),
        fs = t.feishu.url("hook-fs"),
        firing = t.dingtalk.url("tok-firing"),
        pay = t.dingtalk.url("tok-pay"),
        each = t.dingtalk.url("tok-each"),
    )
}

/// The firing capture's group with each alert's labels and annotations changed by `edit`.
fn payload(base: &str, group: &str, edit: impl Fn(usize, &mut Value)) -> String {
    let mut v: Value = serde_json::from_str(base).unwrap();
    v["groupKey"] = json!(format!("{{}}:{{alertname=\"{group}\"}}"));
    for (i, a) in v["alerts"].as_array_mut().unwrap().iter_mut().enumerate() {
        a["labels"]["alertname"] = json!(group);
        a["fingerprint"] = json!(format!("{group}-{i}"));
        edit(i, a);
    }
    v["commonLabels"] = json!({"alertname": group});
    v.to_string()
}

fn labelled(base: &str, group: &str, labels: &[(&str, &str)]) -> String {
    payload(base, group, |_, a| {
        for (k, v) in labels {
            a["labels"][*k] = json!(v);
        }
    })
}

fn posted_to(t: &Tools, token: &str) -> Vec<common::mock_dingtalk::Posted> {
    t.dingtalk.posted().into_iter().filter(|p| p.token == token).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_owner_from_a_label_is_rung_everywhere_and_all_only_for_critical() {
    let t = tools().await;
    let dir = tempfile::tempdir().unwrap();
    let bridge = Bridge::start(dir.path(), &config(&t)).await;
    let send = |target: &str| bridge.url(&format!("/dingtalk/{target}/send"));

    let critical = labelled(FIRING, "PaymentsDown", &[("severity", "critical"), ("owner", "alice")]);
    for target in ["ops", "ops-feishu"] {
        assert_eq!(post(&send(target), "application/json", critical.clone()).await.0, 200);
    }
    wait_for("the critical one", || async { posted_to(&t, "tok-ops").len() == 1 && t.feishu.posted().len() == 1 })
        .await;
    let dt = &posted_to(&t, "tok-ops")[0];
    assert_eq!(dt.highlighted, [ALICE], "Alice is rung, her mobile written in the text");
    assert_eq!(dt.body["at"]["isAtAll"], true, "@all for critical");
    assert_eq!(t.feishu.posted()[0].rings, ["ou_alice"], "Alice by her Feishu id");

    let warning = labelled(FIRING, "PaymentsSlow", &[("severity", "warning"), ("owner", "alice")]);
    assert_eq!(post(&send("ops"), "application/json", warning).await.0, 200);
    wait_for("the warning", || async { posted_to(&t, "tok-ops").len() == 2 }).await;
    let dt = &posted_to(&t, "tok-ops")[1];
    assert_eq!((dt.highlighted.as_slice(), &dt.body["at"]["isAtAll"]), (&[ALICE.to_string()][..], &json!(false)));

    let resolved = labelled(RESOLVED, "PaymentsDown", &[("severity", "critical"), ("owner", "alice")]);
    assert_eq!(post(&send("ops"), "application/json", resolved).await.0, 200);
    wait_for("the resolved one", || async { posted_to(&t, "tok-ops").len() == 3 }).await;
    let dt = &posted_to(&t, "tok-ops")[2];
    assert!(dt.highlighted.is_empty() && dt.body["at"]["isAtAll"] == false, "resolved rings nobody: {:?}", dt.body);

    // A stranger's number in a label rings nobody; a group named in an annotation rings its members.
    let stranger = payload(FIRING, "Stranger", |i, a| {
        a["labels"]["owner"] = json!("13999999999");
        if i == 0 {
            a["annotations"]["mention"] = json!("payments-oncall");
        }
    });
    assert_eq!(post(&send("ops"), "application/json", stranger).await.0, 200);
    wait_for("the stranger's", || async { posted_to(&t, "tok-ops").len() == 4 }).await;
    let dt = &posted_to(&t, "tok-ops")[3];
    assert_eq!(dt.highlighted, [ALICE, BOB]);
    assert!(!dt.body.to_string().contains("13999999999"), "never mentioned");
    let m = bridge.metrics().await;
    let mentions = |o: &str| metric(&m, "dingtalk_bridge_mentions_total", &[("target", "ops"), ("outcome", o)]);
    assert_eq!((mentions("rung"), mentions("all"), mentions("unknown")), (4.0, 1.0, 1.0));
    assert_eq!(metric(&m, "dingtalk_bridge_mentions_total", &[("target", "ops-feishu"), ("outcome", "rung")]), 1.0);
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_firing_only_target_never_receives_the_resolved_message() {
    let t = tools().await;
    let dir = tempfile::tempdir().unwrap();
    let bridge = Bridge::start(dir.path(), &config(&t)).await;
    let send = bridge.url("/dingtalk/firing-only/send");
    let (status, answer) = post(&send, "application/json", FIRING).await;
    assert_eq!((status, answer["status"].as_str()), (200, Some("accepted")));
    let (status, answer) = post(&send, "application/json", RESOLVED).await;
    assert_eq!((status, &answer["status"], &answer["reason"]), (200, &json!("skipped"), &json!("send_on")));
    // A firing notification that carries a resolved alert too: the firing alerts only.
    let mixed = payload(FIRING, "Mixed", |i, a| {
        if i == 2 {
            a["status"] = json!("resolved");
            a["labels"]["instance"] = json!("gone:9100");
        }
    });
    assert_eq!(post(&send, "application/json", mixed).await.0, 200);
    wait_for("the two firing ones", || async { posted_to(&t, "tok-firing").len() == 2 }).await;
    let texts: Vec<String> = posted_to(&t, "tok-firing").iter().map(common::visible).collect();
    assert!(texts.iter().all(|x| !x.contains("RESOLVED") && !x.contains("gone:9100")), "{texts:#?}");
    let m = bridge.metrics().await;
    let skipped = [("target", "firing-only"), ("reason", "send_on")];
    assert_eq!(metric(&m, "dingtalk_bridge_notifications_skipped_total", &skipped), 1.0);
    // Recorded, with its reason.
    bridge.stop().await;
    let store = dingtalk_bridge::store::Store::open(
        &dir.path().join("outbox.sqlite3"),
        dingtalk_bridge::config::SyncMode::Normal,
    )
    .unwrap();
    let skipped = store.skipped("firing-only").await.unwrap();
    assert_eq!(skipped.len(), 1, "{skipped:#?}");
    assert_eq!((skipped[0].status.as_str(), skipped[0].reason.as_str()), ("resolved", "send_on"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_receiver_routes_each_team_to_its_group() {
    let t = tools().await;
    let dir = tempfile::tempdir().unwrap();
    let bridge = Bridge::start(dir.path(), &config(&t)).await;
    // One group with alerts of two teams, and one without the label: split by team, the rest to default.
    let mixed = payload(FIRING, "CheckoutErrors", |i, a| {
        a["labels"]["severity"] = json!("critical");
        match i {
            0 => a["labels"]["team"] = json!("payments"),
            1 => a["labels"]["team"] = json!("search"),
            _ => {}
        }
    });
    let (status, answer) = post(&bridge.url("/dingtalk/by-team/send"), "application/json", mixed.clone()).await;
    assert_eq!(status, 200);
    assert_eq!(answer["status"], "routed");
    let routed: Vec<(&str, &str)> = answer["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["target"].as_str().unwrap(), t["status"].as_str().unwrap()))
        .collect();
    assert_eq!(routed, [("pay", "accepted"), ("ops", "accepted")]);
    wait_for("both groups", || async { posted_to(&t, "tok-pay").len() == 1 && posted_to(&t, "tok-ops").len() == 1 })
        .await;
    let pay = common::visible(&posted_to(&t, "tok-pay")[0]);
    assert!(pay.contains("CheckoutErrors") && pay.contains("FIRING 1"), "only the payments alert: {pay}");
    assert_eq!(posted_to(&t, "tok-pay")[0].highlighted, [ALICE, BOB], "the payments on-call is rung");
    assert!(common::visible(&posted_to(&t, "tok-ops")[0]).contains("FIRING 2"), "the other two go to default");

    // Without a default, alerts no route names are acknowledged and counted, never sent anywhere.
    let (status, answer) = post(&bridge.url("/dingtalk/strict-router/send"), "application/json", mixed).await;
    assert_eq!(status, 200);
    let statuses: Vec<&str> =
        answer["targets"].as_array().unwrap().iter().map(|t| t["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["duplicate", "skipped"], "pay already has it; the rest has no route");
    let m = bridge.metrics().await;
    let no_route = [("target", "strict-router"), ("reason", "no_route")];
    assert_eq!(metric(&m, "dingtalk_bridge_notifications_skipped_total", &no_route), 1.0);
    // A router is not a target of its own: nothing reaches it but by its routes.
    assert_eq!(t.dingtalk.posted().len(), 2);
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_alert_sends_each_alert_alone_ringing_its_own_owner_within_the_budget() {
    let t = tools().await;
    let dir = tempfile::tempdir().unwrap();
    let bridge = Bridge::start(dir.path(), &config(&t)).await;
    let owners = ["alice", "bob", "nobody-known"];
    let group = payload(FIRING, "DiskFull", |i, a| a["labels"]["owner"] = json!(owners[i]));
    let (status, answer) = post(&bridge.url("/dingtalk/each/send"), "application/json", group).await;
    assert_eq!((status, answer["messages"].as_array().unwrap().len()), (200, 3), "one message per alert");
    wait_for("three messages", || async { posted_to(&t, "tok-each").len() == 3 }).await;
    let rung: Vec<Vec<String>> = posted_to(&t, "tok-each").iter().map(|p| p.highlighted.clone()).collect();
    assert_eq!(rung, [vec![ALICE.to_string()], vec![BOB.to_string()], vec![]]);
    for p in posted_to(&t, "tok-each") {
        assert!(common::visible(&p).contains("FIRING 1"), "each alone");
    }
    // 30 more alerts, one message each, against a robot that takes 20 a minute: the budget sends what it
    // may and the storm policy merges the rest into a digest. A digest lists notifications, so the 30
    // alerts' notification is one line ("Incident-000 +29 · 30 firing"). DingTalk never refuses a message.
    let storm = {
        let mut v: Value = serde_json::from_str(FIRING).unwrap();
        let one = v["alerts"][0].clone();
        v["alerts"] = (0..30)
            .map(|i| {
                let mut a = one.clone();
                a["labels"]["alertname"] = json!(format!("Incident-{i:03}"));
                a["fingerprint"] = json!(format!("storm-{i}"));
                a
            })
            .collect();
        v["groupKey"] = json!("storm");
        v.to_string()
    };
    let (_, answer) = post(&bridge.url("/dingtalk/each/send"), "application/json", storm).await;
    assert_eq!(answer["messages"].as_array().unwrap().len(), 30);
    wait_for("the digest", || async {
        posted_to(&t, "tok-each").iter().any(|p| common::visible(p).contains("DIGEST"))
    })
    .await;
    wait_for("the queue to drain", || async {
        metric(&bridge.metrics().await, "dingtalk_bridge_queue_depth", &[("target", "each")]) == 0.0
    })
    .await;
    let texts: Vec<String> = posted_to(&t, "tok-each").iter().map(common::visible).collect();
    let alone = (0..30).filter(|&i| texts.iter().any(|x| x.contains(&format!("FIRING 1 · Incident-{i:03}")))).count();
    let digest = texts.iter().find(|x| x.contains("DIGEST")).unwrap();
    assert!(alone >= 10 && digest.contains("Incident-000 +29") && digest.contains("30 firing"), "{texts:#?}");
    assert!(t.dingtalk.answered().iter().all(|a| a.errcode == 0), "never throttled");
    assert!(texts.len() <= 20, "within the robot's minute: {}", texts.len());
    common::every_notification_delivered(&dir.path().join("outbox.sqlite3"), "each").await;
    bridge.stop().await;
}
