//! Blob-linked twin assets, the device's side, against the real hub: a desired reference
//! to a blob in the hub's store is acknowledged, fetched and reported received by
//! `hubtui device --headless`; an expired SAS or a wrong content type is reported failed
//! with the reason, and the last good asset stays current.

mod common;

use std::time::Duration;

use common::TestHub;
use common::device_process::headless_device;
use common::wait::eventually;
use hubtui::hub::store::ContainerRow;
use hubtui::iothub::storage::service_sas::make_query;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(20);

/// A blob in the store and a read SAS URL for it valid until `expiry`.
async fn asset(hub: &TestHub, name: &str, content_type: &str, body: &[u8], expiry: &str) -> String {
    let storage = hub
        .hub
        .info
        .storage
        .clone()
        .expect("the hub has a blob store");
    let _ = hub.hub.state.store.container_create(&ContainerRow {
        name: "assets".into(),
        etag: "\"0x1\"".into(),
        modified_ms: 0,
    });
    let base = format!("{}/assets/{name}", storage.blob_endpoint);
    let key = &storage.account_key;
    let write = make_query(
        &storage.account_name,
        key,
        "assets",
        Some(name),
        "cw",
        None,
        "2099-01-01T00:00:00Z",
    );
    let r = hub
        .http
        .put(format!("{base}?{write}"))
        .header("x-ms-blob-type", "BlockBlob")
        .header("content-type", content_type)
        .body(body.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let read = make_query(
        &storage.account_name,
        key,
        "assets",
        Some(name),
        "r",
        None,
        expiry,
    );
    format!("{base}?{read}")
}

async fn set_desired(hub: &TestHub, desired: Value) {
    let r = hub
        .call(
            Method::PATCH,
            "/twins/d1",
            Some(json!({"properties": {"desired": desired}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
}

/// The reported entry of `name` once it says `status` for `uri`.
async fn reported(hub: &TestHub, name: &str, uri: &str, status: &str) -> Value {
    eventually(WAIT, &format!("{name} reported {status}"), || async {
        let twin = hub.call(Method::GET, "/twins/d1", None).await.body;
        let r = twin["properties"]["reported"][name].clone();
        (r["acknowledged"] == uri && r["status"] == status).then_some(r)
    })
    .await
}

#[tokio::test]
async fn a_device_takes_a_referenced_asset_and_reports_failures() {
    let hub = TestHub::start().await;
    let key = hub.create_device("d1").await;
    let _device = headless_device(&hub, "d1", &key, &[]).await;

    let firmware = vec![7u8; 100_000];
    let good = asset(
        &hub,
        "fw-1.bin",
        "application/octet-stream",
        &firmware,
        "2099-01-01T00:00:00Z",
    )
    .await;
    let reference = |uri: &str| json!({"uri": uri, "ts": "2026-12-02T10:00:00Z", "contentType": "application/octet-stream"});
    set_desired(&hub, json!({"firmware": reference(&good)})).await;
    let r = reported(&hub, "firmware", &good, "received").await;
    assert_eq!(r["current"], good);
    assert!(r.get("reason").is_none(), "{r}");

    // An expired SAS: failed with the storage service's answer, the good one still current.
    let expired = asset(
        &hub,
        "fw-2.bin",
        "application/octet-stream",
        &firmware,
        "2020-01-01T00:00:00Z",
    )
    .await;
    set_desired(&hub, json!({"firmware": reference(&expired)})).await;
    let r = reported(&hub, "firmware", &expired, "failed").await;
    assert_eq!(r["current"], good);
    assert!(r["reason"].as_str().unwrap().contains("403"), "{r}");

    // A blob whose content type is not the one the reference names.
    let text = asset(
        &hub,
        "notes.txt",
        "text/plain",
        b"hello",
        "2099-01-01T00:00:00Z",
    )
    .await;
    set_desired(&hub, json!({"firmware": reference(&text)})).await;
    let r = reported(&hub, "firmware", &text, "failed").await;
    assert_eq!(
        r["reason"],
        "the blob's content type is text/plain, not application/octet-stream"
    );

    // The reference is no writable property: no Plug and Play acknowledgement for it.
    let twin = hub.call(Method::GET, "/twins/d1", None).await.body;
    assert!(
        twin["properties"]["reported"]["firmware"]
            .get("ac")
            .is_none()
    );
}
