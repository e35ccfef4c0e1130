//! DPS with X.509 attestation against the real local hub: individual enrollments (the
//! device's own certificate) and enrollment groups (a signing CA, or a CA registered on the
//! hub), registered over MQTT (client certificate, no password) and over HTTPS (client
//! certificate, no Authorization header); what the registry then holds (a self-signed
//! identity with the registered certificate's thumbprint, for groups too, as DPS makes
//! them), and the device connecting with the certificate it registered with.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::TestHub;
use common::certs::*;
use hubtui::client::device::Trust;
use hubtui::client::dps::{self, Attestation, ProvisioningError, Registration};
use hubtui::hub::x509::authorities;
use hubtui::iothub::dps::registration::{RegistrationOperation, RegistrationStatus};
use hubtui::iothub::dps::topic::{DpsRequest, DpsResponse, DpsUsername, RESPONSE_FILTER};
use reqwest::{Method, StatusCode};
use rumqttc::{
    AsyncClient, ConnectReturnCode, ConnectionError, Event, EventLoop, MqttOptions, Packet, QoS,
    TlsConfiguration, Transport,
};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(10);

/// A provisioning client as the SDKs connect with a certificate: the DPS username, no
/// password, the certificate in the TLS handshake.
fn dps_options(hub: &TestHub, reg: &str, issued: &Issued) -> MqttOptions {
    let mut o = MqttOptions::new(reg, "localhost", hub.hub.info.ports.mqtt);
    let user = DpsUsername {
        id_scope: hub.hub.info.id_scope.clone(),
        registration_id: reg.into(),
        api_version: Some("2019-03-31".into()),
        client_version: Some("hubtui-tests/1".into()),
    };
    o.set_credentials(user.format(), "");
    o.set_keep_alive(Duration::from_secs(60));
    o.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(
        Arc::new(client_tls_with(&hub.hub.ca_pem, Some(issued))),
    )));
    o
}

/// Device MQTT options with a certificate and no password.
fn device_options(hub: &TestHub, device_id: &str, issued: &Issued) -> MqttOptions {
    let mut o = MqttOptions::new(device_id, "localhost", hub.hub.info.ports.mqtt);
    o.set_credentials(
        format!("{}/{device_id}/?api-version=2021-04-12", hub.host()),
        "",
    );
    o.set_keep_alive(Duration::from_secs(60));
    o.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(
        Arc::new(client_tls_with(&hub.hub.ca_pem, Some(issued))),
    )));
    o
}

async fn connect(opts: MqttOptions) -> Result<(AsyncClient, EventLoop), ConnectReturnCode> {
    let (client, mut eventloop) = AsyncClient::new(opts, 16);
    let polled = tokio::time::timeout(WAIT, eventloop.poll())
        .await
        .expect("CONNACK in time");
    match polled {
        Ok(Event::Incoming(Packet::ConnAck(a))) if a.code == ConnectReturnCode::Success => {
            Ok((client, eventloop))
        }
        Ok(Event::Incoming(Packet::ConnAck(a))) => Err(a.code),
        Err(ConnectionError::ConnectionRefused(code)) => Err(code),
        other => panic!("expected CONNACK, got {other:?}"),
    }
}

/// Registers over MQTT and polls once, as the SDKs do: the final operation.
async fn register_mqtt(hub: &TestHub, reg: &str, issued: &Issued) -> RegistrationOperation {
    let (client, mut eventloop) = connect(dps_options(hub, reg, issued))
        .await
        .expect("the DPS CONNECT is accepted");
    client
        .subscribe(RESPONSE_FILTER, QoS::AtLeastOnce)
        .await
        .unwrap();
    let request = |req: DpsRequest, body: Value| {
        let client = client.clone();
        async move {
            client
                .publish(req.to_topic(), QoS::AtLeastOnce, false, body.to_string())
                .await
                .unwrap();
        }
    };
    request(
        DpsRequest::Register { rid: "1".into() },
        json!({"registrationId": reg, "payload": null}),
    )
    .await;
    let (first, op) = response(&mut eventloop, "1").await;
    assert_eq!(first.status, 202, "{op}");
    let operation_id = op["operationId"].as_str().unwrap().to_string();
    request(
        DpsRequest::OperationStatus {
            rid: "2".into(),
            operation_id,
        },
        json!(" "),
    )
    .await;
    let (done, op) = response(&mut eventloop, "2").await;
    assert_eq!(done.status, 200, "{op}");
    serde_json::from_value(op).unwrap()
}

async fn response(eventloop: &mut EventLoop, rid: &str) -> (DpsResponse, Value) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let ev = tokio::time::timeout_at(deadline, eventloop.poll())
            .await
            .expect("a DPS response in time")
            .expect("the connection stays up");
        if let Event::Incoming(Packet::Publish(p)) = ev {
            let resp = DpsResponse::parse(&p.topic).unwrap();
            if resp.rid == rid {
                return (resp, serde_json::from_slice(&p.payload).unwrap());
            }
        }
    }
}

fn registration(hub: &TestHub, reg: &str, issued: &Issued) -> Registration {
    Registration {
        host: hub.hub.info.host_name.clone(),
        port: hub.hub.info.ports.https,
        id_scope: hub.hub.info.id_scope.clone(),
        registration_id: reg.into(),
        attestation: Attestation::Certificate(issued.identity()),
        model_id: None,
    }
}

async fn register_https(
    hub: &TestHub,
    reg: &str,
    issued: &Issued,
) -> Result<dps::Assignment, ProvisioningError> {
    dps::register(
        &registration(hub, reg, issued),
        &Trust::CaPem(hub.hub.ca_pem.clone()),
    )
    .await
}

async fn put(hub: &TestHub, path: &str, body: Value) -> Value {
    let r = hub.call(Method::PUT, path, Some(body)).await;
    assert_eq!(r.status, StatusCode::OK, "PUT {path}: {}", r.body);
    r.body
}

fn individual(cert_pem: &str) -> Value {
    json!({"type": "x509", "x509": {"clientCertificates": {"primary": {"certificate": cert_pem}}}})
}

fn signing(ca_pem: &str) -> Value {
    json!({"type": "x509", "x509": {"signingCertificates": {"primary": {"certificate": ca_pem}}}})
}

async fn device(hub: &TestHub, id: &str) -> Value {
    let r = hub.call(Method::GET, &format!("/devices/{id}"), None).await;
    assert_eq!(r.status, StatusCode::OK, "GET device {id}: {}", r.body);
    r.body
}

#[tokio::test]
async fn an_individual_x509_enrollment_shows_its_certificate_info() {
    let hub = TestHub::start().await;
    let cert = self_signed("cam-1");
    let doc = put(
        &hub,
        "/enrollments/cam-1",
        json!({"attestation": individual(&cert.pem)}),
    )
    .await;
    let info = &doc["attestation"]["x509"]["clientCertificates"]["primary"]["info"];
    assert_eq!(info["subjectName"], "CN=cam-1");
    assert_eq!(info["issuerName"], "CN=cam-1");
    assert_eq!(info["sha1Thumbprint"], cert.sha1().as_str());
    assert_eq!(info["sha256Thumbprint"], cert.sha256().as_str());
    assert_eq!(info["notBeforeUtc"], "2024-01-01T00:00:00.000Z");
    assert_eq!(info["notAfterUtc"], "2049-01-01T00:00:00.000Z");
    assert_eq!(info["version"], 3);
    assert!(doc["attestation"].get("symmetricKey").is_none(), "{doc}");
    let read = hub.call(Method::GET, "/enrollments/cam-1", None).await;
    assert_eq!(read.body["attestation"], doc["attestation"]);

    // A certificate whose CN is not the registration id, or that is not one, is refused.
    let other = self_signed("cam-2");
    let r = hub
        .call(
            Method::PUT,
            "/enrollments/cam-1",
            Some(json!({"attestation": individual(&other.pem)})),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    assert!(
        r.body["message"].as_str().unwrap().contains("\"cam-2\""),
        "{}",
        r.body
    );
    let r = hub
        .call(
            Method::PUT,
            "/enrollments/cam-3",
            Some(json!({"attestation": individual("not a certificate")})),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
}

#[tokio::test]
async fn an_individual_x509_registration_over_mqtt_creates_a_self_signed_device_once() {
    let hub = TestHub::start().await;
    let cert = self_signed("cam-1");
    put(
        &hub,
        "/enrollments/cam-1",
        json!({"deviceId": "camera-1", "attestation": individual(&cert.pem),
               "initialTwin": {"tags": {"site": "lab"}}}),
    )
    .await;
    let op = register_mqtt(&hub, "cam-1", &cert).await;
    assert_eq!(op.status, RegistrationStatus::Assigned);
    let state = op.registration_state.unwrap();
    assert_eq!(state.device_id.as_deref(), Some("camera-1"));
    assert_eq!(state.assigned_hub.as_deref(), Some(hub.host()));

    let dev = device(&hub, "camera-1").await;
    assert_eq!(dev["authentication"]["type"], "selfSigned");
    assert_eq!(
        dev["authentication"]["x509Thumbprint"]["primaryThumbprint"],
        cert.sha1().as_str()
    );
    let twin = hub.call(Method::GET, "/twins/camera-1", None).await;
    assert_eq!(twin.body["tags"]["site"], "lab");

    // Re-registration: the same assignment, the device untouched.
    let again = register_mqtt(&hub, "cam-1", &cert).await;
    assert_eq!(again.status, RegistrationStatus::Assigned);
    assert_eq!(
        again.registration_state.unwrap().device_id.as_deref(),
        Some("camera-1")
    );
    assert_eq!(device(&hub, "camera-1").await["etag"], dev["etag"]);

    // The device connects to the hub with the certificate it registered with.
    assert!(
        connect(device_options(&hub, "camera-1", &cert))
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn a_group_x509_registration_over_mqtt_creates_a_device_that_connects() {
    let hub = TestHub::start().await;
    let root = root_ca("Fleet Root");
    let intermediate = root.intermediate("Fleet Intermediate");
    // The group trusts the intermediate; devices present their leaf and the intermediate.
    put(
        &hub,
        "/enrollmentGroups/fleet",
        json!({"attestation": signing(&intermediate.issued.pem),
               "initialTwin": {"properties": {"desired": {"interval": 9}}}}),
    )
    .await;
    let cert = intermediate.device("fleet-7");
    let op = register_mqtt(&hub, "fleet-7", &cert).await;
    assert_eq!(op.status, RegistrationStatus::Assigned);
    assert_eq!(
        op.registration_state.unwrap().device_id.as_deref(),
        Some("fleet-7")
    );
    // No CA is registered on the hub: the device is known by its certificate's thumbprint.
    let dev = device(&hub, "fleet-7").await;
    assert_eq!(dev["authentication"]["type"], "selfSigned");
    assert_eq!(
        dev["authentication"]["x509Thumbprint"]["primaryThumbprint"],
        cert.sha1().as_str()
    );
    let twin = hub.call(Method::GET, "/twins/fleet-7", None).await;
    assert_eq!(twin.body["properties"]["desired"]["interval"], 9);
    assert!(
        connect(device_options(&hub, "fleet-7", &cert))
            .await
            .is_ok()
    );

    // A registration id that is not the certificate's CN is refused at CONNECT.
    assert_eq!(
        connect(dps_options(&hub, "fleet-8", &cert)).await.err(),
        Some(ConnectReturnCode::NotAuthorized)
    );
}

#[tokio::test]
async fn x509_registrations_over_https_for_individual_and_group_enrollments() {
    let hub = TestHub::start().await;
    let cert = self_signed("cam-9");
    put(
        &hub,
        "/enrollments/cam-9",
        json!({"attestation": individual(&cert.pem)}),
    )
    .await;
    let a = register_https(&hub, "cam-9", &cert).await.unwrap();
    assert_eq!((a.device_id.as_str(), a.device_key), ("cam-9", None));
    assert_eq!(a.assigned_hub, hub.host());
    assert_eq!(
        device(&hub, "cam-9").await["authentication"]["type"],
        "selfSigned"
    );
    // Idempotent over HTTPS too.
    let again = register_https(&hub, "cam-9", &cert).await.unwrap();
    assert_eq!(again.device_id, "cam-9");

    // A group that references a CA registered on the hub.
    let root = root_ca("Registered Root");
    let now_ms = common::now() as i64 * 1000;
    authorities::add(
        &hub.hub.state.store,
        "fleet-root",
        root.issued.pem.as_bytes(),
        now_ms,
    )
    .unwrap();
    put(
        &hub,
        "/enrollmentGroups/by-ref",
        json!({"attestation": {"type": "x509", "x509": {"caReferences": {"primary": "fleet-root"}}}}),
    )
    .await;
    let sensor = root.device("sensor-3");
    let a = register_https(&hub, "sensor-3", &sensor).await.unwrap();
    assert_eq!(a.device_id, "sensor-3");
    assert_eq!(
        device(&hub, "sensor-3").await["authentication"]["type"],
        "selfSigned"
    );
    assert!(
        connect(device_options(&hub, "sensor-3", &sensor))
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn a_wrong_certificate_is_refused_as_a_bad_key_is() {
    let hub = TestHub::start().await;
    let enrolled = self_signed("cam-1");
    put(
        &hub,
        "/enrollments/cam-1",
        json!({"attestation": individual(&enrolled.pem)}),
    )
    .await;
    let root = root_ca("Group Root");
    put(
        &hub,
        "/enrollmentGroups/fleet",
        json!({"attestation": signing(&root.issued.pem)}),
    )
    .await;

    // Same CN, another certificate.
    let impostor = self_signed("cam-1");
    assert_eq!(
        connect(dps_options(&hub, "cam-1", &impostor)).await.err(),
        Some(ConnectReturnCode::NotAuthorized)
    );
    assert!(matches!(
        register_https(&hub, "cam-1", &impostor).await,
        Err(ProvisioningError::Unauthorized)
    ));
    // A chain from a CA no group trusts.
    let stranger = root_ca("Stranger Root").device("fleet-1");
    assert_eq!(
        connect(dps_options(&hub, "fleet-1", &stranger)).await.err(),
        Some(ConnectReturnCode::NotAuthorized)
    );
    assert!(matches!(
        register_https(&hub, "fleet-1", &stranger).await,
        Err(ProvisioningError::Unauthorized)
    ));
    // A certificate the group's CA issued, but expired.
    let mut old = leaf_params("fleet-3");
    old.not_before = rcgen::date_time_ymd(2020, 1, 1);
    old.not_after = rcgen::date_time_ymd(2021, 1, 1);
    let expired = root.issue(old);
    assert_eq!(
        connect(dps_options(&hub, "fleet-3", &expired)).await.err(),
        Some(ConnectReturnCode::NotAuthorized)
    );
    // A self-signed certificate with the CN of a group device is no group member either.
    assert!(matches!(
        register_https(&hub, "fleet-2", &self_signed("fleet-2")).await,
        Err(ProvisioningError::Unauthorized)
    ));
    // No certificate and no Authorization header: 401 in DPS's error shape.
    let url = format!(
        "{}/{}/registrations/cam-1/register?api-version=2021-06-01",
        hub.base(),
        hub.hub.info.id_scope
    );
    let r = common::https_client(&hub.hub.ca_pem)
        .put(url)
        .json(&json!({"registrationId": "cam-1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let body: Value = r.json().await.unwrap();
    assert!(body["errorCode"].is_number(), "{body}");
    for id in ["cam-1", "fleet-1", "fleet-2", "fleet-3"] {
        let r = hub.call(Method::GET, &format!("/devices/{id}"), None).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{id}: {}", r.body);
    }
}

#[tokio::test]
async fn a_disabled_x509_enrollment_is_answered_disabled() {
    let hub = TestHub::start().await;
    let cert = self_signed("cam-off");
    put(
        &hub,
        "/enrollments/cam-off",
        json!({"attestation": individual(&cert.pem), "provisioningStatus": "disabled"}),
    )
    .await;
    let op = register_mqtt(&hub, "cam-off", &cert).await;
    assert_eq!(op.status, RegistrationStatus::Disabled);
    match register_https(&hub, "cam-off", &cert).await {
        Err(ProvisioningError::NotAssigned { status, .. }) => assert_eq!(status, "disabled"),
        other => panic!("expected disabled, got {other:?}"),
    }
    let r = hub.call(Method::GET, "/devices/cam-off", None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.body);
}
