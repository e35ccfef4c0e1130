//! Direct methods over REST (`POST /twins/{id}/methods`, and the module form): the
//! invocation checked, the call waited for, and Azure's answers for offline, silent and
//! disconnecting devices. The digital twin commands call devices through `call_method` too.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{ApiResult, ApiVersion, SERVICE, Shared, Target, authorize, err, parse_json};
use crate::sessions::MethodCallError;
use crate::state::HubState;
use iothub::error::ErrorCode;
use iothub::method::{MethodInvocation, ValidInvocation};

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
    let (status, payload) = call_method(s, id, mid, &call).await?;
    Ok(axum::Json(json!({"status": status, "payload": payload})).into_response())
}

/// Calls a direct method on an identity, waiting for it to connect for the call's connect
/// timeout, and returns the device's status and JSON payload (`null` when it sent none).
pub(super) async fn call_method(
    s: &HubState,
    id: &str,
    mid: Option<&str>,
    call: &ValidInvocation,
) -> ApiResult<(i32, Value)> {
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
    Ok((answer.status, payload))
}

pub(super) async fn invoke_method(
    State(s): State<Shared>,
    Path(t): Path<Target>,
    h: HeaderMap,
    Query(q): Query<ApiVersion>,
    body: Bytes,
) -> ApiResult<Response> {
    invoke(&s, &h, &q, &t.id, t.mid.as_deref(), &body).await
}
