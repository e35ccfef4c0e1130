//! The device's view of its twin: desired and reported as last known (each with its
//! `$version`), the reported-patch editor, whether Plug and Play acknowledgements are
//! automatic, and a log of what changed.

use std::collections::VecDeque;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use crate::app::body::{escape, pretty_lines, preview_of};
use crate::app::input::JsonEditor;
use client::manual::ReportOrigin;

/// The editor's text at start: a harmless property to try.
pub const DEFAULT_PATCH: &str = "{\n  \"status\": \"ok\"\n}";
/// Log lines kept.
pub const TWIN_LOG: usize = 200;

#[derive(Clone, Debug, PartialEq)]
pub struct TwinLogEntry {
    pub at: DateTime<Utc>,
    /// One escaped line.
    pub text: String,
    pub error: bool,
}

#[derive(Debug)]
pub struct TwinState {
    /// Desired as last known, `$version` included; None before the first read.
    pub desired: Option<Map<String, Value>>,
    pub reported: Option<Map<String, Value>>,
    /// Pretty lines of each, made when they change.
    pub desired_lines: Vec<String>,
    pub reported_lines: Vec<String>,
    pub editor: JsonEditor,
    pub auto_ack: bool,
    /// Newest first.
    pub log: VecDeque<TwinLogEntry>,
    /// Lines of the desired and reported panes scrolled off the top.
    pub scroll: usize,
}

impl TwinState {
    pub fn new(auto_ack: bool) -> TwinState {
        TwinState {
            desired: None,
            reported: None,
            desired_lines: Vec::new(),
            reported_lines: Vec::new(),
            editor: {
                let mut e = JsonEditor::new(DEFAULT_PATCH);
                super::style_editor(&mut e.textarea, false);
                e
            },
            auto_ack,
            log: VecDeque::new(),
            scroll: 0,
        }
    }

    fn log(&mut self, at: DateTime<Utc>, text: String, error: bool) {
        self.log.push_front(TwinLogEntry { at, text, error });
        self.log.truncate(TWIN_LOG);
    }

    /// The whole twin as read at connect.
    pub fn read(&mut self, at: DateTime<Utc>, twin: &Value) {
        let section = |name: &str| twin.get(name).and_then(Value::as_object).cloned();
        self.desired = Some(section("desired").unwrap_or_default());
        self.reported = Some(section("reported").unwrap_or_default());
        self.refresh_lines();
        let v =
            |s: &Option<Map<String, Value>>| version_of(s).map_or("-".into(), |v| v.to_string());
        let text = format!(
            "twin read: desired $version {}, reported $version {}",
            v(&self.desired),
            v(&self.reported)
        );
        self.log(at, text, false);
    }

    /// A desired patch as the hub sent it.
    pub fn desired_patch(&mut self, at: DateTime<Utc>, version: u64, patch: &Map<String, Value>) {
        let desired = self.desired.get_or_insert_with(Map::new);
        iothub::twin::merge(desired, patch);
        desired.insert("$version".into(), Value::from(version));
        self.refresh_lines();
        // Said first, so that a narrow screen cuts the patch rather than the note.
        let note = if self.auto_ack {
            ""
        } else {
            ", not acknowledged"
        };
        let text = format!(
            "desired $version {version}{note}: {}",
            preview_of(&Value::Object(patch.clone()).to_string())
        );
        self.log(at, text, false);
    }

    /// The hub took a reported patch.
    pub fn reported_patch(
        &mut self,
        at: DateTime<Utc>,
        origin: ReportOrigin,
        version: u64,
        patch: &Map<String, Value>,
    ) {
        let reported = self.reported.get_or_insert_with(Map::new);
        iothub::twin::merge(reported, patch);
        reported.insert("$version".into(), Value::from(version));
        self.refresh_lines();
        let who = match origin {
            ReportOrigin::User(_) => "your patch",
            ReportOrigin::Acknowledgement => "acknowledgement",
        };
        let text = format!(
            "reported $version {version} ({who}): {}",
            preview_of(&Value::Object(patch.clone()).to_string())
        );
        self.log(at, text, false);
    }

    pub fn report_failed(&mut self, at: DateTime<Utc>, error: &str) {
        self.log(
            at,
            format!("reported patch failed: {}", escape(error)),
            true,
        );
    }

    /// The patch the editor holds, or the one sentence that says why it cannot be sent.
    pub fn patch(&self) -> Result<Map<String, Value>, String> {
        match &self.editor.status {
            Ok(Value::Object(map)) => Ok(map.clone()),
            Ok(_) => {
                Err("the reported patch must be a JSON object, like {\"status\": \"ok\"}".into())
            }
            Err(p) => Err(format!("the reported patch is not valid JSON at {p}")),
        }
    }

    /// Scrolls both sections by `delta` lines, down to the last line of the longer one.
    pub fn scroll(&mut self, delta: isize) -> bool {
        let longest = self.desired_lines.len().max(self.reported_lines.len());
        let next = self
            .scroll
            .saturating_add_signed(delta)
            .min(longest.saturating_sub(1));
        let moved = next != self.scroll;
        self.scroll = next;
        moved
    }

    fn refresh_lines(&mut self) {
        let lines = |s: &Option<Map<String, Value>>| {
            s.as_ref()
                .map(|m| pretty_lines(&Value::Object(m.clone())))
                .unwrap_or_default()
        };
        self.desired_lines = lines(&self.desired);
        self.reported_lines = lines(&self.reported);
    }
}

/// `$version` of a section.
pub fn version_of(section: &Option<Map<String, Value>>) -> Option<u64> {
    section.as_ref()?.get("$version")?.as_u64()
}
