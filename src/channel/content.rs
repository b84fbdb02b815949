//! What a protocol is handed to turn into a request body: a rendered message ([`Content`]), whom it rings
//! ([`Ring`]), and how bad it is ([`Level`]).

/// Whom one message rings, in its chat tool's own identifiers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ring {
    pub all: bool,
    pub mobiles: Vec<String>,
    pub user_ids: Vec<String>,
}

impl Ring {
    pub fn is_empty(&self) -> bool {
        !self.all && self.mobiles.is_empty() && self.user_ids.is_empty()
    }

    /// People rung (`@all` aside).
    pub fn people(&self) -> usize {
        self.mobiles.len() + self.user_ids.len()
    }

    /// Adds a person by `id`, once.
    pub fn add(&mut self, id: Ident<'_>) {
        let (list, id) = match id {
            Ident::Mobile(m) => (&mut self.mobiles, m),
            Ident::UserId(u) => (&mut self.user_ids, u),
        };
        if !list.iter().any(|x| x == id) {
            list.push(id.to_string());
        }
    }
}

/// How a chat tool names a person it rings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ident<'a> {
    Mobile(&'a str),
    UserId(&'a str),
}

/// A rendered message, before any protocol has turned it into a request body.
#[derive(Debug, Clone, Copy)]
pub struct Content<'a> {
    pub title: &'a str,
    pub text: &'a str,
    /// Whether any alert in it is firing (resolved-only messages need not ring anyone).
    pub firing: bool,
    /// Whom it rings, in this tool's identifiers (empty for later parts of a split group, and for
    /// messages that ring nobody).
    pub ring: &'a Ring,
    /// Buttons a card shows: title and http(s) URL (Alertmanager, Silence, Runbook).
    pub buttons: &'a [(&'a str, &'a str)],
    /// How bad the worst firing alert is (a card's colour).
    pub level: Level,
}

/// How bad an alert is, from its `severity` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    None,
    Info,
    Warning,
    Critical,
}

impl Level {
    pub fn of(severity: &str) -> Level {
        match severity.trim().to_lowercase().as_str() {
            "critical" | "crit" | "page" | "fatal" | "emergency" | "alert" | "error" | "high" | "p1" | "disaster"
            | "严重" | "紧急" => Level::Critical,
            "warning" | "warn" | "major" | "medium" | "average" | "p2" | "警告" => Level::Warning,
            "info" | "informational" | "notice" | "low" | "minor" | "p3" | "p4" | "提示" => Level::Info,
            _ => Level::None,
        }
    }
}
