//! What the hub keeps on an identity and its twin. Concurrent writers: every
//! read-modify-write in the hub is one atomic step, so If-Match is a true
//! compare-and-set, nothing that was acknowledged is lost, and desired-patch
//! notifications reach the device once each, in version order; each race runs for
//! many rounds so that it cannot hide. And the Plug and Play model id a device announces.
mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::TestHub;
use futures::future::join_all;
use hubtui::iothub::topic::{HubPublish, Subscription, parse_hub_publish};
use reqwest::{Method, StatusCode};
use rumqttc::{AsyncClient, Event, Packet, QoS};
use serde_json::{Value, json};
use tokio::sync::mpsc;

const ROUNDS: usize = 15;
const WRITERS: usize = 24;

fn key(device: &str) -> (String, Option<String>) {
    (device.to_string(), None)
}

async fn twin(hub: &TestHub, device: &str) -> Value {
    let r = hub
        .call(Method::GET, &format!("/twins/{device}"), None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    r.body
}

async fn patch_desired(
    hub: &TestHub,
    device: &str,
    desired: Value,
    if_match: &str,
) -> common::Reply {
    hub.call_as(
        "iothubowner",
        Method::PATCH,
        &format!("/twins/{device}"),
        Some(json!({"properties": {"desired": desired}})),
        &[("If-Match", if_match)],
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_desired_patches_keep_every_key() {
    let hub = TestHub::start().await;
    hub.create_device("d").await;
    let start = twin(&hub, "d").await["properties"]["desired"]["$version"]
        .as_u64()
        .unwrap();
    for round in 0..ROUNDS {
        let replies =
            join_all(
                (0..WRITERS).map(|i| {
                    let hub = &hub;
                    async move {
                        patch_desired(hub, "d", json!({format!("k{round}_{i}"): i}), "*").await
                    }
                }),
            )
            .await;
        for r in &replies {
            assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        }
    }
    let desired = &twin(&hub, "d").await["properties"]["desired"];
    for round in 0..ROUNDS {
        for i in 0..WRITERS {
            assert_eq!(
                desired[format!("k{round}_{i}")],
                json!(i),
                "an acknowledged PATCH was lost: {desired}"
            );
        }
    }
    assert_eq!(
        desired["$version"].as_u64().unwrap(),
        start + (ROUNDS * WRITERS) as u64,
        "one version per acknowledged PATCH"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writers_with_the_same_etag_exactly_one_wins() {
    let hub = TestHub::start().await;
    hub.create_device("d").await;
    for round in 0..ROUNDS {
        let etag = twin(&hub, "d").await["etag"].as_str().unwrap().to_string();
        let quoted = format!("\"{etag}\"");
        let replies = join_all((0..8).map(|i| {
            let (hub, quoted) = (&hub, &quoted);
            async move {
                patch_desired(hub, "d", json!({"winner": format!("{round}/{i}")}), quoted).await
            }
        }))
        .await;
        let won: Vec<_> = replies
            .iter()
            .filter(|r| r.status == StatusCode::OK)
            .collect();
        let refused = replies
            .iter()
            .filter(|r| r.status == StatusCode::PRECONDITION_FAILED)
            .count();
        assert_eq!(won.len(), 1, "round {round}: more than one writer won");
        assert_eq!(refused, 7, "round {round}: the others get 412");
        let desired = &twin(&hub, "d").await["properties"]["desired"];
        assert_eq!(
            desired["winner"], won[0].body["properties"]["desired"]["winner"],
            "the stored value is the winner's"
        );
    }
}

/// A device whose event loop runs in its own task and forwards desired patches.
async fn device_with_desired_patches(
    hub: &TestHub,
    device: &str,
    key: &str,
) -> (AsyncClient, mpsc::UnboundedReceiver<(u64, Value)>) {
    let (client, mut eventloop) = AsyncClient::new(hub.mqtt_options(device, key), 256);
    let (tx, rx) = mpsc::unbounded_channel();
    let (subscribed_tx, subscribed) = tokio::sync::oneshot::channel();
    let mut subscribed_tx = Some(subscribed_tx);
    tokio::spawn(async move {
        while let Ok(ev) = eventloop.poll().await {
            match ev {
                Event::Incoming(Packet::SubAck(_)) => {
                    if let Some(s) = subscribed_tx.take() {
                        let _ = s.send(());
                    }
                }
                Event::Incoming(Packet::Publish(p)) => {
                    if let Ok(HubPublish::DesiredPatch { version }) = parse_hub_publish(&p.topic) {
                        let body: Value = serde_json::from_slice(&p.payload).unwrap();
                        if tx.send((version, body)).is_err() {
                            return;
                        }
                    }
                }
                _ => {}
            }
        }
    });
    client
        .subscribe(Subscription::DesiredPatches.to_filter(), QoS::AtLeastOnce)
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(10), subscribed)
        .await
        .expect("SUBACK in time")
        .unwrap();
    (client, rx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reported_and_desired_racing_lose_nothing_and_notify_in_order() {
    let hub = TestHub::start().await;
    let device_key = hub.create_device("d").await;
    let (_client, mut patches) = device_with_desired_patches(&hub, "d", &device_key).await;
    let state = hub.hub.state.clone();
    let writers = 8;
    for round in 0..ROUNDS {
        // The device's reported patches (the hub's MQTT path calls patch_reported) on
        // blocking threads, racing the service's desired PATCHes over REST.
        let reported: Vec<_> = (0..writers)
            .map(|i| {
                let state = Arc::clone(&state);
                tokio::task::spawn_blocking(move || {
                    let patch = json!({format!("r{round}_{i}"): i}).to_string();
                    state.patch_reported(&key("d"), patch.as_bytes())
                })
            })
            .collect();
        let desired =
            join_all(
                (0..writers).map(|i| {
                    let hub = &hub;
                    async move {
                        patch_desired(hub, "d", json!({format!("d{round}_{i}"): i}), "*").await
                    }
                }),
            )
            .await;
        for r in desired {
            assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        }
        for r in join_all(reported).await {
            r.unwrap().expect("reported patch stored");
        }
    }
    let props = &twin(&hub, "d").await["properties"];
    for round in 0..ROUNDS {
        for i in 0..writers {
            assert_eq!(
                props["desired"][format!("d{round}_{i}")],
                json!(i),
                "{props}"
            );
            assert_eq!(
                props["reported"][format!("r{round}_{i}")],
                json!(i),
                "{props}"
            );
        }
    }
    // One notification per stored desired change, in version order, each carrying
    // exactly the key that version stored.
    let last = props["desired"]["$version"].as_u64().unwrap();
    let mut seen = Vec::new();
    while seen.len() < ROUNDS * writers {
        let (version, body) = tokio::time::timeout(Duration::from_secs(10), patches.recv())
            .await
            .expect("every desired patch is notified")
            .expect("device still connected");
        assert_eq!(body["$version"], json!(version));
        seen.push((version, body));
    }
    let versions: Vec<u64> = seen.iter().map(|(v, _)| *v).collect();
    assert!(
        versions.windows(2).all(|w| w[1] == w[0] + 1),
        "notifications out of order: {versions:?}"
    );
    assert_eq!(*versions.last().unwrap(), last);
    for (_, body) in &seen {
        let (k, v) = body
            .as_object()
            .unwrap()
            .iter()
            .find(|(k, _)| !k.starts_with('$'))
            .unwrap();
        assert_eq!(
            &props["desired"][k], v,
            "notified a change that was not stored"
        );
    }
}

struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn identity_updates_survive_connection_state_changes() {
    let hub = TestHub::start().await;
    hub.create_device("d").await;
    let state = hub.hub.state.clone();
    let stop = Arc::new(AtomicBool::new(false));
    // Stops the writers even when an assertion below fails, so the test ends.
    let _stop = StopOnDrop(Arc::clone(&stop));
    // Connects and disconnects recorded as fast as the store takes them.
    let togglers: Vec<_> = (0..2)
        .map(|_| {
            let (state, stop) = (Arc::clone(&state), Arc::clone(&stop));
            tokio::task::spawn_blocking(move || {
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let connected = n.is_multiple_of(2).then_some(None);
                    state.set_connected(&key("d"), connected).unwrap();
                    n += 1;
                }
                n
            })
        })
        .collect();
    for round in 0..ROUNDS * 4 {
        let reason = format!("reason {round}");
        let r = hub
            .call_as(
                "iothubowner",
                Method::PUT,
                "/devices/d",
                Some(json!({"deviceId": "d", "statusReason": reason})),
                &[("If-Match", "*")],
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let stored = hub.call(Method::GET, "/devices/d", None).await;
        assert_eq!(
            stored.body["statusReason"], reason,
            "round {round}: a connection-state write undid an acknowledged identity update"
        );
        assert_eq!(stored.body["etag"], r.body["etag"]);
    }
    stop.store(true, Ordering::Relaxed);
    for t in togglers {
        assert!(t.await.unwrap() > 0, "the connection states were written");
    }
}

/// Connects as a device and disconnects cleanly.
async fn connect_once(opts: rumqttc::MqttOptions) {
    let (client, mut eventloop) = AsyncClient::new(opts, 8);
    match eventloop.poll().await {
        Ok(Event::Incoming(Packet::ConnAck(a))) => {
            assert_eq!(a.code, rumqttc::ConnectReturnCode::Success)
        }
        other => panic!("expected CONNACK, got {other:?}"),
    }
    client.disconnect().await.unwrap();
    while eventloop.poll().await.is_ok() {}
}

#[tokio::test]
async fn the_announced_model_id_is_kept_on_the_twin() {
    let hub = TestHub::start().await;
    let key = hub.create_device("pnp").await;
    assert_eq!(twin(&hub, "pnp").await["modelId"], "");
    let model = "dtmi:com:example:Thermostat;1";
    let mut opts = hub.mqtt_options("pnp", &key);
    opts.set_credentials(
        format!(
            "{}/pnp/?api-version=2021-04-12&model-id={model}",
            hub.host()
        ),
        opts.credentials().unwrap().password,
    );
    connect_once(opts).await;
    assert_eq!(twin(&hub, "pnp").await["modelId"], model);
    let r = hub
        .call(
            Method::POST,
            "/devices/query",
            Some(json!({"query": format!("SELECT * FROM devices WHERE modelId = '{model}'")})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body[0]["deviceId"], "pnp", "{}", r.body);
    // A later connect without a model id keeps it.
    connect_once(hub.mqtt_options("pnp", &key)).await;
    assert_eq!(twin(&hub, "pnp").await["modelId"], model);
}

#[tokio::test]
async fn one_update_of_tags_and_desired_is_one_twin_version() {
    let hub = TestHub::start().await;
    hub.create_device("v").await;
    let before = twin(&hub, "v").await["version"].as_u64().unwrap();
    let both = json!({"tags": {"site": "lab"}, "properties": {"desired": {"mode": "eco"}}});
    let r = hub
        .call(Method::PATCH, "/twins/v", Some(both.clone()))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        r.body["version"].as_u64().unwrap(),
        before + 1,
        "{}",
        r.body
    );
    let r = hub.call(Method::PUT, "/twins/v", Some(both)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        r.body["version"].as_u64().unwrap(),
        before + 2,
        "{}",
        r.body
    );
    assert_eq!(r.body["etag"], twin(&hub, "v").await["etag"]);
}

#[tokio::test]
async fn identities_carry_both_credential_objects_as_azure_returns_them() {
    let hub = TestHub::start().await;
    let thumb = "A".repeat(40);
    for (id, auth, unused, unused_fields) in [
        (
            "self-signed",
            json!({"type": "selfSigned", "x509Thumbprint": {"primaryThumbprint": thumb, "secondaryThumbprint": thumb}}),
            "symmetricKey",
            ["primaryKey", "secondaryKey"],
        ),
        (
            "ca-signed",
            json!({"type": "certificateAuthority"}),
            "x509Thumbprint",
            ["primaryThumbprint", "secondaryThumbprint"],
        ),
        (
            "sas",
            json!({"type": "sas"}),
            "x509Thumbprint",
            ["primaryThumbprint", "secondaryThumbprint"],
        ),
    ] {
        let r = hub
            .call(
                Method::PUT,
                &format!("/devices/{id}"),
                Some(json!({"deviceId": id, "authentication": auth})),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let got = hub.call(Method::GET, &format!("/devices/{id}"), None).await;
        for reply in [&r.body, &got.body] {
            let object = &reply["authentication"][unused];
            for field in unused_fields {
                assert!(
                    object.get(field).is_some_and(Value::is_null),
                    "{id}: {unused}.{field} should be present and null: {reply}"
                );
            }
        }
    }
}
