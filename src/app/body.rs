//! Showing untrusted device data: escaping of control characters and escape sequences, and
//! decoding of message bodies as JSON, UTF-8 text or hex, truncated for display with the
//! original size kept. Every view goes through these functions; nothing device-supplied
//! reaches the terminal unescaped.

use std::borrow::Cow;
use std::cell::OnceCell;
use std::fmt::Write as _;

use serde_json::Value;

/// Bodies longer than this are cut for display; the original size is shown.
pub const MAX_DISPLAY_BYTES: usize = 16 * 1024;
/// Longest one-line preview, in characters.
pub const PREVIEW_CHARS: usize = 160;
/// Bytes per hex dump line.
const HEX_WIDTH: usize = 16;

/// True for characters that must not reach the terminal as they are: C0 and C1 controls,
/// DEL, and the bidirectional and zero-width format characters that can disguise text.
fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}')
}

/// One line of untrusted text made safe: `\n`, `\t`, `\r` as two characters, other controls as
/// `\xNN` / `\u{NNNN}`. Borrowed when nothing needed escaping.
pub fn escape(s: &str) -> Cow<'_, str> {
    if !s.chars().any(is_unsafe) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if is_unsafe(c) && (c as u32) < 0x100 => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if is_unsafe(c) => {
                let _ = write!(out, "\\u{{{:04x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// How a body was read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyKind {
    Json,
    Text,
    Binary,
    Empty,
}

impl BodyKind {
    pub fn label(self) -> &'static str {
        match self {
            BodyKind::Json => "json",
            BodyKind::Text => "text",
            BodyKind::Binary => "binary",
            BodyKind::Empty => "empty",
        }
    }
}

/// A body as received (cut to what is kept), with how it reads. Only what every message
/// needs is made when it arrives; display lines, and the parsed JSON for a diff, chart or
/// export, are made from the bytes when asked for: most telemetry is only ever seen as its
/// one-line preview, and a parsed `Value` per row costs many small allocations.
#[derive(Clone, Debug, PartialEq)]
pub struct DecodedBody {
    pub kind: BodyKind,
    /// The body's first bytes (all of it unless cut to the caller's limit).
    bytes: Vec<u8>,
    /// The preview when it is not the body's own text: JSON with line breaks, compacted.
    compact: Option<Box<str>>,
    /// Escaped display lines: pretty JSON, text lines, or a hex dump; made on first use.
    lines: OnceCell<Vec<String>>,
    /// Size of the body as received, in bytes.
    pub original_len: usize,
    /// True when `lines` show only the first `MAX_DISPLAY_BYTES`.
    pub truncated: bool,
}

impl DecodedBody {
    /// The bytes kept.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The part shown (at most `MAX_DISPLAY_BYTES`).
    fn shown(&self) -> &[u8] {
        &self.bytes[..self.bytes.len().min(MAX_DISPLAY_BYTES)]
    }

    /// The parsed JSON, parsed again on each call (a diff, the chart, export).
    pub fn json(&self) -> Option<Value> {
        match self.kind {
            BodyKind::Json => serde_json::from_slice(&self.bytes).ok(),
            _ => None,
        }
    }

    /// One escaped line for lists; borrowed from the body when it needs no change.
    pub fn preview(&self) -> Cow<'_, str> {
        match self.kind {
            BodyKind::Empty => Cow::Borrowed(""),
            BodyKind::Json => match &self.compact {
                Some(p) => Cow::Borrowed(p),
                None => preview_cow(std::str::from_utf8(&self.bytes).unwrap_or("").trim()),
            },
            BodyKind::Text => preview_cow(utf8_prefix(self.shown(), self.truncated).unwrap_or("")),
            BodyKind::Binary => Cow::Owned(preview_of(&format!(
                "0x{}",
                hex(&self.bytes[..self.bytes.len().min(64)])
            ))),
        }
    }

    /// The display lines (made on first use).
    pub fn lines(&self) -> &[String] {
        self.lines.get_or_init(|| match self.kind {
            BodyKind::Empty => Vec::new(),
            BodyKind::Json => self.json().as_ref().map(pretty_lines).unwrap_or_default(),
            BodyKind::Text => utf8_prefix(self.shown(), self.truncated)
                .unwrap_or("")
                .split('\n')
                .map(|l| escape(l).into_owned())
                .collect(),
            BodyKind::Binary => hex_dump(self.shown()),
        })
    }

    /// "1.2 KiB" or "1.2 KiB, truncated" for the detail header.
    pub fn size_label(&self) -> String {
        let size = human_size(self.original_len);
        if self.truncated {
            format!("{size}, showing first {}", human_size(MAX_DISPLAY_BYTES))
        } else {
            size
        }
    }
}

/// Bytes as B / KiB / MiB with one decimal.
pub fn human_size(n: usize) -> String {
    if n < 1024 {
        format!("{n} B")
    } else if n < 1024 * 1024 {
        format!("{:.1} KiB", n as f64 / 1024.0)
    } else {
        format!("{:.1} MiB", n as f64 / (1024.0 * 1024.0))
    }
}

/// `decode_with` checking JSON by parsing it.
pub fn decode(body: Vec<u8>, keep: usize) -> DecodedBody {
    decode_with(body, keep, |b| serde_json::from_slice::<Value>(b).is_ok())
}

/// JSON when the whole body parses (`json` checks it as serde_json's `Value` would, and
/// may read it on the way, e.g. for numbers), else UTF-8 text, else hex; never a list of
/// numbers. Bodies over `MAX_DISPLAY_BYTES` are shown cut, as text or hex. The first
/// `keep` bytes are kept (at least `MAX_DISPLAY_BYTES`).
pub fn decode_with(
    mut body: Vec<u8>,
    keep: usize,
    json: impl FnOnce(&[u8]) -> bool,
) -> DecodedBody {
    let original_len = body.len();
    let truncated = body.len() > MAX_DISPLAY_BYTES;
    let kind = if body.is_empty() {
        BodyKind::Empty
    } else if !truncated && json(&body) {
        BodyKind::Json
    } else if utf8_prefix(&body[..body.len().min(MAX_DISPLAY_BYTES)], truncated).is_some() {
        BodyKind::Text
    } else {
        BodyKind::Binary
    };
    // A JSON body without line breaks or other control characters previews as sent, which
    // spares re-serializing every message; others (pretty-printed JSON) compactly.
    let compact = (kind == BodyKind::Json && body.iter().any(|&b| b < 0x20))
        .then(|| serde_json::from_slice::<Value>(&body).ok())
        .flatten()
        .map(|v| preview_of(&v.to_string()).into_boxed_str());
    if body.len() > keep.max(MAX_DISPLAY_BYTES) {
        body.truncate(keep.max(MAX_DISPLAY_BYTES));
        body.shrink_to_fit();
    }
    DecodedBody {
        kind,
        bytes: body,
        compact,
        lines: OnceCell::new(),
        original_len,
        truncated,
    }
}

/// The text if `bytes` is UTF-8; when cut, a character split at the end is tolerated.
fn utf8_prefix(bytes: &[u8], cut: bool) -> Option<&str> {
    match std::str::from_utf8(bytes) {
        Ok(s) => Some(s),
        Err(e) if cut && e.error_len().is_none() => {
            std::str::from_utf8(&bytes[..e.valid_up_to()]).ok()
        }
        Err(_) => None,
    }
}

/// `preview_of`, borrowing `s` when it is short and safe as it is.
fn preview_cow(s: &str) -> Cow<'_, str> {
    if s.len() <= PREVIEW_CHARS || s.char_indices().nth(PREVIEW_CHARS).is_none() {
        escape(s)
    } else {
        Cow::Owned(preview_of(s))
    }
}

/// First `PREVIEW_CHARS` characters on one escaped line, with `…` when cut.
pub fn preview_of(s: &str) -> String {
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i == PREVIEW_CHARS {
            out.push('…');
            break;
        }
        out.push(c);
    }
    escape(&out).into_owned()
}

/// Pretty JSON split into lines. serde_json escapes control characters inside strings and
/// keys, so the lines are safe; `escape` runs anyway as a guard for format characters.
pub fn pretty_lines(value: &Value) -> Vec<String> {
    let text = serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string());
    text.lines().map(|l| escape(l).into_owned()).collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// `0000  01 02 ..  |..|` lines.
fn hex_dump(bytes: &[u8]) -> Vec<String> {
    bytes
        .chunks(HEX_WIDTH)
        .enumerate()
        .map(|(i, chunk)| {
            let mut line = format!("{:04x} ", i * HEX_WIDTH);
            for b in chunk {
                let _ = write!(line, " {b:02x}");
            }
            for _ in chunk.len()..HEX_WIDTH {
                line.push_str("   ");
            }
            line.push_str("  |");
            line.extend(chunk.iter().map(|&b| {
                if b.is_ascii_graphic() || b == b' ' {
                    b as char
                } else {
                    '.'
                }
            }));
            line.push('|');
            line
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dec(body: &[u8]) -> DecodedBody {
        decode(body.to_vec(), MAX_DISPLAY_BYTES)
    }

    #[test]
    fn escapes_controls_and_format_chars() {
        assert!(matches!(escape("plain ü"), Cow::Borrowed(_)));
        assert_eq!(escape("a\x1b[31mred"), "a\\x1b[31mred");
        assert_eq!(escape("l1\nl2\tx\r"), "l1\\nl2\\tx\\r");
        assert_eq!(escape("\u{7f}\u{9b}"), "\\x7f\\x9b");
        assert_eq!(escape("abc\u{202e}fed"), "abc\\u{202e}fed");
        assert_eq!(escape("\u{7}title\u{0}"), "\\x07title\\x00");
    }

    #[test]
    fn json_is_pretty_and_previewed_as_sent_or_compactly() {
        let b = dec(br#"{"t": 21.5, "s": "x"}"#);
        assert_eq!(b.kind, BodyKind::Json);
        assert_eq!(b.preview(), r#"{"t": 21.5, "s": "x"}"#, "one line: as sent");
        let multi = dec(b"{\n  \"t\": 21.5\n}\n");
        assert_eq!(multi.preview(), r#"{"t":21.5}"#, "line breaks: compacted");
        assert_eq!(b.lines(), ["{", r#"  "t": 21.5,"#, r#"  "s": "x""#, "}"]);
        assert!(!b.truncated);
        assert_eq!(b.original_len, 21);
    }

    #[test]
    fn json_string_escapes_stay_escaped() {
        let b = dec(b"{\"k\\u001b\": \"\\u001b]0;pwn\\u0007\"}");
        assert_eq!(b.kind, BodyKind::Json);
        assert!(b.lines().iter().all(|l| !l.chars().any(char::is_control)));
        assert!(!b.preview().chars().any(char::is_control));
    }

    #[test]
    fn text_lines_are_escaped() {
        let b = dec(b"hello\nwor\x1bld");
        assert_eq!(b.kind, BodyKind::Text);
        assert_eq!(b.lines(), ["hello", "wor\\x1bld"]);
        assert_eq!(b.preview(), "hello\\nwor\\x1bld");
    }

    #[test]
    fn binary_is_hex_never_numbers() {
        let b = dec(&[0xff, 0x00, 0x41, 0x80]);
        assert_eq!(b.kind, BodyKind::Binary);
        assert_eq!(b.preview(), "0xff004180");
        assert_eq!(b.lines().len(), 1);
        assert!(b.lines()[0].starts_with("0000  ff 00 41 80"));
        assert!(b.lines()[0].ends_with("|..A.|"));
    }

    #[test]
    fn oversized_bodies_are_cut_with_size_kept() {
        let big = format!("[{}1]", "1,".repeat(MAX_DISPLAY_BYTES));
        let b = dec(big.as_bytes());
        assert!(b.truncated);
        assert_eq!(b.kind, BodyKind::Text);
        assert_eq!(b.original_len, big.len());
        assert!(b.size_label().contains("showing first 16.0 KiB"));
        assert!(b.preview().ends_with('…'));
        // A multi-byte character split by the cut still reads as text.
        let mut s = "a".repeat(MAX_DISPLAY_BYTES - 1);
        s.push('é');
        assert_eq!(dec(s.as_bytes()).kind, BodyKind::Text);
    }

    #[test]
    fn empty_and_sizes() {
        assert_eq!(dec(b"").kind, BodyKind::Empty);
        assert_eq!(human_size(10), "10 B");
        assert_eq!(human_size(1536), "1.5 KiB");
        assert_eq!(human_size(3 * 1024 * 1024), "3.0 MiB");
    }
}
