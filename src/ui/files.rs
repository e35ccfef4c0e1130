//! Files tab: the container's blobs (device, name, size, type, last modified), the preview
//! pane beside them (or over them on a narrow terminal), and the container picker.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Clear, Paragraph, Wrap};

use crate::app::App;
use crate::app::blobpreview::PreviewBody;
use crate::app::body::escape;
use crate::app::files::{FileRow, FilesState, Preview, size_label, time_label};

use super::theme::{Role, Theme};
use super::widgets::{block, centered, clip, row_style, window_start};

/// Terminals at least this wide show the preview beside the list.
const SIDE_BY_SIDE: u16 = 100;

/// What to do when no storage account is configured, in one sentence.
pub const NO_STORAGE: &str = "No storage account is configured: add storage = \"<storage connection \
string>\" to the hub profile (hubtui hubs add … --storage), or pass --storage or HUBTUI_STORAGE.";

pub fn render(frame: &mut Frame, area: Rect, app: &App, theme: &Theme) {
    let f = &app.files;
    if app.config.storage.is_none() {
        let b = block("Files", theme, false);
        let inner = b.inner(area);
        frame.render_widget(b, area);
        frame.render_widget(
            Paragraph::new(NO_STORAGE)
                .style(theme.style(Role::Muted))
                .wrap(Wrap { trim: true }),
            inner,
        );
        return;
    }
    match &f.preview {
        Some(p) if area.width >= SIDE_BY_SIDE => {
            let [list, pane] =
                Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)])
                    .areas(area);
            render_list(frame, list, app, theme);
            render_preview(frame, pane, p, theme);
        }
        Some(p) => render_preview(frame, area, p, theme),
        None => render_list(frame, area, app, theme),
    }
    if f.picker.is_some() {
        render_picker(frame, area, f, theme);
    }
}

fn list_title(app: &App) -> String {
    let f = &app.files;
    let mut title = format!("Files · {}", escape(&f.container));
    let blobs = if f.rows.len() == 1 { "blob" } else { "blobs" };
    let count = if f.filter.is_empty() {
        format!(" · {} {blobs}", f.rows.len())
    } else {
        format!(" · {} of {} {blobs}", f.order.len(), f.rows.len())
    };
    title.push_str(&count);
    if f.truncated {
        title.push_str(" (first only)");
    }
    title.push_str(&format!(" · {}", f.sort.label()));
    if !f.filter.is_empty() {
        title.push_str(&format!(" · /{}", escape(&f.filter)));
    }
    if !app.config.file_notifications {
        title.push_str(if f.live { " · live" } else { " · n: live" });
    }
    title
}

/// Column widths: device, size, type, modified; the name takes what is left. A list
/// beside the preview drops the type and the seconds.
fn columns(width: usize) -> (usize, usize, usize, usize, usize) {
    // Below 90 columns the name needs the room: the type is in the preview, and the
    // year goes from the time.
    let (device, size, kind, time) = if width >= 90 {
        (16, 9, 18, 19)
    } else {
        (12, 9, 0, 14)
    };
    let gaps = if kind == 0 { 4 } else { 6 };
    let name = width
        .saturating_sub(device + size + kind + time + gaps)
        .max(8);
    (device, name, size, kind, time)
}

/// One line of the list (or its header) in the columns for `width`.
fn columns_line(width: usize, [device, name, size, kind, time]: [&str; 5]) -> String {
    let (dw, nw, sw, kw, tw) = columns(width);
    let time: String = time.chars().take(tw).collect();
    if kw == 0 {
        format!("{device:<dw$} {name:<nw$} {size:>sw$} {time:<tw$}")
    } else {
        format!("{device:<dw$} {name:<nw$} {size:>sw$} {kind:<kw$} {time:<tw$}")
    }
}

fn row_line(row: &FileRow, width: usize, selected: bool, theme: &Theme) -> Line<'static> {
    let (dw, nw, _, kw, _) = columns(width);
    let name = row
        .blob
        .name
        .strip_prefix(row.device.as_str())
        .and_then(|rest| rest.strip_prefix('/'))
        .unwrap_or(&row.blob.name);
    let mark = if row.new { "•" } else { " " };
    let style = row_style(selected, theme);
    // Without seconds' room the year goes: "05-01 12:00:03".
    let time = time_label(row.blob.last_modified);
    let time = if columns(width).4 < 19 {
        time.get(5..).unwrap_or("").to_string()
    } else {
        time
    };
    Line::from(vec![
        Span::styled(mark.to_string(), theme.style(Role::Ok)),
        Span::styled(
            columns_line(
                width,
                [
                    &clip(&escape(&row.device), dw),
                    &clip(&escape(name), nw),
                    &size_label(row.blob.size),
                    &clip(&escape(&row.blob.content_type), kw),
                    &time,
                ],
            ),
            style,
        ),
    ])
}

fn render_list(frame: &mut Frame, area: Rect, app: &App, theme: &Theme) {
    let f = &app.files;
    let b = block(list_title(app), theme, f.preview.is_none());
    let inner = b.inner(area);
    frame.render_widget(b, area);
    let [header, rows] = Layout::vertical([Constraint::Length(1), Constraint::Min(0)]).areas(inner);
    let width = usize::from(inner.width).saturating_sub(1);
    frame.render_widget(
        Paragraph::new(Line::styled(
            format!(
                " {}",
                columns_line(width, ["device", "name", "size", "type", "modified"])
            ),
            theme.style(Role::Title),
        )),
        header,
    );
    if f.order.is_empty() {
        let text = if let Some(e) = &f.error {
            // The reason is a sentence from the backend; it names the container.
            let mut chars = e.chars();
            chars
                .next()
                .map(|c| c.to_uppercase().chain(chars).collect::<String>() + ".")
                .unwrap_or_default()
        } else if f.loading {
            "Loading…".to_string()
        } else if !f.filter.is_empty() {
            "No blob matches the filter.".to_string()
        } else {
            "No blobs yet. Device file uploads show up here.".to_string()
        };
        let role = if f.error.is_some() {
            Role::Error
        } else {
            Role::Muted
        };
        frame.render_widget(
            Paragraph::new(text)
                .style(theme.style(role))
                .wrap(Wrap { trim: true }),
            rows,
        );
        return;
    }
    let height = usize::from(rows.height);
    let start = window_start(Some(f.selected), f.order.len(), height);
    let lines: Vec<Line> = f.order[start..]
        .iter()
        .take(height)
        .enumerate()
        .map(|(i, &index)| row_line(&f.rows[index], width, start + i == f.selected, theme))
        .collect();
    frame.render_widget(Paragraph::new(lines), rows);
}

fn render_preview(frame: &mut Frame, area: Rect, p: &Preview, theme: &Theme) {
    let b = block(escape(&p.name).into_owned(), theme, true);
    let inner = b.inner(area);
    frame.render_widget(b, area);
    let [meta, body] = Layout::vertical([Constraint::Length(2), Constraint::Min(0)]).areas(inner);
    let content_type = if p.blob.content_type.is_empty() {
        "unknown type".to_string()
    } else {
        escape(&p.blob.content_type).into_owned()
    };
    frame.render_widget(
        Paragraph::new(vec![
            Line::styled(
                format!(
                    "{} · {} · {}",
                    size_label(p.blob.size),
                    content_type,
                    time_label(p.blob.last_modified)
                ),
                theme.style(Role::Muted),
            ),
            Line::styled(
                format!("etag {}", escape(&p.blob.etag)),
                theme.style(Role::Muted),
            ),
        ]),
        meta,
    );
    let lines_of = |lines: &[String], note: Option<&str>| {
        let mut out: Vec<Line> = lines
            .iter()
            .skip(p.scroll)
            .take(usize::from(body.height))
            .map(|l| Line::raw(l.clone()))
            .collect();
        if let Some(note) = note
            && out.len() < usize::from(body.height)
        {
            out.push(Line::styled(note.to_string(), theme.style(Role::Muted)));
        }
        out
    };
    match &p.body {
        PreviewBody::Loading => frame.render_widget(
            Paragraph::new("Loading…").style(theme.style(Role::Muted)),
            body,
        ),
        PreviewBody::Json(lines) => {
            frame.render_widget(Paragraph::new(lines_of(lines, None)), body)
        }
        PreviewBody::Text { lines, cut } => {
            let note = cut.then_some("… (first 64 KiB; d downloads it all)");
            frame.render_widget(Paragraph::new(lines_of(lines, note)), body)
        }
        PreviewBody::Image(image) => {
            if !super::image::render(frame, body, image) {
                frame.render_widget(
                    Paragraph::new("This terminal cannot show the image; d downloads it.")
                        .style(theme.style(Role::Muted)),
                    body,
                );
            }
        }
        PreviewBody::Unavailable(why) => frame.render_widget(
            Paragraph::new(why.clone())
                .style(theme.style(Role::Muted))
                .wrap(Wrap { trim: true }),
            body,
        ),
    }
}

fn render_picker(frame: &mut Frame, area: Rect, f: &FilesState, theme: &Theme) {
    let Some(picker) = &f.picker else { return };
    let popup = centered(area, 40.min(area.width), 12.min(area.height));
    frame.render_widget(Clear, popup);
    let b = block("Containers · Enter open · Esc close", theme, true);
    let inner = b.inner(popup);
    frame.render_widget(b, popup);
    let Some(names) = &picker.names else {
        frame.render_widget(
            Paragraph::new("Loading…").style(theme.style(Role::Muted)),
            inner,
        );
        return;
    };
    if names.is_empty() {
        frame.render_widget(
            Paragraph::new("The account has no containers.").style(theme.style(Role::Muted)),
            inner,
        );
        return;
    }
    let height = usize::from(inner.height);
    let start = window_start(Some(picker.selected), names.len(), height);
    let lines: Vec<Line> = names[start..]
        .iter()
        .take(height)
        .enumerate()
        .map(|(i, name)| {
            let current = if *name == f.container { " (shown)" } else { "" };
            Line::styled(
                format!("{}{current}", escape(name)),
                row_style(start + i == picker.selected, theme),
            )
        })
        .collect();
    frame.render_widget(Paragraph::new(lines), inner);
}
