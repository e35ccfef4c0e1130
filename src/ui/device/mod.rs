//! The device face's views: `render` draws `DeviceApp` as it is (tabs bar, the tab, footer
//! hints, status bar, help), and `DeviceApp` runs in the explorer's loop through `LoopApp`.

mod chrome;
mod inbox;
mod methods;
mod telemetry;
mod twin;

#[cfg(test)]
mod tests;

use std::time::Instant;

use ratatui::Frame;
use ratatui::crossterm::event::KeyEvent;
use ratatui::layout::{Constraint, Layout};

use super::Theme;
use super::event_loop::{LoopApp, paste_keys};
use crate::app::device::keymap::{help_sections, resolve};
use crate::app::device::{DeviceAction, DeviceApp, DeviceTab, update};
use client::manual::{ManualCommand, ManualEvent};

/// Draws the whole device face.
pub fn render(frame: &mut Frame, app: &DeviceApp, theme: &Theme) {
    let area = frame.area();
    let notice_height = chrome::notice_height(app, area.width);
    let [tabs, body, footer, notice, status] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(0),
        Constraint::Length(1),
        Constraint::Length(notice_height),
        Constraint::Length(1),
    ])
    .areas(area);
    chrome::tabs_bar(frame, tabs, app, theme);
    match app.tab {
        DeviceTab::Telemetry => telemetry::render(frame, body, app, theme),
        DeviceTab::Inbox => inbox::render(frame, body, app, theme),
        DeviceTab::Methods => methods::render(frame, body, app, theme),
        DeviceTab::Twin => twin::render(frame, body, app, theme),
    }
    chrome::footer(frame, footer, app, theme);
    chrome::notice(frame, notice, app, theme);
    chrome::status_bar(frame, status, app, theme);
    if app.help {
        super::widgets::help_popup(frame, area, app.tab.title(), &help_sections(app.tab), theme);
    }
}

impl LoopApp for DeviceApp {
    type Event = ManualEvent;
    type Command = ManualCommand;

    fn start(&mut self) -> Vec<ManualCommand> {
        Vec::new()
    }
    fn on_key(&mut self, key: KeyEvent) -> Vec<ManualCommand> {
        match resolve(key, self.key_context()) {
            Some(action) => update(self, action).1,
            None => Vec::new(),
        }
    }
    /// A paste types into the focused editor (never as shortcuts); elsewhere it is dropped.
    fn on_paste(&mut self, text: &str) -> Vec<ManualCommand> {
        if self.help || self.editing.is_none() {
            return Vec::new();
        }
        // Every editor of the device face has several lines.
        paste_keys(text, true)
            .into_iter()
            .flat_map(|key| update(self, DeviceAction::Input(key)).1)
            .collect()
    }
    fn on_resize(&mut self) -> Vec<ManualCommand> {
        update(self, DeviceAction::Resize).1
    }
    fn on_event(&mut self, event: ManualEvent) -> Vec<ManualCommand> {
        update(self, DeviceAction::Device(Box::new(event))).1
    }
    fn on_tick(&mut self, now: Instant) -> Vec<ManualCommand> {
        update(self, DeviceAction::Tick(now)).1
    }
    fn next_tick(&self) -> Option<Instant> {
        DeviceApp::next_tick(self)
    }
    fn needs_redraw(&self) -> bool {
        DeviceApp::needs_redraw(self)
    }
    fn mark_drawn(&mut self) {
        DeviceApp::mark_drawn(self)
    }
    fn mark_dirty(&mut self) {
        DeviceApp::mark_dirty(self)
    }
    fn take_clipboard(&mut self) -> Option<String> {
        None
    }
    fn should_quit(&self) -> bool {
        self.should_quit
    }
    fn render(&self, frame: &mut Frame, theme: &Theme) {
        render(frame, self, theme)
    }
}
