//! IoT Plug and Play digital twins (`/digitaltwins/{id}`): the digital twin document IoT Hub
//! derives from a device twin and its model id, and the command method names. The JSON Patch
//! a service sends to update one is turned into a desired-properties patch in `patch`.
//!
//! How the view is derived (learn.microsoft.com/azure/iot/concepts-digital-twin):
//! * `$dtId` is the device id; `$metadata.$model` the model id, when the device announced one.
//! * A root member of desired or reported properties holding `"__t": "c"` is a component: an
//!   object of its properties plus its own `$metadata` (always present: it marks a component).
//! * A property's value is the reported one; a writable property's acknowledgement
//!   `{"value", "ac", "av", "ad"}` gives the value and `ackCode`/`ackVersion`/`ackDescription`.
//! * A desired value gives `desiredValue` and `desiredVersion` (the desired `$version` at which
//!   it was last set, its `$lastUpdatedVersion`); a property only desired has no value yet.
//! * `lastUpdateTime` is when the device last reported the property (a desired change does not
//!   move it: the Update example of howto-manage-digital-twin keeps it).

mod patch;

pub use patch::{DigitalTwinPatchError, desired_patch};

use serde_json::{Map, Value};

use crate::twin::Twin;

/// The component marker in device twins (PnP convention).
pub(crate) const COMPONENT_MARKER: &str = "__t";
const METADATA: &str = "$metadata";

/// Is this twin member a component (`{"__t": "c", ...}`)?
pub(crate) fn is_component(value: &Value) -> bool {
    value.get(COMPONENT_MARKER).and_then(Value::as_str) == Some("c")
}

/// The direct method a digital twin command invokes: `command` on the root component,
/// `component*command` on a named one (PnP convention).
pub fn command_method_name(component: Option<&str>, command: &str) -> String {
    match component {
        Some(c) => format!("{c}*{command}"),
        None => command.to_string(),
    }
}

/// The digital twin of a device, as `GET /digitaltwins/{id}` returns it.
pub fn digital_twin(device_id: &str, model_id: Option<&str>, twin: &Twin) -> Value {
    let mut out = Map::new();
    out.insert("$dtId".into(), Value::String(device_id.to_string()));
    let root = Level {
        desired: Some((&twin.desired.properties, &twin.desired.metadata)),
        reported: Some((&twin.reported.properties, &twin.reported.metadata)),
        desired_version: twin.desired.version,
    };
    let (props, properties_metadata) = root.view(true);
    out.extend(props);
    let mut metadata = Map::new();
    if let Some(model) = model_id.filter(|m| !m.is_empty()) {
        metadata.insert("$model".into(), Value::String(model.to_string()));
    }
    metadata.extend(properties_metadata);
    out.insert(METADATA.into(), Value::Object(metadata));
    Value::Object(out)
}

/// One side (desired or reported) of a level: its properties and their `$metadata` tree.
type Side<'a> = (&'a Map<String, Value>, &'a Map<String, Value>);

/// One level of the twin (the root, or one component): properties with their `$metadata`.
struct Level<'a> {
    desired: Option<Side<'a>>,
    reported: Option<Side<'a>>,
    /// The desired section's `$version`, for properties whose metadata lost their own.
    desired_version: u64,
}

impl<'a> Level<'a> {
    /// The level's members (property values and, at the root, components) and its
    /// `$metadata` entries.
    fn view(&self, root: bool) -> (Map<String, Value>, Map<String, Value>) {
        let mut members = Map::new();
        let mut metadata = Map::new();
        for name in self.names() {
            let desired = self.desired.and_then(|(p, _)| p.get(name));
            let reported = self.reported.and_then(|(p, _)| p.get(name));
            if root && (desired.is_some_and(is_component) || reported.is_some_and(is_component)) {
                members.insert(name.clone(), self.component(name));
                continue;
            }
            let (value, meta) = self.property(name, desired, reported);
            if let Some(v) = value {
                members.insert(name.clone(), v);
            }
            metadata.insert(name.clone(), Value::Object(meta));
        }
        (members, metadata)
    }

    /// Every member name of desired then reported, once, without the component marker.
    fn names(&self) -> Vec<&'a String> {
        let mut names: Vec<&String> = Vec::new();
        for (props, _) in [self.desired, self.reported].into_iter().flatten() {
            for k in props.keys() {
                if k != COMPONENT_MARKER && !names.contains(&k) {
                    names.push(k);
                }
            }
        }
        names
    }

    fn component(&self, name: &str) -> Value {
        let child = |side: Option<Side<'a>>| {
            let (props, meta) = side?;
            let props = props.get(name)?.as_object()?;
            Some((props, object_at(meta, name).unwrap_or(empty())))
        };
        let level = Level {
            desired: child(self.desired),
            reported: child(self.reported),
            desired_version: self.desired_version,
        };
        let (mut members, metadata) = level.view(false);
        members.insert(METADATA.into(), Value::Object(metadata));
        Value::Object(members)
    }

    /// A property's digital twin value (reported) and its `$metadata` entry.
    fn property(
        &self,
        name: &str,
        desired: Option<&Value>,
        reported: Option<&Value>,
    ) -> (Option<Value>, Map<String, Value>) {
        let mut meta = Map::new();
        if let (Some(d), Some((_, dmeta))) = (desired, self.desired) {
            meta.insert("desiredValue".into(), d.clone());
            let version = object_at(dmeta, name)
                .and_then(|m| m.get("$lastUpdatedVersion"))
                .and_then(Value::as_u64)
                .unwrap_or(self.desired_version);
            meta.insert("desiredVersion".into(), Value::from(version));
        }
        let Some(reported) = reported else {
            return (None, meta);
        };
        let value = match Ack::of(reported) {
            Some(ack) => {
                if let Some(v) = ack.version {
                    meta.insert("ackVersion".into(), v.clone());
                }
                if let Some(c) = ack.code {
                    meta.insert("ackCode".into(), c.clone());
                }
                if let Some(d) = ack.description {
                    meta.insert("ackDescription".into(), d.clone());
                }
                ack.value.clone()
            }
            None => reported.clone(),
        };
        if let Some(t) = self
            .reported
            .and_then(|(_, m)| object_at(m, name))
            .and_then(|m| m.get("$lastUpdated"))
        {
            meta.insert("lastUpdateTime".into(), t.clone());
        }
        (Some(value), meta)
    }
}

/// A writable property's acknowledgement as a device reports it:
/// `{"value": v, "ac": code, "av": version, "ad": description}` (PnP convention).
struct Ack<'a> {
    value: &'a Value,
    code: Option<&'a Value>,
    version: Option<&'a Value>,
    description: Option<&'a Value>,
}

impl<'a> Ack<'a> {
    /// An object with `value` and an `ac` code; a plain object property has neither.
    fn of(reported: &'a Value) -> Option<Ack<'a>> {
        let o = reported.as_object()?;
        let value = o.get("value")?;
        let code = o.get("ac")?;
        Some(Ack {
            value,
            code: Some(code),
            version: o.get("av"),
            description: o.get("ad"),
        })
    }
}

fn object_at<'a>(map: &'a Map<String, Value>, key: &str) -> Option<&'a Map<String, Value>> {
    map.get(key)?.as_object()
}

fn empty() -> &'static Map<String, Value> {
    static EMPTY: std::sync::OnceLock<Map<String, Value>> = std::sync::OnceLock::new();
    EMPTY.get_or_init(Map::new)
}

#[cfg(test)]
mod tests;
