//! `hubtui` run as a device process: its JSON event lines read as they come.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::mpsc;

pub const BIN: &str = env!("CARGO_BIN_EXE_hubtui");
pub const WAIT: Duration = Duration::from_secs(20);

/// The running binary; killed when dropped. Its stdout lines arrive on `lines`.
pub struct DeviceProcess {
    pub child: Child,
    lines: mpsc::UnboundedReceiver<String>,
}

impl DeviceProcess {
    pub fn start(args: &[&str]) -> DeviceProcess {
        DeviceProcess::start_with(args, &[])
    }

    /// Started with extra environment variables.
    pub fn start_with(args: &[&str], env: &[(&str, &str)]) -> DeviceProcess {
        let mut child = Command::new(BIN)
            .args(args)
            .envs(env.iter().copied())
            .env_remove("IOTHUB_CONNECTION_STRING")
            .env_remove("IOTHUB_DEVICE_CONNECTION_STRING")
            .env("HUBTUI_LOG_LEVEL", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::unbounded_channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        DeviceProcess { child, lines }
    }

    /// The next printed event matching `wanted`, parsed; every line must be one JSON object.
    pub async fn next_event(&mut self, what: &str, wanted: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = tokio::time::timeout(left, self.lines.recv())
                .await
                .ok()
                .flatten()
                .unwrap_or_else(|| panic!("no {what} line within {WAIT:?}"));
            let v: Value = serde_json::from_str(&line)
                .unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
            assert!(v["event"].is_string() && v["device"].is_string(), "{line}");
            if wanted(&v) {
                return v;
            }
        }
    }
}

impl Drop for DeviceProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `hubtui device --headless` as `device_id` (with its `key`) of `hub`: its CA, MQTT and
/// HTTPS ports, and `extra` arguments; returned once it has connected.
pub async fn headless_device(
    hub: &super::TestHub,
    device_id: &str,
    key: &str,
    extra: &[&str],
) -> DeviceProcess {
    let ca = hub.dir.path().join("device-ca.pem");
    std::fs::write(&ca, &hub.hub.ca_pem).unwrap();
    let cs = format!(
        "HostName={};DeviceId={device_id};SharedAccessKey={key}",
        hub.host()
    );
    let (mqtt, https) = (
        hub.hub.info.ports.mqtt.to_string(),
        hub.hub.info.ports.https.to_string(),
    );
    let mut args = vec![
        "device",
        "--headless",
        "--connection-string",
        &cs,
        "--ca",
        ca.to_str().unwrap(),
        "--mqtt-port",
        &mqtt,
        "--https-port",
        &https,
    ];
    args.extend_from_slice(extra);
    let mut device = DeviceProcess::start(&args);
    device
        .next_event("connected", |v| v["event"] == "connected")
        .await;
    device
}
