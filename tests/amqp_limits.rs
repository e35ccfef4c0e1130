//! What the hub's AMQP endpoint refuses, driven by a raw AMQP peer over real TLS
//! on loopback: values nested deep enough to overflow a recursive decoder, bad
//! frame sizes, channels, handles, sessions and links beyond the hub's limits, and
//! connections that never authenticate. After each, the hub must go on serving.

mod common;

use std::time::Duration;

use common::amqp_raw::*;
use common::{TestHub, tls_to};
use reqwest::{Method, StatusCode};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

const DECODE_ERROR: &str = "amqp:decode-error";
const FRAMING_ERROR: &str = "amqp:connection:framing-error";
const RESOURCE_LIMIT: &str = "amqp:resource-limit-exceeded";

type Raw = RawAmqp<TlsStream<TcpStream>>;

async fn tls(hub: &TestHub) -> TlsStream<TcpStream> {
    tls_to(
        hub.hub.info.ports.amqp.expect("amqp served"),
        &hub.hub.ca_pem,
    )
    .await
}

/// A raw connection with one session on channel 0.
async fn raw_session(hub: &TestHub) -> Raw {
    let mut c = RawAmqp::start(tls(hub).await, None).await;
    c.send(&frame(0, &begin(&[]))).await;
    c.wait_for(BEGIN).await;
    c
}

/// The hub still answers REST and begins AMQP sessions.
async fn still_serving(hub: &TestHub) {
    let r = hub.call(Method::GET, "/devices", None).await;
    assert_eq!(r.status, StatusCode::OK);
    raw_session(hub).await;
}

/// Sends `bytes` on a fresh session and expects a CLOSE with `condition` whose
/// description says `says`; then the hub must still serve others.
async fn refused(hub: &TestHub, bytes: &[u8], condition: &str, says: &str) {
    let mut c = raw_session(hub).await;
    c.send(bytes).await;
    let close = c.closed_with(condition).await;
    assert!(close.contains(says), "{close}");
    still_serving(hub).await;
}

fn deep_properties() -> Vec<u8> {
    map_of("deep", &described_bomb(5000))
}

#[tokio::test]
async fn a_deep_open_is_dropped_before_it_is_decoded() {
    let hub = TestHub::start().await;
    let mut c = RawAmqp::handshake(tls(&hub).await, None).await;
    let mut fields = str32("bomb");
    fields.extend_from_slice(&[0x40; 8]);
    fields.extend_from_slice(&deep_properties());
    c.send(&frame(0, &performative(OPEN, &fields, 10))).await;
    c.dropped().await;
    still_serving(&hub).await;
}

#[tokio::test]
async fn deep_values_in_begin_attach_flow_and_filters_close_the_connection() {
    let hub = TestHub::start().await;
    let bombs = [
        ("begin", frame(1, &begin(&deep_properties()))),
        (
            "attach",
            frame(0, &attach(0, false, "$cbs", &[], &deep_properties())),
        ),
        ("flow", frame(0, &flow(&deep_properties()))),
        (
            "filter",
            frame(0, &attach(0, false, "$cbs", &deep_properties(), &[])),
        ),
    ];
    for (what, bomb) in bombs {
        eprintln!("{what}");
        refused(&hub, &bomb, DECODE_ERROR, "nested").await;
    }
}

/// Sends a message nested `depth` deep on a link to `address` (channel 0, once
/// the hub gave credit) and expects the hub to close the connection.
async fn send_deep_message(hub: &TestHub, mut c: Raw, address: &str, depth: usize) {
    c.send(&frame(0, &attach(0, true, address, &[], &[]))).await;
    c.wait_for(ATTACH).await;
    c.wait_for(FLOW).await;
    c.send(&frame(0, &transfer(0, &described_bomb(depth))))
        .await;
    c.closed_with(DECODE_ERROR).await;
    still_serving(hub).await;
}

#[tokio::test]
async fn a_deep_cbs_body_closes_the_connection() {
    let hub = TestHub::start().await;
    let c = raw_session(&hub).await;
    send_deep_message(&hub, c, "$cbs", 3000).await;
}

#[tokio::test]
async fn a_deep_c2d_body_from_an_authenticated_service_closes_the_connection() {
    let hub = TestHub::start().await;
    let user = format!("iothubowner@sas.root.{}", hub.hub.state.hub_name());
    let token = hub.token("iothubowner");
    let mut c = RawAmqp::start(tls(&hub).await, Some((&user, &token))).await;
    c.send(&frame(0, &begin(&[]))).await;
    c.wait_for(BEGIN).await;
    send_deep_message(&hub, c, "/messages/devicebound", 5000).await;
}

#[tokio::test]
async fn a_frame_smaller_than_its_header_is_a_framing_error() {
    let hub = TestHub::start().await;
    let tiny = [0, 0, 0, 4, 2, 0, 0, 0];
    refused(&hub, &tiny, FRAMING_ERROR, "at least its 8-byte header").await;
}

#[tokio::test]
async fn channels_and_handles_beyond_the_announced_maximum_are_framing_errors() {
    let hub = TestHub::start().await;
    let session = frame(256, &begin(&[]));
    refused(&hub, &session, FRAMING_ERROR, "channel-max of 255").await;
    let link = frame(0, &attach(64, false, "$cbs", &[], &[]));
    refused(&hub, &link, FRAMING_ERROR, "handle-max of 63").await;
}

#[tokio::test]
async fn sessions_and_links_without_a_token_are_few() {
    let hub = TestHub::start().await;
    let mut c = raw_session(&hub).await;
    // Links (senders to $cbs, which stay open): four are served, the fifth is
    // detached with the limit.
    for handle in 0..4 {
        c.send(&frame(0, &attach(handle, true, "$cbs", &[], &[])))
            .await;
        c.wait_for(ATTACH).await;
    }
    c.send(&frame(0, &attach(4, true, "$cbs", &[], &[]))).await;
    let detach = String::from_utf8_lossy(&c.wait_for(DETACH).await).into_owned();
    assert!(detach.contains(RESOURCE_LIMIT), "{detach}");
    // Sessions: channel 0 plus fifteen more are served, the next is ended.
    for channel in 1..16 {
        c.send(&frame(channel, &begin(&[]))).await;
        c.wait_for(BEGIN).await;
    }
    c.send(&frame(16, &begin(&[]))).await;
    let end = String::from_utf8_lossy(&c.wait_for(END).await).into_owned();
    assert!(end.contains(RESOURCE_LIMIT), "{end}");
    still_serving(&hub).await;
}

#[tokio::test]
async fn a_connection_that_never_authenticates_is_closed() {
    let hub = TestHub::start_with(|o| o.settings.amqp_auth_window = Duration::from_secs(1)).await;
    let mut c = raw_session(&hub).await;
    let close = c.closed_with("amqp:unauthorized-access").await;
    assert!(close.contains("within 1 seconds"), "{close}");
}
