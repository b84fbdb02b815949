//! The people directory (`people`, `groups`), each target's mention rules, `send_on`, `split` and router
//! targets (`route`), checked against each other: a rule names only people or groups that exist, a route
//! reaches only configured targets.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::raw::{RawPerson, RawRoute, RawRule, RawTarget};
use super::validate::Validator;
use super::*;
use crate::channel::Channel;
use crate::people::{Directory, Matcher, Person, Rule, Rules};

/// A target's keys about whom and what it sends, taken out before its protocol's keys are read.
pub(super) struct Routing {
    rules: Vec<RawRule>,
    send_on: Option<Vec<String>>,
    split: Option<String>,
    on_resolved: bool,
}

impl Routing {
    pub(super) fn take(t: &mut RawTarget) -> Routing {
        Routing {
            rules: std::mem::take(&mut t.mention.rules),
            send_on: t.send_on.take(),
            split: t.split.take(),
            on_resolved: t.mention.on_resolved,
        }
    }
}

impl Validator<'_> {
    /// `people` and `groups`: every person has at least one identifier, every group member is a person,
    /// and no name is both.
    pub(super) fn directory(&mut self, people: BTreeMap<String, RawPerson>, groups: BTreeMap<String, Vec<String>>) {
        let mut d = Directory::default();
        for (name, raw) in people {
            let key = format!("people.{name}");
            if !valid_name(&name) {
                self.problem(&key, "names are letters, digits, '.', '_' and '-' (alerts name people by them)");
            }
            let known: Vec<&str> = crate::channel::PROTOCOLS.iter().flat_map(|k| k.person_keys).copied().collect();
            let mut p = Person { name: name.clone(), ids: BTreeMap::new() };
            for (f, value) in raw {
                if !known.contains(&f.as_str()) {
                    self.problem(
                        &format!("{key}.{f}"),
                        format!("unknown field `{f}`: expected one of {}", known.join(", ")),
                    );
                    continue;
                }
                let Some(value) = self.expand(&format!("{key}.{f}"), &value) else { continue };
                let value = value.trim().to_string();
                if value.is_empty() || value.contains(|c: char| c.is_whitespace() || "\"<>@".contains(c)) {
                    self.problem(&format!("{key}.{f}"), "empty, or holds a space, quote, '<', '>' or '@'");
                    continue;
                }
                if f.ends_with("mobile") && !value.chars().all(|c| c.is_ascii_digit() || c == '+' || c == '-') {
                    self.problem(&format!("{key}.{f}"), "not a phone number (digits, + and - only)");
                }
                p.ids.insert(f, value);
            }
            if p.ids.is_empty() && !self.problems.iter().any(|x| x.key.starts_with(&key)) {
                self.problem(&key, format!("no identifier: set {}", known.join(", ")));
            }
            d.people.insert(name, p);
        }
        for (name, members) in groups {
            let key = format!("groups.{name}");
            if !valid_name(&name) {
                self.problem(&key, "names are letters, digits, '.', '_' and '-' (alerts name groups by them)");
            }
            if d.people.contains_key(&name) {
                self.problem(&key, format!("{name:?} is also a person; a name must mean one thing"));
            }
            if members.is_empty() {
                self.problem(&key, "an empty group");
            }
            for (i, m) in members.iter().enumerate() {
                if !d.people.contains_key(m) {
                    self.problem(&format!("{key}[{i}]"), format!("{m:?} is not under people"));
                }
            }
            d.groups.insert(name, members);
        }
        self.people = Arc::new(d);
    }

    /// `mention.rules`, `send_on` and `split` of a target, and what its tool cannot ring.
    pub(super) fn routing(&mut self, key: &str, raw: Routing, channel: &Channel) -> (Rules, SendOn, Split) {
        let Routing { rules: raw_rules, send_on, split, on_resolved } = raw;
        if !raw_rules.is_empty() && channel.caps().direct {
            self.problem(
                &format!("{key}.mention.rules"),
                format!("not a key of a {} target (its messages go to its users, whom they ring)", channel.name()),
            );
        }
        let rules: Vec<Rule> = raw_rules
            .into_iter()
            .enumerate()
            .map(|(i, r)| self.rule(&format!("{key}.mention.rules[{i}]"), r))
            .collect();
        self.unreachable_people(key, &rules, channel);
        let send_on = match send_on {
            None => SendOn::default(),
            Some(list) => {
                let mut s = SendOn { firing: false, resolved: false };
                for (i, v) in list.iter().enumerate() {
                    match v.as_str() {
                        "firing" => s.firing = true,
                        "resolved" => s.resolved = true,
                        _ => self.problem(&format!("{key}.send_on[{i}]"), "expected firing or resolved"),
                    }
                }
                if list.is_empty() {
                    self.problem(&format!("{key}.send_on"), "empty: the target would receive nothing");
                }
                s
            }
        };
        let split = match split.as_deref() {
            None | Some("per_group") => Split::PerGroup,
            Some("per_alert") => Split::PerAlert,
            Some(_) => {
                self.problem(&format!("{key}.split"), "expected per_group (the default) or per_alert");
                Split::PerGroup
            }
        };
        let rules = Rules { rules, directory: self.people.clone(), on_resolved };
        (rules, send_on, split)
    }

    fn rule(&mut self, key: &str, r: RawRule) -> Rule {
        let mut matchers = vec![];
        for (label, value) in r.match_eq {
            matchers.push(Matcher::Equal(label, value));
        }
        for (label, pattern) in r.match_re {
            match Matcher::regex(&label, &pattern, false) {
                Ok(m) => matchers.push(m),
                Err(e) => self.problem(&format!("{key}.match_re.{label}"), format!("not a regex: {e}")),
            }
        }
        for (i, m) in r.matchers.iter().enumerate() {
            match Matcher::parse(m) {
                Ok(m) => matchers.push(m),
                Err(e) => self.problem(&format!("{key}.matchers[{i}]"), e.to_string()),
            }
        }
        for (i, name) in r.people.iter().enumerate() {
            if self.people.resolve(name).is_none() {
                let known: Vec<&String> = self.people.people.keys().chain(self.people.groups.keys()).collect();
                self.problem(
                    &format!("{key}.people[{i}]"),
                    format!("{name:?} is neither under people nor under groups (known: {known:?})"),
                );
            }
        }
        let blank = |v: &Option<String>| v.as_ref().is_some_and(|s| s.trim().is_empty());
        if blank(&r.from_label) || blank(&r.from_annotation) {
            self.problem(key, "from_label and from_annotation name a label or an annotation; empty is not one");
        }
        if r.people.is_empty() && !r.all && r.from_label.is_none() && r.from_annotation.is_none() {
            self.problem(key, "rings nobody: set people, all, from_label or from_annotation");
        }
        Rule { matchers, people: r.people, all: r.all, from_label: r.from_label, from_annotation: r.from_annotation }
    }

    /// Warns of people the rules may ring whom this target's tool has no identifier for: they are left out
    /// (and logged) when a message names them.
    fn unreachable_people(&mut self, key: &str, rules: &[Rule], channel: &Channel) {
        if rules.is_empty() {
            return;
        }
        let dynamic = rules.iter().any(|r| r.from_label.is_some() || r.from_annotation.is_some());
        let mut named: Vec<&Person> = vec![];
        for r in rules {
            for n in &r.people {
                named.extend(self.people.resolve(n).unwrap_or_default());
            }
        }
        if dynamic {
            named.extend(self.people.people.values());
        }
        let mut missing: Vec<String> = named
            .into_iter()
            .filter(|p| !channel.add_person(&mut crate::channel::Ring::default(), p))
            .map(|p| p.name.clone())
            .collect();
        missing.sort();
        missing.dedup();
        if !missing.is_empty() {
            self.warn(
                &format!("{key}.mention.rules"),
                format!(
                    "{} has no identifier for these people, who are left out (and logged) when named: {}",
                    channel.service(),
                    missing.join(", ")
                ),
            );
        }
        if rules.iter().any(|r| r.all) && !channel.caps().ring_all {
            self.warn(&format!("{key}.mention.rules"), "this message type cannot ring @all; all: true is ignored");
        }
    }

    /// A router target: only `route` (a router has no chat tool of its own).
    /// A router target; `protocol_keys`: whether it has keys of a protocol too.
    pub(super) fn route(&mut self, key: &str, t: RawTarget, protocol_keys: bool) -> Option<Route> {
        let RawTarget { route: Some(RawRoute { by_label, targets, default }), .. } = t else { return None };
        let others = t.kind.is_some()
            || protocol_keys
            || t.keyword.is_some()
            || t.template.is_some()
            || t.send_on.is_some()
            || t.split.is_some()
            || t.enabled.is_some()
            || !t.mention.rules.is_empty();
        if others {
            self.problem(
                key,
                "a target with route only forwards: give it no other keys (the targets it routes to have them)",
            );
        }
        if by_label.trim().is_empty() {
            self.problem(&format!("{key}.route.by_label"), "missing: the label whose value picks the target");
        }
        if targets.is_empty() && default.is_none() {
            self.problem(&format!("{key}.route"), "routes nowhere: set targets and/or default");
        }
        Some(Route { by_label, targets, default })
    }

    /// Every route reaches configured targets that are not routers themselves.
    pub(super) fn check_routes(&mut self, routes: &BTreeMap<String, Route>, targets: &BTreeMap<String, Target>) {
        for (name, r) in routes {
            let dests = r.targets.iter().map(|(v, t)| (format!("targets.{name}.route.targets.{v}"), t));
            let default = r.default.iter().map(|t| (format!("targets.{name}.route.default"), t));
            for (key, dest) in dests.chain(default) {
                if routes.contains_key(dest) {
                    self.problem(&key, format!("{dest:?} is a router itself; route to targets that send"));
                } else if !targets.contains_key(dest) {
                    let known: Vec<&String> = targets.keys().collect();
                    self.problem(&key, format!("no target {dest:?} (configured: {known:?})"));
                }
            }
        }
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.chars().all(|c| c.is_alphanumeric() || "._-".contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn load(text: &str) -> Result<Config, ConfigError> {
        Config::from_yaml(text, "test.yaml", Path::new("/etc/bridge"), &|_| None)
    }

    const BASE: &str = r#"
people:
  alice: {dingtalk_mobile: "13800000001", feishu_user_id: ou_alice, wecom_user_id: alice}
  bob: {dingtalk_mobile: "13800000002"}
groups:
  payments-oncall: [alice, bob]
targets:
  ops:
    url: "https://oapi.dingtalk.com/robot/send?access_token=t"
    mention:
      rules:
      - match: {severity: critical}
        match_re: {service: "pay.*"}
        matchers: ['team!="infra"']
        people: [payments-oncall]
        all: true
      - from_label: owner
    send_on: [firing]
    split: per_alert
  ops-feishu:
    type: feishu
    url: "https://open.feishu.cn/open-apis/bot/v2/hook/h"
    mention: {rules: [{people: [bob]}]}
  by-team:
    route: {by_label: team, targets: {payments: ops}, default: ops-feishu}
"#;

    fn problems(text: &str) -> Vec<String> {
        match load(text) {
            Ok(_) => vec![],
            Err(ConfigError::Invalid { problems }) => {
                problems.iter().map(|p| format!("{}: {}", p.key, p.message)).collect()
            }
            Err(e) => vec![e.to_string()],
        }
    }

    #[test]
    fn the_directory_rules_filters_and_routes_load() {
        let c = load(BASE).unwrap();
        let ops = &c.targets["ops"];
        assert_eq!(ops.mention_rules.rules.len(), 2);
        assert_eq!(ops.mention_rules.rules[0].matchers.len(), 3);
        assert_eq!(ops.send_on, SendOn { firing: true, resolved: false });
        assert_eq!(ops.split, Split::PerAlert);
        assert_eq!(c.routes["by-team"].targets["payments"], "ops");
        assert!(!c.targets.contains_key("by-team"), "a router has no sender of its own");
        // Feishu has no id for bob: said once, when the configuration loads.
        let w: Vec<String> = c.warnings.iter().map(|w| format!("{}: {}", w.key, w.message)).collect();
        assert!(
            w.iter()
                .any(|w| w.starts_with("targets.ops-feishu.mention.rules: Feishu has no identifier")
                    && w.ends_with(": bob")),
            "{w:?}"
        );
    }

    #[test]
    fn each_mistake_is_named_by_its_key() {
        for (from, to, want) in [
            (
                "people: [payments-oncall]",
                "people: [carol]",
                "targets.ops.mention.rules[0].people[0]: \"carol\" is neither",
            ),
            ("service: \"pay.*\"", "service: \"pay(\"", "targets.ops.mention.rules[0].match_re.service: not a regex"),
            ("'team!=\"infra\"'", "'team'", "targets.ops.mention.rules[0].matchers[0]: \"team\": expected"),
            ("- from_label: owner", "- {}", "targets.ops.mention.rules[1]: rings nobody"),
            ("send_on: [firing]", "send_on: [fired]", "targets.ops.send_on[0]: expected firing or resolved"),
            ("split: per_alert", "split: alert", "targets.ops.split: expected per_group"),
            (
                "payments-oncall: [alice, bob]",
                "payments-oncall: [alice, dave]",
                "groups.payments-oncall[1]: \"dave\" is not under people",
            ),
            ("bob: {dingtalk_mobile: \"13800000002\"}", "bob: {}", "people.bob: no identifier"),
            (
                "bob: {dingtalk_mobile: \"13800000002\"}",
                "bob: {dingtalk_mobile: \"call me\"}",
                "people.bob.dingtalk_mobile: empty, or holds a space",
            ),
            (
                "targets: {payments: ops}",
                "targets: {payments: opz}",
                "targets.by-team.route.targets.payments: no target \"opz\"",
            ),
            (
                "default: ops-feishu",
                "default: by-team",
                "targets.by-team.route.default: \"by-team\" is a router itself",
            ),
            (
                "route: {by_label",
                "keyword: x\n    route: {by_label",
                "targets.by-team: a target with route only forwards",
            ),
        ] {
            assert!(BASE.contains(from), "{from}");
            let got = problems(&BASE.replace(from, to));
            assert!(got.iter().any(|p| p.starts_with(want)), "{to}: {got:#?}");
        }
    }

    #[test]
    fn an_app_target_takes_no_mention_rules() {
        let text = r#"
dingtalk_apps:
  corp: {client_id: c, client_secret: s, robot_code: r}
people:
  alice: {dingtalk_user_id: a1}
targets:
  direct:
    type: dingtalk_app
    app: corp
    users: [a1]
    mention: {rules: [{people: [alice]}]}
"#;
        let got = problems(text);
        assert!(
            got.iter().any(|p| p.starts_with("targets.direct.mention.rules: not a key of a dingtalk_app")),
            "{got:?}"
        );
    }
}
