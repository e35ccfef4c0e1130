//! Direct method calls. A device that is not connected (404) or does not answer in time (504)
//! is a result the Methods tab shows in place, not an error in the status bar.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::events::{HubEvent, MethodFailure, MethodResponse};
use crate::service::ServiceClientError;
use iothub::error::ErrorCode;
use iothub::method::MethodInvocation;

use super::link::describe_error;
use super::{Ctx, Target};

/// The failure the Methods tab shows for a refused call.
pub(super) fn failure(
    e: &ServiceClientError,
    device_id: &str,
    response_timeout: u64,
) -> MethodFailure {
    match e.code() {
        Some(ErrorCode::DeviceNotOnline) => MethodFailure {
            http_status: Some(404),
            message: format!("{device_id} is not connected, so it cannot take a method call"),
        },
        Some(ErrorCode::GatewayTimeout) => MethodFailure {
            http_status: Some(504),
            message: format!(
                "{device_id} did not answer within the {response_timeout} s response timeout"
            ),
        },
        _ => MethodFailure {
            http_status: e.service_error().map(|s| s.code.http_status()),
            message: describe_error(e),
        },
    }
}

pub(super) async fn invoke(
    ctx: Arc<Ctx>,
    call_id: u64,
    target: Target,
    name: String,
    payload: Value,
    response_timeout: Duration,
    connect_timeout: Duration,
) {
    let call = MethodInvocation {
        method_name: name,
        payload,
        response_timeout_in_seconds: Some(response_timeout.as_secs()),
        connect_timeout_in_seconds: Some(connect_timeout.as_secs()),
    };
    let result = ctx
        .config
        .service
        .invoke_method(&target.device_id, target.module(), &call)
        .await;
    ctx.link.record(&ctx, &result).await;
    let result = match result {
        Ok(r) => Ok(MethodResponse {
            status: r.status,
            payload: r.payload,
        }),
        Err(e) => Err(failure(&e, &target.to_string(), response_timeout.as_secs())),
    };
    ctx.send(HubEvent::MethodResult { call_id, result }).await;
}
