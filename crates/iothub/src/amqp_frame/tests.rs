use super::*;
use crate::test_rng::XorShift;

const LIMITS: Limits = Limits {
    max_frame: 256 * 1024,
    channel_max: 15,
    handle_max: 63,
};

/// A frame on `channel` with `body` (performative and payload).
fn frame(channel: u16, body: &[u8]) -> Vec<u8> {
    let mut f = ((body.len() + 8) as u32).to_be_bytes().to_vec();
    f.extend_from_slice(&[2, 0]);
    f.extend_from_slice(&channel.to_be_bytes());
    f.extend_from_slice(body);
    f
}

/// `items` as a list32 (so any length fits).
fn list(items: &[u8], count: u32) -> Vec<u8> {
    let mut l = vec![0xd0];
    l.extend_from_slice(&(items.len() as u32 + 4).to_be_bytes());
    l.extend_from_slice(&count.to_be_bytes());
    l.extend_from_slice(items);
    l
}

/// A performative: descriptor code and its fields.
fn performative(code: u8, fields: &[u8], count: u32) -> Vec<u8> {
    let mut p = vec![0x00, 0x53, code];
    p.extend_from_slice(&list(fields, count));
    p
}

/// Open with a container id and a properties map {"k": "v"}.
fn open() -> Vec<u8> {
    let mut fields = vec![
        0xa1, 3, b'h', b'u', b'b', 0x40, 0x40, 0x40, 0x40, 0x40, 0x40, 0x40, 0x40,
    ];
    fields.extend_from_slice(&[0xc1, 7, 2, 0xa3, 1, b'k', 0xa1, 1, b'v']);
    performative(0x10, &fields, 10)
}

/// A transfer on `handle` whose payload follows; `more` says another frame continues it.
fn transfer(handle: u8, more: bool, payload: &[u8]) -> Vec<u8> {
    let more = if more { 0x41 } else { 0x42 };
    let fields = [0x52, handle, 0x43, 0xa0, 1, 7, 0x43, 0x42, more];
    let mut t = performative(0x14, &fields, 6);
    t.extend_from_slice(payload);
    t
}

/// A value of `depth` described values around a null: 3 bytes a level.
fn described_bomb(depth: usize) -> Vec<u8> {
    let mut v = [0x00, 0x53, 0x01].repeat(depth);
    v.push(0x40);
    v
}

/// `depth` nested lists around a null.
fn nested_lists(depth: usize) -> Vec<u8> {
    (0..depth).fold(vec![0x40], |inner, _| list(&inner, 1))
}

/// An amqp-value section holding `value`.
fn amqp_value(value: &[u8]) -> Vec<u8> {
    let mut v = vec![0x00, 0x53, 0x77];
    v.extend_from_slice(value);
    v
}

fn stream(frames: &[Vec<u8>]) -> Vec<u8> {
    let mut s = b"AMQP\x00\x01\x00\x00".to_vec();
    for f in frames {
        s.extend_from_slice(f);
    }
    s
}

/// Feeds `chunks` as the connection's reader does, held bytes given again in front
/// of the next chunk; returns what the engine reads.
fn pass<'a>(
    s: &mut FrameScanner,
    chunks: impl IntoIterator<Item = &'a [u8]>,
) -> Result<Vec<u8>, FrameError> {
    let mut out = Vec::new();
    let mut held = Vec::new();
    for chunk in chunks {
        held.extend_from_slice(chunk);
        let mut buf = std::mem::take(&mut held);
        let r = s.scan(&mut buf)?;
        out.extend_from_slice(&buf[..r.kept]);
        held = buf[buf.len() - r.held..].to_vec();
    }
    Ok(out)
}

fn scan(bytes: &[u8]) -> Result<(), FrameError> {
    pass(&mut FrameScanner::new(LIMITS), [bytes]).map(drop)
}

/// The same bytes fed one at a time.
fn scan_bytewise(bytes: &[u8]) -> Result<(), FrameError> {
    pass(&mut FrameScanner::new(LIMITS), bytes.chunks(1)).map(drop)
}

#[test]
fn ordinary_frames_pass_whole_and_byte_by_byte() {
    let body = amqp_value(&nested_lists(20));
    let s = stream(&[
        frame(0, &open()),
        frame(0, &[]), // heartbeat
        frame(
            1,
            &performative(0x11, &[0x40, 0x43, 0x70, 0, 0, 0, 9, 0x70, 0, 0, 0, 9], 4),
        ),
        frame(1, &transfer(0, false, &body)),
    ]);
    assert_eq!(scan(&s), Ok(()));
    assert_eq!(scan_bytewise(&s), Ok(()));
}

#[test]
fn sasl_header_frames_then_amqp_header() {
    let mut s = b"AMQP\x03\x01\x00\x00".to_vec();
    // sasl-init: mechanism PLAIN, initial response
    let init = performative(
        0x41,
        &[0xa3, 5, b'P', b'L', b'A', b'I', b'N', 0xa0, 2, 0, b'x'],
        2,
    );
    let mut f = frame(0, &init);
    f[5] = 1; // SASL frame type
    s.extend_from_slice(&f);
    s.extend_from_slice(&stream(&[frame(0, &open())]));
    assert_eq!(scan(&s), Ok(()));
}

#[test]
fn values_nested_past_the_limit_are_refused_wherever_they_are() {
    let deep = described_bomb(5000);
    // in a performative's field
    let attach = performative(0x12, &deep, 1);
    assert_eq!(
        scan(&stream(&[frame(0, &attach)])),
        Err(FrameError::TooDeep)
    );
    // in a message body, fed byte by byte
    let t = transfer(0, false, &amqp_value(&nested_lists(3000)));
    assert_eq!(
        scan_bytewise(&stream(&[frame(1, &t)])),
        Err(FrameError::TooDeep)
    );
    // arrays of arrays: each element brings its own element constructor
    let mut arrays = vec![0x40];
    for _ in 0..200 {
        let mut a = vec![0xf0];
        a.extend_from_slice(&(arrays.len() as u32 + 5).to_be_bytes());
        a.extend_from_slice(&1u32.to_be_bytes());
        a.push(0xf0);
        a.extend_from_slice(&arrays[1..]);
        arrays = a;
    }
    assert_eq!(
        scan(&stream(&[frame(0, &performative(0x10, &arrays, 1))])),
        Err(FrameError::TooDeep)
    );
    // a map value
    let mut map = vec![0xc1, 0xff, 2, 0xa1, 1, b'k'];
    map.extend_from_slice(&described_bomb(200));
    assert_eq!(
        scan(&stream(&[frame(0, &performative(0x13, &map, 1))])),
        Err(FrameError::TooDeep)
    );
}

#[test]
fn depth_up_to_the_limit_passes() {
    // The amqp-value section (1) and its lists reach the limit exactly.
    let ok = transfer(0, false, &amqp_value(&nested_lists(MAX_DEPTH - 1)));
    assert_eq!(scan(&stream(&[frame(0, &ok)])), Ok(()));
    let over = transfer(0, false, &amqp_value(&nested_lists(MAX_DEPTH)));
    assert_eq!(scan(&stream(&[frame(0, &over)])), Err(FrameError::TooDeep));
}

#[test]
fn a_deep_body_split_over_transfers_is_seen_whole_even_when_interleaved() {
    let body = amqp_value(&nested_lists(100));
    let (a, b) = body.split_at(body.len() / 2);
    // Another link's shallow delivery between the halves must not reset the count.
    let other = transfer(1, false, &amqp_value(&[0x40]));
    let s = stream(&[
        frame(0, &transfer(0, true, a)),
        frame(0, &other),
        frame(0, &transfer(0, false, b)),
    ]);
    assert_eq!(scan(&s), Ok(()));
    let deep = amqp_value(&nested_lists(200));
    let (a, b) = deep.split_at(deep.len() / 2);
    let s = stream(&[
        frame(0, &transfer(0, true, a)),
        frame(0, &other),
        frame(0, &transfer(0, true, b)),
    ]);
    assert_eq!(scan(&s), Err(FrameError::TooDeep));
}

#[test]
fn finished_deliveries_release_their_state() {
    let mut s = FrameScanner::new(LIMITS);
    s.scan(&mut b"AMQP\x00\x01\x00\x00".to_owned()).unwrap();
    for handle in 0..=255u8 {
        let part = amqp_value(&[0xa0, 1]);
        s.scan(&mut frame(0, &transfer(handle, true, &part)))
            .unwrap();
        s.scan(&mut frame(0, &transfer(handle, false, &[7])))
            .unwrap();
    }
    assert!(s.partial.is_empty());
    // Too many left open at once is refused.
    let r =
        (0..=255u8).try_for_each(|h| s.scan(&mut frame(0, &transfer(h, true, &[0x40]))).map(drop));
    assert_eq!(r, Err(FrameError::TooManyDeliveries));
    assert_eq!(r.unwrap_err().condition(), "amqp:resource-limit-exceeded");
}

#[test]
fn bad_frame_headers_are_framing_errors() {
    let tiny = [0, 0, 0, 4, 2, 0, 0, 0];
    let e = scan(&stream(&[tiny.to_vec()])).unwrap_err();
    assert_eq!(e, FrameError::FrameTooSmall(4));
    assert_eq!(e.condition(), "amqp:connection:framing-error");
    let huge = [0x00, 0x10, 0, 0, 2, 0, 0, 0];
    assert!(matches!(
        scan(&stream(&[huge.to_vec()])),
        Err(FrameError::FrameTooLarge { .. })
    ));
    let doff = [0, 0, 0, 8, 1, 0, 0, 0];
    assert_eq!(
        scan(&stream(&[doff.to_vec()])),
        Err(FrameError::BadDataOffset(1))
    );
}

#[test]
fn malformed_values_are_decode_errors() {
    let bad = frame(0, &[0x00, 0x53, 0x10, 0x1f]);
    let e = scan(&stream(&[bad])).unwrap_err();
    assert_eq!(e, FrameError::BadConstructor(0x1f));
    assert_eq!(e.condition(), "amqp:decode-error");
    let count = frame(
        0,
        &[0x00, 0x53, 0x10, 0xd0, 0, 0, 0, 4, 0xff, 0xff, 0xff, 0xff],
    );
    assert!(matches!(
        scan(&stream(&[count])),
        Err(FrameError::CountOverSize { .. })
    ));
    let symbolic = frame(0, &[0x00, 0xa3, 1, b'x', 0x45]);
    assert_eq!(
        scan(&stream(&[symbolic])),
        Err(FrameError::PerformativeDescriptor)
    );
    let short = frame(0, &[0x00, 0x53, 0x10, 0xc0, 5, 2]);
    assert_eq!(
        scan(&stream(&[short])),
        Err(FrameError::TruncatedPerformative)
    );
}

#[test]
fn mutated_streams_never_panic_and_do_not_depend_on_how_they_are_split() {
    let seeds = [
        stream(&[frame(0, &open())]),
        stream(&[frame(
            3,
            &transfer(2, false, &amqp_value(&nested_lists(30))),
        )]),
        stream(&[frame(0, &performative(0x12, &described_bomb(40), 1))]),
    ];
    let alphabet: Vec<u8> = vec![
        0x00, 0x40, 0x45, 0x53, 0xa1, 0xc0, 0xd1, 0xe0, 0xf0, 0xff, 8,
    ];
    let mut rng = XorShift(0x5eed_a9c9_0000_0001);
    for _ in 0..2000 {
        let input = rng.mutate_bytes(&seeds, &alphabet, 6);
        let whole = pass(&mut FrameScanner::new(LIMITS), [input.as_slice()]);
        let cut = rng.below(input.len() + 1);
        let (head, tail) = input.split_at(cut);
        let split = pass(&mut FrameScanner::new(LIMITS), [head, tail]);
        assert_eq!(whole, split, "{input:02x?} cut at {cut}");
    }
}

#[test]
fn string_keys_of_performative_properties_become_symbols() {
    // Open with properties {"k": "v"} keyed by a str8, as uamqp sends it.
    let mut fields = vec![
        0xa1, 3, b'h', b'u', b'b', 0x40, 0x40, 0x40, 0x40, 0x40, 0x40, 0x40, 0x40,
    ];
    fields.extend_from_slice(&[0xc1, 7, 2, 0xa1, 1, b'k', 0xa1, 1, b'v']);
    let string_keyed = frame(0, &performative(0x10, &fields, 10));
    let mut bytes = string_keyed.clone();
    FrameScanner::new(LIMITS).scan(&mut bytes).unwrap();
    assert_eq!(
        bytes,
        frame(0, &open()),
        "only the key's constructor changes"
    );
    // Byte by byte, the same.
    let one_at_a_time = pass(&mut FrameScanner::new(LIMITS), string_keyed.chunks(1)).unwrap();
    assert_eq!(one_at_a_time, bytes);
    // Values stay strings, and other maps (a transfer's payload, a container id) stay as sent.
    let payload = amqp_value(&[0xc1, 7, 2, 0xa1, 1, b'k', 0xa1, 1, b'v']);
    let mut t = frame(0, &transfer(1, false, &payload));
    let before = t.clone();
    let mut s = FrameScanner::new(LIMITS);
    s.scan(&mut frame(0, &open())).unwrap();
    s.scan(&mut t).unwrap();
    assert_eq!(t, before);
}

fn begin() -> Vec<u8> {
    performative(0x11, &[0x40, 0x43, 0x70, 0, 0, 0, 9, 0x70, 0, 0, 0, 9], 4)
}

fn end() -> Vec<u8> {
    performative(0x17, &[], 0)
}

/// A receiver's disposition of delivery 0 (role receiver, first 0).
fn disposition() -> Vec<u8> {
    performative(0x15, &[0x41, 0x43], 2)
}

#[test]
fn frames_on_an_ended_channel_are_dropped_until_it_begins_again() {
    // What rhea sends when a receiver's session closes with deliveries in flight:
    // end, then dispositions on the same channel.
    let binary = [&[0xa0, 200][..], &[7; 200]].concat();
    let late_transfer = frame(1, &transfer(0, false, &amqp_value(&binary)));
    let kept_before = stream(&[
        frame(0, &open()),
        frame(1, &begin()),
        frame(2, &begin()),
        frame(1, &end()),
    ]);
    let dropped = [
        frame(1, &disposition()),
        late_transfer,
        frame(1, &performative(0x13, &[0x40], 1)),
    ];
    let mut ulong_begin = vec![0x00, 0x80, 0, 0, 0, 0, 0, 0, 0, 0x11];
    ulong_begin.extend_from_slice(&begin()[3..]);
    let kept_after = [
        frame(2, &disposition()), // another channel goes on
        frame(0, &end()),
        frame(0, &performative(0x18, &[], 0)), // close, on channel 0 after its end
        frame(0, &[]),                         // a heartbeat on an ended channel is no frame
        frame(1, &ulong_begin),
        frame(1, &disposition()),
    ];
    let mut input = kept_before.clone();
    dropped.iter().for_each(|f| input.extend_from_slice(f));
    let mut expected = kept_before;
    for f in &kept_after {
        input.extend_from_slice(f);
        expected.extend_from_slice(f);
    }
    let mut s = FrameScanner::new(LIMITS);
    let mut whole = input.clone();
    let r = s.scan(&mut whole).unwrap();
    assert_eq!((r.dropped, r.held), (3, 0));
    assert_eq!(&whole[..r.kept], expected.as_slice());
    // Split anywhere, and byte by byte, the same bytes come out.
    for cut in 0..=input.len() {
        let (head, tail) = input.split_at(cut);
        let out = pass(&mut FrameScanner::new(LIMITS), [head, tail]).unwrap();
        assert_eq!(out, expected, "cut at {cut}");
    }
    let out = pass(&mut FrameScanner::new(LIMITS), input.chunks(1)).unwrap();
    assert_eq!(out, expected);
}

#[test]
fn a_frame_on_an_ended_channel_is_held_until_its_descriptor_is_in() {
    let mut s = FrameScanner::new(LIMITS);
    let mut start = stream(&[frame(1, &begin()), frame(1, &end())]);
    let r = s.scan(&mut start).unwrap();
    assert_eq!((r.kept, r.held), (start.len(), 0));
    // Header and two bytes of the descriptor: not yet known to be a begin.
    let again = frame(1, &begin());
    let mut part = again[..10].to_vec();
    let r = s.scan(&mut part).unwrap();
    assert_eq!((r.kept, r.held, r.dropped), (0, 10, 0));
    let mut whole = again.clone();
    let r = s.scan(&mut whole).unwrap();
    assert_eq!((r.kept, r.held, r.dropped), (again.len(), 0, 0));
    // The channel is open again: its frames pass.
    let mut d = frame(1, &disposition());
    assert_eq!(s.scan(&mut d).unwrap().kept, d.len());
}
