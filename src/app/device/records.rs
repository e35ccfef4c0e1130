//! What the device received, decoded once when it arrives so that drawing only copies lines:
//! C2D messages and direct method calls, kept newest first in a bounded list.

use std::collections::VecDeque;

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::app::body::{DecodedBody, decode, escape, pretty_lines};
use client::manual::Answerer;
use iothub::property_bag::{PropertyBag, SYSTEM_PREFIX};

/// Entries kept per list.
pub const KEPT: usize = 500;

/// A bounded list, newest first, with a selection that stays on its entry as new ones arrive.
#[derive(Clone, Debug)]
pub struct Received<T> {
    pub items: VecDeque<T>,
    pub selected: usize,
    /// Entries ever received (the list keeps the last `KEPT`).
    pub total: u64,
    /// Lines of the selected entry's detail scrolled off the top.
    pub detail_scroll: usize,
}

impl<T> Default for Received<T> {
    fn default() -> Self {
        Received {
            items: VecDeque::new(),
            selected: 0,
            total: 0,
            detail_scroll: 0,
        }
    }
}

impl<T> Received<T> {
    pub fn push(&mut self, item: T) {
        self.items.push_front(item);
        self.items.truncate(KEPT);
        self.total += 1;
        // Following the newest entry unless the user moved to an older one.
        if self.selected > 0 {
            self.selected = (self.selected + 1).min(self.items.len() - 1);
        }
    }

    /// Scrolls the detail by `delta` lines within `lines`; false when it did not move.
    pub fn scroll(&mut self, delta: isize, lines: usize) -> bool {
        let next = self
            .detail_scroll
            .saturating_add_signed(delta)
            .min(lines.saturating_sub(1));
        let moved = next != self.detail_scroll;
        self.detail_scroll = next;
        moved
    }

    pub fn selected(&self) -> Option<&T> {
        self.items.get(self.selected)
    }

    /// Moves the selection by `delta` (positive: older); false when it did not move.
    pub fn step(&mut self, delta: isize) -> bool {
        if self.items.is_empty() {
            return false;
        }
        let last = self.items.len() - 1;
        let next = self.selected.saturating_add_signed(delta).min(last);
        let moved = next != self.selected;
        self.selected = next;
        if moved {
            self.detail_scroll = 0;
        }
        moved
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct C2dMessage {
    pub at: DateTime<Utc>,
    /// The message id, or "-", escaped.
    pub message_id: String,
    /// (name without `$.`, value), escaped.
    pub system: Vec<(String, String)>,
    pub application: Vec<(String, String)>,
    pub body: DecodedBody,
}

impl C2dMessage {
    /// Lines the detail view has (headings, properties, body).
    pub fn detail_len(&self) -> usize {
        5 + self.system.len() + self.application.len().max(1) + self.body.lines().len()
    }

    pub fn new(at: DateTime<Utc>, properties: &PropertyBag, body: &[u8]) -> C2dMessage {
        let mut system = Vec::new();
        let mut application = Vec::new();
        for (k, v) in &properties.entries {
            let v = escape(v.as_deref().unwrap_or("")).into_owned();
            match k.strip_prefix(SYSTEM_PREFIX) {
                Some(name) => system.push((escape(name).into_owned(), v)),
                None => application.push((escape(k).into_owned(), v)),
            }
        }
        C2dMessage {
            at,
            message_id: escape(properties.system("mid").unwrap_or("-")).into_owned(),
            system,
            application,
            body: decode(body),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct MethodCall {
    pub at: DateTime<Utc>,
    pub name: String,
    pub status: i32,
    pub payload: Vec<String>,
    pub response: Vec<String>,
    pub by: Answerer,
    /// Why the answer did not reach the hub, if it did not.
    pub error: Option<String>,
}

impl MethodCall {
    /// Lines the detail view has (name, payload, answer).
    pub fn detail_len(&self) -> usize {
        3 + self.payload.len() + usize::from(self.error.is_some()) + self.response.len()
    }

    pub fn new(
        at: DateTime<Utc>,
        name: &str,
        payload: &Value,
        status: i32,
        response: &Value,
        by: Answerer,
        error: Option<String>,
    ) -> MethodCall {
        MethodCall {
            at,
            name: escape(name).into_owned(),
            status,
            payload: pretty_lines(payload),
            response: pretty_lines(response),
            by,
            error: error.map(|e| escape(&e).into_owned()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selection_stays_on_its_entry() {
        let mut r = Received::default();
        r.push(1);
        r.push(2);
        assert_eq!(r.selected(), Some(&2));
        assert!(r.step(1));
        assert_eq!(r.selected(), Some(&1));
        r.push(3);
        assert_eq!(r.selected(), Some(&1));
        assert!(!r.step(5));
        assert!(r.step(-9));
        assert_eq!(r.selected(), Some(&3));
    }

    #[test]
    fn c2d_properties_are_split_and_escaped() {
        let mut bag = PropertyBag::default();
        bag.set("$.mid", Some("m1".into()));
        bag.set("color", Some("red\u{1b}[31m".into()));
        let m = C2dMessage::new(Utc::now(), &bag, b"{\"a\":1}");
        assert_eq!(m.message_id, "m1");
        assert_eq!(m.system, vec![("mid".to_string(), "m1".to_string())]);
        assert_eq!(m.application[0].1, "red\\x1b[31m");
        assert_eq!(m.body.lines(), vec!["{", "  \"a\": 1", "}"]);
    }
}
