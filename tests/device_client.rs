//! DeviceClient against the real local hub (its MQTT endpoint on a free loopback port): the
//! device protocol end to end through the service REST API and the hub's state, reconnects,
//! refusals, token renewal and request timeouts. The simulator's loop is in tests/simulator.rs.

mod common;

use std::future::Future;
use std::time::Duration;

use common::TestHub;
use hubtui::client::device::{DeviceClient, DeviceClientOptions, DeviceEvent, Trust};
use hubtui::hub::HubOptions;
use hubtui::hub::sessions::Subscribed;
use hubtui::hub::telemetry::{StoredProperties, partition_of};
use hubtui::iothub::connection_string::DeviceConnectionString;
use hubtui::iothub::property_bag::PropertyBag;
use reqwest::{Method, StatusCode};
use rumqttc::{AsyncClient, Event, Packet};
use serde_json::{Map, Value, json};
use tokio::sync::mpsc;
use tokio::time::{Instant, timeout};

/// A valid key that no device created by the hub has.
const OTHER_KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const WAIT: Duration = Duration::from_secs(10);
const DEVICE_SUBSCRIPTIONS: Subscribed = Subscribed {
    methods: true,
    desired: true,
    c2d: true,
};

type Events = mpsc::UnboundedReceiver<DeviceEvent>;

fn connection_string(hub: &TestHub, id: &str, key: &str) -> DeviceConnectionString {
    DeviceConnectionString::parse(&format!(
        "HostName={};DeviceId={id};SharedAccessKey={key}",
        hub.host()
    ))
    .unwrap()
}

fn options(hub: &TestHub) -> DeviceClientOptions {
    DeviceClientOptions {
        port: hub.hub.info.ports.mqtt,
        trust: Trust::CaPem(hub.hub.ca_pem.clone()),
        connect_host: Some("localhost".into()),
        request_timeout: Duration::from_secs(5),
        backoff_initial: Duration::from_millis(100),
        ..DeviceClientOptions::default()
    }
}

fn object(v: Value) -> Map<String, Value> {
    let Value::Object(m) = v else { panic!("{v}") };
    m
}

async fn next_event(rx: &mut Events) -> DeviceEvent {
    timeout(WAIT, rx.recv())
        .await
        .expect("a device event in time")
        .expect("the client is running")
}

/// Polls `check` until it yields a value.
async fn wait_for<T, F: Future<Output = Option<T>>>(what: &str, mut check: impl FnMut() -> F) -> T {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "never saw {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

async fn get_json(hub: &TestHub, path: &str) -> Value {
    let r = hub.call(Method::GET, path, None).await;
    assert_eq!(r.status, StatusCode::OK, "GET {path}: {}", r.body);
    r.body
}

/// Waits until the registry shows the device in `state` ("Connected" / "Disconnected").
async fn wait_connection_state(hub: &TestHub, id: &str, state: &str) {
    let path = format!("/devices/{id}");
    wait_for(&format!("{id} {state}"), || async {
        (get_json(hub, &path).await["connectionState"] == state).then_some(())
    })
    .await;
}

/// What the hub's live session for the identity has subscribed to.
async fn wait_subscribed(hub: &TestHub, device: &str, module: Option<&str>, want: Subscribed) {
    let key = (device.to_string(), module.map(str::to_string));
    wait_for(&format!("subscriptions {want:?}"), || async {
        (hub.hub.state.sessions.subscribed(&key) == Some(want)).then_some(())
    })
    .await;
}

/// PATCHes desired properties through the service API; returns the new desired `$version`.
async fn patch_desired(hub: &TestHub, path: &str, desired: Value) -> u64 {
    let r = hub
        .call(
            Method::PATCH,
            path,
            Some(json!({"properties": {"desired": desired}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    r.body["properties"]["desired"]["$version"]
        .as_u64()
        .unwrap()
}

/// Telemetry the hub stored for the device (module), waiting for at least `n` records.
async fn stored_telemetry(
    hub: &TestHub,
    device: &str,
    module: Option<&str>,
    n: usize,
) -> Vec<(StoredProperties, Vec<u8>)> {
    let partition = partition_of(device, hub.hub.state.settings.partitions);
    wait_for(&format!("{n} stored messages from {device}"), || async {
        let recs: Vec<_> = (hub.hub.state.store)
            .telemetry_read(partition, 0, 100)
            .unwrap()
            .into_iter()
            .filter(|r| r.device_id == device && r.module_id.as_deref() == module)
            .map(|r| (serde_json::from_str(&r.properties).unwrap(), r.body))
            .collect();
        (recs.len() >= n).then_some(recs)
    })
    .await
}

#[tokio::test]
async fn device_client_speaks_the_iot_hub_device_protocol() {
    let hub = TestHub::start().await;
    let key = hub.create_device("d1").await;
    let fan_on = patch_desired(&hub, "/twins/d1", json!({"fan": "on"})).await;
    let reported_before = get_json(&hub, "/twins/d1").await["properties"]["reported"]["$version"]
        .as_u64()
        .unwrap();

    // The hub accepts the client id, username and token, and sees all four subscriptions.
    let (client, mut events) =
        DeviceClient::connect(&connection_string(&hub, "d1", &key), options(&hub)).unwrap();
    assert_eq!(next_event(&mut events).await, DeviceEvent::Connected);
    assert!(client.is_connected());
    wait_subscribed(&hub, "d1", None, DEVICE_SUBSCRIPTIONS).await;
    wait_connection_state(&hub, "d1", "Connected").await;

    // Twin GET sees desired set before the connection; concurrent reported PATCHes are matched
    // to their answers by $rid and each gets its own new version.
    let twin = client.get_twin().await.unwrap();
    assert_eq!(twin["desired"]["fan"], "on");
    assert_eq!(twin["desired"]["$version"], fan_on);
    assert_eq!(twin["reported"]["$version"], reported_before);
    let (a, b) = tokio::join!(
        client.patch_reported(object(json!({"a": 1}))),
        client.patch_reported(object(json!({"b": {"c": "x"}}))),
    );
    let mut versions = [a.unwrap(), b.unwrap()];
    versions.sort();
    assert_eq!(versions, [reported_before + 1, reported_before + 2]);
    let reported = &get_json(&hub, "/twins/d1").await["properties"]["reported"];
    assert_eq!(
        (&reported["a"], &reported["b"], &reported["$version"]),
        (&json!(1), &json!({"c": "x"}), &json!(reported_before + 2))
    );
    // A patch the hub refuses comes back as a sentence with its status.
    let e = client
        .patch_reported(object(json!({"$bad": 1})))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("with status 400"), "{e}");

    // Telemetry is stored with its property bag and the device's identity.
    let mut props = PropertyBag::default();
    props.set("$.ct", Some("application/json".into()));
    props.set("color", Some("blue green".into()));
    props.set("a&b=c", Some("x?y".into()));
    client.send_telemetry(b"{\"t\":1}".to_vec(), props).unwrap();
    let stored = stored_telemetry(&hub, "d1", None, 1).await;
    assert_eq!(stored.len(), 1);
    let (stored_props, body) = &stored[0];
    assert_eq!(body, b"{\"t\":1}");
    let bag = PropertyBag {
        entries: stored_props.bag.clone(),
    };
    assert_eq!(bag.get("$.ct"), Some("application/json"));
    assert_eq!(bag.get("color"), Some("blue green"));
    assert_eq!(bag.get("a&b=c"), Some("x?y"));
    assert!(
        stored_props.auth_method.contains("\"scope\":\"device\""),
        "{}",
        stored_props.auth_method
    );

    // A desired patch through the service API arrives with its version, `$version` removed.
    let fan_off = patch_desired(&hub, "/twins/d1", json!({"fan": "off", "mode": null})).await;
    assert_eq!(
        next_event(&mut events).await,
        DeviceEvent::DesiredPatch {
            version: fan_off,
            patch: object(json!({"fan": "off", "mode": null}))
        }
    );

    // A direct method: the REST caller sees the device's status and payload.
    let call = hub.call(
        Method::POST,
        "/twins/d1/methods",
        Some(json!({"methodName": "reboot", "payload": {"delay": 1}, "responseTimeoutInSeconds": 10})),
    );
    let answer = async {
        let DeviceEvent::MethodRequest { name, rid, payload } = next_event(&mut events).await
        else {
            panic!("expected a method request")
        };
        assert_eq!((name.as_str(), payload), ("reboot", json!({"delay": 1})));
        client
            .respond_method(&rid, 201, &json!({"rebooted": true}))
            .await
            .unwrap();
    };
    let (r, ()) = tokio::join!(call, answer);
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        r.body,
        json!({"status": 201, "payload": {"rebooted": true}})
    );

    // C2D queued on the hub arrives with its properties, and the acknowledgement completes it.
    let mut c2d = PropertyBag::default();
    c2d.set("$.mid", Some("m1".into()));
    c2d.set("k", Some("v w".into()));
    (hub.hub.state)
        .enqueue_c2d("d1", c2d, b"hi".to_vec(), None)
        .unwrap();
    let DeviceEvent::C2d { properties, body } = next_event(&mut events).await else {
        panic!("expected a C2D message")
    };
    assert_eq!(body, b"hi");
    assert_eq!(properties.system("mid"), Some("m1"));
    assert_eq!(properties.get("k"), Some("v w"));
    assert_eq!(
        properties.system("to"),
        Some("/devices/d1/messages/devicebound")
    );
    wait_for("the C2D queue emptied", || async {
        (get_json(&hub, "/devices/d1").await["cloudToDeviceMessageCount"] == 0).then_some(())
    })
    .await;

    // close() disconnects; the registry sees it.
    client.close().await;
    wait_connection_state(&hub, "d1", "Disconnected").await;
    assert_eq!(timeout(WAIT, events.recv()).await.unwrap(), None);
}

/// The hub closes a module's connection if it subscribes to C2D: a module client must not.
#[tokio::test]
async fn module_client_subscribes_without_c2d_and_stays_connected() {
    let hub = TestHub::start().await;
    hub.create_device("d1").await;
    let key = hub.create_module("d1", "m1").await;
    let cs = DeviceConnectionString::parse(&format!(
        "HostName={};DeviceId=d1;ModuleId=m1;SharedAccessKey={key}",
        hub.host()
    ))
    .unwrap();
    let (client, mut events) = DeviceClient::connect(&cs, options(&hub)).unwrap();
    assert_eq!(next_event(&mut events).await, DeviceEvent::Connected);
    let without_c2d = Subscribed {
        c2d: false,
        ..DEVICE_SUBSCRIPTIONS
    };
    wait_subscribed(&hub, "d1", Some("m1"), without_c2d).await;

    let version = client
        .patch_reported(object(json!({"module": true})))
        .await
        .unwrap();
    let twin = client.get_twin().await.unwrap();
    assert_eq!(twin["reported"]["module"], true);
    assert_eq!(twin["reported"]["$version"], version);
    let desired = patch_desired(&hub, "/twins/d1/modules/m1", json!({"level": 3})).await;
    assert_eq!(
        next_event(&mut events).await,
        DeviceEvent::DesiredPatch {
            version: desired,
            patch: object(json!({"level": 3}))
        }
    );
    client
        .send_telemetry(b"from m1".to_vec(), PropertyBag::default())
        .unwrap();
    let stored = stored_telemetry(&hub, "d1", Some("m1"), 1).await;
    assert_eq!(stored[0].1, b"from m1");
    assert!(client.is_connected());
    assert!(events.try_recv().is_err(), "no disconnect");
    client.close().await;
}

/// When its token expires the hub closes the connection, and the client reconnects with a
/// fresh one. Then a second connection for the same identity makes the hub drop the
/// client's; it connected with clean session, so the hub forgot the subscriptions: only
/// the client subscribing again brings desired patches back.
#[tokio::test]
async fn reconnects_with_a_fresh_token_and_subscribes_again() {
    let hub = TestHub::start().await;
    let key = hub.create_device("d2").await;
    let mut opts = options(&hub);
    opts.token_lifetime = Duration::from_secs(4); // the shortest the client allows
    opts.backoff_initial = Duration::from_millis(500);
    let started = Instant::now();
    let (client, mut events) =
        DeviceClient::connect(&connection_string(&hub, "d2", &key), opts).unwrap();
    assert_eq!(next_event(&mut events).await, DeviceEvent::Connected);
    wait_subscribed(&hub, "d2", None, DEVICE_SUBSCRIPTIONS).await;

    // Idle (no packets, so no renewal): the hub closes the connection when the token
    // expires, as Azure does...
    assert_eq!(
        next_event(&mut events).await,
        DeviceEvent::Disconnected {
            reason: "the hub closed the connection".into(),
            refused: false,
        }
    );
    assert!(
        started.elapsed() >= Duration::from_secs(3),
        "closed at expiry"
    );
    // ...and the client comes back with a new, valid token (not "not authorized").
    assert_eq!(next_event(&mut events).await, DeviceEvent::Connected);
    wait_subscribed(&hub, "d2", None, DEVICE_SUBSCRIPTIONS).await;

    // A clean session of the same identity drops the stored subscriptions and closes
    // the client's connection: the client reconnects and subscribes again.
    let mut intruder_opts = hub.mqtt_options("d2", &key);
    intruder_opts.set_clean_session(true);
    let (_intruder, mut intruder_loop) = AsyncClient::new(intruder_opts, 10);
    loop {
        match intruder_loop.poll().await.expect("the second connection") {
            Event::Incoming(Packet::ConnAck(_)) => break,
            _ => continue,
        }
    }
    assert_eq!(
        hub.hub.state.sessions.subscribed(&("d2".into(), None)),
        Some(Subscribed::default()),
        "the clean session dropped the stored subscriptions"
    );
    assert_eq!(
        next_event(&mut events).await,
        DeviceEvent::Disconnected {
            reason: "the hub closed the connection".into(),
            refused: false,
        }
    );
    drop(intruder_loop);
    assert_eq!(next_event(&mut events).await, DeviceEvent::Connected);
    wait_subscribed(&hub, "d2", None, DEVICE_SUBSCRIPTIONS).await;
    let version = patch_desired(&hub, "/twins/d2", json!({"after": "reconnect"})).await;
    assert_eq!(
        next_event(&mut events).await,
        DeviceEvent::DesiredPatch {
            version,
            patch: object(json!({"after": "reconnect"}))
        }
    );
    assert_eq!(
        client.get_twin().await.unwrap()["desired"]["after"],
        "reconnect"
    );
    client.close().await;
}

/// CONNACK 5 from the hub (a key it does not know) is one sentence, retried with a growing
/// backoff; twin requests time out meanwhile; once the hub has the key the retry gets in.
#[tokio::test]
async fn a_refused_key_is_reported_and_retried_until_the_hub_accepts_it() {
    let hub = TestHub::start().await;
    hub.create_device("d3").await;
    let mut opts = options(&hub);
    opts.request_timeout = Duration::from_millis(300);
    let (client, mut events) =
        DeviceClient::connect(&connection_string(&hub, "d3", OTHER_KEY), opts).unwrap();
    let mut at = Vec::new();
    for _ in 0..3 {
        assert_eq!(
            next_event(&mut events).await,
            DeviceEvent::Disconnected {
                reason: "not authorized: check the device key".into(),
                refused: true,
            }
        );
        at.push(Instant::now());
    }
    // Backoff from 100 ms, doubling, ±20 %.
    assert!(at[1] - at[0] >= Duration::from_millis(80), "{at:?}");
    assert!(at[2] - at[1] >= Duration::from_millis(160), "{at:?}");
    assert!(!client.is_connected());
    let e = client.get_twin().await.unwrap_err();
    assert_eq!(
        e.to_string(),
        "the hub did not answer the twin request within 300ms"
    );

    let r = hub
        .call_as(
            "iothubowner",
            Method::PUT,
            "/devices/d3",
            Some(json!({"deviceId": "d3", "authentication": {"type": "sas",
                "symmetricKey": {"primaryKey": OTHER_KEY, "secondaryKey": OTHER_KEY}}})),
            &[("If-Match", "*")],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let ev = timeout(WAIT, async {
        loop {
            match next_event(&mut events).await {
                DeviceEvent::Disconnected { .. } => continue,
                ev => return ev,
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(ev, DeviceEvent::Connected);
    assert!(client.get_twin().await.is_ok());
    client.close().await;
}

/// A device deleted while connected: the hub drops it and refuses it from then on, so a twin
/// request gets no answer and ends with a sentence.
#[tokio::test]
async fn twin_requests_end_when_the_device_is_deleted() {
    let hub = TestHub::start().await;
    let key = hub.create_device("d4").await;
    let mut opts = options(&hub);
    opts.request_timeout = Duration::from_millis(700);
    let (client, mut events) =
        DeviceClient::connect(&connection_string(&hub, "d4", &key), opts).unwrap();
    assert_eq!(next_event(&mut events).await, DeviceEvent::Connected);
    assert!(client.get_twin().await.is_ok());

    let r = hub.call(Method::DELETE, "/devices/d4", None).await;
    assert!(r.status.is_success(), "{} {}", r.status, r.body);
    assert_eq!(
        next_event(&mut events).await,
        DeviceEvent::Disconnected {
            reason: "the hub closed the connection".into(),
            refused: false,
        }
    );
    // Asked while the client reconnects: the refused reconnect ends the request at once.
    let e = client.get_twin().await.unwrap_err();
    assert_eq!(
        e.to_string(),
        "the connection dropped before the hub answered the twin request"
    );
    assert_eq!(
        next_event(&mut events).await,
        DeviceEvent::Disconnected {
            reason: "not authorized: check the device key".into(),
            refused: true,
        }
    );
    client.close().await;
}

/// With 4 s tokens the client reconnects about a second before each expires; the hub accepts
/// the second renewal, which comes after the first token expired, only with a fresh token.
#[tokio::test]
async fn renews_the_token_before_it_expires() {
    let hub = TestHub::start().await;
    let key = hub.create_device("d6").await;
    let mut opts = options(&hub);
    opts.token_lifetime = Duration::from_secs(4);
    opts.keep_alive = Duration::from_secs(1);
    let started = Instant::now();
    let (client, mut events) =
        DeviceClient::connect(&connection_string(&hub, "d6", &key), opts).unwrap();
    assert_eq!(next_event(&mut events).await, DeviceEvent::Connected);
    for _ in 0..2 {
        assert_eq!(
            next_event(&mut events).await,
            DeviceEvent::Disconnected {
                reason: "renewing the SAS token".into(),
                refused: false,
            }
        );
        assert_eq!(next_event(&mut events).await, DeviceEvent::Connected);
    }
    let elapsed = started.elapsed();
    assert!(
        elapsed > Duration::from_secs(4) && elapsed < Duration::from_secs(8),
        "{elapsed:?}"
    );
    wait_subscribed(&hub, "d6", None, DEVICE_SUBSCRIPTIONS).await;
    assert!(client.get_twin().await.is_ok());
    client.close().await;
}

/// QoS 1 telemetry keeps flowing through a restart of the hub: every message the client
/// accepted reaches the hub's store once the device is back; duplicates (a message the
/// hub stored but whose PUBACK was lost with the connection) are counted, never lost.
#[tokio::test(flavor = "multi_thread")]
async fn a_hub_restart_during_a_telemetry_stream_loses_no_message() {
    const N: usize = 300;
    let mut hub = TestHub::start().await;
    let key = hub.create_device("d7").await;
    let ports = hub.hub.info.ports.clone();
    let (client, mut events) =
        DeviceClient::connect(&connection_string(&hub, "d7", &key), options(&hub)).unwrap();
    assert_eq!(next_event(&mut events).await, DeviceEvent::Connected);

    let mut restarted = false;
    for seq in 0..N {
        let body = format!("{{\"seq\":{seq}}}");
        client
            .send_telemetry(body, PropertyBag::default())
            .unwrap_or_else(|e| panic!("message {seq} not accepted: {e}"));
        if seq == N / 2 {
            // A graceful stop, then the same data dir on the same ports.
            let old = hub.hub;
            old.shutdown().await;
            let mut opts = HubOptions::ephemeral(hub.dir.path().to_path_buf());
            opts.mqtt_port = ports.mqtt;
            opts.https_port = ports.https;
            opts.amqp_port = ports.amqp.unwrap_or(0);
            hub.hub = hubtui::hub::start(opts).await.expect("the hub restarts");
            restarted = true;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    assert!(restarted);
    let stored = stored_telemetry_at_least(&hub, "d7", N).await;
    let mut seen = vec![0usize; N];
    for body in &stored {
        let v: Value = serde_json::from_slice(body).unwrap();
        seen[v["seq"].as_u64().unwrap() as usize] += 1;
    }
    let lost: Vec<_> = (0..N).filter(|&i| seen[i] == 0).collect();
    assert!(lost.is_empty(), "lost messages {lost:?}");
    let duplicates: usize = seen.iter().map(|&n| n.saturating_sub(1)).sum();
    println!("{N} messages through a hub restart: 0 lost, {duplicates} duplicates");
    client.close().await;
}

/// Bodies of every message `device` has stored, once there are at least `n`.
async fn stored_telemetry_at_least(hub: &TestHub, device: &str, n: usize) -> Vec<Vec<u8>> {
    let partition = partition_of(device, hub.hub.state.settings.partitions);
    wait_for(&format!("{n} stored messages from {device}"), || async {
        let recs: Vec<_> = (hub.hub.state.store)
            .telemetry_read(partition, 0, 10_000)
            .unwrap()
            .into_iter()
            .filter(|r| r.device_id == device)
            .map(|r| r.body)
            .collect();
        (recs.len() >= n).then_some(recs)
    })
    .await
}
