//! Checks every frame a client sends before the AMQP engine reads it
//! ([`FrameScanner`]: frame headers, value nesting depth). A refused frame never
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

use iothub::amqp_frame::{FrameError, FrameScanner, Limits};

/// The read side of a connection, its frames checked before they are read.
#[derive(Debug)]
pub struct FrameGuard<Io> {
    inner: Io,
    scanner: FrameScanner,
    refusal: watch::Sender<Option<FrameError>>,
    refused: bool,
    /// Completes when the connection's owner lets go.
    owner: oneshot::Receiver<()>,
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
        }
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
        let before = buf.filled().len();
        ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?;
        match this.scanner.scan(&mut buf.filled_mut()[before..]) {
            Ok(()) => Poll::Ready(Ok(())),
            Err(e) => {
                buf.set_filled(before);
                this.refusal.send_replace(Some(e));
                this.refused = true;
                // The owner's end wakes this read.
                Poll::Pending
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
}
