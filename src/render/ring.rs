//! Whom a notification's first message rings: the target's fixed mentions and the people its rules name,
//! each by the tool's identifier, within the tool's limit.

use super::message::Mentioned;
use crate::channel::Ring;
use crate::config::Target;
use crate::decode::{Decoded, Status};

/// The ring of a notification's first message: the target's fixed mentions, and the people its mention
/// rules name for the notification's alerts (all of them: later parts of a split group ring nobody), each
/// by this tool's identifier, within the tool's limit.
pub(super) fn ring_of(target: &Target, d: &Decoded) -> (Ring, Mentioned) {
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
