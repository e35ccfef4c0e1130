//! AMQP frames as a server receives them, checked before a decoder sees them:
//! the frame boundaries (protocol headers, the 8-byte frame header with size and
//! data offset) and the nesting depth of every encoded value in a frame body.
//!
//! AMQP values nest (described types, lists, maps, arrays) and the usual decoders
//! recurse once per level, so a 15 KB frame nested 5,000 deep overflows their
//! stack. This scanner is iterative: an explicit stack of open containers, bytes
//! fed in whatever pieces the transport delivers, payload bytes skipped by size,
//! nothing copied. Message payloads may span several transfer frames, so each
//! unfinished delivery keeps its own scan state, keyed by channel and link handle.
//!
//! One rewrite happens on the way: keys of the `properties` map of open, begin, attach
//! and flow that are strings become symbols (the same bytes with another constructor).
//! The spec says symbols; uamqp (the Azure CLI's AMQP library) sends strings, Azure
//! accepts them, and a strict decoder would refuse the whole frame.

use std::collections::HashSet;

use thiserror::Error;

use super::amqp_model::condition;

/// Deepest nesting accepted. A described list counts two levels, so a performative
/// with a source filter reaches about 8 and a message body of JSON-like maps twice
/// its own depth; 128 leaves room for any real client while keeping a recursive
/// decoder's stack use a small fraction of a thread's.
pub const MAX_DEPTH: usize = 128;
/// Multi-frame deliveries one connection may have in progress at once (a real
/// client has at most one per sending link).
pub const MAX_PARTIAL_DELIVERIES: usize = 64;

/// Why a frame is refused; the connection is then closed with [`FrameError::condition`].
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum FrameError {
    #[error("A frame declares {0} bytes; a frame is at least its 8-byte header.")]
    FrameTooSmall(u32),
    #[error("A frame declares {size} bytes, above the maximum frame size of {max}.")]
    FrameTooLarge { size: u32, max: u32 },
    #[error("A frame's data offset ({0} words) does not fit its header and size.")]
    BadDataOffset(u8),
    #[error("A frame uses channel {channel}, above the announced channel-max of {max}.")]
    ChannelOverMax { channel: u16, max: u16 },
    #[error("A link is attached with handle {handle}, above the announced handle-max of {max}.")]
    HandleOverMax { handle: u32, max: u32 },
    #[error("A value is nested more than {MAX_DEPTH} levels deep; send flatter data.")]
    TooDeep,
    #[error("Byte 0x{0:02x} is not an AMQP type constructor.")]
    BadConstructor(u8),
    #[error("A list, map or array declares more items ({count}) than its size ({size}) holds.")]
    CountOverSize { count: u32, size: u32 },
    #[error("An array's element constructor is described twice.")]
    DescribedTwice,
    #[error("A performative's descriptor is not a numeric code.")]
    PerformativeDescriptor,
    #[error("A frame ends inside its performative.")]
    TruncatedPerformative,
    #[error("More than {MAX_PARTIAL_DELIVERIES} multi-frame deliveries are in progress at once.")]
    TooManyDeliveries,
}

impl FrameError {
    /// The AMQP error condition a broker closes the connection with.
    pub fn condition(&self) -> &'static str {
        match self {
            FrameError::FrameTooSmall(_)
            | FrameError::FrameTooLarge { .. }
            | FrameError::BadDataOffset(_)
            | FrameError::ChannelOverMax { .. }
            | FrameError::HandleOverMax { .. } => condition::FRAMING_ERROR,
            FrameError::TooManyDeliveries => condition::RESOURCE_LIMIT,
            _ => condition::DECODE_ERROR,
        }
    }
}

/// What the server announced and the client must keep to (AMQP requires a
/// framing error for a channel or handle beyond it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    pub max_frame: u32,
    pub channel_max: u16,
    pub handle_max: u32,
}

const OPEN: u64 = 0x10;
const BEGIN: u64 = 0x11;
const ATTACH: u64 = 0x12;
const FLOW: u64 = 0x13;
const TRANSFER: u64 = 0x14;
const END: u64 = 0x17;
const CLOSE: u64 = 0x18;

/// An open container in the value being scanned.
#[derive(Clone, Copy, Debug)]
enum Level {
    /// Values still to come: items of a list or map, or a described value's
    /// descriptor and value. `taken` counts the ones begun.
    Values { left: u32, taken: u32 },
    /// An array whose element constructor comes next (`described`: its
    /// descriptor has been read, the base constructor follows).
    ArrayHead { count: u32, described: bool },
    /// Array elements, each encoded as `code` without a constructor byte.
    Elements { left: u32, code: u8 },
}

/// A transfer field the scanner keeps while it passes over a performative.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Field {
    Code,
    Handle,
    More,
    Aborted,
}

#[derive(Clone, Copy, Debug)]
enum Step {
    /// What comes next is decided by the innermost open container.
    Next,
    /// A constructor byte: of a value, or (`element`) an array's element constructor.
    Constructor { element: bool },
    /// The size (and count) fields after format `code`.
    Header {
        code: u8,
        need: u8,
        got: u8,
        acc: u64,
    },
    /// A fixed-width value, kept if it is a transfer field.
    Fixed {
        left: u8,
        acc: u64,
        field: Option<Field>,
    },
    /// Variable-width bytes passed over.
    Skip(u64),
}

/// The fields of a performative that matter to the frame scanner.
#[derive(Clone, Copy, Debug, Default)]
struct Performative {
    code: Option<u64>,
    handle: u32,
    more: bool,
    aborted: bool,
}

/// An iterative scan of a sequence of encoded values.
#[derive(Clone, Debug)]
struct ValueScan {
    stack: Vec<Level>,
    step: Step,
    /// A top-level value has begun and not yet ended.
    in_value: bool,
    /// Set while scanning a performative: the fields it keeps.
    performative: Option<Performative>,
}

impl ValueScan {
    fn new(performative: bool) -> ValueScan {
        ValueScan {
            stack: Vec::new(),
            step: Step::Next,
            in_value: false,
            performative: performative.then(Performative::default),
        }
    }

    fn reset(&mut self) {
        self.stack.clear();
        self.step = Step::Next;
        self.in_value = false;
        if let Some(p) = &mut self.performative {
            *p = Performative::default();
        }
    }

    fn push(&mut self, level: Level) -> Result<(), FrameError> {
        if self.stack.len() >= MAX_DEPTH {
            return Err(FrameError::TooDeep);
        }
        self.stack.push(level);
        Ok(())
    }

    /// Scans `bytes` and returns how many it used: all of them, or (with `one`)
    /// those up to the end of the first top-level value that ends in them.
    fn feed(&mut self, bytes: &mut [u8], one: bool) -> Result<usize, FrameError> {
        let mut i = 0;
        loop {
            if let Step::Next = self.step {
                if self.stack.is_empty() && self.in_value {
                    self.in_value = false;
                    if one {
                        return Ok(i);
                    }
                }
                self.step = self.advance()?;
                continue;
            }
            let Some(&b) = bytes.get(i) else {
                return Ok(i);
            };
            match &mut self.step {
                Step::Next => unreachable!("handled above"),
                Step::Constructor { element: false } => {
                    let b = if self.property_key_here() {
                        let symbol = match b {
                            0xa1 => 0xa3,
                            0xb1 => 0xb3,
                            other => other,
                        };
                        bytes[i] = symbol;
                        symbol
                    } else {
                        b
                    };
                    i += 1;
                    self.in_value = true;
                    self.step = self.constructor(b)?;
                }
                Step::Constructor { element: true } => {
                    i += 1;
                    self.step = self.element_constructor(b)?;
                }
                Step::Header {
                    code,
                    need,
                    got,
                    acc,
                } => {
                    i += 1;
                    *acc = (*acc << 8) | u64::from(b);
                    *got += 1;
                    if got == need {
                        let (code, need, acc) = (*code, *need, *acc);
                        self.step = self.header_done(code, need, acc)?;
                    }
                }
                Step::Fixed { left, acc, field } => {
                    i += 1;
                    *acc = (*acc << 8) | u64::from(b);
                    *left -= 1;
                    if *left == 0 {
                        let (acc, field) = (*acc, *field);
                        self.keep(field, acc);
                        self.step = Step::Next;
                    }
                }
                Step::Skip(left) => {
                    let n = (bytes.len() - i).min(usize::try_from(*left).unwrap_or(usize::MAX));
                    i += n;
                    *left -= n as u64;
                    if *left == 0 {
                        self.step = Step::Next;
                    }
                }
            }
        }
    }

    /// The next step once a value (or a container's header) is complete.
    fn advance(&mut self) -> Result<Step, FrameError> {
        loop {
            match self.stack.last_mut() {
                None => return Ok(Step::Constructor { element: false }),
                Some(Level::Values { left, taken }) if *left > 0 => {
                    *left -= 1;
                    *taken += 1;
                    return Ok(Step::Constructor { element: false });
                }
                Some(Level::ArrayHead { .. }) => return Ok(Step::Constructor { element: true }),
                Some(Level::Elements { left, code }) if *left > 0 => {
                    // Elements without bytes (null, list0, ...) pass all at once.
                    *left = if *code >> 4 == 0x4 { 0 } else { *left - 1 };
                    let code = *code;
                    return body(code, None);
                }
                Some(_) => {
                    self.stack.pop();
                    if self.stack.is_empty() {
                        return Ok(Step::Next);
                    }
                }
            }
        }
    }

    /// Which transfer field (if any) the value starting now is.
    fn field_here(&self) -> Option<Field> {
        let p = self.performative?;
        match self.stack.as_slice() {
            [Level::Values { taken: 1, .. }] => Some(Field::Code),
            [Level::Values { taken: 2, .. }, Level::Values { taken, .. }] => {
                match (p.code, taken) {
                    (Some(TRANSFER), 1) | (Some(ATTACH), 2) => Some(Field::Handle),
                    (Some(TRANSFER), 6) => Some(Field::More),
                    (Some(TRANSFER), 10) => Some(Field::Aborted),
                    _ => None,
                }
            }
            _ => None,
        }
    }

    /// Whether the value starting now is a key of the `properties` map of an open,
    /// begin, attach or flow (their 10th, 8th, 14th and 11th fields).
    fn property_key_here(&self) -> bool {
        let Some(code) = self.performative.and_then(|p| p.code) else {
            return false;
        };
        let properties = match code {
            OPEN => 10,
            BEGIN => 8,
            ATTACH => 14,
            FLOW => 11,
            _ => return false,
        };
        matches!(
            self.stack.as_slice(),
            [
                Level::Values { taken: 2, .. },
                Level::Values { taken: field, .. },
                Level::Values { taken: item, .. },
            ] if *field == properties && item % 2 == 1
        )
    }

    fn constructor(&mut self, code: u8) -> Result<Step, FrameError> {
        let field = self.field_here();
        if field == Some(Field::Code) && !matches!(code, 0x44 | 0x53 | 0x80) {
            return Err(FrameError::PerformativeDescriptor);
        }
        match code {
            0x00 => {
                self.push(Level::Values { left: 2, taken: 0 })?;
                Ok(Step::Next)
            }
            // Constants that carry their value in the constructor.
            0x41..=0x44 => {
                self.keep(field, u64::from(code == 0x41));
                Ok(Step::Next)
            }
            _ => body(code, field),
        }
    }

    fn element_constructor(&mut self, code: u8) -> Result<Step, FrameError> {
        let Some(Level::ArrayHead { count, described }) = self.stack.last_mut() else {
            unreachable!("an element constructor is read only under an array head");
        };
        if code == 0x00 {
            if *described {
                return Err(FrameError::DescribedTwice);
            }
            *described = true;
            self.push(Level::Values { left: 1, taken: 0 })?;
            return Ok(Step::Next);
        }
        body(code, None)?;
        let count = *count;
        if let Some(top) = self.stack.last_mut() {
            *top = Level::Elements { left: count, code };
        }
        Ok(Step::Next)
    }

    fn header_done(&mut self, code: u8, need: u8, acc: u64) -> Result<Step, FrameError> {
        let (size, count) = match need {
            1 | 4 => return Ok(skip(acc)),
            2 => ((acc >> 8) as u32, (acc & 0xff) as u32),
            _ => ((acc >> 32) as u32, acc as u32),
        };
        // Every list or map item takes at least a byte; arrays of zero-width
        // elements could claim billions in a few bytes, and a decoder would
        // build them all.
        if count > size {
            return Err(FrameError::CountOverSize { count, size });
        }
        if code >> 4 >= 0xe {
            self.push(Level::ArrayHead {
                count,
                described: false,
            })?;
        } else {
            self.push(Level::Values {
                left: count,
                taken: 0,
            })?;
        }
        Ok(Step::Next)
    }

    fn keep(&mut self, field: Option<Field>, value: u64) {
        let (Some(field), Some(p)) = (field, &mut self.performative) else {
            return;
        };
        match field {
            Field::Code => p.code = Some(value),
            Field::Handle => p.handle = value as u32,
            Field::More => p.more = value != 0,
            Field::Aborted => p.aborted = value != 0,
        }
    }

    /// The performative just scanned, once it is complete.
    fn performative(&self) -> Performative {
        self.performative.unwrap_or_default()
    }

    fn complete(&self) -> bool {
        !self.in_value && matches!(self.step, Step::Next) && self.stack.is_empty()
    }
}

fn skip(len: u64) -> Step {
    if len == 0 {
        Step::Next
    } else {
        Step::Skip(len)
    }
}

/// The step that reads the body of a value of format `code`.
fn body(code: u8, field: Option<Field>) -> Result<Step, FrameError> {
    let fixed = |left| Step::Fixed {
        left,
        acc: 0,
        field,
    };
    let header = |need| Step::Header {
        code,
        need,
        got: 0,
        acc: 0,
    };
    Ok(match code >> 4 {
        0x4 => Step::Next,
        0x5 => fixed(1),
        0x6 => fixed(2),
        0x7 => fixed(4),
        0x8 => fixed(8),
        0x9 => fixed(16),
        0xa => header(1),
        0xb => header(4),
        0xc | 0xe => header(2),
        0xd | 0xf => header(8),
        _ => return Err(FrameError::BadConstructor(code)),
    })
}

/// Where the frame scanner is in the byte stream.
#[derive(Clone, Copy, Debug)]
enum At {
    /// At the 8 bytes of a protocol header (`AMQP` + 4) or a frame header.
    Header,
    /// Passing over the extended header, then a body of `body` bytes.
    Extended {
        left: u32,
        body: u32,
    },
    Performative {
        left: u32,
    },
    /// After the performative; `delivery` indexes the unfinished delivery it continues.
    Payload {
        left: u32,
        delivery: Option<usize>,
    },
    /// Inside a dropped frame: `left` bytes of it still to pass over.
    Dropping {
        left: u32,
    },
}

/// What becomes of a frame whose header has been read.
enum Verdict {
    Keep,
    Drop,
    /// Its first bytes are not all in yet: give them again with what follows.
    Hold,
}

/// A delivery whose transfers are not all in yet.
#[derive(Debug)]
struct Partial {
    channel: u16,
    handle: u32,
    scan: ValueScan,
}

/// What [`FrameScanner::scan`] made of a buffer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Scanned {
    /// The buffer's first `kept` bytes are what the engine is to read.
    pub kept: usize,
    /// The buffer's last `held` bytes begin a frame that cannot be judged yet; they
    /// are to be scanned again at the front of what comes next.
    pub held: usize,
    /// Frames dropped: sent on a session the client had already ended.
    pub dropped: u32,
}

/// Frame boundaries and value depth over the bytes a client sends.
///
/// Frames a client sends on a channel after its own `end` there, other than a
/// `begin` that opens the channel again (or the connection's `close`), are dropped: rhea (the JavaScript SDKs)
/// settles deliveries that arrived while its session was ending after it has sent
/// the `end`, which a strict engine answers by closing the whole connection; Azure
/// lets them go.
#[derive(Debug)]
pub struct FrameScanner {
    limits: Limits,
    at: At,
    channel: u16,
    performative: ValueScan,
    /// Bytes after a performative other than transfer.
    trailing: ValueScan,
    partial: Vec<Partial>,
    /// Channels the client has ended and not begun again (at most channel-max + 1).
    ended: HashSet<u16>,
}

impl FrameScanner {
    /// A scanner for a connection that announced `limits`.
    pub fn new(limits: Limits) -> FrameScanner {
        FrameScanner {
            limits,
            at: At::Header,
            channel: 0,
            performative: ValueScan::new(true),
            trailing: ValueScan::new(false),
            partial: Vec::new(),
            ended: HashSet::new(),
        }
    }

    /// Checks the next bytes of the stream and removes the frames to drop, in place
    /// (see [`Scanned`]). After an error the connection must be closed: the
    /// scanner's place in the stream is lost.
    pub fn scan(&mut self, bytes: &mut [u8]) -> Result<Scanned, FrameError> {
        let mut i = 0;
        let mut out = Scanned::default();
        // Moves the next `n` bytes to the output.
        let keep = |bytes: &mut [u8], i: &mut usize, out: &mut Scanned, n: usize| {
            if out.kept != *i {
                bytes.copy_within(*i..*i + n, out.kept);
            }
            *i += n;
            out.kept += n;
        };
        while i < bytes.len() {
            let rest = &mut bytes[i..];
            match &mut self.at {
                At::Header => {
                    // A header is judged whole, so a partial one waits for the rest.
                    let Some(header) = rest.first_chunk::<8>().copied() else {
                        out.held = rest.len();
                        break;
                    };
                    match self.frame_header(&header, rest)? {
                        Verdict::Keep => keep(bytes, &mut i, &mut out, 8),
                        Verdict::Drop => {
                            i += 8;
                            out.dropped += 1;
                        }
                        Verdict::Hold => {
                            out.held = rest.len();
                            break;
                        }
                    }
                }
                At::Dropping { left } => {
                    let n = rest.len().min(*left as usize);
                    i += n;
                    *left -= n as u32;
                    if *left == 0 {
                        self.at = At::Header;
                    }
                }
                At::Extended { left, body } => {
                    let n = rest.len().min(*left as usize);
                    *left -= n as u32;
                    if *left == 0 {
                        let body = *body;
                        self.at = At::Performative { left: body };
                        self.performative.reset();
                    }
                    keep(bytes, &mut i, &mut out, n);
                }
                At::Performative { left } => {
                    let n = rest.len().min(*left as usize);
                    let used = self.performative.feed(&mut rest[..n], true)?;
                    *left -= used as u32;
                    let left = *left;
                    keep(bytes, &mut i, &mut out, used);
                    if self.performative.complete() {
                        self.after_performative(left)?;
                    } else if left == 0 {
                        return Err(FrameError::TruncatedPerformative);
                    }
                }
                At::Payload { left, delivery } => {
                    let n = rest.len().min(*left as usize);
                    let scan = match delivery {
                        Some(d) => &mut self.partial[*d].scan,
                        None => &mut self.trailing,
                    };
                    scan.feed(&mut rest[..n], false)?;
                    *left -= n as u32;
                    if *left == 0 {
                        self.end_frame();
                    }
                    keep(bytes, &mut i, &mut out, n);
                }
            }
        }
        Ok(out)
    }

    /// Checks a frame header; `frame` is the buffer from the header on, for the
    /// performative's descriptor of a frame on an ended channel.
    fn frame_header(&mut self, buf: &[u8; 8], frame: &[u8]) -> Result<Verdict, FrameError> {
        if &buf[..4] == b"AMQP" {
            return Ok(Verdict::Keep);
        }
        let size = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
        if size < 8 {
            return Err(FrameError::FrameTooSmall(size));
        }
        let max = self.limits.max_frame;
        if size > max {
            return Err(FrameError::FrameTooLarge { size, max });
        }
        let doff = buf[4];
        let header = u32::from(doff) * 4;
        if header < 8 || header > size {
            return Err(FrameError::BadDataOffset(doff));
        }
        let channel = u16::from_be_bytes([buf[6], buf[7]]);
        let max = self.limits.channel_max;
        // SASL frames (type 1) ignore their channel.
        let amqp = buf[5] == 0;
        if amqp && channel > max {
            return Err(FrameError::ChannelOverMax { channel, max });
        }
        let body = size - header;
        if body == 0 {
            return Ok(Verdict::Keep); // a heartbeat
        }
        if amqp && self.ended.contains(&channel) {
            // The descriptor tells a begin or a close (a connection's frame, sent on
            // channel 0 whatever ended there): 0x00 0x53 code, or 0x00 0x80 and 8 bytes.
            let need = (header + body.min(10)) as usize;
            let Some(start) = frame.get(header as usize..need) else {
                return Ok(Verdict::Hold);
            };
            match descriptor_code(start) {
                Some(BEGIN) => {
                    self.ended.remove(&channel);
                }
                Some(CLOSE) => {}
                _ => {
                    self.at = At::Dropping { left: size - 8 };
                    return Ok(Verdict::Drop);
                }
            }
        }
        self.channel = channel;
        self.at = if header == 8 {
            self.performative.reset();
            At::Performative { left: body }
        } else {
            At::Extended {
                left: header - 8,
                body,
            }
        };
        Ok(Verdict::Keep)
    }

    fn after_performative(&mut self, left: u32) -> Result<(), FrameError> {
        let p = self.performative.performative();
        let max = self.limits.handle_max;
        if p.code == Some(ATTACH) && p.handle > max {
            let handle = p.handle;
            return Err(FrameError::HandleOverMax { handle, max });
        }
        match p.code {
            Some(END) => {
                self.partial.retain(|d| d.channel != self.channel);
                self.ended.insert(self.channel);
            }
            Some(CLOSE) => self.partial.clear(),
            _ => {}
        }
        let delivery = if p.code == Some(TRANSFER) {
            Some(self.delivery(p.handle)?)
        } else {
            self.trailing.reset();
            None
        };
        self.at = At::Payload { left, delivery };
        if left == 0 {
            self.end_frame();
        }
        Ok(())
    }

    /// The unfinished delivery on this channel and handle, or a new one.
    fn delivery(&mut self, handle: u32) -> Result<usize, FrameError> {
        let channel = self.channel;
        if let Some(d) = self
            .partial
            .iter()
            .position(|d| d.channel == channel && d.handle == handle)
        {
            return Ok(d);
        }
        if self.partial.len() >= MAX_PARTIAL_DELIVERIES {
            return Err(FrameError::TooManyDeliveries);
        }
        self.partial.push(Partial {
            channel,
            handle,
            scan: ValueScan::new(false),
        });
        Ok(self.partial.len() - 1)
    }

    fn end_frame(&mut self) {
        if let At::Payload {
            delivery: Some(d), ..
        } = self.at
        {
            let p = self.performative.performative();
            if !p.more || p.aborted {
                self.partial.swap_remove(d);
            }
        }
        self.at = At::Header;
    }
}

/// The code of a performative's descriptor, from the start of a frame body.
fn descriptor_code(body: &[u8]) -> Option<u64> {
    match body {
        [0x00, 0x53, code, ..] => Some(u64::from(*code)),
        [0x00, 0x80, rest @ ..] => Some(u64::from_be_bytes(*rest.first_chunk::<8>()?)),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
