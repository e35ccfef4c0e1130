//! The hub's MQTT device endpoint, driven over TLS by rumqttc as the Azure SDKs
//! would drive it, and by a raw socket where rumqttc cannot misbehave enough.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use common::mqtt_device::{Device, WAIT};
use common::wait::{assert_nothing_within, eventually};
use common::{TestHub, client_tls, now};
use hubtui::hub::telemetry::StoredProperties;
use hubtui::iothub::property_bag::PropertyBag;
use hubtui::iothub::topic::{DevicePublish, HubPublish, Subscription, parse_hub_publish};
use reqwest::{Method, StatusCode};
use rumqttc::mqttbytes::Protocol;
use rumqttc::mqttbytes::v4::{Connect, Packet};
use rumqttc::{
    AsyncClient, ConnectReturnCode, ConnectionError, Event, EventLoop, MqttOptions, QoS,
};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn connack_code(opts: MqttOptions) -> Result<ConnectReturnCode, ConnectionError> {
    let (_client, mut eventloop): (AsyncClient, EventLoop) = AsyncClient::new(opts, 10);
    match eventloop.poll().await {
        Ok(Event::Incoming(Packet::ConnAck(a))) => Ok(a.code),
        Err(ConnectionError::ConnectionRefused(code)) => Ok(code),
        Ok(other) => panic!("unexpected {other:?}"),
        Err(e) => Err(e),
    }
}

fn telemetry_topic(device: &str, module: Option<&str>, bag: &str) -> String {
    DevicePublish::Telemetry {
        device_id: device.into(),
        module_id: module.map(str::to_string),
        properties: PropertyBag::parse(bag).unwrap(),
    }
    .to_topic()
}

async fn device_json(hub: &TestHub, id: &str) -> Value {
    let r = hub.call(Method::GET, &format!("/devices/{id}"), None).await;
    assert_eq!(r.status, StatusCode::OK);
    r.body
}

/// Polls until `check` holds for the device's registry JSON.
async fn wait_device(hub: &TestHub, id: &str, check: impl Fn(&Value) -> bool) -> Value {
    let check = &check;
    eventually(WAIT, "the device to match", || async move {
        Some(device_json(hub, id).await).filter(check)
    })
    .await
}

/// A raw TLS connection to the hub's MQTT port, for packets rumqttc won't send.
async fn raw_tls(hub: &TestHub) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", hub.hub.info.ports.mqtt))
        .await
        .unwrap();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client_tls(&hub.hub.ca_pem)));
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    connector.connect(name, tcp).await.unwrap()
}

async fn raw_send(s: &mut tokio_rustls::client::TlsStream<tokio::net::TcpStream>, packet: Packet) {
    let mut buf = BytesMut::new();
    packet.write(&mut buf, usize::MAX).unwrap();
    s.write_all(&buf).await.unwrap();
    s.flush().await.unwrap();
}

/// Reads one packet, or None at EOF / error.
async fn raw_read(
    s: &mut tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
    buf: &mut BytesMut,
) -> Option<Packet> {
    loop {
        match Packet::read(buf, 1 << 20) {
            Ok(p) => return Some(p),
            Err(rumqttc::mqttbytes::Error::InsufficientBytes(_)) => {}
            Err(e) => panic!("bad packet from the hub: {e}"),
        }
        match s.read_buf(buf).await {
            Ok(0) | Err(_) => return None,
            Ok(_) => {}
        }
    }
}

fn raw_connect(hub: &TestHub, device: &str, key: &str, keep_alive: u16) -> Connect {
    let mut c = Connect::new(device);
    c.keep_alive = keep_alive;
    c.clean_session = false;
    c.set_login(
        format!("{}/{device}/?api-version=2021-04-12", hub.host()),
        hub.device_token(&format!("devices/{device}"), key, now() + 3600),
    );
    c
}

#[tokio::test]
async fn connect_and_disconnect_update_the_registry() {
    let hub = TestHub::start().await;
    let key = hub.create_device("d1").await;
    let before = device_json(&hub, "d1").await;
    assert_eq!(before["connectionState"], "Disconnected");
    assert_eq!(before["lastActivityTime"], "0001-01-01T00:00:00Z");

    let dev = Device::connect(hub.mqtt_options("d1", &key)).await;
    let online = wait_device(&hub, "d1", |v| v["connectionState"] == "Connected").await;
    assert_ne!(online["lastActivityTime"], "0001-01-01T00:00:00Z");
    assert_ne!(
        online["connectionStateUpdatedTime"],
        before["connectionStateUpdatedTime"]
    );
    assert!(hub.hub.state.sessions.is_connected(&("d1".into(), None)));

    dev.disconnect().await;
    let offline = wait_device(&hub, "d1", |v| v["connectionState"] == "Disconnected").await;
    assert_ne!(
        offline["connectionStateUpdatedTime"],
        online["connectionStateUpdatedTime"]
    );
    assert!(!hub.hub.state.sessions.is_connected(&("d1".into(), None)));
}

#[tokio::test]
async fn bad_credentials_are_refused_with_the_right_code() {
    let hub = TestHub::start().await;
    let key = hub.create_device("d1").await;
    let other_key = hub.create_device("d2").await;
    // Created disabled, so its own key is right and only the status refuses it.
    let r = hub
        .call(
            Method::PUT,
            "/devices/off",
            Some(json!({"deviceId": "off", "status": "disabled"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let off_key = r.body["authentication"]["symmetricKey"]["primaryKey"]
        .as_str()
        .unwrap()
        .to_string();
    let hub_ref = &hub;
    let exp = now() + 3600;

    let not_authorized = [
        (
            "wrong key",
            hub.mqtt_options_with(
                "d1",
                "d1",
                &hub_ref.device_token("devices/d1", &other_key, exp),
            ),
        ),
        (
            "expired token",
            hub.mqtt_options_with(
                "d1",
                "d1",
                &hub_ref.device_token("devices/d1", &key, now() - 10),
            ),
        ),
        (
            "token for another device",
            hub.mqtt_options_with(
                "d1",
                "d1",
                &hub_ref.device_token("devices/d2", &other_key, exp),
            ),
        ),
        (
            "unknown device",
            hub.mqtt_options_with(
                "ghost",
                "ghost",
                &hub_ref.device_token("devices/ghost", &key, exp),
            ),
        ),
        (
            "disabled device",
            hub.mqtt_options_with(
                "off",
                "off",
                &hub_ref.device_token("devices/off", &off_key, exp),
            ),
        ),
        ("missing password", hub.mqtt_options_with("d1", "d1", "")),
    ];
    for (what, opts) in not_authorized {
        assert_eq!(
            connack_code(opts).await.unwrap(),
            ConnectReturnCode::NotAuthorized,
            "{what}"
        );
    }

    let token = hub_ref.device_token("devices/d1", &key, exp);
    let mut wrong_host = hub.mqtt_options_with("d1", "d1", &token);
    wrong_host.set_credentials(
        "otherhub.azure-devices.net/d1/?api-version=2021-04-12",
        &token,
    );
    let mut garbage = hub.mqtt_options_with("d1", "d1", &token);
    garbage.set_credentials("not-a-username", &token);
    let bad_username = [
        (
            "client id differs from username",
            hub.mqtt_options_with("d2", "d1", &token),
        ),
        ("username for another hub", wrong_host),
        ("malformed username", garbage),
    ];
    for (what, opts) in bad_username {
        assert_eq!(
            connack_code(opts).await.unwrap(),
            ConnectReturnCode::BadUserNamePassword,
            "{what}"
        );
    }
    // Nothing of that left the devices connected.
    assert!(!hub.hub.state.sessions.is_connected(&("d1".into(), None)));
    // And the right credentials still work.
    assert_eq!(
        connack_code(hub.mqtt_options("d1", &key)).await.unwrap(),
        ConnectReturnCode::Success
    );
}

#[tokio::test]
async fn protocol_levels_other_than_4_are_refused() {
    let hub = TestHub::start().await;
    let key = hub.create_device("d1").await;
    let mut s = raw_tls(&hub).await;
    let mut c = raw_connect(&hub, "d1", &key, 60);
    c.protocol = Protocol::V5;
    raw_send(&mut s, Packet::Connect(c)).await;
    let mut buf = BytesMut::new();
    match raw_read(&mut s, &mut buf).await {
        Some(Packet::ConnAck(a)) => assert_eq!(a.code, ConnectReturnCode::RefusedProtocolVersion),
        other => panic!("expected CONNACK, got {other:?}"),
    }
    assert_eq!(raw_read(&mut s, &mut buf).await, None, "then closed");
}

#[tokio::test]
async fn tls_1_2_only_clients_connect() {
    // The Python SDK's SSLContext(PROTOCOL_TLSv1_2) speaks TLS 1.2 and nothing else.
    let hub = TestHub::start().await;
    let key = hub.create_device("d1").await;
    let mut roots = rustls::RootCertStore::empty();
    for cert in client_tls_roots(&hub.hub.ca_pem) {
        roots.add(cert).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_protocol_versions(&[&rustls::version::TLS12])
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", hub.hub.info.ports.mqtt))
        .await
        .unwrap();
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    let mut s = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .unwrap();
    assert_eq!(
        s.get_ref().1.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_2)
    );
    raw_send(&mut s, Packet::Connect(raw_connect(&hub, "d1", &key, 60))).await;
    let mut buf = BytesMut::new();
    match raw_read(&mut s, &mut buf).await {
        Some(Packet::ConnAck(a)) => assert_eq!(a.code, ConnectReturnCode::Success),
        other => panic!("expected CONNACK, got {other:?}"),
    }
}

fn client_tls_roots(ca_pem: &str) -> Vec<rustls_pki_types::CertificateDer<'static>> {
    use rustls_pki_types::pem::PemObject;
    rustls_pki_types::CertificateDer::pem_slice_iter(ca_pem.as_bytes())
        .map(|c| c.unwrap())
        .collect()
}

#[tokio::test]
async fn the_connection_closes_when_its_sas_token_expires() {
    let hub = TestHub::start().await;
    let key = hub.create_device("d1").await;
    let token = hub.device_token("devices/d1", &key, now() + 2);
    let mut dev = Device::connect(hub.mqtt_options_with("d1", "d1", &token)).await;
    // However active the device is, the hub closes it at the token's expiry, as Azure
    // does; the SDKs then reconnect with a fresh token.
    let closed = dev.closed().await;
    assert!(!closed.is_empty());
    wait_device(&hub, "d1", |v| v["connectionState"] == "Disconnected").await;
    // A fresh token connects again.
    let dev = Device::connect(hub.mqtt_options("d1", &key)).await;
    dev.disconnect().await;
}

#[tokio::test]
async fn keep_alive_is_enforced() {
    let hub = TestHub::start().await;
    let key = hub.create_device("d1").await;
    let mut s = raw_tls(&hub).await;
    raw_send(&mut s, Packet::Connect(raw_connect(&hub, "d1", &key, 1))).await;
    let mut buf = BytesMut::new();
    match raw_read(&mut s, &mut buf).await {
        Some(Packet::ConnAck(a)) => assert_eq!(a.code, ConnectReturnCode::Success),
        other => panic!("expected CONNACK, got {other:?}"),
    }
    // A ping resets the timer and is answered.
    raw_send(&mut s, Packet::PingReq).await;
    assert_eq!(raw_read(&mut s, &mut buf).await, Some(Packet::PingResp));
    let silent_from = Instant::now();
    let end = tokio::time::timeout(Duration::from_secs(4), raw_read(&mut s, &mut buf)).await;
    assert_eq!(end.expect("closed within 4 s"), None);
    let waited = silent_from.elapsed();
    assert!(
        waited >= Duration::from_millis(1300) && waited < Duration::from_millis(2500),
        "closed after {waited:?}, expected 1.5 s"
    );
    wait_device(&hub, "d1", |v| v["connectionState"] == "Disconnected").await;
}

#[tokio::test]
async fn telemetry_with_properties_is_stored_then_acknowledged() {
    let hub = TestHub::start().await;
    let key = hub.create_device("d1").await;
    let mut dev = Device::connect(hub.mqtt_options("d1", &key)).await;
    let topic = telemetry_topic(
        "d1",
        None,
        "%24.mid=mid-1&%24.ct=application%2Fjson&alert=high%20temp&a%26b%3Dc=x%3Fy",
    );
    dev.publish_acked(topic, br#"{"t":21.5}"#.to_vec()).await;

    let recs = hub.stored_telemetry("d1");
    assert_eq!(recs.len(), 1);
    let rec = &recs[0];
    assert_eq!(rec.device_id, "d1");
    assert_eq!(rec.module_id, None);
    assert_eq!(rec.body, br#"{"t":21.5}"#.to_vec());
    let props: StoredProperties = serde_json::from_str(&rec.properties).unwrap();
    let bag = PropertyBag {
        entries: props.bag.clone(),
    };
    assert_eq!(bag.get("$.mid"), Some("mid-1"));
    assert_eq!(bag.get("$.ct"), Some("application/json"));
    assert_eq!(bag.get("alert"), Some("high temp"));
    assert_eq!(bag.get("a&b=c"), Some("x?y"));
    assert!(
        props.auth_method.contains("\"scope\":\"device\""),
        "{}",
        props.auth_method
    );
    let generation = device_json(&hub, "d1").await["generationId"].clone();
    assert_eq!(json!(props.generation_id), generation);

    // A retained publish is stored with mqtt-retain, as Azure marks it.
    dev.client
        .publish(
            telemetry_topic("d1", None, ""),
            QoS::AtLeastOnce,
            true,
            b"r".to_vec(),
        )
        .await
        .unwrap();
    dev.next(|p| matches!(p, Packet::PubAck(_)).then_some(()))
        .await;
    let recs = hub.stored_telemetry("d1");
    assert_eq!(recs.len(), 2);
    let props: StoredProperties = serde_json::from_str(&recs[1].properties).unwrap();
    assert_eq!(
        props.bag,
        vec![("mqtt-retain".to_string(), Some("true".to_string()))]
    );
}

#[tokio::test]
async fn oversized_telemetry_closes_the_connection() {
    let hub = TestHub::start_with(|o| o.settings.max_d2c_bytes = 1024).await;
    let key = hub.create_device("d1").await;
    let mut dev = Device::connect(hub.mqtt_options("d1", &key)).await;
    dev.publish_acked(telemetry_topic("d1", None, ""), vec![1u8; 1024])
        .await;
    dev.publish_refused(
        telemetry_topic("d1", None, ""),
        QoS::AtLeastOnce,
        vec![1u8; 1025],
    )
    .await;
    let recs = hub.stored_telemetry("d1");
    assert_eq!(recs.len(), 1, "only the message within the limit is stored");
}

#[tokio::test]
async fn properties_count_toward_the_message_size() {
    let hub = TestHub::start_with(|o| o.settings.max_d2c_bytes = 1024).await;
    let key = hub.create_device("d1").await;
    let mut dev = Device::connect(hub.mqtt_options("d1", &key)).await;
    // 1000 body bytes + "$.mid" value (4) + "k" and its value (19) = 1024: at the limit.
    let at_limit = format!("%24.mid=m-01&k={}", "v".repeat(19));
    dev.publish_acked(telemetry_topic("d1", None, &at_limit), vec![1u8; 1000])
        .await;
    // One byte more in a property name: over it, though the body alone is well within.
    let over = format!("%24.mid=m-01&kk={}", "v".repeat(19));
    dev.publish_refused(
        telemetry_topic("d1", None, &over),
        QoS::AtLeastOnce,
        vec![1u8; 1000],
    )
    .await;
    let recs = hub.stored_telemetry("d1");
    assert_eq!(recs.len(), 1, "only the message within the limit is stored");
}

#[tokio::test]
async fn publishing_for_another_device_disconnects() {
    let hub = TestHub::start().await;
    let key = hub.create_device("d1").await;
    hub.create_device("d2").await;
    let mut dev = Device::connect(hub.mqtt_options("d1", &key)).await;
    dev.publish_refused(
        telemetry_topic("d2", None, ""),
        QoS::AtLeastOnce,
        b"x".to_vec(),
    )
    .await;
    // Stored under neither identity.
    assert!(hub.stored_telemetry("d2").is_empty());
    assert!(hub.stored_telemetry("d1").is_empty());
    wait_device(&hub, "d1", |v| v["connectionState"] == "Disconnected").await;
}

#[tokio::test]
async fn unknown_topics_and_qos2_disconnect() {
    let hub = TestHub::start().await;
    let key = hub.create_device("d1").await;

    let mut dev = Device::connect(hub.mqtt_options("d1", &key)).await;
    dev.publish_refused(
        telemetry_topic("d1", None, ""),
        QoS::ExactlyOnce,
        b"x".to_vec(),
    )
    .await;

    let mut dev = Device::connect(hub.mqtt_options("d1", &key)).await;
    dev.publish_refused("devices/d1/other", QoS::AtLeastOnce, b"x".to_vec())
        .await;

    assert!(hub.stored_telemetry("d1").is_empty());
}

#[tokio::test]
async fn subscribing_to_another_device_disconnects() {
    let hub = TestHub::start().await;
    let key = hub.create_device("d1").await;
    hub.create_device("d2").await;
    let mut dev = Device::connect(hub.mqtt_options("d1", &key)).await;
    // Own filters are granted, QoS 2 as 1.
    let codes = dev.subscribe(Subscription::Methods, QoS::ExactlyOnce).await;
    assert_eq!(
        codes,
        vec![rumqttc::SubscribeReasonCode::Success(QoS::AtLeastOnce)]
    );
    let codes = dev
        .subscribe(
            Subscription::C2d {
                device_id: "d1".into(),
            },
            QoS::AtMostOnce,
        )
        .await;
    assert_eq!(
        codes,
        vec![rumqttc::SubscribeReasonCode::Success(QoS::AtMostOnce)]
    );
    dev.client
        .subscribe(
            Subscription::C2d {
                device_id: "d2".into(),
            }
            .to_filter(),
            QoS::AtLeastOnce,
        )
        .await
        .unwrap();
    dev.closed().await;
    assert!(!hub.hub.state.sessions.is_connected(&("d1".into(), None)));
}

#[tokio::test]
async fn twin_get_and_reported_patch() {
    let hub = TestHub::start().await;
    let key = hub.create_device("d1").await;
    let mut dev = Device::connect(hub.mqtt_options("d1", &key)).await;

    // Without a subscription to twin responses the response is dropped.
    dev.publish_acked(
        DevicePublish::TwinGet {
            rid: "early".into(),
        }
        .to_topic(),
        b" ".to_vec(),
    )
    .await;
    dev.subscribe(Subscription::TwinResponses, QoS::AtLeastOnce)
        .await;

    dev.publish_acked(
        DevicePublish::TwinGet { rid: "r1".into() }.to_topic(),
        b" ".to_vec(),
    )
    .await;
    let p = dev.publish_msg().await;
    assert_eq!(p.qos, QoS::AtLeastOnce);
    assert_eq!(
        parse_hub_publish(&p.topic).unwrap(),
        HubPublish::TwinResponse {
            status: 200,
            rid: "r1".into(),
            version: None
        }
    );
    let twin: Value = serde_json::from_slice(&p.payload).unwrap();
    let desired_version = twin["desired"]["$version"].as_u64().unwrap();
    let reported_version = twin["reported"]["$version"].as_u64().unwrap();
    assert!(desired_version >= 1 && reported_version >= 1, "{twin}");

    dev.publish_acked(
        DevicePublish::TwinPatchReported { rid: "r2".into() }.to_topic(),
        br#"{"temp":21,"fw":{"v":"1.2"}}"#.to_vec(),
    )
    .await;
    let p = dev.publish_msg().await;
    let new_version = reported_version + 1;
    assert_eq!(
        parse_hub_publish(&p.topic).unwrap(),
        HubPublish::TwinResponse {
            status: 204,
            rid: "r2".into(),
            version: Some(new_version)
        }
    );
    let r = hub.call(Method::GET, "/twins/d1", None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["properties"]["reported"]["temp"], 21);
    assert_eq!(r.body["properties"]["reported"]["fw"]["v"], "1.2");
    assert_eq!(
        r.body["properties"]["reported"]["$version"],
        json!(new_version)
    );

    // A malformed patch gets a 400 with Azure's numeric error code.
    dev.publish_acked(
        DevicePublish::TwinPatchReported { rid: "r3".into() }.to_topic(),
        b"not json".to_vec(),
    )
    .await;
    let p = dev.publish_msg().await;
    assert_eq!(
        parse_hub_publish(&p.topic).unwrap(),
        HubPublish::TwinResponse {
            status: 400,
            rid: "r3".into(),
            version: None
        }
    );
    let err: Value = serde_json::from_slice(&p.payload).unwrap();
    assert_eq!(err["errorCode"], 400004);
    assert!(err["message"].as_str().unwrap().contains("JSON"));
}

#[tokio::test]
async fn desired_patches_reach_the_device_across_reconnects() {
    let hub = TestHub::start().await;
    let key = hub.create_device("d1").await;
    let patch = |mode: &str| json!({"properties": {"desired": {"mode": mode}}});

    let mut dev = Device::connect(hub.mqtt_options("d1", &key)).await;
    dev.subscribe(Subscription::DesiredPatches, QoS::AtLeastOnce)
        .await;
    let r = hub
        .call(Method::PATCH, "/twins/d1", Some(patch("eco")))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let version = r.body["properties"]["desired"]["$version"]
        .as_u64()
        .unwrap();
    let p = dev.publish_msg().await;
    assert_eq!(
        parse_hub_publish(&p.topic).unwrap(),
        HubPublish::DesiredPatch { version }
    );
    let body: Value = serde_json::from_slice(&p.payload).unwrap();
    assert_eq!(body["mode"], "eco");
    assert_eq!(body["$version"], json!(version));
    dev.disconnect().await;

    // CleanSession=0: the SDKs never subscribe again, the hub remembers.
    let mut dev = Device::connect(hub.mqtt_options("d1", &key)).await;
    hub.call(Method::PATCH, "/twins/d1", Some(patch("turbo")))
        .await;
    let p = dev.publish_msg().await;
    let body: Value = serde_json::from_slice(&p.payload).unwrap();
    assert_eq!(body["mode"], "turbo");
    dev.disconnect().await;

    // CleanSession=1 starts from nothing.
    let mut opts = hub.mqtt_options("d1", &key);
    opts.set_clean_session(true);
    let mut dev = Device::connect(opts).await;
    hub.call(Method::PATCH, "/twins/d1", Some(patch("off")))
        .await;
    assert!(
        dev.publish_within(Duration::from_millis(500))
            .await
            .is_none()
    );
    dev.disconnect().await;
    // ...and the remembered subscriptions are gone for later CleanSession=0 connects too.
    let mut dev = Device::connect(hub.mqtt_options("d1", &key)).await;
    hub.call(Method::PATCH, "/twins/d1", Some(patch("on")))
        .await;
    assert!(
        dev.publish_within(Duration::from_millis(500))
            .await
            .is_none()
    );
}

async fn invoke(hub: &TestHub, device: &str, body: Value) -> common::Reply {
    hub.call(
        Method::POST,
        &format!("/twins/{device}/methods"),
        Some(body),
    )
    .await
}

/// Answers every method request with (201, {"echo": request payload}).
fn answer_methods(mut dev: Device) -> tokio::task::JoinHandle<Vec<(String, Value)>> {
    tokio::spawn(async move {
        let mut seen = Vec::new();
        while let Some(p) = dev.publish_within(Duration::from_secs(3)).await {
            let HubPublish::MethodRequest { method_name, rid } =
                parse_hub_publish(&p.topic).unwrap()
            else {
                panic!("not a method request: {}", p.topic)
            };
            assert_eq!(p.qos, QoS::AtMostOnce);
            let payload: Value = serde_json::from_slice(&p.payload).unwrap();
            let answer = json!({"echo": payload}).to_string();
            dev.publish_acked(
                DevicePublish::MethodResponse { status: 201, rid }.to_topic(),
                answer,
            )
            .await;
            seen.push((method_name, payload));
        }
        seen
    })
}

#[tokio::test]
async fn direct_methods_round_trip() {
    let hub = TestHub::start().await;
    let key = hub.create_device("d1").await;
    let mut dev = Device::connect(hub.mqtt_options("d1", &key)).await;
    dev.subscribe(Subscription::Methods, QoS::AtLeastOnce).await;
    let device = answer_methods(dev);
    let r = invoke(
        &hub,
        "d1",
        json!({"methodName": "reboot", "payload": {"delay": 3}, "responseTimeoutInSeconds": 5}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        r.body,
        json!({"status": 201, "payload": {"echo": {"delay": 3}}})
    );
    let seen = device.await.unwrap();
    assert_eq!(seen, vec![("reboot".to_string(), json!({"delay": 3}))]);
}

#[tokio::test]
async fn direct_method_errors_and_connect_timeout() {
    let hub = TestHub::start().await;
    let key = hub.create_device("d1").await;
    let call = json!({"methodName": "m", "payload": null, "responseTimeoutInSeconds": 5, "connectTimeoutInSeconds": 0});

    // Offline, no connect timeout: 404 at once.
    let r = invoke(&hub, "d1", call.clone()).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    // Online and subscribed, never answers: 504 after the response timeout.
    let mut dev = Device::connect(hub.mqtt_options("d1", &key)).await;
    dev.subscribe(Subscription::Methods, QoS::AtLeastOnce).await;
    let started = Instant::now();
    let r = invoke(&hub, "d1", call).await;
    assert_eq!(r.status, StatusCode::GATEWAY_TIMEOUT);
    assert!(started.elapsed() >= Duration::from_secs(5));
    let p = dev.publish_msg().await;
    assert!(matches!(
        parse_hub_publish(&p.topic).unwrap(),
        HubPublish::MethodRequest { ref method_name, .. } if method_name == "m"
    ));
    dev.disconnect().await;

    // Offline when called, connects within connectTimeoutInSeconds: answered.
    let call = json!({"methodName": "late", "payload": "hi", "responseTimeoutInSeconds": 5, "connectTimeoutInSeconds": 10});
    let pending = {
        let hub = &hub;
        async move { invoke(hub, "d1", call).await }
    };
    let device = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        // The session is remembered (methods subscription included).
        let dev = Device::connect(hub.mqtt_options("d1", &key)).await;
        answer_methods(dev).await.unwrap()
    };
    let (r, seen) = tokio::join!(pending, device);
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body, json!({"status": 201, "payload": {"echo": "hi"}}));
    assert_eq!(seen, vec![("late".to_string(), json!("hi"))]);
}

fn c2d_bag(mid: &str) -> PropertyBag {
    let mut bag = PropertyBag::default();
    bag.set("$.mid", Some(mid.into()));
    bag.set("$.ct", Some("text/plain".into()));
    bag.set("color", Some("dark blue".into()));
    bag
}

#[tokio::test]
async fn c2d_is_delivered_after_subscribe_and_removed_only_on_puback() {
    let hub = TestHub::start().await;
    let key = hub.create_device("d1").await;
    let state = &hub.hub.state;
    state
        .enqueue_c2d(
            "d1",
            PropertyBag::default(),
            b"stale".to_vec(),
            Some(now() as i64 * 1000 - 1000),
        )
        .unwrap();
    let seq = state
        .enqueue_c2d("d1", c2d_bag("m1"), b"hello".to_vec(), None)
        .unwrap();

    let mut opts = hub.mqtt_options("d1", &key);
    opts.set_manual_acks(true);
    let mut dev = Device::connect(opts.clone()).await;
    assert!(
        dev.publish_within(Duration::from_millis(300))
            .await
            .is_none(),
        "not before subscribe"
    );
    dev.subscribe(
        Subscription::C2d {
            device_id: "d1".into(),
        },
        QoS::AtLeastOnce,
    )
    .await;
    let p = dev.publish_msg().await;
    assert_eq!(p.qos, QoS::AtLeastOnce);
    assert_eq!(&p.payload[..], b"hello");
    let HubPublish::C2d {
        device_id,
        properties,
        ..
    } = parse_hub_publish(&p.topic).unwrap()
    else {
        panic!("not C2D: {}", p.topic)
    };
    assert_eq!(device_id, "d1");
    assert_eq!(properties.get("$.mid"), Some("m1"));
    assert_eq!(properties.get("$.ct"), Some("text/plain"));
    assert_eq!(properties.get("color"), Some("dark blue"));
    assert_eq!(
        properties.get("$.to"),
        Some("/devices/d1/messages/devicebound")
    );
    // Only the live message; the expired one was never sent.
    assert!(
        dev.publish_within(Duration::from_millis(300))
            .await
            .is_none()
    );
    dev.disconnect().await;

    // Not acknowledged: still queued, delivered once.
    let queue = state.store.c2d_queue("d1").unwrap();
    assert_eq!(queue.len(), 1);
    assert_eq!((queue[0].seq, queue[0].delivery_count), (seq, 1));

    // Redelivered on the next connection without subscribing again (persistent session).
    let mut dev = Device::connect(opts).await;
    let p = dev.publish_msg().await;
    assert_eq!(&p.payload[..], b"hello");
    assert_eq!(state.store.c2d_queue("d1").unwrap()[0].delivery_count, 2);
    dev.client.ack(&p).await.unwrap();
    eventually(WAIT, "the PUBACK to complete the message", || async move {
        state
            .store
            .c2d_queue("d1")
            .unwrap()
            .is_empty()
            .then_some(())
    })
    .await;
    // New messages reach the connected device at once.
    state
        .enqueue_c2d("d1", c2d_bag("m2"), b"again".to_vec(), None)
        .unwrap();
    let p = dev.publish_msg().await;
    assert_eq!(&p.payload[..], b"again");
}

#[tokio::test]
async fn c2d_delivered_too_often_is_dropped() {
    let hub = TestHub::start_with(|o| o.settings.c2d_max_delivery_count = 2).await;
    let key = hub.create_device("d1").await;
    let state = &hub.hub.state;
    state
        .enqueue_c2d("d1", c2d_bag("m1"), b"x".to_vec(), None)
        .unwrap();
    let mut opts = hub.mqtt_options("d1", &key);
    opts.set_manual_acks(true);
    for attempt in 1..=2 {
        let mut dev = Device::connect(opts.clone()).await;
        if attempt == 1 {
            dev.subscribe(
                Subscription::C2d {
                    device_id: "d1".into(),
                },
                QoS::AtLeastOnce,
            )
            .await;
        }
        let p = dev.publish_msg().await;
        assert_eq!(&p.payload[..], b"x", "attempt {attempt}");
        dev.disconnect().await;
    }
    let mut dev = Device::connect(opts).await;
    assert!(
        dev.publish_within(Duration::from_millis(500))
            .await
            .is_none()
    );
    assert!(state.store.c2d_queue("d1").unwrap().is_empty());
}

#[tokio::test]
async fn a_second_connection_closes_the_first() {
    let hub = TestHub::start().await;
    let key = hub.create_device("d1").await;
    let mut first = Device::connect(hub.mqtt_options("d1", &key)).await;
    let mut second = Device::connect(hub.mqtt_options("d1", &key)).await;
    first.closed().await;
    second
        .publish_acked(telemetry_topic("d1", None, ""), b"still here".to_vec())
        .await;
    // The first connection's end does not mark the device disconnected.
    assert_nothing_within(
        Duration::from_millis(200),
        "the device was marked disconnected",
        wait_device(&hub, "d1", |d| d["connectionState"] != "Connected"),
    )
    .await;
}

#[tokio::test]
async fn modules_connect_and_send_telemetry() {
    let hub = TestHub::start().await;
    hub.create_device("d1").await;
    let key = hub.create_module("d1", "m1").await;
    let token = hub.device_token("devices/d1/modules/m1", &key, now() + 3600);
    let mut dev = Device::connect(hub.mqtt_options_with("d1/m1", "d1/m1", &token)).await;
    dev.publish_acked(
        telemetry_topic("d1", Some("m1"), "%24.on=out1"),
        b"from module".to_vec(),
    )
    .await;
    let recs = hub.stored_telemetry("d1");
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].module_id.as_deref(), Some("m1"));
    let props: StoredProperties = serde_json::from_str(&recs[0].properties).unwrap();
    assert!(props.auth_method.contains("\"scope\":\"module\""));
    assert!(
        hub.hub
            .state
            .sessions
            .is_connected(&("d1".into(), Some("m1".into())))
    );

    // Twin requests work on the module twin.
    dev.subscribe(Subscription::TwinResponses, QoS::AtLeastOnce)
        .await;
    dev.publish_acked(
        DevicePublish::TwinPatchReported { rid: "1".into() }.to_topic(),
        br#"{"state":"ok"}"#.to_vec(),
    )
    .await;
    let p = dev.publish_msg().await;
    assert!(matches!(
        parse_hub_publish(&p.topic).unwrap(),
        HubPublish::TwinResponse { status: 204, .. }
    ));
    let r = hub.call(Method::GET, "/twins/d1/modules/m1", None).await;
    assert_eq!(r.body["properties"]["reported"]["state"], "ok");

    // A module may not publish as its device.
    dev.publish_refused(
        telemetry_topic("d1", None, ""),
        QoS::AtLeastOnce,
        b"x".to_vec(),
    )
    .await;
    assert_eq!(hub.stored_telemetry("d1").len(), 1);
}

#[tokio::test]
async fn hub_shutdown_closes_connections() {
    let hub = TestHub::start().await;
    let key = hub.create_device("d1").await;
    let mut dev = Device::connect(hub.mqtt_options("d1", &key)).await;
    let TestHub { dir, hub, .. } = hub;
    let state = hub.state.clone();
    hub.shutdown().await;
    dev.closed().await;
    // Shutdown waited for the connection to record its end.
    let id = state.identity("d1", None).unwrap();
    assert_eq!(
        serde_json::to_value(id.device.connection_state).unwrap(),
        json!("Disconnected")
    );
    drop(dir);
}

async fn regenerate(hub: &TestHub, body: Value) -> Value {
    let r = hub
        .call(Method::POST, "/devices/keys/regenerate", Some(body))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    r.body["rotatedKeys"][0].clone()
}

/// Checks that the hub keeps a connection open: it answers a subscription a while later.
async fn still_served(dev: &mut Device) {
    tokio::time::sleep(Duration::from_millis(300)).await;
    dev.subscribe(Subscription::TwinResponses, QoS::AtLeastOnce)
        .await;
}

#[tokio::test]
async fn renewing_a_key_closes_the_connection_that_used_it() {
    let hub = TestHub::start().await;
    let old = hub.create_device("rk").await;
    let mut dev = Device::connect(hub.mqtt_options("rk", &old)).await;
    let rotated = regenerate(
        &hub,
        json!({"policyKey": "primaryKey", "devices": [{"id": "rk"}]}),
    )
    .await;
    let new = rotated["primaryKey"].as_str().unwrap().to_string();
    assert_ne!(new, old);
    dev.closed().await;
    assert_eq!(
        connack_code(hub.mqtt_options("rk", &old)).await.unwrap(),
        ConnectReturnCode::NotAuthorized,
        "the old key is refused"
    );
    let mut dev = Device::connect(hub.mqtt_options("rk", &new)).await;
    still_served(&mut dev).await;
    dev.disconnect().await;
}

#[tokio::test]
async fn renewing_the_other_key_or_swapping_keeps_the_connection() {
    let hub = TestHub::start().await;
    hub.create_device("keep").await;
    let ident = hub.call(Method::GET, "/devices/keep", None).await.body;
    let secondary = ident["authentication"]["symmetricKey"]["secondaryKey"]
        .as_str()
        .unwrap()
        .to_string();
    let mut dev = Device::connect(hub.mqtt_options("keep", &secondary)).await;
    // The primary key is renewed: the connection made with the secondary stays.
    regenerate(
        &hub,
        json!({"policyKey": "primaryKey", "devices": [{"id": "keep"}]}),
    )
    .await;
    still_served(&mut dev).await;
    // A swap (what the CLI's --kt swap PUTs with If-Match "*") keeps both keys valid.
    let mut swapped = hub.call(Method::GET, "/devices/keep", None).await.body;
    let sym = swapped["authentication"]["symmetricKey"].clone();
    swapped["authentication"]["symmetricKey"] =
        json!({"primaryKey": sym["secondaryKey"], "secondaryKey": sym["primaryKey"]});
    let r = hub
        .call_as(
            "iothubowner",
            Method::PUT,
            "/devices/keep",
            Some(swapped),
            &[("If-Match", "\"*\"")],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        r.body["authentication"]["symmetricKey"]["primaryKey"],
        secondary.as_str()
    );
    still_served(&mut dev).await;
    // Renewing both leaves the connection's key behind: it closes.
    regenerate(
        &hub,
        json!({"policyKey": "both", "devices": [{"id": "keep"}]}),
    )
    .await;
    dev.closed().await;
}

#[tokio::test]
async fn a_put_that_replaces_keys_or_disables_closes_the_connection() {
    let hub = TestHub::start().await;
    let old = hub.create_device("pk").await;
    let mut dev = Device::connect(hub.mqtt_options("pk", &old)).await;
    let fresh = "ERERERERERERERERERERERERERERERERERERERERERE=";
    let r = hub
        .call_as(
            "iothubowner",
            Method::PUT,
            "/devices/pk",
            Some(json!({"deviceId": "pk", "authentication": {"type": "sas",
                "symmetricKey": {"primaryKey": fresh, "secondaryKey": fresh}}})),
            &[("If-Match", "*")],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    dev.closed().await;
    assert_eq!(
        connack_code(hub.mqtt_options("pk", &old)).await.unwrap(),
        ConnectReturnCode::NotAuthorized
    );
    let mut dev = Device::connect(hub.mqtt_options("pk", fresh)).await;
    still_served(&mut dev).await;
    let r = hub
        .call_as(
            "iothubowner",
            Method::PUT,
            "/devices/pk",
            Some(
                json!({"deviceId": "pk", "status": "disabled", "authentication": {"type": "sas",
                "symmetricKey": {"primaryKey": fresh, "secondaryKey": fresh}}}),
            ),
            &[("If-Match", "*")],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    dev.closed().await;
}

#[tokio::test]
async fn renewing_a_module_key_closes_the_module_connection() {
    let hub = TestHub::start().await;
    hub.create_device("host").await;
    let old = hub.create_module("host", "mod").await;
    let token = hub.device_token("devices/host/modules/mod", &old, now() + 3600);
    let mut dev = Device::connect(hub.mqtt_options_with("host/mod", "host/mod", &token)).await;
    let rotated = regenerate(
        &hub,
        json!({"policyKey": "primaryKey", "devices": [{"id": "host", "moduleId": "mod"}]}),
    )
    .await;
    assert_eq!(rotated["moduleId"], "mod");
    dev.closed().await;
    assert_eq!(
        connack_code(hub.mqtt_options_with("host/mod", "host/mod", &token))
            .await
            .unwrap(),
        ConnectReturnCode::NotAuthorized
    );
    let new = rotated["primaryKey"].as_str().unwrap();
    let token = hub.device_token("devices/host/modules/mod", new, now() + 3600);
    let mut dev = Device::connect(hub.mqtt_options_with("host/mod", "host/mod", &token)).await;
    still_served(&mut dev).await;
}
