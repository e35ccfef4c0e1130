//! `hubtui device --headless` as a real process against the real local hub: telemetry the hub
//! stores, a method invoked over REST, a desired property acknowledged, a C2D message printed,
//! devices created with --count; and bad input refused in one sentence.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::TestHub;
use common::device_process::{BIN, DeviceProcess, WAIT};
use common::wait::eventually;
use hubtui::hub::{self, HubOptions};
use hubtui::iothub::property_bag::PropertyBag;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// A fast thermostat-like profile, from a user file.
const PROFILE: &str = r#"
interval_secs = 1
model_id = "dtmi:test:Fast;1"

[properties]
source = "headless-test"

[[telemetry]]
name = "temperature"
generator = "random_walk"
start = 20.0
step = 0.5
min = 10.0
max = 30.0

[[telemetry]]
name = "seq"
generator = "counter"

[methods.reboot]
status = 201
payload = { rebooted = true }

[writable.targetTemperature]
type = "number"
min = 5
max = 35
default = 21
"#;

fn write_file(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

async fn twin(hub: &TestHub, id: &str) -> Value {
    let r = hub.call(Method::GET, &format!("/twins/{id}"), None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    r.body
}

#[tokio::test]
async fn headless_device_sends_answers_acknowledges_and_receives() {
    let hub = TestHub::start().await;
    let key = hub.create_device("d1").await;
    let dir = hub.dir.path();
    let ca = write_file(dir, "ca.pem", &hub.hub.ca_pem);
    let profile = write_file(dir, "fast.toml", PROFILE);
    let cs = format!("HostName={};DeviceId=d1;SharedAccessKey={key}", hub.host());
    let port = hub.hub.info.ports.mqtt.to_string();
    let mut device = DeviceProcess::start(&[
        "device",
        "--headless",
        "--connection-string",
        &cs,
        "--profile",
        &profile,
        "--ca",
        &ca,
        "--mqtt-port",
        &port,
    ]);
    device
        .next_event("connected", |v| v["event"] == "connected")
        .await;

    // Telemetry: printed, and stored by the hub with the profile's properties.
    let sent = device.next_event("sent", |v| v["event"] == "sent").await;
    assert!(sent["body"]["temperature"].is_f64(), "{sent}");
    assert_eq!(sent["properties"]["source"], "headless-test");
    let stored = eventually(WAIT, "stored telemetry", || async {
        hub.stored_telemetry("d1").into_iter().next()
    })
    .await;
    let body: Value = serde_json::from_slice(&stored.body).unwrap();
    assert!(body["seq"].is_u64(), "{body}");

    // The model id from the profile was announced at connect.
    let r = hub.call(Method::GET, "/twins/d1", None).await;
    assert_eq!(r.body["modelId"], "dtmi:test:Fast;1", "{}", r.body);

    // A direct method invoked over REST gets the profile's answer.
    let r = hub
        .call(
            Method::POST,
            "/twins/d1/methods",
            Some(json!({"methodName": "reboot", "payload": {"now": true}, "responseTimeoutInSeconds": 10})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        r.body,
        json!({"status": 201, "payload": {"rebooted": true}})
    );
    let called = device
        .next_event("method", |v| v["event"] == "method")
        .await;
    assert_eq!(
        (&called["name"], &called["payload"], &called["status"]),
        (&json!("reboot"), &json!({"now": true}), &json!(201))
    );

    // A desired property is acknowledged, seen from the service side.
    let r = hub
        .call(
            Method::PATCH,
            "/twins/d1",
            Some(json!({"properties": {"desired": {"targetTemperature": 25}}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let version = r.body["properties"]["desired"]["$version"].clone();
    let desired = device
        .next_event("desired", |v| v["event"] == "desired")
        .await;
    assert_eq!(desired["patch"]["targetTemperature"], 25);
    let ack = eventually(WAIT, "the acknowledgement in the twin", || async {
        let t = twin(&hub, "d1").await;
        let ack = t["properties"]["reported"]["targetTemperature"].clone();
        (ack["av"] == version).then_some(ack)
    })
    .await;
    assert_eq!(
        ack,
        json!({"value": 25, "ac": 200, "av": version, "ad": "completed"})
    );

    // A C2D message is printed with its properties.
    let mut props = PropertyBag::default();
    props.set("$.mid", Some("c2d-1".into()));
    props.set("colour", Some("blue".into()));
    (hub.hub.state)
        .enqueue_c2d("d1", props, br#"{"hello":1}"#.to_vec(), None)
        .unwrap();
    let c2d = device.next_event("c2d", |v| v["event"] == "c2d").await;
    assert_eq!(c2d["body"], json!({"hello": 1}));
    assert_eq!(c2d["properties"]["$.mid"], "c2d-1");
    assert_eq!(c2d["properties"]["colour"], "blue");
}

/// A desired change made while the device cannot reach the hub is applied and
/// acknowledged once it is back: after a reconnect the device reads its whole twin.
#[tokio::test]
async fn a_desired_change_made_while_disconnected_is_applied_after_reconnect() {
    let mut hub = TestHub::start().await;
    let key = hub.create_device("d9").await;
    let dir = hub.dir.path().to_path_buf();
    let ca = write_file(&dir, "ca.pem", &hub.hub.ca_pem);
    let profile = write_file(&dir, "fast.toml", PROFILE);
    let cs = format!("HostName={};DeviceId=d9;SharedAccessKey={key}", hub.host());
    let ports = hub.hub.info.ports.clone();
    let mut device = DeviceProcess::start(&[
        "device",
        "--headless",
        "--connection-string",
        &cs,
        "--profile",
        &profile,
        "--ca",
        &ca,
        "--mqtt-port",
        &ports.mqtt.to_string(),
    ]);
    device
        .next_event("connected", |v| v["event"] == "connected")
        .await;

    // The hub comes back on another MQTT port, out of the device's reach, and the
    // desired property changes there.
    let restart = |mqtt_port: u16| {
        let mut opts = HubOptions::ephemeral(dir.clone());
        opts.mqtt_port = mqtt_port;
        opts.https_port = ports.https;
        hub::start(opts)
    };
    hub.hub.shutdown().await;
    hub.hub = restart(0).await.expect("the hub restarts");
    // A pooled connection to the stopped hub would fail the next call.
    hub.http = common::https_client(&hub.hub.ca_pem);
    device
        .next_event("disconnected", |v| v["event"] == "disconnected")
        .await;
    let r = hub
        .call(
            Method::PATCH,
            "/twins/d9",
            Some(json!({"properties": {"desired": {"targetTemperature": 31}}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let version = r.body["properties"]["desired"]["$version"].clone();
    hub.hub.shutdown().await;
    hub.hub = restart(ports.mqtt).await.expect("the hub restarts");
    hub.http = common::https_client(&hub.hub.ca_pem);

    let ack = eventually(WAIT, "the acknowledgement after the reconnect", || async {
        let t = twin(&hub, "d9").await;
        let ack = t["properties"]["reported"]["targetTemperature"].clone();
        (ack["av"] == version).then_some(ack)
    })
    .await;
    assert_eq!(
        ack,
        json!({"value": 31, "ac": 200, "av": version, "ad": "completed"})
    );
}

#[tokio::test]
async fn count_creates_suffixed_devices_through_the_hub() {
    let hub = TestHub::start().await;
    let ca = write_file(hub.dir.path(), "ca.pem", &hub.hub.ca_pem);
    let service = hub.hub.info.service_connection_string.clone();
    let (mqtt, https) = (
        hub.hub.info.ports.mqtt.to_string(),
        hub.hub.info.ports.https.to_string(),
    );
    let mut device = DeviceProcess::start(&[
        "device",
        "--headless",
        "--hub",
        &service,
        "--count",
        "2",
        "--device-id",
        "cam",
        "--profile",
        "camera",
        "--model-id",
        "dtmi:test:Override;1",
        "--ca",
        &ca,
        "--mqtt-port",
        &mqtt,
        "--https-port",
        &https,
    ]);
    let mut connected = std::collections::BTreeSet::new();
    while connected.len() < 2 {
        let v = device
            .next_event("connected", |v| v["event"] == "connected")
            .await;
        connected.insert(v["device"].as_str().unwrap().to_owned());
    }
    assert_eq!(
        connected.into_iter().collect::<Vec<_>>(),
        ["cam-1", "cam-2"]
    );
    let t = twin(&hub, "cam-2").await;
    assert_eq!(t["modelId"], "dtmi:test:Override;1", "{t}");
}

// Two workers: the test blocks one waiting for the process while the hub runs on the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_connection_says_why_and_exits() {
    let hub = TestHub::start().await;
    hub.create_device("d1").await;
    let ca = write_file(hub.dir.path(), "ca.pem", &hub.hub.ca_pem);
    let cs = format!(
        "HostName={};DeviceId=d1;SharedAccessKey=d3Jvbmcta2V5LXdyb25nLWtleQ==",
        hub.host()
    );
    let port = hub.hub.info.ports.mqtt.to_string();
    let out = run(&[
        "device",
        "--headless",
        "--connection-string",
        &cs,
        "--ca",
        &ca,
        "--mqtt-port",
        &port,
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        last == "hubtui: device d1 cannot connect: not authorized: check the device key",
        "{stderr}"
    );
}

fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_remove("IOTHUB_CONNECTION_STRING")
        .env_remove("IOTHUB_DEVICE_CONNECTION_STRING")
        .env("HUBTUI_LOG_LEVEL", "error")
        .output()
        .unwrap()
}

/// Exit status 2 and one line on stderr; the sentence without the `hubtui: ` prefix.
fn refused(args: &[&str]) -> String {
    let out = run(args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(out.stdout.is_empty());
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    stderr
        .trim_end()
        .strip_prefix("hubtui: ")
        .unwrap()
        .to_owned()
}

#[test]
fn bad_input_is_one_sentence_and_status_2() {
    const CS: &str = "HostName=h.example;DeviceId=d1;SharedAccessKey=c2VjcmV0";
    let dir = tempfile::tempdir().unwrap();
    let bad = write_file(
        dir.path(),
        "bad.toml",
        "[[telemetry]]\nname = \"t\"\ngenerator = \"sine\"\nmin = 0\nmax = 1\n",
    );
    let headless_with = |extra: &[&str]| {
        let mut args = vec!["device", "--headless", "--connection-string", CS];
        args.extend_from_slice(extra);
        refused(&args)
    };
    let cases: [(String, &[&str]); 6] = [
        (
            refused(&["device", "--headless", "--connection-string", "HostName=h"]),
            &["--connection-string", "DeviceId"],
        ),
        (
            refused(&["device", "--headless"]),
            &["--connection-string", "--hub"],
        ),
        (headless_with(&["--count", "3"]), &["--count needs --hub"]),
        (
            headless_with(&["--profile", "toaster"]),
            &["toaster", "thermostat"],
        ),
        (
            headless_with(&["--profile", &bad]),
            &["telemetry field t", "period"],
        ),
        (
            refused(&["device", "--connection-string", CS]),
            &["--headless"],
        ),
    ];
    for (message, expected) in cases {
        for e in expected {
            assert!(message.contains(e), "{message:?} lacks {e:?}");
        }
    }
}
