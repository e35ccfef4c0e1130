//! The hub's own `messages/events/...` address: answered, as Azure does, with an
//! `amqp:link:redirect` detach pointing at the Event Hubs-compatible address.

use fe2o3_amqp::link::{Receiver, Sender};
use fe2o3_amqp::types::definitions::{Error as AmqpError, Fields};
use fe2o3_amqp::types::primitives::{Symbol, Value};

use super::ConnCtx;
use super::convert::error_with_info;
use iothub::amqp_model::{condition, redirect, redirect_address};

fn redirect_error(ctx: &ConnCtx, rest: &str) -> AmqpError {
    let host = ctx.state.host_name.clone();
    let port = ctx.endpoint.port;
    let address = redirect_address(&host, port, &ctx.endpoint.entity, rest);
    let mut info = Fields::new();
    info.insert(
        Symbol::from(redirect::HOSTNAME),
        Value::String(host.clone()),
    );
    info.insert(Symbol::from(redirect::NETWORK_HOST), Value::String(host));
    info.insert(Symbol::from(redirect::PORT), Value::Int(i32::from(port)));
    info.insert(
        Symbol::from(redirect::ADDRESS),
        Value::String(address.clone()),
    );
    info.insert(
        Symbol::from(redirect::TRACKING_ID),
        Value::String(uuid::Uuid::new_v4().to_string()),
    );
    error_with_info(
        condition::REDIRECT,
        format!("The link is redirected to {address}."),
        info,
    )
}

pub(super) async fn refuse_sender(s: Sender, ctx: &ConnCtx, rest: &str) {
    let _ = s.close_with_error(redirect_error(ctx, rest)).await;
}

pub(super) async fn refuse_receiver(r: Receiver, ctx: &ConnCtx, rest: &str) {
    let _ = r.close_with_error(redirect_error(ctx, rest)).await;
}
