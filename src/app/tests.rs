//! Update-function tests: each action changes state as expected, without a terminal.

use chrono::{TimeZone, Utc};
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use serde_json::json;

use super::*;
use client::events::{
    AckMode, HubEvent, LinkState, MethodFailure, MethodResponse, NewDeviceAuth, OnScreen,
    TelemetryEvent,
};
use iothub::device::{DeviceIdentity, DeviceStatus, SymmetricKey};
use iothub::twin::Section;

fn device(id: &str) -> DeviceIdentity {
    let mut d: DeviceIdentity = serde_json::from_value(json!({"deviceId": id})).unwrap();
    d.authentication.symmetric_key = Some(SymmetricKey {
        primary_key: Some("cHJpbWFyeWtleQ==".into()),
        secondary_key: None,
    });
    d
}

fn key(c: char) -> Action {
    Action::Input(KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE))
}

fn typed(app: &mut App, text: &str) {
    for c in text.chars() {
        update(app, key(c));
    }
}

fn page(ids: &[&str], continuation: Option<&str>, replace: bool) -> Action {
    Action::Hub(HubEvent::DevicesPage {
        items: ids.iter().map(|i| device(i)).collect(),
        twins: Default::default(),
        continuation: continuation.map(str::to_owned),
        replace,
    })
}

fn msg(device: &str, body: &str, second: u32) -> Action {
    Action::Hub(HubEvent::Telemetry(TelemetryEvent {
        enqueued_time: Utc.with_ymd_and_hms(2024, 5, 1, 12, 0, second).unwrap(),
        device_id: device.into(),
        module_id: None,
        partition: 0,
        sequence_number: second as i64,
        system_properties: vec![],
        application_properties: vec![],
        body: body.as_bytes().to_vec(),
    }))
}

fn app_with_devices() -> App {
    let mut app = App::new(Config::default());
    update(&mut app, page(&["dev-a", "dev-b", "dev-c"], None, true));
    app
}

/// On the Twin tab with this twin of dev-a loaded.
fn app_showing_twin(twin: serde_json::Value) -> App {
    let mut app = app_with_devices();
    update(&mut app, Action::SelectTab(Tab::Twin));
    update(
        &mut app,
        Action::Hub(HubEvent::Twin {
            device_id: "dev-a".into(),
            twin,
        }),
    );
    app
}

fn twin_json(desired_t: i64, etag: &str) -> serde_json::Value {
    json!({"deviceId": "dev-a", "etag": etag, "version": 3, "tags": {"site": "x"},
        "properties": {"desired": {"t": desired_t, "$version": 2},
                       "reported": {"t": 1, "$version": 5}}})
}

#[test]
fn start_loads_devices_and_telemetry() {
    let mut app = App::new(Config::default());
    let cmds = app.start();
    assert_eq!(cmds.len(), 3);
    assert_eq!(
        cmds[2],
        HubCommand::Visible(OnScreen {
            device_list: true,
            twin: None,
            module: None,
            rollout: None,
            files: None,
        })
    );
    assert!(app.devices.loading);
    assert!(app.needs_redraw());
    app.mark_drawn();
    assert!(!app.needs_redraw());
}

#[test]
fn tabs_switch_and_cycle() {
    let mut app = App::new(Config::default());
    assert!(!update(&mut app, Action::SelectTab(Tab::Devices)).0);
    assert!(update(&mut app, Action::NextTab).0);
    assert_eq!(app.tab, Tab::Telemetry);
    update(&mut app, Action::PrevTab);
    update(&mut app, Action::PrevTab);
    assert_eq!(app.tab, Tab::Files);
    update(&mut app, Action::Quit);
    assert!(app.should_quit);
}

#[test]
fn help_overlay_swallows_other_keys() {
    let mut app = App::new(Config::default());
    update(&mut app, Action::ToggleHelp);
    assert_eq!(app.mode(), Mode::Help);
    assert!(!update(&mut app, Action::NextTab).0);
    assert_eq!(app.tab, Tab::Devices);
    update(&mut app, Action::Back);
    assert!(!app.help);
}

#[test]
fn first_page_selects_and_carries_device() {
    let mut app = app_with_devices();
    assert_eq!(app.selected_device.as_deref(), Some("dev-a"));
    update(&mut app, Action::Down);
    assert_eq!(app.selected_device.as_deref(), Some("dev-b"));
    let (_, cmds) = update(&mut app, Action::SelectTab(Tab::Twin));
    assert_eq!(
        cmds,
        vec![
            HubCommand::GetTwin {
                device_id: "dev-b".into(),
                module_id: None
            },
            HubCommand::Visible(OnScreen {
                device_list: false,
                twin: Some("dev-b".into()),
                module: None,
                rollout: None,
                files: None,
            })
        ]
    );
}

/// The backend re-reads only what is on screen, so every change of it is sent once.
#[test]
fn the_backend_is_told_what_is_on_screen() {
    let mut app = app_with_devices();
    let visible = |cmds: Vec<HubCommand>| -> Vec<OnScreen> {
        cmds.into_iter()
            .filter_map(|c| match c {
                HubCommand::Visible(s) => Some(s),
                _ => None,
            })
            .collect()
    };
    let twin_of = |id: &str| OnScreen {
        device_list: false,
        twin: Some(id.into()),
        module: None,
        rollout: None,
        files: None,
    };
    assert_eq!(
        visible(update(&mut app, Action::SelectTab(Tab::Telemetry)).1),
        [OnScreen::default()]
    );
    assert!(visible(update(&mut app, Action::Down).1).is_empty());
    assert_eq!(
        visible(update(&mut app, Action::SelectTab(Tab::Twin)).1),
        [twin_of("dev-a")]
    );
    assert!(
        visible(update(&mut app, Action::Down).1).is_empty(),
        "scrolling the twin"
    );
    assert_eq!(
        visible(update(&mut app, Action::SelectTab(Tab::Methods)).1),
        [OnScreen::default()]
    );
    update(&mut app, Action::SelectTab(Tab::Devices));
    update(&mut app, Action::Down);
    assert_eq!(
        visible(update(&mut app, Action::SelectTab(Tab::Twin)).1),
        [twin_of("dev-b")]
    );
    assert_eq!(
        visible(update(&mut app, Action::SelectTab(Tab::Devices)).1),
        [OnScreen {
            device_list: true,
            twin: None,
            module: None,
            rollout: None,
            files: None,
        }]
    );
}

#[test]
fn throttling_and_the_call_rate_reach_the_status_bar() {
    let mut app = App::new(Config::default());
    update(
        &mut app,
        Action::Hub(HubEvent::ServiceCalls { per_minute: 12 }),
    );
    assert_eq!(app.status.calls_per_minute, Some(12));
    let pause = std::time::Duration::from_secs(20);
    update(
        &mut app,
        Action::Hub(HubEvent::Throttled {
            retry_in: Some(pause),
        }),
    );
    assert_eq!(app.status.throttled, Some(pause));
    update(
        &mut app,
        Action::Hub(HubEvent::Throttled { retry_in: None }),
    );
    assert_eq!(app.status.throttled, None);
    // Without a call to end it, the note goes when the pause does.
    update(
        &mut app,
        Action::Hub(HubEvent::Throttled {
            retry_in: Some(pause),
        }),
    );
    let end = app.next_tick().expect("the pause's end");
    assert!(
        !update(
            &mut app,
            Action::Tick(end - std::time::Duration::from_millis(1))
        )
        .0
    );
    assert!(update(&mut app, Action::Tick(end)).0);
    assert_eq!(app.status.throttled, None);
    assert_eq!(app.next_tick(), None);
}

#[test]
fn scrolling_near_the_end_fetches_next_page_once() {
    let mut app = App::new(Config::default());
    let (_, cmds) = update(&mut app, page(&["a", "b"], Some("tok1"), true));
    assert_eq!(
        cmds,
        vec![HubCommand::LoadDevices {
            continuation: Some("tok1".into()),
            filter: None
        }]
    );
    let (_, again) = update(&mut app, Action::Down);
    assert!(again.is_empty(), "a page is already loading");
    update(&mut app, page(&["c"], None, false));
    assert_eq!(app.devices.items.len(), 3);
    assert!(app.devices.continuation.is_none());
}

#[test]
fn filter_prompt_reloads_with_filter() {
    let mut app = app_with_devices();
    update(&mut app, Action::StartFilter);
    assert_eq!(app.mode(), Mode::Prompt);
    typed(&mut app, "b");
    assert!(update(&mut app, key('q')).0, "q is text in a prompt");
    assert!(!app.should_quit);
    update(
        &mut app,
        Action::Input(KeyEvent::new(KeyCode::Backspace, KeyModifiers::NONE)),
    );
    let (_, cmds) = update(&mut app, Action::Submit);
    assert_eq!(
        cmds,
        vec![HubCommand::LoadDevices {
            continuation: None,
            filter: Some("b".into())
        }]
    );
    assert_eq!(app.devices.visible().len(), 1);
}

#[test]
fn create_device_form_validates() {
    let mut app = app_with_devices();
    update(&mut app, Action::NewDevice);
    assert_eq!(app.mode(), Mode::Form);
    typed(&mut app, "bad id");
    let (_, cmds) = update(&mut app, Action::Submit);
    assert!(cmds.is_empty());
    assert!(
        app.devices
            .create
            .as_ref()
            .unwrap()
            .error
            .as_ref()
            .unwrap()
            .contains("' '")
    );
    update(
        &mut app,
        Action::Input(KeyEvent::new(KeyCode::Char('u'), KeyModifiers::CONTROL)),
    );
    typed(&mut app, "new1");
    update(&mut app, Action::NextField);
    update(&mut app, key(' '));
    update(&mut app, Action::NextField);
    typed(&mut app, "AB12");
    let (_, cmds) = update(&mut app, Action::Submit);
    assert_eq!(
        cmds,
        vec![HubCommand::CreateDevice {
            device_id: "new1".into(),
            auth: NewDeviceAuth::X509 {
                primary_thumbprint: "AB12".into(),
                secondary_thumbprint: None
            }
        }]
    );
    assert!(app.devices.create.is_none());
}

#[test]
fn disable_and_delete_with_confirmation() {
    let mut app = app_with_devices();
    let (_, cmds) = update(&mut app, Action::ToggleDeviceStatus);
    assert_eq!(
        cmds,
        vec![HubCommand::SetDeviceStatus {
            device_id: "dev-a".into(),
            status: DeviceStatus::Disabled
        }]
    );
    let (_, cmds) = update(&mut app, Action::DeleteDevice);
    assert!(cmds.is_empty());
    assert_eq!(app.mode(), Mode::Confirm);
    let (_, cmds) = update(&mut app, Action::ConfirmNo);
    assert!(cmds.is_empty());
    update(&mut app, Action::DeleteDevice);
    let (_, cmds) = update(&mut app, Action::ConfirmYes);
    assert_eq!(
        cmds,
        vec![HubCommand::DeleteDevice {
            device_id: "dev-a".into()
        }]
    );
    update(
        &mut app,
        Action::Hub(HubEvent::DeviceDeleted {
            device_id: "dev-a".into(),
        }),
    );
    assert_eq!(app.devices.items.len(), 2);
    assert_eq!(app.selected_device.as_deref(), Some("dev-b"));
}

#[test]
fn connection_string_masked_until_revealed_and_copied() {
    let mut app = app_with_devices();
    update(&mut app, Action::ShowConnectionString);
    assert_eq!(app.mode(), Mode::Secret);
    let d = app.devices.selected_device().unwrap().clone();
    assert_eq!(
        devices::connection_string("localhost", &d, false).unwrap(),
        "HostName=localhost;DeviceId=dev-a;SharedAccessKey=****"
    );
    update(&mut app, Action::RevealKeys);
    assert!(app.devices.secret.as_ref().unwrap().revealed);
    update(&mut app, Action::Copy);
    assert_eq!(
        app.take_clipboard().unwrap(),
        "HostName=localhost;DeviceId=dev-a;SharedAccessKey=cHJpbWFyeWtleQ=="
    );
    assert!(app.take_clipboard().is_none());
    update(&mut app, Action::Back);
    assert_eq!(app.mode(), Mode::Normal);
}

#[test]
fn telemetry_ring_drops_and_pause_freezes_view() {
    let mut app = App::new(Config {
        telemetry_capacity: 3,
        ..Config::default()
    });
    app.tab = Tab::Telemetry;
    for i in 0..5 {
        update(&mut app, msg("d1", &format!("{{\"t\": {i}}}"), i));
    }
    assert_eq!(app.telemetry.ring.len(), 3);
    assert_eq!(app.telemetry.ring.dropped(), 2);
    assert_eq!(app.telemetry.view.len(), 3);
    update(&mut app, Action::TogglePause);
    update(&mut app, msg("d1", "{\"t\": 9}", 9));
    assert_eq!(
        app.telemetry.shown().1,
        2,
        "one row fell out, the new one is held back"
    );
    assert_eq!(app.telemetry.held_back(), 1);
    update(&mut app, Action::TogglePause);
    assert_eq!(app.telemetry.shown().1, 3);
    assert_eq!(app.telemetry.chart.field.as_deref(), Some("t"));
    assert_eq!(app.telemetry.chart.latest(), Some(9.0));
}

#[test]
fn telemetry_scope_filter_and_detail_diff() {
    let mut app = app_with_devices();
    update(&mut app, Action::SelectTab(Tab::Telemetry));
    update(&mut app, msg("dev-a", r#"{"t": 1}"#, 1));
    update(&mut app, msg("dev-b", "hello", 2));
    update(&mut app, msg("dev-a", r#"{"t": 2}"#, 3));
    update(&mut app, Action::ToggleScope);
    assert_eq!(app.telemetry.view.len(), 2);
    update(&mut app, Action::ToggleScope);
    update(&mut app, Action::StartFilter);
    typed(&mut app, "hel");
    update(&mut app, Action::Submit);
    assert_eq!(app.telemetry.view.len(), 1);
    update(&mut app, Action::StartFilter);
    update(
        &mut app,
        Action::Input(KeyEvent::new(KeyCode::Char('u'), KeyModifiers::CONTROL)),
    );
    update(&mut app, Action::Submit);
    assert_eq!(app.telemetry.view.len(), 3);
    update(&mut app, Action::OpenDetail);
    assert_eq!(app.mode(), Mode::Detail);
    let detail = app.telemetry.detail.clone().unwrap();
    assert_eq!(detail.id, 2);
    let diff = detail.diff.unwrap();
    assert_eq!(diff[0].text, "t: 1 → 2");
    update(&mut app, Action::ToggleDiff);
    assert!(app.telemetry.detail.as_ref().unwrap().show_diff);
    update(&mut app, Action::Up);
    assert_eq!(app.telemetry.detail.as_ref().unwrap().id, 1);
    update(&mut app, Action::Back);
    assert_eq!(app.mode(), Mode::Normal);
}

#[test]
fn telemetry_chart_field_change_reads_bodies_again() {
    let mut app = App::new(Config::default());
    app.tab = Tab::Telemetry;
    update(&mut app, msg("d", r#"{"t": 1, "h": {"x": 5}}"#, 0));
    update(&mut app, msg("d", "not json", 1));
    update(&mut app, msg("d", r#"{"t": 2, "h": {"x": 6}, "n": 0}"#, 2));
    update(&mut app, msg("d", r#"{"h": {"x": 7}, "broken": "#, 3));
    let t = &app.telemetry;
    assert_eq!(t.chart.field.as_deref(), Some("t"));
    assert_eq!(
        t.chart.points.iter().map(|p| p.1).collect::<Vec<_>>(),
        [1.0, 2.0]
    );
    assert_eq!(t.fields.iter().collect::<Vec<_>>(), ["h.x", "n", "t"]);
    update(&mut app, Action::NextChartField);
    let t = &app.telemetry;
    assert_eq!(
        t.chart.field.as_deref(),
        Some("h.x"),
        "after the last, the first"
    );
    assert_eq!(
        t.chart.points.iter().map(|p| p.1).collect::<Vec<_>>(),
        [5.0, 6.0]
    );
    update(&mut app, Action::NextChartField);
    let t = &app.telemetry;
    assert_eq!(t.chart.field.as_deref(), Some("n"));
    assert_eq!(
        t.chart.points.iter().map(|p| p.1).collect::<Vec<_>>(),
        [0.0]
    );
}

#[test]
fn telemetry_filter_ignores_case_in_any_script() {
    let mut app = App::new(Config::default());
    app.tab = Tab::Telemetry;
    update(&mut app, msg("Gerät-1", r#"{"s": "ÜBER"}"#, 0));
    update(&mut app, msg("dev-2", "Hello World", 1));
    update(&mut app, msg("dev-3", "plain", 2));
    for (filter, shown) in [
        ("WORLD", 1),
        ("gerät", 1),
        ("über", 1),
        ("DEV-", 2),
        ("ö", 0),
    ] {
        update(&mut app, Action::StartFilter);
        update(
            &mut app,
            Action::Input(KeyEvent::new(KeyCode::Char('u'), KeyModifiers::CONTROL)),
        );
        typed(&mut app, filter);
        update(&mut app, Action::Submit);
        assert_eq!(app.telemetry.view.len(), shown, "{filter}");
    }
    // New messages are filtered as they arrive.
    update(&mut app, msg("dev-4", "nothing", 3));
    update(&mut app, msg("dev-5", "Föö", 4));
    assert_eq!(app.telemetry.view.len(), 1);
}

#[test]
fn telemetry_prompts_make_commands() {
    let mut app = App::new(Config::default());
    app.tab = Tab::Telemetry;
    update(&mut app, msg("d", "{\"a\":1}", 0));
    update(&mut app, Action::Export);
    let (_, cmds) = update(&mut app, Action::Submit);
    match &cmds[..] {
        [
            HubCommand::ExportTelemetry {
                path,
                contents,
                count,
            },
        ] => {
            assert_eq!(path.to_str(), Some("telemetry.jsonl"));
            assert_eq!(*count, 1);
            let line: serde_json::Value = serde_json::from_str(contents.trim()).unwrap();
            assert_eq!(line["body"], json!({"a": 1}));
            assert_eq!(line["deviceId"], "d");
        }
        other => panic!("{other:?}"),
    }
    update(&mut app, Action::StartFrom);
    update(
        &mut app,
        Action::Input(KeyEvent::new(KeyCode::Char('u'), KeyModifiers::CONTROL)),
    );
    typed(&mut app, "-10m");
    let (_, cmds) = update(&mut app, Action::Submit);
    assert_eq!(
        cmds,
        vec![HubCommand::StartTelemetry {
            from: client::events::StartFrom::Ago(std::time::Duration::from_secs(600)),
            consumer_group: "$Default".into()
        }]
    );
    update(&mut app, Action::StartFrom);
    typed(&mut app, "x");
    let (_, cmds) = update(&mut app, Action::Submit);
    assert!(cmds.is_empty());
    assert!(app.status.last_error.as_ref().unwrap().contains("nowx"));
}

#[test]
fn twin_edit_patch_conflict_and_reapply() {
    let mut app = app_showing_twin(twin_json(5, "etag1"));
    assert!(app.twin.view.is_some());
    update(&mut app, Action::EditDesired);
    assert_eq!(app.mode(), Mode::Editor);
    // Replace "5" with "7": the cursor starts at the top; edit via the editor text.
    let edit = app.twin.edit.as_mut().unwrap();
    edit.editor.set_text("{\n  \"t\": 7\n}");
    let (_, cmds) = update(&mut app, Action::Submit);
    let mut expected_patch = serde_json::Map::new();
    expected_patch.insert("t".into(), json!(7));
    assert_eq!(
        cmds,
        vec![HubCommand::PatchTwin {
            device_id: "dev-a".into(),
            module_id: None,
            section: Section::Desired,
            patch: expected_patch.clone(),
            etag: "etag1".into()
        }]
    );
    update(
        &mut app,
        Action::Hub(HubEvent::TwinConflict {
            device_id: "dev-a".into(),
            current: twin_json(6, "etag2"),
        }),
    );
    assert!(app.twin.conflict);
    assert!(app.twin.edit.is_some(), "the edit is kept");
    assert!(
        app.twin
            .view
            .as_ref()
            .unwrap()
            .changed
            .contains("desired.t")
    );
    let (_, cmds) = update(&mut app, Action::Reapply);
    assert_eq!(
        cmds,
        vec![HubCommand::PatchTwin {
            device_id: "dev-a".into(),
            module_id: None,
            section: Section::Desired,
            patch: expected_patch,
            etag: "etag2".into()
        }]
    );
    update(
        &mut app,
        Action::Hub(HubEvent::TwinUpdated {
            device_id: "dev-a".into(),
            twin: twin_json(7, "etag3"),
        }),
    );
    assert!(app.twin.edit.is_none());
    assert_eq!(app.status.notice.as_deref(), Some("twin updated"));
}

#[test]
fn twin_editor_shows_json_errors_and_refuses_to_send() {
    let mut app = app_showing_twin(twin_json(5, "e"));
    update(&mut app, Action::EditTags);
    assert!(update(&mut app, key('x')).0);
    let status = &app.twin.edit.as_ref().unwrap().editor.status;
    assert!(status.is_err());
    let (_, cmds) = update(&mut app, Action::Submit);
    assert!(cmds.is_empty());
    assert!(app.status.last_error.as_ref().unwrap().contains("line 1"));
    update(&mut app, Action::Back);
    assert_eq!(app.mode(), Mode::Normal);
    update(&mut app, Action::EditTags);
    assert!(
        app.twin
            .edit
            .as_ref()
            .unwrap()
            .editor
            .text()
            .starts_with('x'),
        "edit kept"
    );
}

#[test]
fn drastic_method_names_are_recognised() {
    for name in [
        "reboot",
        "Reboot",
        "RESET",
        "factory-reset",
        "factory_reset",
        "FactoryReset",
    ] {
        assert!(methods::is_drastic(name), "{name}");
    }
    for name in ["rebootLater", "setInterval", "", "re-boot-now", "factory"] {
        assert!(!methods::is_drastic(name), "{name}");
    }
}

#[test]
fn a_reboot_asks_once_and_no_sends_nothing() {
    let mut app = app_with_devices();
    update(&mut app, Action::SelectTab(Tab::Methods));
    update(&mut app, Action::EditForm);
    typed(&mut app, "Factory_Reset");
    let (_, cmds) = update(&mut app, Action::Submit);
    assert!(cmds.is_empty(), "{cmds:?}");
    assert_eq!(app.mode(), Mode::Confirm);
    assert!(
        app.confirm
            .as_ref()
            .unwrap()
            .question
            .contains("Factory_Reset on dev-a")
    );
    let (_, cmds) = update(&mut app, Action::ConfirmNo);
    assert!(cmds.is_empty());
    assert!(app.methods.calls(Some("dev-a")).is_empty());
    // Yes sends it, once, without a second question.
    update(&mut app, Action::Invoke);
    let (_, cmds) = update(&mut app, Action::ConfirmYes);
    assert!(
        matches!(&cmds[..], [HubCommand::InvokeMethod { name, .. }] if name == "Factory_Reset"),
        "{cmds:?}"
    );
    assert!(app.confirm.is_none());
    assert_eq!(app.methods.calls(Some("dev-a")).len(), 1);
}

#[test]
fn method_call_result_history_and_rerun() {
    let mut app = app_with_devices();
    update(&mut app, Action::SelectTab(Tab::Methods));
    update(&mut app, Action::EditForm);
    typed(&mut app, "setInterval");
    let (_, cmds) = update(&mut app, Action::Submit);
    let [HubCommand::InvokeMethod { call_id, name, .. }] = &cmds[..] else {
        panic!("{cmds:?}")
    };
    assert_eq!(name, "setInterval");
    let first = *call_id;
    assert_eq!(
        app.methods.form.name.value(),
        "setInterval",
        "form keeps its contents"
    );
    update(
        &mut app,
        Action::Hub(HubEvent::MethodResult {
            call_id: first,
            result: Ok(MethodResponse {
                status: 200,
                payload: json!({"ok": true}),
            }),
        }),
    );
    let shown = app.methods.shown_call(Some("dev-a")).unwrap();
    assert!(matches!(
        &shown.outcome,
        methods::CallOutcome::Answered { status: 200, .. }
    ));
    update(&mut app, Action::Copy);
    assert_eq!(app.take_clipboard().as_deref(), Some("{\"ok\":true}"));
    let (_, cmds) = update(&mut app, Action::Rerun);
    let [HubCommand::InvokeMethod { call_id, .. }] = &cmds[..] else {
        panic!()
    };
    update(
        &mut app,
        Action::Hub(HubEvent::MethodResult {
            call_id: *call_id,
            result: Err(MethodFailure {
                http_status: Some(404),
                message: "x".into(),
            }),
        }),
    );
    let calls = app.methods.calls(Some("dev-a"));
    assert_eq!(calls.len(), 2);
    let methods::CallOutcome::Failed(text) = &calls[1].outcome else {
        panic!()
    };
    assert!(text.contains("not connected"));
    update(&mut app, Action::Down);
    assert_eq!(app.methods.selected, 1);
}

/// Calls `name` on dev-a from the form and gives it `status` as the device's answer.
fn call_answered(app: &mut App, name: &str, status: i32) {
    update(app, Action::EditForm);
    app.methods.form.name.set(name);
    let (_, cmds) = update(app, Action::Submit);
    let [HubCommand::InvokeMethod { call_id, .. }] = &cmds[..] else {
        panic!("{cmds:?}")
    };
    let call_id = *call_id;
    update(
        app,
        Action::Hub(HubEvent::MethodResult {
            call_id,
            result: Ok(MethodResponse {
                status,
                payload: json!(null),
            }),
        }),
    );
}

#[test]
fn the_method_name_offers_what_the_device_answered_and_its_models_methods() {
    let mut app = app_with_devices();
    let summary = client::events::TwinSummary {
        model_id: "dtmi:hubtui:simulator:DoorLock;1".into(),
        tags: Default::default(),
        modules: None,
    };
    app.devices.twins.insert("dev-a".into(), summary);
    update(&mut app, Action::SelectTab(Tab::Methods));
    call_answered(&mut app, "setInterval", 200);
    call_answered(&mut app, "selfTest", 501);
    call_answered(&mut app, "unlock", 200);
    // Newest answered first, 501 (not implemented) left out, then the model's methods.
    assert_eq!(
        methods::known_methods(&app, "dev-a"),
        ["unlock", "setInterval", "lock", "reboot"]
    );
    assert!(methods::known_methods(&app, "dev-b").is_empty());

    // Down and Up in the name field walk the list, wrapping; typing still works.
    update(&mut app, Action::EditForm);
    app.methods.form.name.set("");
    let down = Action::Input(KeyEvent::new(KeyCode::Down, KeyModifiers::NONE));
    let up = Action::Input(KeyEvent::new(KeyCode::Up, KeyModifiers::NONE));
    update(&mut app, down.clone());
    assert_eq!(app.methods.form.name.value(), "unlock");
    update(&mut app, down.clone());
    assert_eq!(app.methods.form.name.value(), "setInterval");
    update(&mut app, up.clone());
    update(&mut app, up.clone());
    assert_eq!(app.methods.form.name.value(), "reboot", "wraps around");
    typed(&mut app, "2");
    assert_eq!(app.methods.form.name.value(), "reboot2");
}

#[test]
fn method_form_rejects_bad_timeouts() {
    let mut app = app_with_devices();
    update(&mut app, Action::SelectTab(Tab::Methods));
    update(&mut app, Action::EditForm);
    typed(&mut app, "m");
    update(&mut app, Action::NextField);
    update(
        &mut app,
        Action::Input(KeyEvent::new(KeyCode::Char('u'), KeyModifiers::CONTROL)),
    );
    typed(&mut app, "1");
    let (_, cmds) = update(&mut app, Action::Submit);
    assert!(cmds.is_empty());
    assert!(app.methods.form_error.as_ref().unwrap().contains("5..=300"));
}

#[test]
fn c2d_send_feedback_and_purge() {
    let mut app = app_with_devices();
    update(&mut app, Action::SelectTab(Tab::C2d));
    update(&mut app, Action::CycleAck);
    let (_, cmds) = update(&mut app, Action::SendC2d);
    let [HubCommand::SendC2d(m)] = &cmds[..] else {
        panic!("{cmds:?}")
    };
    assert_eq!(m.ack, AckMode::Positive);
    assert_eq!(m.device_id, "dev-a");
    let id = m.message_id.clone();
    assert!(id.starts_with("hubtui-"));
    update(
        &mut app,
        Action::Hub(HubEvent::C2dFeedback {
            original_message_id: id.clone(),
            status: "success".into(),
        }),
    );
    update(&mut app, Action::Hub(HubEvent::C2dSent { message_id: id }));
    assert_eq!(
        app.c2d.sent[0].delivery,
        c2d::Delivery::Feedback("success".into())
    );
    update(&mut app, Action::PurgeQueue);
    let (_, cmds) = update(&mut app, Action::ConfirmYes);
    assert_eq!(
        cmds,
        vec![HubCommand::PurgeC2d {
            device_id: "dev-a".into()
        }]
    );
}

#[test]
fn status_bar_tracks_links_and_errors() {
    let mut app = App::new(Config::default());
    app.mark_drawn();
    let ev = Action::Hub(HubEvent::ConnectionState {
        backend: client::events::Backend::Telemetry,
        state: LinkState::Connected,
        detail: None,
    });
    assert!(update(&mut app, ev.clone()).0);
    assert!(app.needs_redraw());
    app.mark_drawn();
    assert!(!update(&mut app, ev).0, "same state: no redraw");
    assert!(!app.needs_redraw());
    update(&mut app, Action::Hub(HubEvent::Error("boom\x1b[2J".into())));
    assert_eq!(app.status.last_error.as_deref(), Some("boom\\x1b[2J"));
    update(&mut app, Action::Back);
    assert!(app.status.last_error.is_none());
}

#[test]
fn unknown_keys_change_nothing() {
    let mut app = App::new(Config::default());
    app.mark_drawn();
    assert_eq!(update(&mut app, Action::Copy), (false, vec![]));
    assert_eq!(update(&mut app, Action::Reapply), (false, vec![]));
    assert!(!app.needs_redraw());
}

#[test]
fn a_flood_of_messages_marks_one_redraw() {
    let mut app = App::new(Config {
        telemetry_capacity: 100,
        ..Config::default()
    });
    app.mark_drawn();
    for i in 0..1_000u32 {
        update(&mut app, msg("d", "{\"n\": 1}", i % 60));
    }
    assert!(app.needs_redraw());
    app.mark_drawn();
    assert!(!app.needs_redraw(), "one frame covers the whole burst");
    assert_eq!(app.telemetry.ring.len(), 100);
    assert_eq!(app.telemetry.ring.dropped(), 900);
    assert_eq!(app.telemetry.view.len(), 100);
}

/// A twin whose reported section is `n` leaves long.
fn long_twin(n: usize, etag: &str) -> serde_json::Value {
    let reported: serde_json::Map<String, serde_json::Value> =
        (0..n).map(|i| (format!("r{i:02}"), json!(i))).collect();
    json!({"deviceId": "dev-a", "etag": etag, "version": 3, "tags": {},
        "properties": {"desired": {"t": 1, "$version": 2}, "reported": reported}})
}

#[test]
fn twin_panes_scroll_one_at_a_time_and_stay_inside_their_content() {
    let mut app = app_showing_twin(long_twin(40, "e1"));
    assert_eq!(app.twin.pane, twin::TwinPane::Desired);
    // Desired is three lines: it does not scroll past its end.
    for _ in 0..5 {
        update(&mut app, Action::PageDown);
    }
    assert_eq!(app.twin.scroll[1].first_visible(3, 1), 2);
    update(&mut app, Action::NextPane);
    assert_eq!(app.twin.pane, twin::TwinPane::Reported);
    for _ in 0..10 {
        update(&mut app, Action::PageDown);
    }
    // 42 lines ({, 40 leaves, }): the offset stops at the last line, the others kept theirs.
    assert_eq!(app.twin.scroll[2].first_visible(42, 1), 41);
    assert_eq!(app.twin.scroll[0], scroll::Scroll::default());
    assert!(update(&mut app, Action::Up).0, "one key up moves at once");
    update(&mut app, Action::NextPane);
    assert_eq!(app.twin.pane, twin::TwinPane::Tags);
    update(&mut app, Action::PrevPane);
    update(&mut app, Action::PrevPane);
    assert_eq!(app.twin.pane, twin::TwinPane::Desired);
}

#[test]
fn the_message_detail_scrolls_its_body() {
    let mut app = App::new(Config::default());
    let body: String = format!(
        "{{{}}}",
        (0..60)
            .map(|i| format!("\"k{i}\": {i}"))
            .collect::<Vec<_>>()
            .join(",")
    );
    update(&mut app, msg("dev-a", &body, 1));
    update(&mut app, Action::SelectTab(Tab::Telemetry));
    update(&mut app, Action::OpenDetail);
    assert_eq!(app.mode(), Mode::Detail);
    assert!(update(&mut app, Action::PageDown).0);
    let scroll = app.telemetry.detail.as_ref().unwrap().scroll;
    assert_eq!(scroll.first_visible(1000, 1), 10);
    update(&mut app, Action::Bottom);
    let end = app.telemetry.detail.as_ref().unwrap().scroll;
    assert!(end.first_visible(1000, 1) >= 60, "{end:?}");
    assert!(!update(&mut app, Action::PageDown).0, "already at the end");
    update(&mut app, Action::Top);
    assert_eq!(
        app.telemetry.detail.as_ref().unwrap().scroll,
        scroll::Scroll::default()
    );
}

#[test]
fn notices_expire_errors_stay() {
    let mut app = app_with_devices();
    update(&mut app, Action::ShowConnectionString);
    update(&mut app, Action::Copy);
    let until = app.notice_expires().expect("a notice with an end");
    app.status.last_error = Some("boom".into());
    assert!(
        !update(
            &mut app,
            Action::Tick(until - std::time::Duration::from_millis(1))
        )
        .0
    );
    assert!(app.status.notice.is_some());
    assert!(update(&mut app, Action::Tick(until)).0);
    assert_eq!(app.status.notice, None);
    assert_eq!(app.notice_expires(), None);
    assert_eq!(app.status.last_error.as_deref(), Some("boom"));
}

#[test]
fn a_query_condition_filters_on_the_hub_not_by_id() {
    let mut app = app_with_devices();
    update(&mut app, Action::StartFilter);
    typed(&mut app, "tags.site = 'lab'");
    let (_, cmds) = update(&mut app, Action::Submit);
    assert_eq!(
        cmds,
        vec![HubCommand::LoadDevices {
            continuation: None,
            filter: Some("tags.site = 'lab'".into())
        }]
    );
    update(&mut app, page(&["dev-b"], None, true));
    let shown: Vec<_> = app
        .devices
        .visible()
        .iter()
        .map(|d| d.device_id.clone())
        .collect();
    assert_eq!(
        shown,
        ["dev-b"],
        "the hub's answer is not filtered again by id"
    );
}

#[test]
fn a_function_condition_without_spaces_filters_on_the_hub_too() {
    let mut app = app_with_devices();
    update(&mut app, Action::StartFilter);
    typed(&mut app, "IS_DEFINED(tags.site)");
    let (_, cmds) = update(&mut app, Action::Submit);
    assert_eq!(
        cmds,
        vec![HubCommand::LoadDevices {
            continuation: None,
            filter: Some("IS_DEFINED(tags.site)".into())
        }]
    );
    update(&mut app, page(&["dev-b"], None, true));
    let shown: Vec<_> = app
        .devices
        .visible()
        .iter()
        .map(|d| d.device_id.clone())
        .collect();
    assert_eq!(shown, ["dev-b"], "not narrowed again as an id substring");
}

#[test]
fn the_identity_detail_masks_keys_and_tags_read_as_pairs() {
    let shown = devices::masked_identity(&device("dev-a")).to_string();
    assert!(!shown.contains("cHJpbWFyeWtleQ=="), "{shown}");
    assert!(shown.contains(devices::MASK), "{shown}");
    let tags = json!({"site": "lab", "floor": 2, "owner": {"team": "x"}});
    assert_eq!(
        devices::tags_summary(tags.as_object().unwrap()),
        r#"site=lab floor=2 owner={"team":"x"}"#
    );
}

#[test]
fn model_ids_and_tags_of_a_page_are_kept_by_device() {
    let mut app = App::new(Config::default());
    let summary = client::events::TwinSummary {
        model_id: "dtmi:x;1".into(),
        tags: json!({"site": "lab"}).as_object().unwrap().clone(),
        modules: Some(1),
    };
    update(
        &mut app,
        Action::Hub(HubEvent::DevicesPage {
            items: vec![device("a")],
            twins: [("a".to_string(), summary.clone())].into(),
            continuation: None,
            replace: true,
        }),
    );
    assert_eq!(app.devices.twins.get("a"), Some(&summary));
    update(&mut app, page(&["b"], None, true));
    assert!(
        app.devices.twins.is_empty(),
        "a new list forgets the old twins"
    );
}

#[test]
fn m_walks_through_the_modules_and_twin_and_methods_follow() {
    let mut app = app_with_devices();
    update(&mut app, Action::SelectTab(Tab::Twin));
    let (_, cmds) = update(&mut app, Action::NextModule);
    assert_eq!(
        cmds,
        vec![HubCommand::ListModules {
            device_id: "dev-a".into()
        }]
    );
    let (_, cmds) = update(
        &mut app,
        Action::Hub(HubEvent::Modules {
            device_id: "dev-a".into(),
            module_ids: vec!["m1".into(), "m2".into()],
        }),
    );
    assert_eq!(app.selected_module.as_deref(), Some("m1"));
    assert!(cmds.contains(&HubCommand::GetTwin {
        device_id: "dev-a".into(),
        module_id: Some("m1".into())
    }));
    assert!(cmds.contains(&HubCommand::Visible(OnScreen {
        device_list: false,
        twin: Some("dev-a".into()),
        module: Some("m1".into()),
        rollout: None,
        files: None,
    })));
    // The device's own twin arriving late is not the module's.
    assert!(
        !update(
            &mut app,
            Action::Hub(HubEvent::Twin {
                device_id: "dev-a".into(),
                twin: twin_json(5, "e"),
            })
        )
        .0
    );
    let mut module_twin = twin_json(5, "e");
    module_twin["moduleId"] = json!("m1");
    update(
        &mut app,
        Action::Hub(HubEvent::Twin {
            device_id: "dev-a".into(),
            twin: module_twin,
        }),
    );
    assert!(app.twin.view.is_some());
    assert_eq!(app.target_label().as_deref(), Some("dev-a/m1"));
    // Methods call the module.
    update(&mut app, Action::SelectTab(Tab::Methods));
    update(&mut app, Action::EditForm);
    typed(&mut app, "ping");
    let (_, cmds) = update(&mut app, Action::Submit);
    assert!(
        matches!(&cmds[..], [HubCommand::InvokeMethod { module_id: Some(m), .. }] if m == "m1"),
        "{cmds:?}"
    );
    update(&mut app, Action::Back);
    // m2, then the device again, without reading the list again.
    let (_, cmds) = update(&mut app, Action::NextModule);
    assert!(cmds.is_empty());
    assert_eq!(app.selected_module.as_deref(), Some("m2"));
    update(&mut app, Action::NextModule);
    assert_eq!(app.selected_module, None);
    // Another device: its modules are not known.
    update(&mut app, Action::SelectTab(Tab::Devices));
    update(&mut app, Action::Down);
    assert_eq!(app.modules, None);
}
