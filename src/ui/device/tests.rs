//! Snapshot tests of every device tab at 80x24 and 120x40 (files in src/ui/snapshots,
//! `UPDATE_SNAPSHOTS=1` rewrites them), and style checks under NO_COLOR.

use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::buffer::Buffer;
use ratatui::style::{Color, Modifier};
use serde_json::json;

use super::render;
use crate::app::device::{DeviceAction, DeviceApp, DeviceConfig, DeviceTab, update};
use crate::ui::tests::{check_snapshot, text};
use crate::ui::theme::Theme;
use client::manual::{Answerer, ManualCommand, ManualEvent, ReportOrigin};
use iothub::property_bag::PropertyBag;

fn at(second: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 5, 1, 12, 0, second).unwrap()
}

fn event(app: &mut DeviceApp, ev: ManualEvent) {
    update(app, DeviceAction::Device(Box::new(ev)));
}

/// A device that has sent, received and reported a bit of everything, on `tab`.
fn sample(tab: DeviceTab) -> DeviceApp {
    let mut app = DeviceApp::new(DeviceConfig {
        device_id: "thermostat-7".into(),
        hub_host: "localhost".into(),
        profile: "thermostat".into(),
        auto_ack: true,
        ask_methods: false,
        ask_timeout: Duration::from_secs(30),
        seed: 11,
    });
    event(&mut app, ManualEvent::Connected);
    // No {{now}}: the snapshot must not depend on the clock.
    app.composer
        .set_template("{\n  \"temperature\": {{rand 20.0 25.0}},\n  \"seq\": {{seq}}\n}");
    for ok in [true, true, false] {
        let (_, cmds) = update(&mut app, DeviceAction::SendOnce);
        let Some(ManualCommand::SendTelemetry { id, .. }) = cmds.first() else {
            panic!("{cmds:?}")
        };
        let result = if ok {
            Ok(())
        } else {
            Err("the outgoing queue is full: the connection is down or the hub is slow".into())
        };
        event(&mut app, ManualEvent::Sent { id: *id, result });
    }
    for (i, m) in app.composer.sent.iter_mut().enumerate() {
        m.at = at(10 - i as u32);
    }

    let mut props = PropertyBag::default();
    props.set("$.mid", Some("c2d-1".into()));
    props.set(
        "$.to",
        Some("/devices/thermostat-7/messages/devicebound".into()),
    );
    props.set("priority", Some("high".into()));
    event(
        &mut app,
        ManualEvent::C2d {
            properties: props,
            body: br#"{"command":"blink","times":3}"#.to_vec(),
        },
    );
    let mut props = PropertyBag::default();
    props.set("$.mid", Some("c2d-2".into()));
    props.set("$.ct", Some("text/plain".into()));
    event(
        &mut app,
        ManualEvent::C2d {
            properties: props,
            body: b"hello\x1b[31m device".to_vec(),
        },
    );
    for (i, m) in app.inbox.items.iter_mut().enumerate() {
        m.at = at(20 - i as u32);
    }

    event(
        &mut app,
        ManualEvent::Method {
            rid: "r1".into(),
            by: Answerer::Profile,
            name: "getMaxMinReport".into(),
            payload: json!({"since": "2024-05-01T00:00:00Z"}),
            status: 200,
            response: json!({"maxTemp": 25.1, "minTemp": 19.8}),
            error: None,
        },
    );
    event(
        &mut app,
        ManualEvent::Method {
            rid: "r2".into(),
            by: Answerer::Profile,
            name: "selfDestruct".into(),
            payload: json!(null),
            status: 404,
            response: json!({"error": "unknown method"}),
            error: None,
        },
    );
    for (i, m) in app.methods.items.iter_mut().enumerate() {
        m.at = at(30 - i as u32);
    }

    event(
        &mut app,
        ManualEvent::Twin(json!({
            "desired": {"targetTemperature": 21, "$version": 3},
            "reported": {"serialNumber": "TH-0007", "$version": 5}
        })),
    );
    let patch = json!({"targetTemperature": 23.5});
    event(
        &mut app,
        ManualEvent::Desired {
            version: 4,
            patch: patch.as_object().unwrap().clone(),
        },
    );
    let ack = json!({"targetTemperature": {"value": 23.5, "ac": 200, "av": 4, "ad": "completed"}});
    event(
        &mut app,
        ManualEvent::Reported {
            origin: ReportOrigin::Acknowledgement,
            patch: ack.as_object().unwrap().clone(),
            version: 6,
        },
    );
    for (i, e) in app.twin.log.iter_mut().enumerate() {
        e.at = at(40 - i as u32);
    }
    app.tab = tab;
    app
}

fn draw(app: &DeviceApp, theme: &Theme, w: u16, h: u16) -> Buffer {
    let mut terminal = Terminal::new(TestBackend::new(w, h)).unwrap();
    terminal.draw(|f| render(f, app, theme)).unwrap();
    terminal.backend().buffer().clone()
}

fn snapshot(name: &str, app: &DeviceApp) {
    for (w, h) in [(80, 24), (120, 40)] {
        let t = text(&draw(app, &Theme::default_dark(), w, h));
        assert!(
            !t.contains('\u{1b}'),
            "raw escape reached the screen in {name}"
        );
        check_snapshot(&format!("device_{name}_{w}x{h}"), &t);
    }
}

#[test]
fn device_telemetry_tab() {
    snapshot("telemetry", &sample(DeviceTab::Telemetry));
}

#[test]
fn device_inbox_tab() {
    snapshot("inbox", &sample(DeviceTab::Inbox));
}

#[test]
fn device_methods_tab() {
    let mut app = sample(DeviceTab::Methods);
    // The older call, answered by the profile.
    update(&mut app, DeviceAction::Down);
    snapshot("methods", &app);
}

/// Two calls put to the user: `a` turned asking on; the countdown is pinned so the
/// snapshot does not depend on how long drawing takes.
fn asking() -> DeviceApp {
    let mut app = sample(DeviceTab::Methods);
    update(&mut app, DeviceAction::ToggleAskMethods);
    for (rid, name) in [("7", "reboot"), ("8", "getMaxMinReport")] {
        event(
            &mut app,
            ManualEvent::MethodAsked {
                rid: rid.into(),
                name: name.into(),
                payload: json!({"delay": 5}),
                suggested: (200, json!({"rebooting": true})),
                timeout: Duration::from_secs(30),
            },
        );
    }
    for (i, q) in app.questions.waiting.iter_mut().enumerate() {
        q.deadline = std::time::Instant::now() + Duration::from_millis(25_500 + 2000 * i as u64);
    }
    app
}

#[test]
fn device_methods_waiting_for_an_answer() {
    snapshot("methods_waiting", &asking());
}

#[test]
fn device_methods_answer_editor() {
    let mut app = asking();
    update(&mut app, DeviceAction::AnswerMethod);
    snapshot("methods_answer", &app);
}

#[test]
fn device_twin_tab() {
    snapshot("twin", &sample(DeviceTab::Twin));
}

#[test]
fn device_bad_template_and_reconnecting() {
    let mut app = sample(DeviceTab::Telemetry);
    update(&mut app, DeviceAction::EditTemplate);
    app.composer.set_template("{\"t\": {{rand 30 20}}}");
    update(&mut app, DeviceAction::Submit);
    event(
        &mut app,
        ManualEvent::Disconnected {
            reason: "cannot reach localhost:8883: connection refused".into(),
            refused: false,
        },
    );
    snapshot("bad_template", &app);
}

#[test]
fn device_help() {
    let mut app = sample(DeviceTab::Twin);
    update(&mut app, DeviceAction::ToggleHelp);
    snapshot("help", &app);
}

#[test]
fn no_color_keeps_meaning_in_modifiers() {
    let mut app = sample(DeviceTab::Twin);
    app.twin.editor.set_text("[");
    update(&mut app, DeviceAction::SendReported);
    let buf = draw(&app, &Theme::no_color(), 80, 24);
    // The error sentence sits just above the status bar, bold and in the terminal's colours.
    let row = (0..24)
        .find(|&y| {
            let line: String = (0..80).map(|x| buf[(x, y)].symbol()).collect();
            line.starts_with("the reported patch is not valid JSON")
        })
        .expect("the error sentence on screen");
    assert!(row >= 20);
    let cell = &buf[(0, row)];
    assert_eq!(cell.fg, Color::Reset);
    assert!(cell.modifier.contains(Modifier::BOLD));
    // The status bar is reversed.
    assert!(buf[(0, 23)].modifier.contains(Modifier::REVERSED));
}

#[test]
fn paste_types_into_the_editor_only() {
    use crate::ui::event_loop::LoopApp;
    let mut app = sample(DeviceTab::Twin);
    // Outside an editor a paste is dropped: `q` in it must not quit.
    assert!(app.on_paste("q\nA").is_empty());
    assert!(!app.should_quit);
    assert!(app.twin.auto_ack);
    update(&mut app, DeviceAction::EditReported);
    app.twin.editor.set_text("");
    assert!(app.on_paste("{\"a\":\r\n 1}").is_empty());
    assert_eq!(app.twin.editor.text(), "{\"a\":\n 1}");
    assert!(app.twin.patch().is_ok());
}
