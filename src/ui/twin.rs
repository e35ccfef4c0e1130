//! Twin tab: header with versions and times, tags / desired / reported side by side, the
//! desired-versus-reported diff, and the JSON editor with its validation line.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Paragraph, Row, Table};

use crate::app::App;
use crate::app::body::escape;
use crate::app::scroll::Scroll;
use crate::app::twin::{TwinEdit, TwinPane, TwinState, TwinView};
use iothub::twin::Section;
use iothub::twin_diff::LeafState;

use super::theme::{Role, Theme};
use super::widgets::{block, json_lines};

fn when(t: &Option<String>) -> String {
    t.as_deref()
        .map_or("-".to_string(), super::devices::short_time)
}

pub fn render(frame: &mut Frame, area: Rect, app: &App, theme: &Theme) {
    match &app.assets.rollout {
        Some(r) if app.assets.show_rollout => super::assets::rollout(frame, area, r, theme),
        _ => render_twin(frame, area, app, theme),
    }
    if let Some(form) = &app.assets.form {
        super::assets::form_popup(frame, area, form, app, theme);
    }
}

fn render_twin(frame: &mut Frame, area: Rect, app: &App, theme: &Theme) {
    let tw = &app.twin;
    let Some(view) = &tw.view else {
        let text = match (&app.selected_device, tw.loading) {
            (None, _) => "Pick a device in Devices (1) to see its twin.".to_string(),
            (Some(d), true) => format!("Loading the twin of {}…", escape(d)),
            (Some(d), false) => format!("No twin loaded for {}. Press r to load it.", escape(d)),
        };
        frame.render_widget(
            Paragraph::new(text)
                .style(theme.style(Role::Muted))
                .block(block("Twin", theme, true)),
            area,
        );
        return;
    };
    let t = &view.twin;
    let banner = if tw.conflict { 1 } else { 0 };
    let [head, conflict, body] = Layout::vertical([
        Constraint::Length(2),
        Constraint::Length(banner),
        Constraint::Min(0),
    ])
    .areas(area);
    let header = vec![
        Line::from(vec![
            Span::styled(
                match &t.module_id {
                    None => escape(&t.device_id).into_owned(),
                    Some(m) => format!("{}/{}", escape(&t.device_id), escape(m)),
                },
                theme.style(Role::Title),
            ),
            Span::styled(
                format!(" · twin v{} · etag {}", t.version, escape(&t.etag)),
                theme.style(Role::Muted),
            ),
            Span::styled(
                t.model_id
                    .as_deref()
                    .map(|m| format!(" · model {}", escape(m)))
                    .unwrap_or_default(),
                theme.style(Role::Muted),
            ),
        ]),
        Line::styled(
            format!(
                "desired v{} updated {} · reported v{} updated {}",
                t.desired.version,
                when(&t.desired.last_updated),
                t.reported.version,
                when(&t.reported.last_updated)
            ),
            theme.style(Role::Muted),
        ),
    ];
    frame.render_widget(Paragraph::new(header), head);
    if tw.conflict {
        frame.render_widget(
            Paragraph::new("412: the twin changed meanwhile. Your edit is kept; a re-applies it.")
                .style(theme.style(Role::Error)),
            conflict,
        );
    }
    match &tw.edit {
        Some(edit) if tw.editing || tw.conflict => {
            render_editor(frame, body, edit, tw.editing, theme)
        }
        _ if tw.show_diff => render_diff(frame, body, view, tw.diff_scroll, theme),
        _ => render_sections(frame, body, tw, view, theme),
    }
}

/// Tags on top, desired and reported side by side; the focused pane scrolls, and a pane
/// taller than its view says which lines it shows.
fn render_sections(frame: &mut Frame, area: Rect, tw: &TwinState, view: &TwinView, theme: &Theme) {
    let tags_height = (view.tags.len() as u16 + 2).min(area.height / 3).max(3);
    let [tags, rest] =
        Layout::vertical([Constraint::Length(tags_height), Constraint::Min(0)]).areas(area);
    let [desired, reported] =
        Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(rest);
    for (i, (pane, rect)) in TwinPane::ALL
        .into_iter()
        .zip([tags, desired, reported])
        .enumerate()
    {
        let lines = pane.lines(view);
        let height = usize::from(rect.height.saturating_sub(2));
        let first = tw.scroll[i].first_visible(lines.len(), height);
        let name = match pane {
            TwinPane::Tags => "tags",
            TwinPane::Desired => "desired",
            TwinPane::Reported => "reported",
        };
        let title = if lines.len() > height {
            let last = (first + height).min(lines.len());
            format!("{name} {}-{last}/{}", first + 1, lines.len())
        } else {
            name.to_string()
        };
        frame.render_widget(
            Paragraph::new(json_lines(lines, &view.changed, first, theme)).block(block(
                title,
                theme,
                pane == tw.pane,
            )),
            rect,
        );
    }
}

fn state_label(s: LeafState) -> (&'static str, Role) {
    match s {
        LeafState::InSync => ("in sync", Role::InSync),
        LeafState::Pending => ("pending", Role::Pending),
        LeafState::Differs => ("differs", Role::Differs),
        LeafState::Refused => ("refused", Role::Error),
        LeafState::ReportedOnly => ("reported-only", Role::ReportedOnly),
    }
}

fn render_diff(frame: &mut Frame, area: Rect, view: &TwinView, scroll: Scroll, theme: &Theme) {
    let b = block("desired vs reported", theme, true);
    if view.diff.is_empty() {
        frame.render_widget(
            Paragraph::new("No desired or reported properties.").block(b),
            area,
        );
        return;
    }
    let show = |v: &Option<serde_json::Value>| {
        v.as_ref()
            .map_or("-".to_string(), |v| escape(&v.to_string()).into_owned())
    };
    // Borders and the header row.
    let height = usize::from(area.height.saturating_sub(3));
    let first = scroll.first_visible(view.diff.len(), height);
    let rows = view.diff.iter().skip(first).map(|e| {
        let (label, role) = state_label(e.state);
        let changed = view.changed.contains(&format!("desired.{}", e.path))
            || view.changed.contains(&format!("reported.{}", e.path));
        let path_role = if changed { Role::Changed } else { Role::Text };
        Row::new(vec![
            Cell::from(label).style(theme.style(role)),
            Cell::from(escape(&e.path).into_owned()).style(theme.style(path_role)),
            Cell::from(show(&e.desired)),
            Cell::from(reported_cell(&e.reported)),
        ])
    });
    let table = Table::new(
        rows,
        [
            Constraint::Length(13),
            Constraint::Percentage(30),
            Constraint::Percentage(20),
            // The reported side carries an acknowledgement's code and text: the rest.
            Constraint::Fill(1),
        ],
    )
    .header(Row::new(["state", "path", "desired", "reported"]).style(theme.style(Role::Title)))
    .block(b);
    frame.render_widget(table, area);
}

/// A reported leaf; a Plug and Play acknowledgement reads as its value, code and
/// description (`23 · 400 out of range`), the way a device author would say it.
fn reported_cell(v: &Option<serde_json::Value>) -> String {
    let Some(v) = v else {
        return "-".to_string();
    };
    let text = match (v.get("value"), v.get("ac")) {
        (Some(value), Some(code)) => {
            let mut s = format!("{value} · {code}");
            if let Some(ad) = v.get("ad").and_then(serde_json::Value::as_str) {
                s.push(' ');
                s.push_str(ad);
            }
            if let Some(av) = v.get("av") {
                s.push_str(&format!(" (v{av})"));
            }
            s
        }
        _ => v.to_string(),
    };
    escape(&text).into_owned()
}

fn render_editor(frame: &mut Frame, area: Rect, edit: &TwinEdit, focused: bool, theme: &Theme) {
    let what = match edit.section {
        Section::Tags => "tags",
        _ => "desired",
    };
    let b = block(
        format!("Editing {what} · Ctrl-s submit · Esc leave (kept)"),
        theme,
        focused,
    );
    let inner = b.inner(area);
    frame.render_widget(b, area);
    let [text, status] = Layout::vertical([Constraint::Min(0), Constraint::Length(1)]).areas(inner);
    frame.render_widget(&edit.editor.textarea, text);
    let line = match &edit.editor.status {
        Ok(serde_json::Value::Object(_)) => Line::styled("valid JSON", theme.style(Role::Ok)),
        Ok(_) => Line::styled(
            "valid JSON, but a twin section must be an object",
            theme.style(Role::Error),
        ),
        Err(p) => Line::styled(format!("invalid JSON at {p}"), theme.style(Role::Error)),
    };
    frame.render_widget(Paragraph::new(line), status);
}
