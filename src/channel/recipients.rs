//! Whom one stored message goes to, for protocols that name recipients per call (app robots): typed here,
//! turned into text only inside the store. Webhook bots post to their group and carry none.

use serde::{Deserialize, Serialize};

/// Who one stored message goes to: some users (one call), or one group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Recipients {
    Users(Vec<String>),
    /// A group chat, by the tool's id for it.
    #[serde(alias = "chat")]
    Conversation(String),
}

impl Recipients {
    /// How many recipients: users, or the one group.
    pub fn count(&self) -> usize {
        match self {
            Recipients::Users(u) => u.len(),
            Recipients::Conversation(_) => 1,
        }
    }

    /// Whether a message to `self` and one to `other` reach someone in common, so must arrive in order.
    pub fn meets(&self, other: &Recipients) -> bool {
        match (self, other) {
            (Recipients::Users(a), Recipients::Users(b)) => a.iter().any(|u| b.contains(u)),
            (Recipients::Conversation(a), Recipients::Conversation(b)) => a == b,
            _ => false,
        }
    }
}

/// One stored message's recipients: whom it is still to reach, and what became of the others.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    pub to: Recipients,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub delivered: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failed: Vec<String>,
}

impl Delivery {
    pub fn new(to: Recipients) -> Delivery {
        Delivery { to, delivered: vec![], failed: vec![] }
    }

    /// The store's column read back; `None` for an empty or unreadable one.
    pub fn from_column(column: Option<&str>) -> Option<Delivery> {
        column.and_then(|c| serde_json::from_str(c).ok())
    }

    /// The store's column.
    pub fn to_column(&self) -> String {
        serde_json::to_string(self).expect("a delivery serializes")
    }

    /// Narrowed to `retry` (the users a partial answer left for later), having recorded the others.
    pub fn narrowed(mut self, reached: Vec<String>, failed: Vec<String>, retry: Vec<String>) -> Delivery {
        self.delivered.extend(reached);
        self.failed.extend(failed);
        if !retry.is_empty() {
            self.to = Recipients::Users(retry);
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_column_keeps_the_shape_stored_by_earlier_versions() {
        let d = Delivery::new(Recipients::Conversation("cidA==".into()));
        assert_eq!(d.to_column(), r#"{"to":{"conversation":"cidA=="}}"#);
        let read = Delivery::from_column(Some(r#"{"to":{"users":["a","b"]},"delivered":["c"]}"#)).unwrap();
        assert_eq!(read.to, Recipients::Users(vec!["a".into(), "b".into()]));
        assert_eq!(read.delivered, ["c"]);
        assert!(Delivery::from_column(Some("not json")).is_none() && Delivery::from_column(None).is_none());
        let n = read.narrowed(vec!["a".into()], vec![], vec!["b".into()]);
        assert_eq!((n.to, n.delivered), (Recipients::Users(vec!["b".into()]), vec!["c".into(), "a".into()]));
    }
}
