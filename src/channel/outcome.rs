//! What became of one attempt ([`Outcome`]) and why it did not deliver ([`Reason`]): transport trouble any
//! protocol can meet, or a protocol's own reason ([`ToolReason`], which each protocol's bounded enum turns
//! into). The sender acts on these without knowing the protocol.

use std::time::Duration;

/// What became of one attempt, in terms every protocol shares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Delivered,
    /// Posted, but not to every recipient (protocols that name recipients per call): `reached` got it,
    /// `failed` never will (for `reason`), `retry` might later and get it again, alone. The sender keeps
    /// each list with the message, as Vector's `RetryPartial`.
    Partial(Box<Partial>),
    /// Try again after a backoff.
    Retry {
        reason: Reason,
        detail: String,
    },
    /// The receiver says this endpoint sends too fast: pause it (for `retry_after` if the protocol says,
    /// else the protocol's own pause), then resend.
    Throttled {
        detail: String,
        retry_after: Option<Duration>,
    },
    /// Give the message up.
    Failed {
        reason: Reason,
        detail: String,
    },
}

/// What a partial outcome says of the recipients of one call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partial {
    pub reached: Vec<String>,
    pub failed: Vec<String>,
    pub retry: Vec<String>,
    /// Why `failed` never will get it.
    pub reason: Reason,
    pub detail: String,
}

/// An attempt's outcome as its record keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptOutcome {
    Delivered,
    Partial,
    Retry,
    Throttled,
    Failed,
}

impl AttemptOutcome {
    pub const ALL: [AttemptOutcome; 5] = [
        AttemptOutcome::Delivered,
        AttemptOutcome::Partial,
        AttemptOutcome::Retry,
        AttemptOutcome::Throttled,
        AttemptOutcome::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AttemptOutcome::Delivered => "delivered",
            AttemptOutcome::Partial => "partial",
            AttemptOutcome::Retry => "retry",
            AttemptOutcome::Throttled => "throttled",
            AttemptOutcome::Failed => "failed",
        }
    }

    /// A stored label read back.
    pub fn parse(label: &str) -> Option<AttemptOutcome> {
        AttemptOutcome::ALL.into_iter().find(|o| o.as_str() == label)
    }
}

impl Outcome {
    /// For an attempt's record: what happened, its reason, and what the receiver said.
    pub fn summary(&self) -> (AttemptOutcome, Option<Reason>, &str) {
        match self {
            Outcome::Delivered => (AttemptOutcome::Delivered, None, ""),
            Outcome::Partial(p) => (AttemptOutcome::Partial, Some(p.reason), &p.detail),
            Outcome::Retry { reason, detail } => (AttemptOutcome::Retry, Some(*reason), detail),
            Outcome::Throttled { detail, .. } => (AttemptOutcome::Throttled, Some(Reason::Throttled), detail),
            Outcome::Failed { reason, detail } => (AttemptOutcome::Failed, Some(*reason), detail),
        }
    }

    /// The same outcome with its detail passed through `f` (to take out what must not be logged).
    pub fn map_detail(self, f: impl Fn(&str) -> String) -> Outcome {
        match self {
            Outcome::Delivered => Outcome::Delivered,
            Outcome::Partial(mut p) => {
                p.detail = f(&p.detail);
                Outcome::Partial(p)
            }
            Outcome::Retry { reason, detail } => Outcome::Retry { reason, detail: f(&detail) },
            Outcome::Throttled { detail, retry_after } => Outcome::Throttled { detail: f(&detail), retry_after },
            Outcome::Failed { reason, detail } => Outcome::Failed { reason, detail: f(&detail) },
        }
    }
}

/// A protocol's own reason: its label (a metric label value, bounded by the protocol's enum) and what a
/// user should do about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ToolReason {
    pub label: &'static str,
    pub hint: &'static str,
}

/// Why an attempt did not deliver: transport trouble any protocol can meet, or the protocol's own
/// reason. Bounded: [`as_str`](Self::as_str) values are metric labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// The connection was refused or could not be made: nothing was posted.
    Connect,
    /// The connection broke after the request left: it may have been posted.
    Network,
    /// No answer in time: it may have been posted.
    Timeout,
    Http5xx,
    Http429,
    /// An HTTP client error other than 429: the URL is wrong.
    HttpStatus,
    /// The endpoint answered with a redirect, which is never followed: nothing was delivered.
    Redirect,
    /// An answer that is not the protocol's (an HTML page, a proxy).
    BadResponse,
    Throttled,
    /// A protocol's own reason.
    Tool(ToolReason),
}

impl Reason {
    /// The reasons every protocol shares.
    pub const COMMON: [Reason; 9] = [
        Reason::Connect,
        Reason::Network,
        Reason::Timeout,
        Reason::Http5xx,
        Reason::Http429,
        Reason::HttpStatus,
        Reason::Redirect,
        Reason::BadResponse,
        Reason::Throttled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Connect => "connect",
            Reason::Network => "network",
            Reason::Timeout => "timeout",
            Reason::Http5xx => "http_5xx",
            Reason::Http429 => "http_429",
            Reason::HttpStatus => "http_status",
            Reason::Redirect => "redirect",
            Reason::BadResponse => "bad_response",
            Reason::Throttled => "throttled",
            Reason::Tool(r) => r.label,
        }
    }

    /// Whether the receiver may have posted a message whose attempt failed this way (no answer came back).
    pub fn in_doubt(self) -> bool {
        matches!(self, Reason::Network | Reason::Timeout)
    }

    /// The reason a stored label names, if any protocol has it.
    pub fn parse(label: &str) -> Option<Reason> {
        Reason::COMMON
            .into_iter()
            .chain(super::PROTOCOLS.iter().flat_map(|p| (p.reasons)()))
            .find(|r| r.as_str() == label)
    }

    /// What a user should do about a permanent failure; shown in logs.
    pub fn hint(self) -> &'static str {
        match self {
            Reason::HttpStatus => "the URL answered with an HTTP client error: check targets.<name>.url",
            Reason::Redirect => {
                "the URL answered with a redirect, which the bridge never follows (it would post the message and its credentials elsewhere): set targets.<name>.url to the chat service's own address"
            }
            Reason::Tool(r) => r.hint,
            _ => "transient",
        }
    }
}

/// Each protocol's reason enum converts with `Reason::from` through this.
#[macro_export]
macro_rules! tool_reasons {
    ($t:ty) => {
        impl From<$t> for $crate::channel::Reason {
            fn from(r: $t) -> $crate::channel::Reason {
                $crate::channel::Reason::Tool($crate::channel::ToolReason { label: r.as_str(), hint: r.hint() })
            }
        }

        impl $t {
            /// Every reason, as the bridge's common type (to read a stored label back).
            pub fn all() -> Vec<$crate::channel::Reason> {
                <$t>::ALL.into_iter().map($crate::channel::Reason::from).collect()
            }
        }
    };
}

/// A send budget: at most `messages` in any window of `per`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub messages: u32,
    pub per: Duration,
}

impl RateLimit {
    /// No budget at all (`rate_limit: off`).
    pub const UNLIMITED: RateLimit = RateLimit { messages: u32::MAX, per: Duration::from_secs(1) };

    pub fn is_unlimited(self) -> bool {
        self.messages == u32::MAX
    }
}

impl serde::Serialize for AttemptOutcome {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl serde::Serialize for Reason {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}
