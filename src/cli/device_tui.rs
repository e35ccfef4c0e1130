//! `hubtui device` without `--headless`: one device in a terminal UI. The device connection
//! runs as a task (`client::manual`) feeding events into the same loop as the explorer; the
//! profile answers methods and acknowledges writable properties.

use std::time::Duration;

use ratatui::crossterm::event::EventStream;
use tokio::sync::mpsc;

use client::device::{DeviceClient, DeviceClientOptions};
use client::manual;
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

/// Runs the UI until the user quits.
pub async fn run(
    cs: DeviceConnectionString,
    opts: DeviceClientOptions,
    profile: Profile,
    seed: u64,
    theme: Theme,
) -> Result<(), Failure> {
    let (client, device_events) = DeviceClient::connect(&cs, opts)
        .map_err(|e| Failure::usage(format!("device {}: {e}", cs.device_id)))?;
    let config = DeviceConfig {
        device_id: cs.device_id.clone(),
        hub_host: cs.host_name.clone(),
        profile: profile.name.clone(),
        auto_ack: true,
        seed,
    };
    let device = ProfileDevice::new(profile, seed);
    let (events_tx, mut events) = mpsc::channel(EVENT_QUEUE);
    let (commands, commands_rx) = mpsc::unbounded_channel();
    let task = tokio::spawn(manual::run(
        client,
        device_events,
        device,
        commands_rx,
        events_tx,
        config.auto_ack,
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
