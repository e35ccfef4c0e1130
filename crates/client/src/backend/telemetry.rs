//! Telemetry: the AMQP reader on the Event Hubs-compatible endpoint.
//!
//! `read` runs in a latest-wins slot: a new `StartTelemetry` (start time or consumer group
//! changed) aborts the running one. The `ReaderTask` lives in `read`'s future, so that abort
//! drops it, and dropping a `ReaderTask` stops its connection task.

use std::sync::Arc;

use crate::events::{Backend, HubEvent, StartFrom};
use crate::service::{StreamUpdate, TelemetryReaderOptions, TelemetrySource, read_telemetry};

use super::Ctx;

pub(super) async fn read(ctx: Arc<Ctx>, from: StartFrom, consumer_group: String) {
    let source = match &ctx.config.eventhub {
        Some(eventhub) => TelemetrySource::EventHub(eventhub.clone()),
        None => TelemetrySource::Hub(ctx.config.service.connection().clone()),
    };
    tracing::info!(?from, consumer_group = %consumer_group, "telemetry reader starting");
    let opts = TelemetryReaderOptions {
        consumer_group,
        from: from.into(),
        amqp: ctx.config.amqp_options(),
        ..TelemetryReaderOptions::default()
    };
    let (_reader, mut updates) = read_telemetry(source, opts);
    while let Some(update) = updates.recv().await {
        let event = match update {
            StreamUpdate::Item(event) => HubEvent::Telemetry(event),
            StreamUpdate::State { state, detail } => HubEvent::ConnectionState {
                backend: Backend::Telemetry,
                state,
                detail,
            },
        };
        ctx.send(event).await;
    }
}
