//! Blob-linked twin assets in the Twin tab: `A` opens the attach form (a local file, the
//! desired property that references it, the read SAS's lifetime, and which devices get
//! it); once attached, the rollout view (`R`) lists where each targeted device stands,
//! with counts, read again while it is on screen.

use std::path::PathBuf;
use std::time::Duration;

use ratatui::crossterm::event::KeyEvent;

use client::events::{AssetAttach, AssetTarget, HubCommand, HubEvent};
use client::rollout::{self, Progress, RolloutRow};

use super::body::escape;
use super::form::{Edit, Form, cycle, edit};
use super::input::TextField;
use super::scroll::Scroll;
use super::{Action, App};

/// SAS lifetime when the field is left empty.
const DEFAULT_HOURS: u64 = 24;
/// Longest SAS lifetime offered: a year.
const MAX_HOURS: u64 = 24 * 365;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AttachField {
    #[default]
    File,
    Name,
    Hours,
    Target,
}

impl AttachField {
    pub const ORDER: [AttachField; 4] = [
        AttachField::File,
        AttachField::Name,
        AttachField::Hours,
        AttachField::Target,
    ];

    pub fn label(self) -> &'static str {
        match self {
            AttachField::File => "file to upload",
            AttachField::Name => "desired property (letters, digits, _)",
            AttachField::Hours => "SAS lifetime in hours (empty: 24)",
            AttachField::Target => "devices: empty for the selected one, a query condition, or *",
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct AttachForm {
    pub file: TextField,
    pub name: TextField,
    pub hours: TextField,
    pub target: TextField,
    pub focus: AttachField,
}

impl AttachForm {
    pub fn field(&self, field: AttachField) -> &TextField {
        match field {
            AttachField::File => &self.file,
            AttachField::Name => &self.name,
            AttachField::Hours => &self.hours,
            AttachField::Target => &self.target,
        }
    }

    fn field_mut(&mut self, field: AttachField) -> &mut TextField {
        match field {
            AttachField::File => &mut self.file,
            AttachField::Name => &mut self.name,
            AttachField::Hours => &mut self.hours,
            AttachField::Target => &mut self.target,
        }
    }

    /// The attach request, or one sentence on what to fix.
    fn request(&self, selected: Option<&str>) -> Result<AssetAttach, String> {
        let file = self.file.value().trim();
        if file.is_empty() {
            return Err("name the file to upload".into());
        }
        let name = self.name.value().trim();
        if !rollout::valid_name(name) {
            return Err(format!(
                "\"{name}\" cannot name the desired property: use letters, digits and _, not starting with a digit"
            ));
        }
        let hours = match self.hours.value().trim() {
            "" => DEFAULT_HOURS,
            h => h
                .parse::<u64>()
                .ok()
                .filter(|h| (1..=MAX_HOURS).contains(h))
                .ok_or_else(|| {
                    format!("the SAS lifetime must be 1 to {MAX_HOURS} hours, not \"{h}\"")
                })?,
        };
        let target = match (self.target.value().trim(), selected) {
            ("", Some(device)) => AssetTarget::Device(device.to_string()),
            ("", None) => {
                return Err(
                    "pick a device in Devices, or give a query condition (or *) for the devices"
                        .into(),
                );
            }
            (condition, _) => AssetTarget::Matching(condition.to_string()),
        };
        Ok(AssetAttach {
            path: PathBuf::from(file),
            name: name.to_string(),
            lifetime: Duration::from_secs(hours * 3600),
            target,
        })
    }
}

impl Form for AttachForm {
    fn step_focus(&mut self, by: isize) {
        self.focus = cycle(&AttachField::ORDER, self.focus, by);
    }

    fn takes_enter(&self) -> bool {
        false
    }

    fn input(&mut self, key: KeyEvent) -> bool {
        let focus = self.focus;
        self.field_mut(focus).handle(key)
    }
}

/// An attached asset and where its devices stand.
#[derive(Clone, Debug, Default)]
pub struct Rollout {
    pub name: String,
    pub uri: String,
    /// Targets whose twin could not be patched, with why.
    pub failed: Vec<(String, String)>,
    /// One row per device the attach patched, in its order; pending until read.
    pub rows: Vec<RolloutRow>,
    /// Devices per progress, in `Progress::ALL` order; kept with `rows`, so drawing
    /// a frame counts nothing.
    pub counts: [(Progress, usize); 5],
    pub scroll: Scroll,
}

impl Rollout {
    pub fn new(name: &str, uri: &str, targeted: &[String], failed: &[(String, String)]) -> Self {
        let rows = targeted
            .iter()
            .map(|id| RolloutRow {
                device_id: id.clone(),
                desired: Some(uri.to_string()),
                ..RolloutRow::default()
            })
            .collect();
        let mut r = Rollout {
            name: name.to_string(),
            uri: uri.to_string(),
            failed: failed.to_vec(),
            rows,
            ..Rollout::default()
        };
        r.count();
        r
    }

    /// Takes a read of the devices' reports: targets it has replace their rows (devices
    /// it has that were not targeted are not shown).
    pub fn apply(&mut self, read: &[RolloutRow]) {
        let by_id: std::collections::HashMap<&str, &RolloutRow> =
            read.iter().map(|r| (r.device_id.as_str(), r)).collect();
        for row in &mut self.rows {
            if let Some(fresh) = by_id.get(row.device_id.as_str()) {
                *row = (*fresh).clone();
            }
        }
        self.count();
    }

    fn count(&mut self) {
        let mut counts = Progress::ALL.map(|p| (p, 0));
        for row in &self.rows {
            let p = row.progress(&self.uri);
            if let Some(c) = counts.iter_mut().find(|(q, _)| *q == p) {
                c.1 += 1;
            }
        }
        self.counts = counts;
    }
}

#[derive(Clone, Debug, Default)]
pub struct AssetsState {
    /// The attach form, while it is open.
    pub form: Option<AttachForm>,
    /// The last form, kept for the next `A` after a failure.
    pub last_form: Option<AttachForm>,
    pub attaching: bool,
    pub rollout: Option<Rollout>,
    /// The Twin tab shows the rollout instead of the twin.
    pub show_rollout: bool,
}

/// The property whose rollout is on screen, for the backend to keep fresh.
pub fn shown_rollout(app: &App) -> Option<String> {
    let a = &app.assets;
    (app.tab == super::Tab::Twin && a.show_rollout && a.form.is_none())
        .then(|| a.rollout.as_ref().map(|r| r.name.clone()))
        .flatten()
}

/// Keys while the attach form is open.
pub(super) fn on_form_action(app: &mut App, action: &Action, cmds: &mut Vec<HubCommand>) -> bool {
    let Some(form) = app.assets.form.as_mut() else {
        return false;
    };
    match edit(form, action) {
        Edit::Done(changed) => changed,
        Edit::Leave => {
            app.assets.last_form = app.assets.form.take();
            true
        }
        Edit::Submit => {
            match form.request(app.selected_device.as_deref()) {
                Ok(request) => {
                    app.notice(format!(
                        "uploading {} and attaching it as {}…",
                        request.path.display(),
                        request.name
                    ));
                    cmds.push(HubCommand::AttachAsset(request));
                    app.assets.attaching = true;
                    app.assets.last_form = app.assets.form.take();
                }
                Err(e) => app.error(e),
            }
            true
        }
        Edit::Ignored => false,
    }
}

/// Keys of the Twin tab that concern assets.
pub(super) fn on_action(app: &mut App, action: &Action) -> bool {
    match action {
        Action::AttachAsset => {
            if app.assets.attaching {
                app.error("an asset is being attached; wait for it to finish");
            } else {
                // A kept form (Esc, or a failed attach) comes back as it was, from its first field.
                let mut form = app.assets.last_form.take().unwrap_or_default();
                form.focus = AttachField::File;
                app.assets.form = Some(form);
            }
            true
        }
        Action::ToggleRollout => {
            if app.assets.rollout.is_none() {
                app.error("no asset attached yet: press A to attach one");
            } else {
                app.assets.show_rollout = !app.assets.show_rollout;
            }
            true
        }
        _ if app.assets.show_rollout => {
            let Some(r) = app.assets.rollout.as_mut() else {
                return false;
            };
            let len = r.rows.len();
            r.scroll.apply(action, len)
        }
        _ => false,
    }
}

pub(super) fn on_event(app: &mut App, event: &HubEvent) -> bool {
    match event {
        HubEvent::AssetAttached {
            name,
            uri,
            devices,
            failed,
        } => {
            app.assets.attaching = false;
            app.assets.last_form = None;
            let what = match devices.len() {
                1 => devices[0].clone(),
                n => format!("{n} devices"),
            };
            if failed.is_empty() {
                // An earlier failure is over.
                app.status.last_error = None;
                app.notice(format!("{name} attached to {what}"));
            } else {
                app.error(format!(
                    "{name} attached to {what}; {} could not be patched (first: {}: {})",
                    failed.len(),
                    failed[0].0,
                    failed[0].1
                ));
            }
            app.assets.rollout = Some(Rollout::new(name, uri, devices, failed));
            app.assets.show_rollout = true;
            true
        }
        HubEvent::AssetAttachFailed { name, reason } => {
            // The form stays in `last_form` for another try.
            app.assets.attaching = false;
            app.error(escape(&format!("cannot attach the asset {name}: {reason}")).into_owned());
            true
        }
        HubEvent::Rollout { name, rows } => match app.assets.rollout.as_mut() {
            Some(r) if &r.name == name => {
                r.apply(rows);
                true
            }
            _ => false,
        },
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::{Config, Mode, Tab};
    use ratatui::crossterm::event::{KeyCode, KeyModifiers};

    fn typed(app: &mut App, text: &str) {
        for c in text.chars() {
            let key = KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE);
            crate::app::update(app, Action::Input(key));
        }
    }

    fn app_on_twin() -> App {
        let mut app = App::new(Config::default());
        app.selected_device = Some("dev-1".into());
        crate::app::update(&mut app, Action::SelectTab(Tab::Twin));
        app
    }

    #[test]
    fn the_form_sends_one_attach_and_says_what_to_fix() {
        let mut app = app_on_twin();
        crate::app::update(&mut app, Action::AttachAsset);
        assert_eq!(app.mode(), Mode::Form);
        typed(&mut app, "/tmp/fw.bin");
        crate::app::update(&mut app, Action::NextField);
        typed(&mut app, "2fw");
        let (_, cmds) = crate::app::update(&mut app, Action::Submit);
        assert!(cmds.is_empty());
        assert!(
            app.status
                .last_error
                .as_deref()
                .unwrap()
                .contains("cannot name")
        );
        // Fixed: the selected device is the target, 24 hours the lifetime.
        crate::app::update(
            &mut app,
            Action::Input(KeyEvent::new(KeyCode::Home, KeyModifiers::NONE)),
        );
        crate::app::update(
            &mut app,
            Action::Input(KeyEvent::new(KeyCode::Delete, KeyModifiers::NONE)),
        );
        let (_, cmds) = crate::app::update(&mut app, Action::Submit);
        let want = AssetAttach {
            path: PathBuf::from("/tmp/fw.bin"),
            name: "fw".into(),
            lifetime: Duration::from_secs(24 * 3600),
            target: AssetTarget::Device("dev-1".into()),
        };
        assert!(cmds.contains(&HubCommand::AttachAsset(want)), "{cmds:?}");
        assert_eq!(app.mode(), Mode::Normal);
        // A second A while attaching is refused; a failure keeps the form.
        crate::app::update(&mut app, Action::AttachAsset);
        assert!(app.assets.form.is_none());
        // Any other failure meanwhile leaves the attach waiting.
        crate::app::update(
            &mut app,
            Action::Hub(HubEvent::Error("telemetry stopped".into())),
        );
        crate::app::update(&mut app, Action::AttachAsset);
        assert!(app.assets.form.is_none());
        crate::app::update(
            &mut app,
            Action::Hub(HubEvent::AssetAttachFailed {
                name: "fw".into(),
                reason: "cannot read /tmp/fw.bin: No such file or directory".into(),
            }),
        );
        let error = app.status.last_error.clone().unwrap();
        assert!(
            error.starts_with("cannot attach the asset fw: cannot read"),
            "{error}"
        );
        crate::app::update(&mut app, Action::AttachAsset);
        assert_eq!(app.assets.form.as_ref().unwrap().name.value(), "fw");
    }

    #[test]
    fn a_query_target_and_bad_hours() {
        let mut form = AttachForm {
            file: TextField::new("a.png"),
            name: TextField::new("logo"),
            hours: TextField::new("0"),
            ..AttachForm::default()
        };
        assert!(form.request(None).unwrap_err().contains("1 to"));
        form.hours = TextField::new("2");
        assert!(form.request(None).unwrap_err().contains("pick a device"));
        form.target = TextField::new("tags.site = 'lab'");
        let r = form.request(None).unwrap();
        assert_eq!(r.target, AssetTarget::Matching("tags.site = 'lab'".into()));
        assert_eq!(r.lifetime, Duration::from_secs(7200));
    }

    #[test]
    fn the_rollout_counts_targets_and_is_polled_while_shown() {
        let mut app = app_on_twin();
        let devices: Vec<String> = (0..3).map(|i| format!("d{i}")).collect();
        crate::app::update(
            &mut app,
            Action::Hub(HubEvent::AssetAttached {
                name: "fw".into(),
                uri: "u".into(),
                devices: devices.clone(),
                failed: vec![],
            }),
        );
        assert_eq!(app.on_screen().rollout.as_deref(), Some("fw"));
        assert_eq!(app.on_screen().twin, None, "the twin is not read behind it");
        let row = |id: &str, status: &str| RolloutRow {
            device_id: id.into(),
            desired: Some("u".into()),
            acknowledged: Some("u".into()),
            current: (status == "received").then(|| "u".into()),
            status: Some(status.into()),
            ..RolloutRow::default()
        };
        crate::app::update(
            &mut app,
            Action::Hub(HubEvent::Rollout {
                name: "fw".into(),
                // A device the query also matched but the attach did not patch is left out.
                rows: vec![
                    row("d0", "received"),
                    row("d1", "failed"),
                    row("zz", "received"),
                ],
            }),
        );
        let rollout = app.assets.rollout.as_ref().unwrap();
        assert_eq!(rollout.rows.len(), 3);
        assert_eq!(rollout.rows[1].status.as_deref(), Some("failed"));
        let counts = rollout.counts;
        assert_eq!(counts[0], (Progress::Pending, 1));
        assert_eq!(counts[2], (Progress::Received, 1));
        assert_eq!(counts[3], (Progress::Failed, 1));
        crate::app::update(&mut app, Action::ToggleRollout);
        assert_eq!(app.on_screen().rollout, None);
        assert_eq!(app.on_screen().twin.as_deref(), Some("dev-1"));
    }
}
