//! Cloud-to-device: purge over REST, and the seam for the AMQP C2D sender.
//!
//! PLUG-IN POINT. When `client::service` has its C2D sender, `announce` opens it (report
//! `ConnectionState { backend: Backend::Messaging, .. }` as it connects, and send
//! `HubEvent::C2dFeedback` for each feedback record from the feedback receiver), and `send`
//! hands the message to it and answers `HubEvent::C2dSent { message_id }` once the hub
//! accepted it (`HubEvent::C2dFailed` with one sentence when it did not). Keep the sender
//! in `Ctx` (one AMQP link for all sends).

use std::sync::Arc;

use crate::client::events::{Backend, C2dMessage, HubEvent, LinkState};

use super::Ctx;
use super::link::describe_error;

/// What the status bar and the C2D tab say until the AMQP client exists.
pub(super) const NOT_BUILT: &str = "C2D needs the AMQP client (not built yet)";

/// Called once when the backend starts.
pub(super) async fn announce(ctx: &Ctx) {
    ctx.send(HubEvent::ConnectionState {
        backend: Backend::Messaging,
        state: LinkState::Failed,
        detail: Some(NOT_BUILT.into()),
    })
    .await;
}

pub(super) async fn send(ctx: Arc<Ctx>, message: C2dMessage) {
    tracing::info!(device = %message.device_id, "C2D send requested; no AMQP sender yet");
    ctx.send(HubEvent::C2dFailed {
        message_id: message.message_id,
        reason: NOT_BUILT.into(),
    })
    .await;
}

pub(super) async fn purge(ctx: Arc<Ctx>, device_id: String) {
    let result = ctx.config.service.purge_c2d(&device_id).await;
    ctx.link.record(&ctx, &result).await;
    let event = match result {
        Ok(count) => HubEvent::Purged { device_id, count },
        Err(e) => HubEvent::Error(format!(
            "cannot purge the C2D queue of {device_id}: {}",
            describe_error(&e)
        )),
    };
    ctx.send(event).await;
}
