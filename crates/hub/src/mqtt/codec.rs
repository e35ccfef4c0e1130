//! MQTT 3.1.1 framing over any byte stream, using rumqttc's packet reader and
//! writer. The reader keeps partial frames in its buffer, so `next` is
//! cancel-safe inside `select!`; the writer collects packets and sends them in
//! one write per `flush`.

use bytes::BytesMut;
use rumqttc::mqttbytes::{self, v4::Packet};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Why reading the next packet failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("the client closed the connection")]
    Closed,
    #[error("reading from the client failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("the client sent a malformed or oversized packet: {0}")]
    Protocol(mqttbytes::Error),
}

pub struct PacketReader<R> {
    io: R,
    buf: BytesMut,
    max_packet: usize,
}

impl<R: AsyncRead + Unpin> PacketReader<R> {
    pub fn new(io: R, max_packet: usize) -> Self {
        PacketReader {
            io,
            buf: BytesMut::with_capacity(4096),
            max_packet,
        }
    }

    /// The next complete packet. Cancel-safe: bytes already read stay buffered.
    pub async fn next(&mut self) -> Result<Packet, ReadError> {
        loop {
            match Packet::read(&mut self.buf, self.max_packet) {
                Ok(p) => return Ok(p),
                Err(mqttbytes::Error::InsufficientBytes(n)) => self.buf.reserve(n),
                Err(e) => return Err(ReadError::Protocol(e)),
            }
            if self.io.read_buf(&mut self.buf).await? == 0 {
                return Err(ReadError::Closed);
            }
        }
    }
}

pub struct PacketWriter<W> {
    io: W,
    buf: BytesMut,
}

impl<W: AsyncWrite + Unpin> PacketWriter<W> {
    pub fn new(io: W) -> Self {
        PacketWriter {
            io,
            buf: BytesMut::with_capacity(4096),
        }
    }

    /// Encodes a packet into the outgoing buffer; nothing is sent before `flush`.
    pub fn queue(&mut self, packet: &Packet) -> std::io::Result<()> {
        packet
            .write(&mut self.buf, usize::MAX)
            .map(|_| ())
            .map_err(std::io::Error::other)
    }

    /// Sends everything queued.
    pub async fn flush(&mut self) -> std::io::Result<()> {
        if !self.buf.is_empty() {
            self.io.write_all(&self.buf).await?;
            self.buf.clear();
        }
        self.io.flush().await
    }

    /// Sends what is queued and closes the write side (TLS close_notify, then FIN).
    pub async fn close(&mut self) {
        let _ = self.flush().await;
        let _ = self.io.shutdown().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rumqttc::mqttbytes::QoS;
    use rumqttc::mqttbytes::v4::{PubAck, Publish};

    #[tokio::test]
    async fn round_trip_in_pieces_and_size_limit() {
        let (client, server) = tokio::io::duplex(64);
        let mut w = PacketWriter::new(client);
        let mut r = PacketReader::new(server, 200);
        let publish = Packet::Publish(Publish::new("a/b", QoS::AtLeastOnce, vec![7u8; 150]));
        let mut publish_with_id = publish.clone();
        if let Packet::Publish(p) = &mut publish_with_id {
            p.pkid = 3;
        }
        w.queue(&publish_with_id).unwrap();
        w.queue(&Packet::PubAck(PubAck::new(9))).unwrap();
        w.queue(&Packet::Publish(Publish::new(
            "x",
            QoS::AtMostOnce,
            vec![0u8; 300],
        )))
        .unwrap();
        // The reader stops before the writer is done: the write may fail, that is fine.
        let writer = tokio::spawn(async move {
            let _ = w.flush().await;
        });
        assert_eq!(r.next().await.unwrap(), publish_with_id);
        assert_eq!(r.next().await.unwrap(), Packet::PubAck(PubAck::new(9)));
        assert!(matches!(
            r.next().await,
            Err(ReadError::Protocol(
                mqttbytes::Error::PayloadSizeLimitExceeded(_)
            ))
        ));
        drop(r);
        writer.await.unwrap();
    }

    #[tokio::test]
    async fn eof_is_closed() {
        let (client, server) = tokio::io::duplex(64);
        drop(client);
        let mut r = PacketReader::new(server, 100);
        assert!(matches!(r.next().await, Err(ReadError::Closed)));
    }
}
