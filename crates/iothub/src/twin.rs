//! Device and module twins: the document the hub stores, the JSON merge-patch it applies,
//! the `$metadata`/`$version` bookkeeping Azure shows, and the twin limits it enforces
//! (protocol reference §2.4, §5.3).
//!
//! Choices where Azure is not documented:
//! * Timestamps in `$metadata` are `YYYY-MM-DDTHH:MM:SS.mmmZ` (milliseconds, `Z`); Azure
//!   sometimes shows 7 fractional digits, clients parse both.
//! * A patch that is empty once the hub-added `$version`/`$metadata` keys are dropped is a
//!   no-op: nothing changes, no version moves.
//! * Depth counts every object or array below the section root, so `{"a":{"b":1}}` has depth 2.
//! * In size accounting `null` (possible only inside arrays) counts 4 bytes, like a boolean.
//! * Tags carry no `$metadata` and no `$version`; changing them bumps only the twin version
//!   (and so the etag).

use base64::Engine as _;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Tags may hold at most this many bytes (§5.3).
pub const TAGS_MAX_BYTES: usize = 8 * 1024;
/// Desired and reported properties may each hold at most this many bytes (§5.3).
pub const PROPERTIES_MAX_BYTES: usize = 32 * 1024;
/// Objects and arrays may nest this deep below the section root.
pub const MAX_DEPTH: usize = 10;
/// Longest key, in UTF-8 bytes.
pub const MAX_KEY_BYTES: usize = 1024;
/// Longest string value, in UTF-8 bytes.
pub const MAX_STRING_BYTES: usize = 4 * 1024;
/// Smallest integer a twin may hold (-2^52).
pub const MIN_INTEGER: i64 = -4_503_599_627_370_496;
/// Largest integer a twin may hold (2^52 - 1).
pub const MAX_INTEGER: i64 = 4_503_599_627_370_495;

const VERSION_KEY: &str = "$version";
const METADATA_KEY: &str = "$metadata";
const LAST_UPDATED: &str = "$lastUpdated";
const LAST_UPDATED_VERSION: &str = "$lastUpdatedVersion";

/// A twin as the hub stores it (serde is the storage format, not a wire format).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Twin {
    pub tags: Map<String, Value>,
    pub desired: TwinSection,
    pub reported: TwinSection,
    /// Twin version: +1 on every change to any section.
    pub version: u64,
}

/// Desired or reported properties with their `$metadata` tree and `$version`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TwinSection {
    /// The properties, never containing `$`-keys.
    pub properties: Map<String, Value>,
    /// The `$metadata` tree, shaped like `properties`.
    pub metadata: Map<String, Value>,
    pub version: u64,
}

/// The three writable parts of a twin.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Section {
    Tags,
    Desired,
    Reported,
}

impl Section {
    /// The section's path in the service twin JSON, used in error messages and queries.
    pub fn path(self) -> &'static str {
        match self {
            Section::Tags => "tags",
            Section::Desired => "properties.desired",
            Section::Reported => "properties.reported",
        }
    }

    /// Byte limit for the section (§5.3).
    pub fn max_bytes(self) -> usize {
        match self {
            Section::Tags => TAGS_MAX_BYTES,
            Section::Desired | Section::Reported => PROPERTIES_MAX_BYTES,
        }
    }
}

/// Which key rule a twin key breaks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyProblem {
    TooLong { len: usize },
    ControlChar,
    Dot,
    Dollar,
    Space,
}

impl std::fmt::Display for KeyProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyProblem::TooLong { len } => {
                write!(
                    f,
                    "is {len} bytes long, over the {MAX_KEY_BYTES}-byte limit"
                )
            }
            KeyProblem::ControlChar => f.write_str("contains a control character"),
            KeyProblem::Dot => f.write_str("contains '.'"),
            KeyProblem::Dollar => f.write_str("contains '$'"),
            KeyProblem::Space => f.write_str("contains a space"),
        }
    }
}

/// Why a twin update was refused. The REST layer maps all of these to `ArgumentInvalid`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TwinError {
    #[error("{what} must be a JSON object")]
    NotAnObject { what: String },
    #[error("the twin document is not valid JSON ({reason})")]
    Malformed { reason: String },
    #[error("the twin key at {} {problem}, so rename it", shown(.path))]
    KeyInvalid { path: String, problem: KeyProblem },
    #[error("{} nests deeper than the limit of {limit} levels", shown(.path))]
    TooDeep { path: String, limit: usize },
    #[error("{section} would be {size} bytes, over its limit of {limit} bytes")]
    TooLarge {
        section: &'static str,
        size: usize,
        limit: usize,
    },
    #[error("the string at {} is {len} bytes, over the limit of {limit} bytes", shown(.path))]
    StringTooLong {
        path: String,
        len: usize,
        limit: usize,
    },
    #[error(
        "the integer at {} is outside the range {MIN_INTEGER} to {MAX_INTEGER}",
        shown(.path)
    )]
    IntegerOutOfRange { path: String },
    #[error("{what} is read-only for services and cannot be updated")]
    ReadOnly { what: String },
}

impl TwinError {
    /// True for the section size limit (some callers answer 413-like errors for it).
    pub fn is_size(&self) -> bool {
        matches!(self, TwinError::TooLarge { .. })
    }

    /// The twin path the error is about, when it is about one place.
    pub fn path(&self) -> Option<&str> {
        match self {
            TwinError::KeyInvalid { path, .. }
            | TwinError::TooDeep { path, .. }
            | TwinError::StringTooLong { path, .. }
            | TwinError::IntegerOutOfRange { path } => Some(path),
            TwinError::TooLarge { section, .. } => Some(section),
            _ => None,
        }
    }
}

/// Paths carry untrusted keys: escape control characters before they reach a terminal.
fn shown(path: &str) -> String {
    path.escape_debug().to_string()
}

/// Azure's `$metadata` timestamp: milliseconds and `Z`.
fn format_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

impl TwinSection {
    fn new(now: DateTime<Utc>) -> TwinSection {
        let mut metadata = Map::new();
        metadata.insert(LAST_UPDATED.into(), Value::String(format_time(now)));
        TwinSection {
            properties: Map::new(),
            metadata,
            version: 1,
        }
    }

    /// `{...props, "$metadata": {...}, "$version": N}`.
    fn to_json(&self, with_metadata: bool) -> Value {
        let mut out = self.properties.clone();
        if with_metadata {
            out.insert(METADATA_KEY.into(), Value::Object(self.metadata.clone()));
        }
        out.insert(VERSION_KEY.into(), Value::from(self.version));
        Value::Object(out)
    }

    /// Installs new properties at the next version and stamps what `patch` touched.
    fn commit(
        &mut self,
        properties: Map<String, Value>,
        patch: &Map<String, Value>,
        fresh: bool,
        with_version: bool,
        now: DateTime<Utc>,
    ) {
        self.version += 1;
        let mut stamp = Map::new();
        stamp.insert(LAST_UPDATED.into(), Value::String(format_time(now)));
        if with_version {
            stamp.insert(LAST_UPDATED_VERSION.into(), Value::from(self.version));
        }
        if fresh {
            self.metadata = Map::new();
        }
        stamp_metadata(&mut self.metadata, patch, &stamp);
        self.properties = properties;
    }
}

/// Sets `stamp` on this level, then: deleted keys lose their metadata, leaves get a fresh
/// stamp (dropping any old children), objects are stamped and walked.
fn stamp_metadata(
    meta: &mut Map<String, Value>,
    patch: &Map<String, Value>,
    stamp: &Map<String, Value>,
) {
    for (k, v) in stamp {
        meta.insert(k.clone(), v.clone());
    }
    for (key, value) in patch {
        match value {
            Value::Null => {
                meta.remove(key);
            }
            Value::Object(child_patch) => {
                let child = meta
                    .entry(key.clone())
                    .or_insert_with(|| Value::Object(Map::new()));
                if !child.is_object() {
                    *child = Value::Object(Map::new());
                }
                if let Value::Object(child) = child {
                    stamp_metadata(child, child_patch, stamp);
                }
            }
            _ => {
                meta.insert(key.clone(), Value::Object(stamp.clone()));
            }
        }
    }
}

/// RFC 7386 merge patch: `null` deletes, objects merge, everything else (arrays too) replaces.
pub fn merge(target: &mut Map<String, Value>, patch: &Map<String, Value>) {
    for (key, value) in patch {
        match value {
            Value::Null => {
                target.remove(key);
            }
            Value::Object(child_patch) => {
                let child = target
                    .entry(key.clone())
                    .or_insert_with(|| Value::Object(Map::new()));
                if !child.is_object() {
                    *child = Value::Object(Map::new());
                }
                if let Value::Object(child) = child {
                    merge(child, child_patch);
                }
            }
            other => {
                target.insert(key.clone(), other.clone());
            }
        }
    }
}

/// The patch without the root `$version`/`$metadata` a client may echo back.
fn without_hub_keys(patch: &Map<String, Value>) -> Map<String, Value> {
    patch
        .iter()
        .filter(|(k, _)| k.as_str() != VERSION_KEY && k.as_str() != METADATA_KEY)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn check_key(key: &str, path: &str) -> Result<(), TwinError> {
    let problem = if key.len() > MAX_KEY_BYTES {
        Some(KeyProblem::TooLong { len: key.len() })
    } else if key.chars().any(char::is_control) {
        // char::is_control is exactly Unicode Cc: C0, DEL and C1.
        Some(KeyProblem::ControlChar)
    } else if key.contains('.') {
        Some(KeyProblem::Dot)
    } else if key.contains('$') {
        Some(KeyProblem::Dollar)
    } else if key.contains(' ') {
        Some(KeyProblem::Space)
    } else {
        None
    };
    match problem {
        Some(problem) => Err(TwinError::KeyInvalid {
            path: path.to_string(),
            problem,
        }),
        None => Ok(()),
    }
}

/// Checks key rules, string lengths, integer range and depth of `value` at `path`.
/// `depth` is the nesting level of `value` itself (the section root is 0).
fn check_value(value: &Value, path: &str, depth: usize) -> Result<(), TwinError> {
    match value {
        Value::String(s) if s.len() > MAX_STRING_BYTES => Err(TwinError::StringTooLong {
            path: path.to_string(),
            len: s.len(),
            limit: MAX_STRING_BYTES,
        }),
        Value::Number(n) => {
            let in_range = match (n.as_i64(), n.as_u64()) {
                (Some(i), _) => (MIN_INTEGER..=MAX_INTEGER).contains(&i),
                (None, Some(_)) => false,
                // Floats are not integers; Azure's range applies to integers only.
                (None, None) => true,
            };
            if in_range {
                Ok(())
            } else {
                Err(TwinError::IntegerOutOfRange {
                    path: path.to_string(),
                })
            }
        }
        Value::Object(map) => check_object(map, path, depth),
        Value::Array(items) => {
            if depth > MAX_DEPTH {
                return Err(TwinError::TooDeep {
                    path: path.to_string(),
                    limit: MAX_DEPTH,
                });
            }
            for (i, item) in items.iter().enumerate() {
                check_value(item, &format!("{path}[{i}]"), depth + 1)?;
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

fn check_object(map: &Map<String, Value>, path: &str, depth: usize) -> Result<(), TwinError> {
    if depth > MAX_DEPTH {
        return Err(TwinError::TooDeep {
            path: path.to_string(),
            limit: MAX_DEPTH,
        });
    }
    for (key, value) in map {
        let child_path = format!("{path}.{key}");
        check_key(key, &child_path)?;
        check_value(value, &child_path, depth + 1)?;
    }
    Ok(())
}

/// Twin size: UTF-8 key and string lengths, numbers 8, booleans (and nulls) 4.
fn value_size(value: &Value) -> usize {
    match value {
        Value::Null | Value::Bool(_) => 4,
        Value::Number(_) => 8,
        Value::String(s) => s.len(),
        Value::Array(items) => items.iter().map(value_size).sum(),
        Value::Object(map) => map_size(map),
    }
}

fn map_size(map: &Map<String, Value>) -> usize {
    map.iter()
        .filter(|(k, _)| !k.starts_with('$'))
        .map(|(k, v)| k.len() + value_size(v))
        .sum()
}

/// Size of a section's properties as the limits count it (`$`-keys excluded).
pub fn section_size(properties: &Map<String, Value>) -> usize {
    map_size(properties)
}

impl Twin {
    /// A new twin: empty sections at `$version` 1 with `$metadata: {"$lastUpdated": now}`, version 1.
    pub fn new(now: DateTime<Utc>) -> Twin {
        Twin {
            tags: Map::new(),
            desired: TwinSection::new(now),
            reported: TwinSection::new(now),
            version: 1,
        }
    }

    /// Twin etag: base64 of the 8-byte big-endian `version` (Azure shape "AAAAAAAAAAc=").
    pub fn etag(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.version.to_be_bytes())
    }

    fn properties(&self, section: Section) -> &Map<String, Value> {
        match section {
            Section::Tags => &self.tags,
            Section::Desired => &self.desired.properties,
            Section::Reported => &self.reported.properties,
        }
    }

    /// Merge-patch (null deletes, objects merge recursively, arrays replace) after validating
    /// key rules on the patch and limits on the result; on error nothing changes. Bumps the
    /// section version (not for tags) and the twin version and stamps `$metadata`
    /// (`$lastUpdated` at every touched level, plus `$lastUpdatedVersion` in desired).
    /// Root `$version`/`$metadata` keys in the patch are ignored; an empty patch is a no-op.
    pub fn patch(
        &mut self,
        section: Section,
        patch: &Map<String, Value>,
        now: DateTime<Utc>,
    ) -> Result<(), TwinError> {
        let patch = without_hub_keys(patch);
        if patch.is_empty() {
            return Ok(());
        }
        check_object(&patch, section.path(), 0)?;
        let mut result = self.properties(section).clone();
        merge(&mut result, &patch);
        self.apply(section, result, &patch, false, now)
    }

    /// Replaces the whole section (PUT) with the same validation; `null` members are dropped
    /// and `$metadata` is rebuilt. Versions bump even when the content is unchanged.
    pub fn replace(
        &mut self,
        section: Section,
        value: Map<String, Value>,
        now: DateTime<Utc>,
    ) -> Result<(), TwinError> {
        let value = without_hub_keys(&value);
        check_object(&value, section.path(), 0)?;
        let mut result = Map::new();
        merge(&mut result, &value);
        self.apply(section, result, &value, true, now)
    }

    /// Size check on the result, then the commit: the only place a twin changes.
    fn apply(
        &mut self,
        section: Section,
        result: Map<String, Value>,
        patch: &Map<String, Value>,
        fresh: bool,
        now: DateTime<Utc>,
    ) -> Result<(), TwinError> {
        let size = section_size(&result);
        if size > section.max_bytes() {
            return Err(TwinError::TooLarge {
                section: section.path(),
                size,
                limit: section.max_bytes(),
            });
        }
        match section {
            Section::Tags => self.tags = result,
            Section::Desired => self.desired.commit(result, patch, fresh, true, now),
            Section::Reported => self.reported.commit(result, patch, fresh, false, now),
        }
        self.version += 1;
        Ok(())
    }

    /// A section as the service REST API shows it: `{..., "$metadata": {...}, "$version": N}`
    /// for properties, the bare object for tags.
    pub fn section_json(&self, section: Section) -> Value {
        match section {
            Section::Tags => Value::Object(self.tags.clone()),
            Section::Desired => self.desired.to_json(true),
            Section::Reported => self.reported.to_json(true),
        }
    }

    /// What a device gets on MQTT twin GET:
    /// `{"desired":{...,"$version":N},"reported":{...,"$version":M}}` (no `$metadata`).
    pub fn device_view(&self) -> Value {
        let mut out = Map::new();
        out.insert("desired".into(), self.desired.to_json(false));
        out.insert("reported".into(), self.reported.to_json(false));
        Value::Object(out)
    }

    /// `{"tags":..,"properties":{"desired":..,"reported":..}}`; the hub merges registry fields in.
    pub fn service_properties_json(&self) -> Value {
        let mut properties = Map::new();
        properties.insert("desired".into(), self.section_json(Section::Desired));
        properties.insert("reported".into(), self.section_json(Section::Reported));
        let mut out = Map::new();
        out.insert("tags".into(), Value::Object(self.tags.clone()));
        out.insert("properties".into(), Value::Object(properties));
        Value::Object(out)
    }
}

/// Body of the desired-patch notification to a device: the patch plus `"$version"`.
pub fn desired_notification(patch: &Map<String, Value>, version: u64) -> Value {
    let mut out = without_hub_keys(patch);
    out.insert(VERSION_KEY.into(), Value::from(version));
    Value::Object(out)
}

/// A device's reported-properties PATCH body (MQTT payload) as an object.
pub fn parse_patch_body(body: &[u8]) -> Result<Map<String, Value>, TwinError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(TwinError::NotAnObject {
            what: "the reported properties patch".into(),
        }),
        Err(e) => Err(TwinError::Malformed {
            reason: e.to_string(),
        }),
    }
}

/// The parts of a service twin PATCH/PUT body a service may change.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ServiceTwinUpdate {
    pub tags: Option<Map<String, Value>>,
    pub desired: Option<Map<String, Value>>,
}

/// `Some(object)`, `None` for absent or `null` (SDKs serialise unset parts as null), else error.
fn optional_object(
    value: Option<&Value>,
    what: &str,
) -> Result<Option<Map<String, Value>>, TwinError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(map)) => Ok(Some(map.clone())),
        Some(_) => Err(TwinError::NotAnObject { what: what.into() }),
    }
}

/// Parses a service PATCH/PUT body `{"tags":{..},"properties":{"desired":{..}},"etag":..}`.
/// Other top-level members (deviceId, etag, version, ...) are ignored, as SDKs send whole twins.
/// `properties.reported` is read-only: it is refused unless it carries no properties (only
/// `$metadata`/`$version` echoed from a fetched twin, or empty).
pub fn parse_service_update(body: &Value) -> Result<ServiceTwinUpdate, TwinError> {
    let Value::Object(body) = body else {
        return Err(TwinError::NotAnObject {
            what: "the twin update body".into(),
        });
    };
    let tags = optional_object(body.get("tags"), "tags")?;
    let Some(properties) = optional_object(body.get("properties"), "properties")? else {
        return Ok(ServiceTwinUpdate {
            tags,
            desired: None,
        });
    };
    let desired = optional_object(properties.get("desired"), "properties.desired")?;
    let reported = optional_object(properties.get("reported"), "properties.reported")
        .map_err(|_| read_only_reported())?;
    if let Some(reported) = reported
        && reported.keys().any(|k| !k.starts_with('$'))
    {
        return Err(read_only_reported());
    }
    Ok(ServiceTwinUpdate { tags, desired })
}

fn read_only_reported() -> TwinError {
    TwinError::ReadOnly {
        what: "properties.reported".into(),
    }
}

#[cfg(test)]
pub(crate) mod tests;
