//! `hubtui device` (the terminal UI) as a real process in a pseudo-terminal at 80x24 with
//! NO_COLOR, against the real local hub: telemetry composed and sent from the Telemetry tab
//! is stored by the hub, a C2D message shows in the Inbox, a method invoked over REST is
//! answered by the profile and listed, and a reported patch from the Twin tab reaches the twin;
//! a device provisioned through DPS whose cached assignment the hub refuses registers again.

mod common;

use std::io::{Read, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::TestHub;
use common::wait::eventually;
use hubtui::iothub::property_bag::PropertyBag;
use portable_pty::{Child, CommandBuilder, PtySize, native_pty_system};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_hubtui");
const WAIT: Duration = Duration::from_secs(30);
const CTRL_S: &str = "\x13";
const ESC: &str = "\x1b";
const BACKSPACE: &str = "\x7f";

struct Screen {
    _home: tempfile::TempDir,
    parser: Arc<Mutex<vt100::Parser>>,
    writer: Box<dyn Write + Send>,
    child: Box<dyn Child + Send + Sync>,
    _master: Box<dyn portable_pty::MasterPty + Send>,
}

impl Screen {
    fn start(args: &[&str]) -> Screen {
        Screen::start_with(args, &[])
    }

    /// `env` overrides the defaults (a temp home with XDG dirs in it).
    fn start_with(args: &[&str], env: &[(&str, &str)]) -> Screen {
        let home = tempfile::tempdir().unwrap();
        let pair = native_pty_system()
            .openpty(PtySize {
                rows: 24,
                cols: 80,
                pixel_width: 0,
                pixel_height: 0,
            })
            .unwrap();
        let mut cmd = CommandBuilder::new(BIN);
        cmd.args(args);
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
        for (var, value) in env {
            cmd.env(var, value);
        }
        cmd.cwd(home.path());
        let child = pair.slave.spawn_command(cmd).unwrap();
        drop(pair.slave);
        let parser = Arc::new(Mutex::new(vt100::Parser::new(24, 80, 0)));
        let mut reader = pair.master.try_clone_reader().unwrap();
        let sink = parser.clone();
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
        Screen {
            _home: home,
            parser,
            writer,
            child,
            _master: pair.master,
        }
    }

    fn text(&self) -> String {
        self.parser.lock().unwrap().screen().contents()
    }

    async fn wait_for(&self, what: &[&str]) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let text = self.text();
            if what.iter().all(|w| text.contains(w)) {
                return text;
            }
            assert!(
                Instant::now() < deadline,
                "{what:?} did not appear; the screen:\n{text}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn quit(&mut self) {
        self.keys("q").await;
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "{status:?}");
                return;
            }
            assert!(Instant::now() < deadline, "hubtui device did not quit");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn keys(&mut self, bytes: &str) {
        self.writer.write_all(bytes.as_bytes()).unwrap();
        self.writer.flush().unwrap();
        // Each key its own read on the other side.
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

/// `hubtui device` for the device d1 of `hub` (created here), with `extra` arguments.
async fn d1_screen(hub: &TestHub, extra: &[&str]) -> Screen {
    let key = hub.create_device("d1").await;
    let ca = write_file(hub.dir.path(), "ca.pem", &hub.hub.ca_pem);
    let cs = format!("HostName={};DeviceId=d1;SharedAccessKey={key}", hub.host());
    let mqtt = hub.hub.info.ports.mqtt.to_string();
    let https = hub.hub.info.ports.https.to_string();
    let mut args = vec![
        "device",
        "--connection-string",
        &cs,
        "--ca",
        &ca,
        "--mqtt-port",
        &mqtt,
        "--https-port",
        &https,
    ];
    args.extend_from_slice(extra);
    Screen::start(&args)
}

fn write_file(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

fn bodies(hub: &TestHub, device: &str) -> Vec<Value> {
    hub.stored_telemetry(device)
        .iter()
        .filter_map(|r| serde_json::from_slice(&r.body).ok())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_tui_sends_receives_answers_and_reports() {
    let hub = TestHub::start().await;
    let mut s = d1_screen(&hub, &[]).await;
    s.wait_for(&["1 Telemetry", "2 Inbox", "3 Methods", "4 Twin"])
        .await;
    s.wait_for(&["● connected", "d1", "profile thermostat"])
        .await;

    // Telemetry: the template as it starts, sent once; the hub stores the expanded JSON with
    // the composer's property.
    s.keys("s").await;
    s.wait_for(&["#1", "queued"]).await;
    let stored = eventually(WAIT, "the first message stored", || async {
        hub.stored_telemetry("d1").into_iter().next()
    })
    .await;
    let body: Value = serde_json::from_slice(&stored.body).unwrap();
    assert_eq!(body["seq"], json!(1), "{body}");
    assert!(
        body["temperature"]
            .as_f64()
            .is_some_and(|t| (20.0..=25.0).contains(&t))
    );
    assert!(body["time"].as_str().unwrap().ends_with('Z'), "{body}");
    assert!(
        stored.properties.contains("hubtui"),
        "{}",
        stored.properties
    );

    // A bad placeholder is one sentence and nothing is sent; fixed, the edit is sent.
    s.keys("e").await;
    for k in ["{", "{", "x", "}", "}"] {
        s.keys(k).await;
    }
    s.keys(CTRL_S).await;
    s.wait_for(&["unknown placeholder {{x}} at line 1"]).await;
    for _ in 0..5 {
        s.keys(BACKSPACE).await;
    }
    s.keys(CTRL_S).await;
    s.wait_for(&["#2"]).await;
    s.keys(ESC).await;
    let seqs = eventually(WAIT, "the second message stored", || async {
        let seqs: Vec<Value> = bodies(&hub, "d1")
            .iter()
            .map(|b| b["seq"].clone())
            .collect();
        (seqs.len() >= 2).then_some(seqs)
    })
    .await;
    assert_eq!(seqs, vec![json!(1), json!(2)]);

    // Inbox: a C2D message with its properties and pretty JSON body.
    let mut props = PropertyBag::default();
    props.set("$.mid", Some("c2d-1".into()));
    props.set("colour", Some("blue".into()));
    (hub.hub.state)
        .enqueue_c2d("d1", props, br#"{"hello":1}"#.to_vec(), None)
        .unwrap();
    s.keys("2").await;
    s.wait_for(&["c2d-1", "colour: blue", "\"hello\": 1"]).await;

    // Methods: invoked over REST, answered by the thermostat profile, listed with its payload.
    let r = hub
        .call(
            Method::POST,
            "/twins/d1/methods",
            Some(
                json!({"methodName": "ping", "payload": {"n": 7}, "responseTimeoutInSeconds": 10}),
            ),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body, json!({"status": 200, "payload": {"pong": true}}));
    s.keys("3").await;
    s.wait_for(&["200 ping", "\"n\": 7", "\"pong\": true"])
        .await;

    // Twin: the default reported patch sent from the editor reaches the twin.
    s.keys("4").await;
    s.wait_for(&["Desired · $version", "Reported patch"]).await;
    s.keys("s").await;
    s.wait_for(&["the hub took the reported patch"]).await;
    let twin = hub.call(Method::GET, "/twins/d1", None).await;
    assert_eq!(
        twin.body["properties"]["reported"]["status"], "ok",
        "{}",
        twin.body
    );

    // q quits and gives the terminal back.
    s.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_tui_provisions_again_when_the_cached_assignment_is_refused() {
    const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    let hub = TestHub::start().await;
    let r = hub
        .call(
            Method::PUT,
            "/enrollmentGroups/fleet",
            Some(json!({"attestation": {"type": "symmetricKey", "symmetricKey": {"primaryKey": KEY}}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let ca = write_file(hub.dir.path(), "ca.pem", &hub.hub.ca_pem);
    let data = tempfile::tempdir().unwrap();
    let info = &hub.hub.info;
    let (https, mqtt) = (info.ports.https.to_string(), info.ports.mqtt.to_string());
    let args = [
        "device",
        "--dps-scope",
        &info.id_scope,
        "--registration-id",
        "fleet-7",
        "--group-key",
        KEY,
        "--dps-host",
        &info.host_name,
        "--dps-port",
        &https,
        "--mqtt-port",
        &mqtt,
        "--ca",
        &ca,
    ];
    let env = [("XDG_DATA_HOME", data.path().to_str().unwrap())];
    let mut s = Screen::start_with(&args, &env);
    s.wait_for(&["● connected", "fleet-7"]).await;
    s.quit().await;

    // Deleted from the hub, the device's cached credentials are refused: it registers
    // again (which creates it anew) and connects.
    let r = hub.call(Method::DELETE, "/devices/fleet-7", None).await;
    assert!(r.status.is_success(), "{}", r.body);
    let mut s = Screen::start_with(&args, &env);
    s.wait_for(&["● connected", "fleet-7"]).await;
    let r = hub.call(Method::GET, "/devices/fleet-7", None).await;
    assert_eq!(r.status, StatusCode::OK, "provisioned again: {}", r.body);
    s.quit().await;
}

/// With --ask-methods, a method call waits for the user: answered from the editor, the
/// caller gets the user's status and payload; left alone past --ask-timeout, the profile's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_tui_puts_method_calls_to_the_user() {
    const END: &str = "\x1b[F";
    let hub = TestHub::start().await;
    let mut s = d1_screen(&hub, &["--ask-methods", "--ask-timeout", "3"]).await;
    s.wait_for(&["● connected"]).await;
    s.keys("3").await;
    s.wait_for(&["Calls (0) · ask me"]).await;

    let invoke = || {
        hub.call(
            Method::POST,
            "/twins/d1/methods",
            Some(
                json!({"methodName": "ping", "payload": {"n": 7}, "responseTimeoutInSeconds": 20}),
            ),
        )
    };
    let answer = async {
        s.wait_for(&["Methods (1 waiting)", "ping · "]).await;
        s.keys("e").await;
        s.wait_for(&["Answer ping", "\"pong\": true"]).await;
        // 200 (the profile's status) becomes 418.
        s.keys(END).await;
        for k in [BACKSPACE, BACKSPACE, BACKSPACE, "4", "1", "8"] {
            s.keys(k).await;
        }
        s.keys(CTRL_S).await;
    };
    let (r, ()) = tokio::join!(invoke(), answer);
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body, json!({"status": 418, "payload": {"pong": true}}));
    s.wait_for(&["418 ping", "by you"]).await;

    // Nobody answers: after 3 s the profile does.
    let started = Instant::now();
    let r = invoke().await;
    assert_eq!(r.body, json!({"status": 200, "payload": {"pong": true}}));
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    s.wait_for(&["200 ping", "by the profile, time ran out"])
        .await;
    s.quit().await;
}

/// `u` uploads a file: the prompt takes its path, the hub stores the blob, the status says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_tui_uploads_a_file() {
    let hub = TestHub::start().await;
    let file = write_file(hub.dir.path(), "notes.txt", "uploaded from the terminal\n");
    let mut s = d1_screen(&hub, &[]).await;
    s.wait_for(&["● connected"]).await;
    s.keys("u").await;
    s.wait_for(&["Upload a file"]).await;
    for c in file.chars() {
        s.keys(&c.to_string()).await;
    }
    s.keys("\r").await;
    s.wait_for(&["uploaded", "d1/notes.txt"]).await;
    let blob = hub.hub.state.store.blob_get("fileuploads", "d1/notes.txt");
    assert_eq!(blob.unwrap().expect("stored").size, 27);
    s.quit().await;
}
