//! End-to-end telemetry throughput and latency: N devices publish over MQTT (hubtui's
//! DeviceClient) to a local hub, and hubtui's AMQP telemetry reader reads every
//! partition of its Event Hubs-compatible endpoint (through the hub's redirect).
//!
//! `cargo bench --bench telemetry_e2e`; sizes from TELEMETRY_E2E_DEVICES (default 10)
//! and TELEMETRY_E2E_MESSAGES (per device, default 1000); TELEMETRY_E2E_TRANSPORT=ws
//! reads over AMQP on WebSockets (the hub's HTTPS port) instead of AMQP over TLS.
//! Latency is publish call to delivery by the reader, all on loopback in one process.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

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
            let mut tick = interval.map(tokio::time::interval);
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

    let clients: Vec<Arc<DeviceClient>> = clients.into_iter().map(Arc::new).collect();
    // Burst: every device publishes as fast as its queue allows (throughput; the
    // latency then is mostly time spent queued behind the burst).
    let burst = phase(&clients, &mut rx, per_device, None).await;
    report("burst", devices, per_device, &burst);
    // Paced: each device publishes at a steady rate below saturation (latency).
    let rate = env_usize("TELEMETRY_E2E_RATE", 100).max(1);
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
