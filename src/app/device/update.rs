//! `update`: the one place the device face's state changes. Returns whether anything changed
//! (no redraw otherwise) and the commands for the device task.

use std::time::Instant;

use chrono::Utc;
use ratatui::crossterm::event::KeyEvent;

use super::action::{DeviceAction, DeviceTab, Editing};
use super::records::{C2dMessage, MethodCall};
use super::{DeviceApp, Link, Notice};
use crate::app::NOTICE_LIFETIME;
use client::manual::{Answerer, ManualCommand, ManualEvent, ReportOrigin};

pub fn update(app: &mut DeviceApp, action: DeviceAction) -> (bool, Vec<ManualCommand>) {
    let mut cmds = Vec::new();
    let changed = apply(app, action, &mut cmds);
    if changed {
        app.style_editors();
        app.mark_dirty();
    }
    (changed, cmds)
}

fn apply(app: &mut DeviceApp, action: DeviceAction, cmds: &mut Vec<ManualCommand>) -> bool {
    match action {
        DeviceAction::Quit => {
            app.should_quit = true;
            true
        }
        DeviceAction::ToggleHelp => {
            app.help = !app.help;
            true
        }
        DeviceAction::NextTab => go_tab(app, (app.tab.index() + 1) % DeviceTab::ALL.len()),
        DeviceAction::PrevTab => go_tab(
            app,
            (app.tab.index() + DeviceTab::ALL.len() - 1) % DeviceTab::ALL.len(),
        ),
        DeviceAction::GoTab(tab) => go_tab(app, tab.index()),
        DeviceAction::Up => step(app, -1),
        DeviceAction::Down => step(app, 1),
        DeviceAction::First => step(app, isize::MIN / 2),
        DeviceAction::Last => step(app, isize::MAX / 2),
        DeviceAction::ScrollUp => scroll(app, -SCROLL_STEP),
        DeviceAction::ScrollDown => scroll(app, SCROLL_STEP),
        DeviceAction::EditTemplate => edit(app, DeviceTab::Telemetry, Editing::Template),
        DeviceAction::EditProperties => edit(app, DeviceTab::Telemetry, Editing::Properties),
        DeviceAction::EditReported => edit(app, DeviceTab::Twin, Editing::Reported),
        DeviceAction::LeaveEditor => app.editing.take().is_some(),
        DeviceAction::Submit => match app.editing {
            Some(Editing::Template | Editing::Properties) => send_once(app, cmds),
            Some(Editing::Reported) => send_reported(app, cmds),
            Some(Editing::Answer) => send_answer(app, cmds),
            None => false,
        },
        DeviceAction::Input(key) => input(app, key),
        DeviceAction::SendOnce => send_once(app, cmds),
        DeviceAction::ToggleAutoSend => toggle_auto(app, cmds),
        DeviceAction::Faster | DeviceAction::Slower => {
            let faster = action == DeviceAction::Faster;
            let moved = app.composer.step_interval(faster);
            if moved && app.composer.auto {
                app.composer.next_send = Some(Instant::now() + app.composer.interval());
            }
            moved
        }
        DeviceAction::SendReported => send_reported(app, cmds),
        DeviceAction::ToggleAutoAck => {
            let on = !app.twin.auto_ack;
            app.twin.auto_ack = on;
            cmds.push(ManualCommand::SetAutoAck(on));
            let text = if on {
                "Plug and Play acknowledgements on: desired changes are acknowledged by the profile"
            } else {
                "Plug and Play acknowledgements off: desired changes are shown, not acknowledged"
            };
            notice(app, text.into(), false);
            true
        }
        DeviceAction::ToggleAskMethods => {
            let on = !app.questions.ask;
            app.questions.ask = on;
            cmds.push(ManualCommand::SetAskMethods(on));
            let text = if on {
                format!(
                    "method calls are put to you now: answer each within {} s, or the profile does",
                    app.questions.timeout.as_secs()
                )
            } else {
                "the profile answers method calls now".to_string()
            };
            notice(app, text, false);
            true
        }
        DeviceAction::AnswerMethod => {
            if app.questions.open() {
                app.tab = DeviceTab::Methods;
                app.editing = Some(Editing::Answer);
            } else {
                notice(app, "no method call is waiting for an answer".into(), false);
            }
            true
        }
        DeviceAction::Tick(now) => tick(app, now, cmds),
        DeviceAction::Device(ev) => on_device(app, *ev),
        DeviceAction::Resize => true,
    }
}

fn go_tab(app: &mut DeviceApp, index: usize) -> bool {
    let tab = DeviceTab::ALL[index % DeviceTab::ALL.len()];
    let changed = tab != app.tab;
    app.tab = tab;
    changed
}

fn step(app: &mut DeviceApp, delta: isize) -> bool {
    match app.tab {
        DeviceTab::Inbox => app.inbox.step(delta),
        DeviceTab::Methods => app.methods.step(delta),
        _ => false,
    }
}

/// Lines a scroll key moves.
const SCROLL_STEP: isize = 5;

fn scroll(app: &mut DeviceApp, delta: isize) -> bool {
    match app.tab {
        DeviceTab::Inbox => {
            let lines = app.inbox.selected().map_or(0, |m| m.detail_len());
            app.inbox.scroll(delta, lines)
        }
        DeviceTab::Methods => {
            let lines = app.methods.selected().map_or(0, |c| c.detail_len());
            app.methods.scroll(delta, lines)
        }
        DeviceTab::Twin => app.twin.scroll(delta),
        DeviceTab::Telemetry => false,
    }
}

fn edit(app: &mut DeviceApp, tab: DeviceTab, editing: Editing) -> bool {
    app.tab = tab;
    app.editing = Some(editing);
    true
}

fn input(app: &mut DeviceApp, key: KeyEvent) -> bool {
    match app.editing {
        Some(Editing::Template) => feed(&mut app.composer.template, key),
        Some(Editing::Properties) => feed(&mut app.composer.properties, key),
        Some(Editing::Reported) => app.twin.editor.handle(key),
        Some(Editing::Answer) => feed(&mut app.questions.editor, key),
        None => false,
    }
}

/// A key for a textarea. Its Emacs-style Ctrl and Alt bindings stay (they only edit), but
/// nothing reaches it that the tables bound first (Ctrl-s, Esc).
fn feed(textarea: &mut ratatui_textarea::TextArea<'static>, key: KeyEvent) -> bool {
    let before = textarea.cursor();
    let edited = textarea.input(key);
    edited || before != textarea.cursor()
}

fn notice(app: &mut DeviceApp, text: String, error: bool) {
    app.notice = Some(Notice {
        text,
        error,
        until: Instant::now() + NOTICE_LIFETIME,
    });
}

/// Composes and hands one message to the device task. A bad template or property list is
/// one sentence in the status bar; the text stays as it is.
fn send_once(app: &mut DeviceApp, cmds: &mut Vec<ManualCommand>) -> bool {
    let now = Utc::now();
    match app.composer.compose(now) {
        Ok(msg) => {
            let id = app.take_id();
            app.composer.record(id, &msg, now);
            cmds.push(ManualCommand::SendTelemetry {
                id,
                body: msg.body.into_bytes(),
                properties: msg.properties,
            });
        }
        Err(e) => notice(app, e, true),
    }
    true
}

fn toggle_auto(app: &mut DeviceApp, cmds: &mut Vec<ManualCommand>) -> bool {
    app.composer.auto = !app.composer.auto;
    if app.composer.auto {
        // The first message goes now, so the user sees at once whether the template is good.
        app.composer.next_send = Some(Instant::now() + app.composer.interval());
        send_once(app, cmds);
        if app.notice.as_ref().is_some_and(|n| n.error) {
            app.composer.auto = false;
            app.composer.next_send = None;
        }
    } else {
        app.composer.next_send = None;
    }
    true
}

fn tick(app: &mut DeviceApp, now: Instant, cmds: &mut Vec<ManualCommand>) -> bool {
    let mut changed = false;
    if app.notice.as_ref().is_some_and(|n| n.until <= now) {
        app.notice = None;
        changed = true;
    }
    if app.composer.auto && app.composer.next_send.is_some_and(|at| at <= now) {
        app.composer.next_send = Some(now + app.composer.interval());
        send_once(app, cmds);
        // A template broken while auto-send runs stops it rather than failing every period.
        if app.notice.as_ref().is_some_and(|n| n.error) {
            app.composer.auto = false;
            app.composer.next_send = None;
        }
        changed = true;
    }
    changed
}

/// The user's answer to the call the editor holds; a bad one is a sentence and stays.
fn send_answer(app: &mut DeviceApp, cmds: &mut Vec<ManualCommand>) -> bool {
    match app.questions.answer() {
        Ok((rid, status, payload)) => {
            let name = app.questions.current().map(|q| q.name.clone());
            cmds.push(ManualCommand::AnswerMethod {
                rid,
                status,
                payload,
            });
            app.editing = None;
            if let Some(name) = name {
                notice(app, format!("answering {name} with status {status}"), false);
            }
        }
        Err(e) => notice(app, e, true),
    }
    true
}

fn send_reported(app: &mut DeviceApp, cmds: &mut Vec<ManualCommand>) -> bool {
    match app.twin.patch() {
        Ok(patch) => {
            let id = app.take_id();
            cmds.push(ManualCommand::PatchReported { id, patch });
            notice(
                app,
                "reported patch sent; waiting for the hub".into(),
                false,
            );
        }
        Err(e) => notice(app, e, true),
    }
    true
}

fn on_device(app: &mut DeviceApp, ev: ManualEvent) -> bool {
    let now = Utc::now();
    match ev {
        ManualEvent::Connected => app.link = Link::Connected,
        ManualEvent::Disconnected { reason, refused } => {
            app.link = if refused {
                Link::Refused { reason }
            } else {
                Link::Reconnecting { reason }
            };
        }
        ManualEvent::Twin(twin) => app.twin.read(now, &twin),
        ManualEvent::Sent { id, result } => return app.composer.settle(id, result),
        ManualEvent::C2d { properties, body } => {
            app.inbox.push(C2dMessage::new(now, &properties, &body));
        }
        ManualEvent::MethodAsked {
            rid,
            name,
            payload,
            suggested,
            timeout,
        } => {
            let text = format!(
                "{} waits for your answer: Methods tab, e ({} s, then the profile answers)",
                name,
                timeout.as_secs()
            );
            app.questions.push(rid, &name, &payload, suggested, timeout);
            notice(app, text, false);
        }
        ManualEvent::Method {
            rid,
            name,
            payload,
            status,
            response,
            by,
            error,
        } => {
            if app.questions.settled(&rid) && app.editing == Some(Editing::Answer) {
                app.editing = None;
                if by == Answerer::ProfileAfterTimeout {
                    notice(
                        app,
                        format!("too late: the profile answered {name} when its time ran out"),
                        true,
                    );
                }
            }
            app.methods.push(MethodCall::new(
                now, &name, &payload, status, &response, by, error,
            ));
        }
        ManualEvent::Desired { version, patch } => app.twin.desired_patch(now, version, &patch),
        ManualEvent::Reported {
            origin,
            patch,
            version,
        } => {
            app.twin.reported_patch(now, origin, version, &patch);
            if let ReportOrigin::User(_) = origin {
                notice(
                    app,
                    format!("the hub took the reported patch: $version {version}"),
                    false,
                );
            }
        }
        ManualEvent::ReportFailed { origin, error } => {
            app.twin.report_failed(now, &error);
            if let ReportOrigin::User(_) = origin {
                notice(app, format!("the reported patch failed: {error}"), true);
            }
        }
    }
    true
}
