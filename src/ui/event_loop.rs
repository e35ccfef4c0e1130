//! The explorer's loop: one `tokio::select!` over terminal input, backend events and the next
//! allowed frame. Every wake-up drains all pending input and events before it considers a
//! redraw, and a redraw happens only when state changed, at most ~30 times a second, so a
//! burst of telemetry costs one frame.

use std::io;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use futures::{Stream, StreamExt};
use ratatui::crossterm::event::{Event, KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use tokio::sync::mpsc;

use crate::app::{Action, App, Mode, keymap, update};
use client::events::{HubCommand, HubEvent};

use super::Theme;
use super::terminal::Screen;

/// Shortest time between two frames (~30 fps).
pub const FRAME_INTERVAL: Duration = Duration::from_millis(33);

/// The loop's ends of the backend channels.
pub struct Channels {
    /// Events from the backend (and from the loop's own file writes).
    pub events: mpsc::Receiver<HubEvent>,
    /// A sender into `events`, for the loop's own reports (export written).
    pub events_tx: mpsc::Sender<HubEvent>,
    /// Commands to the backend.
    pub commands: mpsc::UnboundedSender<HubCommand>,
}

/// What the loop reports when it ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoopStats {
    /// Frames drawn.
    pub frames: u64,
}

/// Runs until `App::should_quit` (or, with `first_frame_only`, until the first frame is
/// drawn). `input` is crossterm's `EventStream` in the explorer and a scripted stream in tests.
pub async fn run<S, I>(
    screen: &mut S,
    app: &mut App,
    theme: &Theme,
    input: I,
    mut channels: Channels,
    first_frame_only: bool,
) -> io::Result<LoopStats>
where
    S: Screen,
    I: Stream<Item = io::Result<Event>> + Unpin,
{
    let mut stats = LoopStats { frames: 0 };
    for cmd in app.start() {
        dispatch(cmd, &channels);
    }
    draw(screen, app, theme, &mut stats)?;
    let mut last_frame = Instant::now();
    if first_frame_only {
        return Ok(stats);
    }
    let mut input = input.ready_chunks(256);
    let mut input_open = true;
    let mut events_open = true;
    loop {
        let next_frame = tokio::time::Instant::from_std(last_frame + FRAME_INTERVAL);
        tokio::select! {
            // All input that is ready now, in one batch: `ready_chunks` polls with this
            // task's waker until the stream is pending, so no wake-up is lost (polling
            // crossterm's EventStream with a no-op waker, as `now_or_never` does, would leave
            // its wake thread holding that waker, and the loop would never wake again).
            batch = input.next(), if input_open => {
                match batch {
                    Some(batch) => {
                        for ev in batch {
                            on_input(screen, app, ev?, &channels)?;
                        }
                    }
                    None => input_open = false,
                }
            }
            ev = channels.events.recv(), if events_open => {
                match ev {
                    Some(ev) => {
                        on_hub_event(app, ev, &channels);
                        while let Ok(ev) = channels.events.try_recv() {
                            on_hub_event(app, ev, &channels);
                        }
                    }
                    None => events_open = false,
                }
            }
            _ = tokio::time::sleep_until(next_frame), if app.needs_redraw() => {}
            _ = sleep_until(app.next_tick()), if app.next_tick().is_some() => {
                apply(app, Action::Tick(Instant::now()), &channels);
            }
        }
        if let Some(text) = app.take_clipboard()
            && let Err(e) = screen.set_clipboard(&text)
        {
            tracing::warn!(error = %e, "cannot write OSC 52");
        }
        if app.should_quit {
            return Ok(stats);
        }
        if !input_open && !events_open {
            // Nothing can change any more (a test's script ended): stop rather than spin.
            return Ok(stats);
        }
        if app.needs_redraw() && last_frame.elapsed() >= FRAME_INTERVAL {
            draw(screen, app, theme, &mut stats)?;
            last_frame = Instant::now();
        }
    }
}

fn draw<S: Screen>(
    screen: &mut S,
    app: &mut App,
    theme: &Theme,
    stats: &mut LoopStats,
) -> io::Result<()> {
    screen
        .terminal()
        .draw(|frame| super::render(frame, app, theme))
        .map_err(|e| io::Error::other(e.to_string()))?;
    app.mark_drawn();
    stats.frames += 1;
    Ok(())
}

async fn sleep_until(at: Option<Instant>) {
    if let Some(at) = at {
        tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await;
    }
}

fn apply(app: &mut App, action: Action, channels: &Channels) {
    let (_changed, cmds) = update(app, action);
    for cmd in cmds {
        dispatch(cmd, channels);
    }
}

fn on_hub_event(app: &mut App, event: HubEvent, channels: &Channels) {
    apply(app, Action::Hub(event), channels);
}

fn is_suspend(key: &KeyEvent) -> bool {
    key.code == KeyCode::Char('z') && key.modifiers.contains(KeyModifiers::CONTROL)
}

fn on_input<S: Screen>(
    screen: &mut S,
    app: &mut App,
    event: Event,
    channels: &Channels,
) -> io::Result<()> {
    match event {
        // Key releases and repeats (Windows, kitty protocol) are not key presses.
        Event::Key(key) if key.kind != KeyEventKind::Press => {}
        Event::Key(key) if is_suspend(&key) => {
            screen.suspend()?;
            app.mark_dirty();
        }
        Event::Key(key) => {
            if let Some(action) = keymap::resolve(key, app.mode(), app.key_context()) {
                apply(app, action, channels);
            }
        }
        Event::Paste(text) => {
            for action in paste_actions(&text, app.mode()) {
                apply(app, action, channels);
            }
        }
        Event::Resize(..) => apply(app, Action::Resize, channels),
        Event::FocusGained | Event::FocusLost | Event::Mouse(_) => {}
    }
    Ok(())
}

/// A paste types its text into the focused input, never as shortcuts: outside an input it is
/// dropped, and in a one-line prompt line breaks become spaces (Enter would submit).
pub fn paste_actions(text: &str, mode: Mode) -> Vec<Action> {
    let multi_line = match mode {
        Mode::Editor | Mode::Form => true,
        Mode::Prompt => false,
        _ => return Vec::new(),
    };
    let text = text.replace("\r\n", "\n").replace('\r', "\n");
    text.chars()
        .filter_map(|c| {
            let code = match c {
                '\n' if multi_line => KeyCode::Enter,
                '\n' => KeyCode::Char(' '),
                '\t' if multi_line => KeyCode::Tab,
                '\t' => KeyCode::Char(' '),
                c if c.is_control() => return None,
                c => KeyCode::Char(c),
            };
            Some(Action::Input(KeyEvent::new(code, KeyModifiers::NONE)))
        })
        .collect()
}

/// Sends a command to the backend; the telemetry export is a file write the loop does itself.
fn dispatch(cmd: HubCommand, channels: &Channels) {
    match cmd {
        HubCommand::ExportTelemetry {
            path,
            contents,
            count,
        } => {
            tokio::spawn(export(path, contents, count, channels.events_tx.clone()));
        }
        cmd => {
            // The backend is gone only while the explorer shuts down.
            let _ = channels.commands.send(cmd);
        }
    }
}

async fn export(path: PathBuf, contents: String, count: usize, events: mpsc::Sender<HubEvent>) {
    let event = match tokio::fs::write(&path, contents).await {
        Ok(()) => HubEvent::Exported { path, count },
        Err(e) => HubEvent::Error(format!("cannot write {}: {e}", path.display())),
    };
    let _ = events.send(event).await;
}

#[cfg(test)]
mod tests;
