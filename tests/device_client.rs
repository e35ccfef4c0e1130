//! DeviceClient and Simulator against a scripted MQTT peer that speaks the IoT Hub device
//! protocol (TLS, CONNACK, SUBACK, twin GET/PATCH answers by `$rid`, hub → device publishes).
//! It stands in for the local hub's MQTT server until that lands; tests/simulator.rs runs the
//! real thing end to end.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::BytesMut;
use hubtui::client::device::{DeviceClient, DeviceClientOptions, DeviceEvent, Trust};
use hubtui::client::simulator::{DeviceKind, Simulator, SimulatorOptions};
use hubtui::hub::tls::HubCertificates;
use hubtui::iothub::connection_string::DeviceConnectionString;
use hubtui::iothub::property_bag::PropertyBag;
use hubtui::iothub::sas::{SasToken, verify_token};
use hubtui::iothub::topic::{DevicePublish, HubPublish, parse_device_publish};
use rumqttc::{
    ConnAck, ConnectReturnCode, Packet, PubAck, Publish, QoS, SubAck, SubscribeReasonCode,
};
use serde_json::{Map, Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::{Notify, mpsc};
use tokio::time::timeout;

const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const WAIT: Duration = Duration::from_secs(15);

/// What the scripted hub saw from the device.
#[derive(Clone, Debug)]
enum Seen {
    Connect {
        client_id: String,
        username: String,
        password: String,
    },
    Subscribe(Vec<String>),
    Publish {
        topic: String,
        payload: Vec<u8>,
    },
    Disconnect,
}

#[derive(Default)]
struct Twin {
    desired: Map<String, Value>,
    desired_version: u64,
    reported: Map<String, Value>,
    reported_version: u64,
}

struct FakeHub {
    _dir: tempfile::TempDir,
    port: u16,
    ca_pem: String,
    seen: mpsc::UnboundedReceiver<Seen>,
    /// Sends a packet to the device on the current connection.
    to_device: Arc<Mutex<Option<mpsc::UnboundedSender<Packet>>>>,
    /// Drops the current connection.
    kill: Arc<Notify>,
    twin: Arc<Mutex<Twin>>,
}

impl FakeHub {
    async fn start(refuse: Option<ConnectReturnCode>) -> FakeHub {
        hubtui::hub::install_crypto_provider();
        let dir = tempfile::tempdir().unwrap();
        let certs = HubCertificates::load_or_create(dir.path(), &[]).unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(certs.server_config(&[b"mqtt"]).unwrap());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (seen_tx, seen) = mpsc::unbounded_channel();
        let to_device = Arc::new(Mutex::new(None));
        let kill = Arc::new(Notify::new());
        let twin = Arc::new(Mutex::new(Twin {
            desired_version: 1,
            reported_version: 1,
            ..Twin::default()
        }));
        let (td, k, tw) = (to_device.clone(), kill.clone(), twin.clone());
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    continue;
                };
                let (out_tx, out_rx) = mpsc::unbounded_channel();
                *td.lock().unwrap() = Some(out_tx.clone());
                tokio::spawn(serve(
                    tls,
                    out_tx,
                    out_rx,
                    seen_tx.clone(),
                    k.clone(),
                    tw.clone(),
                    refuse,
                ));
            }
        });
        FakeHub {
            _dir: dir,
            port,
            ca_pem: certs.ca_pem().unwrap(),
            seen,
            to_device,
            kill,
            twin,
        }
    }

    fn options(&self) -> DeviceClientOptions {
        DeviceClientOptions {
            port: self.port,
            trust: Trust::CaPem(self.ca_pem.clone()),
            connect_host: Some("localhost".into()),
            request_timeout: Duration::from_secs(5),
            ..DeviceClientOptions::default()
        }
    }

    fn send(&self, topic: String, qos: QoS, payload: impl Into<Vec<u8>>) {
        let mut p = Publish::new(topic, qos, payload);
        if qos != QoS::AtMostOnce {
            p.pkid = 1;
        }
        let tx = self
            .to_device
            .lock()
            .unwrap()
            .clone()
            .expect("a device is connected");
        tx.send(Packet::Publish(p)).unwrap();
    }

    async fn next(&mut self, what: &str, mut want: impl FnMut(&Seen) -> bool) -> Seen {
        timeout(WAIT, async {
            loop {
                let s = self.seen.recv().await.expect("hub running");
                if want(&s) {
                    return s;
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("the hub never saw {what}"))
    }

    /// The next reported PATCH body the device sent.
    async fn next_reported(&mut self, mut want: impl FnMut(&Value) -> bool) -> Value {
        let s = self
            .next("a reported patch", |s| match s {
                Seen::Publish { topic, payload } => {
                    matches!(
                        parse_device_publish(topic),
                        Ok(DevicePublish::TwinPatchReported { .. })
                    ) && want(&serde_json::from_slice(payload).unwrap())
                }
                _ => false,
            })
            .await;
        let Seen::Publish { payload, .. } = s else {
            unreachable!()
        };
        serde_json::from_slice(&payload).unwrap()
    }
}

async fn serve(
    stream: tokio_rustls::server::TlsStream<tokio::net::TcpStream>,
    out_tx: mpsc::UnboundedSender<Packet>,
    mut out_rx: mpsc::UnboundedReceiver<Packet>,
    seen: mpsc::UnboundedSender<Seen>,
    kill: Arc<Notify>,
    twin: Arc<Mutex<Twin>>,
    refuse: Option<ConnectReturnCode>,
) {
    let (mut rd, mut wr) = tokio::io::split(stream);
    let mut buf = BytesMut::new();
    loop {
        tokio::select! {
            _ = kill.notified() => return,
            p = out_rx.recv() => {
                let Some(p) = p else { return };
                let mut out = BytesMut::new();
                p.write(&mut out, 1 << 20).unwrap();
                if wr.write_all(&out).await.is_err() {
                    return;
                }
            }
            n = rd.read_buf(&mut buf) => {
                if !matches!(n, Ok(n) if n > 0) {
                    return;
                }
                loop {
                    let packet = match Packet::read(&mut buf, 1 << 20) {
                        Ok(p) => p,
                        Err(rumqttc::Error::InsufficientBytes(_)) => break,
                        Err(e) => panic!("bad packet from the device: {e:?}"),
                    };
                    if !answer(packet, &out_tx, &seen, &twin, refuse) {
                        // Let the CONNACK go out before closing.
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        while let Ok(p) = out_rx.try_recv() {
                            let mut out = BytesMut::new();
                            p.write(&mut out, 1 << 20).unwrap();
                            let _ = wr.write_all(&out).await;
                        }
                        return;
                    }
                }
            }
        }
    }
}

/// Acts on one packet from the device; false to close the connection.
fn answer(
    packet: Packet,
    out: &mpsc::UnboundedSender<Packet>,
    seen: &mpsc::UnboundedSender<Seen>,
    twin: &Mutex<Twin>,
    refuse: Option<ConnectReturnCode>,
) -> bool {
    let send = |p: Packet| {
        let _ = out.send(p);
    };
    match packet {
        Packet::Connect(c) => {
            let login = c.login.expect("a SAS token as password");
            let _ = seen.send(Seen::Connect {
                client_id: c.client_id,
                username: login.username,
                password: login.password,
            });
            let code = refuse.unwrap_or(ConnectReturnCode::Success);
            send(Packet::ConnAck(ConnAck::new(code, false)));
            return refuse.is_none();
        }
        Packet::Subscribe(s) => {
            let filters: Vec<String> = s.filters.iter().map(|f| f.path.clone()).collect();
            let codes = filters
                .iter()
                .map(|_| SubscribeReasonCode::Success(QoS::AtLeastOnce))
                .collect();
            let _ = seen.send(Seen::Subscribe(filters));
            send(Packet::SubAck(SubAck::new(s.pkid, codes)));
        }
        Packet::PingReq => send(Packet::PingResp),
        Packet::Disconnect => {
            let _ = seen.send(Seen::Disconnect);
            return false;
        }
        Packet::Publish(p) => {
            if p.qos == QoS::AtLeastOnce {
                send(Packet::PubAck(PubAck::new(p.pkid)));
            }
            let reply = |status: u16, rid: String, version: Option<u64>, body: Vec<u8>| {
                let topic = HubPublish::TwinResponse {
                    status,
                    rid,
                    version,
                }
                .to_topic();
                Packet::Publish(Publish::new(topic, QoS::AtMostOnce, body))
            };
            match parse_device_publish(&p.topic) {
                Ok(DevicePublish::TwinGet { rid }) => {
                    let t = twin.lock().unwrap();
                    let mut desired = t.desired.clone();
                    desired.insert("$version".into(), json!(t.desired_version));
                    let mut reported = t.reported.clone();
                    reported.insert("$version".into(), json!(t.reported_version));
                    let body = json!({"desired": desired, "reported": reported});
                    send(reply(200, rid, None, body.to_string().into_bytes()));
                }
                Ok(DevicePublish::TwinPatchReported { rid }) => {
                    let patch: Map<String, Value> = serde_json::from_slice(&p.payload).unwrap();
                    let mut t = twin.lock().unwrap();
                    for (k, v) in patch {
                        if v.is_null() {
                            t.reported.remove(&k);
                        } else {
                            t.reported.insert(k, v);
                        }
                    }
                    t.reported_version += 1;
                    send(reply(204, rid, Some(t.reported_version), Vec::new()));
                }
                _ => {}
            }
            let _ = seen.send(Seen::Publish {
                topic: p.topic,
                payload: p.payload.to_vec(),
            });
        }
        Packet::PubAck(_) | Packet::PingResp => {}
        other => panic!("unexpected packet from the device: {other:?}"),
    }
    true
}

fn device(id: &str) -> DeviceConnectionString {
    DeviceConnectionString::parse(&format!(
        "HostName=localhost;DeviceId={id};SharedAccessKey={KEY}"
    ))
    .unwrap()
}

async fn next_event(
    rx: &mut mpsc::UnboundedReceiver<DeviceEvent>,
    mut want: impl FnMut(&DeviceEvent) -> bool,
) -> DeviceEvent {
    timeout(WAIT, async {
        loop {
            let ev = rx.recv().await.expect("client running");
            if want(&ev) {
                return ev;
            }
        }
    })
    .await
    .expect("the expected device event arrived")
}

#[tokio::test]
async fn device_client_speaks_the_iot_hub_device_protocol() {
    let mut hub = FakeHub::start(None).await;
    let (client, mut events) = DeviceClient::connect(&device("d1"), hub.options()).unwrap();

    // CONNECT as the SDKs do it: client id, username with api-version, a valid device token.
    let Seen::Connect {
        client_id,
        username,
        password,
    } = hub
        .next("CONNECT", |s| matches!(s, Seen::Connect { .. }))
        .await
    else {
        unreachable!()
    };
    assert_eq!(client_id, "d1");
    assert!(
        username.starts_with("localhost/d1/?api-version="),
        "{username}"
    );
    let token = SasToken::parse(&password).unwrap();
    assert_eq!(token.resource, "localhost/devices/d1");
    verify_token(&token, KEY, 0).unwrap();

    assert_eq!(
        next_event(&mut events, |_| true).await,
        DeviceEvent::Connected
    );
    let Seen::Subscribe(mut filters) = hub
        .next("SUBSCRIBE", |s| matches!(s, Seen::Subscribe(_)))
        .await
    else {
        unreachable!()
    };
    filters.sort();
    assert_eq!(
        filters,
        [
            "$iothub/methods/POST/#",
            "$iothub/twin/PATCH/properties/desired/#",
            "$iothub/twin/res/#",
            "devices/d1/messages/devicebound/#"
        ]
    );

    // Twin GET and reported PATCH are matched to their answers by $rid.
    hub.twin
        .lock()
        .unwrap()
        .desired
        .insert("fan".into(), json!("on"));
    let twin = client.get_twin().await.unwrap();
    assert_eq!(twin["desired"]["fan"], "on");
    assert_eq!(twin["reported"]["$version"], 1);
    let (a, b) = tokio::join!(
        client.patch_reported(json!({"a": 1}).as_object().unwrap().clone()),
        client.patch_reported(json!({"b": 2}).as_object().unwrap().clone()),
    );
    let mut versions = [a.unwrap(), b.unwrap()];
    versions.sort();
    assert_eq!(versions, [2, 3]);
    assert_eq!(hub.twin.lock().unwrap().reported["b"], 2);

    // Telemetry goes to the events topic with its property bag.
    let mut props = PropertyBag::default();
    props.set("$.ct", Some("application/json".into()));
    props.set("color", Some("blue green".into()));
    client.send_telemetry(b"{\"t\":1}".to_vec(), props).unwrap();
    let Seen::Publish { topic, payload } = hub
        .next(
            "telemetry",
            |s| matches!(s, Seen::Publish { topic, .. } if topic.contains("/messages/events/")),
        )
        .await
    else {
        unreachable!()
    };
    let Ok(DevicePublish::Telemetry {
        device_id,
        properties,
        ..
    }) = parse_device_publish(&topic)
    else {
        panic!("{topic}")
    };
    assert_eq!(device_id, "d1");
    assert_eq!(properties.get("color"), Some("blue green"));
    assert_eq!(properties.system("ct"), Some("application/json"));
    assert_eq!(payload, b"{\"t\":1}");

    // Desired patch, method call and C2D arrive as typed events.
    hub.send(
        HubPublish::DesiredPatch { version: 5 }.to_topic(),
        QoS::AtMostOnce,
        json!({"fan": "off", "$version": 5}).to_string(),
    );
    let ev = next_event(&mut events, |_| true).await;
    assert_eq!(
        ev,
        DeviceEvent::DesiredPatch {
            version: 5,
            patch: json!({"fan": "off"}).as_object().unwrap().clone()
        }
    );
    hub.send(
        HubPublish::MethodRequest {
            method_name: "reboot".into(),
            rid: "42".into(),
        }
        .to_topic(),
        QoS::AtMostOnce,
        "{\"delay\":1}",
    );
    let DeviceEvent::MethodRequest { name, rid, payload } = next_event(&mut events, |_| true).await
    else {
        panic!()
    };
    assert_eq!(
        (name.as_str(), rid.as_str(), payload),
        ("reboot", "42", json!({"delay": 1}))
    );
    client
        .respond_method(&rid, 200, &json!({"rebooted": true}))
        .await
        .unwrap();
    let Seen::Publish { payload, .. } = hub
        .next("the method response", |s| {
            matches!(s, Seen::Publish { topic, .. } if topic == "$iothub/methods/res/200/?$rid=42")
        })
        .await
    else {
        unreachable!()
    };
    assert_eq!(
        serde_json::from_slice::<Value>(&payload).unwrap(),
        json!({"rebooted": true})
    );
    hub.send(
        "devices/d1/messages/devicebound/%24.mid=m1&k=v".into(),
        QoS::AtLeastOnce,
        "hi",
    );
    let DeviceEvent::C2d { properties, body } = next_event(&mut events, |_| true).await else {
        panic!()
    };
    assert_eq!(
        (
            properties.system("mid"),
            properties.get("k"),
            body.as_slice()
        ),
        (Some("m1"), Some("v"), &b"hi"[..])
    );

    // Close sends DISCONNECT.
    client.close().await;
    hub.next("DISCONNECT", |s| matches!(s, Seen::Disconnect))
        .await;
}

#[tokio::test]
async fn reconnects_with_a_fresh_token_and_subscribes_again() {
    let mut hub = FakeHub::start(None).await;
    let (client, mut events) = DeviceClient::connect(&device("d2"), hub.options()).unwrap();
    next_event(&mut events, |e| *e == DeviceEvent::Connected).await;
    hub.next("SUBSCRIBE", |s| matches!(s, Seen::Subscribe(_)))
        .await;
    hub.kill.notify_waiters();
    let ev = next_event(&mut events, |_| true).await;
    assert_eq!(
        ev,
        DeviceEvent::Disconnected {
            reason: "the hub closed the connection".into()
        }
    );
    assert!(!client.is_connected());
    next_event(&mut events, |e| *e == DeviceEvent::Connected).await;
    let Seen::Connect { password, .. } = hub
        .next("a second CONNECT", |s| matches!(s, Seen::Connect { .. }))
        .await
    else {
        unreachable!()
    };
    verify_token(&SasToken::parse(&password).unwrap(), KEY, 0).unwrap();
    hub.next("SUBSCRIBE again", |s| matches!(s, Seen::Subscribe(_)))
        .await;
    // Requests work on the new connection.
    assert_eq!(client.get_twin().await.unwrap()["reported"]["$version"], 1);
    client.close().await;
}

#[tokio::test]
async fn connack_5_is_reported_as_a_bad_device_key_and_retried() {
    let mut hub = FakeHub::start(Some(ConnectReturnCode::NotAuthorized)).await;
    let mut opts = hub.options();
    opts.backoff_initial = Duration::from_millis(50);
    let (client, mut events) = DeviceClient::connect(&device("d3"), opts).unwrap();
    for _ in 0..2 {
        let ev = next_event(&mut events, |_| true).await;
        assert_eq!(
            ev,
            DeviceEvent::Disconnected {
                reason: "not authorized: check the device key".into()
            }
        );
        hub.next("CONNECT", |s| matches!(s, Seen::Connect { .. }))
            .await;
    }
    // A twin request on a connection that never comes up times out with a sentence.
    let mut opts = hub.options();
    opts.request_timeout = Duration::from_millis(300);
    let (c2, _ev2) = DeviceClient::connect(&device("d4"), opts).unwrap();
    let e = c2.get_twin().await.unwrap_err();
    assert_eq!(
        e.to_string(),
        "the hub did not answer the twin request within 300ms"
    );
    client.close().await;
    c2.close().await;
}

/// With paused time: a hub that accepts TCP but never answers makes every attempt time out
/// after rumqttc's 5 s connection timeout; between attempts the client waits 1, 2, 4, 8, 16,
/// 30, 30 s (±20 % jitter).
#[tokio::test(start_paused = true)]
async fn reconnect_backoff_schedule() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let hub_dir = tempfile::tempdir().unwrap();
    let ca = HubCertificates::load_or_create(hub_dir.path(), &[])
        .unwrap()
        .ca_pem()
        .unwrap();
    let opts = DeviceClientOptions {
        port,
        trust: Trust::CaPem(ca),
        connect_host: Some("127.0.0.1".into()),
        ..DeviceClientOptions::default()
    };
    let (client, mut events) = DeviceClient::connect(&device("d5"), opts).unwrap();
    let mut at = Vec::new();
    while at.len() < 8 {
        let ev = events.recv().await.unwrap();
        let DeviceEvent::Disconnected { reason } = ev else {
            panic!("{ev:?}")
        };
        assert_eq!(reason, format!("timed out connecting to 127.0.0.1:{port}"));
        at.push(tokio::time::Instant::now());
    }
    let bases = [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0];
    for (i, base) in bases.iter().enumerate() {
        let waited = (at[i + 1] - at[i]).as_secs_f64() - 5.0;
        assert!(
            waited >= base * 0.8 - 0.01 && waited <= (base * 1.2f64).min(30.0) + 0.01,
            "wait {i} was {waited:.2} s, expected about {base} s"
        );
    }
    client.close().await;
    drop(listener);
}

#[tokio::test]
async fn simulator_reports_follows_desired_answers_methods_and_counts_c2d() {
    let mut hub = FakeHub::start(None).await;
    hub.twin
        .lock()
        .unwrap()
        .desired
        .insert("colour".into(), json!("red"));
    let sim = Simulator::start(
        &device("sim-1"),
        SimulatorOptions {
            kind: DeviceKind::Thermostat,
            seed: 11,
            client: hub.options(),
        },
    )
    .unwrap();

    // On connect: identity, defaults and acknowledgements of what desired already holds.
    let r = hub.next_reported(|r| r.get("kind").is_some()).await;
    assert_eq!(r["kind"], "thermostat");
    assert!(r["firmware"].is_string());
    assert_eq!(r["c2dReceived"], 0);
    assert_eq!(r["telemetryInterval"]["value"], 5);
    assert_eq!(r["telemetryInterval"]["ac"], 203);
    assert_eq!(r["colour"]["ac"], 400);
    assert_eq!(r["colour"]["av"], 1);

    // A faster interval is acknowledged and used.
    hub.send(
        HubPublish::DesiredPatch { version: 2 }.to_topic(),
        QoS::AtMostOnce,
        json!({"telemetryInterval": 1, "$version": 2}).to_string(),
    );
    let r = hub
        .next_reported(|r| r.get("telemetryInterval").is_some())
        .await;
    assert_eq!(
        r["telemetryInterval"],
        json!({"value": 1, "ac": 200, "av": 2, "ad": "completed"})
    );
    for _ in 0..2 {
        let Seen::Publish { topic, payload } = hub
            .next(
                "telemetry",
                |s| matches!(s, Seen::Publish { topic, .. } if topic.contains("/messages/events/")),
            )
            .await
        else {
            unreachable!()
        };
        let Ok(DevicePublish::Telemetry { properties, .. }) = parse_device_publish(&topic) else {
            panic!("{topic}")
        };
        assert_eq!(properties.get("kind"), Some("thermostat"));
        assert_eq!(properties.system("ct"), Some("application/json"));
        assert!(properties.system("mid").is_some());
        let body: Value = serde_json::from_slice(&payload).unwrap();
        assert!(body["temperature"].is_number(), "{body}");
    }

    // Methods.
    for (name, rid, status) in [
        ("reboot", "1", 200),
        ("ping", "2", 200),
        ("explode", "3", 404),
    ] {
        hub.send(
            HubPublish::MethodRequest {
                method_name: name.into(),
                rid: rid.into(),
            }
            .to_topic(),
            QoS::AtMostOnce,
            "",
        );
        let want = format!("$iothub/methods/res/{status}/?$rid={rid}");
        let Seen::Publish { payload, .. } = hub
            .next(
                &want.clone(),
                |s| matches!(s, Seen::Publish { topic, .. } if *topic == want),
            )
            .await
        else {
            unreachable!()
        };
        let v: Value = serde_json::from_slice(&payload).unwrap();
        match name {
            "reboot" => assert_eq!(v, json!({"rebooted": true})),
            "ping" => assert!(v["temperature"].is_number(), "{v}"),
            _ => assert_eq!(v, json!({"error": "unknown method"})),
        }
    }

    // C2D is counted in reported properties.
    hub.send(
        "devices/sim-1/messages/devicebound/".into(),
        QoS::AtLeastOnce,
        "hello",
    );
    let r = hub.next_reported(|r| r.get("c2dReceived").is_some()).await;
    assert_eq!(r["c2dReceived"], 1);
    sim.stop().await;
    hub.next("DISCONNECT", |s| matches!(s, Seen::Disconnect))
        .await;
}

#[tokio::test]
async fn renews_the_token_before_it_expires() {
    let mut hub = FakeHub::start(None).await;
    let mut opts = hub.options();
    opts.token_lifetime = Duration::from_secs(4);
    opts.keep_alive = Duration::from_secs(1);
    let (client, mut events) = DeviceClient::connect(&device("d6"), opts).unwrap();
    next_event(&mut events, |e| *e == DeviceEvent::Connected).await;
    let Seen::Connect { password, .. } = hub
        .next("CONNECT", |s| matches!(s, Seen::Connect { .. }))
        .await
    else {
        unreachable!()
    };
    let first = SasToken::parse(&password).unwrap().expiry;
    let ev = next_event(&mut events, |_| true).await;
    assert_eq!(
        ev,
        DeviceEvent::Disconnected {
            reason: "renewing the SAS token".into()
        }
    );
    next_event(&mut events, |e| *e == DeviceEvent::Connected).await;
    let Seen::Connect { password, .. } = hub
        .next("a renewed CONNECT", |s| matches!(s, Seen::Connect { .. }))
        .await
    else {
        unreachable!()
    };
    let second = SasToken::parse(&password).unwrap();
    assert!(second.expiry > first, "{} <= {first}", second.expiry);
    verify_token(&second, KEY, 0).unwrap();
    client.close().await;
}
