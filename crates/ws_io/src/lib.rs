//! A WebSocket as a byte stream, so MQTT and AMQP (which expect one) run over
//! WebSockets unchanged: the local hub's endpoints on its HTTPS port and the
//! client's AMQP-over-WebSockets transport both use it. Protocol-neutral: it
//! knows tungstenite messages and tokio's byte-stream traits, nothing of IoT Hub.

use std::fmt;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Bytes, BytesMut};
use futures::{Sink, Stream};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

/// Outgoing bytes are sent as one binary message per flush, or once this many collect.
const MAX_OUTGOING: usize = 1024 * 1024;

/// A WebSocket as a byte stream: binary messages in, one binary message out per
/// flush. Text messages are refused (MQTT and AMQP over WebSockets are binary);
/// pings are answered by tungstenite; a close ends the stream.
pub struct WsIo<S> {
    ws: S,
    incoming: Bytes,
    outgoing: BytesMut,
    eof: bool,
}

impl<S> WsIo<S> {
    pub fn new(ws: S) -> WsIo<S> {
        WsIo {
            ws,
            incoming: Bytes::new(),
            outgoing: BytesMut::new(),
            eof: false,
        }
    }
}

impl<S> fmt::Debug for WsIo<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WsIo")
            .field("incoming", &self.incoming.len())
            .field("outgoing", &self.outgoing.len())
            .field("eof", &self.eof)
            .finish()
    }
}

fn io_error(e: WsError) -> io::Error {
    match e {
        WsError::Io(e) => e,
        WsError::ConnectionClosed | WsError::AlreadyClosed => io::ErrorKind::NotConnected.into(),
        WsError::Capacity(e) => io::Error::new(io::ErrorKind::InvalidData, e),
        other => io::Error::other(other),
    }
}

impl<S> WsIo<S>
where
    S: Sink<Message, Error = WsError> + Unpin,
{
    /// Hands the collected outgoing bytes to the WebSocket as one message.
    fn poll_send_outgoing(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.outgoing.is_empty() {
            return Poll::Ready(Ok(()));
        }
        ready!(Pin::new(&mut self.ws).poll_ready(cx)).map_err(io_error)?;
        let bytes = self.outgoing.split().freeze();
        Pin::new(&mut self.ws)
            .start_send(Message::Binary(bytes))
            .map_err(io_error)?;
        Poll::Ready(Ok(()))
    }
}

impl<S> AsyncRead for WsIo<S>
where
    S: Stream<Item = Result<Message, WsError>> + Unpin,
{
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if !this.incoming.is_empty() {
                let n = this.incoming.len().min(buf.remaining());
                buf.put_slice(&this.incoming.split_to(n));
                return Poll::Ready(Ok(()));
            }
            if this.eof {
                return Poll::Ready(Ok(()));
            }
            match ready!(Pin::new(&mut this.ws).poll_next(cx)) {
                Some(Ok(Message::Binary(b))) => this.incoming = b,
                Some(Ok(Message::Text(_))) => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "a text WebSocket message: this endpoint carries binary messages only",
                    )));
                }
                // Pings are answered by tungstenite; a close is followed by the end.
                Some(Ok(_)) => {}
                None | Some(Err(WsError::ConnectionClosed | WsError::AlreadyClosed)) => {
                    this.eof = true;
                }
                Some(Err(e)) => return Poll::Ready(Err(io_error(e))),
            }
        }
    }
}

impl<S> AsyncWrite for WsIo<S>
where
    S: Sink<Message, Error = WsError> + Unpin,
{
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.outgoing.len() >= MAX_OUTGOING {
            ready!(this.poll_send_outgoing(cx))?;
        }
        let n = buf.len().min(MAX_OUTGOING - this.outgoing.len());
        this.outgoing.extend_from_slice(&buf[..n]);
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_send_outgoing(cx))?;
        Pin::new(&mut this.ws).poll_flush(cx).map_err(io_error)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_send_outgoing(cx))?;
        match ready!(Pin::new(&mut this.ws).poll_close(cx)) {
            Ok(()) | Err(WsError::ConnectionClosed | WsError::AlreadyClosed) => Poll::Ready(Ok(())),
            Err(e) => Poll::Ready(Err(io_error(e))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_tungstenite::WebSocketStream;
    use tokio_tungstenite::tungstenite::protocol::Role;

    #[tokio::test]
    async fn bytes_cross_in_binary_messages_either_way() {
        let (a, b) = tokio::io::duplex(1 << 16);
        let (server, client) = tokio::join!(
            WebSocketStream::from_raw_socket(a, Role::Server, None),
            WebSocketStream::from_raw_socket(b, Role::Client, None),
        );
        let mut server = WsIo::new(server);
        let mut client = WsIo::new(client);
        client.write_all(b"hello ").await.unwrap();
        client.write_all(b"world").await.unwrap();
        client.flush().await.unwrap();
        let mut got = [0u8; 11];
        server.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"hello world");

        // More than one message's worth, read while it is written.
        let big = vec![7u8; MAX_OUTGOING + 10];
        let mut back = vec![0u8; big.len()];
        let (w, r) = tokio::join!(
            async {
                server.write_all(&big).await?;
                server.flush().await
            },
            client.read_exact(&mut back)
        );
        w.unwrap();
        r.unwrap();
        assert_eq!(back, big);

        client.shutdown().await.unwrap();
        let mut rest = Vec::new();
        assert_eq!(server.read_to_end(&mut rest).await.unwrap(), 0);
    }
}
