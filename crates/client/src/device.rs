//! A device or module connection to IoT Hub over MQTT 3.1.1 with TLS, directly (port 8883)
//! or over WebSockets (port 443, through an HTTP proxy if one is configured).
//!
//! [`DeviceClient::connect`] spawns one tokio task that owns the rumqttc `EventLoop`: it
//! connects, subscribes to twin responses, desired patches, methods and (for devices) C2D on
//! every (re)connect, turns what the hub publishes into [`DeviceEvent`]s on an unbounded channel,
//! reconnects with exponential backoff, and renews the SAS token before it expires and before
//! every reconnect. The API methods publish from the caller's task, never from the one polling
//! the event loop (rumqttc deadlocks otherwise), and the task never waits on the event consumer.

mod backoff;
mod credentials;
mod inbound;
mod requests;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rumqttc::{
    AsyncClient, ConnectionError, Disconnect, Event, EventLoop, Incoming, MqttOptions, Outgoing,
    ProxyAuth, ProxyType, QoS, Request, Subscribe, SubscribeFilter, SubscribeReasonCode,
    TlsConfiguration, Transport,
};
use serde_json::{Map, Value};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

pub use super::client_certificate::{ClientCertificate, ClientCertificateError};
pub use super::proxy::Proxy;
pub use super::tls::Trust;
pub use backoff::Backoff;
pub use credentials::API_VERSION;
use credentials::Credentials;
use inbound::{describe, error_message, is_refusal, route_publish};
use requests::{PendingRequests, TwinReply, WaiterGuard};

use iothub::connection_string::DeviceConnectionString;
use iothub::property_bag::PropertyBag;
use iothub::sas::SasError;
use iothub::topic::{DevicePublish, Subscription};

/// IoT Hub's MQTT over TLS port.
pub const DEFAULT_PORT: u16 = 8883;
/// IoT Hub's port for MQTT over WebSockets (HTTPS).
pub const WEBSOCKET_PORT: u16 = 443;
/// The path of IoT Hub's MQTT over WebSockets endpoint.
const WEBSOCKET_PATH: &str = "/$iothub/websocket";
/// The largest device-to-cloud message IoT Hub accepts.
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024;
/// Largest MQTT packet either way: a full D2C message or method payload plus topic.
const MAX_PACKET_BYTES: usize = 512 * 1024;
/// Requests queued towards the event loop before `send_telemetry` reports a full queue.
const REQUEST_QUEUE: usize = 128;
/// How long `close` waits for the DISCONNECT to go out.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// What the connection task reports.
#[derive(Clone, Debug, PartialEq)]
pub enum DeviceEvent {
    /// CONNACK accepted; subscriptions are on their way.
    Connected,
    /// The connection dropped or could not be made; the task retries after a backoff.
    /// `refused`: the hub refused the credentials (CONNACK not authorized).
    Disconnected { reason: String, refused: bool },
    /// A desired-properties patch (`$version` removed from `patch`, given as `version`).
    DesiredPatch {
        version: u64,
        patch: Map<String, Value>,
    },
    /// A direct method call; answer it with [`DeviceClient::respond_method`] and the same `rid`.
    MethodRequest {
        name: String,
        rid: String,
        payload: Value,
    },
    /// A cloud-to-device message (already acknowledged, which completes it on the hub).
    C2d {
        properties: PropertyBag,
        body: Vec<u8>,
    },
}

/// How MQTT reaches the hub.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum MqttTransport {
    /// MQTT over TLS, usually on port 8883.
    #[default]
    Tls,
    /// MQTT over WebSockets over TLS (`wss://host:port/$iothub/websocket`, subprotocol
    /// `mqtt`), usually on port 443, for sites that block 8883.
    WebSockets { proxy: ProxyChoice },
}

/// Which proxy a WebSocket connection goes through.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum ProxyChoice {
    /// None: connect directly.
    Direct,
    /// The one `HTTPS_PROXY` (or `ALL_PROXY`) names, unless `NO_PROXY` names the hub.
    #[default]
    FromEnvironment,
    Use(Proxy),
}

/// How to connect; `Default` is Azure: MQTT over TLS on port 8883, platform roots.
#[derive(Clone, Debug)]
pub struct DeviceClientOptions {
    pub port: u16,
    pub transport: MqttTransport,
    pub trust: Trust,
    /// Connect to this host instead of the connection string's (GatewayHostName or HostName).
    /// TLS checks the certificate against it; tokens and the username keep the hub's name.
    pub connect_host: Option<String>,
    pub keep_alive: Duration,
    /// Lifetime of minted SAS tokens; they are renewed before they expire.
    pub token_lifetime: Duration,
    /// How long `get_twin` and `patch_reported` wait for the hub's answer.
    pub request_timeout: Duration,
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    /// IoT Plug and Play model id announced in the username.
    pub model_id: Option<String>,
    /// The X.509 certificate and key of an `x509=true` connection string.
    pub client_certificate: Option<ClientCertificate>,
}

impl Default for DeviceClientOptions {
    fn default() -> Self {
        DeviceClientOptions {
            port: DEFAULT_PORT,
            transport: MqttTransport::Tls,
            trust: Trust::PlatformRoots,
            connect_host: None,
            keep_alive: Duration::from_secs(60),
            token_lifetime: Duration::from_secs(3600),
            request_timeout: Duration::from_secs(30),
            backoff_initial: Backoff::DEFAULT_INITIAL,
            backoff_max: Backoff::DEFAULT_MAX,
            model_id: None,
            client_certificate: None,
        }
    }
}

/// Why a device operation failed.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    #[error(
        "the connection string says x509=true but no client certificate was given; give the device's certificate and key"
    )]
    X509NeedsCertificate,
    #[error(
        "a client certificate was given with a SharedAccessKey or SharedAccessSignature connection string; use x509=true in the connection string, or drop the certificate"
    )]
    MixedAuthentication,
    #[error("cannot sign a token with the device key: {0}")]
    Sas(#[from] SasError),
    #[error(transparent)]
    Tls(#[from] super::tls::TlsError),
    #[error(transparent)]
    Proxy(#[from] super::proxy::ProxyError),
    #[error("the message is {size} bytes, more than the {max} bytes IoT Hub accepts")]
    MessageTooLarge { size: usize, max: usize },
    #[error("the outgoing queue is full: the connection is down or the hub is slow")]
    QueueFull,
    #[error("the device connection is closed")]
    Closed,
    #[error("the connection dropped before the hub answered the {what}")]
    ConnectionLost { what: &'static str },
    #[error("the hub did not answer the {what} within {after:?}")]
    Timeout { what: &'static str, after: Duration },
    #[error("the hub refused the {what} with status {status}: {message}")]
    Rejected {
        what: &'static str,
        status: u16,
        message: String,
    },
    #[error("the hub's answer to the {what} is unreadable: {reason}")]
    BadResponse { what: &'static str, reason: String },
}

/// A live device or module connection. Dropping it stops the connection task.
pub struct DeviceClient {
    mqtt: AsyncClient,
    pending: Arc<PendingRequests>,
    device_id: String,
    module_id: Option<String>,
    request_timeout: Duration,
    connected: Arc<AtomicBool>,
    closed: Arc<AtomicBool>,
    shutdown: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl DeviceClient {
    /// Validates the configuration and starts the connection task (call inside a tokio
    /// runtime). Returns at once; `Connected` or `Disconnected` on the channel tells how it went.
    pub fn connect(
        cs: &DeviceConnectionString,
        opts: DeviceClientOptions,
    ) -> Result<(DeviceClient, mpsc::UnboundedReceiver<DeviceEvent>), DeviceError> {
        let creds = Credentials::new(
            cs,
            opts.model_id.as_deref(),
            opts.token_lifetime,
            opts.client_certificate.is_some(),
        )?;
        let tls = opts
            .trust
            .client_config_with_identity(&[], opts.client_certificate.as_ref())?;
        let host = opts
            .connect_host
            .clone()
            .or_else(|| cs.gateway_host_name.clone())
            .unwrap_or_else(|| cs.host_name.clone());
        let (password, expiry) = creds.password(now_unix())?;
        let tls = TlsConfiguration::Rustls(tls);
        let (broker, transport, endpoint, proxy) = match &opts.transport {
            MqttTransport::Tls => (
                host.clone(),
                Transport::Tls(tls),
                format!("{host}:{}", opts.port),
                None,
            ),
            MqttTransport::WebSockets { proxy } => {
                let proxy = match proxy {
                    ProxyChoice::Direct => None,
                    ProxyChoice::FromEnvironment => Proxy::from_env(&host)?,
                    ProxyChoice::Use(p) => Some(p.clone()),
                };
                // rumqttc takes the host and port of a WebSocket connection from its URL.
                let url_host = if host.contains(':') {
                    format!("[{host}]")
                } else {
                    host.clone()
                };
                let url = format!("wss://{url_host}:{}{WEBSOCKET_PATH}", opts.port);
                let endpoint = match &proxy {
                    Some(p) => format!("{url} through the proxy {}:{}", p.host, p.port),
                    None => url.clone(),
                };
                (url, Transport::Wss(tls), endpoint, proxy)
            }
        };

        let mut mqtt_opts = MqttOptions::new(creds.client_id.clone(), broker, opts.port);
        mqtt_opts
            .set_credentials(creds.username.clone(), password)
            .set_keep_alive(opts.keep_alive)
            // Like the Azure SDKs: the hub keeps C2D and subscriptions across reconnects.
            .set_clean_session(false)
            .set_max_packet_size(MAX_PACKET_BYTES, MAX_PACKET_BYTES)
            .set_transport(transport);
        if let Some(p) = &proxy {
            mqtt_opts.set_proxy(rumqttc_proxy(p)?);
        }
        let (mqtt, eventloop) = AsyncClient::new(mqtt_opts, REQUEST_QUEUE);

        let mut filters = vec![
            Subscription::TwinResponses,
            Subscription::DesiredPatches,
            Subscription::Methods,
        ];
        // C2D is device only; a module would be refused the devicebound filter.
        if cs.module_id.is_none() {
            filters.push(Subscription::C2d {
                device_id: cs.device_id.clone(),
            });
        }

        let (events, events_rx) = mpsc::unbounded_channel();
        let (shutdown, shutdown_rx) = watch::channel(false);
        let pending = Arc::new(PendingRequests::new());
        let connected = Arc::new(AtomicBool::new(false));
        let closed = Arc::new(AtomicBool::new(false));
        let conn = Connection {
            eventloop,
            endpoint,
            creds,
            expiry,
            filters: filters.iter().map(Subscription::to_filter).collect(),
            backoff: Backoff::new(opts.backoff_initial, opts.backoff_max),
            events,
            pending: pending.clone(),
            connected: connected.clone(),
            shutdown: shutdown_rx,
        };
        let task_closed = closed.clone();
        let task = tokio::spawn(async move {
            conn.run().await;
            task_closed.store(true, Ordering::SeqCst);
        });
        Ok((
            DeviceClient {
                mqtt,
                pending,
                device_id: cs.device_id.clone(),
                module_id: cs.module_id.clone(),
                request_timeout: opts.request_timeout,
                connected,
                closed,
                shutdown,
                task: Some(task),
            },
            events_rx,
        ))
    }

    pub fn device_id(&self) -> &str {
        &self.device_id
    }

    pub fn module_id(&self) -> Option<&str> {
        self.module_id.as_deref()
    }

    /// Whether the last CONNACK was accepted and the connection has not dropped since.
    pub fn is_connected(&self) -> bool {
        self.connected.load(Ordering::SeqCst)
    }

    /// Queues one device-to-cloud message (QoS 1). Never waits: a full queue is `QueueFull`.
    pub fn send_telemetry(
        &self,
        body: impl Into<Vec<u8>>,
        properties: PropertyBag,
    ) -> Result<(), DeviceError> {
        let body = body.into();
        if body.len() > MAX_MESSAGE_BYTES {
            return Err(DeviceError::MessageTooLarge {
                size: body.len(),
                max: MAX_MESSAGE_BYTES,
            });
        }
        let topic = DevicePublish::Telemetry {
            device_id: self.device_id.clone(),
            module_id: self.module_id.clone(),
            properties,
        }
        .to_topic();
        self.mqtt
            .try_publish(topic, QoS::AtLeastOnce, false, body)
            .map_err(|_| self.queue_error())
    }

    /// The device's view of its twin: `{"desired":{..,"$version":n},"reported":{..}}`.
    pub async fn get_twin(&self) -> Result<Value, DeviceError> {
        const WHAT: &str = "twin request";
        let reply = self
            .twin_request(WHAT, |rid| DevicePublish::TwinGet { rid }, Vec::new())
            .await?;
        serde_json::from_slice(&reply.body).map_err(|e| DeviceError::BadResponse {
            what: WHAT,
            reason: e.to_string(),
        })
    }

    /// Patches reported properties (members set to null are deleted); returns the new
    /// reported `$version`.
    pub async fn patch_reported(&self, patch: Map<String, Value>) -> Result<u64, DeviceError> {
        const WHAT: &str = "reported properties patch";
        let body = Value::Object(patch).to_string().into_bytes();
        let reply = self
            .twin_request(WHAT, |rid| DevicePublish::TwinPatchReported { rid }, body)
            .await?;
        reply.version.ok_or_else(|| DeviceError::BadResponse {
            what: WHAT,
            reason: "it has no $version".into(),
        })
    }

    /// Answers a direct method call received as `DeviceEvent::MethodRequest`.
    pub async fn respond_method(
        &self,
        rid: &str,
        status: i32,
        payload: &Value,
    ) -> Result<(), DeviceError> {
        let topic = DevicePublish::MethodResponse {
            status,
            rid: rid.to_owned(),
        }
        .to_topic();
        self.mqtt
            .publish(topic, QoS::AtLeastOnce, false, payload.to_string())
            .await
            .map_err(|_| DeviceError::Closed)
    }

    /// Sends DISCONNECT (when connected) and stops the connection task.
    pub async fn close(mut self) {
        let _ = self.shutdown.send(true);
        if let Some(mut task) = self.task.take()
            && tokio::time::timeout(CLOSE_GRACE + Duration::from_secs(1), &mut task)
                .await
                .is_err()
        {
            task.abort();
        }
    }

    async fn twin_request(
        &self,
        what: &'static str,
        topic: impl FnOnce(String) -> DevicePublish,
        body: Vec<u8>,
    ) -> Result<TwinReply, DeviceError> {
        let (rid, rx) = self.pending.register();
        let _guard = WaiterGuard {
            pending: &self.pending,
            rid: rid.clone(),
        };
        let topic = topic(rid).to_topic();
        let exchange = async {
            self.mqtt
                .publish(topic, QoS::AtLeastOnce, false, body)
                .await
                .map_err(|_| DeviceError::Closed)?;
            rx.await.map_err(|_| self.lost_error(what))
        };
        let reply = tokio::time::timeout(self.request_timeout, exchange)
            .await
            .map_err(|_| DeviceError::Timeout {
                what,
                after: self.request_timeout,
            })??;
        if !(200..300).contains(&reply.status) {
            return Err(DeviceError::Rejected {
                what,
                status: reply.status,
                message: error_message(&reply.body),
            });
        }
        Ok(reply)
    }

    /// Why a request's waiter went away without an answer.
    fn lost_error(&self, what: &'static str) -> DeviceError {
        if self.closed.load(Ordering::SeqCst) {
            DeviceError::Closed
        } else {
            DeviceError::ConnectionLost { what }
        }
    }

    fn queue_error(&self) -> DeviceError {
        if self.closed.load(Ordering::SeqCst) {
            DeviceError::Closed
        } else {
            DeviceError::QueueFull
        }
    }
}

impl Drop for DeviceClient {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}

/// The proxy as rumqttc takes it; an `https://` proxy is reached over TLS with the
/// platform's roots.
fn rumqttc_proxy(p: &Proxy) -> Result<rumqttc::Proxy, DeviceError> {
    let ty = if p.tls {
        ProxyType::Https(TlsConfiguration::Rustls(
            Trust::PlatformRoots.client_config(&[])?,
        ))
    } else {
        ProxyType::Http
    };
    let auth = match &p.credentials {
        Some((username, password)) => ProxyAuth::Basic {
            username: username.clone(),
            password: password.clone(),
        },
        None => ProxyAuth::None,
    };
    Ok(rumqttc::Proxy {
        ty,
        auth,
        addr: p.host.clone(),
        port: p.port,
    })
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The task that owns the event loop.
struct Connection {
    eventloop: EventLoop,
    endpoint: String,
    creds: Credentials,
    /// Expiry of the token in `eventloop.mqtt_options`.
    expiry: Option<u64>,
    filters: Vec<String>,
    backoff: Backoff,
    events: mpsc::UnboundedSender<DeviceEvent>,
    pending: Arc<PendingRequests>,
    connected: Arc<AtomicBool>,
    shutdown: watch::Receiver<bool>,
}

impl Connection {
    async fn run(mut self) {
        loop {
            if *self.shutdown.borrow() {
                break;
            }
            // Cancelling poll() loses at most a half-written packet, and only on shutdown:
            // token renewal is checked between polls, not by racing them.
            let polled = tokio::select! {
                biased;
                _ = self.shutdown.changed() => break,
                polled = self.eventloop.poll() => polled,
            };
            match polled {
                Ok(event) => {
                    self.handle(event);
                    self.renew_if_due();
                }
                Err(e) => {
                    if !self.retry_after(&e).await {
                        break;
                    }
                }
            }
        }
        self.disconnect().await;
    }

    fn handle(&mut self, event: Event) {
        match event {
            Event::Incoming(Incoming::ConnAck(_)) => {
                self.backoff.reset();
                self.set_connected(true);
                let filters = self
                    .filters
                    .iter()
                    .map(|f| SubscribeFilter::new(f.clone(), QoS::AtLeastOnce));
                // Straight into the event loop's own queue: ahead of anything replayed, and
                // never blocked by a full request channel.
                self.eventloop
                    .pending
                    .push_front(Request::Subscribe(Subscribe::new_many(filters)));
                self.emit(DeviceEvent::Connected);
            }
            Event::Incoming(Incoming::Publish(p)) => {
                if let Some(ev) = route_publish(&p.topic, &p.payload, &self.pending) {
                    self.emit(ev);
                }
            }
            Event::Incoming(Incoming::SubAck(ack))
                if ack.return_codes.contains(&SubscribeReasonCode::Failure) =>
            {
                tracing::warn!(codes = ?ack.return_codes, "the hub refused a subscription");
            }
            _ => {}
        }
    }

    /// After a failed poll: report, wait the backoff, renew the token. False on shutdown.
    async fn retry_after(&mut self, e: &ConnectionError) -> bool {
        let reason = describe(e, &self.endpoint, self.creds.auth_kind());
        let refused = is_refusal(e);
        // Answers to requests sent on the lost connection will not come: their callers
        // hear it now rather than at their timeout.
        self.pending.fail_all();
        let first_failure = self.connected.load(Ordering::SeqCst) || self.backoff.attempts() == 0;
        self.set_connected(false);
        let delay = self.backoff.next_delay();
        // One line per outage at info; the retries of a long one at debug.
        if first_failure {
            tracing::info!(endpoint = %self.endpoint, %reason, retry_in = ?delay, "device disconnected");
        } else {
            tracing::debug!(endpoint = %self.endpoint, %reason, retry_in = ?delay, "reconnect failed");
        }
        self.emit(DeviceEvent::Disconnected { reason, refused });
        tokio::select! {
            biased;
            _ = self.shutdown.changed() => return false,
            _ = tokio::time::sleep(delay) => {}
        }
        self.renew_token();
        true
    }

    /// Reconnects with a fresh token once the current one nears expiry (the hub drops a
    /// connection whose token expires).
    fn renew_if_due(&mut self) {
        let due = self
            .expiry
            .and_then(|e| self.creds.renew_at(e))
            .is_some_and(|at| now_unix() >= at);
        if due && self.connected.load(Ordering::SeqCst) {
            self.renew_token();
            self.eventloop.clean();
            self.set_connected(false);
            self.emit(DeviceEvent::Disconnected {
                reason: "renewing the SAS token".into(),
                refused: false,
            });
        }
    }

    fn renew_token(&mut self) {
        match self.creds.password(now_unix()) {
            Ok((password, expiry)) => {
                self.eventloop
                    .mqtt_options
                    .set_credentials(self.creds.username.clone(), password);
                self.expiry = expiry;
            }
            // The key was checked at start, so this cannot happen; keep the old token.
            Err(e) => tracing::error!(error = %e, "cannot renew the SAS token"),
        }
    }

    /// Sends DISCONNECT if connected, giving the event loop a moment to flush it.
    async fn disconnect(&mut self) {
        if self.connected.load(Ordering::SeqCst) {
            self.eventloop
                .pending
                .push_front(Request::Disconnect(Disconnect));
            let _ = tokio::time::timeout(CLOSE_GRACE, async {
                loop {
                    match self.eventloop.poll().await {
                        Ok(Event::Outgoing(Outgoing::Disconnect)) | Err(_) => break,
                        Ok(_) => {}
                    }
                }
            })
            .await;
        }
        self.set_connected(false);
    }

    fn set_connected(&self, up: bool) {
        self.connected.store(up, Ordering::SeqCst);
    }

    fn emit(&self, ev: DeviceEvent) {
        // Nobody listening is fine: a caller may only publish.
        let _ = self.events.send(ev);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hub::tls::HubCertificates;

    /// With paused time: a listener that accepts TCP but never answers makes every attempt
    /// time out after rumqttc's 5 s connection timeout; between attempts the client waits
    /// 1, 2, 4, 8, 16, 30, 30 s (±20 % jitter).
    #[tokio::test(start_paused = true)]
    async fn reconnect_waits_the_backoff_schedule() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let dir = tempfile::tempdir().unwrap();
        hub::install_crypto_provider();
        let ca = HubCertificates::load_or_create(dir.path(), &[])
            .unwrap()
            .ca_pem()
            .unwrap();
        let opts = DeviceClientOptions {
            port,
            trust: Trust::CaPem(ca),
            connect_host: Some("127.0.0.1".into()),
            ..DeviceClientOptions::default()
        };
        let cs = DeviceConnectionString::parse(
            "HostName=localhost;DeviceId=d5;SharedAccessKey=AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
        )
        .unwrap();
        let (client, mut events) = DeviceClient::connect(&cs, opts).unwrap();
        let mut at = Vec::new();
        while at.len() < 8 {
            let ev = events.recv().await.unwrap();
            let DeviceEvent::Disconnected { reason, .. } = ev else {
                panic!("{ev:?}")
            };
            assert_eq!(reason, format!("timed out connecting to 127.0.0.1:{port}"));
            at.push(tokio::time::Instant::now());
        }
        let bases = [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0];
        for (i, base) in bases.iter().enumerate() {
            let waited = (at[i + 1] - at[i]).as_secs_f64() - 5.0;
            assert!(
                waited >= base * 0.8 - 0.01 && waited <= (base * 1.2f64).min(30.0) + 0.01,
                "wait {i} was {waited:.2} s, expected about {base} s"
            );
        }
        client.close().await;
    }
}
