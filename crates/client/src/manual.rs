//! Runs one device by hand, for a terminal UI: telemetry and reported patches go out when a
//! [`ManualCommand`] asks, while direct methods are answered and writable properties
//! acknowledged by a [`Behaviour`] (a device profile), as the runner does. Everything that
//! happens comes back as a [`ManualEvent`], including the twin read at every connect.

use std::sync::Arc;

use serde_json::{Map, Value};
use tokio::sync::mpsc;

use super::device::{DeviceClient, DeviceEvent};
use super::runner::Behaviour;
use iothub::property_bag::PropertyBag;

/// What the UI asks the device to do.
#[derive(Clone, Debug, PartialEq)]
pub enum ManualCommand {
    /// Queue one telemetry message; `id` comes back in `Sent`.
    SendTelemetry {
        id: u64,
        body: Vec<u8>,
        properties: PropertyBag,
    },
    /// Patch reported properties; `id` comes back in `Reported`/`ReportFailed`.
    PatchReported { id: u64, patch: Map<String, Value> },
    /// Whether desired properties are acknowledged automatically (Plug and Play).
    SetAutoAck(bool),
}

/// Who asked for a reported patch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReportOrigin {
    /// The user's patch with this id.
    User(u64),
    /// The profile's acknowledgements or device defaults.
    Acknowledgement,
}

/// What happened to the device.
#[derive(Clone, Debug, PartialEq)]
pub enum ManualEvent {
    Connected,
    Disconnected {
        reason: String,
        refused: bool,
    },
    /// The twin as read after a connect: `{"desired": {..}, "reported": {..}}`.
    Twin(Value),
    /// The telemetry message `id` was queued (QoS 1) or refused with the error.
    Sent {
        id: u64,
        result: Result<(), String>,
    },
    C2d {
        properties: PropertyBag,
        body: Vec<u8>,
    },
    Method {
        name: String,
        payload: Value,
        status: i32,
        response: Value,
        /// Why the answer could not be sent, if it could not.
        error: Option<String>,
    },
    Desired {
        version: u64,
        patch: Map<String, Value>,
    },
    Reported {
        origin: ReportOrigin,
        patch: Map<String, Value>,
        version: u64,
    },
    ReportFailed {
        origin: ReportOrigin,
        error: String,
    },
}

/// Drives `client` until the command channel closes (the UI quit) or the connection task ends.
pub async fn run(
    client: DeviceClient,
    mut events: mpsc::UnboundedReceiver<DeviceEvent>,
    mut device: impl Behaviour,
    mut commands: mpsc::UnboundedReceiver<ManualCommand>,
    out: mpsc::Sender<ManualEvent>,
    mut auto_ack: bool,
) {
    // Reported patches wait for the hub's answer (up to the request timeout): they run beside
    // the loop so that methods and C2D keep flowing meanwhile.
    let client = Arc::new(client);
    loop {
        tokio::select! {
            cmd = commands.recv() => {
                let Some(cmd) = cmd else { break };
                match cmd {
                    ManualCommand::SendTelemetry { id, body, properties } => {
                        let result = client
                            .send_telemetry(body, properties)
                            .map_err(|e| e.to_string());
                        emit(&out, ManualEvent::Sent { id, result }).await;
                    }
                    ManualCommand::PatchReported { id, patch } => {
                        let origin = ReportOrigin::User(id);
                        tokio::spawn(report(client.clone(), patch, origin, out.clone()));
                    }
                    ManualCommand::SetAutoAck(on) => auto_ack = on,
                }
            }
            ev = events.recv() => {
                let Some(ev) = ev else { break };
                on_event(&client, ev, &mut device, auto_ack, &out).await;
            }
        }
    }
    if let Ok(client) = Arc::try_unwrap(client) {
        client.close().await;
    }
}

async fn on_event(
    client: &Arc<DeviceClient>,
    ev: DeviceEvent,
    device: &mut impl Behaviour,
    auto_ack: bool,
    out: &mpsc::Sender<ManualEvent>,
) {
    match ev {
        DeviceEvent::Connected => {
            emit(out, ManualEvent::Connected).await;
            match client.get_twin().await {
                Ok(twin) => {
                    emit(out, ManualEvent::Twin(twin.clone())).await;
                    // The profile reports its defaults and acknowledges what desired holds,
                    // as the runner does, unless acknowledgements are off.
                    if auto_ack {
                        let reported = device.on_connect(&twin);
                        report_now(client, reported, out).await;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the twin");
                }
            }
        }
        DeviceEvent::Disconnected { reason, refused } => {
            emit(out, ManualEvent::Disconnected { reason, refused }).await;
        }
        DeviceEvent::DesiredPatch { version, patch } => {
            let acks = auto_ack
                .then(|| device.apply_desired(version, &patch))
                .flatten();
            emit(out, ManualEvent::Desired { version, patch }).await;
            if let Some(acks) = acks {
                report_now(client, acks, out).await;
            }
        }
        DeviceEvent::MethodRequest { name, rid, payload } => {
            let (status, response) = device.handle_method(&name, &payload);
            let error = client
                .respond_method(&rid, status, &response)
                .await
                .err()
                .map(|e| e.to_string());
            emit(
                out,
                ManualEvent::Method {
                    name,
                    payload,
                    status,
                    response,
                    error,
                },
            )
            .await;
        }
        DeviceEvent::C2d { properties, body } => {
            emit(out, ManualEvent::C2d { properties, body }).await;
        }
    }
}

async fn report_now(
    client: &Arc<DeviceClient>,
    patch: Map<String, Value>,
    out: &mpsc::Sender<ManualEvent>,
) {
    if !patch.is_empty() {
        report(
            client.clone(),
            patch,
            ReportOrigin::Acknowledgement,
            out.clone(),
        )
        .await;
    }
}

async fn report(
    client: Arc<DeviceClient>,
    patch: Map<String, Value>,
    origin: ReportOrigin,
    out: mpsc::Sender<ManualEvent>,
) {
    let ev = match client.patch_reported(patch.clone()).await {
        Ok(version) => ManualEvent::Reported {
            origin,
            patch,
            version,
        },
        Err(e) => ManualEvent::ReportFailed {
            origin,
            error: e.to_string(),
        },
    };
    emit(&out, ev).await;
}

async fn emit(out: &mpsc::Sender<ManualEvent>, ev: ManualEvent) {
    // The UI has quit when nobody listens; the loop ends with the command channel.
    let _ = out.send(ev).await;
}
