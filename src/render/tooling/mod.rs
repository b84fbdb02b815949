//! Tooling off the alert path: the preview page (a rendered message as a phone shows it), the sample
//! corpus it and the tests draw from, and the layout's budgets checked over that corpus.

pub mod preview;
pub mod samples;

#[cfg(test)]
mod budgets;
