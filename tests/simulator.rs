//! A simulated device against the real local hub: telemetry stored, telemetryInterval changed
//! through the service REST API and acknowledged in reported properties, `reboot` invoked.
//!
//! Ignored until the hub's MQTT server is merged (the endpoint is a stub on this branch);
//! tests/device_client.rs covers the same flows against a scripted MQTT peer meanwhile.

mod common;

use std::time::Duration;

use common::TestHub;
use hubtui::client::device::{DeviceClientOptions, Trust};
use hubtui::client::simulator::{DeviceKind, Simulator, SimulatorOptions};
use hubtui::iothub::connection_string::DeviceConnectionString;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::time::timeout;

const WAIT: Duration = Duration::from_secs(20);

#[tokio::test]

async fn simulator_end_to_end() {
    let hub = TestHub::start().await;
    let key = hub.create_device("sim-1").await;
    let mut telemetry = hub.hub.state.telemetry.subscribe();
    let cs = DeviceConnectionString::parse(&format!(
        "HostName={};DeviceId=sim-1;SharedAccessKey={key}",
        hub.host()
    ))
    .unwrap();
    let sim = Simulator::start(
        &cs,
        SimulatorOptions {
            kind: DeviceKind::Thermostat,
            seed: 1,
            client: DeviceClientOptions {
                port: hub.hub.info.ports.mqtt,
                trust: Trust::CaPem(hub.hub.ca_pem.clone()),
                connect_host: Some("localhost".into()),
                ..DeviceClientOptions::default()
            },
        },
    )
    .unwrap();

    // Reported identity appears in the twin.
    let twin = wait_twin(&hub, |t| {
        t["properties"]["reported"]["kind"] == "thermostat"
    })
    .await;
    assert_eq!(twin["properties"]["reported"]["c2dReceived"], 0);

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
    let twin = wait_twin(&hub, |t| {
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

async fn wait_twin(hub: &TestHub, want: impl Fn(&Value) -> bool) -> Value {
    timeout(WAIT, async {
        loop {
            let r = hub.call(Method::GET, "/twins/sim-1", None).await;
            if r.status == StatusCode::OK && want(&r.body) {
                return r.body;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await
    .expect("the twin reached the expected state")
}
