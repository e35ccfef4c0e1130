//! Inbox tab: cloud-to-device messages, newest first, and the selected one with every property
//! and its body.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use crate::app::device::DeviceApp;
use crate::app::device::records::C2dMessage;
use crate::ui::theme::{Role, Theme};
use crate::ui::widgets::{block, clip, row_style, window_start};

pub fn render(frame: &mut Frame, area: Rect, app: &DeviceApp, theme: &Theme) {
    let list_width = (area.width / 3).clamp(24, 40);
    let [list, detail] =
        Layout::horizontal([Constraint::Length(list_width), Constraint::Min(0)]).areas(area);
    let inbox = &app.inbox;
    let b = block(format!("Inbox ({})", inbox.total), theme, true);
    let inner = b.inner(list);
    frame.render_widget(b, list);
    let height = usize::from(inner.height);
    let start = window_start(Some(inbox.selected), inbox.items.len(), height);
    let width = usize::from(inner.width);
    let rows: Vec<Line> = inbox
        .items
        .iter()
        .enumerate()
        .skip(start)
        .take(height)
        .map(|(i, m)| {
            let text = format!("{} {}", m.at.format("%H:%M:%S"), m.message_id);
            Line::styled(clip(&text, width), row_style(i == inbox.selected, theme))
        })
        .collect();
    if rows.is_empty() {
        frame.render_widget(
            Paragraph::new(Line::styled(
                "no cloud-to-device message yet",
                theme.style(Role::Muted),
            )),
            inner,
        );
    } else {
        frame.render_widget(Paragraph::new(rows), inner);
    }

    let b = block("Message", theme, false);
    let inner = b.inner(detail);
    frame.render_widget(b, detail);
    if let Some(m) = inbox.selected() {
        frame.render_widget(
            Paragraph::new(detail_lines(
                m,
                inbox.detail_scroll,
                usize::from(inner.height),
                theme,
            )),
            inner,
        );
    }
}

/// The message's lines from `skip`, at most `height` of them.
fn detail_lines(m: &C2dMessage, skip: usize, height: usize, theme: &Theme) -> Vec<Line<'static>> {
    let heading = |t: String| Line::styled(t, theme.style(Role::Title));
    let pair = |k: &str, v: &str| {
        Line::from(vec![
            Span::styled(format!("  {k}: "), theme.style(Role::Muted)),
            Span::styled(v.to_string(), theme.style(Role::Text)),
        ])
    };
    let mut lines = vec![heading(format!(
        "Received {}",
        m.at.format("%Y-%m-%d %H:%M:%S UTC")
    ))];
    lines.push(heading("System properties".into()));
    lines.extend(m.system.iter().map(|(k, v)| pair(k, v)));
    lines.push(heading("Application properties".into()));
    if m.application.is_empty() {
        lines.push(Line::styled("  none", theme.style(Role::Muted)));
    }
    lines.extend(m.application.iter().map(|(k, v)| pair(k, v)));
    lines.push(heading(format!(
        "Body ({}, {})",
        m.body.kind.label(),
        m.body.size_label()
    )));
    // Only the body lines that can show are copied.
    let room = (height + skip).saturating_sub(lines.len());
    lines.extend(
        m.body
            .lines()
            .iter()
            .take(room)
            .map(|l| Line::styled(l.clone(), theme.style(Role::Text))),
    );
    lines.into_iter().skip(skip).take(height).collect()
}
