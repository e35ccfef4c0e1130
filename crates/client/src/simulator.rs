//! Simulated devices: each is a [`DeviceClient`] driven by a [`SimulatedDevice`] in the shared
//! device runner. It sends JSON telemetry every `telemetryInterval` seconds, reports its
//! identity and acknowledgements, follows desired properties, answers direct methods and
//! counts C2D messages (reported as `c2dReceived`, so the count is visible through the twin).

mod model;

use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use model::{
    DEFAULT_INTERVAL_SECS, DeviceKind, FIRMWARE, INTERVAL_RANGE, KIND_PROPERTY, SimulatedDevice,
};

use super::device::{DeviceClient, DeviceClientOptions, DeviceError};
use super::profile::{Profile, ProfileDevice};
use super::runner::{Behaviour, run};
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
    name: String,
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
        let device = SimulatedDevice::new(opts.kind, opts.seed);
        Simulator::spawn(cs, opts.kind.name(), opts.client, device)
    }

    /// As `start`, playing a device profile instead of a demo kind; `model_id` defaults to
    /// the profile's.
    pub fn start_profile(
        cs: &DeviceConnectionString,
        profile: Profile,
        seed: u64,
        mut client: DeviceClientOptions,
    ) -> Result<Simulator, DeviceError> {
        if client.model_id.is_none() {
            client.model_id = profile.model_id.clone();
        }
        let name = profile.name.clone();
        Simulator::spawn(cs, &name, client, ProfileDevice::new(profile, seed))
    }

    fn spawn(
        cs: &DeviceConnectionString,
        name: &str,
        client: DeviceClientOptions,
        device: impl Behaviour,
    ) -> Result<Simulator, DeviceError> {
        let (client, events) = DeviceClient::connect(cs, client)?;
        let (stop, stop_rx) = watch::channel(false);
        let task = tokio::spawn(run(client, events, device, stop_rx, None));
        Ok(Simulator {
            device_id: cs.device_id.clone(),
            name: name.to_owned(),
            stop,
            task,
        })
    }

    pub fn device_id(&self) -> &str {
        &self.device_id
    }

    /// The demo kind or profile it plays.
    pub fn name(&self) -> &str {
        &self.name
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
