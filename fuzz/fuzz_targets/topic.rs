//! Topic, filter, username and property-bag parsers never panic, and anything that parses
//! formats back to text that parses equal.
#![no_main]

use hubtui::iothub::property_bag::PropertyBag;
use hubtui::iothub::topic::{
    ModuleInput, MqttUsername, parse_device_publish, parse_hub_publish, parse_subscription,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(v) = parse_device_publish(s) {
        assert_eq!(parse_device_publish(&v.to_topic()).as_ref(), Ok(&v), "{s:?}");
    }
    if let Ok(v) = parse_hub_publish(s) {
        assert_eq!(parse_hub_publish(&v.to_topic()).as_ref(), Ok(&v), "{s:?}");
    }
    if let Ok(v) = parse_subscription(s) {
        assert_eq!(parse_subscription(&v.to_filter()).as_ref(), Ok(&v), "{s:?}");
    }
    if let Ok(v) = ModuleInput::parse(s) {
        assert_eq!(ModuleInput::parse(&v.to_topic()).as_ref(), Ok(&v), "{s:?}");
    }
    if let Ok(v) = MqttUsername::parse(s) {
        assert_eq!(MqttUsername::parse(&v.format()).as_ref(), Ok(&v), "{s:?}");
    }
    if let Ok(v) = PropertyBag::parse(s) {
        assert_eq!(PropertyBag::parse(&v.format()).as_ref(), Ok(&v), "{s:?}");
    }
});
