//! How each protocol rings a person of the directory, through the registry as the configuration makes
//! them.

use super::testing::channel;
use super::{Channel, Ring};
use crate::people::Person;

fn alice() -> Person {
    Person::with(
        "alice",
        &[
            ("dingtalk_mobile", "13800000001"),
            ("dingtalk_user_id", "manager01"),
            ("feishu_user_id", "ou_alice"),
            ("lark_user_id", "ou_lark_alice"),
            ("wecom_mobile", "13800000001"),
        ],
    )
}

fn wecom(msgtype: &str) -> Channel {
    channel("wecom", &format!("url: https://qyapi.weixin.qq.com/x?key=k\nmsgtype: {msgtype}"))
}

#[test]
fn a_person_is_rung_by_each_tools_own_identifier_or_not_at_all() {
    let dingtalk = channel("dingtalk", "dry_run: true");
    let ring = |c: &Channel| {
        let mut r = Ring::default();
        c.add_person(&mut r, &alice()).then(|| (r.clone(), c.mention_tokens(&r)))
    };
    let (r, tokens) = ring(&dingtalk).unwrap();
    assert_eq!((r.mobiles, tokens), (vec!["13800000001".to_string()], vec!["@13800000001".to_string()]));
    let feishu = channel("feishu", "url: https://x/hook/h");
    let lark = channel("lark", "url: https://x/hook/h");
    assert_eq!(ring(&feishu).unwrap().1, ["<at id=ou_alice></at>"]);
    assert_eq!(ring(&lark).unwrap().1, ["<at id=ou_lark_alice></at>"]);
    // WeCom markdown mentions by user id only: Alice has none there; text takes her mobile in its list.
    assert!(ring(&wecom("markdown")).is_none());
    let (r, tokens) = ring(&wecom("text")).unwrap();
    assert_eq!((r.mobiles, tokens.len()), (vec!["13800000001".to_string()], 0));
    assert!(ring(&wecom("markdown_v2")).is_none(), "markdown_v2 cannot mention");
    assert!(!wecom("markdown").caps().ring_all && wecom("text").caps().ring_all);
    // Twice the same person is one mention.
    let mut r = Ring::default();
    assert!(dingtalk.add_person(&mut r, &alice()) && dingtalk.add_person(&mut r, &alice()));
    assert_eq!(r.people(), 1);
}

#[test]
fn a_misplaced_key_names_the_protocols_that_have_it() {
    assert_eq!(super::owners_of("users"), ["dingtalk_app"]);
    assert!(super::owners_of("mentoin").is_empty());
    assert_eq!(super::owners_of("mention.mobiles"), ["dingtalk", "wecom"]);
}

#[test]
fn every_stored_reason_label_reads_back() {
    for kind in super::PROTOCOLS {
        for r in (kind.reasons)() {
            assert_eq!(super::Reason::parse(r.as_str()), Some(r), "{}", r.as_str());
        }
    }
    assert_eq!(super::Reason::parse("timeout"), Some(super::Reason::Timeout));
    assert_eq!(super::Reason::parse("nonsense"), None);
}
