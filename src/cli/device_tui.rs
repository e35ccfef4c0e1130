//! `hubtui device` without `--headless`: one device in a terminal UI. The device connection
//! runs as a task (`client::manual`) feeding events into the same loop as the explorer; the
//! profile answers methods (or the user, with "ask me" on) and acknowledges writable
//! properties.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use ratatui::crossterm::event::EventStream;
use tokio::sync::mpsc;

use client::device::{DeviceClient, DeviceClientOptions, DeviceEvent};
use client::manual::{self, ManualCommand, ManualEvent, ManualSettings};
use client::profile::{Profile, ProfileDevice};
use iothub::connection_string::DeviceConnectionString;

use super::Failure;
use crate::app::device::{DeviceApp, DeviceConfig};
use crate::ui::Theme;
use crate::ui::event_loop;
use crate::ui::terminal::{TerminalGuard, TerminalOptions};

/// Device events queued towards the loop before the device task waits for it.
const EVENT_QUEUE: usize = 1024;
/// How long the device gets to say goodbye to the hub after the UI quits.
const CLOSE_GRACE: Duration = Duration::from_secs(4);

/// Credentials obtained again when the hub refuses the first ones (a cached DPS assignment).
pub type Reprovision =
    Pin<Box<dyn Future<Output = Result<DeviceConnectionString, Failure>> + Send>>;

/// Runs the UI until the user quits.
pub async fn run(
    cs: DeviceConnectionString,
    opts: DeviceClientOptions,
    profile: Profile,
    seed: u64,
    theme: Theme,
    reprovision: Option<Reprovision>,
    ask: Ask,
) -> Result<(), Failure> {
    // Connecting only checks the configuration; a mistake is one sentence before the
    // terminal is taken.
    let first = DeviceClient::connect(&cs, opts.clone())
        .map_err(|e| Failure::usage(format!("device {}: {e}", cs.device_id)))?;
    let config = DeviceConfig {
        device_id: cs.device_id.clone(),
        hub_host: cs.host_name.clone(),
        profile: profile.name.clone(),
        auto_ack: true,
        ask_methods: ask.methods,
        ask_timeout: ask.timeout,
        seed,
    };
    let (events_tx, mut events) = mpsc::channel(EVENT_QUEUE);
    let (commands, commands_rx) = mpsc::unbounded_channel();
    let device = Device {
        cs,
        opts,
        profile,
        seed,
        settings: ManualSettings {
            auto_ack: config.auto_ack,
            ask_methods: config.ask_methods,
            ask_timeout: config.ask_timeout,
        },
    };
    let task = tokio::spawn(supervise(
        device,
        first,
        commands_rx,
        events_tx,
        reprovision,
    ));
    let mut app = DeviceApp::new(config);
    let mut guard = TerminalGuard::enter(TerminalOptions::default())
        .map_err(|e| Failure::runtime(format!("cannot take over the terminal: {e}")))?;
    let result = event_loop::run_app(
        &mut guard,
        &mut app,
        &theme,
        EventStream::new(),
        &mut events,
        |cmd| {
            // The device task is gone only after a panic there, which the log file records.
            let _ = commands.send(cmd);
        },
        false,
    )
    .await;
    let _ = guard.leave();
    drop(guard);
    // Closing both channels ends the device task, which disconnects from the hub.
    drop(commands);
    drop(events);
    if tokio::time::timeout(CLOSE_GRACE, task).await.is_err() {
        tracing::warn!("the device did not disconnect in time");
    }
    result
        .map(drop)
        .map_err(|e| Failure::runtime(format!("the terminal failed: {e}")))
}

/// What a (re)started device task needs.
struct Device {
    cs: DeviceConnectionString,
    opts: DeviceClientOptions,
    profile: Profile,
    seed: u64,
    /// As the user last set them, for a restarted task.
    settings: ManualSettings,
}

/// Whether method calls start out put to the user, and how long each waits for an answer.
pub struct Ask {
    pub methods: bool,
    pub timeout: Duration,
}

type Connection = (DeviceClient, mpsc::UnboundedReceiver<DeviceEvent>);

/// Runs the device task, passing commands and events through. When the hub refuses the
/// credentials before the device ever got in and `reprovision` is given, the device
/// registers again, once, and starts over with the new credentials, as `--headless` does.
async fn supervise(
    mut device: Device,
    first: Connection,
    mut commands: mpsc::UnboundedReceiver<ManualCommand>,
    events: mpsc::Sender<ManualEvent>,
    mut reprovision: Option<Reprovision>,
) {
    let mut next = Some(first);
    loop {
        let (client, device_events) = match next.take() {
            Some(c) => c,
            None => match DeviceClient::connect(&device.cs, device.opts.clone()) {
                Ok(c) => c,
                Err(e) => {
                    tell(&events, e.to_string(), true).await;
                    return idle(commands).await;
                }
            },
        };
        let (inner_tx, mut inner) = mpsc::channel(EVENT_QUEUE);
        let (to_device, device_commands) = mpsc::unbounded_channel();
        let task = tokio::spawn(manual::run(
            client,
            device_events,
            ProfileDevice::new(device.profile.clone(), device.seed),
            device_commands,
            inner_tx,
            device.settings,
        ));
        let mut connected = false;
        let refused = loop {
            tokio::select! {
                cmd = commands.recv() => {
                    let Some(cmd) = cmd else { break false };
                    match cmd {
                        ManualCommand::SetAutoAck(on) => device.settings.auto_ack = on,
                        ManualCommand::SetAskMethods(on) => device.settings.ask_methods = on,
                        _ => {}
                    }
                    let _ = to_device.send(cmd);
                }
                ev = inner.recv() => {
                    let Some(ev) = ev else { break false };
                    match &ev {
                        ManualEvent::Connected => connected = true,
                        ManualEvent::Disconnected { refused: true, .. }
                            if !connected && reprovision.is_some() => break true,
                        _ => {}
                    }
                    if events.send(ev).await.is_err() {
                        break false;
                    }
                }
            }
        };
        drop(to_device);
        drop(inner);
        let _ = tokio::time::timeout(CLOSE_GRACE, task).await;
        let Some(again) = reprovision.take().filter(|_| refused) else {
            return;
        };
        tracing::info!("the hub refused the cached DPS assignment; provisioning again");
        tell(
            &events,
            "the hub refused the cached DPS assignment; provisioning again".into(),
            false,
        )
        .await;
        match again.await {
            Ok(cs) => device.cs = cs,
            Err(e) => {
                tell(&events, e.message, true).await;
                return idle(commands).await;
            }
        }
    }
}

async fn tell(events: &mpsc::Sender<ManualEvent>, reason: String, refused: bool) {
    let _ = events
        .send(ManualEvent::Disconnected { reason, refused })
        .await;
}

/// Without a device, waits for the UI to quit (commands go nowhere meanwhile).
async fn idle(mut commands: mpsc::UnboundedReceiver<ManualCommand>) {
    while commands.recv().await.is_some() {}
}
