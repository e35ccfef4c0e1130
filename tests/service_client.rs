//! hubtui's service REST client against the real local hub.

mod common;

use common::TestHub;
use hubtui::client::service::{NewDeviceAuth, Proxy, ServiceClient, ServiceClientError};
use hubtui::client::tls::Trust;
use hubtui::iothub::connection_string::ServiceConnectionString;
use hubtui::iothub::device::{AuthType, DeviceStatus};
use hubtui::iothub::error::ErrorCode;
use hubtui::iothub::method::MethodInvocation;
use serde_json::json;

fn client(hub: &TestHub, policy: &str) -> ServiceClient {
    let cs = hub.hub.state.service_connection_string(policy).unwrap();
    let cs = ServiceConnectionString::parse(&cs).unwrap();
    ServiceClient::new(
        &cs,
        &Trust::CaPem(hub.hub.ca_pem.clone()),
        Some(hub.hub.info.ports.https),
    )
    .unwrap()
}

#[tokio::test]
async fn registry_twin_query_and_purge_round_trip() {
    let hub = TestHub::start().await;
    let c = client(&hub, "iothubowner");
    let d = c.create_device("sc-1", &NewDeviceAuth::Sas).await.unwrap();
    assert_eq!(d.device_id, "sc-1");
    assert!(
        d.authentication
            .symmetric_key
            .as_ref()
            .unwrap()
            .primary_key
            .as_ref()
            .unwrap()
            .len()
            > 40
    );
    let x = c
        .create_device(
            "sc-x509",
            &NewDeviceAuth::X509 {
                primary_thumbprint: "AB".repeat(20),
                secondary_thumbprint: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(x.authentication.auth_type, AuthType::SelfSigned);
    assert_eq!(
        x.authentication
            .x509_thumbprint
            .unwrap()
            .primary_thumbprint
            .unwrap(),
        "AB".repeat(20)
    );

    let e = c
        .create_device("sc-1", &NewDeviceAuth::Sas)
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::DeviceAlreadyExists));

    let mut d = c.get_device("sc-1").await.unwrap();
    d.status = DeviceStatus::Disabled;
    let stale = d.clone();
    let d2 = c.update_device(&d).await.unwrap();
    assert_eq!(d2.status, DeviceStatus::Disabled);
    let e = c.update_device(&stale).await.unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::PreconditionFailed));

    let twin = c.get_twin("sc-1", None).await.unwrap();
    let etag = twin["etag"].as_str().unwrap().to_string();
    let t = c
        .patch_twin(
            "sc-1",
            None,
            &json!({"properties": {"desired": {"interval": 5}}}),
            Some(&etag),
        )
        .await
        .unwrap();
    assert_eq!(t["properties"]["desired"]["interval"], 5);
    let e = c
        .patch_twin(
            "sc-1",
            None,
            &json!({"properties": {"desired": {"interval": 6}}}),
            Some(&etag),
        )
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::PreconditionFailed));

    let p1 = c
        .query("SELECT * FROM devices", None, Some(1))
        .await
        .unwrap();
    assert_eq!(p1.items.len(), 1);
    let p2 = c
        .query("SELECT * FROM devices", p1.continuation.as_deref(), Some(1))
        .await
        .unwrap();
    assert_eq!(p2.items[0]["deviceId"], "sc-x509");
    assert_eq!(p2.continuation, None);

    let call = MethodInvocation {
        method_name: "reboot".into(),
        payload: json!({}),
        response_timeout_in_seconds: Some(5),
        connect_timeout_in_seconds: Some(0),
    };
    let e = c.invoke_method("sc-x509", None, &call).await.unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::DeviceNotOnline));

    hub.hub
        .state
        .enqueue_c2d("sc-x509", Default::default(), b"x".to_vec(), None)
        .unwrap();
    assert_eq!(c.purge_c2d("sc-x509").await.unwrap(), 1);
    c.delete_device("sc-1").await.unwrap();
    let e = c.get_device("sc-1").await.unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::DeviceNotFound));
    assert!(e.to_string().contains("DeviceNotFound"), "{e}");
}

#[tokio::test]
async fn refusals_are_one_clear_sentence() {
    let hub = TestHub::start().await;
    let e = client(&hub, "registryRead")
        .create_device("x", &NewDeviceAuth::Sas)
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::IotHubUnauthorizedAccess));

    let cs = ServiceConnectionString::parse(
        "HostName=localhost;SharedAccessKeyName=iothubowner;SharedAccessKey=AAAA",
    )
    .unwrap();
    // Nothing listens on port 1.
    let c = ServiceClient::new(&cs, &Trust::CaPem(hub.hub.ca_pem.clone()), Some(1)).unwrap();
    let e = c.get_device("x").await.unwrap_err();
    assert!(matches!(e, ServiceClientError::Unreachable { .. }));
    assert!(
        e.to_string()
            .starts_with("cannot reach the hub at https://localhost:1/devices/x"),
        "{e}"
    );
    assert!(e.to_string().contains(": cannot connect: "), "{e}");

    // A proxy that is not there is named as the problem.
    let c = ServiceClient::with_proxy(
        &cs,
        &Trust::CaPem(hub.hub.ca_pem.clone()),
        Some(hub.hub.info.ports.https),
        &Proxy::Url("http://127.0.0.1:9".into()),
    )
    .unwrap();
    let e = c.get_device("x").await.unwrap_err();
    assert!(
        e.to_string()
            .contains(": the proxy did not open a tunnel: "),
        "{e}"
    );
}
