//! Devices tab: the registry table (only the visible window is built), the create form and the
//! connection string panel.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Clear, Paragraph, Row, Table, Wrap};

use crate::app::App;
use crate::app::body::escape;
use crate::app::devices::{CreateDeviceForm, connection_string, masked_identity, tags_summary};
use crate::app::jsonview::leaves;
use client::events::TwinSummary;
use iothub::device::{AuthType, ConnectionState, DeviceIdentity, DeviceStatus, NEVER};

use super::theme::{Role, Theme};
use super::widgets::{block, centered, field_line, row_style, window_start};

/// "2024-05-01 12:00:03" from registry time text; "never" for Azure's zero time.
pub fn short_time(t: &str) -> String {
    if t == NEVER || t.is_empty() {
        return "never".into();
    }
    escape(&t.chars().take(19).collect::<String>().replace('T', " ")).into_owned()
}

fn auth_label(a: AuthType) -> &'static str {
    match a {
        AuthType::Sas => "sas",
        AuthType::SelfSigned => "x509 self-signed",
        AuthType::CertificateAuthority => "x509 CA",
        AuthType::None => "none",
    }
}

pub fn render(frame: &mut Frame, area: Rect, app: &App, theme: &Theme) {
    let d = &app.devices;
    let visible = d.visible();
    let more = if d.loading {
        ", loading…"
    } else if d.continuation.is_some() {
        ", more below"
    } else {
        ""
    };
    let filter = if d.filter.is_empty() {
        String::new()
    } else {
        format!(" · filter \"{}\"", escape(&d.filter))
    };
    let title = format!(
        "Devices ({} of {}{more}){filter}",
        visible.len(),
        d.items.len()
    );
    let outer = block(title, theme, true);
    let inner = outer.inner(area);
    frame.render_widget(outer, area);
    if visible.is_empty() {
        let problem = super::widgets::link_problem(app, client::events::Backend::Service);
        let text = match problem {
            Some(p) => format!("No devices: {p}. r retries."),
            None if d.loading => "Loading the device registry…".into(),
            None => "No devices. Press n to create one.".into(),
        };
        frame.render_widget(
            Paragraph::new(text)
                .style(theme.style(Role::Muted))
                .wrap(ratatui::widgets::Wrap { trim: true }),
            inner,
        );
    } else if inner.height >= TALL {
        let [list, detail] =
            Layout::vertical([Constraint::Min(0), Constraint::Length(DETAIL_HEIGHT)]).areas(inner);
        device_table(frame, list, app, &visible, theme);
        if let Some(device) = visible.get(d.selected) {
            // Counted among the devices loaded so far: only what is on hand, no extra call.
            let children = device
                .device_scope
                .as_deref()
                .filter(|_| device.capabilities.iot_edge)
                .map(|scope| {
                    let parent_is = |c: &&DeviceIdentity| {
                        c.parent_scopes.first().map(String::as_str) == Some(scope)
                    };
                    d.items.iter().filter(parent_is).count()
                });
            let twin = d.twins.get(&device.device_id);
            device_detail(frame, detail, device, twin, children, theme);
        }
    } else {
        device_table(frame, inner, app, &visible, theme);
    }
    if let Some(form) = &d.create {
        create_form(frame, area, form, theme);
    }
    if let Some(panel) = &d.secret {
        let popup = centered(area, area.width.saturating_sub(4).min(100), 8);
        frame.render_widget(Clear, popup);
        let b = block(
            format!("Connection string: {}", escape(&panel.device_id)),
            theme,
            true,
        );
        let inner = b.inner(popup);
        frame.render_widget(b, popup);
        let device = d.items.iter().find(|x| x.device_id == panel.device_id);
        let text =
            match device.and_then(|x| connection_string(&app.config.hub_host, x, panel.revealed)) {
                Some(cs) => escape(&cs).into_owned(),
                None if device.is_some_and(|x| {
                    x.authentication.auth_type == AuthType::Sas
                        && x.authentication.symmetric_key.is_none()
                }) =>
                {
                    "Reading the keys from the registry…".into()
                }
                None => "No key in the registry entry to build a connection string from.".into(),
            };
        let state = if panel.revealed {
            "keys shown"
        } else {
            "keys masked"
        };
        let lines = vec![
            Line::from(text),
            Line::default(),
            Line::styled(
                format!("{state} · r reveal/mask · y copy (OSC 52) · Esc close"),
                theme.style(Role::Muted),
            ),
        ];
        frame.render_widget(Paragraph::new(lines).wrap(Wrap { trim: false }), inner);
    }
}

/// Model id, C2D queue depth and tags columns appear from this inner width.
const WIDE: u16 = 110;
/// The detail pane appears from this inner height.
const TALL: u16 = 28;
const DETAIL_HEIGHT: u16 = 10;

/// The registry table; only the visible window of rows is built.
fn device_table(
    frame: &mut Frame,
    area: Rect,
    app: &App,
    visible: &[&DeviceIdentity],
    theme: &Theme,
) {
    let d = &app.devices;
    let wide = area.width >= WIDE;
    let height = area.height.saturating_sub(1) as usize;
    let start = window_start(Some(d.selected), visible.len(), height);
    let rows = visible
        .iter()
        .enumerate()
        .skip(start)
        .take(height)
        .map(|(i, dev)| {
            let (status, status_role) = match dev.status {
                DeviceStatus::Enabled => ("enabled", Role::Text),
                DeviceStatus::Disabled => ("disabled", Role::Warn),
            };
            let (conn, conn_role) = match dev.connection_state {
                ConnectionState::Connected => ("connected", Role::Ok),
                ConnectionState::Disconnected => ("disconnected", Role::Muted),
            };
            let selected = i == d.selected;
            let cell = |text: String, role: Role| {
                Cell::from(text).style(if selected {
                    theme.style(Role::Selected)
                } else {
                    theme.style(role)
                })
            };
            let id = if dev.capabilities.iot_edge {
                format!("{} [edge]", escape(&dev.device_id))
            } else {
                escape(&dev.device_id).into_owned()
            };
            let mut cells = vec![
                cell(id, Role::Text),
                cell(status.into(), status_role),
                cell(conn.into(), conn_role),
                cell(short_time(&dev.last_activity_time), Role::Text),
                cell(auth_label(dev.authentication.auth_type).into(), Role::Text),
            ];
            if wide {
                let twin = d.twins.get(&dev.device_id);
                cells.extend([
                    cell(dev.cloud_to_device_message_count.to_string(), Role::Text),
                    cell(
                        twin.and_then(|t| t.modules)
                            .map(|n| n.to_string())
                            .unwrap_or_default(),
                        Role::Text,
                    ),
                    cell(
                        // Every model id starts "dtmi:": the column shows what tells them apart.
                        escape(twin.map_or("", |t| {
                            t.model_id.strip_prefix("dtmi:").unwrap_or(&t.model_id)
                        }))
                        .into_owned(),
                        Role::Text,
                    ),
                    cell(
                        escape(&twin.map(|t| tags_summary(&t.tags)).unwrap_or_default())
                            .into_owned(),
                        Role::Muted,
                    ),
                ]);
            }
            Row::new(cells).style(row_style(selected, theme))
        });
    let mut header = vec!["device id", "status", "connection", "last activity", "auth"];
    let mut widths = vec![
        Constraint::Fill(3),
        Constraint::Length(8),
        Constraint::Length(12),
        Constraint::Length(19),
        Constraint::Length(16),
    ];
    if wide {
        header.extend(["c2d", "mod", "model id", "tags"]);
        widths.extend([
            Constraint::Length(4),
            Constraint::Length(3),
            Constraint::Fill(4),
            Constraint::Fill(1),
        ]);
    }
    let table = Table::new(rows, widths)
        .header(Row::new(header).style(theme.style(Role::Title)))
        .column_spacing(1);
    frame.render_widget(table, area);
}

/// The selected registry entry, keys masked, as `name: value` lines in two columns.
fn device_detail(
    frame: &mut Frame,
    area: Rect,
    device: &DeviceIdentity,
    twin: Option<&TwinSummary>,
    children: Option<usize>,
    theme: &Theme,
) {
    let b = block(
        format!("Identity of {} (keys masked)", escape(&device.device_id)),
        theme,
        false,
    );
    let inner = b.inner(area);
    frame.render_widget(b, area);
    let identity = match masked_identity(device) {
        serde_json::Value::Object(map) => map,
        _ => serde_json::Map::new(),
    };
    // Every leaf that says something, by dotted path. A device list comes from a twin
    // query, which carries no generation id or connection-state time: those read as
    // empty or "never" here and are left out rather than shown wrong.
    let never = format!("{:?}", iothub::device::NEVER);
    let mut fields: Vec<(String, String)> = leaves(&identity, "")
        .into_iter()
        .filter(|(_, v)| v != "null" && v != "\"\"" && *v != never)
        .collect();
    // Edge relations by device id, ahead of the raw scopes.
    if let Some(parent) = device.parent_device() {
        fields.insert(0, ("parent".into(), format!("{parent:?}")));
    }
    if let Some(n) = children {
        fields.insert(0, ("children (listed)".into(), n.to_string()));
    }
    if let Some(t) = twin {
        if let Some(n) = t.modules {
            fields.push(("modules".into(), n.to_string()));
        }
        fields.push(("modelId".into(), format!("{:?}", t.model_id)));
        fields.push((
            "tags".into(),
            serde_json::Value::Object(t.tags.clone()).to_string(),
        ));
    }
    let line = |(k, v): &(String, String)| {
        Line::from(vec![
            Span::styled(format!("{}: ", escape(k)), theme.style(Role::Key)),
            Span::styled(escape(v).into_owned(), theme.style(Role::Text)),
        ])
    };
    // Fields that fit half the width go in two columns; longer ones (thumbprints,
    // scopes) get whole lines below, so that no value is cut.
    let half = usize::from(inner.width / 2);
    let (short, long): (Vec<_>, Vec<_>) = fields
        .iter()
        .partition(|(k, v)| k.chars().count() + 2 + v.chars().count() < half);
    let split = short.len().div_ceil(2);
    let [columns, rest] =
        Layout::vertical([Constraint::Length(split as u16), Constraint::Min(0)]).areas(inner);
    let [left, right] =
        Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(columns);
    let lines = |fields: &[&(String, String)]| fields.iter().map(|f| line(f)).collect::<Vec<_>>();
    frame.render_widget(Paragraph::new(lines(&short[..split])), left);
    frame.render_widget(Paragraph::new(lines(&short[split..])), right);
    frame.render_widget(Paragraph::new(lines(&long)), rest);
}

fn create_form(frame: &mut Frame, area: Rect, form: &CreateDeviceForm, theme: &Theme) {
    let popup = centered(area, 64, 10);
    frame.render_widget(Clear, popup);
    let b = block("New device", theme, true);
    let inner = b.inner(popup);
    frame.render_widget(b, popup);
    let auth = if form.x509 {
        "X.509 thumbprint"
    } else {
        "SAS (keys generated)"
    };
    let mut lines = vec![
        field_line("device id", form.id.value(), form.focus == 0, theme),
        field_line("auth (Space toggles)", auth, form.focus == 1, theme),
    ];
    if form.x509 {
        lines.push(field_line(
            "primary thumbprint",
            form.primary_thumbprint.value(),
            form.focus == 2,
            theme,
        ));
        lines.push(field_line(
            "secondary thumbprint",
            form.secondary_thumbprint.value(),
            form.focus == 3,
            theme,
        ));
    }
    lines.push(Line::default());
    match &form.error {
        Some(e) => lines.push(Line::styled(e.clone(), theme.style(Role::Error))),
        None => lines.push(Line::styled(
            "Ctrl-s create · Tab next field · Esc cancel",
            theme.style(Role::Muted),
        )),
    }
    frame.render_widget(Paragraph::new(lines).wrap(Wrap { trim: false }), inner);
}
