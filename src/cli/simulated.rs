//! Simulated demo devices on a local hub running in this process, shared by `hubtui hub
//! --simulate N` and the explorer's embedded default.

use std::net::IpAddr;
use std::str::FromStr;

use serde_json::json;

use client::device::{DeviceClientOptions, Trust};
use client::profile::Profile;
use client::simulator::{DeviceKind, Simulator, SimulatorOptions};
use hub::RunningHub;
use iothub::connection_string::{DeviceAuth, DeviceConnectionString};
use iothub::error::ErrorCode;

/// What one simulated device plays.
#[derive(Clone, Debug)]
pub enum Persona {
    /// A demo kind, with its own model of readings.
    Demo(DeviceKind),
    /// A device profile (built-in or a file).
    Profile(Box<Profile>),
}

/// `--simulate`: `N` demo devices (kinds in turn: thermostat, air-quality, door-lock), or
/// `NAME=COUNT,…` where NAME is a demo kind, a built-in profile or a profile file.
#[derive(Clone, Debug)]
pub struct SimulateSpec(pub Vec<Persona>);

impl SimulateSpec {
    /// `count` demo devices, kinds in turn.
    pub fn demo(count: u32) -> SimulateSpec {
        SimulateSpec(
            (0..count as usize)
                .map(|i| Persona::Demo(DeviceKind::rotating(i)))
                .collect(),
        )
    }
}

impl FromStr for SimulateSpec {
    type Err = String;

    fn from_str(spec: &str) -> Result<SimulateSpec, String> {
        if let Ok(n) = spec.trim().parse::<u32>() {
            return Ok(SimulateSpec::demo(n));
        }
        let mut personas = Vec::new();
        for part in spec.split(',') {
            let (name, count) = part.split_once('=').ok_or_else(|| {
                format!("\"{part}\" is neither a count nor NAME=COUNT (e.g. thermostat=3,camera=1)")
            })?;
            let count: u32 = count.trim().parse().map_err(|_| {
                format!("the count for {name} must be a whole number, not \"{count}\"")
            })?;
            let persona = match DeviceKind::parse(name.trim()) {
                Some(kind) => Persona::Demo(kind),
                None => Persona::Profile(Box::new(
                    Profile::load(name.trim()).map_err(|e| e.to_string())?,
                )),
            };
            personas.extend(std::iter::repeat_n(persona, count as usize));
        }
        Ok(SimulateSpec(personas))
    }
}

/// Registers `sim-1`..`sim-N` (existing devices keep their keys) and starts a simulator
/// playing each persona against the hub's own MQTT port, trusting the hub's CA. Inside a
/// tokio runtime.
pub fn start_simulators(
    running: &RunningHub,
    personas: &[Persona],
    bind: IpAddr,
) -> Result<Vec<Simulator>, String> {
    // The server certificate names localhost and the hub's host name, not arbitrary addresses.
    let connect_host = if bind.is_loopback() || bind.is_unspecified() {
        "localhost".to_owned()
    } else {
        running.info.host_name.clone()
    };
    let mut simulators = Vec::new();
    for (i, persona) in personas.iter().enumerate() {
        let device_id = format!("sim-{}", i + 1);
        let Some(key) = simulator_key(running, &device_id)? else {
            tracing::warn!(device = %device_id, "has no symmetric key; not simulated");
            continue;
        };
        let cs = DeviceConnectionString {
            host_name: running.info.host_name.clone(),
            device_id,
            module_id: None,
            auth: DeviceAuth::SharedAccessKey(key),
            gateway_host_name: None,
        };
        let client = DeviceClientOptions {
            port: running.info.ports.mqtt,
            https_port: running.info.ports.https,
            trust: Trust::CaPem(running.ca_pem.clone()),
            connect_host: Some(connect_host.clone()),
            ..DeviceClientOptions::default()
        };
        let seed = rand::random();
        let started = match persona {
            Persona::Demo(kind) => Simulator::start(
                &cs,
                SimulatorOptions {
                    kind: *kind,
                    seed,
                    client,
                },
            ),
            Persona::Profile(profile) => {
                Simulator::start_profile(&cs, (**profile).clone(), seed, client)
            }
        };
        let sim = started
            .map_err(|e| format!("cannot start the simulated device {}: {e}", cs.device_id))?;
        simulators.push(sim);
    }
    Ok(simulators)
}

/// The primary key of a simulated device, registering it first if needed.
fn simulator_key(running: &RunningHub, device_id: &str) -> Result<Option<String>, String> {
    let state = &running.state;
    let identity =
        match state.put_identity(device_id, None, &json!({ "deviceId": device_id }), None) {
            Ok(identity) => identity,
            Err(e) if e.code == ErrorCode::DeviceAlreadyExists => {
                state.identity(device_id, None).map_err(|e| {
                    format!(
                        "cannot read the simulated device {device_id}: {}",
                        e.message
                    )
                })?
            }
            Err(e) => {
                return Err(format!(
                    "cannot register the simulated device {device_id}: {}",
                    e.message
                ));
            }
        };
    Ok(identity
        .device
        .authentication
        .symmetric_key
        .and_then(|k| k.primary_key))
}

/// Stops every simulator (each disconnects cleanly, or is aborted after a grace period).
pub async fn stop_all(simulators: Vec<Simulator>) {
    futures::future::join_all(simulators.into_iter().map(Simulator::stop)).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(spec: &str) -> Vec<String> {
        let SimulateSpec(personas) = spec.parse().unwrap();
        personas
            .iter()
            .map(|p| match p {
                Persona::Demo(kind) => kind.name().to_owned(),
                Persona::Profile(profile) => profile.name.clone(),
            })
            .collect()
    }

    #[test]
    fn a_count_or_names_with_counts() {
        assert_eq!(names("3"), ["thermostat", "air-quality", "door-lock"]);
        assert!(names("0").is_empty());
        assert_eq!(
            names("door-lock=2,camera=1"),
            ["door-lock", "door-lock", "camera"]
        );
        let err = |spec: &str| spec.parse::<SimulateSpec>().unwrap_err();
        assert!(err("camera").contains("NAME=COUNT"), "{}", err("camera"));
        assert!(err("camera=x").contains("whole number"));
        assert!(err("toaster=1").contains("toaster"));
    }
}
