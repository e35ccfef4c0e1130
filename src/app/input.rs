//! Editable inputs held in state: a one-line `TextField` and a multi-line `JsonEditor`
//! (ratatui-textarea) with live validation that names the line and column of the first error.

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui_textarea::TextArea;
use serde_json::Value;

/// A one-line text input with a cursor (in characters).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TextField {
    value: String,
    cursor: usize,
}

impl TextField {
    pub fn new(value: impl Into<String>) -> Self {
        let value = value.into();
        let cursor = value.chars().count();
        Self { value, cursor }
    }

    pub fn value(&self) -> &str {
        &self.value
    }

    pub fn cursor(&self) -> usize {
        self.cursor
    }

    pub fn set(&mut self, value: impl Into<String>) {
        *self = Self::new(value);
    }

    fn byte_at(&self, chars: usize) -> usize {
        self.value
            .char_indices()
            .nth(chars)
            .map_or(self.value.len(), |(i, _)| i)
    }

    /// Applies an editing key; returns whether the field changed (text or cursor).
    pub fn handle(&mut self, key: KeyEvent) -> bool {
        let len = self.value.chars().count();
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        match key.code {
            KeyCode::Char('u') if ctrl => {
                let changed = !self.value.is_empty();
                self.set("");
                changed
            }
            KeyCode::Char('a') if ctrl => self.move_to(0),
            KeyCode::Char('e') if ctrl => self.move_to(len),
            KeyCode::Char(c) if !ctrl && !c.is_control() => {
                let at = self.byte_at(self.cursor);
                self.value.insert(at, c);
                self.cursor += 1;
                true
            }
            KeyCode::Backspace if self.cursor > 0 => {
                let at = self.byte_at(self.cursor - 1);
                self.value.remove(at);
                self.cursor -= 1;
                true
            }
            KeyCode::Delete if self.cursor < len => {
                let at = self.byte_at(self.cursor);
                self.value.remove(at);
                true
            }
            KeyCode::Left if self.cursor > 0 => self.move_to(self.cursor - 1),
            KeyCode::Right if self.cursor < len => self.move_to(self.cursor + 1),
            KeyCode::Home => self.move_to(0),
            KeyCode::End => self.move_to(len),
            _ => false,
        }
    }

    fn move_to(&mut self, cursor: usize) -> bool {
        let changed = self.cursor != cursor;
        self.cursor = cursor;
        changed
    }
}

/// Where and why JSON text fails to parse (1-based line and column).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JsonProblem {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl std::fmt::Display for JsonProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "line {}, column {}: {}",
            self.line, self.column, self.message
        )
    }
}

/// Parses `text` as JSON; an empty text is an error the user sees, like any other.
pub fn parse_json(text: &str) -> Result<Value, JsonProblem> {
    serde_json::from_str::<Value>(text).map_err(|e| {
        let full = e.to_string();
        // serde_json appends " at line L column C"; keep only the reason.
        let message = full
            .rsplit_once(" at line ")
            .map_or(full.as_str(), |(m, _)| m)
            .to_string();
        JsonProblem {
            line: e.line().max(1),
            column: e.column().max(1),
            message,
        }
    })
}

/// A JSON text editor: a textarea plus the result of validating its text after every change.
#[derive(Clone, Debug)]
pub struct JsonEditor {
    pub textarea: TextArea<'static>,
    /// The parsed value, or the first error.
    pub status: Result<Value, JsonProblem>,
}

impl JsonEditor {
    pub fn new(text: &str) -> Self {
        let lines: Vec<String> = text.lines().map(str::to_owned).collect();
        let mut textarea = TextArea::new(if lines.is_empty() {
            vec![String::new()]
        } else {
            lines
        });
        textarea.set_tab_length(2);
        let status = parse_json(text);
        Self { textarea, status }
    }

    /// An editor holding `value` pretty-printed.
    pub fn with_value(value: &Value) -> Self {
        Self::new(&serde_json::to_string_pretty(value).unwrap_or_default())
    }

    pub fn text(&self) -> String {
        self.textarea.lines().join("\n")
    }

    /// Replaces the whole text.
    pub fn set_text(&mut self, text: &str) {
        *self = Self::new(text);
    }

    /// Feeds a key to the textarea and revalidates; returns whether anything changed.
    pub fn handle(&mut self, key: KeyEvent) -> bool {
        let before = self.textarea.cursor();
        let edited = self.textarea.input(key);
        if edited {
            self.status = parse_json(&self.text());
        }
        edited || before != self.textarea.cursor()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(code: KeyCode) -> KeyEvent {
        KeyEvent::new(code, KeyModifiers::NONE)
    }

    #[test]
    fn text_field_edits_at_cursor() {
        let mut f = TextField::new("ab");
        assert!(f.handle(key(KeyCode::Left)));
        assert!(f.handle(key(KeyCode::Char('é'))));
        assert_eq!(f.value(), "aéb");
        assert_eq!(f.cursor(), 2);
        assert!(f.handle(key(KeyCode::Backspace)));
        assert!(f.handle(key(KeyCode::Delete)));
        assert_eq!(f.value(), "a");
        assert!(!f.handle(key(KeyCode::Delete)));
        assert!(f.handle(key(KeyCode::Home)));
        assert!(!f.handle(key(KeyCode::Home)));
        assert!(!f.handle(key(KeyCode::Up)));
        assert!(f.handle(KeyEvent::new(KeyCode::Char('u'), KeyModifiers::CONTROL)));
        assert_eq!(f.value(), "");
    }

    #[test]
    fn json_problem_has_line_and_column() {
        assert_eq!(
            parse_json("{\n  \"a\": 1,\n  \"b\" 2\n}"),
            Err(JsonProblem {
                line: 3,
                column: 7,
                message: "expected `:`".into()
            })
        );
        assert!(parse_json("{}").is_ok());
    }

    #[test]
    fn editor_revalidates_on_every_edit() {
        let mut e = JsonEditor::new("{}");
        assert!(e.status.is_ok());
        assert!(e.handle(key(KeyCode::Char('x'))));
        let problem = e.status.clone().unwrap_err();
        assert_eq!((problem.line, problem.column), (1, 1));
        assert!(e.handle(key(KeyCode::Backspace)));
        assert!(e.status.is_ok());
        assert_eq!(e.text(), "{}");
    }
}
