//! `hubtui device --dps-scope …` as a real process against the local hub's provisioning
//! service: individual and group enrollments, the credential cache reused on restart and
//! replaced when the hub refuses it, a disabled enrollment, and bad arguments.

mod common;

use std::path::Path;
use std::process::Command;

use common::TestHub;
use common::device_process::{BIN, DeviceProcess, WAIT};
use common::wait::eventually;
use hubtui::iothub::sas::derive_device_key;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

struct Setup {
    hub: TestHub,
    ca: String,
    data: tempfile::TempDir,
}

impl Setup {
    async fn start() -> Setup {
        let hub = TestHub::start().await;
        let ca = hub.dir.path().join("ca.pem");
        std::fs::write(&ca, &hub.hub.ca_pem).unwrap();
        Setup {
            ca: ca.to_str().unwrap().to_owned(),
            hub,
            data: tempfile::tempdir().unwrap(),
        }
    }

    async fn put(&self, path: &str, body: Value) {
        let r = self.hub.call(Method::PUT, path, Some(body)).await;
        assert_eq!(r.status, StatusCode::OK, "PUT {path}: {}", r.body);
    }

    fn args(&self, registration_id: &str, key_flag: &str, key: &str) -> Vec<String> {
        let info = &self.hub.hub.info;
        [
            "device",
            "--headless",
            "--dps-scope",
            &info.id_scope,
            "--registration-id",
            registration_id,
            key_flag,
            key,
            "--dps-host",
            &info.host_name,
            "--dps-port",
            &info.ports.https.to_string(),
            "--mqtt-port",
            &info.ports.mqtt.to_string(),
            "--ca",
            &self.ca,
        ]
        .map(str::to_owned)
        .to_vec()
    }

    fn env(&self) -> [(&str, &str); 1] {
        [("XDG_DATA_HOME", self.data.path().to_str().unwrap())]
    }

    fn run_device(&self, args: &[String]) -> DeviceProcess {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        DeviceProcess::start_with(&args, &self.env())
    }

    /// The device's telemetry stored by the hub, once some is.
    async fn telemetry_from(&self, device: &str) {
        eventually(WAIT, "stored telemetry", || async {
            (!self.hub.stored_telemetry(device).is_empty()).then_some(())
        })
        .await;
    }

    fn cache_file(&self, registration_id: &str) -> std::path::PathBuf {
        let scope = &self.hub.hub.info.id_scope;
        self.data
            .path()
            .join(format!("hubtui/dps/{scope}.{registration_id}.json"))
    }
}

async fn connected(device: &mut DeviceProcess) -> Value {
    device
        .next_event("connected", |v| v["event"] == "connected")
        .await
}

#[tokio::test]
async fn an_individual_enrollment_provisions_connects_and_is_cached_privately() {
    let s = Setup::start().await;
    s.put(
        "/enrollments/sensor-1",
        json!({"deviceId": "sensor-dev-1",
               "attestation": {"type": "symmetricKey", "symmetricKey": {"primaryKey": KEY}}}),
    )
    .await;
    let args = s.args("sensor-1", "--device-key", KEY);
    let mut device = s.run_device(&args);
    let up = connected(&mut device).await;
    assert_eq!(up["device"], "sensor-dev-1");
    s.telemetry_from("sensor-dev-1").await;
    let twin = s.hub.call(Method::GET, "/twins/sensor-dev-1", None).await;
    assert_eq!(twin.body["modelId"], "dtmi:hubtui:simulator:Thermostat;1");
    drop(device);

    let cache = s.cache_file("sensor-1");
    let cached: Value = serde_json::from_slice(&std::fs::read(&cache).unwrap()).unwrap();
    assert_eq!(cached["deviceId"], "sensor-dev-1");
    assert_eq!(cached["assignedHub"], s.hub.hub.info.host_name.as_str());
    assert_private(&cache);

    // Without the enrollment, a restart still connects: from the cache, not from DPS.
    let r = s
        .hub
        .call(Method::DELETE, "/enrollments/sensor-1", None)
        .await;
    assert!(r.status.is_success(), "{}", r.body);
    let mut device = s.run_device(&args);
    assert_eq!(connected(&mut device).await["device"], "sensor-dev-1");
}

#[cfg(unix)]
fn assert_private(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "{}", path.display());
}

#[cfg(not(unix))]
fn assert_private(_: &Path) {}

#[tokio::test]
async fn a_group_enrollment_derives_the_key_and_a_refused_cache_provisions_again() {
    let s = Setup::start().await;
    s.put(
        "/enrollmentGroups/fleet",
        json!({"attestation": {"type": "symmetricKey", "symmetricKey": {"primaryKey": KEY}}}),
    )
    .await;
    let args = s.args("fleet-7", "--group-key", KEY);
    let mut device = s.run_device(&args);
    assert_eq!(connected(&mut device).await["device"], "fleet-7");
    drop(device);
    let cached: Value =
        serde_json::from_slice(&std::fs::read(s.cache_file("fleet-7")).unwrap()).unwrap();
    assert_eq!(
        cached["deviceKey"],
        derive_device_key(KEY, "fleet-7").unwrap().as_str()
    );

    // The device is deleted from the hub: the cached credentials are refused, the device
    // provisions again (creating it anew) and connects.
    let r = s.hub.call(Method::DELETE, "/devices/fleet-7", None).await;
    assert!(r.status.is_success(), "{}", r.body);
    let mut device = s.run_device(&args);
    let refused = device
        .next_event("the refused cached credentials", |v| {
            v["event"] == "disconnected"
        })
        .await;
    assert_eq!(refused["refused"], true, "{refused}");
    assert_eq!(connected(&mut device).await["device"], "fleet-7");
    let r = s.hub.call(Method::GET, "/devices/fleet-7", None).await;
    assert_eq!(r.status, StatusCode::OK, "provisioned again: {}", r.body);
}

// Multi-threaded: the hub serves while the test waits for the process.
#[tokio::test(flavor = "multi_thread")]
async fn a_disabled_enrollment_or_a_wrong_key_is_one_sentence() {
    let s = Setup::start().await;
    s.put(
        "/enrollments/off-1",
        json!({"attestation": {"type": "symmetricKey", "symmetricKey": {"primaryKey": KEY}},
               "provisioningStatus": "disabled"}),
    )
    .await;
    let run = |args: Vec<String>| {
        let out = Command::new(BIN)
            .args(&args)
            .envs(s.env())
            .env("HUBTUI_LOG_LEVEL", "error")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).trim_end().to_owned();
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        stderr
    };
    let disabled = run(s.args("off-1", "--device-key", KEY));
    assert!(
        disabled.starts_with(
            "hubtui: cannot provision the device: the registration of off-1 ended disabled"
        ),
        "{disabled}"
    );
    let wrong = run(s.args("off-1", "--device-key", "d3Jvbmcta2V5LXdyb25nLWtleQ=="));
    assert_eq!(
        wrong,
        "hubtui: cannot provision the device: the provisioning service refused the registration's key or certificate (401): check it, --registration-id and --dps-scope"
    );
    assert!(!s.cache_file("off-1").exists());
}

#[test]
fn incomplete_dps_arguments_are_one_sentence_and_status_2() {
    let refused = |args: &[&str]| {
        let out = Command::new(BIN)
            .args(args)
            .env_remove("IOTHUB_DEVICE_CONNECTION_STRING")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).trim_end().to_owned();
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        stderr
    };
    let base = ["device", "--headless", "--dps-scope", "0ne00000001"];
    assert_eq!(
        refused(&base),
        "hubtui: --dps-scope needs --registration-id, the id the device is enrolled under"
    );
    let mut with_id = base.to_vec();
    with_id.extend(["--registration-id", "r1"]);
    assert_eq!(
        refused(&with_id),
        "hubtui: --dps-scope needs --device-key (individual enrollment), --group-key (enrollment group) or --x509-cert with --x509-key"
    );
    let mut bad_key = with_id.clone();
    bad_key.extend(["--device-key", "not base64!"]);
    assert!(refused(&bad_key).starts_with("hubtui: --device-key: the key is not valid base64"),);
    let mut bad_id = base.to_vec();
    bad_id.extend(["--registration-id", "no spaces", "--device-key", KEY]);
    assert!(refused(&bad_id).starts_with("hubtui: --registration-id: "));
}
