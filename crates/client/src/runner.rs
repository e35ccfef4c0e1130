//! Runs a device's behaviour over a [`DeviceClient`]: telemetry every interval, the twin read
//! and reported on every connect, desired patches acknowledged, methods answered, C2D
//! counted. The demo simulator and `hubtui device --headless` both run here; the latter
//! follows what happens through [`Activity`] reports.

use std::time::Duration;

use serde_json::{Map, Value};
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, Interval, MissedTickBehavior};

use super::device::{DeviceClient, DeviceEvent};
use iothub::property_bag::PropertyBag;

/// What a device does, without any connection.
pub trait Behaviour: Send + 'static {
    fn telemetry_interval(&self) -> Duration;
    /// The next telemetry message: body and properties.
    fn next_message(&mut self) -> (Vec<u8>, PropertyBag);
    /// On every connect, from the device's view of its twin: the reported patch to send.
    fn on_connect(&mut self, twin: &Value) -> Map<String, Value>;
    /// A desired patch: acknowledgements to report, or None when it is not newer than what
    /// was applied already.
    fn apply_desired(
        &mut self,
        version: u64,
        patch: &Map<String, Value>,
    ) -> Option<Map<String, Value>>;
    /// A direct method: (status, payload).
    fn handle_method(&mut self, name: &str, payload: &Value) -> (i32, Value);
    /// The file (a built-in asset's name or a path) the device uploads before it answers
    /// the method `name`, if it uploads one.
    fn method_upload(&self, _name: &str) -> Option<String> {
        None
    }
    /// A C2D message arrived: the reported patch to send (may be empty).
    fn on_c2d(&mut self) -> Map<String, Value>;
}

/// Something that happened to a running device.
#[derive(Clone, Debug, PartialEq)]
pub enum Activity {
    Connected,
    Disconnected {
        reason: String,
        /// The hub refused the device's credentials.
        refused: bool,
    },
    Sent {
        body: Vec<u8>,
        properties: PropertyBag,
    },
    SendFailed {
        error: String,
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
    },
    Desired {
        version: u64,
        patch: Map<String, Value>,
    },
    Reported {
        patch: Map<String, Value>,
        version: u64,
    },
    ReportFailed {
        error: String,
    },
    /// A file uploaded (file upload): its blob in the hub's upload container.
    Uploaded {
        blob_name: String,
        container_name: String,
        bytes: u64,
    },
}

/// An [`Activity`] and the device it happened to.
#[derive(Clone, Debug, PartialEq)]
pub struct DeviceActivity {
    pub device_id: String,
    pub activity: Activity,
}

/// Drives `device` over `client` until `stop` turns true or the connection task ends;
/// reports each step to `activity` when given.
pub async fn run(
    client: DeviceClient,
    mut events: mpsc::UnboundedReceiver<DeviceEvent>,
    mut device: impl Behaviour,
    mut stop: watch::Receiver<bool>,
    activity: Option<mpsc::UnboundedSender<DeviceActivity>>,
) {
    let id = client.device_id().to_owned();
    let tell = |a: Activity| {
        if let Some(tx) = &activity {
            let _ = tx.send(DeviceActivity {
                device_id: id.clone(),
                activity: a,
            });
        }
    };
    let mut tick = ticker(device.telemetry_interval());
    let mut online = false;
    // The blob-linked assets the device has taken, by name.
    let mut assets = std::collections::HashMap::new();
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            _ = tick.tick() => {
                if !online {
                    continue;
                }
                let (body, properties) = device.next_message();
                match client.send_telemetry(body.clone(), properties.clone()) {
                    Ok(()) => tell(Activity::Sent { body, properties }),
                    Err(e) => {
                        tracing::debug!(device = %id, error = %e, "telemetry skipped");
                        tell(Activity::SendFailed { error: e.to_string() });
                    }
                }
            }
            ev = events.recv() => {
                let Some(ev) = ev else { break };
                match ev {
                    DeviceEvent::Connected => {
                        online = true;
                        tracing::info!(device = %id, "device connected");
                        tell(Activity::Connected);
                        match client.get_twin().await {
                            Ok(twin) => {
                                let reported = device.on_connect(&twin);
                                report(&client, reported, &tell).await;
                                assets = crate::assets::current_from(&twin);
                                let refs = crate::assets::pending(&twin);
                                follow_assets(&client, refs, &mut assets, &tell).await;
                            }
                            Err(e) => tracing::warn!(device = %id, error = %e, "cannot read the twin"),
                        }
                        tick = ticker(device.telemetry_interval());
                    }
                    DeviceEvent::Disconnected { reason, refused } => {
                        if online {
                            tracing::info!(device = %id, %reason, "device disconnected");
                        }
                        online = false;
                        tell(Activity::Disconnected { reason, refused });
                    }
                    DeviceEvent::DesiredPatch { version, patch } => {
                        let before = device.telemetry_interval();
                        let acks = device.apply_desired(version, &patch);
                        let refs = crate::assets::references(&patch);
                        tell(Activity::Desired { version, patch });
                        if let Some(acks) = acks {
                            report(&client, acks, &tell).await;
                        }
                        follow_assets(&client, refs, &mut assets, &tell).await;
                        if device.telemetry_interval() != before {
                            tracing::info!(device = %id, interval = ?device.telemetry_interval(), "telemetry interval changed");
                            tick = ticker(device.telemetry_interval());
                        }
                    }
                    DeviceEvent::MethodRequest { name, rid, payload } => {
                        let (status, response) = answer_method(&client, &mut device, &name, &payload).await;
                        tracing::info!(device = %id, method = %name, status, "direct method");
                        if let Err(e) = client.respond_method(&rid, status, &response).await {
                            tracing::warn!(device = %id, error = %e, "cannot answer a method");
                        }
                        tell(Activity::Method { name, payload, status, response });
                    }
                    DeviceEvent::C2d { properties, body } => {
                        let text: String = String::from_utf8_lossy(&body).chars().take(200).collect();
                        tracing::info!(
                            device = %id,
                            message_id = properties.system("mid").unwrap_or("-"),
                            body = %text,
                            "cloud-to-device message received"
                        );
                        tell(Activity::C2d { properties, body });
                        let count = device.on_c2d();
                        report(&client, count, &tell).await;
                    }
                }
            }
        }
    }
    client.close().await;
}

/// Takes each referenced asset in turn (see `assets`), reporting as it goes.
async fn follow_assets(
    client: &DeviceClient,
    refs: Vec<crate::assets::AssetRef>,
    current: &mut std::collections::HashMap<String, String>,
    tell: &impl Fn(Activity),
) {
    for r in refs {
        let before = current.get(&r.name).cloned();
        report(
            client,
            crate::assets::acknowledged(&r, before.as_deref()),
            tell,
        )
        .await;
        let (patch, taken) = crate::assets::take(client, &r, before.as_deref()).await;
        report(client, patch, tell).await;
        if taken {
            current.insert(r.name, r.uri);
        }
    }
}

/// The answer to a method call: the behaviour's, after the upload it asks for (the blob's
/// name and size added to the payload), or 500 with the reason when the upload fails.
pub async fn answer_method(
    client: &DeviceClient,
    device: &mut impl Behaviour,
    name: &str,
    payload: &Value,
) -> (i32, Value) {
    let (status, mut response) = device.handle_method(name, payload);
    let Some(source) = device.method_upload(name) else {
        return (status, response);
    };
    let blob = match payload.get("blobName").and_then(Value::as_str) {
        Some(b) if !b.is_empty() => b.to_string(),
        _ => {
            let ext = std::path::Path::new(&source)
                .extension()
                .and_then(|e| e.to_str())
                .unwrap_or("bin");
            format!(
                "{name}-{}.{ext}",
                chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ")
            )
        }
    };
    let uploaded = match crate::profile::asset(&source) {
        Some(data) => client.upload_bytes(data.to_vec(), &blob).await,
        None => {
            client
                .upload_file(std::path::Path::new(&source), &blob)
                .await
        }
    };
    match uploaded {
        Ok(up) => {
            if let Value::Object(o) = &mut response {
                o.insert("blobName".into(), Value::String(up.blob_name));
                o.insert("bytes".into(), up.bytes.into());
            }
            (status, response)
        }
        Err(e) => (500, serde_json::json!({"error": e.to_string()})),
    }
}

fn ticker(period: Duration) -> Interval {
    let mut t = tokio::time::interval_at(Instant::now() + period, period);
    t.set_missed_tick_behavior(MissedTickBehavior::Delay);
    t
}

async fn report(client: &DeviceClient, patch: Map<String, Value>, tell: &impl Fn(Activity)) {
    if patch.is_empty() {
        return;
    }
    match client.patch_reported(patch.clone()).await {
        Ok(version) => {
            tracing::debug!(device = %client.device_id(), version, "reported properties updated");
            tell(Activity::Reported { patch, version });
        }
        Err(e) => {
            tracing::warn!(device = %client.device_id(), error = %e, "cannot update reported properties");
            tell(Activity::ReportFailed {
                error: e.to_string(),
            });
        }
    }
}
