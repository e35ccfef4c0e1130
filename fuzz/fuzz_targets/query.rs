//! The query language never panics or overflows the stack: whatever parses evaluates
//! against a twin and produces its rows (projected or aggregated), and the length and
//! nesting limits hold.
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
            "tags": {"floor": 3, "name": "x", "none": null, "zones": ["a", 1]},
            "properties": {"reported": {"temp": 21.5, "on": true}}
        });
        let hit = q.matches(&twin);
        if q.is_aggregate() {
            let _ = q.aggregate(&[twin, json!({})]);
        } else if hit {
            let _ = q.project(&twin);
        }
    }
});
