//! Unit tests for twin.rs: merge-patch, versions, metadata, limits, JSON shapes.

use super::*;
use chrono::TimeZone;
use serde_json::json;

/// A fixed time `secs` after the tests' epoch, with milliseconds.
pub(crate) fn t(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_700_000_000 + secs, 123_000_000)
        .single()
        .expect("valid time")
}

/// The object inside `v`.
pub(crate) fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        other => panic!("not an object: {other}"),
    }
}

const T0: &str = "2023-11-14T22:13:20.123Z";
const T1: &str = "2023-11-14T22:13:21.123Z";
const T2: &str = "2023-11-14T22:13:22.123Z";

#[test]
fn new_twin_matches_azure_shape() {
    let twin = Twin::new(t(0));
    assert_eq!(twin.version, 1);
    assert_eq!(twin.etag(), "AAAAAAAAAAE=");
    assert_eq!(
        twin.section_json(Section::Desired),
        json!({"$metadata": {"$lastUpdated": T0}, "$version": 1})
    );
    assert_eq!(
        twin.section_json(Section::Reported),
        json!({"$metadata": {"$lastUpdated": T0}, "$version": 1})
    );
    assert_eq!(twin.section_json(Section::Tags), json!({}));
}

#[test]
fn etag_is_base64_of_big_endian_version() {
    let mut twin = Twin::new(t(0));
    twin.version = 7;
    assert_eq!(twin.etag(), "AAAAAAAAAAc=");
    twin.version = 256;
    assert_eq!(twin.etag(), "AAAAAAAAAQA=");
}

#[test]
fn merge_patch_semantics() {
    let mut twin = Twin::new(t(0));
    twin.patch(
        Section::Reported,
        &obj(json!({"a": 1, "n": {"x": 1, "y": [1, 2, 3]}, "gone": true})),
        t(1),
    )
    .unwrap();
    twin.patch(
        Section::Reported,
        &obj(json!({"gone": null, "n": {"y": [9], "z": "s"}, "missing": null})),
        t(2),
    )
    .unwrap();
    assert_eq!(
        Value::Object(twin.reported.properties.clone()),
        json!({"a": 1, "n": {"x": 1, "y": [9], "z": "s"}})
    );
    // An object replaces a leaf, a leaf replaces an object.
    twin.patch(
        Section::Reported,
        &obj(json!({"a": {"b": 2}, "n": 5})),
        t(2),
    )
    .unwrap();
    assert_eq!(
        Value::Object(twin.reported.properties.clone()),
        json!({"a": {"b": 2}, "n": 5})
    );
}

#[test]
fn versions_and_etag_progress() {
    let mut twin = Twin::new(t(0));
    twin.patch(Section::Desired, &obj(json!({"a": 1})), t(1))
        .unwrap();
    assert_eq!(
        (twin.version, twin.desired.version, twin.reported.version),
        (2, 2, 1)
    );
    twin.patch(Section::Reported, &obj(json!({"b": 1})), t(1))
        .unwrap();
    assert_eq!(
        (twin.version, twin.desired.version, twin.reported.version),
        (3, 2, 2)
    );
    twin.patch(Section::Tags, &obj(json!({"loc": "x"})), t(1))
        .unwrap();
    assert_eq!(
        (twin.version, twin.desired.version, twin.reported.version),
        (4, 2, 2)
    );
    assert_eq!(twin.etag(), "AAAAAAAAAAQ=");
    twin.replace(Section::Desired, obj(json!({"c": 1})), t(1))
        .unwrap();
    assert_eq!((twin.version, twin.desired.version), (5, 3));
    assert_eq!(
        Value::Object(twin.desired.properties.clone()),
        json!({"c": 1})
    );
}

#[test]
fn empty_patch_is_a_no_op() {
    let mut twin = Twin::new(t(0));
    let before = twin.clone();
    twin.patch(Section::Desired, &Map::new(), t(1)).unwrap();
    twin.patch(
        Section::Reported,
        &obj(json!({"$version": 4, "$metadata": {}})),
        t(1),
    )
    .unwrap();
    assert_eq!(twin, before);
}

#[test]
fn hub_keys_in_patch_are_ignored() {
    let mut twin = Twin::new(t(0));
    twin.patch(
        Section::Desired,
        &obj(json!({"a": 1, "$version": 99, "$metadata": {"x": 1}})),
        t(1),
    )
    .unwrap();
    assert_eq!(
        Value::Object(twin.desired.properties.clone()),
        json!({"a": 1})
    );
    assert_eq!(twin.desired.version, 2);
}

#[test]
fn desired_metadata_after_patch_and_delete() {
    let mut twin = Twin::new(t(0));
    twin.patch(
        Section::Desired,
        &obj(json!({"cfg": {"rate": 5, "mode": "a"}, "x": 1})),
        t(1),
    )
    .unwrap();
    let v2 = json!({"$lastUpdated": T1, "$lastUpdatedVersion": 2});
    assert_eq!(
        twin.section_json(Section::Desired),
        json!({
            "cfg": {"rate": 5, "mode": "a"}, "x": 1,
            "$metadata": {
                "$lastUpdated": T1, "$lastUpdatedVersion": 2,
                "cfg": {"$lastUpdated": T1, "$lastUpdatedVersion": 2, "rate": v2, "mode": v2},
                "x": v2
            },
            "$version": 2
        })
    );
    twin.patch(
        Section::Desired,
        &obj(json!({"cfg": {"mode": null}, "x": null})),
        t(2),
    )
    .unwrap();
    assert_eq!(
        twin.section_json(Section::Desired),
        json!({
            "cfg": {"rate": 5},
            "$metadata": {
                "$lastUpdated": T2, "$lastUpdatedVersion": 3,
                "cfg": {"$lastUpdated": T2, "$lastUpdatedVersion": 3, "rate": v2}
            },
            "$version": 3
        })
    );
}

#[test]
fn reported_metadata_has_no_version_and_leaf_drops_children() {
    let mut twin = Twin::new(t(0));
    twin.patch(Section::Reported, &obj(json!({"o": {"a": 1}})), t(1))
        .unwrap();
    twin.patch(Section::Reported, &obj(json!({"o": 3})), t(2))
        .unwrap();
    assert_eq!(
        Value::Object(twin.reported.metadata.clone()),
        json!({"$lastUpdated": T2, "o": {"$lastUpdated": T2}})
    );
}

#[test]
fn replace_rebuilds_metadata() {
    let mut twin = Twin::new(t(0));
    twin.patch(Section::Desired, &obj(json!({"old": 1})), t(1))
        .unwrap();
    twin.replace(Section::Desired, obj(json!({"new": 2, "drop": null})), t(2))
        .unwrap();
    let v3 = json!({"$lastUpdated": T2, "$lastUpdatedVersion": 3});
    assert_eq!(
        Value::Object(twin.desired.metadata.clone()),
        json!({"$lastUpdated": T2, "$lastUpdatedVersion": 3, "new": v3})
    );
    assert_eq!(
        Value::Object(twin.desired.properties.clone()),
        json!({"new": 2})
    );
}

#[test]
fn tags_have_no_metadata_and_replace() {
    let mut twin = Twin::new(t(0));
    twin.patch(Section::Tags, &obj(json!({"a": {"b": 1}, "c": 2})), t(1))
        .unwrap();
    twin.patch(Section::Tags, &obj(json!({"a": {"d": 3}, "c": null})), t(1))
        .unwrap();
    assert_eq!(
        twin.section_json(Section::Tags),
        json!({"a": {"b": 1, "d": 3}})
    );
    twin.replace(Section::Tags, obj(json!({"z": 1})), t(1))
        .unwrap();
    assert_eq!(twin.section_json(Section::Tags), json!({"z": 1}));
    assert_eq!(twin.version, 4);
}

/// Applies `patch` and asserts the error and that the twin is unchanged.
fn rejected(section: Section, patch: Value) -> TwinError {
    let mut twin = Twin::new(t(0));
    twin.patch(section, &obj(json!({"keep": 1})), t(1)).unwrap();
    let before = twin.clone();
    let err = twin.patch(section, &obj(patch), t(2)).unwrap_err();
    assert_eq!(twin, before, "twin changed on error {err}");
    err
}

#[test]
fn key_rules() {
    let cases = [
        ("a.b", KeyProblem::Dot),
        ("a$b", KeyProblem::Dollar),
        ("a b", KeyProblem::Space),
        ("a\u{1}b", KeyProblem::ControlChar),
        ("a\u{85}b", KeyProblem::ControlChar),
    ];
    for (key, problem) in cases {
        let err = rejected(Section::Desired, json!({"ok": {key: 1}}));
        assert_eq!(
            err,
            TwinError::KeyInvalid {
                path: format!("properties.desired.ok.{key}"),
                problem
            }
        );
    }
    let long = "k".repeat(1025);
    assert_eq!(
        rejected(Section::Tags, json!({long.clone(): 1})),
        TwinError::KeyInvalid {
            path: format!("tags.{long}"),
            problem: KeyProblem::TooLong { len: 1025 }
        }
    );
    let mut twin = Twin::new(t(0));
    twin.patch(
        Section::Tags,
        &obj(json!({"k".repeat(1024): 1, "é_-#": 2})),
        t(1),
    )
    .unwrap();
}

#[test]
fn key_error_messages_are_one_escaped_sentence() {
    let err = rejected(Section::Reported, json!({"a\u{1b}[2J": 1}));
    assert_eq!(
        err.to_string(),
        "the twin key at properties.reported.a\\u{1b}[2J contains a control character, so rename it"
    );
    let err = rejected(Section::Desired, json!({"a.b": 1}));
    assert_eq!(
        err.to_string(),
        "the twin key at properties.desired.a.b contains '.', so rename it"
    );
}

fn nested(levels: usize) -> Value {
    let mut v = json!({"leaf": "value"});
    for i in (1..levels).rev() {
        v = json!({ format!("l{i}"): v });
    }
    v
}

#[test]
fn depth_ten_ok_eleven_fails() {
    // nested(n) is n objects deep once placed under a section key.
    let mut twin = Twin::new(t(0));
    twin.patch(Section::Desired, &obj(json!({"l0": nested(10)})), t(1))
        .unwrap();
    let err = rejected(Section::Desired, json!({"l0": nested(11)}));
    assert_eq!(
        err,
        TwinError::TooDeep {
            path: "properties.desired.l0.l1.l2.l3.l4.l5.l6.l7.l8.l9.l10".into(),
            limit: 10
        }
    );
    // Arrays count as a level.
    twin.patch(Section::Desired, &obj(json!({"a": [nested(9)]})), t(1))
        .unwrap();
    assert_eq!(
        rejected(Section::Desired, json!({"a": [nested(10)]})),
        TwinError::TooDeep {
            path: "properties.desired.a[0].l1.l2.l3.l4.l5.l6.l7.l8.l9".into(),
            limit: 10
        }
    );
}

#[test]
fn string_length_limit() {
    let mut twin = Twin::new(t(0));
    twin.patch(Section::Desired, &obj(json!({"s": "x".repeat(4096)})), t(1))
        .unwrap();
    assert_eq!(
        rejected(Section::Desired, json!({"a": [1, "x".repeat(4097)]})),
        TwinError::StringTooLong {
            path: "properties.desired.a[1]".into(),
            len: 4097,
            limit: 4096
        }
    );
    // Multi-byte characters count in bytes.
    assert_eq!(
        rejected(Section::Tags, json!({"s": "é".repeat(2049)})),
        TwinError::StringTooLong {
            path: "tags.s".into(),
            len: 4098,
            limit: 4096
        }
    );
}

#[test]
fn integer_range_edges() {
    let mut twin = Twin::new(t(0));
    twin.patch(
        Section::Reported,
        &obj(json!({"max": 4_503_599_627_370_495_i64, "min": -4_503_599_627_370_496_i64, "f": 1e300})),
        t(1),
    )
    .unwrap();
    for (v, _) in [
        (json!(4_503_599_627_370_496_i64), ()),
        (json!(-4_503_599_627_370_497_i64), ()),
        (json!(u64::MAX), ()),
    ] {
        assert_eq!(
            rejected(Section::Reported, json!({"n": {"v": v}})),
            TwinError::IntegerOutOfRange {
                path: "properties.reported.n.v".into()
            }
        );
    }
}

#[test]
fn section_size_limits() {
    // Key "k" (1 byte) + string: exactly at the limit is fine, one more byte fails.
    for (section, limit) in [
        (Section::Tags, 8192),
        (Section::Desired, 32768),
        (Section::Reported, 32768),
    ] {
        let mut fill = Map::new();
        let mut left = limit;
        let mut i = 0;
        while left > 0 {
            let key = format!("k{i:03}");
            let take = (left - key.len()).min(4096);
            left -= key.len() + take;
            fill.insert(key, Value::String("x".repeat(take)));
            i += 1;
        }
        let mut twin = Twin::new(t(0));
        twin.patch(section, &fill, t(1)).unwrap();
        assert_eq!(section_size(twin.properties(section)), limit);
        let before = twin.clone();
        let err = twin
            .patch(section, &obj(json!({"z": true})), t(2))
            .unwrap_err();
        assert_eq!(
            err,
            TwinError::TooLarge {
                section: section.path(),
                size: limit + 5,
                limit
            }
        );
        assert!(err.is_size());
        assert_eq!(twin, before);
        // Deleting and adding in one patch is judged on the result.
        twin.patch(section, &obj(json!({"k000": null, "z": true})), t(2))
            .unwrap();
    }
}

#[test]
fn size_counts_numbers_and_booleans() {
    assert_eq!(
        section_size(&obj(
            json!({"ab": 1, "c": true, "d": "xyz", "e": {"f": 1.5}, "g": [1, null]})
        )),
        2 + 8 + 1 + 4 + 1 + 3 + 1 + 1 + 8 + 1 + 8 + 4
    );
}

#[test]
fn device_view_shape() {
    let mut twin = Twin::new(t(0));
    twin.patch(Section::Desired, &obj(json!({"a": 1})), t(1))
        .unwrap();
    twin.patch(Section::Reported, &obj(json!({"b": {"c": "d"}})), t(1))
        .unwrap();
    twin.patch(Section::Tags, &obj(json!({"secret": 1})), t(1))
        .unwrap();
    assert_eq!(
        twin.device_view(),
        json!({"desired": {"a": 1, "$version": 2}, "reported": {"b": {"c": "d"}, "$version": 2}})
    );
}

#[test]
fn service_properties_json_shape() {
    let mut twin = Twin::new(t(0));
    twin.patch(Section::Tags, &obj(json!({"t": 1})), t(1))
        .unwrap();
    assert_eq!(
        twin.service_properties_json(),
        json!({
            "tags": {"t": 1},
            "properties": {
                "desired": {"$metadata": {"$lastUpdated": T0}, "$version": 1},
                "reported": {"$metadata": {"$lastUpdated": T0}, "$version": 1}
            }
        })
    );
}

#[test]
fn storage_round_trip() {
    let mut twin = Twin::new(t(0));
    twin.patch(Section::Desired, &obj(json!({"a": {"b": [1, 2]}})), t(1))
        .unwrap();
    let text = serde_json::to_string(&twin).unwrap();
    let back: Twin = serde_json::from_str(&text).unwrap();
    assert_eq!(back, twin);
}

#[test]
fn desired_notification_body() {
    assert_eq!(
        desired_notification(
            &obj(json!({"telemetrySendFrequency": "5m", "route": null})),
            8
        ),
        json!({"telemetrySendFrequency": "5m", "route": null, "$version": 8})
    );
    assert_eq!(
        serde_json::to_string(&desired_notification(
            &obj(json!({"$version": 1, "a": 1})),
            3
        ))
        .unwrap(),
        r#"{"a":1,"$version":3}"#
    );
}

#[test]
fn parse_service_update_parts() {
    let tags_only =
        parse_service_update(&json!({"tags": {"a": 1}, "etag": "AAAAAAAAAAE="})).unwrap();
    assert_eq!(
        tags_only,
        ServiceTwinUpdate {
            tags: Some(obj(json!({"a": 1}))),
            desired: None
        }
    );
    let desired_only = parse_service_update(&json!({"properties": {"desired": {"b": 2}}})).unwrap();
    assert_eq!(
        desired_only,
        ServiceTwinUpdate {
            tags: None,
            desired: Some(obj(json!({"b": 2})))
        }
    );
    let both = parse_service_update(&json!({
        "deviceId": "d1", "tags": {"a": 1}, "properties": {"desired": {"b": 2}, "reported": {"$version": 4}}
    }))
    .unwrap();
    assert_eq!(
        both,
        ServiceTwinUpdate {
            tags: Some(obj(json!({"a": 1}))),
            desired: Some(obj(json!({"b": 2})))
        }
    );
    assert_eq!(
        parse_service_update(&json!({"tags": null, "properties": null})).unwrap(),
        ServiceTwinUpdate::default()
    );
}

#[test]
fn parse_service_update_rejects() {
    let err = parse_service_update(&json!({"properties": {"reported": {"a": 1}}})).unwrap_err();
    assert_eq!(
        err,
        TwinError::ReadOnly {
            what: "properties.reported".into()
        }
    );
    assert_eq!(
        err.to_string(),
        "properties.reported is read-only for services and cannot be updated"
    );
    assert_eq!(
        parse_service_update(&json!([1])).unwrap_err().to_string(),
        "the twin update body must be a JSON object"
    );
    assert_eq!(
        parse_service_update(&json!({"tags": "x"})).unwrap_err(),
        TwinError::NotAnObject {
            what: "tags".into()
        }
    );
    assert_eq!(
        parse_service_update(&json!({"properties": {"desired": 3}})).unwrap_err(),
        TwinError::NotAnObject {
            what: "properties.desired".into()
        }
    );
}

#[test]
fn parse_patch_body_cases() {
    assert_eq!(
        parse_patch_body(br#"{"a":null}"#).unwrap(),
        obj(json!({"a": null}))
    );
    assert_eq!(
        parse_patch_body(b"[1]").unwrap_err(),
        TwinError::NotAnObject {
            what: "the reported properties patch".into()
        }
    );
    assert!(matches!(
        parse_patch_body(b"{").unwrap_err(),
        TwinError::Malformed { .. }
    ));
}
