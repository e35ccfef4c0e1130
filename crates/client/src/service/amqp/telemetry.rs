//! The telemetry reader: every partition of an Event Hubs-compatible entity at once,
//! from an explicit start, in a chosen consumer group. It reaches the entity through
//! the hub's redirect or straight from an Event Hubs connection string, and after a
//! drop it reconnects with backoff and resumes after the last (partition, sequence
//! number) it delivered: no gap, and anything at or below that mark is dropped.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use fe2o3_amqp::Receiver;
use fe2o3_amqp::link::receiver::CreditMode;
use fe2o3_amqp::types::messaging::Source;
use fe2o3_amqp::types::messaging::message::Body;
use fe2o3_amqp::types::primitives::{Symbol, Value};
use serde_amqp::described::Described;
use serde_amqp::descriptor::Descriptor;
use tokio::sync::{mpsc, watch};

use super::decode::telemetry_event;
use super::session::{Credentials, ServiceSession};
use super::transport::{AmqpOptions, AmqpTransport, Endpoint};
use super::{MessagingError, ReaderTask, StreamUpdate};
use crate::device::Backoff;
use crate::events::{LinkState, StartFrom, TelemetryEvent};
use iothub::amqp_model::{
    AMQPS_PORT, DEFAULT_CONSUMER_GROUP, EVENTHUB_TYPE, EVENTHUB_WEBSOCKET_PATH,
    IOTHUB_WEBSOCKET_PATH, PARTITION, PARTITION_TYPE, RedirectTarget, SELECTOR_FILTER,
    StartPosition, TOKEN_TYPE, hub_events_address, management, partition_address,
    selector_expression,
};
use iothub::connection_string::{EventHubConnectionString, ServiceConnectionString};

/// Where the reader finds the events.
#[derive(Clone, Debug)]
pub enum TelemetrySource {
    /// A hub: the reader follows its redirect to the built-in endpoint.
    Hub(ServiceConnectionString),
    /// An Event Hubs-compatible entity: the built-in endpoint, or a custom Event Hub
    /// that routed messages land in.
    EventHub(EventHubConnectionString),
}

/// Where reading starts, the first time; after a reconnect it resumes instead.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ReadFrom {
    /// Events enqueued after the reader attaches.
    #[default]
    Now,
    /// Events enqueued after this time.
    EnqueuedAfter(DateTime<Utc>),
    /// The first event still retained.
    Earliest,
}

impl From<StartFrom> for ReadFrom {
    fn from(s: StartFrom) -> ReadFrom {
        match s {
            StartFrom::Now => ReadFrom::Now,
            StartFrom::Ago(d) => ReadFrom::EnqueuedAfter(
                Utc::now() - chrono::Duration::from_std(d).unwrap_or(chrono::Duration::zero()),
            ),
            StartFrom::At(t) => ReadFrom::EnqueuedAfter(t),
        }
    }
}

#[derive(Clone, Debug)]
pub struct TelemetryReaderOptions {
    pub consumer_group: String,
    pub from: ReadFrom,
    pub amqp: AmqpOptions,
    /// Link credit per partition.
    pub prefetch: u32,
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    /// Capacity of the update channel; a slow consumer slows the reader (AMQP flow
    /// control), nothing is dropped.
    pub channel_capacity: usize,
}

impl Default for TelemetryReaderOptions {
    fn default() -> Self {
        TelemetryReaderOptions {
            consumer_group: DEFAULT_CONSUMER_GROUP.to_string(),
            from: ReadFrom::Now,
            amqp: AmqpOptions::default(),
            prefetch: 300,
            backoff_initial: Backoff::DEFAULT_INITIAL,
            backoff_max: Backoff::DEFAULT_MAX,
            channel_capacity: 4096,
        }
    }
}

/// The last sequence number delivered per partition: the resume point, and the
/// duplicate filter (within a partition sequence numbers only grow).
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct SeenPositions {
    last: HashMap<u32, i64>,
}

impl SeenPositions {
    /// Records the event; false if (partition, seq) was already delivered.
    pub fn admit(&mut self, partition: u32, seq: i64) -> bool {
        if seq < 0 {
            return true;
        }
        match self.last.get(&partition) {
            Some(&last) if seq <= last => false,
            _ => {
                self.last.insert(partition, seq);
                true
            }
        }
    }

    /// Marks everything up to `seq` as seen without delivering it (a "from now" start).
    pub fn baseline(&mut self, partition: u32, seq: i64) {
        self.last.entry(partition).or_insert(seq);
    }

    pub fn last(&self, partition: u32) -> Option<i64> {
        self.last.get(&partition).copied()
    }
}

/// Starts reading; updates arrive on the returned channel until the reader is closed
/// or fails for good (a `Failed` state says why).
pub fn read_telemetry(
    source: TelemetrySource,
    opts: TelemetryReaderOptions,
) -> (ReaderTask, mpsc::Receiver<StreamUpdate<TelemetryEvent>>) {
    let (tx, rx) = mpsc::channel(opts.channel_capacity.max(1));
    let (shutdown, shutdown_rx) = watch::channel(false);
    let reader = Reader {
        source,
        opts,
        out: tx,
        seen: SeenPositions::default(),
        shutdown: shutdown_rx,
    };
    let task = tokio::spawn(reader.run());
    (ReaderTask::new(shutdown, task), rx)
}

struct Reader {
    source: TelemetrySource,
    opts: TelemetryReaderOptions,
    out: mpsc::Sender<StreamUpdate<TelemetryEvent>>,
    seen: SeenPositions,
    shutdown: watch::Receiver<bool>,
}

/// The entity to read and how to authorize on it.
struct Entity {
    host: String,
    port: u16,
    entity: String,
    credentials: Credentials,
}

/// `host[:port]` → (host, port).
fn split_authority(authority: &str) -> (String, Option<u16>) {
    match authority.rsplit_once(':') {
        Some((h, p)) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
            (h.to_string(), p.parse().ok())
        }
        _ => (authority.to_string(), None),
    }
}

enum Ended {
    Shutdown,
    Failed(MessagingError),
}

impl Reader {
    async fn state(&self, state: LinkState, detail: Option<String>) {
        let _ = self.out.send(StreamUpdate::State { state, detail }).await;
    }

    async fn run(mut self) {
        let mut backoff = Backoff::new(self.opts.backoff_initial, self.opts.backoff_max);
        self.state(LinkState::Connecting, None).await;
        loop {
            match self.connect_and_read(&mut backoff).await {
                Ended::Shutdown => break,
                Ended::Failed(e) if e.is_fatal() => {
                    self.state(LinkState::Failed, Some(e.to_string())).await;
                    return;
                }
                Ended::Failed(e) => {
                    tracing::debug!(error = %e, "telemetry reader reconnecting");
                    self.state(LinkState::Reconnecting, Some(e.to_string()))
                        .await;
                    let delay = backoff.next_delay();
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = self.shutdown.changed() => break,
                    }
                }
            }
            if self.out.is_closed() {
                break;
            }
        }
        self.state(LinkState::Idle, None).await;
    }
}

/// Follows the hub's redirect, or reads the Event Hubs connection string.
async fn resolve_entity(
    source: &TelemetrySource,
    opts: &TelemetryReaderOptions,
) -> Result<Entity, MessagingError> {
    match source {
        TelemetrySource::EventHub(cs) => {
            let (host, port) = split_authority(&cs.host);
            Ok(Entity {
                host,
                port: port.unwrap_or(AMQPS_PORT),
                entity: cs.entity_path.clone(),
                credentials: Credentials::EventHub {
                    host: cs.host.clone(),
                    entity: cs.entity_path.clone(),
                    policy: cs.policy_name.clone(),
                    key: cs.key.clone(),
                },
            })
        }
        TelemetrySource::Hub(cs) => {
            let target = follow_redirect(cs, opts).await?;
            Ok(Entity {
                credentials: Credentials::EventHub {
                    host: target.host.clone(),
                    entity: target.entity.clone(),
                    policy: cs.policy_name.clone(),
                    key: cs.key.clone(),
                },
                host: target.host,
                port: target.port,
                entity: target.entity,
            })
        }
    }
}

impl Reader {
    async fn connect_and_read(&mut self, backoff: &mut Backoff) -> Ended {
        let (source, reader_opts) = (self.source.clone(), self.opts.clone());
        let entity = tokio::select! {
            r = resolve_entity(&source, &reader_opts) => match r {
                Ok(e) => e,
                Err(e) => return Ended::Failed(e),
            },
            _ = self.shutdown.changed() => return Ended::Shutdown,
        };
        let opts = self.opts.amqp.clone();
        let port = match opts.transport {
            AmqpTransport::Tcp => entity.port,
            AmqpTransport::WebSockets => opts.hub_port(),
        };
        let endpoint = Endpoint {
            host: &entity.host,
            port,
            websocket_path: EVENTHUB_WEBSOCKET_PATH,
        };
        let opened = tokio::select! {
            r = ServiceSession::open(&endpoint, &opts, entity.credentials.clone()) => r,
            _ = self.shutdown.changed() => return Ended::Shutdown,
        };
        let mut session = match opened {
            Ok(s) => s,
            Err(e) => return Ended::Failed(e),
        };
        let result = self.read(&mut session, &entity, backoff).await;
        let _ = tokio::time::timeout(Duration::from_secs(2), session.close()).await;
        result
    }

    /// The start filter for one partition: resume after what was delivered, else
    /// the requested start.
    async fn start_for(
        &mut self,
        session: &mut ServiceSession,
        entity: &str,
        partition: u32,
        pid: &str,
    ) -> Result<StartPosition, MessagingError> {
        if let Some(seq) = self.seen.last(partition) {
            return Ok(StartPosition::Sequence {
                value: seq,
                inclusive: false,
            });
        }
        Ok(match self.opts.from {
            ReadFrom::Earliest => StartPosition::Start,
            ReadFrom::EnqueuedAfter(t) => StartPosition::EnqueuedTime {
                millis: t.timestamp_millis(),
                inclusive: false,
            },
            ReadFrom::Now => {
                // Pin "now" to a sequence number, so a reconnect before the first event
                // still resumes exactly here.
                let info = session
                    .management_read(entity, &[(TOKEN_TYPE, PARTITION_TYPE), (PARTITION, pid)])
                    .await?;
                match map_get(&info, management::LAST_ENQUEUED_SEQUENCE_NUMBER).and_then(as_i64) {
                    Some(last) => {
                        self.seen.baseline(partition, last);
                        StartPosition::Sequence {
                            value: last,
                            inclusive: false,
                        }
                    }
                    None => StartPosition::End,
                }
            }
        })
    }

    async fn read(
        &mut self,
        session: &mut ServiceSession,
        entity: &Entity,
        backoff: &mut Backoff,
    ) -> Ended {
        let info = match session
            .management_read(&entity.entity, &[(TOKEN_TYPE, EVENTHUB_TYPE)])
            .await
        {
            Ok(v) => v,
            Err(e) => return Ended::Failed(e),
        };
        let partitions = partition_ids(&info);
        if partitions.is_empty() {
            return Ended::Failed(MessagingError::Protocol(
                "the Event Hubs entity lists no partitions".into(),
            ));
        }
        let (events_tx, mut events_rx) =
            mpsc::channel::<Result<TelemetryEvent, MessagingError>>(1024);
        let mut tasks = Vec::new();
        let group = self.opts.consumer_group.clone();
        for pid in &partitions {
            let partition: u32 = pid.parse().unwrap_or(u32::MAX);
            let start = match self
                .start_for(session, &entity.entity, partition, pid)
                .await
            {
                Ok(s) => s,
                Err(e) => return Ended::Failed(e),
            };
            let address = partition_address(&entity.host, &entity.entity, &group, pid);
            let source = Source::builder()
                .address(address.clone())
                .add_to_filter(
                    Symbol::from(SELECTOR_FILTER),
                    Described {
                        descriptor: Descriptor::Name(Symbol::from(SELECTOR_FILTER)),
                        value: Value::String(selector_expression(&start)),
                    },
                )
                .build();
            let attached = Receiver::builder()
                .name(format!(
                    "hubtui-{group}-{pid}-{}",
                    uuid::Uuid::new_v4().simple()
                ))
                .source(source)
                .target("hubtui-telemetry")
                .credit_mode(CreditMode::Auto(self.opts.prefetch.max(1)))
                .auto_accept(true)
                .attach(&mut session.session)
                .await;
            let receiver = match attached {
                Ok(r) => r,
                Err(e) => {
                    for t in &tasks {
                        let t: &tokio::task::JoinHandle<()> = t;
                        t.abort();
                    }
                    return Ended::Failed(MessagingError::from_receiver_attach(
                        &format!("partition {pid} of consumer group '{group}'"),
                        e,
                    ));
                }
            };
            tasks.push(tokio::spawn(pump(receiver, partition, events_tx.clone())));
        }
        drop(events_tx);
        self.state(LinkState::Connected, None).await;
        backoff.reset();
        let ended = loop {
            let renew = tokio::time::sleep(session.renew_in());
            tokio::select! {
                next = events_rx.recv() => match next {
                    Some(Ok(event)) => {
                        if !self.seen.admit(event.partition, event.sequence_number) {
                            continue;
                        }
                        if self.out.send(StreamUpdate::Item(event)).await.is_err() {
                            break Ended::Shutdown;
                        }
                    }
                    Some(Err(e)) => break Ended::Failed(e),
                    None => break Ended::Failed(MessagingError::Closed),
                },
                _ = renew => {
                    if let Err(e) = session.renew_if_due().await {
                        break Ended::Failed(e);
                    }
                }
                _ = self.shutdown.changed() => break Ended::Shutdown,
            }
        };
        for t in tasks {
            t.abort();
        }
        ended
    }
}

/// Reads one partition into the reader's channel until the link fails.
async fn pump(
    mut receiver: Receiver,
    partition: u32,
    out: mpsc::Sender<Result<TelemetryEvent, MessagingError>>,
) {
    loop {
        match receiver.recv::<Body<Value>>().await {
            Ok(delivery) => {
                let event = telemetry_event(partition, delivery.message());
                if out.send(Ok(event)).await.is_err() {
                    return;
                }
            }
            Err(e) => {
                let _ = out
                    .send(Err(MessagingError::from_recv(
                        &format!("partition {partition}"),
                        &e,
                    )))
                    .await;
                return;
            }
        }
    }
}

/// Asks the hub for its built-in endpoint: attach to `messages/events/...` and read
/// the `amqp:link:redirect` it answers with.
async fn follow_redirect(
    cs: &ServiceConnectionString,
    opts: &TelemetryReaderOptions,
) -> Result<RedirectTarget, MessagingError> {
    let endpoint = Endpoint {
        host: &cs.host_name,
        port: opts.amqp.hub_port(),
        websocket_path: IOTHUB_WEBSOCKET_PATH,
    };
    let credentials = Credentials::Hub {
        host: cs.host_name.clone(),
        policy: cs.policy_name.clone(),
        key: cs.key.clone(),
    };
    let mut session = ServiceSession::open(&endpoint, &opts.amqp, credentials).await?;
    let what = "the hub's telemetry endpoint";
    let address = hub_events_address(&opts.consumer_group, "0");
    let result = match Receiver::builder()
        .name(format!("hubtui-redirect-{}", uuid::Uuid::new_v4().simple()))
        .source(address)
        .target("hubtui-telemetry")
        .attach(&mut session.session)
        .await
    {
        Err(e) => Err(MessagingError::from_receiver_attach(what, e)),
        Ok(mut r) => {
            match tokio::time::timeout(Duration::from_secs(10), r.recv::<Body<Value>>()).await {
                Ok(Err(e)) => Err(MessagingError::from_recv(what, &e)),
                Ok(Ok(_)) | Err(_) => Err(MessagingError::Protocol(
                    "the hub did not redirect its messages/events address".into(),
                )),
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(2), session.close()).await;
    match result {
        Err(MessagingError::Redirect(target)) => Ok(target),
        Err(e) => Err(e),
        Ok(()) => unreachable!(),
    }
}

fn map_get<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    match v {
        Value::Map(m) => m.iter().find_map(|(k, v)| match k {
            Value::String(s) if s == key => Some(v),
            Value::Symbol(s) if s.as_str() == key => Some(v),
            _ => None,
        }),
        _ => None,
    }
}

fn as_i64(v: &Value) -> Option<i64> {
    match v {
        Value::Long(n) => Some(*n),
        Value::Int(n) => Some(i64::from(*n)),
        Value::Uint(n) => Some(i64::from(*n)),
        Value::Ulong(n) => i64::try_from(*n).ok(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// Partition ids from an entity READ: `partition_ids`, else `0..partition_count`.
fn partition_ids(info: &Value) -> Vec<String> {
    if let Some(Value::Array(a)) = map_get(info, management::PARTITION_IDS) {
        let ids: Vec<String> =
            a.0.iter()
                .filter_map(|v| match v {
                    Value::String(s) => Some(s.clone()),
                    other => as_i64(other).map(|n| n.to_string()),
                })
                .collect();
        if !ids.is_empty() {
            return ids;
        }
    }
    let count = map_get(info, management::PARTITION_COUNT)
        .and_then(as_i64)
        .unwrap_or(0);
    (0..count.max(0)).map(|p| p.to_string()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use fe2o3_amqp::types::primitives::{Array, OrderedMap};

    #[test]
    fn duplicates_are_dropped_by_partition_and_sequence_number() {
        let mut seen = SeenPositions::default();
        assert!(seen.admit(0, 5));
        assert!(seen.admit(1, 5), "another partition is another sequence");
        assert!(!seen.admit(0, 5));
        assert!(!seen.admit(0, 4));
        assert!(seen.admit(0, 6));
        assert_eq!(seen.last(0), Some(6));
        seen.baseline(2, 10);
        seen.baseline(2, 3);
        assert_eq!(seen.last(2), Some(10), "a baseline never moves back");
        assert!(!seen.admit(2, 10));
        assert!(seen.admit(2, 11));
        assert!(
            seen.admit(3, -1),
            "an event without a sequence number passes"
        );
    }

    #[test]
    fn partition_ids_from_a_read() {
        let mut m = OrderedMap::new();
        m.insert(
            Value::String(management::PARTITION_IDS.into()),
            Value::Array(Array::from(vec![
                Value::String("0".into()),
                Value::String("1".into()),
            ])),
        );
        assert_eq!(partition_ids(&Value::Map(m)), ["0", "1"]);
        let mut m = OrderedMap::new();
        m.insert(
            Value::String(management::PARTITION_COUNT.into()),
            Value::Int(3),
        );
        assert_eq!(partition_ids(&Value::Map(m)), ["0", "1", "2"]);
        assert!(partition_ids(&Value::Null).is_empty());
    }

    #[test]
    fn start_from_maps_to_read_from() {
        let t = Utc::now();
        assert_eq!(ReadFrom::from(StartFrom::At(t)), ReadFrom::EnqueuedAfter(t));
        assert_eq!(ReadFrom::from(StartFrom::Now), ReadFrom::Now);
        match ReadFrom::from(StartFrom::Ago(Duration::from_secs(60))) {
            ReadFrom::EnqueuedAfter(at) => assert!((Utc::now() - at).num_seconds() >= 59),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            split_authority("localhost:5999"),
            ("localhost".into(), Some(5999))
        );
        assert_eq!(
            split_authority("ns.example.org"),
            ("ns.example.org".into(), None)
        );
    }
}
