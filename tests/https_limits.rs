//! Limits that keep the hub serving everyone: the query language's size and depth, the
//! HTTPS time limits (request headers, request body rate, idle keep-alive), connection
//! caps per listener and per address, and the descriptor limit raised at start.

mod common;

use std::time::Duration;

use common::{API, TestHub, tls_connect};
use hubtui::hub::ConnectionLimits;
use reqwest::{Method, StatusCode};
use serde_json::json;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long a test waits for what must happen well within it.
const T: Duration = Duration::from_secs(5);

/// Time limits short enough for tests; connection caps high enough not to matter.
fn short_timeouts() -> ConnectionLimits {
    ConnectionLimits {
        header_read_timeout: Duration::from_millis(400),
        keep_alive_timeout: Duration::from_millis(400),
        min_body_bytes_per_second: 1000,
        body_grace: Duration::from_millis(300),
        ..ConnectionLimits::default()
    }
}

async fn hub_with(limits: ConnectionLimits) -> TestHub {
    TestHub::start_with(|o| o.limits = limits).await
}

/// A hub whose listeners admit `n` connections per address, with the default timeouts.
async fn hub_with_per_address_cap(n: usize) -> TestHub {
    hub_with(ConnectionLimits {
        max_connections_per_address: n,
        ..ConnectionLimits::default()
    })
    .await
}

/// Everything the hub sends until it closes the connection, or None if it is still open
/// after `T`.
async fn read_until_closed(s: &mut (impl AsyncRead + Unpin)) -> Option<String> {
    let bytes = bytes_until_closed(s).await?;
    Some(String::from_utf8_lossy(&bytes).into_owned())
}

async fn bytes_until_closed(s: &mut (impl AsyncRead + Unpin)) -> Option<Vec<u8>> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let read_all = async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(T, read_all).await.ok()?;
    Some(got)
}

/// The (type, stream) of each HTTP/2 frame in `bytes`.
fn h2_frames(mut bytes: &[u8]) -> Vec<(u8, u32)> {
    let mut frames = Vec::new();
    while bytes.len() >= 9 {
        let len = u32::from_be_bytes([0, bytes[0], bytes[1], bytes[2]]) as usize;
        let stream = u32::from_be_bytes([bytes[5], bytes[6], bytes[7], bytes[8]]) & 0x7fff_ffff;
        frames.push((bytes[3], stream));
        bytes = &bytes[(9 + len).min(bytes.len())..];
    }
    frames
}

async fn https(hub: &TestHub) -> tokio_rustls::client::TlsStream<TcpStream> {
    tls_connect(hub.hub.info.ports.https, &hub.hub.ca_pem, &[b"http/1.1"])
        .await
        .expect("TLS handshake")
}

#[tokio::test]
async fn a_query_longer_than_azure_allows_is_refused_and_the_hub_goes_on() {
    let hub = TestHub::start().await;
    hub.create_device("d1").await;
    let terms = vec!["deviceId = 'x'"; 20_000].join(" OR ");
    let huge = format!("SELECT * FROM devices WHERE {terms}");
    assert!(huge.len() > 140_000);
    let query = |sql: String| {
        hub.call_as(
            "registryRead",
            Method::POST,
            "/devices/query",
            Some(json!({ "query": sql })),
            &[],
        )
    };
    let r = query(huge).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    let message = r.body["Message"].as_str().unwrap_or_default();
    assert!(
        message.starts_with("ErrorCode:ArgumentInvalid;")
            && message.contains("longer than the 8192 characters allowed"),
        "{message}"
    );
    let r = query("SELECT * FROM devices WHERE deviceId = 'd1'".into()).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body.as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn a_connection_that_never_sends_a_request_is_closed() {
    let hub = hub_with(short_timeouts()).await;
    let mut silent = https(&hub).await;
    assert_eq!(read_until_closed(&mut silent).await.as_deref(), Some(""));
}

#[tokio::test]
async fn headers_sent_a_byte_at_a_time_are_cut_off() {
    let hub = hub_with(short_timeouts()).await;
    let mut slow = https(&hub).await;
    let headers = format!("GET /devices?{API} HTTP/1.1\r\nHost: localhost\r\n\r\n");
    let dribble = async {
        for b in headers.bytes() {
            if slow.write_all(&[b]).await.is_err() || slow.flush().await.is_err() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    };
    // The hub closes before the headers are complete (writes then fail, or it answers).
    let closed = tokio::time::timeout(T, dribble).await.unwrap_or(false);
    let rest = read_until_closed(&mut slow).await;
    assert!(closed || rest.is_some_and(|r| !r.contains("HTTP/1.1 401")));
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed() {
    let hub = hub_with(short_timeouts()).await;
    let mut s = https(&hub).await;
    let request = format!("GET /devices?{API} HTTP/1.1\r\nHost: localhost\r\n\r\n");
    s.write_all(request.as_bytes()).await.unwrap();
    // One answer (401: no token), then nothing more until the hub closes the connection.
    let got = read_until_closed(&mut s).await.expect("closed while idle");
    assert!(got.starts_with("HTTP/1.1 401"), "{got}");
    assert_eq!(got.matches("HTTP/1.1").count(), 1, "{got}");
}

#[tokio::test]
async fn an_idle_http2_connection_is_closed() {
    let hub = hub_with(short_timeouts()).await;
    let mut s = tls_connect(hub.hub.info.ports.https, &hub.hub.ca_pem, &[b"h2"])
        .await
        .unwrap();
    assert_eq!(s.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    // Preface, empty SETTINGS, then GET / on stream 1 (HPACK static entries and a literal
    // :authority), END_STREAM | END_HEADERS.
    let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    out.extend_from_slice(&[0, 0, 0, 0x4, 0, 0, 0, 0, 0]);
    let block = [&[0x82, 0x87, 0x84, 0x41, 9][..], b"localhost"].concat();
    out.extend_from_slice(&[0, 0, block.len() as u8, 0x1, 0x5, 0, 0, 0, 1]);
    out.extend_from_slice(&block);
    s.write_all(&out).await.unwrap();
    // The answer (HEADERS on stream 1), then the hub closes the idle connection.
    let got = bytes_until_closed(&mut s).await.expect("closed while idle");
    let frames = h2_frames(&got);
    assert!(
        frames.contains(&(0x1, 1)),
        "no answer before the close: {frames:?}"
    );
}

#[tokio::test]
async fn a_body_sent_a_byte_at_a_time_is_cut_off() {
    let hub = hub_with(short_timeouts()).await;
    let mut s = https(&hub).await;
    let headers = format!(
        "POST /devices/query?{API} HTTP/1.1\r\nHost: localhost\r\nAuthorization: {}\r\n\
         Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n",
        hub.token("iothubowner")
    );
    s.write_all(headers.as_bytes()).await.unwrap();
    let (mut rd, mut wr) = tokio::io::split(s);
    let dribble = tokio::spawn(async move {
        for _ in 0..1000 {
            if wr.write_all(b" ").await.is_err() || wr.flush().await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    let got = read_until_closed(&mut rd).await.expect("slow body cut off");
    dribble.abort();
    assert!(got.starts_with("HTTP/1.1 400"), "{got}");
    assert!(got.contains("slower than 1000 bytes a second"), "{got}");
}

/// Whether the hub closes a fresh TCP connection to `port` at once (refused).
async fn refused(port: u16) -> bool {
    let mut tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let mut buf = [0u8; 1];
    matches!(
        tokio::time::timeout(Duration::from_millis(500), tcp.read(&mut buf)).await,
        Ok(Ok(0) | Err(_))
    )
}

#[tokio::test]
async fn one_address_cannot_hold_more_than_its_connections() {
    let hub = hub_with_per_address_cap(3).await;
    let ports = &hub.hub.info.ports;
    for port in [ports.https, ports.mqtt, ports.amqp.unwrap()] {
        let mut held = Vec::new();
        for _ in 0..3 {
            held.push(TcpStream::connect(("127.0.0.1", port)).await.unwrap());
        }
        assert!(refused(port).await, "port {port} admitted a 4th connection");
        // A connection that ends gives its place back.
        held.pop();
        let deadline = tokio::time::Instant::now() + T;
        while refused(port).await {
            assert!(
                tokio::time::Instant::now() < deadline,
                "port {port}: no slot freed"
            );
        }
    }
    // REST answers a fresh client once the silent connections are gone.
    let r = hub.call(Method::GET, "/devices", None).await;
    assert_eq!(r.status, StatusCode::OK);
}

#[tokio::test]
async fn a_websocket_keeps_the_place_of_the_connection_it_upgraded() {
    let hub = hub_with_per_address_cap(2).await;
    let port = hub.hub.info.ports.https;
    let mut ws = https(&hub).await;
    let upgrade = "GET /$iothub/websocket HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n\
                   Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
                   Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n";
    ws.write_all(upgrade.as_bytes()).await.unwrap();
    let mut head = [0u8; 12];
    ws.read_exact(&mut head).await.unwrap();
    assert_eq!(&head, b"HTTP/1.1 101");
    // The upgraded connection (waiting for MQTT CONNECT) still counts: one more fits.
    let _second = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    assert!(refused(port).await, "a third connection was admitted");
}

#[tokio::test]
async fn the_hub_raises_its_descriptor_limit_to_the_hard_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit read and write only the struct passed in.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim), 0);
        // One below the hard limit, so the hub has something to raise.
        let lowered = libc::rlimit {
            rlim_cur: lim.rlim_max.min(1 << 20) - 1,
            rlim_max: lim.rlim_max,
        };
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &lowered), 0);
    }
    let _hub = TestHub::start().await;
    let mut now = lim;
    // SAFETY: as above.
    unsafe { assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut now), 0) };
    assert_eq!(now.rlim_cur, lim.rlim_max);
}
