//! dingtalk-bridge: carries Prometheus Alertmanager notifications into chat tools (DingTalk robots).
//!
//! An alert's path in two halves. Intake, in [`http::webhook`]: HTTP -> [`decode`] -> [`render`] ->
//! [`store`] -> wake the target's sender. Delivery, in [`deliver::sender`]: outbox -> budget -> storm
//! policy -> [`channel`] -> record. Everything a chat protocol means is behind [`channel::Channel`].
//! [`run`] starts both halves over one [`store`]; [`app`] holds what they share and reloads it; `main`
//! only parses arguments ([`cli`]).
#![forbid(unsafe_code)]

pub mod app;
pub mod channel;
pub mod cli;
pub mod clock;
pub mod config;
pub mod decode;
pub mod deliver;
pub mod http;
pub mod metrics;
pub mod people;
pub mod render;
pub mod route;
pub mod run;
pub mod secret;
pub mod shutdown;
pub mod store;
pub mod telemetry;

pub use app::RunError;
pub use run::{run, run_with_reload};
