//! Desired-versus-reported comparison of a twin, leaf by leaf, for the twin view's
//! in-sync / pending / differs colouring. Understands the IoT Plug and Play writable-property
//! acknowledgement (protocol reference §7).
//!
//! Choices:
//! * `$`-keys are skipped everywhere, and so is the PnP component marker `"__t": "c"`.
//! * For an acknowledgement the entry's `reported` is the whole ack object
//!   (`{"value":..,"ac":..,"av":..,"ad":..}`) so the view can show code and description.
//! * If `desired` carries its `$metadata` (the REST section shape), a leaf's own
//!   `$lastUpdatedVersion` is what `av` must reach; otherwise `desired_version`.

use serde_json::{Map, Value};

/// How a leaf of desired compares with reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeafState {
    InSync,
    Pending,
    Differs,
    /// The device acknowledged the current desired value with an error code (`ac` >= 400).
    Refused,
    ReportedOnly,
}

/// One compared leaf.
#[derive(Clone, Debug, PartialEq)]
pub struct DiffEntry {
    /// Dotted path from the section root, e.g. "a.b.c".
    pub path: String,
    pub state: LeafState,
    pub desired: Option<Value>,
    pub reported: Option<Value>,
}

/// Structural diff of desired against reported, per leaf, ignoring keys starting with '$'.
/// Pending: desired leaf with no reported counterpart; Differs: both present, not equal;
/// InSync: equal; ReportedOnly: reported leaf with no desired counterpart. Numbers compare
/// by value (`23` and `23.0` are the same JSON number). PnP acks (reported
/// `{"value":v,"ac":code,"av":version,"ad":text}` for desired leaf `v`): av older than the
/// desired version → Pending (the device has not answered the latest value); then ac >= 400
/// → Refused; ac 202 → Pending; a 2xx with value == desired → InSync; else Differs.
/// Sorted by path; an empty object counts as a leaf.
pub fn diff(
    desired: &Map<String, Value>,
    reported: &Map<String, Value>,
    desired_version: u64,
) -> Vec<DiffEntry> {
    let metadata = desired.get("$metadata").and_then(Value::as_object);
    let mut out = Vec::new();
    walk(desired, reported, "", metadata, desired_version, &mut out);
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out
}

fn skipped(key: &str, value: &Value) -> bool {
    key.starts_with('$') || (key == "__t" && value.as_str() == Some("c"))
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_string()
    } else {
        format!("{prefix}.{key}")
    }
}

/// A non-empty object that is not an acknowledgement: something to descend into.
fn branch(value: &Value) -> Option<&Map<String, Value>> {
    value.as_object().filter(|m| !m.is_empty())
}

fn as_ack(value: &Value) -> Option<&Map<String, Value>> {
    value
        .as_object()
        .filter(|m| m.contains_key("value") && m.get("ac").is_some_and(Value::is_number))
}

fn walk(
    desired: &Map<String, Value>,
    reported: &Map<String, Value>,
    prefix: &str,
    metadata: Option<&Map<String, Value>>,
    version: u64,
    out: &mut Vec<DiffEntry>,
) {
    for (key, d) in desired {
        if skipped(key, d) {
            continue;
        }
        let path = join(prefix, key);
        let meta = metadata.and_then(|m| m.get(key)).and_then(Value::as_object);
        let leaf_version = meta
            .and_then(|m| m.get("$lastUpdatedVersion"))
            .and_then(Value::as_u64)
            .unwrap_or(version);
        let r = reported.get(key);
        let desired_is_ack_shaped = d.as_object().is_some_and(|m| m.contains_key("ac"));
        match (branch(d), r) {
            (_, Some(r)) if !desired_is_ack_shaped && as_ack(r).is_some() => {
                let state = ack_state(d, r, leaf_version);
                out.push(entry(path, state, Some(d), Some(r)));
            }
            (Some(d_map), Some(r)) => match branch(r) {
                Some(r_map) => walk(d_map, r_map, &path, meta, version, out),
                None => out.push(entry(path, LeafState::Differs, Some(d), Some(r))),
            },
            (Some(d_map), None) => walk(d_map, &Map::new(), &path, meta, version, out),
            (None, Some(r)) => {
                let state = if same_json(d, r) {
                    LeafState::InSync
                } else {
                    LeafState::Differs
                };
                out.push(entry(path, state, Some(d), Some(r)));
            }
            (None, None) => out.push(entry(path, LeafState::Pending, Some(d), None)),
        }
    }
    for (key, r) in reported {
        if skipped(key, r) || desired.contains_key(key) {
            continue;
        }
        reported_only(r, join(prefix, key), out);
    }
}

fn reported_only(value: &Value, path: String, out: &mut Vec<DiffEntry>) {
    match branch(value).filter(|_| as_ack(value).is_none()) {
        Some(map) => {
            for (key, child) in map {
                if !skipped(key, child) {
                    reported_only(child, join(&path, key), out);
                }
            }
        }
        None => out.push(entry(path, LeafState::ReportedOnly, None, Some(value))),
    }
}

fn ack_state(desired: &Value, ack: &Value, version: u64) -> LeafState {
    let code = ack.get("ac").and_then(Value::as_i64).unwrap_or(0);
    let acked = ack.get("av").and_then(Value::as_u64);
    if acked.is_some_and(|av| av < version) {
        LeafState::Pending
    } else if code >= 400 {
        LeafState::Refused
    } else if code == 202 {
        LeafState::Pending
    } else if (200..300).contains(&code) && ack.get("value").is_some_and(|v| same_json(v, desired))
    {
        LeafState::InSync
    } else {
        LeafState::Differs
    }
}

/// JSON equality with numbers compared by value: `23`, `23.0` and `2.3e1` are equal.
pub fn same_json(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(x), Some(y)) => x == y,
            _ => match (x.as_u64(), y.as_u64()) {
                (Some(x), Some(y)) => x == y,
                _ => x.as_f64() == y.as_f64(),
            },
        },
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same_json(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, a)| y.get(k).is_some_and(|b| same_json(a, b)))
        }
        _ => a == b,
    }
}

fn entry(path: String, state: LeafState, d: Option<&Value>, r: Option<&Value>) -> DiffEntry {
    DiffEntry {
        path,
        state,
        desired: d.cloned(),
        reported: r.cloned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    fn states(d: Value, r: Value, version: u64) -> Vec<(String, LeafState)> {
        diff(&obj(d), &obj(r), version)
            .into_iter()
            .map(|e| (e.path, e.state))
            .collect()
    }

    fn s(path: &str, state: LeafState) -> (String, LeafState) {
        (path.to_string(), state)
    }

    #[test]
    fn plain_leaf_states() {
        let entries = diff(
            &obj(json!({"same": 1, "pend": "x", "diff": true, "$version": 3})),
            &obj(json!({"same": 1, "diff": false, "extra": [1], "$version": 9})),
            3,
        );
        assert_eq!(
            entries,
            vec![
                DiffEntry {
                    path: "diff".into(),
                    state: LeafState::Differs,
                    desired: Some(json!(true)),
                    reported: Some(json!(false))
                },
                DiffEntry {
                    path: "extra".into(),
                    state: LeafState::ReportedOnly,
                    desired: None,
                    reported: Some(json!([1]))
                },
                DiffEntry {
                    path: "pend".into(),
                    state: LeafState::Pending,
                    desired: Some(json!("x")),
                    reported: None
                },
                DiffEntry {
                    path: "same".into(),
                    state: LeafState::InSync,
                    desired: Some(json!(1)),
                    reported: Some(json!(1))
                },
            ]
        );
    }

    #[test]
    fn nested_paths_and_empty_objects() {
        assert_eq!(
            states(
                json!({"a": {"b": {"c": 1, "d": 2}, "e": {}}, "f": {"g": 1}, "h": {"i": 1}}),
                json!({"a": {"b": {"c": 1, "x": {"y": 5, "z": {}}}, "e": {}}, "f": 3}),
                1
            ),
            vec![
                s("a.b.c", LeafState::InSync),
                s("a.b.d", LeafState::Pending),
                s("a.b.x.y", LeafState::ReportedOnly),
                s("a.b.x.z", LeafState::ReportedOnly),
                s("a.e", LeafState::InSync),
                s("f", LeafState::Differs),
                s("h.i", LeafState::Pending),
            ]
        );
    }

    #[test]
    fn dollar_keys_and_component_marker_ignored() {
        assert_eq!(
            states(
                json!({"$metadata": {"$lastUpdated": "t"}, "$version": 4,
                       "thermostat1": {"__t": "c", "t": 1}}),
                json!({"$metadata": {}, "$version": 7, "$x": 1,
                       "thermostat1": {"__t": "c", "t": 1}}),
                4
            ),
            vec![s("thermostat1.t", LeafState::InSync)]
        );
    }

    #[test]
    fn pnp_acknowledgements() {
        let d = json!({"target": 21.5});
        let ack = |value: Value, ac: i64, av: u64| json!({"target": {"value": value, "ac": ac, "av": av, "ad": "done"}});
        assert_eq!(
            states(d.clone(), ack(json!(21.5), 200, 5), 5),
            vec![s("target", LeafState::InSync)]
        );
        assert_eq!(
            states(d.clone(), ack(json!(21.5), 202, 5), 5),
            vec![s("target", LeafState::Pending)]
        );
        assert_eq!(
            states(d.clone(), ack(json!(20.0), 200, 4), 5),
            vec![s("target", LeafState::Pending)]
        );
        assert_eq!(
            states(d.clone(), ack(json!(20.0), 200, 5), 5),
            vec![s("target", LeafState::Differs)]
        );
        assert_eq!(
            states(d.clone(), ack(json!(20.0), 400, 5), 5),
            vec![s("target", LeafState::Refused)]
        );
        // A refusal of an older desired value: the latest one is still unanswered.
        assert_eq!(
            states(d.clone(), ack(json!(20.0), 400, 4), 5),
            vec![s("target", LeafState::Pending)]
        );
        // An older success with the same value is still pending the latest version.
        assert_eq!(
            states(d.clone(), ack(json!(21.5), 200, 4), 5),
            vec![s("target", LeafState::Pending)]
        );
        let entries = diff(&obj(d), &obj(ack(json!(21.5), 200, 5)), 5);
        assert_eq!(
            entries[0].reported,
            Some(json!({"value": 21.5, "ac": 200, "av": 5, "ad": "done"}))
        );
    }

    #[test]
    fn pnp_ack_in_component_uses_leaf_metadata_version() {
        // Desired is at $version 9 but this leaf last changed at 6, which the device acked.
        let desired = json!({
            "c1": {"__t": "c", "p": 1},
            "$metadata": {"c1": {"$lastUpdatedVersion": 9, "p": {"$lastUpdatedVersion": 6}}},
            "$version": 9
        });
        let reported = json!({"c1": {"__t": "c", "p": {"value": 0, "ac": 400, "av": 6}}});
        assert_eq!(
            states(desired.clone(), reported, 9),
            vec![s("c1.p", LeafState::Refused)]
        );
        let reported = json!({"c1": {"__t": "c", "p": {"value": 0, "ac": 203, "av": 0}}});
        assert_eq!(
            states(desired, reported, 9),
            vec![s("c1.p", LeafState::Pending)]
        );
    }

    #[test]
    fn numbers_compare_by_value() {
        // The Plug and Play case: desired 23 at $version 2, acknowledged as 23.0.
        assert_eq!(
            states(
                json!({"t": 23}),
                json!({"t": {"value": 23.0, "ac": 200, "av": 2, "ad": "ok"}}),
                2
            ),
            vec![s("t", LeafState::InSync)]
        );
        assert_eq!(
            states(
                json!({"a": 1, "b": [1, 2.5], "c": {"x": 0}, "big": 18446744073709551615u64}),
                json!({"a": 1.0, "b": [1.0, 2.5], "c": {"x": -0.0}, "big": 18446744073709551615u64}),
                1
            ),
            vec![
                s("a", LeafState::InSync),
                s("b", LeafState::InSync),
                s("big", LeafState::InSync),
                s("c.x", LeafState::InSync),
            ]
        );
        assert!(!same_json(&json!(1), &json!(1.5)));
        assert!(!same_json(&json!(1), &json!("1")));
        assert!(!same_json(&json!([1]), &json!([1, 1])));
        assert!(!same_json(&json!(-1), &json!(18446744073709551615u64)));
    }

    #[test]
    fn reported_only_ack_is_one_leaf() {
        assert_eq!(
            states(json!({}), json!({"p": {"value": 1, "ac": 203, "av": 0}}), 1),
            vec![s("p", LeafState::ReportedOnly)]
        );
    }
}
