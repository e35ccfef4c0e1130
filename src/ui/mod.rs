//! Explorer views, widgets and themes. `render` draws `App` as it is: each tab is a pure
//! function of state, and nothing here changes state. (The terminal loop lands next.)

pub mod assets;
pub mod c2d;
pub mod device;
pub mod devices;
pub mod event_loop;
pub mod files;
pub mod image;
pub mod methods;
pub mod telemetry;
pub mod terminal;
pub mod theme;
pub mod twin;
pub mod widgets;

#[cfg(test)]
mod files_tests;
#[cfg(test)]
mod tests;

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout};

use crate::app::{App, Tab};

pub use theme::Theme;

/// Draws the whole explorer: tabs bar, local-hub banner, the tab, footer hints (or the prompt
/// line), status bar, then any overlay (confirmation, help).
pub fn render(frame: &mut Frame, app: &App, theme: &Theme) {
    let area = frame.area();
    let banner_height = u16::from(app.config.embedded);
    let [tabs, banner, body, footer, status] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(banner_height),
        Constraint::Min(0),
        Constraint::Length(1),
        Constraint::Length(1),
    ])
    .areas(area);
    widgets::tabs_bar(frame, tabs, app, theme);
    if app.config.embedded {
        widgets::banner(frame, banner, app, theme);
    }
    match app.tab {
        Tab::Devices => devices::render(frame, body, app, theme),
        Tab::Telemetry => telemetry::render(frame, body, app, theme),
        Tab::Twin => twin::render(frame, body, app, theme),
        Tab::Methods => methods::render(frame, body, app, theme),
        Tab::C2d => c2d::render(frame, body, app, theme),
        Tab::Files => files::render(frame, body, app, theme),
    }
    widgets::footer(frame, footer, app, theme);
    widgets::status_bar(frame, status, app, theme);
    if let Some(confirm) = &app.confirm {
        widgets::confirm_popup(frame, body, &confirm.question, theme);
    }
    if app.help {
        widgets::help_overlay(frame, area, app.tab, theme);
    }
}
