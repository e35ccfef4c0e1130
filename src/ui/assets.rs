//! The Twin tab's asset views: the attach form (a popup over the twin) and the rollout
//! of the last attached asset (counts, then a row per targeted device).

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Clear, Paragraph, Row, Table, Wrap};

use crate::app::App;
use crate::app::assets::{AttachField, AttachForm, Rollout};
use crate::app::body::escape;
use client::rollout::Progress;

use super::theme::{Role, Theme};
use super::widgets::{block, centered, clip, field_line};

pub fn form_popup(frame: &mut Frame, area: Rect, form: &AttachForm, app: &App, theme: &Theme) {
    let popup = centered(area, area.width.saturating_sub(4).min(96), 10);
    frame.render_widget(Clear, popup);
    let b = block(
        "Attach asset · Tab next field · Ctrl-s upload and attach · Esc close",
        theme,
        true,
    );
    let inner = b.inner(popup);
    frame.render_widget(b, popup);
    let mut lines: Vec<Line> = AttachField::ORDER
        .iter()
        .map(|f| field_line(f.label(), form.field(*f).value(), form.focus == *f, theme))
        .collect();
    let target = match (form.target.value().trim(), &app.selected_device) {
        ("", Some(d)) => format!("goes to {}", escape(d)),
        ("", None) => "no device selected: give a query condition, or * for every device".into(),
        ("*", _) => "goes to every device".into(),
        (c, _) => format!("goes to every device where {}", escape(c)),
    };
    lines.push(Line::raw(""));
    lines.push(Line::styled(
        format!("{target}; read SAS made from the storage account key"),
        theme.style(Role::Muted),
    ));
    frame.render_widget(Paragraph::new(lines).wrap(Wrap { trim: false }), inner);
}

/// `MM-DD hh:mm:ss` of an ISO 8601 time: a rollout happens within days.
fn month_day_time(t: &str) -> String {
    match (t.get(5..10), t.get(11..19)) {
        (Some(day), Some(time)) => escape(&format!("{day} {time}")).into_owned(),
        _ => escape(t).into_owned(),
    }
}

fn progress_role(p: Progress) -> Role {
    match p {
        Progress::Received => Role::Ok,
        Progress::Failed => Role::Error,
        Progress::Acknowledged => Role::Warn,
        Progress::Pending | Progress::Superseded => Role::Muted,
    }
}

pub fn rollout(frame: &mut Frame, area: Rect, r: &Rollout, theme: &Theme) {
    let title = format!("Rollout of {} · R twin", escape(&r.name));
    let b = block(title, theme, true);
    let inner = b.inner(area);
    frame.render_widget(b, area);
    let [counts, rows] = Layout::vertical([Constraint::Length(2), Constraint::Min(0)]).areas(inner);
    let n = r.rows.len();
    let mut spans = vec![Span::styled(
        format!("{n} device{}: ", if n == 1 { "" } else { "s" }),
        theme.style(Role::Title),
    )];
    for &(p, n) in &r.counts {
        if n > 0 || matches!(p, Progress::Received | Progress::Failed) {
            spans.push(Span::styled(
                format!("{n} {}  ", p.label()),
                theme.style(progress_role(p)),
            ));
        }
    }
    let mut head = vec![Line::from(spans)];
    head.push(match r.failed.first() {
        Some((d, why)) => Line::styled(
            format!(
                "{} not patched; {}: {}",
                r.failed.len(),
                escape(d),
                escape(why)
            ),
            theme.style(Role::Error),
        ),
        // The blob, not its SAS: the signature is a credential.
        None => {
            let blob = r.uri.split_once('?').map_or(r.uri.as_str(), |(b, _)| b);
            Line::styled(
                clip(&escape(blob), inner.width as usize),
                theme.style(Role::Muted),
            )
        }
    });
    frame.render_widget(Paragraph::new(head), counts);

    let all = &r.rows;
    let height = rows.height.saturating_sub(1) as usize;
    let start = r.scroll.first_visible(all.len(), height);
    let body: Vec<Row> = all
        .iter()
        .skip(start)
        .take(height)
        .map(|row| {
            let p = row.progress(&r.uri);
            let detail = match (p, &row.reason) {
                (Progress::Failed, Some(reason)) => escape(reason).into_owned(),
                _ => String::new(),
            };
            let at = |t: &Option<String>| t.as_deref().map_or("-".into(), month_day_time);
            Row::new(vec![
                Cell::from(escape(&row.device_id).into_owned()),
                Cell::from(p.label()).style(theme.style(progress_role(p))),
                Cell::from(at(&row.acknowledged_at)),
                Cell::from(at(&row.current_at)),
                Cell::from(detail),
            ])
        })
        .collect();
    let table = Table::new(
        body,
        [
            Constraint::Length(20),
            Constraint::Length(12),
            Constraint::Length(14),
            Constraint::Length(14),
            Constraint::Min(10),
        ],
    )
    .header(
        Row::new([
            "device",
            "status",
            "acknowledged",
            "current since",
            "reason",
        ])
        .style(theme.style(Role::Muted)),
    );
    frame.render_widget(table, rows);
}
