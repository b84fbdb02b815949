//! Who gets what of a notification: a router's alerts divided by label among its targets, each target's
//! `send_on`, and `split: per_alert`. The intake and `render` both go through here, so what `render` prints
//! is what the intake stores.

use crate::config::{Config, Split};
use crate::decode::Decoded;
use crate::render::{Rendered, Renderer, summarize};

/// Why a target's share of a notification is acknowledged without a message. Bounded: the labels are
/// stored with the notification and are metric label values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    /// The target's `send_on` takes none of its alerts.
    SendOn,
    /// A router has no target for the alerts' label, and no default.
    NoRoute,
    /// The target is switched off (its configuration, or the console).
    Disabled,
}

impl SkipReason {
    pub const ALL: [SkipReason; 3] = [SkipReason::SendOn, SkipReason::NoRoute, SkipReason::Disabled];

    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::SendOn => "send_on",
            SkipReason::NoRoute => "no_route",
            SkipReason::Disabled => "disabled",
        }
    }

    /// A stored label read back.
    pub fn parse(label: &str) -> Option<SkipReason> {
        SkipReason::ALL.into_iter().find(|r| r.as_str() == label)
    }

    /// What it means, for a log line.
    pub fn why(self) -> &'static str {
        match self {
            SkipReason::SendOn => "the target's send_on takes none of its alerts",
            SkipReason::NoRoute => "the route has no target for its alerts' label, and no default",
            SkipReason::Disabled => "the target is disabled (its configuration, or the console)",
        }
    }
}

impl crate::metrics::Reason for SkipReason {
    fn label(self) -> &'static str {
        self.as_str()
    }
}

/// One target's share of a notification: the alerts it takes and the messages they rendered to, or why it
/// takes none.
pub struct Share {
    pub target: String,
    pub decoded: Decoded,
    /// The messages, or why there are none (`send_on`, `no_route`).
    pub outcome: Result<Rendered, SkipReason>,
}

/// Who gets what of a notification. A target takes the alerts its `send_on` lets through (`split:
/// per_alert` renders each alone). A router hands each alert to the target its label names; alerts it has
/// no target for are its own share, skipped as `no_route`.
pub fn shares(config: &Config, renderer: &Renderer, name: &str, decoded: Decoded) -> Vec<Share> {
    let Some(route) = config.routes.get(name) else { return vec![share(config, renderer, name, decoded)] };
    let n = &decoded.notification;
    let mut by_target: Vec<(&str, Vec<usize>)> = vec![];
    let mut nowhere = vec![];
    for (i, a) in n.alerts.iter().enumerate() {
        match route.destination(&a.labels) {
            Some(t) => match by_target.iter_mut().find(|(name, _)| *name == t) {
                Some((_, list)) => list.push(i),
                None => by_target.push((t, vec![i])),
            },
            None => nowhere.push(i),
        }
    }
    let pick = |list: &[usize]| decoded.subset_at(list).expect("each list holds an alert");
    let mut out: Vec<Share> = by_target.iter().map(|(t, list)| share(config, renderer, t, pick(list))).collect();
    if !nowhere.is_empty() {
        out.push(Share { target: name.to_string(), decoded: pick(&nowhere), outcome: Err(SkipReason::NoRoute) });
    }
    out
}

/// What target `name` makes of `decoded`.
fn share(config: &Config, renderer: &Renderer, name: &str, decoded: Decoded) -> Share {
    let target = &config.targets[name];
    let alerts = &decoded.notification.alerts;
    let kept: Vec<usize> = (0..alerts.len()).filter(|&i| target.send_on.takes(alerts[i].status)).collect();
    // Usually every alert is taken: the notification as it came, never a copy (a big one is megabytes).
    let taken = if kept.len() == alerts.len() {
        decoded
    } else {
        match decoded.subset_at(&kept) {
            Some(d) => d,
            None => return Share { target: name.to_string(), decoded, outcome: Err(SkipReason::SendOn) },
        }
    };
    let rendered = match target.split {
        Split::PerGroup => renderer.render(target, &taken),
        Split::PerAlert => {
            let mut all = Rendered { summary: summarize(&taken), ..Rendered::default() };
            for i in 0..taken.notification.alerts.len() {
                all.add(renderer.render(target, &taken.subset_at(&[i]).expect("one alert")));
            }
            all
        }
    };
    Share { target: name.to_string(), decoded: taken, outcome: Ok(rendered) }
}
