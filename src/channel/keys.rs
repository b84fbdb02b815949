//! How a protocol reads its own configuration keys. The configuration hands each target's keys that are
//! not common to every target (and each section a protocol owns, such as `dingtalk_apps`) over as a
//! [`Keys`] tree; the protocol reads them by name, and every problem names its key. A key the protocol
//! did not read is reported as not one of its keys. [`Setup`] is what the configuration offers while it
//! is read: problems and warnings, `${VAR}` expansion, values from files.

use std::any::Any;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

/// A YAML value as written. Scalars keep their text: a protocol reads a number or a switch from it
/// where it wants one (an unquoted `13800000000` is the text `13800000000`).
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    Null,
    Bool(bool),
    Text(String),
    List(Vec<Node>),
    /// Keys and their values, and the line each key is on (for messages).
    Map(BTreeMap<String, Node>, Lines),
}

/// The line of the file each key of a map is on.
pub type Lines = BTreeMap<String, u64>;

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Node, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Node;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a YAML value")
            }
            fn visit_bool<E>(self, v: bool) -> Result<Node, E> {
                Ok(Node::Bool(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Node, E> {
                Ok(Node::Text(v.to_string()))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Node, E> {
                Ok(Node::Text(v.to_string()))
            }
            fn visit_i128<E>(self, v: i128) -> Result<Node, E> {
                Ok(Node::Text(v.to_string()))
            }
            fn visit_u128<E>(self, v: u128) -> Result<Node, E> {
                Ok(Node::Text(v.to_string()))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Node, E> {
                Ok(Node::Text(v.to_string()))
            }
            fn visit_str<E>(self, v: &str) -> Result<Node, E> {
                Ok(Node::Text(v.to_string()))
            }
            fn visit_string<E>(self, v: String) -> Result<Node, E> {
                Ok(Node::Text(v))
            }
            fn visit_none<E>(self) -> Result<Node, E> {
                Ok(Node::Null)
            }
            fn visit_unit<E>(self) -> Result<Node, E> {
                Ok(Node::Null)
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Node, D::Error> {
                Node::deserialize(d)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
                let mut items = vec![];
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(Node::List(items))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
                let (mut items, mut lines) = (BTreeMap::new(), Lines::new());
                while let Some(k) = map.next_key::<serde_saphyr::Spanned<Node>>()? {
                    let key = match k.value {
                        Node::Text(t) => t,
                        Node::Bool(b) => b.to_string(),
                        _ => return Err(de::Error::custom("a key must be a scalar")),
                    };
                    if k.referenced.line() > 0 {
                        lines.insert(key.clone(), k.referenced.line());
                    }
                    items.insert(key, map.next_value()?);
                }
                Ok(Node::Map(items, lines))
            }
        }
        d.deserialize_any(V)
    }
}

/// What the configuration offers a protocol while it reads its keys.
pub trait Setup {
    /// Something wrong at `key`: the configuration is refused.
    fn problem(&mut self, key: &str, message: String);
    /// Something that works but is probably not meant.
    fn warn(&mut self, key: &str, message: String);
    /// `${VAR}`s expanded (a problem at `key` if one is not set).
    fn expand(&mut self, key: &str, value: &str) -> Option<String>;
    /// A value given inline (`key`) or in a file (`key_file`), exactly one of them, expanded.
    fn inline_or_file(&mut self, key: &str, inline: Option<&str>, file: Option<&str>) -> Option<String>;
    /// An entry of a section a protocol owns (an app under `dingtalk_apps`), as that protocol made it.
    fn section(&self, section: &str, name: &str) -> Option<Arc<dyn Any + Send + Sync>>;
    /// The names under a section, for a message that lists them.
    fn section_names(&self, section: &str) -> Vec<String>;
}

/// One target's (or section entry's) keys, read by name. `path` prefixes every key in a message.
pub struct Keys {
    path: String,
    map: BTreeMap<String, Node>,
    lines: Lines,
    read: BTreeSet<String>,
    /// Keys below this one that were not read: reported by [`finish`](Self::finish).
    unread: Vec<(String, Option<u64>)>,
}

impl Keys {
    pub fn new(path: &str, map: BTreeMap<String, Node>, lines: Lines) -> Keys {
        Keys { path: path.to_string(), map, lines, read: BTreeSet::new(), unread: vec![] }
    }

    /// `path.name`, for messages.
    pub fn key(&self, name: &str) -> String {
        format!("{}.{name}", self.path)
    }

    /// The path of these keys (`targets.ops`).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Whether any key is set.
    pub fn any(&self) -> bool {
        self.map.values().any(|n| *n != Node::Null)
    }

    /// Whether `name` is set (without reading it).
    pub fn has(&self, name: &str) -> bool {
        self.map.get(name).is_some_and(|n| *n != Node::Null)
    }

    fn take(&mut self, name: &str) -> Option<&Node> {
        self.read.insert(name.to_string());
        self.map.get(name).filter(|n| **n != Node::Null)
    }

    /// A text value as written (not expanded).
    pub fn text(&mut self, setup: &mut dyn Setup, name: &str) -> Option<String> {
        match self.take(name)? {
            Node::Text(t) => Some(t.clone()),
            Node::Bool(b) => Some(b.to_string()),
            _ => {
                setup.problem(&self.key(name), "expected a single value".into());
                None
            }
        }
    }

    /// A text value with its `${VAR}`s expanded.
    pub fn expanded(&mut self, setup: &mut dyn Setup, name: &str) -> Option<String> {
        let raw = self.text(setup, name)?;
        setup.expand(&self.key(name), &raw)
    }

    /// A value inline (`name`) or from a file (`name_file`), exactly one of them.
    pub fn inline_or_file(&mut self, setup: &mut dyn Setup, name: &str) -> Option<String> {
        let file_key = format!("{name}_file");
        let inline = self.text(setup, name);
        let file = self.text(setup, &file_key);
        setup.inline_or_file(&self.key(name), inline.as_deref(), file.as_deref())
    }

    /// A list of text values, each expanded (a problem names the item).
    pub fn list(&mut self, setup: &mut dyn Setup, name: &str) -> Vec<String> {
        let key = self.key(name);
        match self.take(name) {
            None => vec![],
            Some(Node::List(items)) => {
                let items = items.clone();
                items
                    .iter()
                    .enumerate()
                    .filter_map(|(i, item)| match item {
                        Node::Text(t) => setup.expand(&format!("{key}[{i}]"), t),
                        _ => {
                            setup.problem(&format!("{key}[{i}]"), "expected a single value".into());
                            None
                        }
                    })
                    .collect()
            }
            Some(_) => {
                setup.problem(&key, "expected a list".into());
                vec![]
            }
        }
    }

    /// A switch (`true`/`false`); `false` when not set.
    pub fn flag(&mut self, setup: &mut dyn Setup, name: &str) -> bool {
        let key = self.key(name);
        match self.take(name) {
            None => false,
            Some(Node::Bool(b)) => *b,
            Some(Node::Text(t)) if matches!(t.as_str(), "true" | "yes" | "on") => true,
            Some(Node::Text(t)) if matches!(t.as_str(), "false" | "no" | "off") => false,
            Some(_) => {
                setup.problem(&key, "expected true or false".into());
                false
            }
        }
    }

    /// A whole number.
    pub fn number(&mut self, setup: &mut dyn Setup, name: &str) -> Option<usize> {
        let key = self.key(name);
        let raw = self.text(setup, name)?;
        raw.parse().map_err(|_| setup.problem(&key, "expected a whole number".into())).ok()
    }

    /// `msgtype`: one of `choices` (as written, and its value); the first when not set. `what` names the
    /// target's kind in the problem (`a feishu target`).
    pub fn msgtype<T: Copy>(&mut self, setup: &mut dyn Setup, what: &str, choices: &[(&str, T)]) -> T {
        let name = "msgtype";
        let Some(raw) = self.text(setup, name) else { return choices[0].1 };
        match choices.iter().find(|(w, _)| *w == raw) {
            Some((_, v)) => *v,
            None => {
                let expected: Vec<&str> = choices.iter().map(|c| c.0).collect();
                setup.problem(
                    &self.key(name),
                    format!("unsupported message type for {what}; expected {}", expected.join(", ")),
                );
                choices[0].1
            }
        }
    }

    /// The keys under `name` (a map), read on their own; their unread keys are reported with these.
    pub fn sub(&mut self, setup: &mut dyn Setup, name: &str, read: impl FnOnce(&mut Keys, &mut dyn Setup)) {
        let key = self.key(name);
        let (map, lines) = match self.take(name) {
            None => Default::default(),
            Some(Node::Map(m, l)) => (m.clone(), l.clone()),
            Some(_) => {
                setup.problem(&key, "expected keys under it".into());
                return;
            }
        };
        let mut sub = Keys::new(&key, map, lines);
        read(&mut sub, setup);
        self.unread.extend(sub.unread_keys());
    }

    /// The keys set but not read, by their whole path, with their line.
    fn unread_keys(&self) -> Vec<(String, Option<u64>)> {
        let mut out: Vec<(String, Option<u64>)> = self
            .map
            .keys()
            .filter(|k| !self.read.contains(*k))
            .map(|k| (self.key(k), self.lines.get(k).copied()))
            .collect();
        out.extend(self.unread.iter().cloned());
        out
    }

    /// Reports every key that was set but not read as not one of `what`'s keys (`a wecom target`), naming
    /// the protocols that have it (`owners`; `None`: not to be reported).
    pub fn finish(self, setup: &mut dyn Setup, what: &str, owners: &dyn Fn(&str) -> Option<Vec<&'static str>>) {
        for (key, line) in self.unread_keys() {
            let relative = key.strip_prefix(&format!("{}.", self.root())).unwrap_or(&key).to_string();
            let Some(owners) = owners(&relative) else { continue };
            let mut message = if owners.is_empty() {
                let name = relative.rsplit('.').next().unwrap_or(&relative);
                format!("unknown field `{name}`: not a key of {what}")
            } else {
                format!("not a key of {what} (it belongs to type: {})", owners.join(", "))
            };
            if let Some(line) = line {
                message.push_str(&format!(" (line {line})"));
            }
            setup.problem(&key, message);
        }
    }

    /// `targets.<name>` of `targets.<name>.mention`.
    fn root(&self) -> String {
        self.path.splitn(3, '.').take(2).collect::<Vec<_>>().join(".")
    }
}

/// A target's webhook URL (`url` or `url_file`): an http(s) URL with a host, plain http warned about.
/// It holds `credential`, so no message echoes it.
pub fn webhook_url(keys: &mut Keys, setup: &mut dyn Setup, missing: &str, credential: &str) -> Option<String> {
    let key = keys.key("url");
    let given = keys.has("url") || keys.has("url_file");
    let url = keys.inline_or_file(setup, "url");
    let Some(url) = url else {
        if !given {
            setup.problem(&key, missing.to_string());
        }
        return None;
    };
    check_url(setup, &key, &url, credential);
    Some(url)
}

/// An http(s) URL with a host; plain http warned about. The value is never shown: it may hold `credential`.
pub fn check_url(setup: &mut dyn Setup, key: &str, url: &str, credential: &str) {
    match reqwest::Url::parse(url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {
            if u.scheme() == "http" {
                setup.warn(
                    key,
                    format!("plain http: the {credential} travels unencrypted (fine for tests on loopback)"),
                );
            }
        }
        _ => setup.problem(key, format!("not an http(s) URL with a host (value not shown: it holds the {credential})")),
    }
}

/// A URL whose host is another chat tool's draws a warning (the type is never guessed from it).
pub fn warn_if_other_tool(setup: &mut dyn Setup, keys: &Keys, kind: &str) {
    let url = match keys.map.get("url") {
        Some(Node::Text(u)) => u,
        _ => return,
    };
    let Some(host) = reqwest::Url::parse(url).ok().and_then(|u| u.host_str().map(str::to_string)) else {
        return;
    };
    let key = keys.path();
    let looks = super::PROTOCOLS
        .iter()
        .find(|p| p.hosts.iter().any(|h| host == *h || host.ends_with(&format!(".{h}"))))
        .map(|p| p.name);
    if let Some(looks) = looks
        && looks != kind
    {
        setup.warn(
            &format!("{key}.url"),
            format!(
                "the URL looks like a {looks} webhook, but the target's type is {kind}: set type: {looks} if it is one"
            ),
        );
    }
}
