//! Images in the terminal through ratatui-image: the graphics protocol (kitty, iTerm2,
//! sixel) is detected once at start-up, Unicode half-blocks otherwise and under tests.
//! Everything is drawn through ratatui's buffer, never written to the terminal directly.

use std::cell::RefCell;
use std::sync::OnceLock;

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui_image::picker::Picker;
use ratatui_image::protocol::Protocol;
use ratatui_image::{Image, Resize};

use crate::app::blobpreview::PreviewImage;

static PICKER: OnceLock<Picker> = OnceLock::new();

/// Asks the terminal which graphics protocol it speaks (and its cell size); call once,
/// after raw mode is on and before input is read. Half-blocks when it does not answer.
pub fn detect_protocol() {
    let picker = Picker::from_query_stdio().unwrap_or_else(|e| {
        tracing::info!(error = %e, "no terminal graphics protocol; images as half-blocks");
        Picker::halfblocks()
    });
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

/// Draws `image` scaled to fit `area`; returns false when it cannot be encoded.
pub fn render(frame: &mut Frame, area: Rect, image: &PreviewImage) -> bool {
    if area.width == 0 || area.height == 0 {
        return true;
    }
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
