//! The `$cbs` node: put-token requests. A valid service token is recorded on the
//! connection (replacing an older one for the same scope); the reply carries
//! status-code 200, or 401 with the reason.

use std::sync::Arc;

use fe2o3_amqp::link::Receiver;
use fe2o3_amqp::types::messaging::message::Body;
use fe2o3_amqp::types::primitives::Value;

use super::ConnCtx;
use super::auth::verify_service_token;
use super::convert::{AmqpMessage, app_prop, body_bytes, response};
use iothub::amqp_model::{CBS_NODE, OPERATION, PUT_TOKEN};

pub(super) async fn serve(mut r: Receiver, ctx: Arc<ConnCtx>) {
    while let Ok(delivery) = r.recv::<Body<Value>>().await {
        let _ = r.accept(&delivery).await;
        let msg = delivery.message();
        let (status, description) = put_token(&ctx, msg);
        let reply_to = msg.properties.as_ref().and_then(|p| p.reply_to.clone());
        ctx.reply(
            CBS_NODE,
            reply_to.as_deref(),
            response(msg, status, &description, Value::Null),
        )
        .await;
    }
    let _ = r.close().await;
}

fn put_token(ctx: &ConnCtx, msg: &AmqpMessage) -> (i32, String) {
    let op = app_prop(msg, OPERATION).unwrap_or_default();
    if op != PUT_TOKEN {
        return (400, format!("The $cbs operation '{op}' is not supported."));
    }
    let token = String::from_utf8_lossy(&body_bytes(&msg.body)).into_owned();
    match verify_service_token(&ctx.state, &token) {
        Ok(grant) => {
            tracing::debug!(policy = %grant.policy, resource = %grant.resource, "amqp token put");
            ctx.auth.add(grant);
            (200, "OK".to_string())
        }
        Err(why) => {
            tracing::info!(%why, "amqp put-token refused");
            (401, why)
        }
    }
}
