//! What the Files tab's preview pane shows for a blob's first bytes: pretty JSON, text,
//! a decoded image, or a sentence saying why not. Worked out once, when the bytes arrive.

use std::sync::Arc;

use serde_json::Value;

use super::body::{escape, pretty_lines};

/// Bytes read for a text or JSON preview.
pub const TEXT_PREVIEW_BYTES: usize = 64 * 1024;
/// Bytes read for an image preview: a camera snapshot fits; larger images are not shown.
pub const IMAGE_PREVIEW_BYTES: usize = 4 * 1024 * 1024;
/// Decoded images larger than this many pixels a side are not shown (decoding bombs).
const MAX_IMAGE_SIDE: u32 = 8192;

/// How a blob looks from its content type and name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlobKind {
    Json,
    Image,
    Text,
}

pub fn kind_of(content_type: &str, name: &str) -> BlobKind {
    // Device uploads carry no type of their own: the name's extension tells.
    let ct = match content_type.trim() {
        "" | "application/octet-stream" => client::rollout::content_type_for(name),
        given => given,
    }
    .to_ascii_lowercase();
    if ct.contains("json") {
        BlobKind::Json
    } else if ct.starts_with("image/") {
        BlobKind::Image
    } else {
        BlobKind::Text
    }
}

/// Bytes to read for a preview of a blob of this kind.
pub fn preview_bytes(kind: BlobKind) -> usize {
    match kind {
        BlobKind::Image => IMAGE_PREVIEW_BYTES,
        BlobKind::Json | BlobKind::Text => TEXT_PREVIEW_BYTES,
    }
}

/// A decoded image and an id that changes with it (the view caches its rendering by it).
#[derive(Clone, Debug)]
pub struct PreviewImage {
    pub id: u64,
    pub image: Arc<image::DynamicImage>,
}

impl PartialEq for PreviewImage {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum PreviewBody {
    Loading,
    /// Pretty-printed JSON lines, escaped.
    Json(Vec<String>),
    /// Text lines, escaped; `cut` when the blob is longer than what was read.
    Text {
        lines: Vec<String>,
        cut: bool,
    },
    Image(PreviewImage),
    /// Nothing to show; one sentence why.
    Unavailable(String),
}

/// The preview of `head`, the first bytes of a blob of `size` bytes. `image_id` names a
/// decoded image.
pub fn preview_of(kind: BlobKind, head: &[u8], size: u64, image_id: u64) -> PreviewBody {
    let cut = (head.len() as u64) < size;
    match kind {
        BlobKind::Image => {
            if cut {
                return PreviewBody::Unavailable(format!(
                    "the image is larger than {} MiB; d downloads it",
                    IMAGE_PREVIEW_BYTES / (1024 * 1024)
                ));
            }
            match decode_image(head) {
                Ok(image) => PreviewBody::Image(PreviewImage {
                    id: image_id,
                    image: Arc::new(image),
                }),
                Err(e) => PreviewBody::Unavailable(format!("cannot show this image: {e}")),
            }
        }
        BlobKind::Json if !cut => match serde_json::from_slice::<Value>(head) {
            Ok(value) => PreviewBody::Json(pretty_lines(&value)),
            Err(_) => text(head, cut),
        },
        BlobKind::Json | BlobKind::Text => text(head, cut),
    }
}

fn text(head: &[u8], cut: bool) -> PreviewBody {
    let text = String::from_utf8_lossy(head);
    let lines = text
        .lines()
        .map(|l| escape(&l.replace('\t', "    ")).into_owned())
        .collect();
    PreviewBody::Text { lines, cut }
}

fn decode_image(bytes: &[u8]) -> Result<image::DynamicImage, String> {
    let reader = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| e.to_string())?;
    let (w, h) = reader.into_dimensions().map_err(|e| e.to_string())?;
    if w > MAX_IMAGE_SIDE || h > MAX_IMAGE_SIDE {
        return Err(format!("it is {w}x{h} pixels, larger than shown"));
    }
    image::load_from_memory(bytes).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_come_from_the_content_type_then_the_name() {
        assert_eq!(kind_of("application/json", "x.bin"), BlobKind::Json);
        assert_eq!(kind_of("", "cam/reading.JSON"), BlobKind::Json);
        assert_eq!(kind_of("image/png", "snap"), BlobKind::Image);
        assert_eq!(
            kind_of("application/octet-stream", "a.jpeg"),
            BlobKind::Image
        );
        assert_eq!(kind_of("text/plain", "log"), BlobKind::Text);
        assert_eq!(preview_bytes(BlobKind::Json), 64 * 1024);
    }

    #[test]
    fn json_is_pretty_printed_and_text_escaped() {
        let body = preview_of(BlobKind::Json, br#"{"a":[1,2]}"#, 11, 0);
        assert_eq!(
            body,
            PreviewBody::Json(vec![
                "{".into(),
                "  \"a\": [".into(),
                "    1,".into(),
                "    2".into(),
                "  ]".into(),
                "}".into()
            ])
        );
        let PreviewBody::Text { lines, cut } = preview_of(BlobKind::Json, b"{\"a\":", 100, 0)
        else {
            panic!("cut JSON is shown as text");
        };
        assert!(cut);
        assert_eq!(lines, ["{\"a\":"]);
        let PreviewBody::Text { lines, .. } =
            preview_of(BlobKind::Text, b"ok\n\x1b[31mred\xff", 9, 0)
        else {
            panic!("text");
        };
        assert_eq!(lines[0], "ok");
        assert!(!lines[1].contains('\u{1b}'), "{:?}", lines[1]);
        assert!(lines[1].contains('\u{fffd}'));
    }

    #[test]
    fn images_decode_or_say_why_not() {
        let png = include_bytes!("../../assets/capture.png");
        match preview_of(BlobKind::Image, png, png.len() as u64, 7) {
            PreviewBody::Image(img) => {
                assert_eq!(img.id, 7);
                assert!(img.image.width() > 0);
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            preview_of(BlobKind::Image, b"not an image", 12, 0),
            PreviewBody::Unavailable(_)
        ));
        assert!(matches!(
            preview_of(BlobKind::Image, &png[..10], png.len() as u64, 0),
            PreviewBody::Unavailable(_)
        ));
    }
}
