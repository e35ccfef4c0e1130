//! Methods tab: the call form (name, JSON payload, timeouts) that keeps its contents, the
//! result that stays in place, and the history of calls per device with one-key re-run.

use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::Duration;

use ratatui::crossterm::event::{KeyCode, KeyEvent};
use serde_json::Value;

use client::events::{HubCommand, HubEvent, MethodFailure};
use iothub::method::{
    DEFAULT_CONNECT_TIMEOUT_SECS, DEFAULT_RESPONSE_TIMEOUT_SECS, MethodInvocation,
};

use super::body::{escape, pretty_lines};
use super::form::{Edit, Form, cycle, edit};
use super::input::{JsonEditor, TextField};
use super::scroll::PAGE;
use super::{Action, App, Confirm, ConfirmAction};

/// Calls kept per device.
const MAX_HISTORY: usize = 50;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MethodField {
    #[default]
    Name,
    ResponseTimeout,
    ConnectTimeout,
    Payload,
}

impl MethodField {
    const ORDER: [MethodField; 4] = [
        MethodField::Name,
        MethodField::ResponseTimeout,
        MethodField::ConnectTimeout,
        MethodField::Payload,
    ];
}

#[derive(Clone, Debug)]
pub struct MethodForm {
    pub name: TextField,
    pub response_timeout: TextField,
    pub connect_timeout: TextField,
    pub payload: JsonEditor,
    pub focus: MethodField,
}

impl Form for MethodForm {
    fn step_focus(&mut self, by: isize) {
        self.focus = cycle(&MethodField::ORDER, self.focus, by);
    }

    fn takes_enter(&self) -> bool {
        self.focus == MethodField::Payload
    }

    fn input(&mut self, key: KeyEvent) -> bool {
        match self.focus {
            MethodField::Payload => self.payload.handle(key),
            MethodField::Name => self.name.handle(key),
            MethodField::ResponseTimeout => self.response_timeout.handle(key),
            MethodField::ConnectTimeout => self.connect_timeout.handle(key),
        }
    }
}

impl Default for MethodForm {
    fn default() -> Self {
        Self {
            name: TextField::default(),
            response_timeout: TextField::new(DEFAULT_RESPONSE_TIMEOUT_SECS.to_string()),
            connect_timeout: TextField::new(DEFAULT_CONNECT_TIMEOUT_SECS.to_string()),
            payload: JsonEditor::new("{}"),
            focus: MethodField::Name,
        }
    }
}

/// How a call ended, ready to draw.
#[derive(Clone, Debug, PartialEq)]
pub enum CallOutcome {
    Pending,
    Answered {
        status: i32,
        /// Pretty payload lines, escaped.
        lines: Vec<String>,
        /// Compact payload, for copying.
        text: String,
    },
    Failed(String),
}

/// One call in the history.
#[derive(Clone, Debug, PartialEq)]
pub struct MethodCall {
    pub call_id: u64,
    pub device_id: String,
    /// The module called, if a module's method.
    pub module_id: Option<String>,
    pub name: String,
    pub payload: Value,
    pub response_timeout: u64,
    pub connect_timeout: u64,
    pub outcome: CallOutcome,
}

#[derive(Clone, Debug, Default)]
pub struct MethodsState {
    pub form: MethodForm,
    pub editing: bool,
    /// Newest last, per device.
    pub history: HashMap<String, Vec<MethodCall>>,
    /// Index from the newest (0 = the last call) in the selected device's history.
    pub selected: usize,
    /// Why the form could not be sent.
    pub form_error: Option<String>,
    /// A call that restarts or wipes the device, waiting for yes.
    pub awaiting_yes: Option<MethodCall>,
}

/// Methods that restart or wipe a device by convention: reboot, reset, factory-reset, in
/// any case and with `-`, `_` or nothing between the words.
pub fn is_drastic(name: &str) -> bool {
    let word: String = name
        .chars()
        .filter(|c| !matches!(c, '-' | '_'))
        .collect::<String>()
        .to_lowercase();
    matches!(word.as_str(), "reboot" | "reset" | "factoryreset")
}

impl MethodsState {
    pub fn calls(&self, device: Option<&str>) -> &[MethodCall] {
        device
            .and_then(|d| self.history.get(d))
            .map_or(&[], Vec::as_slice)
    }

    /// The call whose result is shown: the selected one of this device.
    pub fn shown_call(&self, device: Option<&str>) -> Option<&MethodCall> {
        let calls = self.calls(device);
        calls
            .len()
            .checked_sub(1 + self.selected)
            .map(|i| &calls[i])
    }
}

/// Method names worth offering for `device`: those it answered before (newest first;
/// not those it answered 501, not implemented), then those of the model it announced,
/// when that is the model of one of the built-in device profiles (the demo devices).
pub fn known_methods(app: &App, device: &str) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    let answered = app
        .methods
        .calls(Some(device))
        .iter()
        .rev()
        .filter(|c| matches!(c.outcome, CallOutcome::Answered { status, .. } if status != 501));
    for call in answered {
        if !names.contains(&call.name) {
            names.push(call.name.clone());
        }
    }
    let model = app.devices.twins.get(device).map(|t| t.model_id.as_str());
    let of_model = profile_methods()
        .iter()
        .filter(|(m, _)| Some(m.as_str()) == model)
        .flat_map(|(_, methods)| methods);
    for name in of_model {
        if !names.contains(name) {
            names.push(name.clone());
        }
    }
    names
}

/// (model id, method names) of each built-in profile, read once.
fn profile_methods() -> &'static [(String, Vec<String>)] {
    static METHODS: OnceLock<Vec<(String, Vec<String>)>> = OnceLock::new();
    METHODS.get_or_init(|| {
        client::profile::BUILTIN_NAMES
            .iter()
            .filter_map(|n| client::profile::Profile::builtin(n))
            .filter_map(|p| Some((p.model_id?, p.methods.into_keys().collect())))
            .collect()
    })
}

/// Up / Down in the name field: the previous / next known method name, wrapping.
fn pick_known(app: &mut App, by: isize) -> bool {
    let Some(device) = app.selected_device.clone() else {
        return false;
    };
    let names = known_methods(app, &device);
    if names.is_empty() {
        return false;
    }
    let current = names
        .iter()
        .position(|n| n == app.methods.form.name.value().trim());
    let next = match current {
        Some(i) => (i as isize + by).rem_euclid(names.len() as isize) as usize,
        None if by > 0 => 0,
        None => names.len() - 1,
    };
    app.methods.form.name.set(names[next].clone());
    true
}

/// The user-facing sentence for a failed call; 404 and 504 get their own.
pub fn failure_sentence(f: &MethodFailure, device: &str, response_timeout: u64) -> String {
    let device = escape(device);
    match f.http_status {
        Some(404) => format!(
            "{device} is not connected, so it cannot take a method call (404); set a connect timeout to wait for it"
        ),
        Some(504) => format!(
            "{device} did not answer within the {response_timeout} s response timeout (504)"
        ),
        _ => escape(&f.message).into_owned(),
    }
}

fn parse_secs(field: &TextField, what: &str) -> Result<u64, String> {
    field
        .value()
        .trim()
        .parse()
        .map_err(|_| format!("the {what} must be a whole number of seconds"))
}

/// Validates the form into a call (timeouts and name by `iothub::method` rules).
fn build_call(
    form: &MethodForm,
    device_id: &str,
    module_id: Option<&str>,
    call_id: u64,
) -> Result<MethodCall, String> {
    let payload = match &form.payload.status {
        Ok(v) => v.clone(),
        Err(p) => return Err(format!("the payload is not valid JSON: {p}")),
    };
    let invocation = MethodInvocation {
        method_name: form.name.value().trim().to_string(),
        payload,
        response_timeout_in_seconds: Some(parse_secs(&form.response_timeout, "response timeout")?),
        connect_timeout_in_seconds: Some(parse_secs(&form.connect_timeout, "connect timeout")?),
    };
    let valid = invocation.validate().map_err(|e| e.to_string())?;
    Ok(MethodCall {
        call_id,
        device_id: device_id.to_string(),
        module_id: module_id.map(str::to_string),
        name: valid.method_name,
        payload: valid.payload,
        response_timeout: valid.response_timeout.as_secs(),
        connect_timeout: valid.connect_timeout.as_secs(),
        outcome: CallOutcome::Pending,
    })
}

/// Sends the call, after one yes when it would restart or wipe the device.
fn send(app: &mut App, call: MethodCall, cmds: &mut Vec<HubCommand>) {
    if is_drastic(&call.name) {
        app.confirm = Some(Confirm {
            question: format!(
                "Call {} on {}? It may restart or wipe the device.",
                escape(&call.name),
                escape(&call.device_id)
            ),
            on_yes: ConfirmAction::InvokeMethod,
        });
        app.methods.awaiting_yes = Some(call);
        return;
    }
    send_now(app, call, cmds);
}

/// Yes to the question `send` asked.
pub(super) fn confirmed(app: &mut App, cmds: &mut Vec<HubCommand>) {
    if let Some(call) = app.methods.awaiting_yes.take() {
        send_now(app, call, cmds);
    }
}

fn send_now(app: &mut App, mut call: MethodCall, cmds: &mut Vec<HubCommand>) {
    call.call_id = app.fresh_id();
    cmds.push(HubCommand::InvokeMethod {
        call_id: call.call_id,
        device_id: call.device_id.clone(),
        module_id: call.module_id.clone(),
        name: call.name.clone(),
        payload: call.payload.clone(),
        response_timeout: Duration::from_secs(call.response_timeout),
        connect_timeout: Duration::from_secs(call.connect_timeout),
    });
    let list = app
        .methods
        .history
        .entry(call.device_id.clone())
        .or_default();
    list.push(call);
    if list.len() > MAX_HISTORY {
        list.remove(0);
    }
    app.methods.selected = 0;
    app.methods.form_error = None;
}

fn invoke(app: &mut App, cmds: &mut Vec<HubCommand>) {
    let Some(device) = app.selected_device.clone() else {
        app.methods.form_error = Some("pick a device in Devices first".into());
        return;
    };
    let module = app.selected_module.clone();
    match build_call(&app.methods.form, &device, module.as_deref(), 0) {
        Ok(call) => {
            app.methods.editing = false;
            send(app, call, cmds);
        }
        Err(e) => app.methods.form_error = Some(e),
    }
}

pub(super) fn on_action(app: &mut App, action: &Action, cmds: &mut Vec<HubCommand>) -> bool {
    if app.methods.editing
        && app.methods.form.focus == MethodField::Name
        && let Action::Input(key) = action
        && matches!(key.code, KeyCode::Up | KeyCode::Down)
    {
        return pick_known(app, if key.code == KeyCode::Down { 1 } else { -1 });
    }
    if app.methods.editing {
        return match edit(&mut app.methods.form, action) {
            Edit::Leave => {
                app.methods.editing = false;
                true
            }
            Edit::Submit => {
                invoke(app, cmds);
                true
            }
            Edit::Done(changed) => changed,
            Edit::Ignored => false,
        };
    }
    let device = app.selected_device.clone();
    let count = app.methods.calls(device.as_deref()).len();
    match action {
        Action::EditForm => app.methods.editing = true,
        Action::NextModule => return super::modules::next(app, cmds),
        Action::Invoke => invoke(app, cmds),
        Action::Rerun => {
            let Some(call) = app.methods.shown_call(device.as_deref()).cloned() else {
                return false;
            };
            send(app, call, cmds);
        }
        Action::Copy => {
            let text = match app
                .methods
                .shown_call(device.as_deref())
                .map(|c| &c.outcome)
            {
                Some(CallOutcome::Answered { text, .. }) => text.clone(),
                Some(CallOutcome::Failed(e)) => e.clone(),
                _ => return false,
            };
            app.copy("the method result", text);
        }
        // History runs newest first on screen: Down goes to older calls.
        Action::Down if app.methods.selected + 1 < count => app.methods.selected += 1,
        Action::Up if app.methods.selected > 0 => app.methods.selected -= 1,
        Action::PageDown if app.methods.selected + 1 < count => {
            app.methods.selected = (app.methods.selected + PAGE).min(count - 1)
        }
        Action::PageUp if app.methods.selected > 0 => {
            app.methods.selected = app.methods.selected.saturating_sub(PAGE)
        }
        Action::Top => app.methods.selected = 0,
        Action::Bottom => app.methods.selected = count.saturating_sub(1),
        _ => return false,
    }
    true
}

pub(super) fn on_event(app: &mut App, event: &HubEvent) -> bool {
    let HubEvent::MethodResult { call_id, result } = event else {
        return false;
    };
    let Some(call) = app
        .methods
        .history
        .values_mut()
        .flat_map(|calls| calls.iter_mut())
        .find(|c| c.call_id == *call_id)
    else {
        return false;
    };
    call.outcome = match result {
        Ok(r) => CallOutcome::Answered {
            status: r.status,
            lines: pretty_lines(&r.payload),
            text: r.payload.to_string(),
        },
        Err(f) => CallOutcome::Failed(failure_sentence(f, &call.device_id, call.response_timeout)),
    };
    true
}
