//! Devices tab: the registry list paged with continuation tokens, filter, create, enable /
//! disable, delete, and the device connection string with keys masked until revealed.

use ratatui::crossterm::event::{KeyCode, KeyEvent};

use client::backend::filter_condition;
use std::collections::BTreeMap;

use client::events::{HubCommand, HubEvent, NewDeviceAuth, TwinSummary};
use iothub::connection_string::{DeviceAuth, DeviceConnectionString};
use iothub::device::{AuthType, DeviceIdentity, DeviceStatus, validate_device_id};

use super::input::TextField;
use super::{Action, App, Confirm, ConfirmAction, Prompt, PromptKind};

/// Rows before the end of the list at which the next page is requested.
const PREFETCH_ROWS: usize = 10;
/// Rows moved by PageUp / PageDown.
pub const PAGE: usize = 10;

/// The create-device form.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CreateDeviceForm {
    pub id: TextField,
    /// X.509 thumbprint instead of SAS keys.
    pub x509: bool,
    pub primary_thumbprint: TextField,
    pub secondary_thumbprint: TextField,
    /// 0 id, 1 auth, 2 primary, 3 secondary.
    pub focus: usize,
    pub error: Option<String>,
}

impl CreateDeviceForm {
    pub const FIELDS: usize = 4;

    fn submit(&mut self) -> Option<HubCommand> {
        let device_id = self.id.value().trim().to_string();
        if let Err(e) = validate_device_id(&device_id) {
            self.error = Some(e.to_string());
            return None;
        }
        let auth = if self.x509 {
            let primary = self.primary_thumbprint.value().trim().to_string();
            if primary.is_empty() {
                self.error = Some("an X.509 device needs a primary thumbprint".into());
                return None;
            }
            let secondary = self.secondary_thumbprint.value().trim();
            NewDeviceAuth::X509 {
                primary_thumbprint: primary,
                secondary_thumbprint: (!secondary.is_empty()).then(|| secondary.to_string()),
            }
        } else {
            NewDeviceAuth::Sas
        };
        Some(HubCommand::CreateDevice { device_id, auth })
    }

    fn input(&mut self, key: KeyEvent) -> bool {
        match self.focus {
            0 => self.id.handle(key),
            1 if matches!(
                key.code,
                KeyCode::Char(' ') | KeyCode::Enter | KeyCode::Left | KeyCode::Right
            ) =>
            {
                self.x509 = !self.x509;
                true
            }
            2 => self.primary_thumbprint.handle(key),
            3 => self.secondary_thumbprint.handle(key),
            _ => false,
        }
    }
}

/// The connection string panel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretPanel {
    pub device_id: String,
    pub revealed: bool,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct DevicesState {
    pub items: Vec<DeviceIdentity>,
    pub continuation: Option<String>,
    pub loading: bool,
    /// Index into `visible()`.
    pub selected: usize,
    /// Applied filter (device id substring, case-insensitive).
    pub filter: String,
    pub create: Option<CreateDeviceForm>,
    pub secret: Option<SecretPanel>,
    /// Model id and tags of the listed devices, by id.
    pub twins: BTreeMap<String, TwinSummary>,
}

impl DevicesState {
    /// Devices matching the filter, in registry order. A query condition was applied by the
    /// hub; an id prefix is also matched here, so a list loaded before it narrows at once.
    pub fn visible(&self) -> Vec<&DeviceIdentity> {
        if filter_condition(&self.filter).is_some() {
            return self.items.iter().collect();
        }
        let needle = self.filter.to_lowercase();
        self.items
            .iter()
            .filter(|d| needle.is_empty() || d.device_id.to_lowercase().contains(&needle))
            .collect()
    }

    pub fn selected_device(&self) -> Option<&DeviceIdentity> {
        self.visible().get(self.selected).copied()
    }

    fn find(&self, device_id: &str) -> Option<&DeviceIdentity> {
        self.items.iter().find(|d| d.device_id == device_id)
    }
}

/// The device's connection string, masked unless `revealed`; None when the registry entry
/// carries no key to build it from.
pub fn connection_string(host: &str, device: &DeviceIdentity, revealed: bool) -> Option<String> {
    let auth = match device.authentication.auth_type {
        AuthType::Sas => DeviceAuth::SharedAccessKey(
            device
                .authentication
                .symmetric_key
                .as_ref()?
                .primary_key
                .clone()
                .filter(|k| !k.is_empty())?,
        ),
        AuthType::SelfSigned | AuthType::CertificateAuthority => DeviceAuth::X509,
        AuthType::None => return None,
    };
    let cs = DeviceConnectionString {
        host_name: host.to_string(),
        device_id: device.device_id.clone(),
        module_id: None,
        auth,
        gateway_host_name: None,
    };
    Some(if revealed {
        cs.to_string()
    } else {
        cs.masked()
    })
}

/// Shown instead of a key.
pub const MASK: &str = "••••••••";

/// The registry entry as JSON with its keys masked, for the detail pane.
pub fn masked_identity(device: &DeviceIdentity) -> serde_json::Value {
    let mut value = serde_json::to_value(device).unwrap_or_default();
    if let Some(keys) = value
        .pointer_mut("/authentication/symmetricKey")
        .and_then(serde_json::Value::as_object_mut)
    {
        for key in keys.values_mut().filter(|k| k.is_string()) {
            *key = MASK.into();
        }
    }
    value
}

/// Top-level tags as `name=value`, values compact, for a column.
pub fn tags_summary(tags: &serde_json::Map<String, serde_json::Value>) -> String {
    tags.iter()
        .map(|(k, v)| match v {
            serde_json::Value::String(s) => format!("{k}={s}"),
            other => format!("{k}={other}"),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Selection moved: carry it to every tab, and fetch the next page near the end.
fn selection_moved(app: &mut App, cmds: &mut Vec<HubCommand>) {
    let visible = app.devices.visible().len();
    app.devices.selected = app.devices.selected.min(visible.saturating_sub(1));
    let id = app.devices.selected_device().map(|d| d.device_id.clone());
    if id.is_some() && id != app.selected_device {
        app.selected_device = id;
        super::modules::device_changed(app);
        super::twin::device_changed(app);
        super::telemetry::device_changed(app);
    }
    if app.devices.selected + PREFETCH_ROWS >= visible
        && !app.devices.loading
        && app.devices.continuation.is_some()
    {
        app.devices.loading = true;
        cmds.push(HubCommand::LoadDevices {
            continuation: app.devices.continuation.clone(),
            filter: (!app.devices.filter.is_empty()).then(|| app.devices.filter.clone()),
        });
    }
}

fn reload(app: &mut App, cmds: &mut Vec<HubCommand>) {
    app.devices.loading = true;
    cmds.push(HubCommand::LoadDevices {
        continuation: None,
        filter: (!app.devices.filter.is_empty()).then(|| app.devices.filter.clone()),
    });
}

/// Keys of the Devices tab in its own modes (form, connection string, list).
pub(super) fn on_action(app: &mut App, action: &Action, cmds: &mut Vec<HubCommand>) -> bool {
    if let Some(form) = app.devices.create.as_mut() {
        return match action {
            Action::Back => {
                app.devices.create = None;
                true
            }
            Action::NextField => {
                form.focus = (form.focus + 1) % CreateDeviceForm::FIELDS;
                true
            }
            Action::PrevField => {
                form.focus = (form.focus + CreateDeviceForm::FIELDS - 1) % CreateDeviceForm::FIELDS;
                true
            }
            Action::Input(key) if key.code == KeyCode::Enter && form.focus != 1 => {
                form.focus = (form.focus + 1) % CreateDeviceForm::FIELDS;
                true
            }
            Action::Input(key) => form.input(*key),
            Action::Submit => {
                if let Some(cmd) = form.submit() {
                    app.devices.create = None;
                    cmds.push(cmd);
                }
                true
            }
            _ => false,
        };
    }
    if let Some(panel) = app.devices.secret.as_mut() {
        match action {
            Action::Back => app.devices.secret = None,
            Action::RevealKeys => panel.revealed = !panel.revealed,
            Action::Copy => {
                let id = panel.device_id.clone();
                let text = app
                    .devices
                    .find(&id)
                    .and_then(|d| connection_string(&app.config.hub_host, d, true));
                match text {
                    Some(text) => app.copy("the connection string", text),
                    None => app.error(format!("{id} has no key to build a connection string from")),
                }
            }
            _ => return false,
        }
        return true;
    }
    let visible = app.devices.visible().len();
    let sel = app.devices.selected;
    let moved_to = match action {
        Action::Down => Some((sel + 1).min(visible.saturating_sub(1))),
        Action::Up => Some(sel.saturating_sub(1)),
        Action::PageDown => Some((sel + PAGE).min(visible.saturating_sub(1))),
        Action::PageUp => Some(sel.saturating_sub(PAGE)),
        Action::Top => Some(0),
        Action::Bottom => Some(visible.saturating_sub(1)),
        _ => None,
    };
    if let Some(to) = moved_to {
        app.devices.selected = to;
        selection_moved(app, cmds);
        return true;
    }
    match action {
        Action::StartFilter => {
            app.prompt = Some(Prompt {
                kind: PromptKind::DeviceFilter,
                input: TextField::new(app.devices.filter.clone()),
            });
        }
        Action::Refresh => reload(app, cmds),
        Action::NewDevice => app.devices.create = Some(CreateDeviceForm::default()),
        Action::ToggleDeviceStatus => {
            let Some(d) = app.devices.selected_device() else {
                return false;
            };
            let status = match d.status {
                DeviceStatus::Enabled => DeviceStatus::Disabled,
                DeviceStatus::Disabled => DeviceStatus::Enabled,
            };
            cmds.push(HubCommand::SetDeviceStatus {
                device_id: d.device_id.clone(),
                status,
            });
        }
        Action::DeleteDevice => {
            let Some(d) = app.devices.selected_device() else {
                return false;
            };
            app.confirm = Some(Confirm {
                question: format!(
                    "Delete device {}? Its twin and messages go with it.",
                    super::body::escape(&d.device_id)
                ),
                on_yes: ConfirmAction::DeleteDevice(d.device_id.clone()),
            });
        }
        Action::ShowConnectionString => {
            let Some(d) = app.devices.selected_device() else {
                return false;
            };
            // Query pages carry no keys: read the registry entry for them.
            let needs_keys = d.authentication.auth_type == AuthType::Sas
                && d.authentication.symmetric_key.is_none();
            let device_id = d.device_id.clone();
            if needs_keys {
                cmds.push(HubCommand::GetDevice {
                    device_id: device_id.clone(),
                });
            }
            app.devices.secret = Some(SecretPanel {
                device_id,
                revealed: false,
            });
        }
        _ => return false,
    }
    true
}

/// The device filter prompt was applied.
pub(super) fn apply_filter(app: &mut App, filter: String, cmds: &mut Vec<HubCommand>) {
    app.devices.filter = filter.trim().to_string();
    app.devices.selected = 0;
    reload(app, cmds);
}

pub(super) fn on_event(app: &mut App, event: &HubEvent, cmds: &mut Vec<HubCommand>) -> bool {
    match event {
        HubEvent::DevicesPage {
            items,
            twins,
            continuation,
            replace,
        } => {
            if *replace {
                app.devices.items.clear();
                app.devices.twins.clear();
            }
            app.devices.items.extend(items.iter().cloned());
            app.devices
                .twins
                .extend(twins.iter().map(|(k, v)| (k.clone(), v.clone())));
            app.devices.continuation = continuation.clone();
            app.devices.loading = false;
            // Keep the chosen device chosen when the list reloads.
            if let Some(id) = &app.selected_device
                && let Some(i) = app
                    .devices
                    .visible()
                    .iter()
                    .position(|d| &d.device_id == id)
            {
                app.devices.selected = i;
            }
            selection_moved(app, cmds);
        }
        HubEvent::DeviceChanged(device) => {
            match app
                .devices
                .items
                .iter_mut()
                .find(|d| d.device_id == device.device_id)
            {
                Some(d) => *d = device.clone(),
                None => app.devices.items.push(device.clone()),
            }
            app.notice(format!(
                "device {} saved",
                super::body::escape(&device.device_id)
            ));
        }
        HubEvent::DeviceLoaded(device) => {
            let Some(d) = app
                .devices
                .items
                .iter_mut()
                .find(|d| d.device_id == device.device_id)
            else {
                return false;
            };
            *d = device.clone();
        }
        HubEvent::DeviceDeleted { device_id } => {
            app.devices.items.retain(|d| &d.device_id != device_id);
            if app.selected_device.as_deref() == Some(device_id) {
                app.selected_device = None;
            }
            app.notice(format!("device {} deleted", super::body::escape(device_id)));
            selection_moved(app, cmds);
        }
        _ => return false,
    }
    true
}
