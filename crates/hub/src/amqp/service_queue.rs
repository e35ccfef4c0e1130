//! The service queues' receive links: `/messages/servicebound/feedback` sends batches of
//! C2D feedback records as JSON arrays, `/messages/servicebound/filenotifications` one
//! file upload notification per message. A message's records leave the store when the
//! service accepts (or rejects) it and are offered again when released.

use std::sync::Arc;

use fe2o3_amqp::link::Sender;
use fe2o3_amqp::types::messaging::message::Body;
use fe2o3_amqp::types::messaging::{Data, Message, MessageId, Outcome, Properties};
use fe2o3_amqp::types::primitives::{Binary, Symbol, Value};

use super::convert::AmqpMessage;
use super::{ConnCtx, token_lapsed};
use crate::service_queues::FEEDBACK_BATCH;
use crate::store::ServiceQueue;
use iothub::amqp_model::{FEEDBACK_CONTENT_TYPE, FILE_NOTIFICATION_CONTENT_TYPE};

/// The node, records per message and content type of each queue.
fn shape(queue: ServiceQueue) -> (&'static str, usize, &'static str) {
    match queue {
        ServiceQueue::Feedback => (
            "messages/servicebound/feedback",
            FEEDBACK_BATCH,
            FEEDBACK_CONTENT_TYPE,
        ),
        ServiceQueue::FileNotifications => (
            "messages/servicebound/filenotifications",
            1,
            FILE_NOTIFICATION_CONTENT_TYPE,
        ),
    }
}

pub(super) async fn serve(mut s: Sender, ctx: Arc<ConnCtx>, queue: ServiceQueue) {
    let (node, batch, content_type) = shape(queue);
    let resource = ctx.hub_resource(node);
    if let Err(e) = ctx.service_connect(&resource) {
        let _ = s.close_with_error(e).await;
        return;
    }
    let lapsed = ctx.service_connect_lapsed(&resource);
    tokio::pin!(lapsed);
    loop {
        let arrived = ctx.state.queues.get(queue).arrived.notified();
        tokio::pin!(arrived);
        arrived.as_mut().enable();
        let rows = match ctx.state.queue_take(queue, batch) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e.message, ?queue, "queue read failed");
                Vec::new()
            }
        };
        if rows.is_empty() {
            enum Wake {
                More,
                Detached,
                Lapsed,
            }
            let wake = tokio::select! {
                _ = &mut arrived => Wake::More,
                _ = s.on_detach() => Wake::Detached,
                _ = &mut lapsed => Wake::Lapsed,
            };
            match wake {
                Wake::More => continue,
                Wake::Detached => break,
                Wake::Lapsed => {
                    let _ = s.close_with_error(token_lapsed()).await;
                    return;
                }
            }
        }
        let seqs: Vec<i64> = rows.iter().map(|r| r.seq).collect();
        let records = rows.iter().map(|r| r.record.as_str());
        let body = match queue {
            ServiceQueue::Feedback => format!("[{}]", records.collect::<Vec<_>>().join(",")),
            ServiceQueue::FileNotifications => records.collect(),
        };
        let outcome = s.send(queue_message(&ctx, body, content_type)).await;
        let delivered = matches!(outcome, Ok(Outcome::Accepted(_)) | Ok(Outcome::Rejected(_)));
        let _ = ctx.state.queue_settled(queue, &seqs, delivered);
        if outcome.is_err() {
            break;
        }
    }
    let _ = s.close().await;
}

fn queue_message(ctx: &ConnCtx, body: String, content_type: &str) -> AmqpMessage {
    let props = Properties {
        message_id: Some(MessageId::String(uuid::Uuid::new_v4().to_string())),
        content_type: Some(Symbol::from(content_type)),
        user_id: Some(Binary::from(ctx.state.hub_name().as_bytes().to_vec())),
        ..Default::default()
    };
    Message {
        header: None,
        delivery_annotations: None,
        message_annotations: None,
        properties: Some(props),
        application_properties: None,
        body: Body::<Value>::Data(vec![Data(Binary::from(body.into_bytes()))].into()),
        footer: None,
    }
}
