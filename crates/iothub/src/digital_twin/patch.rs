//! `PATCH /digitaltwins/{id}`: a JSON Patch over the digital twin, turned into the
//! desired-properties merge patch the hub applies to the device twin.
//!
//! Rules (learn.microsoft.com/azure/iot/howto-manage-digital-twin):
//! * `add` and `replace` set a desired value, `remove` clears it; `/{property}` is a root
//!   property, `/{component}/{property}` a component's.
//! * `/{component}` with a value holding an empty `"$metadata": {}` sets the component's desired
//!   values to exactly those given, clearing the others; removing it clears them all.
//! * Names are DTDL names (1-64 of `[A-Za-z0-9_]`, no leading digit or underscore, no trailing
//!   underscore), values hold no arrays and nest at most five levels deep.
//!
//! The merge patch replaces rather than merges: members the old value had and the new one
//! lacks are sent as `null`, so the device sees exactly what the service set.

use serde_json::{Map, Value};

use super::{COMPONENT_MARKER, METADATA, is_component};

/// Objects inside a property value may nest this deep.
const MAX_VALUE_DEPTH: usize = 5;
/// Longest DTDL name.
const MAX_NAME_LEN: usize = 64;

/// Why a digital twin patch was refused; every variant reads as one sentence.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DigitalTwinPatchError {
    #[error(
        "the digital twin patch must be a JSON array of operations, like [{{\"op\": \"add\", \"path\": \"/name\", \"value\": 1}}]"
    )]
    NotAnArray,
    #[error("the digital twin patch has no operations; send at least one add, replace or remove")]
    Empty,
    #[error("the operation at index {index} must be a JSON object with \"op\" and \"path\"")]
    NotAnObject { index: usize },
    #[error("the operation at index {index} has no \"{field}\" string")]
    MissingField { index: usize, field: &'static str },
    #[error("the operation at index {index} has no \"value\"; add and replace need one")]
    MissingValue { index: usize },
    #[error(
        "the operation at index {index} has op '{op}'; the digital twin API takes add, replace and remove"
    )]
    UnsupportedOp { index: usize, op: String },
    #[error(
        "the path '{path}' is not /{{property}} or /{{component}}/{{property}}; patch whole properties"
    )]
    BadPath { path: String },
    #[error(
        "'{name}' in '{path}' is not a DTDL name: use 1 to 64 letters, digits and underscores, not starting with a digit or underscore nor ending with an underscore"
    )]
    BadName { path: String, name: String },
    #[error("the value at {path} holds an array; digital twin properties cannot hold arrays")]
    ArrayValue { path: String },
    #[error("the value at {path} nests deeper than {MAX_VALUE_DEPTH} levels")]
    TooDeep { path: String },
    #[error(
        "'{name}' is a component: give the value an empty \"$metadata\": {{}} to replace it whole, or patch /{name}/{{property}}"
    )]
    ComponentNeedsMarker { name: String },
    #[error("the \"$metadata\" marker in the value of /{name} must be an empty object")]
    MarkerNotEmpty { name: String },
    #[error(
        "'{name}' is a property, not a component, so '{path}' cannot be patched; patch /{name} with its whole value"
    )]
    NotAComponent { name: String, path: String },
}

type Error = DigitalTwinPatchError;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Op {
    Set,
    Remove,
}

/// What an operation's path names.
enum Target {
    Member(String),
    ComponentProperty(String, String),
}

/// The desired-properties merge patch for `ops`, given the twin's current desired and
/// reported properties (which tell components from properties).
pub fn desired_patch(
    ops: &Value,
    desired: &Map<String, Value>,
    reported: &Map<String, Value>,
) -> Result<Map<String, Value>, Error> {
    let ops = ops.as_array().ok_or(Error::NotAnArray)?;
    if ops.is_empty() {
        return Err(Error::Empty);
    }
    let mut patch = Map::new();
    for (index, op) in ops.iter().enumerate() {
        let (kind, target, value) = parse_op(index, op)?;
        let mut state = PatchState {
            patch: &mut patch,
            desired,
            reported,
        };
        match target {
            Target::Member(name) => state.member(name, kind, value)?,
            Target::ComponentProperty(c, p) => state.component_property(c, p, kind, value)?,
        }
    }
    Ok(patch)
}

fn parse_op(index: usize, op: &Value) -> Result<(Op, Target, Option<&Value>), Error> {
    let op = op.as_object().ok_or(Error::NotAnObject { index })?;
    let text = |field: &'static str| {
        op.get(field)
            .and_then(Value::as_str)
            .ok_or(Error::MissingField { index, field })
    };
    let kind = match text("op")? {
        "add" | "replace" => Op::Set,
        "remove" => Op::Remove,
        other => {
            return Err(Error::UnsupportedOp {
                index,
                op: other.to_string(),
            });
        }
    };
    let target = parse_path(text("path")?)?;
    let value = op.get("value");
    if kind == Op::Set && value.is_none() {
        return Err(Error::MissingValue { index });
    }
    Ok((kind, target, value))
}

/// A JSON Pointer (RFC 6901) of one or two DTDL names.
fn parse_path(path: &str) -> Result<Target, Error> {
    let bad = || Error::BadPath {
        path: path.to_string(),
    };
    let rest = path.strip_prefix('/').ok_or_else(bad)?;
    let segments: Vec<String> = rest
        .split('/')
        .map(|s| s.replace("~1", "/").replace("~0", "~"))
        .collect();
    for name in &segments {
        check_name(name, path)?;
    }
    let mut segments = segments.into_iter();
    match (segments.next(), segments.next(), segments.next()) {
        (Some(m), None, None) => Ok(Target::Member(m)),
        (Some(c), Some(p), None) => Ok(Target::ComponentProperty(c, p)),
        _ => Err(bad()),
    }
}

/// DTDL names: `^[A-Za-z](?:[A-Za-z0-9_]*[A-Za-z0-9])?$`, at most 64 characters.
pub(crate) fn is_dtdl_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= MAX_NAME_LEN
        && b[0].is_ascii_alphabetic()
        && b[b.len() - 1] != b'_'
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_')
}

fn check_name(name: &str, path: &str) -> Result<(), Error> {
    if is_dtdl_name(name) {
        Ok(())
    } else {
        Err(Error::BadName {
            path: path.to_string(),
            name: name.escape_debug().to_string(),
        })
    }
}

/// A property value: no arrays, objects at most five deep, their keys DTDL names.
fn check_value(value: &Value, path: &str, depth: usize) -> Result<(), Error> {
    match value {
        Value::Array(_) => Err(Error::ArrayValue {
            path: path.to_string(),
        }),
        Value::Object(map) => {
            if depth >= MAX_VALUE_DEPTH {
                return Err(Error::TooDeep {
                    path: path.to_string(),
                });
            }
            for (k, v) in map {
                let child = format!("{path}/{k}");
                check_name(k, &child)?;
                check_value(v, &child, depth + 1)?;
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// `new` as a merge patch over `old`: members `old` had and `new` lacks become `null`,
/// so applying it leaves exactly `new`.
fn replacing(old: Option<&Value>, new: &Value) -> Value {
    let (Some(Value::Object(old)), Value::Object(new)) = (old, new) else {
        return new.clone();
    };
    let mut out = Map::new();
    for (k, v) in new {
        out.insert(k.clone(), replacing(old.get(k), v));
    }
    for k in old.keys() {
        if !new.contains_key(k) {
            out.insert(k.clone(), Value::Null);
        }
    }
    Value::Object(out)
}

fn marker() -> Map<String, Value> {
    let mut m = Map::new();
    m.insert(COMPONENT_MARKER.into(), Value::String("c".into()));
    m
}

/// The patch being built, and the twin it will apply to.
struct PatchState<'a> {
    patch: &'a mut Map<String, Value>,
    desired: &'a Map<String, Value>,
    reported: &'a Map<String, Value>,
}

impl PatchState<'_> {
    /// What `name` holds in this patch, desired and reported properties.
    fn held(&self, name: &str) -> impl Iterator<Item = &Value> {
        [
            self.patch.get(name),
            self.desired.get(name),
            self.reported.get(name),
        ]
        .into_iter()
        .flatten()
    }

    fn is_component(&self, name: &str) -> bool {
        self.held(name).any(is_component)
    }

    /// Exists as a property (not a component) in desired, reported or this patch.
    fn is_property(&self, name: &str) -> bool {
        self.held(name).any(|v| !v.is_null() && !is_component(v))
    }

    /// A component whose desired values are all cleared: the start of a replacement.
    fn cleared_component(&self, name: &str) -> Map<String, Value> {
        let mut out = marker();
        if let Some(old) = self.desired.get(name).and_then(Value::as_object) {
            for k in old.keys().filter(|k| *k != COMPONENT_MARKER) {
                out.insert(k.clone(), Value::Null);
            }
        }
        out
    }

    /// `/{name}`: a root property, or a whole component.
    fn member(&mut self, name: String, op: Op, value: Option<&Value>) -> Result<(), Error> {
        let Some(value) = value.filter(|_| op == Op::Set) else {
            self.patch.insert(name, Value::Null);
            return Ok(());
        };
        let path = format!("/{name}");
        if let Some(Value::Object(members)) = Some(value)
            && let Some(marker_value) = members.get(METADATA)
        {
            if marker_value.as_object().is_none_or(|m| !m.is_empty()) {
                return Err(Error::MarkerNotEmpty { name });
            }
            let mut component = self.cleared_component(&name);
            for (k, v) in members.iter().filter(|(k, _)| *k != METADATA) {
                let child = format!("{path}/{k}");
                check_name(k, &child)?;
                check_value(v, &child, 0)?;
                component.insert(k.clone(), v.clone());
            }
            self.patch.insert(name, Value::Object(component));
            return Ok(());
        }
        if self.is_component(&name) {
            return Err(Error::ComponentNeedsMarker { name });
        }
        check_value(value, &path, 0)?;
        let v = replacing(self.desired.get(&name), value);
        self.patch.insert(name, v);
        Ok(())
    }

    /// `/{component}/{property}`.
    fn component_property(
        &mut self,
        component: String,
        property: String,
        op: Op,
        value: Option<&Value>,
    ) -> Result<(), Error> {
        let path = format!("/{component}/{property}");
        if !self.is_component(&component) && self.is_property(&component) {
            return Err(Error::NotAComponent {
                name: component,
                path,
            });
        }
        let old = self.desired.get(&component).and_then(|c| c.get(&property));
        let new = match value.filter(|_| op == Op::Set) {
            Some(v) => {
                check_value(v, &path, 0)?;
                replacing(old, v)
            }
            // Clearing what is not set changes nothing (and must not create a component).
            None if old.is_none() && !self.patch.contains_key(&component) => return Ok(()),
            None => Value::Null,
        };
        let mut entry = match self.patch.remove(&component) {
            Some(Value::Object(m)) => m,
            // Removed earlier in this patch: what is set now starts from nothing.
            Some(_) => self.cleared_component(&component),
            None => marker(),
        };
        entry.insert(property, new);
        self.patch.insert(component, Value::Object(entry));
        Ok(())
    }
}
