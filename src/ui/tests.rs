//! Snapshot tests of every tab at 80x24 and 120x40 on state built here (TestBackend buffer as
//! text, compared to committed files in src/ui/snapshots; `UPDATE_SNAPSHOTS=1` rewrites them),
//! and per-cell style checks for NO_COLOR and the default theme.

use chrono::{TimeZone, Utc};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::buffer::Buffer;
use ratatui::style::{Color, Modifier};
use serde_json::json;

use super::render;
use super::theme::Theme;
use crate::app::{Action, App, Config, Tab, update};
use client::events::{Backend, HubEvent, LinkState, MethodFailure, MethodResponse, TelemetryEvent};
use iothub::device::DeviceIdentity;

fn device(id: &str, connected: bool, activity: &str) -> DeviceIdentity {
    serde_json::from_value(json!({
        "deviceId": id,
        "connectionState": if connected { "Connected" } else { "Disconnected" },
        "lastActivityTime": activity,
        "status": if id.ends_with('c') { "disabled" } else { "enabled" },
        "authentication": {"type": "sas", "symmetricKey": {"primaryKey": "a2V5", "secondaryKey": "a2V5"}}
    }))
    .unwrap()
}

fn telemetry(device: &str, second: u32, body: &[u8]) -> Action {
    Action::Hub(HubEvent::Telemetry(TelemetryEvent {
        enqueued_time: Utc.with_ymd_and_hms(2024, 5, 1, 12, 0, second).unwrap(),
        device_id: device.into(),
        module_id: None,
        partition: 1,
        sequence_number: i64::from(second),
        system_properties: vec![("message-id".into(), format!("m{second}"))],
        application_properties: vec![("alert".into(), "false".into())],
        body: body.to_vec(),
    }))
}

/// A session with a bit of everything, on the given tab.
fn sample_app(tab: Tab) -> App {
    let mut app = App::new(Config::default());
    let _ = app.start();
    update(
        &mut app,
        Action::Hub(HubEvent::DevicesPage {
            items: vec![
                device("thermostat-a", true, "2024-05-01T12:00:03.120Z"),
                device("sensor-b", false, "0001-01-01T00:00:00Z"),
                device("evil\u{1b}[31m-c", false, "2024-04-30T08:15:00.000Z"),
            ],
            twins: [(
                "thermostat-a".to_string(),
                client::events::TwinSummary {
                    model_id: "dtmi:com:example:Thermostat;1".into(),
                    tags: json!({"site": "lab", "floor": 2})
                        .as_object()
                        .unwrap()
                        .clone(),
                    modules: Some(2),
                },
            )]
            .into(),
            continuation: Some("token".into()),
            replace: true,
        }),
    );
    update(
        &mut app,
        Action::Hub(HubEvent::ConnectionState {
            backend: Backend::Service,
            state: LinkState::Connected,
            detail: None,
        }),
    );
    update(
        &mut app,
        Action::Hub(HubEvent::ConnectionState {
            backend: Backend::Telemetry,
            state: LinkState::Connected,
            detail: None,
        }),
    );
    for i in 0..6u32 {
        let body = format!(r#"{{"temperature": {}, "humidity": 40}}"#, 20 + i);
        update(&mut app, telemetry("thermostat-a", i * 2, body.as_bytes()));
    }
    update(
        &mut app,
        telemetry("sensor-b", 5, b"plain text \x1b]0;title\x07 body"),
    );
    update(
        &mut app,
        telemetry("sensor-b", 7, &[0xde, 0xad, 0xbe, 0xef, 0x00]),
    );
    update(&mut app, Action::SelectTab(Tab::Twin));
    update(
        &mut app,
        Action::Hub(HubEvent::Twin {
            device_id: "thermostat-a".into(),
            twin: json!({
                "deviceId": "thermostat-a", "etag": "AAAAAAAAAAU=", "version": 5,
                "tags": {"site": "lab"},
                "properties": {
                    "desired": {"targetTemperature": 22, "mode": "auto",
                                "$metadata": {"$lastUpdated": "2024-05-01T11:00:00.000Z"}, "$version": 3},
                    "reported": {"targetTemperature": 21, "mode": "auto", "firmware": "1.2.0",
                                 "$metadata": {"$lastUpdated": "2024-05-01T11:59:00.000Z"}, "$version": 7}
                }
            }),
        }),
    );
    update(&mut app, Action::SelectTab(Tab::Methods));
    update(&mut app, Action::EditForm);
    for c in "reboot".chars() {
        update(
            &mut app,
            Action::Input(ratatui::crossterm::event::KeyEvent::from(
                ratatui::crossterm::event::KeyCode::Char(c),
            )),
        );
    }
    update(&mut app, Action::Submit);
    // reboot asks first.
    let (_, cmds) = update(&mut app, Action::ConfirmYes);
    let first_call = match &cmds[..] {
        [client::events::HubCommand::InvokeMethod { call_id, .. }] => *call_id,
        other => panic!("{other:?}"),
    };
    update(
        &mut app,
        Action::Hub(HubEvent::MethodResult {
            call_id: first_call,
            result: Ok(MethodResponse {
                status: 200,
                payload: json!({"rebooting": true, "in": 5}),
            }),
        }),
    );
    update(&mut app, Action::Rerun);
    let (_, cmds) = update(&mut app, Action::ConfirmYes);
    if let [client::events::HubCommand::InvokeMethod { call_id, .. }] = &cmds[..] {
        update(
            &mut app,
            Action::Hub(HubEvent::MethodResult {
                call_id: *call_id,
                result: Err(MethodFailure {
                    http_status: Some(504),
                    message: "timeout".into(),
                }),
            }),
        );
    }
    update(&mut app, Action::SelectTab(Tab::C2d));
    update(&mut app, Action::CycleAck);
    let (_, cmds) = update(&mut app, Action::SendC2d);
    if let [client::events::HubCommand::SendC2d(m)] = &cmds[..] {
        update(
            &mut app,
            Action::Hub(HubEvent::C2dFeedback {
                original_message_id: m.message_id.clone(),
                status: "success".into(),
            }),
        );
    }
    update(&mut app, Action::SendC2d);
    update(&mut app, Action::SelectTab(tab));
    app
}

fn draw(app: &App, theme: &Theme, w: u16, h: u16) -> Buffer {
    let mut terminal = Terminal::new(TestBackend::new(w, h)).unwrap();
    terminal.draw(|f| render(f, app, theme)).unwrap();
    terminal.backend().buffer().clone()
}

pub(crate) fn text(buf: &Buffer) -> String {
    let area = buf.area;
    let mut out = String::new();
    for y in 0..area.height {
        let mut line = String::new();
        for x in 0..area.width {
            line.push_str(buf[(x, y)].symbol());
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

pub(crate) fn check_snapshot(name: &str, actual: &str) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("src/ui/snapshots")
        .join(format!("{name}.snap"));
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|_| {
        panic!(
            "no snapshot {}; run with UPDATE_SNAPSHOTS=1 and review it",
            path.display()
        )
    });
    assert!(
        expected == actual,
        "snapshot {name} differs; run with UPDATE_SNAPSHOTS=1 to accept\n--- expected\n{expected}\n--- actual\n{actual}"
    );
}

fn snapshot(name: &str, app: &App) {
    for (w, h) in [(80, 24), (120, 40)] {
        let buf = draw(app, &Theme::default_dark(), w, h);
        let t = text(&buf);
        assert!(
            !t.contains('\u{1b}'),
            "raw escape reached the screen in {name}"
        );
        check_snapshot(&format!("{name}_{w}x{h}"), &t);
    }
}

#[test]
fn devices_tab() {
    snapshot("devices", &sample_app(Tab::Devices));
}

/// An edge device with a child, and an X.509 device: the table marks the edge device, the
/// detail names children, parent and thumbprints.
#[test]
fn devices_edge_children_and_thumbprints() {
    let scope = "ms-azure-iot-edge://gw-1-637000000000000001";
    let identity = |v: serde_json::Value| -> DeviceIdentity { serde_json::from_value(v).unwrap() };
    let mut app = App::new(Config::default());
    let _ = app.start();
    update(
        &mut app,
        Action::Hub(HubEvent::DevicesPage {
            items: vec![
                identity(
                    json!({"deviceId": "gw-1", "capabilities": {"iotEdge": true},
                    "deviceScope": scope, "parentScopes": []}),
                ),
                identity(
                    json!({"deviceId": "leaf-1", "deviceScope": scope, "parentScopes": [scope]}),
                ),
                identity(
                    json!({"deviceId": "cam-1", "authentication": {"type": "selfSigned",
                    "x509Thumbprint": {"primaryThumbprint": "9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B", "secondaryThumbprint": null}}}),
                ),
            ],
            twins: Default::default(),
            continuation: None,
            replace: true,
        }),
    );
    let t = text(&draw(&app, &Theme::default_dark(), 120, 40));
    assert!(t.contains("gw-1 [edge]"), "{t}");
    assert!(t.contains("children (listed): 1"), "{t}");
    snapshot("devices_edge", &app);
    update(&mut app, Action::Down);
    let t = text(&draw(&app, &Theme::default_dark(), 120, 40));
    assert!(t.contains("parent: \"gw-1\""), "{t}");
    update(&mut app, Action::Down);
    let t = text(&draw(&app, &Theme::default_dark(), 120, 40));
    assert!(
        t.contains("primaryThumbprint: \"9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B\""),
        "{t}"
    );
}

#[test]
fn telemetry_tab() {
    let mut app = sample_app(Tab::Telemetry);
    update(&mut app, Action::ToggleChart);
    snapshot("telemetry", &app);
}

#[test]
fn telemetry_detail_and_diff() {
    let mut app = sample_app(Tab::Telemetry);
    update(&mut app, Action::Up);
    update(&mut app, Action::Up);
    update(&mut app, Action::Up);
    update(&mut app, Action::OpenDetail);
    snapshot("telemetry_detail", &app);
    update(&mut app, Action::ToggleDiff);
    snapshot("telemetry_diff", &app);
}

#[test]
fn twin_tab_sections_diff_and_editor() {
    let mut app = sample_app(Tab::Twin);
    snapshot("twin", &app);
    update(&mut app, Action::ToggleTwinView);
    snapshot("twin_diff", &app);
    update(&mut app, Action::EditDesired);
    update(
        &mut app,
        Action::Input(ratatui::crossterm::event::KeyEvent::from(
            ratatui::crossterm::event::KeyCode::Char('x'),
        )),
    );
    snapshot("twin_editor", &app);
}

/// Every diff state on a Plug and Play thermostat: an ack of `23.0` for desired `23` is in
/// sync, an ack of an older version is pending, an error code is refused with its text.
#[test]
fn twin_diff_plug_and_play_states() {
    let mut app = sample_app(Tab::Twin);
    update(
        &mut app,
        Action::Hub(HubEvent::Twin {
            device_id: "thermostat-a".into(),
            twin: json!({
                "deviceId": "thermostat-a", "etag": "AAAAAAAAAAY=", "version": 9,
                "modelId": "dtmi:com:example:Thermostat;1",
                "properties": {
                    "desired": {"targetTemperature": 23, "fanSpeed": 3, "setpointLow": 10,
                                "mode": "eco", "label": "hall", "$version": 2},
                    "reported": {
                        "targetTemperature": {"value": 23.0, "ac": 200, "av": 2, "ad": "applied"},
                        "fanSpeed": {"value": 2, "ac": 200, "av": 1},
                        "setpointLow": {"value": 12, "ac": 400, "av": 2, "ad": "below the minimum 12"},
                        "mode": "comfort",
                        "serialNumber": "SN-1",
                        "$version": 5
                    }
                }
            }),
        }),
    );
    update(&mut app, Action::ToggleTwinView);
    snapshot("twin_diff_pnp", &app);
}

/// Scrolled far down, then a shorter twin arrives (as after a PATCH): every pane still shows
/// its content, and the focused pane says which lines it shows.
#[test]
fn twin_panes_never_scroll_into_emptiness() {
    let mut app = sample_app(Tab::Twin);
    let long: serde_json::Map<String, serde_json::Value> =
        (0..40).map(|i| (format!("r{i:02}"), json!(i))).collect();
    let device = app.twin.device_id.clone().unwrap();
    let twin = |reported: serde_json::Value| {
        json!({"deviceId": device, "etag": "e", "version": 3, "tags": {"site": "x"},
            "properties": {"desired": {"t": 1, "$version": 2}, "reported": reported}})
    };
    update(
        &mut app,
        Action::Hub(HubEvent::Twin {
            device_id: device.clone(),
            twin: twin(serde_json::Value::Object(long)),
        }),
    );
    update(&mut app, Action::NextPane);
    for _ in 0..10 {
        update(&mut app, Action::PageDown);
        update(&mut app, Action::PageDown);
    }
    let theme = Theme::default_dark();
    let t = text(&draw(&app, &theme, 80, 24));
    assert!(t.contains("\"r39\": 39"), "{t}");
    assert!(t.contains("reported 32-42/42"), "{t}");
    assert!(t.contains("\"t\": 1"), "desired keeps its own offset:\n{t}");
    update(
        &mut app,
        Action::Hub(HubEvent::TwinUpdated {
            device_id: device.clone(),
            twin: twin(json!({"t": 1})),
        }),
    );
    let t = text(&draw(&app, &theme, 80, 24));
    assert!(t.contains("\"site\": \"x\""), "{t}");
    assert_eq!(
        t.matches("\"t\": 1").count(),
        2,
        "desired and reported:\n{t}"
    );
}

#[test]
fn the_message_detail_shows_the_rest_of_a_long_body() {
    let mut app = sample_app(Tab::Telemetry);
    let body = format!(
        "{{{}}}",
        (0..60)
            .map(|i| format!("\"k{i:02}\": {i}"))
            .collect::<Vec<_>>()
            .join(",")
    );
    update(&mut app, telemetry("dev-z", 59, body.as_bytes()));
    update(&mut app, Action::Bottom);
    update(&mut app, Action::OpenDetail);
    let theme = Theme::default_dark();
    assert!(!text(&draw(&app, &theme, 80, 24)).contains("\"k59\""));
    update(&mut app, Action::Bottom);
    let t = text(&draw(&app, &theme, 80, 24));
    assert!(t.contains("\"k59\": 59"), "{t}");
}

/// At 80 columns every tab's footer shows whole hints only, ends with "? more", and keeps
/// the tab's own keys that used to fall off the end.
#[test]
fn footers_fit_80_columns_with_whole_hints() {
    let theme = Theme::default_dark();
    let cases: &[(Tab, &[&str])] = &[
        (Tab::Devices, &["/ filter", "n new", "c connection string"]),
        (Tab::Telemetry, &["a all/one device", "c chart"]),
        (Tab::Twin, &["e edit desired", "a re-apply"]),
        (Tab::Methods, &["e edit call", "x invoke"]),
        (Tab::C2d, &["s send", "a ack mode"]),
    ];
    for (tab, wanted) in cases {
        let app = sample_app(*tab);
        let t = text(&draw(&app, &theme, 80, 24));
        let footer = t.lines().nth(22).unwrap().trim_end();
        assert!(footer.ends_with(" · ? more"), "{tab:?}: {footer}");
        for hint in footer.trim_end_matches(" · ? more").split(" · ") {
            let (key, desc) = hint.split_once(' ').unwrap();
            let known = crate::app::keymap::tab_table(*tab)
                .iter()
                .chain(crate::app::keymap::GLOBAL)
                .any(|b| b.desc == desc && crate::app::keymap::keys_label(b).starts_with(key));
            assert!(known, "{tab:?}: {hint:?} is not a whole hint in {footer}");
        }
        for w in *wanted {
            assert!(footer.contains(w), "{tab:?}: {w} missing from {footer}");
        }
        // At 120 columns every footer key of the tab fits.
        let wide = text(&draw(&app, &theme, 120, 40));
        let footer = wide.lines().nth(38).unwrap();
        for b in crate::app::keymap::tab_table(*tab)
            .iter()
            .filter(|b| b.footer)
        {
            let hint = format!("{} {}", crate::app::keymap::chord_label(&b.keys[0]), b.desc);
            assert!(
                footer.contains(&hint),
                "{tab:?}: {hint} missing from {footer}"
            );
        }
    }
}

/// A Plug and Play component's message names its component in the list.
#[test]
fn telemetry_rows_show_the_component() {
    let mut app = sample_app(Tab::Telemetry);
    update(
        &mut app,
        Action::Hub(HubEvent::Telemetry(TelemetryEvent {
            enqueued_time: Utc.with_ymd_and_hms(2024, 5, 1, 12, 0, 9).unwrap(),
            device_id: "thermostat-a".into(),
            module_id: None,
            partition: 0,
            sequence_number: 99,
            system_properties: vec![("dt-subject".into(), "thermostat1".into())],
            application_properties: vec![],
            body: br#"{"temperature":21.5}"#.to_vec(),
        })),
    );
    let t = text(&draw(&app, &Theme::default_dark(), 120, 40));
    assert!(t.contains(r#"[thermostat1] {"temperature":21.5}"#), "{t}");
}

#[test]
fn methods_tab() {
    snapshot("methods", &sample_app(Tab::Methods));
}

/// Editing the method name: the names the device answered before are offered.
#[test]
fn methods_tab_offers_known_names() {
    let mut app = sample_app(Tab::Methods);
    update(&mut app, Action::EditForm);
    snapshot("methods_known_names", &app);
}

#[test]
fn c2d_tab() {
    snapshot("c2d", &sample_app(Tab::C2d));
}

/// A device that rejects a message (or lets it expire or exceed its delivery count) shows
/// as feedback in warning colours; success in the ok colour.
#[test]
fn c2d_rejected_feedback_is_shown_as_a_warning() {
    let mut app = sample_app(Tab::C2d);
    update(&mut app, Action::CycleAck);
    let (_, cmds) = update(&mut app, Action::SendC2d);
    let [client::events::HubCommand::SendC2d(m)] = &cmds[..] else {
        panic!("{cmds:?}")
    };
    update(
        &mut app,
        Action::Hub(HubEvent::C2dFeedback {
            original_message_id: m.message_id.clone(),
            status: "Rejected".into(),
        }),
    );
    let theme = Theme::default_dark();
    let buf = draw(&app, &theme, 120, 40);
    let t = text(&buf);
    let (row, line) = t
        .lines()
        .enumerate()
        .find(|(_, l)| l.contains("feedback: Rejected"))
        .unwrap_or_else(|| panic!("no rejected feedback on screen:\n{t}"));
    let col = line.find("feedback: Rejected").unwrap();
    let col = line[..col].chars().count() as u16;
    let warn = theme.style(crate::ui::theme::Role::Warn).fg;
    assert_eq!(buf[(col, row as u16)].fg, warn.unwrap());
}

#[test]
fn help_overlay_and_confirmation() {
    let mut app = sample_app(Tab::Devices);
    update(&mut app, Action::ToggleHelp);
    snapshot("help_devices", &app);
    update(&mut app, Action::Back);
    update(&mut app, Action::DeleteDevice);
    snapshot("confirm_delete", &app);
}

#[test]
fn connection_string_panel_masks_keys() {
    let mut app = sample_app(Tab::Devices);
    update(&mut app, Action::ShowConnectionString);
    let t = text(&draw(&app, &Theme::default_dark(), 80, 24));
    assert!(t.contains("SharedAccessKey=****"), "{t}");
    update(&mut app, Action::RevealKeys);
    let t = text(&draw(&app, &Theme::default_dark(), 120, 24));
    assert!(t.contains("SharedAccessKey=a2V5"), "{t}");
}

#[test]
fn no_color_cells_carry_meaning_in_modifiers() {
    let app = sample_app(Tab::Devices);
    let buf = draw(&app, &Theme::no_color(), 80, 24);
    // Row 0: tabs bar; the active tab "1 Devices" starts at column 0.
    let active = &buf[(1, 0)];
    assert_eq!(active.symbol(), "1");
    assert_eq!(active.fg, Color::Reset);
    assert_eq!(active.bg, Color::Reset);
    assert!(
        active
            .modifier
            .contains(Modifier::REVERSED | Modifier::BOLD)
    );
    // The selected device row (first data row) is reversed.
    let (x, y) = find(&buf, "thermostat-a  ");
    assert_eq!(y, 4, "first table row");
    let cell = &buf[(x, y)];
    assert!(cell.modifier.contains(Modifier::REVERSED));
    assert_eq!(cell.fg, Color::Reset);
    // No cell anywhere has a colour.
    for cell in buf.content() {
        assert!(matches!(cell.fg, Color::Reset), "{cell:?}");
        assert!(matches!(cell.bg, Color::Reset), "{cell:?}");
    }
}

#[test]
fn default_theme_cells() {
    let app = sample_app(Tab::Twin);
    let theme = Theme::default_dark();
    let mut app = app;
    update(&mut app, Action::ToggleTwinView);
    let buf = draw(&app, &theme, 80, 24);
    let (x, y) = find(&buf, "differs");
    assert_eq!(buf[(x, y)].fg, Color::Red);
    assert!(buf[(x, y)].modifier.contains(Modifier::BOLD));
    let (x, y) = find(&buf, "reported-only");
    assert_eq!(buf[(x, y)].fg, Color::Blue);
    let (x, y) = find(&buf, "in sync");
    assert_eq!(buf[(x, y)].fg, Color::Green);
    // Status bar (last row) and banner (row 1).
    assert_eq!(buf[(0, 23)].bg, Color::Blue);
    assert_eq!(buf[(0, 1)].bg, Color::Yellow);
    // The high-contrast theme differs where it says so.
    let hc = Theme::load("high-contrast", None, false).unwrap();
    let buf = draw(&app, &hc, 80, 24);
    assert_eq!(buf[(0, 23)].bg, Color::White);
}

#[test]
fn the_status_bar_names_amqp_over_websockets() {
    let mut app = sample_app(Tab::Devices);
    app.config.amqp_over_websockets = true;
    let theme = Theme::default_dark();
    assert!(text(&draw(&app, &theme, 120, 40)).contains(" localhost (AMQP/WebSockets) │"));
    assert!(text(&draw(&app, &theme, 80, 24)).contains(" localhost (ws) │"));
}

#[test]
fn the_status_bar_counts_calls_and_says_when_the_hub_throttles() {
    let mut app = sample_app(Tab::Devices);
    app.status.calls_per_minute = Some(14);
    app.status.throttled = Some(std::time::Duration::from_millis(19_400));
    let theme = Theme::default_dark();
    let wide = text(&draw(&app, &theme, 120, 40));
    assert!(
        wide.contains("│ 14 calls/min │ throttled by the hub; retrying in 20 s"),
        "{wide}"
    );
    let narrow = text(&draw(&app, &theme, 80, 24));
    assert!(
        narrow.contains("│ 14 calls/min │ throttled, 20 s"),
        "{narrow}"
    );
}

#[test]
fn untrusted_ids_render_escaped() {
    let app = sample_app(Tab::Devices);
    let t = text(&draw(&app, &Theme::default_dark(), 120, 40));
    assert!(t.contains("evil\\x1b[31m-c"), "{t}");
}

fn find(buf: &Buffer, needle: &str) -> (u16, u16) {
    let t = text(buf);
    for (y, line) in t.lines().enumerate() {
        if let Some(byte) = line.find(needle) {
            let x = line[..byte].chars().count();
            return (x as u16, y as u16);
        }
    }
    panic!("{needle} not on screen:\n{t}")
}

/// The attach form over the twin, then the rollout of an asset on four devices: one
/// received, one failed with its reason, one fetching, one not yet read.
#[test]
fn twin_attach_asset_form_and_rollout() {
    use client::rollout::RolloutRow;
    use ratatui::crossterm::event::{KeyCode, KeyEvent};
    let mut app = sample_app(Tab::Twin);
    update(&mut app, Action::AttachAsset);
    for c in "./firmware-2.1.bin".chars() {
        update(&mut app, Action::Input(KeyEvent::from(KeyCode::Char(c))));
    }
    update(&mut app, Action::NextField);
    for c in "firmware".chars() {
        update(&mut app, Action::Input(KeyEvent::from(KeyCode::Char(c))));
    }
    snapshot("twin_attach_form", &app);
    update(&mut app, Action::Back);
    let uri = "https://localhost:8443/hubtui/assets/firmware/20261202T100000Z-firmware-2.1.bin?sv=2020-12-06&sr=b&sp=r&sig=x";
    let devices: Vec<String> = [
        "sim-thermostat-1",
        "sim-thermostat-2",
        "sim-camera-1",
        "sim-door-1",
    ]
    .map(String::from)
    .to_vec();
    update(
        &mut app,
        Action::Hub(HubEvent::AssetAttached {
            name: "firmware".into(),
            uri: uri.into(),
            devices: devices.clone(),
            failed: vec![],
        }),
    );
    let at = |s: u32| Some(format!("2026-12-02T10:00:0{s}.000Z"));
    let row = |id: &str, ack: bool, status: Option<&str>, reason: Option<&str>| RolloutRow {
        device_id: id.into(),
        desired: Some(uri.into()),
        acknowledged: ack.then(|| uri.into()),
        acknowledged_at: ack.then(|| at(1)).flatten(),
        current: (status == Some("received")).then(|| uri.into()),
        current_at: (status == Some("received")).then(|| at(2)).flatten(),
        status: status.map(String::from),
        status_at: status.and_then(|_| at(2)),
        reason: reason.map(String::from),
    };
    update(
        &mut app,
        Action::Hub(HubEvent::Rollout {
            name: "firmware".into(),
            rows: vec![
                row("sim-thermostat-1", true, Some("received"), None),
                row(
                    "sim-thermostat-2",
                    true,
                    Some("failed"),
                    Some("the storage service refused the download: 403 AuthenticationFailed"),
                ),
                row("sim-camera-1", true, None, None),
            ],
        }),
    );
    snapshot("twin_rollout", &app);
}
