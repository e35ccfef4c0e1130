//! Simulated devices against the real local hub: reported identity and acknowledgements,
//! desired properties set through the service REST API, stored telemetry, direct methods and
//! C2D counting.

mod common;

use std::time::Duration;

use common::TestHub;
use hubtui::hub::telemetry::{StoredProperties, partition_of};
use hubtui::iothub::property_bag::PropertyBag;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::time::timeout;

const WAIT: Duration = Duration::from_secs(20);

#[tokio::test]
async fn simulator_end_to_end() {
    let hub = TestHub::start().await;
    let key = hub.create_device("sim-1").await;
    let mut telemetry = hub.hub.state.telemetry.subscribe();
    let sim = hub.simulate("sim-1", &key, 1);

    // Reported identity appears in the twin.
    let twin = wait_twin(&hub, "sim-1", |t| {
        t["properties"]["reported"]["kind"] == "thermostat"
    })
    .await;
    let reported = &twin["properties"]["reported"];
    assert_eq!(reported["c2dReceived"], 0);
    assert!(reported["firmware"].is_string(), "{reported}");
    // Not in desired: reported as the device default.
    assert_eq!(
        (
            &reported["telemetryInterval"]["value"],
            &reported["telemetryInterval"]["ac"]
        ),
        (&json!(5), &json!(203))
    );

    // Faster telemetry, acknowledged in IoT Plug and Play form.
    let r = hub
        .call(
            Method::PATCH,
            "/twins/sim-1",
            Some(json!({"properties": {"desired": {"telemetryInterval": 1}}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let version = r.body["properties"]["desired"]["$version"].clone();
    let twin = wait_twin(&hub, "sim-1", |t| {
        t["properties"]["reported"]["telemetryInterval"]["av"] == version
    })
    .await;
    let ack = &twin["properties"]["reported"]["telemetryInterval"];
    assert_eq!(
        (ack["value"].clone(), ack["ac"].clone()),
        (json!(1), json!(200))
    );

    // Telemetry is stored.
    let record = timeout(WAIT, async {
        loop {
            let r = telemetry.recv().await.unwrap();
            if r.device_id == "sim-1" {
                return r;
            }
        }
    })
    .await
    .expect("telemetry from sim-1");
    let body: Value = serde_json::from_slice(&record.body).unwrap();
    assert!(body["temperature"].is_number(), "{body}");

    // Direct method.
    let r = hub
        .call(
            Method::POST,
            "/twins/sim-1/methods",
            Some(json!({"methodName": "reboot", "payload": {}, "responseTimeoutInSeconds": 10})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["status"], 200);
    assert_eq!(r.body["payload"], json!({"rebooted": true}));
    sim.stop().await;
}

/// Desired properties set before the device connects are acknowledged on connect (known ones
/// applied, unknown ones refused with 400), telemetry follows the interval with the simulator's
/// property bag, every method gets an answer, and C2D messages are counted in `c2dReceived`.
#[tokio::test]
async fn simulator_acknowledges_desired_on_connect_answers_methods_and_counts_c2d() {
    let hub = TestHub::start().await;
    let key = hub.create_device("sim-2").await;
    let r = hub
        .call(
            Method::PATCH,
            "/twins/sim-2",
            Some(json!({"properties": {"desired": {"telemetryInterval": 1, "colour": "red"}}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let version = r.body["properties"]["desired"]["$version"].clone();
    let sim = hub.simulate("sim-2", &key, 11);

    let twin = wait_twin(&hub, "sim-2", |t| {
        t["properties"]["reported"]["colour"]["av"] == version
    })
    .await;
    let reported = &twin["properties"]["reported"];
    assert_eq!(reported["kind"], "thermostat");
    assert_eq!(
        reported["telemetryInterval"],
        json!({"value": 1, "ac": 200, "av": version, "ad": "completed"})
    );
    assert_eq!(reported["colour"]["ac"], 400);

    // Every second, with the simulator's property bag.
    let partition = partition_of("sim-2", hub.hub.state.settings.partitions);
    let recs = timeout(WAIT, async {
        loop {
            let recs = hub
                .hub
                .state
                .store
                .telemetry_read(partition, 0, 100)
                .unwrap();
            if recs.len() >= 2 {
                return recs;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("two messages from sim-2");
    let gap = recs[1].enqueued_ms - recs[0].enqueued_ms;
    assert!((500..2500).contains(&gap), "{gap} ms between messages");
    let mut mids = Vec::new();
    for rec in &recs[..2] {
        assert_eq!(rec.device_id, "sim-2");
        let props: StoredProperties = serde_json::from_str(&rec.properties).unwrap();
        let bag = PropertyBag { entries: props.bag };
        assert_eq!(bag.get("kind"), Some("thermostat"));
        assert_eq!(bag.get("$.ct"), Some("application/json"));
        mids.push(bag.get("$.mid").expect("a message id").to_string());
        let body: Value = serde_json::from_slice(&rec.body).unwrap();
        assert!(body["temperature"].is_number(), "{body}");
    }
    assert_ne!(mids[0], mids[1]);

    for (name, status) in [("ping", 200), ("explode", 404)] {
        let r = hub
            .call(
                Method::POST,
                "/twins/sim-2/methods",
                Some(json!({"methodName": name, "payload": null, "responseTimeoutInSeconds": 10})),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert_eq!(r.body["status"], status, "{name}: {}", r.body);
        match name {
            "ping" => assert!(r.body["payload"]["temperature"].is_number(), "{}", r.body),
            _ => assert_eq!(r.body["payload"], json!({"error": "unknown method"})),
        }
    }

    for mid in ["c1", "c2"] {
        let mut bag = PropertyBag::default();
        bag.set("$.mid", Some(mid.into()));
        (hub.hub.state)
            .enqueue_c2d("sim-2", bag, b"hello".to_vec(), None)
            .unwrap();
    }
    wait_twin(&hub, "sim-2", |t| {
        t["properties"]["reported"]["c2dReceived"] == 2
    })
    .await;
    sim.stop().await;
    let key = ("sim-2".to_string(), None);
    timeout(WAIT, async {
        while hub.hub.state.sessions.is_connected(&key) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the simulator disconnected");
}

async fn wait_twin(hub: &TestHub, id: &str, want: impl Fn(&Value) -> bool) -> Value {
    let path = format!("/twins/{id}");
    timeout(WAIT, async {
        loop {
            let r = hub.call(Method::GET, &path, None).await;
            if r.status == StatusCode::OK && want(&r.body) {
                return r.body;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await
    .expect("the twin reached the expected state")
}
