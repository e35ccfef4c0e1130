//! Simulated devices: each is a [`DeviceClient`] driven by a [`SimulatedDevice`]. It sends JSON
//! telemetry every `telemetryInterval` seconds, reports its identity and acknowledgements,
//! follows desired properties, answers direct methods and counts C2D messages (reported as
//! `c2dReceived`, so the count is visible through the twin).

mod model;

use std::time::Duration;

use serde_json::{Map, Value};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::{Instant, Interval, MissedTickBehavior};

pub use model::{
    DEFAULT_INTERVAL_SECS, DeviceKind, FIRMWARE, INTERVAL_RANGE, KIND_PROPERTY, SimulatedDevice,
};

use super::device::{DeviceClient, DeviceClientOptions, DeviceError, DeviceEvent};
use iothub::connection_string::DeviceConnectionString;

/// How long `stop` waits for the simulator to disconnect cleanly.
const STOP_GRACE: Duration = Duration::from_secs(5);

#[derive(Clone, Debug)]
pub struct SimulatorOptions {
    pub kind: DeviceKind,
    /// Seed of the readings' random walk (and message ids): same seed, same telemetry.
    pub seed: u64,
    /// The connection; `model_id` defaults to the kind's model.
    pub client: DeviceClientOptions,
}

/// A running simulated device.
pub struct Simulator {
    device_id: String,
    kind: DeviceKind,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Simulator {
    /// Connects and starts simulating (inside a tokio runtime).
    pub fn start(
        cs: &DeviceConnectionString,
        mut opts: SimulatorOptions,
    ) -> Result<Simulator, DeviceError> {
        if opts.client.model_id.is_none() {
            opts.client.model_id = Some(opts.kind.model_id().to_owned());
        }
        let (client, events) = DeviceClient::connect(cs, opts.client)?;
        let (stop, stop_rx) = watch::channel(false);
        let device = SimulatedDevice::new(opts.kind, opts.seed);
        let task = tokio::spawn(run(client, events, device, stop_rx));
        Ok(Simulator {
            device_id: cs.device_id.clone(),
            kind: opts.kind,
            stop,
            task,
        })
    }

    pub fn device_id(&self) -> &str {
        &self.device_id
    }

    pub fn kind(&self) -> DeviceKind {
        self.kind
    }

    /// Stops sending, disconnects and waits for the task to end.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        if tokio::time::timeout(STOP_GRACE, &mut self.task)
            .await
            .is_err()
        {
            self.task.abort();
        }
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

fn ticker(period: Duration) -> Interval {
    let mut t = tokio::time::interval_at(Instant::now() + period, period);
    t.set_missed_tick_behavior(MissedTickBehavior::Delay);
    t
}

async fn run(
    client: DeviceClient,
    mut events: mpsc::UnboundedReceiver<DeviceEvent>,
    mut device: SimulatedDevice,
    mut stop: watch::Receiver<bool>,
) {
    let id = client.device_id().to_owned();
    let kind = device.kind().name();
    let mut tick = ticker(device.telemetry_interval());
    let mut online = false;
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            _ = tick.tick() => {
                if !online {
                    continue;
                }
                let (body, props) = device.next_message();
                if let Err(e) = client.send_telemetry(body, props) {
                    tracing::debug!(device = %id, error = %e, "telemetry skipped");
                }
            }
            ev = events.recv() => {
                let Some(ev) = ev else { break };
                match ev {
                    DeviceEvent::Connected => {
                        online = true;
                        tracing::info!(device = %id, kind, "simulated device connected");
                        match client.get_twin().await {
                            Ok(twin) => {
                                let reported = device.on_connect(&twin);
                                report(&client, &id, reported).await;
                            }
                            Err(e) => tracing::warn!(device = %id, error = %e, "cannot read the twin"),
                        }
                        tick = ticker(device.telemetry_interval());
                    }
                    DeviceEvent::Disconnected { reason } => {
                        if online {
                            tracing::info!(device = %id, %reason, "simulated device disconnected");
                        }
                        online = false;
                    }
                    DeviceEvent::DesiredPatch { version, patch } => {
                        let before = device.telemetry_interval();
                        if let Some(acks) = device.apply_desired(version, &patch) {
                            report(&client, &id, acks).await;
                        }
                        if device.telemetry_interval() != before {
                            tracing::info!(device = %id, interval = ?device.telemetry_interval(), "telemetry interval changed");
                            tick = ticker(device.telemetry_interval());
                        }
                    }
                    DeviceEvent::MethodRequest { name, rid, payload } => {
                        let (status, answer) = device.handle_method(&name, &payload);
                        tracing::info!(device = %id, method = %name, status, "direct method");
                        if let Err(e) = client.respond_method(&rid, status, &answer).await {
                            tracing::warn!(device = %id, error = %e, "cannot answer a method");
                        }
                    }
                    DeviceEvent::C2d { properties, body } => {
                        let text: String = String::from_utf8_lossy(&body).chars().take(200).collect();
                        tracing::info!(
                            device = %id,
                            message_id = properties.system("mid").unwrap_or("-"),
                            body = %text,
                            "cloud-to-device message received"
                        );
                        let count = device.on_c2d();
                        report(&client, &id, count).await;
                    }
                }
            }
        }
    }
    client.close().await;
}

async fn report(client: &DeviceClient, id: &str, patch: Map<String, Value>) {
    if patch.is_empty() {
        return;
    }
    match client.patch_reported(patch).await {
        Ok(version) => tracing::debug!(device = %id, version, "reported properties updated"),
        Err(e) => tracing::warn!(device = %id, error = %e, "cannot update reported properties"),
    }
}
