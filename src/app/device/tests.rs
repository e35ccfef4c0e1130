//! The device face's update driven by keys and device events: keys → state → commands.

use std::time::{Duration, Instant};

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use serde_json::{Value, json};

use super::composer::SendStatus;
use super::keymap::resolve;
use super::*;
use client::manual::{Answerer, ManualCommand, ManualEvent, ReportOrigin};
use iothub::property_bag::PropertyBag;

fn app() -> DeviceApp {
    DeviceApp::new(DeviceConfig {
        device_id: "dev-1".into(),
        hub_host: "localhost".into(),
        profile: "thermostat".into(),
        auto_ack: true,
        ask_methods: false,
        ask_timeout: Duration::from_secs(30),
        seed: 3,
    })
}

fn press(app: &mut DeviceApp, key: KeyEvent) -> Vec<ManualCommand> {
    match resolve(key, app.key_context()) {
        Some(action) => update(app, action).1,
        None => Vec::new(),
    }
}

fn ch(c: char) -> KeyEvent {
    KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE)
}

fn k(code: KeyCode) -> KeyEvent {
    KeyEvent::new(code, KeyModifiers::NONE)
}

fn ctrl(c: char) -> KeyEvent {
    KeyEvent::new(KeyCode::Char(c), KeyModifiers::CONTROL)
}

fn typed(app: &mut DeviceApp, text: &str) {
    for c in text.chars() {
        let key = if c == '\n' { k(KeyCode::Enter) } else { ch(c) };
        assert!(press(app, key).is_empty());
    }
}

fn device(app: &mut DeviceApp, ev: ManualEvent) {
    let (changed, cmds) = update(app, DeviceAction::Device(Box::new(ev)));
    assert!(changed);
    assert!(cmds.is_empty());
}

fn error_notice(app: &DeviceApp) -> String {
    let n = app.notice.as_ref().expect("a notice");
    assert!(n.error, "not an error: {}", n.text);
    n.text.clone()
}

#[test]
fn keys_resolve_per_tab_and_editor() {
    let mut a = app();
    assert_eq!(
        resolve(ch('s'), a.key_context()),
        Some(DeviceAction::SendOnce)
    );
    assert_eq!(resolve(ch('x'), a.key_context()), None);
    a.tab = DeviceTab::Twin;
    assert_eq!(
        resolve(ch('s'), a.key_context()),
        Some(DeviceAction::SendReported)
    );
    assert_eq!(
        resolve(ch('A'), a.key_context()),
        Some(DeviceAction::ToggleAutoAck)
    );
    a.editing = Some(Editing::Reported);
    // In an editor, letters type (q does not quit) and Ctrl-s sends.
    assert_eq!(
        resolve(ch('q'), a.key_context()),
        Some(DeviceAction::Input(ch('q')))
    );
    assert_eq!(
        resolve(ctrl('s'), a.key_context()),
        Some(DeviceAction::Submit)
    );
    assert_eq!(
        resolve(k(KeyCode::Esc), a.key_context()),
        Some(DeviceAction::LeaveEditor)
    );
}

#[test]
fn tabs_switch_by_number_and_tab_key() {
    let mut a = app();
    press(&mut a, ch('3'));
    assert_eq!(a.tab, DeviceTab::Methods);
    press(&mut a, k(KeyCode::Tab));
    assert_eq!(a.tab, DeviceTab::Twin);
    press(&mut a, k(KeyCode::Tab));
    assert_eq!(a.tab, DeviceTab::Telemetry);
    press(&mut a, k(KeyCode::BackTab));
    assert_eq!(a.tab, DeviceTab::Twin);
    press(&mut a, ch('?'));
    assert!(a.help);
    press(&mut a, k(KeyCode::Esc));
    assert!(!a.help);
    press(&mut a, ch('q'));
    assert!(a.should_quit);
}

#[test]
fn send_expands_the_template_and_logs_the_status() {
    let mut a = app();
    let cmds = press(&mut a, ch('s'));
    let [
        ManualCommand::SendTelemetry {
            id,
            body,
            properties,
        },
    ] = cmds.as_slice()
    else {
        panic!("{cmds:?}")
    };
    let body: Value = serde_json::from_slice(body).unwrap();
    assert_eq!(body["seq"], json!(1));
    assert!(
        body["temperature"]
            .as_f64()
            .is_some_and(|t| (20.0..=25.0).contains(&t))
    );
    assert!(body["time"].as_str().unwrap().ends_with('Z'));
    assert_eq!(properties.get("source"), Some("hubtui"));
    assert_eq!(a.composer.sent[0].status, SendStatus::Waiting);
    device(
        &mut a,
        ManualEvent::Sent {
            id: *id,
            result: Ok(()),
        },
    );
    assert_eq!(a.composer.sent[0].status, SendStatus::Queued);

    let cmds = press(&mut a, ch('s'));
    let [ManualCommand::SendTelemetry { id, body, .. }] = cmds.as_slice() else {
        panic!("{cmds:?}")
    };
    assert_eq!(
        serde_json::from_slice::<Value>(body).unwrap()["seq"],
        json!(2)
    );
    device(
        &mut a,
        ManualEvent::Sent {
            id: *id,
            result: Err("the outgoing queue is full".into()),
        },
    );
    assert_eq!(
        a.composer.sent[0].status,
        SendStatus::Failed("the outgoing queue is full".into())
    );
    assert_eq!(a.composer.sent.len(), 2);
}

#[test]
fn a_bad_template_is_one_sentence_and_the_text_stays() {
    let mut a = app();
    press(&mut a, ch('e'));
    assert_eq!(a.editing, Some(Editing::Template));
    // The cursor starts at the top: `{{bogus}}` lands before the object's brace.
    typed(&mut a, "{{bogus}}");
    let before = a.composer.template.lines().to_vec();
    let cmds = press(&mut a, ctrl('s'));
    assert!(cmds.is_empty());
    assert_eq!(
        error_notice(&a),
        "the template has an unknown placeholder {{bogus}} at line 1; use {{seq}}, {{now}} or {{rand A B}}"
    );
    assert_eq!(a.composer.template.lines(), before.as_slice());
    assert_eq!(a.editing, Some(Editing::Template));
    assert!(a.composer.sent.is_empty());
    // Esc leaves the editor; the text is still there.
    press(&mut a, k(KeyCode::Esc));
    assert_eq!(a.editing, None);
    assert_eq!(a.composer.template.lines(), before.as_slice());
}

#[test]
fn a_template_that_is_not_json_is_not_sent() {
    let mut a = app();
    press(&mut a, ch('e'));
    typed(&mut a, "x");
    assert!(press(&mut a, ctrl('s')).is_empty());
    assert!(
        error_notice(&a).starts_with("the expanded template is not valid JSON at line 1 column 1")
    );
}

#[test]
fn bad_properties_are_one_sentence() {
    let mut a = app();
    press(&mut a, ch('p'));
    assert_eq!(a.editing, Some(Editing::Properties));
    press(&mut a, k(KeyCode::End));
    typed(&mut a, "\nbroken");
    assert!(press(&mut a, ctrl('s')).is_empty());
    assert_eq!(
        error_notice(&a),
        "property line 2 is not key=value: write one name=value pair per line"
    );
    assert_eq!(a.composer.properties.lines(), ["source=hubtui", "broken"]);
}

#[test]
fn auto_send_sends_now_then_every_period() {
    let mut a = app();
    assert_eq!(a.next_tick(), None);
    let cmds = press(&mut a, ch('a'));
    assert_eq!(cmds.len(), 1);
    assert!(a.composer.auto);
    let due = a.next_tick().expect("a next send");
    // Not yet due: nothing goes.
    let (_, cmds) = update(&mut a, DeviceAction::Tick(due - Duration::from_millis(500)));
    assert!(cmds.is_empty());
    let (_, cmds) = update(&mut a, DeviceAction::Tick(due));
    assert!(matches!(
        cmds.as_slice(),
        [ManualCommand::SendTelemetry { .. }]
    ));
    assert_eq!(a.composer.seq, 3);
    // `-` makes it slower: 10 s from now.
    press(&mut a, ch('-'));
    assert_eq!(a.composer.interval(), Duration::from_secs(10));
    press(&mut a, ch('a'));
    assert!(!a.composer.auto);
    assert!(a.composer.next_send.is_none());
}

#[test]
fn auto_send_stops_when_the_template_breaks() {
    let mut a = app();
    press(&mut a, ch('a'));
    press(&mut a, ch('e'));
    typed(&mut a, "{{");
    press(&mut a, k(KeyCode::Esc));
    let due = a.composer.next_send.unwrap();
    let (_, cmds) = update(&mut a, DeviceAction::Tick(due));
    assert!(cmds.is_empty());
    assert!(!a.composer.auto);
    assert!(error_notice(&a).contains("never closes it"));
}

#[test]
fn reported_patch_is_checked_sent_and_answered() {
    let mut a = app();
    press(&mut a, ch('4'));
    press(&mut a, ch('e'));
    assert_eq!(a.editing, Some(Editing::Reported));
    typed(&mut a, "x");
    let cmds = press(&mut a, ctrl('s'));
    assert!(cmds.is_empty());
    assert_eq!(
        error_notice(&a),
        "the reported patch is not valid JSON at line 1, column 1: expected value"
    );
    assert_eq!(a.twin.editor.text(), "x{\n  \"status\": \"ok\"\n}");
    press(&mut a, k(KeyCode::Backspace));
    let cmds = press(&mut a, ctrl('s'));
    let [ManualCommand::PatchReported { id, patch }] = cmds.as_slice() else {
        panic!("{cmds:?}")
    };
    assert_eq!(Value::Object(patch.clone()), json!({"status": "ok"}));
    device(
        &mut a,
        ManualEvent::Reported {
            origin: ReportOrigin::User(*id),
            patch: patch.clone(),
            version: 7,
        },
    );
    assert_eq!(
        a.notice.as_ref().unwrap().text,
        "the hub took the reported patch: $version 7"
    );
    let reported = Value::Object(a.twin.reported.clone().unwrap());
    assert_eq!(reported, json!({"status": "ok", "$version": 7}));
}

#[test]
fn a_patch_that_is_not_an_object_is_refused() {
    let mut a = app();
    a.twin.editor.set_text("[1]");
    press(&mut a, ch('4'));
    assert!(press(&mut a, ch('s')).is_empty());
    assert!(error_notice(&a).starts_with("the reported patch must be a JSON object"));
}

#[test]
fn desired_patches_merge_with_their_version() {
    let mut a = app();
    device(
        &mut a,
        ManualEvent::Twin(json!({
            "desired": {"targetTemperature": 21, "$version": 3},
            "reported": {"$version": 1}
        })),
    );
    let patch = json!({"targetTemperature": 23.5, "mode": "eco"});
    device(
        &mut a,
        ManualEvent::Desired {
            version: 4,
            patch: patch.as_object().unwrap().clone(),
        },
    );
    assert_eq!(
        Value::Object(a.twin.desired.clone().unwrap()),
        json!({"targetTemperature": 23.5, "$version": 4, "mode": "eco"})
    );
    assert!(a.twin.log[0].text.starts_with("desired $version 4: "));
    // With acknowledgements off, the log says so before the patch.
    press(&mut a, ch('4'));
    press(&mut a, ch('A'));
    device(
        &mut a,
        ManualEvent::Desired {
            version: 5,
            patch: patch.as_object().unwrap().clone(),
        },
    );
    assert!(
        a.twin.log[0]
            .text
            .starts_with("desired $version 5, not acknowledged: "),
        "{}",
        a.twin.log[0].text
    );
    assert!(
        a.twin
            .desired_lines
            .iter()
            .any(|l| l.contains("\"$version\": 5"))
    );
}

#[test]
fn auto_ack_toggle_tells_the_device_task() {
    let mut a = app();
    press(&mut a, ch('4'));
    assert_eq!(
        press(&mut a, ch('A')),
        vec![ManualCommand::SetAutoAck(false)]
    );
    assert!(!a.twin.auto_ack);
    assert_eq!(
        press(&mut a, ch('A')),
        vec![ManualCommand::SetAutoAck(true)]
    );
}

#[test]
fn c2d_and_methods_are_listed_newest_first() {
    let mut a = app();
    for mid in ["m1", "m2"] {
        let mut props = PropertyBag::default();
        props.set("$.mid", Some(mid.into()));
        device(
            &mut a,
            ManualEvent::C2d {
                properties: props,
                body: b"hello".to_vec(),
            },
        );
    }
    assert_eq!(a.inbox.items[0].message_id, "m2");
    press(&mut a, ch('2'));
    press(&mut a, ch('j'));
    assert_eq!(a.inbox.selected().unwrap().message_id, "m1");
    device(
        &mut a,
        ManualEvent::Method {
            rid: "r1".into(),
            by: Answerer::Profile,
            name: "getMaxMinReport".into(),
            payload: json!({"since": "now"}),
            status: 404,
            response: json!({"error": "unknown method"}),
            error: None,
        },
    );
    assert_eq!(a.methods.items[0].status, 404);
    assert_eq!(
        a.methods.items[0].payload,
        vec!["{", "  \"since\": \"now\"", "}"]
    );
}

#[test]
fn link_state_follows_the_connection() {
    let mut a = app();
    assert_eq!(a.link, Link::Connecting);
    device(&mut a, ManualEvent::Connected);
    assert_eq!(a.link, Link::Connected);
    device(
        &mut a,
        ManualEvent::Disconnected {
            reason: "connection refused".into(),
            refused: false,
        },
    );
    assert_eq!(
        a.link,
        Link::Reconnecting {
            reason: "connection refused".into()
        }
    );
    device(
        &mut a,
        ManualEvent::Disconnected {
            reason: "not authorized".into(),
            refused: true,
        },
    );
    assert!(matches!(a.link, Link::Refused { .. }));
}

#[test]
fn notices_expire_on_tick() {
    let mut a = app();
    press(&mut a, ch('4'));
    a.twin.editor.set_text("[");
    press(&mut a, ch('s'));
    let until = a.notice.as_ref().unwrap().until;
    assert_eq!(a.next_tick(), Some(until));
    let (changed, _) = update(&mut a, DeviceAction::Tick(until + Duration::from_millis(1)));
    assert!(changed);
    assert!(a.notice.is_none());
    let (changed, _) = update(&mut a, DeviceAction::Tick(Instant::now()));
    assert!(!changed);
}

#[test]
fn scroll_keys_move_the_twin_and_the_detail() {
    let mut a = app();
    let big: serde_json::Map<String, Value> =
        (0..30).map(|i| (format!("p{i}"), json!(i))).collect();
    device(
        &mut a,
        ManualEvent::Twin(json!({"desired": big, "reported": {"$version": 1}})),
    );
    press(&mut a, ch('4'));
    press(&mut a, ch('j'));
    assert_eq!(a.twin.scroll, 5);
    press(&mut a, k(KeyCode::PageUp));
    assert_eq!(a.twin.scroll, 0);
    // Never past the last line of the longer section (30 properties and the braces).
    for _ in 0..20 {
        press(&mut a, ch('j'));
    }
    assert_eq!(a.twin.scroll, 31);

    device(
        &mut a,
        ManualEvent::Method {
            rid: "r2".into(),
            by: Answerer::Profile,
            name: "m".into(),
            payload: Value::Object(big),
            status: 200,
            response: json!({}),
            error: None,
        },
    );
    press(&mut a, ch('3'));
    press(&mut a, k(KeyCode::PageDown));
    assert_eq!(a.methods.detail_scroll, 5);
    // j moves the selection, not the detail; a new selection starts at its top.
    press(&mut a, ch('k'));
    assert_eq!(a.methods.detail_scroll, 5);
}

fn asked(a: &mut DeviceApp, rid: &str, name: &str) {
    device(
        a,
        ManualEvent::MethodAsked {
            rid: rid.into(),
            name: name.into(),
            payload: json!({"delay": 5}),
            suggested: (200, json!({"ok": true})),
            timeout: Duration::from_secs(30),
        },
    );
}

#[test]
fn a_method_put_to_the_user_is_answered_from_the_editor() {
    let mut a = app();
    press(&mut a, ch('3'));
    assert_eq!(
        press(&mut a, ch('a')),
        vec![ManualCommand::SetAskMethods(true)]
    );
    asked(&mut a, "r1", "reboot");
    assert_eq!(a.questions.waiting.len(), 1);
    assert!(
        a.notice
            .as_ref()
            .unwrap()
            .text
            .starts_with("reboot waits for your answer")
    );
    // The countdown ticks each second while a call waits.
    let tick = a.next_tick().unwrap();
    assert!(tick <= Instant::now() + Duration::from_secs(1));

    press(&mut a, k(KeyCode::Enter));
    assert_eq!(a.editing, Some(Editing::Answer));
    // The status line is typed over: 201 instead of the profile's 200.
    a.questions
        .editor
        .move_cursor(ratatui_textarea::CursorMove::Top);
    a.questions
        .editor
        .move_cursor(ratatui_textarea::CursorMove::End);
    press(&mut a, k(KeyCode::Backspace));
    press(&mut a, ch('1'));
    assert_eq!(
        press(&mut a, ctrl('s')),
        vec![ManualCommand::AnswerMethod {
            rid: "r1".into(),
            status: 201,
            payload: json!({"ok": true}),
        }]
    );
    assert_eq!(a.editing, None);
    device(
        &mut a,
        ManualEvent::Method {
            rid: "r1".into(),
            name: "reboot".into(),
            payload: json!({"delay": 5}),
            status: 201,
            response: json!({"ok": true}),
            by: Answerer::User,
            error: None,
        },
    );
    assert!(a.questions.waiting.is_empty());
    assert_eq!(a.methods.items[0].by, Answerer::User);
}

#[test]
fn a_bad_answer_stays_and_a_late_one_is_told() {
    let mut a = app();
    asked(&mut a, "r1", "reboot");
    press(&mut a, ch('3'));
    press(&mut a, ch('e'));
    a.questions.editor = ratatui_textarea::TextArea::new(vec!["two hundred".into()]);
    assert!(press(&mut a, ctrl('s')).is_empty());
    assert_eq!(a.editing, Some(Editing::Answer));
    assert!(a.notice.as_ref().unwrap().error);
    assert_eq!(a.questions.editor.lines(), ["two hundred"]);

    // The time runs out while the user types: the profile answered, the editor closes.
    device(
        &mut a,
        ManualEvent::Method {
            rid: "r1".into(),
            name: "reboot".into(),
            payload: json!({"delay": 5}),
            status: 200,
            response: json!({"ok": true}),
            by: Answerer::ProfileAfterTimeout,
            error: None,
        },
    );
    assert_eq!(a.editing, None);
    assert!(a.questions.waiting.is_empty());
    let n = a.notice.as_ref().unwrap();
    assert_eq!(
        (n.text.as_str(), n.error),
        (
            "too late: the profile answered reboot when its time ran out",
            true
        )
    );
    // Nothing to answer now.
    press(&mut a, ch('e'));
    assert_eq!(a.editing, None);
}
