//! `update`: the one function that changes `App`. Global keys and overlays are handled here,
//! the rest goes to the tab's module. Side effects leave only as returned `HubCommand`s.

use client::events::{HubCommand, HubEvent};

use super::{Action, App, ConfirmAction, PromptKind, Tab};
use super::{assets, c2d, devices, files, methods, telemetry, twin};

/// Applies `action`; returns whether anything visible changed and the commands to send.
pub fn update(app: &mut App, action: Action) -> (bool, Vec<HubCommand>) {
    let mut cmds = Vec::new();
    let changed = match action {
        Action::Hub(event) => on_event(app, event, &mut cmds),
        Action::Resize => true,
        Action::Tick(now) => expire_notice(app, now),
        action => on_key_action(app, action, &mut cmds),
    };
    cmds.extend(app.screen_change());
    if changed {
        app.mark_dirty();
    }
    (changed, cmds)
}

/// Notices and throttling notes whose time is up leave the status bar.
fn expire_notice(app: &mut App, now: std::time::Instant) -> bool {
    let mut changed = false;
    if app.notice_expires().is_some_and(|at| at <= now) {
        app.status.notice = None;
        app.status.notice_since = None;
        changed = true;
    }
    if app.status.throttled_until.is_some_and(|at| at <= now) {
        app.status.throttled = None;
        app.status.throttled_until = None;
        changed = true;
    }
    changed
}

fn switch_tab(app: &mut App, tab: Tab, cmds: &mut Vec<HubCommand>) -> bool {
    if app.tab == tab {
        return false;
    }
    app.tab = tab;
    if tab == Tab::Twin {
        twin::ensure_loaded(app, cmds);
    }
    if tab == Tab::Files {
        files::shown(app);
    }
    true
}

fn on_key_action(app: &mut App, action: Action, cmds: &mut Vec<HubCommand>) -> bool {
    // Overlays first: help, confirmation, prompt.
    if app.help {
        return match action {
            Action::ToggleHelp | Action::Back => {
                app.help = false;
                true
            }
            _ => false,
        };
    }
    if let Some(confirm) = app.confirm.take() {
        match action {
            Action::ConfirmYes => match confirm.on_yes {
                ConfirmAction::DeleteDevice(device_id) => {
                    cmds.push(HubCommand::DeleteDevice { device_id })
                }
                ConfirmAction::PurgeQueue(device_id) => {
                    cmds.push(HubCommand::PurgeC2d { device_id })
                }
                ConfirmAction::InvokeMethod => methods::confirmed(app, cmds),
            },
            Action::ConfirmNo | Action::Back => app.methods.awaiting_yes = None,
            _ => {
                app.confirm = Some(confirm);
                return false;
            }
        }
        return true;
    }
    if let Some(prompt) = app.prompt.as_mut() {
        match action {
            Action::Back => {
                app.prompt = None;
                app.files.download = None;
            }
            Action::Input(key) => return prompt.input.handle(key),
            Action::Submit => {
                let kind = prompt.kind;
                let text = prompt.input.value().to_string();
                app.prompt = None;
                match kind {
                    PromptKind::DeviceFilter => devices::apply_filter(app, text, cmds),
                    PromptKind::FilesFilter | PromptKind::DownloadPath => {
                        files::on_prompt(app, kind, text, cmds)
                    }
                    _ => telemetry::on_prompt(app, kind, text, cmds),
                }
            }
            _ => return false,
        }
        return true;
    }
    // Modes that take every key (forms, editor) get it before the global keys.
    let in_input_mode = matches!(app.mode(), super::Mode::Form | super::Mode::Editor);
    if !in_input_mode {
        match action {
            Action::Quit => {
                app.should_quit = true;
                return true;
            }
            Action::ToggleHelp => {
                app.help = true;
                return true;
            }
            Action::NextTab => return switch_tab(app, app.tab.next(), cmds),
            Action::PrevTab => return switch_tab(app, app.tab.prev(), cmds),
            Action::SelectTab(tab) => return switch_tab(app, tab, cmds),
            _ => {}
        }
    }
    let handled = match app.tab {
        Tab::Devices => devices::on_action(app, &action, cmds),
        Tab::Telemetry => telemetry::on_action(app, &action),
        Tab::Twin if app.assets.form.is_some() => assets::on_form_action(app, &action, cmds),
        Tab::Twin => assets::on_action(app, &action) || twin::on_action(app, &action, cmds),
        Tab::Methods => methods::on_action(app, &action, cmds),
        Tab::C2d => c2d::on_action(app, &action, cmds),
        Tab::Files => files::on_action(app, &action, cmds),
    };
    if handled {
        return true;
    }
    // Esc with nothing to close clears the last error and notice.
    if action == Action::Back && (app.status.last_error.is_some() || app.status.notice.is_some()) {
        app.status.last_error = None;
        app.status.notice = None;
        app.status.notice_since = None;
        return true;
    }
    false
}

fn on_event(app: &mut App, event: HubEvent, cmds: &mut Vec<HubCommand>) -> bool {
    if let HubEvent::Telemetry(e) = event {
        telemetry::on_telemetry(app, e);
        if app.tab == Tab::Twin {
            twin::ensure_loaded(app, cmds);
        }
        // Visible only on the telemetry tab (or in the status counts); still redraw once.
        return true;
    }
    match &event {
        HubEvent::ConnectionState {
            backend,
            state,
            detail,
        } => {
            let Some(link) = app.status.links.iter_mut().find(|l| l.backend == *backend) else {
                return false;
            };
            let changed = link.state != *state || link.detail != *detail;
            link.state = *state;
            link.detail = detail.clone();
            changed
        }
        HubEvent::Throttled { retry_in } => {
            app.status.throttled = *retry_in;
            app.status.throttled_until = retry_in.map(|d| std::time::Instant::now() + d);
            true
        }
        HubEvent::ServiceCalls { per_minute } => {
            app.status.calls_per_minute = Some(*per_minute);
            true
        }
        HubEvent::Error(message) => {
            app.error(super::body::escape(message).into_owned());
            // A failed load must not leave spinners behind.
            app.devices.loading = false;
            app.twin.loading = false;
            app.twin.submitting = false;
            true
        }
        _ => {
            let handled = devices::on_event(app, &event, cmds)
                || super::modules::on_event(app, &event, cmds)
                || telemetry::on_event(app, &event)
                || twin::on_event(app, &event)
                || methods::on_event(app, &event)
                || c2d::on_event(app, &event)
                || assets::on_event(app, &event)
                || files::on_event(app, &event);
            if handled && app.tab == Tab::Twin {
                twin::ensure_loaded(app, cmds);
            }
            handled
        }
    }
}
