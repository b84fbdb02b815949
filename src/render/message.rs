//! What rendering produces: request bodies ready to store ([`Message`]), what it had to do to get there
//! ([`Rendered`], [`Mentioned`]), and how a template can fail ([`TemplateError`], [`RenderError`]).

use super::summary::Summary;

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

impl Rendered {
    /// Appends another rendering of the same notification (one alert of a `split: per_alert` target).
    pub fn add(&mut self, other: Rendered) {
        self.messages.extend(other.messages);
        self.template_error = self.template_error.take().or(other.template_error);
        self.keyword_inserted += other.keyword_inserted;
        self.truncated += other.truncated;
        self.mentioned.add(other.mentioned);
    }
}

pub(super) fn new_uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// `@123` must not count as present because `@1234` is.
pub(super) fn contains_token(text: &str, token: &str) -> bool {
    text.match_indices(token).any(|(i, _)| {
        text[i + token.len()..].chars().next().is_none_or(|c| !(c.is_alphanumeric() || c == '_' || c == '-'))
    })
}
