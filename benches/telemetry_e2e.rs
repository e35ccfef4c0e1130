//! End-to-end telemetry throughput and latency: N devices publish over MQTT to a local
//! hub, and hubtui's AMQP telemetry reader reads every partition of its Event
//! Hubs-compatible endpoint (through the hub's redirect).
//!
//! Phases, on one hub and one reader:
//! - delivered: the load generator of `mqtt_ingest` (rumqttc, QoS 1, 200-byte payloads,
//!   a window of 100 per device) floods; the rate is messages delivered by the reader.
//!   With MQTT_BROKER_PORT and MQTT_BROKER_CA (benches/mosquitto_compare.sh sets them) the
//!   same generator floods that broker too, and one rumqttc subscriber (QoS 1) on
//!   `devices/+/messages/events/#` counts: the broker's publish-to-subscriber rate.
//! - burst and paced: hubtui's DeviceClient publishes JSON carrying its send time, as
//!   fast as it can, then paced at half the delivered rate (or TELEMETRY_E2E_RATE msg/s
//!   per device): latency from publish call to delivery by the reader.
//! - with EVENTHUB_PYTHON (a python with azure-eventhub, e.g. tests/sdk/.venv/bin/python),
//!   the official Python reader (benches/eventhub_reader.py) reads one more flood beside
//!   hubtui's reader: the rate at which it keeps up.
//!
//! `cargo bench --bench telemetry_e2e`; TELEMETRY_E2E_DEVICES (default 10),
//! TELEMETRY_E2E_MESSAGES per device (default 1000); TELEMETRY_E2E_TRANSPORT=ws reads
//! over AMQP on WebSockets (the hub's HTTPS port) instead of AMQP over TLS. All on
//! loopback in one process (the Python reader in its own).

#[path = "common/mqtt_load.rs"]
mod mqtt_load;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mqtt_load::{HubAccess, Target, broker_from_env, connect_all, flood};
use rumqttc::{AsyncClient, Event, Packet, QoS};
use tokio::sync::Notify;

use hubtui::client::device::{DeviceClient, DeviceClientOptions, DeviceError, DeviceEvent, Trust};
use hubtui::client::events::{LinkState, TelemetryEvent};
use hubtui::client::service::{
    AmqpOptions, AmqpTransport, NewDeviceAuth, Proxy, ReadFrom, ServiceClient, StreamUpdate,
    TelemetryReaderOptions, TelemetrySource, read_telemetry,
};
use hubtui::hub::{self, HubOptions};
use hubtui::iothub::connection_string::{DeviceConnectionString, ServiceConnectionString};
use hubtui::iothub::property_bag::PropertyBag;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

struct Run {
    elapsed: Duration,
    /// Microseconds, sorted.
    latencies: Vec<u64>,
}

fn report(name: &str, devices: usize, per_device: usize, run: &Run) {
    let total = devices * per_device;
    let l = &run.latencies;
    println!(
        "telemetry_e2e {name}: {devices} devices x {per_device} messages = {total} in {:.2} s: {:.0} msg/s; latency p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        run.elapsed.as_secs_f64(),
        total as f64 / run.elapsed.as_secs_f64(),
        percentile(l, 0.50) as f64 / 1000.0,
        percentile(l, 0.99) as f64 / 1000.0,
        l.last().copied().unwrap_or(0) as f64 / 1000.0,
    );
}

/// Every device sends `per_device` messages (every `interval`, or as fast as it can);
/// waits until the reader has delivered them all.
async fn phase(
    clients: &[Arc<DeviceClient>],
    rx: &mut tokio::sync::mpsc::Receiver<StreamUpdate<TelemetryEvent>>,
    per_device: usize,
    interval: Option<Duration>,
) -> Run {
    let total = clients.len() * per_device;
    let started = Instant::now();
    for client in clients {
        let client = client.clone();
        tokio::spawn(async move {
            // Steady, as a device sends: a late tick does not bring a burst to catch up.
            let mut tick = interval.map(|i| {
                let mut t = tokio::time::interval(i);
                t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                t
            });
            for n in 0..per_device {
                if let Some(t) = &mut tick {
                    t.tick().await;
                }
                loop {
                    let body = format!("{{\"n\":{n},\"sent_us\":{}}}", now_micros());
                    match client.send_telemetry(body, PropertyBag::default()) {
                        Ok(()) => break,
                        Err(DeviceError::QueueFull) => {
                            tokio::time::sleep(Duration::from_millis(1)).await
                        }
                        Err(e) => panic!("{e}"),
                    }
                }
            }
        });
    }
    let mut latencies = Vec::with_capacity(total);
    let deadline = started + Duration::from_secs(300);
    while latencies.len() < total {
        let update = tokio::time::timeout_at(deadline.into(), rx.recv())
            .await
            .unwrap_or_else(|_| panic!("only {} of {total} arrived", latencies.len()))
            .expect("reader running");
        if let StreamUpdate::Item(e) = update {
            let v: serde_json::Value = serde_json::from_slice(&e.body).unwrap();
            let sent = v["sent_us"].as_u64().unwrap();
            latencies.push(now_micros().saturating_sub(sent));
        }
    }
    let elapsed = started.elapsed();
    latencies.sort_unstable();
    Run { elapsed, latencies }
}

/// Floods `per_device` messages from each of `devices` while `delivered` counts them at
/// the other end; messages per second from the first publish to the last delivery.
async fn delivered_rate<F: std::future::Future<Output = ()>>(
    devices: &[mqtt_load::Device],
    per_device: usize,
    delivered: impl FnOnce() -> F,
) -> f64 {
    let started = Instant::now();
    let (_, ()) = tokio::join!(flood(devices, per_device, 200), delivered());
    (devices.len() * per_device) as f64 / started.elapsed().as_secs_f64()
}

/// Waits until the reader has delivered one flood (every generator message).
async fn count_reader(rx: &mut tokio::sync::mpsc::Receiver<StreamUpdate<TelemetryEvent>>) {
    let total = env_usize("TELEMETRY_E2E_DEVICES", 10) * env_usize("TELEMETRY_E2E_MESSAGES", 1000);
    let mut n = 0;
    while n < total {
        match tokio::time::timeout(Duration::from_secs(60), rx.recv()).await {
            Ok(Some(StreamUpdate::Item(_))) => n += 1,
            Ok(Some(_)) => {}
            _ => panic!("the reader delivered {n} of {total}"),
        }
    }
}

/// One QoS 1 subscriber to every device's telemetry on a plain broker.
struct Subscriber {
    received: Arc<AtomicUsize>,
    notify: Arc<Notify>,
    _client: AsyncClient,
}

impl Subscriber {
    /// Waits until `more` messages arrived since the last wait; fails when none arrive
    /// for 60 s (the broker dropped some).
    async fn wait_for(&self, more: usize) {
        let target = self.received.load(Ordering::Relaxed) + more;
        let mut last = (self.received.load(Ordering::Relaxed), Instant::now());
        while self.received.load(Ordering::Relaxed) < target {
            let _ = tokio::time::timeout(Duration::from_millis(50), self.notify.notified()).await;
            let now = self.received.load(Ordering::Relaxed);
            if now != last.0 {
                last = (now, Instant::now());
            }
            assert!(
                last.1.elapsed() < Duration::from_secs(60),
                "the subscriber got {now} of {target} messages and no more for 60 s"
            );
        }
    }
}

async fn subscribe_all(broker: &Target) -> Subscriber {
    let opts = mqtt_load::options(broker, "e2e-subscriber").await;
    let (client, mut events) = AsyncClient::new(opts, 1000);
    client
        .subscribe("devices/+/messages/events/#", QoS::AtLeastOnce)
        .await
        .unwrap();
    let received = Arc::new(AtomicUsize::new(0));
    let notify = Arc::new(Notify::new());
    let (r, n) = (received.clone(), notify.clone());
    let (subscribed_tx, subscribed) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let mut subscribed_tx = Some(subscribed_tx);
        while let Ok(e) = events.poll().await {
            match e {
                Event::Incoming(Packet::Publish(_)) => {
                    r.fetch_add(1, Ordering::Relaxed);
                    n.notify_one();
                }
                Event::Incoming(Packet::SubAck(_)) => {
                    if let Some(tx) = subscribed_tx.take() {
                        let _ = tx.send(());
                    }
                }
                _ => {}
            }
        }
    });
    subscribed
        .await
        .expect("the broker acknowledged the subscription");
    Subscriber {
        received,
        notify,
        _client: client,
    }
}

/// Runs benches/eventhub_reader.py (the official azure-eventhub reader, from the latest
/// event of every partition) while the generator floods once more; its rate, from its
/// first event to its last. hubtui's reader drains the same flood meanwhile.
async fn python_reader_rate(
    python: &str,
    hub: &hub::RunningHub,
    generator: &[mqtt_load::Device],
    per_device: usize,
    rx: &mut tokio::sync::mpsc::Receiver<StreamUpdate<TelemetryEvent>>,
) -> f64 {
    use tokio::io::AsyncBufReadExt;
    let total = generator.len() * per_device;
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &hub.ca_pem).unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/eventhub_reader.py");
    let mut child = tokio::process::Command::new(python)
        .arg(script)
        .arg(
            hub.info
                .event_hub_compatible_connection_string
                .as_deref()
                .expect("the hub serves Event Hubs"),
        )
        .arg(&ca)
        .arg(total.to_string())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {python}: {e}"));
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let ready = lines.next_line().await.unwrap();
    assert_eq!(
        ready.as_deref(),
        Some("ready"),
        "the Python reader did not start"
    );
    // Its receivers start at the latest event once their links are attached, which
    // "ready" (sent when each partition is initialized) may precede a little.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (_, ()) = tokio::join!(flood(generator, per_device, 200), count_reader(rx));
    let result = tokio::time::timeout(Duration::from_secs(600), lines.next_line())
        .await
        .expect("the Python reader finished")
        .unwrap()
        .unwrap_or_default();
    // "read N events in S s"
    let secs: f64 = result
        .split_whitespace()
        .nth(4)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("unexpected line from the Python reader: {result}"));
    total as f64 / secs
}

#[tokio::main]
async fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` passes nothing useful.
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let devices = env_usize("TELEMETRY_E2E_DEVICES", 10);
    let per_device = env_usize("TELEMETRY_E2E_MESSAGES", 1000);
    let dir = tempfile::tempdir().unwrap();
    let hub = hub::start(HubOptions::ephemeral(dir.path().to_path_buf()))
        .await
        .expect("hub starts");
    let trust = Trust::CaPem(hub.ca_pem.clone());
    let cs = ServiceConnectionString::parse(&hub.info.service_connection_string).unwrap();
    let rest = ServiceClient::new(&cs, &trust, Some(hub.info.ports.https)).unwrap();

    let mut clients = Vec::new();
    for i in 0..devices {
        let id = format!("bench-{i:03}");
        let identity = rest.create_device(&id, &NewDeviceAuth::Sas).await.unwrap();
        let key = identity
            .authentication
            .symmetric_key
            .and_then(|k| k.primary_key)
            .unwrap();
        let dcs = DeviceConnectionString::parse(&format!(
            "HostName={};DeviceId={id};SharedAccessKey={key}",
            hub.info.host_name
        ))
        .unwrap();
        let opts = DeviceClientOptions {
            port: hub.info.ports.mqtt,
            trust: trust.clone(),
            connect_host: Some("localhost".into()),
            ..DeviceClientOptions::default()
        };
        let (client, mut events) = DeviceClient::connect(&dcs, opts).unwrap();
        loop {
            match events.recv().await.unwrap() {
                DeviceEvent::Connected => break,
                DeviceEvent::Disconnected { reason, .. } => panic!("{id}: {reason}"),
                _ => {}
            }
        }
        tokio::spawn(async move { while events.recv().await.is_some() {} });
        clients.push(client);
    }

    let transport = match std::env::var("TELEMETRY_E2E_TRANSPORT").as_deref() {
        Ok("ws") => AmqpTransport::WebSockets,
        _ => AmqpTransport::Tcp,
    };
    let (reader, mut rx) = read_telemetry(
        TelemetrySource::Hub(cs),
        TelemetryReaderOptions {
            from: ReadFrom::Now,
            amqp: AmqpOptions {
                trust: trust.clone(),
                transport,
                port: match transport {
                    AmqpTransport::Tcp => hub.info.ports.amqp,
                    AmqpTransport::WebSockets => Some(hub.info.ports.https),
                },
                proxy: Proxy::None,
                ..AmqpOptions::default()
            },
            ..TelemetryReaderOptions::default()
        },
    );
    loop {
        match rx.recv().await.unwrap() {
            StreamUpdate::State {
                state: LinkState::Connected,
                ..
            } => break,
            StreamUpdate::State {
                state: LinkState::Failed,
                detail,
            } => panic!("reader failed: {detail:?}"),
            _ => {}
        }
    }

    // Delivered: the ingest generator floods; the reader counts.
    let hub_target = Target {
        name: "hubtui hub",
        port: hub.info.ports.mqtt,
        ca_pem: hub.ca_pem.clone(),
        hub: Some(HubAccess {
            host_name: hub.info.host_name.clone(),
            rest: Arc::new(rest),
        }),
    };
    let generator = connect_all(&hub_target, "gen", devices).await;
    let delivered = delivered_rate(&generator, per_device, || count_reader(&mut rx)).await;
    println!(
        "telemetry_e2e delivered: {} messages through the hub to hubtui's AMQP reader: {delivered:.0} msg/s",
        devices * per_device
    );
    if let Some(broker) = broker_from_env() {
        let subscriber = subscribe_all(&broker).await;
        let publishers = connect_all(&broker, "gen", devices).await;
        let total = devices * per_device;
        let broker_rate =
            delivered_rate(&publishers, per_device, || subscriber.wait_for(total)).await;
        println!(
            "telemetry_e2e delivered: {total} messages through the broker to one subscriber: {broker_rate:.0} msg/s; hub / broker = {:.2}",
            delivered / broker_rate
        );
    }
    if let Ok(python) = std::env::var("EVENTHUB_PYTHON") {
        let rate = python_reader_rate(&python, &hub, &generator, per_device, &mut rx).await;
        println!(
            "telemetry_e2e delivered: the azure-eventhub Python reader kept up at {rate:.0} msg/s (hubtui's reader read the same flood)"
        );
    }

    let clients: Vec<Arc<DeviceClient>> = clients.into_iter().map(Arc::new).collect();
    // Burst: every device publishes as fast as its queue allows (throughput; the
    // latency then is mostly time spent queued behind the burst).
    let burst = phase(&clients, &mut rx, per_device, None).await;
    report("burst", devices, per_device, &burst);
    // Paced: each device publishes at a steady rate below saturation (latency): half of
    // what the hub delivered, unless TELEMETRY_E2E_RATE gives the rate per device.
    let half = (delivered / 2.0 / devices as f64) as usize;
    let rate = env_usize("TELEMETRY_E2E_RATE", half).max(1);
    let paced_n = (rate * 3).min(per_device.max(1));
    let paced = phase(
        &clients,
        &mut rx,
        paced_n,
        Some(Duration::from_secs_f64(1.0 / rate as f64)),
    )
    .await;
    report(
        &format!("paced {} msg/s", rate * devices),
        devices,
        paced_n,
        &paced,
    );
    reader.close().await;
    hub.shutdown().await;
}
