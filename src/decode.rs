//! Decoding Alertmanager's webhook payload (version 4). The payload is kept twice: as raw JSON, so
//! templates see every field including ones newer Alertmanagers add, and as typed values the bridge relies
//! on, checked field by field so an error names the field.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    #[default]
    Firing,
    Resolved,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Firing => "firing",
            Status::Resolved => "resolved",
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Alert {
    pub status: Status,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    pub starts_at: Option<DateTime<Utc>>,
    pub ends_at: Option<DateTime<Utc>>,
    #[serde(default, rename = "generatorURL")]
    pub generator_url: String,
    #[serde(default)]
    pub fingerprint: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Notification {
    #[serde(default)]
    pub version: String,
    #[serde(default)]
    pub group_key: String,
    #[serde(default)]
    pub truncated_alerts: u64,
    pub status: Status,
    #[serde(default)]
    pub receiver: String,
    #[serde(default)]
    pub group_labels: BTreeMap<String, String>,
    #[serde(default)]
    pub common_labels: BTreeMap<String, String>,
    #[serde(default)]
    pub common_annotations: BTreeMap<String, String>,
    #[serde(default, rename = "externalURL")]
    pub external_url: String,
    pub alerts: Vec<Alert>,
}

/// A decoded notification: typed view plus the raw JSON object it came from.
#[derive(Debug, Clone)]
pub struct Decoded {
    pub notification: Notification,
    pub raw: Value,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{message}")]
pub struct DecodeError {
    /// The JSON path of the offending field (`alerts[0].startsAt`), when one is to blame.
    pub field: Option<String>,
    pub message: String,
}

impl Notification {
    /// The notification's fields with no alerts (cheap: the alerts are most of it).
    fn clone_without_alerts(&self) -> Notification {
        Notification {
            version: self.version.clone(),
            group_key: self.group_key.clone(),
            truncated_alerts: self.truncated_alerts,
            status: self.status,
            receiver: self.receiver.clone(),
            group_labels: self.group_labels.clone(),
            common_labels: self.common_labels.clone(),
            common_annotations: self.common_annotations.clone(),
            external_url: self.external_url.clone(),
            alerts: vec![],
        }
    }

    pub fn firing(&self) -> impl Iterator<Item = &Alert> {
        self.alerts.iter().filter(|a| a.status == Status::Firing)
    }

    pub fn resolved(&self) -> impl Iterator<Item = &Alert> {
        self.alerts.iter().filter(|a| a.status == Status::Resolved)
    }
}

impl Decoded {
    /// What makes two notifications "the same" for duplicate suppression: the group, its status and each
    /// alert's identity and state. Not `externalURL` or `receiver`, which differ between the peers of an HA
    /// Alertmanager cluster sending the same notification, nor `endsAt` of firing alerts, which moves.
    /// The same notification with only the alerts `keep` selects (in both views): firing if any kept alert
    /// fires, its common labels and annotations those every kept alert shares. `None` if none is kept.
    pub fn subset(&self, keep: impl Fn(&Alert) -> bool) -> Option<Decoded> {
        let n = &self.notification;
        let kept: Vec<usize> = (0..n.alerts.len()).filter(|&i| keep(&n.alerts[i])).collect();
        if kept.len() == n.alerts.len() && !kept.is_empty() {
            return Some(self.clone());
        }
        self.subset_at(&kept)
    }

    /// [`subset`](Self::subset) by the alerts' positions (in order, each once). Copies only those alerts,
    /// so splitting a 2000-alert group into one notification each costs the group's size, not its square.
    pub fn subset_at(&self, kept: &[usize]) -> Option<Decoded> {
        let n = &self.notification;
        if kept.is_empty() {
            return None;
        }
        let mut typed = n.clone_without_alerts();
        typed.alerts = kept.iter().filter_map(|&i| n.alerts.get(i).cloned()).collect();
        typed.status =
            if typed.alerts.iter().any(|a| a.status == Status::Firing) { Status::Firing } else { Status::Resolved };
        let shared = |of: fn(&Alert) -> &BTreeMap<String, String>| -> BTreeMap<String, String> {
            let mut common = typed.alerts.first().map(|a| of(a).clone()).unwrap_or_default();
            common.retain(|k, v| typed.alerts.iter().all(|a| of(a).get(k) == Some(v)));
            common
        };
        typed.common_labels = shared(|a| &a.labels);
        typed.common_annotations = shared(|a| &a.annotations);
        // Every field but the alerts, then the kept alerts: never a copy of the whole alerts array.
        let mut raw = serde_json::Map::new();
        if let Some(obj) = self.raw.as_object() {
            for (k, v) in obj.iter().filter(|(k, _)| k.as_str() != "alerts") {
                raw.insert(k.clone(), v.clone());
            }
        }
        let all = self.raw.get("alerts").and_then(Value::as_array);
        let alerts: Vec<Value> = kept.iter().filter_map(|&i| all.and_then(|a| a.get(i)).cloned()).collect();
        raw.insert("alerts".into(), Value::Array(alerts));
        raw.insert("status".into(), Value::String(typed.status.as_str().into()));
        raw.insert("commonLabels".into(), serde_json::to_value(&typed.common_labels).unwrap_or_default());
        raw.insert("commonAnnotations".into(), serde_json::to_value(&typed.common_annotations).unwrap_or_default());
        Some(Decoded { notification: typed, raw: Value::Object(raw) })
    }

    pub fn identity(&self) -> String {
        use sha2::{Digest, Sha256};
        let n = &self.notification;
        let mut alerts: Vec<String> = n
            .alerts
            .iter()
            .map(|a| {
                let id = if a.fingerprint.is_empty() {
                    a.labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect::<Vec<_>>().join(",")
                } else {
                    a.fingerprint.clone()
                };
                format!("{id}|{}|{}", a.status.as_str(), a.starts_at.map(|t| t.timestamp_millis()).unwrap_or(0))
            })
            .collect();
        alerts.sort();
        let mut h = Sha256::new();
        h.update(n.group_key.as_bytes());
        h.update([0]);
        h.update(n.status.as_str().as_bytes());
        for a in alerts {
            h.update([0]);
            h.update(a.as_bytes());
        }
        h.finalize().iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// What one notification may hold (`server.limits`); more is answered 413 naming the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PayloadLimits {
    pub max_alerts: usize,
    /// Labels on one alert, and separately annotations on one alert.
    pub max_labels: usize,
    /// Bytes in any one string of the payload (a label or annotation value, a URL, the group key).
    pub max_value_bytes: usize,
    /// JSON object members in the whole payload: bounds what decoding it costs, whatever its shape.
    pub max_fields: usize,
}

impl Default for PayloadLimits {
    fn default() -> Self {
        PayloadLimits { max_alerts: 2000, max_labels: 128, max_value_bytes: 64 << 10, max_fields: 50_000 }
    }
}

/// A payload past one of `server.limits`, found before anything is decoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{what}: {found} (more than {limit}, set by server.limits.{key}); {advice}")]
pub struct LimitError {
    pub what: String,
    pub found: usize,
    pub limit: usize,
    pub key: &'static str,
    pub advice: &'static str,
}

impl LimitError {
    /// `found` of `what` past `limit`, the value of `server.limits.<key>`.
    fn new(what: impl Into<String>, found: usize, (limit, key): (usize, &'static str), advice: &'static str) -> Self {
        LimitError { what: what.into(), found, limit, key, advice }
    }
}

/// What a payload costs to decode, read off its bytes without decoding them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    /// JSON object members in the whole payload.
    pub fields: usize,
}

impl Shape {
    /// Roughly what the body, the decoded payload, the templates' view of it and the rendered messages
    /// take in memory at once: text about six times over (the JSON value, the typed view, the templates'
    /// context and its copies, the messages), a member a few hundred bytes more. Measured: rendering a
    /// 4 MB notification of 100 alerts peaks 19 MB above the process's base.
    pub fn decoded_cost(&self, body_len: usize) -> usize {
        body_len.saturating_mul(6).saturating_add(self.fields.saturating_mul(400))
    }
}

const SPLIT_ADVICE: &str = "split it with Alertmanager's max_alerts on the webhook receiver, or raise the limit";

/// Counts object members and measures every string in one pass over the bytes, allocating nothing, so a
/// payload built to be expensive (100,000 tiny labels) is refused before it costs anything.
pub fn scan(body: &[u8], limits: &PayloadLimits) -> Result<Shape, LimitError> {
    let (mut fields, mut in_string, mut escaped, mut len) = (0usize, false, false, 0usize);
    for &b in body {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => {
                    in_string = false;
                    if len > limits.max_value_bytes {
                        return Err(LimitError::new(
                            "a string in the payload has too many bytes",
                            len,
                            (limits.max_value_bytes, "max_value_bytes"),
                            "shorten the label or annotation, or raise the limit",
                        ));
                    }
                    continue;
                }
                _ => {}
            }
            len += 1;
            continue;
        }
        match b {
            b'"' => (in_string, len) = (true, 0),
            b':' => fields += 1,
            _ => {}
        }
    }
    if fields > limits.max_fields {
        return Err(LimitError::new("fields in the payload", fields, (limits.max_fields, "max_fields"), SPLIT_ADVICE));
    }
    Ok(Shape { fields })
}

/// The limits that need the decoded alerts: how many, and labels and annotations on each.
pub fn check(n: &Notification, limits: &PayloadLimits) -> Result<(), LimitError> {
    if n.alerts.len() > limits.max_alerts {
        let limit = (limits.max_alerts, "max_alerts");
        return Err(LimitError::new("alerts in the notification", n.alerts.len(), limit, SPLIT_ADVICE));
    }
    for (i, a) in n.alerts.iter().enumerate() {
        for (what, count) in [("labels", a.labels.len()), ("annotations", a.annotations.len())] {
            if count > limits.max_labels {
                return Err(LimitError::new(
                    format!("{what} on alerts[{i}]"),
                    count,
                    (limits.max_labels, "max_labels"),
                    "drop labels with relabelling, or raise the limit",
                ));
            }
        }
    }
    Ok(())
}

pub fn decode(body: &[u8]) -> Result<Decoded, DecodeError> {
    let raw: Value = serde_json::from_slice(body)
        .map_err(|e| DecodeError { field: None, message: format!("body is not valid JSON: {e}") })?;
    if !raw.is_object() {
        return Err(DecodeError {
            field: None,
            message: "body must be a JSON object (Alertmanager's webhook payload)".into(),
        });
    }
    let notification: Notification = serde_path_to_error::deserialize(&raw).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        // A missing field is reported by its parent's path; name the field itself.
        let (field, message) = match inner.strip_prefix("missing field `").and_then(|r| r.split('`').next()) {
            Some(missing) if path == "." => (missing.to_string(), format!("missing field {missing}")),
            Some(missing) => (format!("{path}.{missing}"), format!("missing field {path}.{missing}")),
            None => (path.clone(), format!("{path}: {inner}")),
        };
        DecodeError { field: Some(field), message }
    })?;
    if notification.alerts.is_empty() {
        return Err(DecodeError { field: Some("alerts".into()), message: "alerts: empty; nothing to notify".into() });
    }
    Ok(Decoded { notification, raw })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const FIRING: &str = include_str!("../tests/fixtures/alertmanager-0.25-firing.json");

    #[test]
    fn decodes_real_capture() {
        let d = decode(FIRING.as_bytes()).unwrap();
        let n = &d.notification;
        assert_eq!(n.status, Status::Firing);
        assert_eq!(n.alerts.len(), 3);
        assert_eq!(n.group_key, "{}:{alertname=\"NodeDiskFull\"}");
        assert_eq!(n.external_url, "http://alertmanager.example.com:9093");
        assert_eq!(n.alerts[0].labels["instance"], "node1:9100");
        assert_eq!(n.alerts[0].ends_at.unwrap().timestamp(), -62135596800);
        assert_eq!(n.firing().count(), 3);
    }

    #[test]
    fn a_subset_keeps_both_views_in_step() {
        let mut v: Value = serde_json::from_str(FIRING).unwrap();
        v["alerts"][1]["status"] = json!("resolved");
        v["alerts"][2]["labels"]["team"] = json!("pay");
        let d = decode(v.to_string().as_bytes()).unwrap();
        let resolved = d.subset(|a| a.status == Status::Resolved).unwrap();
        assert_eq!(resolved.notification.status, Status::Resolved, "only a resolved alert is left");
        assert_eq!(resolved.raw["status"], "resolved");
        assert_eq!(resolved.raw["alerts"].as_array().unwrap().len(), 1);
        assert_eq!(resolved.raw["alerts"][0]["labels"]["instance"], "node2:9100");
        let third = d.subset_at(&[2]).unwrap();
        assert_eq!(third.notification.common_labels["team"], "pay", "one alert's labels are all common");
        assert_eq!(third.raw["commonLabels"]["team"], "pay");
        assert_eq!(third.raw["groupKey"], d.raw["groupKey"], "the rest as it was");
        assert!(d.subset(|_| false).is_none());
        assert_eq!(d.subset(|_| true).unwrap().raw, d.raw);
    }

    #[test]
    fn unknown_fields_are_kept_not_rejected() {
        let mut v: Value = serde_json::from_str(FIRING).unwrap();
        v["notification_reason"] = Value::String("repeat".into());
        v["alerts"][0]["newField"] = Value::Bool(true);
        let d = decode(serde_json::to_vec(&v).unwrap().as_slice()).unwrap();
        assert_eq!(d.raw["notification_reason"], "repeat");
    }

    #[test]
    fn errors_name_the_field() {
        let mut v: Value = serde_json::from_str(FIRING).unwrap();
        v["alerts"][1]["startsAt"] = Value::String("yesterday".into());
        let e = decode(serde_json::to_vec(&v).unwrap().as_slice()).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("alerts[1].startsAt"));

        v["alerts"][1]["startsAt"] = Value::Null;
        v["alerts"][2]["status"] = Value::String("burning".into());
        let e = decode(serde_json::to_vec(&v).unwrap().as_slice()).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("alerts[2].status"));
        assert!(e.message.contains("burning"), "{}", e.message);

        v.as_object_mut().unwrap().remove("alerts");
        let e = decode(serde_json::to_vec(&v).unwrap().as_slice()).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("alerts"));
        assert_eq!(e.message, "missing field alerts");
    }

    #[test]
    fn identity_ignores_what_ha_peers_differ_in() {
        let a = decode(FIRING.as_bytes()).unwrap();
        let mut v: Value = serde_json::from_str(FIRING).unwrap();
        v["externalURL"] = Value::String("http://am-1:9093".into());
        v["alerts"][0]["endsAt"] = Value::String("2026-11-22T03:00:00Z".into());
        v["alerts"].as_array_mut().unwrap().reverse();
        let b = decode(v.to_string().as_bytes()).unwrap();
        assert_eq!(a.identity(), b.identity());
        v["alerts"][1]["status"] = Value::String("resolved".into());
        assert_ne!(a.identity(), decode(v.to_string().as_bytes()).unwrap().identity());
        let resolved = decode(include_str!("../tests/fixtures/alertmanager-0.25-resolved.json").as_bytes()).unwrap();
        assert_ne!(a.identity(), resolved.identity());
    }

    #[test]
    fn garbage_and_empty() {
        assert_eq!(decode(b"{not json").unwrap_err().field, None);
        assert_eq!(decode(b"[1]").unwrap_err().field, None);
        let e = decode(br#"{"status":"firing","alerts":[]}"#).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("alerts"));
    }
}
