//! Opening an AMQP connection to IoT Hub or an Event Hubs namespace: TLS on 5671, or
//! TLS plus WebSockets on 443 (optionally through an HTTP CONNECT proxy), then SASL
//! ANONYMOUS (the client authorizes with CBS afterwards, as the Azure SDKs do).
//!
//! TLS is always done here with tokio-rustls and the caller's [`Trust`], directly on
//! the socket, the way Azure expects (what fe2o3's `alt_tls_establishment(true)` would
//! do); fe2o3 then speaks plain AMQP over the encrypted stream.

use std::time::Duration;

use base64::Engine as _;
use fe2o3_amqp::Connection;
use fe2o3_amqp::connection::ConnectionHandle;
use fe2o3_amqp::sasl_profile::SaslProfile;
use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::client::Request;
use tokio_tungstenite::tungstenite::http::{HeaderValue, header};

use super::MessagingError;
use crate::service::proxy::{Proxy, ProxyTarget};
use crate::tls::Trust;
use iothub::amqp_model::{AMQPS_PORT, WEBSOCKET_PORT, WEBSOCKET_SUBPROTOCOL};
use ws_io::WsIo;

/// How AMQP reaches the hub.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AmqpTransport {
    /// AMQP over TLS, port 5671.
    #[default]
    Tcp,
    /// AMQP over WebSockets over TLS, port 443: for networks that block 5671.
    WebSockets,
}

/// How to connect, shared by the telemetry reader, the C2D sender and the
/// service-bound receivers.
#[derive(Clone, Debug)]
pub struct AmqpOptions {
    pub trust: Trust,
    pub transport: AmqpTransport,
    /// Port of the hub's endpoint for the transport; None is Azure's (5671 or 443).
    /// The local hub's ports are in hub.json (`amqp` for Tcp, `https` for WebSockets).
    pub port: Option<u16>,
    /// Used by the WebSocket transport only.
    pub proxy: Proxy,
    /// Limit on TCP connect, proxy tunnel, TLS, WebSocket and AMQP open together.
    pub connect_timeout: Duration,
}

impl Default for AmqpOptions {
    fn default() -> Self {
        AmqpOptions {
            trust: Trust::PlatformRoots,
            transport: AmqpTransport::Tcp,
            port: None,
            proxy: Proxy::FromEnvironment,
            connect_timeout: Duration::from_secs(20),
        }
    }
}

impl AmqpOptions {
    /// The port to dial for the hub itself.
    pub(crate) fn hub_port(&self) -> u16 {
        self.port.unwrap_or(match self.transport {
            AmqpTransport::Tcp => AMQPS_PORT,
            AmqpTransport::WebSockets => WEBSOCKET_PORT,
        })
    }
}

/// Where to connect: `host:port`, and the WebSocket path when the transport uses one.
pub(crate) struct Endpoint<'a> {
    pub host: &'a str,
    pub port: u16,
    pub websocket_path: &'a str,
}

impl Endpoint<'_> {
    fn label(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

/// Opens an AMQP connection (SASL ANONYMOUS) to the endpoint.
pub(crate) async fn open(
    endpoint: &Endpoint<'_>,
    opts: &AmqpOptions,
) -> Result<ConnectionHandle<()>, MessagingError> {
    let label = endpoint.label();
    match tokio::time::timeout(opts.connect_timeout, open_inner(endpoint, opts)).await {
        Ok(r) => r,
        Err(_) => Err(MessagingError::Unreachable {
            endpoint: label,
            reason: format!("no answer within {:?}", opts.connect_timeout),
        }),
    }
}

async fn open_inner(
    endpoint: &Endpoint<'_>,
    opts: &AmqpOptions,
) -> Result<ConnectionHandle<()>, MessagingError> {
    let label = endpoint.label();
    let unreachable = |reason: String| MessagingError::Unreachable {
        endpoint: label.clone(),
        reason,
    };
    let websockets = opts.transport == AmqpTransport::WebSockets;
    let proxy = if websockets {
        opts.proxy.resolve(endpoint.host)?
    } else {
        None
    };
    let tcp = match &proxy {
        Some(p) => tunnel(p, endpoint).await?,
        None => TcpStream::connect((endpoint.host, endpoint.port))
            .await
            .map_err(|e| unreachable(e.to_string()))?,
    };
    let _ = tcp.set_nodelay(true);
    let alpn: &[&[u8]] = if websockets { &[b"http/1.1"] } else { &[] };
    let tls_config = opts.trust.client_config(alpn)?;
    let server_name = ServerName::try_from(endpoint.host.to_string())
        .map_err(|e| unreachable(format!("'{}' is not a host name: {e}", endpoint.host)))?;
    let tls = TlsConnector::from(tls_config)
        .connect(server_name, tcp)
        .await
        .map_err(|e| unreachable(format!("TLS failed: {e}")))?;
    if websockets {
        let url = format!(
            "wss://{}:{}{}",
            endpoint.host, endpoint.port, endpoint.websocket_path
        );
        let request = websocket_request(&url).map_err(|e| unreachable(format!("'{url}' {e}")))?;
        // tungstenite refuses an answer that does not echo the offered subprotocol.
        let (ws, _) = tokio_tungstenite::client_async(request, tls)
            .await
            .map_err(|e| unreachable(format!("the WebSocket upgrade of {url} failed: {e}")))?;
        let ws = WsIo::new(ws);
        amqp_open(ws, endpoint.host, &label).await
    } else {
        amqp_open(tls, endpoint.host, &label).await
    }
}

/// The upgrade request: subprotocol `AMQPWSB10`, as the Azure IoT and Event Hubs
/// SDKs send it (not the OASIS binding's `amqp`, which is all fe2o3-amqp-ws offers).
fn websocket_request(url: &str) -> Result<Request, String> {
    let mut request = url
        .into_client_request()
        .map_err(|e| format!("is not a WebSocket address: {e}"))?;
    request.headers_mut().insert(
        header::SEC_WEBSOCKET_PROTOCOL,
        HeaderValue::from_static(WEBSOCKET_SUBPROTOCOL),
    );
    Ok(request)
}

async fn amqp_open<Io>(
    io: Io,
    host: &str,
    label: &str,
) -> Result<ConnectionHandle<()>, MessagingError>
where
    Io: AsyncRead + AsyncWrite + std::fmt::Debug + Send + Unpin + 'static,
{
    Connection::builder()
        .container_id(format!("hubtui-{}", uuid::Uuid::new_v4()))
        .hostname(host)
        .sasl_profile(SaslProfile::Anonymous)
        .open_with_stream(io)
        .await
        .map_err(|e| MessagingError::Unreachable {
            endpoint: label.to_string(),
            reason: format!("the AMQP handshake failed: {e}"),
        })
}

/// Largest proxy answer header we read.
const MAX_PROXY_RESPONSE: usize = 16 * 1024;

/// Opens a TCP tunnel to the endpoint through an HTTP proxy (CONNECT).
async fn tunnel(proxy: &ProxyTarget, endpoint: &Endpoint<'_>) -> Result<TcpStream, MessagingError> {
    let proxy_label = format!("{}:{}", proxy.host, proxy.port);
    let target = endpoint.label();
    let refused = |reason: String| MessagingError::Proxy {
        proxy: proxy_label.clone(),
        target: target.clone(),
        reason,
    };
    let mut tcp = TcpStream::connect((proxy.host.as_str(), proxy.port))
        .await
        .map_err(|e| refused(e.to_string()))?;
    let mut request = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n");
    if let Some(c) = &proxy.credentials {
        let basic = base64::engine::general_purpose::STANDARD.encode(c.as_bytes());
        request.push_str(&format!("Proxy-Authorization: Basic {basic}\r\n"));
    }
    request.push_str("\r\n");
    tcp.write_all(request.as_bytes())
        .await
        .map_err(|e| refused(e.to_string()))?;
    // Read the answer byte by byte so nothing after its header is consumed.
    let mut head = Vec::with_capacity(256);
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() >= MAX_PROXY_RESPONSE {
            return Err(refused("its answer has no end".into()));
        }
        let n = tcp
            .read(&mut byte)
            .await
            .map_err(|e| refused(e.to_string()))?;
        if n == 0 {
            return Err(refused("it closed the connection".into()));
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head);
    let status_line = head.lines().next().unwrap_or("");
    let status = status_line.split_whitespace().nth(1).unwrap_or("");
    if !status.starts_with('2') {
        return Err(refused(format!("it answered \"{}\"", status_line.trim())));
    }
    Ok(tcp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_upgrade_offers_the_azure_subprotocol() {
        let r = websocket_request("wss://hub.example:443/$iothub/websocket").unwrap();
        assert_eq!(r.uri().path(), "/$iothub/websocket");
        assert_eq!(
            r.headers().get(header::SEC_WEBSOCKET_PROTOCOL).unwrap(),
            "AMQPWSB10"
        );
        assert!(websocket_request("not a url").is_err());
    }

    #[test]
    fn ports_follow_the_transport() {
        let mut o = AmqpOptions::default();
        assert_eq!(o.hub_port(), 5671);
        o.transport = AmqpTransport::WebSockets;
        assert_eq!(o.hub_port(), 443);
        o.port = Some(8443);
        assert_eq!(o.hub_port(), 8443);
    }
}
