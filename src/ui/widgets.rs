//! Reusable pieces: tabs bar, status bar, footer hints and help overlay (both read the keymap
//! tables), prompt line, confirmation, JSON lines with highlighted leaves, and list windows.

use std::collections::BTreeSet;

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Wrap};

use crate::app::body::escape;
use crate::app::jsonview::JsonLine;
use crate::app::keymap::{self, Binding};
use crate::app::{Action, App, Tab};
use client::events::{Backend, LinkState};

use super::theme::{Role, Theme};

/// First index to draw so that `selected` is visible in `height` rows of `len`.
pub fn window_start(selected: Option<usize>, len: usize, height: usize) -> usize {
    if height == 0 || len <= height {
        return 0;
    }
    let sel = selected.unwrap_or(len - 1).min(len - 1);
    (sel + 1).saturating_sub(height).min(len - height)
}

/// A bordered block with a title in the title role.
pub fn block<'a>(title: impl Into<String>, theme: &Theme, focused: bool) -> Block<'a> {
    Block::default()
        .borders(Borders::ALL)
        .border_style(theme.style(if focused {
            Role::BorderFocus
        } else {
            Role::Border
        }))
        .title(Span::styled(
            format!(" {} ", title.into()),
            theme.style(Role::Title),
        ))
}

/// A `w`x`h` rectangle centred in `area` (clamped to it).
pub fn centered(area: Rect, w: u16, h: u16) -> Rect {
    let w = w.min(area.width);
    let h = h.min(area.height);
    Rect {
        x: area.x + (area.width - w) / 2,
        y: area.y + (area.height - h) / 2,
        width: w,
        height: h,
    }
}

pub fn tabs_bar(frame: &mut Frame, area: Rect, app: &App, theme: &Theme) {
    let active = Tab::ALL.iter().position(|t| *t == app.tab);
    let mut spans = tab_spans(Tab::ALL.iter().map(|t| t.title()), active, theme);
    // Six tabs leave 80 columns room for a device id, not for its label too.
    let narrow = area.width < 100;
    let device = match (&app.selected_device, &app.selected_module) {
        (Some(d), None) if narrow => escape(d).into_owned(),
        (Some(d), Some(m)) if narrow => format!("{}/{}", escape(d), escape(m)),
        (Some(d), None) => format!("device: {}", escape(d)),
        (Some(d), Some(m)) => format!("device: {} · module: {}", escape(d), escape(m)),
        (None, _) if narrow => "no device".into(),
        (None, _) => "no device selected".into(),
    };
    spans.push(Span::styled(device, theme.style(Role::Muted)));
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}

/// " 1 Title " for each tab, numbered from 1, the active one in the active role.
pub fn tab_spans<'a>(
    titles: impl Iterator<Item = &'a str>,
    active: Option<usize>,
    theme: &Theme,
) -> Vec<Span<'static>> {
    let mut spans = vec![];
    for (i, title) in titles.enumerate() {
        let role = if Some(i) == active {
            Role::TabActive
        } else {
            Role::TabInactive
        };
        spans.push(Span::styled(
            format!(" {} {title} ", i + 1),
            theme.style(role),
        ));
        spans.push(Span::raw(" "));
    }
    spans
}

/// The embedded default's banner: this is the local hub; how to reach a real one.
pub fn banner(frame: &mut Frame, area: Rect, _app: &App, theme: &Theme) {
    let text = " Local hub (demo devices). Real hub: --hub CONNSTR or IOTHUB_CONNECTION_STRING";
    frame.render_widget(Paragraph::new(text).style(theme.style(Role::Banner)), area);
}

/// Why a backend link is down, when it is (for a tab that would otherwise just look empty).
pub fn link_problem(app: &App, backend: Backend) -> Option<String> {
    app.status
        .links
        .iter()
        .find(|l| l.backend == backend)
        .filter(|l| matches!(l.state, LinkState::Failed | LinkState::Reconnecting))
        .and_then(|l| l.detail.as_deref())
        .map(|d| escape(d).into_owned())
}

fn link_symbol(state: LinkState) -> (&'static str, Role) {
    match state {
        LinkState::Connected => ("●", Role::Ok),
        LinkState::Connecting | LinkState::Reconnecting => ("◌", Role::Warn),
        LinkState::Failed => ("✕", Role::Error),
        LinkState::Idle => ("○", Role::Muted),
    }
}

pub fn status_bar(frame: &mut Frame, area: Rect, app: &App, theme: &Theme) {
    let bar = theme.style(Role::StatusBar);
    let narrow = area.width < 100;
    // A throttled hub's note or an error matters more than the links' state words.
    let compact = narrow || app.status.throttled.is_some() || app.status.last_error.is_some();
    let mut spans = vec![Span::styled(
        format!(" {} ", escape(&app.config.hub_host)),
        bar,
    )];
    if app.config.amqp_over_websockets {
        spans.push(Span::styled(
            if compact {
                "(ws) "
            } else {
                "(AMQP/WebSockets) "
            },
            bar,
        ));
    }
    for link in &app.status.links {
        let (symbol, role) = link_symbol(link.state);
        spans.push(Span::styled("│ ", bar));
        spans.push(Span::styled(symbol, bar.patch(theme.style(role))));
        // Narrow screens keep the symbol and name only, leaving room for the notice or error.
        let text = if compact {
            format!(" {} ", link.backend.label())
        } else {
            format!(" {} {} ", link.backend.label(), link.state.label())
        };
        spans.push(Span::styled(text, bar));
    }
    if let Some(n) = app.status.calls_per_minute {
        spans.push(Span::styled("│ ", bar));
        let calls = if n == 1 { "call" } else { "calls" };
        spans.push(Span::styled(format!("{n} {calls}/min "), bar));
    }
    if let Some(pause) = app.status.throttled {
        spans.push(Span::styled("│ ", bar));
        spans.push(Span::styled(
            if narrow {
                format!("throttled, {} s", pause.as_secs_f64().ceil())
            } else {
                format!(
                    "throttled by the hub; retrying in {} s",
                    pause.as_secs_f64().ceil()
                )
            },
            bar.patch(theme.style(Role::Error)),
        ));
    } else if let Some(e) = &app.status.last_error {
        spans.push(Span::styled("│ ", bar));
        spans.push(Span::styled(
            format!("error: {e}"),
            bar.patch(theme.style(Role::Error)),
        ));
    } else if let Some(n) = &app.status.notice {
        spans.push(Span::styled("│ ", bar));
        spans.push(Span::styled(n.clone(), bar));
    }
    frame.render_widget(Paragraph::new(Line::from(spans)).style(bar), area);
}

fn hint_spans(bindings: &[&Binding], theme: &Theme) -> Vec<Span<'static>> {
    hints_with_labels(bindings, keymap::keys_label, theme)
}

fn hints_with_labels<A>(
    bindings: &[&Binding<A>],
    label: fn(&Binding<A>) -> String,
    theme: &Theme,
) -> Vec<Span<'static>> {
    let mut spans = vec![];
    for b in bindings {
        if !spans.is_empty() {
            spans.push(Span::styled(HINT_GAP, theme.style(Role::Muted)));
        }
        let key_role = if b.dangerous { Role::Error } else { Role::Key };
        spans.push(Span::styled(label(b), theme.style(key_role)));
        spans.push(Span::styled(
            format!(" {}", b.desc),
            theme.style(Role::Text),
        ));
    }
    spans
}

const HINT_GAP: &str = " · ";
/// Ends the footer of a mode that has `?`, which lists every key.
const MORE: &str = "? more";

/// The footer's label of a binding: its first key only; `?` lists the others.
fn first_key<A>(b: &Binding<A>) -> String {
    b.keys.first().map(keymap::chord_label).unwrap_or_default()
}

/// The footer hints that fit in `width` columns, whole, in table order (most useful
/// first); a hint too wide is skipped for later, shorter ones. True when "? more" ends the
/// line (the mode has `?`).
pub fn footer_fit<'a>(bindings: &[&'a Binding], width: usize) -> (Vec<&'a Binding>, bool) {
    footer_fit_with(bindings, width, &Action::ToggleHelp)
}

/// `footer_fit` for any action type; `help` is the action that opens the help overlay.
pub fn footer_fit_with<'a, A: PartialEq>(
    bindings: &[&'a Binding<A>],
    width: usize,
    help: &A,
) -> (Vec<&'a Binding<A>>, bool) {
    let more = bindings.iter().any(|b| b.action == *help);
    let cost = |b: &Binding<A>| first_key(b).chars().count() + 1 + b.desc.chars().count();
    let gap = HINT_GAP.chars().count();
    let mut used = if more { MORE.chars().count() } else { 0 };
    let mut shown = Vec::new();
    for b in bindings.iter().filter(|b| b.action != *help) {
        let extra = cost(b) + if shown.is_empty() && !more { 0 } else { gap };
        if used + extra <= width {
            used += extra;
            shown.push(*b);
        }
    }
    (shown, more)
}

/// The footer line for `bindings` (those marked for the footer, in order) at `width`.
pub fn footer_line<A: PartialEq>(
    bindings: &[&Binding<A>],
    width: usize,
    help: &A,
    theme: &Theme,
) -> Line<'static> {
    let (shown, more) = footer_fit_with(bindings, width, help);
    let mut spans = hints_with_labels(&shown, first_key, theme);
    if more {
        if !spans.is_empty() {
            spans.push(Span::styled(HINT_GAP, theme.style(Role::Muted)));
        }
        spans.push(Span::styled("?", theme.style(Role::Key)));
        spans.push(Span::styled(" more", theme.style(Role::Text)));
    }
    Line::from(spans)
}

/// Footer hints: the bindings marked for the footer in the current mode's tables.
pub fn footer(frame: &mut Frame, area: Rect, app: &App, theme: &Theme) {
    if let Some(p) = &app.prompt {
        let (before, after) = p.input.value().split_at(
            p.input
                .value()
                .char_indices()
                .nth(p.input.cursor())
                .map_or(p.input.value().len(), |(i, _)| i),
        );
        let line = Line::from(vec![
            Span::styled(p.kind.label(), theme.style(Role::Key)),
            Span::raw(escape(before).into_owned()),
            Span::styled("▏", theme.style(Role::Key)),
            Span::raw(escape(after).into_owned()),
        ]);
        frame.render_widget(Paragraph::new(line), area);
        let x = area.x + (p.kind.label().chars().count() + escape(before).chars().count()) as u16;
        frame.set_cursor_position((x.min(area.right().saturating_sub(1)), area.y));
        return;
    }
    let bindings: Vec<&Binding> = keymap::tables(app.mode(), app.key_context())
        .into_iter()
        .flat_map(|t| t.iter())
        .filter(|b| b.footer)
        .collect();
    let line = footer_line(
        &bindings,
        usize::from(area.width),
        &Action::ToggleHelp,
        theme,
    );
    frame.render_widget(Paragraph::new(line), area);
}

fn help_column<A>(sections: &[(&str, &[Binding<A>])], theme: &Theme) -> Vec<Line<'static>> {
    let mut lines = vec![];
    for (heading, bindings) in sections {
        if !lines.is_empty() {
            lines.push(Line::default());
        }
        lines.push(Line::styled(heading.to_string(), theme.style(Role::Title)));
        for b in bindings.iter() {
            let role = if b.dangerous { Role::Error } else { Role::Key };
            lines.push(Line::from(vec![
                Span::styled(
                    format!("  {:<12}", keymap::keys_label(b)),
                    theme.style(role),
                ),
                Span::styled(b.desc.to_string(), theme.style(Role::Text)),
            ]));
        }
    }
    lines
}

/// `?`: every key of the current tab, from the keymap tables, in two columns.
pub fn help_overlay(frame: &mut Frame, area: Rect, tab: Tab, theme: &Theme) {
    help_popup(frame, area, tab.title(), &keymap::help_sections(tab), theme);
}

/// The help popup for `sections` (heading, bindings); the last two go in the right column.
pub fn help_popup<A>(
    frame: &mut Frame,
    area: Rect,
    title: &str,
    sections: &[(&str, &[Binding<A>])],
    theme: &Theme,
) {
    let popup = centered(area, 80, 22);
    frame.render_widget(Clear, popup);
    let outer = block(format!("Keys: {title} (Esc closes)"), theme, true);
    let inner = outer.inner(popup);
    frame.render_widget(outer, popup);
    let split = sections.len().saturating_sub(2);
    let [left, right] =
        Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(inner);
    frame.render_widget(Paragraph::new(help_column(&sections[..split], theme)), left);
    frame.render_widget(
        Paragraph::new(help_column(&sections[split..], theme)),
        right,
    );
}

pub fn confirm_popup(frame: &mut Frame, area: Rect, question: &str, theme: &Theme) {
    let popup = centered(area, 60, 6);
    frame.render_widget(Clear, popup);
    let b = block("Confirm", theme, true).border_style(theme.style(Role::Error));
    let inner = b.inner(popup);
    frame.render_widget(b, popup);
    let text = vec![
        Line::from(question.to_string()),
        Line::default(),
        Line::from(hint_spans(
            &keymap::CONFIRM.iter().collect::<Vec<_>>(),
            theme,
        )),
    ];
    frame.render_widget(Paragraph::new(text).wrap(Wrap { trim: true }), inner);
}

/// JSON lines with changed leaves in the `changed` role; `skip` lines scrolled off.
pub fn json_lines(
    lines: &[JsonLine],
    changed: &BTreeSet<String>,
    skip: usize,
    theme: &Theme,
) -> Vec<Line<'static>> {
    lines
        .iter()
        .skip(skip)
        .map(|l| {
            let role = match &l.path {
                Some(p) if changed.contains(p) => Role::Changed,
                _ => Role::Text,
            };
            Line::styled(l.text.clone(), theme.style(role))
        })
        .collect()
}

/// "label: value" form row; the focused one marked.
pub fn field_line(label: &str, value: &str, focused: bool, theme: &Theme) -> Line<'static> {
    let marker = if focused { "▸ " } else { "  " };
    let label_style = if focused {
        theme.style(Role::Key)
    } else {
        theme.style(Role::Muted)
    };
    let cursor = if focused { "▏" } else { "" };
    Line::from(vec![
        Span::styled(format!("{marker}{label}: "), label_style),
        Span::styled(
            format!("{}{cursor}", escape(value)),
            theme.style(Role::Text),
        ),
    ])
}

/// Style for a whole selected row.
pub fn row_style(selected: bool, theme: &Theme) -> Style {
    if selected {
        theme.style(Role::Selected)
    } else {
        theme.style(Role::Text)
    }
}

/// Cuts `s` to `width` characters with `…`.
pub fn clip(s: &str, width: usize) -> String {
    if s.chars().count() <= width {
        return s.to_string();
    }
    let mut out: String = s.chars().take(width.saturating_sub(1)).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_keeps_selection_visible() {
        assert_eq!(window_start(Some(0), 5, 10), 0);
        assert_eq!(window_start(Some(3), 100, 10), 0);
        assert_eq!(window_start(Some(15), 100, 10), 6);
        assert_eq!(window_start(None, 100, 10), 90);
        assert_eq!(window_start(Some(500), 100, 10), 90);
        assert_eq!(window_start(None, 100, 0), 0);
    }

    #[test]
    fn clips_with_ellipsis() {
        assert_eq!(clip("abcdef", 4), "abc…");
        assert_eq!(clip("abc", 4), "abc");
    }
}
