//! The IoT Hub service REST API: identities, twins, direct methods, queries and
//! C2D purge, authorised by SAS against the hub's shared access policies.
//! Errors use Azure's JSON error shape and codes.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use serde::Deserialize;
use serde_json::{Value, json};

use super::policies::Permission;
use super::registry::{Identity, identity_json, service_twin};
use super::state::HubState;
use iothub::error::{ErrorCode, ServiceError};
use iothub::query::{Projection, Source, parse_query};
use iothub::sas::{SasToken, resource_covers, verify_token};

mod digital_twins;
mod methods;
mod registry_ops;

pub(crate) type Shared = Arc<HubState>;

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

pub(crate) type ApiResult<T> = Result<T, ApiError>;

pub(crate) fn err(code: ErrorCode, message: impl Into<String>) -> ApiError {
    ApiError(ServiceError::new(code, message))
}

pub fn router(state: Shared) -> Router {
    Router::new()
        .route("/devices", get(list_devices).post(registry_ops::bulk))
        .route(
            "/devices/keys/regenerate",
            post(registry_ops::regenerate_keys),
        )
        // azure-iothub (JavaScript) lists with a trailing slash; IoT Hub accepts it.
        .route("/devices/", get(list_devices))
        .route("/devices/query", post(query))
        .route(
            "/devices/{id}",
            put(put_identity).get(get_identity).delete(delete_identity),
        )
        .route("/devices/{id}/commands", axum::routing::delete(purge_c2d))
        .route(
            "/devices/{id}/applyConfigurationContent",
            post(registry_ops::apply_configuration_content),
        )
        .route("/devices/{id}/modules", get(list_modules))
        .route(
            "/devices/{id}/modules/{mid}",
            put(put_identity).get(get_identity).delete(delete_identity),
        )
        .route(
            "/twins/{id}",
            get(get_twin).patch(patch_twin).put(replace_twin),
        )
        .route("/twins/{id}/methods", post(methods::invoke_method))
        .route(
            "/twins/{id}/modules/{mid}",
            get(get_twin).patch(patch_twin).put(replace_twin),
        )
        .route(
            "/twins/{id}/modules/{mid}/methods",
            post(methods::invoke_method),
        )
        .route(
            "/digitaltwins/{id}",
            get(digital_twins::get).patch(digital_twins::update),
        )
        .route(
            "/digitaltwins/{id}/commands/{command}",
            post(digital_twins::command),
        )
        .route(
            "/digitaltwins/{id}/components/{component}/commands/{command}",
            post(digital_twins::command),
        )
        .route("/statistics/devices", get(registry_ops::device_statistics))
        .route("/statistics/service", get(registry_ops::service_statistics))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}

/// A path the hub does not serve: 404, never a 2xx or 400 a client could take for success.
async fn not_found(method: Method, uri: Uri) -> ApiError {
    err(
        ErrorCode::GenericNotFound,
        format!(
            "The requested resource {method} {} does not exist on this IoT hub.",
            uri.path()
        ),
    )
}

/// A path the hub serves, with a method it does not serve there.
async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    err(
        ErrorCode::GenericMethodNotAllowed,
        format!(
            "The requested resource {} does not support the HTTP method {method}.",
            uri.path()
        ),
    )
}

#[derive(Deserialize)]
pub(crate) struct ApiVersion {
    #[serde(rename = "api-version")]
    pub(crate) api_version: Option<String>,
    top: Option<usize>,
}

/// Every request names an api-version, as on Azure.
pub(crate) fn require_api_version(api_version: Option<&str>) -> ApiResult<()> {
    if api_version.is_none_or(str::is_empty) {
        return Err(err(
            ErrorCode::InvalidProtocolVersion,
            "The api-version query parameter is missing; add ?api-version=2021-04-12.",
        ));
    }
    Ok(())
}

/// Checks the api-version and the Authorization header against the hub's policies.
pub(crate) fn authorize(
    state: &HubState,
    headers: &HeaderMap,
    q: &ApiVersion,
    needs: &[Permission],
) -> ApiResult<()> {
    require_api_version(q.api_version.as_deref())?;
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

pub(crate) fn parse_json(body: &Bytes) -> ApiResult<Value> {
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

pub(crate) fn json_with_etag(value: Value, etag: &str) -> Response {
    let mut resp = axum::Json(value).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("\"{etag}\"")) {
        resp.headers_mut().insert("etag", v);
    }
    resp
}

fn identity_response(id: &Identity) -> Response {
    json_with_etag(identity_json(id), &id.device.etag)
}

pub(crate) const READ: &[Permission] = &[Permission::RegistryRead];
pub(crate) const WRITE: &[Permission] = &[Permission::RegistryWrite];
pub(crate) const SERVICE: &[Permission] = &[Permission::ServiceConnect];
pub(crate) const SERVICE_OR_READ: &[Permission] =
    &[Permission::ServiceConnect, Permission::RegistryRead];

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
    // The registry is walked on a blocking thread: a query over a large registry reads
    // and parses many rows and must not hold an async worker.
    let (items, item_type, next) = off_worker(move || run_query(&s, &parsed, token, page)).await?;
    let mut resp = axum::Json(Value::Array(items)).into_response();
    resp.headers_mut()
        .insert("x-ms-item-type", HeaderValue::from_static(item_type));
    if let Some(n) = next.and_then(|n| HeaderValue::from_str(&n).ok()) {
        resp.headers_mut().insert("x-ms-continuation", n);
    }
    Ok(resp)
}

/// Runs SQLite work on a blocking thread, so the async workers keep serving.
pub(crate) async fn off_worker<T: Send + 'static, E: From<ServiceError> + Send + 'static>(
    work: impl FnOnce() -> Result<T, E> + Send + 'static,
) -> Result<T, E> {
    tokio::task::spawn_blocking(work).await.unwrap_or_else(|e| {
        Err(E::from(ServiceError::new(
            ErrorCode::ServerError,
            format!("The operation did not complete: {e}."),
        )))
    })
}

/// Twins read from the store per step of a query's registry walk.
const QUERY_CHUNK: usize = 500;

/// One page of a query: its rows, their `x-ms-item-type` and the next page's token.
type QueryPage = (Vec<Value>, &'static str, Option<String>);

/// Runs `q` for one page of at most `page` rows from `token` on.
fn run_query(
    s: &HubState,
    q: &iothub::query::Query,
    token: Option<Continuation>,
    page: usize,
) -> ApiResult<QueryPage> {
    let wrong_token = || {
        err(
            ErrorCode::ArgumentInvalid,
            "The continuation token belongs to a different kind of query.",
        )
    };
    let modules = matches!(q.source, Source::Modules);
    let top = q.top.unwrap_or(usize::MAX);
    if q.is_aggregate() {
        // Aggregated rows have no twin key: pages continue at an offset into the rows.
        let skip = match token {
            None => 0,
            Some(Continuation::Offset(n)) => n,
            Some(Continuation::After { .. }) => return Err(wrong_token()),
        };
        let mut twins = Vec::new();
        walk(s, modules, None, |t| {
            if q.matches(&t) {
                twins.push(t);
            }
            true
        })?;
        let mut rows = q.aggregate(&twins);
        rows.truncate(top);
        let more = rows.len() > skip.saturating_add(page);
        let items: Vec<Value> = rows.into_iter().skip(skip).take(page).collect();
        let next =
            more.then(|| encode_continuation(&Continuation::Offset(skip.saturating_add(page))));
        return Ok((items, "raw", next));
    }
    let (after, returned) = match token {
        None => (None, 0),
        Some(Continuation::After { key, returned }) => (Some(key), returned),
        Some(Continuation::Offset(_)) => return Err(wrong_token()),
    };
    // TOP counts from the first twin, so later pages stay inside the same first n.
    let wanted = page.min(top.saturating_sub(returned));
    // Keyset pagination on (deviceId, moduleId), the walk's order, so twins added or
    // removed between pages never shift or repeat results. One match beyond the page
    // tells whether there is a next one.
    let mut twins = Vec::new();
    if wanted > 0 {
        walk(s, modules, after.as_ref(), |t| {
            if q.matches(&t) {
                twins.push(t);
            }
            twins.len() <= wanted
        })?;
    }
    let more = twins.len() > wanted && returned + wanted < top;
    twins.truncate(wanted);
    let next = if more {
        twins.last().map(|t| {
            encode_continuation(&Continuation::After {
                key: twin_key(t),
                returned: returned + wanted,
            })
        })
    } else {
        None
    };
    let item_type = match q.projection {
        Projection::All => "twin",
        Projection::Items(_) => "raw",
    };
    let items = twins.iter().map(|t| q.project(t)).collect();
    Ok((items, item_type, next))
}

/// Hands each device twin (or module twin) after `after` to `visit`, in key order, a
/// chunk of the store at a time, until `visit` says to stop or the registry ends.
fn walk(
    s: &HubState,
    modules: bool,
    after: Option<&(String, String)>,
    mut visit: impl FnMut(Value) -> bool,
) -> ApiResult<()> {
    let mut cursor = after.cloned();
    loop {
        let at = cursor.as_ref().map(|(d, m)| (d.as_str(), m.as_str()));
        let chunk = s.identities_after(modules, at, QUERY_CHUNK)?;
        let Some(last) = chunk.last() else {
            return Ok(());
        };
        cursor = Some((
            last.device.device_id.clone(),
            last.module_id.clone().unwrap_or_default(),
        ));
        let full = chunk.len() == QUERY_CHUNK;
        for id in &chunk {
            if !visit(service_twin(id)) {
                return Ok(());
            }
        }
        if !full {
            return Ok(());
        }
    }
}

/// Where a twin stands in a query's order: its device id, then its module id ("" for a
/// device twin).
fn twin_key(twin: &Value) -> (String, String) {
    let text = |k: &str| twin.get(k).and_then(Value::as_str).unwrap_or_default();
    (text("deviceId").to_string(), text("moduleId").to_string())
}

/// Where the next page of a query starts.
enum Continuation {
    /// After this twin key, with this many rows returned before (for TOP); queries with a
    /// row per twin.
    After {
        key: (String, String),
        returned: usize,
    },
    /// At this row (aggregated queries).
    Offset(usize),
}

fn encode_continuation(at: &Continuation) -> String {
    use base64::Engine;
    let text = match at {
        // Ids cannot contain '/', so it separates them unambiguously.
        Continuation::After {
            key: (device, module),
            returned,
        } => format!("after:{returned}:{device}/{module}"),
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
    let (returned, key) = text.strip_prefix("after:")?.split_once(':')?;
    let (device, module) = key.split_once('/')?;
    Some(Continuation::After {
        key: (device.to_string(), module.to_string()),
        returned: returned.parse().ok()?,
    })
}
