//! Whom a message rings, from the alerts it carries: the people directory (a person named once, with an
//! identifier per chat tool), groups of people, and each target's mention rules (`match` a label, name
//! people from a label or an annotation, `@all` only for some). Only names in the directory can be rung:
//! an alert cannot make the bridge mention an arbitrary number.

use std::collections::BTreeMap;
use std::sync::Arc;

use regex::Regex;

use crate::decode::{Alert, Status};

/// One person and how each chat tool knows them: identifiers by the directory's key for them
/// (`dingtalk_mobile`, `feishu_user_id`, …; each protocol names the keys it rings people by).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Person {
    pub name: String,
    pub ids: BTreeMap<String, String>,
}

impl Person {
    /// The person's identifier under `key`, if the directory has one.
    pub fn id(&self, key: &str) -> Option<&str> {
        self.ids.get(key).map(String::as_str)
    }

    /// A person with these identifiers (tests).
    pub fn with(name: &str, ids: &[(&str, &str)]) -> Person {
        Person { name: name.to_string(), ids: ids.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect() }
    }
}

/// `people` and `groups` of the configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Directory {
    pub people: BTreeMap<String, Person>,
    /// A group's members, already checked to be people.
    pub groups: BTreeMap<String, Vec<String>>,
}

impl Directory {
    /// The people a name stands for (a person, or a group's members); `None` if it names neither.
    /// Names are matched exactly, then ignoring case.
    pub fn resolve(&self, name: &str) -> Option<Vec<&Person>> {
        let name = name.trim();
        let find = |exact: bool| {
            let same = |k: &String| if exact { k == name } else { k.eq_ignore_ascii_case(name) };
            if let Some((_, p)) = self.people.iter().find(|(k, _)| same(k)) {
                return Some(vec![p]);
            }
            self.groups
                .iter()
                .find(|(k, _)| same(k))
                .map(|(_, members)| members.iter().filter_map(|m| self.people.get(m)).collect())
        };
        find(true).or_else(|| find(false))
    }
}

/// Why a matcher string does not parse; each names the string.
#[derive(Debug, thiserror::Error)]
pub enum MatcherError {
    #[error("{0:?}: expected label=value, label!=value, label=~regex or label!~regex")]
    NoOperator(String),
    #[error("{0:?}: {1:?} is not a label name")]
    Label(String, String),
    #[error("{0:?}: {1}")]
    Regex(String, regex::Error),
}

/// A label matcher, as Alertmanager writes them: `=`, `!=`, `=~`, `!~` (regexes anchored at both ends).
#[derive(Debug, Clone)]
pub enum Matcher {
    Equal(String, String),
    NotEqual(String, String),
    Regex(String, Regex),
    NotRegex(String, Regex),
}

impl PartialEq for Matcher {
    fn eq(&self, other: &Self) -> bool {
        self.to_string() == other.to_string()
    }
}

impl Eq for Matcher {}

impl std::fmt::Display for Matcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let unanchor = |r: &Regex| r.as_str().trim_start_matches("^(?:").trim_end_matches(")$").to_string();
        match self {
            Matcher::Equal(l, v) => write!(f, "{l}={v:?}"),
            Matcher::NotEqual(l, v) => write!(f, "{l}!={v:?}"),
            Matcher::Regex(l, r) => write!(f, "{l}=~{:?}", unanchor(r)),
            Matcher::NotRegex(l, r) => write!(f, "{l}!~{:?}", unanchor(r)),
        }
    }
}

impl Matcher {
    /// An anchored regex matcher, or the regex's error.
    pub fn regex(label: &str, pattern: &str, negate: bool) -> Result<Matcher, regex::Error> {
        let re = Regex::new(&format!("^(?:{pattern})$"))?;
        Ok(if negate { Matcher::NotRegex(label.into(), re) } else { Matcher::Regex(label.into(), re) })
    }

    /// Parses `label="value"`, `label!=value`, `label=~"re"`, `label!~re` (quotes optional).
    pub fn parse(s: &str) -> Result<Matcher, MatcherError> {
        let ops = ["=~", "!~", "!=", "="];
        let (at, op) = ops
            .iter()
            .filter_map(|op| s.find(op).map(|i| (i, *op)))
            .min_by_key(|(i, op)| (*i, std::cmp::Reverse(op.len())))
            .ok_or_else(|| MatcherError::NoOperator(s.to_string()))?;
        let label = s[..at].trim();
        if label.is_empty() || !label.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(MatcherError::Label(s.to_string(), label.to_string()));
        }
        let raw = s[at + op.len()..].trim();
        let value = match raw.strip_prefix('"').and_then(|r| r.strip_suffix('"')) {
            Some(inner) => inner.replace("\\\"", "\"").replace("\\\\", "\\"),
            None => raw.to_string(),
        };
        match op {
            "=" => Ok(Matcher::Equal(label.into(), value)),
            "!=" => Ok(Matcher::NotEqual(label.into(), value)),
            _ => Matcher::regex(label, &value, op == "!~").map_err(|e| MatcherError::Regex(s.to_string(), e)),
        }
    }

    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let get = |l: &str| labels.get(l).map(String::as_str).unwrap_or("");
        match self {
            Matcher::Equal(l, v) => get(l) == v,
            Matcher::NotEqual(l, v) => get(l) != v,
            Matcher::Regex(l, r) => r.is_match(get(l)),
            Matcher::NotRegex(l, r) => !r.is_match(get(l)),
        }
    }
}

/// One `mention.rules` entry: for the alerts its matchers select, ring `people`, the people named by a
/// label's or an annotation's value, and `@all` if set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rule {
    pub matchers: Vec<Matcher>,
    pub people: Vec<String>,
    pub all: bool,
    pub from_label: Option<String>,
    pub from_annotation: Option<String>,
}

impl Rule {
    fn selects(&self, a: &Alert) -> bool {
        self.matchers.iter().all(|m| m.matches(&a.labels))
    }
}

/// A target's mention rules and the directory they name people from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rules {
    pub rules: Vec<Rule>,
    pub directory: Arc<Directory>,
    /// Whether resolved alerts ring too (`mention.on_resolved`).
    pub on_resolved: bool,
}

/// Whom the rules ring for some alerts.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Chosen<'a> {
    pub all: bool,
    /// In the order first named, each once.
    pub people: Vec<&'a Person>,
    /// Names taken from alerts that the directory does not have (never rung).
    pub unknown: Vec<String>,
}

/// Splits a label's or annotation's value into names: `alice, bob`, `alice bob`, `@alice;@bob`.
fn names(value: &str) -> impl Iterator<Item = &str> {
    value.split([',', ';', ' ', '\n', '\t']).map(|n| n.trim().trim_start_matches('@')).filter(|n| !n.is_empty())
}

impl Rules {
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Evaluates the rules on the alerts of one message: those firing, and resolved ones too when
    /// `on_resolved` is set.
    pub fn choose<'a>(&'a self, alerts: &[&Alert]) -> Chosen<'a> {
        let mut out = Chosen::default();
        let ringing: Vec<&Alert> =
            alerts.iter().copied().filter(|a| a.status == Status::Firing || self.on_resolved).collect();
        let add = |out: &mut Chosen<'a>, name: &str, from_alert: bool| match self.directory.resolve(name) {
            Some(found) => {
                for p in found {
                    if !out.people.iter().any(|q| q.name == p.name) {
                        out.people.push(p);
                    }
                }
            }
            None if from_alert && !out.unknown.iter().any(|u| u == name) => out.unknown.push(name.to_string()),
            // Configured names were checked when the configuration loaded; a stranger is reported once.
            None => {}
        };
        for rule in &self.rules {
            let selected: Vec<&Alert> = ringing.iter().copied().filter(|a| rule.selects(a)).collect();
            if selected.is_empty() {
                continue;
            }
            out.all |= rule.all;
            for name in &rule.people {
                add(&mut out, name, false);
            }
            for a in &selected {
                let label = rule.from_label.as_ref().and_then(|k| a.labels.get(k));
                let annotation = rule.from_annotation.as_ref().and_then(|k| a.annotations.get(k));
                for name in label.into_iter().chain(annotation).flat_map(|v| names(v)) {
                    add(&mut out, name, true);
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(status: Status, labels: &[(&str, &str)], annotations: &[(&str, &str)]) -> Alert {
        let map = |kv: &[(&str, &str)]| kv.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Alert {
            status,
            labels: map(labels),
            annotations: map(annotations),
            starts_at: None,
            ends_at: None,
            generator_url: String::new(),
            fingerprint: String::new(),
        }
    }

    fn directory() -> Arc<Directory> {
        let person = |name: &str, mobile: &str| Person::with(name, &[("dingtalk_mobile", mobile)]);
        let mut d = Directory::default();
        d.people.insert("alice".into(), person("alice", "13800000000"));
        d.people.insert("bob".into(), person("bob", "13900000000"));
        d.people.insert("carol".into(), person("carol", "13700000000"));
        d.groups.insert("payments-oncall".into(), vec!["alice".into(), "bob".into()]);
        Arc::new(d)
    }

    fn rules(rules: Vec<Rule>) -> Rules {
        Rules { rules, directory: directory(), on_resolved: false }
    }

    fn names_of(c: &Chosen) -> Vec<String> {
        c.people.iter().map(|p| p.name.clone()).collect()
    }

    #[test]
    fn matchers_parse_like_alertmanagers_and_anchor_regexes() {
        let labels: BTreeMap<String, String> =
            [("severity".to_string(), "critical".to_string()), ("team".into(), "pay".into())].into();
        for (m, want) in [
            ("severity=critical", true),
            ("severity=\"critical\"", true),
            ("severity!=critical", false),
            ("severity=~crit.*", true),
            ("severity=~\"crit\"", false),
            ("severity!~\"warning|info\"", true),
            ("missing=\"\"", true),
            ("team=~pay|search", true),
        ] {
            assert_eq!(Matcher::parse(m).unwrap().matches(&labels), want, "{m}");
        }
        assert!(Matcher::parse("severity").is_err());
        assert!(Matcher::parse("sev rity=x").is_err());
        assert!(Matcher::parse("a=~(").unwrap_err().to_string().contains("a=~("));
        assert_eq!(Matcher::parse("team=~\"pay|search\"").unwrap().to_string(), "team=~\"pay|search\"");
    }

    #[test]
    fn a_label_names_a_person_or_a_group_and_strangers_are_only_reported() {
        let r = rules(vec![Rule { from_label: Some("owner".into()), ..Rule::default() }]);
        let a = alert(Status::Firing, &[("owner", "alice")], &[]);
        let c = r.choose(&[&a]);
        assert_eq!((names_of(&c), c.all, c.unknown.len()), (vec!["alice".to_string()], false, 0));
        let g = alert(Status::Firing, &[("owner", "payments-oncall")], &[]);
        assert_eq!(names_of(&r.choose(&[&g])), ["alice", "bob"]);
        let s = alert(Status::Firing, &[("owner", "13812345678")], &[]);
        let c = r.choose(&[&s]);
        assert!(c.people.is_empty());
        assert_eq!(c.unknown, ["13812345678"], "an alert cannot ring a number the directory lacks");
        assert_eq!(names_of(&r.choose(&[&alert(Status::Firing, &[("owner", "ALICE")], &[])])), ["alice"]);
    }

    #[test]
    fn annotations_list_several_names_and_each_is_rung_once() {
        let r = rules(vec![
            Rule { from_annotation: Some("mention".into()), ..Rule::default() },
            Rule { people: vec!["payments-oncall".into()], ..Rule::default() },
        ]);
        let a = alert(Status::Firing, &[], &[("mention", "@carol, alice;bob nobody")]);
        let c = r.choose(&[&a]);
        assert_eq!(names_of(&c), ["carol", "alice", "bob"]);
        assert_eq!(c.unknown, ["nobody"]);
    }

    #[test]
    fn all_only_where_a_rule_matches_and_resolved_rings_nobody_by_default() {
        let r = rules(vec![
            Rule {
                matchers: vec![Matcher::parse("severity=critical").unwrap()],
                people: vec!["payments-oncall".into()],
                all: true,
                ..Rule::default()
            },
            Rule { from_label: Some("owner".into()), ..Rule::default() },
        ]);
        let crit = alert(Status::Firing, &[("severity", "critical"), ("owner", "carol")], &[]);
        let warn = alert(Status::Firing, &[("severity", "warning"), ("owner", "carol")], &[]);
        let c = r.choose(&[&crit]);
        assert!(c.all);
        assert_eq!(names_of(&c), ["alice", "bob", "carol"]);
        let c = r.choose(&[&warn]);
        assert!(!c.all);
        assert_eq!(names_of(&c), ["carol"]);
        let resolved = alert(Status::Resolved, &[("severity", "critical"), ("owner", "carol")], &[]);
        assert_eq!(r.choose(&[&resolved]), Chosen::default());
        let on = Rules { on_resolved: true, ..r.clone() };
        assert!(on.choose(&[&resolved]).all);
        // A message with a resolved critical and a firing warning: only the firing one counts.
        let c = r.choose(&[&resolved, &warn]);
        assert!(!c.all && names_of(&c) == ["carol"]);
    }
}
