//! Method calls put to the user (the device runs with "ask me" on): the calls waiting, oldest
//! first, and the answer editor, which holds the status on its first line and the JSON
//! payload below it.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use ratatui_textarea::TextArea;
use serde_json::Value;

use crate::app::body::{escape, pretty_lines};

/// A call waiting for the user's answer.
#[derive(Clone, Debug, PartialEq)]
pub struct Question {
    pub rid: String,
    /// Escaped for display.
    pub name: String,
    pub payload: Vec<String>,
    /// The answer the editor starts from: the profile's.
    pub suggested: (i32, Value),
    /// When the profile answers instead.
    pub deadline: Instant,
}

#[derive(Debug)]
pub struct Questions {
    /// Whether new calls are put to the user.
    pub ask: bool,
    /// How long a call waits for the user (for telling them; the device task enforces it).
    pub timeout: Duration,
    pub waiting: VecDeque<Question>,
    pub editor: TextArea<'static>,
    /// The call the editor answers, while it is open.
    pub answering: Option<String>,
}

impl Questions {
    pub fn new(ask: bool, timeout: Duration) -> Questions {
        Questions {
            ask,
            timeout,
            waiting: VecDeque::new(),
            editor: TextArea::default(),
            answering: None,
        }
    }

    /// A call the device put to the user, who has `timeout` to answer it.
    pub fn push(
        &mut self,
        rid: String,
        name: &str,
        payload: &Value,
        suggested: (i32, Value),
        timeout: Duration,
    ) {
        self.waiting.push_back(Question {
            rid,
            name: escape(name).into_owned(),
            payload: pretty_lines(payload),
            suggested,
            deadline: Instant::now() + timeout,
        });
    }

    /// The call answered (by anyone) leaves; true if the editor was answering it.
    pub fn settled(&mut self, rid: &str) -> bool {
        self.waiting.retain(|q| q.rid != rid);
        let was_open = self.answering.as_deref() == Some(rid);
        if was_open {
            self.answering = None;
        }
        was_open
    }

    /// The call the editor answers, or else the oldest one.
    pub fn current(&self) -> Option<&Question> {
        match &self.answering {
            Some(rid) => self.waiting.iter().find(|q| &q.rid == rid),
            None => self.waiting.front(),
        }
    }

    /// Opens the editor on the oldest call, starting from the profile's answer; false when
    /// no call waits.
    pub fn open(&mut self) -> bool {
        let Some(q) = self.waiting.front() else {
            return false;
        };
        if self.answering.as_deref() != Some(q.rid.as_str()) {
            let (status, payload) = &q.suggested;
            let mut lines = vec![status.to_string()];
            lines.extend(pretty_lines(payload));
            self.editor = TextArea::new(lines);
            self.answering = Some(q.rid.clone());
        }
        true
    }

    /// The editor's answer: (rid, status, payload), or one sentence saying what is wrong.
    pub fn answer(&self) -> Result<(String, i32, Value), String> {
        let rid = self
            .answering
            .clone()
            .ok_or_else(|| "no method call is waiting for an answer".to_string())?;
        let lines = self.editor.lines();
        let first = lines.first().map(|l| l.trim()).unwrap_or_default();
        let status: i32 = first.parse().map_err(|_| {
            format!("the first line must be the status, a whole number such as 200, not {first:?}")
        })?;
        let rest = lines.get(1..).unwrap_or_default().join("\n");
        let payload = if rest.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&rest).map_err(|e| {
                format!(
                    "the payload below the status is not JSON ({e}); write JSON, or nothing for null"
                )
            })?
        };
        Ok((rid, status, payload))
    }

    /// Whole seconds left to answer `q` at `now`.
    pub fn seconds_left(q: &Question, now: Instant) -> u64 {
        q.deadline
            .saturating_duration_since(now)
            .as_secs_f64()
            .ceil() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn asked() -> Questions {
        let mut q = Questions::new(true, Duration::from_secs(30));
        let t = Duration::from_secs(30);
        q.push(
            "1".into(),
            "reboot",
            &json!({"delay": 1}),
            (200, json!({"ok": true})),
            t,
        );
        let unknown = (404, json!({"error": "unknown method"}));
        q.push("2".into(), "ping", &json!(null), unknown, t);
        q
    }

    #[test]
    fn the_editor_starts_from_the_profiles_answer_for_the_oldest_call() {
        let mut q = asked();
        assert!(q.open());
        assert_eq!(q.editor.lines(), ["200", "{", "  \"ok\": true", "}"]);
        assert_eq!(q.answer().unwrap(), ("1".into(), 200, json!({"ok": true})));
        assert_eq!(q.current().unwrap().name, "reboot");
    }

    #[test]
    fn a_bad_answer_is_one_sentence_and_the_text_stays() {
        let mut q = asked();
        q.open();
        q.editor = TextArea::new(vec!["ok".into()]);
        assert_eq!(
            q.answer().unwrap_err(),
            "the first line must be the status, a whole number such as 200, not \"ok\""
        );
        q.editor = TextArea::new(vec!["500".into(), "{oops".into()]);
        assert!(
            q.answer()
                .unwrap_err()
                .starts_with("the payload below the status is not JSON (")
        );
        assert_eq!(q.editor.lines(), ["500", "{oops"]);
        q.editor = TextArea::new(vec!["503".into()]);
        assert_eq!(q.answer().unwrap(), ("1".into(), 503, Value::Null));
    }

    #[test]
    fn a_call_answered_elsewhere_leaves_and_closes_its_editor() {
        let mut q = asked();
        q.open();
        assert!(!q.settled("2"));
        assert!(q.settled("1"));
        assert_eq!(q.answering, None);
        assert!(q.waiting.is_empty());
        assert!(!q.open());
    }
}
