//! Runs one device by hand, for a terminal UI: telemetry and reported patches go out when a
//! [`ManualCommand`] asks, while direct methods are answered and writable properties
//! acknowledged by a [`Behaviour`] (a device profile), as the runner does. With
//! `ask_methods`, a method call is put to the user instead, and the profile answers it only
//! if the user has not within `ask_timeout`. Everything that happens comes back as a
//! [`ManualEvent`], including the twin read at every connect.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};
use tokio::sync::mpsc;
use tokio::time::Instant;

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
    /// Whether method calls are put to the user (`MethodAsked`) rather than the profile.
    SetAskMethods(bool),
    /// The user's answer to the call `rid` that `MethodAsked` put to them.
    AnswerMethod {
        rid: String,
        status: i32,
        payload: Value,
    },
    /// Upload the file at `path` (file upload), named by its file name.
    Upload { path: std::path::PathBuf },
}

/// How the device starts out answering.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ManualSettings {
    /// Plug and Play acknowledgements by the profile.
    pub auto_ack: bool,
    /// Method calls put to the user.
    pub ask_methods: bool,
    /// How long a call put to the user waits before the profile answers it.
    pub ask_timeout: Duration,
}

/// Calls waiting for the user at once; more are answered by the profile at once, so a
/// flood of calls cannot pile up unanswered.
pub const MAX_ASKED: usize = 32;

/// Who answered a method call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answerer {
    Profile,
    User,
    /// The call was put to the user, who did not answer within the timeout.
    ProfileAfterTimeout,
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
    /// A method call put to the user; answer with `AnswerMethod` before `timeout`.
    MethodAsked {
        rid: String,
        name: String,
        payload: Value,
        /// What the profile would answer (status, payload).
        suggested: (i32, Value),
        timeout: Duration,
    },
    /// A method call answered.
    Method {
        rid: String,
        name: String,
        payload: Value,
        status: i32,
        response: Value,
        by: Answerer,
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
    /// A file upload finished: the blob, or why it failed.
    Uploaded {
        path: std::path::PathBuf,
        result: Result<super::device::Uploaded, String>,
    },
}

/// A method call waiting for the user.
struct Asked {
    call: Call,
    deadline: Instant,
}

/// Drives `client` until the command channel closes (the UI quit) or the connection task ends.
pub async fn run(
    client: DeviceClient,
    mut events: mpsc::UnboundedReceiver<DeviceEvent>,
    mut device: impl Behaviour,
    mut commands: mpsc::UnboundedReceiver<ManualCommand>,
    out: mpsc::Sender<ManualEvent>,
    mut settings: ManualSettings,
) {
    // Reported patches wait for the hub's answer (up to the request timeout): they run beside
    // the loop so that methods and C2D keep flowing meanwhile.
    let client = Arc::new(client);
    // Oldest first; one timeout for all, so the first deadline is the earliest.
    let mut asked: VecDeque<Asked> = VecDeque::new();
    loop {
        let next_deadline = asked.front().map(|a| a.deadline);
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
                    ManualCommand::Upload { path } => {
                        tokio::spawn(upload(client.clone(), path, out.clone()));
                    }
                    ManualCommand::SetAutoAck(on) => settings.auto_ack = on,
                    ManualCommand::SetAskMethods(on) => settings.ask_methods = on,
                    ManualCommand::AnswerMethod { rid, status, payload: response } => {
                        // A call already answered by the profile after its timeout is gone.
                        let at = asked.iter().position(|a| a.call.rid == rid);
                        if let Some(a) = at.and_then(|i| asked.remove(i)) {
                            answer(&client, a.call, status, response, Answerer::User, &out).await;
                        }
                    }
                }
            }
            () = sleep_until(next_deadline) => {
                if let Some(Asked { call, .. }) = asked.pop_front() {
                    // The profile's whole answer, uploads included.
                    let (status, response) = super::runner::answer_method(
                        &client, &mut device, &call.name, &call.payload,
                    )
                    .await;
                    let by = Answerer::ProfileAfterTimeout;
                    answer(&client, call, status, response, by, &out).await;
                }
            }
            ev = events.recv() => {
                let Some(ev) = ev else { break };
                match ev {
                    DeviceEvent::MethodRequest { name, rid, payload }
                        if settings.ask_methods && asked.len() < MAX_ASKED =>
                    {
                        let suggested = device.handle_method(&name, &payload);
                        let timeout = settings.ask_timeout;
                        let call = Call { rid: rid.clone(), name: name.clone(), payload: payload.clone() };
                        asked.push_back(Asked { call, deadline: Instant::now() + timeout });
                        let ev = ManualEvent::MethodAsked { rid, name, payload, suggested, timeout };
                        emit(&out, ev).await;
                    }
                    ev => on_event(&client, ev, &mut device, settings.auto_ack, &out).await,
                }
            }
        }
    }
    if let Ok(client) = Arc::try_unwrap(client) {
        client.close().await;
    }
}

/// Waits until `deadline`; forever without one.
async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// A method call as the hub sent it.
struct Call {
    rid: String,
    name: String,
    payload: Value,
}

/// Sends the answer to `call` and tells the UI.
async fn answer(
    client: &DeviceClient,
    call: Call,
    status: i32,
    response: Value,
    by: Answerer,
    out: &mpsc::Sender<ManualEvent>,
) {
    let error = client
        .respond_method(&call.rid, status, &response)
        .await
        .err()
        .map(|e| e.to_string());
    let ev = ManualEvent::Method {
        rid: call.rid,
        name: call.name,
        payload: call.payload,
        status,
        response,
        by,
        error,
    };
    emit(out, ev).await;
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
                        let refs = crate::assets::pending(&twin);
                        tokio::spawn(follow_assets(client.clone(), refs, out.clone()));
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
            let refs = crate::assets::references(&patch);
            emit(out, ManualEvent::Desired { version, patch }).await;
            if let Some(acks) = acks {
                report_now(client, acks, out).await;
                tokio::spawn(follow_assets(client.clone(), refs, out.clone()));
            }
        }
        DeviceEvent::MethodRequest { name, rid, payload } => {
            let (status, response) =
                super::runner::answer_method(client, device, &name, &payload).await;
            let call = Call { rid, name, payload };
            answer(client, call, status, response, Answerer::Profile, out).await;
        }
        DeviceEvent::C2d { properties, body } => {
            emit(out, ManualEvent::C2d { properties, body }).await;
        }
    }
}

/// Uploads in the background, so that methods and telemetry go on meanwhile.
async fn upload(
    client: Arc<DeviceClient>,
    path: std::path::PathBuf,
    out: mpsc::Sender<ManualEvent>,
) {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let result = if name.is_empty() {
        Err(format!("{} names no file", path.display()))
    } else {
        client
            .upload_file(&path, &name)
            .await
            .map_err(|e| e.to_string())
    };
    emit(&out, ManualEvent::Uploaded { path, result }).await;
}

/// Takes referenced assets (see `assets`) in the background, as the runner does; what
/// is current comes from the twin as it is now.
async fn follow_assets(
    client: Arc<DeviceClient>,
    refs: Vec<crate::assets::AssetRef>,
    out: mpsc::Sender<ManualEvent>,
) {
    if refs.is_empty() {
        return;
    }
    let current = match client.get_twin().await {
        Ok(twin) => crate::assets::current_from(&twin),
        Err(_) => Default::default(),
    };
    for r in refs {
        let before = current.get(&r.name).map(String::as_str);
        report_now(&client, crate::assets::acknowledged(&r, before), &out).await;
        let (patch, _) = crate::assets::take(&client, &r, before).await;
        report_now(&client, patch, &out).await;
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
