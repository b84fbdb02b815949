//! Receiver authentication: a bearer token or basic auth, compared in constant time.

use base64::Engine;
use hyper::Request;
use hyper::body::Incoming;
use hyper::header::AUTHORIZATION;

use crate::config::Auth;

/// Which credentials a route needs.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Notifications and admin actions: whenever auth is configured.
    Protected,
    Metrics,
    Health,
    /// The console checks its own users.
    Console,
}

/// Whether the request carries the configured credentials, if the route needs them.
pub fn authorized(auth: &Auth, access: Access, req: &Request<Incoming>) -> bool {
    let required = auth.enabled()
        && match access {
            Access::Protected => true,
            Access::Metrics => auth.protect_metrics,
            Access::Health => auth.protect_health,
            Access::Console => false,
        };
    if !required {
        return true;
    }
    let Some(header) = req.headers().get(AUTHORIZATION).and_then(|v| v.to_str().ok()) else { return false };
    let (scheme, value) = header.split_once(' ').unwrap_or((header, ""));
    let value = value.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        return auth.bearer_token.as_ref().is_some_and(|t| constant_time_eq(value.as_bytes(), t.expose().as_bytes()));
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let Some((user, password)) = auth.basic.as_ref() else { return false };
        let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(value) else { return false };
        let expected = format!("{user}:{}", password.expose());
        return constant_time_eq(&decoded, expected.as_bytes());
    }
    false
}

/// Equality whose time does not depend on where the inputs differ (nor, via hashing, on their lengths).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use sha2::{Digest, Sha256};
    let (ha, hb) = (Sha256::digest(a), Sha256::digest(b));
    ha.iter().zip(hb.iter()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
