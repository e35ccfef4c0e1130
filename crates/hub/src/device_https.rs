//! The device side of the HTTPS port: telemetry (`POST /devices/{id}/messages/events`) and
//! cloud-to-device messages (receive, complete, reject, abandon under
//! `/devices/{id}/messages/deviceBound`), authorised by the device's SAS token or X.509
//! certificate as on MQTT.
//! Header mappings live in `iothub::device_http`; locks in `c2d_lock`.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, RawQuery, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Extension, Router};
use serde::Deserialize;

use super::c2d_lock::{LockedC2d, Settlement};
use super::registry::AuthMethod;
use super::rest::{ApiResult, err, require_api_version};
use super::state::HubState;
use super::websocket::ClientCertificates;
use iothub::device_http::{BATCH_CONTENT_TYPE, C2dHeaders, bag_from_headers, parse_batch};
use iothub::error::ErrorCode;

type Shared = Arc<HubState>;

/// The routes, in both spellings of `deviceBound` the SDKs use (C and the CLI: `deviceBound`
/// or `devicebound`; Node: `devicebound`).
pub fn router(state: Shared) -> Router {
    let mut router = Router::new().route("/devices/{id}/messages/events", post(send_event));
    for bound in ["deviceBound", "devicebound"] {
        router = router
            .route(&format!("/devices/{{id}}/messages/{bound}"), get(receive))
            .route(
                &format!("/devices/{{id}}/messages/{bound}/{{lock}}"),
                delete(complete_or_reject),
            )
            .route(
                &format!("/devices/{{id}}/messages/{bound}/{{lock}}/abandon"),
                post(abandon),
            );
    }
    router.with_state(state)
}

#[derive(Deserialize)]
struct DeviceQuery {
    #[serde(rename = "api-version")]
    api_version: Option<String>,
}

/// The client certificates of the request's TLS connection, when it presented any.
type Certs = Option<Extension<ClientCertificates>>;

/// The api-version and the device's credentials, checked as at an MQTT CONNECT: its own SAS
/// token (or a DeviceConnect policy token scoped to it) in `Authorization`, or, without that
/// header, the X.509 certificate the TLS connection presented (as the SDKs send it).
fn authenticate(
    s: &HubState,
    h: &HeaderMap,
    q: &DeviceQuery,
    certs: &Certs,
    id: &str,
) -> ApiResult<AuthMethod> {
    require_api_version(q.api_version.as_deref())?;
    let key = (id.to_string(), None);
    let refused = |what: &str, e: iothub::error::ServiceError| {
        err(
            ErrorCode::IotHubUnauthorizedAccess,
            format!("The {what} of device {id} was refused: {}.", e.message),
        )
    };
    match (
        h.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()),
        certs,
    ) {
        (Some(token), _) => s
            .authenticate(&key, token)
            .map_err(|e| refused("SAS token", e)),
        (None, Some(Extension(chain))) => s
            .authenticate_certificate(&key, &chain.0)
            .map_err(|e| refused("client certificate", e)),
        (None, None) => Err(err(
            ErrorCode::IotHubUnauthorizedAccess,
            "The request has neither an Authorization header with the device's SharedAccessSignature nor a client certificate.",
        )),
    }
}

/// `POST /devices/{id}/messages/events`: one message, or a batch when the content type is
/// `application/vnd.microsoft.iothub.json`; 204 once every message is stored.
async fn send_event(
    State(s): State<Shared>,
    Path(id): Path<String>,
    h: HeaderMap,
    Query(q): Query<DeviceQuery>,
    certs: Certs,
    body: Bytes,
) -> ApiResult<Response> {
    let auth = authenticate(&s, &h, &q, &certs, &id)?;
    let bad =
        |e: iothub::device_http::DeviceHttpError| err(ErrorCode::ArgumentInvalid, e.to_string());
    let is_batch = h
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| {
            ct.trim()
                .to_ascii_lowercase()
                .starts_with(BATCH_CONTENT_TYPE)
        });
    let messages = if is_batch {
        // A batch is bounded as one message is (the C SDK fills batches up to 255 KiB),
        // and checked before it is decoded.
        if body.len() > s.settings.max_d2c_bytes {
            return Err(err(
                ErrorCode::MessageTooLarge,
                format!(
                    "The batch is {} bytes; the limit is {} bytes, so send it in smaller batches.",
                    body.len(),
                    s.settings.max_d2c_bytes
                ),
            ));
        }
        parse_batch(&body).map_err(bad)?
    } else {
        let headers = h
            .iter()
            .filter_map(|(k, v)| v.to_str().ok().map(|v| (k.as_str(), v)));
        vec![(bag_from_headers(headers).map_err(bad)?, body.to_vec())]
    };
    let key = (id, None);
    // Every message is checked (size) before any is stored; then all are awaited.
    let mut committing = Vec::with_capacity(messages.len());
    for (bag, payload) in &messages {
        committing.push(s.ingest_telemetry(&key, &auth, bag, payload)?);
    }
    for committed in committing {
        committed.await?;
    }
    s.touch(&key);
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /devices/{id}/messages/deviceBound`: 200 with the next message, locked, or 204.
async fn receive(
    State(s): State<Shared>,
    Path(id): Path<String>,
    h: HeaderMap,
    Query(q): Query<DeviceQuery>,
    certs: Certs,
) -> ApiResult<Response> {
    authenticate(&s, &h, &q, &certs, &id)?;
    let key = (id.clone(), None);
    let shared = s.clone();
    let received =
        super::rest::off_worker(move || Ok::<_, super::rest::ApiError>(shared.c2d_receive(&id)?))
            .await?;
    s.touch(&key);
    Ok(match received {
        None => StatusCode::NO_CONTENT.into_response(),
        Some(locked) => c2d_response(locked),
    })
}

fn c2d_response(locked: LockedC2d) -> Response {
    let m = locked.message;
    let time = |ms| chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default();
    // Only an expiry the sender set is shown; the hub's default time to live is not.
    let expiry = m
        .properties
        .get(iothub::property_bag::EXPIRY_TIME)
        .map(|_| time(m.expiry_ms));
    let headers = C2dHeaders {
        properties: &m.properties,
        sequence_number: m.seq,
        delivery_count: m.delivery_count,
        enqueued: time(m.enqueued_ms),
        expiry,
    }
    .to_headers();
    let mut resp = Response::new(Body::from(m.body));
    let out = resp.headers_mut();
    out.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("\"{}\"", locked.lock_token)) {
        out.insert(header::ETAG, v);
    }
    for (name, value) in headers {
        // A property that cannot be an HTTP header (a space in its name, a line break in its
        // value) cannot travel over HTTPS; the rest of the message still does.
        match (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_bytes(value.as_bytes()),
        ) {
            (Ok(n), Ok(v)) => {
                out.append(n, v);
            }
            _ => {
                tracing::debug!(header = %name.escape_debug(), "c2d property not sent as a header")
            }
        }
    }
    resp
}

/// The lock token as sent: bare (Node, the CLI) or in the ETag's quotes.
fn lock_token(raw: &str) -> &str {
    raw.trim().trim_matches('"')
}

/// `DELETE /devices/{id}/messages/deviceBound/{lock}`: complete, or with `?reject`, reject;
/// 204.
async fn complete_or_reject(
    State(s): State<Shared>,
    Path((id, lock)): Path<(String, String)>,
    h: HeaderMap,
    Query(q): Query<DeviceQuery>,
    RawQuery(raw): RawQuery,
    certs: Certs,
) -> ApiResult<Response> {
    authenticate(&s, &h, &q, &certs, &id)?;
    let reject = raw.as_deref().unwrap_or_default().split('&').any(|p| {
        let name = p.split_once('=').map_or(p, |(k, _)| k);
        name.eq_ignore_ascii_case("reject")
    });
    let how = if reject {
        Settlement::Reject
    } else {
        Settlement::Complete
    };
    settle(s, id, lock, how).await
}

/// `POST /devices/{id}/messages/deviceBound/{lock}/abandon`: 204.
async fn abandon(
    State(s): State<Shared>,
    Path((id, lock)): Path<(String, String)>,
    h: HeaderMap,
    Query(q): Query<DeviceQuery>,
    certs: Certs,
) -> ApiResult<Response> {
    authenticate(&s, &h, &q, &certs, &id)?;
    settle(s, id, lock, Settlement::Abandon).await
}

async fn settle(s: Shared, id: String, lock: String, how: Settlement) -> ApiResult<Response> {
    super::rest::off_worker(move || {
        Ok::<_, super::rest::ApiError>(s.c2d_settle_locked(&id, lock_token(&lock), how)?)
    })
    .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
