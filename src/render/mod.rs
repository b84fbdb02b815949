//! Rendering: one accepted notification -> the request bodies that carry it. Owns the template sets
//! (built-in and user), the fallback that keeps a broken user template from costing an alert, the keyword
//! guarantee, writing mentions into the text, and keeping every body under the size limit (splitting a
//! group into numbered parts, cutting a lone oversized alert at a UTF-8 boundary). The target's channel
//! turns title and text into its protocol's body, which is what gets measured.

pub mod digest;
pub mod helpers;
pub mod layout;
pub mod phone;
pub mod preview;
pub mod samples;
pub mod send_time;

pub use digest::{Summary, summarize};
pub use layout::{Facts, Link};

use std::collections::BTreeSet;
use std::path::Path;

use chrono::{DateTime, Utc};
use handlebars::Handlebars;
use serde_json::{Map, Value, json};

use crate::channel::{Content, Ring};
use crate::config::Target;
use crate::decode::{Decoded, Status};

/// The template set every installation has; users may override its files.
pub const DEFAULT_SET: &str = "default";
/// The files of a template set.
pub const KINDS: [&str; 5] = ["title", "markdown", "text", "feishu", "wecom"];
const BUILTIN: [(&str, &str); 5] = [
    ("title", include_str!("../../templates/default/title.hbs")),
    ("markdown", include_str!("../../templates/default/markdown.hbs")),
    ("text", include_str!("../../templates/default/text.hbs")),
    ("feishu", include_str!("../../templates/default/feishu.hbs")),
    ("wecom", include_str!("../../templates/default/wecom.hbs")),
];
const MAX_TITLE_CHARS: usize = 256;
/// Widest part label used while packing, so the real `(i/n)` never makes a part grow.
const PART_PLACEHOLDER: (usize, usize) = (999, 999);
/// Groups up to this many alerts are rendered whole first; bigger ones are sized from a sample.
const WHOLE_FIRST_UP_TO: usize = 64;
/// How many alerts the sample of a big group renders.
const SAMPLE_ALERTS: usize = 8;
/// Renders one part may try before settling for the largest count that fitted.
const MAX_PROBES: usize = 8;

#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("{file}: {message}")]
    Compile { file: String, message: String },
    #[error("{path}: {message}")]
    Dir { path: String, message: String },
}

/// A template that failed on a payload (at run time: compile errors are [`TemplateError`]s).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("template {template}: {message}")]
pub struct RenderError {
    /// The template's name, `<set>/<file>`.
    pub template: String,
    pub message: String,
}

/// A request body ready to store and send. `msg_uuid` is also inside `body`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub msg_uuid: String,
    pub body: String,
    /// Whom it goes to, for protocols that name recipients per call. `None`: the webhook's URL says.
    pub recipients: Option<crate::channel::Delivery>,
}

/// What rendering produced, and what it had to do to get there (for metrics and logs).
#[derive(Debug, Default)]
pub struct Rendered {
    pub messages: Vec<Message>,
    /// The target's template failed at run time; the built-in one rendered the messages instead.
    pub template_error: Option<RenderError>,
    /// Messages the bridge had to add the keyword to.
    pub keyword_inserted: usize,
    /// Messages whose text was cut to fit the size limit.
    pub truncated: usize,
    /// The notification in one line, for storm digests.
    pub summary: Summary,
    /// Whom its messages ring, and whom they could not.
    pub mentioned: Mentioned,
}

/// Whom a notification's messages ring (its first message: later parts of a split group do not ring
/// again), and whom the mention rules named but could not ring.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Mentioned {
    /// People rung, `@all` aside.
    pub rung: usize,
    pub all: bool,
    /// Names taken from alerts that the people directory does not have.
    pub unknown: Vec<String>,
    /// People of the directory with no identifier for this tool (or `@all` where it cannot be rung).
    pub no_identifier: Vec<String>,
    /// People left out past the tool's limit on mentions.
    pub capped: Vec<String>,
}

impl Mentioned {
    fn add(&mut self, other: Mentioned) {
        self.rung += other.rung;
        self.all |= other.all;
        for (mine, theirs) in [
            (&mut self.unknown, other.unknown),
            (&mut self.no_identifier, other.no_identifier),
            (&mut self.capped, other.capped),
        ] {
            for name in theirs {
                if !mine.contains(&name) {
                    mine.push(name);
                }
            }
        }
    }
}

/// The ring of a notification's first message: the target's fixed mentions, and the people its mention
/// rules name for the notification's alerts (all of them: later parts of a split group ring nobody), each
/// by this tool's identifier, within the tool's limit.
fn ring_of(target: &Target, d: &Decoded) -> (Ring, Mentioned) {
    let n = &d.notification;
    let mut ring = target.channel.fixed_ring(n.status == Status::Firing);
    let mut heard = Mentioned::default();
    if !target.mention_rules.is_empty() {
        let alerts: Vec<&crate::decode::Alert> = n.alerts.iter().collect();
        let chosen = target.mention_rules.choose(&alerts);
        heard.unknown = chosen.unknown;
        if chosen.all {
            if target.channel.caps().ring_all {
                ring.all = true;
            } else {
                heard.no_identifier.push("@all".into());
            }
        }
        let cap = target.channel.caps().max_mentions;
        for p in chosen.people {
            let before = ring.clone();
            if !target.channel.add_person(&mut ring, p) {
                heard.no_identifier.push(p.name.clone());
            } else if cap.is_some_and(|c| ring.people() > c) {
                ring = before;
                heard.capped.push(p.name.clone());
            }
        }
    }
    heard.rung = ring.people();
    heard.all = ring.all;
    (ring, heard)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source<'a> {
    /// The target's template set (user files where present, built-in files elsewhere).
    Set(&'a str),
    Builtin,
    /// Hard-coded text: the last resort if even the built-in templates fail on some payload.
    Plain,
}

pub struct Renderer {
    hb: Handlebars<'static>,
    sets: BTreeSet<String>,
    max_bytes: usize,
    /// Render as if it were this time (snapshots, previews); the clock otherwise.
    now: Option<DateTime<Utc>>,
}

impl Renderer {
    /// Compiles the built-in templates and every set under `templates_dir` (`<dir>/<set>/{title,markdown,text}.hbs`).
    pub fn new(templates_dir: Option<&Path>, tz: chrono_tz::Tz, max_bytes: usize) -> Result<Self, Vec<TemplateError>> {
        let mut hb = Handlebars::new();
        hb.set_strict_mode(true);
        hb.register_escape_fn(handlebars::no_escape);
        helpers::register_all(&mut hb, tz);
        let mut errors = vec![];
        for (kind, text) in BUILTIN {
            hb.register_template_string(&format!("builtin/{kind}"), text).expect("built-in templates compile");
        }
        let mut sets = BTreeSet::from([DEFAULT_SET.to_string()]);
        if let Some(dir) = templates_dir {
            load_sets(&mut hb, dir, &mut sets, &mut errors);
        }
        if errors.is_empty() { Ok(Renderer { hb, sets, max_bytes, now: None }) } else { Err(errors) }
    }

    /// Renders as if it were `now` ("today" and the zone's offset; durations are computed at send time).
    pub fn at(mut self, now: DateTime<Utc>) -> Self {
        self.now = Some(now);
        self
    }

    pub fn has_set(&self, name: &str) -> bool {
        self.sets.contains(name)
    }

    pub fn sets(&self) -> impl Iterator<Item = &str> {
        self.sets.iter().map(String::as_str)
    }

    /// Renders with the target's template, falling back to the built-in one (and then to plain text) rather
    /// than losing the notification.
    pub fn render(&self, target: &Target, d: &Decoded) -> Rendered {
        let mut rendered = match self.render_from(Source::Set(&target.template), target, d) {
            Ok(r) => r,
            Err(error) => {
                let mut r = self
                    .render_from(Source::Builtin, target, d)
                    .or_else(|_| self.render_from(Source::Plain, target, d))
                    .expect("plain rendering cannot fail");
                r.template_error = Some(error);
                r
            }
        };
        // Where a protocol names recipients per call, a message goes to each call's recipients on its
        // own: one stored message per call (users in batches, each group), part after part, so each
        // recipient's outcome is kept.
        let plan = target.channel.plan();
        if !plan.is_empty() {
            rendered.messages = rendered
                .messages
                .iter()
                .flat_map(|m| {
                    plan.iter().map(|to| Message {
                        msg_uuid: new_uuid(),
                        body: m.body.clone(),
                        recipients: Some(crate::channel::Delivery::new(to.clone())),
                    })
                })
                .collect();
        }
        rendered
    }

    /// Renders with the target's own template only, reporting its error (for `check-config` and `render`).
    pub fn render_strict(&self, target: &Target, d: &Decoded) -> Result<Rendered, RenderError> {
        self.render_from(Source::Set(&target.template), target, d)
    }

    fn render_from(&self, src: Source, target: &Target, d: &Decoded) -> Result<Rendered, RenderError> {
        let n = &d.notification;
        // Firing first, then resolved, so parts keep the two apart; within each, alerts of one name
        // together (in the order Alertmanager sent them), so a part lists each name once.
        let name = |i: usize| n.alerts[i].labels.get("alertname").map_or("", String::as_str);
        let mut order: Vec<usize> = (0..n.alerts.len()).collect();
        order.sort_by_key(|&i| (n.alerts[i].status != Status::Firing, name(i)));
        let mut position = vec![0; order.len()];
        for (p, &i) in order.iter().enumerate() {
            position[i] = p;
        }
        let facts = Facts::of(d, &target.labels);
        let env = Envelope::of(d, &facts);
        let (ring, mentioned) = ring_of(target, d);
        let g = Group { d, facts: &facts, now: self.now.unwrap_or_else(Utc::now), position, ring };
        let mut out = Rendered { summary: summarize(d), mentioned, ..Rendered::default() };
        let uuid = new_uuid();
        let size = |draft: &Draft| self.body_len(draft, target, &env, &uuid);
        let total = order.len();
        let sample = |k: usize| -> Result<(usize, usize), RenderError> {
            Ok((k, size(&self.draft(src, target, &g, &order[..k], Some(PART_PLACEHOLDER))?)))
        };
        // A big group is sized from a sample first, so it is not rendered whole only to learn that it must
        // be split; a smaller one is rendered whole at once.
        let mut model = None;
        if total > WHOLE_FIRST_UP_TO {
            let m = SizeModel::fit(sample(1)?, sample(SAMPLE_ALERTS)?);
            model = Some(m);
        }
        let max = self.limit(target);
        if model.is_none_or(|m| m.size(total) <= max + max / 10) {
            let whole = self.draft(src, target, &g, &order, None)?;
            let whole_size = size(&whole);
            if total == 1 || whole_size <= max {
                out.push(self.finish(whole, target, &env, uuid));
                return Ok(out);
            }
            if model.is_none() {
                model = Some(SizeModel::fit(sample(1)?, (total, whole_size)));
            }
        }
        let model = model.expect("sized above");
        // Parts are rendered with the numbering they will carry, for the count the model expects. If the
        // count comes out different (rare), the parts are packed with the widest numbering instead and
        // rendered once more with the real one, which cannot make them bigger.
        let expected = model.parts(total, max);
        let mut parts = self.pack(src, target, &g, &order, model, &size, |i| (i, expected))?;
        if parts.len() != expected {
            let ranges = self.pack(src, target, &g, &order, model, &size, |_| PART_PLACEHOLDER)?;
            let count = ranges.len();
            parts = vec![];
            let mut start = 0;
            for (i, (len, _)) in ranges.into_iter().enumerate() {
                parts.push((len, self.draft(src, target, &g, &order[start..start + len], Some((i + 1, count)))?));
                start += len;
            }
        }
        for (_, draft) in parts {
            out.push(self.finish(draft, target, &env, new_uuid()));
        }
        Ok(out)
    }

    /// Greedy packing: each part takes as many of the remaining alerts as fit. Each probe's measured size
    /// says how many alerts to add or drop next (a secant step on the size line), until the next alert
    /// would not fit or a bracket closes; usually one or two renders of about the part's own size.
    #[allow(clippy::too_many_arguments)]
    fn pack(
        &self,
        src: Source,
        target: &Target,
        g: &Group,
        order: &[usize],
        model: SizeModel,
        size: &dyn Fn(&Draft) -> usize,
        numbering: impl Fn(usize) -> (usize, usize),
    ) -> Result<Vec<(usize, Draft)>, RenderError> {
        let max = self.limit(target);
        let mut parts = vec![];
        let mut rest = order;
        let mut per_alert = model.per_alert;
        while !rest.is_empty() {
            let part = Some(numbering(parts.len() + 1));
            // The largest count known to fit (with its draft), and the smallest known not to.
            let mut fit: Option<(usize, Draft)> = None;
            let mut misfit = rest.len() + 1;
            let mut k = (max.saturating_sub(model.base) / per_alert).clamp(1, rest.len());
            for _ in 0..MAX_PROBES {
                let draft = self.draft(src, target, g, &rest[..k], part)?;
                let bytes = size(&draft);
                per_alert = (bytes.saturating_sub(model.base) / k).max(1);
                let next = if bytes <= max {
                    fit = Some((k, draft));
                    // Stop when the next alert would not fit at this part's average size.
                    if max - bytes < per_alert {
                        break;
                    }
                    k + (max - bytes) / per_alert
                } else {
                    misfit = k;
                    if k == 1 {
                        // A lone alert too big: it goes alone, cut to size.
                        fit = Some((1, draft));
                        break;
                    }
                    k.saturating_sub((bytes - max).div_ceil(per_alert))
                };
                let lo = fit.as_ref().map_or(0, |(n, _)| *n);
                if lo + 1 >= misfit {
                    break;
                }
                k = next.clamp(lo + 1, misfit - 1);
            }
            let (k, draft) = match fit {
                Some(found) => found,
                None => (1, self.draft(src, target, g, &rest[..1], part)?),
            };
            parts.push((k, draft));
            rest = &rest[k..];
        }
        Ok(parts)
    }

    /// Title and text for some of the group's alerts, with the keyword guaranteed. Only the first part of a
    /// split group mentions anyone (the widest numbering, used while packing, counts as first so the
    /// mentions are measured).
    fn draft(
        &self,
        src: Source,
        target: &Target,
        g: &Group,
        alerts: &[usize],
        part: Option<(usize, usize)>,
    ) -> Result<Draft, RenderError> {
        let d = g.d;
        let first = part.is_none_or(|(i, n)| i == 1 || (i, n) == PART_PLACEHOLDER);
        let ring = if first { g.ring.clone() } else { Ring::default() };
        let mentions = target.channel.mention_tokens(&ring);
        let (title, text) = match src {
            Source::Plain => plain(d, alerts, part),
            Source::Set(_) | Source::Builtin => {
                // Wrapped once: `render` with a plain value would copy the whole context for each template.
                let ctx = handlebars::Context::from(context(target, g, alerts, part, &mentions.join(" ")));
                let name = |kind: &str| match src {
                    Source::Set(set) if self.hb.has_template(&format!("{set}/{kind}")) => format!("{set}/{kind}"),
                    _ => format!("builtin/{kind}"),
                };
                let render = |kind: &str| {
                    let name = name(kind);
                    self.hb
                        .render_with_context(&name, &ctx)
                        .map_err(|e| RenderError { template: name, message: e.to_string() })
                };
                if target.channel.text_only() {
                    (String::new(), render("text")?)
                } else {
                    (render("title")?, render(target.channel.caps().template)?)
                }
            }
        };
        let mut title = title.split_whitespace().collect::<Vec<_>>().join(" ");
        if title.chars().count() > MAX_TITLE_CHARS {
            title = title.chars().take(MAX_TITLE_CHARS - 1).chain(['…']).collect();
        }
        if title.is_empty() && !target.channel.text_only() {
            title = plain_title(d, part);
        }
        let mut draft = Draft { title, text: tidy(&text), keyword_inserted: false, ring, mentions };
        // The keyword goes last, so a phone's notification banner starts with the alert.
        if let Some(kw) = &target.keyword {
            if !target.channel.text_only() && !draft.title.contains(kw.as_str()) {
                draft.title = format!("{} {kw}", draft.title);
                draft.keyword_inserted = true;
            }
            if !draft.text.contains(kw.as_str()) {
                draft.keyword_inserted = true;
            }
        }
        Ok(draft)
    }

    /// The most a message to `target` may measure: the configured limit, or the protocol's if smaller.
    pub(super) fn limit(&self, target: &Target) -> usize {
        target.channel.max_bytes().map_or(self.max_bytes, |m| m.min(self.max_bytes))
    }

    /// A draft's size as the target's protocol counts it.
    fn body_len(&self, draft: &Draft, target: &Target, env: &Envelope, uuid: &str) -> usize {
        target.channel.measure(&env.body(target, draft, &self.full_text(draft, target, None), uuid))
    }

    /// The text as sent: the draft (cut to `cut` bytes if given, with a marker), the keyword if the template
    /// left it out, then the mentions DingTalk needs to see written in the text.
    fn full_text(&self, draft: &Draft, target: &Target, cut: Option<usize>) -> String {
        let mut text = match cut {
            Some(len) => {
                let mut end = len.min(draft.text.len());
                while !draft.text.is_char_boundary(end) {
                    end -= 1;
                }
                format!(
                    "{}\n\n… (cut to fit {}'s message size limit)",
                    draft.text[..end].trim_end(),
                    target.channel.service()
                )
            }
            None => draft.text.clone(),
        };
        if let Some(kw) = &target.keyword
            && !text.contains(kw.as_str())
        {
            text = format!("{text}\n\n{kw}");
        }
        let missing: Vec<&str> =
            draft.mentions.iter().map(String::as_str).filter(|t| !contains_token(&text, t)).collect();
        if !missing.is_empty() {
            text.push_str(if target.keyword.as_ref().is_some_and(|kw| text.ends_with(kw.as_str())) {
                " "
            } else {
                "\n\n"
            });
            text.push_str(&missing.join(" "));
        }
        text
    }

    /// The final body; a single alert too big even alone has its text cut at a UTF-8 boundary.
    fn finish(&self, draft: Draft, target: &Target, env: &Envelope, uuid: String) -> Finished {
        let mut text = self.full_text(&draft, target, None);
        let mut json = env.body(target, &draft, &text, &uuid);
        let mut cut = draft.text.len();
        let max = self.limit(target);
        while target.channel.measure(&json) > max && cut > 0 {
            // JSON escaping can make a byte of text cost more than one byte of body: cut by the excess, repeat.
            cut = cut.saturating_sub(target.channel.measure(&json) - max + 16);
            text = self.full_text(&draft, target, Some(cut));
            json = env.body(target, &draft, &text, &uuid);
        }
        Finished {
            truncated: cut < draft.text.len(),
            keyword_inserted: draft.keyword_inserted,
            message: Message { msg_uuid: uuid, body: json, recipients: None },
        }
    }
}

struct Draft {
    title: String,
    text: String,
    keyword_inserted: bool,
    /// Whom this message rings: nobody on later parts of a split group.
    ring: Ring,
    /// `@...` tokens this message rings (none on later parts, none on resolved unless configured).
    mentions: Vec<String>,
}

/// A notification with what the layout says about it, and the time it is rendered at.
struct Group<'a> {
    d: &'a Decoded,
    facts: &'a Facts,
    now: DateTime<Utc>,
    /// Whom its first message rings.
    ring: Ring,
    /// Each alert's place in the order messages list them.
    position: Vec<usize>,
}

impl Group<'_> {
    /// Where alert `i` of the payload stands in the order messages list them.
    fn order_position(&self, i: usize) -> Option<usize> {
        self.position.get(i).copied()
    }
}

struct Finished {
    keyword_inserted: bool,
    truncated: bool,
    message: Message,
}

impl Rendered {
    /// Appends another rendering of the same notification (one alert of a `split: per_alert` target).
    pub fn add(&mut self, other: Rendered) {
        self.messages.extend(other.messages);
        self.template_error = self.template_error.take().or(other.template_error);
        self.keyword_inserted += other.keyword_inserted;
        self.truncated += other.truncated;
        self.mentioned.add(other.mentioned);
    }

    fn push(&mut self, f: Finished) {
        self.keyword_inserted += usize::from(f.keyword_inserted);
        self.truncated += usize::from(f.truncated);
        self.messages.push(f.message);
    }
}

/// A message's size as a straight line in its number of alerts, fitted through two measured drafts.
#[derive(Debug, Clone, Copy)]
struct SizeModel {
    base: usize,
    per_alert: usize,
}

impl SizeModel {
    fn fit((k1, s1): (usize, usize), (k2, s2): (usize, usize)) -> SizeModel {
        let per_alert = if k2 > k1 { (s2.saturating_sub(s1) / (k2 - k1)).max(1) } else { s1.max(1) };
        SizeModel { base: s1.saturating_sub(per_alert * k1), per_alert }
    }

    fn size(self, alerts: usize) -> usize {
        self.base + self.per_alert * alerts
    }

    /// How many alerts fit `max` bytes (at least 1: a lone alert too big is cut to size).
    fn fitting(self, max: usize) -> usize {
        (max.saturating_sub(self.base) / self.per_alert).max(1)
    }

    fn parts(self, alerts: usize, max: usize) -> usize {
        alerts.div_ceil(self.fitting(max))
    }
}

/// Template whitespace is hard to get exact; at most one blank line in a row reads best on a phone.
fn tidy(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut newlines = 0;
    // Trailing spaces stay: two of them are a markdown line break.
    for line in text.trim().split('\n') {
        if line.trim().is_empty() {
            newlines += 1;
            continue;
        }
        if !out.is_empty() {
            out.push_str(if newlines > 0 { "\n\n" } else { "\n" });
        }
        newlines = 0;
        out.push_str(line);
    }
    out
}

fn new_uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// What a message body needs beyond title and text: whether it is about firing alerts (mentions ring), and
/// the buttons a card shows.
struct Envelope {
    firing: bool,
    buttons: Vec<Link>,
    level: layout::Level,
}

impl Envelope {
    fn of(d: &Decoded, facts: &Facts) -> Self {
        let firing = d.notification.status == Status::Firing;
        // A card's buttons: Alertmanager, and while something fires, Silence and Runbook.
        let wanted: &[&str] = if firing { &["Alertmanager", "Silence", "Runbook"] } else { &["Alertmanager"] };
        let buttons = facts.links.iter().filter(|l| wanted.contains(&l.title)).cloned().collect();
        Envelope { firing, buttons, level: layout::Level::of(&facts.severity) }
    }

    /// The request body the target's channel makes of title and text.
    fn body(&self, target: &Target, draft: &Draft, text: &str, uuid: &str) -> String {
        let buttons: Vec<(&str, &str)> = self.buttons.iter().map(|b| (b.title, b.url.as_str())).collect();
        let content = Content {
            title: &draft.title,
            text,
            firing: self.firing,
            ring: &draft.ring,
            buttons: &buttons,
            level: self.level,
        };
        target.channel.body(&content, uuid)
    }
}

/// `@123` must not count as present because `@1234` is.
fn contains_token(text: &str, token: &str) -> bool {
    text.match_indices(token).any(|(i, _)| {
        text[i + token.len()..].chars().next().is_none_or(|c| !(c.is_alphanumeric() || c == '_' || c == '-'))
    })
}

/// What templates see: the payload as Alertmanager sent it, plus fields that make templates short (README
/// "Template context").
fn context(target: &Target, g: &Group, alerts: &[usize], part: Option<(usize, usize)>, mentions: &str) -> Value {
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
fn group_name(d: &Decoded) -> String {
    let n = &d.notification;
    let from_groups: Vec<&str> = n.group_labels.values().map(String::as_str).collect();
    if !from_groups.is_empty() {
        return from_groups.join(" ");
    }
    n.common_labels.get("alertname").cloned().unwrap_or_else(|| "alerts".to_string())
}

fn plain_title(d: &Decoded, part: Option<(usize, usize)>) -> String {
    let n = &d.notification;
    let count = if n.status == Status::Firing { n.firing().count() } else { n.resolved().count() };
    let part = part.map(|(i, t)| format!(" ({i}/{t})")).unwrap_or_default();
    let all: Vec<&layout::Labels> = n.alerts.iter().map(|a| &a.labels).collect();
    let firing: Vec<&layout::Labels> = n.firing().map(|a| &a.labels).collect();
    format!("{} {count}{part} · {}", n.status.as_str().to_uppercase(), layout::group_alertname(&all, &firing))
}

/// The last-resort message, written without templates.
fn plain(d: &Decoded, alerts: &[usize], part: Option<(usize, usize)>) -> (String, String) {
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

fn load_sets(hb: &mut Handlebars<'static>, dir: &Path, sets: &mut BTreeSet<String>, errors: &mut Vec<TemplateError>) {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            errors.push(TemplateError::Dir { path: dir.display().to_string(), message: e.to_string() });
            return;
        }
    };
    let mut set_dirs: Vec<_> = entries.filter_map(Result::ok).map(|e| e.path()).filter(|p| p.is_dir()).collect();
    set_dirs.sort();
    for set_dir in set_dirs {
        let Some(set) = set_dir.file_name().and_then(|n| n.to_str()).map(str::to_string) else { continue };
        if set.starts_with('.') {
            continue;
        }
        let files = match std::fs::read_dir(&set_dir) {
            Ok(f) => f,
            Err(e) => {
                errors.push(TemplateError::Dir { path: set_dir.display().to_string(), message: e.to_string() });
                continue;
            }
        };
        let mut found = false;
        for file in files.filter_map(Result::ok).map(|e| e.path()) {
            if file.extension().and_then(|e| e.to_str()) != Some("hbs") {
                continue;
            }
            let stem = file.file_stem().and_then(|s| s.to_str()).unwrap_or_default().to_string();
            let shown = file.display().to_string();
            if !KINDS.contains(&stem.as_str()) {
                errors.push(TemplateError::Compile {
                    file: shown,
                    message: format!(
                        "unknown template file; a set holds {}",
                        KINDS.map(|k| format!("{k}.hbs")).join(", ")
                    ),
                });
                continue;
            }
            match std::fs::read_to_string(&file) {
                Ok(text) => match hb.register_template_string(&format!("{set}/{stem}"), text) {
                    Ok(()) => found = true,
                    Err(e) => errors.push(TemplateError::Compile { file: shown, message: e.to_string() }),
                },
                Err(e) => errors.push(TemplateError::Compile { file: shown, message: e.to_string() }),
            }
        }
        if found {
            sets.insert(set);
        }
    }
}

#[cfg(test)]
mod budgets;
#[cfg(test)]
mod tests;
