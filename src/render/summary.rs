//! A notification in one line ([`Summary`]), taken when it is accepted and stored with it, so a storm
//! digest never needs the original payload.

use serde::{Deserialize, Serialize};

use super::{helpers::escape_markdown, layout};
use crate::decode::{Decoded, Status};

const MAX_SUMMARY_CHARS: usize = 160;
const MAX_NAME_CHARS: usize = 100;
/// Labels that identify an alert's subject, in the order they are preferred.
const IDENTITY_LABELS: [&str; 6] = ["instance", "pod", "host", "node", "service", "job"];
/// Up to this many alerts are named in a digest line; beyond it, a count.
const NAMED_ALERTS: usize = 3;

/// What a digest says about one notification.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub status: Status,
    pub name: String,
    #[serde(default)]
    pub severity: String,
    #[serde(default)]
    pub firing: usize,
    #[serde(default)]
    pub resolved: usize,
    /// The subjects (instance, pod, ...) of the group's alerts when there are only a few.
    #[serde(default)]
    pub subjects: Vec<String>,
    #[serde(default)]
    pub summary: String,
    #[serde(default)]
    pub external_url: String,
    /// The group's most identifying label (its namespace, or where a lone alert is).
    #[serde(default)]
    pub place: String,
}

fn cut(s: &str, max: usize) -> String {
    if s.chars().count() <= max { s.to_string() } else { s.chars().take(max - 1).chain(['…']).collect() }
}

fn labels<'a>(alerts: impl Iterator<Item = &'a crate::decode::Alert>) -> Vec<&'a layout::Labels> {
    alerts.map(|a| &a.labels).collect()
}

/// The summary of a decoded notification.
pub fn summarize(d: &Decoded) -> Summary {
    let n = &d.notification;
    let severity = n
        .common_labels
        .get("severity")
        .or_else(|| n.alerts.iter().find_map(|a| a.labels.get("severity")))
        .cloned()
        .unwrap_or_default();
    let summary = n
        .common_annotations
        .get("summary")
        .or_else(|| n.alerts.iter().find_map(|a| a.annotations.get("summary")))
        .map(|s| cut(s, MAX_SUMMARY_CHARS))
        .unwrap_or_default();
    let subjects = if n.alerts.len() <= NAMED_ALERTS {
        n.alerts
            .iter()
            .filter_map(|a| IDENTITY_LABELS.iter().find_map(|l| a.labels.get(*l)).map(|v| cut(v, MAX_NAME_CHARS)))
            .collect()
    } else {
        vec![]
    };
    Summary {
        status: n.status,
        name: cut(&layout::group_alertname(&labels(n.alerts.iter()), &labels(n.firing())), MAX_NAME_CHARS),
        place: cut(
            &layout::place(&n.common_labels, n.alerts.len(), n.alerts.first().map_or(&n.common_labels, |a| &a.labels)),
            MAX_NAME_CHARS,
        ),
        severity,
        firing: n.firing().count(),
        resolved: n.resolved().count(),
        subjects,
        summary,
        external_url: n.external_url.clone(),
    }
}

impl Summary {
    pub(super) fn line(&self, markdown: bool) -> String {
        let firing = self.status == Status::Firing;
        let mut parts = vec![];
        let icon = if firing { layout::Level::of(&self.severity).icon() } else { layout::RESOLVED_ICON };
        parts.push(if markdown {
            format!("{icon} **{}**", escape_markdown(&self.name))
        } else {
            format!("{icon} {}", self.name)
        });
        for field in [&self.severity, &self.place] {
            if !field.is_empty() {
                parts.push(if markdown { escape_markdown(field) } else { field.clone() });
            }
        }
        let count = match (self.firing, self.resolved) {
            (f, 0) if firing => format!("{f} firing"),
            (0, r) => format!("{r} resolved"),
            (f, r) => format!("{f} firing, {r} resolved"),
        };
        parts.push(if self.subjects.is_empty() || self.subjects.len() != self.firing + self.resolved {
            count
        } else {
            self.subjects.join(", ")
        });
        if !self.summary.is_empty() {
            parts.push(if markdown { escape_markdown(&self.summary) } else { self.summary.clone() });
        }
        format!("- {}", parts.join(" · "))
    }
}
