//! X.509 device authentication against the real local hub: devices and modules whose
//! identity is `selfSigned` (thumbprints) or `certificateAuthority` (a chain up to a CA
//! registered on the hub) connect over MQTT/TLS with a client certificate and no password;
//! everything else is refused with CONNACK 5, and SAS devices connect as before.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::TestHub;
use common::certs::*;
use hubtui::client::device::{
    ClientCertificate, DeviceClient, DeviceClientOptions, DeviceEvent, Trust,
};
use hubtui::hub::telemetry::{StoredProperties, partition_of};
use hubtui::hub::x509::authorities;
use hubtui::iothub::connection_string::DeviceConnectionString;
use hubtui::iothub::property_bag::PropertyBag;
use rcgen::KeyPair;
use reqwest::{Method, StatusCode};
use rumqttc::{
    AsyncClient, ConnectReturnCode, ConnectionError, Event, MqttOptions, Packet, TlsConfiguration,
    Transport,
};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(10);

/// MQTT options as the SDKs connect with X.509: the username, no password, the certificate
/// in the TLS handshake.
fn x509_options(hub: &TestHub, client_id: &str, issued: Option<&Issued>) -> MqttOptions {
    let mut o = MqttOptions::new(client_id, "localhost", hub.hub.info.ports.mqtt);
    o.set_credentials(
        format!("{}/{client_id}/?api-version=2021-04-12", hub.host()),
        "",
    );
    o.set_keep_alive(Duration::from_secs(60));
    o.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(
        Arc::new(client_tls_with(&hub.hub.ca_pem, issued)),
    )));
    o
}

async fn connack(opts: MqttOptions) -> ConnectReturnCode {
    let (_client, mut eventloop) = AsyncClient::new(opts, 10);
    let polled = tokio::time::timeout(WAIT, eventloop.poll())
        .await
        .expect("CONNACK in time");
    match polled {
        Ok(Event::Incoming(Packet::ConnAck(a))) => a.code,
        Err(ConnectionError::ConnectionRefused(code)) => code,
        other => panic!("unexpected {other:?}"),
    }
}

async fn create(hub: &TestHub, path: &str, body: Value) {
    let r = hub.call(Method::PUT, path, Some(body)).await;
    assert_eq!(r.status, StatusCode::OK, "create {path}: {}", r.body);
}

async fn create_self_signed(
    hub: &TestHub,
    id: &str,
    primary: Option<&str>,
    secondary: Option<&str>,
) {
    create(
        hub,
        &format!("/devices/{id}"),
        json!({"deviceId": id, "authentication": {"type": "selfSigned",
            "x509Thumbprint": {"primaryThumbprint": primary, "secondaryThumbprint": secondary}}}),
    )
    .await;
}

async fn create_ca_device(hub: &TestHub, id: &str) {
    create(
        hub,
        &format!("/devices/{id}"),
        json!({"deviceId": id, "authentication": {"type": "certificateAuthority"}}),
    )
    .await;
}

fn register_ca(hub: &TestHub, name: &str, ca: &Ca) {
    let now_ms = common::now() as i64 * 1000;
    authorities::add(&hub.hub.state.store, name, ca.issued.pem.as_bytes(), now_ms).unwrap();
}

#[tokio::test]
async fn self_signed_certificates_connect_by_sha1_or_sha256_thumbprint() {
    let hub = TestHub::start().await;
    let cert = self_signed("any-subject");
    // Azure compares thumbprints without regard to case, by SHA-1 or SHA-256.
    create_self_signed(&hub, "ss-sha1", Some(&cert.sha1().to_lowercase()), None).await;
    create_self_signed(&hub, "ss-sha256", Some("00"), Some(&cert.sha256())).await;
    create_self_signed(&hub, "ss-other", Some(&self_signed("x").sha1()), None).await;

    assert_eq!(
        connack(x509_options(&hub, "ss-sha1", Some(&cert))).await,
        ConnectReturnCode::Success
    );
    assert_eq!(
        connack(x509_options(&hub, "ss-sha256", Some(&cert))).await,
        ConnectReturnCode::Success
    );
    assert_eq!(
        connack(x509_options(&hub, "ss-other", Some(&cert))).await,
        ConnectReturnCode::NotAuthorized,
        "a thumbprint of another certificate"
    );
    assert_eq!(
        connack(x509_options(&hub, "ss-sha1", None)).await,
        ConnectReturnCode::NotAuthorized,
        "no certificate and no password"
    );
}

#[tokio::test]
async fn self_signed_refusals_expired_disabled_and_sas_identities() {
    let hub = TestHub::start().await;
    let key = KeyPair::generate().unwrap();
    let old = leaf_params_between("old", 2020, 2021)
        .self_signed(&key)
        .unwrap();
    let expired = Issued {
        pem: old.pem(),
        chain: vec![old.der().clone()],
        key,
    };
    create_self_signed(&hub, "ss-expired", Some(&expired.sha1()), None).await;
    assert_eq!(
        connack(x509_options(&hub, "ss-expired", Some(&expired))).await,
        ConnectReturnCode::NotAuthorized
    );

    // The same certificate connects while its device is enabled, not once it is disabled.
    let cert = self_signed("d");
    let identity = |status: &str| {
        json!({"deviceId": "ss-disabled", "status": status, "authentication": {"type": "selfSigned",
            "x509Thumbprint": {"primaryThumbprint": cert.sha1(), "secondaryThumbprint": null}}})
    };
    create(&hub, "/devices/ss-disabled", identity("enabled")).await;
    assert_eq!(
        connack(x509_options(&hub, "ss-disabled", Some(&cert))).await,
        ConnectReturnCode::Success
    );
    let r = hub
        .call_as(
            "iothubowner",
            Method::PUT,
            "/devices/ss-disabled",
            Some(identity("disabled")),
            &[("If-Match", "*")],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        connack(x509_options(&hub, "ss-disabled", Some(&cert))).await,
        ConnectReturnCode::NotAuthorized
    );

    // A SAS identity does not become reachable by certificate, and still connects by token,
    // with or without a certificate in the handshake.
    let sas_key = hub.create_device("sas-1").await;
    assert_eq!(
        connack(x509_options(&hub, "sas-1", Some(&cert))).await,
        ConnectReturnCode::NotAuthorized
    );
    assert_eq!(
        connack(hub.mqtt_options("sas-1", &sas_key)).await,
        ConnectReturnCode::Success
    );
    let mut with_cert = x509_options(&hub, "sas-1", Some(&cert));
    let token = hub.device_token("devices/sas-1", &sas_key, common::now() + 3600);
    with_cert.set_credentials(
        format!("{}/sas-1/?api-version=2021-04-12", hub.host()),
        token,
    );
    assert_eq!(connack(with_cert).await, ConnectReturnCode::Success);
}

#[tokio::test]
async fn ca_signed_certificates_connect_once_their_ca_is_registered() {
    let hub = TestHub::start().await;
    let root = root_ca("Test Root CA");
    create_ca_device(&hub, "ca-dev").await;
    let cert = root.issue(leaf_params_between("ca-dev", 2024, 2049));

    assert_eq!(
        connack(x509_options(&hub, "ca-dev", Some(&cert))).await,
        ConnectReturnCode::NotAuthorized,
        "no CA registered yet"
    );
    register_ca(&hub, "root", &root);
    assert_eq!(
        connack(x509_options(&hub, "ca-dev", Some(&cert))).await,
        ConnectReturnCode::Success
    );

    // The CN must be the device id.
    let other_cn = root.issue(leaf_params_between("someone-else", 2024, 2049));
    assert_eq!(
        connack(x509_options(&hub, "ca-dev", Some(&other_cn))).await,
        ConnectReturnCode::NotAuthorized
    );
    // An expired certificate from the registered CA.
    let expired = root.issue(leaf_params_between("ca-dev", 2020, 2021));
    assert_eq!(
        connack(x509_options(&hub, "ca-dev", Some(&expired))).await,
        ConnectReturnCode::NotAuthorized
    );
    // A certificate from a CA that is not registered, with the right CN.
    let stranger = root_ca("Other CA").issue(leaf_params_between("ca-dev", 2024, 2049));
    assert_eq!(
        connack(x509_options(&hub, "ca-dev", Some(&stranger))).await,
        ConnectReturnCode::NotAuthorized
    );
    // Removing the CA refuses its devices again.
    assert!(authorities::remove(&hub.hub.state.store, "root").unwrap());
    assert_eq!(
        connack(x509_options(&hub, "ca-dev", Some(&cert))).await,
        ConnectReturnCode::NotAuthorized
    );
}

#[tokio::test]
async fn ca_chains_through_an_intermediate_and_modules_carry_device_slash_module() {
    let hub = TestHub::start().await;
    let root = root_ca("Test Root CA");
    let intermediate = root.intermediate("Test Intermediate CA");
    register_ca(&hub, "root", &root);
    create_ca_device(&hub, "chain-dev").await;

    // The device presents its certificate and the intermediate; the hub holds the root.
    let cert = intermediate.issue(leaf_params_between("chain-dev", 2024, 2049));
    assert_eq!(cert.chain.len(), 2);
    assert_eq!(
        connack(x509_options(&hub, "chain-dev", Some(&cert))).await,
        ConnectReturnCode::Success
    );
    // Without the intermediate the chain cannot be built.
    let leaf_only = Issued {
        pem: cert.pem.clone(),
        chain: vec![cert.chain[0].clone()],
        key: KeyPair::from_pem(&cert.key.serialize_pem()).unwrap(),
    };
    assert_eq!(
        connack(x509_options(&hub, "chain-dev", Some(&leaf_only))).await,
        ConnectReturnCode::NotAuthorized
    );

    create(
        &hub,
        "/devices/chain-dev/modules/m1",
        json!({"deviceId": "chain-dev", "moduleId": "m1", "authentication": {"type": "certificateAuthority"}}),
    )
    .await;
    let module_cert = intermediate.issue(leaf_params_between("chain-dev/m1", 2024, 2049));
    assert_eq!(
        connack(x509_options(&hub, "chain-dev/m1", Some(&module_cert))).await,
        ConnectReturnCode::Success
    );
    let module_cn_only = intermediate.issue(leaf_params_between("m1", 2024, 2049));
    assert_eq!(
        connack(x509_options(&hub, "chain-dev/m1", Some(&module_cn_only))).await,
        ConnectReturnCode::NotAuthorized
    );
}

fn write(dir: &std::path::Path, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

async fn next_event(rx: &mut tokio::sync::mpsc::UnboundedReceiver<DeviceEvent>) -> DeviceEvent {
    tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("a device event in time")
        .expect("the client is running")
}

#[tokio::test]
async fn device_client_connects_with_a_certificate_sends_telemetry_and_reads_its_twin() {
    let hub = TestHub::start().await;
    let root = root_ca("Client Test CA");
    register_ca(&hub, "root", &root);
    create_ca_device(&hub, "x509-client").await;
    let cert = root.issue(leaf_params_between("x509-client", 2024, 2049));
    let files = tempfile::tempdir().unwrap();
    let cert_path = write(files.path(), "dev.pem", &cert.pem);
    let key_path = write(files.path(), "dev-key.pem", &cert.key.serialize_pem());
    let identity = ClientCertificate::from_pem_files(&cert_path, &key_path, None).unwrap();
    assert_eq!(identity.common_name().as_deref(), Some("x509-client"));

    let cs = DeviceConnectionString::parse(&format!(
        "HostName={};DeviceId=x509-client;x509=true",
        hub.host()
    ))
    .unwrap();
    let opts = DeviceClientOptions {
        port: hub.hub.info.ports.mqtt,
        trust: Trust::CaPem(hub.hub.ca_pem.clone()),
        connect_host: Some("localhost".into()),
        request_timeout: Duration::from_secs(5),
        client_certificate: Some(identity),
        ..DeviceClientOptions::default()
    };
    let (client, mut events) = DeviceClient::connect(&cs, opts).unwrap();
    assert_eq!(next_event(&mut events).await, DeviceEvent::Connected);

    let mut bag = PropertyBag::default();
    bag.set("kind", Some("x509".into()));
    client.send_telemetry(b"{\"t\":1}".to_vec(), bag).unwrap();
    let twin = client.get_twin().await.unwrap();
    assert!(twin["desired"]["$version"].is_u64(), "{twin}");

    let partition = partition_of("x509-client", hub.hub.state.settings.partitions);
    let stored = common::wait::eventually(WAIT, "the telemetry to be stored", || async {
        let recs = hub
            .hub
            .state
            .store
            .telemetry_read(partition, 0, 10)
            .unwrap();
        recs.into_iter().find(|r| r.device_id == "x509-client")
    })
    .await;
    assert_eq!(stored.body, b"{\"t\":1}");
    let props: StoredProperties = serde_json::from_str(&stored.properties).unwrap();
    let auth: Value = serde_json::from_str(&props.auth_method).unwrap();
    assert_eq!(auth["type"], "x509Certificate");
    assert_eq!(auth["scope"], "device");
    client.close().await;
}

/// CONNECT over MQTT over WebSockets on the HTTPS port, the certificate (if any) in that
/// connection's TLS handshake; the CONNACK code.
async fn connack_over_websockets(
    hub: &TestHub,
    client_id: &str,
    issued: Option<&Issued>,
) -> ConnectReturnCode {
    use bytes::BytesMut;
    use rumqttc::mqttbytes::v4::{Connect, Packet as V4Packet};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;

    let port = hub.hub.info.ports.https;
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let connector =
        tokio_rustls::TlsConnector::from(Arc::new(client_tls_with(&hub.hub.ca_pem, issued)));
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    let tls = connector.connect(name, tcp).await.unwrap();
    let mut req = format!("wss://localhost:{port}/$iothub/websocket")
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("Sec-WebSocket-Protocol", "mqtt".parse().unwrap());
    let (ws, _) = tokio_tungstenite::client_async(req, tls).await.unwrap();
    let mut io = hubtui::ws_io::WsIo::new(ws);

    let mut connect = Connect::new(client_id);
    connect.keep_alive = 60;
    connect.set_login(
        format!("{}/{client_id}/?api-version=2021-04-12", hub.host()),
        "",
    );
    let mut buf = BytesMut::new();
    V4Packet::Connect(connect)
        .write(&mut buf, usize::MAX)
        .unwrap();
    io.write_all(&buf).await.unwrap();
    io.flush().await.unwrap();
    let mut buf = BytesMut::new();
    loop {
        match V4Packet::read(&mut buf, 1 << 16) {
            Ok(V4Packet::ConnAck(a)) => return a.code,
            Ok(other) => panic!("expected CONNACK, got {other:?}"),
            Err(rumqttc::mqttbytes::Error::InsufficientBytes(_)) => {}
            Err(e) => panic!("bad packet from the hub: {e}"),
        }
        let n = tokio::time::timeout(WAIT, io.read_buf(&mut buf))
            .await
            .expect("the hub answers in time")
            .unwrap();
        assert!(n > 0, "the hub closed the connection before CONNACK");
    }
}

#[tokio::test]
async fn x509_devices_connect_over_mqtt_over_websockets_too() {
    let hub = TestHub::start().await;
    let cert = self_signed("ws-dev");
    create_self_signed(&hub, "ws-ss", Some(&cert.sha256()), None).await;
    assert_eq!(
        connack_over_websockets(&hub, "ws-ss", Some(&cert)).await,
        ConnectReturnCode::Success
    );
    assert_eq!(
        connack_over_websockets(&hub, "ws-ss", Some(&self_signed("other"))).await,
        ConnectReturnCode::NotAuthorized
    );
    assert_eq!(
        connack_over_websockets(&hub, "ws-ss", None).await,
        ConnectReturnCode::NotAuthorized
    );

    let root = root_ca("WS Root CA");
    register_ca(&hub, "root", &root);
    create_ca_device(&hub, "ws-ca").await;
    let ca_signed = root.issue(leaf_params_between("ws-ca", 2024, 2049));
    assert_eq!(
        connack_over_websockets(&hub, "ws-ca", Some(&ca_signed)).await,
        ConnectReturnCode::Success
    );

    // REST on the same port still serves clients without a certificate.
    let r = hub.call(Method::GET, "/devices/ws-ca", None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
}

/// Replacing the thumbprint a self-signed device connected with ends its connection, as a
/// key change ends a SAS device's; a change that keeps it does not.
#[tokio::test]
async fn a_replaced_thumbprint_closes_the_connection_that_used_it() {
    let hub = TestHub::start().await;
    let cert = self_signed("rotating");
    let other = self_signed("next");
    create_self_signed(&hub, "ss-rot", Some(&cert.sha1()), Some(&other.sha1())).await;
    let (_client, mut eventloop) = AsyncClient::new(x509_options(&hub, "ss-rot", Some(&cert)), 10);
    match tokio::time::timeout(WAIT, eventloop.poll()).await {
        Ok(Ok(Event::Incoming(Packet::ConnAck(a)))) => {
            assert_eq!(a.code, ConnectReturnCode::Success)
        }
        other => panic!("unexpected {other:?}"),
    }
    let put = |primary: String, secondary: String| {
        let hub = &hub;
        async move {
            let r = hub
                .call_as(
                    "iothubowner",
                    Method::PUT,
                    "/devices/ss-rot",
                    Some(json!({"deviceId": "ss-rot", "authentication": {"type": "selfSigned",
                        "x509Thumbprint": {"primaryThumbprint": primary, "secondaryThumbprint": secondary}}})),
                    &[("If-Match", "*")],
                )
                .await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        }
    };
    // The secondary changes, the primary (the one in use) stays: still connected.
    put(cert.sha1(), self_signed("third").sha1()).await;
    let kept = tokio::time::timeout(Duration::from_millis(500), async {
        loop {
            if eventloop.poll().await.is_err() {
                return;
            }
        }
    })
    .await;
    assert!(kept.is_err(), "the connection stayed open");
    // The primary is replaced: the hub closes the connection.
    put(other.sha1(), other.sha256()).await;
    let closed = tokio::time::timeout(WAIT, async {
        loop {
            if eventloop.poll().await.is_err() {
                return;
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the connection was closed");
    assert_eq!(
        connack(x509_options(&hub, "ss-rot", Some(&cert))).await,
        ConnectReturnCode::NotAuthorized
    );
}
