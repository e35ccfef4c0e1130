//! Device file upload, as IoT Hub serves it to devices over HTTPS: `POST
//! /devices/{id}/files` hands out a SAS URI for a blob in the hub's upload container
//! (`{deviceId}/{blobName}`), the device uploads to the blob store itself, then `POST
//! /devices/{id}/files/notifications` reports the outcome; a successful upload becomes a
//! file upload notification for services (`/messages/serviceBound/filenotifications`)
//! when notifications are on. Paths with and without a trailing slash, and the
//! correlation id in the path (the Node SDK) or in the body, are all accepted.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use chrono::Utc;
use serde::Deserialize;
use serde_json::{Value, json};

use super::blob::BlobService;
use super::rest::{ApiError, ApiVersion, parse_json};
use super::state::HubState;
use super::store::{ContainerRow, ServiceQueue};
use iothub::device::format_time;
use iothub::error::{ErrorCode, ServiceError};

/// What `hubtui hub` is configured with for file upload.
#[derive(Clone, Debug)]
pub struct FileUploadSettings {
    /// The container uploads go to (made when first needed).
    pub container: String,
    /// How long a handed-out SAS URI is valid (Azure: 1 to 24 hours, default 1).
    pub sas_ttl: Duration,
    /// Whether completed uploads are notified to services (Azure's default: on).
    pub notifications: bool,
}

impl Default for FileUploadSettings {
    fn default() -> Self {
        FileUploadSettings {
            container: "fileuploads".into(),
            sas_ttl: Duration::from_secs(3600),
            notifications: true,
        }
    }
}

/// Uploads a device may have under way at once (Azure: 10; error 403006 beyond).
const MAX_ACTIVE_PER_DEVICE: usize = 10;
/// Uploads under way hub-wide, so that a flood of requests cannot grow memory.
const MAX_ACTIVE: usize = 100_000;

/// An upload handed out and not yet reported.
struct Active {
    device_id: String,
    blob_name: String,
    expires: Instant,
}

pub struct FileUploads {
    state: Arc<HubState>,
    blobs: Arc<BlobService>,
    settings: FileUploadSettings,
    /// `host:port/{account}`: what the SDKs put between `https://` and the container.
    storage_host: String,
    active: Mutex<HashMap<String, Active>>,
}

type Shared = Arc<FileUploads>;

pub fn router(
    state: Arc<HubState>,
    blobs: Arc<BlobService>,
    settings: FileUploadSettings,
    https_port: u16,
) -> Router {
    let storage_host = format!("{}:{https_port}/{}", state.host_name, blobs.account);
    let uploads = Arc::new(FileUploads {
        state,
        blobs,
        settings,
        storage_host,
        active: Mutex::new(HashMap::new()),
    });
    Router::new()
        .route("/devices/{id}/files", post(start))
        .route("/devices/{id}/files/", post(start))
        .route("/devices/{id}/files/notifications", post(notify))
        .route("/devices/{id}/files/notifications/", post(notify))
        .route(
            "/devices/{id}/files/notifications/{cid}",
            post(notify_with_id),
        )
        .with_state(uploads)
}

fn bad_request(message: impl Into<String>) -> ApiError {
    ApiError(ServiceError::new(ErrorCode::ArgumentInvalid, message))
}

/// The device's own SAS token (or a policy's with DeviceConnect) in `Authorization`.
fn authenticate_device(
    state: &HubState,
    device_id: &str,
    headers: &HeaderMap,
    q: &ApiVersion,
) -> Result<(), ApiError> {
    super::rest::require_api_version(q.api_version.as_deref())?;
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| {
            ApiError(ServiceError::new(
                ErrorCode::IotHubUnauthorizedAccess,
                "The Authorization header with the device's SharedAccessSignature is missing.",
            ))
        })?;
    state
        .authenticate(&(device_id.to_string(), None), token)
        .map(drop)
        .map_err(ApiError)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StartRequest {
    blob_name: Option<String>,
}

/// `POST /devices/{id}/files`: a SAS URI for `{deviceId}/{blobName}` in the upload
/// container.
async fn start(
    State(u): State<Shared>,
    Path(device_id): Path<String>,
    h: HeaderMap,
    Query(q): Query<ApiVersion>,
    body: Bytes,
) -> Result<Response, ApiError> {
    authenticate_device(&u.state, &device_id, &h, &q)?;
    let req: StartRequest = serde_json::from_value(parse_json(&body)?)
        .map_err(|e| bad_request(format!("The request body is not valid: {e}.")))?;
    let name = req
        .blob_name
        .filter(|n| !n.trim().is_empty())
        .ok_or_else(|| bad_request("The request body needs a blobName, the file's name."))?;
    let blob_name = format!("{device_id}/{name}");
    if blob_name.chars().count() > super::blob::MAX_BLOB_NAME {
        return Err(bad_request(format!(
            "The blob name {device_id}/{name} is longer than {} characters.",
            super::blob::MAX_BLOB_NAME
        )));
    }
    let container = u.settings.container.clone();
    let state = u.state.clone();
    let c = container.clone();
    super::rest::off_worker(move || ensure_container(&state, &c)).await?;

    let correlation_id = uuid::Uuid::new_v4().to_string();
    {
        let now = Instant::now();
        let mut active = u.active.lock().unwrap_or_else(|p| p.into_inner());
        active.retain(|_, a| a.expires > now);
        let mine = active.values().filter(|a| a.device_id == device_id).count();
        if mine >= MAX_ACTIVE_PER_DEVICE {
            return Err(ApiError(ServiceError::new(
                ErrorCode::DeviceMaximumActiveFileUploadLimitExceeded,
                format!(
                    "The device {device_id} has {MAX_ACTIVE_PER_DEVICE} file uploads under way; report one with files/notifications first."
                ),
            )));
        }
        if active.len() >= MAX_ACTIVE {
            return Err(ApiError(ServiceError::new(
                ErrorCode::ThrottlingException,
                "Too many file uploads are under way on this hub; retry later.",
            )));
        }
        active.insert(
            correlation_id.clone(),
            Active {
                device_id: device_id.clone(),
                blob_name: blob_name.clone(),
                expires: now + u.settings.sas_ttl,
            },
        );
    }
    let expiry = Utc::now() + u.settings.sas_ttl;
    let sas = iothub::storage::service_sas::make_query(
        &u.blobs.account,
        &u.blobs.key,
        &container,
        Some(&blob_name),
        "rw",
        None,
        &expiry.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
    );
    Ok(axum::Json(json!({
        "correlationId": correlation_id,
        "hostName": u.storage_host,
        "containerName": container,
        "blobName": blob_name,
        "sasToken": format!("?{sas}"),
    }))
    .into_response())
}

fn ensure_container(state: &HubState, name: &str) -> Result<(), ServiceError> {
    let row = ContainerRow {
        name: name.to_string(),
        etag: super::blob::props::new_etag(),
        modified_ms: Utc::now().timestamp_millis(),
    };
    // False when it exists already, which is as good.
    state.store.container_create(&row)?;
    Ok(())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Outcome {
    correlation_id: Option<String>,
    is_success: Option<bool>,
    status_code: Option<Value>,
    status_description: Option<String>,
}

async fn notify(
    u: State<Shared>,
    Path(device_id): Path<String>,
    h: HeaderMap,
    q: Query<ApiVersion>,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    settle(u, device_id, None, h, q, body).await
}

async fn notify_with_id(
    u: State<Shared>,
    Path((device_id, cid)): Path<(String, String)>,
    h: HeaderMap,
    q: Query<ApiVersion>,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    settle(u, device_id, Some(cid), h, q, body).await
}

/// `POST /devices/{id}/files/notifications`: the upload's outcome. A success with the
/// blob in the store becomes a notification for services.
async fn settle(
    State(u): State<Shared>,
    device_id: String,
    path_cid: Option<String>,
    h: HeaderMap,
    Query(q): Query<ApiVersion>,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    authenticate_device(&u.state, &device_id, &h, &q)?;
    let outcome: Outcome = serde_json::from_value(parse_json(&body)?)
        .map_err(|e| bad_request(format!("The request body is not valid: {e}.")))?;
    let cid = path_cid.or(outcome.correlation_id).ok_or_else(|| {
        bad_request("The notification needs the correlationId the files request returned.")
    })?;
    let is_success = outcome.is_success.ok_or_else(|| {
        bad_request("The notification needs isSuccess, true when the upload succeeded.")
    })?;
    let upload = {
        let mut active = u.active.lock().unwrap_or_else(|p| p.into_inner());
        match active.get(&cid) {
            Some(a) if a.device_id == device_id => active.remove(&cid),
            _ => None,
        }
    }
    .ok_or_else(|| {
        bad_request(format!(
            "No file upload of {device_id} has the correlationId {cid}, or it has expired."
        ))
    })?;
    tracing::info!(
        device = %device_id,
        blob = %upload.blob_name,
        success = is_success,
        status = ?outcome.status_code,
        description = outcome.status_description.as_deref().unwrap_or(""),
        "file upload reported"
    );
    if is_success && u.settings.notifications {
        let u = u.clone();
        super::rest::off_worker(move || notify_services(&u, &device_id, &upload.blob_name)).await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Queues the notification of a completed upload, as Azure words it; nothing when the
/// device reports success for a blob the store does not hold.
fn notify_services(u: &FileUploads, device_id: &str, blob_name: &str) -> Result<(), ServiceError> {
    let container = &u.settings.container;
    let Some(blob) = u.state.store.blob_get(container, blob_name)? else {
        tracing::info!(device = %device_id, blob = %blob_name, "reported uploaded, but the blob is not in the store: no notification");
        return Ok(());
    };
    let modified = chrono::DateTime::from_timestamp_millis(blob.modified_ms).unwrap_or_default();
    let record = json!({
        "deviceId": device_id,
        "blobUri": format!("https://{}/{container}/{blob_name}", u.storage_host),
        "blobName": blob_name,
        "lastUpdatedTime": format_time(modified),
        "blobSizeInBytes": blob.size,
        "enqueuedTimeUtc": format_time(Utc::now()),
    });
    u.state
        .queue_push(ServiceQueue::FileNotifications, &record.to_string())
}
