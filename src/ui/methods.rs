//! Methods tab: the call form, the result of the shown call, and the device's call history.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::Line;
use ratatui::widgets::{Paragraph, Wrap};

use crate::app::App;
use crate::app::body::escape;
use crate::app::methods::{CallOutcome, MethodCall, MethodField, known_methods};

use super::theme::{Role, Theme};
use super::widgets::{block, clip, field_line, row_style};

pub fn render(frame: &mut Frame, area: Rect, app: &App, theme: &Theme) {
    let m = &app.methods;
    let [form_area, lower] =
        Layout::vertical([Constraint::Length(10), Constraint::Min(0)]).areas(area);
    let device = app
        .target_label()
        .map_or("no device".into(), |t| escape(&t).into_owned());
    let title = if m.editing {
        format!("Call on {device} · Ctrl-s invoke · Tab next · Esc leave")
    } else {
        format!("Call on {device} · e edit · x invoke")
    };
    let b = block(title, theme, m.editing);
    let inner = b.inner(form_area);
    frame.render_widget(b, form_area);
    let [fields, payload_label, payload, status] = Layout::vertical([
        Constraint::Length(3),
        Constraint::Length(1),
        Constraint::Min(0),
        Constraint::Length(1),
    ])
    .areas(inner);
    let f = &m.form;
    let focus = |field| m.editing && f.focus == field;
    frame.render_widget(
        Paragraph::new(vec![
            field_line("method", f.name.value(), focus(MethodField::Name), theme),
            field_line(
                "response timeout s",
                f.response_timeout.value(),
                focus(MethodField::ResponseTimeout),
                theme,
            ),
            field_line(
                "connect timeout s",
                f.connect_timeout.value(),
                focus(MethodField::ConnectTimeout),
                theme,
            ),
        ]),
        fields,
    );
    frame.render_widget(
        Paragraph::new(field_line(
            "payload (JSON)",
            "",
            focus(MethodField::Payload),
            theme,
        )),
        payload_label,
    );
    frame.render_widget(&f.payload.textarea, payload);
    let known = if focus(MethodField::Name) {
        app.selected_device
            .as_deref()
            .map(|d| known_methods(app, d))
            .unwrap_or_default()
    } else {
        Vec::new()
    };
    let status_line = match (&m.form_error, &f.payload.status) {
        (Some(e), _) => Line::styled(e.clone(), theme.style(Role::Error)),
        (None, _) if !known.is_empty() => Line::styled(
            clip(
                &format!("↑↓ known: {}", escape(&known.join(" · "))),
                status.width as usize,
            ),
            theme.style(Role::Muted),
        ),
        (None, Err(p)) => Line::styled(
            format!("payload: invalid JSON at {p}"),
            theme.style(Role::Error),
        ),
        (None, Ok(_)) => Line::styled("payload: valid JSON", theme.style(Role::Muted)),
    };
    frame.render_widget(Paragraph::new(status_line), status);

    let [history_area, result_area] =
        Layout::horizontal([Constraint::Length(30), Constraint::Min(0)]).areas(lower);
    let calls = m.calls(app.selected_device.as_deref());
    let width = history_area.width.saturating_sub(2) as usize;
    let lines: Vec<Line> = calls
        .iter()
        .rev()
        .enumerate()
        .map(|(i, c)| {
            let mark = match &c.outcome {
                CallOutcome::Pending => "…".to_string(),
                CallOutcome::Answered { status, .. } => status.to_string(),
                CallOutcome::Failed(_) => "err".to_string(),
            };
            Line::styled(
                clip(&format!("{mark:>4} {}", escape(&c.name)), width),
                row_style(i == m.selected, theme),
            )
        })
        .collect();
    let history = if lines.is_empty() {
        Paragraph::new("No calls yet.").style(theme.style(Role::Muted))
    } else {
        Paragraph::new(lines)
    };
    frame.render_widget(
        history.block(block("History · r re-run", theme, false)),
        history_area,
    );
    render_result(
        frame,
        result_area,
        m.shown_call(app.selected_device.as_deref()),
        theme,
    );
}

fn render_result(frame: &mut Frame, area: Rect, call: Option<&MethodCall>, theme: &Theme) {
    let Some(call) = call else {
        frame.render_widget(
            Paragraph::new("The result of a call shows here.")
                .style(theme.style(Role::Muted))
                .block(block("Result", theme, false)),
            area,
        );
        return;
    };
    let mut lines = vec![Line::styled(
        format!(
            "{} · response {} s · connect {} s",
            escape(&call.name),
            call.response_timeout,
            call.connect_timeout
        ),
        theme.style(Role::Muted),
    )];
    match &call.outcome {
        CallOutcome::Pending => lines.push(Line::styled(
            "waiting for the device…",
            theme.style(Role::Warn),
        )),
        CallOutcome::Answered {
            status,
            lines: payload,
            ..
        } => {
            let role = if (200..300).contains(status) {
                Role::Ok
            } else {
                Role::Warn
            };
            lines.push(Line::styled(format!("status {status}"), theme.style(role)));
            lines.extend(payload.iter().map(|l| Line::raw(l.clone())));
        }
        CallOutcome::Failed(e) => lines.push(Line::styled(e.clone(), theme.style(Role::Error))),
    }
    frame.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .block(block("Result · y copy", theme, false)),
        area,
    );
}
