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
use super::runner::run;
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
        let task = tokio::spawn(run(client, events, device, stop_rx, None));
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
