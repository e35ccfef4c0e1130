//! Reading a twin as the service REST API returns it
//! (`{"deviceId","etag","version","tags","properties":{"desired","reported"}}`) into typed parts
//! the explorer shows, and building the service PATCH body for one edited section.
//! Shares the wire key names with `twin` so the shape is defined in one place.

use serde_json::{Map, Value};

use super::twin::Section;

const VERSION_KEY: &str = "$version";
const METADATA_KEY: &str = "$metadata";
const LAST_UPDATED: &str = "$lastUpdated";

/// One of desired or reported, split into its properties and bookkeeping.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ServiceTwinSection {
    /// Properties without `$version` and `$metadata`.
    pub properties: Map<String, Value>,
    /// `$metadata`, for per-leaf `$lastUpdated` / `$lastUpdatedVersion`.
    pub metadata: Map<String, Value>,
    pub version: u64,
    /// `$metadata.$lastUpdated`, as the hub wrote it.
    pub last_updated: Option<String>,
}

/// A service-side twin document.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ServiceTwin {
    pub device_id: String,
    pub module_id: Option<String>,
    pub etag: String,
    pub version: u64,
    /// The IoT Plug and Play model the device announced; None when it announced none.
    pub model_id: Option<String>,
    pub tags: Map<String, Value>,
    pub desired: ServiceTwinSection,
    pub reported: ServiceTwinSection,
}

impl ServiceTwinSection {
    fn from_json(value: Option<&Value>) -> Self {
        let Some(map) = value.and_then(Value::as_object) else {
            return Self::default();
        };
        let metadata = map
            .get(METADATA_KEY)
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        Self {
            properties: map
                .iter()
                .filter(|(k, _)| k.as_str() != VERSION_KEY && k.as_str() != METADATA_KEY)
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            last_updated: metadata
                .get(LAST_UPDATED)
                .and_then(Value::as_str)
                .map(str::to_owned),
            version: map.get(VERSION_KEY).and_then(Value::as_u64).unwrap_or(0),
            metadata,
        }
    }

    /// The section as `twin_diff::diff` wants it: properties plus `$metadata`.
    pub fn with_metadata(&self) -> Map<String, Value> {
        let mut out = self.properties.clone();
        out.insert(METADATA_KEY.into(), Value::Object(self.metadata.clone()));
        out
    }
}

impl ServiceTwin {
    /// Lenient: missing parts become empty, so a partial twin still shows.
    pub fn from_json(value: &Value) -> Self {
        let text = |k: &str| value.get(k).and_then(Value::as_str).map(str::to_owned);
        let properties = value.get("properties");
        Self {
            device_id: text("deviceId").unwrap_or_default(),
            module_id: text("moduleId"),
            etag: text("etag").unwrap_or_default(),
            version: value.get("version").and_then(Value::as_u64).unwrap_or(0),
            model_id: text("modelId").filter(|m| !m.is_empty()),
            tags: value
                .get("tags")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default(),
            desired: ServiceTwinSection::from_json(properties.and_then(|p| p.get("desired"))),
            reported: ServiceTwinSection::from_json(properties.and_then(|p| p.get("reported"))),
        }
    }

    /// The properties of one section (tags, desired or reported) without `$`-bookkeeping.
    pub fn section(&self, section: Section) -> &Map<String, Value> {
        match section {
            Section::Tags => &self.tags,
            Section::Desired => &self.desired.properties,
            Section::Reported => &self.reported.properties,
        }
    }
}

/// Service PATCH body changing one section: `{"tags":{..}}` or `{"properties":{"desired":{..}}}`.
pub fn patch_body(section: Section, patch: Map<String, Value>) -> Value {
    let mut out = Map::new();
    match section {
        Section::Tags => {
            out.insert("tags".into(), Value::Object(patch));
        }
        Section::Desired | Section::Reported => {
            let key = if section == Section::Desired {
                "desired"
            } else {
                "reported"
            };
            let mut properties = Map::new();
            properties.insert(key.into(), Value::Object(patch));
            out.insert("properties".into(), Value::Object(properties));
        }
    }
    Value::Object(out)
}

/// JSON merge patch (RFC 7386) that turns `from` into `to`: removed keys become `null`,
/// changed objects recurse, everything else is replaced.
pub fn merge_patch(from: &Map<String, Value>, to: &Map<String, Value>) -> Map<String, Value> {
    let mut out = Map::new();
    for key in from.keys() {
        if !to.contains_key(key) {
            out.insert(key.clone(), Value::Null);
        }
    }
    for (key, new) in to {
        match (from.get(key), new) {
            (Some(old), new) if old == new => {}
            (Some(Value::Object(old)), Value::Object(new)) => {
                out.insert(key.clone(), Value::Object(merge_patch(old, new)));
            }
            _ => {
                out.insert(key.clone(), new.clone());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_service_twin() {
        let t = ServiceTwin::from_json(&json!({
            "deviceId": "d1", "etag": "AAAAAAAAAAc=", "version": 7,
            "tags": {"site": "a"},
            "properties": {
                "desired": {"t": 1, "$metadata": {"$lastUpdated": "2024-01-02T03:04:05.000Z"}, "$version": 4},
                "reported": {"t": 2, "$version": 9}
            }
        }));
        assert_eq!(t.device_id, "d1");
        assert_eq!(t.version, 7);
        assert_eq!(t.desired.version, 4);
        assert_eq!(t.desired.properties, *json!({"t": 1}).as_object().unwrap());
        assert_eq!(
            t.desired.last_updated.as_deref(),
            Some("2024-01-02T03:04:05.000Z")
        );
        assert_eq!(t.reported.version, 9);
        assert!(t.reported.last_updated.is_none());
        assert_eq!(t.section(Section::Tags)["site"], json!("a"));
        assert_eq!(ServiceTwin::from_json(&json!(null)), ServiceTwin::default());
    }

    #[test]
    fn merge_patch_and_body() {
        let from = json!({"a": 1, "b": {"c": 1, "d": 2}, "gone": true});
        let to = json!({"a": 1, "b": {"c": 5, "d": 2}, "new": [1]});
        let p = merge_patch(from.as_object().unwrap(), to.as_object().unwrap());
        assert_eq!(
            Value::Object(p.clone()),
            json!({"gone": null, "b": {"c": 5}, "new": [1]})
        );
        assert_eq!(
            patch_body(Section::Desired, p),
            json!({"properties": {"desired": {"gone": null, "b": {"c": 5}, "new": [1]}}})
        );
        assert_eq!(patch_body(Section::Tags, Map::new()), json!({"tags": {}}));
    }
}
