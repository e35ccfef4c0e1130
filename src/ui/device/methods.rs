//! Methods tab: every direct method call received, newest first, and the selected one with
//! its payload and the answer given; above it, the calls waiting for the user's answer (with
//! "ask me" on), or the answer editor.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use std::time::Instant;

use crate::app::device::questions::Questions;
use crate::app::device::records::MethodCall;
use crate::app::device::{DeviceApp, Editing};
use crate::ui::theme::{Role, Theme};
use crate::ui::widgets::{block, clip, row_style, window_start};
use client::manual::Answerer;

pub fn render(frame: &mut Frame, area: Rect, app: &DeviceApp, theme: &Theme) {
    let list_width = (area.width / 3).clamp(24, 40);
    let [list, detail] =
        Layout::horizontal([Constraint::Length(list_width), Constraint::Min(0)]).areas(area);
    let calls = &app.methods;
    let who = if app.questions.ask {
        "ask me"
    } else {
        "profile"
    };
    let b = block(format!("Calls ({}) · {who}", calls.total), theme, true);
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
        let hint = if app.questions.ask {
            "no method call yet; each is put to you (a: let the profile answer)".to_string()
        } else {
            format!(
                "no method call yet; the {} profile answers them (a: answer them yourself)",
                app.config.profile
            )
        };
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

    let detail = if app.editing == Some(Editing::Answer) {
        return answer_editor(frame, detail, &app.questions, theme);
    } else if app.questions.waiting.is_empty() {
        detail
    } else {
        let rows = app.questions.waiting.len().min(3) as u16 + 2;
        let [waiting, rest] =
            Layout::vertical([Constraint::Length(rows), Constraint::Min(0)]).areas(detail);
        waiting_calls(frame, waiting, &app.questions, theme);
        rest
    };
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
    let by = match c.by {
        Answerer::Profile => "  by the profile",
        Answerer::User => "  by you",
        Answerer::ProfileAfterTimeout => "  by the profile, time ran out",
    };
    let answer = || {
        Line::from(vec![
            Span::styled("Answer: status ", theme.style(Role::Title)),
            Span::styled(c.status.to_string(), theme.style(status_role)),
            Span::styled(by, theme.style(Role::Muted)),
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

/// The calls waiting for the user, oldest first, with the seconds each has left.
fn waiting_calls(frame: &mut Frame, area: Rect, questions: &Questions, theme: &Theme) {
    let b = block(
        format!("Waiting for your answer ({})", questions.waiting.len()),
        theme,
        true,
    );
    let inner = b.inner(area);
    frame.render_widget(b, area);
    let now = Instant::now();
    let width = usize::from(inner.width);
    let lines: Vec<Line> = questions
        .waiting
        .iter()
        .take(usize::from(inner.height))
        .enumerate()
        .map(|(i, q)| {
            let hint = if i == 0 { " · e: answer" } else { "" };
            let text = format!(
                "{} · {} s left{hint}",
                q.name,
                Questions::seconds_left(q, now)
            );
            Line::styled(clip(&text, width), theme.style(Role::Warn))
        })
        .collect();
    frame.render_widget(Paragraph::new(lines), inner);
}

/// The call being answered (its payload, the time left) and the answer editor with what is
/// wrong with the answer, if anything.
fn answer_editor(frame: &mut Frame, area: Rect, questions: &Questions, theme: &Theme) {
    let Some(q) = questions.current() else { return };
    let left = Questions::seconds_left(q, Instant::now());
    let b = block(format!("Answer {} · {left} s left", q.name), theme, true);
    let inner = b.inner(area);
    frame.render_widget(b, area);
    let payload_rows = (q.payload.len() as u16 + 1).min(inner.height / 3);
    let [payload, hint, text, status] = Layout::vertical([
        Constraint::Length(payload_rows),
        Constraint::Length(1),
        Constraint::Min(0),
        Constraint::Length(1),
    ])
    .areas(inner);
    let width = usize::from(inner.width);
    let payload_lines: Vec<Line> =
        std::iter::once(Line::styled("Payload", theme.style(Role::Title)))
            .chain(
                q.payload
                    .iter()
                    .map(|l| Line::styled(clip(&format!("  {l}"), width), theme.style(Role::Text))),
            )
            .take(usize::from(payload_rows))
            .collect();
    frame.render_widget(Paragraph::new(payload_lines), payload);
    frame.render_widget(
        Paragraph::new(Line::styled(
            clip("status on the first line, JSON payload below", width),
            theme.style(Role::Muted),
        )),
        hint,
    );
    frame.render_widget(&questions.editor, text);
    let line = match questions.answer() {
        Ok(_) => Line::styled("a valid answer", theme.style(Role::Ok)),
        Err(e) => Line::styled(clip(&e, width), theme.style(Role::Error)),
    };
    frame.render_widget(Paragraph::new(line), status);
}
