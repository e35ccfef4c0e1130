//! Telemetry: the seam for the AMQP telemetry reader.
//!
//! PLUG-IN POINT. When `client::service` has its Event Hubs-compatible reader, replace the
//! body of `read` with: open the reader on `ctx.config.eventhub` (else the hub's built-in
//! endpoint), trusting `ctx.config.trust`, on `ctx.config.amqp_port`, for `consumer_group`,
//! starting at `from`; report `ConnectionState { backend: Backend::Telemetry, .. }` as it
//! connects, reconnects or fails; and send one `HubEvent::Telemetry` per message. `read` runs
//! in a latest-wins slot: a new `StartTelemetry` (start time or consumer group changed) aborts
//! the running reader, so the reader needs no stop signal of its own.

use std::sync::Arc;

use crate::client::events::{Backend, HubEvent, LinkState, StartFrom};

use super::Ctx;

/// What the status bar says until the AMQP client exists.
pub(super) const NOT_BUILT: &str = "telemetry needs the AMQP client (not built yet)";

pub(super) async fn read(ctx: Arc<Ctx>, from: StartFrom, consumer_group: String) {
    tracing::info!(?from, consumer_group = %consumer_group, "telemetry requested; no AMQP reader yet");
    ctx.send(HubEvent::ConnectionState {
        backend: Backend::Telemetry,
        state: LinkState::Failed,
        detail: Some(NOT_BUILT.into()),
    })
    .await;
}
