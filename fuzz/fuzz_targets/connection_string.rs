//! Every connection string that parses must format back to one that parses equal.
#![no_main]

use hubtui::iothub::connection_string::ConnectionString;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(c) = ConnectionString::parse(s) {
        let again = ConnectionString::parse(&c.to_string());
        assert_eq!(again.as_ref(), Ok(&c), "round trip of {s:?}");
        let _ = c.masked();
    }
});
