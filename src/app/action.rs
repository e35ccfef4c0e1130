//! Everything that can change the explorer's state: `Action`s from keys and from the backend,
//! plus the `Tab` and input `Mode` they are resolved in.

use ratatui::crossterm::event::KeyEvent;

use client::events::HubEvent;

/// The explorer's tabs, in key order (1..=6).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Tab {
    #[default]
    Devices,
    Telemetry,
    Twin,
    Methods,
    C2d,
    Files,
}

impl Tab {
    pub const ALL: [Tab; 6] = [
        Tab::Devices,
        Tab::Telemetry,
        Tab::Twin,
        Tab::Methods,
        Tab::C2d,
        Tab::Files,
    ];

    pub fn title(self) -> &'static str {
        match self {
            Tab::Devices => "Devices",
            Tab::Telemetry => "Telemetry",
            Tab::Twin => "Twin",
            Tab::Methods => "Methods",
            Tab::C2d => "C2D",
            Tab::Files => "Files",
        }
    }

    pub fn index(self) -> usize {
        Self::ALL.iter().position(|t| *t == self).unwrap_or(0)
    }

    pub fn next(self) -> Tab {
        Self::ALL[(self.index() + 1) % Self::ALL.len()]
    }

    pub fn prev(self) -> Tab {
        Self::ALL[(self.index() + Self::ALL.len() - 1) % Self::ALL.len()]
    }
}

/// Which layer keys go to, from the top: help overlay, confirmation, prompt line, editor or
/// form, telemetry detail, else the tab itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mode {
    Normal,
    Help,
    Confirm,
    /// A one-line prompt at the bottom (filter, export path, start time, consumer group).
    Prompt,
    /// A form with fields (create device, method call, C2D message); Tab moves between them.
    Form,
    /// The twin JSON editor (Tab indents).
    Editor,
    /// Telemetry message detail.
    Detail,
    /// Device connection string panel.
    Secret,
    /// Files: a blob's preview pane.
    Preview,
    /// Files: the container picker.
    Picker,
}

/// One change to the explorer's state.
// Actions are moved into `update` once and never stored, so the size of `Hub` costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    // Global.
    Quit,
    NextTab,
    PrevTab,
    SelectTab(Tab),
    ToggleHelp,
    /// Esc: close the top layer.
    Back,
    /// `m`: the next module of the selected device (then the device again).
    NextModule,
    /// Ctrl-Z: the terminal loop suspends the process (listed here for `?`; `update` ignores it).
    Suspend,
    // Lists.
    Up,
    Down,
    PageUp,
    PageDown,
    Top,
    Bottom,
    /// `/`: start typing a filter for the current tab.
    StartFilter,
    Refresh,
    /// `y`: copy the thing in focus (connection string, message, method result) with OSC 52.
    Copy,
    // Prompt, form and editor input.
    /// A key for the focused text input.
    Input(KeyEvent),
    /// Enter in a prompt, Ctrl-S in a form or editor.
    Submit,
    NextField,
    PrevField,
    // Confirmation.
    ConfirmYes,
    ConfirmNo,
    // Devices.
    NewDevice,
    ToggleDeviceStatus,
    DeleteDevice,
    ShowConnectionString,
    RevealKeys,
    // Telemetry.
    TogglePause,
    OpenDetail,
    ToggleScope,
    ToggleDiff,
    Export,
    StartFrom,
    ConsumerGroup,
    ToggleChart,
    NextChartField,
    ClearTelemetry,
    // Twin.
    EditDesired,
    EditTags,
    ToggleTwinView,
    Reapply,
    /// `A`: upload a file and reference it in desired properties.
    AttachAsset,
    /// `R`: the attached asset's rollout, or the twin again.
    ToggleRollout,
    /// Focus the next / previous pane (twin sections).
    NextPane,
    PrevPane,
    // Methods and C2D.
    EditForm,
    Invoke,
    Rerun,
    SendC2d,
    CycleAck,
    PurgeQueue,
    // Files.
    /// `s`: newest first / grouped by device.
    ToggleSort,
    /// `c`: choose another container.
    PickContainer,
    /// `d`: download the selected blob (asks where).
    Download,
    /// `n`: receive file upload notifications from a real hub's shared queue.
    ToggleLive,
    /// Something from the backend.
    Hub(HubEvent),
    /// Terminal size changed: redraw.
    Resize,
    /// The clock reached a notice's end (the terminal loop sends it then).
    Tick(std::time::Instant),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tabs_cycle_in_key_order() {
        assert_eq!(Tab::Devices.next(), Tab::Telemetry);
        assert_eq!(Tab::C2d.next(), Tab::Files);
        assert_eq!(Tab::Files.next(), Tab::Devices);
        assert_eq!(Tab::Devices.prev(), Tab::Files);
        let titles: Vec<_> = Tab::ALL.iter().map(|t| t.title()).collect();
        assert_eq!(
            titles,
            ["Devices", "Telemetry", "Twin", "Methods", "C2D", "Files"]
        );
    }
}
