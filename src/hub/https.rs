//! The HTTPS endpoint: TLS in front of the service REST API and of MQTT and AMQP
//! over WebSockets (`hub::websocket`). One task per connection with a handshake
//! timeout, so a slow or broken client never stalls the listener.

use std::sync::Arc;

use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use rustls::ServerConfig;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use super::listen;
use super::rest;
use super::state::HubState;
use super::websocket::{self, Peer, WsEndpoints};

pub async fn serve(
    listener: TcpListener,
    tls: Arc<ServerConfig>,
    state: Arc<HubState>,
    ws: Arc<WsEndpoints>,
    mut shutdown: watch::Receiver<bool>,
) {
    let acceptor = TlsAcceptor::from(tls);
    let router = rest::router(state).merge(websocket::router(ws.clone()));
    while let Some((tcp, peer)) = listen::next_connection(&listener, &mut shutdown, "https").await {
        let acceptor = acceptor.clone();
        let router = router.clone();
        // Every request learns the client's address (for the WebSocket endpoints' logs).
        let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
            req.extensions_mut().insert(Peer(peer));
            router.clone().oneshot(req)
        });
        let mut conn_shutdown = shutdown.clone();
        tokio::spawn(async move {
            let deadline = Instant::now() + listen::HANDSHAKE_TIMEOUT;
            let Some(tls) = listen::handshake(&acceptor, tcp, peer, deadline, "https").await else {
                return;
            };
            let builder = Builder::new(TokioExecutor::new());
            // With upgrades: an HTTP/1.1 GET with Upgrade: websocket is handed over to
            // the WebSocket endpoints once the 101 response is written.
            let conn = builder.serve_connection_with_upgrades(TokioIo::new(tls), service);
            tokio::pin!(conn);
            tokio::select! {
                r = conn.as_mut() => {
                    if let Err(e) = r {
                        tracing::debug!(%peer, error = %e, "https connection ended with an error");
                    }
                }
                _ = conn_shutdown.changed() => {}
            }
        });
    }
    // Upgraded connections see the same shutdown signal; let them record it.
    ws.drain().await;
}
