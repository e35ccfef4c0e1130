//! Images in the terminal through ratatui-image: the graphics protocol (kitty, iTerm2,
//! sixel) is detected once at start-up, Unicode half-blocks otherwise and under tests.
//! Everything is drawn through ratatui's buffer, never written to the terminal directly.
//!
//! Detection reads the environment and the cell size (TIOCGWINSZ), and does not query the
//! terminal: ratatui-image's stdin query leaves a thread reading stdin until the terminal
//! answers, which would swallow the user's keys on a terminal that never does.

use std::cell::RefCell;
use std::sync::OnceLock;

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui_image::picker::{Picker, ProtocolType};
use ratatui_image::protocol::Protocol;
use ratatui_image::{Image, Resize};

use crate::app::blobpreview::PreviewImage;

static PICKER: OnceLock<Picker> = OnceLock::new();

/// The graphics protocol the terminal named by these environment variables speaks.
pub fn protocol_from_env(var: impl Fn(&str) -> Option<String>) -> ProtocolType {
    let is = |name: &str, value: &str| var(name).is_some_and(|v| v.eq_ignore_ascii_case(value));
    let term = var("TERM").unwrap_or_default().to_ascii_lowercase();
    let program = var("TERM_PROGRAM").unwrap_or_default().to_ascii_lowercase();
    // Through tmux the graphics sequences would need passthrough; half-blocks always work.
    if var("TMUX").is_some() || term.starts_with("screen") || term.starts_with("tmux") {
        return ProtocolType::Halfblocks;
    }
    if term == "xterm-kitty" || var("KITTY_WINDOW_ID").is_some() || program == "ghostty" {
        ProtocolType::Kitty
    } else if program == "iterm.app" || program == "wezterm" || is("LC_TERMINAL", "iTerm2") {
        ProtocolType::Iterm2
    } else if term.contains("sixel") || matches!(program.as_str(), "foot" | "mlterm" | "contour") {
        ProtocolType::Sixel
    } else {
        ProtocolType::Halfblocks
    }
}

/// Picks the protocol from the environment and the cell size from the terminal; call
/// once at start-up. Half-blocks when the terminal names no graphics protocol or its
/// cell size in pixels is unknown.
pub fn detect_protocol() {
    let protocol = protocol_from_env(|name| std::env::var(name).ok());
    let cell = ratatui::crossterm::terminal::window_size()
        .ok()
        .filter(|w| w.width > 0 && w.height > 0 && w.columns > 0 && w.rows > 0)
        .map(|w| (w.width / w.columns, w.height / w.rows));
    let picker = match (protocol, cell) {
        (ProtocolType::Halfblocks, _) | (_, None) => Picker::halfblocks(),
        (protocol, Some(font_size)) => {
            // The cell size is measured here instead of queried (see the module comment).
            #[allow(deprecated)]
            let mut picker = Picker::from_fontsize(font_size);
            picker.set_protocol_type(protocol);
            picker
        }
    };
    tracing::info!(protocol = ?picker.protocol_type(), "image protocol");
    let _ = PICKER.set(picker);
}

fn picker() -> &'static Picker {
    PICKER.get_or_init(Picker::halfblocks)
}

thread_local! {
    /// The last image encoded, by (image id, area): encoding for kitty or sixel costs far
    /// more than a frame, and the preview is redrawn whenever anything else changes.
    static ENCODED: RefCell<Option<(u64, Rect, Protocol)>> = const { RefCell::new(None) };
}

/// The part of `area` an image of `w`x`h` pixels fills when scaled to fit with its
/// aspect ratio kept, for cells of `cell` pixels.
pub fn fit(area: Rect, (w, h): (u32, u32), cell: (u16, u16)) -> Rect {
    let (cw, ch) = (f64::from(cell.0.max(1)), f64::from(cell.1.max(1)));
    let (w, h) = (f64::from(w.max(1)), f64::from(h.max(1)));
    let cols = f64::from(area.width);
    let rows = cols * cw * h / (w * ch);
    let (cols, rows) = if rows <= f64::from(area.height) {
        (cols, rows.ceil().max(1.0))
    } else {
        let rows = f64::from(area.height);
        ((rows * ch * w / (h * cw)).floor().max(1.0), rows)
    };
    Rect {
        width: (cols as u16).min(area.width),
        height: (rows as u16).min(area.height),
        ..area
    }
}

/// Draws `image` scaled to fit `area`; returns false when it cannot be encoded.
pub fn render(frame: &mut Frame, area: Rect, image: &PreviewImage) -> bool {
    if area.width == 0 || area.height == 0 {
        return true;
    }
    let area = fit(
        area,
        (image.image.width(), image.image.height()),
        picker().font_size(),
    );
    ENCODED.with(|cell| {
        let mut cached = cell.borrow_mut();
        let fresh = !matches!(&*cached, Some((id, at, _)) if *id == image.id && *at == area);
        if fresh {
            *cached = picker()
                .new_protocol(
                    (*image.image).clone(),
                    area,
                    Resize::Scale(Some(ratatui_image::FilterType::Triangle)),
                )
                .ok()
                .map(|p| (image.id, area, p));
        }
        match &*cached {
            Some((_, _, protocol)) => {
                frame.render_widget(Image::new(protocol), area);
                true
            }
            None => false,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        }
    }

    #[test]
    fn images_keep_their_aspect_ratio() {
        let area = Rect::new(2, 3, 58, 33);
        // 3:2 on cells twice as tall as wide: 58 columns, 20 rows (19.3 rounded up).
        assert_eq!(fit(area, (96, 64), (10, 20)), Rect::new(2, 3, 58, 20));
        // Too tall for the area: as high as it goes, narrower.
        assert_eq!(fit(area, (64, 640), (10, 20)), Rect::new(2, 3, 6, 33));
    }

    #[test]
    fn the_protocol_follows_the_terminal() {
        let cases: &[(&[(&str, &str)], ProtocolType)] = &[
            (&[("TERM", "xterm-kitty")], ProtocolType::Kitty),
            (
                &[("TERM", "xterm-256color"), ("KITTY_WINDOW_ID", "1")],
                ProtocolType::Kitty,
            ),
            (&[("TERM_PROGRAM", "iTerm.app")], ProtocolType::Iterm2),
            (&[("TERM_PROGRAM", "WezTerm")], ProtocolType::Iterm2),
            (
                &[("TERM", "foot"), ("TERM_PROGRAM", "foot")],
                ProtocolType::Sixel,
            ),
            (&[("TERM", "xterm-256color")], ProtocolType::Halfblocks),
            (
                &[("TERM", "xterm-kitty"), ("TMUX", "/tmp/t,1,0")],
                ProtocolType::Halfblocks,
            ),
            (&[], ProtocolType::Halfblocks),
        ];
        for (vars, want) in cases {
            assert_eq!(protocol_from_env(env(vars)), *want, "{vars:?}");
        }
    }
}
