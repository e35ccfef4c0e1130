//! Cloud-to-device: sends and feedback over AMQP, purge over REST.
//!
//! One `C2dSender` (one AMQP link) serves every send; it is connected when the backend
//! starts, so bad credentials show at once, and reconnects on its own when a send finds the
//! link gone. The feedback receiver's connection is what the status bar shows as `c2d`.

use std::sync::Arc;

use tokio::sync::Mutex;

use crate::events::{Backend, C2dMessage, HubEvent, LinkState};
use crate::service::{C2dSender, MessagingError, StreamUpdate, receive_feedback};

use super::Ctx;
use super::link::describe_error;

/// The shared C2D sender; None until the first connect or send.
#[derive(Default)]
pub(super) struct Messaging {
    sender: Mutex<Option<C2dSender>>,
}

/// Runs for the backend's life: connects the sender, then reports feedback records.
pub(super) async fn run(ctx: Arc<Ctx>) {
    let amqp = ctx.config.amqp_options();
    let connection = ctx.config.service.connection();
    let (_feedback, mut updates) = receive_feedback(connection, amqp.clone());
    {
        let mut slot = ctx.messaging.sender.lock().await;
        // A send that came first has made (and connected) its own.
        if slot.is_none() {
            match C2dSender::connect(connection, amqp.clone()).await {
                Ok(sender) => *slot = Some(sender),
                Err(e) => {
                    tracing::info!(error = %e, "C2D sender did not connect");
                    *slot = Some(C2dSender::new(connection, amqp));
                    report_failure(&ctx, &e).await;
                }
            }
        }
    }
    while let Some(update) = updates.recv().await {
        let event = match update {
            StreamUpdate::Item(record) => HubEvent::C2dFeedback {
                status: if record.description.is_empty() {
                    record.status_code.description().to_string()
                } else {
                    record.description
                },
                original_message_id: record.original_message_id,
            },
            StreamUpdate::State { state, detail } => HubEvent::ConnectionState {
                backend: Backend::Messaging,
                state,
                detail,
            },
        };
        ctx.send(event).await;
    }
}

/// A sender failure that says the link is down, for the status bar.
async fn report_failure(ctx: &Ctx, e: &MessagingError) {
    let state = match e {
        // The hub answered; the message named a device it does not have.
        MessagingError::DeviceNotFound { .. } => return,
        e if e.is_fatal() => LinkState::Failed,
        MessagingError::Unreachable { .. }
        | MessagingError::Proxy { .. }
        | MessagingError::Timeout(_)
        | MessagingError::Closed
        | MessagingError::Link(_) => LinkState::Reconnecting,
        // The hub answered; this message was the problem, not the link.
        _ => return,
    };
    ctx.send(HubEvent::ConnectionState {
        backend: Backend::Messaging,
        state,
        detail: Some(e.to_string()),
    })
    .await;
}

pub(super) async fn send(ctx: Arc<Ctx>, message: C2dMessage) {
    let result = {
        let mut slot = ctx.messaging.sender.lock().await;
        let sender = slot.get_or_insert_with(|| {
            C2dSender::new(ctx.config.service.connection(), ctx.config.amqp_options())
        });
        sender.send(&message).await
    };
    let event = match result {
        Ok(()) => HubEvent::C2dSent {
            message_id: message.message_id,
        },
        Err(e) => {
            tracing::info!(device = %message.device_id, error = %e, "C2D send failed");
            report_failure(&ctx, &e).await;
            HubEvent::C2dFailed {
                message_id: message.message_id,
                reason: e.to_string(),
            }
        }
    };
    ctx.send(event).await;
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
