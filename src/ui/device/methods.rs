//! Methods tab: every direct method call received, newest first, and the selected one with
//! its payload and the answer the profile gave.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use crate::app::device::DeviceApp;
use crate::app::device::records::MethodCall;
use crate::ui::theme::{Role, Theme};
use crate::ui::widgets::{block, clip, row_style, window_start};

pub fn render(frame: &mut Frame, area: Rect, app: &DeviceApp, theme: &Theme) {
    let list_width = (area.width / 3).clamp(24, 40);
    let [list, detail] =
        Layout::horizontal([Constraint::Length(list_width), Constraint::Min(0)]).areas(area);
    let calls = &app.methods;
    let b = block(format!("Calls ({})", calls.total), theme, true);
    let inner = b.inner(list);
    frame.render_widget(b, list);
    let height = usize::from(inner.height);
    let start = window_start(Some(calls.selected), calls.items.len(), height);
    let width = usize::from(inner.width);
    let rows: Vec<Line> = calls
        .items
        .iter()
        .enumerate()
        .skip(start)
        .take(height)
        .map(|(i, c)| {
            let text = format!("{} {} {}", c.at.format("%H:%M:%S"), c.status, c.name);
            Line::styled(clip(&text, width), row_style(i == calls.selected, theme))
        })
        .collect();
    if rows.is_empty() {
        let hint = format!(
            "no method call yet; the {} profile answers them",
            app.config.profile
        );
        frame.render_widget(
            Paragraph::new(Line::styled(
                clip(&hint, width * 3),
                theme.style(Role::Muted),
            ))
            .wrap(ratatui::widgets::Wrap { trim: true }),
            inner,
        );
    } else {
        frame.render_widget(Paragraph::new(rows), inner);
    }

    let b = block("Call", theme, false);
    let inner = b.inner(detail);
    frame.render_widget(b, detail);
    if let Some(c) = calls.selected() {
        frame.render_widget(
            Paragraph::new(detail_lines(
                c,
                calls.detail_scroll,
                usize::from(inner.height),
                theme,
            )),
            inner,
        );
    }
}

/// The call's lines from `skip`, at most `height`: only those are built.
fn detail_lines(c: &MethodCall, skip: usize, height: usize, theme: &Theme) -> Vec<Line<'static>> {
    let heading = |t: &str| Line::styled(t.to_string(), theme.style(Role::Title));
    let json = |l: &String| Line::styled(format!("  {l}"), theme.style(Role::Text));
    let status_role = if (200..300).contains(&c.status) {
        Role::Ok
    } else {
        Role::Error
    };
    let title = || {
        Line::from(vec![
            Span::styled(c.name.clone(), theme.style(Role::Title)),
            Span::styled(
                format!("  at {}", c.at.format("%Y-%m-%d %H:%M:%S UTC")),
                theme.style(Role::Muted),
            ),
        ])
    };
    let answer = || {
        Line::from(vec![
            Span::styled("Answer: status ", theme.style(Role::Title)),
            Span::styled(c.status.to_string(), theme.style(status_role)),
        ])
    };
    let error = c
        .error
        .iter()
        .map(|e| Line::styled(format!("  not delivered: {e}"), theme.style(Role::Error)));
    std::iter::once_with(title)
        .chain(std::iter::once_with(|| heading("Payload")))
        .chain(c.payload.iter().map(json))
        .chain(std::iter::once_with(answer))
        .chain(error)
        .chain(c.response.iter().map(json))
        .skip(skip)
        .take(height)
        .collect()
}
