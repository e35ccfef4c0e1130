//! A raw AMQP peer for sending frames no client library would send (nesting
//! bombs, bad sizes, channels and handles beyond what the hub announced), and
//! reading what the hub answers.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

const T: Duration = Duration::from_secs(10);

pub const OPEN: u8 = 0x10;
pub const BEGIN: u8 = 0x11;
pub const ATTACH: u8 = 0x12;
pub const FLOW: u8 = 0x13;
pub const TRANSFER: u8 = 0x14;
pub const DETACH: u8 = 0x16;
pub const END: u8 = 0x17;
pub const CLOSE: u8 = 0x18;

/// An AMQP frame (type 0, or 1 for SASL) carrying `body`.
pub fn frame_of_type(kind: u8, channel: u16, body: &[u8]) -> Vec<u8> {
    let mut f = ((body.len() + 8) as u32).to_be_bytes().to_vec();
    f.extend_from_slice(&[2, kind]);
    f.extend_from_slice(&channel.to_be_bytes());
    f.extend_from_slice(body);
    f
}

pub fn frame(channel: u16, body: &[u8]) -> Vec<u8> {
    frame_of_type(0, channel, body)
}

/// `items` (already encoded, `count` of them) as a list32.
pub fn list(items: &[u8], count: u32) -> Vec<u8> {
    let mut l = vec![0xd0];
    l.extend_from_slice(&(items.len() as u32 + 4).to_be_bytes());
    l.extend_from_slice(&count.to_be_bytes());
    l.extend_from_slice(items);
    l
}

pub fn performative(code: u8, fields: &[u8], count: u32) -> Vec<u8> {
    let mut p = vec![0x00, 0x53, code];
    p.extend_from_slice(&list(fields, count));
    p
}

fn variable(code: u8, bytes: &[u8]) -> Vec<u8> {
    let mut v = vec![code];
    v.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
    v.extend_from_slice(bytes);
    v
}

pub fn str32(s: &str) -> Vec<u8> {
    variable(0xb1, s.as_bytes())
}

pub fn sym32(s: &str) -> Vec<u8> {
    variable(0xb3, s.as_bytes())
}

pub fn bin32(b: &[u8]) -> Vec<u8> {
    variable(0xb0, b)
}

/// A described value nested `depth` deep around a null (3 bytes a level).
pub fn described_bomb(depth: usize) -> Vec<u8> {
    let mut v = [0x00, 0x53, 0x01].repeat(depth);
    v.push(0x40);
    v
}

/// A map32 {sym key: value}: what `properties` and `filter` fields hold.
pub fn map_of(key: &str, value: &[u8]) -> Vec<u8> {
    let mut items = sym32(key);
    items.extend_from_slice(value);
    let mut m = vec![0xd1];
    m.extend_from_slice(&(items.len() as u32 + 4).to_be_bytes());
    m.extend_from_slice(&2u32.to_be_bytes());
    m.extend_from_slice(&items);
    m
}

/// Begin with `properties` (null if empty).
pub fn begin(properties: &[u8]) -> Vec<u8> {
    let mut f = vec![
        0x40, 0x43, 0x70, 0, 0, 0x10, 0, 0x70, 0, 0, 0x10, 0, 0x40, 0x40, 0x40,
    ];
    f.extend_from_slice(if properties.is_empty() {
        &[0x40]
    } else {
        properties
    });
    performative(BEGIN, &f, 8)
}

/// Attach of a link with `handle`: the client sends to `address` (`sender`) or
/// receives from it, with `filter` on the source and `properties` (null if empty).
pub fn attach(
    handle: u8,
    sender: bool,
    address: &str,
    filter: &[u8],
    properties: &[u8],
) -> Vec<u8> {
    let null_or = |v: &[u8]| if v.is_empty() { vec![0x40] } else { v.to_vec() };
    let mut source_fields = if sender { vec![0x40] } else { str32(address) };
    source_fields.extend_from_slice(&[0x40; 6]);
    source_fields.extend_from_slice(&null_or(filter));
    let mut source = vec![0x00, 0x53, 0x28];
    source.extend_from_slice(&list(&source_fields, 8));
    let mut target = vec![0x00, 0x53, 0x29];
    target.extend_from_slice(&list(&if sender { str32(address) } else { vec![0x40] }, 1));

    let mut f = str32(&format!("link-{handle}"));
    f.extend_from_slice(&[0x52, handle, if sender { 0x42 } else { 0x41 }, 0x40, 0x40]);
    f.extend_from_slice(&source);
    f.extend_from_slice(&target);
    f.extend_from_slice(&[0x40, 0x42, 0x43, 0x40, 0x40, 0x40]);
    f.extend_from_slice(&null_or(properties));
    performative(ATTACH, &f, 14)
}

/// Flow with `properties`.
pub fn flow(properties: &[u8]) -> Vec<u8> {
    let mut f = vec![0x43, 0x70, 0, 0, 0x10, 0, 0x43, 0x70, 0, 0, 0x10, 0];
    f.extend_from_slice(&[0x40; 6]);
    f.extend_from_slice(properties);
    performative(FLOW, &f, 11)
}

/// A settled single-frame transfer on `handle` whose message is an amqp-value.
pub fn transfer(handle: u8, value: &[u8]) -> Vec<u8> {
    let mut t = performative(TRANSFER, &[0x52, handle, 0x43, 0xa0, 1, 1, 0x43, 0x41], 5);
    t.extend_from_slice(&[0x00, 0x53, 0x77]);
    t.extend_from_slice(value);
    t
}

/// One side of a raw AMQP connection.
pub struct RawAmqp<S> {
    io: S,
}

impl<S: AsyncRead + AsyncWrite + Unpin> RawAmqp<S> {
    /// Exchanges protocol headers (and SASL PLAIN with `plain` = user and
    /// password) and sends Open; does not wait for the hub's Open.
    pub async fn start(io: S, plain: Option<(&str, &str)>) -> RawAmqp<S> {
        let mut raw = RawAmqp::handshake(io, plain).await;
        raw.send(&frame(0, &performative(OPEN, &str32("raw-client"), 1)))
            .await;
        raw
    }

    /// [`RawAmqp::start`] up to the Open, which the caller sends.
    pub async fn handshake(io: S, plain: Option<(&str, &str)>) -> RawAmqp<S> {
        let mut raw = RawAmqp { io };
        if let Some((user, password)) = plain {
            raw.send(b"AMQP\x03\x01\x00\x00").await;
            raw.wait_for(0x40).await; // sasl-mechanisms
            let mut response = vec![0];
            response.extend_from_slice(user.as_bytes());
            response.push(0);
            response.extend_from_slice(password.as_bytes());
            let mut init = sym32("PLAIN");
            init.extend_from_slice(&bin32(&response));
            raw.send(&frame_of_type(1, 0, &performative(0x41, &init, 2)))
                .await;
            let outcome = raw.wait_for(0x44).await;
            // sasl-outcome [code: ubyte 0 (ok), ...] as a list8
            assert_eq!(outcome[6..8], [0x50, 0], "SASL outcome ok");
        }
        raw.send(b"AMQP\x00\x01\x00\x00").await;
        raw
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        self.io.write_all(bytes).await.unwrap();
        self.io.flush().await.unwrap();
    }

    /// The next frame's channel and body (headers skipped), or None at the end.
    pub async fn next_frame(&mut self) -> Option<(u16, Vec<u8>)> {
        loop {
            let mut head = [0u8; 8];
            match tokio::time::timeout(T, self.io.read_exact(&mut head)).await {
                Ok(Ok(_)) => {}
                Ok(Err(_)) => return None,
                Err(_) => panic!("the hub neither sent a frame nor closed within {T:?}"),
            }
            if &head[..4] == b"AMQP" {
                continue;
            }
            let size = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
            let mut body = vec![0u8; size - usize::from(head[4]) * 4];
            self.io.read_exact(&mut body).await.ok()?;
            return Some((u16::from_be_bytes([head[6], head[7]]), body));
        }
    }

    /// The body of the next frame with performative `code` (earlier frames skipped).
    pub async fn wait_for(&mut self, code: u8) -> Vec<u8> {
        loop {
            let (_, body) = self
                .next_frame()
                .await
                .unwrap_or_else(|| panic!("the connection ended before a frame 0x{code:02x}"));
            if body.get(2) == Some(&code) {
                return body;
            }
        }
    }

    /// The error carried by the hub's CLOSE (checked to contain `condition`),
    /// after which the connection must end.
    pub async fn closed_with(&mut self, condition: &str) -> String {
        let close = self.wait_for(CLOSE).await;
        let text = String::from_utf8_lossy(&close).into_owned();
        assert!(
            text.contains(condition),
            "CLOSE carries {condition}: {text}"
        );
        while self.next_frame().await.is_some() {}
        text
    }

    /// The connection ends without a CLOSE.
    pub async fn dropped(&mut self) {
        while let Some((_, body)) = self.next_frame().await {
            assert_ne!(body.get(2), Some(&CLOSE), "no CLOSE is sent before Open");
        }
    }
}
