//! MQTT load for the hub's benchmarks: many rumqttc connections over TLS in one process,
//! to the local hub (SAS auth, started in-process on its own runtime) or to a plain
//! broker (no auth), publishing QoS 1 telemetry and counting PUBACKs.
#![allow(dead_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hubtui::client::device::Trust;
use hubtui::client::service::{NewDeviceAuth, ServiceClient};
use hubtui::hub::{self, HubOptions, RunningHub};
use hubtui::iothub::connection_string::ServiceConnectionString;
use hubtui::iothub::sas::generate_token;
use rumqttc::{
    AsyncClient, Event, EventLoop, MqttOptions, Packet, QoS, TlsConfiguration, Transport,
};
use tokio::sync::Notify;

/// Where the devices connect.
#[derive(Clone)]
pub struct Target {
    pub name: &'static str,
    pub port: u16,
    pub ca_pem: String,
    /// The hub's host name and the means to register devices; None for a plain broker.
    pub hub: Option<HubAccess>,
}

#[derive(Clone)]
pub struct HubAccess {
    pub host_name: String,
    pub rest: Arc<ServiceClient>,
}

/// The local hub on its own runtime (so the load generator does not share its workers).
pub struct BenchHub {
    pub runtime: tokio::runtime::Runtime,
    pub hub: RunningHub,
    _dir: tempfile::TempDir,
}

impl BenchHub {
    pub fn start() -> BenchHub {
        let dir = tempfile::tempdir().unwrap();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .thread_name("hub")
            .build()
            .unwrap();
        let mut opts = HubOptions::ephemeral(dir.path().to_path_buf());
        // HUB_FSYNC=1: the hub as `hubtui hub --fsync` runs it.
        opts.settings.fsync = std::env::var("HUB_FSYNC").is_ok_and(|v| v == "1");
        let hub = runtime.block_on(hub::start(opts)).expect("hub starts");
        BenchHub {
            runtime,
            hub,
            _dir: dir,
        }
    }

    pub fn target(&self) -> Target {
        let cs = ServiceConnectionString::parse(&self.hub.info.service_connection_string).unwrap();
        let trust = Trust::CaPem(self.hub.ca_pem.clone());
        let rest = ServiceClient::new(&cs, &trust, Some(self.hub.info.ports.https)).unwrap();
        Target {
            name: "hubtui hub",
            port: self.hub.info.ports.mqtt,
            ca_pem: self.hub.ca_pem.clone(),
            hub: Some(HubAccess {
                host_name: self.hub.info.host_name.clone(),
                rest: Arc::new(rest),
            }),
        }
    }
}

/// A plain MQTT broker from MQTT_BROKER_PORT and MQTT_BROKER_CA (a PEM file), on
/// 127.0.0.1; None when MQTT_BROKER_PORT is not set.
pub fn broker_from_env() -> Option<Target> {
    let port = std::env::var("MQTT_BROKER_PORT").ok()?;
    let port = port
        .parse()
        .unwrap_or_else(|_| panic!("MQTT_BROKER_PORT={port} is not a port number"));
    let ca = std::env::var("MQTT_BROKER_CA")
        .expect("MQTT_BROKER_CA must name the broker's CA certificate (PEM) with MQTT_BROKER_PORT");
    let ca_pem = std::fs::read_to_string(&ca)
        .unwrap_or_else(|e| panic!("cannot read MQTT_BROKER_CA {ca}: {e}"));
    Some(Target {
        name: "mqtt broker",
        port,
        ca_pem,
        hub: None,
    })
}

/// One connected device: its client, and the PUBACKs its event loop counted.
pub struct Device {
    pub id: String,
    pub client: AsyncClient,
    pub acked: Arc<AtomicUsize>,
    pub notify: Arc<Notify>,
}

fn tls(ca_pem: &str) -> Arc<rustls::ClientConfig> {
    hub::install_crypto_provider();
    let mut roots = rustls::RootCertStore::empty();
    for cert in pem_certs(ca_pem) {
        roots.add(cert).unwrap();
    }
    Arc::new(
        rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

fn pem_certs(pem: &str) -> Vec<rustls_pki_types::CertificateDer<'static>> {
    use rustls_pki_types::pem::PemObject;
    rustls_pki_types::CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<_, _>>()
        .expect("the CA file holds PEM certificates")
}

/// MQTT options for device `id` at `target`: TLS, and on the hub its SAS credentials.
pub async fn options(target: &Target, id: &str) -> MqttOptions {
    let mut o = MqttOptions::new(id, "localhost", target.port);
    if let Some(h) = &target.hub {
        let identity = h.rest.create_device(id, &NewDeviceAuth::Sas).await.unwrap();
        let key = identity
            .authentication
            .symmetric_key
            .and_then(|k| k.primary_key)
            .unwrap();
        let expiry = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            + 3600;
        let token =
            generate_token(&format!("{}/devices/{id}", h.host_name), &key, None, expiry).unwrap();
        o.set_credentials(
            format!("{}/{id}/?api-version=2021-04-12", h.host_name),
            token,
        );
    }
    o.set_keep_alive(Duration::from_secs(60));
    o.set_clean_session(true);
    o.set_inflight(100);
    o.set_max_packet_size(512 * 1024, 512 * 1024);
    o.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(tls(
        &target.ca_pem,
    ))));
    o
}

/// Connects `id` (registering it on the hub); see `connect_with`.
pub async fn connect(target: &Target, id: &str) -> Result<Device, String> {
    connect_with(options(target, id).await).await
}

/// Connects with `opts`; Ok(device) once CONNACK arrived, Err(reason) otherwise. Its
/// event loop keeps running on a task, counting PUBACKs.
pub async fn connect_with(opts: MqttOptions) -> Result<Device, String> {
    let id = opts.client_id();
    let (client, mut events) = AsyncClient::new(opts, 1000);
    wait_connack(&mut events).await?;
    let acked = Arc::new(AtomicUsize::new(0));
    let notify = Arc::new(Notify::new());
    let (a, n) = (acked.clone(), notify.clone());
    tokio::spawn(async move {
        while let Ok(e) = events.poll().await {
            if let Event::Incoming(Packet::PubAck(_)) = e {
                a.fetch_add(1, Ordering::Relaxed);
                n.notify_one();
            }
        }
    });
    Ok(Device {
        id,
        client,
        acked,
        notify,
    })
}

async fn wait_connack(events: &mut EventLoop) -> Result<(), String> {
    loop {
        match events.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(_))) => return Ok(()),
            Ok(_) => {}
            Err(e) => return Err(e.to_string()),
        }
    }
}

pub async fn connect_all(target: &Target, prefix: &str, n: usize) -> Vec<Device> {
    let mut devices = Vec::with_capacity(n);
    for i in 0..n {
        let id = format!("{prefix}-{i:05}");
        devices.push(
            connect(target, &id)
                .await
                .unwrap_or_else(|e| panic!("{id}: {e}")),
        );
    }
    devices
}

/// The telemetry topic of a device (the hub's; a plain broker takes any topic).
pub fn topic(id: &str) -> String {
    format!("devices/{id}/messages/events/")
}

/// Every device publishes QoS 1 messages of `payload` bytes as fast as its in-flight
/// window allows until `until`; returns how many were acknowledged by then.
pub async fn flood_until(devices: &[Device], payload: usize, until: Instant) -> usize {
    let before: usize = devices
        .iter()
        .map(|d| d.acked.load(Ordering::Relaxed))
        .sum();
    let mut tasks = Vec::new();
    for d in devices {
        let client = d.client.clone();
        let topic = topic(&d.id);
        let body = vec![b'x'; payload];
        tasks.push(tokio::spawn(async move {
            while Instant::now() < until {
                let publish = client.publish(&topic, QoS::AtLeastOnce, false, body.clone());
                if tokio::time::timeout_at(until.into(), publish)
                    .await
                    .is_err()
                {
                    break;
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let after: usize = devices
        .iter()
        .map(|d| d.acked.load(Ordering::Relaxed))
        .sum();
    after - before
}

/// Every device publishes `per_device` QoS 1 messages of `payload` bytes as fast as its
/// in-flight window allows; returns the time until the last PUBACK arrived.
pub async fn flood(devices: &[Device], per_device: usize, payload: usize) -> Duration {
    let started = Instant::now();
    let mut tasks = Vec::new();
    for d in devices {
        let client = d.client.clone();
        let acked = d.acked.clone();
        let notify = d.notify.clone();
        let topic = topic(&d.id);
        let body = vec![b'x'; payload];
        let target = acked.load(Ordering::Relaxed) + per_device;
        tasks.push(tokio::spawn(async move {
            for _ in 0..per_device {
                client
                    .publish(&topic, QoS::AtLeastOnce, false, body.clone())
                    .await
                    .unwrap();
            }
            while acked.load(Ordering::Relaxed) < target {
                let _ = tokio::time::timeout(Duration::from_millis(50), notify.notified()).await;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    started.elapsed()
}
