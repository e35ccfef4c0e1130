//! Telemetry tab: the template and properties editors, the auto-send settings and the log of
//! sent messages.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use crate::app::device::composer::SendStatus;
use crate::app::device::{DeviceApp, Editing};
use crate::ui::theme::{Role, Theme};
use crate::ui::widgets::{block, clip};

pub fn render(frame: &mut Frame, area: Rect, app: &DeviceApp, theme: &Theme) {
    let top_height = (area.height / 2).clamp(8, 14);
    let [top, log] =
        Layout::vertical([Constraint::Length(top_height), Constraint::Min(0)]).areas(area);
    let [template, side] =
        Layout::horizontal([Constraint::Percentage(60), Constraint::Percentage(40)]).areas(top);
    let [props, settings] =
        Layout::vertical([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(side);

    let c = &app.composer;
    let editing = app.editing;
    let b = block("Template", theme, editing == Some(Editing::Template));
    frame.render_widget(&c.template, b.inner(template));
    frame.render_widget(b, template);
    let b = block(
        "Properties (key=value)",
        theme,
        editing == Some(Editing::Properties),
    );
    frame.render_widget(&c.properties, b.inner(props));
    frame.render_widget(b, props);

    let b = block("Send", theme, false);
    let inner = b.inner(settings);
    frame.render_widget(b, settings);
    let (auto, auto_role) = if c.auto {
        ("on", Role::Ok)
    } else {
        ("off", Role::Muted)
    };
    let lines = vec![
        Line::from(vec![
            Span::styled("auto-send ", theme.style(Role::Muted)),
            Span::styled(auto, theme.style(auto_role)),
            Span::styled(
                format!(" · every {} s", c.interval().as_secs()),
                theme.style(Role::Text),
            ),
        ]),
        Line::from(vec![
            Span::styled("next {{seq}} ", theme.style(Role::Muted)),
            Span::styled(c.seq.to_string(), theme.style(Role::Text)),
        ]),
        Line::styled("{{seq}} {{now}} {{rand A B}}", theme.style(Role::Muted)),
    ];
    frame.render_widget(Paragraph::new(lines), inner);

    let b = block(format!("Sent ({})", c.sent.len()), theme, false);
    let inner = b.inner(log);
    frame.render_widget(b, log);
    let width = usize::from(inner.width);
    // Only the rows that fit are built.
    let lines: Vec<Line> = c
        .sent
        .iter()
        .take(usize::from(inner.height))
        .map(|m| {
            let (status, role) = match &m.status {
                SendStatus::Waiting => ("sending".to_string(), Role::Pending),
                SendStatus::Queued => ("queued".to_string(), Role::Ok),
                SendStatus::Failed(e) => (format!("failed: {e}"), Role::Error),
            };
            let head = format!("{} #{:<4} ", m.at.format("%H:%M:%S"), m.seq);
            let rest = width.saturating_sub(head.chars().count() + status.chars().count() + 1);
            let mut tail = m.preview.clone();
            if !m.properties.is_empty() {
                tail.push_str("  ");
                tail.push_str(&m.properties);
            }
            Line::from(vec![
                Span::styled(head, theme.style(Role::Muted)),
                Span::styled(status, theme.style(role)),
                Span::raw(" "),
                Span::styled(clip(&tail, rest), theme.style(Role::Text)),
            ])
        })
        .collect();
    if lines.is_empty() {
        frame.render_widget(
            Paragraph::new(Line::styled(
                "nothing sent yet: s sends the template once, a every few seconds",
                theme.style(Role::Muted),
            )),
            inner,
        );
    } else {
        frame.render_widget(Paragraph::new(lines), inner);
    }
}
