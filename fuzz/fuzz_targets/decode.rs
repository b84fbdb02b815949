//! Any bytes as a webhook body: the limits scan and the decoder answer with a value or an error, never a
//! panic, and a payload the scan lets through stays within the limits once decoded.
#![no_main]

use dingtalk_bridge::decode::{PayloadLimits, check, decode, scan};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| {
    let limits = PayloadLimits { max_alerts: 50, max_labels: 16, max_value_bytes: 256, max_fields: 400 };
    let Ok(shape) = scan(body, &limits) else { return };
    assert!(shape.fields <= limits.max_fields);
    if let Ok(d) = decode(body) {
        let _ = check(&d.notification, &limits);
        let _ = d.identity();
    }
});
