//! The property bag at the end of telemetry and C2D topics (`k1=v1&k2&%24.mid=..`).
//! Stored decoded; system properties keep their `$.` prefix. Parsing is lenient about what the
//! SDKs really send (raw `$.`, unencoded C SDK values, a trailing `/`), formatting is canonical.

use super::encoding::{url_decode, url_encode};

/// Prefix of system property keys (decoded form).
pub const SYSTEM_PREFIX: &str = "$.";

pub const MESSAGE_ID: &str = "$.mid";
pub const CORRELATION_ID: &str = "$.cid";
pub const USER_ID: &str = "$.uid";
pub const CONTENT_TYPE: &str = "$.ct";
pub const CONTENT_ENCODING: &str = "$.ce";
/// Absolute expiry (ISO-8601 from Python/Node).
pub const EXPIRY_TIME: &str = "$.exp";
/// Destination; present on C2D delivered to the device.
pub const TO: &str = "$.to";
/// Module output name.
pub const OUTPUT_NAME: &str = "$.on";
pub const INTERFACE_ID: &str = "$.ifid";
/// IoT Plug and Play component name (`dt-subject` on the routed message).
pub const COMPONENT_NAME: &str = "$.sub";
/// Creation time (C SDK).
pub const CREATION_TIME: &str = "$.ctime";
pub const DIAGNOSTIC_ID: &str = "$.diagid";
pub const DIAGNOSTIC_CONTEXT: &str = "$.diagctx";
pub const CONNECTION_DEVICE_ID: &str = "$.cdid";
pub const CONNECTION_MODULE_ID: &str = "$.cmid";
/// Application property carrying C2D feedback mode (`none`, `positive`, `negative`, `full`).
pub const IOTHUB_ACK: &str = "iothub-ack";
/// Application property with the device's creation time (UTC, no offset).
pub const IOTHUB_CREATION_TIME_UTC: &str = "iothub-creation-time-utc";
/// Application property the hub adds to telemetry published with RETAIN=1.
pub const MQTT_RETAIN: &str = "mqtt-retain";

/// Why a property bag was rejected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PropertyBagError {
    #[error("the property bag has an entry with an empty name at byte {position}")]
    EmptyKey { position: usize },
}

/// Ordered key/value list; keys and values stored DECODED. System keys keep their "$." prefix
/// ("$.mid"). A value of None means the bare `key` form (no '=').
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PropertyBag {
    pub entries: Vec<(String, Option<String>)>,
}

impl PropertyBag {
    /// Accepts "$." and "%24.", encoded or raw, trailing '/', empty.
    pub fn parse(bag: &str) -> Result<Self, PropertyBagError> {
        // Node adds one '/' after module output bags.
        let bag = bag.strip_suffix('/').unwrap_or(bag);
        let mut entries = Vec::new();
        let mut offset = 0;
        for part in bag.split('&') {
            let position = offset;
            offset += part.len() + 1;
            // Tolerate "a=1&&b=2" and a trailing '&'.
            if part.is_empty() {
                continue;
            }
            let (key, value) = match part.split_once('=') {
                Some((k, v)) => (k, Some(v)),
                None => (part, None),
            };
            if key.is_empty() {
                return Err(PropertyBagError::EmptyKey { position });
            }
            entries.push((lenient_decode(key), value.map(lenient_decode)));
        }
        Ok(Self { entries })
    }

    /// System keys as "%24.xxx", everything url_encode'd; "" for an empty bag.
    pub fn format(&self) -> String {
        let mut out = String::new();
        for (i, (key, value)) in self.entries.iter().enumerate() {
            if i > 0 {
                out.push('&');
            }
            out.push_str(&url_encode(key));
            if let Some(v) = value {
                out.push('=');
                out.push_str(&url_encode(v));
            }
        }
        out
    }

    /// First value for `key`; None if absent or bare.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|(k, _)| k == key)
            .and_then(|(_, v)| v.as_deref())
    }

    /// Does the bag have `key` at all (bare keys included)?
    pub fn contains(&self, key: &str) -> bool {
        self.entries.iter().any(|(k, _)| k == key)
    }

    /// system("mid") == get("$.mid")
    pub fn system(&self, name: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|(k, _)| k.strip_prefix(SYSTEM_PREFIX) == Some(name))
            .and_then(|(_, v)| v.as_deref())
    }

    /// Entries whose key does not start with "$.".
    pub fn application(&self) -> impl Iterator<Item = (&str, Option<&str>)> {
        self.entries
            .iter()
            .filter(|(k, _)| !k.starts_with(SYSTEM_PREFIX))
            .map(|(k, v)| (k.as_str(), v.as_deref()))
    }

    /// Replaces the first entry for `key` or appends one.
    pub fn set(&mut self, key: &str, value: Option<String>) {
        match self.entries.iter_mut().find(|(k, _)| k == key) {
            Some(entry) => entry.1 = value,
            None => self.entries.push((key.to_owned(), value)),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// What the properties add to a message's size as Azure counts it: the values of system
    /// properties, the names and values of application properties (decoded bytes).
    pub fn counted_bytes(&self) -> usize {
        self.entries
            .iter()
            .map(|(k, v)| {
                let value = v.as_deref().map_or(0, str::len);
                if k.starts_with(SYSTEM_PREFIX) {
                    value
                } else {
                    k.len() + value
                }
            })
            .sum()
    }
}

/// The C SDK sends user values unencoded by default, so "50%" is a value, not an error.
fn lenient_decode(s: &str) -> String {
    url_decode(s).unwrap_or_else(|_| s.to_owned())
}

#[cfg(test)]
mod tests {
    #[test]
    fn counted_bytes_are_system_values_and_application_names_and_values() {
        let bag = PropertyBag::parse("%24.mid=abc&%24.ct=application%2Fjson&k=v%20w&flag").unwrap();
        // "abc" + "application/json" + "k" + "v w" + "flag"
        assert_eq!(bag.counted_bytes(), 3 + 16 + 1 + 3 + 4);
        assert_eq!(PropertyBag::default().counted_bytes(), 0);
    }

    use super::*;
    use crate::test_rng::XorShift;

    fn entries(bag: &PropertyBag) -> Vec<(&str, Option<&str>)> {
        bag.entries
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_deref()))
            .collect()
    }

    #[test]
    fn parses_portal_c2d_bag() {
        let bag = PropertyBag::parse("%24.to=%2Fdevices%2Fnonsdkdevice%2Fmessages%2FdeviceBound&%24.ct=text%2Fplain%3B%20charset%3DUTF-8&%24.ce=utf-8&bbb=bbbb&aaa=aaaa").unwrap();
        assert_eq!(
            entries(&bag),
            vec![
                ("$.to", Some("/devices/nonsdkdevice/messages/deviceBound")),
                ("$.ct", Some("text/plain; charset=UTF-8")),
                ("$.ce", Some("utf-8")),
                ("bbb", Some("bbbb")),
                ("aaa", Some("aaaa")),
            ]
        );
        assert_eq!(bag.system("ct"), Some("text/plain; charset=UTF-8"));
        assert_eq!(bag.get(CONTENT_ENCODING), Some("utf-8"));
        assert_eq!(
            bag.application().collect::<Vec<_>>(),
            vec![("bbb", Some("bbbb")), ("aaa", Some("aaaa"))]
        );
        assert_eq!(
            bag.format(),
            "%24.to=%2Fdevices%2Fnonsdkdevice%2Fmessages%2FdeviceBound&%24.ct=text%2Fplain%3B%20charset%3DUTF-8&%24.ce=utf-8&bbb=bbbb&aaa=aaaa"
        );
    }

    #[test]
    fn parses_c_sdk_vector_with_bare_keys() {
        let bag = PropertyBag::parse("iothub-ack=Full&propName=PropValue&DeviceInfo=smokeTest&%24.to=%2Fdevices%2FmyDeviceId%2Fmessages%2FdeviceBound&%24.cid&%24.uid").unwrap();
        assert_eq!(bag.get(IOTHUB_ACK), Some("Full"));
        assert_eq!(
            bag.system("to"),
            Some("/devices/myDeviceId/messages/deviceBound")
        );
        assert!(bag.contains(CORRELATION_ID));
        assert_eq!(bag.get(CORRELATION_ID), None);
        assert_eq!(bag.entries[4], ("$.cid".to_owned(), None));
        assert_eq!(bag.entries[5], ("$.uid".to_owned(), None));
        assert!(bag.format().ends_with("&%24.cid&%24.uid"));
    }

    #[test]
    fn raw_dollar_prefix_and_raw_c_values() {
        let raw = PropertyBag::parse("$.ct=application/json&$.ce=utf-8&temp=50%&a+b=c d").unwrap();
        assert_eq!(
            entries(&raw),
            vec![
                ("$.ct", Some("application/json")),
                ("$.ce", Some("utf-8")),
                ("temp", Some("50%")),
                ("a+b", Some("c d")),
            ]
        );
        let encoded = PropertyBag::parse("%24.ct=application%2Fjson&%24.ce=utf-8").unwrap();
        assert_eq!(encoded.system("ct"), raw.system("ct"));
        assert_eq!(
            raw.format(),
            "%24.ct=application%2Fjson&%24.ce=utf-8&temp=50%25&a%2Bb=c%20d"
        );
        assert_eq!(PropertyBag::parse(&raw.format()).unwrap(), raw);
    }

    #[test]
    fn empty_values_trailing_slash_and_empty_bag() {
        let bag = PropertyBag::parse("k=&j&%24.on=out1/").unwrap();
        assert_eq!(
            entries(&bag),
            vec![("k", Some("")), ("j", None), ("$.on", Some("out1"))]
        );
        assert_eq!(bag.format(), "k=&j&%24.on=out1");
        assert_eq!(PropertyBag::parse("").unwrap(), PropertyBag::default());
        assert_eq!(PropertyBag::parse("/").unwrap(), PropertyBag::default());
        assert_eq!(PropertyBag::parse("a=1&&b=2&").unwrap().entries.len(), 2);
        assert_eq!(PropertyBag::default().format(), "");
        assert_eq!(
            PropertyBag::parse("a=1&=2").unwrap_err().to_string(),
            "the property bag has an entry with an empty name at byte 4"
        );
    }

    #[test]
    fn set_replaces_or_appends() {
        let mut bag = PropertyBag::default();
        bag.set(MESSAGE_ID, Some("m 1".into()));
        bag.set("k", None);
        bag.set(MESSAGE_ID, Some("m2".into()));
        assert_eq!(bag.format(), "%24.mid=m2&k");
        assert_eq!(bag.system("mid"), Some("m2"));
        assert_eq!(bag.application().count(), 1);
    }

    #[test]
    fn smoke_random_bags_never_panic_and_round_trip() {
        let alphabet: Vec<char> = "&=%24.$/abAF09 +\u{e9}\u{1F600}".chars().collect();
        let mut rng = XorShift(0xdead_beef_cafe_f00d);
        for _ in 0..5000 {
            let len = rng.below(24);
            let s: String = (0..len)
                .map(|_| alphabet[rng.below(alphabet.len())])
                .collect();
            if let Ok(bag) = PropertyBag::parse(&s) {
                let formatted = bag.format();
                assert_eq!(PropertyBag::parse(&formatted).as_ref(), Ok(&bag), "{s}");
                // Canonical form is stable.
                assert_eq!(PropertyBag::parse(&formatted).unwrap().format(), formatted);
            }
        }
    }
}
