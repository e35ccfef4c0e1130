//! `m` walks through the selected device's modules: the first press reads their ids, each
//! press picks the next, and after the last one the device itself again. The Twin and
//! Methods tabs work on what is picked.

use client::events::{HubCommand, HubEvent};

use super::App;
use super::body::escape;

/// The module ids of the selected device, when they have been read.
fn known(app: &App) -> Option<&[String]> {
    match (&app.modules, &app.selected_device) {
        (Some((device, ids)), Some(selected)) if device == selected => Some(ids),
        _ => None,
    }
}

/// `m`: the next module, or the device after the last one.
pub(super) fn next(app: &mut App, cmds: &mut Vec<HubCommand>) -> bool {
    let Some(device) = app.selected_device.clone() else {
        app.error("pick a device in Devices first");
        return true;
    };
    let Some(ids) = known(app) else {
        cmds.push(HubCommand::ListModules { device_id: device });
        return false;
    };
    let after = match &app.selected_module {
        None => ids.first(),
        Some(current) => ids
            .iter()
            .position(|id| id == current)
            .and_then(|i| ids.get(i + 1)),
    };
    let picked = after.cloned();
    if ids.is_empty() {
        app.notice(format!("{} has no modules", escape(&device)));
    }
    pick(app, picked);
    true
}

fn pick(app: &mut App, module: Option<String>) {
    if app.selected_module != module {
        app.selected_module = module;
        super::twin::device_changed(app);
    }
}

/// The device changed: its modules are not known yet, and none is picked.
pub(super) fn device_changed(app: &mut App) {
    app.selected_module = None;
    app.modules = None;
}

pub(super) fn on_event(app: &mut App, event: &HubEvent, cmds: &mut Vec<HubCommand>) -> bool {
    let HubEvent::Modules {
        device_id,
        module_ids,
    } = event
    else {
        return false;
    };
    if app.selected_device.as_ref() != Some(device_id) {
        return false;
    }
    app.modules = Some((device_id.clone(), module_ids.clone()));
    // The ids were read for a press of `m`: carry it out.
    next(app, cmds)
}
