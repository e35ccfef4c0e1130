//! The IoT Hub service REST API: identities, twins, direct methods, queries and
//! C2D purge, authorised by SAS against the hub's shared access policies.
//! Errors use Azure's JSON error shape and codes.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use serde::Deserialize;
use serde_json::{Value, json};

use super::policies::Permission;
use super::registry::{Identity, identity_json, service_twin};
use super::sessions::MethodCallError;
use super::state::HubState;
use iothub::error::{ErrorCode, ServiceError};
use iothub::method::MethodInvocation;
use iothub::query::{Projection, Source, parse_query};
use iothub::sas::{SasToken, resource_covers, verify_token};

type Shared = Arc<HubState>;

/// An error on its way to the client in Azure's shape.
pub struct ApiError(pub ServiceError);

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        ApiError(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let tracking = uuid::Uuid::new_v4().simple().to_string();
        let status =
            StatusCode::from_u16(self.0.code.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
        let body = self.0.to_rest_body(&tracking, chrono::Utc::now());
        let mut resp = (status, axum::Json(body)).into_response();
        if let Ok(v) = HeaderValue::from_str(self.0.code.name()) {
            resp.headers_mut().insert("iothub-errorcode", v);
        }
        resp
    }
}

type ApiResult<T> = Result<T, ApiError>;

fn err(code: ErrorCode, message: impl Into<String>) -> ApiError {
    ApiError(ServiceError::new(code, message))
}

pub fn router(state: Shared) -> Router {
    Router::new()
        .route("/devices", get(list_devices))
        // azure-iothub (JavaScript) lists with a trailing slash; IoT Hub accepts it.
        .route("/devices/", get(list_devices))
        .route("/devices/query", post(query))
        .route(
            "/devices/{id}",
            put(put_identity).get(get_identity).delete(delete_identity),
        )
        .route("/devices/{id}/commands", axum::routing::delete(purge_c2d))
        .route("/devices/{id}/modules", get(list_modules))
        .route(
            "/devices/{id}/modules/{mid}",
            put(put_identity).get(get_identity).delete(delete_identity),
        )
        .route(
            "/twins/{id}",
            get(get_twin).patch(patch_twin).put(replace_twin),
        )
        .route("/twins/{id}/methods", post(invoke_method))
        .route(
            "/twins/{id}/modules/{mid}",
            get(get_twin).patch(patch_twin).put(replace_twin),
        )
        .route("/twins/{id}/modules/{mid}/methods", post(invoke_method))
        .route("/statistics/devices", get(statistics))
        .fallback(not_found)
        .with_state(state)
}

async fn not_found() -> ApiError {
    err(
        ErrorCode::InvalidOperation,
        "The requested resource does not exist on this IoT hub.",
    )
}

#[derive(Deserialize)]
pub(crate) struct ApiVersion {
    #[serde(rename = "api-version")]
    api_version: Option<String>,
    top: Option<usize>,
}

/// Checks the api-version and the Authorization header against the hub's policies.
pub(crate) fn authorize(
    state: &HubState,
    headers: &HeaderMap,
    q: &ApiVersion,
    needs: &[Permission],
) -> ApiResult<()> {
    if q.api_version.as_deref().is_none_or(str::is_empty) {
        return Err(err(
            ErrorCode::InvalidProtocolVersion,
            "The api-version query parameter is missing; add ?api-version=2021-04-12.",
        ));
    }
    let unauthorized = |why: String| err(ErrorCode::IotHubUnauthorizedAccess, why);
    let header = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| {
            unauthorized("The Authorization header with a SharedAccessSignature is missing.".into())
        })?;
    let token = SasToken::parse(header)
        .map_err(|e| unauthorized(format!("The SAS token is invalid: {e}.")))?;
    let name = token
        .key_name
        .as_deref()
        .ok_or_else(|| unauthorized("The SAS token names no shared access policy (skn).".into()))?;
    let policy = state.policy(name).ok_or_else(|| {
        unauthorized(format!(
            "The shared access policy '{name}' does not exist on this hub."
        ))
    })?;
    if !resource_covers(&token.resource, &state.host_name) {
        return Err(unauthorized(format!(
            "The SAS token is scoped to '{}', not to this hub '{}'.",
            token.resource, state.host_name
        )));
    }
    let now = chrono::Utc::now().timestamp().max(0) as u64;
    verify_token(&token, &policy.primary_key, now)
        .or_else(|_| verify_token(&token, &policy.secondary_key, now))
        .map_err(|e| unauthorized(format!("The SAS token was refused: {e}.")))?;
    if !needs.iter().any(|p| policy.allows(*p)) {
        return Err(unauthorized(format!(
            "The shared access policy '{name}' does not grant {needs:?}."
        )));
    }
    Ok(())
}

pub(crate) fn if_match(headers: &HeaderMap) -> Option<&str> {
    headers.get("if-match").and_then(|v| v.to_str().ok())
}

fn parse_json(body: &Bytes) -> ApiResult<Value> {
    if body.is_empty() {
        return Err(err(ErrorCode::ArgumentNull, "The request body is empty."));
    }
    serde_json::from_slice(body).map_err(|e| {
        err(
            ErrorCode::IotHubFormatError,
            format!("The request body is not valid JSON: {e}."),
        )
    })
}

fn json_with_etag(value: Value, etag: &str) -> Response {
    let mut resp = axum::Json(value).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("\"{etag}\"")) {
        resp.headers_mut().insert("etag", v);
    }
    resp
}

fn identity_response(id: &Identity) -> Response {
    json_with_etag(identity_json(id), &id.device.etag)
}

const READ: &[Permission] = &[Permission::RegistryRead];
const WRITE: &[Permission] = &[Permission::RegistryWrite];
const SERVICE: &[Permission] = &[Permission::ServiceConnect];
const SERVICE_OR_READ: &[Permission] = &[Permission::ServiceConnect, Permission::RegistryRead];

async fn list_devices(
    State(s): State<Shared>,
    h: HeaderMap,
    Query(q): Query<ApiVersion>,
) -> ApiResult<Response> {
    authorize(&s, &h, &q, READ)?;
    let top = q.top.unwrap_or(1000).min(1000);
    let devices = s.devices()?;
    let mut out = Vec::with_capacity(devices.len().min(top));
    for d in devices.iter().take(top) {
        out.push(identity_json(d));
    }
    Ok(axum::Json(Value::Array(out)).into_response())
}

/// The identity a route names: `{id}` or `{id}/modules/{mid}`.
#[derive(Deserialize)]
struct Target {
    id: String,
    mid: Option<String>,
}

async fn put_identity(
    State(s): State<Shared>,
    Path(t): Path<Target>,
    h: HeaderMap,
    Query(q): Query<ApiVersion>,
    body: Bytes,
) -> ApiResult<Response> {
    authorize(&s, &h, &q, WRITE)?;
    let body = parse_json(&body)?;
    let identity = s.put_identity(&t.id, t.mid.as_deref(), &body, if_match(&h))?;
    Ok(identity_response(&identity))
}

async fn get_identity(
    State(s): State<Shared>,
    Path(t): Path<Target>,
    h: HeaderMap,
    Query(q): Query<ApiVersion>,
) -> ApiResult<Response> {
    authorize(&s, &h, &q, READ)?;
    let identity = s.identity(&t.id, t.mid.as_deref())?;
    Ok(identity_response(&identity))
}

async fn delete_identity(
    State(s): State<Shared>,
    Path(t): Path<Target>,
    h: HeaderMap,
    Query(q): Query<ApiVersion>,
) -> ApiResult<StatusCode> {
    authorize(&s, &h, &q, WRITE)?;
    s.delete_identity(&t.id, t.mid.as_deref(), if_match(&h))?;
    Ok(StatusCode::NO_CONTENT)
}

async fn list_modules(
    State(s): State<Shared>,
    Path(id): Path<String>,
    h: HeaderMap,
    Query(q): Query<ApiVersion>,
) -> ApiResult<Response> {
    authorize(&s, &h, &q, READ)?;
    let modules = s.modules(&id)?;
    let out: Vec<Value> = modules.iter().map(identity_json).collect();
    Ok(axum::Json(Value::Array(out)).into_response())
}

fn twin_response(twin: Value) -> Response {
    let etag = twin
        .get("etag")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    json_with_etag(twin, &etag)
}

async fn get_twin(
    State(s): State<Shared>,
    Path(t): Path<Target>,
    h: HeaderMap,
    Query(q): Query<ApiVersion>,
) -> ApiResult<Response> {
    authorize(&s, &h, &q, SERVICE_OR_READ)?;
    Ok(twin_response(s.twin_json(&t.id, t.mid.as_deref())?))
}

async fn update_twin(
    s: &HubState,
    h: &HeaderMap,
    q: &ApiVersion,
    t: &Target,
    body: &Bytes,
    replace: bool,
) -> ApiResult<Response> {
    authorize(s, h, q, SERVICE)?;
    let body = parse_json(body)?;
    Ok(twin_response(s.update_twin(
        &t.id,
        t.mid.as_deref(),
        &body,
        if_match(h),
        replace,
    )?))
}

async fn patch_twin(
    State(s): State<Shared>,
    Path(t): Path<Target>,
    h: HeaderMap,
    Query(q): Query<ApiVersion>,
    body: Bytes,
) -> ApiResult<Response> {
    update_twin(&s, &h, &q, &t, &body, false).await
}

async fn replace_twin(
    State(s): State<Shared>,
    Path(t): Path<Target>,
    h: HeaderMap,
    Query(q): Query<ApiVersion>,
    body: Bytes,
) -> ApiResult<Response> {
    update_twin(&s, &h, &q, &t, &body, true).await
}

async fn invoke(
    s: &HubState,
    h: &HeaderMap,
    q: &ApiVersion,
    id: &str,
    mid: Option<&str>,
    body: &Bytes,
) -> ApiResult<Response> {
    authorize(s, h, q, SERVICE)?;
    let body = parse_json(body)?;
    let invocation: MethodInvocation = serde_json::from_value(body).map_err(|e| {
        err(
            ErrorCode::ArgumentInvalid,
            format!("The method invocation is not valid: {e}."),
        )
    })?;
    let call = invocation
        .validate()
        .map_err(|e| err(ErrorCode::ArgumentInvalid, e.to_string()))?;
    // The identity must exist before we wait for it to come online.
    s.identity(id, mid)?;
    let key = (id.to_string(), mid.map(str::to_string));
    let payload = serde_json::to_vec(&call.payload).unwrap_or_default();
    let answer = s
        .sessions
        .call_method(
            &key,
            &call.method_name,
            payload,
            call.connect_timeout,
            call.response_timeout,
        )
        .await
        .map_err(|e| match e {
            MethodCallError::NotOnline => err(
                ErrorCode::DeviceNotOnline,
                format!("Timed out waiting for device {id} to connect."),
            ),
            MethodCallError::Timeout => err(
                ErrorCode::GatewayTimeout,
                format!(
                    "Timed out waiting for the response from device {id} after {} seconds.",
                    call.response_timeout.as_secs()
                ),
            ),
            MethodCallError::ConnectionClosed => err(
                ErrorCode::DeviceConnectionClosedRemotely,
                format!("The connection of device {id} closed before it answered."),
            ),
        })?;
    let payload = if answer.payload.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&answer.payload).unwrap_or_else(|_| {
            Value::String(String::from_utf8_lossy(&answer.payload).into_owned())
        })
    };
    Ok(axum::Json(json!({"status": answer.status, "payload": payload})).into_response())
}

async fn invoke_method(
    State(s): State<Shared>,
    Path(t): Path<Target>,
    h: HeaderMap,
    Query(q): Query<ApiVersion>,
    body: Bytes,
) -> ApiResult<Response> {
    invoke(&s, &h, &q, &t.id, t.mid.as_deref(), &body).await
}

async fn purge_c2d(
    State(s): State<Shared>,
    Path(id): Path<String>,
    h: HeaderMap,
    Query(q): Query<ApiVersion>,
) -> ApiResult<Response> {
    authorize(&s, &h, &q, SERVICE)?;
    let n = s.c2d_purge(&id)?;
    Ok(
        axum::Json(json!({"totalMessagesPurged": n, "deviceId": id, "moduleId": null}))
            .into_response(),
    )
}

async fn statistics(
    State(s): State<Shared>,
    h: HeaderMap,
    Query(q): Query<ApiVersion>,
) -> ApiResult<Response> {
    authorize(&s, &h, &q, READ)?;
    let devices = s.devices()?;
    let enabled = devices
        .iter()
        .filter(|d| d.device.status == iothub::device::DeviceStatus::Enabled)
        .count();
    Ok(axum::Json(json!({
        "totalDeviceCount": devices.len(),
        "enabledDeviceCount": enabled,
        "disabledDeviceCount": devices.len() - enabled,
    }))
    .into_response())
}

/// Largest page a query returns, whatever x-ms-max-item-count asks (Azure's cap).
const MAX_PAGE: usize = 1000;

async fn query(
    State(s): State<Shared>,
    h: HeaderMap,
    Query(q): Query<ApiVersion>,
    body: Bytes,
) -> ApiResult<Response> {
    authorize(&s, &h, &q, SERVICE_OR_READ)?;
    let body = parse_json(&body)?;
    let sql = body.get("query").and_then(Value::as_str).ok_or_else(|| {
        err(
            ErrorCode::ArgumentNull,
            "The request body has no \"query\" string.",
        )
    })?;
    let parsed = parse_query(sql).map_err(|e| err(ErrorCode::ArgumentInvalid, e.to_string()))?;
    let page = match h.get("x-ms-max-item-count").and_then(|v| v.to_str().ok()) {
        None => 100,
        Some(v) => v
            .trim()
            .parse::<usize>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| {
                err(
                    ErrorCode::ArgumentInvalid,
                    format!("x-ms-max-item-count '{v}' is not a positive number."),
                )
            })?
            .min(MAX_PAGE),
    };
    let token = match h
        .get("x-ms-continuation")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
    {
        None => None,
        Some(tok) => Some(decode_continuation(tok).ok_or_else(|| {
            err(
                ErrorCode::ArgumentInvalid,
                "The continuation token is not one this hub issued.",
            )
        })?),
    };
    let wrong_token = || {
        err(
            ErrorCode::ArgumentInvalid,
            "The continuation token belongs to a different kind of query.",
        )
    };
    let identities = match parsed.source {
        Source::Devices => s.devices()?,
        Source::Modules => {
            let mut all = Vec::new();
            for device in s.devices()? {
                all.extend(s.modules(&device.device.device_id)?);
            }
            all
        }
    };
    let mut twins: Vec<Value> = identities
        .iter()
        .map(service_twin)
        .filter(|t| parsed.matches(t))
        .collect();
    let top = parsed.top.unwrap_or(usize::MAX);
    let (items, item_type, next) = if parsed.is_aggregate() {
        // Aggregated rows have no twin key: pages continue at an offset into the rows.
        let skip = match token {
            None => 0,
            Some(Continuation::Offset(n)) => n,
            Some(Continuation::After(_)) => return Err(wrong_token()),
        };
        let mut rows = parsed.aggregate(&twins);
        rows.truncate(top);
        let more = rows.len() > skip.saturating_add(page);
        let items: Vec<Value> = rows.into_iter().skip(skip).take(page).collect();
        let next =
            more.then(|| encode_continuation(&Continuation::Offset(skip.saturating_add(page))));
        (items, "raw", next)
    } else {
        let after = match token {
            None => None,
            Some(Continuation::After(key)) => Some(key),
            Some(Continuation::Offset(_)) => return Err(wrong_token()),
        };
        // TOP counts from the first twin, so later pages stay inside the same first n.
        twins.truncate(top);
        // Keyset pagination on (deviceId, moduleId) (the list is ordered by it), so
        // twins added or removed between pages never shift or repeat results.
        let rest: Vec<Value> = twins
            .into_iter()
            .filter(|t| after.as_ref().is_none_or(|a| twin_key(t) > *a))
            .collect();
        let more = rest.len() > page;
        let twins: Vec<Value> = rest.into_iter().take(page).collect();
        let next = if more {
            twins
                .last()
                .map(|t| encode_continuation(&Continuation::After(twin_key(t))))
        } else {
            None
        };
        let item_type = match parsed.projection {
            Projection::All => "twin",
            Projection::Items(_) => "raw",
        };
        let items = twins.iter().map(|t| parsed.project(t)).collect();
        (items, item_type, next)
    };
    let mut resp = axum::Json(Value::Array(items)).into_response();
    resp.headers_mut()
        .insert("x-ms-item-type", HeaderValue::from_static(item_type));
    if let Some(n) = next.and_then(|n| HeaderValue::from_str(&n).ok()) {
        resp.headers_mut().insert("x-ms-continuation", n);
    }
    Ok(resp)
}

/// Where a twin stands in a query's order: its device id, then its module id ("" for a
/// device twin).
fn twin_key(twin: &Value) -> (String, String) {
    let text = |k: &str| twin.get(k).and_then(Value::as_str).unwrap_or_default();
    (text("deviceId").to_string(), text("moduleId").to_string())
}

/// Where the next page of a query starts.
enum Continuation {
    /// After this twin key (queries with a row per twin).
    After((String, String)),
    /// At this row (aggregated queries).
    Offset(usize),
}

fn encode_continuation(at: &Continuation) -> String {
    use base64::Engine;
    let text = match at {
        // Ids cannot contain '/', so it separates them unambiguously.
        Continuation::After((device, module)) => format!("after:{device}/{module}"),
        Continuation::Offset(n) => format!("offset:{n}"),
    };
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text)
}

fn decode_continuation(token: &str) -> Option<Continuation> {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token.trim())
        .ok()?;
    let text = String::from_utf8(bytes).ok()?;
    if let Some(n) = text.strip_prefix("offset:") {
        return n.parse().ok().map(Continuation::Offset);
    }
    let (device, module) = text.strip_prefix("after:")?.split_once('/')?;
    Some(Continuation::After((
        device.to_string(),
        module.to_string(),
    )))
}
