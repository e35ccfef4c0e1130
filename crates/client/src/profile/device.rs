//! A device playing a profile, without any connection: the runner feeds it events and sends
//! what it returns.

use std::collections::BTreeMap;
use std::time::Duration;

use rand::SeedableRng;
use rand::rngs::StdRng;
use serde_json::{Map, Value, json};

use iothub::property_bag::{COMPONENT_NAME, PropertyBag};

use super::generator::FieldState;
use super::{INTERVAL_PROPERTY, Profile};
use crate::pnp::{ack, advance, desired_section, json_message_properties};
use crate::runner::Behaviour;

/// Intervals a device accepts from `telemetryInterval`, whatever the profile says.
const INTERVAL_SECS: std::ops::RangeInclusive<u64> = 1..=3600;

#[derive(Debug)]
pub struct ProfileDevice {
    profile: Profile,
    rng: StdRng,
    fields: Vec<FieldState>,
    interval: Duration,
    /// Current value of each writable property.
    writable: BTreeMap<String, Value>,
    /// Highest desired `$version` applied; older notifications are dropped.
    desired_version: u64,
}

impl ProfileDevice {
    /// A device from `profile`; the same seed gives the same telemetry.
    pub fn new(profile: Profile, seed: u64) -> ProfileDevice {
        let fields = profile
            .telemetry
            .iter()
            .map(|f| FieldState::new(&f.generator))
            .collect();
        let writable = profile
            .writable
            .iter()
            .map(|(k, w)| (k.clone(), w.default.clone()))
            .collect();
        ProfileDevice {
            interval: profile.interval,
            profile,
            rng: StdRng::seed_from_u64(seed),
            fields,
            writable,
            desired_version: 0,
        }
    }

    pub fn profile(&self) -> &Profile {
        &self.profile
    }

    fn apply(&mut self, desired: &Map<String, Value>, version: u64) -> Map<String, Value> {
        let mut acks = Map::new();
        for (key, value) in desired {
            // Asset references are followed by the runner, not acknowledged as properties.
            if key.starts_with('$') || crate::assets::is_reference(value) {
                continue;
            }
            let answer = match self.profile.writable.get(key) {
                None if value.is_null() => Value::Null,
                None => ack(Value::Null, 400, version, "unknown property"),
                Some(prop) => {
                    let target = if value.is_null() {
                        prop.default.clone()
                    } else {
                        value.clone()
                    };
                    let interval_ok = key != INTERVAL_PROPERTY
                        || target.as_u64().is_some_and(|s| INTERVAL_SECS.contains(&s));
                    if prop.accepts(&target) && interval_ok {
                        if key == INTERVAL_PROPERTY
                            && let Some(secs) = target.as_u64()
                        {
                            self.interval = Duration::from_secs(secs);
                        }
                        self.writable.insert(key.clone(), target.clone());
                        ack(target, 200, version, "completed")
                    } else {
                        let current = self.current_writable(key);
                        ack(current, 400, version, &prop.expectation(key))
                    }
                }
            };
            acks.insert(key.clone(), answer);
        }
        acks
    }

    fn current_writable(&self, key: &str) -> Value {
        if key == INTERVAL_PROPERTY {
            return json!(self.interval.as_secs());
        }
        self.writable.get(key).cloned().unwrap_or(Value::Null)
    }
}

impl Behaviour for ProfileDevice {
    fn telemetry_interval(&self) -> Duration {
        self.interval
    }

    fn next_message(&mut self) -> (Vec<u8>, PropertyBag) {
        let mut body = Map::new();
        for (field, state) in self.profile.telemetry.iter().zip(&mut self.fields) {
            body.insert(field.name.clone(), state.next(&mut self.rng));
        }
        let mut props = json_message_properties(&mut self.rng);
        if let Some(component) = &self.profile.component {
            props.set(COMPONENT_NAME, Some(component.clone()));
        }
        for (k, v) in &self.profile.properties {
            props.set(k, Some(v.clone()));
        }
        (Value::Object(body).to_string().into_bytes(), props)
    }

    /// Writable properties missing from desired are reported as device defaults (`ac` 203);
    /// the rest of desired is applied and acknowledged.
    fn on_connect(&mut self, twin: &Value) -> Map<String, Value> {
        let (desired, version) = desired_section(twin);
        let mut reported = Map::new();
        for key in self.profile.writable.keys() {
            if !desired.contains_key(key) {
                let value = self.current_writable(key);
                reported.insert(key.clone(), ack(value, 203, 0, "device default"));
            }
        }
        self.desired_version = version;
        reported.extend(self.apply(&desired, version));
        reported
    }

    fn apply_desired(
        &mut self,
        version: u64,
        patch: &Map<String, Value>,
    ) -> Option<Map<String, Value>> {
        advance(&mut self.desired_version, version).then(|| self.apply(patch, version))
    }

    fn method_upload(&self, name: &str) -> Option<String> {
        self.profile
            .methods
            .get(name)
            .and_then(|m| m.upload.clone())
    }

    fn handle_method(&mut self, name: &str, _payload: &Value) -> (i32, Value) {
        match self.profile.methods.get(name) {
            Some(answer) => (answer.status, answer.payload.clone()),
            None => (404, json!({"error": "unknown method"})),
        }
    }

    fn on_c2d(&mut self) -> Map<String, Value> {
        Map::new()
    }
}
