//! Checks every frame a client sends before the AMQP engine reads it
//! ([`FrameScanner`]: frame headers, value nesting depth) and leaves out the frames
//! a client sends on a session it has already ended. A refused frame never
//! reaches the engine: reading stops there and the connection's owner is told why,
//! so it can close the connection with that AMQP error. When the owner lets go
//! (after its CLOSE, answered or not), reads fail and the engine ends, so a
//! client that never answers a CLOSE cannot keep the connection.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use tokio::io::{AsyncRead, ReadBuf};
use tokio::sync::{oneshot, watch};

use iothub::amqp_frame::{FrameError, FrameScanner, Limits, Scanned};

/// Bytes read at a time while the start of a frame is held back.
const HELD_READ: usize = 4096;

/// The read side of a connection, its frames checked before they are read.
#[derive(Debug)]
pub struct FrameGuard<Io> {
    inner: Io,
    scanner: FrameScanner,
    refusal: watch::Sender<Option<FrameError>>,
    refused: bool,
    /// Completes when the connection's owner lets go.
    owner: oneshot::Receiver<()>,
    /// The start of a frame the scanner cannot judge yet (at most a frame header
    /// and a few bytes), then what was read after it.
    held: Vec<u8>,
    /// Checked bytes not yet given to the engine.
    ready: Vec<u8>,
}

impl<Io> FrameGuard<Io> {
    /// Guards `inner`, a connection that announced `limits`; the first refused
    /// frame's error is published on `refusal`; reads end once `owner`'s sender
    /// is dropped.
    pub fn new(
        inner: Io,
        limits: Limits,
        refusal: watch::Sender<Option<FrameError>>,
        owner: oneshot::Receiver<()>,
    ) -> FrameGuard<Io> {
        FrameGuard {
            inner,
            scanner: FrameScanner::new(limits),
            refusal,
            refused: false,
            owner,
            held: Vec::new(),
            ready: Vec::new(),
        }
    }

    /// Scans `bytes` in place; what must be read again moves to `held`. Returns how
    /// many of its first bytes the engine reads, or the refusal.
    fn scan(&mut self, bytes: &mut [u8]) -> Result<usize, FrameError> {
        let Scanned {
            kept,
            held,
            dropped,
        } = self.scanner.scan(bytes)?;
        if dropped > 0 {
            tracing::debug!(dropped, "amqp frames on an ended session ignored");
        }
        self.held.extend_from_slice(&bytes[bytes.len() - held..]);
        Ok(kept)
    }

    fn refuse(&mut self, e: FrameError) {
        self.refusal.send_replace(Some(e));
        self.refused = true;
    }
}

impl<Io: AsyncRead + Unpin> AsyncRead for FrameGuard<Io> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if Pin::new(&mut this.owner).poll(cx).is_ready() {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "the hub closed the connection",
            )));
        }
        if this.refused {
            return Poll::Pending;
        }
        loop {
            if !this.ready.is_empty() {
                let n = this.ready.len().min(buf.remaining());
                buf.put_slice(&this.ready[..n]);
                this.ready.drain(..n);
                return Poll::Ready(Ok(()));
            }
            if this.held.is_empty() {
                // The common case: scanned where the engine reads it.
                let before = buf.filled().len();
                ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?;
                if buf.filled().len() == before {
                    return Poll::Ready(Ok(())); // the end of the stream
                }
                match this.scan(&mut buf.filled_mut()[before..]) {
                    Ok(kept) => {
                        buf.set_filled(before + kept);
                        if kept > 0 {
                            return Poll::Ready(Ok(()));
                        }
                    }
                    Err(e) => {
                        buf.set_filled(before);
                        this.refuse(e);
                        // The owner's end wakes this read.
                        return Poll::Pending;
                    }
                }
                continue;
            }
            // A held start: read more behind it and scan the two together.
            let mut more = [0u8; HELD_READ];
            let mut more = ReadBuf::new(&mut more);
            ready!(Pin::new(&mut this.inner).poll_read(cx, &mut more))?;
            if more.filled().is_empty() {
                return Poll::Ready(Ok(())); // the end of the stream, mid-frame
            }
            let mut held = std::mem::take(&mut this.held);
            held.extend_from_slice(more.filled());
            match this.scan(&mut held) {
                Ok(kept) => this.ready.extend_from_slice(&held[..kept]),
                Err(e) => {
                    this.refuse(e);
                    return Poll::Pending;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn a_refused_frame_is_withheld_and_reported_until_the_owner_lets_go() {
        let (mut client, server) = tokio::io::duplex(64);
        let (refusal, mut refused) = watch::channel(None);
        let limits = Limits {
            max_frame: 1024,
            channel_max: 0,
            handle_max: 0,
        };
        let (owner, owned) = oneshot::channel();
        let mut guard = FrameGuard::new(server, limits, refusal, owned);
        client.write_all(b"AMQP\x00\x01\x00\x00").await.unwrap();
        let mut header = [0u8; 8];
        guard.read_exact(&mut header).await.unwrap();
        // A frame that declares 4 bytes.
        client.write_all(&[0, 0, 0, 4, 2, 0, 0, 0]).await.unwrap();
        let mut rest = [0u8; 8];
        let read = tokio::spawn(async move { guard.read(&mut rest).await });
        refused.changed().await.unwrap();
        assert_eq!(*refused.borrow(), Some(FrameError::FrameTooSmall(4)));
        assert!(!read.is_finished(), "nothing of the refused frame is read");
        drop(owner);
        let read = read.await.unwrap();
        assert_eq!(read.unwrap_err().kind(), io::ErrorKind::ConnectionAborted);
    }

    /// A frame on `channel` whose body is the performative `code` with no fields.
    fn frame(channel: u16, code: u8) -> Vec<u8> {
        let mut f = vec![0, 0, 0, 12, 2, 0];
        f.extend_from_slice(&channel.to_be_bytes());
        f.extend_from_slice(&[0x00, 0x53, code, 0x45]);
        f
    }

    #[tokio::test]
    async fn frames_after_a_clients_end_are_left_out_however_the_stream_is_cut() {
        // A 5-byte pipe cuts every frame, so starts are held and read again.
        let (mut client, server) = tokio::io::duplex(5);
        let (refusal, refused) = watch::channel(None);
        let limits = Limits {
            max_frame: 1024,
            channel_max: 3,
            handle_max: 3,
        };
        let (_owner, owned) = oneshot::channel();
        let mut guard = FrameGuard::new(server, limits, refusal, owned);
        let (begin, end, disposition) = (0x11, 0x17, 0x15);
        let mut sent = b"AMQP\x00\x01\x00\x00".to_vec();
        let mut expected = sent.clone();
        for (f, kept) in [
            (frame(1, begin), true),
            (frame(1, end), true),
            (frame(1, disposition), false),
            (frame(1, disposition), false),
            (frame(2, begin), true),
            (frame(1, begin), true),
            (frame(1, disposition), true),
        ] {
            sent.extend_from_slice(&f);
            if kept {
                expected.extend_from_slice(&f);
            }
        }
        let writer = tokio::spawn(async move {
            client.write_all(&sent).await.unwrap();
            client.shutdown().await.unwrap();
        });
        let mut got = Vec::new();
        guard.read_to_end(&mut got).await.unwrap();
        writer.await.unwrap();
        assert_eq!(got, expected);
        assert_eq!(*refused.borrow(), None);
    }
}
