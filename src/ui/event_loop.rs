//! The loop of both faces (explorer and device): one `tokio::select!` over terminal input,
//! backend events and the next allowed frame. Every wake-up drains all pending input and
//! events before it considers a redraw, and a redraw happens only when state changed, at most
//! ~30 times a second, so a burst of telemetry costs one frame.

use std::io;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use futures::{Stream, StreamExt};
use ratatui::Frame;
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

/// What the loop drives: the explorer's `App` here, and the device face's state. Each
/// handler changes state and returns the commands for the backend; rendering reads state only.
pub trait LoopApp {
    /// What the backend reports.
    type Event;
    /// What the loop hands to the backend.
    type Command;
    /// Commands to send before the first frame.
    fn start(&mut self) -> Vec<Self::Command>;
    /// A key press (never a release or repeat; never Ctrl-Z, which the loop handles).
    fn on_key(&mut self, key: KeyEvent) -> Vec<Self::Command>;
    /// Bracketed paste.
    fn on_paste(&mut self, text: &str) -> Vec<Self::Command>;
    fn on_resize(&mut self) -> Vec<Self::Command>;
    fn on_event(&mut self, event: Self::Event) -> Vec<Self::Command>;
    /// `next_tick` has come.
    fn on_tick(&mut self, now: Instant) -> Vec<Self::Command>;
    fn next_tick(&self) -> Option<Instant>;
    fn needs_redraw(&self) -> bool;
    fn mark_drawn(&mut self);
    fn mark_dirty(&mut self);
    /// Text to put on the clipboard (OSC 52), once.
    fn take_clipboard(&mut self) -> Option<String>;
    fn should_quit(&self) -> bool;
    fn render(&self, frame: &mut Frame, theme: &Theme);
}

impl LoopApp for App {
    type Event = HubEvent;
    type Command = HubCommand;

    fn start(&mut self) -> Vec<HubCommand> {
        App::start(self)
    }
    fn on_key(&mut self, key: KeyEvent) -> Vec<HubCommand> {
        match keymap::resolve(key, self.mode(), self.key_context()) {
            Some(action) => update(self, action).1,
            None => Vec::new(),
        }
    }
    fn on_paste(&mut self, text: &str) -> Vec<HubCommand> {
        paste_actions(text, self.mode())
            .into_iter()
            .flat_map(|action| update(self, action).1)
            .collect()
    }
    fn on_resize(&mut self) -> Vec<HubCommand> {
        update(self, Action::Resize).1
    }
    fn on_event(&mut self, event: HubEvent) -> Vec<HubCommand> {
        update(self, Action::Hub(event)).1
    }
    fn on_tick(&mut self, now: Instant) -> Vec<HubCommand> {
        update(self, Action::Tick(now)).1
    }
    fn next_tick(&self) -> Option<Instant> {
        App::next_tick(self)
    }
    fn needs_redraw(&self) -> bool {
        App::needs_redraw(self)
    }
    fn mark_drawn(&mut self) {
        App::mark_drawn(self)
    }
    fn mark_dirty(&mut self) {
        App::mark_dirty(self)
    }
    fn take_clipboard(&mut self) -> Option<String> {
        App::take_clipboard(self)
    }
    fn should_quit(&self) -> bool {
        self.should_quit
    }
    fn render(&self, frame: &mut Frame, theme: &Theme) {
        super::render(frame, self, theme)
    }
}

/// Runs the explorer until `App::should_quit` (or, with `first_frame_only`, until the first
/// frame is drawn). `input` is crossterm's `EventStream` in the explorer and a scripted stream
/// in tests.
pub async fn run<S, I>(
    screen: &mut S,
    app: &mut App,
    theme: &Theme,
    input: I,
    channels: Channels,
    first_frame_only: bool,
) -> io::Result<LoopStats>
where
    S: Screen,
    I: Stream<Item = io::Result<Event>> + Unpin,
{
    let Channels {
        mut events,
        events_tx,
        commands,
    } = channels;
    let dispatch = |cmd| dispatch(cmd, &commands, &events_tx);
    run_app(
        screen,
        app,
        theme,
        input,
        &mut events,
        dispatch,
        first_frame_only,
    )
    .await
}

/// Runs any [`LoopApp`] until it should quit (or after the first frame): the one loop of
/// both faces. `dispatch` hands each command to the backend.
pub async fn run_app<S, I, A, D>(
    screen: &mut S,
    app: &mut A,
    theme: &Theme,
    input: I,
    events: &mut mpsc::Receiver<A::Event>,
    mut dispatch: D,
    first_frame_only: bool,
) -> io::Result<LoopStats>
where
    S: Screen,
    I: Stream<Item = io::Result<Event>> + Unpin,
    A: LoopApp,
    D: FnMut(A::Command),
{
    let mut stats = LoopStats { frames: 0 };
    for cmd in app.start() {
        dispatch(cmd);
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
                            for cmd in on_input(screen, app, ev?)? {
                                dispatch(cmd);
                            }
                        }
                    }
                    None => input_open = false,
                }
            }
            ev = events.recv(), if events_open => {
                match ev {
                    Some(ev) => {
                        for cmd in app.on_event(ev) {
                            dispatch(cmd);
                        }
                        while let Ok(ev) = events.try_recv() {
                            for cmd in app.on_event(ev) {
                                dispatch(cmd);
                            }
                        }
                    }
                    None => events_open = false,
                }
            }
            _ = tokio::time::sleep_until(next_frame), if app.needs_redraw() => {}
            _ = sleep_until(app.next_tick()), if app.next_tick().is_some() => {
                for cmd in app.on_tick(Instant::now()) {
                    dispatch(cmd);
                }
            }
        }
        if let Some(text) = app.take_clipboard()
            && let Err(e) = screen.set_clipboard(&text)
        {
            tracing::warn!(error = %e, "cannot write OSC 52");
        }
        if app.should_quit() {
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

fn draw<S: Screen, A: LoopApp>(
    screen: &mut S,
    app: &mut A,
    theme: &Theme,
    stats: &mut LoopStats,
) -> io::Result<()> {
    screen
        .terminal()
        .draw(|frame| app.render(frame, theme))
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

fn is_suspend(key: &KeyEvent) -> bool {
    key.code == KeyCode::Char('z') && key.modifiers.contains(KeyModifiers::CONTROL)
}

fn on_input<S: Screen, A: LoopApp>(
    screen: &mut S,
    app: &mut A,
    event: Event,
) -> io::Result<Vec<A::Command>> {
    Ok(match event {
        // Key releases and repeats (Windows, kitty protocol) are not key presses.
        Event::Key(key) if key.kind != KeyEventKind::Press => Vec::new(),
        Event::Key(key) if is_suspend(&key) => {
            screen.suspend()?;
            app.mark_dirty();
            Vec::new()
        }
        Event::Key(key) => app.on_key(key),
        Event::Paste(text) => app.on_paste(&text),
        Event::Resize(..) => app.on_resize(),
        Event::FocusGained | Event::FocusLost | Event::Mouse(_) => Vec::new(),
    })
}

/// A paste types its text into the focused input, never as shortcuts: outside an input it is
/// dropped, and in a one-line prompt line breaks become spaces (Enter would submit).
pub fn paste_actions(text: &str, mode: Mode) -> Vec<Action> {
    let multi_line = match mode {
        Mode::Editor | Mode::Form => true,
        Mode::Prompt => false,
        _ => return Vec::new(),
    };
    paste_keys(text, multi_line)
        .into_iter()
        .map(Action::Input)
        .collect()
}

/// The keys that type `text` into an input: line breaks are Enter where the input has
/// several lines and spaces where it has one; other control characters are dropped.
pub fn paste_keys(text: &str, multi_line: bool) -> Vec<KeyEvent> {
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
            Some(KeyEvent::new(code, KeyModifiers::NONE))
        })
        .collect()
}

/// Sends a command to the backend; the telemetry export is a file write the loop does itself.
fn dispatch(
    cmd: HubCommand,
    commands: &mpsc::UnboundedSender<HubCommand>,
    events_tx: &mpsc::Sender<HubEvent>,
) {
    match cmd {
        HubCommand::ExportTelemetry {
            path,
            contents,
            count,
        } => {
            tokio::spawn(export(path, contents, count, events_tx.clone()));
        }
        cmd => {
            // The backend is gone only while the explorer shuts down.
            let _ = commands.send(cmd);
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
