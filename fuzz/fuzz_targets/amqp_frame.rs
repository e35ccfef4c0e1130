//! AMQP frames as the hub receives them: the frame scanner never panics, gives
//! the same verdict however the bytes are split, and whatever it accepts the
//! recursive AMQP decoder can decode (or refuse) without overflowing its stack.
#![no_main]

use hubtui::iothub::amqp_frame::{FrameScanner, Limits};
use libfuzzer_sys::fuzz_target;

const LIMITS: Limits = Limits {
    max_frame: 256 * 1024,
    channel_max: 255,
    handle_max: 63,
};

/// The bodies of the whole frames in `data` (protocol headers skipped).
fn bodies(mut data: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    while data.len() >= 8 {
        if &data[..4] == b"AMQP" {
            data = &data[8..];
            continue;
        }
        let size = u32::from_be_bytes([data[0], data[1], data[2], data[3]]) as usize;
        let doff = usize::from(data[4]) * 4;
        if size < 8 || doff < 8 || doff > size || size > data.len() {
            break;
        }
        out.push(&data[doff..size]);
        data = &data[size..];
    }
    out
}

fuzz_target!(|data: &[u8]| {
    // The scanner may rewrite bytes in place (string property keys to symbols): every
    // split of the input must give the same bytes and the same answer.
    let mut whole_bytes = data.to_vec();
    let whole = FrameScanner::new(LIMITS).scan(&mut whole_bytes);
    let cut = data.first().map_or(0, |b| usize::from(*b) % (data.len() + 1));
    let mut split = FrameScanner::new(LIMITS);
    let mut split_bytes = data.to_vec();
    let (head, tail) = split_bytes.split_at_mut(cut);
    let parts = split.scan(head).and_then(|()| split.scan(tail));
    assert_eq!(whole, parts);
    if whole.is_ok() {
        assert_eq!(whole_bytes, split_bytes);
    }
    if whole.is_ok() {
        for body in bodies(data) {
            let _ = serde_amqp::from_slice::<serde_amqp::Value>(body);
        }
    }
});
