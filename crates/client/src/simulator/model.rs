//! What a simulated device is, without any connection: its readings (a seeded random walk),
//! its telemetry messages, how it follows desired properties and answers methods. The device
//! runner (`runner.rs`) feeds it events and sends what it returns.

use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Map, Value, json};

use crate::pnp::{ack, advance, desired_section, json_message_properties};
use crate::runner::Behaviour;
use iothub::property_bag::PropertyBag;

/// Firmware version the simulator reports.
pub const FIRMWARE: &str = "1.4.2";
/// Seconds between telemetry messages until a desired `telemetryInterval` says otherwise.
pub const DEFAULT_INTERVAL_SECS: u64 = 5;
/// Accepted `telemetryInterval` range, in seconds.
pub const INTERVAL_RANGE: std::ops::RangeInclusive<u64> = 1..=3600;
/// Application property naming the kind on every telemetry message.
pub const KIND_PROPERTY: &str = "kind";

const INTERVAL: &str = "telemetryInterval";
const TARGET_TEMPERATURE: &str = "targetTemperature";
const LOCKED: &str = "locked";
const TARGET_RANGE: std::ops::RangeInclusive<f64> = 5.0..=35.0;

/// The kinds of simulated device; each sends different telemetry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DeviceKind {
    Thermostat,
    AirQuality,
    DoorLock,
}

impl DeviceKind {
    pub const ALL: [DeviceKind; 3] = [
        DeviceKind::Thermostat,
        DeviceKind::AirQuality,
        DeviceKind::DoorLock,
    ];

    pub fn name(self) -> &'static str {
        match self {
            DeviceKind::Thermostat => "thermostat",
            DeviceKind::AirQuality => "air-quality",
            DeviceKind::DoorLock => "door-lock",
        }
    }

    pub fn parse(name: &str) -> Option<DeviceKind> {
        DeviceKind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// Kinds in turn: 0 → thermostat, 1 → air-quality, 2 → door-lock, 3 → thermostat, ...
    pub fn rotating(index: usize) -> DeviceKind {
        DeviceKind::ALL[index % DeviceKind::ALL.len()]
    }

    /// The IoT Plug and Play model id announced at connect.
    pub fn model_id(self) -> &'static str {
        match self {
            DeviceKind::Thermostat => "dtmi:hubtui:simulator:Thermostat;1",
            DeviceKind::AirQuality => "dtmi:hubtui:simulator:AirQuality;1",
            DeviceKind::DoorLock => "dtmi:hubtui:simulator:DoorLock;1",
        }
    }
}

#[derive(Clone, Debug)]
enum Readings {
    Thermostat {
        temperature: f64,
        humidity: f64,
        target: f64,
    },
    AirQuality {
        co2: f64,
        pm25: f64,
        pm10: f64,
        tvoc: f64,
    },
    DoorLock {
        locked: bool,
        door_open: bool,
        battery: f64,
        openings: u64,
    },
}

/// One simulated device's state.
#[derive(Debug)]
pub struct SimulatedDevice {
    kind: DeviceKind,
    rng: StdRng,
    readings: Readings,
    interval_secs: u64,
    /// Highest desired `$version` applied; older notifications are dropped.
    desired_version: u64,
    c2d_received: u64,
    reboots: u64,
}

impl SimulatedDevice {
    pub fn new(kind: DeviceKind, seed: u64) -> SimulatedDevice {
        let mut rng = StdRng::seed_from_u64(seed);
        let readings = match kind {
            DeviceKind::Thermostat => Readings::Thermostat {
                temperature: round(rng.random_range(18.0..24.0), 2),
                humidity: round(rng.random_range(35.0..55.0), 1),
                target: 21.0,
            },
            DeviceKind::AirQuality => Readings::AirQuality {
                co2: rng.random_range(450.0..800.0_f64).round(),
                pm25: round(rng.random_range(3.0..15.0), 1),
                pm10: round(rng.random_range(15.0..30.0), 1),
                tvoc: round(rng.random_range(0.1..0.6), 2),
            },
            DeviceKind::DoorLock => Readings::DoorLock {
                locked: true,
                door_open: false,
                battery: round(rng.random_range(60.0..100.0), 1),
                openings: 0,
            },
        };
        SimulatedDevice {
            kind,
            rng,
            readings,
            interval_secs: DEFAULT_INTERVAL_SECS,
            desired_version: 0,
            c2d_received: 0,
            reboots: 0,
        }
    }

    pub fn kind(&self) -> DeviceKind {
        self.kind
    }

    pub fn telemetry_interval(&self) -> Duration {
        Duration::from_secs(self.interval_secs)
    }

    pub fn c2d_received(&self) -> u64 {
        self.c2d_received
    }

    pub fn reboots(&self) -> u64 {
        self.reboots
    }

    /// The current readings, as sent in telemetry.
    pub fn current(&self) -> Value {
        match &self.readings {
            Readings::Thermostat {
                temperature,
                humidity,
                target,
            } => json!({
                "temperature": temperature,
                "humidity": humidity,
                "targetTemperature": target,
                "heating": *temperature < target - 0.5,
            }),
            Readings::AirQuality {
                co2,
                pm25,
                pm10,
                tvoc,
            } => json!({"co2": *co2 as i64, "pm25": pm25, "pm10": pm10, "tvoc": tvoc}),
            Readings::DoorLock {
                locked,
                door_open,
                battery,
                openings,
            } => json!({
                "locked": locked,
                "doorOpen": door_open,
                "battery": battery,
                "openings": openings,
            }),
        }
    }

    /// Moves the readings one step of their random walk.
    pub fn step(&mut self) {
        let rng = &mut self.rng;
        match &mut self.readings {
            Readings::Thermostat {
                temperature,
                humidity,
                target,
            } => {
                // Drifts towards the target, with noise.
                let t = *temperature + (*target - *temperature) * 0.1 + rng.random_range(-0.3..0.3);
                *temperature = round(t.clamp(-10.0, 45.0), 2);
                *humidity = round(
                    (*humidity + rng.random_range(-0.8..0.8)).clamp(20.0, 80.0),
                    1,
                );
            }
            Readings::AirQuality {
                co2,
                pm25,
                pm10,
                tvoc,
            } => {
                *co2 = (*co2 + rng.random_range(-20.0..20.0_f64))
                    .clamp(400.0, 2000.0)
                    .round();
                *pm25 = round((*pm25 + rng.random_range(-1.0..1.0)).clamp(0.0, 150.0), 1);
                *pm10 = round((*pm10 + rng.random_range(-1.5..1.5)).clamp(*pm25, 250.0), 1);
                *tvoc = round((*tvoc + rng.random_range(-0.05..0.05)).clamp(0.0, 3.0), 2);
            }
            Readings::DoorLock {
                locked,
                door_open,
                battery,
                openings,
            } => {
                if *locked {
                    *door_open = false;
                } else if rng.random_bool(0.2) {
                    *door_open = !*door_open;
                    if *door_open {
                        *openings += 1;
                    }
                }
                *battery = round((*battery - rng.random_range(0.0..0.05)).max(0.0), 2);
            }
        }
    }

    /// Steps the readings and returns the next telemetry message: JSON body and properties
    /// (`$.mid`, `$.ct` application/json, `$.ce` utf-8, and `kind`).
    pub fn next_message(&mut self) -> (Vec<u8>, PropertyBag) {
        self.step();
        let body = self.current().to_string().into_bytes();
        let mut props = json_message_properties(&mut self.rng);
        props.set(KIND_PROPERTY, Some(self.kind.name().into()));
        (body, props)
    }

    /// On every connect, from the device's view of its twin: applies the whole desired
    /// section and returns the full reported patch (identity, acknowledgements, counters).
    pub fn on_connect(&mut self, twin: &Value) -> Map<String, Value> {
        let (desired, version) = desired_section(twin);
        let mut reported = Map::new();
        reported.insert("kind".into(), json!(self.kind.name()));
        reported.insert("firmware".into(), json!(FIRMWARE));
        reported.insert("c2dReceived".into(), json!(self.c2d_received));
        // Writable properties not set in desired are reported as device defaults (ac 203).
        for key in self.writable_keys() {
            if !desired.contains_key(*key) {
                let value = self.writable_value(key);
                reported.insert((*key).into(), ack(value, 203, 0, "device default"));
            }
        }
        self.desired_version = version;
        reported.extend(self.apply(&desired, version));
        reported
    }

    /// A desired-properties patch: the acknowledgements to report, or None when the patch
    /// is not newer than what was already applied.
    pub fn apply_desired(
        &mut self,
        version: u64,
        patch: &Map<String, Value>,
    ) -> Option<Map<String, Value>> {
        advance(&mut self.desired_version, version).then(|| self.apply(patch, version))
    }

    /// Acknowledgements in the IoT Plug and Play form `{"value","ac","av","ad"}`. Known
    /// properties get 200 (or 400 with the value kept when invalid); unknown ones 400 with
    /// value null; a removed unknown property removes its acknowledgement.
    fn apply(&mut self, desired: &Map<String, Value>, version: u64) -> Map<String, Value> {
        let mut acks = Map::new();
        for (key, value) in desired {
            if key.starts_with('$') {
                continue;
            }
            let answer = match (key.as_str(), value) {
                (INTERVAL, Value::Null) => {
                    self.interval_secs = DEFAULT_INTERVAL_SECS;
                    ack(json!(self.interval_secs), 200, version, "reset to default")
                }
                (INTERVAL, v) => match v.as_u64().filter(|s| INTERVAL_RANGE.contains(s)) {
                    Some(secs) => {
                        self.interval_secs = secs;
                        ack(json!(secs), 200, version, "completed")
                    }
                    None => ack(
                        json!(self.interval_secs),
                        400,
                        version,
                        "telemetryInterval must be a whole number of seconds from 1 to 3600",
                    ),
                },
                (k, v) if self.writable_keys().contains(&k) => self.apply_writable(k, v, version),
                (_, Value::Null) => Value::Null,
                _ => ack(Value::Null, 400, version, "unknown property"),
            };
            acks.insert(key.clone(), answer);
        }
        acks
    }

    fn writable_keys(&self) -> &'static [&'static str] {
        match self.kind {
            DeviceKind::Thermostat => &[INTERVAL, TARGET_TEMPERATURE],
            DeviceKind::AirQuality => &[INTERVAL],
            DeviceKind::DoorLock => &[INTERVAL, LOCKED],
        }
    }

    fn writable_value(&self, key: &str) -> Value {
        match (key, &self.readings) {
            (TARGET_TEMPERATURE, Readings::Thermostat { target, .. }) => json!(target),
            (LOCKED, Readings::DoorLock { locked, .. }) => json!(locked),
            _ => json!(self.interval_secs),
        }
    }

    fn apply_writable(&mut self, key: &str, value: &Value, version: u64) -> Value {
        match (key, &mut self.readings) {
            (TARGET_TEMPERATURE, Readings::Thermostat { target, .. }) => {
                match value.as_f64().filter(|t| TARGET_RANGE.contains(t)) {
                    Some(t) => {
                        *target = t;
                        ack(json!(t), 200, version, "completed")
                    }
                    None => ack(
                        json!(*target),
                        400,
                        version,
                        "targetTemperature must be a number from 5 to 35",
                    ),
                }
            }
            (LOCKED, Readings::DoorLock { locked, .. }) => match value.as_bool() {
                Some(b) => {
                    *locked = b;
                    ack(json!(b), 200, version, "completed")
                }
                None => ack(json!(*locked), 400, version, "locked must be true or false"),
            },
            _ => ack(Value::Null, 400, version, "unknown property"),
        }
    }

    /// A direct method: (status, payload).
    pub fn handle_method(&mut self, name: &str, _payload: &Value) -> (i32, Value) {
        match (name, &mut self.readings) {
            ("reboot", _) => {
                self.reboots += 1;
                (200, json!({"rebooted": true}))
            }
            ("getTelemetry" | "ping", _) => (200, self.current()),
            (
                "lock" | "unlock",
                Readings::DoorLock {
                    locked, door_open, ..
                },
            ) => {
                *locked = name == "lock";
                if *locked {
                    *door_open = false;
                }
                (200, json!({"locked": *locked}))
            }
            _ => (404, json!({"error": "unknown method"})),
        }
    }

    /// A C2D message arrived: the reported patch that publishes the new count.
    pub fn on_c2d(&mut self) -> Map<String, Value> {
        self.c2d_received += 1;
        let mut m = Map::new();
        m.insert("c2dReceived".into(), json!(self.c2d_received));
        m
    }
}

impl Behaviour for SimulatedDevice {
    fn telemetry_interval(&self) -> Duration {
        SimulatedDevice::telemetry_interval(self)
    }
    fn next_message(&mut self) -> (Vec<u8>, PropertyBag) {
        SimulatedDevice::next_message(self)
    }
    fn on_connect(&mut self, twin: &Value) -> Map<String, Value> {
        SimulatedDevice::on_connect(self, twin)
    }
    fn apply_desired(
        &mut self,
        version: u64,
        patch: &Map<String, Value>,
    ) -> Option<Map<String, Value>> {
        SimulatedDevice::apply_desired(self, version, patch)
    }
    fn handle_method(&mut self, name: &str, payload: &Value) -> (i32, Value) {
        SimulatedDevice::handle_method(self, name, payload)
    }
    fn on_c2d(&mut self) -> Map<String, Value> {
        SimulatedDevice::on_c2d(self)
    }
}

fn round(x: f64, decimals: i32) -> f64 {
    let f = 10f64.powi(decimals);
    (x * f).round() / f
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn kinds_rotate_and_round_trip_by_name() {
        let names: Vec<_> = (0..4).map(|i| DeviceKind::rotating(i).name()).collect();
        assert_eq!(
            names,
            ["thermostat", "air-quality", "door-lock", "thermostat"]
        );
        for k in DeviceKind::ALL {
            assert_eq!(DeviceKind::parse(k.name()), Some(k));
        }
        assert_eq!(DeviceKind::parse("toaster"), None);
    }

    #[test]
    fn telemetry_shape_per_kind() {
        let keys = |kind| {
            let mut d = SimulatedDevice::new(kind, 1);
            let (body, _) = d.next_message();
            let v: Value = serde_json::from_slice(&body).unwrap();
            v.as_object().unwrap().keys().cloned().collect::<Vec<_>>()
        };
        assert_eq!(
            keys(DeviceKind::Thermostat),
            ["temperature", "humidity", "targetTemperature", "heating"]
        );
        assert_eq!(
            keys(DeviceKind::AirQuality),
            ["co2", "pm25", "pm10", "tvoc"]
        );
        assert_eq!(
            keys(DeviceKind::DoorLock),
            ["locked", "doorOpen", "battery", "openings"]
        );
        let mut d = SimulatedDevice::new(DeviceKind::AirQuality, 1);
        let v: Value = serde_json::from_slice(&d.next_message().0).unwrap();
        assert!(v["co2"].is_i64() && v["pm25"].is_f64(), "{v}");
    }

    #[test]
    fn telemetry_properties_are_json_utf8_with_a_message_id_and_kind() {
        let mut d = SimulatedDevice::new(DeviceKind::DoorLock, 9);
        let (_, p) = d.next_message();
        assert_eq!(p.system("ct"), Some("application/json"));
        assert_eq!(p.system("ce"), Some("utf-8"));
        assert_eq!(p.get(KIND_PROPERTY), Some("door-lock"));
        let mid = p.system("mid").unwrap().to_owned();
        assert_eq!(mid.len(), 36, "{mid}");
        let (_, p2) = d.next_message();
        assert_ne!(p2.system("mid"), Some(mid.as_str()));
    }

    #[test]
    fn same_seed_same_walk_and_values_stay_plausible() {
        let run = |seed| {
            let mut d = SimulatedDevice::new(DeviceKind::Thermostat, seed);
            (0..500).map(|_| d.next_message()).collect::<Vec<_>>()
        };
        assert_eq!(run(5), run(5));
        assert_ne!(run(5)[0].0, run(6)[0].0);
        for (body, _) in run(5) {
            let v: Value = serde_json::from_slice(&body).unwrap();
            let t = v["temperature"].as_f64().unwrap();
            let h = v["humidity"].as_f64().unwrap();
            assert!((10.0..32.0).contains(&t), "{t}");
            assert!((20.0..=80.0).contains(&h), "{h}");
        }
        let mut a = SimulatedDevice::new(DeviceKind::AirQuality, 3);
        for _ in 0..500 {
            a.step();
            let v = a.current();
            assert!(v["pm10"].as_f64() >= v["pm25"].as_f64(), "{v}");
            assert!((400..=2000).contains(&v["co2"].as_i64().unwrap()));
        }
    }

    #[test]
    fn initial_report_has_identity_defaults_and_applies_desired() {
        let mut d = SimulatedDevice::new(DeviceKind::Thermostat, 1);
        let twin = json!({"desired": {"telemetryInterval": 10, "$version": 4}, "reported": {"$version": 1}});
        let r = Value::Object(d.on_connect(&twin));
        assert_eq!(r["kind"], "thermostat");
        assert_eq!(r["firmware"], FIRMWARE);
        assert_eq!(r["c2dReceived"], 0);
        assert_eq!(
            r["telemetryInterval"],
            json!({"value": 10, "ac": 200, "av": 4, "ad": "completed"})
        );
        assert_eq!(r["targetTemperature"]["ac"], 203);
        assert_eq!(r["targetTemperature"]["av"], 0);
        assert_eq!(d.telemetry_interval(), Duration::from_secs(10));
        // A notification not newer than the fetched twin is dropped.
        assert_eq!(
            d.apply_desired(4, &obj(json!({"telemetryInterval": 2}))),
            None
        );
        assert_eq!(d.telemetry_interval(), Duration::from_secs(10));
    }

    #[test]
    fn telemetry_interval_is_acknowledged_in_plug_and_play_form() {
        let mut d = SimulatedDevice::new(DeviceKind::AirQuality, 1);
        d.on_connect(&json!({"desired": {"$version": 1}}));
        assert_eq!(
            d.telemetry_interval(),
            Duration::from_secs(DEFAULT_INTERVAL_SECS)
        );
        let acks = d
            .apply_desired(2, &obj(json!({"telemetryInterval": 2})))
            .unwrap();
        assert_eq!(
            Value::Object(acks),
            json!({"telemetryInterval": {"value": 2, "ac": 200, "av": 2, "ad": "completed"}})
        );
        assert_eq!(d.telemetry_interval(), Duration::from_secs(2));
        // Invalid values are refused with the value still in use.
        for bad in [
            json!(0),
            json!(-3),
            json!("fast"),
            json!(1.5),
            json!(100000),
        ] {
            let acks = d
                .apply_desired(
                    d.desired_version + 1,
                    &obj(json!({"telemetryInterval": bad})),
                )
                .unwrap();
            assert_eq!(acks["telemetryInterval"]["ac"], 400, "{bad}");
            assert_eq!(acks["telemetryInterval"]["value"], 2);
        }
        assert_eq!(d.telemetry_interval(), Duration::from_secs(2));
        // Removing the desired value returns to the default.
        let acks = d
            .apply_desired(20, &obj(json!({"telemetryInterval": null})))
            .unwrap();
        assert_eq!(acks["telemetryInterval"]["value"], DEFAULT_INTERVAL_SECS);
        assert_eq!(acks["telemetryInterval"]["ac"], 200);
    }

    #[test]
    fn unknown_desired_keys_are_refused_and_removal_clears_the_ack() {
        let mut d = SimulatedDevice::new(DeviceKind::AirQuality, 1);
        let acks = d
            .apply_desired(3, &obj(json!({"colour": "red", "$metadata": {}})))
            .unwrap();
        assert_eq!(
            Value::Object(acks),
            json!({"colour": {"value": null, "ac": 400, "av": 3, "ad": "unknown property"}})
        );
        let acks = d.apply_desired(4, &obj(json!({"colour": null}))).unwrap();
        assert_eq!(Value::Object(acks), json!({"colour": null}));
    }

    #[test]
    fn kind_specific_writable_properties() {
        let mut t = SimulatedDevice::new(DeviceKind::Thermostat, 1);
        let acks = t
            .apply_desired(1, &obj(json!({"targetTemperature": 25.5})))
            .unwrap();
        assert_eq!(acks["targetTemperature"]["ac"], 200);
        assert_eq!(t.current()["targetTemperature"], 25.5);
        let acks = t
            .apply_desired(2, &obj(json!({"targetTemperature": 99})))
            .unwrap();
        assert_eq!(acks["targetTemperature"]["ac"], 400);
        assert_eq!(acks["targetTemperature"]["value"], 25.5);

        let mut l = SimulatedDevice::new(DeviceKind::DoorLock, 1);
        let acks = l.apply_desired(1, &obj(json!({"locked": false}))).unwrap();
        assert_eq!(acks["locked"]["value"], false);
        assert_eq!(l.current()["locked"], false);
        // A thermostat does not know "locked".
        let acks = t.apply_desired(3, &obj(json!({"locked": true}))).unwrap();
        assert_eq!(acks["locked"]["ac"], 400);
    }

    #[test]
    fn methods() {
        let mut d = SimulatedDevice::new(DeviceKind::DoorLock, 1);
        assert_eq!(
            d.handle_method("reboot", &Value::Null),
            (200, json!({"rebooted": true}))
        );
        assert_eq!(d.reboots(), 1);
        let (s, v) = d.handle_method("getTelemetry", &Value::Null);
        assert_eq!((s, &v), (200, &d.current()));
        assert_eq!(d.handle_method("ping", &json!({})).0, 200);
        assert_eq!(
            d.handle_method("unlock", &Value::Null),
            (200, json!({"locked": false}))
        );
        assert_eq!(
            d.handle_method("selfDestruct", &Value::Null),
            (404, json!({"error": "unknown method"}))
        );
        let mut t = SimulatedDevice::new(DeviceKind::Thermostat, 1);
        assert_eq!(t.handle_method("lock", &Value::Null).0, 404);
    }

    #[test]
    fn c2d_count_is_reported() {
        let mut d = SimulatedDevice::new(DeviceKind::Thermostat, 1);
        assert_eq!(Value::Object(d.on_c2d()), json!({"c2dReceived": 1}));
        assert_eq!(Value::Object(d.on_c2d()), json!({"c2dReceived": 2}));
        let r = d.on_connect(&json!({}));
        assert_eq!(r["c2dReceived"], 2);
    }
}
