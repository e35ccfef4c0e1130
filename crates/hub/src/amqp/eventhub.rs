//! The Event Hubs-compatible endpoint: `$management` READ for the entity and its
//! partitions, and partition receivers that replay retained telemetry from the
//! position their selector filter names, then follow live telemetry.

use std::sync::Arc;

use fe2o3_amqp::link::{Receiver, Sender};
use fe2o3_amqp::types::messaging::FilterSet;
use fe2o3_amqp::types::messaging::message::Body;
use fe2o3_amqp::types::primitives::{Array, Timestamp, Value};
use tokio::sync::broadcast::error::RecvError;

use super::auth::verify_service_token;
use super::convert::{
    AmqpMessage, add_runtime_metric, app_prop, error, response, telemetry_event, value_text,
};
use super::{ConnCtx, string_map, token_lapsed};
use crate::policies::Permission;
use crate::state::HubState;
use iothub::amqp_model::{
    EVENTHUB_TYPE, MANAGEMENT_NODE, NAME, OPERATION, PARTITION, PARTITION_TYPE, READ_OPERATION,
    SELECTOR_FILTER, StartPosition, TOKEN_TYPE, condition, management as key, parse_selector,
};

const CREATED_KEY: &str = "eventhub_created_ms";
const PAGE: usize = 100;

/// How long a refused publisher's link takes transfers before it is closed. A client
/// may send on the credit it was given before it sees the detach; a rejected delivery
/// fails its send at once, where an unsettled one would wait for a timeout.
const REFUSAL_GRACE: std::time::Duration = std::time::Duration::from_millis(250);

/// A client sending to the entity or one of its partitions. The built-in endpoint is
/// read-only: Azure's policies carry no Send claim there, and it says so.
pub(super) async fn refuse_publisher(mut r: Receiver, ctx: &ConnCtx) {
    let resource = format!("sb://{}/{}", ctx.state.host_name, ctx.endpoint.entity);
    let refusal = || {
        error(
            condition::UNAUTHORIZED,
            format!(
                "Unauthorized access. 'Send' claim(s) are required to perform this operation. \
                 Resource: '{resource}'."
            ),
        )
    };
    let deadline = tokio::time::Instant::now() + REFUSAL_GRACE;
    while let Ok(Ok(delivery)) = tokio::time::timeout_at(deadline, r.recv::<Body<Value>>()).await {
        let _ = r.reject(&delivery, refusal()).await;
    }
    let _ = r.close_with_error(refusal()).await;
}

/// When the entity was created: the hub's first start, remembered in the store.
fn created_ms(state: &HubState) -> i64 {
    if let Some(ms) = state
        .store
        .meta_get(CREATED_KEY)
        .ok()
        .flatten()
        .and_then(|v| v.parse().ok())
    {
        return ms;
    }
    let now = HubState::now().timestamp_millis();
    let _ = state.store.meta_put(CREATED_KEY, &now.to_string());
    now
}

pub(super) async fn serve_management(mut r: Receiver, ctx: Arc<ConnCtx>) {
    while let Ok(delivery) = r.recv::<Body<Value>>().await {
        let _ = r.accept(&delivery).await;
        let msg = delivery.message();
        let reply = read(&ctx, msg);
        let reply_to = msg.properties.as_ref().and_then(|p| p.reply_to.clone());
        ctx.reply(MANAGEMENT_NODE, reply_to.as_deref(), reply).await;
    }
    let _ = r.close().await;
}

fn authorized(ctx: &ConnCtx, msg: &AmqpMessage) -> Result<(), String> {
    let resource = ctx.entity_resource();
    match ctx
        .auth
        .check(&ctx.state, &resource, Permission::ServiceConnect)
    {
        Ok(_) => Ok(()),
        Err(why) => match app_prop(msg, "security_token") {
            // pyamqp also sends its token with each management request.
            Some(token) => {
                let grant = verify_service_token(&ctx.state, &token)?;
                ctx.auth.add(grant);
                ctx.auth
                    .check(&ctx.state, &resource, Permission::ServiceConnect)
                    .map(|_| ())
            }
            None => Err(why),
        },
    }
}

fn read(ctx: &ConnCtx, msg: &AmqpMessage) -> AmqpMessage {
    if let Err(why) = authorized(ctx, msg) {
        return response(msg, 401, &why, Value::Null);
    }
    let op = app_prop(msg, OPERATION).unwrap_or_default();
    if op != READ_OPERATION {
        return response(
            msg,
            400,
            &format!("The management operation '{op}' is not supported."),
            Value::Null,
        );
    }
    let entity = &ctx.endpoint.entity;
    let name = app_prop(msg, NAME).unwrap_or_default();
    if !name.is_empty() && !name.eq_ignore_ascii_case(entity) {
        return response(
            msg,
            404,
            &format!("The messaging entity '{name}' could not be found."),
            Value::Null,
        );
    }
    let state = &ctx.state;
    let partitions = state.settings.partitions.max(1);
    match app_prop(msg, TOKEN_TYPE).as_deref() {
        Some(EVENTHUB_TYPE) => {
            let ids: Vec<Value> = (0..partitions)
                .map(|p| Value::String(p.to_string()))
                .collect();
            let body = string_map(vec![
                (key::NAME, Value::String(entity.clone())),
                (key::TYPE, Value::String(EVENTHUB_TYPE.to_string())),
                (
                    key::CREATED_AT,
                    Value::Timestamp(Timestamp::from_milliseconds(created_ms(state))),
                ),
                (key::PARTITION_COUNT, Value::Int(partitions as i32)),
                (key::PARTITION_IDS, Value::Array(Array::from(ids))),
            ]);
            response(msg, 200, "OK", body)
        }
        Some(PARTITION_TYPE) => {
            let pid = app_prop(msg, PARTITION).unwrap_or_default();
            let Some(p) = pid.parse::<u32>().ok().filter(|p| *p < partitions) else {
                return response(
                    msg,
                    404,
                    &format!(
                        "The partition '{pid}' does not exist; partitions are 0..{partitions}."
                    ),
                    Value::Null,
                );
            };
            let stats = match state.store.telemetry_stats(p) {
                Ok(s) => s,
                Err(e) => return response(msg, 500, &e.to_string(), Value::Null),
            };
            let body = string_map(vec![
                (key::NAME, Value::String(entity.clone())),
                (key::TYPE, Value::String(PARTITION_TYPE.to_string())),
                (key::PARTITION, Value::String(pid.clone())),
                (key::BEGIN_SEQUENCE_NUMBER, Value::Long(stats.begin_seq)),
                (
                    key::LAST_ENQUEUED_SEQUENCE_NUMBER,
                    Value::Long(stats.last_seq),
                ),
                (
                    key::LAST_ENQUEUED_OFFSET,
                    Value::String(stats.last_seq.to_string()),
                ),
                (
                    key::LAST_ENQUEUED_TIME_UTC,
                    Value::Timestamp(Timestamp::from_milliseconds(
                        stats.last_enqueued_ms.unwrap_or(0),
                    )),
                ),
                (key::IS_PARTITION_EMPTY, Value::Bool(stats.is_empty)),
            ]);
            response(msg, 200, "OK", body)
        }
        other => response(
            msg,
            400,
            &format!(
                "The management type '{}' is not supported.",
                other.unwrap_or("")
            ),
            Value::Null,
        ),
    }
}

/// The selector filter's expression, if the link has one.
fn selector(filter: &FilterSet) -> Option<String> {
    let v = filter
        .iter()
        .find(|(k, _)| k.as_str() == SELECTOR_FILTER)
        .map(|(_, v)| v)?;
    match v {
        Value::Described(d) => value_text(&d.value),
        other => value_text(other),
    }
}

/// The first sequence number to deliver.
fn first_seq(state: &HubState, partition: u32, start: &StartPosition) -> Result<i64, String> {
    let stats = state
        .store
        .telemetry_stats(partition)
        .map_err(|e| e.to_string())?;
    Ok(match *start {
        StartPosition::Start => stats.begin_seq,
        StartPosition::End => stats.last_seq + 1,
        StartPosition::Sequence { value, inclusive } => {
            if inclusive {
                value
            } else {
                value + 1
            }
        }
        StartPosition::EnqueuedTime { millis, inclusive } => state
            .store
            .telemetry_seq_after_time(partition, millis, inclusive)
            .map_err(|e| e.to_string())?
            .unwrap_or(stats.last_seq + 1),
    })
}

/// A client's receiver on one partition, as it attached.
pub(super) struct PartitionReader {
    /// The link's name, as epoch refusals quote it.
    pub name: String,
    pub consumer_group: String,
    pub partition: String,
    pub filter: FilterSet,
    pub runtime_metric: bool,
    pub epoch: Option<i64>,
}

pub(super) async fn serve_partition(mut s: Sender, ctx: Arc<ConnCtx>, reader: PartitionReader) {
    let PartitionReader {
        name,
        consumer_group,
        partition,
        filter,
        runtime_metric,
        epoch,
    } = reader;
    let resource = format!(
        "{}/ConsumerGroups/{consumer_group}/Partitions/{partition}",
        ctx.entity_resource()
    );
    if let Err(e) = ctx.service_connect(&resource) {
        let _ = s.close_with_error(e).await;
        return;
    }
    let partitions = ctx.state.settings.partitions.max(1);
    let Some(p) = partition.parse::<u32>().ok().filter(|p| *p < partitions) else {
        let _ = s
            .close_with_error(error(
                condition::NOT_FOUND,
                format!(
                    "The partition '{partition}' does not exist; partitions are 0..{partitions}."
                ),
            ))
            .await;
        return;
    };
    let start = match selector(&filter).map(|e| parse_selector(&e)).transpose() {
        Ok(pos) => pos.unwrap_or(StartPosition::Start),
        Err(e) => {
            let _ = s
                .close_with_error(error(condition::ARGUMENT, e.to_string()))
                .await;
            return;
        }
    };
    let mut membership = match ctx.endpoint.owners.join(&consumer_group, p, &name, epoch) {
        Ok(m) => m,
        Err(why) => {
            let _ = s.close_with_error(error(condition::LINK_STOLEN, why)).await;
            return;
        }
    };
    // Subscribe before reading the backlog so nothing falls between the two.
    let mut live = ctx.state.telemetry.subscribe();
    let mut next = match first_seq(&ctx.state, p, &start) {
        Ok(n) => n,
        Err(e) => {
            let _ = s.close_with_error(error(condition::INTERNAL, e)).await;
            return;
        }
    };
    tracing::debug!(%consumer_group, partition = p, next, "amqp partition receiver attached");
    let lapsed = ctx.service_connect_lapsed(&resource);
    tokio::pin!(lapsed);
    // The store is read for a backlog, and again only when the live feed cannot go on
    // (a lag, a gap): a live event costs no store read.
    let mut read_store = true;
    'outer: loop {
        if let Ok(why) = membership.stolen.try_recv() {
            let _ = s.close_with_error(error(condition::LINK_STOLEN, why)).await;
            return;
        }
        let backlog = if !read_store {
            Vec::new()
        } else {
            match ctx.state.store.telemetry_read(p, next, PAGE) {
                Ok(b) => b,
                Err(e) => {
                    tracing::warn!(error = %e, "telemetry read failed");
                    Vec::new()
                }
            }
        };
        // An empty page: caught up with the store; the live feed carries on.
        read_store = !backlog.is_empty();
        if !backlog.is_empty() {
            // One look at the partition's end per page, for the runtime metric.
            let last = if runtime_metric {
                ctx.state.store.telemetry_stats(p).ok()
            } else {
                None
            };
            for rec in &backlog {
                let mut event = telemetry_event(rec);
                if let Some(l) = &last {
                    add_runtime_metric(&mut event, l.last_seq, l.last_enqueued_ms.unwrap_or(0));
                }
                if s.send_batchable(event).await.is_err() {
                    break 'outer;
                }
                next = rec.partition_seq + 1;
            }
            continue;
        }
        enum Wake {
            Event(Arc<crate::store::TelemetryRecord>),
            Reread,
            Stop,
            Lapsed,
            Stolen(String),
        }
        let wake = tokio::select! {
            r = live.recv() => match r {
                Ok(rec) => Wake::Event(rec),
                Err(RecvError::Lagged(_)) => Wake::Reread,
                Err(RecvError::Closed) => Wake::Stop,
            },
            _ = s.on_detach() => Wake::Stop,
            _ = &mut lapsed => Wake::Lapsed,
            why = &mut membership.stolen => match why {
                Ok(why) => Wake::Stolen(why),
                Err(_) => Wake::Stop,
            },
        };
        match wake {
            Wake::Event(rec) => {
                if rec.partition != p || rec.partition_seq < next {
                    continue;
                }
                if rec.partition_seq > next {
                    // A gap (retention or a lag): the store has it in order.
                    read_store = true;
                    continue;
                }
                let mut event = telemetry_event(&rec);
                if runtime_metric {
                    // A live event is the partition's newest.
                    add_runtime_metric(&mut event, rec.partition_seq, rec.enqueued_ms);
                }
                if s.send_batchable(event).await.is_err() {
                    break;
                }
                next = rec.partition_seq + 1;
            }
            Wake::Reread => read_store = true,
            Wake::Stop => break,
            Wake::Stolen(why) => {
                let _ = s.close_with_error(error(condition::LINK_STOLEN, why)).await;
                return;
            }
            Wake::Lapsed => {
                let _ = s.close_with_error(token_lapsed()).await;
                return;
            }
        }
    }
    let _ = s.close().await;
}
