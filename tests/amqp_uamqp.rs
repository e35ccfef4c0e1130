//! What uamqp (the AMQP library under the Azure CLI's `az iot hub monitor-events` and
//! azure-iot-hub's C2D) sends that a strict decoder would refuse: performative
//! properties keyed by strings instead of symbols. Azure accepts them; so must the hub.
//! Driven by a raw AMQP peer over real TLS on loopback.

mod common;

use common::amqp_raw::*;
use common::{TestHub, tls_to};

/// `{key: value}` with both as str8, as uamqp encodes connection and link properties.
fn string_keyed(key: &str, value: &str) -> Vec<u8> {
    let mut items = vec![0xa1, key.len() as u8];
    items.extend_from_slice(key.as_bytes());
    items.extend_from_slice(&[0xa1, value.len() as u8]);
    items.extend_from_slice(value.as_bytes());
    let mut map = vec![0xc1, items.len() as u8 + 1, 2];
    map.extend_from_slice(&items);
    map
}

#[tokio::test]
async fn string_keyed_open_and_begin_properties_are_accepted() {
    let hub = TestHub::start().await;
    let io = tls_to(
        hub.hub.info.ports.amqp.expect("amqp served"),
        &hub.hub.ca_pem,
    )
    .await;
    let mut c = RawAmqp::handshake(io, None).await;
    // open: container-id, then 8 nulls, then properties (the 10th field).
    let mut fields = str32("uamqp-client");
    fields.extend_from_slice(&[0x40; 8]);
    fields.extend_from_slice(&string_keyed("product", "uamqp"));
    c.send(&frame(0, &performative(OPEN, &fields, 10))).await;
    let open = c.wait_for(OPEN).await;
    assert_eq!(
        open.get(2),
        Some(&OPEN),
        "the hub answers with its own open"
    );
    c.send(&frame(
        0,
        &begin(&string_keyed("com.microsoft:client", "uamqp")),
    ))
    .await;
    let begun = c.wait_for(BEGIN).await;
    assert_eq!(begun.get(2), Some(&BEGIN));
}
