//! The loop on a TestBackend with scripted input: drain-all, coalesced redraws, paste, suspend,
//! clipboard, export and quit.

use std::time::Duration;

use futures::stream::{self, BoxStream};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{Event, KeyCode, KeyEvent, KeyModifiers};

use super::*;
use crate::app::{Config, Tab};
use client::events::TelemetryEvent;

struct TestScreen {
    terminal: Terminal<TestBackend>,
    suspends: usize,
    clipboard: Vec<String>,
}

impl TestScreen {
    fn new() -> Self {
        TestScreen {
            terminal: Terminal::new(TestBackend::new(80, 24)).unwrap(),
            suspends: 0,
            clipboard: vec![],
        }
    }

    fn text(&self) -> String {
        let buf = self.terminal.backend().buffer();
        buf.content().iter().map(|c| c.symbol()).collect()
    }
}

impl Screen for TestScreen {
    type Backend = TestBackend;
    fn terminal(&mut self) -> &mut Terminal<TestBackend> {
        &mut self.terminal
    }
    fn suspend(&mut self) -> io::Result<()> {
        self.suspends += 1;
        Ok(())
    }
    fn set_clipboard(&mut self, text: &str) -> io::Result<()> {
        self.clipboard.push(text.to_string());
        Ok(())
    }
}

fn key(c: char) -> io::Result<Event> {
    Ok(Event::Key(KeyEvent::new(
        KeyCode::Char(c),
        KeyModifiers::NONE,
    )))
}

fn ctrl(c: char) -> io::Result<Event> {
    Ok(Event::Key(KeyEvent::new(
        KeyCode::Char(c),
        KeyModifiers::CONTROL,
    )))
}

/// Input that waits `delay`, then yields `events` and stays open.
fn script(
    delay: Duration,
    events: Vec<io::Result<Event>>,
) -> BoxStream<'static, io::Result<Event>> {
    steps(vec![(delay, events)])
}

/// Input in steps: each waits its delay, then yields its events; then it stays open.
fn steps(steps: Vec<(Duration, Vec<io::Result<Event>>)>) -> BoxStream<'static, io::Result<Event>> {
    stream::iter(steps)
        .then(|(delay, events)| async move {
            tokio::time::sleep(delay).await;
            stream::iter(events)
        })
        .flatten()
        .chain(stream::pending())
        .boxed()
}

struct Harness {
    channels: Channels,
    events_tx: mpsc::Sender<HubEvent>,
    commands: mpsc::UnboundedReceiver<HubCommand>,
}

fn harness() -> Harness {
    let (events_tx, events) = mpsc::channel(8192);
    let (commands, commands_rx) = mpsc::unbounded_channel();
    Harness {
        channels: Channels {
            events,
            events_tx: events_tx.clone(),
            commands,
        },
        events_tx,
        commands: commands_rx,
    }
}

fn telemetry(i: u32) -> HubEvent {
    HubEvent::Telemetry(TelemetryEvent {
        enqueued_time: chrono::Utc::now(),
        device_id: "sim-1".into(),
        module_id: None,
        partition: 0,
        sequence_number: i64::from(i),
        system_properties: vec![],
        application_properties: vec![],
        body: format!("{{\"n\":{i}}}").into_bytes(),
    })
}

#[tokio::test]
async fn a_burst_of_events_costs_one_frame_and_q_quits() {
    let mut h = harness();
    for i in 0..2000 {
        h.events_tx.try_send(telemetry(i)).unwrap();
    }
    let mut screen = TestScreen::new();
    let mut app = App::new(Config::default());
    let theme = Theme::no_color();
    let input = script(Duration::from_millis(300), vec![key('q')]);
    let stats = run(&mut screen, &mut app, &theme, input, h.channels, false)
        .await
        .unwrap();
    assert!(app.should_quit);
    assert_eq!(app.telemetry.ring.len(), 2000);
    // The first frame, then one for the whole burst.
    assert_eq!(stats.frames, 2, "frames drawn: {}", stats.frames);
    // The start-up commands reached the backend.
    let first = h.commands.try_recv().unwrap();
    assert!(
        matches!(
            first,
            HubCommand::LoadDevices {
                continuation: None,
                ..
            }
        ),
        "{first:?}"
    );
}

#[tokio::test]
async fn paste_outside_an_input_is_not_typed_as_shortcuts() {
    let h = harness();
    let mut screen = TestScreen::new();
    let mut app = App::new(Config::default());
    let input = script(
        Duration::from_millis(10),
        vec![Ok(Event::Paste("q2".into())), key('3'), key('q')],
    );
    run(
        &mut screen,
        &mut app,
        &Theme::no_color(),
        input,
        h.channels,
        false,
    )
    .await
    .unwrap();
    // "q2" did not quit nor switch to tab 2; the typed 3 switched to Twin.
    assert_eq!(app.tab, Tab::Twin);
    assert_eq!(paste_actions("a\r\nb", Mode::Prompt).len(), 3);
    assert_eq!(
        paste_actions("a\nb", Mode::Editor)[1],
        Action::Input(KeyEvent::new(KeyCode::Enter, KeyModifiers::NONE))
    );
    assert!(paste_actions("q", Mode::Normal).is_empty());
}

#[tokio::test]
async fn ctrl_z_suspends_and_redraws_in_full() {
    let h = harness();
    let mut screen = TestScreen::new();
    let mut app = App::new(Config::default());
    let input = steps(vec![
        (Duration::from_millis(10), vec![ctrl('z')]),
        (Duration::from_millis(100), vec![key('q')]),
    ]);
    let stats = run(
        &mut screen,
        &mut app,
        &Theme::no_color(),
        input,
        h.channels,
        false,
    )
    .await
    .unwrap();
    assert_eq!(screen.suspends, 1);
    assert!(stats.frames >= 2, "no redraw after resume");
    assert!(screen.text().contains("Devices"));
}

#[tokio::test]
async fn first_frame_only_draws_once_and_returns() {
    let h = harness();
    let mut screen = TestScreen::new();
    let mut app = App::new(Config::default());
    let stats = run(
        &mut screen,
        &mut app,
        &Theme::no_color(),
        stream::pending().boxed(),
        h.channels,
        true,
    )
    .await
    .unwrap();
    assert_eq!(stats.frames, 1);
    assert!(screen.text().contains("1 Devices"));
}

#[tokio::test]
async fn export_writes_the_file_and_reports_back() {
    let h = harness();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.jsonl");
    for i in 0..3 {
        h.events_tx.try_send(telemetry(i)).unwrap();
    }
    let mut screen = TestScreen::new();
    let mut app = App::new(Config::default());
    app.tab = Tab::Telemetry;
    // x opens the prompt with a default name; Ctrl-U clears it.
    let mut keys = vec![key('x'), ctrl('u')];
    keys.extend(path.to_str().unwrap().chars().map(key));
    keys.push(Ok(Event::Key(KeyEvent::new(
        KeyCode::Enter,
        KeyModifiers::NONE,
    ))));
    let input = steps(vec![
        (Duration::from_millis(50), keys),
        (Duration::from_millis(300), vec![key('q')]),
    ]);
    run(
        &mut screen,
        &mut app,
        &Theme::no_color(),
        input,
        h.channels,
        false,
    )
    .await
    .unwrap();
    let written = std::fs::read_to_string(&path).unwrap();
    assert_eq!(written.lines().count(), 3, "{written}");
    assert!(
        app.status.notice.as_deref().unwrap_or("").contains('3'),
        "{:?}",
        app.status
    );
}
