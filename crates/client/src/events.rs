//! The typed messages between the explorer and its backend connections: `HubEvent`
//! (backend → app) and `HubCommand` (app → backend). Pure data: no I/O, no tokio.
//! Wire formats stay in `iothub`; these types carry already-parsed values.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use iothub::device::{DeviceIdentity, DeviceStatus};
use iothub::twin::Section;

pub use crate::storage::BlobItem;

/// One backend connection whose state the status bar shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Backend {
    /// Service REST API: registry, twins, methods, purge.
    Service,
    /// Event Hubs-compatible endpoint: device-to-cloud telemetry.
    Telemetry,
    /// AMQP service link: C2D sends and feedback.
    Messaging,
}

impl Backend {
    pub const ALL: [Backend; 3] = [Backend::Service, Backend::Telemetry, Backend::Messaging];

    /// Short name for the status bar.
    pub fn label(self) -> &'static str {
        match self {
            Backend::Service => "service",
            Backend::Telemetry => "telemetry",
            Backend::Messaging => "c2d",
        }
    }
}

/// The state of one backend connection.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LinkState {
    #[default]
    Idle,
    Connecting,
    Connected,
    /// Lost; the backend retries with backoff.
    Reconnecting,
    /// Gave up (bad credentials, unreachable); `detail` says why.
    Failed,
}

impl LinkState {
    pub fn label(self) -> &'static str {
        match self {
            LinkState::Idle => "idle",
            LinkState::Connecting => "connecting",
            LinkState::Connected => "connected",
            LinkState::Reconnecting => "reconnecting",
            LinkState::Failed => "failed",
        }
    }
}

/// One device-to-cloud message as read from the telemetry endpoint.
#[derive(Clone, Debug, PartialEq)]
pub struct TelemetryEvent {
    pub enqueued_time: DateTime<Utc>,
    pub device_id: String,
    pub module_id: Option<String>,
    pub partition: u32,
    pub sequence_number: i64,
    /// System properties (message id, content type, ...), name → value as text.
    pub system_properties: Vec<(String, String)>,
    /// Application properties set by the device.
    pub application_properties: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// A direct method's answer from the device.
#[derive(Clone, Debug, PartialEq)]
pub struct MethodResponse {
    pub status: i32,
    pub payload: Value,
}

/// Why a method call produced no answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MethodFailure {
    /// HTTP status from the service, when there was one (404 offline, 504 timeout).
    pub http_status: Option<u16>,
    /// One sentence for the user.
    pub message: String,
}

/// Where telemetry reading starts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum StartFrom {
    #[default]
    Now,
    /// This long before the backend (re)starts reading.
    Ago(Duration),
    At(DateTime<Utc>),
}

/// C2D feedback the sender asks for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AckMode {
    #[default]
    None,
    Positive,
    Negative,
    Full,
}

impl AckMode {
    pub const ALL: [AckMode; 4] = [
        AckMode::None,
        AckMode::Positive,
        AckMode::Negative,
        AckMode::Full,
    ];

    pub fn label(self) -> &'static str {
        match self {
            AckMode::None => "none",
            AckMode::Positive => "positive",
            AckMode::Negative => "negative",
            AckMode::Full => "full",
        }
    }

    pub fn next(self) -> AckMode {
        let i = Self::ALL.iter().position(|m| *m == self).unwrap_or(0);
        Self::ALL[(i + 1) % Self::ALL.len()]
    }
}

/// A cloud-to-device message to send.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct C2dMessage {
    pub device_id: String,
    pub payload: Vec<u8>,
    pub message_id: String,
    pub correlation_id: Option<String>,
    pub content_type: Option<String>,
    pub content_encoding: Option<String>,
    pub expiry: Option<Duration>,
    pub ack: AckMode,
    pub properties: Vec<(String, String)>,
}

/// How a new device authenticates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NewDeviceAuth {
    /// Symmetric keys the hub generates.
    Sas,
    /// Self-signed X.509 by thumbprint.
    X509 {
        primary_thumbprint: String,
        secondary_thumbprint: Option<String>,
    },
}

/// What the explorer shows now: the backend re-reads only this, so an idle explorer costs a
/// hub's quota only for what is on screen.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OnScreen {
    /// The Devices tab shows the device list.
    pub device_list: bool,
    /// The Twin tab shows this device's twin (or its module's, with `module`).
    pub twin: Option<String>,
    pub module: Option<String>,
    /// The Twin tab shows the rollout of this asset (its property name).
    pub rollout: Option<String>,
    /// The Files tab shows this container's blobs.
    pub files: Option<String>,
}

/// Which devices an attached asset goes to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AssetTarget {
    Device(String),
    /// Every device whose twin matches this query condition (`*`: every device).
    Matching(String),
}

/// An asset to upload and reference in the desired properties of its targets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AssetAttach {
    pub path: PathBuf,
    /// The desired property that references it.
    pub name: String,
    /// How long the read SAS in the reference stays valid.
    pub lifetime: Duration,
    pub target: AssetTarget,
}

/// What the device list shows from a device's twin beside its identity (the query answers
/// with twins).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TwinSummary {
    /// The Plug and Play model the device announced; empty when none.
    pub model_id: String,
    pub tags: Map<String, Value>,
    /// Module identities of the device; None when unknown (the module query failed or
    /// its answer did not fit one page).
    pub modules: Option<u32>,
}

/// A blob a device uploaded, as the hub's file upload notification tells it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileUploaded {
    pub device_id: String,
    /// `{deviceId}/{name}` inside the hub's upload container.
    pub blob_name: String,
    pub size: u64,
    pub last_updated: Option<DateTime<Utc>>,
}

/// Backend → app.
#[derive(Clone, Debug, PartialEq)]
pub enum HubEvent {
    /// A page of the device registry. `replace` starts a new list (first page, new filter).
    DevicesPage {
        items: Vec<DeviceIdentity>,
        /// By device id, for the devices in `items`.
        twins: BTreeMap<String, TwinSummary>,
        continuation: Option<String>,
        replace: bool,
    },
    /// One device was created or changed (status, keys).
    DeviceChanged(DeviceIdentity),
    /// One registry entry as read by `GetDevice`, keys included (query pages carry none).
    DeviceLoaded(DeviceIdentity),
    DeviceDeleted {
        device_id: String,
    },
    /// The twin as the service returns it (see `iothub::service_twin`).
    Twin {
        device_id: String,
        twin: Value,
    },
    /// The module ids of a device, as `ListModules` read them.
    Modules {
        device_id: String,
        module_ids: Vec<String>,
    },
    /// A PATCH succeeded; `twin` is the document after it.
    TwinUpdated {
        device_id: String,
        twin: Value,
    },
    /// A PATCH hit 412: the etag was stale; `current` is the twin now.
    TwinConflict {
        device_id: String,
        current: Value,
    },
    Telemetry(TelemetryEvent),
    MethodResult {
        call_id: u64,
        result: Result<MethodResponse, MethodFailure>,
    },
    C2dSent {
        message_id: String,
    },
    /// The hub did not take the message (or there is no sender); `reason` is one sentence.
    C2dFailed {
        message_id: String,
        reason: String,
    },
    C2dFeedback {
        original_message_id: String,
        status: String,
    },
    Purged {
        device_id: String,
        count: u64,
    },
    /// Telemetry buffer written by `ExportTelemetry`.
    Exported {
        path: PathBuf,
        count: usize,
    },
    ConnectionState {
        backend: Backend,
        state: LinkState,
        detail: Option<String>,
    },
    /// The hub throttled a request (429, quota exceeded): polling waits `retry_in`. None: a
    /// request went through again, the throttling is over.
    Throttled {
        retry_in: Option<Duration>,
    },
    /// Service REST calls made in the last minute.
    ServiceCalls {
        per_minute: usize,
    },
    /// An asset was uploaded and referenced in the desired properties of `devices`;
    /// `failed` are the targets whose twin could not be patched, with why.
    AssetAttached {
        name: String,
        uri: String,
        devices: Vec<String>,
        failed: Vec<(String, String)>,
    },
    /// Nothing was attached (no device patched): one sentence why.
    AssetAttachFailed {
        name: String,
        reason: String,
    },
    /// The reports of the asset `name` by the devices it is desired on.
    Rollout {
        name: String,
        rows: Vec<crate::rollout::RolloutRow>,
    },
    /// The blobs of `container` as listed now; `truncated`: there were more than the
    /// explorer keeps.
    Blobs {
        container: String,
        items: Vec<BlobItem>,
        truncated: bool,
    },
    /// A listing of `container` failed; `reason` is one sentence.
    BlobsFailed {
        container: String,
        reason: String,
    },
    /// The storage account's containers.
    Containers(Vec<String>),
    /// A blob's properties and first bytes, for the preview pane.
    BlobPreview {
        container: String,
        blob: BlobItem,
        head: Vec<u8>,
    },
    BlobPreviewFailed {
        container: String,
        blob: String,
        reason: String,
    },
    /// A file upload notification: the blob is in the hub's upload container now.
    FileUploaded(FileUploaded),
    /// `DownloadBlob` finished: `bytes` written to `path`, or one sentence why not.
    Downloaded {
        path: PathBuf,
        result: Result<u64, String>,
    },
    /// A failure worth one sentence in the status bar.
    Error(String),
}

/// App → backend.
#[derive(Clone, Debug, PartialEq)]
pub enum HubCommand {
    /// Upload a file to the storage account and reference it in desired properties.
    AttachAsset(AssetAttach),
    /// Query the registry; `continuation` None is the first page. `filter` is a device id
    /// substring typed by the user; the backend turns it into a query.
    LoadDevices {
        continuation: Option<String>,
        filter: Option<String>,
    },
    /// Read one registry entry with its keys (the query API returns twins, without keys).
    GetDevice {
        device_id: String,
    },
    CreateDevice {
        device_id: String,
        auth: NewDeviceAuth,
    },
    SetDeviceStatus {
        device_id: String,
        status: DeviceStatus,
    },
    DeleteDevice {
        device_id: String,
    },
    /// The device's twin, or its module's.
    GetTwin {
        device_id: String,
        module_id: Option<String>,
    },
    /// The module ids of a device.
    ListModules {
        device_id: String,
    },
    /// PATCH one section with If-Match `etag`; the backend builds the body with
    /// `iothub::service_twin::patch_body`.
    PatchTwin {
        device_id: String,
        module_id: Option<String>,
        section: Section,
        patch: Map<String, Value>,
        etag: String,
    },
    InvokeMethod {
        call_id: u64,
        device_id: String,
        module_id: Option<String>,
        name: String,
        payload: Value,
        response_timeout: Duration,
        connect_timeout: Duration,
    },
    SendC2d(C2dMessage),
    PurgeC2d {
        device_id: String,
    },
    /// What is on screen now; sent when it changes.
    Visible(OnScreen),
    /// (Re)start reading telemetry.
    StartTelemetry {
        from: StartFrom,
        consumer_group: String,
    },
    /// List `container` now (the Files tab re-reads it while on screen).
    ListBlobs {
        container: String,
    },
    ListContainers,
    /// Properties and the first `bytes` of a blob.
    PreviewBlob {
        container: String,
        blob: String,
        bytes: usize,
    },
    /// Download a blob to `path` (complete, or not at all).
    DownloadBlob {
        container: String,
        blob: String,
        path: PathBuf,
    },
    /// Receive file upload notifications while the Files tab is on screen, against a hub
    /// where that was not the default (they are taken from the hub's shared queue).
    FileNotifications(bool),
    /// Write JSON lines (one message each) to `path`.
    ExportTelemetry {
        path: PathBuf,
        contents: String,
        count: usize,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ack_mode_cycles() {
        let mut m = AckMode::None;
        let mut seen = vec![];
        for _ in 0..4 {
            seen.push(m.label());
            m = m.next();
        }
        assert_eq!(seen, ["none", "positive", "negative", "full"]);
        assert_eq!(m, AckMode::None);
    }

    #[test]
    fn labels() {
        let names: Vec<_> = Backend::ALL.iter().map(|b| b.label()).collect();
        assert_eq!(names, ["service", "telemetry", "c2d"]);
        assert_eq!(LinkState::default().label(), "idle");
    }
}
