//! A scroll offset for a view of lines: moved by the navigation actions and kept inside the
//! content, so a view never scrolls into emptiness; the renderer also stops at the last full
//! page, since only it knows the view's height.

use super::Action;

/// Lines moved by PageUp / PageDown.
pub const PAGE: usize = 10;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Scroll(usize);

impl Scroll {
    /// Moves for a navigation action over `len` lines; true when the offset changed.
    /// Other actions leave it alone.
    pub fn apply(&mut self, action: &Action, len: usize) -> bool {
        let last = len.saturating_sub(1);
        let before = self.0;
        // From inside the content, so a key after it shrank moves at once.
        let from = before.min(last);
        self.0 = match action {
            Action::Down => from + 1,
            Action::Up => from.saturating_sub(1),
            Action::PageDown => from + PAGE,
            Action::PageUp => from.saturating_sub(PAGE),
            Action::Top => 0,
            Action::Bottom => last,
            _ => return false,
        }
        .min(last);
        self.0 != before
    }

    /// The first line to draw in a view `height` lines tall: never past the last full page.
    pub fn first_visible(self, len: usize, height: usize) -> usize {
        self.0.min(len.saturating_sub(height))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moves_inside_the_content() {
        let mut s = Scroll::default();
        let steps: &[(Action, usize, bool)] = &[
            (Action::Up, 0, false),
            (Action::Down, 1, true),
            (Action::PageDown, 11, true),
            (Action::PageDown, 19, true),
            (Action::Down, 19, false),
            (Action::PageUp, 9, true),
            (Action::Top, 0, true),
            (Action::Bottom, 19, true),
            (Action::Quit, 19, false),
        ];
        for (action, want, moved) in steps {
            assert_eq!(s.apply(action, 20), *moved, "{action:?}");
            assert_eq!(s, Scroll(*want), "{action:?}");
        }
        // The content shrank (a new twin arrived): the next key lands inside it again.
        assert!(s.apply(&Action::Up, 5));
        assert_eq!(s, Scroll(3));
        assert!(!Scroll::default().apply(&Action::Down, 0));
    }

    #[test]
    fn the_view_stops_at_the_last_full_page() {
        assert_eq!(Scroll(19).first_visible(20, 8), 12);
        assert_eq!(Scroll(3).first_visible(20, 8), 3);
        assert_eq!(Scroll(5).first_visible(4, 8), 0);
    }
}
