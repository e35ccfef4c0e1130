//! MQTT and AMQP over WebSockets on the hub's HTTPS port, as Azure serves them on
//! 443: a device speaks MQTT on `/$iothub/websocket` (subprotocol `mqtt`/`MQTT`),
//! a service sends C2D over AMQP on the same path, an Event Hubs client reads a
//! partition on `/$servicebus/websocket` (`AMQPWSB10`), and anything else is a 400.

mod common;

use std::time::Duration;

use bytes::BytesMut;
use common::amqp::Cbs;
use common::{TestHub, now, tls_to};
use fe2o3_amqp::sasl_profile::SaslProfile;
use fe2o3_amqp::types::messaging::message::Body;
use fe2o3_amqp::types::messaging::{
    ApplicationProperties, Data, Message, MessageId, Outcome, Properties, Source,
};
use fe2o3_amqp::types::primitives::Value;
use fe2o3_amqp::{Connection, Receiver, Sender, Session};
use hubtui::hub::registry::AuthMethod;
use hubtui::hub::telemetry::partition_of;
use hubtui::iothub::property_bag::PropertyBag;
use hubtui::iothub::sas::{generate_event_hubs_token, generate_token};
use hubtui::ws_io::WsIo;
use rumqttc::mqttbytes::QoS;
use rumqttc::mqttbytes::v4::{Connect, ConnectReturnCode, Packet, Publish, Subscribe};
use serde_json::Value as Json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

const T: Duration = Duration::from_secs(10);

type Ws = WebSocketStream<TlsStream<TcpStream>>;

/// TLS to the HTTPS port as the SDKs open it: no ALPN, so HTTP/1.1.
async fn tls(hub: &TestHub) -> TlsStream<TcpStream> {
    tls_to(hub.hub.info.ports.https, &hub.hub.ca_pem).await
}

fn url(hub: &TestHub, path: &str) -> String {
    format!("wss://localhost:{}{path}", hub.hub.info.ports.https)
}

async fn ws_connect(
    hub: &TestHub,
    path: &str,
    subprotocol: Option<&str>,
) -> Result<(Ws, Option<String>), tokio_tungstenite::tungstenite::Error> {
    let mut req = url(hub, path).into_client_request().unwrap();
    if let Some(p) = subprotocol {
        req.headers_mut()
            .insert("Sec-WebSocket-Protocol", HeaderValue::from_str(p).unwrap());
    }
    let (ws, resp) = tokio_tungstenite::client_async(req, tls(hub).await).await?;
    let echoed = resp
        .headers()
        .get("Sec-WebSocket-Protocol")
        .map(|v| v.to_str().unwrap().to_string());
    Ok((ws, echoed))
}

/// MQTT packets over a WebSocket byte stream.
struct MqttWs {
    io: WsIo<Ws>,
    buf: BytesMut,
}

impl MqttWs {
    async fn open(hub: &TestHub, subprotocol: &str) -> MqttWs {
        let (ws, echoed) = ws_connect(hub, "/$iothub/websocket", Some(subprotocol))
            .await
            .unwrap();
        assert_eq!(echoed.as_deref(), Some(subprotocol));
        MqttWs {
            io: WsIo::new(ws),
            buf: BytesMut::new(),
        }
    }

    async fn send(&mut self, packet: Packet) {
        let mut buf = BytesMut::new();
        packet.write(&mut buf, usize::MAX).unwrap();
        self.io.write_all(&buf).await.unwrap();
        self.io.flush().await.unwrap();
    }

    /// The next packet, or None when the hub closes the connection.
    async fn read(&mut self) -> Option<Packet> {
        loop {
            match Packet::read(&mut self.buf, 1 << 20) {
                Ok(p) => return Some(p),
                Err(rumqttc::mqttbytes::Error::InsufficientBytes(_)) => {}
                Err(e) => panic!("bad packet from the hub: {e}"),
            }
            match tokio::time::timeout(T, self.io.read_buf(&mut self.buf))
                .await
                .expect("the hub answers in time")
            {
                Ok(0) | Err(_) => return None,
                Ok(_) => {}
            }
        }
    }

    async fn connect(&mut self, hub: &TestHub, device: &str, password: &str) -> ConnectReturnCode {
        let mut c = Connect::new(device);
        c.keep_alive = 60;
        c.clean_session = false;
        c.set_login(
            format!("{}/{device}/?api-version=2021-04-12", hub.host()),
            password,
        );
        self.send(Packet::Connect(c)).await;
        match self.read().await {
            Some(Packet::ConnAck(a)) => a.code,
            other => panic!("expected CONNACK, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_device_speaks_mqtt_over_websockets() {
    let hub = TestHub::start().await;
    let key = hub.create_device("wsdev").await;
    // The C SDK's spelling of the subprotocol.
    let mut dev = MqttWs::open(&hub, "MQTT").await;
    assert_eq!(
        dev.connect(
            &hub,
            "wsdev",
            &hub.device_token("devices/wsdev", &key, now() + 3600)
        )
        .await,
        ConnectReturnCode::Success
    );

    // Telemetry is PUBACKed and stored.
    let mut publish = Publish::new(
        "devices/wsdev/messages/events/%24.mid=ws-1&alert=hot",
        QoS::AtLeastOnce,
        b"{\"t\":1}".to_vec(),
    );
    publish.pkid = 1;
    dev.send(Packet::Publish(publish)).await;
    match dev.read().await {
        Some(Packet::PubAck(a)) => assert_eq!(a.pkid, 1),
        other => panic!("expected PUBACK, got {other:?}"),
    }
    let recs = hub.stored_telemetry("wsdev");
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].device_id, "wsdev");
    assert_eq!(recs[0].body, b"{\"t\":1}".to_vec());

    // The twin, over the same connection.
    dev.send(Packet::Subscribe(Subscribe::new(
        "$iothub/twin/res/#",
        QoS::AtLeastOnce,
    )))
    .await;
    assert!(matches!(dev.read().await, Some(Packet::SubAck(_))));
    let mut get = Publish::new("$iothub/twin/GET/?$rid=r1", QoS::AtLeastOnce, b" ".to_vec());
    get.pkid = 2;
    dev.send(Packet::Publish(get)).await;
    let twin = loop {
        match dev.read().await {
            Some(Packet::PubAck(_)) => {}
            Some(Packet::Publish(p)) => break p,
            other => panic!("expected the twin, got {other:?}"),
        }
    };
    assert!(
        twin.topic.starts_with("$iothub/twin/res/200/?$rid=r1"),
        "{}",
        twin.topic
    );
    let body: Json = serde_json::from_slice(&twin.payload).unwrap();
    assert!(body["desired"]["$version"].is_number(), "{body}");
    assert!(body["reported"]["$version"].is_number(), "{body}");

    // The session is the hub's: the device shows as connected, and DISCONNECT ends it.
    let r = hub.call(reqwest::Method::GET, "/devices/wsdev", None).await;
    assert_eq!(r.body["connectionState"], "Connected");
    dev.send(Packet::Disconnect).await;
    assert!(dev.read().await.is_none());
    let deadline = tokio::time::Instant::now() + T;
    loop {
        let r = hub.call(reqwest::Method::GET, "/devices/wsdev", None).await;
        if r.body["connectionState"] == "Disconnected" {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "still connected");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn mqtt_over_websockets_checks_credentials() {
    let hub = TestHub::start().await;
    let key = hub.create_device("wsbad").await;
    let mut dev = MqttWs::open(&hub, "mqtt").await;
    let bad = hub
        .device_token("devices/wsbad", &key, now() + 3600)
        .replace("sig=", "sig=AA");
    assert_eq!(
        dev.connect(&hub, "wsbad", &bad).await,
        ConnectReturnCode::NotAuthorized
    );
    assert!(dev.read().await.is_none());
}

#[tokio::test]
async fn unknown_or_missing_subprotocols_are_refused_with_400() {
    let hub = TestHub::start().await;
    for (path, protocol) in [
        ("/$iothub/websocket", Some("stomp")),
        ("/$iothub/websocket", None),
        // The Event Hubs endpoint has no MQTT.
        ("/$servicebus/websocket", Some("mqtt")),
    ] {
        match ws_connect(&hub, path, protocol).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
                assert_eq!(resp.status(), 400, "{path} {protocol:?}");
                let body: Json = serde_json::from_slice(resp.body().as_deref().unwrap()).unwrap();
                assert!(
                    body["Message"]
                        .as_str()
                        .unwrap()
                        .starts_with("ErrorCode:ArgumentInvalid;"),
                    "{body}"
                );
            }
            Err(e) => panic!("{path} {protocol:?}: expected a 400, got {e}"),
            Ok(_) => panic!("{path} {protocol:?}: upgraded"),
        }
    }
    // A plain GET (HTTP/2 through ALPN here) is not an upgrade.
    let r = hub
        .http
        .get(format!("{}/$iothub/websocket", hub.base()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    // The REST API is still served next to the WebSocket endpoints.
    let r = hub.call(reqwest::Method::GET, "/devices", None).await;
    assert_eq!(r.status, 200);
}

fn c2d_message(device: &str, body: &str) -> Message<Data> {
    Message::builder()
        .properties(
            Properties::builder()
                .message_id(String::from("ws-mid"))
                .to(format!("/devices/{device}/messages/devicebound"))
                .build(),
        )
        .application_properties(ApplicationProperties::builder().insert("via", "ws").build())
        .data(body.as_bytes().to_vec())
        .build()
}

#[tokio::test]
async fn amqp_over_websockets_sends_c2d() {
    let hub = TestHub::start().await;
    hub.create_device("ws-c2d").await;
    // The OASIS binding's subprotocol, `amqp` (what fe2o3-amqp-ws offers), is served too.
    let (ws, echoed) = ws_connect(&hub, "/$iothub/websocket", Some("amqp"))
        .await
        .unwrap();
    assert_eq!(echoed.as_deref(), Some("amqp"));
    let p = hub.hub.state.policy("service").unwrap();
    let token = generate_token(hub.host(), &p.primary_key, Some("service"), now() + 600).unwrap();
    let mut conn = Connection::builder()
        .container_id("ws-service")
        .hostname("localhost")
        .sasl_profile(SaslProfile::Plain {
            username: "service@sas.root.localhost".into(),
            password: token,
        })
        .open_with_stream(WsIo::new(ws))
        .await
        .unwrap();
    let mut session = Session::begin(&mut conn).await.unwrap();
    let mut sender = Sender::attach(&mut session, "c2d", "/messages/devicebound")
        .await
        .unwrap();
    let outcome = sender
        .send(c2d_message("ws-c2d", "over websockets"))
        .await
        .unwrap();
    assert!(matches!(outcome, Outcome::Accepted(_)), "{outcome:?}");
    let queued = hub
        .hub
        .state
        .c2d_deliverable("ws-c2d", &Default::default())
        .unwrap();
    assert_eq!(queued.len(), 1);
    assert_eq!(queued[0].body, b"over websockets");
    assert_eq!(queued[0].properties.get("$.mid"), Some("ws-mid"));
    assert_eq!(queued[0].properties.get("via"), Some("ws"));
    sender.close().await.unwrap();
    session.end().await.unwrap();
    conn.close().await.unwrap();
}

#[tokio::test]
async fn paths_with_a_trailing_slash_upgrade_too() {
    let hub = TestHub::start().await;
    // uamqp's AMQP over WebSockets asks for `/$servicebus/websocket/`.
    for (path, subprotocol) in [
        ("/$servicebus/websocket/", "AMQPWSB10"),
        ("/$iothub/websocket/", "AMQPWSB10"),
        ("/$iothub/websocket/", "mqtt"),
    ] {
        let (_, echoed) = ws_connect(&hub, path, Some(subprotocol))
            .await
            .unwrap_or_else(|e| panic!("{path}: {e}"));
        assert_eq!(echoed.as_deref(), Some(subprotocol), "{path}");
    }
}

#[tokio::test]
async fn deep_amqp_frames_over_websockets_close_the_connection() {
    use common::amqp_raw::{RawAmqp, begin, described_bomb, frame, map_of};
    let hub = TestHub::start().await;
    for path in ["/$iothub/websocket", "/$servicebus/websocket"] {
        let (ws, _) = ws_connect(&hub, path, Some("AMQPWSB10")).await.unwrap();
        let mut c = RawAmqp::start(WsIo::new(ws), None).await;
        let deep = map_of("deep", &described_bomb(5000));
        c.send(&frame(0, &begin(&deep))).await;
        c.closed_with("amqp:decode-error").await;
    }
    let r = hub.call(reqwest::Method::GET, "/devices", None).await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn event_hubs_endpoint_over_websockets_reads_a_partition() {
    let hub = TestHub::start().await;
    let auth = AuthMethod {
        scope: "device",
        kind: "sas",
        issuer: "iothub",
        generation_id: "gen-1".into(),
        credential: Default::default(),
    };
    hub.hub
        .state
        .ingest_telemetry(
            &("ws-eh".to_string(), None),
            &auth,
            &PropertyBag::parse("%24.mid=eh-1").unwrap(),
            b"hello over ws",
        )
        .unwrap()
        .await
        .unwrap();
    let cs = hubtui::iothub::connection_string::EventHubConnectionString::parse(
        hub.hub
            .info
            .event_hub_compatible_connection_string
            .as_ref()
            .unwrap(),
    )
    .unwrap();

    // As pyamqp and uamqp connect: subprotocol AMQPWSB10, SASL ANONYMOUS, then CBS.
    let (ws, echoed) = ws_connect(&hub, "/$servicebus/websocket", Some("AMQPWSB10"))
        .await
        .unwrap();
    assert_eq!(echoed.as_deref(), Some("AMQPWSB10"));
    let mut conn = Connection::builder()
        .container_id("ws-eventhub")
        .hostname("localhost")
        .sasl_profile(SaslProfile::Anonymous)
        .open_with_stream(WsIo::new(ws))
        .await
        .unwrap();
    let mut session = Session::begin(&mut conn).await.unwrap();
    let audience = format!("sb://{}/{}", cs.host, cs.entity_path);
    let token = generate_event_hubs_token(&audience, &cs.key, &cs.policy_name, now() + 600);
    let (status, desc) = Cbs::attach(&mut session).await.put(&audience, &token).await;
    assert_eq!(status, 200, "{desc}");

    let partition = partition_of("ws-eh", hub.hub.state.settings.partitions);
    let address = format!(
        "amqps://localhost/{}/ConsumerGroups/$Default/Partitions/{partition}",
        cs.entity_path
    );
    let mut rx = Receiver::builder()
        .name("ws-partition")
        .source(Source::builder().address(address).build())
        .target("client")
        .attach(&mut session)
        .await
        .unwrap();
    let d = tokio::time::timeout(T, rx.recv::<Body<Value>>())
        .await
        .expect("an event arrives")
        .unwrap();
    rx.accept(&d).await.unwrap();
    let m = d.into_message();
    let body: Vec<u8> = match &m.body {
        Body::Data(b) => b.iter().flat_map(|d| d.0.to_vec()).collect(),
        other => panic!("{other:?}"),
    };
    assert_eq!(body, b"hello over ws");
    assert_eq!(
        m.properties.as_ref().unwrap().message_id,
        Some(MessageId::String("eh-1".into()))
    );
    rx.close().await.unwrap();
    session.end().await.unwrap();
    conn.close().await.unwrap();
}

#[tokio::test]
async fn websocket_connections_end_with_the_hub() {
    let hub = TestHub::start().await;
    let key = hub.create_device("wsstop").await;
    let mut dev = MqttWs::open(&hub, "mqtt").await;
    assert_eq!(
        dev.connect(
            &hub,
            "wsstop",
            &hub.device_token("devices/wsstop", &key, now() + 3600)
        )
        .await,
        ConnectReturnCode::Success
    );
    let TestHub { hub: running, .. } = hub;
    tokio::time::timeout(T, running.shutdown())
        .await
        .expect("the hub stops in time");
    assert!(dev.read().await.is_none(), "the connection is closed");
}
