//! MQTT 3.1.1 over TLS: the device side of the hub, as Azure IoT Hub behaves.
//!
//! `serve` accepts TCP connections and spawns a task per connection; each task
//! does the TLS handshake and reads CONNECT within [`CONNECT_TIMEOUT`], then runs
//! `connection::serve`. `serve_stream` runs the same handler over a WebSocket
//! (see `hub::websocket`). Framing is rumqttc's `mqttbytes::v4` codec.

mod codec;
mod connect;
mod connection;
mod dps;
mod inflight;
mod subscriptions;

use std::sync::Arc;
use std::time::Duration;

use rustls::ServerConfig;
use tokio::net::TcpListener;
use tokio::runtime::Handle;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;

pub use connect::{KEEP_ALIVE_CAP, idle_timeout};
pub use subscriptions::SessionMemory;

use super::limits::ConnectionLimits;
use super::listen;
use super::state::HubState;

/// Time a client has from TCP accept to a complete CONNECT (TLS handshake included).
pub const CONNECT_TIMEOUT: Duration = listen::HANDSHAKE_TIMEOUT;

/// How long shutdown waits for connections to record their disconnect.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Serves one device connection over a stream that is already secured and framed
/// (MQTT over WebSockets): CONNECT within [`CONNECT_TIMEOUT`], then the same
/// session handling as on the TLS port. `client_certs` is the chain the client
/// presented in the HTTPS connection's TLS handshake, if any.
pub(crate) async fn serve_stream<S>(
    stream: S,
    peer: std::net::SocketAddr,
    state: Arc<HubState>,
    memory: Arc<SessionMemory>,
    ingest: Handle,
    client_certs: Option<Vec<rustls_pki_types::CertificateDer<'static>>>,
    shutdown: watch::Receiver<bool>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + 'static,
{
    let deadline = Instant::now() + CONNECT_TIMEOUT;
    if let Err(e) = connection::serve(
        stream,
        state,
        memory,
        ingest,
        deadline,
        client_certs,
        shutdown,
    )
    .await
    {
        tracing::debug!(%peer, reason = %e, "mqtt over websocket connection closed");
    }
}

/// Accepts MQTT-over-TLS connections until shutdown. `memory` holds the persistent
/// sessions, shared with MQTT over WebSockets; the handshake and CONNECT are served
/// here, each connected session on `ingest`.
pub async fn serve(
    listener: TcpListener,
    tls: Arc<ServerConfig>,
    state: Arc<HubState>,
    memory: Arc<SessionMemory>,
    ingest: Handle,
    limits: ConnectionLimits,
    mut shutdown: watch::Receiver<bool>,
) {
    let acceptor = TlsAcceptor::from(tls);
    let mut listener = listen::Listener::new(listener, "mqtt", &limits);
    let mut connections = JoinSet::new();
    while let Some((tcp, peer, slot)) = listener.next(&mut shutdown).await {
        while connections.try_join_next().is_some() {}
        let acceptor = acceptor.clone();
        let state = state.clone();
        let memory = memory.clone();
        let ingest = ingest.clone();
        let conn_shutdown = shutdown.clone();
        connections.spawn(slot.hold(async move {
            let deadline = Instant::now() + CONNECT_TIMEOUT;
            let Some(tls) = listen::handshake(&acceptor, tcp, peer, deadline, "mqtt").await else {
                return;
            };
            let client_certs = tls.get_ref().1.peer_certificates().map(|chain| {
                chain
                    .iter()
                    .map(|c| c.clone().into_owned())
                    .collect::<Vec<_>>()
            });
            if let Err(e) = connection::serve(
                tls,
                state,
                memory,
                ingest,
                deadline,
                client_certs,
                conn_shutdown,
            )
            .await
            {
                tracing::debug!(%peer, reason = %e, "mqtt connection closed");
            }
        }));
    }
    // Connections see the same shutdown signal; give them a moment to record it.
    let _ = tokio::time::timeout(DRAIN_TIMEOUT, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
}
