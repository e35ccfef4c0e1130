//! The IoT Plug and Play digital twin API (`/digitaltwins/{id}`), as the service SDKs'
//! DigitalTwinClient and `az iot hub digital-twin` call it: read the twin, update it with a
//! JSON Patch (202), and invoke root or component commands as direct methods.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::Value;

use super::methods::call_method;
use super::{
    ApiResult, ApiVersion, SERVICE, SERVICE_OR_READ, Shared, authorize, err, if_match,
    json_with_etag, off_worker, parse_json,
};
use iothub::digital_twin::command_method_name;
use iothub::error::ErrorCode;
use iothub::method::MethodInvocation;

/// `GET /digitaltwins/{id}`: the digital twin, with the twin etag as ETag.
pub(super) async fn get(
    State(s): State<Shared>,
    Path(id): Path<String>,
    h: HeaderMap,
    Query(q): Query<ApiVersion>,
) -> ApiResult<Response> {
    authorize(&s, &h, &q, SERVICE_OR_READ)?;
    let (view, etag) = off_worker(move || Ok::<_, super::ApiError>(s.digital_twin(&id)?)).await?;
    Ok(json_with_etag(view, &etag))
}

/// `PATCH /digitaltwins/{id}`: a JSON Patch of desired values; 202 with the new ETag, as
/// the SDKs expect (they accept no other status).
pub(super) async fn update(
    State(s): State<Shared>,
    Path(id): Path<String>,
    h: HeaderMap,
    Query(q): Query<ApiVersion>,
    body: Bytes,
) -> ApiResult<Response> {
    authorize(&s, &h, &q, SERVICE)?;
    let ops = parse_json(&body)?;
    let tag = if_match(&h).map(str::to_string);
    let etag = off_worker(move || {
        Ok::<_, super::ApiError>(s.update_digital_twin(&id, &ops, tag.as_deref())?)
    })
    .await?;
    let mut resp = StatusCode::ACCEPTED.into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("\"{etag}\"")) {
        resp.headers_mut().insert("etag", v);
    }
    Ok(resp)
}

/// The timeouts of a command, from the query string (numbers of seconds).
#[derive(Deserialize)]
pub(super) struct CommandTimeouts {
    #[serde(rename = "connectTimeoutInSeconds")]
    connect: Option<String>,
    #[serde(rename = "responseTimeoutInSeconds")]
    response: Option<String>,
}

fn seconds(name: &str, value: Option<&str>) -> ApiResult<Option<u64>> {
    value
        .map(|v| {
            v.trim().parse::<u64>().map_err(|_| {
                err(
                    ErrorCode::ArgumentInvalid,
                    format!("{name} '{v}' is not a whole number of seconds."),
                )
            })
        })
        .transpose()
}

/// A command's path: `{id}/commands/{command}` or `{id}/components/{component}/commands/{command}`.
#[derive(Deserialize)]
pub(super) struct CommandPath {
    id: String,
    component: Option<String>,
    command: String,
}

/// `POST /digitaltwins/{id}/commands/{command}` and
/// `POST /digitaltwins/{id}/components/{component}/commands/{command}`.
pub(super) async fn command(
    State(s): State<Shared>,
    Path(p): Path<CommandPath>,
    h: HeaderMap,
    Query(q): Query<ApiVersion>,
    Query(t): Query<CommandTimeouts>,
    body: Bytes,
) -> ApiResult<Response> {
    invoke(&s, &h, &q, &t, &p, &body).await
}

/// Invokes the command as the direct method `command` or `component*command`; answers 200
/// with the device's payload, its status in `x-ms-command-statuscode`, and a request id.
async fn invoke(
    s: &Shared,
    h: &HeaderMap,
    q: &ApiVersion,
    t: &CommandTimeouts,
    p: &CommandPath,
    body: &Bytes,
) -> ApiResult<Response> {
    authorize(s, h, q, SERVICE)?;
    // The body is the command's payload itself; an empty one is no payload.
    let payload = if body.iter().all(u8::is_ascii_whitespace) {
        Value::Null
    } else {
        parse_json(body)?
    };
    let call = MethodInvocation {
        method_name: command_method_name(p.component.as_deref(), &p.command),
        payload,
        response_timeout_in_seconds: seconds("responseTimeoutInSeconds", t.response.as_deref())?,
        connect_timeout_in_seconds: seconds("connectTimeoutInSeconds", t.connect.as_deref())?,
    }
    .validate()
    .map_err(|e| err(ErrorCode::ArgumentInvalid, e.to_string()))?;
    let (status, payload) = call_method(s, &p.id, None, &call).await?;
    let mut resp = axum::Json(payload).into_response();
    let headers = resp.headers_mut();
    headers.insert("x-ms-command-statuscode", HeaderValue::from(status));
    if let Ok(v) = HeaderValue::from_str(&uuid::Uuid::new_v4().to_string()) {
        headers.insert("x-ms-request-id", v);
    }
    Ok(resp)
}
