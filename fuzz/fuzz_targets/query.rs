//! The query language never panics or overflows the stack: whatever parses evaluates
//! against a twin, and the length and nesting limits hold.
#![no_main]

use hubtui::iothub::query::{MAX_QUERY_CHARS, parse_query};
use libfuzzer_sys::fuzz_target;
use serde_json::json;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(q) = parse_query(s) {
        assert!(s.chars().count() <= MAX_QUERY_CHARS, "{s:?}");
        let twin = json!({
            "deviceId": "d", "status": "enabled",
            "tags": {"floor": 3, "name": "x", "none": null},
            "properties": {"reported": {"temp": 21.5, "on": true}}
        });
        let _ = q.matches(&twin);
    }
});
