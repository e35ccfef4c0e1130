//! The default command: the explorer. Everything that can be wrong with the arguments (a bad
//! connection string, an unknown profile or theme) is found and reported in one sentence
//! before the terminal is touched. Then the terminal is taken, the first frame drawn, and only
//! then the hub connected (or the local hub started in-process), so start-up stays fast.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use ratatui::crossterm::event::EventStream;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::app::{App, Config};
use crate::ui::Theme;
use crate::ui::event_loop::{self, Channels};
use crate::ui::terminal::{TerminalGuard, TerminalOptions};
use client::backend::{self, BackendConfig};
use client::events::{Backend, HubCommand, HubEvent, LinkState};
use client::service::{AmqpTransport, Proxy, ServiceClient};
use client::simulator::Simulator;
use client::storage::BlobAccount;
use client::tls::Trust;
use hub::store::StoreError;
use hub::{self, HubError, HubOptions, RunningHub};
use iothub::connection_string::{EventHubConnectionString, ServiceConnectionString};
use iothub::storage::connection_string::StorageConnectionString;

use super::Failure;
use super::profiles::{ConfigFile, config_path, parse_eventhub, parse_service, parse_storage};
use super::simulated::{SimulateSpec, start_simulators, stop_all};

/// Simulated devices on the embedded local hub.
pub const DEMO_DEVICES: u32 = 3;
/// Sub-directory of the XDG data dir for the explorer's own local hub (`hubtui hub` uses
/// `hub`, so the two never share a database).
pub const EMBEDDED_DIR: &str = "explorer-hub";
/// How long quitting waits for the hub and simulators to stop cleanly.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

#[derive(Args, Debug)]
pub struct ExplorerArgs {
    /// Colour theme: default-dark, light, high-contrast, or NAME.toml in the user themes dir
    /// ($XDG_CONFIG_HOME/hubtui/themes). NO_COLOR turns colour off whatever the theme.
    #[arg(long, env = "HUBTUI_THEME", default_value = "default-dark")]
    pub theme: String,
    /// Telemetry messages kept in memory; the oldest make room for new ones.
    #[arg(long, env = "HUBTUI_TELEMETRY_BUFFER", default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub telemetry_buffer: u64,
    /// Capture the mouse (off by default: capture breaks the terminal's own copy and paste).
    #[arg(long)]
    pub mouse: bool,
    /// Event Hubs-compatible connection string for telemetry (overrides the profile's).
    #[arg(
        long,
        env = "HUBTUI_EVENTHUB_CONNECTION_STRING",
        hide_env_values = true
    )]
    pub eventhub: Option<String>,
    /// CA certificate (PEM) to trust instead of the system's roots, e.g. a local hub's ca.pem.
    #[arg(long, env = "HUBTUI_CA_CERT")]
    pub ca: Option<PathBuf>,
    /// Telemetry and C2D over AMQP on WebSockets (port 443) instead of port 5671, for
    /// networks that block 5671. HTTPS_PROXY and NO_PROXY are honoured.
    #[arg(long)]
    pub amqp_websockets: bool,
    /// HTTP proxy for REST and AMQP over WebSockets (implies --amqp-websockets), as
    /// http://[user:password@]host:port. Without it, HTTPS_PROXY is used.
    #[arg(long, value_name = "URL", env = "HUBTUI_PROXY", hide_env_values = true)]
    pub proxy: Option<String>,
    /// Storage account connection string for the Files tab: where the hub's file uploads go
    /// (overrides the profile's). The explorer's own local hub brings its own.
    #[arg(
        long,
        env = "HUBTUI_STORAGE",
        hide_env_values = true,
        value_name = "CONNSTR"
    )]
    pub storage: Option<String>,
    /// The container the hub's file uploads go to: the Files tab opens on it.
    #[arg(long, env = "HUBTUI_UPLOAD_CONTAINER", default_value = "fileuploads")]
    pub upload_container: String,
    /// Print the time from start to the first frame, then exit (for BENCHMARKS.md).
    #[arg(long, hide = true)]
    pub bench_first_frame: bool,
}

/// How the explorer reaches the hub's AMQP endpoint, and through which proxy.
struct Network {
    transport: AmqpTransport,
    proxy: Proxy,
}

impl Network {
    /// `proxy` is the URL and where it came from (a flag or a profile), for the error.
    fn new(websockets: bool, proxy: Option<(&str, &str)>) -> Result<Network, Failure> {
        let proxy = match proxy {
            Some((url, source)) => {
                Proxy::parse(url).map_err(|e| Failure::usage(format!("{source}: {e}")))?
            }
            None => Proxy::FromEnvironment,
        };
        let websockets = websockets || matches!(proxy, Proxy::Url(_));
        Ok(Network {
            transport: if websockets {
                AmqpTransport::WebSockets
            } else {
                AmqpTransport::Tcp
            },
            proxy,
        })
    }

    fn from_args(args: &ExplorerArgs) -> Result<Network, Failure> {
        Network::new(
            args.amqp_websockets,
            args.proxy.as_deref().map(|p| (p, "--proxy")),
        )
    }

    fn apply(self, config: &mut BackendConfig) {
        config.amqp_transport = self.transport;
        config.proxy = self.proxy;
    }
}

/// The hub the explorer works on.
enum Target {
    Remote {
        service: ServiceConnectionString,
        eventhub: Option<EventHubConnectionString>,
        trust: Trust,
        /// The storage account file uploads go to, for the Files tab.
        storage: Option<StorageConnectionString>,
    },
    /// The local hub, started in this process.
    Embedded {
        eventhub: Option<EventHubConnectionString>,
        /// `--storage`; else the local hub's own blob store.
        storage: Option<StorageConnectionString>,
    },
}

fn read_trust(ca: Option<PathBuf>, source: &str) -> Result<Trust, Failure> {
    let Some(path) = ca else {
        return Ok(Trust::PlatformRoots);
    };
    let pem = std::fs::read_to_string(&path)
        .map_err(|e| Failure::usage(format!("{source}: cannot read {}: {e}", path.display())))?;
    let trust = Trust::CaPem(pem);
    trust
        .roots()
        .map_err(|e| Failure::usage(format!("{source} {}: {e}", path.display())))?;
    Ok(trust)
}

/// Works out the target from --hub / IOTHUB_CONNECTION_STRING, a profile, --eventhub, --ca,
/// and how to reach it (flags over the profile's settings).
fn resolve(
    hub: Option<String>,
    from_env: bool,
    args: &ExplorerArgs,
) -> Result<(Target, Network), Failure> {
    let cli_eventhub = match &args.eventhub {
        Some(text) => Some(parse_eventhub(text, "--eventhub").map_err(Failure::usage)?),
        None => None,
    };
    let cli_storage = match &args.storage {
        Some(text) if !text.trim().is_empty() => {
            Some(parse_storage(text, "--storage").map_err(Failure::usage)?)
        }
        _ => None,
    };
    let Some(hub) = hub.filter(|h| !h.trim().is_empty()) else {
        let target = Target::Embedded {
            eventhub: cli_eventhub,
            storage: cli_storage,
        };
        return Ok((target, Network::from_args(args)?));
    };
    let source = if from_env {
        "IOTHUB_CONNECTION_STRING"
    } else {
        "--hub"
    };
    if hub.contains('=') {
        let target = Target::Remote {
            service: parse_service(&hub, source).map_err(Failure::usage)?,
            eventhub: cli_eventhub,
            trust: read_trust(args.ca.clone(), "--ca")?,
            storage: cli_storage,
        };
        return Ok((target, Network::from_args(args)?));
    }
    let path = config_path();
    let config = ConfigFile::load(&path).map_err(Failure::usage)?;
    let name = hub.trim();
    let profile = config.profile(name, &path).map_err(Failure::usage)?;
    let service = parse_service(
        &profile.connection_string,
        &format!("the connection_string of hub profile \"{name}\""),
    )
    .map_err(Failure::usage)?;
    let eventhub = match (cli_eventhub, &profile.eventhub) {
        (Some(e), _) => Some(e),
        (None, Some(text)) => Some(
            parse_eventhub(text, &format!("the eventhub of hub profile \"{name}\""))
                .map_err(Failure::usage)?,
        ),
        (None, None) => None,
    };
    let (ca, ca_source) = match &args.ca {
        Some(ca) => (Some(ca.clone()), "--ca".to_string()),
        None => (
            profile.ca_certificate.clone(),
            format!("the ca_certificate of hub profile \"{name}\""),
        ),
    };
    let profile_proxy = format!("the proxy of hub profile \"{name}\"");
    let proxy = match (&args.proxy, &profile.proxy) {
        (Some(url), _) => Some((url.as_str(), "--proxy")),
        (None, Some(url)) => Some((url.as_str(), profile_proxy.as_str())),
        (None, None) => None,
    };
    let network = Network::new(args.amqp_websockets || profile.amqp_websockets, proxy)?;
    let storage = match (cli_storage, &profile.storage) {
        (Some(s), _) => Some(s),
        (None, Some(text)) => Some(
            parse_storage(text, &format!("the storage of hub profile \"{name}\""))
                .map_err(Failure::usage)?,
        ),
        (None, None) => None,
    };
    let target = Target::Remote {
        service,
        eventhub,
        trust: read_trust(ca, &ca_source)?,
        storage,
    };
    Ok((target, network))
}

pub fn run(
    hub: Option<String>,
    hub_from_env: bool,
    log_level: &str,
    args: ExplorerArgs,
) -> Result<(), Failure> {
    let (target, network) = resolve(hub, hub_from_env, &args)?;
    let theme = Theme::load(
        &args.theme,
        Theme::user_dir().as_deref(),
        Theme::no_color_requested(),
    )
    .map_err(|e| Failure::usage(format!("--theme: {e}")))?;
    if !std::io::stdout().is_terminal() || !std::io::stdin().is_terminal() {
        return Err(Failure::usage(
            "the explorer needs a terminal; for scripts, see the subcommands in `hubtui --help`",
        ));
    }
    // Without a log file the explorer still runs: it never logs to the screen.
    let log = super::logging::init_file_logging(log_level);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::runtime(format!("cannot start the async runtime: {e}")))?;
    if let Ok(path) = &log {
        tracing::info!(log = %path.display(), "explorer starting");
    }
    let result = runtime.block_on(explore(target, network, theme, args));
    runtime.shutdown_timeout(Duration::from_millis(500));
    result
}

async fn explore(
    target: Target,
    network: Network,
    theme: Theme,
    args: ExplorerArgs,
) -> Result<(), Failure> {
    let (events_tx, events_rx) = mpsc::channel(4096);
    let (commands_tx, commands_rx) = mpsc::unbounded_channel();
    let config = Config {
        hub_host: match &target {
            Target::Remote { service, .. } => service.host_name.clone(),
            Target::Embedded { .. } => "localhost".into(),
        },
        embedded: matches!(target, Target::Embedded { .. }),
        telemetry_capacity: usize::try_from(args.telemetry_buffer).unwrap_or(usize::MAX),
        amqp_over_websockets: network.transport == AmqpTransport::WebSockets,
        storage: match &target {
            Target::Remote { storage, .. } => storage.as_ref().map(|s| s.account_name.clone()),
            Target::Embedded { storage, .. } => Some(
                storage
                    .as_ref()
                    .map_or_else(|| "local hub".to_string(), |s| s.account_name.clone()),
            ),
        },
        upload_container: match &target {
            Target::Remote { .. } => args.upload_container.clone(),
            Target::Embedded { .. } => hub::file_upload::FileUploadSettings::default().container,
        },
        // The explorer owns its local hub's notification queue; a real hub's is shared.
        file_notifications: matches!(target, Target::Embedded { .. }),
        ..Config::default()
    };
    let mut app = App::new(config);
    let mut guard = TerminalGuard::enter(TerminalOptions { mouse: args.mouse })
        .map_err(|e| Failure::runtime(format!("cannot take over the terminal: {e}")))?;
    if !args.bench_first_frame {
        crate::ui::image::detect_protocol();
    }
    let connector = tokio::spawn(connect(target, network, commands_rx, events_tx.clone()));
    let channels = Channels {
        events: events_rx,
        events_tx,
        commands: commands_tx,
    };
    let result = event_loop::run(
        &mut guard,
        &mut app,
        &theme,
        EventStream::new(),
        channels,
        args.bench_first_frame,
    )
    .await;
    let _ = guard.leave();
    drop(guard);
    if args.bench_first_frame {
        connector.abort();
        if let Some(started) = super::STARTED.get() {
            println!(
                "first frame drawn {:.1} ms after start",
                started.elapsed().as_secs_f64() * 1000.0
            );
        }
    } else {
        shut_down(connector).await;
    }
    tracing::info!("explorer stopped");
    result
        .map(drop)
        .map_err(|e| Failure::runtime(format!("the terminal failed: {e}")))
}

/// What runs beside the explorer: the backend, and on the embedded hub the hub itself.
struct Session {
    backend: JoinHandle<()>,
    local: Option<LocalHub>,
}

struct LocalHub {
    hub: RunningHub,
    simulators: Vec<Simulator>,
    /// Set when the usual data dir was locked by another explorer: removed on exit.
    _temp_dir: Option<tempfile::TempDir>,
}

async fn shut_down(connector: JoinHandle<Option<Session>>) {
    let stop = async {
        if let Ok(Some(session)) = connector.await {
            // The command channel closed with the loop, so the backend ends by itself.
            let _ = session.backend.await;
            if let Some(local) = session.local {
                stop_all(local.simulators).await;
                local.hub.shutdown().await;
            }
        }
    };
    if tokio::time::timeout(SHUTDOWN_GRACE, stop).await.is_err() {
        tracing::warn!("shutdown took too long; exiting anyway");
    }
}

async fn fail(events: &mpsc::Sender<HubEvent>, message: String) {
    let _ = events
        .send(HubEvent::ConnectionState {
            backend: Backend::Service,
            state: LinkState::Failed,
            detail: Some(message.clone()),
        })
        .await;
    let _ = events.send(HubEvent::Error(message)).await;
}

/// Connects the backend (starting the local hub first, for the embedded default).
async fn connect(
    target: Target,
    network: Network,
    commands: mpsc::UnboundedReceiver<HubCommand>,
    events: mpsc::Sender<HubEvent>,
) -> Option<Session> {
    let (config, local) = match target {
        Target::Remote {
            service,
            eventhub,
            trust,
            storage,
        } => {
            tracing::info!(hub = %service.host_name, policy = %service.policy_name, "exploring a hub");
            let client = match ServiceClient::with_proxy(&service, &trust, None, &network.proxy) {
                Ok(c) => c,
                Err(e) => {
                    fail(
                        &events,
                        format!("cannot connect to {}: {e}", service.host_name),
                    )
                    .await;
                    return None;
                }
            };
            let mut config = BackendConfig::new(client, trust.clone());
            config.eventhub = eventhub;
            config.storage = match storage.map(|s| BlobAccount::new(s, &trust)).transpose() {
                Ok(account) => account,
                Err(e) => {
                    // The hub itself is fine: only the Files tab goes without.
                    let _ = events
                        .send(HubEvent::Error(format!(
                            "cannot reach the storage account: {e}"
                        )))
                        .await;
                    None
                }
            };
            network.apply(&mut config);
            (config, None)
        }
        Target::Embedded { eventhub, storage } => {
            let _ = events
                .send(HubEvent::ConnectionState {
                    backend: Backend::Service,
                    state: LinkState::Connecting,
                    detail: Some("starting the local hub".into()),
                })
                .await;
            let local = match start_local_hub().await {
                Ok(l) => l,
                Err(e) => {
                    fail(&events, format!("the local hub did not start: {e}")).await;
                    return None;
                }
            };
            let config = match embedded_backend_config(&local.hub, eventhub, storage, network) {
                Ok(c) => c,
                Err(e) => {
                    fail(&events, e).await;
                    return None;
                }
            };
            (config, Some(local))
        }
    };
    Some(Session {
        backend: backend::spawn(config, commands, events),
        local,
    })
}

fn embedded_backend_config(
    hub: &RunningHub,
    eventhub: Option<EventHubConnectionString>,
    storage: Option<StorageConnectionString>,
    network: Network,
) -> Result<BackendConfig, String> {
    let info = &hub.info;
    let service = ServiceConnectionString::parse(&info.service_connection_string)
        .map_err(|e| format!("the local hub's service connection string: {e}"))?;
    let trust = Trust::CaPem(hub.ca_pem.clone());
    let client =
        ServiceClient::with_proxy(&service, &trust, Some(info.ports.https), &network.proxy)
            .map_err(|e| format!("cannot connect to the local hub: {e}"))?;
    let mut config = BackendConfig::new(client, trust.clone());
    let storage = match storage {
        Some(s) => Some(s),
        None => match &info.storage {
            Some(s) => Some(
                StorageConnectionString::parse(&s.connection_string)
                    .map_err(|e| format!("the local hub's storage connection string: {e}"))?,
            ),
            None => None,
        },
    };
    // A --storage account elsewhere is reached with the platform's roots, not the hub's CA.
    config.storage = storage
        .map(|s| {
            let own = info
                .storage
                .as_ref()
                .is_some_and(|mine| mine.blob_endpoint == s.blob_endpoint);
            BlobAccount::new(s, if own { &trust } else { &Trust::PlatformRoots })
        })
        .transpose()
        .map_err(|e| format!("cannot reach the storage account: {e}"))?;
    config.file_notifications = true;
    config.amqp_port = info.ports.amqp;
    config.websocket_port = Some(info.ports.https);
    network.apply(&mut config);
    config.eventhub = match eventhub {
        Some(e) => Some(e),
        None => info
            .event_hub_compatible_connection_string
            .as_deref()
            .and_then(|s| EventHubConnectionString::parse(s).ok()),
    };
    Ok(config)
}

/// Starts the local hub on free loopback ports in `$XDG_DATA_HOME/hubtui/explorer-hub` (a
/// temp dir when another explorer holds that one) with the demo devices.
async fn start_local_hub() -> Result<LocalHub, String> {
    let dir = super::xdg::data_dir().join(EMBEDDED_DIR);
    let (hub, temp_dir) = match hub::start(HubOptions::ephemeral(dir.clone())).await {
        Ok(hub) => (hub, None),
        Err(HubError::Store(StoreError::Locked(_))) => {
            tracing::info!(dir = %dir.display(), "data dir in use by another explorer; using a temp dir");
            let temp = tempfile::Builder::new()
                .prefix("hubtui-hub-")
                .tempdir()
                .map_err(|e| format!("cannot create a temp dir: {e}"))?;
            let hub = hub::start(HubOptions::ephemeral(temp.path().to_path_buf()))
                .await
                .map_err(|e| e.to_string())?;
            (hub, Some(temp))
        }
        Err(e) => return Err(e.to_string()),
    };
    tracing::info!(
        https = hub.info.ports.https,
        mqtt = hub.info.ports.mqtt,
        "local hub started"
    );
    let bind = HubOptions::ephemeral(PathBuf::new()).bind;
    let simulators = start_simulators(&hub, &SimulateSpec::demo(DEMO_DEVICES).0, bind)?;
    Ok(LocalHub {
        hub,
        simulators,
        _temp_dir: temp_dir,
    })
}
