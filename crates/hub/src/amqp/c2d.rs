//! `/messages/devicebound`: C2D messages from a service, queued for the device and
//! accepted, or rejected with an error condition the sender can show.

use std::sync::Arc;

use fe2o3_amqp::link::Receiver;
use fe2o3_amqp::types::definitions::Error as AmqpError;
use fe2o3_amqp::types::messaging::message::Body;
use fe2o3_amqp::types::primitives::Value;

use super::convert::{AmqpMessage, c2d_request, error, message_size};
use super::{ConnCtx, token_lapsed};
use iothub::amqp_model::{condition, condition_for};

const NODE: &str = "messages/devicebound";

pub(super) async fn serve(mut r: Receiver, ctx: Arc<ConnCtx>) {
    let resource = ctx.hub_resource(NODE);
    if let Err(e) = ctx.service_connect(&resource) {
        let _ = r.close_with_error(e).await;
        return;
    }
    let lapsed = ctx.service_connect_lapsed(&resource);
    tokio::pin!(lapsed);
    loop {
        let next = tokio::select! {
            d = r.recv::<Body<Value>>() => Some(d),
            _ = &mut lapsed => None,
        };
        match next {
            Some(Ok(delivery)) => {
                let result = enqueue(&ctx, delivery.message());
                let _ = match result {
                    Ok(()) => r.accept(&delivery).await,
                    Err(e) => r.reject(&delivery, e).await,
                };
            }
            Some(Err(e)) => {
                tracing::debug!(error = %e, "amqp c2d link ended");
                break;
            }
            None => {
                let _ = r.close_with_error(token_lapsed()).await;
                return;
            }
        }
    }
    let _ = r.close().await;
}

fn enqueue(ctx: &ConnCtx, msg: &AmqpMessage) -> Result<(), AmqpError> {
    // IoT Hub counts the whole AMQP message (sections and properties) and rejects
    // the delivery, leaving the link open.
    let size = message_size(msg);
    let max = ctx.state.settings.max_c2d_bytes;
    if size > max {
        return Err(error(
            condition::MESSAGE_SIZE,
            format!(
                "Message size is {size} bytes which is greater than the max size {max} bytes allowed."
            ),
        ));
    }
    let req = c2d_request(msg).map_err(|(cond, why)| error(cond, why))?;
    ctx.state
        .enqueue_c2d(&req.device_id, req.bag, req.body, req.expiry_ms)
        .map(|_| ())
        .map_err(|e| {
            error(
                condition_for(e.code.name()),
                format!("ErrorCode:{};{}", e.code.name(), e.message),
            )
        })
}
