//! What the C2D and Methods forms share while they are edited: Esc leaves (the form
//! keeps its contents), Tab / Shift-Tab move between fields in a fixed order, Enter
//! moves on from a one-line field, Ctrl-s submits. Each form says only what its
//! fields are and what a key does to the focused one.

use ratatui::crossterm::event::{KeyCode, KeyEvent};

use super::Action;

/// A form with a focused field.
pub trait Form {
    /// Moves the focus `by` fields, wrapping around.
    fn step_focus(&mut self, by: isize);
    /// Whether the focused field uses Enter itself (a multi-line editor, a toggle).
    fn takes_enter(&self) -> bool;
    /// Gives the focused field a key; whether it changed anything.
    fn input(&mut self, key: KeyEvent) -> bool;
}

/// What an action does to a form being edited.
#[derive(Debug, PartialEq, Eq)]
pub enum Edit {
    /// Handled here; whether anything changed.
    Done(bool),
    Submit,
    Leave,
    /// Not a form action: the tab may handle it.
    Ignored,
}

pub fn edit(form: &mut impl Form, action: &Action) -> Edit {
    match action {
        Action::Back => Edit::Leave,
        Action::Submit => Edit::Submit,
        Action::NextField => {
            form.step_focus(1);
            Edit::Done(true)
        }
        Action::PrevField => {
            form.step_focus(-1);
            Edit::Done(true)
        }
        Action::Input(key) if key.code == KeyCode::Enter && !form.takes_enter() => {
            form.step_focus(1);
            Edit::Done(true)
        }
        Action::Input(key) => Edit::Done(form.input(*key)),
        _ => Edit::Ignored,
    }
}

/// The field `by` places from `current` in `order`, wrapping around.
pub fn cycle<T: Copy + PartialEq>(order: &[T], current: T, by: isize) -> T {
    let i = order.iter().position(|f| *f == current).unwrap_or(0) as isize;
    order[(i + by).rem_euclid(order.len() as isize) as usize]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct TwoFields {
        focus: usize,
        typed: String,
    }

    impl Form for TwoFields {
        fn step_focus(&mut self, by: isize) {
            self.focus = cycle(&[0, 1], self.focus, by);
        }
        fn takes_enter(&self) -> bool {
            self.focus == 1
        }
        fn input(&mut self, key: KeyEvent) -> bool {
            match key.code {
                KeyCode::Char(c) => {
                    self.typed.push(c);
                    true
                }
                KeyCode::Enter => {
                    self.typed.push('\n');
                    true
                }
                _ => false,
            }
        }
    }

    #[test]
    fn shared_keys() {
        let mut f = TwoFields::default();
        let key = |c| Action::Input(KeyEvent::from(c));
        assert_eq!(edit(&mut f, &key(KeyCode::Char('a'))), Edit::Done(true));
        // Enter leaves a one-line field for the next one, which takes Enter itself.
        assert_eq!(edit(&mut f, &key(KeyCode::Enter)), Edit::Done(true));
        assert_eq!(f.focus, 1);
        assert_eq!(edit(&mut f, &key(KeyCode::Enter)), Edit::Done(true));
        assert_eq!(f.typed, "a\n");
        assert_eq!(edit(&mut f, &Action::NextField), Edit::Done(true));
        assert_eq!(f.focus, 0);
        assert_eq!(edit(&mut f, &Action::PrevField), Edit::Done(true));
        assert_eq!(f.focus, 1);
        assert_eq!(edit(&mut f, &key(KeyCode::F(5))), Edit::Done(false));
        assert_eq!(edit(&mut f, &Action::Submit), Edit::Submit);
        assert_eq!(edit(&mut f, &Action::Back), Edit::Leave);
        assert_eq!(edit(&mut f, &Action::Up), Edit::Ignored);
        assert_eq!(cycle(&['a', 'b', 'c'], 'a', -1), 'c');
    }
}
