//! The explorer's backend: tokio tasks that carry out `HubCommand`s against a hub and report
//! `HubEvent`s. REST work (registry, twins, methods, purge) goes through `ServiceClient`;
//! telemetry (`telemetry`) and C2D sends and feedback (`c2d`) go through the AMQP service
//! client, on the same connection string.
//!
//! Each command runs in its own task, so a slow method call never holds up a twin read, and a
//! failure (even a panic) ends only that command with an error event. Slow reads that a newer
//! request makes pointless (the device list, a twin) are latest-wins: the newer request
//! replaces the one in flight.

mod assets;
mod c2d;
mod files;
mod link;
mod methods;
mod polling;
mod registry;
mod telemetry;
mod throttle;
mod twin;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::events::{HubCommand, HubEvent};
use crate::service::{AmqpOptions, AmqpTransport, Proxy, ServiceClient};
use crate::storage::BlobAccount;
use crate::tls::Trust;
use iothub::connection_string::EventHubConnectionString;

pub use files::LIST_LIMIT as BLOB_LIST_LIMIT;
pub use link::describe_error;
pub use registry::{devices_query, filter_condition};

/// What the backend connects to.
#[derive(Clone)]
pub struct BackendConfig {
    pub service: ServiceClient,
    /// Event Hubs-compatible endpoint for telemetry (`--eventhub`, the profile, or hub.json).
    pub eventhub: Option<EventHubConnectionString>,
    /// Trust for the AMQP connections (the local hub's CA, or the platform's roots).
    pub trust: Trust,
    /// AMQP port when it is not Azure's 5671 (the local hub's, from hub.json).
    pub amqp_port: Option<u16>,
    /// TLS on 5671, or WebSockets on 443 for networks that block 5671 (`--amqp-websockets`).
    pub amqp_transport: AmqpTransport,
    /// WebSocket port when it is not Azure's 443 (the local hub's HTTPS port).
    pub websocket_port: Option<u16>,
    /// The proxy AMQP over WebSockets tunnels through.
    pub proxy: Proxy,
    /// Devices per query page.
    pub page_size: u32,
    /// How often the twin on screen is read again, so changes show up highlighted.
    pub twin_poll: Duration,
    /// How often a device list on screen that fits in one page is read again (connection
    /// states).
    pub devices_poll: Duration,
    /// The storage account the Files tab reads; None when none is configured.
    pub storage: Option<BlobAccount>,
    /// File upload notifications are received whenever the Files tab is on screen (the
    /// explorer's own local hub); otherwise only after `FileNotifications(true)`, because
    /// they are taken from a queue other services of a real hub may read.
    pub file_notifications: bool,
}

/// How often the calls-per-minute count is refreshed while no call is made (it falls as
/// calls age out of the minute).
const CALL_RATE_REFRESH: Duration = Duration::from_secs(10);

impl BackendConfig {
    /// Re-read intervals follow the host: seconds for a hub on this machine, tens of
    /// seconds for a hub in Azure, whose read throttle is shared with production.
    pub fn new(service: ServiceClient, trust: Trust) -> BackendConfig {
        let (twin_poll, devices_poll) = polling::intervals_for(service.host_name());
        BackendConfig {
            service,
            eventhub: None,
            trust,
            amqp_port: None,
            amqp_transport: AmqpTransport::Tcp,
            websocket_port: None,
            proxy: Proxy::FromEnvironment,
            page_size: 100,
            twin_poll,
            devices_poll,
            storage: None,
            file_notifications: false,
        }
    }

    /// How the AMQP clients connect.
    fn amqp_options(&self) -> AmqpOptions {
        AmqpOptions {
            trust: self.trust.clone(),
            transport: self.amqp_transport,
            port: match self.amqp_transport {
                AmqpTransport::Tcp => self.amqp_port,
                AmqpTransport::WebSockets => self.websocket_port,
            },
            proxy: self.proxy.clone(),
            ..AmqpOptions::default()
        }
    }
}

/// Whose twin or method: a device's, or one of its modules'.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Target {
    pub(super) device_id: String,
    pub(super) module_id: Option<String>,
}

impl Target {
    pub(super) fn module(&self) -> Option<&str> {
        self.module_id.as_deref()
    }
}

/// "dev" or "dev/module", for messages.
impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.module_id {
            None => f.write_str(&self.device_id),
            Some(m) => write!(f, "{}/{m}", self.device_id),
        }
    }
}

/// Shared by the backend's tasks.
struct Ctx {
    config: BackendConfig,
    events: mpsc::Sender<HubEvent>,
    link: link::ServiceLink,
    devices: registry::ListWatch,
    messaging: c2d::Messaging,
    poller: polling::Poller,
    throttle: throttle::Throttle,
    /// The calls-per-minute count last reported.
    calls_reported: AtomicUsize,
}

impl Ctx {
    async fn send(&self, event: HubEvent) {
        // The explorer is gone only while it shuts down; nothing is left to tell.
        let _ = self.events.send(event).await;
    }

    /// Reports the service calls of the last minute when the count changed.
    async fn report_calls(&self) {
        let per_minute = self.config.service.calls().per_minute();
        if self.calls_reported.swap(per_minute, Ordering::Relaxed) != per_minute {
            self.send(HubEvent::ServiceCalls { per_minute }).await;
        }
    }
}

async fn call_rate_loop(ctx: Arc<Ctx>) {
    let mut tick = tokio::time::interval(CALL_RATE_REFRESH);
    loop {
        tick.tick().await;
        ctx.report_calls().await;
    }
}

/// A job slot where a newer request replaces the one in flight (style pattern 9).
#[derive(Default)]
struct LatestWins(Option<JoinHandle<()>>);

impl LatestWins {
    fn replace(&mut self, job: impl Future<Output = ()> + Send + 'static) {
        if let Some(old) = self.0.take() {
            old.abort();
        }
        self.0 = Some(tokio::spawn(job));
    }
}

/// The job still in flight when the backend ends (a telemetry reader) stops with it.
impl Drop for LatestWins {
    fn drop(&mut self) {
        if let Some(job) = self.0.take() {
            job.abort();
        }
    }
}

/// Starts the backend: it reads `commands` until the sender is dropped and reports on `events`.
/// Returns the dispatcher task; dropping the command sender ends it.
pub fn spawn(
    config: BackendConfig,
    commands: mpsc::UnboundedReceiver<HubCommand>,
    events: mpsc::Sender<HubEvent>,
) -> JoinHandle<()> {
    let ctx = Arc::new(Ctx {
        link: link::ServiceLink::default(),
        devices: registry::ListWatch::default(),
        messaging: c2d::Messaging::default(),
        poller: polling::Poller::new(config.twin_poll, config.devices_poll),
        throttle: throttle::Throttle::default(),
        calls_reported: AtomicUsize::new(0),
        config,
        events,
    });
    tokio::spawn(run(ctx, commands))
}

async fn run(ctx: Arc<Ctx>, mut commands: mpsc::UnboundedReceiver<HubCommand>) {
    ctx.link.connecting(&ctx).await;
    let messaging = AbortOnDrop(tokio::spawn(c2d::run(ctx.clone())));
    let mut devices = LatestWins::default();
    let mut twin_read = LatestWins::default();
    let poller = AbortOnDrop(tokio::spawn(polling::run(ctx.clone())));
    let call_rate = AbortOnDrop(tokio::spawn(call_rate_loop(ctx.clone())));
    let mut telemetry_reader = LatestWins::default();
    let mut file_notifications = FileNotifications::default();
    while let Some(cmd) = commands.recv().await {
        tracing::debug!(command = command_name(&cmd), "command");
        match cmd {
            HubCommand::LoadDevices {
                continuation,
                filter,
            } => {
                if continuation.is_none() {
                    ctx.poller.devices_read();
                }
                devices.replace(guarded(
                    ctx.clone(),
                    registry::load_devices(ctx.clone(), continuation, filter),
                ))
            }
            HubCommand::GetTwin {
                device_id,
                module_id,
            } => {
                ctx.poller.twin_asked();
                let target = Target {
                    device_id,
                    module_id,
                };
                twin_read.replace(guarded(ctx.clone(), twin::get(ctx.clone(), target)))
            }
            HubCommand::ListModules { device_id } => {
                spawn_guarded(&ctx, twin::list_modules(ctx.clone(), device_id))
            }
            HubCommand::Visible(screen) => {
                file_notifications.shown = screen.files.is_some();
                file_notifications.sync(&ctx);
                ctx.poller.show(screen)
            }
            HubCommand::FileNotifications(on) => {
                file_notifications.opted_in = on;
                file_notifications.sync(&ctx);
            }
            HubCommand::ListBlobs { container } => {
                let job = ctx.clone();
                spawn_guarded(&ctx, async move { files::list(&job, container).await })
            }
            HubCommand::ListContainers => spawn_guarded(&ctx, files::containers(ctx.clone())),
            HubCommand::PreviewBlob {
                container,
                blob,
                bytes,
            } => spawn_guarded(&ctx, files::preview(ctx.clone(), container, blob, bytes)),
            HubCommand::DownloadBlob {
                container,
                blob,
                path,
            } => spawn_guarded(&ctx, files::download(ctx.clone(), container, blob, path)),
            HubCommand::GetDevice { device_id } => {
                spawn_guarded(&ctx, registry::get_device(ctx.clone(), device_id))
            }
            HubCommand::CreateDevice { device_id, auth } => {
                spawn_guarded(&ctx, registry::create(ctx.clone(), device_id, auth))
            }
            HubCommand::SetDeviceStatus { device_id, status } => {
                spawn_guarded(&ctx, registry::set_status(ctx.clone(), device_id, status))
            }
            HubCommand::DeleteDevice { device_id } => {
                spawn_guarded(&ctx, registry::delete(ctx.clone(), device_id))
            }
            HubCommand::PatchTwin {
                device_id,
                module_id,
                section,
                patch,
                etag,
            } => {
                let target = Target {
                    device_id,
                    module_id,
                };
                spawn_guarded(&ctx, twin::patch(ctx.clone(), target, section, patch, etag))
            }
            HubCommand::InvokeMethod {
                call_id,
                device_id,
                module_id,
                name,
                payload,
                response_timeout,
                connect_timeout,
            } => {
                let target = Target {
                    device_id,
                    module_id,
                };
                spawn_guarded(
                    &ctx,
                    methods::invoke(
                        ctx.clone(),
                        call_id,
                        target,
                        name,
                        payload,
                        response_timeout,
                        connect_timeout,
                    ),
                )
            }
            HubCommand::PurgeC2d { device_id } => {
                spawn_guarded(&ctx, c2d::purge(ctx.clone(), device_id))
            }
            HubCommand::SendC2d(message) => spawn_guarded(&ctx, c2d::send(ctx.clone(), message)),
            HubCommand::AttachAsset(asset) => {
                spawn_guarded(&ctx, assets::attach(ctx.clone(), asset))
            }
            HubCommand::StartTelemetry {
                from,
                consumer_group,
            } => telemetry_reader.replace(guarded(
                ctx.clone(),
                telemetry::read(ctx.clone(), from, consumer_group),
            )),
            HubCommand::ExportTelemetry { path, .. } => {
                // The terminal loop writes exports itself; one reaching here is a wiring bug.
                ctx.send(HubEvent::Error(format!(
                    "the export to {} was sent to the backend, which does not write files",
                    path.display()
                )))
                .await;
            }
        }
    }
    drop(file_notifications);
    drop(poller);
    drop(call_rate);
    drop(messaging);
}

/// The file upload notification reader: running while the Files tab is on screen and
/// notifications are on (by default on the explorer's own hub, else when the user asks).
#[derive(Default)]
struct FileNotifications {
    shown: bool,
    opted_in: bool,
    reader: Option<AbortOnDrop>,
}

impl FileNotifications {
    fn sync(&mut self, ctx: &Arc<Ctx>) {
        let wanted = self.shown
            && ctx.config.storage.is_some()
            && (ctx.config.file_notifications || self.opted_in);
        if !wanted {
            self.reader = None;
        } else if self.reader.is_none() {
            self.reader = Some(AbortOnDrop(tokio::spawn(files::notifications(ctx.clone()))));
        }
    }
}

/// Aborts the task when dropped, so a replaced latest-wins job really stops.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Runs `job`; if it panics, reports one sentence instead of ending the explorer.
async fn guarded(ctx: Arc<Ctx>, job: impl Future<Output = ()> + Send + 'static) {
    let mut task = AbortOnDrop(tokio::spawn(job));
    if let Err(e) = (&mut task.0).await
        && e.is_panic()
    {
        ctx.send(HubEvent::Error(
            "an internal error stopped that request; the log file has the details".into(),
        ))
        .await;
    }
}

fn spawn_guarded(ctx: &Arc<Ctx>, job: impl Future<Output = ()> + Send + 'static) {
    tokio::spawn(guarded(ctx.clone(), job));
}

/// For the log: what kind of command, never its contents (payloads may hold secrets).
fn command_name(cmd: &HubCommand) -> &'static str {
    match cmd {
        HubCommand::LoadDevices { .. } => "load devices",
        HubCommand::AttachAsset(_) => "attach asset",
        HubCommand::GetDevice { .. } => "get device",
        HubCommand::CreateDevice { .. } => "create device",
        HubCommand::SetDeviceStatus { .. } => "set device status",
        HubCommand::DeleteDevice { .. } => "delete device",
        HubCommand::GetTwin { .. } => "get twin",
        HubCommand::ListModules { .. } => "list modules",
        HubCommand::Visible(_) => "visible",
        HubCommand::PatchTwin { .. } => "patch twin",
        HubCommand::InvokeMethod { .. } => "invoke method",
        HubCommand::SendC2d(_) => "send c2d",
        HubCommand::PurgeC2d { .. } => "purge c2d",
        HubCommand::StartTelemetry { .. } => "start telemetry",
        HubCommand::ExportTelemetry { .. } => "export telemetry",
        HubCommand::ListBlobs { .. } => "list blobs",
        HubCommand::ListContainers => "list containers",
        HubCommand::PreviewBlob { .. } => "preview blob",
        HubCommand::DownloadBlob { .. } => "download blob",
        HubCommand::FileNotifications(_) => "file notifications",
    }
}
