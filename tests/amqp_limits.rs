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
        let mut c = raw_session(&hub).await;
        c.send(&bomb).await;
        let close = c.closed_with(DECODE_ERROR).await;
        assert!(close.contains("nested"), "{what}: {close}");
        still_serving(&hub).await;
    }
}

/// Attaches a sending link to `address` on channel 0 and waits for the hub's credit.
async fn sending_link(c: &mut Raw, address: &str) {
    c.send(&frame(0, &attach(0, true, address, &[], &[]))).await;
    c.wait_for(ATTACH).await;
    c.wait_for(FLOW).await;
}

#[tokio::test]
async fn a_deep_cbs_body_closes_the_connection() {
    let hub = TestHub::start().await;
    let mut c = raw_session(&hub).await;
    sending_link(&mut c, "$cbs").await;
    c.send(&frame(0, &transfer(0, &described_bomb(3000)))).await;
    c.closed_with(DECODE_ERROR).await;
    still_serving(&hub).await;
}

#[tokio::test]
async fn a_deep_c2d_body_from_an_authenticated_service_closes_the_connection() {
    let hub = TestHub::start().await;
    hub.create_device("deep").await;
    let user = format!("iothubowner@sas.root.{}", hub.hub.state.hub_name());
    let token = hub.token("iothubowner");
    let mut c = RawAmqp::start(tls(&hub).await, Some((&user, &token))).await;
    c.send(&frame(0, &begin(&[]))).await;
    c.wait_for(BEGIN).await;
    sending_link(&mut c, "/messages/devicebound").await;
    c.send(&frame(0, &transfer(0, &described_bomb(5000)))).await;
    c.closed_with(DECODE_ERROR).await;
    still_serving(&hub).await;
}

#[tokio::test]
async fn a_frame_smaller_than_its_header_is_a_framing_error() {
    let hub = TestHub::start().await;
    let mut c = raw_session(&hub).await;
    c.send(&[0, 0, 0, 4, 2, 0, 0, 0]).await;
    let close = c.closed_with(FRAMING_ERROR).await;
    assert!(close.contains("at least its 8-byte header"), "{close}");
    still_serving(&hub).await;
}

#[tokio::test]
async fn channels_and_handles_beyond_the_announced_maximum_are_framing_errors() {
    let hub = TestHub::start().await;
    let mut c = raw_session(&hub).await;
    c.send(&frame(256, &begin(&[]))).await;
    let close = c.closed_with(FRAMING_ERROR).await;
    assert!(close.contains("channel-max of 255"), "{close}");

    let mut c = raw_session(&hub).await;
    c.send(&frame(0, &attach(64, false, "$cbs", &[], &[])))
        .await;
    let close = c.closed_with(FRAMING_ERROR).await;
    assert!(close.contains("handle-max of 63"), "{close}");
    still_serving(&hub).await;
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
