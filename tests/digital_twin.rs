//! The IoT Plug and Play digital twin API over the hub's HTTPS port, with a device on
//! MQTT (rumqttc) announcing a model id, reporting properties and answering commands.

mod common;

use common::mqtt_device::Device;
use common::{TestHub, now};
use hubtui::iothub::topic::{DevicePublish, HubPublish, Subscription, parse_hub_publish};
use reqwest::{Method, StatusCode};
use rumqttc::QoS;
use serde_json::{Value, json};

const MODEL: &str = "dtmi:com:example:TemperatureController;1";

/// A device connected as a PnP device: `model-id` in the MQTT username.
async fn pnp_device(hub: &TestHub, id: &str) -> Device {
    let key = hub.create_device(id).await;
    let mut opts = hub.mqtt_options(id, &key);
    let token = hub.device_token(&format!("devices/{id}"), &key, now() + 3600);
    opts.set_credentials(
        format!(
            "{}/{id}/?api-version=2020-09-30&model-id={}",
            hub.host(),
            MODEL.replace(':', "%3A").replace(';', "%3B")
        ),
        token,
    );
    Device::connect(opts).await
}

async fn report(dev: &mut Device, patch: Value) {
    dev.subscribe(Subscription::TwinResponses, QoS::AtLeastOnce)
        .await;
    dev.publish_acked(
        DevicePublish::TwinPatchReported { rid: "1".into() }.to_topic(),
        patch.to_string(),
    )
    .await;
    let p = dev.publish_msg().await;
    assert!(matches!(
        parse_hub_publish(&p.topic).unwrap(),
        HubPublish::TwinResponse { status: 204, .. }
    ));
}

async fn digital_twin(hub: &TestHub, id: &str) -> (Value, String) {
    let r = hub
        .call(Method::GET, &format!("/digitaltwins/{id}"), None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let etag = r.headers["etag"].to_str().unwrap().to_string();
    (r.body, etag)
}

async fn update(hub: &TestHub, id: &str, ops: Value, if_match: Option<&str>) -> common::Reply {
    let headers: Vec<(&str, &str)> = if_match.map(|t| ("If-Match", t)).into_iter().collect();
    hub.call_as(
        "iothubowner",
        Method::PATCH,
        &format!("/digitaltwins/{id}"),
        Some(ops),
        &headers,
    )
    .await
}

fn message(r: &common::Reply) -> String {
    r.body["Message"].as_str().unwrap_or_default().to_string()
}

#[tokio::test]
async fn the_digital_twin_is_derived_from_the_twin_and_model_id() {
    let hub = TestHub::start().await;
    let mut dev = pnp_device(&hub, "pnp-1").await;
    let r = hub
        .call(
            Method::PATCH,
            "/twins/pnp-1",
            Some(json!({"properties": {"desired": {"thermostat1": {"__t": "c", "targetTemperature": 21.8}}}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let desired_version = r.body["properties"]["desired"]["$version"]
        .as_u64()
        .unwrap();
    report(
        &mut dev,
        json!({"serialNumber": "alwinexlepaho8329", "thermostat1": {"__t": "c",
            "maxTempSinceLastReboot": 25.3,
            "targetTemperature": {"value": 21.8, "ac": 200, "av": desired_version,
                "ad": "Successfully executed patch"}}}),
    )
    .await;

    let (dt, etag) = digital_twin(&hub, "pnp-1").await;
    let twin = hub.call(Method::GET, "/twins/pnp-1", None).await.body;
    assert_eq!(etag, format!("\"{}\"", twin["etag"].as_str().unwrap()));
    let reported_at =
        twin["properties"]["reported"]["$metadata"]["serialNumber"]["$lastUpdated"].clone();
    assert_eq!(dt["$dtId"], json!("pnp-1"));
    assert_eq!(dt["$metadata"]["$model"], json!(MODEL));
    assert_eq!(dt["serialNumber"], json!("alwinexlepaho8329"));
    assert_eq!(
        dt["$metadata"]["serialNumber"],
        json!({"lastUpdateTime": reported_at})
    );
    let t1 = &dt["thermostat1"];
    assert_eq!(t1["targetTemperature"], json!(21.8));
    assert_eq!(t1["maxTempSinceLastReboot"], json!(25.3));
    assert_eq!(
        t1["$metadata"]["targetTemperature"],
        json!({"desiredValue": 21.8, "desiredVersion": desired_version,
            "ackVersion": desired_version, "ackCode": 200,
            "ackDescription": "Successfully executed patch", "lastUpdateTime": reported_at})
    );
    assert!(
        t1.get("__t").is_none(),
        "the component marker stays in the device twin"
    );

    let r = hub.call(Method::GET, "/digitaltwins/nobody", None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(
        message(&r).starts_with("ErrorCode:DeviceNotFound;"),
        "{}",
        r.body
    );
}

#[tokio::test]
async fn a_json_patch_sets_desired_values_and_reaches_the_device() {
    let hub = TestHub::start().await;
    let mut dev = pnp_device(&hub, "pnp-2").await;
    dev.subscribe(Subscription::DesiredPatches, QoS::AtLeastOnce)
        .await;
    let (_, etag) = digital_twin(&hub, "pnp-2").await;

    let r = update(
        &hub,
        "pnp-2",
        json!([{"op": "add", "path": "/thermostat1/targetTemperature", "value": 21.4},
               {"op": "add", "path": "/fanSpeed", "value": 2}]),
        Some(&etag),
    )
    .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    assert_eq!(r.body, Value::Null, "202 has no body");
    let new_etag = r.headers["etag"].to_str().unwrap().to_string();
    assert_ne!(new_etag, etag);

    let p = dev.publish_msg().await;
    let HubPublish::DesiredPatch { version } = parse_hub_publish(&p.topic).unwrap() else {
        panic!("not a desired patch: {}", p.topic)
    };
    let body: Value = serde_json::from_slice(&p.payload).unwrap();
    assert_eq!(
        body,
        json!({"thermostat1": {"__t": "c", "targetTemperature": 21.4}, "fanSpeed": 2,
            "$version": version})
    );
    let (dt, etag_now) = digital_twin(&hub, "pnp-2").await;
    assert_eq!(etag_now, new_etag);
    assert_eq!(
        dt["thermostat1"]["$metadata"]["targetTemperature"],
        json!({"desiredValue": 21.4, "desiredVersion": version})
    );
    assert_eq!(
        dt["$metadata"]["fanSpeed"],
        json!({"desiredValue": 2, "desiredVersion": version})
    );

    // A stale If-Match is refused and changes nothing; the current one (and "*") pass.
    let r = update(
        &hub,
        "pnp-2",
        json!([{"op": "remove", "path": "/fanSpeed"}]),
        Some(&etag),
    )
    .await;
    assert_eq!(r.status, StatusCode::PRECONDITION_FAILED, "{}", r.body);
    assert_eq!(digital_twin(&hub, "pnp-2").await.1, new_etag);
    let r = update(
        &hub,
        "pnp-2",
        json!([{"op": "replace", "path": "/thermostat1", "value": {"$metadata": {}}},
               {"op": "remove", "path": "/fanSpeed"}]),
        Some(&new_etag),
    )
    .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    let body: Value = serde_json::from_slice(&dev.publish_msg().await.payload).unwrap();
    assert_eq!(
        body["thermostat1"],
        json!({"__t": "c", "targetTemperature": null})
    );
    assert_eq!(body["fanSpeed"], Value::Null);
    let twin = hub.call(Method::GET, "/twins/pnp-2", None).await.body;
    assert_eq!(
        twin["properties"]["desired"]["thermostat1"],
        json!({"__t": "c"})
    );
    assert!(twin["properties"]["desired"].get("fanSpeed").is_none());
    let r = update(
        &hub,
        "pnp-2",
        json!([{"op": "add", "path": "/fanSpeed", "value": 1}]),
        Some("*"),
    )
    .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
}

#[tokio::test]
async fn bad_patches_are_refused_with_a_reason() {
    let hub = TestHub::start().await;
    hub.create_device("pnp-3").await;
    let (_, etag) = digital_twin(&hub, "pnp-3").await;
    for (ops, says) in [
        (json!({"op": "add"}), "must be a JSON array of operations"),
        (json!([]), "has no operations"),
        (
            json!([{"op": "move", "from": "/a", "path": "/b"}]),
            "has op 'move'",
        ),
        (
            json!([{"op": "add", "path": "/a-b", "value": 1}]),
            "'a-b' in '/a-b' is not a DTDL name",
        ),
        (
            json!([{"op": "add", "path": "/a", "value": [1, 2]}]),
            "the value at /a holds an array",
        ),
    ] {
        let r = update(&hub, "pnp-3", ops.clone(), None).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{ops}: {}", r.body);
        let m = message(&r);
        assert!(m.starts_with("ErrorCode:ArgumentInvalid;"), "{m}");
        assert!(m.contains(says), "{ops}: {m}");
    }
    let r = hub
        .call_as(
            "iothubowner",
            Method::PATCH,
            "/digitaltwins/pnp-3",
            None,
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(digital_twin(&hub, "pnp-3").await.1, etag, "nothing changed");
    // Reading is allowed to registry readers; writing needs ServiceConnect.
    let r = hub
        .call_as(
            "registryRead",
            Method::GET,
            "/digitaltwins/pnp-3",
            None,
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = hub
        .call_as(
            "registryRead",
            Method::PATCH,
            "/digitaltwins/pnp-3",
            Some(json!([{"op": "add", "path": "/a", "value": 1}])),
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

/// Answers every method request with (201, {"method": name, "echo": payload}).
fn answer_methods(mut dev: Device) -> tokio::task::JoinHandle<Device> {
    tokio::spawn(async move {
        while let Some(p) = dev.publish_within(std::time::Duration::from_secs(2)).await {
            let HubPublish::MethodRequest { method_name, rid } =
                parse_hub_publish(&p.topic).unwrap()
            else {
                continue;
            };
            let payload: Value = serde_json::from_slice(&p.payload).unwrap();
            let answer = json!({"method": method_name, "echo": payload}).to_string();
            dev.publish_acked(
                DevicePublish::MethodResponse { status: 201, rid }.to_topic(),
                answer,
            )
            .await;
        }
        dev
    })
}

#[tokio::test]
async fn commands_are_direct_methods_answered_with_the_device_status() {
    let hub = TestHub::start().await;
    let mut dev = pnp_device(&hub, "pnp-4").await;
    dev.subscribe(Subscription::Methods, QoS::AtLeastOnce).await;
    let device = answer_methods(dev);

    let r = hub
        .call(
            Method::POST,
            "/digitaltwins/pnp-4/commands/reboot?responseTimeoutInSeconds=5&connectTimeoutInSeconds=0",
            Some(json!({"delay": 1})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body, json!({"method": "reboot", "echo": {"delay": 1}}));
    assert_eq!(r.headers["x-ms-command-statuscode"], "201");
    let request_id = r.headers["x-ms-request-id"].to_str().unwrap();
    assert!(uuid::Uuid::parse_str(request_id).is_ok(), "{request_id}");

    let r = hub
        .call(
            Method::POST,
            "/digitaltwins/pnp-4/components/thermostat1/commands/getMaxMinReport",
            Some(json!("2020-07-17T00:00:00Z")),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        r.body,
        json!({"method": "thermostat1*getMaxMinReport", "echo": "2020-07-17T00:00:00Z"})
    );
    // No body is no payload.
    let r = hub
        .call(Method::POST, "/digitaltwins/pnp-4/commands/ping", None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body, json!({"method": "ping", "echo": null}));

    for (query, says) in [
        (
            "responseTimeoutInSeconds=soon",
            "responseTimeoutInSeconds 'soon' is not a whole number",
        ),
        (
            "responseTimeoutInSeconds=4",
            "the response timeout of 4 s is outside",
        ),
        (
            "connectTimeoutInSeconds=301",
            "the connect timeout of 301 s is outside",
        ),
    ] {
        let r = hub
            .call(
                Method::POST,
                &format!("/digitaltwins/pnp-4/commands/ping?{query}"),
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{query}");
        assert!(message(&r).contains(says), "{query}: {}", r.body);
    }
    device.await.unwrap().disconnect().await;

    // Offline: 404 DeviceNotOnline, as for direct methods.
    let r = hub
        .call(Method::POST, "/digitaltwins/pnp-4/commands/ping", None)
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.body);
    assert!(
        message(&r).starts_with("ErrorCode:DeviceNotOnline;"),
        "{}",
        r.body
    );
}

#[tokio::test]
async fn concurrent_patches_with_one_etag_let_exactly_one_win() {
    let hub = TestHub::start().await;
    hub.create_device("pnp-5").await;
    for round in 0..5 {
        let (_, etag) = digital_twin(&hub, "pnp-5").await;
        let patches = (0..8).map(|i| {
            update(
                &hub,
                "pnp-5",
                json!([{"op": "add", "path": "/setting", "value": round * 100 + i}]),
                Some(&etag),
            )
        });
        let answers = futures::future::join_all(patches).await;
        let won = answers
            .iter()
            .filter(|r| r.status == StatusCode::ACCEPTED)
            .count();
        let lost = answers
            .iter()
            .filter(|r| r.status == StatusCode::PRECONDITION_FAILED)
            .count();
        assert_eq!((won, lost), (1, 7), "round {round}");
    }
    let twin = hub.call(Method::GET, "/twins/pnp-5", None).await.body;
    assert_eq!(twin["properties"]["desired"]["$version"], json!(6));
}
