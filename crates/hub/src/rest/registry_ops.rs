//! Registry-wide REST operations: statistics, bulk registry operations, key
//! regeneration and IoT Edge deployment manifests. Each answers with the JSON shape and status codes of Azure's service API.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::{ApiResult, ApiVersion, READ, Shared, WRITE, authorize, off_worker, parse_json};
use iothub::device::DeviceStatus;

/// `GET /statistics/devices`: RegistryStatistics.
pub(super) async fn device_statistics(
    State(s): State<Shared>,
    h: HeaderMap,
    Query(q): Query<ApiVersion>,
) -> ApiResult<Response> {
    authorize(&s, &h, &q, READ)?;
    let devices = s.devices()?;
    let enabled = devices
        .iter()
        .filter(|d| d.device.status == DeviceStatus::Enabled)
        .count();
    Ok(axum::Json(json!({
        "totalDeviceCount": devices.len(),
        "enabledDeviceCount": enabled,
        "disabledDeviceCount": devices.len() - enabled,
    }))
    .into_response())
}

/// `GET /statistics/service`: ServiceStatistics, the devices connected right now.
pub(super) async fn service_statistics(
    State(s): State<Shared>,
    h: HeaderMap,
    Query(q): Query<ApiVersion>,
) -> ApiResult<Response> {
    authorize(&s, &h, &q, READ)?;
    Ok(axum::Json(json!({"connectedDeviceCount": s.sessions.connected_devices()})).into_response())
}

/// `POST /devices`: bulk registry operations. 200 when every entry succeeded, else 400
/// with the same BulkRegistryOperationResult body listing the failures.
pub(super) async fn bulk(
    State(s): State<Shared>,
    h: HeaderMap,
    Query(q): Query<ApiVersion>,
    body: Bytes,
) -> ApiResult<Response> {
    authorize(&s, &h, &q, WRITE)?;
    let body = parse_json(&body)?;
    // Up to 100 store transactions: off the async workers.
    let outcome = off_worker(move || s.bulk_registry(&body)).await?;
    let status = if outcome.is_successful() {
        StatusCode::OK
    } else {
        StatusCode::BAD_REQUEST
    };
    Ok((status, axum::Json(outcome.to_json())).into_response())
}

/// `POST /devices/keys/regenerate`: BulkRegenerateKeyResult. 200 when every key was
/// rotated, 207 when some were, 400 when none was.
pub(super) async fn regenerate_keys(
    State(s): State<Shared>,
    h: HeaderMap,
    Query(q): Query<ApiVersion>,
    body: Bytes,
) -> ApiResult<Response> {
    authorize(&s, &h, &q, WRITE)?;
    let body = parse_json(&body)?;
    let outcome = off_worker(move || s.regenerate_keys(&body)).await?;
    let status = match (outcome.errors.is_empty(), outcome.rotated.is_empty()) {
        (true, _) => StatusCode::OK,
        (false, false) => StatusCode::MULTI_STATUS,
        (false, true) => StatusCode::BAD_REQUEST,
    };
    Ok((status, axum::Json(outcome.to_json())).into_response())
}

/// `POST /devices/{id}/applyConfigurationContent`: a deployment manifest onto an IoT Edge
/// device's module twins (`az iot edge set-modules`); 204 once every twin is written.
pub(super) async fn apply_configuration_content(
    State(s): State<Shared>,
    Path(id): Path<String>,
    h: HeaderMap,
    Query(q): Query<ApiVersion>,
    body: Bytes,
) -> ApiResult<StatusCode> {
    authorize(&s, &h, &q, WRITE)?;
    let body = parse_json(&body)?;
    off_worker(move || s.apply_configuration_content(&id, &body)).await?;
    Ok(StatusCode::NO_CONTENT)
}
