//! Checks every frame a client sends before the AMQP engine reads it
//! ([`FrameScanner`]: frame headers, value nesting depth). A refused frame never
//! reaches the engine: the reader stops there, the connection's owner is told why
//! (so it can close the connection with that AMQP error), and after a short grace
//! for that CLOSE to go out the stream ends.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::watch;
use tokio::time::Sleep;

use crate::iothub::amqp_frame::{FrameError, FrameScanner, Limits};

/// How long a refused connection stays open for its CLOSE to be written.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// A stream whose incoming frames are checked before they are read.
#[derive(Debug)]
pub struct FrameGuard<Io> {
    inner: Io,
    scanner: FrameScanner,
    refusal: watch::Sender<Option<FrameError>>,
    /// Set once a frame is refused: when it fires, reads fail.
    grace: Option<Pin<Box<Sleep>>>,
}

impl<Io> FrameGuard<Io> {
    /// Guards `inner`, a connection that announced `limits`; the first refused
    /// frame's error is published on `refusal`.
    pub fn new(
        inner: Io,
        limits: Limits,
        refusal: watch::Sender<Option<FrameError>>,
    ) -> FrameGuard<Io> {
        FrameGuard {
            inner,
            scanner: FrameScanner::new(limits),
            refusal,
            grace: None,
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
        if let Some(grace) = &mut this.grace {
            ready!(grace.as_mut().poll(cx));
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "the client sent a frame the hub refused",
            )));
        }
        let before = buf.filled().len();
        ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?;
        match this.scanner.scan(&buf.filled()[before..]) {
            Ok(()) => Poll::Ready(Ok(())),
            Err(e) => {
                buf.set_filled(before);
                this.refusal.send_replace(Some(e));
                let mut grace = Box::pin(tokio::time::sleep(CLOSE_GRACE));
                // Registers the waker; a fresh timer is not yet due.
                let _ = grace.as_mut().poll(cx);
                this.grace = Some(grace);
                Poll::Pending
            }
        }
    }
}

impl<Io: AsyncWrite + Unpin> AsyncWrite for FrameGuard<Io> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test(start_paused = true)]
    async fn a_refused_frame_is_withheld_reported_and_ends_the_stream() {
        let (mut client, server) = tokio::io::duplex(64);
        let (refusal, mut refused) = watch::channel(None);
        let limits = Limits {
            max_frame: 1024,
            channel_max: 0,
            handle_max: 0,
        };
        let mut guard = FrameGuard::new(server, limits, refusal);
        client.write_all(b"AMQP\x00\x01\x00\x00").await.unwrap();
        let mut header = [0u8; 8];
        guard.read_exact(&mut header).await.unwrap();
        // A frame that declares 4 bytes.
        client.write_all(&[0, 0, 0, 4, 2, 0, 0, 0]).await.unwrap();
        let mut rest = [0u8; 8];
        let read = guard.read(&mut rest).await;
        assert_eq!(read.unwrap_err().kind(), io::ErrorKind::InvalidData);
        refused.changed().await.unwrap();
        assert_eq!(*refused.borrow(), Some(FrameError::FrameTooSmall(4)));
    }
}
