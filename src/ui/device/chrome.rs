//! What surrounds every device tab: tabs bar, footer hints, the notice and the status bar.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Wrap};

use crate::app::body::escape;
use crate::app::device::keymap::tables;
use crate::app::device::{DeviceAction, DeviceApp, DeviceTab, Link};
use crate::ui::theme::{Role, Theme};
use crate::ui::widgets::{footer_line, tab_spans};

pub fn tabs_bar(frame: &mut Frame, area: Rect, app: &DeviceApp, theme: &Theme) {
    // Calls waiting for the user's answer show on the Methods tab wherever the user is.
    let waiting = app.questions.waiting.len();
    let methods = format!("{} ({waiting} waiting)", DeviceTab::Methods.title());
    let titles = DeviceTab::ALL.iter().map(|t| match t {
        DeviceTab::Methods if waiting > 0 => methods.as_str(),
        t => t.title(),
    });
    let mut spans = tab_spans(titles, Some(app.tab.index()), theme);
    spans.push(Span::styled(
        format!("device: {}", escape(&app.config.device_id)),
        theme.style(Role::Muted),
    ));
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}

pub fn footer(frame: &mut Frame, area: Rect, app: &DeviceApp, theme: &Theme) {
    let bindings: Vec<_> = tables(app.key_context())
        .into_iter()
        .flat_map(|t| t.iter())
        .filter(|b| b.footer)
        .collect();
    let line = footer_line(
        &bindings,
        usize::from(area.width),
        &DeviceAction::ToggleHelp,
        theme,
    );
    frame.render_widget(Paragraph::new(line), area);
}

/// Rows the notice needs at `width` (wrapped, at most 3); 0 without one.
pub fn notice_height(app: &DeviceApp, width: u16) -> u16 {
    let Some(n) = &app.notice else { return 0 };
    let width = usize::from(width.max(1));
    let rows = n.text.chars().count().div_ceil(width).max(1);
    rows.min(3) as u16
}

/// The last notice, whole, above the status bar: an error sentence is never cut.
pub fn notice(frame: &mut Frame, area: Rect, app: &DeviceApp, theme: &Theme) {
    let Some(n) = &app.notice else { return };
    let role = if n.error { Role::Error } else { Role::Notice };
    let text = Line::styled(escape(&n.text).into_owned(), theme.style(role));
    frame.render_widget(Paragraph::new(text).wrap(Wrap { trim: false }), area);
}

/// State, device and hub first, so that a narrow screen cuts the reason, not the device.
pub fn status_bar(frame: &mut Frame, area: Rect, app: &DeviceApp, theme: &Theme) {
    let bar = theme.style(Role::StatusBar);
    let (symbol, role, state, reason) = match &app.link {
        Link::Connecting => ("◌", Role::Warn, "connecting", None),
        Link::Connected => ("●", Role::Ok, "connected", None),
        Link::Reconnecting { reason } => ("◌", Role::Warn, "reconnecting", Some(reason)),
        Link::Refused { reason } => ("✕", Role::Error, "refused by the hub", Some(reason)),
    };
    let mut spans = vec![
        Span::styled(" ", bar),
        Span::styled(symbol, bar.patch(theme.style(role))),
        Span::styled(format!(" {state} "), bar),
        Span::styled("│ ", bar),
        Span::styled(format!("{} ", escape(&app.config.device_id)), bar),
        Span::styled("│ ", bar),
        Span::styled(format!("{} ", escape(&app.config.hub_host)), bar),
        Span::styled("│ ", bar),
    ];
    match reason {
        Some(reason) => spans.push(Span::styled(
            format!("{} ", escape(reason)),
            bar.patch(theme.style(role)),
        )),
        None => spans.push(Span::styled(
            format!("profile {} ", escape(&app.config.profile)),
            bar,
        )),
    }
    frame.render_widget(Paragraph::new(Line::from(spans)).style(bar), area);
}
