//! The HTTPS endpoint: TLS in front of the service REST API, the blob store, and MQTT and AMQP
//! over WebSockets (`hub::websocket`). One task per connection, each bounded in time
//! (handshake, request headers, request body rate, idle time between requests) so
//! that slow, broken or idle clients never hold the listener or its descriptors.

mod body_rate;
mod idle;

use std::sync::Arc;

use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use rustls::ServerConfig;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use super::admission::SharedSlot;
use super::limits::ConnectionLimits;
use super::listen;
use super::rest;
use super::state::HubState;
use super::websocket::{self, ClientCertificates, Peer, WsEndpoints};
use body_rate::MinRateBody;
use idle::{RequestGuard, Requests};

/// A response body that keeps its request counted as in progress until it is written.
struct InProgress<B> {
    body: B,
    _request: RequestGuard,
}

impl<B: hyper::body::Body + Unpin> hyper::body::Body for InProgress<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<B::Data>, B::Error>>> {
        std::pin::Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.body.size_hint()
    }
}

pub async fn serve(
    listener: TcpListener,
    tls: Arc<ServerConfig>,
    state: Arc<HubState>,
    blobs: Arc<super::blob::BlobService>,
    ws: Arc<WsEndpoints>,
    limits: ConnectionLimits,
    mut shutdown: watch::Receiver<bool>,
) {
    let acceptor = TlsAcceptor::from(tls);
    let port = listener.local_addr().map(|a| a.port()).unwrap_or_default();
    let uploads = state.settings.file_upload.clone();
    let router = rest::router(state.clone())
        .merge(super::file_upload::router(
            state.clone(),
            blobs.clone(),
            uploads,
            port,
        ))
        .merge(super::device_https::router(state.clone()))
        .merge(super::dps::rest::router(state))
        .merge(websocket::router(ws.clone()))
        .merge(super::blob::routes::router(blobs));
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    builder.http2().timer(TokioTimer::new());
    let mut listener = listen::Listener::new(listener, "https", &limits);
    while let Some((tcp, peer, slot)) = listener.next(&mut shutdown).await {
        let acceptor = acceptor.clone();
        let router = router.clone();
        let builder = builder.clone();
        let limits = limits.clone();
        let mut conn_shutdown = shutdown.clone();
        // Shared with the WebSocket endpoints: an upgraded connection keeps its place.
        let slot: SharedSlot = Arc::new(slot);
        let place = slot.clone();
        tokio::spawn(async move {
            let _place = place;
            let deadline = Instant::now() + listen::HANDSHAKE_TIMEOUT;
            let Some(tls) = listen::handshake(&acceptor, tcp, peer, deadline, "https").await else {
                return;
            };
            // The chain the client presented, if any: MQTT over WebSockets authenticates
            // X.509 devices with it at CONNECT, as the MQTT/TLS port does.
            let client_certs = tls.get_ref().1.peer_certificates().map(|chain| {
                ClientCertificates(Arc::new(
                    chain.iter().map(|c| c.clone().into_owned()).collect(),
                ))
            });
            let requests = Requests::new();
            let in_flight = requests.clone();
            let (rate, grace) = (limits.min_body_bytes_per_second, limits.body_grace);
            let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
                // Every request learns the client's address (for the WebSocket endpoints' logs)
                // and the connection's place.
                req.extensions_mut().insert(Peer(peer));
                req.extensions_mut().insert(slot.clone());
                if let Some(certs) = &client_certs {
                    req.extensions_mut().insert(certs.clone());
                }
                let request = in_flight.start();
                let req = req.map(|b| axum::body::Body::new(MinRateBody::new(b, rate, grace)));
                let response = router.clone().oneshot(req);
                async move {
                    let response = response.await?;
                    Ok::<_, std::convert::Infallible>(response.map(|body| {
                        axum::body::Body::new(InProgress {
                            body,
                            _request: request,
                        })
                    }))
                }
            });
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
                _ = requests.idle(limits.header_read_timeout, limits.keep_alive_timeout) => {
                    tracing::debug!(%peer, "https connection closed: idle");
                }
                _ = conn_shutdown.changed() => {}
            }
        });
    }
    // Upgraded connections see the same shutdown signal; let them record it.
    ws.drain().await;
}
