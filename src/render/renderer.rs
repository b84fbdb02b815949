//! The renderer: one accepted notification -> the request bodies that carry it, through the target's
//! template set with the fallback that keeps a broken user template from costing an alert, the keyword
//! guarantee, mentions written into the text, and every body kept under the size limit (a group split into
//! numbered parts, a lone oversized alert cut at a UTF-8 boundary). The target's channel turns title and
//! text into its protocol's body, which is what gets measured.

use std::collections::BTreeSet;
use std::path::Path;

use chrono::{DateTime, Utc};
use handlebars::Handlebars;

use super::context::{Group, context, plain, plain_title};
use super::helpers;
use super::layout::{self, Facts, Link};
use super::message::{Message, RenderError, Rendered, TemplateError, contains_token, new_uuid};
use super::ring::ring_of;
use super::summary::summarize;
use super::templates::{DEFAULT_SET, builtin, load_sets};
use crate::channel::{Content, Ring};
use crate::config::Target;
use crate::decode::{Decoded, Status};

const MAX_TITLE_CHARS: usize = 256;
/// Widest part label used while packing, so the real `(i/n)` never makes a part grow.
const PART_PLACEHOLDER: (usize, usize) = (999, 999);
/// Groups up to this many alerts are rendered whole first; bigger ones are sized from a sample.
const WHOLE_FIRST_UP_TO: usize = 64;
/// How many alerts the sample of a big group renders.
const SAMPLE_ALERTS: usize = 8;
/// Renders one part may try before settling for the largest count that fitted.
const MAX_PROBES: usize = 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source<'a> {
    /// The target's template set (user files where present, built-in files elsewhere).
    Set(&'a str),
    Builtin,
    /// Hard-coded text: the last resort if even the built-in templates fail on some payload.
    Plain,
}

pub struct Renderer {
    pub(super) hb: Handlebars<'static>,
    sets: BTreeSet<String>,
    pub(super) max_bytes: usize,
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
        for (kind, text) in builtin() {
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

struct Finished {
    keyword_inserted: bool,
    truncated: bool,
    message: Message,
}

impl Rendered {
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
