//! Shared harness for tests that need a hub: a real local hub on free loopback
//! ports in a temp dir, a REST client that trusts its CA, and MQTT options for
//! devices. Each test binary uses what it needs.
#![allow(dead_code)]

pub mod amqp;
pub mod amqp_raw;
pub mod certs;
pub mod device_process;
pub mod mqtt_device;
pub mod proxy;
pub mod wait;

use std::sync::Arc;
use std::time::Duration;

use hubtui::hub::{self, HubOptions, RunningHub};
use hubtui::iothub::sas::generate_token;
use reqwest::{Method, StatusCode, header::HeaderMap};
use rumqttc::{MqttOptions, TlsConfiguration, Transport};
use serde_json::{Value, json};

pub const API: &str = "api-version=2021-04-12";

pub struct TestHub {
    pub dir: tempfile::TempDir,
    pub hub: RunningHub,
    pub http: reqwest::Client,
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

impl TestHub {
    /// The trust a client of this hub needs: its CA.
    pub fn trust(&self) -> hubtui::client::tls::Trust {
        hubtui::client::tls::Trust::CaPem(self.hub.ca_pem.clone())
    }

    /// A service REST client with the owner policy, as the explorer's backend uses one.
    pub fn service_client(&self) -> hubtui::client::service::ServiceClient {
        let cs = self
            .hub
            .state
            .service_connection_string("iothubowner")
            .unwrap();
        let cs = hubtui::iothub::connection_string::ServiceConnectionString::parse(&cs).unwrap();
        hubtui::client::service::ServiceClient::new(
            &cs,
            &self.trust(),
            Some(self.hub.info.ports.https),
        )
        .unwrap()
    }

    /// The hub's blob store as the explorer reaches it (hub.json's storage account).
    pub fn blob_account(&self) -> hubtui::client::storage::BlobAccount {
        let info = self
            .hub
            .info
            .storage
            .as_ref()
            .expect("hub.json has storage");
        let cs = hubtui::iothub::storage::connection_string::StorageConnectionString::parse(
            &info.connection_string,
        )
        .unwrap();
        hubtui::client::storage::BlobAccount::new(cs, &self.trust()).unwrap()
    }

    /// The connection string of device `id` with its `key`.
    pub fn device_cs(
        &self,
        id: &str,
        key: &str,
    ) -> hubtui::iothub::connection_string::DeviceConnectionString {
        hubtui::iothub::connection_string::DeviceConnectionString::parse(&format!(
            "HostName={};DeviceId={id};SharedAccessKey={key}",
            self.host()
        ))
        .unwrap()
    }

    /// How a device client reaches this hub: its MQTT and HTTPS ports and its CA.
    pub fn device_options(&self) -> hubtui::client::device::DeviceClientOptions {
        hubtui::client::device::DeviceClientOptions {
            port: self.hub.info.ports.mqtt,
            https_port: self.hub.info.ports.https,
            trust: self.trust(),
            connect_host: Some("localhost".into()),
            ..Default::default()
        }
    }

    /// A simulated thermostat connected as `id` with `key`.
    pub fn simulate(&self, id: &str, key: &str, seed: u64) -> hubtui::client::simulator::Simulator {
        use hubtui::client::simulator::{DeviceKind, Simulator, SimulatorOptions};
        let options = SimulatorOptions {
            kind: DeviceKind::Thermostat,
            seed,
            client: self.device_options(),
        };
        Simulator::start(&self.device_cs(id, key), options).unwrap()
    }

    pub async fn start() -> TestHub {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(tweak: impl FnOnce(&mut HubOptions)) -> TestHub {
        Self::start_in(tempfile::tempdir().unwrap(), tweak).await
    }

    /// A hub on `dir`, which may hold state made before (by the `hubtui hub` subcommands).
    pub async fn start_in(dir: tempfile::TempDir, tweak: impl FnOnce(&mut HubOptions)) -> TestHub {
        let mut opts = HubOptions::ephemeral(dir.path().to_path_buf());
        tweak(&mut opts);
        let hub = hub::start(opts).await.expect("hub starts");
        let http = https_client(&hub.ca_pem);
        TestHub { dir, hub, http }
    }

    pub fn host(&self) -> &str {
        &self.hub.info.host_name
    }

    pub fn base(&self) -> String {
        format!("https://localhost:{}", self.hub.info.ports.https)
    }

    /// A service token for one of the hub's policies.
    pub fn token(&self, policy: &str) -> String {
        let p = self.hub.state.policy(policy).expect("policy exists");
        generate_token(self.host(), &p.primary_key, Some(policy), now() + 3600).unwrap()
    }

    pub async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Reply {
        self.call_as("iothubowner", method, path, body, &[]).await
    }

    pub async fn call_as(
        &self,
        policy: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let sep = if path.contains('?') { '&' } else { '?' };
        let url = format!("{}{path}{sep}{API}", self.base());
        let mut req = self
            .http
            .request(method, url)
            .header("Authorization", self.token(policy));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("request sent");
        let status = resp.status();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap();
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Reply {
            status,
            headers,
            body,
        }
    }

    /// Registers a SAS device and returns its primary key.
    pub async fn create_device(&self, id: &str) -> String {
        self.create_identity(&format!("/devices/{id}"), json!({"deviceId": id}))
            .await
    }

    /// Creates a SAS module of an existing device; returns its primary key.
    pub async fn create_module(&self, device: &str, module: &str) -> String {
        self.create_identity(
            &format!("/devices/{device}/modules/{module}"),
            json!({"deviceId": device, "moduleId": module}),
        )
        .await
    }

    /// The telemetry the hub stored for `device` (and its modules), oldest first.
    pub fn stored_telemetry(&self, device: &str) -> Vec<hubtui::hub::store::TelemetryRecord> {
        let state = &self.hub.state;
        let partition = hubtui::hub::telemetry::partition_of(device, state.settings.partitions);
        let mut recs = state.store.telemetry_read(partition, 0, 1000).unwrap();
        recs.retain(|r| r.device_id == device);
        recs
    }

    async fn create_identity(&self, path: &str, body: Value) -> String {
        let r = self.call(Method::PUT, path, Some(body)).await;
        assert_eq!(r.status, StatusCode::OK, "create {path}: {}", r.body);
        r.body["authentication"]["symmetricKey"]["primaryKey"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// MQTT options for a device as the Azure SDKs connect: TLS, client id = device id,
    /// username with api-version, SAS token as password, clean session off.
    pub fn mqtt_options(&self, device_id: &str, key: &str) -> MqttOptions {
        let token = self.device_token(&format!("devices/{device_id}"), key, now() + 3600);
        self.mqtt_options_with(device_id, device_id, &token)
    }

    /// A device or module token for `resource` (`devices/ID[/modules/M]`) signed with `key`.
    pub fn device_token(&self, resource: &str, key: &str, expiry: u64) -> String {
        generate_token(&format!("{}/{resource}", self.host()), key, None, expiry).unwrap()
    }

    pub fn mqtt_options_with(
        &self,
        client_id: &str,
        device_id: &str,
        password: &str,
    ) -> MqttOptions {
        let mut o = MqttOptions::new(client_id, "localhost", self.hub.info.ports.mqtt);
        o.set_credentials(
            format!("{}/{device_id}/?api-version=2021-04-12", self.host()),
            password,
        );
        o.set_keep_alive(Duration::from_secs(60));
        o.set_clean_session(false);
        o.set_max_packet_size(512 * 1024, 512 * 1024);
        o.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(
            Arc::new(client_tls(&self.hub.ca_pem)),
        )));
        o
    }
}

/// Waits until the hub holds no C2D feedback: every batch was delivered and settled.
pub async fn feedback_settled(state: &hub::HubState) {
    wait::eventually(
        Duration::from_secs(10),
        "the feedback to be settled",
        || async {
            let left = state
                .store
                .queue_pending(
                    hub::store::ServiceQueue::Feedback,
                    usize::MAX,
                    &Default::default(),
                )
                .unwrap();
            left.is_empty().then_some(())
        },
    )
    .await
}

/// A TLS connection to the hub's `port` on loopback, trusting its CA.
pub async fn tls_to(
    port: u16,
    ca_pem: &str,
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    tls_connect(port, ca_pem, &[]).await.unwrap()
}

pub fn client_tls(ca_pem: &str) -> rustls::ClientConfig {
    hub::install_crypto_provider();
    let mut roots = rustls::RootCertStore::empty();
    let mut reader = std::io::BufReader::new(ca_pem.as_bytes());
    for cert in rustls_pemfile_certs(&mut reader) {
        roots.add(cert).unwrap();
    }
    rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth()
}

fn rustls_pemfile_certs(
    reader: &mut dyn std::io::BufRead,
) -> Vec<rustls_pki_types::CertificateDer<'static>> {
    use rustls_pki_types::pem::PemObject;
    let mut text = String::new();
    reader.read_to_string(&mut text).unwrap();
    rustls_pki_types::CertificateDer::pem_slice_iter(text.as_bytes())
        .map(|c| c.unwrap())
        .collect()
}

pub fn https_client(ca_pem: &str) -> reqwest::Client {
    hub::install_crypto_provider();
    reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(ca_pem.as_bytes()).unwrap()])
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

/// A TLS connection to one of the hub's ports, offering `alpn` (empty: none).
pub async fn tls_connect(
    port: u16,
    ca_pem: &str,
    alpn: &[&[u8]],
) -> std::io::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    let mut config = client_tls(ca_pem);
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
}
