//! Simulated demo devices on a local hub running in this process, shared by `hubtui hub
//! --simulate N` and the explorer's embedded default.

use std::net::IpAddr;

use serde_json::json;

use client::device::{DeviceClientOptions, Trust};
use client::simulator::{DeviceKind, Simulator, SimulatorOptions};
use hub::RunningHub;
use iothub::connection_string::{DeviceAuth, DeviceConnectionString};
use iothub::error::ErrorCode;

/// Registers `sim-1`..`sim-N` (kinds in turn: thermostat, air-quality, door-lock; existing
/// devices keep their keys) and starts a simulator for each against the hub's own MQTT port,
/// trusting the hub's CA. Inside a tokio runtime.
pub fn start_simulators(
    running: &RunningHub,
    count: u32,
    bind: IpAddr,
) -> Result<Vec<Simulator>, String> {
    // The server certificate names localhost and the hub's host name, not arbitrary addresses.
    let connect_host = if bind.is_loopback() || bind.is_unspecified() {
        "localhost".to_owned()
    } else {
        running.info.host_name.clone()
    };
    let mut simulators = Vec::new();
    for i in 0..count as usize {
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
        let opts = SimulatorOptions {
            kind: DeviceKind::rotating(i),
            seed: rand::random(),
            client: DeviceClientOptions {
                port: running.info.ports.mqtt,
                trust: Trust::CaPem(running.ca_pem.clone()),
                connect_host: Some(connect_host.clone()),
                ..DeviceClientOptions::default()
            },
        };
        let sim = Simulator::start(&cs, opts)
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
