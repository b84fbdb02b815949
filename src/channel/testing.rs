//! Channels for unit tests elsewhere in the bridge, made through the registry as the configuration makes
//! them (so no test outside this folder names a protocol's types).

use std::any::Any;
use std::collections::BTreeMap;
use std::sync::Arc;

use super::keys::{Keys, Node, Setup};
use super::{Channel, PROTOCOLS};

#[derive(Default)]
struct TestSetup {
    problems: Vec<String>,
    sections: BTreeMap<(String, String), Arc<dyn Any + Send + Sync>>,
}

impl Setup for TestSetup {
    fn problem(&mut self, key: &str, message: String) {
        self.problems.push(format!("{key}: {message}"));
    }
    fn warn(&mut self, _key: &str, _message: String) {}
    fn expand(&mut self, _key: &str, value: &str) -> Option<String> {
        Some(value.to_string())
    }
    fn inline_or_file(&mut self, _key: &str, inline: Option<&str>, _file: Option<&str>) -> Option<String> {
        inline.map(str::to_string)
    }
    fn section(&self, section: &str, name: &str) -> Option<Arc<dyn Any + Send + Sync>> {
        self.sections.get(&(section.to_string(), name.to_string())).cloned()
    }
    fn section_names(&self, section: &str) -> Vec<String> {
        self.sections.keys().filter(|(s, _)| s == section).map(|(_, n)| n.clone()).collect()
    }
}

fn read_keys(path: &str, yaml: &str) -> Keys {
    match serde_saphyr::from_str::<Node>(yaml).expect("test YAML") {
        Node::Map(map, lines) => Keys::new(path, map, lines),
        _ => Keys::new(path, BTreeMap::new(), BTreeMap::new()),
    }
}

/// A channel of `kind` from its keys in YAML (`url: …\nmsgtype: text`); `sections`: entries of the
/// sections protocols own, as (section, name, YAML). Panics on any problem.
pub fn channel_in(kind: &str, sections: &[(&str, &str, &str)], yaml: &str) -> Channel {
    let mut setup = TestSetup::default();
    for (section, name, entry) in sections {
        let owner = PROTOCOLS.iter().filter_map(|k| k.section.as_ref()).find(|s| s.key == *section).expect("a section");
        let mut keys = read_keys(&format!("{section}.{name}"), entry);
        let made = (owner.configure)(&mut keys, &mut setup).expect("a section entry");
        setup.sections.insert((section.to_string(), name.to_string()), made);
    }
    let k = super::kind(kind).expect("a protocol");
    let mut keys = read_keys("targets.t", yaml);
    let channel = (k.configure)(&mut keys, &mut setup);
    keys.finish(&mut setup, &format!("a {kind} target"), &|k| Some(super::owners_of(k)));
    assert!(setup.problems.is_empty(), "{:?}", setup.problems);
    channel.expect("a channel")
}

/// A channel of `kind` from its keys in YAML.
pub fn channel(kind: &str, yaml: &str) -> Channel {
    channel_in(kind, &[], yaml)
}
