//! IoT Plug and Play conventions a device follows, shared by the demo devices and profile
//! devices: writable-property acknowledgements, the desired section of a twin, the order of
//! desired versions and the properties of a JSON telemetry message.

use rand::Rng;
use rand::rngs::StdRng;
use serde_json::{Map, Value, json};

use iothub::property_bag::{CONTENT_ENCODING, CONTENT_TYPE, MESSAGE_ID, PropertyBag};

/// A writable property acknowledgement `{"value","ac","av","ad"}`.
pub fn ack(value: Value, code: u16, version: u64, description: &str) -> Value {
    json!({"value": value, "ac": code, "av": version, "ad": description})
}

/// The desired section of a device's view of its twin, and its `$version` (0 when absent).
pub fn desired_section(twin: &Value) -> (Map<String, Value>, u64) {
    let desired = twin
        .get("desired")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let version = desired.get("$version").and_then(Value::as_u64).unwrap_or(0);
    (desired, version)
}

/// Whether a desired patch of `version` is newer than the `applied` one; if so it becomes
/// the applied one. Notifications can arrive after the full twin they are part of.
pub fn advance(applied: &mut u64, version: u64) -> bool {
    if version <= *applied {
        return false;
    }
    *applied = version;
    true
}

/// Properties of a JSON telemetry message: a message id drawn from `rng` (so a seed
/// repeats it), content type application/json and encoding utf-8.
pub fn json_message_properties(rng: &mut StdRng) -> PropertyBag {
    let mid = uuid::Builder::from_random_bytes(rng.random()).into_uuid();
    let mut props = PropertyBag::default();
    props.set(MESSAGE_ID, Some(mid.to_string()));
    props.set(CONTENT_TYPE, Some("application/json".into()));
    props.set(CONTENT_ENCODING, Some("utf-8".into()));
    props
}
