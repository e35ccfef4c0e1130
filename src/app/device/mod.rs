//! The device face's state, actions and update: one device seen from the device side, with
//! no terminal I/O. `DeviceApp` owns all state; `update` is the only thing that changes it and
//! returns what the device task must do as `ManualCommand`s; `ui::device` draws it.

pub mod action;
pub mod composer;
pub mod keymap;
pub mod questions;
pub mod records;
pub mod template;
pub mod twin;
mod update;

#[cfg(test)]
mod tests;

pub use action::{DeviceAction, DeviceTab, Editing};
pub use update::update;

use std::time::{Duration, Instant};

use ratatui::style::{Modifier, Style};
use ratatui_textarea::TextArea;

use composer::Composer;
use keymap::KeyContext;
use questions::Questions;
use records::{C2dMessage, MethodCall, Received};
use twin::TwinState;

/// What the device face was started with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceConfig {
    pub device_id: String,
    pub hub_host: String,
    /// The profile answering methods and acknowledging properties.
    pub profile: String,
    /// Whether Plug and Play acknowledgements start on.
    pub auto_ack: bool,
    /// Whether method calls start out put to the user, and how long they wait for an answer.
    pub ask_methods: bool,
    pub ask_timeout: Duration,
    /// Seed of `{{rand}}`.
    pub seed: u64,
}

/// The connection as the status bar tells it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Link {
    Connecting,
    Connected,
    /// Dropped or not reachable; the client retries with backoff.
    Reconnecting {
        reason: String,
    },
    /// The hub refused the credentials; the client keeps retrying, but the key must change.
    Refused {
        reason: String,
    },
}

/// One sentence in the status bar, for a while.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notice {
    pub text: String,
    pub error: bool,
    pub until: Instant,
}

#[derive(Debug)]
pub struct DeviceApp {
    pub config: DeviceConfig,
    pub tab: DeviceTab,
    pub help: bool,
    pub editing: Option<Editing>,
    pub link: Link,
    pub notice: Option<Notice>,
    pub composer: Composer,
    pub inbox: Received<C2dMessage>,
    pub methods: Received<MethodCall>,
    pub questions: Questions,
    pub twin: TwinState,
    pub should_quit: bool,
    dirty: bool,
    /// Id of the next command that expects an answer.
    next_id: u64,
}

impl DeviceApp {
    pub fn new(config: DeviceConfig) -> DeviceApp {
        DeviceApp {
            tab: DeviceTab::Telemetry,
            help: false,
            editing: None,
            link: Link::Connecting,
            notice: None,
            composer: Composer::new(config.seed),
            inbox: Received::default(),
            methods: Received::default(),
            questions: Questions::new(config.ask_methods, config.ask_timeout),
            twin: TwinState::new(config.auto_ack),
            should_quit: false,
            dirty: true,
            next_id: 1,
            config,
        }
    }

    pub fn key_context(&self) -> KeyContext {
        KeyContext {
            tab: self.tab,
            editing: self.editing,
            help: self.help,
        }
    }

    pub fn needs_redraw(&self) -> bool {
        self.dirty
    }

    pub fn mark_drawn(&mut self) {
        self.dirty = false;
    }

    pub fn mark_dirty(&mut self) {
        self.dirty = true;
    }

    /// When `Tick` is due: the notice expires, the next automatic send, or the countdown
    /// of a call waiting for the user moves on (each second).
    pub fn next_tick(&self) -> Option<Instant> {
        let notice = self.notice.as_ref().map(|n| n.until);
        let send = self.composer.next_send.filter(|_| self.composer.auto);
        let countdown = self.questions.waiting.front().map(|q| {
            let left = q.deadline.saturating_duration_since(Instant::now());
            let fraction = Duration::from_nanos(u64::from(left.subsec_nanos()));
            Instant::now()
                + if fraction.is_zero() {
                    Duration::from_secs(1)
                } else {
                    fraction
                }
        });
        [notice, send, countdown].into_iter().flatten().min()
    }

    /// Shows the cursor in the editor that has the keys, and in no other.
    fn style_editors(&mut self) {
        let on = |e: Editing| self.editing == Some(e);
        let (t, p, r, a) = (
            on(Editing::Template),
            on(Editing::Properties),
            on(Editing::Reported),
            on(Editing::Answer),
        );
        style_editor(&mut self.composer.template, t);
        style_editor(&mut self.composer.properties, p);
        style_editor(&mut self.twin.editor.textarea, r);
        style_editor(&mut self.questions.editor, a);
    }

    fn take_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }
}

/// An editor's cursor is drawn only while it has the keys; the cursor line is never marked
/// (the textarea underlines it by default, which reads as a link under NO_COLOR).
fn style_editor(t: &mut TextArea<'static>, focused: bool) {
    t.set_cursor_line_style(Style::new());
    t.set_cursor_style(if focused {
        Style::new().add_modifier(Modifier::REVERSED)
    } else {
        Style::new()
    });
}
