//! Explorer state, actions and update: no terminal I/O. `App` owns all state; `update` is the
//! only thing that changes it and returns side effects as `HubCommand`s; `ui` draws it.

pub mod action;
pub mod assets;
pub mod blobpreview;
pub mod body;
pub mod c2d;
pub mod chart;
pub mod device;
pub mod devices;
pub mod eventtext;
pub mod files;
pub mod form;
pub mod input;
pub mod jsonview;
pub mod keymap;
pub mod methods;
pub mod modules;
pub mod msgdiff;
pub mod numbers;
pub mod ring;
pub mod scroll;
pub mod telemetry;
pub mod twin;
mod update;

#[cfg(test)]
pub(crate) mod files_tests;
#[cfg(test)]
mod tests;

pub use action::{Action, Mode, Tab};
pub use update::update;

use std::time::{Duration, Instant};

/// How long a notice stays in the status bar.
pub const NOTICE_LIFETIME: Duration = Duration::from_secs(5);

use client::events::{Backend, HubCommand, LinkState, OnScreen, StartFrom};

use input::TextField;
use keymap::KeyContext;

/// How the explorer was started.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Host name of the hub, e.g. `myhub.azure-devices.net` or `localhost`.
    pub hub_host: String,
    /// True on the embedded local hub: the status bar says how to connect to a real one.
    pub embedded: bool,
    /// Telemetry rows kept (`--telemetry-buffer`).
    pub telemetry_capacity: usize,
    pub consumer_group: String,
    /// Prefix of C2D message ids the explorer makes up.
    pub message_id_prefix: String,
    /// AMQP runs over WebSockets (`--amqp-websockets`, a proxy): the status bar says so.
    pub amqp_over_websockets: bool,
    /// The storage account the Files tab reads (its name); None when none is configured.
    pub storage: Option<String>,
    /// The container device uploads go to: the Files tab opens on it.
    pub upload_container: String,
    /// File upload notifications arrive whenever the Files tab is on screen (the
    /// explorer's own hub); otherwise the user turns them on with `n`.
    pub file_notifications: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            hub_host: "localhost".into(),
            embedded: true,
            telemetry_capacity: ring::DEFAULT_CAPACITY,
            consumer_group: "$Default".into(),
            message_id_prefix: "hubtui".into(),
            amqp_over_websockets: false,
            storage: None,
            upload_container: "fileuploads".into(),
            file_notifications: true,
        }
    }
}

/// What a yes/no question does on yes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfirmAction {
    DeleteDevice(String),
    PurgeQueue(String),
    /// The method call waiting in `MethodsState::awaiting_yes`.
    InvokeMethod,
}

/// A pending yes/no question.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Confirm {
    pub question: String,
    pub on_yes: ConfirmAction,
}

/// What a one-line prompt is asking for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PromptKind {
    DeviceFilter,
    TelemetryFilter,
    ExportPath,
    StartFrom,
    ConsumerGroup,
    FilesFilter,
    DownloadPath,
}

impl PromptKind {
    pub fn label(self) -> &'static str {
        match self {
            PromptKind::DeviceFilter => "filter: id prefix, or a condition (tags.site = 'x'): ",
            PromptKind::TelemetryFilter => "filter device or text: ",
            PromptKind::ExportPath => "export to file: ",
            PromptKind::StartFrom => "start from (now, -10m, -2h, RFC 3339): ",
            PromptKind::ConsumerGroup => "consumer group: ",
            PromptKind::FilesFilter => "filter blob names: ",
            PromptKind::DownloadPath => "download to: ",
        }
    }
}

/// The prompt line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Prompt {
    pub kind: PromptKind,
    pub input: TextField,
}

/// One backend connection as the status bar shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Link {
    pub backend: Backend,
    pub state: LinkState,
    pub detail: Option<String>,
}

/// Status bar contents.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatusBar {
    pub links: Vec<Link>,
    pub last_error: Option<String>,
    /// Latest information message ("copied", "3 messages purged"), and when it came: it
    /// goes after `NOTICE_LIFETIME`.
    pub notice: Option<String>,
    pub notice_since: Option<Instant>,
    /// The hub throttles: polling waits this long (as of when it was reported).
    pub throttled: Option<Duration>,
    /// When the hub's pause ends: the note goes then, even if no call follows.
    pub throttled_until: Option<Instant>,
    /// Service REST calls in the last minute, once the backend made any.
    pub calls_per_minute: Option<usize>,
}

impl Default for StatusBar {
    fn default() -> Self {
        Self {
            links: Backend::ALL
                .iter()
                .map(|&backend| Link {
                    backend,
                    state: LinkState::Idle,
                    detail: None,
                })
                .collect(),
            last_error: None,
            notice: None,
            notice_since: None,
            throttled: None,
            throttled_until: None,
            calls_per_minute: None,
        }
    }
}

/// All explorer state.
#[derive(Debug)]
pub struct App {
    pub config: Config,
    pub tab: Tab,
    /// The device chosen in Devices; every tab works on it.
    pub selected_device: Option<String>,
    /// A module of that device chosen with `m`: the Twin and Methods tabs work on it.
    pub selected_module: Option<String>,
    /// The module ids of a device, once read (`m` reads them).
    pub modules: Option<(String, Vec<String>)>,
    pub devices: devices::DevicesState,
    pub telemetry: telemetry::TelemetryState,
    pub twin: twin::TwinState,
    pub methods: methods::MethodsState,
    pub c2d: c2d::C2dState,
    /// Assets attached from the Twin tab, and their rollout.
    pub assets: assets::AssetsState,
    pub files: files::FilesState,
    pub help: bool,
    pub confirm: Option<Confirm>,
    pub prompt: Option<Prompt>,
    pub status: StatusBar,
    pub should_quit: bool,
    /// What the backend was last told is on screen.
    on_screen_sent: Option<OnScreen>,
    needs_redraw: bool,
    clipboard: Option<String>,
    next_id: u64,
}

impl App {
    pub fn new(config: Config) -> Self {
        let mut app = Self {
            tab: Tab::Devices,
            selected_device: None,
            selected_module: None,
            modules: None,
            devices: devices::DevicesState::default(),
            telemetry: telemetry::TelemetryState::new(
                config.telemetry_capacity,
                config.consumer_group.clone(),
            ),
            twin: twin::TwinState::default(),
            methods: methods::MethodsState::default(),
            c2d: c2d::C2dState::default(),
            assets: assets::AssetsState::default(),
            files: files::FilesState::new(config.upload_container.clone()),
            help: false,
            confirm: None,
            prompt: None,
            status: StatusBar::default(),
            should_quit: false,
            on_screen_sent: None,
            needs_redraw: true,
            clipboard: None,
            next_id: 1,
            config,
        };
        // `start` tells the backend; from then on `update` does when it changes.
        app.on_screen_sent = Some(app.on_screen());
        app
    }

    /// Commands to send once the backend is up: the first device page, live telemetry, and
    /// what is on screen.
    pub fn start(&mut self) -> Vec<HubCommand> {
        self.devices.loading = true;
        let mut cmds = vec![
            HubCommand::LoadDevices {
                continuation: None,
                filter: None,
            },
            HubCommand::StartTelemetry {
                from: StartFrom::Now,
                consumer_group: self.config.consumer_group.clone(),
            },
        ];
        cmds.push(HubCommand::Visible(self.on_screen()));
        cmds
    }

    /// What the Twin and Methods tabs work on: "device" or "device/module".
    pub fn target_label(&self) -> Option<String> {
        let device = self.selected_device.as_deref()?;
        Some(match &self.selected_module {
            None => device.to_string(),
            Some(m) => format!("{device}/{m}"),
        })
    }

    /// What the backend should keep fresh: only what the current tab shows.
    pub fn on_screen(&self) -> OnScreen {
        let rollout = assets::shown_rollout(self);
        let twin_shown = self.tab == Tab::Twin && rollout.is_none();
        OnScreen {
            device_list: self.tab == Tab::Devices,
            twin: twin_shown.then(|| self.twin.device_id.clone()).flatten(),
            module: twin_shown.then(|| self.twin.module_id.clone()).flatten(),
            rollout,
            files: (self.tab == Tab::Files && self.config.storage.is_some())
                .then(|| self.files.container.clone()),
        }
    }

    /// `Visible` when what is on screen changed since the backend was last told.
    fn screen_change(&mut self) -> Option<HubCommand> {
        let now = self.on_screen();
        if self.on_screen_sent.as_ref() == Some(&now) {
            return None;
        }
        self.on_screen_sent = Some(now.clone());
        Some(HubCommand::Visible(now))
    }

    /// Which layer keys go to now.
    pub fn mode(&self) -> Mode {
        if self.help {
            Mode::Help
        } else if self.confirm.is_some() {
            Mode::Confirm
        } else if self.prompt.is_some() {
            Mode::Prompt
        } else {
            match self.tab {
                Tab::Devices if self.devices.create.is_some() => Mode::Form,
                Tab::Devices if self.devices.secret.is_some() => Mode::Secret,
                Tab::Telemetry if self.telemetry.detail.is_some() => Mode::Detail,
                Tab::Twin if self.twin.editing => Mode::Editor,
                Tab::Twin if self.assets.form.is_some() => Mode::Form,
                Tab::Methods if self.methods.editing => Mode::Form,
                Tab::C2d if self.c2d.editing => Mode::Form,
                Tab::Files if self.files.picker.is_some() => Mode::Picker,
                Tab::Files if self.files.preview.is_some() => Mode::Preview,
                _ => Mode::Normal,
            }
        }
    }

    pub fn key_context(&self) -> KeyContext {
        KeyContext { tab: self.tab }
    }

    /// True when state changed since the last `mark_drawn`.
    pub fn needs_redraw(&self) -> bool {
        self.needs_redraw
    }

    pub fn mark_drawn(&mut self) {
        self.needs_redraw = false;
    }

    /// Forces a redraw (resize, resume after suspend).
    pub fn mark_dirty(&mut self) {
        self.needs_redraw = true;
    }

    /// Text the terminal loop should put on the clipboard (OSC 52), once.
    pub fn take_clipboard(&mut self) -> Option<String> {
        self.clipboard.take()
    }

    fn copy(&mut self, what: &str, text: String) {
        self.notice(format!(
            "copied {what} ({} bytes) with OSC 52; if nothing arrived, the terminal may not allow it",
            text.len()
        ));
        self.clipboard = Some(text);
    }

    fn fresh_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    fn error(&mut self, message: impl Into<String>) {
        self.status.last_error = Some(message.into());
    }

    fn notice(&mut self, message: impl Into<String>) {
        self.status.notice = Some(message.into());
        self.status.notice_since = Some(Instant::now());
    }

    /// When the notice shown now goes away.
    pub fn notice_expires(&self) -> Option<Instant> {
        self.status.notice_since.map(|t| t + NOTICE_LIFETIME)
    }

    /// When the status bar next changes by itself (a notice or a throttling note ends); the
    /// terminal loop sends `Tick` then.
    pub fn next_tick(&self) -> Option<Instant> {
        [self.notice_expires(), self.status.throttled_until]
            .into_iter()
            .flatten()
            .min()
    }
}
