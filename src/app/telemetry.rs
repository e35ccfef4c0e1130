//! Telemetry tab: the bounded ring of received messages, the filtered view over it kept up to
//! date as messages arrive, pause (of the view, not of ingestion), message detail with the
//! difference to the previous message of the same device, chart and export.

use std::borrow::Cow;
use std::collections::{BTreeSet, HashMap, VecDeque};

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use client::events::{HubCommand, HubEvent, StartFrom, TelemetryEvent};

use super::body::{BodyKind, DecodedBody, decode_with, escape};
use super::chart::ChartSeries;
use super::eventtext::EventText;
use super::msgdiff::{DiffLine, diff};
use super::numbers::Numbers;
use super::ring::TelemetryRing;
use super::scroll::Scroll;
use super::{Action, App, Prompt, PromptKind, input::TextField};

/// The system property naming a message's Plug and Play component (from `$.sub`).
const DT_SUBJECT: &str = iothub::amqp_model::annotation::DT_SUBJECT;

/// Bytes of a body kept in the ring (display and export); the original size is kept apart.
pub const MAX_KEPT_BODY: usize = 64 * 1024;
const PAGE: usize = 10;

/// One received message, kept compact: the ring holds many and drops one per arrival, so
/// what can be derived (display text, parsed JSON, numbers) is derived when needed.
#[derive(Clone, Debug, PartialEq)]
pub struct TelemetryRow {
    pub enqueued_time: DateTime<Utc>,
    pub partition: u32,
    pub sequence_number: i64,
    /// Device, module and properties.
    pub text: EventText,
    /// The body, cut to `MAX_KEPT_BODY`.
    pub body: DecodedBody,
    /// Id of the previous message from the same device, for the diff.
    pub previous: Option<u64>,
}

impl TelemetryRow {
    /// Escaped device id (and module) for display.
    pub fn source(&self) -> Cow<'_, str> {
        let device = escape(self.text.device_id());
        match self.text.module_id() {
            Some(m) => Cow::Owned(format!("{device}/{}", escape(m))),
            None => device,
        }
    }

    /// Escaped IoT Plug and Play component the message belongs to (`dt-subject`).
    pub fn component(&self) -> Option<Cow<'_, str>> {
        self.text
            .system_properties()
            .find(|(k, _)| *k == DT_SUBJECT)
            .map(|(_, v)| escape(v))
    }
}

/// The open message.
#[derive(Clone, Debug, PartialEq)]
pub struct Detail {
    pub id: u64,
    pub show_diff: bool,
    /// The body (or diff) scrolls; another message starts at its top.
    pub scroll: Scroll,
    /// Against the previous message of the device; None when there is none in the buffer.
    pub diff: Option<Vec<DiffLine>>,
}

#[derive(Clone, Debug)]
pub struct TelemetryState {
    pub ring: TelemetryRing<TelemetryRow>,
    /// Ids of rows passing scope and filter, oldest first.
    pub view: VecDeque<u64>,
    pub filter: String,
    /// `filter` lowercased, made once per filter rather than per message.
    needle: String,
    /// Only the selected device.
    pub only_selected: bool,
    /// While paused, the view shows rows with ids below this.
    pub paused_at: Option<u64>,
    /// Selected row id; None follows the newest.
    pub selected: Option<u64>,
    pub detail: Option<Detail>,
    pub chart_on: bool,
    /// Numeric fields seen, for picking the chart's.
    pub fields: BTreeSet<String>,
    pub chart: ChartSeries,
    pub start_from: StartFrom,
    pub consumer_group: String,
    last_by_device: HashMap<String, u64>,
    /// Device filter the view was built for.
    scope_device: Option<String>,
    /// Scratch space for reading a body's numbers.
    numbers: Numbers,
    /// The numbers of the last message whose fields went into `fields`: most messages have
    /// the fields of the one before, which spares looking each one up.
    fields_of_last: Numbers,
}

impl TelemetryState {
    pub fn new(capacity: usize, consumer_group: String) -> Self {
        Self {
            ring: TelemetryRing::new(capacity),
            view: VecDeque::new(),
            filter: String::new(),
            needle: String::new(),
            only_selected: false,
            paused_at: None,
            selected: None,
            detail: None,
            chart_on: false,
            fields: BTreeSet::new(),
            chart: ChartSeries::default(),
            start_from: StartFrom::Now,
            consumer_group,
            last_by_device: HashMap::new(),
            scope_device: None,
            numbers: Numbers::default(),
            fields_of_last: Numbers::default(),
        }
    }

    fn passes(&self, row: &TelemetryRow) -> bool {
        if let Some(device) = &self.scope_device
            && row.text.device_id() != device
        {
            return false;
        }
        if self.filter.is_empty() {
            return true;
        }
        contains_lowercase(row.text.device_id(), &self.needle)
            || contains_lowercase(&row.body.preview(), &self.needle)
    }

    /// Rebuilds the view after a change of scope or filter (one pass over the ring).
    fn rebuild_view(&mut self) {
        self.needle = self.filter.to_lowercase();
        let ids: VecDeque<u64> = self
            .ring
            .iter()
            .filter(|(_, r)| self.passes(r))
            .map(|(id, _)| id)
            .collect();
        self.view = ids;
        if self.selected.is_some_and(|s| !self.view.contains(&s)) {
            self.selected = None;
        }
    }

    /// The ids the list shows: all of the view, or up to the pause point.
    pub fn shown(&self) -> (&VecDeque<u64>, usize) {
        let len = match self.paused_at {
            Some(p) => self.view.partition_point(|&id| id < p),
            None => self.view.len(),
        };
        (&self.view, len)
    }

    /// Messages received since pausing, not shown yet.
    pub fn held_back(&self) -> usize {
        let (view, shown) = self.shown();
        view.len() - shown
    }

    /// Index in the shown part of the selected row (or the newest).
    pub fn selected_index(&self) -> Option<usize> {
        let (view, len) = self.shown();
        if len == 0 {
            return None;
        }
        match self.selected {
            Some(id) => view.range(..len).position(|&v| v == id).or(Some(len - 1)),
            None => Some(len - 1),
        }
    }

    fn rebuild_chart(&mut self) {
        let field = self.chart.field.clone();
        self.chart = ChartSeries {
            field: field.clone(),
            ..ChartSeries::default()
        };
        let Some(field) = field else { return };
        // Rows keep no numbers: each JSON body is read again (once per change of field).
        for (_, r) in self.ring.iter() {
            if r.body.kind != BodyKind::Json {
                continue;
            }
            self.numbers.read(r.body.bytes());
            if let Some((_, v)) = self.numbers.iter().find(|(f, _)| *f == field) {
                self.chart.push(r.enqueued_time.timestamp_millis(), v);
            }
        }
    }

    /// JSON lines of the shown rows, for export.
    pub fn export_lines(&self) -> (String, usize) {
        let (view, len) = self.shown();
        let mut out = String::new();
        let mut count = 0;
        for row in view.range(..len).filter_map(|id| self.ring.get(*id)) {
            out.push_str(&export_line(row).to_string());
            out.push('\n');
            count += 1;
        }
        (out, count)
    }
}

/// True when `hay` lowercased contains `needle` (already lowercase). ASCII text, most
/// telemetry, is compared in place: filtering runs for every arriving message.
fn contains_lowercase(hay: &str, needle: &str) -> bool {
    if !hay.is_ascii() {
        return hay.to_lowercase().contains(needle);
    }
    if needle.is_empty() {
        return true;
    }
    // Lowercased ASCII stays ASCII, so it cannot contain a needle that is not.
    needle.is_ascii()
        && hay
            .as_bytes()
            .windows(needle.len())
            .any(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
}

fn props<'a>(p: impl Iterator<Item = (&'a str, &'a str)>) -> Value {
    Value::Object(
        p.map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
            .collect::<Map<_, _>>(),
    )
}

/// One message as a JSON object: body as JSON when it is, as text, or as hex.
pub fn export_line(row: &TelemetryRow) -> Value {
    let bytes = row.body.bytes();
    let body = match row.body.json() {
        Some(v) => v,
        None => match std::str::from_utf8(bytes) {
            Ok(s) => Value::String(s.to_string()),
            Err(_) => Value::String(bytes.iter().map(|b| format!("{b:02x}")).collect()),
        },
    };
    json!({
        "enqueuedTime": row.enqueued_time.to_rfc3339(),
        "deviceId": row.text.device_id(),
        "moduleId": row.text.module_id(),
        "partition": row.partition,
        "sequenceNumber": row.sequence_number,
        "systemProperties": props(row.text.system_properties()),
        "applicationProperties": props(row.text.application_properties()),
        "bodyKind": row.body.kind.label(),
        "bodySize": row.body.original_len,
        "bodyTruncated": row.body.original_len > bytes.len(),
        "body": body,
    })
}

/// Parses the start-time prompt: "now", "-10m", "-2h", "-30s", "-1d" or RFC 3339.
pub fn parse_start(text: &str) -> Result<StartFrom, String> {
    let t = text.trim();
    if t.is_empty() || t.eq_ignore_ascii_case("now") {
        return Ok(StartFrom::Now);
    }
    if let Some(rest) = t.strip_prefix('-') {
        let (n, unit) = rest.split_at(rest.len().saturating_sub(1));
        let n: u64 = n
            .parse()
            .map_err(|_| format!("\"{}\" is not a duration like -10m", escape(t)))?;
        let secs = match unit {
            "s" => n,
            "m" => n * 60,
            "h" => n * 3600,
            "d" => n * 86_400,
            _ => return Err(format!("\"{}\" needs a unit: s, m, h or d", escape(t))),
        };
        return Ok(StartFrom::Ago(std::time::Duration::from_secs(secs)));
    }
    DateTime::parse_from_rfc3339(t)
        .map(|d| StartFrom::At(d.with_timezone(&Utc)))
        .map_err(|_| {
            format!(
                "\"{}\" is neither now, -10m nor an RFC 3339 time",
                escape(t)
            )
        })
}

/// The selected device changed: a view scoped to it follows.
pub(super) fn device_changed(app: &mut App) {
    if app.telemetry.only_selected {
        app.telemetry.scope_device = app.selected_device.clone();
        app.telemetry.rebuild_view();
    }
}

fn ingest(t: &mut TelemetryState, event: TelemetryEvent) {
    // One pass over a JSON body checks it and finds its numbers; none are kept per row.
    let numbers = &mut t.numbers;
    let mut json = false;
    let body = decode_with(event.body, MAX_KEPT_BODY, |b| {
        json = numbers.read(b);
        json
    });
    if json {
        if !t.numbers.same_paths(&t.fields_of_last) {
            for (f, _) in t.numbers.iter() {
                if !t.fields.contains(f) {
                    t.fields.insert(f.to_string());
                }
            }
            t.fields_of_last.copy_from(&t.numbers);
        }
        if t.chart.field.is_none() {
            t.chart.field = t.numbers.iter().next().map(|(f, _)| f.to_string());
        }
        if let Some(field) = &t.chart.field
            && let Some((_, v)) = t.numbers.iter().find(|(f, _)| f == field)
        {
            t.chart.push(event.enqueued_time.timestamp_millis(), v);
        }
    }
    let id = t.ring.next_id();
    let first = t.ring.first_id();
    let last = t.last_by_device.get_mut(&event.device_id);
    let known = last.is_some();
    let previous = last
        .map(|last| std::mem::replace(last, id))
        .filter(|p| *p >= first);
    t.ring.push_with(|oldest| TelemetryRow {
        enqueued_time: event.enqueued_time,
        partition: event.partition,
        sequence_number: event.sequence_number,
        text: EventText::new_in(
            oldest.map(|r| r.text.into_buffer()).unwrap_or_default(),
            &event.device_id,
            event.module_id.as_deref(),
            &event.system_properties,
            &event.application_properties,
        ),
        body,
        previous,
    });
    if !known {
        t.last_by_device.insert(event.device_id, id);
    }
    let passes = t.ring.get(id).is_some_and(|row| t.passes(row));
    while t.view.front().is_some_and(|&v| v < t.ring.first_id()) {
        t.view.pop_front();
    }
    if passes {
        t.view.push_back(id);
    }
}

fn open_detail(t: &mut TelemetryState, id: u64) {
    let diff = t.ring.get(id).and_then(|row| {
        let prev = t.ring.get(row.previous?)?;
        Some(diff(&prev.body, &row.body))
    });
    let show_diff = t.detail.as_ref().is_some_and(|d| d.show_diff);
    t.detail = Some(Detail {
        id,
        show_diff,
        scroll: Scroll::default(),
        diff,
    });
}

/// At most the lines the detail view draws: a header, each property with a heading per
/// kind, a blank line, a title or cut notice, and the body or the diff.
fn detail_lines(t: &TelemetryState, d: &Detail) -> usize {
    let Some(row) = t.ring.get(d.id) else {
        return 0;
    };
    let content = match (&d.diff, d.show_diff) {
        (Some(diff), true) => diff.len(),
        _ => row.body.lines().len(),
    };
    let t = &row.text;
    t.system_properties().len() + t.application_properties().len() + 5 + content
}

pub(super) fn on_action(app: &mut App, action: &Action) -> bool {
    let t = &mut app.telemetry;
    if let (Some(detail), Action::PageDown | Action::PageUp | Action::Top | Action::Bottom) =
        (&t.detail, action)
    {
        let len = detail_lines(t, detail);
        return t
            .detail
            .as_mut()
            .is_some_and(|d| d.scroll.apply(action, len));
    }
    let (view, len) = t.shown();
    let current = t.selected_index();
    let step = |to: usize| view.get(to.min(len.saturating_sub(1))).copied();
    let moved = match (action, current) {
        (Action::Down, Some(i)) => Some(step(i + 1)),
        (Action::Up, Some(i)) => Some(step(i.saturating_sub(1))),
        (Action::PageDown, Some(i)) => Some(step(i + PAGE)),
        (Action::PageUp, Some(i)) => Some(step(i.saturating_sub(PAGE))),
        (Action::Top, Some(_)) => Some(step(0)),
        (Action::Bottom, _) => Some(None),
        _ => None,
    };
    if let Some(to) = moved {
        // Reaching the newest row while not paused goes back to following.
        let last = len.checked_sub(1).and_then(|l| view.get(l)).copied();
        t.selected = if to == last && t.paused_at.is_none() {
            None
        } else {
            to
        };
        if let (Some(_), Some(id)) = (&t.detail, to.or(last)) {
            open_detail(t, id);
        }
        return true;
    }
    match action {
        Action::Back if t.detail.is_some() => t.detail = None,
        Action::ToggleDiff if t.detail.is_some() => {
            if let Some(d) = t.detail.as_mut() {
                d.show_diff = !d.show_diff;
            }
        }
        Action::Copy => {
            let Some(row) = t.detail.as_ref().and_then(|d| t.ring.get(d.id)) else {
                return false;
            };
            let text = export_line(row).to_string();
            app.copy("the message", text);
        }
        Action::TogglePause => {
            t.paused_at = match t.paused_at {
                Some(_) => {
                    t.selected = None;
                    None
                }
                None => Some(t.ring.next_id()),
            };
        }
        Action::OpenDetail => {
            let Some(i) = current else { return false };
            let id = view[i];
            open_detail(t, id);
        }
        Action::ToggleScope => {
            t.only_selected = !t.only_selected;
            t.scope_device = if t.only_selected {
                app.selected_device.clone()
            } else {
                None
            };
            t.rebuild_view();
        }
        Action::StartFilter => {
            app.prompt = Some(Prompt {
                kind: PromptKind::TelemetryFilter,
                input: TextField::new(t.filter.clone()),
            })
        }
        Action::Export => {
            app.prompt = Some(Prompt {
                kind: PromptKind::ExportPath,
                input: TextField::new("telemetry.jsonl"),
            })
        }
        Action::StartFrom => {
            app.prompt = Some(Prompt {
                kind: PromptKind::StartFrom,
                input: TextField::new("now"),
            })
        }
        Action::ConsumerGroup => {
            app.prompt = Some(Prompt {
                kind: PromptKind::ConsumerGroup,
                input: TextField::new(t.consumer_group.clone()),
            })
        }
        Action::ToggleChart => t.chart_on = !t.chart_on,
        Action::NextChartField => {
            let next = match &t.chart.field {
                Some(f) => t
                    .fields
                    .range::<String, _>((std::ops::Bound::Excluded(f), std::ops::Bound::Unbounded))
                    .next()
                    .or_else(|| t.fields.iter().next()),
                None => t.fields.iter().next(),
            };
            t.chart.field = next.cloned();
            t.chart_on = true;
            t.rebuild_chart();
        }
        Action::ClearTelemetry => {
            t.ring.clear();
            t.view.clear();
            t.selected = None;
            t.detail = None;
            t.chart.points.clear();
        }
        _ => return false,
    }
    true
}

/// A telemetry prompt was answered.
pub(super) fn on_prompt(app: &mut App, kind: PromptKind, text: String, cmds: &mut Vec<HubCommand>) {
    let t = &mut app.telemetry;
    match kind {
        PromptKind::TelemetryFilter => {
            t.filter = text.trim().to_string();
            t.rebuild_view();
        }
        PromptKind::ExportPath => {
            let (contents, count) = t.export_lines();
            cmds.push(HubCommand::ExportTelemetry {
                path: text.trim().into(),
                contents,
                count,
            });
        }
        PromptKind::StartFrom => match parse_start(&text) {
            Ok(from) => {
                t.start_from = from;
                cmds.push(HubCommand::StartTelemetry {
                    from,
                    consumer_group: t.consumer_group.clone(),
                });
            }
            Err(e) => app.error(e),
        },
        PromptKind::ConsumerGroup => {
            let group = text.trim();
            t.consumer_group = if group.is_empty() { "$Default" } else { group }.to_string();
            cmds.push(HubCommand::StartTelemetry {
                from: t.start_from,
                consumer_group: t.consumer_group.clone(),
            });
        }
        PromptKind::DeviceFilter | PromptKind::FilesFilter | PromptKind::DownloadPath => {}
    }
}

/// A message arrived (taken by value, sparing a copy of each message).
pub(super) fn on_telemetry(app: &mut App, event: TelemetryEvent) {
    ingest(&mut app.telemetry, event);
}

pub(super) fn on_event(app: &mut App, event: &HubEvent) -> bool {
    match event {
        HubEvent::Exported { path, count } => {
            app.notice(format!(
                "exported {count} messages to {}",
                escape(&path.display().to_string())
            ));
            true
        }
        _ => false,
    }
}
