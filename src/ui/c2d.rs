//! C2D tab: the message form and the sent messages with their feedback.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use crate::app::App;
use crate::app::body::escape;
use crate::app::c2d::{C2dField, Delivery};

use super::theme::{Role, Theme};
use super::widgets::{block, clip, field_line, window_start};

pub fn render(frame: &mut Frame, area: Rect, app: &App, theme: &Theme) {
    let c = &app.c2d;
    let [form_area, sent_area] =
        Layout::vertical([Constraint::Length(15), Constraint::Min(0)]).areas(area);
    let device = app
        .selected_device
        .as_deref()
        .map(escape)
        .unwrap_or("no device".into());
    let title = if c.editing {
        format!("Message to {device} · Ctrl-s send · Tab next · Esc leave")
    } else {
        format!("Message to {device} · e edit · s send · P purge queue")
    };
    let b = block(title, theme, c.editing);
    let inner = b.inner(form_area);
    frame.render_widget(b, form_area);
    let [label, payload, fields, status] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(4),
        Constraint::Length(7),
        Constraint::Length(1),
    ])
    .areas(inner);
    let f = &c.form;
    let focus = |field| c.editing && f.focus == field;
    frame.render_widget(
        Paragraph::new(field_line("payload", "", focus(C2dField::Payload), theme)),
        label,
    );
    frame.render_widget(&f.payload.textarea, payload);
    let lines: Vec<Line> = C2dField::ORDER[1..]
        .iter()
        .map(|field| {
            let value = match f.text_field(*field) {
                Some(t) => t.value().to_string(),
                None => f.ack.label().to_string(),
            };
            field_line(field.label(), &value, focus(*field), theme)
        })
        .collect();
    frame.render_widget(Paragraph::new(lines), fields);
    let status_line = match &c.form_error {
        Some(e) => Line::styled(e.clone(), theme.style(Role::Error)),
        None if f.payload.status.is_err() => Line::styled(
            "payload is not JSON; it is sent as text",
            theme.style(Role::Muted),
        ),
        None => Line::styled("payload is JSON", theme.style(Role::Muted)),
    };
    frame.render_widget(Paragraph::new(status_line), status);

    let b = block(
        "Sent (newest last) · feedback shows when it arrives",
        theme,
        false,
    );
    let inner = b.inner(sent_area);
    frame.render_widget(b, sent_area);
    if c.sent.is_empty() {
        let text = match super::widgets::link_problem(app, client::events::Backend::Messaging) {
            Some(p) => format!("Nothing sent yet: {p}."),
            None => "Nothing sent yet.".into(),
        };
        frame.render_widget(
            Paragraph::new(text)
                .style(theme.style(Role::Muted))
                .wrap(ratatui::widgets::Wrap { trim: true }),
            inner,
        );
        return;
    }
    let height = inner.height as usize;
    let start = window_start(None, c.sent.len(), height);
    let width = inner.width as usize;
    let lines: Vec<Line> = c.sent[start..]
        .iter()
        .take(height)
        .map(|m| {
            let (state, role) = match &m.delivery {
                Delivery::Sending => ("sending".to_string(), Role::Muted),
                Delivery::Sent => (format!("sent, ack {}", m.ack.label()), Role::Text),
                Delivery::Feedback(s) if s.eq_ignore_ascii_case("success") => {
                    (format!("feedback: {}", escape(s)), Role::Ok)
                }
                Delivery::Feedback(s) => (format!("feedback: {}", escape(s)), Role::Warn),
                Delivery::Failed(_) => ("not sent".to_string(), Role::Error),
            };
            let lead = format!(
                "{} → {} ",
                clip(&escape(&m.message_id), 20),
                clip(&escape(&m.device_id), 14)
            );
            let rest = width.saturating_sub(lead.chars().count() + state.chars().count() + 2);
            Line::from(vec![
                Span::styled(lead, theme.style(Role::Muted)),
                Span::styled(format!("{state}  "), theme.style(role)),
                Span::raw(clip(&m.preview, rest)),
            ])
        })
        .collect();
    frame.render_widget(Paragraph::new(lines), inner);
}
