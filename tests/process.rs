//! The `hubtui` binary as a process: command-line behaviour, start-up errors,
//! and durability of acknowledged writes across a kill -9.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use hubtui::hub::HubInfo;
use hubtui::iothub::sas::generate_token;
use reqwest::StatusCode;
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_hubtui");

fn spawn_hub(dir: &Path, extra: &[&str]) -> Child {
    Command::new(BIN)
        .args(["hub", "--data-dir"])
        .arg(dir)
        .args(["--mqtt-port", "0", "--https-port", "0", "--amqp-port", "0"])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("hubtui starts")
}

/// Waits for the hub.json a starting hub writes once its ports are bound.
fn wait_for_info(dir: &Path) -> HubInfo {
    common::wait::wait_until(Duration::from_secs(30), "hub.json to appear", || {
        HubInfo::read(dir).ok()
    })
}

/// Stops a hub with kill -9 and removes its hub.json, so that the next hub's can be waited for.
fn kill_hub(child: &mut Child, dir: &Path) {
    child.kill().unwrap();
    let _ = child.wait();
    std::fs::remove_file(dir.join("hub.json")).unwrap();
}

#[test]
fn help_lists_the_subcommands() {
    let out = Command::new(BIN).arg("--help").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("hub"), "{text}");
    let out = Command::new(BIN).args(["hub", "--help"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--data-dir",
        "--mqtt-port",
        "--amqp-port",
        "--https-port",
        "--bind",
        "--simulate",
    ] {
        assert!(text.contains(flag), "missing {flag} in {text}");
    }
}

#[test]
fn a_taken_port_fails_with_a_sentence_naming_the_flag() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let dir = tempfile::tempdir().unwrap();
    for flag in ["--mqtt-port", "--https-port", "--amqp-port"] {
        let mut args = vec!["hub", "--data-dir", dir.path().to_str().unwrap()];
        let others = [
            ("--mqtt-port", "0"),
            ("--https-port", "0"),
            ("--amqp-port", "0"),
        ];
        for (f, v) in others {
            args.push(f);
            args.push(if f == flag { &port } else { v });
        }
        let out = Command::new(BIN).args(&args).output().unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        let last = err.lines().last().unwrap_or_default();
        assert!(
            last.starts_with("hubtui: cannot listen on 127.0.0.1:"),
            "{err}"
        );
        assert!(last.contains(flag), "{flag} not named in: {last}");
    }
}

#[test]
fn a_second_hub_on_the_same_data_dir_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut first = spawn_hub(dir.path(), &[]);
    wait_for_info(dir.path());
    let out = Command::new(BIN)
        .args(["hub", "--data-dir", dir.path().to_str().unwrap()])
        .args(["--mqtt-port", "0", "--https-port", "0", "--amqp-port", "0"])
        .output()
        .unwrap();
    let _ = first.kill();
    let _ = first.wait();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("locked by another process"), "{err}");
}

/// `--simulate NAME=COUNT,…` mixes demo kinds and profiles; the banner names each one and
/// the profile device reports its defaults with the profile's model id.
#[test]
fn simulate_takes_profiles_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(BIN)
        .args(["hub", "--data-dir"])
        .arg(dir.path())
        .args(["--mqtt-port", "0", "--https-port", "0", "--amqp-port", "0"])
        .args(["--simulate", "thermostat=1,camera=1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let info = wait_for_info(dir.path());
    let ca = std::fs::read_to_string(dir.path().join("ca.pem")).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let twin = rt.block_on(async {
        let http = common::https_client(&ca);
        let token = owner_token(&info);
        let url = format!(
            "https://localhost:{}/twins/sim-2?{}",
            info.ports.https,
            common::API
        );
        common::wait::eventually(Duration::from_secs(30), "the camera's report", || async {
            let r = http
                .get(&url)
                .header("Authorization", &token)
                .send()
                .await
                .ok()?;
            let twin: Value = r.json().await.ok()?;
            twin["properties"]["reported"]["resolution"]
                .is_object()
                .then_some(twin)
        })
        .await
    });
    let _ = child.kill();
    let _ = child.wait();
    let mut banner = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut banner).unwrap();
    assert!(
        banner.contains("simulated devices: sim-1 (thermostat), sim-2 (camera)"),
        "{banner}"
    );
    assert_eq!(twin["modelId"], "dtmi:hubtui:simulator:Camera;1", "{twin}");
    assert_eq!(
        twin["properties"]["reported"]["resolution"],
        json!({"value": "1080p", "ac": 203, "av": 0, "ad": "device default"})
    );
}

#[test]
fn a_bad_simulate_spec_is_refused_naming_the_profile() {
    let out = Command::new(BIN)
        .args(["hub", "--simulate", "thermostat=2,toaster=1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("toaster") && err.contains("camera"), "{err}");
}

/// Every write the hub acknowledged before a kill -9 is there after a restart.
#[test]
fn acknowledged_writes_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = spawn_hub(dir.path(), &[]);
    let info = wait_for_info(dir.path());
    let ca = std::fs::read_to_string(dir.path().join("ca.pem")).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();

    let acked: (Vec<(String, i64)>, usize) = rt.block_on(async {
        let http = common::https_client(&ca);
        let token = owner_token(&info);
        let base = format!("https://localhost:{}", info.ports.https);
        let stop = Arc::new(AtomicBool::new(false));
        // Four writers create devices and patch their twins as fast as the hub answers;
        // each records only what the hub acknowledged.
        let mut writers = Vec::new();
        for w in 0..4 {
            let (http, token, base, stop) =
                (http.clone(), token.clone(), base.clone(), stop.clone());
            writers.push(tokio::spawn(async move {
                let mut acked = Vec::new();
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    let id = format!("w{w}-{i}");
                    i += 1;
                    let ok = http
                        .put(format!("{base}/devices/{id}?{}", common::API))
                        .header("Authorization", &token)
                        .json(&json!({"deviceId": id}))
                        .send()
                        .await
                        .is_ok_and(|r| r.status() == StatusCode::OK);
                    if !ok {
                        continue;
                    }
                    let r = http
                        .patch(format!("{base}/twins/{id}?{}", common::API))
                        .header("Authorization", &token)
                        .json(&json!({"properties": {"desired": {"n": i}}}))
                        .send()
                        .await;
                    let patched = matches!(&r, Ok(r) if r.status() == StatusCode::OK);
                    acked.push((id, if patched { i } else { -1 }));
                }
                acked
            }));
        }
        let mqtt = tokio::spawn(mqtt_load(
            info.clone(),
            ca.clone(),
            http.clone(),
            stop.clone(),
            MQTT_DEVICE.into(),
            Default::default(),
        ));
        tokio::time::sleep(Duration::from_millis(1500)).await;
        // kill -9 while the writers are mid-request.
        kill_hub(&mut child, dir.path());
        stop.store(true, Ordering::Relaxed);
        let mut all = Vec::new();
        for w in writers {
            all.extend(w.await.unwrap());
        }
        (all, mqtt.await.unwrap())
    });
    let (acked, telemetry_acked) = acked;
    assert!(
        telemetry_acked > 20,
        "too little telemetry to prove anything: {telemetry_acked}"
    );
    assert!(
        acked.len() > 20,
        "too little load to prove anything: {}",
        acked.len()
    );

    let mut child = spawn_hub(dir.path(), &[]);
    let info = wait_for_info(dir.path());
    rt.block_on(async {
        let http = common::https_client(&ca);
        let token = owner_token(&info);
        let base = format!("https://localhost:{}", info.ports.https);
        for (id, n) in &acked {
            let r = http
                .get(format!("{base}/twins/{id}?{}", common::API))
                .header("Authorization", &token)
                .send()
                .await
                .unwrap();
            assert_eq!(
                r.status(),
                StatusCode::OK,
                "acknowledged device {id} was lost"
            );
            let twin: Value = r.json().await.unwrap();
            if *n >= 0 {
                assert_eq!(
                    twin["properties"]["desired"]["n"], *n,
                    "acknowledged patch of {id} was lost"
                );
            }
            assert_eq!(twin["connectionState"], "Disconnected");
        }
    });
    // Every telemetry message the hub PUBACKed is retained, in order.
    let store = hubtui::hub::store::Store::open(&dir.path().join("hub.db"));
    assert!(store.is_err(), "the restarted hub holds the database");
    let _ = child.kill();
    let _ = child.wait();
    let store = hubtui::hub::store::Store::open(&dir.path().join("hub.db")).unwrap();
    let partition = hubtui::hub::telemetry::partition_of(MQTT_DEVICE, 4);
    let kept = store.telemetry_read(partition, 0, 1_000_000).unwrap();
    let bodies: Vec<String> = kept
        .iter()
        .map(|r| String::from_utf8_lossy(&r.body).into_owned())
        .collect();
    assert!(
        kept.len() >= telemetry_acked,
        "{} acknowledged, {} kept",
        telemetry_acked,
        kept.len()
    );
    for (i, body) in bodies.iter().take(telemetry_acked).enumerate() {
        assert_eq!(
            *body,
            format!("{{\"n\":{i}}}"),
            "message {i} lost or out of order"
        );
    }
}

/// A hub restarted with a new `--host-name` serves a certificate for that name, issued by
/// the CA clients already trust.
#[test]
fn a_new_host_name_gets_a_certificate_from_the_same_ca() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = spawn_hub(dir.path(), &[]);
    wait_for_info(dir.path());
    let ca = std::fs::read_to_string(dir.path().join("ca.pem")).unwrap();
    kill_hub(&mut child, dir.path());

    let mut child = spawn_hub(dir.path(), &["--host-name", "myhub.local"]);
    let info = wait_for_info(dir.path());
    let served = tls_handshake(info.ports.https, "myhub.local", &ca);
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(info.host_name, "myhub.local");
    served.expect("the certificate is valid for myhub.local under the hub's CA");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("ca.pem")).unwrap(),
        ca,
        "the CA must not change"
    );
}

/// A TLS handshake with the hub on 127.0.0.1:`port`, asking for `name`, trusting `ca_pem` only.
fn tls_handshake(port: u16, name: &str, ca_pem: &str) -> std::io::Result<()> {
    let server = rustls_pki_types::ServerName::try_from(name.to_string()).unwrap();
    let mut tls =
        rustls::ClientConnection::new(Arc::new(common::client_tls(ca_pem)), server).unwrap();
    let mut tcp = std::net::TcpStream::connect(("127.0.0.1", port))?;
    tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
    while tls.is_handshaking() {
        tls.complete_io(&mut tcp)?;
    }
    Ok(())
}

const MQTT_DEVICE: &str = "mqtt-load";

/// Telemetry from many devices at once is committed in shared transactions: every
/// message any of them had acknowledged when the hub was killed is retained, in order.
#[test]
fn telemetry_of_many_devices_survives_kill_9() {
    const DEVICES: usize = 100;
    let dir = tempfile::tempdir().unwrap();
    let mut child = spawn_hub(dir.path(), &[]);
    let info = wait_for_info(dir.path());
    let ca = std::fs::read_to_string(dir.path().join("ca.pem")).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let acked: Vec<(String, usize)> = rt.block_on(async {
        let http = common::https_client(&ca);
        let stop = Arc::new(AtomicBool::new(false));
        let progress = Arc::new(AtomicUsize::new(0));
        let devices: Vec<_> = (0..DEVICES)
            .map(|i| {
                let id = format!("kill-{i:03}");
                let load = mqtt_load(
                    info.clone(),
                    ca.clone(),
                    http.clone(),
                    stop.clone(),
                    id.clone(),
                    progress.clone(),
                );
                (id, tokio::spawn(load))
            })
            .collect();
        // kill -9 once every device is likely mid-stream.
        common::wait::eventually(
            Duration::from_secs(60),
            "the devices to have telemetry acknowledged",
            || async { (progress.load(Ordering::Relaxed) >= DEVICES * 20).then_some(()) },
        )
        .await;
        kill_hub(&mut child, dir.path());
        stop.store(true, Ordering::Relaxed);
        let mut acked = Vec::new();
        for (id, task) in devices {
            acked.push((id, task.await.unwrap()));
        }
        acked
    });
    let store = hubtui::hub::store::Store::open(&dir.path().join("hub.db")).unwrap();
    let kept: Vec<_> = (0..4)
        .flat_map(|p| store.telemetry_read(p, 0, 10_000_000).unwrap())
        .collect();
    for (id, n) in acked {
        let bodies: Vec<String> = kept
            .iter()
            .filter(|r| r.device_id == id)
            .map(|r| String::from_utf8_lossy(&r.body).into_owned())
            .collect();
        assert!(
            bodies.len() >= n,
            "{id}: {n} acknowledged, {} kept",
            bodies.len()
        );
        for (i, body) in bodies.iter().take(n).enumerate() {
            assert_eq!(
                *body,
                format!("{{\"n\":{i}}}"),
                "{id}: message {i} lost or out of order"
            );
        }
    }
}

/// A device that publishes numbered telemetry at QoS 1 until `stop`; returns how
/// many messages the hub acknowledged (PUBACKs arrive in order for one connection),
/// also counted in `progress`.
async fn mqtt_load(
    info: HubInfo,
    ca: String,
    http: reqwest::Client,
    stop: Arc<AtomicBool>,
    device: String,
    progress: Arc<AtomicUsize>,
) -> usize {
    use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS, TlsConfiguration, Transport};
    let token = owner_token(&info);
    let r = http
        .put(format!(
            "https://localhost:{}/devices/{device}?{}",
            info.ports.https,
            common::API
        ))
        .header("Authorization", &token)
        .json(&json!({"deviceId": device}))
        .send()
        .await
        .unwrap();
    let created: Value = r.json().await.unwrap();
    let device_key = created["authentication"]["symmetricKey"]["primaryKey"]
        .as_str()
        .unwrap();
    let password = generate_token(
        &format!("localhost/devices/{device}"),
        device_key,
        None,
        common::now() + 600,
    )
    .unwrap();
    let mut o = MqttOptions::new(&device, "localhost", info.ports.mqtt);
    o.set_credentials(
        format!("localhost/{device}/?api-version=2021-04-12"),
        password,
    );
    o.set_clean_session(false);
    o.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(
        Arc::new(common::client_tls(&ca)),
    )));
    let (client, mut eventloop) = AsyncClient::new(o, 1000);
    let topic = format!("devices/{device}/messages/events/");
    let publisher = tokio::spawn(async move {
        let mut n = 0;
        while !stop.load(Ordering::Relaxed) {
            if client
                .publish(&topic, QoS::AtLeastOnce, false, format!("{{\"n\":{n}}}"))
                .await
                .is_err()
            {
                break;
            }
            n += 1;
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    });
    let mut acked = 0;
    while let Ok(ev) = eventloop.poll().await {
        if let Event::Incoming(Packet::PubAck(_)) = ev {
            acked += 1;
            progress.fetch_add(1, Ordering::Relaxed);
        }
    }
    publisher.abort();
    acked
}

/// A service token for the hub's owner policy, from hub.json's connection string.
fn owner_token(info: &HubInfo) -> String {
    let cs = hubtui::iothub::connection_string::ServiceConnectionString::parse(
        &info.service_connection_string,
    )
    .unwrap();
    generate_token(
        "localhost",
        &cs.key,
        Some("iothubowner"),
        common::now() + 600,
    )
    .unwrap()
}
