//! Twin commands: read, PATCH with If-Match (a 412 becomes `TwinConflict` carrying the twin as
//! it is now, so the app keeps the edit), and the re-read of the twin on screen, reported when
//! its etag moved, so live changes show up highlighted.

use std::sync::Arc;

use serde_json::{Map, Value};

use crate::events::HubEvent;
use iothub::error::ErrorCode;
use iothub::service_twin::patch_body;
use iothub::twin::Section;

use super::link::describe_error;
use super::{Ctx, Target};

fn etag_of(twin: &Value) -> Option<String> {
    twin.get("etag").and_then(Value::as_str).map(str::to_owned)
}

pub(super) async fn get(ctx: Arc<Ctx>, target: Target) {
    let result = ctx
        .config
        .service
        .get_twin(&target.device_id, target.module())
        .await;
    ctx.link.record(&ctx, &result).await;
    let event = match result {
        Ok(twin) => {
            ctx.poller.twin_read(&target, etag_of(&twin));
            HubEvent::Twin {
                device_id: target.device_id,
                twin,
            }
        }
        Err(e) => HubEvent::Error(format!(
            "cannot read the twin of {target}: {}",
            describe_error(&e)
        )),
    };
    ctx.send(event).await;
}

pub(super) async fn patch(
    ctx: Arc<Ctx>,
    target: Target,
    section: Section,
    patch: Map<String, Value>,
    etag: String,
) {
    let service = &ctx.config.service;
    let body = patch_body(section, patch);
    let (device, module) = (target.device_id.as_str(), target.module());
    let result = service.patch_twin(device, module, &body, Some(&etag)).await;
    ctx.link.record(&ctx, &result).await;
    let event = match result {
        Ok(twin) => {
            ctx.poller.twin_read(&target, etag_of(&twin));
            HubEvent::TwinUpdated {
                device_id: target.device_id.clone(),
                twin,
            }
        }
        Err(e) if e.code() == Some(ErrorCode::PreconditionFailed) => {
            match service.get_twin(device, module).await {
                Ok(current) => {
                    ctx.poller.twin_read(&target, etag_of(&current));
                    HubEvent::TwinConflict {
                        device_id: target.device_id.clone(),
                        current,
                    }
                }
                Err(e) => HubEvent::Error(format!(
                    "the twin of {target} changed meanwhile (412) and cannot be read again: {}; your edit is kept",
                    describe_error(&e)
                )),
            }
        }
        Err(e) => HubEvent::Error(format!(
            "cannot update the twin of {target}: {}; your edit is kept",
            describe_error(&e)
        )),
    };
    ctx.send(event).await;
}

/// A re-read of the twin on screen (see `polling`): reported only when its etag moved.
pub(super) async fn reread(ctx: &Ctx, target: Target) {
    let result = ctx
        .config
        .service
        .get_twin(&target.device_id, target.module())
        .await;
    ctx.link.record(ctx, &result).await;
    match result {
        Ok(twin) => {
            if ctx.poller.twin_moved(&target, etag_of(&twin)) {
                let device_id = target.device_id;
                ctx.send(HubEvent::Twin { device_id, twin }).await;
            }
        }
        Err(e)
            if matches!(
                e.code(),
                Some(ErrorCode::DeviceNotFound | ErrorCode::ModuleNotFound)
            ) =>
        {
            ctx.poller.twin_gone(&target)
        }
        Err(e) => tracing::debug!(twin = %target, error = %e, "twin re-read failed"),
    }
}

pub(super) async fn list_modules(ctx: Arc<Ctx>, device_id: String) {
    let result = ctx.config.service.list_modules(&device_id).await;
    ctx.link.record(&ctx, &result).await;
    let event = match result {
        Ok(modules) => HubEvent::Modules {
            device_id,
            module_ids: modules.into_iter().map(|m| m.module_id).collect(),
        },
        Err(e) => HubEvent::Error(format!(
            "cannot list the modules of {device_id}: {}",
            describe_error(&e)
        )),
    };
    ctx.send(event).await;
}
