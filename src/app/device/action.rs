//! What can happen to the device face: keys resolved to actions, the device's events, ticks.

use std::time::Instant;

use ratatui::crossterm::event::KeyEvent;

use client::manual::ManualEvent;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceTab {
    Telemetry,
    Inbox,
    Methods,
    Twin,
}

impl DeviceTab {
    pub const ALL: [DeviceTab; 4] = [
        DeviceTab::Telemetry,
        DeviceTab::Inbox,
        DeviceTab::Methods,
        DeviceTab::Twin,
    ];

    pub fn title(self) -> &'static str {
        match self {
            DeviceTab::Telemetry => "Telemetry",
            DeviceTab::Inbox => "Inbox",
            DeviceTab::Methods => "Methods",
            DeviceTab::Twin => "Twin",
        }
    }

    pub fn index(self) -> usize {
        DeviceTab::ALL.iter().position(|t| *t == self).unwrap_or(0)
    }
}

/// The text being edited, when an editor has the keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Editing {
    Template,
    Properties,
    Reported,
    /// The answer to a method call put to the user.
    Answer,
}

#[derive(Clone, Debug, PartialEq)]
pub enum DeviceAction {
    Quit,
    ToggleHelp,
    NextTab,
    PrevTab,
    GoTab(DeviceTab),
    Up,
    Down,
    First,
    Last,
    /// Scrolls what the tab shows in detail (the selected entry, or the twin's sections).
    ScrollUp,
    ScrollDown,
    EditTemplate,
    EditProperties,
    EditReported,
    /// Esc in an editor: the text stays.
    LeaveEditor,
    /// Ctrl-s in an editor: send what it holds.
    Submit,
    /// A key for the focused editor.
    Input(KeyEvent),
    SendOnce,
    ToggleAutoSend,
    Faster,
    Slower,
    SendReported,
    ToggleAutoAck,
    /// Method calls put to the user, or answered by the profile.
    ToggleAskMethods,
    /// Opens the answer editor on the oldest call waiting.
    AnswerMethod,
    Tick(Instant),
    /// Boxed: events are large and rare next to keys and ticks.
    Device(Box<ManualEvent>),
    Resize,
}
