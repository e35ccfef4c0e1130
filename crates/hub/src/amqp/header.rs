//! Which layer a client starts with. The Azure SDKs for Python and .NET open with
//! the SASL header (`AMQP 3 1 0 0`); azure-iothub for JavaScript (rhea without
//! SASL mechanisms) opens with the plain AMQP header (`AMQP 0 1 0 0`) and then
//! authorizes with CBS, which IoT Hub accepts. fe2o3's acceptor handles one or the
//! other, so the hub reads the header first and hands the stream on with those
//! bytes put back ([`Replayed`]).

use std::fmt;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};

/// The first layer a client asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layer {
    /// SASL first (protocol id 3).
    Sasl,
    /// AMQP directly (protocol id 0): anonymous until a CBS token is put.
    Amqp,
    /// Anything else (TLS id 2 on an already encrypted stream, garbage): fe2o3's
    /// SASL acceptor answers it with the header it expects and closes.
    Other,
}

/// Reads the 8-byte protocol header and returns the layer it asks for plus the
/// stream with the header still to be read.
pub async fn read<Io>(mut io: Io) -> io::Result<(Layer, Replayed<Io>)>
where
    Io: AsyncRead + Unpin,
{
    let mut header = [0u8; 8];
    io.read_exact(&mut header).await?;
    Ok((
        layer(&header),
        Replayed {
            header,
            sent: 0,
            io,
        },
    ))
}

pub fn layer(header: &[u8; 8]) -> Layer {
    match header {
        [b'A', b'M', b'Q', b'P', 3, 1, 0, 0] => Layer::Sasl,
        [b'A', b'M', b'Q', b'P', 0, 1, 0, 0] => Layer::Amqp,
        _ => Layer::Other,
    }
}

/// A stream whose first eight bytes (already read) are served again.
pub struct Replayed<Io> {
    header: [u8; 8],
    sent: usize,
    io: Io,
}

impl<Io> fmt::Debug for Replayed<Io> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Replayed")
            .field("header_left", &(self.header.len() - self.sent))
            .finish()
    }
}

impl<Io: AsyncRead + Unpin> AsyncRead for Replayed<Io> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.sent < this.header.len() {
            let n = (this.header.len() - this.sent).min(buf.remaining());
            buf.put_slice(&this.header[this.sent..this.sent + n]);
            this.sent += n;
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.io).poll_read(cx, buf)
    }
}

impl<Io: AsyncWrite + Unpin> AsyncWrite for Replayed<Io> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_name_their_layer() {
        assert_eq!(layer(b"AMQP\x03\x01\x00\x00"), Layer::Sasl);
        assert_eq!(layer(b"AMQP\x00\x01\x00\x00"), Layer::Amqp);
        assert_eq!(layer(b"AMQP\x02\x01\x00\x00"), Layer::Other);
        assert_eq!(layer(b"GET / HT"), Layer::Other);
    }

    #[tokio::test]
    async fn the_header_is_read_again_then_the_rest() {
        let (mut a, b) = tokio::io::duplex(64);
        tokio::io::AsyncWriteExt::write_all(&mut a, b"AMQP\x00\x01\x00\x00rest")
            .await
            .unwrap();
        drop(a);
        let (l, mut r) = read(b).await.unwrap();
        assert_eq!(l, Layer::Amqp);
        let mut all = Vec::new();
        r.read_to_end(&mut all).await.unwrap();
        assert_eq!(all, b"AMQP\x00\x01\x00\x00rest");
    }
}
