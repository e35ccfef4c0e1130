//! The local hub's Device Provisioning Service: enrollments over the service REST API,
//! registration over MQTT (as the device SDKs do it) and HTTPS, and what registration
//! does to the registry, against a real hub on loopback.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{TestHub, client_tls, now};
use hubtui::iothub::dps::registration::{RegistrationOperation, RegistrationStatus};
use hubtui::iothub::dps::registration_resource;
use hubtui::iothub::dps::topic::{DpsRequest, DpsResponse, DpsUsername, RESPONSE_FILTER};
use hubtui::iothub::sas::{derive_device_key, generate_token};
use reqwest::{Method, StatusCode};
use rumqttc::mqttbytes::v4::Packet;
use rumqttc::{
    AsyncClient, ConnectReturnCode, ConnectionError, Event, EventLoop, MqttOptions, QoS,
    TlsConfiguration, Transport,
};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(10);
const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const OTHER_KEY: &str = "ZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmY=";

fn scope(hub: &TestHub) -> String {
    hub.hub.info.id_scope.clone()
}

/// A registration token as the Node SDK signs it (`skn=registration`).
fn dps_token(hub: &TestHub, reg: &str, key: &str) -> String {
    let resource = registration_resource(&scope(hub), reg);
    generate_token(&resource, key, Some("registration"), now() + 3600).unwrap()
}

/// MQTT options of a provisioning client as the SDKs connect (username without `?`).
fn dps_options(hub: &TestHub, reg: &str, password: &str) -> MqttOptions {
    let mut o = MqttOptions::new(reg, "localhost", hub.hub.info.ports.mqtt);
    let user = DpsUsername {
        id_scope: scope(hub),
        registration_id: reg.into(),
        api_version: Some("2019-03-31".into()),
        client_version: Some("hubtui-tests/1".into()),
    };
    o.set_credentials(user.format(), password);
    o.set_keep_alive(Duration::from_secs(60));
    o.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(
        Arc::new(client_tls(&hub.hub.ca_pem)),
    )));
    o
}

struct DpsClient {
    client: AsyncClient,
    eventloop: EventLoop,
}

impl DpsClient {
    async fn connect(opts: MqttOptions) -> Result<DpsClient, ConnectReturnCode> {
        let (client, mut eventloop) = AsyncClient::new(opts, 16);
        match eventloop.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(a))) if a.code == ConnectReturnCode::Success => {}
            Ok(Event::Incoming(Packet::ConnAck(a))) => return Err(a.code),
            Err(ConnectionError::ConnectionRefused(code)) => return Err(code),
            other => panic!("expected CONNACK, got {other:?}"),
        }
        client
            .subscribe(RESPONSE_FILTER, QoS::AtLeastOnce)
            .await
            .unwrap();
        Ok(DpsClient { client, eventloop })
    }

    /// Publishes a request and returns the response topic and body for its `$rid`.
    async fn request(&mut self, req: DpsRequest, body: Value) -> (DpsResponse, Value) {
        let rid = match &req {
            DpsRequest::Register { rid } | DpsRequest::OperationStatus { rid, .. } => rid.clone(),
        };
        self.client
            .publish(req.to_topic(), QoS::AtLeastOnce, false, body.to_string())
            .await
            .unwrap();
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let ev = tokio::time::timeout_at(deadline, self.eventloop.poll())
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

    /// Register, then poll as the SDKs do: the final operation.
    async fn register(&mut self, reg: &str, payload: Value) -> RegistrationOperation {
        let body = json!({"registrationId": reg, "payload": payload});
        let (first, op) = self
            .request(DpsRequest::Register { rid: "1".into() }, body)
            .await;
        assert_eq!(first.status, 202, "{op}");
        assert_eq!(first.retry_after, Some(1));
        assert_eq!(op["status"], "assigning");
        let operation_id = op["operationId"].as_str().unwrap().to_string();
        let (done, op) = self
            .request(
                DpsRequest::OperationStatus {
                    rid: "2".into(),
                    operation_id,
                },
                json!(" "),
            )
            .await;
        assert_eq!(done.status, 200, "{op}");
        serde_json::from_value(op).unwrap()
    }
}

async fn put(hub: &TestHub, path: &str, body: Value) -> Value {
    let r = hub.call(Method::PUT, path, Some(body)).await;
    assert_eq!(r.status, StatusCode::OK, "PUT {path}: {}", r.body);
    r.body
}

#[tokio::test]
async fn individual_enrollment_over_mqtt_creates_the_device_once() {
    let hub = TestHub::start().await;
    put(
        &hub,
        "/enrollments/dev-a",
        json!({"deviceId": "thermo-1",
               "attestation": {"type": "symmetricKey", "symmetricKey": {"primaryKey": KEY}},
               "initialTwin": {"tags": {"site": "lab"}, "properties": {"desired": {"interval": 5}}}}),
    )
    .await;

    let mut dps = DpsClient::connect(dps_options(&hub, "dev-a", &dps_token(&hub, "dev-a", KEY)))
        .await
        .unwrap();
    let op = dps
        .register("dev-a", json!({"modelId": "dtmi:com:example:Thermostat;1"}))
        .await;
    assert_eq!(op.status, RegistrationStatus::Assigned);
    let state = op.registration_state.unwrap();
    assert_eq!(state.assigned_hub.as_deref(), Some(hub.host()));
    assert_eq!(state.device_id.as_deref(), Some("thermo-1"));
    assert_eq!(state.substatus.as_deref(), Some("initialAssignment"));

    // The device exists with the enrollment's key, the initial twin and the model id.
    let id = hub.hub.state.identity("thermo-1", None).unwrap();
    let keys = id.device.authentication.symmetric_key.unwrap();
    assert_eq!(keys.primary_key.as_deref(), Some(KEY));
    assert_eq!(
        id.model_id.as_deref(),
        Some("dtmi:com:example:Thermostat;1")
    );
    let twin = hub.call(Method::GET, "/twins/thermo-1", None).await.body;
    assert_eq!(twin["tags"]["site"], "lab");
    assert_eq!(twin["properties"]["desired"]["interval"], 5);

    // It connects to the hub with what it was given.
    let device = hub.mqtt_options("thermo-1", KEY);
    let (_c, mut ev) = AsyncClient::new(device, 10);
    match ev.poll().await {
        Ok(Event::Incoming(Packet::ConnAck(a))) => assert_eq!(a.code, ConnectReturnCode::Success),
        other => panic!("expected CONNACK, got {other:?}"),
    }

    // Re-registration keeps the device and its twin as they are now.
    let r = hub
        .call(
            Method::PATCH,
            "/twins/thermo-1",
            Some(json!({"properties": {"desired": {"interval": 9}}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let again = dps.register("dev-a", Value::Null).await;
    let again_state = again.registration_state.unwrap();
    assert_eq!(again_state.device_id.as_deref(), Some("thermo-1"));
    assert_eq!(
        again_state.created_date_time_utc,
        state.created_date_time_utc
    );
    let twin = hub.call(Method::GET, "/twins/thermo-1", None).await.body;
    assert_eq!(twin["properties"]["desired"]["interval"], 9);
    assert_eq!(hub.hub.state.devices().unwrap().len(), 1);
}

#[tokio::test]
async fn group_enrollment_over_https_with_a_derived_key() {
    let hub = TestHub::start().await;
    put(
        &hub,
        "/enrollmentGroups/fleet",
        json!({"attestation": {"type": "symmetricKey", "symmetricKey": {"primaryKey": KEY}}}),
    )
    .await;
    let device_key = derive_device_key(KEY, "fleet-7").unwrap();
    let base = format!("{}/{}/registrations/fleet-7", hub.base(), scope(&hub));
    let token = dps_token(&hub, "fleet-7", &device_key);

    let wrong = hub
        .http
        .put(format!("{base}/register?api-version=2021-06-01"))
        .header("Authorization", dps_token(&hub, "fleet-7", OTHER_KEY))
        .json(&json!({"registrationId": "fleet-7"}))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let err: Value = wrong.json().await.unwrap();
    assert_eq!(err["errorCode"], 401002, "{err}");

    let r = hub
        .http
        .put(format!("{base}/register?api-version=2021-06-01"))
        .header("Authorization", &token)
        .json(&json!({"registrationId": "fleet-7"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    assert_eq!(r.headers()["retry-after"], "1");
    let first: RegistrationOperation = r.json().await.unwrap();
    assert_eq!(first.status, RegistrationStatus::Assigning);

    let r = hub
        .http
        .get(format!(
            "{base}/operations/{}?api-version=2021-06-01",
            first.operation_id
        ))
        .header("Authorization", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let done: RegistrationOperation = r.json().await.unwrap();
    assert_eq!(done.status, RegistrationStatus::Assigned);
    assert_eq!(
        done.registration_state.unwrap().device_id.as_deref(),
        Some("fleet-7")
    );
    let id = hub.hub.state.identity("fleet-7", None).unwrap();
    let keys = id.device.authentication.symmetric_key.unwrap();
    assert_eq!(keys.primary_key, Some(device_key));

    // The group key itself is not a device key.
    let r = hub
        .http
        .put(format!("{base}/register?api-version=2021-06-01"))
        .header("Authorization", dps_token(&hub, "fleet-7", KEY))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_disabled_enrollment_answers_disabled_and_creates_nothing() {
    let hub = TestHub::start().await;
    put(
        &hub,
        "/enrollments/off-1",
        json!({"attestation": {"type": "symmetricKey", "symmetricKey": {"primaryKey": KEY}},
               "provisioningStatus": "disabled"}),
    )
    .await;
    let mut dps = DpsClient::connect(dps_options(&hub, "off-1", &dps_token(&hub, "off-1", KEY)))
        .await
        .unwrap();
    let op = dps.register("off-1", Value::Null).await;
    assert_eq!(op.status, RegistrationStatus::Disabled);
    assert_eq!(
        op.registration_state.unwrap().status,
        RegistrationStatus::Disabled
    );
    assert!(hub.hub.state.devices().unwrap().is_empty());
}

#[tokio::test]
async fn unknown_registrations_and_bad_connects_are_refused() {
    let hub = TestHub::start().await;
    put(
        &hub,
        "/enrollments/known",
        json!({"attestation": {"type": "symmetricKey", "symmetricKey": {"primaryKey": KEY}}}),
    )
    .await;
    let refused = |reg: &str, client: &str, key: &str| {
        let mut o = dps_options(&hub, reg, &dps_token(&hub, reg, key));
        o.set_client_id(client.to_string());
        DpsClient::connect(o)
    };
    assert_eq!(
        refused("nobody", "nobody", KEY).await.err(),
        Some(ConnectReturnCode::NotAuthorized)
    );
    assert_eq!(
        refused("known", "known", OTHER_KEY).await.err(),
        Some(ConnectReturnCode::NotAuthorized)
    );
    assert_eq!(
        refused("known", "someone-else", KEY).await.err(),
        Some(ConnectReturnCode::BadClientId)
    );
    // Python signs without skn; that is accepted too.
    let python = generate_token(
        &registration_resource(&scope(&hub), "known"),
        KEY,
        None,
        now() + 60,
    )
    .unwrap();
    assert!(
        DpsClient::connect(dps_options(&hub, "known", &python))
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn enrollment_api_reads_lists_deletes_and_checks_etags() {
    let hub = TestHub::start().await;
    let created = put(&hub, "/enrollments/e-1", json!({})).await;
    assert_eq!(created["registrationId"], "e-1");
    assert_eq!(created["attestation"]["type"], "symmetricKey");
    assert!(created["attestation"]["symmetricKey"]["primaryKey"].is_string());
    let etag = created["etag"].as_str().unwrap().to_string();

    let stale = hub
        .call_as(
            "iothubowner",
            Method::PUT,
            "/enrollments/e-1",
            Some(json!({})),
            &[("If-Match", "\"old\"")],
        )
        .await;
    assert_eq!(stale.status, StatusCode::PRECONDITION_FAILED);
    let fresh = hub
        .call_as(
            "iothubowner",
            Method::PUT,
            "/enrollments/e-1",
            Some(json!({"provisioningStatus": "disabled"})),
            &[("If-Match", &etag)],
        )
        .await;
    assert_eq!(fresh.status, StatusCode::OK, "{}", fresh.body);
    assert_eq!(fresh.body["provisioningStatus"], "disabled");
    assert_eq!(
        fresh.body["createdDateTimeUtc"],
        created["createdDateTimeUtc"]
    );

    let tpm = hub
        .call(
            Method::PUT,
            "/enrollmentGroups/g",
            Some(json!({"attestation": {"type": "tpm"}})),
        )
        .await;
    assert_eq!(tpm.status, StatusCode::BAD_REQUEST);
    assert!(
        tpm.body["message"]
            .as_str()
            .unwrap()
            .contains("symmetricKey")
    );
    let bare_x509 = hub
        .call(
            Method::PUT,
            "/enrollmentGroups/g",
            Some(json!({"attestation": {"type": "x509"}})),
        )
        .await;
    assert_eq!(bare_x509.status, StatusCode::BAD_REQUEST);
    assert!(
        bare_x509.body["message"]
            .as_str()
            .unwrap()
            .contains("no \"x509\" object"),
        "{}",
        bare_x509.body
    );

    let listed = hub
        .call(
            Method::POST,
            "/enrollments/query",
            Some(json!({"query": "*"})),
        )
        .await;
    assert_eq!(listed.body.as_array().unwrap().len(), 1);
    // A policy without write permission may read but not change.
    let read_only = hub
        .call_as(
            "registryRead",
            Method::DELETE,
            "/enrollments/e-1",
            None,
            &[],
        )
        .await;
    assert_eq!(read_only.status, StatusCode::UNAUTHORIZED);
    let got = hub
        .call_as("registryRead", Method::GET, "/enrollments/e-1", None, &[])
        .await;
    assert_eq!(got.status, StatusCode::OK);

    let gone = hub.call(Method::DELETE, "/enrollments/e-1", None).await;
    assert_eq!(gone.status, StatusCode::NO_CONTENT);
    let missing = hub.call(Method::GET, "/enrollments/e-1", None).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    let unauthenticated = hub
        .http
        .get(format!(
            "{}/enrollments/e-1?api-version=2021-10-01",
            hub.base()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthenticated.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_id_scope_is_in_hub_json_and_kept_across_restarts() {
    let hub = TestHub::start().await;
    let info = hubtui::hub::HubInfo::read(hub.dir.path()).unwrap();
    assert_eq!(info.id_scope, scope(&hub));
    assert_eq!(info.provisioning_host, hub.host());
    let first = scope(&hub);
    let dir = hub.dir;
    hub.hub.shutdown().await;
    let again = hubtui::hub::start(hubtui::hub::HubOptions::ephemeral(dir.path().to_path_buf()))
        .await
        .unwrap();
    assert_eq!(again.info.id_scope, first);
    again.shutdown().await;
    let mut opts = hubtui::hub::HubOptions::ephemeral(dir.path().to_path_buf());
    opts.settings.id_scope = Some("0neCAFE".into());
    let chosen = hubtui::hub::start(opts).await.unwrap();
    assert_eq!(chosen.info.id_scope, "0neCAFE");
}
