//! Twin commands: read, PATCH with If-Match (a 412 becomes `TwinConflict` carrying the twin as
//! it is now, so the app keeps the edit), and the re-read of the twin on screen, reported when
//! its etag moved, so live changes show up highlighted.

use std::sync::Arc;

use serde_json::{Map, Value};

use crate::client::events::HubEvent;
use crate::iothub::error::ErrorCode;
use crate::iothub::service_twin::patch_body;
use crate::iothub::twin::Section;

use super::Ctx;
use super::link::describe_error;

fn etag_of(twin: &Value) -> Option<String> {
    twin.get("etag").and_then(Value::as_str).map(str::to_owned)
}

pub(super) async fn get(ctx: Arc<Ctx>, device_id: String) {
    let result = ctx.config.service.get_twin(&device_id).await;
    ctx.link.record(&ctx, &result).await;
    let event = match result {
        Ok(twin) => {
            ctx.poller.twin_read(&device_id, etag_of(&twin));
            HubEvent::Twin { device_id, twin }
        }
        Err(e) => HubEvent::Error(format!(
            "cannot read the twin of {device_id}: {}",
            describe_error(&e)
        )),
    };
    ctx.send(event).await;
}

pub(super) async fn patch(
    ctx: Arc<Ctx>,
    device_id: String,
    section: Section,
    patch: Map<String, Value>,
    etag: String,
) {
    let service = &ctx.config.service;
    let body = patch_body(section, patch);
    let result = service.patch_twin(&device_id, &body, Some(&etag)).await;
    ctx.link.record(&ctx, &result).await;
    let event = match result {
        Ok(twin) => {
            ctx.poller.twin_read(&device_id, etag_of(&twin));
            HubEvent::TwinUpdated { device_id, twin }
        }
        Err(e) if e.code() == Some(ErrorCode::PreconditionFailed) => {
            match service.get_twin(&device_id).await {
                Ok(current) => {
                    ctx.poller.twin_read(&device_id, etag_of(&current));
                    HubEvent::TwinConflict { device_id, current }
                }
                Err(e) => HubEvent::Error(format!(
                    "the twin of {device_id} changed meanwhile (412) and cannot be read again: {}; your edit is kept",
                    describe_error(&e)
                )),
            }
        }
        Err(e) => HubEvent::Error(format!(
            "cannot update the twin of {device_id}: {}; your edit is kept",
            describe_error(&e)
        )),
    };
    ctx.send(event).await;
}

/// A re-read of the twin on screen (see `polling`): reported only when its etag moved.
pub(super) async fn reread(ctx: &Ctx, device_id: String) {
    let result = ctx.config.service.get_twin(&device_id).await;
    ctx.link.record(ctx, &result).await;
    match result {
        Ok(twin) => {
            if ctx.poller.twin_moved(&device_id, etag_of(&twin)) {
                ctx.send(HubEvent::Twin { device_id, twin }).await;
            }
        }
        Err(e) if e.code() == Some(ErrorCode::DeviceNotFound) => ctx.poller.twin_gone(&device_id),
        Err(e) => tracing::debug!(device = %device_id, error = %e, "twin re-read failed"),
    }
}
