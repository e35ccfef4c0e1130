//! X.509 from the command line, with the real binary: `hubtui hub ca` registers the CA
//! certificates the hub then authenticates CA-signed devices with, and `hubtui device
//! --x509-cert --x509-key` is such a device; bad input is one sentence (exit status 2).

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::TestHub;
use common::wait::eventually;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_hubtui");
const WAIT: Duration = Duration::from_secs(20);

const PROFILE: &str = r#"
interval_secs = 1

[[telemetry]]
name = "seq"
generator = "counter"
"#;

fn hubtui(dir: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", dir)
        .args(args)
        .output()
        .unwrap()
}

fn ca(dir: &Path, args: &[&str]) -> Output {
    let mut all = vec!["hub", "ca"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--data-dir", dir.to_str().unwrap()]);
    hubtui(dir, &all)
}

fn json_of(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The one-sentence refusal of a command that must fail with bad input (exit status 2).
fn refusal(out: &Output) -> String {
    assert_eq!(
        out.status.code(),
        Some(2),
        "stdout {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).trim().to_string()
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

/// A root CA, and a device certificate with subject CN `cn` that it issued: PEMs.
struct Pki {
    ca_pem: String,
    device_pem: String,
    device_key: String,
}

fn pki(cn: &str) -> Pki {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.distinguished_name
        .push(DnType::CommonName, "CLI Test CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign];
    let ca_pem = ca.self_signed(&ca_key).unwrap().pem();
    let key = KeyPair::generate().unwrap();
    let mut leaf = CertificateParams::new(Vec::<String>::new()).unwrap();
    leaf.distinguished_name.push(DnType::CommonName, cn);
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let device_pem = leaf
        .signed_by(&key, &Issuer::new(ca, &ca_key))
        .unwrap()
        .pem();
    Pki {
        ca_pem,
        device_pem,
        device_key: key.serialize_pem(),
    }
}

#[tokio::test]
async fn a_ca_registered_on_the_command_line_authenticates_a_headless_x509_device() {
    let dir = tempfile::tempdir().unwrap();
    let files = tempfile::tempdir().unwrap();
    let pki = pki("cli-dev");
    let ca_file = write(files.path(), "root.pem", &pki.ca_pem);
    let cert_file = write(files.path(), "cli-dev.pem", &pki.device_pem);
    // The key is encrypted; its passphrase comes from the environment.
    let key_file = write(
        files.path(),
        "cli-dev-key.pem",
        &common::certs::encrypt_key(&pki.device_key, "open sesame"),
    );

    let added = json_of(&ca(
        dir.path(),
        &["add", "root", "--pem", &ca_file, "--json"],
    ));
    assert_eq!(added["name"], "root");
    assert_eq!(added["isVerified"], true);
    assert_eq!(added["subject"], "CN=CLI Test CA");
    let listed = json_of(&ca(dir.path(), &["list", "--json"]));
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert!(
        refusal(&ca(dir.path(), &["add", "leaf", "--pem", &cert_file]))
            .contains("is not a CA certificate"),
    );
    assert!(
        refusal(&ca(dir.path(), &["add", "x", "--pem", "no-such-file.pem"]))
            .starts_with("hubtui: cannot read the CA certificate no-such-file.pem:"),
    );
    assert!(
        refusal(&ca(dir.path(), &["remove", "nothing"]))
            .contains("no CA certificate is registered as nothing"),
    );

    // The hub on that data dir authenticates a device its CA issued.
    let hub = TestHub::start_in(dir, |_| {}).await;
    let r = hub
        .call(
            Method::PUT,
            "/devices/cli-dev",
            Some(
                json!({"deviceId": "cli-dev", "authentication": {"type": "certificateAuthority"}}),
            ),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let hub_ca = write(files.path(), "hub-ca.pem", &hub.hub.ca_pem);
    let profile = write(files.path(), "fast.toml", PROFILE);
    let port = hub.hub.info.ports.mqtt.to_string();
    let mut child = KillOnDrop(
        Command::new(BIN)
            .args([
                "device",
                "--headless",
                "--x509-cert",
                &cert_file,
                "--x509-key",
                &key_file,
                "--host-name",
                "localhost",
                "--ca",
                &hub_ca,
                "--mqtt-port",
                &port,
                "--profile",
                &profile,
            ])
            .env_remove("IOTHUB_CONNECTION_STRING")
            .env_remove("IOTHUB_DEVICE_CONNECTION_STRING")
            .env("HUBTUI_X509_KEY_PASSPHRASE", "open sesame")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let stdout = child.0.stdout.take().unwrap();
    let (tx, mut lines) = tokio::sync::mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut events = Vec::new();
    let sent = tokio::time::timeout(WAIT, async {
        while let Some(line) = lines.recv().await {
            let v: Value = serde_json::from_str(&line).unwrap();
            events.push(v["event"].as_str().unwrap_or("").to_string());
            if v["event"] == "sent" {
                return Some(v);
            }
        }
        None
    })
    .await;
    let Some(sent) = sent.ok().flatten() else {
        let _ = child.0.kill();
        let mut stderr = String::new();
        if let Some(mut e) = child.0.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut e, &mut stderr);
        }
        panic!("no telemetry sent; events {events:?}, stderr {stderr}")
    };
    assert_eq!(
        sent["device"], "cli-dev",
        "the device id is the certificate's CN"
    );
    assert!(events.contains(&"connected".to_string()), "{events:?}");
    let stored = eventually(WAIT, "stored telemetry", || async {
        hub.stored_telemetry("cli-dev").into_iter().next()
    })
    .await;
    drop(child);
    let body: Value = serde_json::from_slice(&stored.body).unwrap();
    assert!(body["seq"].is_u64(), "{body}");

    // While the hub runs, its database is its own.
    assert!(
        refusal_or_failure(&ca(hub.dir.path(), &["remove", "root"]))
            .contains("is running and holds its database"),
    );
}

/// The device process, killed however the test ends.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn refusal_or_failure(out: &Output) -> String {
    assert!(!out.status.success());
    String::from_utf8_lossy(&out.stderr).trim().to_string()
}

#[test]
fn x509_device_arguments_are_checked_before_connecting() {
    let dir = tempfile::tempdir().unwrap();
    let a = pki("dev-a");
    let b = pki("dev-b");
    let cert = write(dir.path(), "a.pem", &a.device_pem);
    let key = write(dir.path(), "a-key.pem", &a.device_key);
    let other_key = write(dir.path(), "b-key.pem", &b.device_key);
    let device = |extra: &[&str]| {
        let mut args = vec!["device", "--headless"];
        args.extend_from_slice(extra);
        refusal(&hubtui(dir.path(), &args))
    };

    let e = device(&[
        "--x509-cert",
        "missing.pem",
        "--x509-key",
        &key,
        "--host-name",
        "h",
    ]);
    assert!(
        e.starts_with("hubtui: cannot read the certificate file missing.pem:")
            && e.ends_with("check the path"),
        "{e}"
    );
    let e = device(&[
        "--x509-cert",
        &cert,
        "--x509-key",
        &other_key,
        "--host-name",
        "h",
    ]);
    assert!(e.contains("does not belong to the certificate"), "{e}");
    let e = device(&[
        "--x509-cert",
        &cert,
        "--x509-key",
        &cert,
        "--host-name",
        "h",
    ]);
    assert!(e.contains("holds no usable private key"), "{e}");
    let e = device(&["--x509-cert", &cert, "--x509-key", &key]);
    assert!(e.contains("give --host-name"), "{e}");
    let encrypted = write(
        dir.path(),
        "a-key.enc.pem",
        &common::certs::encrypt_key(&a.device_key, "right"),
    );
    let with_encrypted = |extra: &[&str]| {
        let mut args = vec!["--x509-cert", &cert, "--x509-key", &encrypted];
        args.extend_from_slice(&["--host-name", "h"]);
        args.extend_from_slice(extra);
        device(&args)
    };
    assert_eq!(
        with_encrypted(&[]),
        format!(
            "hubtui: the key file {encrypted} is encrypted; give its passphrase (HUBTUI_X509_KEY_PASSPHRASE or --x509-key-passphrase)"
        )
    );
    assert_eq!(
        with_encrypted(&["--x509-key-passphrase", "wrong"]),
        format!(
            "hubtui: cannot decrypt the key file {encrypted} with the passphrase given; check the passphrase"
        )
    );
    let e = device(&[
        "--x509-cert",
        &cert,
        "--x509-key",
        &key,
        "--connection-string",
        "HostName=h;DeviceId=d;SharedAccessKey=AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
    ]);
    assert!(e.contains("with x509=true"), "{e}");
    let e = device(&[
        "--x509-cert",
        &cert,
        "--x509-key",
        &key,
        "--dps-scope",
        "0ne00000001",
        "--host-name",
        "h",
    ]);
    assert!(
        e.contains("--dps-scope provisions one device: leave out --connection-string, --host-name"),
        "{e}"
    );
    let e = device(&[
        "--x509-cert",
        &cert,
        "--x509-key",
        &key,
        "--dps-scope",
        "0ne00000001",
        "--group-key",
        "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
    ]);
    assert!(e.contains("leave out --device-key and --group-key"), "{e}");
    let e = device(&["--connection-string", "HostName=h;DeviceId=d;x509=true"]);
    assert!(e.contains("--x509-cert and --x509-key"), "{e}");
}
