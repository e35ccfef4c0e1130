//! Device profiles: what a device sends, how it answers methods and which writable properties
//! it acknowledges, written in TOML. Parsed and checked here, in one place, so every mistake in
//! a profile is one sentence naming the field. The built-in profiles live in
//! `assets/profiles`; [`ProfileDevice`] plays one.

mod builtin;
mod device;
mod generator;
mod raw;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde_json::Value;

pub use builtin::{BUILTIN_NAMES, asset};
pub use device::ProfileDevice;

/// The writable property that, when a profile declares it, sets the telemetry interval in
/// seconds (the demo devices' convention).
pub const INTERVAL_PROPERTY: &str = "telemetryInterval";
/// Telemetry interval when a profile does not give one.
pub const DEFAULT_INTERVAL_SECS: u64 = 5;

/// A checked device profile.
#[derive(Clone, Debug, PartialEq)]
pub struct Profile {
    pub name: String,
    /// IoT Plug and Play model id announced at connect.
    pub model_id: Option<String>,
    pub interval: Duration,
    /// Component the telemetry belongs to (`$.sub`).
    pub component: Option<String>,
    /// Application properties on every telemetry message.
    pub properties: Vec<(String, String)>,
    /// Telemetry fields, in the order they appear in the message.
    pub telemetry: Vec<TelemetryField>,
    pub methods: BTreeMap<String, MethodAnswer>,
    pub writable: BTreeMap<String, WritableProperty>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct TelemetryField {
    pub name: String,
    pub generator: Generator,
}

/// How a telemetry field's value changes from one message to the next.
#[derive(Clone, Debug, PartialEq)]
pub enum Generator {
    /// Starts at `start` and moves by at most `step` either way, kept within `min..=max`.
    RandomWalk {
        start: f64,
        step: f64,
        min: f64,
        max: f64,
        decimals: u32,
    },
    /// One full cycle from `min` to `max` and back every `period` messages.
    Sine {
        min: f64,
        max: f64,
        period: u64,
        decimals: u32,
    },
    /// `start`, `start + step`, ...
    Counter {
        start: i64,
        step: i64,
    },
    /// One of `values`, picked at random for each message.
    Enum {
        values: Vec<Value>,
    },
    Constant {
        value: Value,
    },
}

/// The answer to a direct method.
#[derive(Clone, Debug, PartialEq)]
pub struct MethodAnswer {
    pub status: i32,
    pub payload: Value,
    /// A file the device uploads (file upload) before answering: a built-in asset
    /// (`capture.png`) or a path. The blob is named by the call's `blobName`.
    pub upload: Option<String>,
}

/// A writable property: desired values of the right type within range are accepted
/// (`ac` 200), others refused (`ac` 400) with the value still in use.
#[derive(Clone, Debug, PartialEq)]
pub struct WritableProperty {
    pub kind: ValueKind,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub default: Value,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValueKind {
    Number,
    Integer,
    Boolean,
    String,
}

impl ValueKind {
    pub fn name(self) -> &'static str {
        match self {
            ValueKind::Number => "number",
            ValueKind::Integer => "integer",
            ValueKind::Boolean => "boolean",
            ValueKind::String => "string",
        }
    }
}

impl WritableProperty {
    /// Whether `value` may be set: the right type and within range.
    pub fn accepts(&self, value: &Value) -> bool {
        let in_range =
            |x: f64| self.min.is_none_or(|min| x >= min) && self.max.is_none_or(|max| x <= max);
        match self.kind {
            ValueKind::Number => value.as_f64().is_some_and(in_range),
            ValueKind::Integer => value.as_i64().is_some_and(|i| in_range(i as f64)),
            ValueKind::Boolean => value.is_boolean(),
            ValueKind::String => value.is_string(),
        }
    }

    /// What the device says when it refuses a value.
    pub fn expectation(&self, name: &str) -> String {
        match (self.min, self.max) {
            (Some(min), Some(max)) => {
                format!("{name} must be {} from {min} to {max}", a(self.kind))
            }
            (Some(min), None) => format!("{name} must be {} of at least {min}", a(self.kind)),
            (None, Some(max)) => format!("{name} must be {} of at most {max}", a(self.kind)),
            (None, None) => format!("{name} must be {}", a(self.kind)),
        }
    }
}

fn a(kind: ValueKind) -> &'static str {
    match kind {
        ValueKind::Number => "a number",
        ValueKind::Integer => "a whole number",
        ValueKind::Boolean => "true or false",
        ValueKind::String => "a string",
    }
}

/// What is wrong with a profile, in one sentence.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum ProfileError {
    #[error(
        "there is no built-in profile or profile file named {name}; use one of {} or the path of a .toml file",
        BUILTIN_NAMES.join(", ")
    )]
    NotFound { name: String },
    #[error("cannot read the profile {path}: {reason}")]
    Unreadable { path: String, reason: String },
    #[error("the profile {profile} is not valid TOML at line {line}: {message}")]
    Syntax {
        profile: String,
        line: usize,
        message: String,
    },
    #[error("the profile {profile} has a bad {field}: {problem}")]
    Field {
        profile: String,
        field: String,
        problem: String,
    },
}

impl Profile {
    /// Parses and checks a profile's TOML text; `name` is used in errors.
    pub fn parse(name: &str, text: &str) -> Result<Profile, ProfileError> {
        raw::parse(name, text)
    }

    /// One of the built-in profiles, by name.
    pub fn builtin(name: &str) -> Option<Profile> {
        builtin::text(name).map(|text| {
            Profile::parse(name, text).expect("the built-in profiles are checked by tests")
        })
    }

    /// A built-in profile by name, or else a profile file by path.
    pub fn load(name_or_path: &str) -> Result<Profile, ProfileError> {
        if let Some(p) = Profile::builtin(name_or_path) {
            return Ok(p);
        }
        let path = Path::new(name_or_path);
        if !path.exists() {
            return Err(ProfileError::NotFound {
                name: name_or_path.to_owned(),
            });
        }
        let text = std::fs::read_to_string(path).map_err(|e| ProfileError::Unreadable {
            path: name_or_path.to_owned(),
            reason: e.to_string(),
        })?;
        Profile::parse(name_or_path, &text)
    }
}

#[cfg(test)]
mod tests;
