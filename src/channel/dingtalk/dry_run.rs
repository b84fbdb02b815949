//! The dry-run channel: renders exactly what a DingTalk robot would be posted, logs the body and sends
//! nothing (`dry_run: true` on a dingtalk target, for trying the bridge without a robot).

use tracing::info;

use super::Format;
use crate::channel::{BoxFuture, Caps, Content, Ident, Outcome, Protocol, Request, Ring, Sent, Shown};
use crate::people::Person;

/// A target without a receiving end; its bodies are in DingTalk's format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DryRun {
    pub format: Format,
}

impl Protocol for DryRun {
    fn caps(&self) -> Caps {
        Caps { name: "dry_run", sends_requests: false, ..self.format.caps() }
    }
    fn fixed_ring(&self, firing: bool) -> Ring {
        self.format.fixed(firing)
    }
    fn person<'p>(&self, p: &'p Person) -> Option<Ident<'p>> {
        super::person(p)
    }
    fn mention_tokens(&self, ring: &Ring) -> Vec<String> {
        Format::mention_tokens(ring)
    }
    fn body(&self, content: &Content, uuid: &str) -> String {
        self.format.body(content, uuid)
    }
    fn endpoint(&self, target: &str) -> String {
        format!("dry-run:{target}")
    }
    fn describe(&self) -> String {
        "dry run (bodies are logged, not sent)".to_string()
    }
    fn show(&self, body: &str) -> Option<Shown> {
        super::show::show(body)
    }
    fn send<'a>(&'a self, req: Request<'a>) -> BoxFuture<'a, Sent> {
        info!(
            target = req.target,
            msg_uuid = req.msg_uuid,
            body = req.body,
            "dry run: would send this body to DingTalk"
        );
        Box::pin(async { Sent { outcome: Outcome::Delivered, status: None } })
    }
}
