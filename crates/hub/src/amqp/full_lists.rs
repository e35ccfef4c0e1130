//! Writes every performative with its full field list. AMQP lets an encoder drop
//! trailing null fields, and fe2o3-amqp does; pyamqp (azure-eventhub) indexes the
//! fields of incoming frames by position without checking the list's length (an
//! Open without `properties`, an Attach without `properties`, a Detach without
//! `error`, a Transfer whose payload it expects at index 11). Azure's brokers always
//! send full lists, so the hub pads them with nulls on the way out.

use std::borrow::Cow;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Number of fields of each performative (by descriptor code).
fn full_count(code: u8) -> Option<u32> {
    Some(match code {
        0x10 => 10, // open
        0x11 => 8,  // begin
        0x12 => 14, // attach
        0x13 => 11, // flow
        0x14 => 11, // transfer
        0x15 => 6,  // disposition
        0x16 => 3,  // detach
        0x17 => 1,  // end
        0x18 => 1,  // close
        0x40 => 1,  // sasl-mechanisms
        0x42 => 1,  // sasl-challenge
        0x44 => 2,  // sasl-outcome
        _ => return None,
    })
}

/// One frame (size prefix included) with its performative's list padded to full
/// length; frames that need nothing (or that it does not understand) are returned as is.
pub fn pad_frame(frame: &[u8]) -> Cow<'_, [u8]> {
    pad(frame).map_or(Cow::Borrowed(frame), Cow::Owned)
}

fn pad(frame: &[u8]) -> Option<Vec<u8>> {
    let doff = usize::from(*frame.get(4)?) * 4;
    let body = frame.get(doff..)?;
    // Described type with a smallulong descriptor: 0x00 0x53 code.
    if body.len() < 4 || body[0] != 0x00 || body[1] != 0x53 {
        return None;
    }
    let full = full_count(body[2])?;
    let list = &body[3..];
    let (count, items, rest) = match list[0] {
        0x45 => (0u32, &list[1..1], &list[1..]),
        0xc0 => {
            let size = usize::from(*list.get(1)?);
            let count = u32::from(*list.get(2)?);
            let end = 2 + size;
            (count, list.get(3..end)?, list.get(end..)?)
        }
        0xd0 => {
            let size = u32::from_be_bytes(list.get(1..5)?.try_into().ok()?) as usize;
            let count = u32::from_be_bytes(list.get(5..9)?.try_into().ok()?);
            let end = 5 + size;
            (count, list.get(9..end)?, list.get(end..)?)
        }
        _ => return None,
    };
    if count >= full {
        return None;
    }
    let missing = (full - count) as usize;
    let mut new_list = Vec::with_capacity(items.len() + missing + 9);
    let items_len = items.len() + missing;
    if items_len < 255 {
        new_list.push(0xc0);
        new_list.push((items_len + 1) as u8);
        new_list.push(full as u8);
    } else {
        new_list.push(0xd0);
        new_list.extend_from_slice(&((items_len + 4) as u32).to_be_bytes());
        new_list.extend_from_slice(&full.to_be_bytes());
    }
    new_list.extend_from_slice(items);
    new_list.resize(new_list.len() + missing, 0x40);

    let mut out = Vec::with_capacity(frame.len() + new_list.len());
    out.extend_from_slice(&frame[..doff]);
    out.extend_from_slice(&body[..3]);
    out.extend_from_slice(&new_list);
    out.extend_from_slice(rest);
    let size = out.len() as u32;
    out[..4].copy_from_slice(&size.to_be_bytes());
    Some(out)
}

/// Splits what the AMQP engine writes into protocol headers and frames, padding the frames.
#[derive(Debug, Default)]
struct Splitter {
    pending: Vec<u8>,
}

impl Splitter {
    /// Appends written bytes; returns the bytes ready to go out.
    fn push(&mut self, data: &[u8], out: &mut Vec<u8>) {
        self.pending.extend_from_slice(data);
        let mut at = 0;
        loop {
            let rest = &self.pending[at..];
            if rest.len() < 8 {
                break;
            }
            if &rest[..4] == b"AMQP" {
                out.extend_from_slice(&rest[..8]);
                at += 8;
                continue;
            }
            let size = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
            if size < 8 {
                // Not a frame: pass everything through untouched from here on.
                out.extend_from_slice(rest);
                at = self.pending.len();
                break;
            }
            if rest.len() < size {
                break;
            }
            out.extend_from_slice(&pad_frame(&rest[..size]));
            at += size;
        }
        self.pending.drain(..at);
    }
}

/// An I/O stream whose written AMQP frames carry full field lists.
#[derive(Debug)]
pub struct FullLists<Io> {
    inner: Io,
    splitter: Splitter,
    out: Vec<u8>,
}

impl<Io> FullLists<Io> {
    pub fn new(inner: Io) -> FullLists<Io> {
        FullLists {
            inner,
            splitter: Splitter::default(),
            out: Vec::new(),
        }
    }
}

/// Beyond this much unsent output, writers wait for the socket.
const HIGH_WATER: usize = 1 << 20;

impl<Io: AsyncWrite + Unpin> FullLists<Io> {
    fn drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.out.is_empty() {
            match Pin::new(&mut self.inner).poll_write(cx, &self.out) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => {
                    self.out.drain(..n);
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl<Io: AsyncRead + Unpin> AsyncRead for FullLists<Io> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<Io: AsyncWrite + Unpin> AsyncWrite for FullLists<Io> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if this.out.len() >= HIGH_WATER {
            match this.drain(cx) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        this.splitter.push(buf, &mut this.out);
        // Best effort now; the rest goes on the next write or flush.
        if let Poll::Ready(Err(e)) = this.drain(cx) {
            return Poll::Ready(Err(e));
        }
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        match this.drain(cx) {
            Poll::Ready(Ok(())) => Pin::new(&mut this.inner).poll_flush(cx),
            other => other,
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        match this.drain(cx) {
            Poll::Ready(Ok(())) => Pin::new(&mut this.inner).poll_shutdown(cx),
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(body: &[u8]) -> Vec<u8> {
        let mut f = vec![0, 0, 0, 0, 2, 0, 0, 0];
        f.extend_from_slice(body);
        let n = f.len() as u32;
        f[..4].copy_from_slice(&n.to_be_bytes());
        f
    }

    #[test]
    fn pads_short_lists_and_keeps_the_payload() {
        // detach [handle=0 (uint0), closed=true]
        let detach = frame(&[0x00, 0x53, 0x16, 0xc0, 0x03, 0x02, 0x43, 0x41]);
        assert_eq!(
            pad_frame(&detach).to_vec(),
            frame(&[0x00, 0x53, 0x16, 0xc0, 0x04, 0x03, 0x43, 0x41, 0x40])
        );
        // end with list0
        let end = frame(&[0x00, 0x53, 0x17, 0x45]);
        assert_eq!(
            pad_frame(&end).to_vec(),
            frame(&[0x00, 0x53, 0x17, 0xc0, 0x02, 0x01, 0x40])
        );
        // transfer [handle] + payload bytes
        let transfer = frame(&[0x00, 0x53, 0x14, 0xc0, 0x02, 0x01, 0x43, 0xAA, 0xBB]);
        let padded = pad_frame(&transfer).to_vec();
        let mut want = vec![0x00, 0x53, 0x14, 0xc0, 0x0c, 0x0b, 0x43];
        want.extend_from_slice(&[0x40; 10]);
        want.extend_from_slice(&[0xAA, 0xBB]);
        assert_eq!(padded, frame(&want));
        // list32 stays list32-correct
        let open32 = frame(&[0x00, 0x53, 0x10, 0xd0, 0, 0, 0, 5, 0, 0, 0, 1, 0x40]);
        let p = pad_frame(&open32).to_vec();
        assert_eq!(&p[8..14], &[0x00, 0x53, 0x10, 0xc0, 0x0b, 0x0a]);
        assert_eq!(p.len(), 8 + 3 + 3 + 10);
    }

    #[test]
    fn leaves_full_unknown_and_empty_frames_alone() {
        let full = frame(&[0x00, 0x53, 0x17, 0xc0, 0x02, 0x01, 0x40]);
        assert!(matches!(pad_frame(&full), Cow::Borrowed(_)));
        let heartbeat = frame(&[]);
        assert!(matches!(pad_frame(&heartbeat), Cow::Borrowed(_)));
        let other = frame(&[0x00, 0x53, 0x70, 0x45]);
        assert!(matches!(pad_frame(&other), Cow::Borrowed(_)));
    }

    #[test]
    fn splitter_passes_headers_and_reassembles_split_frames() {
        let mut s = Splitter::default();
        let mut out = Vec::new();
        let end = frame(&[0x00, 0x53, 0x17, 0x45]);
        let mut stream = b"AMQP\x03\x01\x00\x00".to_vec();
        stream.extend_from_slice(&end);
        s.push(&stream[..5], &mut out);
        assert!(out.is_empty());
        s.push(&stream[5..12], &mut out);
        assert_eq!(out, b"AMQP\x03\x01\x00\x00");
        s.push(&stream[12..], &mut out);
        assert_eq!(
            &out[8..],
            &frame(&[0x00, 0x53, 0x17, 0xc0, 0x02, 0x01, 0x40])[..]
        );
        assert!(s.pending.is_empty());
    }
}
