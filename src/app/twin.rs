//! Twin tab: tags, desired and reported with versions and times, the desired/reported diff,
//! and the JSON editor whose edit survives a 412 conflict and is re-applied with one key.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

use client::events::{HubCommand, HubEvent};
use iothub::service_twin::{ServiceTwin, merge_patch};
use iothub::twin::Section;
use iothub::twin_diff::{DiffEntry, diff};

use super::input::JsonEditor;
use super::jsonview::{JsonLine, leaves, lines};
use super::scroll::Scroll;
use super::{Action, App};

/// A twin ready to draw: parsed, pretty-printed and diffed when it arrived.
#[derive(Clone, Debug, PartialEq)]
pub struct TwinView {
    pub twin: ServiceTwin,
    pub tags: Vec<JsonLine>,
    pub desired: Vec<JsonLine>,
    pub reported: Vec<JsonLine>,
    pub diff: Vec<DiffEntry>,
    /// Leaf paths ("tags.x", "desired.y", "reported.z") that changed with the last update.
    pub changed: BTreeSet<String>,
}

impl TwinView {
    pub fn new(value: &Value, previous: Option<&TwinView>) -> Self {
        let twin = ServiceTwin::from_json(value);
        let diff = diff(
            &twin.desired.with_metadata(),
            &twin.reported.properties,
            twin.desired.version,
        );
        let changed = match previous {
            Some(p) if p.twin.device_id == twin.device_id => changed_leaves(&p.twin, &twin),
            _ => BTreeSet::new(),
        };
        Self {
            tags: lines(&twin.tags, "tags"),
            desired: lines(&twin.desired.properties, "desired"),
            reported: lines(&twin.reported.properties, "reported"),
            diff,
            changed,
            twin,
        }
    }
}

fn all_leaves(t: &ServiceTwin) -> std::collections::BTreeMap<String, String> {
    let mut all = leaves(&t.tags, "tags");
    all.extend(leaves(&t.desired.properties, "desired"));
    all.extend(leaves(&t.reported.properties, "reported"));
    all
}

fn changed_leaves(old: &ServiceTwin, new: &ServiceTwin) -> BTreeSet<String> {
    let (a, b) = (all_leaves(old), all_leaves(new));
    b.iter()
        .filter(|(k, v)| a.get(*k) != Some(v))
        .map(|(k, _)| k.clone())
        .chain(a.keys().filter(|k| !b.contains_key(*k)).cloned())
        .collect()
}

/// The three section panes; one has the focus and scrolls.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TwinPane {
    Tags,
    #[default]
    Desired,
    Reported,
}

impl TwinPane {
    pub const ALL: [TwinPane; 3] = [TwinPane::Tags, TwinPane::Desired, TwinPane::Reported];

    fn index(self) -> usize {
        self as usize
    }

    fn step(self, by: isize) -> TwinPane {
        Self::ALL[(self.index() as isize + by).rem_euclid(3) as usize]
    }

    pub fn lines(self, view: &TwinView) -> &[JsonLine] {
        match self {
            TwinPane::Tags => &view.tags,
            TwinPane::Desired => &view.desired,
            TwinPane::Reported => &view.reported,
        }
    }
}

/// An edit of tags or desired, kept until it is applied.
#[derive(Clone, Debug)]
pub struct TwinEdit {
    pub section: Section,
    pub editor: JsonEditor,
    /// The section when editing began (or at the last conflict): the patch is taken against it.
    pub base: Map<String, Value>,
    pub etag: String,
}

#[derive(Clone, Debug, Default)]
pub struct TwinState {
    /// Device the shown twin belongs to, and the module when it is a module's twin.
    pub device_id: Option<String>,
    pub module_id: Option<String>,
    pub loading: bool,
    pub view: Option<TwinView>,
    /// Diff view instead of the three sections.
    pub show_diff: bool,
    /// The section pane that scrolls.
    pub pane: TwinPane,
    /// Per pane, in `TwinPane::ALL` order.
    pub scroll: [Scroll; 3],
    pub diff_scroll: Scroll,
    pub edit: Option<TwinEdit>,
    /// Keys go to the editor.
    pub editing: bool,
    /// The last PATCH hit 412; the edit waits for `a`.
    pub conflict: bool,
    pub submitting: bool,
}

/// True when the tab shows the twin of the selected device (or module).
fn shows_selected(app: &App) -> bool {
    app.twin.device_id == app.selected_device && app.twin.module_id == app.selected_module
}

/// Requests the twin of the selected device (or module) if the tab shows another.
pub(super) fn ensure_loaded(app: &mut App, cmds: &mut Vec<HubCommand>) {
    let Some(id) = app.selected_device.clone() else {
        return;
    };
    if !shows_selected(app) || (app.twin.view.is_none() && !app.twin.loading) {
        app.twin.device_id = Some(id.clone());
        app.twin.module_id = app.selected_module.clone();
        app.twin.loading = true;
        cmds.push(HubCommand::GetTwin {
            device_id: id,
            module_id: app.selected_module.clone(),
        });
    }
}

/// The selected device or module changed: drop the other twin (its edit too, unless open).
pub(super) fn device_changed(app: &mut App) {
    if !shows_selected(app) && !app.twin.editing {
        let keep_edit = app.twin.edit.is_some() && app.twin.conflict;
        if !keep_edit {
            app.twin = TwinState {
                show_diff: app.twin.show_diff,
                ..TwinState::default()
            };
        }
    }
}

fn start_edit(app: &mut App, section: Section) -> bool {
    let Some(view) = &app.twin.view else {
        app.error("no twin loaded yet: pick a device in Devices");
        return true;
    };
    let reuse = app.twin.edit.as_ref().is_some_and(|e| e.section == section);
    if !reuse {
        let base = view.twin.section(section).clone();
        app.twin.edit = Some(TwinEdit {
            section,
            editor: JsonEditor::with_value(&Value::Object(base.clone())),
            base,
            etag: view.twin.etag.clone(),
        });
    }
    app.twin.editing = true;
    true
}

fn submit(app: &mut App, cmds: &mut Vec<HubCommand>) {
    let Some(device_id) = app.twin.device_id.clone() else {
        return;
    };
    let Some(edit) = &app.twin.edit else { return };
    let edited = match &edit.editor.status {
        Ok(Value::Object(map)) => map.clone(),
        Ok(_) => return app.error("the edit must be a JSON object"),
        Err(p) => return app.error(format!("the edit is not valid JSON: {p}")),
    };
    let patch = merge_patch(&edit.base, &edited);
    if patch.is_empty() {
        app.notice("nothing changed; no patch sent");
        return;
    }
    cmds.push(HubCommand::PatchTwin {
        device_id,
        module_id: app.twin.module_id.clone(),
        section: edit.section,
        patch,
        etag: edit.etag.clone(),
    });
    app.twin.submitting = true;
    app.twin.editing = false;
}

/// After a conflict: take the patch against the twin now, with its etag, and send again.
fn reapply(app: &mut App, cmds: &mut Vec<HubCommand>) -> bool {
    if !app.twin.conflict {
        return false;
    }
    let (Some(view), Some(edit)) = (&app.twin.view, app.twin.edit.as_mut()) else {
        return false;
    };
    edit.base = view.twin.section(edit.section).clone();
    edit.etag = view.twin.etag.clone();
    app.twin.conflict = false;
    submit(app, cmds);
    true
}

pub(super) fn on_action(app: &mut App, action: &Action, cmds: &mut Vec<HubCommand>) -> bool {
    if app.twin.editing {
        return match action {
            Action::Back => {
                app.twin.editing = false;
                true
            }
            Action::Submit => {
                submit(app, cmds);
                true
            }
            Action::Input(key) => app
                .twin
                .edit
                .as_mut()
                .is_some_and(|e| e.editor.handle(*key)),
            _ => false,
        };
    }
    match action {
        Action::EditDesired => start_edit(app, Section::Desired),
        Action::EditTags => start_edit(app, Section::Tags),
        Action::ToggleTwinView => {
            app.twin.show_diff = !app.twin.show_diff;
            true
        }
        Action::NextPane | Action::PrevPane if !app.twin.show_diff => {
            let by = if *action == Action::NextPane { 1 } else { -1 };
            app.twin.pane = app.twin.pane.step(by);
            true
        }
        Action::Reapply => reapply(app, cmds),
        Action::NextModule => {
            let changed = super::modules::next(app, cmds);
            ensure_loaded(app, cmds);
            changed
        }
        Action::Refresh => {
            app.twin.view = None;
            app.twin.loading = false;
            ensure_loaded(app, cmds);
            true
        }
        _ => {
            let tw = &mut app.twin;
            let Some(view) = &tw.view else {
                return false;
            };
            if tw.show_diff {
                tw.diff_scroll.apply(action, view.diff.len())
            } else {
                let pane = tw.pane;
                tw.scroll[pane.index()].apply(action, pane.lines(view).len())
            }
        }
    }
}

pub(super) fn on_event(app: &mut App, event: &HubEvent) -> bool {
    let (device_id, value) = match event {
        HubEvent::Twin { device_id, twin } | HubEvent::TwinUpdated { device_id, twin } => {
            (device_id, twin)
        }
        HubEvent::TwinConflict { device_id, current } => (device_id, current),
        _ => return false,
    };
    let module = value.get("moduleId").and_then(Value::as_str);
    if app.twin.device_id.as_ref() != Some(device_id) || app.twin.module_id.as_deref() != module {
        return false;
    }
    let view = TwinView::new(value, app.twin.view.as_ref());
    app.twin.view = Some(view);
    app.twin.loading = false;
    match event {
        HubEvent::TwinUpdated { .. } => {
            app.twin.submitting = false;
            app.twin.edit = None;
            app.twin.conflict = false;
            app.notice("twin updated");
        }
        HubEvent::TwinConflict { .. } => {
            app.twin.submitting = false;
            app.twin.conflict = true;
            app.error(
                "the twin changed since the edit began (412); the new twin is shown and your edit is kept: press a to re-apply it",
            );
        }
        _ => {}
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn view_marks_changed_leaves() {
        let a = json!({"deviceId": "d", "tags": {"x": 1},
            "properties": {"desired": {"t": 1, "$version": 2}, "reported": {"t": 0, "$version": 3}}});
        let b = json!({"deviceId": "d", "tags": {},
            "properties": {"desired": {"t": 1, "$version": 2}, "reported": {"t": 1, "$version": 4}}});
        let first = TwinView::new(&a, None);
        assert!(first.changed.is_empty());
        let second = TwinView::new(&b, Some(&first));
        assert_eq!(
            second.changed.iter().cloned().collect::<Vec<_>>(),
            ["reported.t", "tags.x"]
        );
        assert_eq!(second.diff.len(), 1);
        assert_eq!(second.diff[0].state, iothub::twin_diff::LeafState::InSync);
    }
}
