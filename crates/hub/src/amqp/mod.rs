//! The hub's AMQP endpoint (TLS on 5671): the service side of IoT Hub (CBS, C2D send,
//! feedback) and its Event Hubs-compatible telemetry endpoint (management READ,
//! partition receivers), plus the redirect from the hub's own `messages/events`.
//!
//! TLS is terminated here with tokio-rustls (the Azure SDKs open plain TLS, not the
//! AMQP TLS header), then fe2o3-amqp's acceptor runs SASL and AMQP on the stream.
//! One task per connection, one per session, one per link.

mod auth;
mod c2d;
mod cbs;
mod convert;
mod epoch;
mod eventhub;
mod frame_guard;
mod full_lists;
mod header;
mod limits;
mod redirect;
mod sasl;
mod service_queue;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fe2o3_amqp::acceptor::{
    ConnectionAcceptor, LinkAcceptor, LinkEndpoint, ListenerSessionHandle, SessionAcceptor,
    SupportedReceiverSettleModes,
};
use fe2o3_amqp::link::{Receiver, Sender};
use fe2o3_amqp::types::definitions::{ReceiverSettleMode, Role};
use fe2o3_amqp::types::messaging::TargetArchetype;
use fe2o3_amqp::types::performatives::Attach;
use fe2o3_amqp::types::primitives::Value;
use rustls::ServerConfig;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio_rustls::TlsAcceptor;

use self::auth::ConnAuth;
use self::convert::{AmqpMessage, error};
use super::state::HubState;
use crate::policies::Permission;
use fe2o3_amqp::types::definitions::Error as AmqpError;
use iothub::amqp_model::{
    EPOCH_PROPERTY, NodeAddress, RECEIVER_RUNTIME_METRIC, condition, event_hub_name,
};

use super::limits::ConnectionLimits;
use super::listen::{self, HANDSHAKE_TIMEOUT};
/// Largest message on a link, as an Event Hubs namespace announces it (1 MiB).
const MAX_LINK_MESSAGE: u64 = 1024 * 1024;
/// Idle timeout announced in Open (Event Hubs announces 4 minutes).
const IDLE_TIMEOUT_MS: u32 = 240_000;
/// Why a link is closed when its token lapses without a newer one.
fn token_lapsed() -> AmqpError {
    error(
        condition::UNAUTHORIZED,
        "The token for this link has expired; put a new token on $cbs.",
    )
}

/// How long a response waits for its reply link to be attached.
const REPLY_LINK_WAIT: Duration = Duration::from_secs(5);
/// How long the hub waits for a client to answer its CLOSE (or a refused session's END).
const CLOSE_WAIT: Duration = Duration::from_secs(2);

/// What the endpoint needs to know about itself.
#[derive(Clone, Debug)]
pub struct AmqpEndpoint {
    /// The Event Hubs-compatible entity name.
    pub entity: String,
    /// The port clients reach it on (for redirects).
    pub port: u16,
    /// Partition receivers and their epochs, across every connection.
    owners: Arc<epoch::PartitionOwners>,
}

impl AmqpEndpoint {
    pub fn new(state: &HubState, port: u16) -> AmqpEndpoint {
        AmqpEndpoint {
            entity: event_hub_name(state.hub_name()),
            port,
            owners: Arc::default(),
        }
    }
}

/// One connection's context, shared by its sessions and links.
pub(crate) struct ConnCtx {
    pub state: Arc<HubState>,
    pub endpoint: Arc<AmqpEndpoint>,
    pub auth: ConnAuth,
    /// Sessions and links open on this connection.
    occupancy: limits::Occupancy,
    /// Reply links ($cbs, $management) by node name and by their target address.
    replies: Mutex<HashMap<String, mpsc::Sender<AmqpMessage>>>,
    /// Signalled whenever a reply link is registered.
    reply_attached: tokio::sync::Notify,
}

impl ConnCtx {
    /// ServiceConnect on `resource`, or the error to close the link with.
    fn service_connect(&self, resource: &str) -> Result<(), AmqpError> {
        self.auth
            .check(&self.state, resource, Permission::ServiceConnect)
            .map(drop)
            .map_err(|why| error(condition::UNAUTHORIZED, why))
    }

    /// Resolves when no token grants ServiceConnect on `resource` any more.
    async fn service_connect_lapsed(&self, resource: &str) {
        self.auth
            .lapsed(&self.state, resource, Permission::ServiceConnect)
            .await
    }

    fn register_reply(&self, keys: &[String], tx: mpsc::Sender<AmqpMessage>) {
        let mut r = self.replies.lock().unwrap_or_else(|p| p.into_inner());
        for k in keys {
            r.insert(k.to_ascii_lowercase(), tx.clone());
        }
        drop(r);
        self.reply_attached.notify_waiters();
    }

    /// Sends a response on the reply link named by `reply_to`, else the node's.
    /// Clients (uamqp) may send a request before their reply link's attach has
    /// reached the hub, so a missing reply link is waited for, briefly.
    pub async fn reply(&self, node: &str, reply_to: Option<&str>, msg: AmqpMessage) {
        let deadline = tokio::time::Instant::now() + REPLY_LINK_WAIT;
        loop {
            let attached = self.reply_attached.notified();
            tokio::pin!(attached);
            attached.as_mut().enable();
            let tx = {
                let r = self.replies.lock().unwrap_or_else(|p| p.into_inner());
                reply_to
                    .and_then(|a| r.get(&a.to_ascii_lowercase()))
                    .or_else(|| r.get(node))
                    .cloned()
            };
            if let Some(tx) = tx {
                let _ = tx.send(msg).await;
                return;
            }
            if tokio::time::timeout_at(deadline, attached).await.is_err() {
                tracing::debug!(node, "amqp response dropped: no reply link attached");
                return;
            }
        }
    }

    /// The resource a hub-level link needs a token for.
    pub fn hub_resource(&self, path: &str) -> String {
        format!("{}/{path}", self.state.host_name)
    }

    pub fn entity_resource(&self) -> String {
        format!("{}/{}", self.state.host_name, self.endpoint.entity)
    }
}

/// Accepts AMQP connections until shutdown.
pub async fn serve(
    listener: TcpListener,
    tls: Arc<ServerConfig>,
    state: Arc<HubState>,
    endpoint: AmqpEndpoint,
    limits: ConnectionLimits,
    mut shutdown: watch::Receiver<bool>,
) {
    let acceptor = TlsAcceptor::from(tls);
    let endpoint = Arc::new(endpoint);
    let mut listener = listen::Listener::new(listener, "amqp", &limits);
    while let Some((tcp, peer, slot)) = listener.next(&mut shutdown).await {
        tokio::spawn(slot.hold(connection(
            tcp,
            peer,
            acceptor.clone(),
            state.clone(),
            endpoint.clone(),
            shutdown.clone(),
        )));
    }
}

/// Serves one connection over any byte stream that already carries TLS (or
/// WebSocket) framing.
pub(crate) async fn serve_stream<Io>(
    io: Io,
    peer: std::net::SocketAddr,
    state: Arc<HubState>,
    endpoint: Arc<AmqpEndpoint>,
    mut shutdown: watch::Receiver<bool>,
) where
    Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + std::fmt::Debug + Send + Unpin + 'static,
{
    let sasl = sasl::HubSasl::new(state.clone());
    let login = sasl.login.clone();
    let (refusal, mut refused) = watch::channel(None);
    // Held until this function returns: then the stream ends under the engine.
    let (_owner, owned) = tokio::sync::oneshot::channel::<()>();
    let open = async {
        let (layer, io) = header::read(io).await?;
        let (read, write) = tokio::io::split(io);
        let read = frame_guard::FrameGuard::new(read, limits::announced(), refusal, owned);
        let io = full_lists::FullLists::new(tokio::io::join(read, write));
        let builder = ConnectionAcceptor::builder()
            .container_id(state.host_name.clone())
            .max_frame_size(limits::MAX_FRAME_SIZE)
            .channel_max(limits::CHANNEL_MAX)
            // Also keeps the Open frame's field list long enough for pyamqp, which
            // indexes idle-time-out without checking the list's length.
            .idle_time_out(IDLE_TIMEOUT_MS);
        match layer {
            header::Layer::Amqp => builder.build().accept(io).await,
            header::Layer::Sasl | header::Layer::Other => {
                builder.sasl_acceptor(sasl).build().accept(io).await
            }
        }
    };
    let opened = tokio::select! {
        r = tokio::time::timeout(HANDSHAKE_TIMEOUT, open) => r,
        Ok(()) = refused.changed() => {
            // Before the connection is open there is no CLOSE to send: drop it.
            tracing::info!(%peer, error = ?*refused.borrow(), "amqp frame refused");
            return;
        }
    };
    let mut conn = match opened {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => {
            tracing::debug!(%peer, error = %e, "amqp open failed");
            return;
        }
        Err(_) => {
            tracing::debug!(%peer, "amqp open timed out");
            return;
        }
    };
    let ctx = Arc::new(ConnCtx {
        state,
        endpoint,
        auth: ConnAuth::default(),
        occupancy: limits::Occupancy::default(),
        replies: Mutex::new(HashMap::new()),
        reply_attached: tokio::sync::Notify::new(),
    });
    if let Some(grant) = login.lock().unwrap_or_else(|p| p.into_inner()).take() {
        ctx.auth.add(grant);
    }
    // A handle-max equal to AMQP's default is encoded as null, which pyamqp reads
    // as None and then compares with an int: announce an explicit limit.
    let session_acceptor = SessionAcceptor::builder()
        .handle_max(limits::HANDLE_MAX)
        .build();
    let auth_deadline = tokio::time::sleep(ctx.state.settings.amqp_auth_window);
    tokio::pin!(auth_deadline);
    let mut authenticated = ctx.auth.authenticated();
    let refusal = loop {
        let incoming = tokio::select! {
            s = conn.next_incoming_session() => s,
            Ok(()) = refused.changed() => {
                let why = refused.borrow().clone();
                tracing::info!(%peer, error = ?why, "amqp frame refused");
                break why.map(|e| error(e.condition(), e.to_string()));
            }
            _ = &mut auth_deadline, if !authenticated => {
                authenticated = ctx.auth.authenticated();
                if authenticated {
                    continue;
                }
                tracing::info!(%peer, "amqp connection closed: no token in time");

                break Some(unauthenticated(ctx.state.settings.amqp_auth_window));
            }
            _ = shutdown.changed() => None,
        };
        let Some(incoming) = incoming else { break None };
        match session_acceptor
            .accept_incoming_session(incoming, &mut conn)
            .await
        {
            Ok(session) => match ctx.occupancy.session(ctx.auth.authenticated()) {
                Ok(slot) => {
                    tokio::spawn(session_loop(session, ctx.clone(), slot));
                }
                Err(e) => {
                    tokio::spawn(refuse_session(session, e));
                }
            },
            Err(e) => {
                tracing::debug!(%peer, error = %e, "amqp begin failed");
                break None;
            }
        }
    };
    let close = async {
        match refusal {
            Some(e) => conn.close_with_error(e).await,
            None => conn.close().await,
        }
    };
    let _ = tokio::time::timeout(CLOSE_WAIT, close).await;
}

/// Why a connection that never authenticated is closed.
fn unauthenticated(window: Duration) -> AmqpError {
    error(
        condition::UNAUTHORIZED,
        format!(
            "No token was put on $cbs (or given with SASL PLAIN) within {} seconds of connecting.",
            window.as_secs()
        ),
    )
}

/// Ends a session the connection has no room for.
async fn refuse_session(mut session: ListenerSessionHandle, why: AmqpError) {
    let _ = tokio::time::timeout(CLOSE_WAIT, session.end_with_error(why)).await;
}

async fn connection(
    tcp: tokio::net::TcpStream,
    peer: std::net::SocketAddr,
    acceptor: TlsAcceptor,
    state: Arc<HubState>,
    endpoint: Arc<AmqpEndpoint>,
    shutdown: watch::Receiver<bool>,
) {
    let deadline = tokio::time::Instant::now() + HANDSHAKE_TIMEOUT;
    let Some(tls) = super::listen::handshake(&acceptor, tcp, peer, deadline, "amqp").await else {
        return;
    };
    serve_stream(tls, peer, state, endpoint, shutdown).await;
}

/// The address a link names, as the client attached it.
fn link_address(attach: &Attach) -> String {
    match attach.role {
        // The client sends: the node is its target.
        Role::Sender => match attach.target.as_deref() {
            Some(TargetArchetype::Target(t)) => t.address.clone(),
            #[allow(unreachable_patterns)]
            _ => None,
        },
        Role::Receiver => attach.source.as_ref().and_then(|s| s.address.clone()),
    }
    .unwrap_or_default()
}

/// The client receiver's own target address (where it wants replies).
fn reply_address(attach: &Attach) -> Option<String> {
    match attach.target.as_deref() {
        Some(TargetArchetype::Target(t)) => t.address.clone(),
        #[allow(unreachable_patterns)]
        _ => None,
    }
}

async fn session_loop(mut session: ListenerSessionHandle, ctx: Arc<ConnCtx>, _slot: limits::Slot) {
    // The hub settles what it receives at once (receiver-settle-mode first), as
    // IoT Hub does: uamqp asks for "second" on its C2D link but completes a send
    // only on a settled disposition.
    let link_acceptor = LinkAcceptor::builder()
        .supported_receiver_settle_modes(SupportedReceiverSettleModes::First)
        .fallback_receiver_settle_mode(ReceiverSettleMode::First)
        // Announced as Event Hubs does; @azure/event-hubs sizes its batches by it.
        .max_message_size(MAX_LINK_MESSAGE)
        .build();
    while let Some(attach) = session.next_incoming_attach().await {
        let link = LinkRequest::new(&attach, &ctx.endpoint.entity);
        let accepted = link_acceptor
            .accept_incoming_attach(attach, &mut session)
            .await;
        let slot = ctx.occupancy.link(ctx.auth.authenticated());
        match (accepted, slot) {
            (Ok(LinkEndpoint::Receiver(r)), Ok(slot)) => {
                let ctx = ctx.clone();
                tokio::spawn(async move {
                    serve_receiver(r, link.node, ctx).await;
                    drop(slot);
                });
            }
            (Ok(LinkEndpoint::Sender(s)), Ok(slot)) => {
                let ctx = ctx.clone();
                tokio::spawn(async move {
                    serve_sender(s, link, ctx).await;
                    drop(slot);
                });
            }
            (Ok(LinkEndpoint::Receiver(r)), Err(e)) => {
                tokio::spawn(r.close_with_error(e));
            }
            (Ok(LinkEndpoint::Sender(s)), Err(e)) => {
                tokio::spawn(s.close_with_error(e));
            }
            (Err(e), _) => {
                tracing::debug!(error = %e, address = %link.address, "amqp attach failed")
            }
        }
    }
    let _ = session.end().await;
}

/// Links on which the client sends to the hub.
async fn serve_receiver(mut r: Receiver, node: NodeAddress, ctx: Arc<ConnCtx>) {
    r.set_auto_accept(false);
    match node {
        NodeAddress::Cbs => cbs::serve(r, ctx).await,
        NodeAddress::Management => eventhub::serve_management(r, ctx).await,
        NodeAddress::DeviceBound => c2d::serve(r, ctx).await,
        NodeAddress::HubEvents { rest } => {
            redirect::refuse_receiver(r, &ctx, &rest).await;
        }
        NodeAddress::Entity => eventhub::refuse_publisher(r, &ctx).await,
        other => {
            let _ = r
                .close_with_error(error(
                    condition::NOT_FOUND,
                    format!("The hub has no node {other:?} to send to."),
                ))
                .await;
        }
    }
}

/// What the hub keeps of a client's attach.
struct LinkRequest {
    name: String,
    address: String,
    node: NodeAddress,
    /// The client receiver's own target address (where it wants replies).
    reply_to: Option<String>,
    filter: fe2o3_amqp::types::messaging::FilterSet,
    /// The client asked for the partition's last enqueued event on every message.
    runtime_metric: bool,
    /// Owner level of a partition receiver.
    epoch: Option<i64>,
}

impl LinkRequest {
    fn new(attach: &Attach, entity: &str) -> LinkRequest {
        let address = link_address(attach);
        LinkRequest {
            name: attach.name.clone(),
            node: NodeAddress::parse(&address, entity),
            address,
            reply_to: reply_address(attach),
            filter: attach
                .source
                .as_ref()
                .and_then(|s| s.filter.clone())
                .unwrap_or_default(),
            runtime_metric: attach
                .desired_capabilities
                .as_ref()
                .is_some_and(|caps| caps.iter().any(|c| c.as_str() == RECEIVER_RUNTIME_METRIC)),
            epoch: attach.properties.as_ref().and_then(|p| {
                p.iter().find_map(|(k, v)| match v {
                    Value::Long(e) if k.as_str() == EPOCH_PROPERTY => Some(*e),
                    Value::Int(e) if k.as_str() == EPOCH_PROPERTY => Some(i64::from(*e)),
                    _ => None,
                })
            }),
        }
    }
}

/// Links on which the hub sends to the client.
async fn serve_sender(s: Sender, link: LinkRequest, ctx: Arc<ConnCtx>) {
    match link.node {
        NodeAddress::Cbs | NodeAddress::Management => {
            let name = match link.node {
                NodeAddress::Cbs => iothub::amqp_model::CBS_NODE,
                _ => iothub::amqp_model::MANAGEMENT_NODE,
            };
            let mut keys = vec![name.to_string()];
            keys.extend(link.reply_to);
            reply_link(s, &keys, &ctx).await;
        }
        NodeAddress::Feedback => {
            service_queue::serve(s, ctx, crate::store::ServiceQueue::Feedback).await
        }
        NodeAddress::FileNotifications => {
            service_queue::serve(s, ctx, crate::store::ServiceQueue::FileNotifications).await
        }
        NodeAddress::Partition {
            consumer_group,
            partition,
        } => {
            let reader = eventhub::PartitionReader {
                name: link.name,
                consumer_group,
                partition,
                filter: link.filter,
                runtime_metric: link.runtime_metric,
                epoch: link.epoch,
            };
            eventhub::serve_partition(s, ctx, reader).await
        }
        NodeAddress::HubEvents { rest } => redirect::refuse_sender(s, &ctx, &rest).await,
        _ => {
            let _ = s
                .close_with_error(error(
                    condition::NOT_FOUND,
                    format!("The hub has no node '{}' to receive from.", link.address),
                ))
                .await;
        }
    }
}

/// A link carrying responses ($cbs, $management) back to the client.
async fn reply_link(mut s: Sender, keys: &[String], ctx: &ConnCtx) {
    let (tx, mut rx) = mpsc::channel::<AmqpMessage>(64);
    ctx.register_reply(keys, tx);
    loop {
        let next = tokio::select! {
            m = rx.recv() => m,
            _ = s.on_detach() => None,
        };
        let Some(msg) = next else { break };
        if let Err(e) = s.send(msg).await {
            tracing::debug!(error = %e, "amqp reply not delivered");
            break;
        }
    }
    let _ = s.close().await;
}

/// A value map with string keys, for management responses.
pub(crate) fn string_map(entries: Vec<(&str, Value)>) -> Value {
    let mut m = fe2o3_amqp::types::primitives::OrderedMap::new();
    for (k, v) in entries {
        m.insert(Value::String(k.to_string()), v);
    }
    Value::Map(m)
}
