//! DPS X.509 attestation on the command line, with the real binary: `hubtui hub enrollment
//! add --x509-cert` (individual) and `--group --x509-ca` (group) made before the hub starts,
//! then `hubtui device --dps-scope … --x509-cert … --x509-key …` provisioning with the
//! certificate (registration id from its CN), connecting with it, caching the assignment
//! without a key, and registering again when the hub refuses the cached assignment.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::TestHub;
use common::device_process::{BIN, DeviceProcess};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use reqwest::Method;
use serde_json::Value;

fn enrollment(dir: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", dir)
        .args(["hub", "enrollment"])
        .args(args)
        .arg("--data-dir")
        .arg(dir)
        .output()
        .unwrap()
}

fn json_of(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

/// A device certificate (PEM) and its key (PEM).
struct DeviceCert {
    cert: String,
    key: String,
}

fn leaf(cn: &str) -> CertificateParams {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name.push(DnType::CommonName, cn);
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    p
}

fn self_signed(cn: &str) -> DeviceCert {
    let key = KeyPair::generate().unwrap();
    DeviceCert {
        cert: leaf(cn).self_signed(&key).unwrap().pem(),
        key: key.serialize_pem(),
    }
}

/// A root CA (PEM) and a device certificate it issued.
fn ca_and_device(cn: &str) -> (String, DeviceCert) {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.distinguished_name
        .push(DnType::CommonName, "CLI Fleet CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign];
    let ca_pem = ca.self_signed(&ca_key).unwrap().pem();
    let key = KeyPair::generate().unwrap();
    let cert = leaf(cn)
        .signed_by(&key, &Issuer::new(ca, &ca_key))
        .unwrap()
        .pem();
    (
        ca_pem,
        DeviceCert {
            cert,
            key: key.serialize_pem(),
        },
    )
}

#[test]
fn x509_enrollment_flags_are_checked_and_one_sentence() {
    let dir = tempfile::tempdir().unwrap();
    let cam = self_signed("cam-1");
    let cert = write(dir.path(), "cam.pem", &cam.cert);
    for (args, says) in [
        (
            vec!["add", "g", "--group", "--x509-cert", &cert],
            "give a group its CA with --x509-ca",
        ),
        (
            vec!["add", "d", "--x509-ca", &cert],
            "--x509-ca and --ca-ref apply to enrollment groups",
        ),
        (
            vec!["add", "other-id", "--x509-cert", &cert],
            "subject CN is \"cam-1\"",
        ),
        (
            vec!["add", "d", "--x509-cert", "missing.pem"],
            "cannot read the certificate missing.pem given to --x509-cert",
        ),
        (
            vec!["add", "g", "--group", "--ca-ref", "nobody"],
            "names no CA certificate registered on the hub",
        ),
    ] {
        let out = enrollment(dir.path(), &args);
        let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn x509_enrollments_from_the_command_line_provision_hubtui_device() {
    let dir = tempfile::tempdir().unwrap();
    let files = tempfile::tempdir().unwrap();
    let cam = self_signed("cam-1");
    let cam_cert = write(files.path(), "cam.pem", &cam.cert);
    let cam_key = write(files.path(), "cam-key.pem", &cam.key);
    let (ca_pem, fleet) = ca_and_device("fleet-3");
    let ca_file = write(files.path(), "fleet-ca.pem", &ca_pem);
    let fleet_cert = write(files.path(), "fleet.pem", &fleet.cert);
    let fleet_key = write(files.path(), "fleet-key.pem", &fleet.key);

    let added = json_of(&enrollment(
        dir.path(),
        &[
            "add",
            "cam-1",
            "--x509-cert",
            &cam_cert,
            "--device-id",
            "camera-1",
            "--json",
        ],
    ));
    let info = &added["attestation"]["x509"]["clientCertificates"]["primary"]["info"];
    assert_eq!(info["subjectName"], "CN=cam-1");
    assert_eq!(info["sha1Thumbprint"].as_str().unwrap().len(), 40);
    let group = json_of(&enrollment(
        dir.path(),
        &["add", "fleet", "--group", "--x509-ca", &ca_file, "--json"],
    ));
    let info = &group["attestation"]["x509"]["signingCertificates"]["primary"]["info"];
    assert_eq!(info["subjectName"], "CN=CLI Fleet CA");
    let listed = enrollment(dir.path(), &["list"]);
    let text = String::from_utf8_lossy(&listed.stdout).to_string();
    assert!(
        text.lines()
            .any(|l| l.starts_with("single cam-1") && l.contains(" x509 ")),
        "{text}"
    );
    let shown = json_of(&enrollment(dir.path(), &["show", "fleet", "--group"]));
    assert_eq!(shown["attestation"]["type"], "x509");

    let hub = TestHub::start_in(dir, |_| {}).await;
    let ca = hub.dir.path().join("ca.pem");
    std::fs::write(&ca, &hub.hub.ca_pem).unwrap();
    let data = tempfile::tempdir().unwrap();
    let info = &hub.hub.info;
    let (https, mqtt) = (info.ports.https.to_string(), info.ports.mqtt.to_string());
    let run = |cert: &str, key: &str| {
        let args = [
            "device",
            "--headless",
            "--dps-scope",
            &info.id_scope,
            "--x509-cert",
            cert,
            "--x509-key",
            key,
            "--dps-host",
            &info.host_name,
            "--dps-port",
            &https,
            "--mqtt-port",
            &mqtt,
            "--ca",
            ca.to_str().unwrap(),
        ];
        DeviceProcess::start_with(&args, &[("XDG_DATA_HOME", data.path().to_str().unwrap())])
    };

    // The registration id is the certificate's CN; the enrollment names the device id.
    let mut camera = run(&cam_cert, &cam_key);
    let up = camera
        .next_event("connected", |v| v["event"] == "connected")
        .await;
    assert_eq!(up["device"], "camera-1");
    drop(camera);
    let dev = hub.call(Method::GET, "/devices/camera-1", None).await;
    assert_eq!(dev.body["authentication"]["type"], "selfSigned");
    let cache = data
        .path()
        .join(format!("hubtui/dps/{}.cam-1.json", info.id_scope));
    let cached: Value = serde_json::from_slice(&std::fs::read(&cache).unwrap()).unwrap();
    assert_eq!(cached["deviceId"], "camera-1");
    assert!(cached.get("deviceKey").is_none(), "{cached}");

    // The device is deleted from the hub: the cached assignment is refused, the device
    // registers again with its certificate (creating the device anew) and connects.
    let r = hub.call(Method::DELETE, "/devices/camera-1", None).await;
    assert!(r.status.is_success(), "{}", r.body);
    let mut camera = run(&cam_cert, &cam_key);
    let refused = camera
        .next_event("the refused cached assignment", |v| {
            v["event"] == "disconnected"
        })
        .await;
    assert_eq!(refused["refused"], true, "{refused}");
    let up = camera
        .next_event("connected", |v| v["event"] == "connected")
        .await;
    assert_eq!(up["device"], "camera-1");
    drop(camera);
    let dev = hub.call(Method::GET, "/devices/camera-1", None).await;
    assert_eq!(
        dev.status,
        reqwest::StatusCode::OK,
        "provisioned again: {}",
        dev.body
    );

    let mut sensor = run(&fleet_cert, &fleet_key);
    let up = sensor
        .next_event("connected", |v| v["event"] == "connected")
        .await;
    assert_eq!(up["device"], "fleet-3");
    let dev = hub.call(Method::GET, "/devices/fleet-3", None).await;
    assert_eq!(dev.body["authentication"]["type"], "selfSigned");
}
