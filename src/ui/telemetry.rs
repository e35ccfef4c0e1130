//! Telemetry tab: status line, the message list (only the visible window of the ring is
//! built), the chart of one numeric field, and the message detail with its diff.

use chrono::{DateTime, Utc};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::symbols::Marker;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Axis, Chart, Dataset, GraphType, Paragraph, Wrap};

use crate::app::App;
use crate::app::body::escape;
use crate::app::msgdiff::Change;
use crate::app::telemetry::{Detail, TelemetryRow, TelemetryState};
use client::events::StartFrom;

use super::theme::{Role, Theme};
use super::widgets::{block, clip, row_style, window_start};

fn time(t: &DateTime<Utc>) -> String {
    t.format("%H:%M:%S%.3f").to_string()
}

fn header(t: &TelemetryState, app: &App, theme: &Theme) -> Line<'static> {
    let (state, role) = match t.paused_at {
        Some(_) => (format!("PAUSED (+{} new)", t.held_back()), Role::Warn),
        None => ("live".to_string(), Role::Ok),
    };
    let scope = if t.only_selected {
        app.selected_device
            .as_deref()
            .map_or("selected device (none)".to_string(), |d| {
                escape(d).into_owned()
            })
    } else {
        "all devices".into()
    };
    let from = match t.start_from {
        StartFrom::Now => "now".to_string(),
        StartFrom::Ago(d) => format!("-{}s", d.as_secs()),
        StartFrom::At(at) => at.format("%Y-%m-%d %H:%M:%S").to_string(),
    };
    let mut spans = vec![
        Span::styled(state, theme.style(role)),
        Span::styled(
            format!(
                " · {scope} · {}/{} rows · dropped {} · from {from} · group {}",
                t.ring.len(),
                t.ring.capacity(),
                t.ring.dropped(),
                escape(&t.consumer_group)
            ),
            theme.style(Role::Muted),
        ),
    ];
    if !t.filter.is_empty() {
        spans.push(Span::styled(
            format!(" · filter \"{}\"", escape(&t.filter)),
            theme.style(Role::Key),
        ));
    }
    Line::from(spans)
}

pub fn render(frame: &mut Frame, area: Rect, app: &App, theme: &Theme) {
    let t = &app.telemetry;
    let [head, body] = Layout::vertical([Constraint::Length(1), Constraint::Min(0)]).areas(area);
    frame.render_widget(Paragraph::new(header(t, app, theme)), head);
    if let Some(detail) = &t.detail {
        return render_detail(frame, body, t, detail, theme);
    }
    let chart_height = if t.chart_on && body.height >= 14 {
        body.height / 3
    } else {
        0
    };
    let [list, chart] =
        Layout::vertical([Constraint::Min(0), Constraint::Length(chart_height)]).areas(body);
    let problem = super::widgets::link_problem(app, client::events::Backend::Telemetry);
    render_list(frame, list, t, problem, theme);
    if chart_height > 0 {
        render_chart(frame, chart, t, theme);
    }
}

fn render_list(
    frame: &mut Frame,
    area: Rect,
    t: &TelemetryState,
    problem: Option<String>,
    theme: &Theme,
) {
    let outer = block("Messages", theme, true);
    let inner = outer.inner(area);
    frame.render_widget(outer, area);
    let (view, len) = t.shown();
    if len == 0 {
        let text = match problem {
            Some(p) if t.ring.is_empty() => format!("No telemetry: {p}."),
            _ if t.ring.is_empty() => "Waiting for device-to-cloud messages…".into(),
            _ => "No message matches the filter.".into(),
        };
        let text = Paragraph::new(text)
            .style(theme.style(Role::Muted))
            .wrap(Wrap { trim: true });
        frame.render_widget(text, inner);
        return;
    }
    let height = inner.height as usize;
    let selected = t.selected_index();
    let start = window_start(selected, len, height);
    let width = inner.width as usize;
    let lines: Vec<Line> = view
        .range(start..len.min(start + height))
        .enumerate()
        .filter_map(|(i, id)| {
            let row = t.ring.get(*id)?;
            let is_sel = t.selected.is_some() && selected == Some(start + i);
            Some(list_line(row, width, is_sel, theme))
        })
        .collect();
    frame.render_widget(Paragraph::new(lines), inner);
}

fn list_line(row: &TelemetryRow, width: usize, selected: bool, theme: &Theme) -> Line<'static> {
    let device = clip(&row.source(), 16);
    let lead = format!("{} {device:<16} ", time(&row.enqueued_time));
    let rest = width.saturating_sub(lead.chars().count());
    let style = row_style(selected, theme);
    Line::from(vec![
        Span::styled(
            lead,
            if selected {
                style
            } else {
                theme.style(Role::Muted)
            },
        ),
        match row.component() {
            Some(c) => Span::styled(clip(&format!("[{c}] {}", row.body.preview()), rest), style),
            None => Span::styled(clip(&row.body.preview(), rest), style),
        },
    ])
}

fn render_chart(frame: &mut Frame, area: Rect, t: &TelemetryState, theme: &Theme) {
    let field = t.chart.field.as_deref().map(escape).unwrap_or_default();
    let title = match t.chart.latest() {
        Some(v) => format!("Chart: {field} (latest {v}) · f next field"),
        None => "Chart: no numeric field seen yet".to_string(),
    };
    let Some((lo, hi)) = t.chart.bounds() else {
        frame.render_widget(block(title, theme, false), area);
        return;
    };
    let t0 = t.chart.points.front().map_or(0, |p| p.0);
    let points: Vec<(f64, f64)> = t
        .chart
        .points
        .iter()
        .map(|(ms, v)| ((ms - t0) as f64 / 1000.0, *v))
        .collect();
    let span = points.last().map_or(1.0, |p| p.0.max(1.0));
    let data = [Dataset::default()
        .marker(Marker::Braille)
        .graph_type(GraphType::Line)
        .style(theme.style(Role::Chart))
        .data(&points)];
    let chart = Chart::new(data.to_vec())
        .block(block(title, theme, false))
        .x_axis(
            Axis::default()
                .bounds([0.0, span])
                .style(theme.style(Role::Muted))
                .labels([Span::raw("0s"), Span::raw(format!("{span:.0}s"))]),
        )
        .y_axis(
            Axis::default()
                .bounds([lo, hi])
                .style(theme.style(Role::Muted))
                .labels({
                    let d = axis_decimals(lo, hi);
                    [
                        Span::raw(format!("{lo:.d$}")),
                        Span::raw(format!("{hi:.d$}")),
                    ]
                }),
        );
    frame.render_widget(chart, area);
}

/// Decimals for the value axis: enough that its two labels differ (67.17 to 67.21 is not
/// "67.2 … 67.2"), at least one, at most four.
fn axis_decimals(lo: f64, hi: f64) -> usize {
    let range = (hi - lo).abs();
    if !range.is_finite() || range <= 0.0 {
        return 1;
    }
    // The epsilon keeps a range of 0.1 written as 0.09999… at two decimals.
    (1.0 - range.log10() - 1e-9).ceil().clamp(1.0, 4.0) as usize
}

fn props_lines<'a>(
    title: &str,
    props: impl ExactSizeIterator<Item = (&'a str, &'a str)>,
    theme: &Theme,
) -> Vec<Line<'static>> {
    if props.len() == 0 {
        return vec![Line::styled(
            format!("{title}: none"),
            theme.style(Role::Muted),
        )];
    }
    let mut out = vec![Line::styled(format!("{title}:"), theme.style(Role::Title))];
    out.extend(props.map(|(k, v)| {
        Line::from(vec![
            Span::styled(format!("  {}: ", escape(k)), theme.style(Role::Key)),
            Span::styled(escape(v).into_owned(), theme.style(Role::Text)),
        ])
    }));
    out
}

fn render_detail(
    frame: &mut Frame,
    area: Rect,
    t: &TelemetryState,
    detail: &Detail,
    theme: &Theme,
) {
    let Some(row) = t.ring.get(detail.id) else {
        frame.render_widget(
            Paragraph::new("This message has left the buffer.")
                .block(block("Message", theme, true)),
            area,
        );
        return;
    };
    let mut lines = vec![Line::from(vec![
        Span::styled(
            format!("{} ", row.enqueued_time.format("%Y-%m-%d %H:%M:%S%.3f")),
            theme.style(Role::Text),
        ),
        Span::styled(row.source().into_owned(), theme.style(Role::Title)),
        Span::styled(
            format!(
                " · partition {} · seq {} · {} · {}",
                row.partition,
                row.sequence_number,
                row.body.kind.label(),
                row.body.size_label()
            ),
            theme.style(Role::Muted),
        ),
    ])];
    lines.extend(props_lines(
        "system properties",
        row.text.system_properties(),
        theme,
    ));
    lines.extend(props_lines(
        "application properties",
        row.text.application_properties(),
        theme,
    ));
    lines.push(Line::default());
    if detail.show_diff {
        match &detail.diff {
            None => lines.push(Line::styled(
                "No earlier message of this device in the buffer to compare with.",
                theme.style(Role::Muted),
            )),
            Some(diff) => {
                lines.push(Line::styled(
                    "difference to the previous message of this device:",
                    theme.style(Role::Title),
                ));
                lines.extend(diff.iter().map(|d| {
                    let (mark, role) = match d.change {
                        Change::Same => (' ', Role::Muted),
                        Change::Added => ('+', Role::Added),
                        Change::Removed => ('-', Role::Removed),
                        Change::Changed => ('~', Role::Changed),
                    };
                    Line::styled(format!("{mark} {}", d.text), theme.style(role))
                }));
            }
        }
    } else {
        lines.extend(
            row.body
                .lines()
                .iter()
                .map(|l| Line::styled(l.clone(), Style::default())),
        );
        if row.body.truncated {
            lines.push(Line::styled(
                format!("… cut for display; the body is {}", row.body.size_label()),
                theme.style(Role::Warn),
            ));
        }
    }
    let title = if detail.show_diff {
        "Message · diff (d: body)"
    } else {
        "Message (d: diff, y: copy)"
    };
    let b = block(title, theme, true);
    let height = usize::from(b.inner(area).height);
    let first = detail.scroll.first_visible(lines.len(), height);
    let first = u16::try_from(first).unwrap_or(u16::MAX);
    frame.render_widget(Paragraph::new(lines).scroll((first, 0)).block(b), area);
}

#[cfg(test)]
mod tests {
    use super::axis_decimals;

    #[test]
    fn axis_labels_tell_close_bounds_apart() {
        assert_eq!(axis_decimals(0.0, 100.0), 1);
        assert_eq!(axis_decimals(22.3, 22.4), 2);
        assert_eq!(axis_decimals(67.17, 67.21), 3);
        assert_eq!(axis_decimals(1.0, 1.0), 1);
        assert_eq!(axis_decimals(0.0, 1e-9), 4);
        for (lo, hi) in [(67.17, 67.21), (22.33, 22.44), (5.0, 5.5)] {
            let d = axis_decimals(lo, hi);
            assert_ne!(format!("{lo:.d$}"), format!("{hi:.d$}"));
        }
    }
}
