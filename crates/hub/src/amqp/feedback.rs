//! `/messages/servicebound/feedback`: batches of C2D feedback records as JSON
//! arrays. A batch leaves the store when the service accepts (or rejects) it and is
//! offered again when released.

use std::sync::Arc;

use fe2o3_amqp::link::Sender;
use fe2o3_amqp::types::messaging::message::Body;
use fe2o3_amqp::types::messaging::{Data, Message, MessageId, Outcome, Properties};
use fe2o3_amqp::types::primitives::{Binary, Symbol, Value};

use super::convert::AmqpMessage;
use super::{ConnCtx, token_lapsed};
use iothub::amqp_model::FEEDBACK_CONTENT_TYPE;

const NODE: &str = "messages/servicebound/feedback";

pub(super) async fn serve(mut s: Sender, ctx: Arc<ConnCtx>) {
    let resource = ctx.hub_resource(NODE);
    if let Err(e) = ctx.service_connect(&resource) {
        let _ = s.close_with_error(e).await;
        return;
    }
    let lapsed = ctx.service_connect_lapsed(&resource);
    tokio::pin!(lapsed);
    loop {
        let arrived = ctx.state.feedback.arrived.notified();
        tokio::pin!(arrived);
        arrived.as_mut().enable();
        let rows = match ctx.state.feedback_take() {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e.message, "feedback read failed");
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
        let body = format!(
            "[{}]",
            rows.iter()
                .map(|r| r.record.as_str())
                .collect::<Vec<_>>()
                .join(",")
        );
        let outcome = s.send(batch_message(&ctx, body)).await;
        let delivered = matches!(outcome, Ok(Outcome::Accepted(_)) | Ok(Outcome::Rejected(_)));
        let _ = ctx.state.feedback_settled(&seqs, delivered);
        if outcome.is_err() {
            break;
        }
    }
    let _ = s.close().await;
}

fn batch_message(ctx: &ConnCtx, body: String) -> AmqpMessage {
    let props = Properties {
        message_id: Some(MessageId::String(uuid::Uuid::new_v4().to_string())),
        content_type: Some(Symbol::from(FEEDBACK_CONTENT_TYPE)),
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
