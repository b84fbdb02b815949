//! The console in a real browser: Debian's Chromium driven over WebDriver (`chromedriver`), as an operator
//! would use it after a morning of alerts. With `SCREENSHOTS=DIR` it also saves the pages docs/console.md shows
//! (`scripts/screenshots.sh`).

mod common;

use common::mock_dingtalk::{Limits, MockDingTalk, RobotSpec};
use common::webdriver::{Browser, available};
use common::{Bridge, FIRING, RESOLVED, post, wait_for};

const PASSWORD: &str = "admin-password-1234";

fn config(mock: &MockDingTalk) -> String {
    format!(
        r#"storage: {{path: outbox.sqlite3}}
console:
  users:
  - {{name: alice, password: "{PASSWORD}", role: admin}}
targets:
  ops:
    url: "{}"
    secret: "SEC-browser-signing-secret"
    keyword: Alert
  ops-feishu:
    type: feishu
    url: "http://127.0.0.1:1/open-apis/bot/v2/hook/hook-browser-token"
"#,
        mock.url("tok-browser-robot")
    )
}

async fn shot(browser: &Browser, name: &str) {
    if let Ok(dir) = std::env::var("SCREENSHOTS") {
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(format!("{dir}/{name}.png"), browser.screenshot().await).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Debian's chromium and chromium-driver; .ci/run installs them"]
async fn an_operator_finds_the_failure_switches_the_noisy_robot_previews_and_sends_a_test() {
    assert!(available(), "chromium and chromium-driver are installed");
    let robot = RobotSpec {
        token: "tok-browser-robot".into(),
        secret: Some("SEC-browser-signing-secret".into()),
        keywords: vec!["Alert".into()],
    };
    let mock = MockDingTalk::start(vec![robot], Limits::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let bridge = Bridge::start(dir.path(), &config(&mock)).await;
    let send = bridge.url("/dingtalk/ops/send");
    // The morning: a delivered alert, one DingTalk refused, a resolved one.
    assert_eq!(post(&send, "application/json", FIRING).await.0, 200);
    wait_for("the first", || async { mock.posted().len() == 1 }).await;
    mock.script(310000, "keywords not in content");
    assert_eq!(post(&send, "application/json", FIRING.replace("NodeDiskFull", "KubePodCrashLooping")).await.0, 200);
    wait_for("the refusal recorded", || async {
        let m = bridge.metrics().await;
        common::metric(&m, "dingtalk_bridge_notifications_failed_total", &[("target", "ops"), ("reason", "keyword")])
            == 1.0
    })
    .await;
    assert_eq!(post(&send, "application/json", RESOLVED).await.0, 200);
    wait_for("the resolved", || async { mock.posted().len() == 2 }).await;

    let browser = Browser::start(412, 915).await;
    let host = bridge.addr.to_string();
    let secrets = ["tok-browser-robot", "SEC-browser-signing-secret", "hook-browser-token", PASSWORD];
    let check = |html: &str| {
        for s in secrets {
            assert!(!html.contains(s), "{s} on a page");
        }
    };
    // An unauthenticated visitor gets nothing.
    browser.goto(&format!("http://{host}/console")).await;
    let anonymous = browser.source().await;
    assert!(!anonymous.contains("ops") && anonymous.contains("Log in"), "{anonymous}");

    // Log in, find the failed message, read DingTalk's answer and the hint.
    let at = |path: &str| format!("http://{host}{path}");
    assert!(browser.url().await.ends_with("/console/login"), "sent to the login page");
    shot(&browser, "console-login").await;
    browser.type_into("input[name=user]", "alice").await;
    browser.type_into("input[name=password]", PASSWORD).await;
    browser.click(".login button").await;
    let targets = browser.source_with("Logged in as alice").await;
    assert!(targets.contains("Logged in as alice") && targets.contains("keyword"), "the last failure shows");
    check(&targets);
    shot(&browser, "console-targets").await;
    browser.goto(&at("/console/records")).await;
    browser.select("select[name=state]", "failed").await;
    browser.click(".filters button").await;
    let list = browser.source_at("state=failed").await;
    let rows = list.split("<tbody>").nth(1).unwrap_or_default();
    assert!(rows.contains("KubePodCrashLooping") && !rows.contains("<td>delivered"), "filtered to the failure: {rows}");
    shot(&browser, "console-records").await;
    browser.click("tbody a").await;
    let record = browser.source_with("Attempts").await;
    assert!(record.contains("310000") && record.contains("keywords not in content"), "DingTalk's answer");
    assert!(record.contains("keyword"), "the hint");
    check(&record);
    shot(&browser, "console-record").await;

    // Disable the noisy robot: the next notification is recorded as skipped and nothing reaches DingTalk.
    browser.goto(&at("/console")).await;
    browser.click("form[action='/console/targets/ops/disable'] button").await;
    browser.source_with("off (console, by alice)").await;
    let (_, answer) = post(&send, "application/json", FIRING.replace("NodeDiskFull", "Noisy")).await;
    assert_eq!(answer["status"], "skipped");
    browser.goto(&at("/console/records?state=skipped")).await;
    assert!(browser.source().await.contains("disabled"));
    browser.goto(&at("/console")).await;
    browser.click("form[action='/console/targets/ops/enable'] button").await;
    browser.source_with("action=\"/console/targets/ops/disable\"").await;
    assert_eq!(mock.posted().len(), 2, "the skipped one never reached DingTalk");

    // Preview a new template against a pasted payload: nothing is sent.
    browser.goto(&at("/console/preview")).await;
    browser.select("select[name=target]", "ops").await;
    browser.type_into("textarea[name=payload]", &FIRING.replace("NodeDiskFull", "PastedAlert")).await;
    browser.click(".filters button").await;
    let preview = browser.source_with("class=\"banner\"").await;
    assert!(preview.contains("PastedAlert") && preview.contains("class=\"banner\""), "drawn as the phone shows it");
    shot(&browser, "console-preview").await;
    assert_eq!(mock.posted().len(), 2);

    // Send a test message.
    browser.goto(&at("/console")).await;
    browser.click("form[action='/console/targets/ops/test'] button").await;
    wait_for("the test message", || async { mock.posted().len() == 3 }).await;
    assert!(common::visible(&mock.posted()[2]).contains("TEST message"));

    // A page elsewhere that posts to the console is refused (no token, another origin).
    let evil = format!(
        "data:text/html,<form method=post action='http://{host}/console/targets/ops/disable'><button>go</button></form>"
    );
    browser.goto(&evil).await;
    browser.click("button").await;
    // Its post carries no session (the cookie is SameSite=Strict) and no token: refused, nothing shown.
    for _ in 0..100 {
        if browser.url().await.contains("/console/targets/ops/disable") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let refused = browser.source().await;
    assert!(!refused.contains("Logged in") && !refused.contains("disabled;"), "{refused}");
    browser.goto(&at("/console")).await;
    assert!(!browser.source().await.contains("off (console"), "still on");
    bridge.stop().await;
}
