//! SAS parsing never panics, round-trips, and verification is total.
#![no_main]

use hubtui::iothub::sas::{SasToken, resource_covers, verify_token};
use libfuzzer_sys::fuzz_target;

const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(t) = SasToken::parse(s) {
        assert_eq!(SasToken::parse(&t.to_string()).as_ref(), Ok(&t), "round trip of {s:?}");
        let _ = verify_token(&t, KEY, 0);
        let _ = resource_covers(&t.resource, &t.raw_resource);
    }
    if let Some((granted, requested)) = s.split_once('\n') {
        let _ = resource_covers(granted, requested);
    }
});
