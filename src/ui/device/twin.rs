//! Twin tab: desired and reported as the device knows them (with their `$version`s), the
//! reported-patch editor, and what happened to the twin, with the auto-ack setting.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use crate::app::device::twin::version_of;
use crate::app::device::{DeviceApp, Editing};
use crate::ui::theme::{Role, Theme};
use crate::ui::widgets::{block, clip};

pub fn render(frame: &mut Frame, area: Rect, app: &DeviceApp, theme: &Theme) {
    let [top, bottom] =
        Layout::vertical([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(area);
    let [desired, reported] =
        Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(top);
    let [editor, log] =
        Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(bottom);
    let t = &app.twin;
    let version = |v: Option<u64>| v.map_or("-".to_string(), |v| v.to_string());
    section(
        frame,
        desired,
        &format!("Desired · $version {}", version(version_of(&t.desired))),
        &t.desired_lines,
        t.scroll,
        theme,
    );
    section(
        frame,
        reported,
        &format!("Reported · $version {}", version(version_of(&t.reported))),
        &t.reported_lines,
        t.scroll,
        theme,
    );

    let focused = app.editing == Some(Editing::Reported);
    let b = block("Reported patch", theme, focused);
    let inner = b.inner(editor);
    frame.render_widget(b, editor);
    let [text, status] = Layout::vertical([Constraint::Min(0), Constraint::Length(1)]).areas(inner);
    frame.render_widget(&t.editor.textarea, text);
    let line = match t.patch() {
        Ok(_) => Line::styled("valid JSON object", theme.style(Role::Ok)),
        Err(e) => Line::styled(
            clip(&e, usize::from(status.width)),
            theme.style(Role::Error),
        ),
    };
    frame.render_widget(Paragraph::new(line), status);

    let ack = if t.auto_ack { "on" } else { "off" };
    let b = block(format!("History · auto-ack {ack}"), theme, false);
    let inner = b.inner(log);
    frame.render_widget(b, log);
    let width = usize::from(inner.width);
    let lines: Vec<Line> = t
        .log
        .iter()
        .take(usize::from(inner.height))
        .map(|e| {
            let role = if e.error { Role::Error } else { Role::Text };
            let head = format!("{} ", e.at.format("%H:%M:%S"));
            let rest = width.saturating_sub(head.chars().count());
            Line::from(vec![
                Span::styled(head, theme.style(Role::Muted)),
                Span::styled(clip(&e.text, rest), theme.style(role)),
            ])
        })
        .collect();
    frame.render_widget(Paragraph::new(lines), inner);
}

fn section(
    frame: &mut Frame,
    area: Rect,
    title: &str,
    lines: &[String],
    skip: usize,
    theme: &Theme,
) {
    let b = block(title, theme, false);
    let inner = b.inner(area);
    frame.render_widget(b, area);
    let shown: Vec<Line> = if lines.is_empty() {
        vec![Line::styled("not read yet", theme.style(Role::Muted))]
    } else {
        lines
            .iter()
            .skip(skip.min(lines.len().saturating_sub(1)))
            .take(usize::from(inner.height))
            .map(|l| Line::styled(l.clone(), theme.style(Role::Text)))
            .collect()
    };
    frame.render_widget(Paragraph::new(shown), inner);
}
