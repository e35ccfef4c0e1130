//! The local IoT Hub: MQTT, HTTPS (REST, MQTT and AMQP over WebSockets) and AMQP
//! servers over one persistent state. Uses `iothub` only, never `client`, `app` or `ui`.

pub mod admission;
pub mod amqp;
pub mod blob;
pub mod c2d;
pub mod c2d_lock;
pub mod device_https;
pub mod dps;
pub mod file_upload;
pub mod fsutil;
pub mod https;
pub mod info;
pub mod limits;
pub mod listen;
pub mod mqtt;
pub mod policies;
pub mod registry;
pub mod rest;
pub mod service_queues;
pub mod sessions;
pub mod state;
pub mod store;
pub mod telemetry;
pub mod telemetry_writer;
pub mod tls;
pub mod websocket;
pub mod x509;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use store::ServiceQueue;

pub use info::HubInfo;
pub use limits::ConnectionLimits;
pub use state::{HubSettings, HubState};

/// Installs the process-wide rustls crypto provider once. Both ring and aws-lc-rs
/// may be compiled in through dependencies; without an explicit choice the first
/// TLS handshake panics.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// How to run a hub. Ports of 0 pick any free port.
#[derive(Clone, Debug)]
pub struct HubOptions {
    pub data_dir: PathBuf,
    pub bind: IpAddr,
    pub mqtt_port: u16,
    pub https_port: u16,
    /// AMQP over TLS: the service side and the Event Hubs-compatible endpoint.
    pub amqp_port: u16,
    pub host_name: String,
    pub settings: HubSettings,
    pub limits: ConnectionLimits,
    /// What the blob store accepts (Azure's limits by default).
    pub blob_limits: blob::BlobLimits,
}

impl HubOptions {
    pub fn new(data_dir: PathBuf) -> HubOptions {
        HubOptions {
            data_dir,
            bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
            mqtt_port: 8883,
            https_port: 443,
            amqp_port: 5671,
            host_name: "localhost".to_string(),
            settings: HubSettings::default(),
            limits: ConnectionLimits::default(),
            blob_limits: blob::BlobLimits::default(),
        }
    }

    /// Options for tests and the embedded explorer: loopback, free ports.
    pub fn ephemeral(data_dir: PathBuf) -> HubOptions {
        HubOptions {
            mqtt_port: 0,
            https_port: 0,
            amqp_port: 0,
            ..HubOptions::new(data_dir)
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum HubError {
    #[error("cannot create the data directory {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "cannot listen on {addr} for {what}: {source}; choose another port with {flag} (0 picks a free one)"
    )]
    Bind {
        what: &'static str,
        flag: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error(transparent)]
    Blobs(#[from] blob::BlobStoreError),
    #[error("cannot start the hub's ingest threads: {0}")]
    Runtime(std::io::Error),
    #[error("cannot write {path}: {source}")]
    Info {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// A hub that is serving. Dropping it (or calling `shutdown`) stops every endpoint.
pub struct RunningHub {
    pub info: HubInfo,
    pub state: Arc<HubState>,
    pub ca_pem: String,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    /// Runs connected MQTT sessions; dropped last, after the tasks that await them.
    _ingest: IngestRuntime,
}

impl RunningHub {
    /// Stops accepting, closes connections and waits for the endpoint tasks to end.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        for t in self.tasks.drain(..) {
            let _ = t.await;
        }
    }
}

impl Drop for RunningHub {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
        for t in &self.tasks {
            t.abort();
        }
    }
}

async fn bind(
    ip: IpAddr,
    port: u16,
    what: &'static str,
    flag: &'static str,
) -> Result<TcpListener, HubError> {
    let addr = SocketAddr::new(ip, port);
    TcpListener::bind(addr)
        .await
        .map_err(|source| HubError::Bind {
            what,
            flag,
            addr,
            source,
        })
}

/// Starts the hub: opens (or creates) its state in the data dir, binds every port,
/// then writes hub.json, so that a reader of hub.json can connect at once.
pub async fn start(opts: HubOptions) -> Result<RunningHub, HubError> {
    install_crypto_provider();
    let descriptors = limits::raise_descriptor_limit();
    let limits_for = |listener| match descriptors {
        Some(d) => opts.limits.clone().within_descriptors(d, listener),
        None => opts.limits.clone(),
    };
    std::fs::create_dir_all(&opts.data_dir).map_err(|source| HubError::DataDir {
        path: opts.data_dir.clone(),
        source,
    })?;
    let extra_names = if opts.host_name != "localhost" {
        vec![opts.host_name.clone()]
    } else {
        Vec::new()
    };
    let certs = tls::HubCertificates::load_or_create(&opts.data_dir, &extra_names)?;
    let ca_pem = certs.ca_pem()?;
    let store = store::Store::open(&opts.data_dir.join("hub.db"))?;
    let state = HubState::open(store, opts.host_name.clone(), opts.settings.clone())?;
    let blobs = Arc::new(blob::BlobService::open(
        state.store.clone(),
        &opts.data_dir,
        opts.blob_limits.clone(),
    )?);

    let mqtt_listener = bind(opts.bind, opts.mqtt_port, "MQTT", "--mqtt-port").await?;
    let https_listener = bind(opts.bind, opts.https_port, "HTTPS", "--https-port").await?;
    let amqp_listener = bind(opts.bind, opts.amqp_port, "AMQP", "--amqp-port").await?;
    let amqp_port = amqp_listener.local_addr().map(|a| a.port()).unwrap_or(0);
    let ports = info::Ports {
        mqtt: mqtt_listener.local_addr().map(|a| a.port()).unwrap_or(0),
        amqp: Some(amqp_port),
        https: https_listener.local_addr().map(|a| a.port()).unwrap_or(0),
    };
    let ports_https = ports.https;
    let amqp_endpoint = amqp::AmqpEndpoint::new(&state, amqp_port);
    let ingest = IngestRuntime::start()?;

    let (shutdown, shutdown_rx) = watch::channel(false);
    let mqtt_tls = certs.server_config_with_client_certs(&[b"mqtt"])?;
    // Client certificates on HTTPS too: X.509 devices use them over MQTT over WebSockets.
    let https_tls = certs.server_config_with_client_certs(&[b"h2", b"http/1.1"])?;
    let amqp_tls = certs.server_config(&[])?;
    // Persistent MQTT sessions, shared by MQTT over TLS and over WebSockets.
    let sessions = Arc::new(mqtt::SessionMemory::new(state.clone()));
    let ws = Arc::new(websocket::WsEndpoints::new(
        state.clone(),
        sessions.clone(),
        ingest.handle(),
        amqp_endpoint.clone(),
        shutdown_rx.clone(),
    ));
    let tasks = vec![
        tokio::spawn(mqtt::serve(
            mqtt_listener,
            mqtt_tls,
            state.clone(),
            sessions,
            ingest.handle(),
            limits_for(limits::Listener::Mqtt),
            shutdown_rx.clone(),
        )),
        tokio::spawn(https::serve(
            https_listener,
            https_tls,
            state.clone(),
            blobs.clone(),
            ws,
            limits_for(limits::Listener::Https),
            shutdown_rx.clone(),
        )),
        tokio::spawn(amqp::serve(
            amqp_listener,
            amqp_tls,
            state.clone(),
            amqp_endpoint.clone(),
            limits_for(limits::Listener::Amqp),
            shutdown_rx.clone(),
        )),
        tokio::spawn(blob::prune_blocks(blobs.clone(), shutdown_rx.clone())),
        tokio::spawn(retention(state.clone(), shutdown_rx)),
    ];

    let mut info = HubInfo::new(&state, ports);
    info.event_hub_compatible_connection_string = state.policy("iothubowner").map(|p| {
        iothub::amqp_model::event_hub_connection_string(
            &state.host_name,
            amqp_port,
            &p.name,
            &p.primary_key,
            &amqp_endpoint.entity,
        )
    });
    info.storage = Some(info::StorageInfo {
        account_name: blobs.account.clone(),
        account_key: blobs.key.clone(),
        blob_endpoint: blobs.endpoint(&state.host_name, ports_https),
        connection_string: blobs.connection_string(&state.host_name, ports_https),
    });
    info.write(&opts.data_dir)
        .map_err(|source| HubError::Info {
            path: opts.data_dir.join(info::HUB_JSON),
            source,
        })?;
    Ok(RunningHub {
        info,
        state,
        ca_pem,
        shutdown,
        tasks,
        _ingest: ingest,
    })
}

/// The runtime connected MQTT sessions run on, apart from the one serving REST, AMQP
/// and new connections. Tokio has no task priorities: on one runtime a REST request
/// waits in line behind every flooding device's task (hundreds of milliseconds at
/// 100 devices, seconds at 1,000). As threads of their own, the sessions get their
/// share of the CPU from the OS scheduler, and control traffic is served at once.
struct IngestRuntime(Option<tokio::runtime::Runtime>);

impl IngestRuntime {
    fn start() -> Result<IngestRuntime, HubError> {
        let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers)
            .thread_name("hub-ingest")
            .enable_all()
            .build()
            .map(|rt| IngestRuntime(Some(rt)))
            .map_err(HubError::Runtime)
    }

    fn handle(&self) -> tokio::runtime::Handle {
        self.0.as_ref().expect("running").handle().clone()
    }
}

impl Drop for IngestRuntime {
    fn drop(&mut self) {
        // Dropping a runtime blocks until its tasks end, which is not allowed on an
        // async worker, where a hub is usually dropped.
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

/// How long undelivered C2D feedback is kept (Azure's default feedback TTL).
/// How long feedback and file upload notifications wait for a receiver (Azure's default).
const SERVICE_QUEUE_TTL: Duration = Duration::from_secs(3600);

/// Applies telemetry, feedback and file notification retention once a minute.
async fn retention(state: Arc<HubState>, mut shutdown: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    loop {
        tokio::select! {
            _ = tick.tick() => {
                // SQLite work: on a blocking thread, so the async workers keep serving.
                let state = state.clone();
                let pass = tokio::task::spawn_blocking(move || {
                    if let Err(e) = state.prune_telemetry() {
                        tracing::warn!(error = %e, "telemetry retention failed");
                    }
                    let floor = HubState::now().timestamp_millis() - SERVICE_QUEUE_TTL.as_millis() as i64;
                    for queue in [ServiceQueue::Feedback, ServiceQueue::FileNotifications] {
                        if let Err(e) = state.store.queue_prune(queue, floor) {
                            tracing::warn!(error = %e, ?queue, "queue retention failed");
                        }
                    }
                });
                let _ = pass.await;
            }
            _ = shutdown.changed() => return,
        }
    }
}
