//! Rendering: one accepted notification -> the request bodies that carry it. The renderer
//! ([`renderer`]) with its template sets ([`templates`]), the context templates see ([`context`]), whom a
//! message rings ([`ring`]), what it produces ([`message`]), a notification in one line ([`summary`]) and
//! storm digests ([`digest`]); the layout's knowledge of labels and groups ([`layout`], [`links`]), template
//! helpers ([`helpers`]), durations filled in at send time ([`send_time`]) and the phone model the layout
//! is measured against ([`phone`]). Tooling off the alert path (the preview page, the sample corpus and
//! the layout's budgets) is under [`tooling`].

pub mod context;
pub mod digest;
pub mod helpers;
pub mod layout;
pub mod links;
pub mod message;
pub mod phone;
pub mod renderer;
pub mod ring;
pub mod send_time;
pub mod summary;
pub mod templates;
pub mod tooling;

pub use layout::{Facts, Link};
pub use message::{Mentioned, Message, RenderError, Rendered, TemplateError};
pub use renderer::Renderer;
pub use summary::{Summary, summarize};
pub use templates::{DEFAULT_SET, kinds};
pub use tooling::{preview, samples};

#[cfg(test)]
mod tests;
