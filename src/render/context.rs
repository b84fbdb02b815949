//! What templates see (the payload as Alertmanager sent it, plus fields that make templates short), and
//! the plain text that stands in when even the built-in templates fail.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use crate::channel::Ring;

use super::layout::{self, Facts};
use crate::config::Target;
use crate::decode::{Decoded, Status};

/// A notification with what the layout says about it, and the time it is rendered at.
pub(super) struct Group<'a> {
    pub(super) d: &'a Decoded,
    pub(super) facts: &'a Facts,
    pub(super) now: DateTime<Utc>,
    /// Whom its first message rings.
    pub(super) ring: Ring,
    /// Each alert's place in the order messages list them.
    pub(super) position: Vec<usize>,
}

impl Group<'_> {
    /// Where alert `i` of the payload stands in the order messages list them.
    pub(super) fn order_position(&self, i: usize) -> Option<usize> {
        self.position.get(i).copied()
    }
}

/// What templates see: the payload as Alertmanager sent it, plus fields that make templates short (docs/templates.md,
/// "Template context").
pub(super) fn context(
    target: &Target,
    g: &Group,
    alerts: &[usize],
    part: Option<(usize, usize)>,
    mentions: &str,
) -> Value {
    let (d, n) = (g.d, &g.d.notification);
    // Everything but the alerts, which are replaced by this part's subset (cloning them all for every
    // part would cost as much as rendering them).
    let mut ctx: Map<String, Value> = d
        .raw
        .as_object()
        .map(|o| o.iter().filter(|(k, _)| *k != "alerts").map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();
    let raw_alerts = d.raw.get("alerts").and_then(Value::as_array);
    let subset: Vec<Value> = alerts.iter().filter_map(|&i| raw_alerts.and_then(|a| a.get(i)).cloned()).collect();
    let with_status = |s: &str| -> Vec<Value> {
        subset.iter().filter(|a| a.get("status").and_then(Value::as_str) == Some(s)).cloned().collect()
    };
    // The part's alerts of each status, and the same split by alertname (runs: the order keeps names together).
    let by_name = |alerts: &[Value]| -> Value {
        let mut runs: Vec<(String, Vec<Value>)> = vec![];
        for a in alerts {
            let name = a.pointer("/labels/alertname").and_then(Value::as_str).unwrap_or_default().to_string();
            match runs.last_mut() {
                Some((last, list)) if *last == name => list.push(a.clone()),
                _ => runs.push((name, vec![a.clone()])),
            }
        }
        Value::Array(runs.into_iter().map(|(name, alerts)| json!({"alertname": name, "alerts": alerts})).collect())
    };
    let (firing, resolved) = (with_status("firing"), with_status("resolved"));
    ctx.insert("firingByName".into(), by_name(&firing));
    ctx.insert("resolvedByName".into(), by_name(&resolved));
    ctx.insert("firing".into(), Value::Array(firing));
    ctx.insert("resolved".into(), Value::Array(resolved));
    ctx.insert("alerts".into(), Value::Array(subset));
    ctx.insert(
        "counts".into(),
        json!({"firing": n.firing().count(), "resolved": n.resolved().count(), "total": n.alerts.len()}),
    );
    ctx.insert("groupName".into(), Value::String(group_name(d)));
    // A part's alerts are a run of the group's, firing first: `first`..`last` of `counts.total`.
    let part_value = part.map_or(Value::Null, |(index, total)| {
        let first = alerts.first().and_then(|i| g.order_position(*i)).map_or(0, |p| p + 1);
        json!({"index": index, "total": total, "first": first, "last": first + alerts.len().saturating_sub(1)})
    });
    ctx.insert("part".into(), part_value);
    ctx.insert(
        "target".into(),
        json!({"name": target.name, "keyword": target.keyword, "msgtype": target.channel.msgtype(),
               "labels": {"hide": target.labels.hide, "show": target.labels.show}}),
    );
    ctx.insert("mentions".into(), Value::String(mentions.to_string()));
    ctx.insert("now".into(), Value::String(g.now.to_rfc3339()));
    if let Value::Object(facts) = g.facts.to_json() {
        ctx.extend(facts);
    }
    // Fields templates commonly test for; present (if empty) so strict mode does not trip on them.
    for key in ["groupLabels", "commonLabels", "commonAnnotations"] {
        ctx.entry(key).or_insert_with(|| Value::Object(Map::new()));
    }
    for key in ["externalURL", "groupKey", "receiver"] {
        ctx.entry(key).or_insert_with(|| Value::String(String::new()));
    }
    ctx.entry("truncatedAlerts").or_insert(Value::from(0));
    Value::Object(ctx)
}

/// What the group is called in titles: its group labels' values, else the common alertname.
pub(super) fn group_name(d: &Decoded) -> String {
    let n = &d.notification;
    let from_groups: Vec<&str> = n.group_labels.values().map(String::as_str).collect();
    if !from_groups.is_empty() {
        return from_groups.join(" ");
    }
    n.common_labels.get("alertname").cloned().unwrap_or_else(|| "alerts".to_string())
}

pub(super) fn plain_title(d: &Decoded, part: Option<(usize, usize)>) -> String {
    let n = &d.notification;
    let count = if n.status == Status::Firing { n.firing().count() } else { n.resolved().count() };
    let part = part.map(|(i, t)| format!(" ({i}/{t})")).unwrap_or_default();
    let all: Vec<&layout::Labels> = n.alerts.iter().map(|a| &a.labels).collect();
    let firing: Vec<&layout::Labels> = n.firing().map(|a| &a.labels).collect();
    format!("{} {count}{part} · {}", n.status.as_str().to_uppercase(), layout::group_alertname(&all, &firing))
}

/// The last-resort message, written without templates.
pub(super) fn plain(d: &Decoded, alerts: &[usize], part: Option<(usize, usize)>) -> (String, String) {
    let title = plain_title(d, part);
    let mut text = title.clone();
    for &i in alerts {
        let a = &d.notification.alerts[i];
        let name = a.labels.get("alertname").map(String::as_str).unwrap_or("alert");
        let summary = a.annotations.get("summary").map(|s| format!(": {s}")).unwrap_or_default();
        let labels: Vec<String> = a.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        text.push_str(&format!("\n\n- {} {name}{summary} ({})", a.status.as_str(), labels.join(", ")));
    }
    (title, text)
}
