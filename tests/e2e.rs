//! The real binary in a pseudo-terminal at 80x24 with NO_COLOR, on the embedded local hub:
//! the user's path through the tabs, checked on the screen (vt100) and through the REST API.
//!
//! Steps run in order on one session. Telemetry (tab 2) and C2D (tab 5) steps slot in where
//! marked once the AMQP service client lands.

mod common;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hubtui::hub::HubInfo;
use hubtui::iothub::connection_string::ServiceConnectionString;
use hubtui::iothub::sas::generate_token;
use portable_pty::{Child, CommandBuilder, PtySize, native_pty_system};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_hubtui");

struct Session {
    home: tempfile::TempDir,
    screen: Arc<Mutex<vt100::Parser>>,
    writer: Box<dyn Write + Send>,
    child: Box<dyn Child + Send + Sync>,
    _pair_master: Box<dyn portable_pty::MasterPty + Send>,
}

impl Session {
    fn start() -> Session {
        let home = tempfile::tempdir().unwrap();
        let pty = native_pty_system();
        let pair = pty
            .openpty(PtySize {
                rows: 24,
                cols: 80,
                pixel_width: 0,
                pixel_height: 0,
            })
            .unwrap();
        let mut cmd = CommandBuilder::new(BIN);
        cmd.env_clear();
        cmd.env("PATH", std::env::var_os("PATH").unwrap_or_default());
        cmd.env("TERM", "xterm-256color");
        cmd.env("NO_COLOR", "1");
        cmd.env("HOME", home.path());
        for (var, dir) in [
            ("XDG_CONFIG_HOME", "config"),
            ("XDG_DATA_HOME", "data"),
            ("XDG_STATE_HOME", "state"),
        ] {
            cmd.env(var, home.path().join(dir));
        }
        cmd.cwd(home.path());
        let child = pair.slave.spawn_command(cmd).unwrap();
        drop(pair.slave);
        let screen = Arc::new(Mutex::new(vt100::Parser::new(24, 80, 0)));
        let mut reader = pair.master.try_clone_reader().unwrap();
        let sink = screen.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().process(&buf[..n]);
            }
        });
        let writer = pair.master.take_writer().unwrap();
        Session {
            home,
            screen,
            writer,
            child,
            _pair_master: pair.master,
        }
    }

    fn text(&self) -> String {
        self.screen.lock().unwrap().screen().contents()
    }

    fn wait_for(&self, what: &[&str]) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let text = self.text();
            if what.iter().all(|w| text.contains(w)) {
                return text;
            }
            assert!(
                Instant::now() < deadline,
                "{what:?} did not appear; the screen:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until one of `choices` is on the screen; returns its index.
    fn wait_for_any(&self, choices: &[&str]) -> usize {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let text = self.text();
            if let Some(i) = choices.iter().position(|c| text.contains(c)) {
                return i;
            }
            assert!(
                Instant::now() < deadline,
                "none of {choices:?} appeared; the screen:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn keys(&mut self, bytes: &str) {
        self.writer.write_all(bytes.as_bytes()).unwrap();
        self.writer.flush().unwrap();
        // Each key its own read on the other side.
        std::thread::sleep(Duration::from_millis(30));
    }

    /// `q`, then the explorer ends within 10 s with status 0.
    fn quit(&mut self) {
        self.keys("q");
        let deadline = Instant::now() + Duration::from_secs(10);
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(Instant::now() < deadline, "still running after q");
            std::thread::sleep(Duration::from_millis(50));
        };
        assert!(status.success(), "exit status {status:?}");
    }

    fn paste(&mut self, text: &str) {
        self.keys(&format!("\x1b[200~{text}\x1b[201~"));
    }

    fn data_dir(&self) -> PathBuf {
        self.home.path().join("data/hubtui/explorer-hub")
    }

    fn log_file(&self) -> PathBuf {
        self.home.path().join("state/hubtui/hubtui.log")
    }
}

/// What a service needs to reach the embedded hub in `dir`: hub.json, the owner's
/// connection string, the CA (PEM) and a token for ten minutes.
fn embedded_service(dir: &Path) -> (HubInfo, ServiceConnectionString, String, String) {
    let info = HubInfo::read(dir).unwrap();
    let cs = ServiceConnectionString::parse(&info.service_connection_string).unwrap();
    let ca = std::fs::read_to_string(dir.join(&info.ca_certificate)).unwrap();
    let token = generate_token(
        &cs.host_name,
        &cs.key,
        Some(&cs.policy_name),
        common::now() + 600,
    )
    .unwrap();
    (info, cs, ca, token)
}

/// A REST GET on the embedded hub, as any service would do it: hub.json has the connection
/// string, ca.pem the CA.
fn rest_get(dir: &Path, path: &str) -> Value {
    let (info, _, ca, token) = embedded_service(dir);
    let url = format!(
        "https://localhost:{}{path}?{}",
        info.ports.https,
        common::API
    );
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let r = common::https_client(&ca)
            .get(url)
            .header("Authorization", token)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{path}: {}", r.status());
        r.json().await.unwrap()
    })
}

/// Makes device `id` on the embedded hub and uploads `data` from it as `name`, as a device
/// app would (file upload over HTTPS): the blob lands in the hub's upload container.
fn device_upload(dir: &Path, id: &str, uploads: &[(&str, &[u8])]) {
    use hubtui::client::device::{DeviceClient, DeviceClientOptions, Trust};
    use hubtui::iothub::connection_string::DeviceConnectionString;
    let (info, cs, ca, token) = embedded_service(dir);
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let url = format!(
            "https://localhost:{}/devices/{id}?{}",
            info.ports.https,
            common::API
        );
        let r = common::https_client(&ca)
            .put(url)
            .header("Authorization", token)
            .json(&serde_json::json!({"deviceId": id}))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "create {id}: {}", r.status());
        let device: Value = r.json().await.unwrap();
        let key = device["authentication"]["symmetricKey"]["primaryKey"]
            .as_str()
            .unwrap();
        let dcs = DeviceConnectionString::parse(&format!(
            "HostName={};DeviceId={id};SharedAccessKey={key}",
            cs.host_name
        ))
        .unwrap();
        let opts = DeviceClientOptions {
            port: info.ports.mqtt,
            https_port: info.ports.https,
            trust: Trust::CaPem(ca.clone()),
            connect_host: Some("localhost".into()),
            ..DeviceClientOptions::default()
        };
        let (client, _events) = DeviceClient::connect(&dcs, opts).unwrap();
        for (name, data) in uploads {
            client.upload_bytes(data.to_vec(), name).await.unwrap();
        }
        client.close().await;
    });
}

const CTRL_S: &str = "\x13";
const RIGHT: &str = "\x1b[C";
const DOWN: &str = "\x1b[B";

#[test]
fn a_user_session_on_the_embedded_hub() {
    let mut s = Session::start();

    // Devices: the tabs, the banner and the three demo devices.
    s.wait_for(&["1 Devices", "2 Telemetry", "3 Twin", "4 Methods", "5 C2D"]);
    s.wait_for(&["Local hub (demo devices)", "sim-1", "sim-2", "sim-3"]);
    s.wait_for(&["● service", "sim-3               enabled  connected"]);

    // Telemetry: the reader connects and rows from the simulated devices arrive (they send
    // every few seconds; each kind of device has its own body).
    s.keys("2");
    s.wait_for(&["● telemetry", "group $Default"]);
    s.wait_for(&["sim-1", "{\"temperature\":", "{\"co2\":"]);

    // Twin: edit a desired property of sim-1 (desired starts as `{}`).
    s.keys("3");
    s.wait_for(&["sim-1 · twin", "desired", "reported"]);
    s.keys("e");
    s.wait_for(&["Ctrl-s"]);
    s.keys(RIGHT);
    s.paste("\"targetTemperature\": 23.5");
    s.keys(CTRL_S);
    // A simulator reporting meanwhile changes the etag: then the patch meets a 412, the edit
    // is kept, and `a` re-applies it on the twin as it is now.
    if s.wait_for_any(&["twin updated", "412: the twin changed"]) == 1 {
        s.keys("a");
        s.wait_for(&["twin updated"]);
    }
    let twin = rest_get(&s.data_dir(), "/twins/sim-1");
    assert_eq!(twin["properties"]["desired"]["targetTemperature"], 23.5);

    // Methods: call reboot on sim-1, confirm, and see its answer.
    s.keys("4");
    s.wait_for(&["Call on sim-1"]);
    s.keys("e");
    s.keys("reboot");
    s.keys(CTRL_S);
    s.wait_for(&["Call reboot on sim-1? It may restart or wipe the device."]);
    s.keys("y");
    s.wait_for(&["200 reboot", "rebooted"]);

    // C2D: send the default message to sim-1; the hub takes it and the simulated device
    // counts it in its reported `c2dReceived`.
    let received = |twin: &Value| twin["properties"]["reported"]["c2dReceived"].as_u64();
    let before = received(&rest_get(&s.data_dir(), "/twins/sim-1")).unwrap_or(0);
    s.keys("5");
    s.wait_for(&["Message to sim-1", "Nothing sent yet."]);
    s.keys("s");
    s.wait_for(&["→ sim-1 sent, ack none"]);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let twin = rest_get(&s.data_dir(), "/twins/sim-1");
        if received(&twin).is_some_and(|n| n > before) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "sim-1 did not report the C2D message: {}",
            twin["properties"]["reported"]
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // A device key, to look for in the log later (the hub stops with the explorer).
    let device = rest_get(&s.data_dir(), "/devices/sim-1");
    let device_key = device["authentication"]["symmetricKey"]["primaryKey"]
        .as_str()
        .unwrap()
        .to_string();

    s.quit();

    // The log is in the state dir and holds no key or token.
    let log = std::fs::read_to_string(s.log_file()).unwrap();
    assert!(log.contains("local hub started"), "{log}");
    let info = HubInfo::read(&s.data_dir()).unwrap();
    let service_key = ServiceConnectionString::parse(&info.service_connection_string)
        .unwrap()
        .key;
    for secret in [
        service_key.as_str(),
        device_key.as_str(),
        "SharedAccessSignature",
        "sig=",
    ] {
        assert!(!log.contains(secret), "the log holds {secret:?}");
    }
}

/// "Attach asset" as a user does it: on sim-2's twin, `A`, a file and a property name,
/// Ctrl-s; the rollout view replaces the twin and shows the demo device taking the asset.
#[test]
fn attaching_an_asset_from_the_twin_tab() {
    let mut s = Session::start();
    s.wait_for(&["sim-2               enabled  connected"]);
    let file = s.home.path().join("welcome.txt");
    std::fs::write(&file, "hello from the explorer\n").unwrap();
    s.keys(DOWN);
    s.keys("3");
    s.wait_for(&["sim-2 · twin"]);
    s.keys("A");
    s.wait_for(&["Attach asset", "goes to sim-2"]);
    s.paste(&file.display().to_string());
    s.keys("\t");
    s.keys("greeting");
    s.keys(CTRL_S);
    s.wait_for(&["Rollout of greeting"]);
    s.wait_for(&["1 device: 1 received", "sim-2"]);
    let twin = rest_get(&s.data_dir(), "/twins/sim-2");
    let reported = &twin["properties"]["reported"]["greeting"];
    assert_eq!(reported["status"], "received", "{reported}");
    let uri = twin["properties"]["desired"]["greeting"]["uri"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(reported["current"], uri.as_str());
    assert_eq!(
        twin["properties"]["desired"]["greeting"]["contentType"],
        "text/plain"
    );
    // R goes back to the twin; q quits.
    s.keys("R");
    s.wait_for(&["sim-2 · twin"]);
    s.quit();
}

#[test]
fn the_files_tab_shows_a_device_upload_and_previews_it() {
    let mut s = Session::start();
    s.wait_for(&["6 Files", "● service"]);
    device_upload(
        &s.data_dir(),
        "cam-1",
        &[("snap.png", include_bytes!("../assets/capture.png"))],
    );

    // The tab lists the upload container, newest first.
    s.keys("6");
    s.wait_for(&["Files · fileuploads · 1 blob ·", "cam-1", "snap.png"]);

    // Enter previews the image (half-blocks here: the pty answers no graphics query).
    s.keys("\r");
    s.wait_for(&["snap.png ─", "etag"]);
    s.wait_for(&["▀"]);
    s.keys("\x1b");

    // A new upload shows up while the tab is on screen (notification or re-read), and its
    // JSON previews pretty-printed.
    device_upload(
        &s.data_dir(),
        "thermo-1",
        &[("reading.json", br#"{"temperature":21.5,"unit":"C"}"#)],
    );
    s.wait_for(&["thermo-1", "reading.json"]);
    s.keys("g");
    s.keys("\r");
    s.wait_for(&[
        "reading.json ─",
        "\"temperature\": 21.5,",
        "\"unit\": \"C\"",
    ]);

    // d downloads it to the path asked (the session's working directory by default).
    s.keys("d");
    s.wait_for(&["download to: ./reading.json"]);
    s.keys("\r");
    // (The status bar at 80 columns has room for the notice's start only.)
    s.wait_for(&["│ downloaded"]);
    assert_eq!(
        std::fs::read(s.home.path().join("reading.json")).unwrap(),
        br#"{"temperature":21.5,"unit":"C"}"#
    );

    s.quit();
}

/// The camera profile's `capture_image`, called from the Methods tab, ends with the image
/// in the Files tab: a `hubtui device` camera on the embedded hub uploads a frame under
/// the call's `blobName`, and the explorer lists and previews it.
#[test]
fn capture_image_from_the_methods_tab_lands_in_the_files_tab() {
    let mut s = Session::start();
    s.wait_for(&["sim-1               enabled  connected"]);
    let dir = s.data_dir();
    let info = HubInfo::read(&dir).unwrap();
    let ca = dir.join(&info.ca_certificate);
    let camera = std::process::Command::new(BIN)
        .args(["device", "--headless", "--hub"])
        .arg(&info.service_connection_string)
        .args([
            "--count",
            "1",
            "--device-id",
            "cam",
            "--profile",
            "camera",
            "--ca",
        ])
        .arg(&ca)
        .args(["--mqtt-port", &info.ports.mqtt.to_string()])
        .args(["--https-port", &info.ports.https.to_string()])
        .env("HUBTUI_LOG_LEVEL", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    struct Killed(std::process::Child);
    impl Drop for Killed {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _camera = Killed(camera);
    // The list is read again every few seconds: cam comes first, connected.
    s.wait_for(&["cam                 enabled  connected"]);
    s.keys("g");
    s.keys("4");
    s.wait_for(&["Call on cam"]);
    s.keys("e");
    s.keys("capture_image");
    // Name, response timeout, connect timeout, then the payload editor (`{}`).
    s.keys("\t\t\t");
    s.keys(RIGHT);
    s.paste("\"blobName\": \"captures/door.png\"");
    s.keys(CTRL_S);
    s.wait_for(&["200 capture_image"]);

    s.keys("6");
    s.wait_for(&["cam", "captures/door.png"]);
    s.keys("g");
    s.keys("\r");
    s.wait_for(&["door.png ─", "▀"]);
    s.quit();
}
