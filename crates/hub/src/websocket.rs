//! MQTT and AMQP over WebSockets on the HTTPS port, as Azure IoT Hub serves them
//! on 443: `GET /$iothub/websocket` upgrades to the device MQTT endpoint
//! (subprotocol `mqtt`, any case: the C SDK sends `MQTT`) or to the AMQP endpoint
//! (`AMQPWSB10`, or the OASIS binding's `amqp`); `GET /$servicebus/websocket` is the
//! Event Hubs-compatible endpoint over AMQP. Once upgraded, binary WebSocket
//! messages carry the protocol's byte stream ([`WsIo`]) and the connection runs
//! the same handler as on the TCP port (auth, limits, keep-alive, shutdown).
//!
//! The upgrade needs HTTP/1.1 (the SDKs use it; HTTP/2 is only chosen by clients
//! that offer `h2` in ALPN, and they do not ask for WebSockets).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Version, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use hyper_util::rt::TokioIo;
use rustls_pki_types::CertificateDer;
use tokio::runtime::Handle;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};

use super::admission::SharedSlot;
use super::amqp::{self, AmqpEndpoint};
use super::mqtt::{self, SessionMemory};
use super::rest::ApiError;
use super::state::HubState;
use iothub::amqp_model::{EVENTHUB_WEBSOCKET_PATH, IOTHUB_WEBSOCKET_PATH, WEBSOCKET_SUBPROTOCOL};
use iothub::error::{ErrorCode, ServiceError};
use ws_io::WsIo;

/// Largest WebSocket message accepted from a client. Well above a 256 KiB
/// telemetry packet or AMQP frame, whichever way a client splits its stream.
const MAX_MESSAGE: usize = 4 * 1024 * 1024;
/// How long shutdown waits for WebSocket connections to record their disconnect.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// The client's address, put on each request by the HTTPS server.
#[derive(Clone, Copy, Debug)]
pub struct Peer(pub SocketAddr);

/// The certificate chain the client presented in the HTTPS connection's TLS handshake,
/// leaf first: the credential of an X.509 device connecting over MQTT over WebSockets.
#[derive(Clone, Debug)]
pub struct ClientCertificates(pub Arc<Vec<CertificateDer<'static>>>);

/// What the WebSocket endpoints hand their connections to.
pub struct WsEndpoints {
    state: Arc<HubState>,
    memory: Arc<SessionMemory>,
    /// Where MQTT sessions run once connected (see `mqtt::serve`).
    ingest: Handle,
    amqp: Arc<AmqpEndpoint>,
    shutdown: watch::Receiver<bool>,
    connections: Mutex<JoinSet<()>>,
}

impl WsEndpoints {
    pub fn new(
        state: Arc<HubState>,
        memory: Arc<SessionMemory>,
        ingest: Handle,
        amqp: AmqpEndpoint,
        shutdown: watch::Receiver<bool>,
    ) -> WsEndpoints {
        WsEndpoints {
            state,
            memory,
            ingest,
            amqp: Arc::new(amqp),
            shutdown,
            connections: Mutex::new(JoinSet::new()),
        }
    }

    fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        let mut set = self.connections.lock().unwrap_or_else(|p| p.into_inner());
        while set.try_join_next().is_some() {}
        set.spawn(task);
    }

    /// Waits (a bounded time) for the upgraded connections to end after shutdown;
    /// the ones still running then are aborted.
    pub async fn drain(&self) {
        let mut set =
            std::mem::take(&mut *self.connections.lock().unwrap_or_else(|p| p.into_inner()));
        let _ = tokio::time::timeout(DRAIN_TIMEOUT, async {
            while set.join_next().await.is_some() {}
        })
        .await;
    }
}

/// The routes that upgrade to WebSockets; merged into the REST router.
/// Each path is served with and without a trailing slash (uamqp asks for
/// `/$servicebus/websocket/`), and with `$` percent-encoded, as clients send either.
pub fn router(endpoints: Arc<WsEndpoints>) -> Router {
    let mut router = Router::new();
    for path in [
        IOTHUB_WEBSOCKET_PATH,
        "/%24iothub/websocket",
        EVENTHUB_WEBSOCKET_PATH,
        "/%24servicebus/websocket",
    ] {
        let handler = if path.contains("iothub") {
            any(iothub)
        } else {
            any(servicebus)
        };
        router = router
            .route(path, handler.clone())
            .route(&format!("{path}/"), handler);
    }
    router.with_state(endpoints)
}

/// Which handler an upgraded connection goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    Mqtt,
    Amqp,
}

/// Picks the first subprotocol the client offers that the path serves, and the
/// exact token to echo back (clients compare it with what they sent).
pub fn choose_subprotocol(headers: &HeaderMap, mqtt_allowed: bool) -> Option<(Protocol, String)> {
    headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .find_map(|p| {
            let protocol = if mqtt_allowed && p.eq_ignore_ascii_case("mqtt") {
                Protocol::Mqtt
            } else if p.eq_ignore_ascii_case(WEBSOCKET_SUBPROTOCOL)
                || p.eq_ignore_ascii_case("amqp")
            {
                Protocol::Amqp
            } else {
                return None;
            };
            Some((protocol, p.to_string()))
        })
}

async fn iothub(State(ep): State<Arc<WsEndpoints>>, req: Request) -> Response {
    upgrade(ep, req, true)
}

async fn servicebus(State(ep): State<Arc<WsEndpoints>>, req: Request) -> Response {
    upgrade(ep, req, false)
}

fn bad_request(message: impl Into<String>) -> Response {
    ApiError(ServiceError::new(ErrorCode::ArgumentInvalid, message)).into_response()
}

fn has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

fn upgrade(ep: Arc<WsEndpoints>, mut req: Request, mqtt_allowed: bool) -> Response {
    let expected = if mqtt_allowed {
        "'mqtt' or 'AMQPWSB10'"
    } else {
        "'AMQPWSB10'"
    };
    if req.method() != Method::GET {
        return bad_request(format!(
            "{} {} is a WebSocket endpoint: connect with GET and Upgrade: websocket.",
            req.method(),
            req.uri().path()
        ));
    }
    if req.version() != Version::HTTP_11 {
        return bad_request("WebSocket upgrades need HTTP/1.1.");
    }
    let headers = req.headers();
    if !has_token(headers, header::UPGRADE, "websocket")
        || !has_token(headers, header::CONNECTION, "upgrade")
    {
        return bad_request(format!(
            "{} is a WebSocket endpoint: send Upgrade: websocket with subprotocol {expected}.",
            req.uri().path()
        ));
    }
    if headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .is_none_or(|v| v.as_bytes() != b"13")
    {
        let mut r = bad_request("Only WebSocket version 13 is supported.");
        r.headers_mut().insert(
            header::SEC_WEBSOCKET_VERSION,
            HeaderValue::from_static("13"),
        );
        return r;
    }
    let Some(key) = headers.get(header::SEC_WEBSOCKET_KEY) else {
        return bad_request("The Sec-WebSocket-Key header is missing.");
    };
    let accept = derive_accept_key(key.as_bytes());
    let Some((protocol, token)) = choose_subprotocol(headers, mqtt_allowed) else {
        let offered: Vec<&str> = headers
            .get_all(header::SEC_WEBSOCKET_PROTOCOL)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        return bad_request(format!(
            "Unsupported WebSocket subprotocol '{}' on {}; expected {expected}.",
            offered.join(", "),
            req.uri().path()
        ));
    };
    let Some(on_upgrade) = req.extensions_mut().remove::<hyper::upgrade::OnUpgrade>() else {
        return bad_request("This connection cannot be upgraded to a WebSocket.");
    };
    let peer = req
        .extensions()
        .get::<Peer>()
        .map_or(SocketAddr::from(([0, 0, 0, 0], 0)), |p| p.0);
    // The upgraded connection keeps the HTTPS connection's place in the connection limits.
    let place = req.extensions_mut().remove::<SharedSlot>();
    let client_certs = req
        .extensions_mut()
        .remove::<ClientCertificates>()
        .map(|c| c.0.as_ref().clone());

    let task_ep = ep.clone();
    ep.spawn(async move {
        let _place = place;
        let upgraded = match on_upgrade.await {
            Ok(u) => u,
            Err(e) => {
                tracing::debug!(%peer, error = %e, "websocket upgrade failed");
                return;
            }
        };
        let config = WebSocketConfig::default()
            .max_message_size(Some(MAX_MESSAGE))
            .max_frame_size(Some(MAX_MESSAGE));
        let ws =
            WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, Some(config))
                .await;
        let io = WsIo::new(ws);
        let ep = task_ep;
        let shutdown = ep.shutdown.clone();
        match protocol {
            Protocol::Mqtt => {
                let (state, memory, ingest) =
                    (ep.state.clone(), ep.memory.clone(), ep.ingest.clone());
                mqtt::serve_stream(io, peer, state, memory, ingest, client_certs, shutdown).await
            }
            Protocol::Amqp => {
                amqp::serve_stream(io, peer, ep.state.clone(), ep.amqp.clone(), shutdown).await
            }
        }
    });

    let mut resp = StatusCode::SWITCHING_PROTOCOLS.into_response();
    let h = resp.headers_mut();
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    if let Ok(v) = HeaderValue::from_str(&accept) {
        h.insert(header::SEC_WEBSOCKET_ACCEPT, v);
    }
    if let Ok(v) = HeaderValue::from_str(&token) {
        h.insert(header::SEC_WEBSOCKET_PROTOCOL, v);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offered(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(
                header::SEC_WEBSOCKET_PROTOCOL,
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn subprotocols_are_matched_case_insensitively_and_echoed_as_sent() {
        assert_eq!(
            choose_subprotocol(&offered(&["MQTT"]), true),
            Some((Protocol::Mqtt, "MQTT".into()))
        );
        assert_eq!(
            choose_subprotocol(&offered(&["chat, mqtt"]), true),
            Some((Protocol::Mqtt, "mqtt".into()))
        );
        assert_eq!(
            choose_subprotocol(&offered(&["x", "AMQPWSB10"]), true),
            Some((Protocol::Amqp, "AMQPWSB10".into()))
        );
        assert_eq!(
            choose_subprotocol(&offered(&["amqp"]), false),
            Some((Protocol::Amqp, "amqp".into()))
        );
        assert_eq!(choose_subprotocol(&offered(&["mqtt"]), false), None);
        assert_eq!(choose_subprotocol(&offered(&["stomp"]), true), None);
        assert_eq!(choose_subprotocol(&HeaderMap::new(), true), None);
    }
}
