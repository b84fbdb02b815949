//! Targets: what every target has (name, keyword, template, labels, rate limit, routing), and its
//! protocol, looked up by `type:` in the registry, which reads the target's own keys.

use super::raw::RawTarget;
use super::validate::Validator;
use super::*;
use crate::channel::RateLimit;

impl Validator<'_> {
    pub(super) fn target(&mut self, name: &str, mut t: RawTarget, default_rate: RateLimit) -> Option<Target> {
        let key = format!("targets.{name}");
        if !valid_target_name(name) {
            self.problem(&key, "target names must match [A-Za-z][A-Za-z0-9_-]* (they appear in URLs and metrics)");
        }
        let keyword = match t.keyword.as_deref().map(|k| self.expand(&format!("{key}.keyword"), k)) {
            Some(Some(k)) if k.trim().is_empty() => {
                self.problem(&format!("{key}.keyword"), "empty keyword; remove the key if the robot has none");
                None
            }
            Some(k) => k,
            None => None,
        };
        let template = t.template.clone().unwrap_or_else(|| "default".to_string());
        let labels = LabelFilter { hide: t.labels.hide.clone(), show: t.labels.show.clone() };
        for (i, k) in labels.hide.iter().enumerate().filter(|(_, k)| labels.show.contains(k)) {
            self.problem(&format!("{key}.labels.hide[{i}]"), format!("{k:?} is in both hide and show"));
        }
        let kind_name = t.kind.clone().unwrap_or_else(|| "dingtalk".to_string());
        let Some(kind) = crate::channel::kind(&kind_name) else {
            let expected = crate::channel::kind_names().join(", ");
            self.problem(&format!("{key}.type"), format!("unknown target type; expected one of {expected}"));
            return None;
        };
        let routing = super::people::Routing::take(&mut t);
        let enabled = t.enabled.unwrap_or(true);
        let mut keys = self.protocol_keys(name);
        let channel = (kind.configure)(&mut keys, self);
        // A protocol that gave up on a wrong key may not have read the rest of its own: only keys that are
        // not its own are reported then.
        let own = |key: &str| channel.is_none() && kind.keys.contains(&key);
        keys.finish(self, &format!("a {kind_name} target"), &|key| (!own(key)).then(|| crate::channel::owners_of(key)));
        let channel = channel?;
        // A protocol's own budget is the default where the configuration sets none (unless it turned them off).
        let default_rate = match channel.caps().own_rate {
            Some(own) if !default_rate.is_unlimited() => own,
            _ => default_rate,
        };
        let rate_limit = self.rate_limit(&format!("{key}.rate_limit"), t.rate_limit.as_ref(), default_rate);
        let (mention_rules, send_on, split) = self.routing(&key, routing, &channel);
        Some(Target {
            name: name.to_string(),
            channel,
            keyword,
            template,
            labels,
            rate_limit,
            mention_rules,
            send_on,
            split,
            enabled,
        })
    }
}
