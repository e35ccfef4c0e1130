//! Unit tests for digital_twin.rs and patch.rs, on the examples of Azure's PnP documents.

use super::*;
use crate::twin::Section;
use crate::twin::tests::{obj, t};
use serde_json::json;

const T1: &str = "2023-11-14T22:13:21.123Z";
const T2: &str = "2023-11-14T22:13:22.123Z";

/// The Temperature Controller of concepts-digital-twin: a read-only root property, a
/// component with a read-only and an acknowledged writable property.
fn controller() -> Twin {
    let mut twin = Twin::new(t(0));
    twin.patch(
        Section::Desired,
        &obj(json!({"thermostat1": {"__t": "c", "targetTemperature": 21.8}})),
        t(1),
    )
    .unwrap();
    let desired_version = twin.desired.version;
    twin.patch(
        Section::Reported,
        &obj(
            json!({"serialNumber": "alwinexlepaho8329", "thermostat1": {"__t": "c",
            "maxTempSinceLastReboot": 25.3,
            "targetTemperature": {"value": 21.8, "ac": 200, "av": desired_version,
                "ad": "Successfully executed patch"}}}),
        ),
        t(2),
    )
    .unwrap();
    twin
}

#[test]
fn the_documented_temperature_controller_view() {
    let twin = controller();
    let dt = digital_twin(
        "sample-device",
        Some("dtmi:com:example:TemperatureController;1"),
        &twin,
    );
    assert_eq!(
        dt,
        json!({
            "$dtId": "sample-device",
            "thermostat1": {
                "targetTemperature": 21.8,
                "maxTempSinceLastReboot": 25.3,
                "$metadata": {
                    "targetTemperature": {
                        "desiredValue": 21.8, "desiredVersion": 2, "ackVersion": 2, "ackCode": 200,
                        "ackDescription": "Successfully executed patch", "lastUpdateTime": T2
                    },
                    "maxTempSinceLastReboot": {"lastUpdateTime": T2}
                }
            },
            "serialNumber": "alwinexlepaho8329",
            "$metadata": {
                "$model": "dtmi:com:example:TemperatureController;1",
                "serialNumber": {"lastUpdateTime": T2}
            }
        })
    );
    // Keys come in Azure's order: $model first, then the properties' metadata.
    let keys: Vec<&String> = dt["$metadata"].as_object().unwrap().keys().collect();
    assert_eq!(keys[0], "$model");
}

#[test]
fn a_desired_change_moves_desired_value_and_version_not_the_reported_value() {
    // howto-manage-digital-twin: after add /thermostat1/targetTemperature 21.4 the value
    // stays the reported one, desiredValue/desiredVersion move, lastUpdateTime stays.
    let mut twin = controller();
    twin.patch(
        Section::Desired,
        &obj(json!({"thermostat1": {"__t": "c", "targetTemperature": 21.4}})),
        t(3),
    )
    .unwrap();
    let dt = digital_twin("d", None, &twin);
    assert_eq!(dt["thermostat1"]["targetTemperature"], json!(21.8));
    let meta = &dt["thermostat1"]["$metadata"]["targetTemperature"];
    assert_eq!(meta["desiredValue"], json!(21.4));
    assert_eq!(meta["desiredVersion"], json!(3));
    assert_eq!(meta["ackVersion"], json!(2));
    assert_eq!(meta["lastUpdateTime"], json!(T2));
    assert!(
        dt["$metadata"].get("$model").is_none(),
        "no model announced"
    );
}

#[test]
fn root_writable_and_desired_only_properties() {
    // The fanSpeed example: desired 2.0 at version 2, device acknowledged 3.0 at version 1.
    let mut twin = Twin::new(t(0));
    twin.patch(
        Section::Reported,
        &obj(
            json!({"fanSpeed": {"value": 3.0, "ac": 200, "av": 1, "ad": "Successfully executed patch version 1"}}),
        ),
        t(1),
    )
    .unwrap();
    twin.patch(
        Section::Desired,
        &obj(json!({"fanSpeed": 2.0, "mode": "eco", "limits": {"low": 1}})),
        t(2),
    )
    .unwrap();
    let dt = digital_twin("d", Some(""), &twin);
    assert_eq!(
        dt,
        json!({
            "$dtId": "d",
            "fanSpeed": 3.0,
            "$metadata": {
                "fanSpeed": {"desiredValue": 2.0, "desiredVersion": 2, "ackVersion": 1,
                    "ackCode": 200, "ackDescription": "Successfully executed patch version 1",
                    "lastUpdateTime": T1},
                "mode": {"desiredValue": "eco", "desiredVersion": 2},
                "limits": {"desiredValue": {"low": 1}, "desiredVersion": 2}
            }
        })
    );
}

#[test]
fn plain_objects_are_values_and_an_empty_twin_is_just_its_id() {
    let mut twin = Twin::new(t(0));
    assert_eq!(
        digital_twin("d", None, &twin),
        json!({"$dtId": "d", "$metadata": {}})
    );
    twin.patch(
        Section::Reported,
        &obj(json!({"location": {"lat": 1, "value": 2}, "empty": {"__t": "c"}})),
        t(1),
    )
    .unwrap();
    let dt = digital_twin("d", None, &twin);
    // An object with "value" but no "ac" is not an acknowledgement.
    assert_eq!(dt["location"], json!({"lat": 1, "value": 2}));
    assert_eq!(dt["empty"], json!({"$metadata": {}}));
}

#[test]
fn command_names_follow_the_pnp_convention() {
    assert_eq!(command_method_name(None, "reboot"), "reboot");
    assert_eq!(
        command_method_name(Some("thermostat1"), "getMaxMinReport"),
        "thermostat1*getMaxMinReport"
    );
}

fn patch_of(ops: Value, twin: &Twin) -> Result<Value, DigitalTwinPatchError> {
    desired_patch(&ops, &twin.desired.properties, &twin.reported.properties).map(Value::Object)
}

#[test]
fn property_operations_become_desired_changes() {
    let twin = controller();
    assert_eq!(
        patch_of(
            json!([
                {"op": "add", "path": "/thermostat1/targetTemperature", "value": 21.4},
                {"op": "replace", "path": "/fanSpeed", "value": 2},
                {"op": "remove", "path": "/oldSetting"},
            ]),
            &twin
        )
        .unwrap(),
        json!({"thermostat1": {"__t": "c", "targetTemperature": 21.4}, "fanSpeed": 2,
            "oldSetting": null})
    );
    // Removing a component property clears it; one that is not set changes nothing.
    assert_eq!(
        patch_of(
            json!([{"op": "remove", "path": "/thermostat1/targetTemperature"},
                   {"op": "remove", "path": "/thermostat2/targetTemperature"}]),
            &twin
        )
        .unwrap(),
        json!({"thermostat1": {"__t": "c", "targetTemperature": null}})
    );
}

#[test]
fn replacing_an_object_value_clears_members_it_no_longer_has() {
    let mut twin = Twin::new(t(0));
    twin.patch(
        Section::Desired,
        &obj(json!({"limits": {"low": 1, "high": {"a": 1, "b": 2}}})),
        t(1),
    )
    .unwrap();
    assert_eq!(
        patch_of(
            json!([{"op": "replace", "path": "/limits", "value": {"high": {"a": 5}}}]),
            &twin
        )
        .unwrap(),
        json!({"limits": {"high": {"a": 5, "b": null}, "low": null}})
    );
}

#[test]
fn component_operations_replace_or_clear_the_whole_component() {
    let mut twin = controller();
    twin.patch(
        Section::Desired,
        &obj(
            json!({"thermostat1": {"__t": "c", "anotherWritableProperty": 1},
            "thermostat2": {"__t": "c", "targetTemperature": 20}}),
        ),
        t(3),
    )
    .unwrap();
    assert_eq!(
        patch_of(
            json!([
                {"op": "replace", "path": "/thermostat1",
                 "value": {"targetTemperature": 21.4, "$metadata": {}}},
                {"op": "remove", "path": "/thermostat2"},
                {"op": "add", "path": "/thermostat3", "value": {"$metadata": {}, "x": 1}},
            ]),
            &twin
        )
        .unwrap(),
        json!({
            "thermostat1": {"__t": "c", "targetTemperature": 21.4, "anotherWritableProperty": null},
            "thermostat2": null,
            "thermostat3": {"__t": "c", "x": 1}
        })
    );
    // Removed, then a property set again: the component holds only that property.
    assert_eq!(
        patch_of(
            json!([{"op": "remove", "path": "/thermostat1"},
                   {"op": "add", "path": "/thermostat1/targetTemperature", "value": 19}]),
            &twin
        )
        .unwrap(),
        json!({"thermostat1": {"__t": "c", "targetTemperature": 19, "anotherWritableProperty": null}})
    );
}

#[test]
fn bad_patches_are_refused_with_a_reason() {
    let twin = controller();
    let err = |ops: Value| patch_of(ops, &twin).unwrap_err().to_string();
    assert_eq!(
        err(json!({"op": "add"})),
        "the digital twin patch must be a JSON array of operations, like [{\"op\": \"add\", \"path\": \"/name\", \"value\": 1}]"
    );
    assert_eq!(
        err(json!([])),
        "the digital twin patch has no operations; send at least one add, replace or remove"
    );
    assert_eq!(
        err(json!([1])),
        "the operation at index 0 must be a JSON object with \"op\" and \"path\""
    );
    assert_eq!(
        err(json!([{"op": "add", "path": "/a", "value": 1}, {"path": "/a"}])),
        "the operation at index 1 has no \"op\" string"
    );
    assert_eq!(
        err(json!([{"op": "move", "from": "/a", "path": "/b"}])),
        "the operation at index 0 has op 'move'; the digital twin API takes add, replace and remove"
    );
    assert_eq!(
        err(json!([{"op": "add", "path": "/a"}])),
        "the operation at index 0 has no \"value\"; add and replace need one"
    );
    for path in ["a", "", "/", "/a/b/c"] {
        let msg = err(json!([{"op": "add", "path": path, "value": 1}]));
        assert!(
            msg.starts_with("the path") || msg.contains("is not a DTDL name"),
            "{path}: {msg}"
        );
    }
    assert_eq!(
        err(json!([{"op": "add", "path": "/1st", "value": 1}])),
        "'1st' in '/1st' is not a DTDL name: use 1 to 64 letters, digits and underscores, not starting with a digit or underscore nor ending with an underscore"
    );
    for name in ["_a", "a_", "a-b", "$metadata", "a b", &"a".repeat(65)] {
        assert!(
            err(json!([{"op": "add", "path": format!("/{name}"), "value": 1}]))
                .contains("is not a DTDL name"),
            "{name}"
        );
    }
    assert_eq!(
        err(json!([{"op": "add", "path": "/a", "value": {"x": [1]}}])),
        "the value at /a/x holds an array; digital twin properties cannot hold arrays"
    );
    assert_eq!(
        err(
            json!([{"op": "add", "path": "/a", "value": {"b": {"c": {"d": {"e": {"f": {"g": 1}}}}}}}])
        ),
        "the value at /a/b/c/d/e/f nests deeper than 5 levels"
    );
    assert!(
        patch_of(
            json!([{"op": "add", "path": "/a", "value": {"b": {"c": {"d": {"e": {"f": 1}}}}}}]),
            &twin
        )
        .is_ok()
    );
    assert_eq!(
        err(json!([{"op": "add", "path": "/a", "value": {"bad-key": 1}}])),
        "'bad-key' in '/a/bad-key' is not a DTDL name: use 1 to 64 letters, digits and underscores, not starting with a digit or underscore nor ending with an underscore"
    );
    assert_eq!(
        err(json!([{"op": "replace", "path": "/thermostat1", "value": {"targetTemperature": 1}}])),
        "'thermostat1' is a component: give the value an empty \"$metadata\": {} to replace it whole, or patch /thermostat1/{property}"
    );
    assert_eq!(
        err(json!([{"op": "add", "path": "/thermostat1", "value": {"$metadata": {"x": 1}}}])),
        "the \"$metadata\" marker in the value of /thermostat1 must be an empty object"
    );
    assert_eq!(
        err(json!([{"op": "add", "path": "/serialNumber/x", "value": 1}])),
        "'serialNumber' is a property, not a component, so '/serialNumber/x' cannot be patched; patch /serialNumber with its whole value"
    );
}
